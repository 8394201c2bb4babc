// The proxy's own catalog reads (schema discovery, Citus metadata; application_name
// "pgtenant catalog") count under pool.max_server_connections (issue 15): the pool size is a
// promise to the database. With the cap equal to the pool and the pool full of clients in
// transactions, a statement naming a table newer than the schema facts makes the proxy read the
// catalogs again: that read waits for room (ahead of waiting clients) instead of opening a
// connection beside the full pool, and gets the first connection released. With the pool full of
// idle connections it closes one of them to make room. The server's own view
// (pg_stat_activity, sampled on a direct connection) never shows more than the cap; with a cap
// above the pool size, a catalog read is the one connection beyond the pool (the documented
// reserve).
import t, { type Test } from 'tap'
import pg from 'pg'
import { startPostgres, ROLES, type PgServer } from '../helpers/pg-server.js'
import { startProxy, type RunningProxy } from '../helpers/proxy.js'
import { waitFor } from '../helpers/wait.js'

const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`
const POOL = 3

async function setup(t: Test, cap: number): Promise<{ server: PgServer; proxy: RunningProxy; sampler: Sampler }> {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  server.sql(`CREATE TABLE notes (tenant_id text NOT NULL, n int);
    INSERT INTO notes VALUES ('a', 1), ('b', 2);
    GRANT ALL ON notes TO ${ROLES.scram.user};`)
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw } }
tenant: { column: tenant_id }
backends:
  main: { url: "postgres://${auth}@127.0.0.1:${server.port}/postgres", pool: ${POOL} }
pool: { max_server_connections: ${cap}, wait_timeout_ms: 20000, idle_timeout_ms: 60000 }
`)
  t.teardown(() => proxy.stop())
  const sampler = await startSampler(server)
  t.teardown(() => sampler.stop())
  return { server, proxy, sampler }
}

interface Sampler {
  /** Most proxy connections the server had at once, and whether a catalog connection was among them. */
  peak: number
  catalogSeen: boolean
  stop(): Promise<void>
}

/** The server's view, on a direct superuser connection over the Unix socket (not counted itself). */
async function startSampler(server: PgServer): Promise<Sampler> {
  const direct = new pg.Client({ host: server.socketDir, port: server.port, user: 'postgres', database: 'postgres' })
  await direct.connect()
  let running = true
  const s: Sampler = {
    peak: 0,
    catalogSeen: false,
    stop: async () => {
      running = false
      await loop
      await direct.end()
    },
  }
  const loop = (async () => {
    while (running) {
      const r = await direct.query(
        "SELECT count(*)::int AS n, count(*) FILTER (WHERE application_name = 'pgtenant catalog')::int AS catalog FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = $1",
        [ROLES.scram.user],
      )
      s.peak = Math.max(s.peak, r.rows[0].n)
      if (r.rows[0].catalog > 0) s.catalogSeen = true
    }
  })()
  return s
}

async function tenantClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  await c.query("SET app.tenant = 'a'")
  return c
}

const catalogWaiting = (proxy: RunningProxy): boolean => [...proxy.proxy.pools.waitingPools].some((p) => p.urgent)

