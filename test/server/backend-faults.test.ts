// A misbehaving server costs its clients an error, never the proxy process (issue 15, item 1).
// A scripted fake backend (test/helpers/fault-server.ts) resets, stalls, closes or sends
// garbage at each stage of a server connection: the SSLRequest answer, the TLS handshake,
// startup, the SASL exchange, mid-query after ReadyForQuery, and mid-COPY both ways. For
// each: the proxy keeps running (an unhandled 'error' event would end this process, and the
// file with it), the client gets an ErrorResponse with a connection-class SQLSTATE, a stalled
// connect attempt times out and its socket is destroyed, and no socket to the bad server is
// left open. Then the same address is healed (the fault server forwards to a real
// PostgreSQL) and the pool serves again; last, a real PostgreSQL with TLS on is restarted
// (pg_ctl restart -m fast) three times under load with the default sslmode.
import t from 'tap'
import pg from 'pg'
import { spawn, execFileSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, chmodSync, chownSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FaultServer, FAULTS, type Stage } from '../helpers/fault-server.js'
import { startPostgres, ROLES, type PgServer } from '../helpers/pg-server.js'
import { startProxy, psqlArgs, selfSignedCert, type RunningProxy } from '../helpers/proxy.js'
import { waitFor } from '../helpers/wait.js'

const CONNECT_TIMEOUT_MS = 700
/** How long server/session/cleanup.ts waits for a vanished client's connection to become idle before closing it. */
const CLEANUP_TIMEOUT_MS = 30_000

function yamlFor(port: number, o: { pool?: number } = {}): string {
  return `
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${port}/postgres", pool: ${o.pool ?? 2} }
pool: { mode: transaction, connect_timeout_ms: ${CONNECT_TIMEOUT_MS}, wait_timeout_ms: 3000 }
`
}

const LOGIN_STAGES: Stage[] = ['ssl', 'tls', 'startup', 'sasl']

async function connectError(proxy: RunningProxy): Promise<{ code?: string; message: string; ms: number }> {
  const started = Date.now()
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
  c.on('error', () => undefined)
  const err = await c.connect().then(
    () => null,
    (e: Error & { code?: string }) => e,
  )
  await c.end().catch(() => undefined)
  if (!err) throw new Error('login through the proxy succeeded against a faulty server')
  return { code: err.code, message: err.message, ms: Date.now() - started }
}

for (const stage of LOGIN_STAGES) {
  for (const fault of FAULTS) {
    t.test(`server faults at ${stage}: ${fault}`, async (t) => {
      const fs = await FaultServer.start({ stage, fault })
      const proxy = await startProxy(yamlFor(fs.port))
      t.teardown(async () => {
        await proxy.stop()
        await fs.stop()
      })
      for (let i = 0; i < 2; i++) {
        const e = await connectError(proxy)
        t.match(e.code, /^08(001|006|P01)$/, `client gets a connection-class SQLSTATE (${e.code}: ${e.message})`)
        if (fault === 'stall') {
          t.match(e.message, /timed out/, 'a stalled attempt times out')
          t.ok(e.ms >= CONNECT_TIMEOUT_MS - 50 && e.ms < CONNECT_TIMEOUT_MS + 2000, `after the connect timeout (${e.ms} ms)`)
        } else {
          t.ok(e.ms < CONNECT_TIMEOUT_MS, `${fault} fails at once, not at the timeout (${e.ms} ms)`)
        }
      }
      t.equal(fs.faulted, 2, 'both attempts reached the scripted stage')
      await fs.allClosed(2000)
      t.pass('the proxy destroyed every socket to the faulty server')
      const pool = [...proxy.proxy.pools.pools.values()][0]
      t.equal(pool?.total ?? 0, 0, 'the pool holds no connection and no connecting slot')
    })
  }
}

/** A client logged in through the fault server (which logs in normally before query/COPY stages). */
async function loggedIn(proxy: RunningProxy): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
  c.on('error', () => undefined)
  await c.connect()
  return c
}

