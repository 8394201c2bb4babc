// MOVE TENANT with session-pooled clients of the moving tenant (issue 19 section 3): such a
// client keeps its server connection between transactions, so the move used to wait
// placement.move_wait_ms for it and give up (55006). Now, at the pause, a session-pooled session
// between transactions leaves its server connection (DISCARD ALL, back to its pool, a WARNING to
// the client, as a tenant change does); one inside a transaction is waited for and leaves when
// it ends; after the resume each takes a connection at the new placement. Here: five
// session-pooled clients of acme (one of them a user pinned to acme, whose connection is taken at
// login) and one transaction-pooled client pinned to its connection by PREPARE keep writing — autocommit inserts and transactions that stay open across round trips —
// with a client of another tenant, while acme moves from the shared database to its own. The
// move succeeds, no client sees an error, every acknowledged write is on the target (or in the
// copied snapshot), and the sessions' writes after the move land on the target.
import t from 'tap'
import pg from 'pg'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'
import { waitFor } from '../helpers/wait.js'

const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`
const server = await startPostgres()
t.teardown(() => server.stop())

const SCHEMA = `CREATE TABLE orders (id bigserial PRIMARY KEY, tenant_id text NOT NULL, note text, amount int);`
server.script('CREATE DATABASE saas; CREATE DATABASE tenant_acme;')
server.script(SCHEMA, 'saas')
server.script(SCHEMA, 'tenant_acme')
server.script(
  `INSERT INTO orders (tenant_id, note, amount) SELECT 'acme', 'seed ' || i, i FROM generate_series(1, 5000) i;
   INSERT INTO orders (tenant_id, note, amount) SELECT 'beta', 'seed ' || i, i FROM generate_series(1, 500) i;`,
  'saas',
)
const q = (sql: string, db: string): string => server.sql(sql, db).trim()

const dir = mkdtempSync(join(tmpdir(), 'pgtenant-move-session-'))
const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
  tx: { password: tx_pw, pool_mode: transaction }
  svc: { password: svc_pw, tenant: acme }
  admin: { password: admin_pw, admin: true }
tenant: { column: tenant_id }
backends:
  shared: { url: "postgres://${auth}@127.0.0.1:${server.port}/saas", pool: 10 }
  dedicated: { url: "postgres://${auth}@127.0.0.1:${server.port}/tenant_{tenant}", pool: 8 }
placement: { default: shared, state_file: ${JSON.stringify(join(dir, 'placement.json'))}, move_wait_ms: ${Number(process.env.MOVE_WAIT_MS ?? 15000)} }
pool: { mode: session, wait_timeout_ms: 60000 }
`)
t.teardown(() => proxy.stop())

