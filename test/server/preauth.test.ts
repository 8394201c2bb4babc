// Clients that have not logged in cost the proxy little and not for long (issue 15, items
// 2 and 7): a message declared larger than the pre-authentication limit ends the
// connection at its length word (bounded memory, no CPU spent on it), a client too slow to
// log in is cut off at pool.login_timeout_ms and its socket destroyed (not half-closed: a
// client that keeps sending would otherwise keep it open), at most
// pool.max_authenticating_connections may be logging in at once, and each cut-off is
// counted by reason. Healthy clients are served meanwhile. Raw sockets play the bad clients.
import t from 'tap'
import net from 'node:net'
import pg from 'pg'
import { serialize } from '../../server/protocol/pg-protocol.js'
import { decodeFields } from '../../server/protocol/backend.js'
import { FrameReader } from '../../server/protocol/frame-reader.js'
import { startPostgres } from '../helpers/pg-server.js'
import { startProxy, basicYaml } from '../helpers/proxy.js'

const LOGIN_TIMEOUT_MS = 1000
const MAX_AUTHENTICATING = 8

const server = await startPostgres()
t.teardown(() => server.stop())
const proxy = await startProxy(
  basicYaml(server, { pool: 3 }).replace(
    /^pool: .*$/m,
    `pool: { mode: transaction, login_timeout_ms: ${LOGIN_TIMEOUT_MS}, max_authenticating_connections: ${MAX_AUTHENTICATING} }\nmetrics: 127.0.0.1:0`,
  ),
)
t.teardown(() => proxy.stop())

async function cutoffs(reason: string): Promise<number> {
  const m = await proxy.proxy.metrics.prometheus!.registry.getSingleMetric('pgtenant_client_login_cutoffs_total')!.get()
  return m.values.find((v) => v.labels.reason === reason)?.value ?? 0
}

/** A client logging in and querying in a loop; reports the slowest round trip. Resolves once it has been served. */
async function healthyClient(): Promise<{ stop(): Promise<{ queries: number; maxMs: number }> }> {
  let running = true
  let queries = 0
  let maxMs = 0
  const done = (async () => {
    while (running) {
      const started = Date.now()
      const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
      await c.connect()
      for (let i = 0; i < 20 && running; i++) {
        const q = Date.now()
        await c.query('SELECT 1')
        maxMs = Math.max(maxMs, Date.now() - q)
        queries++
      }
      await c.end()
      maxMs = Math.max(maxMs, (Date.now() - started) / 10) // a login counts too, loosely
    }
  })()
  const before = Date.now()
  while (queries < 20 && Date.now() - before < 10000) await new Promise((r) => setTimeout(r, 10))
  queries = 0
  maxMs = 0
  return {
    async stop() {
      running = false
      await done
      return { queries, maxMs }
    },
  }
}

interface RawClient {
  socket: net.Socket
  received: Buffer[]
  closed: Promise<number>
  errors(): Record<string, string>[]
  /** Resolves once a message of this type arrived from the proxy. */
  waitFor(type: number, ms: number): Promise<void>
}

function rawClient(): Promise<RawClient> {
  return new Promise((resolve) => {
    // allowHalfOpen: when the proxy only ends its side, this side stays open (and keeps sending)
    // the way a hostile client's would; only a destroyed connection ends it.
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true })
    const received: Buffer[] = []
    const opened = Date.now()
    socket.on('error', () => undefined)
    socket.on('data', (d) => received.push(d))
    const closed = new Promise<number>((r) => socket.on('close', () => r(Date.now() - opened)))
    const errors = (): Record<string, string>[] => {
      const buf = Buffer.concat(received)
      const out: Record<string, string>[] = []
      for (let pos = 0; pos + 5 <= buf.length; pos += 1 + buf.readInt32BE(pos + 1))
        if (buf[pos] === 0x45) out.push(decodeFields(buf.subarray(pos, pos + 1 + buf.readInt32BE(pos + 1))))
      return out
    }
    const waitFor = async (type: number, ms: number): Promise<void> => {
      const deadline = Date.now() + ms
      while (!Buffer.concat(received).includes(type)) {
        if (Date.now() > deadline) throw new Error(`no message 0x${type.toString(16)} within ${ms} ms`)
        await new Promise((r) => setTimeout(r, 5))
      }
    }
    socket.on('connect', () => resolve({ socket, received, closed, errors, waitFor }))
  })
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
  Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())])

