// Issue 14 item 4: shared server statements after a schema change. pgtenant shares a server
// statement among clients that Parse the same text; after ALTER TABLE a Parse must again
// give a statement planned against the new schema (0A000 "cached plan must not change result
// type" only where PostgreSQL itself gives it). Run directly and through pgtenant (pool of one
// server connection, so the shared statement is certainly there).
import t from 'tap'
import pg from 'pg'
import postgres from 'postgres'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml } from '../helpers/proxy.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const proxy = await startProxy(basicYaml(server, { pool: 1 }))
t.teardown(() => proxy.stop())
const targets: [string, string][] = [
  ['direct', server.url(ROLES.scram.user, ROLES.scram.password)],
  ['pgtenant', proxy.url('app', 'app_pw', 'postgres')],
]

type Outcome = { rows: unknown[] } | { code: string | undefined }

async function named(url: string, name: string, text: string): Promise<Outcome> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    return await c.query({ name, text }).then(
      (r) => ({ rows: r.rows }),
      (e: { code?: string }) => ({ code: e.code }),
    )
  } finally {
    await c.end()
  }
}

let n = 0
for (const [label, url] of targets) {
  t.test(`${label}: node-postgres named query, ALTER TABLE through the same address, a new client runs it`, async (t) => {
    const table = `stale_a${++n}`
    server.sql(`CREATE TABLE ${table} (id int); INSERT INTO ${table} VALUES (1); GRANT ALL ON ${table} TO ${ROLES.scram.user}`)
    t.same(await named(url, 'q', `SELECT * FROM ${table}`), { rows: [{ id: 1 }] })
    const ddl = new pg.Client({ connectionString: url })
    await ddl.connect()
    await ddl.query(`ALTER TABLE ${table} ADD COLUMN b int DEFAULT 7`)
    await ddl.end()
    t.same(await named(url, 'q', `SELECT * FROM ${table}`), { rows: [{ id: 1, b: 7 }] }, 'the second execution sees the new column')
  })

  t.test(`${label}: the same node-postgres client re-executes its statement after ALTER TABLE: 0A000, as directly`, async (t) => {
    const table = `stale_b${++n}`
    server.sql(`CREATE TABLE ${table} (id int); INSERT INTO ${table} VALUES (1); GRANT ALL ON ${table} TO ${ROLES.scram.user}`)
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    const q = { name: 'mine', text: `SELECT * FROM ${table}` }
    t.same((await c.query(q)).rows, [{ id: 1 }])
    server.sql(`ALTER TABLE ${table} ADD COLUMN b int DEFAULT 7`)
    const err = await c.query(q).then(
      () => null,
      (e: { code?: string }) => e,
    )
    t.equal(err?.code, '0A000', 'cached plan must not change result type')
    t.same((await c.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'the client goes on')
    await c.end()
  })

  t.test(`${label}: postgres.js prepared query, ALTER TABLE made directly on the server, then again`, async (t) => {
    const table = `stale_c${++n}`
    server.sql(`CREATE TABLE ${table} (id int); INSERT INTO ${table} VALUES (1); GRANT ALL ON ${table} TO ${ROLES.scram.user}`)
    const sql = postgres(url, { max: 1, prepare: true, onnotice: () => undefined })
    t.same([...(await sql.unsafe(`SELECT * FROM ${table}`, [], { prepare: true }))], [{ id: 1 }])
    server.sql(`ALTER TABLE ${table} ADD COLUMN b int DEFAULT 7`)
    const again = await sql.unsafe(`SELECT * FROM ${table}`, [], { prepare: true }).then(
      (rows) => [...rows],
      (e: { code?: string }) => ({ code: e.code }),
    )
    t.same(again, [{ id: 1, b: 7 }], "the driver's own re-prepare works")
    // and a second client of the same text, after that
    const other = postgres(url, { max: 1, prepare: true, onnotice: () => undefined })
    t.same([...(await other.unsafe(`SELECT * FROM ${table}`, [], { prepare: true }))], [{ id: 1, b: 7 }])
    await sql.end({ timeout: 5 })
    await other.end({ timeout: 5 })
  })
}
