// Authentication, TLS, limits and bad input: clear errors with real SQLSTATEs, and the
// proxy keeps serving everyone else.
import t, { type Test } from 'tap'
import net from 'node:net'
import pg from 'pg'
import { startPostgres } from '../helpers/pg-server.js'
import { startProxy, basicYaml, run, psqlArgs, selfSignedCert } from '../helpers/proxy.js'
import { decodeFields } from '../../server/protocol/backend.js'
import { waitForRunning } from '../helpers/wait.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const tlsFiles = selfSignedCert()
const proxy = await startProxy(
  basicYaml(server, {
    pool: 3,
    users: `  app: { password: app_pw }\n  other: { password: "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$ZZZ=:YYY=" }`,
    extra: `tls: { cert: ${tlsFiles.cert}, key: ${tlsFiles.key} }\npool: { mode: transaction, max_client_connections: 20 }`,
  }).replace(/^pool: \{ mode: transaction, wait_timeout_ms: 20000 \}$/m, ''),
)
t.teardown(() => proxy.stop())
const url = proxy.url('app', 'app_pw')

async function stillServing(t: Test): Promise<void> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  t.equal((await c.query('SELECT 41 + 1 AS v')).rows[0].v, 42, 'proxy still serves other clients')
  await c.end()
}

/** Open a raw socket, send bytes, collect everything until the proxy closes it. */
function rawExchange(bytes: Buffer[], waitMs = 2000): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect(proxy.port, '127.0.0.1')
    const got: Buffer[] = []
    s.on('data', (d) => got.push(d))
    s.on('error', () => undefined)
    const timer = setTimeout(() => s.destroy(), waitMs)
    s.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(got))
    })
    s.on('connect', () => {
      for (const b of bytes) s.write(b)
    })
  })
}

function errorsIn(buf: Buffer): Record<string, string>[] {
  const out: Record<string, string>[] = []
  let pos = 0
  while (pos + 5 <= buf.length) {
    const len = buf.readInt32BE(pos + 1)
    if (buf[pos] === 0x45) out.push(decodeFields(buf.subarray(pos, pos + 1 + len)))
    pos += 1 + len
  }
  return out
}

t.test('wrong password and unknown user get the same 28P01', async (t) => {
  const wrong = new pg.Client({ connectionString: proxy.url('app', 'nope') })
  const unknown = new pg.Client({ connectionString: proxy.url('nobody', 'nope') })
  const e1 = await wrong.connect().then(
    () => null,
    (e) => e,
  )
  const e2 = await unknown.connect().then(
    () => null,
    (e) => e,
  )
  t.equal(e1?.code, '28P01')
  t.equal(e2?.code, '28P01')
  t.equal(e1?.message.replace('"app"', 'X'), e2?.message.replace('"nobody"', 'X'), 'same message shape')
  const verifierUser = new pg.Client({ connectionString: proxy.url('other', 'whatever') })
  t.equal(
    (
      await verifierUser.connect().then(
        () => null,
        (e) => e,
      )
    )?.code,
    '28P01',
    'SCRAM verifier in config, wrong password',
  )
  await stillServing(t)
})

t.test('md5 authentication of clients', async (t) => {
  const md5proxy = await startProxy(basicYaml(server, { extra: 'auth: md5' }))
  const ok = await run('psql', psqlArgs(md5proxy.url('app', 'app_pw'), 'SELECT 1'))
  t.equal(ok.code, 0, ok.stderr)
  const bad = await run('psql', psqlArgs(md5proxy.url('app', 'wrong'), 'SELECT 1'))
  t.match(bad.stderr, /password authentication failed for user "app"/)
  await md5proxy.stop()
})