t.test('a message of 64 MiB declared before authentication is cut off at its length word', async (t) => {
  const healthy = await healthyClient()
  const before = await cutoffs('message_too_large')
  const rssBefore = process.memoryUsage().rss
  const c = await rawClient()
  c.socket.write(serialize.startup({ user: 'app', database: 'postgres' }))
  await c.waitFor(0x52 /* R: the proxy asks for a password */, 3000)
  const header = Buffer.alloc(5)
  header.write('p')
  header.writeInt32BE(64 * 1024 * 1024 + 4, 1)
  c.socket.write(header)
  // Stream the body as fast as the proxy takes it, until it hangs up.
  const chunk = Buffer.alloc(64 * 1024, 0x61)
  let sent = 0
  let open = true
  void c.closed.then(() => (open = false))
  const started = Date.now()
  while (open && sent < 64 * 1024 * 1024 && Date.now() - started < 20000) {
    if (!c.socket.write(chunk)) await within(new Promise((r) => c.socket.once('drain', r)), 200)
    sent += chunk.length
  }
  const ms = await within(c.closed, 5000)
  const stats = await healthy.stop()
  t.not(ms, 'timeout', 'the proxy closed the connection')
  t.ok(Date.now() - started < 3000, `within ${Date.now() - started} ms of the header (before the fix: the whole 64 MiB was read, quadratically)`)
  t.ok(sent < 32 * 1024 * 1024, `the client could send ${(sent / 1048576).toFixed(1)} MiB before it was cut off (what the kernel buffers, not the message)`)
  const errs = c.errors()
  t.equal(errs[0]?.S, 'FATAL')
  t.equal(errs[0]?.C, '08P01', `the client is told why: ${errs[0]?.M}`)
  const grew = (process.memoryUsage().rss - rssBefore) / 1048576
  t.ok(grew < 48, `RSS grew by ${grew.toFixed(1)} MiB (test process: proxy and clients)`)
  t.equal((await cutoffs('message_too_large')) - before, 1, 'counted as message_too_large')
  t.ok(stats.queries > 0 && stats.maxMs < 1000, `a healthy client was served meanwhile (${stats.queries} queries, slowest ${stats.maxMs} ms)`)
})

t.test('slow clients are cut off at the login timeout and their sockets destroyed', async (t) => {
  const healthy = await healthyClient()
  const before = await cutoffs('login_timeout')
  // One trickles its startup packet a byte at a time; one answers the password request with a
  // message whose body it trickles (a few kB declared: under the limit, never complete in time).
  const trickle = await rawClient()
  const startup = serialize.startup({ user: 'app', database: 'postgres' })
  let i = 0
  const dribble = setInterval(() => {
    if (trickle.socket.destroyed) return
    trickle.socket.write(startup.subarray(i % startup.length, (i % startup.length) + 1))
    i++
  }, 50)
  const silent = await rawClient()
  silent.socket.write(startup)
  await silent.waitFor(0x52, 3000)
  const header = Buffer.alloc(5)
  header.write('p')
  header.writeInt32BE(4000, 1)
  silent.socket.write(header)
  // It keeps sending after the proxy ends its side: only a destroyed socket stops it.
  const junk = setInterval(() => silent.socket.destroyed || silent.socket.write('x'), 50)
  const [a, b] = await Promise.all([within(trickle.closed, LOGIN_TIMEOUT_MS + 3000), within(silent.closed, LOGIN_TIMEOUT_MS + 3000)])
  clearInterval(dribble)
  clearInterval(junk)
  const stats = await healthy.stop()
  t.not(a, 'timeout', `the trickling client's connection was closed (${a} ms)`)
  t.not(b, 'timeout', `the slow client's connection was closed although it kept sending (${b} ms)`)
  for (const [name, ms] of [
    ['trickling', a],
    ['slow', b],
  ] as const)
    if (ms !== 'timeout') t.ok(ms >= LOGIN_TIMEOUT_MS - 50 && ms < LOGIN_TIMEOUT_MS + 1500, `${name}: at the login timeout (${ms} ms)`)
  t.equal(silent.errors()[0]?.C, '08006', `the slow client got FATAL 08006: ${silent.errors()[0]?.M}`)
  t.equal((await cutoffs('login_timeout')) - before, 2, 'both counted as login_timeout')
  t.ok(stats.queries > 0 && stats.maxMs < 1000, `healthy clients were served meanwhile (${stats.queries} queries, slowest ${stats.maxMs} ms)`)
})

t.test('at most max_authenticating_connections clients log in at once', async (t) => {
  const before = await cutoffs('too_many_authenticating')
  const waiting = await Promise.all(Array.from({ length: MAX_AUTHENTICATING }, () => rawClient()))
  // Accepted in order: when this one is accepted, the eight before it are counted.
  const extra = await rawClient()
  // It writes on regardless (a half-closed socket would keep reading it).
  const pester = setInterval(() => extra.socket.destroyed || extra.socket.write('x'), 50)
  const ms = await within(extra.closed, 2000)
  clearInterval(pester)
  t.not(ms, 'timeout', 'one more connection is closed at once')
  t.equal(extra.errors()[0]?.C, '53300', `with 53300: ${extra.errors()[0]?.M}`)
  t.ok((await cutoffs('too_many_authenticating')) - before >= 1, 'counted as too_many_authenticating')
  // The waiting ones time out; then logins are admitted again.
  await Promise.all(waiting.map((w) => within(w.closed, LOGIN_TIMEOUT_MS + 3000)))
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
  await c.connect()
  t.equal((await c.query('SELECT 7 AS v')).rows[0].v, 7, 'after they timed out, a client logs in and is served')
  await c.end()
})

t.test('a message arriving in many chunks is buffered in linear time (after authentication too)', async (t) => {
  // 16 MiB in 2 KiB chunks: joining per chunk copies ~64 GB; joining once copies 16 MiB.
  const size = 16 * 1024 * 1024
  const message = Buffer.alloc(size + 1, 0x61)
  message[0] = 0x51 // Q
  message.writeInt32BE(size, 1)
  const reader = new FrameReader(256 * 1024 * 1024)
  const started = process.hrtime.bigint()
  let frame = null
  for (let pos = 0; pos < message.length; pos += 2048) {
    reader.push(message.subarray(pos, pos + 2048))
    frame = reader.next()
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  t.equal(frame?.raw.length, size + 1, 'the whole message comes out once complete')
  t.ok(frame?.raw.equals(message), 'byte for byte')
  t.ok(ms < 1000, `in ${ms.toFixed(0)} ms`)
})