for (const fault of FAULTS) {
  t.test(`server faults mid-query after ReadyForQuery: ${fault}`, async (t) => {
    const fs = await FaultServer.start({ stage: 'query', fault })
    const proxy = await startProxy(yamlFor(fs.port))
    t.teardown(async () => {
      await proxy.stop()
      await fs.stop()
    })
    const c = await loggedIn(proxy)
    t.same((await c.query('SELECT 1')).rows, [], 'an ordinary query is answered (by the stub)')
    if (fault === 'stall') {
      // A stalled server looks like a long query: the client hangs up, and the proxy must close the connection.
      const pending = c.query('SELECT fault').catch((e: Error) => e)
      await fs.faults(1, 3000)
      ;(c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy()
      await pending
      await fs.cancelled(1, 3000)
      t.pass('after the client hung up, the proxy sent a CancelRequest')
      await fs.allClosed(CLEANUP_TIMEOUT_MS + 5000)
      t.pass('and closed the server connection that never became idle')
    } else {
      const err = (await c.query('SELECT fault').then(
        () => null,
        (e: Error & { code?: string }) => e,
      )) as (Error & { code?: string }) | null
      t.ok(err, 'the query fails')
      t.match(err?.code, /^(08006|08P01|57P01|08003)$/, `with a connection-class SQLSTATE (${err?.code}: ${err?.message})`)
      await c.end().catch(() => undefined)
      await fs.allClosed(3000)
      t.pass('the broken server connection is closed')
    }
    // Someone else can still log in and query (a new server connection is made).
    const d = await loggedIn(proxy)
    t.same((await d.query('SELECT 2')).rows, [], 'the proxy serves the next client')
    await d.end()
  })
}

for (const stage of ['copy-in', 'copy-out'] as const) {
  for (const fault of FAULTS) {
    t.test(`server faults mid-COPY (${stage}): ${fault}`, async (t) => {
      const fs = await FaultServer.start({ stage, fault })
      const proxy = await startProxy(yamlFor(fs.port))
      t.teardown(async () => {
        await proxy.stop()
        await fs.stop()
      })
      const sql = stage === 'copy-in' ? 'COPY t FROM STDIN' : 'COPY t TO STDOUT'
      const child = spawn('psql', psqlArgs(proxy.url('app', 'app_pw'), sql))
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      child.stdin.on('error', () => undefined)
      if (stage === 'copy-in') child.stdin.write('a\nb\n'.repeat(50_000)) // more than libpq buffers: CopyData goes out before EOF; the stub faults at the first
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
      await fs.faults(1, 5000)
      if (fault === 'stall') {
        child.kill('SIGKILL')
        await exited
        await fs.allClosed(CLEANUP_TIMEOUT_MS + 5000)
        t.pass('after psql went away, the proxy closed the stalled server connection (at the latest when the cleanup gave up)')
      } else {
        child.stdin.end()
        const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000))])
        if (code === 'hung') child.kill('SIGKILL')
        t.not(code, 'hung', 'psql is not left hanging')
        t.not(code, 0, `psql reports the failure (${stderr.trim().split('\n').pop()})`)
        await fs.allClosed(3000)
        t.pass('the broken server connection is closed')
      }
      const d = await loggedIn(proxy)
      t.same((await d.query('SELECT 2')).rows, [], 'the proxy serves the next client')
      await d.end()
    })
  }
}

let server: PgServer | null = null
async function realServer(): Promise<PgServer> {
  if (server) return server
  // TLS on, so that the default sslmode (prefer) negotiates it: the stage issue 15 saw crash the proxy.
  const files = selfSignedCert()
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-pgtls-'))
  const cert = join(dir, 'server.crt')
  const key = join(dir, 'server.key')
  copyFileSync(files.cert, cert)
  copyFileSync(files.key, key)
  chmodSync(key, 0o600)
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    for (const p of [dir, cert, key]) chownSync(p, uid, gid)
  }
  server = await startPostgres({ conf: ['ssl = on', `ssl_cert_file = '${cert}'`, `ssl_key_file = '${key}'`] })
  return server
}
t.teardown(() => server?.stop())

