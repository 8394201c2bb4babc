// MOVE TENANT's own server connections (the source snapshot and the target transaction) count
// under pool.max_server_connections (issue 19 section 3): they come from one-connection pools of
// their own under the global cap, as the catalog reads do (commit 5e290a4), instead of beside
// the pools. Here the cap is 4 and clients of other tenants keep every pooled connection busy
// while acme moves from the shared database to its own: the server, sampled every few ms
// through the whole move, never has more than 4 connections of the proxy, and the move succeeds.
// (Before: the move's two connections came on top of the cap, 6.)
import t from 'tap'
import pg from 'pg'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'
import { waitFor } from '../helpers/wait.js'

const CAP = 4
const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`
const server = await startPostgres()
t.teardown(() => server.stop())

const SCHEMA = `CREATE TABLE orders (id bigserial PRIMARY KEY, tenant_id text NOT NULL, note text);`
server.script('CREATE DATABASE saas; CREATE DATABASE tenant_acme;')
server.script(SCHEMA, 'saas')
server.script(SCHEMA, 'tenant_acme')
server.script(
  `INSERT INTO orders (tenant_id, note) SELECT CASE WHEN i % 2 = 0 THEN 'acme' ELSE 't' || (i % 7) END, 'seed ' || i FROM generate_series(1, 20000) i;`,
  'saas',
)

const dir = mkdtempSync(join(tmpdir(), 'pgtenant-move-cap-'))
const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw }, admin: { password: admin_pw, admin: true } }
tenant: { column: tenant_id }
backends:
  shared: { url: "postgres://${auth}@127.0.0.1:${server.port}/saas", pool: ${CAP} }
  dedicated: { url: "postgres://${auth}@127.0.0.1:${server.port}/tenant_{tenant}", pool: ${CAP} }
placement: { default: shared, state_file: ${JSON.stringify(join(dir, 'placement.json'))}, move_wait_ms: 60000 }
pool: { mode: transaction, wait_timeout_ms: 120000, max_server_connections: ${CAP} }
`)
t.teardown(() => proxy.stop())

t.test(`the server never sees more than max_server_connections (${CAP}) during a move`, async (t) => {
  // The sampler connects to the server directly (not through the proxy) and leaves itself out.
  const sampler = new pg.Client({ host: '127.0.0.1', port: server.port, user: ROLES.scram.user, password: ROLES.scram.password, database: 'postgres' })
  await sampler.connect()
  let peak = 0
  let moveSeen = 0
  let sampling = true
  const samples = (async () => {
    while (sampling) {
      const r = await sampler.query(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE application_name = 'pgtenant move')::int AS m FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname IN ('saas', 'tenant_acme')`,
      )
      peak = Math.max(peak, r.rows[0].n)
      moveSeen = Math.max(moveSeen, r.rows[0].m)
      await new Promise((res) => setTimeout(res, 2))
    }
  })()

  const stop = { now: false }
  const errors: string[] = []
  const acked: string[] = []
  const loops: Promise<void>[] = []
  for (let i = 0; i < 8; i++) {
    const tenant = i < 2 ? 'acme' : `t${i}`
    const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
    await c.connect()
    await c.query(`SET app.tenant = '${tenant}'`)
    loops.push(
      (async () => {
        for (let j = 0; !stop.now; j++) {
          try {
            if (tenant === 'acme') {
              await c.query('INSERT INTO orders (note) VALUES ($1)', [`c${i}-${j}`])
              acked.push(`c${i}-${j}`)
            } else await c.query('SELECT pg_sleep(0.02), count(*) FROM orders')
          } catch (err) {
            errors.push(`${tenant}: ${(err as Error).message}`)
          }
        }
        await c.end()
      })(),
    )
  }
  await waitFor('the pool to be busy', () => peak >= CAP, 30_000)
  const a = new pg.Client({ connectionString: proxy.url('admin', 'admin_pw', 'pgtenant') })
  await a.connect()
  const res = await a.query("MOVE TENANT 'acme' TO dedicated").catch((err: Error) => err)
  const after = acked.length
  await waitFor('acme to write after the move', () => acked.length >= after + 3, 60_000)
  stop.now = true
  await Promise.all(loops)
  sampling = false
  await samples
  await sampler.end()
  const row = (await a.query('SHOW MOVES')).rows.at(-1)
  await a.end()

  t.notOk(
    res instanceof Error,
    `the move succeeded (${res instanceof Error ? res.message : res.command} ${res instanceof Error ? '' : res.rowCount}; pause ${row.pause_ms} ms)`,
  )
  t.ok(moveSeen >= 1, `the move's connections were seen on the server (up to ${moveSeen} at once)`)
  t.ok(peak <= CAP, `at most ${CAP} server connections of the proxy at any sample (peak ${peak})`)
  t.same(errors, [], 'no client error')
  const onTarget = new Set(server.sql(`SELECT note FROM orders`, 'tenant_acme').trim().split('\n'))
  t.same(
    acked.filter((n) => !onTarget.has(n)),
    [],
    `every acknowledged acme write (${acked.length}) is on the target`,
  )
})
