// Metrics after a known workload (exact counts, per tenant and backend, `_other` folding),
// health endpoints, and the admin console through psql and node-postgres.
import t from 'tap'
import pg from 'pg'
import { startPostgres, freePort } from '../helpers/pg-server.js'
import { startProxy, basicYaml, run } from '../helpers/proxy.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`CREATE TABLE items (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
  INSERT INTO items SELECT 't' || k, g FROM generate_series(1, 5) k, generate_series(1, 3) g;`)

async function scrape(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^(pgtenant_[a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (m) out.set(m[1], Number(m[2]))
  }
  return out
}

function sum(metrics: Map<string, number>, prefix: string): number {
  let n = 0
  for (const [k, v] of metrics) if (k === prefix || k.startsWith(prefix + '{')) n += v
  return n
}

async function workload(url: string): Promise<void> {
  for (let k = 1; k <= 5; k++) {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    await c.query(`SET app.tenant = 't${k}'`)
    for (let i = 0; i < k; i++) await c.query('SELECT count(*) FROM items')
    await c.end()
  }
  const none = new pg.Client({ connectionString: url })
  await none.connect()
  for (let i = 0; i < 2; i++) await none.query('SELECT * FROM items').catch(() => undefined)
  await none.end()
}

t.test('counters match a known workload; tenants beyond tenant.metrics_top are summed as _other', async (t) => {
  const mport = await freePort()
  const proxy = await startProxy(basicYaml(server, { extra: `metrics: 127.0.0.1:${mport}\ntenant: { column: tenant_id, metrics_top: 2 }` }))
  t.teardown(() => proxy.stop())
  await workload(proxy.url('app', 'app_pw'))
  await new Promise((r) => setTimeout(r, 100))
  const m = await scrape(mport)
  t.equal(m.get('pgtenant_transactions_total{tenant="t1",backend="main"}'), 1)
  t.equal(m.get('pgtenant_transactions_total{tenant="t2",backend="main"}'), 2)
  t.equal(m.get('pgtenant_transactions_total{tenant="_other",backend="main"}'), 3 + 4 + 5, 'tenants t3..t5 folded into _other')
  t.equal(m.get('pgtenant_statements_total{tenant="_other",backend="main"}'), 12)
  t.equal(m.get('pgtenant_refused_statements_total{tenant="_none",sqlstate="42501"}'), 2, 'two refusals without a tenant')
  t.equal(sum(m, 'pgtenant_query_duration_seconds_count'), 15, 'one latency observation per query sent')
  t.equal(sum(m, 'pgtenant_rows_sent_total'), 15, 'one row per count(*)')
  t.equal(sum(m, 'pgtenant_rewrite_cache_total'), 15 + 2 + 5, 'every planned statement (15 queries, 2 refused, 5 SETs) counted once')
  t.ok((m.get('pgtenant_rewrite_cache_total{kind="exact"}') ?? 0) >= 10, 'repeated statements hit the exact cache')
  t.equal(m.get('pgtenant_client_connections_accepted_total'), 6)
  t.equal(m.get('pgtenant_routing_decisions_total{kind="shared",backend="main"}'), 15)
  t.ok(m.has('pgtenant_server_connections{backend="main",state="idle"}'))
  t.equal(m.get('pgtenant_pool_size{backend="main"}'), 5)
  const labels = [...m.keys()].filter((k) => k.startsWith('pgtenant_transactions_total')).length
  t.equal(labels, 3, 'only t1, t2 and _other have series')
  const bad = new pg.Client({ connectionString: proxy.url('app', 'wrong') })
  await bad.connect().catch(() => undefined)
  t.equal((await scrape(mport)).get('pgtenant_auth_failures_total{reason="wrong_password"}'), 1)
  t.equal((await fetch(`http://127.0.0.1:${mport}/healthz`)).status, 200)
  t.equal((await fetch(`http://127.0.0.1:${mport}/readyz`)).status, 200)
})

t.test('metrics_top: 0 keeps no per-tenant labels; /readyz stays 200 when the default backend is down (clients get a PostgreSQL error)', async (t) => {
  const mport = await freePort()
  const proxy = await startProxy(basicYaml(server, { extra: `metrics: 127.0.0.1:${mport}\ntenant: { column: tenant_id, metrics_top: 0 }` }))
  t.teardown(() => proxy.stop())
  await workload(proxy.url('app', 'app_pw'))
  const m = await scrape(mport)
  t.equal(m.get('pgtenant_transactions_total{tenant="_other",backend="main"}'), 15)
  t.equal([...m.keys()].filter((k) => k.startsWith('pgtenant_transactions_total')).length, 1)
  const closed = await freePort()
  const mport2 = await freePort()
  const down = await startProxy(
    `listen: 127.0.0.1:$PROXY_PORT\nmetrics: 127.0.0.1:${mport2}\nusers: { a: { password: x } }\nbackends: { main: { url: "postgres://u:p@127.0.0.1:${closed}/db" } }\npool: { connect_timeout_ms: 500 }\n`,
  )
  t.teardown(() => down.stop())
  t.equal((await fetch(`http://127.0.0.1:${mport2}/readyz`)).status, 200, 'ready: accepting clients, as PgBouncer stays up')
  t.equal((await scrape(mport2)).get('pgtenant_ready'), 1)
  t.equal((await fetch(`http://127.0.0.1:${mport2}/healthz`)).status, 200)
})