t.test('TLS to the client', async (t) => {
  const r = await run('psql', psqlArgs(url + '?sslmode=require', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'))
  t.equal(r.code, 0, r.stderr)
  const shown = await run('psql', ['-X', url + '?sslmode=require', '-c', '\\conninfo'])
  t.match(shown.stdout, /SSL connection \(protocol: TLSv1\.[23]/, 'psql reports an SSL connection to the proxy')
  const nossl = await run('psql', psqlArgs(url + '?sslmode=disable', 'SELECT 1'))
  t.equal(nossl.code, 0, 'plain connections still work')
})

t.test('bad input: FATAL 08P01 and the connection closes; nothing else is affected', async (t) => {
  const cases: [string, Buffer[]][] = [
    ['garbage before startup', [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]],
    ['startup claiming 1 GB', [Buffer.from([0x40, 0, 0, 0, 0, 3, 0, 0])]],
    [
      'protocol 2.0',
      [
        (() => {
          const b = Buffer.alloc(8)
          b.writeInt32BE(8, 0)
          b.writeInt32BE(0x20000, 4)
          return b
        })(),
      ],
    ],
  ]
  for (const [name, bytes] of cases) {
    const reply = await rawExchange(bytes)
    const errs = errorsIn(reply)
    t.ok(errs.length === 1 && errs[0].S === 'FATAL', `${name}: one FATAL`)
    t.match(errs[0]?.C, /^(08P01|0A000)$/, `${name}: SQLSTATE ${errs[0]?.C}`)
  }
  // After login: an unknown message type, a message claiming 1 GB, a disconnect mid-message.
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  const stream = (c as unknown as { connection: { stream: net.Socket } }).connection.stream
  const fatal = new Promise<Error>((resolve) => c.on('error', resolve))
  stream.write(Buffer.from([0x7a, 0, 0, 0, 4])) // 'z': not a frontend message
  const err = await fatal
  t.match(err.message, /unexpected message type/)
  const c2 = new pg.Client({ connectionString: url })
  await c2.connect()
  const s2 = (c2 as unknown as { connection: { stream: net.Socket } }).connection.stream
  const fatal2 = new Promise<Error>((resolve) => c2.on('error', resolve))
  s2.write(Buffer.from([0x51, 0x40, 0, 0, 0]))
  t.match((await fatal2).message, /exceeds the limit/)
  const c3 = new pg.Client({ connectionString: url })
  await c3.connect()
  c3.on('error', () => undefined) // we cut this one off ourselves
  const s3 = (c3 as unknown as { connection: { stream: net.Socket } }).connection.stream
  s3.write(Buffer.from([0x51, 0, 0, 1, 0, 0x53, 0x45]))
  s3.destroy()
  await stillServing(t)
})

t.test('a server connection killed mid-query: only its client gets the FATAL and is disconnected, as directly (issue 14 item 2)', async (t) => {
  const victim = new pg.Client({ connectionString: url })
  await victim.connect()
  const bystander = new pg.Client({ connectionString: url })
  await bystander.connect()
  await bystander.query('BEGIN')
  const running = victim.query('SELECT pg_sleep(20)').then(
    () => null,
    (e) => e,
  )
  await waitForRunning(server, 'SELECT pg_sleep(20)')
  server.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)'")
  victim.on('error', () => undefined)
  const e = await running
  t.ok(e, 'the victim got an error')
  t.match(e?.code, /^(08006|57P01)$/, `SQLSTATE ${e?.code}: ${e?.message}`)
  t.ok(
    await victim.query('SELECT 2 AS v').then(
      () => false,
      () => true,
    ),
    'the victim connection is closed, as PostgreSQL closes it',
  )
  const again = new pg.Client({ connectionString: url })
  await again.connect()
  t.equal((await again.query('SELECT 2 AS v')).rows[0].v, 2, 'a new connection works')
  t.equal((await bystander.query('SELECT 3 AS v')).rows[0].v, 3, 'bystander unaffected')
  await bystander.query('COMMIT')
  await again.end()
  await bystander.end()
})

t.test('max_client_connections gives 53300', async (t) => {
  const clients: pg.Client[] = []
  let refused: { code?: string } | null = null
  for (let i = 0; i < 25 && !refused; i++) {
    const c = new pg.Client({ connectionString: url })
    refused = await c.connect().then(
      () => (clients.push(c), null),
      (e) => e,
    )
  }
  t.equal(refused?.code, '53300')
  await Promise.all(clients.map((c) => c.end()))
  await new Promise((r) => setTimeout(r, 100))
  await stillServing(t)
})

t.test('pool wait timeout gives a clear error', async (t) => {
  const tiny = await startProxy(basicYaml(server, { pool: 1 }).replace('wait_timeout_ms: 20000', 'wait_timeout_ms: 300'))
  const holder = new pg.Client({ connectionString: tiny.url('app', 'app_pw') })
  await holder.connect()
  await holder.query('BEGIN')
  await holder.query('SELECT 1')
  const waiter = new pg.Client({ connectionString: tiny.url('app', 'app_pw') })
  await waiter.connect()
  const e = await waiter.query('SELECT 1').then(
    () => null,
    (err) => err,
  )
  t.equal(e?.code, '53300')
  t.match(e?.message, /waiting for a server connection/)
  await holder.query('COMMIT')
  t.equal((await waiter.query('SELECT 5 AS v')).rows[0].v, 5, 'the waiter recovers once the pool frees up')
  await holder.end()
  await waiter.end()
  await tiny.stop()
})
