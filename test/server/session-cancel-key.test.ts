// Under session pooling the cancel key a client gets names its server connection, as
// PostgreSQL's names its backend (issue 14: postgres.js `listen reconnects` terminates the pid of
// its BackendKeyData and expects its connection to end). The proxy keeps its own secret, so a
// CancelRequest with that key still reaches the session through the proxy, and a key made of a
// server pid with another secret cancels nothing. Under transaction pooling the key stays the
// proxy's own (no server connection is the client's).
import t from 'tap'
import net from 'node:net'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'
import { waitFor } from '../helpers/wait.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const backendUrl = `postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres`

const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  sess: { password: s_pw, pool_mode: session }
  tx: { password: t_pw, pool_mode: transaction }
backends:
  main: { url: "${backendUrl}", pool: 2 }
pool: { mode: transaction, wait_timeout_ms: 20000 }
`)
t.teardown(() => proxy.stop())

interface KeyedClient extends pg.Client {
  processID: number
  secretKey: number
}

async function connect(user: string, password: string): Promise<KeyedClient> {
  const c = new pg.Client({ connectionString: proxy.url(user, password) }) as KeyedClient
  c.on('error', () => {}) // a terminated connection reports here too
  await c.connect()
  return c
}

/** A CancelRequest with this key, sent to the proxy. */
function sendCancel(pid: number, secret: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(proxy.port, '127.0.0.1', () => {
      const b = Buffer.alloc(16)
      b.writeInt32BE(16, 0)
      b.writeInt32BE(80877102, 4)
      b.writeInt32BE(pid, 8)
      b.writeInt32BE(secret, 12)
      s.end(b)
    })
    s.on('error', reject)
    s.on('close', () => resolve())
  })
}

/** Server backends running the test's pg_sleep. */
function sleeping(): number {
  return Number(server.sql(`SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'`).trim())
}

async function backendPid(c: pg.Client): Promise<number> {
  return (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number
}

t.test('session pooling: the cancel key names the server connection', async (t) => {
  const c = await connect('sess', 's_pw')
  t.equal(c.processID, await backendPid(c), "BackendKeyData's pid is pg_backend_pid() of the session's server connection")
  t.equal(c.processID, await backendPid(c), 'and stays so (session pooling keeps the connection)')

  // Cancel with the key the client got: its running query is cancelled.
  const running = c.query('SELECT pg_sleep(30)').then(
    () => null,
    (e: pg.DatabaseError) => e,
  )
  await waitFor('the query runs on the server', () => sleeping() === 1, 10_000)
  await sendCancel(c.processID, c.secretKey ^ 1)
  await new Promise((r) => setTimeout(r, 300))
  t.equal(sleeping(), 1, 'a key with the server pid and a wrong secret cancels nothing')
  await sendCancel(c.processID, c.secretKey)
  const err = await running
  t.equal(err?.code, '57014', 'the key the client got cancels its query')
  t.equal(await backendPid(c), c.processID, 'the session goes on on the same server connection')

  // pg_terminate_backend of that pid ends the client's connection, as it does directly.
  const other = await connect('sess', 's_pw')
  t.not(other.processID, c.processID, 'another session has another server connection and key')
  const ended = new Promise<void>((resolve) => c.once('end', () => resolve()))
  t.equal(
    (await other.query('SELECT pg_terminate_backend($1) AS ok', [c.processID])).rows[0].ok,
    true,
    'pg_terminate_backend of the key pid terminates a backend',
  )
  await ended
  t.pass("the terminated session's client connection ends")
  await other.end()
})

t.test('transaction pooling: the key is the proxy’s own and still cancels', async (t) => {
  const c = await connect('tx', 't_pw')
  const pid = await backendPid(c)
  t.not(c.processID, pid, 'the pid is not a server connection’s')
  const running = c.query('SELECT pg_sleep(30)').then(
    () => null,
    (e: pg.DatabaseError) => e,
  )
  await waitFor('the query runs on the server', () => sleeping() === 1, 10_000)
  await sendCancel(c.processID, c.secretKey)
  t.equal((await running)?.code, '57014', 'the proxy key cancels the query')
  await c.end()
})

t.test('session pooling with the pool taken: the login does not wait, and the key is the proxy’s', async (t) => {
  const a = await connect('sess', 's_pw')
  const b = await connect('sess', 's_pw')
  const started = Date.now()
  const c = await connect('sess', 's_pw') // pool: 2, both held for the sessions above
  t.ok(Date.now() - started < 5000, 'the login completes without waiting for a server connection')
  const pids = new Set([a.processID, b.processID])
  t.notOk(pids.has(c.processID), 'its key is not another session’s server pid')
  const q = c.query('SELECT 1 AS one')
  await a.end()
  t.equal((await q).rows[0].one, 1, 'its first statement runs once a connection is free')
  await b.end()
  await c.end()
})
