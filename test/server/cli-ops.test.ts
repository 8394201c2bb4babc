// The CLI as operators meet it (issue 16): safe and immediate shutdown by signal, ports in
// use, bad flags, --check, hash-password. Each case runs dist/server/cli.js as a child process.
import t from 'tap'
import pg from 'pg'
import net from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { startPostgres, ROLES, freePort } from '../helpers/pg-server.js'
import { startCli, CLI } from '../helpers/cli.js'
import { waitForRunning } from '../helpers/wait.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`CREATE TABLE items (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id)); CREATE TABLE countries (code text PRIMARY KEY);`)
const backendUrl = server.url(ROLES.scram.user, ROLES.scram.password)
const dir = mkdtempSync(join(tmpdir(), 'pgtenant-cli-ops-'))

function configFile(name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

async function basicConfig(name: string, extra = ''): Promise<{ file: string; port: number }> {
  const port = await freePort()
  const file = configFile(
    name,
    `listen: 127.0.0.1:${port}\nlog_level: info\nusers: { a: { password: a_pw } }\nbackends: { main: { url: "${backendUrl}", pool: 3 } }\n${extra}`,
  )
  return { file, port }
}

/** Runs the CLI to completion: exit code and all output. */
function runCli(args: string[], input?: string): Promise<{ code: number | null; out: string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('node', [CLI, ...args])
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code, out: stdout + stderr, stdout, stderr }))
    child.stdin.end(input ?? '')
  })
}

const exited = (child: { on(e: 'exit', f: (c: number | null) => void): void; exitCode: number | null }): Promise<number | null> =>
  child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((r) => child.on('exit', r))

t.test('SIGTERM: idle clients closed, a running transaction finishes, no new transaction, exit as soon as it is done', async (t) => {
  const { file, port } = await basicConfig('drain.yaml', 'pool: { shutdown_timeout_ms: 30000 }\n')
  const cli = startCli(['--config', file])
  await cli.waitFor(/pgtenant listening/)
  const url = `postgres://a:a_pw@127.0.0.1:${port}/postgres`
  const idle = new pg.Client({ connectionString: url })
  const idleClosed = new Promise<Error>((r) => idle.on('error', r))
  await idle.connect()
  const busy = new pg.Client({ connectionString: url })
  const busyErrors: Error[] = []
  busy.on('error', (e) => busyErrors.push(e))
  await busy.connect()
  await busy.query('BEGIN')
  const slow = busy.query('SELECT pg_sleep(1) AS slept')
  await waitForRunning(server, 'SELECT pg_sleep(1) AS slept')
  const signalled = Date.now()
  cli.child.kill('SIGTERM')
  await cli.waitFor(/draining 1 clients, up to 30 s/)
  t.match((await idleClosed).message, /shutting down/, 'the idle client is closed at once (57P01)')
  await slow
  t.equal((await busy.query('SELECT 2 AS v')).rows[0].v, 2, 'the transaction goes on during the drain')
  await busy.query('COMMIT')
  const next = await busy.query('SELECT 3').then(
    () => 'ran',
    (e: Error & { code?: string }) => e.code ?? e.message,
  )
  t.match(next, /57P01|shutting down|Connection terminated/, `no new transaction during the drain (${next})`)
  t.equal(await exited(cli.child), 0)
  const took = Date.now() - signalled
  t.ok(took < 15000, `exits when the transaction is done, not at the 30 s timeout (${took} ms)`)
  t.match(cli.output(), /pgtenant stopped/)
  await busy.end().catch(() => undefined)
  await idle.end().catch(() => undefined)
})

t.test('a second SIGTERM, or SIGINT, shuts down at once', async (t) => {
  for (const second of ['SIGTERM', 'SIGINT'] as const) {
    const { file, port } = await basicConfig(`twice-${second}.yaml`, 'pool: { shutdown_timeout_ms: 60000 }\n')
    const cli = startCli(['--config', file])
    await cli.waitFor(/pgtenant listening/)
    const c = new pg.Client({ connectionString: `postgres://a:a_pw@127.0.0.1:${port}/postgres` })
    const errors: Error[] = []
    c.on('error', (e) => errors.push(e))
    await c.connect()
    await c.query('BEGIN')
    const stuck = c.query('SELECT pg_sleep(60)').catch((e: Error) => e)
    await waitForRunning(server, 'SELECT pg_sleep(60)')
    cli.child.kill('SIGTERM')
    await cli.waitFor(/draining 1 clients/)
    const t0 = Date.now()
    cli.child.kill(second)
    t.equal(await exited(cli.child), 0, `${second} during the drain: exit 0`)
    t.ok(Date.now() - t0 < 10000, `${second}: at once (${Date.now() - t0} ms)`)
    t.match(cli.output(), /closing every client now/)
    t.match(String(await stuck), /shutting down|terminated/i, 'the client in a transaction is told')
    await c.end().catch(() => undefined)
  }
  // SIGINT alone (Ctrl-C): immediate.
  const { file, port } = await basicConfig('int.yaml', 'pool: { shutdown_timeout_ms: 60000 }\n')
  const cli = startCli(['--config', file])
  await cli.waitFor(/pgtenant listening/)
  const c = new pg.Client({ connectionString: `postgres://a:a_pw@127.0.0.1:${port}/postgres` })
  c.on('error', () => undefined)
  await c.connect()
  const stuck = c.query('SELECT pg_sleep(60)').catch((e: Error) => e)
  await waitForRunning(server, 'SELECT pg_sleep(60)')
  const t0 = Date.now()
  cli.child.kill('SIGINT')
  t.equal(await exited(cli.child), 0)
  t.ok(Date.now() - t0 < 10000, `SIGINT: at once (${Date.now() - t0} ms)`)
  t.match(String(await stuck), /shutting down|terminated/i)
  await c.end().catch(() => undefined)
})

