// The hot path's reads and writes (issue 18): client reads go from the shared read buffer
// straight to the session, writes go straight to the socket's file descriptor, and whatever
// outlives a read callback is copied. The Node internals this uses are checked here, so that a
// Node release that changes them fails this test loudly instead of corrupting traffic; and the
// fallback (PGTENANT_HANDLE_IO=off) runs the same traffic tests.
import t from 'tap'
import net from 'node:net'
import tls from 'node:tls'
import { readFileSync, chownSync, chmodSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { startPostgres } from '../helpers/pg-server.js'
import { startProxy, basicYaml, selfSignedCert } from '../helpers/proxy.js'
import { rawConnection, P, B, E, S, Q } from '../helpers/raw-client.js'
import { waitFor } from '../helpers/wait.js'
import pg from 'pg'
import { adoptAcceptedHandle, directFd, writeToFd, setHandleIo, handleIoEnabled, writeCounters } from '../../server/protocol/handle-io.js'
import { readsDirectly } from '../../server/client-socket.js'
import { writeAll } from '../../server/protocol/output.js'
import { markReused } from '../../server/protocol/reused-memory.js'

const CHANGED = 'Node internals pgtenant uses changed (server/protocol/handle-io.ts): run with PGTENANT_HANDLE_IO=off and fix that module'

function listening(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)))
}

t.test('the Node internals are there and behave as handle-io.ts expects', async (t) => {
  t.ok(handleIoEnabled(), 'on by default')
  // 1. An accepted handle moves into a socket that reads through `onread`.
  const own = Buffer.alloc(1024)
  const got: string[] = []
  let adopted: net.Socket | null = null
  const server = net.createServer({ pauseOnConnect: true }, (accepted) => {
    adopted = adoptAcceptedHandle(accepted, {
      buffer: own,
      callback: (n, buf) => {
        t.equal(buf.buffer, own.buffer, `${CHANGED}: onread reads into the buffer given`)
        got.push(Buffer.from(buf.subarray(0, n)).toString())
        return true
      },
    })
  })
  const port = await listening(server)
  const client = net.connect(port, '127.0.0.1')
  await new Promise((r) => client.once('connect', r))
  client.write('hello')
  await waitFor('the adopted socket to read', () => got.join('') === 'hello', 5000)
  t.ok(adopted, `${CHANGED}: the accepted handle moves into a socket made with onread`)
  const a = adopted as unknown as net.Socket
  // 2. Direct writes to the file descriptor, in order with socket.write.
  const fd = directFd(a)
  t.ok(fd >= 0, `${CHANGED}: a plain TCP socket's handle has a file descriptor (${fd})`)
  t.ok(directFd(client) >= 0, `${CHANGED}: so does a connected net.connect socket`)
  let received = ''
  client.on('data', (d: Buffer) => (received += d.toString()))
  t.equal(writeToFd(fd, [Buffer.from('ab'), Buffer.from('cd')], 4), 4, 'writev to the descriptor takes everything at once')
  t.equal(writeToFd(fd, [Buffer.from('e')], 1), 1, 'a single buffer too')
  a.write('f')
  await waitFor('the peer to read what was written', () => received === 'abcdef', 5000)
  t.equal(received, 'abcdef', 'the peer gets the bytes in order')
  // 3. A peer that does not read: the kernel buffer fills, and the write says so (0), never throws or blocks.
  client.pause()
  const big = Buffer.alloc(1 << 20, 0x78)
  let took = 0
  let last = -2
  for (let i = 0; i < 256 && last !== 0; i++) {
    last = writeToFd(fd, [big], big.length)
    took += Math.max(0, last)
  }
  t.equal(last, 0, `${CHANGED}: a full kernel buffer gives 0 bytes written (EAGAIN), after ${(took / 1048576).toFixed(1)} MiB`)
  a.destroy()
  client.destroy()
  server.close()
  t.equal(directFd(a), -1, 'a destroyed socket is never written directly (its descriptor may be reused)')
  // 4. TLS sockets go through socket.write.
  const cert = selfSignedCert()
  const secureServer = tls.createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (s) => s.end())
  const securePort = await listening(secureServer as unknown as net.Server)
  const secure = tls.connect({ port: securePort, host: '127.0.0.1', rejectUnauthorized: false })
  await new Promise((r) => secure.once('secureConnect', r))
  t.equal(directFd(secure as unknown as net.Socket), -1, 'a TLS socket is not written directly')
  secure.destroy()
  secureServer.close()
  // 5. Switched off: nothing direct, and accepted sockets are used as they are.
  setHandleIo(false)
  t.equal(directFd(client), -1, 'switched off: no direct writes')
  t.equal(adoptAcceptedHandle(new net.Socket(), { buffer: own, callback: () => true }), null, 'switched off: accepted sockets are not adopted')
  setHandleIo(true)
})

