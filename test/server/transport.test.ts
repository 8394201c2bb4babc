// Transport: backpressure from a client that stops reading, and TLS to the server per sslmode.
import t from 'tap'
import pg from 'pg'
import type net from 'node:net'
import { chownSync, chmodSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml, selfSignedCert } from '../helpers/proxy.js'

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
  const session = [...proxy.proxy.sessions.values()].find((s) => s.backend !== null)
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

t.test('TLS to the server: sslmode=require uses it, sslmode=disable does not', async (t) => {
  const cert = selfSignedCert()
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }))
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }))
  for (const f of [cert.dir, cert.cert, cert.key]) chownSync(f, uid, gid)
  chmodSync(cert.key, 0o600)
  const server = await startPostgres({ conf: ['ssl = on', `ssl_cert_file = '${cert.cert}'`, `ssl_key_file = '${cert.key}'`] })
  t.teardown(() => server.stop())
  for (const [mode, expected] of [['require', 'true'], ['prefer', 'true'], ['disable', 'false']] as const) {
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