t.test(`cap = pool = ${POOL}, every connection in a transaction: the catalog read waits for the first one released`, async (t) => {
  const { server, proxy, sampler } = await setup(t, POOL)
  const url = proxy.url('app', 'app_pw')
  const holders = await Promise.all(Array.from({ length: POOL }, () => tenantClient(url)))
  t.teardown(() => Promise.all(holders.map((c) => c.end())))
  for (const c of holders) {
    await c.query('BEGIN')
    await c.query('SELECT count(*) FROM notes')
  }
  server.sql(`CREATE TABLE fresh (tenant_id text NOT NULL, x int); INSERT INTO fresh VALUES ('a', 1), ('b', 2); GRANT ALL ON fresh TO ${ROLES.scram.user};`)
  const late = await tenantClient(url)
  t.teardown(() => late.end())
  // Unknown to the schema facts: the proxy reads the catalogs again before it answers.
  const answer = late.query('SELECT count(*)::int AS n FROM fresh')
  const first = await Promise.race([
    answer.then(() => 'answered'),
    waitFor('the catalog read to wait for room', () => catalogWaiting(proxy)).then(() => 'catalog read waiting'),
  ])
  t.equal(first, 'catalog read waiting', 'with the cap reached by busy connections, the catalog read waits for room')
  t.ok(sampler.peak <= POOL, `the server sees at most ${POOL} proxy connections meanwhile (${sampler.peak})`)
  await holders[0].query('COMMIT') // the released connection makes room for the catalog read
  t.same((await answer).rows, [{ n: 1 }], 'the new table is known now and the statement runs for the tenant only')
  t.ok(proxy.proxy.catalogs.facts.get('main')?.tenantTables.has('public.fresh'), 'the schema facts were read again')
  for (const c of holders.slice(1)) await c.query('COMMIT')
  t.same((await holders[1].query('SELECT count(*)::int AS n FROM notes')).rows, [{ n: 1 }], 'the pool serves clients again')
  t.ok(sampler.peak <= POOL, `the server never saw more than ${POOL} proxy connections (${sampler.peak}; catalog connection seen: ${sampler.catalogSeen})`)
  t.ok(proxy.proxy.pools.totalConnections <= POOL, `the proxy counts at most ${POOL} (${proxy.proxy.pools.totalConnections})`)
})

t.test(`cap = pool = ${POOL}, every connection idle: the catalog read closes an idle one to make room`, async (t) => {
  const { server, proxy, sampler } = await setup(t, POOL)
  const url = proxy.url('app', 'app_pw')
  const clients = await Promise.all(Array.from({ length: POOL }, () => tenantClient(url)))
  t.teardown(() => Promise.all(clients.map((c) => c.end())))
  // Three transactions at once: the pool opens all three connections, then they sit idle.
  await Promise.all(clients.map((c) => c.query('SELECT count(*), pg_sleep(0.2) FROM notes')))
  await waitFor(
    `${POOL} idle pool connections`,
    () => proxy.proxy.pools.totalConnections === POOL && [...proxy.proxy.pools.pools.values()].every((p) => p.active === 0),
  )
  server.sql(`CREATE TABLE fresh2 (tenant_id text NOT NULL, x int); INSERT INTO fresh2 VALUES ('a', 1); GRANT ALL ON fresh2 TO ${ROLES.scram.user};`)
  t.same((await clients[0].query('SELECT count(*)::int AS n FROM fresh2')).rows, [{ n: 1 }], 'the statement on the new table runs')
  t.ok(sampler.peak <= POOL, `the server never saw more than ${POOL} proxy connections (${sampler.peak})`)
})

t.test(`cap above the pool: the catalog read is the one connection beyond a full pool (pool ${POOL} + 1)`, async (t) => {
  const { server, proxy, sampler } = await setup(t, 10)
  const url = proxy.url('app', 'app_pw')
  const holders = await Promise.all(Array.from({ length: POOL }, () => tenantClient(url)))
  t.teardown(() => Promise.all(holders.map((c) => c.end())))
  for (const c of holders) {
    await c.query('BEGIN')
    await c.query('SELECT count(*) FROM notes')
  }
  server.sql(`CREATE TABLE fresh3 (tenant_id text NOT NULL, x int); INSERT INTO fresh3 VALUES ('a', 1); GRANT ALL ON fresh3 TO ${ROLES.scram.user};`)
  // Two statements on the new table at once, in the open transactions: one catalog read, both answered.
  const answers = await Promise.all([holders[0].query('SELECT count(*)::int AS n FROM fresh3'), holders[1].query('SELECT count(*)::int AS n FROM fresh3')])
  t.same(
    answers.map((r) => r.rows[0].n),
    [1, 1],
    'answered while the pool is full',
  )
  t.ok(sampler.peak <= POOL + 1, `the server saw at most ${POOL + 1} proxy connections (${sampler.peak})`)
  for (const c of holders) await c.query('COMMIT')
})