t.test('the write path keeps nothing it was given: the caller may overwrite its buffers as soon as writeAll returns', async (t) => {
  const cert = selfSignedCert()
  for (const kind of ['plain TCP, handle-io on', 'plain TCP, handle-io off (socket.write)', 'TLS (socket.write)']) {
    setHandleIo(kind !== 'plain TCP, handle-io off (socket.write)')
    const tlsPair = kind.startsWith('TLS')
    // The reading side accepts and does not read at first: the kernel's buffers fill, and writes go asynchronous.
    let reader: net.Socket | null = null
    const accepted = (s: net.Socket): void => {
      s.pause()
      reader = s
    }
    const server = tlsPair
      ? (tls.createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, accepted) as unknown as net.Server)
      : net.createServer(accepted)
    const port = await listening(server)
    const writer: net.Socket = tlsPair ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect(port, '127.0.0.1')
    await new Promise((r) => writer.once(tlsPair ? 'secureConnect' : 'connect', r))
    await waitFor('the connection to be accepted', () => reader !== null, 5000)
    const before = { ...writeCounters }
    // A read buffer as the proxy has them: registered as reused, overwritten right after each write.
    const mem = markReused(Buffer.allocUnsafeSlow(64 * 1024))
    const expected: Buffer[] = []
    for (let i = 0; i < 160; i++) {
      mem.fill(i & 0xff)
      const parts = i % 3 === 0 ? [mem] : i % 3 === 1 ? [mem.subarray(0, 1000), mem.subarray(1000, 40_000)] : [mem.subarray(0, 30_000), mem.subarray(30_000)]
      writeAll(writer, parts) // ~7 MB in all: more than the kernel takes while nobody reads
      for (const p of parts) expected.push(Buffer.from(p))
      mem.fill(0xee) // what the next read into it does
    }
    const want = Buffer.concat(expected)
    const got: Buffer[] = []
    let n = 0
    const r = reader as unknown as net.Socket
    r.on('data', (d: Buffer) => {
      got.push(d)
      n += d.length
    })
    r.resume()
    await waitFor(`${kind}: all ${want.length} bytes to arrive`, () => n >= want.length, 30_000)
    t.ok(Buffer.concat(got).equals(want), `${kind}: the reader got exactly the bytes as they were when written`)
    if (kind === 'plain TCP, handle-io on')
      t.ok(writeCounters.partial > before.partial && writeCounters.queued > before.queued, 'direct, then partial, then queued writes ran')
    writer.destroy()
    r.destroy()
    server.close()
  }
  setHandleIo(true)
})

/** A literal of `size` characters that names its client and position, so a byte from elsewhere shows. */
function payload(who: string, i: number, size: number): string {
  const head = `${who}-${i}-`
  let body = ''
  const unit = `${who}${i % 10}abcdefghijklmnopqrstuvwxyz`
  while (body.length < size - head.length) body += unit
  return head + body.slice(0, Math.max(0, size - head.length))
}

/** One client's pipelined batch: simple Queries and Parse/Bind/Execute/Sync, small and large (several reads long). */
function batch(who: string, count: number): { bytes: Buffer[]; expected: string[] } {
  const bytes: Buffer[] = []
  const expected: string[] = []
  for (let i = 0; i < count; i++) {
    const size = i % 5 === 0 ? 70_000 + i * 17 : 200 + ((i * 389) % 3000)
    const value = payload(who, i, size)
    expected.push(value)
    if (i % 2 === 0) bytes.push(Q(`SELECT '${value}'`))
    else bytes.push(P('SELECT $1::text'), B([value]), E(), S)
  }
  return { bytes, expected }
}

const rows = (out: string[]): string[] => out.filter((m) => m.startsWith('D:')).map((m) => m.slice(2))

