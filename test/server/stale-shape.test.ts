// A statement the client described before its table changed shape, run on a server connection
// that never had it (transaction pooling), must not return rows of the new shape: the client
// decodes them with the columns it was told. PostgreSQL answers 0A000 "cached plan must not
// change result type", and postgres.js then prepares the statement again. Found by postgres.js's
// own suite ("Insert array with null"); run directly and through pgtenant (pool of 3).
import t, { type Test } from 'tap'
import postgres from 'postgres'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml } from '../helpers/proxy.js'
import { waitFor } from '../helpers/wait.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const proxy = await startProxy(basicYaml(server, { pool: 3 }))
t.teardown(() => proxy.stop())

const targets: [string, string][] = [
  ['direct', server.url(ROLES.scram.user, ROLES.scram.password)],
  ['pgtenant', proxy.url('app', 'app_pw', 'postgres')],
]

/** Three postgres.js clients of one connection each, ended with the test. */
function threeClients(t: Test, url: string): postgres.Sql[] {
  const clients = [0, 1, 2].map(() => postgres(url, { max: 1, onnotice: () => undefined }))
  t.teardown(() => Promise.all(clients.map((s) => s.end())).then(() => undefined))
  return clients
}

/**
 * Runs `f` while `holders` sit in open transactions: through pgtenant they hold server connections,
 * so the statement in `f` runs on another one.
 */
async function whileHeld<T>(holders: postgres.Sql[], f: () => Promise<T>): Promise<T> {
  let release = (): void => undefined
  const held = new Promise<void>((r) => (release = r))
  let inside = 0
  const open = holders.map((s) =>
    s.begin(async (tx) => {
      await tx`SELECT 1`
      inside++
      await held
    }),
  )
  await waitFor('every holder inside its transaction', () => inside === holders.length)
  try {
    return await f()
  } finally {
    release()
    await Promise.all(open)
  }
}

let n = 0
for (const [label, url] of targets) {
  t.test(`${label}: the re-shaped table's rows come back with their own columns`, async (t) => {
    const table = `shape_${++n}`
    const [a, b, c] = threeClients(t, url)
    await a.unsafe(`CREATE TABLE ${table} (x int)`)
    await a.unsafe(`INSERT INTO ${table} VALUES (1)`)
    t.same(await a`SELECT * FROM ${a(table)}`, [{ x: 1 }])
    await c.unsafe(`DROP TABLE ${table}`)
    await c.unsafe(`CREATE TABLE ${table} (a int, b bool, c text)`)
    await c.unsafe(`INSERT INTO ${table} VALUES (2, true, 'z')`)
    const rows = await whileHeld([b, c], () => a`SELECT * FROM ${a(table)}`)
    t.same(rows, [{ a: 2, b: true, c: 'z' }], 'the new columns, decoded by the new description')
  })
}

for (const [label, url] of targets) {
  t.test(`${label}: the table is gone: the error, and the session goes on`, async (t) => {
    const table = `gone_${++n}`
    const [a, b, c] = threeClients(t, url)
    await a.unsafe(`CREATE TABLE ${table} (x int)`)
    t.same(await a`SELECT * FROM ${a(table)}`, [], 'empty')
    await c.unsafe(`DROP TABLE ${table}`)
    const err = await whileHeld([b, c], () =>
      a`SELECT * FROM ${a(table)}`.then(
        () => null,
        (e: { code?: string }) => e,
      ),
    )
    t.equal(err?.code, '42P01', 'relation does not exist')
    t.same(await a`SELECT 1 AS one`, [{ one: 1 }], 'the session still works')
  })
}
