// Global cap starvation (issue 15 item 4): with pool.max_server_connections below the sum
// of the pool sizes, idle connections of other pools must give way to a pool with waiters,
// and a connection released in a pool whose own waiters are younger goes to the pool whose
// clients have waited longest. Shape of the issue: one shared pool of 4, three per-tenant
// database pools of 2 (sum 10), cap 8; 60 clients of 6 tenants, 20 short queries each.
// The server's own view (pg_stat_activity, sampled on a direct connection) must never show
// more than 8 proxy connections. GLOBAL_CAP_ROUNDS repeats the workload (default 3).
import t from 'tap'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'

const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`
const ROUNDS = Number(process.env.GLOBAL_CAP_ROUNDS ?? 3)
const CAP = 8

t.test('global cap: 60 clients of 6 tenants, shared pool 4 + three per-tenant pools of 2, cap 8', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  server.sql('CREATE DATABASE saas')
  server.sql('CREATE TABLE items (tenant_id text, n int)', 'saas')
  for (const tenant of ['p1', 'p2', 'p3']) {
    server.sql(`CREATE DATABASE tenant_${tenant}`)
    server.sql('CREATE TABLE items (tenant_id text, n int)', `tenant_${tenant}`)
  }
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw } }
tenant: { column: tenant_id }
backends:
  shared:     { url: "postgres://${auth}@127.0.0.1:${server.port}/saas", pool: 4 }
  per_tenant: { url: "postgres://${auth}@127.0.0.1:${server.port}/tenant_{tenant}", pool: 2 }
placement: { default: shared, tenants: { p1: per_tenant, p2: per_tenant, p3: per_tenant } }
pool: { max_server_connections: ${CAP}, wait_timeout_ms: 30000, idle_timeout_ms: 60000 }
`)
  t.teardown(() => proxy.stop())
  const url = proxy.url('app', 'app_pw')

  // The server's view, on a direct superuser connection (not through the proxy).
  const direct = new pg.Client({ host: '127.0.0.1', port: server.port, user: ROLES.scram.user, password: ROLES.scram.password, database: 'postgres' })
  await direct.connect()
  t.teardown(() => direct.end())
  let peakServer = 0
  let peakProxy = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      const r = await direct.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = $1 AND pid <> pg_backend_pid()",
        [ROLES.scram.user],
      )
      peakServer = Math.max(peakServer, r.rows[0].n)
      await new Promise((r) => setTimeout(r, 2))
    }
  })()
  const proxySampler = setInterval(() => (peakProxy = Math.max(peakProxy, proxy.proxy.pools.totalConnections)), 1)

  const tenants = ['s1', 's2', 's3', 'p1', 'p2', 'p3']
  const failures: string[] = []
  const wrongDb: string[] = []
  const slowest: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const started = Date.now()
    let slow = 0
    let clientMs = 0
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const tenant = tenants[i % 6]
        const c = new pg.Client({ connectionString: url })
        c.on('error', () => undefined)
        const begun = Date.now()
        try {
          await c.connect()
          await c.query(`SET app.tenant = '${tenant}'`)
          for (let q = 0; q < 20; q++) {
            const t0 = Date.now()
            const r = await c.query('SELECT current_database() AS db, count(*)::int AS n FROM items')
            slow = Math.max(slow, Date.now() - t0)
            const want = tenant.startsWith('p') ? `tenant_${tenant}` : 'saas'
            if (r.rows[0].db !== want) wrongDb.push(`${tenant}: ${r.rows[0].db}`)
          }
        } catch (err) {
          failures.push(`round ${round} ${tenant}: ${(err as { code?: string }).code ?? ''} ${(err as Error).message}`)
        } finally {
          clientMs = Math.max(clientMs, Date.now() - begun)
          await c.end().catch(() => undefined)
        }
      }),
    )
    slowest.push(slow)
    t.comment(
      `round ${round + 1}/${ROUNDS}: ${Date.now() - started} ms, slowest query ${slow} ms, slowest client ${clientMs} ms, proxy connections ${proxy.proxy.pools.totalConnections}`,
    )
  }
  sampling = false
  await sampler
  clearInterval(proxySampler)
  t.same(failures.slice(0, 5), [], `every client of every tenant succeeded (${failures.length} failures)`)
  t.same(wrongDb.slice(0, 5), [], 'each tenant ran in its own database')
  t.ok(peakServer <= CAP, `never more than ${CAP} server connections in pg_stat_activity (peak ${peakServer})`)
  t.ok(peakProxy <= CAP, `the proxy never counted more than ${CAP} (peak ${peakProxy})`)
  t.ok(peakServer >= 6, `the cap was used (peak ${peakServer})`)
  // The running counter agrees with the pools once connections closed for other pools are gone.
  const sum = (): number => [...proxy.proxy.pools.pools.values()].reduce((n, p) => n + p.total, 0)
  for (let i = 0; i < 500 && proxy.proxy.pools.totalConnections !== sum(); i++) await new Promise((r) => setTimeout(r, 10))
  t.equal(proxy.proxy.pools.totalConnections, sum(), 'running total equals the sum of the pools')
  const moved = [...proxy.proxy.pools.pools.values()].map((p) => `${p.target.database}:${p.gaveWay}`).join(' ')
  t.comment(`connections given up to other pools: ${moved}`)
  t.ok(Math.max(...slowest) < 10_000, `no query waited anywhere near the wait timeout (slowest ${Math.max(...slowest)} ms)`)
})