for (const mode of ['handle-io on', 'handle-io off (the fallback)']) {
  t.test(`${mode}: messages kept while clients wait for the only server connection are not overwritten`, async (t) => {
    setHandleIo(mode === 'handle-io on')
    t.teardown(() => setHandleIo(true))
    const server = await startPostgres()
    t.teardown(() => server.stop())
    const proxy = await startProxy(basicYaml(server, { pool: 1 }))
    t.teardown(() => proxy.stop())
    const url = proxy.url('app', 'app_pw')
    const before = { ...writeCounters }
    const holder = new pg.Client({ connectionString: url })
    await holder.connect()
    t.teardown(() => holder.end())
    const clients = await Promise.all(['b', 'c', 'd'].map(() => rawConnection(url)))
    t.teardown(() => Promise.all(clients.map((c) => c.close())))
    const sessions = [...proxy.proxy.sessions.values()]
    t.same(
      sessions.map((s) => readsDirectly(s.socket)),
      sessions.map(() => mode === 'handle-io on'),
      mode === 'handle-io on' ? 'client reads go straight from onread to the session' : "client reads come as 'data' events",
    )
    await holder.query('BEGIN')
    await holder.query('SELECT 1') // the pool's only server connection is held
    const batches = ['b', 'c', 'd'].map((who) => batch(who, 40))
    const replies = clients.map((c, i) => c.exchange(batches[i].bytes, 40))
    await waitFor(
      'three clients waiting for a server connection',
      () => [...proxy.proxy.sessions.values()].filter((s) => s.metricState === 'waiting').length === 3,
    )
    await holder.query('COMMIT')
    const out = await Promise.all(replies)
    for (const [i, who] of ['b', 'c', 'd'].entries()) {
      const got = rows(out[i])
      t.equal(got.length, batches[i].expected.length, `client ${who}: every row came back`)
      t.ok(
        got.every((v, j) => v === batches[i].expected[j]),
        `client ${who}: every value is exactly what it sent (first difference at ${got.findIndex((v, j) => v !== batches[i].expected[j])})`,
      )
    }
    if (mode === 'handle-io on') t.ok(writeCounters.direct > before.direct, `direct writes were made (${writeCounters.direct - before.direct})`)
    else t.equal(writeCounters.direct, before.direct, 'no direct write while switched off')
  })
}

/** A PostgreSQL that offers TLS (sslmode=require then puts the server connections on TLS: socket.write with views of the shared read buffer). */
async function startTlsPostgres(): ReturnType<typeof startPostgres> {
  const cert = selfSignedCert()
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }))
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }))
  for (const f of [cert.dir, cert.cert, cert.key]) chownSync(f, uid, gid)
  chmodSync(cert.key, 0o600)
  return startPostgres({ conf: ['ssl = on', `ssl_cert_file = '${cert.cert}'`, `ssl_key_file = '${cert.key}'`] })
}

for (const mode of ['handle-io on', 'handle-io off (the fallback)', 'handle-io on, TLS to the server']) {
  t.test(`${mode}: messages queued behind a server that does not read are not overwritten by other clients' reads`, async (t) => {
    setHandleIo(mode !== 'handle-io off (the fallback)')
    t.teardown(() => setHandleIo(true))
    const tlsServer = mode.endsWith('TLS to the server')
    const server = tlsServer ? await startTlsPostgres() : await startPostgres()
    t.teardown(() => server.stop())
    const yaml = basicYaml(server, { pool: 2 })
    const proxy = await startProxy(tlsServer ? yaml.replace('/postgres"', '/postgres?sslmode=require"') : yaml)
    t.teardown(() => proxy.stop())
    const url = proxy.url('app', 'app_pw')
    const [slow, busy] = await Promise.all([rawConnection(url), rawConnection(url)])
    t.teardown(() => Promise.all([slow.close(), busy.close()]))
    const before = { ...writeCounters }
    // While the server sleeps it reads nothing: ~12 MB (300 × 40 kB) behind the sleep fill the kernel's
    // buffers, and the proxy keeps the rest of the slow client's messages queued (copied) meanwhile.
    const expected: string[] = []
    const bytes: Buffer[] = [Q('SELECT pg_sleep(1.5)')]
    for (let i = 0; i < 300; i++) {
      const value = payload('slow', i, 40_000)
      expected.push(value)
      bytes.push(Q(`SELECT '${value}'`))
    }
    const slowReply = slow.exchange(bytes, 301)
    // Meanwhile another client's reads go through the same shared read buffer.
    let rounds = 0
    const busyDone = (async () => {
      const started = Date.now()
      while (Date.now() - started < 2500) {
        const b = batch(`busy${rounds}`, 10)
        const got = rows(await busy.exchange(b.bytes, 10))
        if (got.join('|') !== b.expected.join('|')) throw new Error(`busy client round ${rounds}: rows differ`)
        rounds++
      }
    })()
    const out = rows(await slowReply)
    await busyDone
    t.ok(rounds > 0, `the busy client ran ${rounds} batches meanwhile`)
    t.equal(out.length, 301, 'the slow client got every row')
    t.equal(out[0], '', 'pg_sleep first')
    const bad = out.slice(1).findIndex((v, i) => v !== expected[i])
    t.equal(bad, -1, 'every value is exactly what the slow client sent')
    if (mode === 'handle-io on')
      t.ok(
        writeCounters.partial > before.partial,
        `the kernel took part of a direct write, the rest was copied and queued (${writeCounters.partial - before.partial} times)`,
      )
    else t.ok(writeCounters.queued > before.queued, `writes were queued on sockets with views copied (${writeCounters.queued - before.queued})`)
  })
}