interface Writer {
  name: string
  tenant: string
  acked: string[]
  errors: string[]
  notices: string[]
  done: Promise<void>
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function writer(name: string, tenant: string, stop: { now: boolean }, user = 'app', password = 'app_pw'): Promise<Writer> {
  const c = new pg.Client({ connectionString: proxy.url(user, password) })
  const w: Writer = { name, tenant, acked: [], errors: [], notices: [], done: Promise.resolve() }
  c.on('notice', (n) => w.notices.push(n.message ?? ''))
  c.on('error', (e) => w.errors.push(`client error: ${e.message}`))
  await c.connect()
  if (user !== 'svc') await c.query(`SET app.tenant = '${tenant}'`)
  // Transaction pooling, pinned to its server connection by a SQL-level prepared statement.
  if (user === 'tx') await c.query('PREPARE pin AS SELECT 1')
  w.done = (async () => {
    for (let i = 0; !stop.now; i++) {
      const note = `${name}-${i}`
      try {
        if (i % 2 === 1) {
          // A transaction open across round trips (and a pause inside it): the move waits for it.
          await c.query('BEGIN')
          await c.query('INSERT INTO orders (note, amount) VALUES ($1, 1)', [`${note}a`])
          await sleep(i % 4 === 1 ? 30 : 0)
          await c.query('INSERT INTO orders (note, amount) VALUES ($1, 2)', [`${note}b`])
          await c.query('COMMIT')
          w.acked.push(`${note}a`, `${note}b`)
        } else {
          await c.query(
            i % 4 === 0 ? `INSERT INTO orders (note, amount) VALUES ('${note}', 3)` : 'INSERT INTO orders (note, amount) VALUES ($1, 3)',
            i % 4 === 0 ? [] : [note],
          )
          w.acked.push(note)
        }
      } catch (err) {
        w.errors.push(`${note}: ${(err as pg.DatabaseError).code} ${(err as Error).message}`)
        await c.query('ROLLBACK').catch(() => undefined)
      }
      await sleep(i % 5 === 0 ? 5 : 0)
    }
    await c.end()
  })()
  return w
}

t.test('session-pooled clients of the moving tenant: the move succeeds, nothing lost, nobody sees an error', async (t) => {
  const stop = { now: false }
  const writers: Writer[] = []
  for (let i = 0; i < 4; i++) writers.push(await writer(`s${i}`, 'acme', stop))
  writers.push(await writer('pinned', 'acme', stop, 'svc', 'svc_pw'))
  writers.push(await writer('prepared', 'acme', stop, 'tx', 'tx_pw'))
  writers.push(await writer('beta', 'beta', stop))
  await waitFor('every writer to have written', () => writers.every((w) => w.acked.length >= 5), 60_000)
  const held = Number(q(`SELECT count(*) FROM pg_stat_activity WHERE datname = 'saas' AND backend_type = 'client backend'`, 'postgres'))
  t.ok(held >= 7, `the session-pooled and pinned writers hold server connections (${held})`)

  const a = new pg.Client({ connectionString: proxy.url('admin', 'admin_pw', 'pgtenant') })
  await a.connect()
  const started = Date.now()
  let moveError: Error | null = null
  const res = await a.query("MOVE TENANT 'acme' TO dedicated").catch((err: Error) => {
    moveError = err
    return null
  })
  const tookMs = Date.now() - started
  const row = (await a.query('SHOW MOVES')).rows.at(-1)
  t.equal(moveError, null, `the move succeeded (${tookMs} ms; SHOW MOVES: ${row.state} ${row.error ?? ''})`)
  t.match(res?.command, 'MOVE', 'MOVE answers')
  t.match(row, { tenant: 'acme', from: 'shared', to: 'dedicated', state: 'done', error: null }, 'SHOW MOVES: done')
  t.comment(`pause ${row.pause_ms} ms, ${row.rows_copied} rows`)

  // Every acme session writes again, now on the target.
  const after = writers.map((w) => w.acked.length)
  await waitFor('every writer to write after the move', () => writers.every((w, i) => w.acked.length >= after[i] + 4), 60_000)
  stop.now = true
  await Promise.all(writers.map((w) => w.done))
  await a.end()

  t.same(
    writers.flatMap((w) => w.errors),
    [],
    'no client saw an error',
  )
  for (const w of writers.filter((w) => w.tenant === 'acme'))
    t.match(
      w.notices.join('\n'),
      /is being moved to another server \(MOVE TENANT\): this session left its server connection/,
      `${w.name}: warned that it left its server connection`,
    )
  t.notMatch(writers.find((w) => w.tenant === 'beta')?.notices.join('\n') ?? '', /MOVE TENANT/, 'the other tenant’s client was not touched')

  const onTarget = new Set(q(`SELECT note FROM orders WHERE tenant_id = 'acme'`, 'tenant_acme').split('\n').filter(Boolean))
  const acked = writers.filter((w) => w.tenant === 'acme').flatMap((w) => w.acked)
  t.same(
    acked.filter((n) => !onTarget.has(n)),
    [],
    `every acknowledged acme write (${acked.length}) is on the target`,
  )
  const onSource = new Set(q(`SELECT note FROM orders WHERE tenant_id = 'acme'`, 'saas').split('\n'))
  const afterMove = [...onTarget].filter((n) => !onSource.has(n))
  t.ok(afterMove.length > 0, `writes after the move went to the target (${afterMove.length})`)
  for (const w of writers.filter((w) => w.tenant === 'acme'))
    t.ok(
      afterMove.some((n) => n.startsWith(`${w.name}-`)),
      `${w.name}: its session writes on the target after the move`,
    )
  const betaAcked = writers.find((w) => w.tenant === 'beta')?.acked ?? []
  const betaRows = new Set(q(`SELECT note FROM orders WHERE tenant_id = 'beta'`, 'saas').split('\n'))
  t.same(
    betaAcked.filter((n) => !betaRows.has(n)),
    [],
    `every acknowledged beta write (${betaAcked.length}) is on shared`,
  )
  t.equal(q(`SELECT count(*) FROM orders WHERE tenant_id <> 'acme'`, 'tenant_acme'), '0', 'no other tenant’s row on the target')
})