t.test('a port in use: one line, exit 2, nothing announced', async (t) => {
  const blocker = net.createServer()
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => blocker.close())
  const taken = (blocker.address() as net.AddressInfo).port
  const onListen = configFile('taken.yaml', `listen: 127.0.0.1:${taken}\nusers: { a: { password: a_pw } }\nbackends: { main: { url: "${backendUrl}" } }\n`)
  let r = await runCli(['--config', onListen])
  t.equal(r.code, 2)
  t.equal(r.stderr, `pgtenant: cannot listen on 127.0.0.1:${taken} (listen): address already in use\n`)
  const { file } = await basicConfig('metrics-taken.yaml', `metrics: 127.0.0.1:${taken}\n`)
  r = await runCli(['--config', file])
  t.equal(r.code, 2)
  t.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken} \\(metrics\\): address already in use`))
  t.notMatch(r.out, /listening/, 'no "listening" before the metrics port failed')
  t.notMatch(r.out, / {4}at /, 'no stack trace')
})

t.test('bad flags are errors, not a silent demo', async (t) => {
  for (const args of [['--confg', 'x.yaml'], ['--config'], ['--config', '--check'], ['--check'], ['stray'], ['--port', 'abc']]) {
    const r = await runCli(args)
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`)
    t.match(r.stderr, /^pgtenant: .+\n\nusage:/, `${args.join(' ')}: says why (${r.stderr.split('\n')[0]})`)
    t.notMatch(r.out, /starting embedded PostgreSQL/, 'no demo started')
  }
  const missing = await runCli(['--config', join(dir, 'nope.yaml')])
  t.equal(missing.code, 2)
})

t.test('--check: validates, connects to each backend, lists the tenant tables; exit 0 or 2', async (t) => {
  const good = configFile(
    'check.yaml',
    `listen: 127.0.0.1:6432\nusers: { a: { password: a_pw } }\nbackends: { main: { url: "${backendUrl}" } }\ntenant: { column: tenant_id, reference: [countries] }\n`,
  )
  let r = await runCli(['--check', '--config', good])
  t.equal(r.code, 0, r.out)
  t.match(r.stdout, /configuration is valid/)
  t.match(r.stdout, /backend main \(127\.0\.0\.1:\d+\/postgres as scram_user\): connected, PostgreSQL \d+/)
  t.match(r.stdout, /tenant tables: .*public\.items \(tenant_id\)/)
  t.match(r.stdout, /reference tables: public\.countries/)
  const closed = await freePort()
  const bad = configFile(
    'check-bad.yaml',
    `listen: 127.0.0.1:6432\nusers: { a: { password: a_pw } }\nbackends: { main: { url: "postgres://u:p@127.0.0.1:${closed}/db" } }\npool: { connect_timeout_ms: 2000 }\n`,
  )
  r = await runCli(['--config', bad, '--check'])
  t.equal(r.code, 2)
  t.match(r.stdout, /backend main .*FAILED: .*(ECONNREFUSED|could not connect)/)
  const invalid = configFile('check-invalid.yaml', 'listen: 127.0.0.1:6432\n')
  r = await runCli(['--check', '--config', invalid])
  t.equal(r.code, 2)
  t.match(r.stderr, /users/)
})

t.test('hash-password: a SCRAM verifier that logs in', async (t) => {
  const r = await runCli(['hash-password'], 's3cret pw\n')
  t.equal(r.code, 0)
  const verifier = r.stdout.trim()
  t.match(verifier, /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/)
  t.match((await runCli(['hash-password', 'x'])).stdout, /^SCRAM-SHA-256\$/)
  const port = await freePort()
  const file = configFile('hashed.yaml', `listen: 127.0.0.1:${port}\nusers: { h: { password: "${verifier}" } }\nbackends: { main: { url: "${backendUrl}" } }\n`)
  const cli = startCli(['--config', file])
  await cli.waitFor(/pgtenant listening/)
  const c = new pg.Client({ connectionString: `postgres://h:${encodeURIComponent('s3cret pw')}@127.0.0.1:${port}/postgres` })
  await c.connect()
  t.equal((await c.query('SELECT 1 AS v')).rows[0].v, 1)
  await c.end()
  cli.child.kill('SIGTERM')
  await exited(cli.child)
})

t.test('the ready line says TLS, pool mode and config path; log_format pretty is readable', async (t) => {
  const { file } = await basicConfig('pretty.yaml', 'log_format: pretty\n')
  const cli = startCli(['--config', file])
  await cli.waitFor(/pgtenant listening/)
  t.match(
    cli.output(),
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO {2}pgtenant listening on 127\.0\.0\.1:\d+ \(TLS off, transaction pooling\) .*config=\S*pretty\.yaml/m,
  )
  cli.child.kill('SIGTERM')
  t.equal(await exited(cli.child), 0)
})
