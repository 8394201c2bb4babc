// A pool's size is a promise to the database (issue 15): a server connection the proxy closes
// (RECONNECT, a connection closed after a client hung up mid-query, idle timeout, one given up
// for another pool) still counts against its pool until the server has let it go, so a
// replacement is opened only then. Between pgtenant and PostgreSQL a relay passes pgtenant's
// Terminate on only after a delay (a server backend slow to exit) and counts the sessions the
// server has at once, which must never exceed the pool size.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'

const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`
const POOL = 2
const EXIT_DELAY_MS = 1500
const CANCEL_REQUEST_CODE = 80877102

/** Forwards to PostgreSQL; a connection pgtenant ends stays open towards it for EXIT_DELAY_MS. */
async function slowExitRelay(pgPort: number): Promise<{ port: number; open: number; peak: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const relay = {
    port: 0,
    open: 0,
    peak: 0,
    close: async () => {
      for (const s of sockets) s.destroy()
      server.close()
      await once(server, 'close')
    },
  }
  const server = net.createServer({ allowHalfOpen: true }, (down) => {
    const up = net.connect(pgPort, '127.0.0.1')
    sockets.add(down).add(up)
    // A CancelRequest comes on a connection of its own that never becomes a session: not counted.
    let counted = false
    down.once('data', (chunk: Buffer) => {
      if (chunk.length >= 8 && chunk.readInt32BE(4) === CANCEL_REQUEST_CODE) return
      counted = true
      relay.open++
      relay.peak = Math.max(relay.peak, relay.open)
    })
    let gone = false
    const finish = (): void => {
      if (gone) return
      gone = true
      if (counted) relay.open--
      down.destroy()
      up.destroy()
    }
    down.on('error', finish)
    up.on('error', finish)
    up.on('close', finish)
    // pgtenant's Terminate reaches the server only after EXIT_DELAY_MS: a backend slow to exit.
    down.on('data', (chunk: Buffer) => {
      const terminates = chunk.length >= 5 && chunk[chunk.length - 5] === 0x58 && chunk.readInt32BE(chunk.length - 4) === 4
      if (terminates) setTimeout(() => up.write(chunk), EXIT_DELAY_MS)
      else up.write(chunk)
    })
    up.pipe(down)
    down.on('end', () => setTimeout(finish, EXIT_DELAY_MS + 500))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  relay.port = (server.address() as net.AddressInfo).port
  return relay
}

t.test(`a closed server connection counts against its pool (${POOL}) until the server has let it go`, async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const relay = await slowExitRelay(server.port)
  t.teardown(() => relay.close())
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw } }
backends:
  main: { url: "postgres://${auth}@127.0.0.1:${relay.port}/postgres", pool: ${POOL} }
pool: { max_server_connections: 10, wait_timeout_ms: 20000 }
`)
  t.teardown(() => proxy.stop())
  const clients = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw', 'postgres') })
      await c.connect()
      return c
    }),
  )
  t.teardown(() => Promise.all(clients.map((c) => c.end())))
  const burst = (): Promise<unknown> => Promise.all(clients.map((c) => c.query('SELECT pg_sleep(0.05)')))
  await burst()
  t.equal(relay.peak, POOL, `the pool opened ${POOL} connections`)

  // RECONNECT: the idle connections are closed now; the next transactions need new ones.
  proxy.proxy.reconnect()
  const started = Date.now()
  await burst()
  t.ok(relay.peak <= POOL, `the server never had more than ${POOL} connections at once (peak ${relay.peak})`)
  const waited = Date.now() - started
  t.ok(waited >= EXIT_DELAY_MS - 200, `the replacements waited for the old connections to go (${waited} ms)`)

  // A client that hangs up mid-query: its connection is cancelled and closed, never reused.
  const leaver = new pg.Client({ connectionString: proxy.url('app', 'app_pw', 'postgres') })
  await leaver.connect()
  leaver.on('error', () => undefined)
  const running = leaver.query('SELECT pg_sleep(5)').catch(() => undefined)
  await new Promise((r) => setTimeout(r, 300)) // the query is running on the server
  ;(leaver as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy()
  await running
  await burst()
  await burst()
  t.ok(relay.peak <= POOL, `still at most ${POOL} after a hang-up (peak ${relay.peak})`)
})