t.test('admin console: every command, through psql and node-postgres', async (t) => {
  const proxy = await startProxy(
    basicYaml(server, { users: '  app: { password: app_pw }\n  boss: { password: boss_pw, admin: true }', extra: 'tenant: { column: tenant_id }' }),
  )
  t.teardown(() => proxy.stop())
  const admin = proxy.url('boss', 'boss_pw', 'pgtenant')
  const psql = (cmd: string) => run('psql', ['-X', '-A', '-F', '|', '-c', cmd, admin])
  const worker = new pg.Client({ connectionString: proxy.url('app', 'app_pw'), options: '-c app.tenant=t2' })
  await worker.connect()
  await worker.query('SELECT count(*) FROM items')
  t.match((await psql('SHOW VERSION')).stdout, /pgtenant \d+\.\d+\.\d+/)
  t.match(
    (await psql('SHOW POOLS;')).stdout,
    /backend\|host\|port\|database\|user\|active\|idle\|connecting\|waiting\|size\nmain\|127\.0\.0\.1\|\d+\|postgres\|scram_user\|0\|1\|0\|0\|5/,
  )
  t.match((await psql('show clients')).stdout, /\|app\|postgres\|t2\|idle\|/)
  t.match((await psql('SHOW SERVERS')).stdout, /\|main\|127\.0\.0\.1:\d+\|postgres\|idle\|\d+\|/)
  t.match((await psql('SHOW TENANTS')).stdout, /t2\|main\|1\|1\|1\|0\|0\|1\|/)
  t.match((await psql('SHOW STATS')).stdout, /clients\|tenants_tracked\|statements/)
  const config = (await psql('SHOW CONFIG')).stdout
  t.match(config, /users\.app\|password=\*\*\*/)
  t.notMatch(config, /app_pw|scram%20pw|scram pw/, 'no password in SHOW CONFIG')
  const explain = (await psql("EXPLAIN REWRITE FOR TENANT 'o''hare' SELECT * FROM items WHERE id = 1")).stdout
  t.match(explain, /rewritten\|SELECT \* FROM items WHERE \(id = 1\) AND items\.tenant_id = 'o''hare'/)
  t.match(explain, /route\|shared/)
  t.match((await psql("EXPLAIN REWRITE FOR TENANT 't1' DROP TABLE items")).stdout, /outcome\|refused 42501/)
  const unknown = await psql('SHOW NONSENSE')
  t.match(unknown.stderr, /unknown SHOW item "nonsense"/)
  t.match((await psql('FROBNICATE')).stderr, /unknown admin command: FROBNICATE.*commands: SHOW POOLS/)
  const nodeAdmin = new pg.Client({ connectionString: admin })
  await nodeAdmin.connect()
  t.same((await nodeAdmin.query('SHOW VERSION')).rows.length, 1, 'node-postgres gets a result set')
  // PAUSE TENANT holds that tenant's new transactions, not others'; RESUME releases them.
  await nodeAdmin.query("PAUSE TENANT 't2'")
  let done = false
  const held = worker.query('SELECT count(*)::int AS n FROM items').then((r) => ((done = true), r.rows[0].n))
  const other = new pg.Client({ connectionString: proxy.url('app', 'app_pw'), options: '-c app.tenant=t3' })
  await other.connect()
  t.equal((await other.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 3, 'another tenant runs while t2 is paused')
  await new Promise((r) => setTimeout(r, 300))
  t.equal(done, false, 't2 waits while paused')
  await nodeAdmin.query("RESUME TENANT 't2'")
  t.equal(await held, 3, 't2 runs after RESUME')
  // KILL CLIENT ends that client only.
  const victimId = [...proxy.proxy.sessions.values()].find((s) => s.effectiveTenant === 't3')!.id
  const killed = new Promise<Error>((resolve) => other.on('error', resolve))
  await nodeAdmin.query(`KILL CLIENT ${victimId}`)
  t.match((await killed).message, /KILL CLIENT/)
  t.equal((await worker.query('SELECT 1 AS v')).rows[0].v, 1, 'other clients unaffected')
  await t.rejects(nodeAdmin.query('KILL CLIENT 99999'), /no client with id 99999/)
  await t.rejects(nodeAdmin.query('RELOAD'), /needs a configuration file/, 'RELOAD without --config says why')
  await nodeAdmin.end()
  await worker.end()
  const refused = await run('psql', ['-X', '-c', 'SHOW POOLS', proxy.url('app', 'app_pw', 'pgtenant')])
  t.match(refused.stderr, /not allowed to use the admin console/, 'non-admin users are refused (28000)')
})