t.test('the pool recovers when the server at the same address is healthy again', async (t) => {
  const pgs = await realServer()
  const fs = await FaultServer.start({ stage: 'ssl', fault: 'reset' })
  const proxy = await startProxy(yamlFor(fs.port, { pool: 3 }))
  t.teardown(async () => {
    await proxy.stop()
    await fs.stop()
  })
  for (const stage of LOGIN_STAGES) {
    for (const fault of FAULTS) {
      fs.script = { stage, fault }
      const errors = await Promise.all([connectError(proxy), connectError(proxy), connectError(proxy), connectError(proxy)])
      t.ok(
        errors.every((e) => /^08/.test(e.code ?? '')),
        `${stage}/${fault}: four concurrent clients get 08xxx (${[...new Set(errors.map((e) => e.code))].join(', ')})`,
      )
    }
  }
  await fs.allClosed(3000)
  fs.script = { pass: { host: '127.0.0.1', port: pgs.port } }
  const clients = await Promise.all([1, 2, 3, 4, 5, 6].map(() => loggedIn(proxy)))
  const rows = await Promise.all(clients.map((c, i) => c.query('SELECT $1::int AS v, pg_backend_pid() AS pid', [i])))
  t.same(
    rows.map((r) => r.rows[0].v),
    [0, 1, 2, 3, 4, 5],
    'six clients are served by the real server',
  )
  const pool = [...proxy.proxy.pools.pools.values()][0]
  t.ok(pool.total <= 3, `the pool stays within its size (${pool.total})`)
  await Promise.all(clients.map((c) => c.end()))
})

t.test('PostgreSQL restarted under load (pg_ctl restart -m fast, TLS, default sslmode): the proxy stays up and serves again', async (t) => {
  const pgs = await realServer()
  const proxy = await startProxy(yamlFor(pgs.port, { pool: 8 }).replace(`connect_timeout_ms: ${CONNECT_TIMEOUT_MS}`, 'connect_timeout_ms: 2000'))
  t.teardown(() => proxy.stop())
  let running = true
  let ok = 0
  const errorCodes = new Map<string, number>()
  const worker = async (): Promise<void> => {
    while (running) {
      const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
      c.on('error', () => undefined)
      try {
        await c.connect()
        while (running) {
          await c.query('SELECT 1')
          ok++
        }
      } catch (e) {
        const code = (e as { code?: string }).code ?? (e as Error).message.slice(0, 40)
        errorCodes.set(code, (errorCodes.get(code) ?? 0) + 1)
        await new Promise((r) => setTimeout(r, 5))
      } finally {
        await c.end().catch(() => undefined)
      }
    }
  }
  const workers = Array.from({ length: 24 }, () => worker())
  const pgdata = join(pgs.dataDir, 'data')
  const asPostgres = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : []
  for (let round = 1; round <= 3; round++) {
    const before = ok
    await waitFor('load is running', () => ok > before + 200, 10000)
    await new Promise<void>((resolve, reject) => {
      const [cmd, ...args] = [
        ...asPostgres,
        join(pgs.bin, 'pg_ctl'),
        '-D',
        pgdata,
        '-l',
        join(pgs.dataDir, 'server.log'),
        '-m',
        'fast',
        '-w',
        '-t',
        '60',
        'restart',
      ]
      const child = spawn(cmd, args, { stdio: 'ignore' })
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl restart exited ${code}`))))
    })
    const after = ok
    await waitFor(`queries succeed again after restart ${round}`, () => ok > after + 200, 20000)
    t.pass(`restart ${round}: the proxy is up and serving`)
  }
  running = false
  await Promise.all(workers)
  t.ok(errorCodes.size > 0, `clients saw the restarts as errors: ${JSON.stringify(Object.fromEntries(errorCodes))}`)
  for (const code of errorCodes.keys()) t.match(code, /^(57P01|57P02|57P03|08006|08001|08P01|08003)$/, `error ${code} is a shutdown/connection-class SQLSTATE`)
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
  await c.connect()
  t.equal((await c.query('SELECT 41 + 1 AS v')).rows[0].v, 42, 'a new client is served')
  await c.end()
})
