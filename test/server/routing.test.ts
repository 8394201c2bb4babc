// Routing through the proxy: a database per tenant under a global connection cap, and
// Citus-aware routing to the worker that holds the tenant's shard (a Citus-shaped catalog
// on plain PostgreSQL, plain servers standing in for the workers).
import t from 'tap'
import pg from 'pg'
import { startPostgres, ROLES, type PgServer } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'
import { loadCitusCatalog } from '../routing/citus-catalog.js'
import { parseConfig } from '../../server/config.js'
import { waitFor } from '../helpers/wait.js'

const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`

async function client(url: string, options?: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, options })
  await c.connect()
  return c
}

t.test('a database per tenant: 200 tenants under a global cap of 20 server connections', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  server.sql('CREATE DATABASE tenant_template')
  server.sql('CREATE TABLE items (id int PRIMARY KEY, label text); CREATE TABLE docs (tenant_id text, body text)', 'tenant_template')
  const tenants = Array.from({ length: 200 }, (_, i) => `t${i}`)
  // one psql for all 200 (a psql per database took most of this test's time on a loaded machine)
  server.script(tenants.map((tenant) => `CREATE DATABASE tenant_${tenant} TEMPLATE tenant_template STRATEGY FILE_COPY;`).join('\n'))
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw } }
tenant: { column: tenant_id }
backends:
  per_tenant: { url: "postgres://${auth}@127.0.0.1:${server.port}/tenant_{tenant}", pool: 2 }
pool: { max_server_connections: 20, idle_timeout_ms: 1500, wait_timeout_ms: 60000 }
`)
  t.teardown(() => proxy.stop())
  const url = proxy.url('app', 'app_pw')
  let peak = 0
  const sampler = setInterval(() => (peak = Math.max(peak, proxy.proxy.pools.totalConnections)), 5)
  const wrong: string[] = []
  // 40 clients at once, each working through five tenants' databases.
  await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const c = await client(url)
      for (let k = 0; k < 5; k++) {
        const tenant = tenants[i * 5 + k]
        await c.query(`SET app.tenant = '${tenant}'`)
        await c.query(`INSERT INTO items VALUES (1, '${tenant}')`)
        const r = await c.query('SELECT current_database() AS db, label FROM items')
        if (r.rows.length !== 1 || r.rows[0].db !== `tenant_${tenant}` || r.rows[0].label !== tenant) wrong.push(`${tenant}: ${JSON.stringify(r.rows)}`)
        await c.query("INSERT INTO docs (body) VALUES ('x')")
        const d = await c.query('SELECT tenant_id FROM docs')
        if (d.rows.length !== 1 || d.rows[0].tenant_id !== tenant) wrong.push(`${tenant} docs: ${JSON.stringify(d.rows)}`)
      }
      await c.end()
    }),
  )
  clearInterval(sampler)
  t.same(wrong, [], 'every tenant read and wrote only its own database')
  t.ok(peak <= 20, `at most 20 server connections at once (peak ${peak})`)
  t.ok(peak >= 10, `the cap was actually used (peak ${peak})`)
  t.equal(server.sql("SELECT count(*) FROM pg_database WHERE datname ~ '^tenant_t[0-9]+$'"), '200')
  const c = await client(url)
  await c.query("SET app.tenant = 'nope'")
  await t.rejects(c.query('SELECT 1'), { code: '3D000', message: /tenant "nope"/ })
  await c.query("SET app.tenant = 't7'")
  t.equal((await c.query('SELECT label FROM items')).rows[0].label, 't7', 'session usable after a missing tenant database')
  await c.query("SET app.tenant = 'bad/name'")
  await t.rejects(c.query('SELECT 1'), { code: '42501' }, 'a tenant value that is not a valid database name is refused')
  await c.query("SET app.tenant = 't9'")
  t.equal((await c.query('SELECT label FROM items')).rows[0].label, 't9')
  const t9Pool = [...proxy.proxy.pools.pools.values()].find((p) => p.target.database === 'tenant_t9')
  await waitFor(
    'idle per-tenant pools to close and be forgotten',
    () => proxy.proxy.pools.totalConnections === 0 && ![...proxy.proxy.pools.pools.values()].includes(t9Pool!),
  )
  t.equal(proxy.proxy.pools.totalConnections, 0, 'idle per-tenant pools closed after pool.idle_timeout_ms')
  t.notOk([...proxy.proxy.pools.pools.values()].includes(t9Pool!), "the tenant's pool is forgotten")
  // The session's remembered route must not hand it the forgotten pool.
  t.equal((await c.query('SELECT label FROM items')).rows[0].label, 't9', 'the same session works again after its pool was closed')
  t.ok(
    [...proxy.proxy.pools.pools.values()].some((p) => p.target.database === 'tenant_t9' && p !== t9Pool),
    'through a new pool the proxy tracks',
  )
  await c.end()
})

