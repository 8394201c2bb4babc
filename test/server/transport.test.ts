// Transport: backpressure both ways (a client that reads slowly or not at all, a server that
// takes COPY data slowly), and TLS to the server per sslmode.
import t from 'tap'
import pg from 'pg'
import net from 'node:net'
import { chownSync, chmodSync } from 'node:fs'
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml, selfSignedCert, psqlArgs, run, type RunningProxy } from '../helpers/proxy.js'

/** The client session currently holding a server connection. */
const sessionWithServer = (proxy: RunningProxy) => [...proxy.proxy.sessions.values()].find((s) => s.backend !== null)

t.test('a client that stops reading: the proxy pauses the server instead of buffering', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const proxy = await startProxy(basicYaml(server, { pool: 2 }))
  t.teardown(() => proxy.stop())
  const slow = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
  slow.on('error', () => undefined)
  await slow.connect()
  const stream = (slow as unknown as { connection: { stream: net.Socket } }).connection.stream
  void slow.query("SELECT repeat('x', 1000) FROM generate_series(1, 500000)").catch(() => undefined) // ~500 MB
  await new Promise((r) => setTimeout(r, 300))
  stream.pause() // stop reading: the kernel buffers fill up
  await new Promise((r) => setTimeout(r, 2500))
  const session = sessionWithServer(proxy)
  t.ok(session, 'the slow client still holds its server connection')
  const buffered = session!.socket.writableLength
  t.ok(buffered < 16 * 1024 * 1024, `proxy buffers ${(buffered / 1048576).toFixed(1)} MB for the slow client (bounded)`)
  t.ok(session!.backend!.socket.isPaused(), 'the server socket is paused')
  const other = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
  await other.connect()
  t.equal((await other.query('SELECT 3 AS v')).rows[0].v, 3, 'other clients are served meanwhile')
  await other.end()
  stream.destroy()
})

/** SHA-256 and size of what psql prints, read in bursts with pauses so the proxy's writes to it back up. */
function slowPsqlDigest(url: string, sql: string): Promise<{ sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', psqlArgs(url, sql))
    const hash = createHash('sha256')
    let bytes = 0
    let sinceBreak = 0
    child.stdout.on('data', (d: Buffer) => {
      hash.update(d)
      bytes += d.length
      sinceBreak += d.length
      if (sinceBreak > 256 * 1024) {
        sinceBreak = 0
        child.stdout.pause()
        setTimeout(() => child.stdout.resume(), 20)
      }
    })
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve({ sha: hash.digest('hex'), bytes }) : reject(new Error(`psql exited ${code}`))))
  })
}

t.test('server bytes pass through intact while clients read slowly (reused read buffers)', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const sql = 'COPY (SELECT i, md5(i::text), repeat(chr(65 + i % 26), i % 300) FROM generate_series(1, 150000) i) TO STDOUT'
  const direct = await slowPsqlDigest(server.url(ROLES.scram.user, ROLES.scram.password), sql)
  t.ok(direct.bytes > 20_000_000, `${(direct.bytes / 1e6).toFixed(0)} MB of rows`)
  for (const sslmode of ['disable', 'prefer']) {
    const proxy = await startProxy(basicYaml(server, { pool: 2 }).replace('/postgres"', `/postgres?sslmode=${sslmode}"`))
    // Three slow readers at once share the proxy's reads; each must get exactly its own bytes.
    const through = await Promise.all([1, 2, 3].map(() => slowPsqlDigest(proxy.url('app', 'app_pw'), sql)))
    t.same(through, [direct, direct, direct], `sslmode=${sslmode}: three slow clients received exactly what the server sent`)
    await proxy.stop()
  }
})

/**
 * A node-postgres client whose socket is not read until `stream.resume()`. Its socket reads
 * through `onread`, so pausing stops reads from the kernel at once (a plain socket reads one
 * more chunk into its stream buffer), which keeps what the kernel holds for it the same
 * from one client to the next.
 */
async function unreadClient(url: string): Promise<{ client: pg.Client; stream: net.Socket }> {
  const stream = (): net.Socket => {
    const onread = { buffer: Buffer.alloc(64 * 1024), callback: (n: number, buf: Uint8Array) => socket.emit('data', Buffer.from(buf.subarray(0, n))) }
    const socket: net.Socket = new net.Socket({ onread } as net.SocketConstructorOpts)
    return socket
  }
  const client = new pg.Client({ connectionString: url, stream })
  client.on('error', () => undefined)
  await client.connect()
  const socket = (client as unknown as { connection: { stream: net.Socket } }).connection.stream
  socket.pause()
  return { client, stream: socket }
}

