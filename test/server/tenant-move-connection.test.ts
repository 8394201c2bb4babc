// A tenant change must move the session to the server that holds the new tenant. Found in this
// session: under session pooling the server connection attached for the first tenant served
// every later tenant (with a database per tenant, tenant b read tenant a's database), and under
// transaction pooling a tenant changed inside a transaction whose statements had not touched a
// tenant column (SET LOCAL after a statement on a table without one) ran on the old tenant's
// database. Now: between transactions the session leaves the connection (made clean with
// DISCARD ALL, back to its pool) and takes one for the new tenant; inside a transaction the
// statement is refused with 0A000 (one transaction cannot span two servers).
import t from 'tap'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, type RunningProxy } from '../helpers/proxy.js'
import { waitFor } from '../helpers/wait.js'

const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`
const server = await startPostgres()
t.teardown(() => server.stop())
server.script('CREATE DATABASE tenant_a; CREATE DATABASE tenant_b;')
for (const tenant of ['a', 'b']) server.sql(`CREATE TABLE items (label text); INSERT INTO items VALUES ('secret of ${tenant}')`, `tenant_${tenant}`)

async function proxyFor(mode: string): Promise<RunningProxy> {
  return startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw } }
tenant: { column: tenant_id }
backends:
  per_tenant: { url: "postgres://${auth}@127.0.0.1:${server.port}/tenant_{tenant}", pool: 2 }
pool: { mode: ${mode}, wait_timeout_ms: 20000 }
`)
}

async function connect(proxy: RunningProxy): Promise<{ c: pg.Client; notices: string[] }> {
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
  const notices: string[] = []
  c.on('notice', (n) => notices.push(n.message ?? ''))
  await c.connect()
  return { c, notices }
}

const labels = async (c: pg.Client, extended = false): Promise<string[]> =>
  (await (extended ? c.query('SELECT label FROM items WHERE $1::int = 1', [1]) : c.query('SELECT label FROM items'))).rows.map((r) => r.label as string)

const failure = (p: Promise<unknown>): Promise<pg.DatabaseError | null> =>
  p.then(
    () => null,
    (e: pg.DatabaseError) => e,
  )

t.test('session pooling: each tenant reads its own database', async (t) => {
  const proxy = await proxyFor('session')
  t.teardown(() => proxy.stop())
  const { c, notices } = await connect(proxy)
  await c.query("SET app.tenant = 'a'")
  t.same(await labels(c), ['secret of a'], 'tenant a reads its database')
  const aPid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number
  await c.query("SET app.tenant = 'b'")
  t.same(await labels(c), ['secret of b'], 'after SET app.tenant = b: tenant b reads its own database, not a’s')
  t.match(notices.join('\n'), /moved to a new server connection/, 'the client is warned that session state stayed behind')
  // The connection it left was made clean (DISCARD ALL) before going back to the pool.
  await waitFor('the left connection is idle', () => server.sql(`SELECT state FROM pg_stat_activity WHERE pid = ${aPid}`).trim() === 'idle')
  const last = server.sql(`SELECT state || ' ' || query FROM pg_stat_activity WHERE pid = ${aPid}`).trim()
  t.equal(last, 'idle DISCARD ALL', 'the connection tenant a’s session left ran DISCARD ALL and is idle in the pool')
  t.same(await labels(c, true), ['secret of b'], 'extended protocol too')
  await c.query("SELECT set_config('app.tenant', 'a', false)")
  t.same(await labels(c, true), ['secret of a'], 'set_config back to a: a’s database again')

  await c.end()
})

t.test('session pooling: a tenant on another server inside a transaction is refused', async (t) => {
  const proxy = await proxyFor('session')
  t.teardown(() => proxy.stop())
  const { c } = await connect(proxy)
  await c.query("SET app.tenant = 'a'")
  await c.query('BEGIN')
  const err = await failure(c.query("SET LOCAL app.tenant = 'b'"))
  t.equal(err?.code, '0A000', 'SET LOCAL of a tenant on another server is refused with 0A000')
  t.match(err?.message ?? '', /placed on another server than the one this transaction runs on/, 'the message says why')
  t.match(err?.hint ?? '', /before BEGIN/, 'the hint says what to do')
  t.same(await labels(c), ['secret of a'], 'the transaction goes on as tenant a')
  await c.query('ROLLBACK')
  t.same(await labels(c), ['secret of a'], 'after ROLLBACK the session tenant (a) reads its database')
  await c.end()
})

t.test('transaction pooling: SET LOCAL to a tenant on another server mid-transaction is refused, never served by the old one', async (t) => {
  const proxy = await proxyFor('transaction')
  t.teardown(() => proxy.stop())
  const { c } = await connect(proxy)
  await c.query('BEGIN')
  await c.query("SET LOCAL app.tenant = 'a'")
  t.same(await labels(c), ['secret of a'], 'tenant a reads its database (no tenant column: its statements do not count as tenant data)')
  for (const set of ["SET LOCAL app.tenant = 'b'", "SELECT set_config('app.tenant', 'b', true)", "SET app.tenant = 'b'"]) {
    const err = await failure(c.query(set))
    // (a plain SET of the tenant inside a transaction block is refused anyway: 25001)
    t.ok(err !== null && ['0A000', '25001'].includes(err.code ?? ''), `${set}: refused inside the transaction (${err?.code})`)
  }
  t.same(await labels(c, true), ['secret of a'], 'the transaction stays tenant a’s, on a’s database')
  await c.query('ROLLBACK')
  await c.query("SET app.tenant = 'b'")
  t.same(await labels(c), ['secret of b'], 'between transactions tenant b reads its own database')
  await c.end()
})