t.test('a placement change on reload moves the tenant at its next transaction; the open one finishes where it began', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  for (const db of ['place_a', 'place_b']) {
    server.sql(`CREATE DATABASE ${db}`)
    server.sql(`CREATE TABLE notes (tenant_id text, body text); GRANT ALL ON notes TO ${ROLES.scram.user}`, db)
  }
  const yaml = (acmeOn: string): string => `
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw } }
tenant: { column: tenant_id }
backends:
  a: { url: "postgres://${auth}@127.0.0.1:${server.port}/place_a", pool: 2 }
  b: { url: "postgres://${auth}@127.0.0.1:${server.port}/place_b", pool: 2 }
placement: { default: a, tenants: { acme: ${acmeOn}, globex: a } }
`
  const proxy = await startProxy(yaml('a'))
  t.teardown(() => proxy.stop())
  const c = await client(proxy.url('app', 'app_pw'), '-c app.tenant=acme')
  const other = await client(proxy.url('app', 'app_pw'), '-c app.tenant=globex')
  const db = async (cl: pg.Client): Promise<string> => (await cl.query('SELECT current_database() AS db')).rows[0].db
  t.equal(await db(c), 'place_a', 'acme starts on backend a')

  await c.query('BEGIN')
  await c.query("INSERT INTO notes (body) VALUES ('before reload')")
  proxy.proxy.reload(parseConfig(yaml('b').replace(/\$PROXY_PORT/g, String(proxy.port)), process.env, process.cwd()))
  t.equal(await db(c), 'place_a', 'the transaction open during the reload stays on a')
  await c.query("INSERT INTO notes (body) VALUES ('same transaction')")
  await c.query('COMMIT')
  t.equal(
    server.sql("SELECT string_agg(tenant_id || ':' || body, ',' ORDER BY body) FROM notes", 'place_a'),
    'acme:before reload,acme:same transaction',
    'both rows of that transaction are on a, committed together',
  )

  t.equal(await db(c), 'place_b', 'the next transaction of acme runs on b')
  await c.query("INSERT INTO notes (body) VALUES ('after reload')")
  t.equal(server.sql("SELECT string_agg(tenant_id || ':' || body, ',') FROM notes", 'place_b'), 'acme:after reload', 'new writes land on b')
  t.same((await c.query('SELECT body FROM notes')).rows, [{ body: 'after reload' }], 'acme now reads b')
  t.equal(await db(other), 'place_a', 'a tenant whose placement did not change stays on a')
  await Promise.all([c.end(), other.end()])
})

t.test('Citus: each tenant goes to the worker holding its shard', async (t) => {
  const servers: PgServer[] = await Promise.all([startPostgres(), startPostgres(), startPostgres()])
  const [coordinator, w1, w2] = servers
  t.teardown(() => servers.forEach((s) => s.stop()))
  loadCitusCatalog(coordinator, 'saas')
  coordinator.sql(`UPDATE pg_dist_node SET nodeport = CASE groupid WHEN 0 THEN ${coordinator.port} WHEN 1 THEN ${w1.port} ELSE ${w2.port} END`, 'saas')
  for (const w of [w1, w2]) {
    w.sql('CREATE DATABASE saas')
    w.sql(
      `CREATE TABLE companies (id bigint PRIMARY KEY, name text);
      CREATE TABLE campaigns (id bigint, company_id bigint, name text, PRIMARY KEY (company_id, id));
      CREATE TABLE ads (id bigint, company_id bigint, campaign_id bigint, PRIMARY KEY (company_id, id));
      CREATE TABLE countries (code text PRIMARY KEY, name text);
      INSERT INTO companies VALUES (1, 'one'), (5, 'five'); INSERT INTO campaigns VALUES (10, 1, 'c1'), (50, 5, 'c5');
      INSERT INTO countries VALUES ('DE', 'Germany')`,
      'saas',
    )
  }
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
  ops: { password: ops_pw, bypass: true }
tenant: { column: company_id, tables: { companies: id } }
backends:
  citus: { url: "postgres://${auth}@127.0.0.1:${coordinator.port}/saas", citus: true, pool: 4 }
`)
  t.teardown(() => proxy.stop())
  const portOf = async (c: pg.Client, sql: string): Promise<number> => Number((await c.query(sql)).rows[0].port)
  const c = await client(proxy.url('app', 'app_pw'))
  // citus-catalog.md: hashint8(5) → shard 102046 on group 1; hashint8(1) → shard 102041 on group 2.
  await c.query("SET app.tenant = '5'")
  t.equal(await portOf(c, 'SELECT inet_server_port() AS port, count(*) FROM campaigns'), w1.port, 'tenant 5 → worker of group 1')
  t.same(
    (await c.query('SELECT c.name FROM campaigns c JOIN companies co ON co.id = c.company_id')).rows,
    [{ name: 'c5' }],
    'only tenant 5 rows, joined on the worker',
  )
  await c.query("SET app.tenant = '1'")
  t.equal(await portOf(c, 'SELECT inet_server_port() AS port, count(*) FROM ads'), w2.port, 'tenant 1 → worker of group 2')
  t.equal(await portOf(c, 'SELECT inet_server_port() AS port'), coordinator.port, 'a statement touching no tenant table → coordinator')
  await c.query('BEGIN')
  t.equal(await portOf(c, 'SELECT inet_server_port() AS port, count(*) FROM campaigns'), w2.port, 'a transaction is routed at its first statement')
  t.equal(await portOf(c, 'SELECT inet_server_port() AS port'), w2.port, 'and stays there')
  await c.query('COMMIT')
  t.equal(await portOf(c, 'SELECT inet_server_port() AS port, count(*) FROM countries'), coordinator.port, 'reference tables alone → coordinator')
  await c.end()
  const ops = await client(proxy.url('ops', 'ops_pw'))
  t.equal(await portOf(ops, 'SELECT inet_server_port() AS port, count(*) FROM campaigns'), coordinator.port, 'bypass users → coordinator')
  await ops.end()
  // A worker that cannot be reached: the transaction runs on the coordinator, and the metadata is reloaded.
  w2.stop()
  const c2 = await client(proxy.url('app', 'app_pw'))
  await c2.query("SET app.tenant = '1'")
  t.equal(await portOf(c2, 'SELECT inet_server_port() AS port, count(*) FROM campaigns'), coordinator.port, 'worker down → coordinator')
  await c2.query("SET app.tenant = '5'")
  t.equal(await portOf(c2, 'SELECT inet_server_port() AS port, count(*) FROM campaigns'), w1.port, 'other tenants still go straight to their worker')
  await c2.end()
})