t.test('a server connection held back for a slow client reads again once it is back in the pool', async (t) => {
  // When the last bytes of a reply fill the client's socket, the proxy stops reading the
  // server and, the transaction being over, returns the connection to the pool in the same
  // step. The next client to get it must find it reading.
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const proxy = await startProxy(basicYaml(server, { pool: 1 }))
  t.teardown(() => proxy.stop())
  const url = proxy.url('app', 'app_pw')

  // How much the kernel holds for a client that reads nothing, measured rather than assumed.
  const probe = await unreadClient(url)
  void probe.client.query("SELECT repeat('x', 250) FROM generate_series(1, 40000)").catch(() => undefined)
  await sleep(500)
  const session = sessionWithServer(proxy)
  t.ok(session?.backend?.socket.isPaused(), 'the probe fills the socket and the server connection is held back')
  const inKernel = session!.socket.bytesWritten - session!.socket.writableLength
  probe.stream.destroy()
  while (proxy.proxy.sessions.size > 0) await sleep(20)

  // Replies ending just past that point: the last read from the server is the one that fills the socket.
  for (let extraKiB = -32; extraKiB <= 96; extraKiB += 4) {
    const slow = await unreadClient(url)
    const reply = slow.client.query(`SELECT repeat('x', ${inKernel + extraKiB * 1024}) AS v`)
    await sleep(100)
    slow.stream.resume()
    const length = (await reply).rows[0].v.length
    await slow.client.end()
    const next = new pg.Client({ connectionString: url })
    next.on('error', () => undefined)
    await next.connect()
    const answered = await Promise.race([next.query('SELECT 1 AS v').then((r) => r.rows[0].v === 1), sleep(5000).then(() => false)])
    t.ok(answered, `${extraKiB} KiB: a ${(length / 1048576).toFixed(2)} MB reply to a slow client, then the next client is answered`)
    next.connection.stream.destroy()
  }
})

t.test('a server connection lost while the client is held back sending COPY data: the client gets the error, not a hang', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  // A sink that takes a millisecond per row, so the server stops reading and the proxy holds the client back.
  server.sql(`CREATE TABLE slow_sink (v text);
    CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END $$;
    CREATE TRIGGER slow_row BEFORE INSERT ON slow_sink FOR EACH ROW EXECUTE FUNCTION slow_row();`)
  const proxy = await startProxy(basicYaml(server, { pool: 2 }))
  t.teardown(() => proxy.stop())
  const rows = 'x'.repeat(100) + '\n'
  const copying = run('psql', psqlArgs(proxy.url('app', 'app_pw'), '\\copy slow_sink FROM STDIN'), rows.repeat(200_000))
  await sleep(1500)
  const session = sessionWithServer(proxy)
  t.ok(session?.socket.isPaused(), 'the proxy stopped reading the client while the server is behind')
  const killed = server.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE '%COPY%slow_sink%' AND pid <> pg_backend_pid()")
  t.equal(killed.trim(), '1', 'the server connection running the COPY is terminated')
  const done = await Promise.race([copying, sleep(15_000).then(() => null)])
  if (!done) return t.fail('psql is still waiting 15 s after its server connection was terminated')
  t.not(done.code, 0, 'the COPY failed')
  t.match(done.stderr, /terminating connection|server connection lost/, `psql said: ${done.stderr.trim()}`)
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
  await c.connect()
  t.equal((await c.query('SELECT 5 AS v')).rows[0].v, 5, 'the proxy serves the next client')
  await c.end()
})

t.test('TLS to the server: sslmode=require uses it, sslmode=disable does not', async (t) => {
  const cert = selfSignedCert()
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }))
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }))
  for (const f of [cert.dir, cert.cert, cert.key]) chownSync(f, uid, gid)
  chmodSync(cert.key, 0o600)
  const server = await startPostgres({ conf: ['ssl = on', `ssl_cert_file = '${cert.cert}'`, `ssl_key_file = '${cert.key}'`] })
  t.teardown(() => server.stop())
  for (const [mode, expected] of [
    ['require', 'true'],
    ['prefer', 'true'],
    ['disable', 'false'],
  ] as const) {
    const yaml = basicYaml(server).replace('/postgres"', `/postgres?sslmode=${mode}"`)
    const proxy = await startProxy(yaml)
    const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
    await c.connect()
    const r = await c.query('SELECT ssl::text AS ssl, current_user AS u FROM pg_stat_ssl WHERE pid = pg_backend_pid()')
    t.same(r.rows[0], { ssl: expected, u: ROLES.scram.user }, `sslmode=${mode}`)
    await c.end()
    await proxy.stop()
  }
  const plain = await startPostgres()
  t.teardown(() => plain.stop())
  const proxy = await startProxy(basicYaml(plain).replace('/postgres"', '/postgres?sslmode=require"'))
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
  await t.rejects(c.connect(), /does not support TLS/, 'sslmode=require against a server without TLS fails clearly')
  await proxy.stop()
})
