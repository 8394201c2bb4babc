// `workers: N`: the CLI forks N worker processes sharing the port. Clients are spread over
// them, a CancelRequest reaches the worker holding the client whichever worker receives it,
// /metrics on the primary sums the workers, SIGHUP reloads every worker, a worker that dies
// is started again, and SIGTERM stops them all.
import t from 'tap'
import pg from 'pg'
import net from 'node:net'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPostgres, ROLES, freePort } from '../helpers/pg-server.js'
import { startCli } from '../helpers/cli.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const dir = mkdtempSync(join(tmpdir(), 'pgtenant-workers-'))
const file = join(dir, 'pgtenant.yaml')
const [port, metricsPort] = [await freePort(), await freePort()]
const config = (users: string): string =>
  `listen: 127.0.0.1:${port}\nmetrics: 127.0.0.1:${metricsPort}\nworkers: 2\nusers:\n${users}\nbackends: { main: { url: "${server.url(ROLES.scram.user, ROLES.scram.password)}", pool: 6 } }\n`
writeFileSync(file, config('  a: { password: a_pw }'))
const cli = startCli(['--config', file])
await cli.waitFor(/pgtenant listening[\s\S]*pgtenant listening/)

const url = (user = 'a', password = 'a_pw'): string => `postgres://${user}:${password}@127.0.0.1:${port}/postgres`
/** The worker a client is on: the low 6 bits of its cancel key's pid. */
const workerOf = (c: pg.Client): number => (c as unknown as { processID: number }).processID % 64

async function connect(u = url()): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: u })
  await c.connect()
  return c
}

async function metric(line: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
  const m = line.exec(text)
  return m ? Number(m[1]) : 0
}

function sendCancel(pid: number, secret: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      const b = Buffer.alloc(16)
      b.writeInt32BE(16, 0)
      b.writeInt32BE(80877102, 4)
      b.writeInt32BE(pid, 8)
      b.writeInt32BE(secret, 12)
      s.end(b)
    })
    s.on('close', () => resolve())
    s.on('error', () => resolve())
  })
}

t.test('clients are spread over both workers; /metrics sums them', async (t) => {
  const clients = await Promise.all(Array.from({ length: 8 }, () => connect()))
  const answers = await Promise.all(clients.map(async (c) => (await c.query('SELECT 41 + 1 AS v')).rows[0].v))
  t.same(answers, Array(8).fill(42), 'every client is served')
  t.same([...new Set(clients.map(workerOf))].sort(), [0, 1], 'both workers hold clients')
  t.equal(await metric(/^pgtenant_client_connections\{state="idle"\} (\d+)/m), 8, 'the primary reports the 8 idle clients of both workers')
  t.equal(await metric(/^pgtenant_pool_size\{backend="main"\} (\d+)/m), 6, 'pool 6 split as 3 per worker')
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status, 200, 'ready: both workers up and their backend answers')
  await Promise.all(clients.map((c) => c.end()))
})

t.test('a CancelRequest reaches the worker that holds the client', async (t) => {
  const cancelled: string[] = []
  // Which worker receives the cancel connection is up to the primary: repeat until one was forwarded.
  for (let attempt = 0; attempt < 10 && (await metric(/^pgtenant_cancel_requests_total\{result="forwarded"\} (\d+)/m)) === 0; attempt++) {
    const c = await connect()
    const started = Date.now()
    const sleeping = c.query('SELECT pg_sleep(30)').then(
      () => 'not cancelled',
      (e: { code?: string }) => e.code ?? 'error',
    )
    await new Promise((r) => setTimeout(r, 300))
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number }
    await sendCancel(processID, secretKey)
    cancelled.push(`${await sleeping} after ${Date.now() - started < 10000 ? '<10 s' : '>10 s'}`)
    await c.end()
  }
  t.ok(cancelled.length > 0, `${cancelled.length} attempt(s)`)
  t.same([...new Set(cancelled)], ['57014 after <10 s'], 'every cancel stopped its query')
  t.ok((await metric(/^pgtenant_cancel_requests_total\{result="forwarded"\} (\d+)/m)) >= 1, 'at least one cancel arrived at the other worker and was forwarded')
  t.equal(await metric(/^pgtenant_cancel_requests_total\{result="unmatched"\} (\d+)/m), 0, 'no cancel went unmatched')
})

t.test('SIGHUP reloads every worker', async (t) => {
  writeFileSync(file, config('  a: { password: a_pw }\n  b: { password: b_pw }'))
  cli.child.kill('SIGHUP')
  await new Promise((r) => setTimeout(r, 1000))
  const clients = await Promise.all(Array.from({ length: 6 }, () => connect(url('b', 'b_pw'))))
  t.same([...new Set(clients.map(workerOf))].sort(), [0, 1], 'the new user logs in on both workers')
  await Promise.all(clients.map((c) => c.end()))
})

t.test('a worker that dies is started again; SIGTERM stops everything', async (t) => {
  const children = execFileSync('pgrep', ['-P', String(cli.child.pid)], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map(Number)
  t.equal(children.length, 2, 'two worker processes')
  process.kill(children[0], 'SIGKILL')
  await cli.waitFor(/worker exited; starting it again/)
  await cli.waitFor(/(pgtenant listening[\s\S]*){3}/, 15000)
  const clients = await Promise.all(Array.from({ length: 6 }, () => connect()))
  t.same([...new Set(clients.map(workerOf))].sort(), [0, 1], 'both workers serve again')
  await Promise.all(clients.map((c) => c.end()))
  const exited = new Promise<number | null>((resolve) => cli.child.once('exit', (code) => resolve(code)))
  cli.child.kill('SIGTERM')
  t.equal(await exited, 0, 'the primary exits 0')
  const left = children.slice(1).filter((pid) => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  })
  t.same(left, [], 'no worker is left running')
})
