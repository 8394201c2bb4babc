// Pool mode per backend and per user (issue 14 item 9), as PgBouncer's per-database and per-user
// pool_mode: `users.NAME.pool_mode` over `backends.NAME.pool_mode` over `pool.mode`. A LISTEN
// refused under transaction pooling names the setting that gives the client session pooling.
import t, { type Test } from 'tap'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'
import { parseConfig } from '../../server/config.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const backendUrl = `postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres`

const yaml = (backendMode: string, globalMode: string): string => `
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
  listener: { password: l_pw, pool_mode: session }
  worker: { password: w_pw, pool_mode: transaction }
backends:
  main: { url: "${backendUrl}", pool: 4${backendMode ? `, pool_mode: ${backendMode}` : ''} }
pool: { mode: ${globalMode}, wait_timeout_ms: 20000 }
`

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  return c
}

/** LISTEN works: a NOTIFY from another client arrives. */
async function listens(t: Test, url: string, notifierUrl: string): Promise<void> {
  const c = await connect(url)
  await c.query('LISTEN pool_mode_test')
  const got = new Promise<string>((resolve) => c.on('notification', (n) => resolve(n.payload ?? '')))
  const n = await connect(notifierUrl)
  await n.query("NOTIFY pool_mode_test, 'hello'")
  t.equal(await got, 'hello', 'the notification arrives')
  // Session pooling: the same server connection for every transaction.
  const pids = new Set<number>()
  for (let i = 0; i < 4; i++) pids.add((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p)
  t.equal(pids.size, 1, 'one server connection for the whole session')
  await n.end()
  await c.end()
}

t.test('pool.mode transaction; users.listener.pool_mode: session', async (t) => {
  const proxy = await startProxy(yaml('', 'transaction'))
  t.teardown(() => proxy.stop())
  const app = await connect(proxy.url('app', 'app_pw'))
  const err = await app.query('LISTEN pool_mode_test').then(
    () => null,
    (e: pg.DatabaseError) => e,
  )
  t.equal(err?.code, '0A000', 'LISTEN is refused under transaction pooling')
  t.match(err?.hint ?? '', /users\.app\.pool_mode: session/, 'the hint names the per-user setting')
  t.match(err?.hint ?? '', /backends\.main\.pool_mode: session/, 'and the per-backend one')
  t.notMatch(err?.hint ?? '', /pool\.mode: session/, 'not the global one alone')
  await app.end()
  await listens(t, proxy.url('listener', 'l_pw'), proxy.url('app', 'app_pw'))
})

t.test('backends.main.pool_mode: session over pool.mode transaction; users.worker.pool_mode: transaction over it', async (t) => {
  const proxy = await startProxy(yaml('session', 'transaction'))
  t.teardown(() => proxy.stop())
  await listens(t, proxy.url('app', 'app_pw'), proxy.url('worker', 'w_pw'))
  const w = await connect(proxy.url('worker', 'w_pw'))
  const err = await w.query('LISTEN pool_mode_test').then(
    () => null,
    (e: pg.DatabaseError) => e,
  )
  t.equal(err?.code, '0A000', 'the per-user transaction mode wins over the backend')
  t.match(err?.hint ?? '', /users\.worker\.pool_mode: session/)
  t.notMatch(err?.hint ?? '', /backends\./, 'the backend setting would not help this user: not suggested')
  await w.end()
})

t.test('backends.main.pool_mode: transaction under pool.mode session', async (t) => {
  const proxy = await startProxy(yaml('transaction', 'session'))
  t.teardown(() => proxy.stop())
  const app = await connect(proxy.url('app', 'app_pw'))
  await t.rejects(app.query('LISTEN pool_mode_test'), { code: '0A000' })
  await app.end()
})

t.test('config: pool_mode values are checked', async (t) => {
  const yaml2 = (b: string, g: string): string => yaml(b, g).replace('$PROXY_PORT', '6432')
  t.throws(() => parseConfig(yaml2('statement', 'transaction'), {}, process.cwd()), /backends\.main\.pool_mode/)
  t.throws(() => parseConfig(yaml2('', 'transaction').replace('pool_mode: session', 'pool_mode: sesion'), {}, process.cwd()), /users\.listener\.pool_mode/)
  const c = parseConfig(yaml2('session', 'transaction'), {}, process.cwd())
  t.equal(c.backends.main.pool_mode, 'session')
  t.equal(c.users.listener.pool_mode, 'session')
  t.equal(c.users.app.pool_mode, undefined)
})

t.test("a client's database picks the backend, and so its pool mode (issue 14 items 5 and 9)", async (t) => {
  server.sql('CREATE DATABASE listen_db')
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
backends:
  main: { url: "${backendUrl}", pool: 4 }
  listening: { url: "${backendUrl.replace(/\/postgres$/, '/listen_db')}", pool: 2, pool_mode: session }
placement: { default: main }
pool: { mode: transaction, wait_timeout_ms: 20000 }
`)
  t.teardown(() => proxy.stop())
  const onMain = await connect(proxy.url('app', 'app_pw'))
  await t.rejects(onMain.query('LISTEN pool_mode_test'), { code: '0A000' }, 'the default backend pools transactions')
  await onMain.end()
  const url = proxy.url('app', 'app_pw', 'listen_db')
  const c = await connect(url)
  t.equal((await c.query('SELECT current_database() AS d')).rows[0].d, 'listen_db')
  await c.end()
  await listens(t, url, url)
})
