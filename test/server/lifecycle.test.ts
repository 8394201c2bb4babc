// The pgtenant process as users run it (the CLI, a child process): SIGHUP reloads, an
// invalid reload keeps the old config, SIGTERM drains; login and idle timeouts; the demo.
import t from 'tap'
import pg from 'pg'
import net from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPostgres, ROLES, freePort } from '../helpers/pg-server.js'
import { run, psqlArgs } from '../helpers/proxy.js'
import { startCli } from '../helpers/cli.js'
import { waitForRunning } from '../helpers/wait.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const backendUrl = server.url(ROLES.scram.user, ROLES.scram.password)

async function canLogin(url: string): Promise<string | null> {
  const c = new pg.Client({ connectionString: url })
  try {
    await c.connect()
    await c.query('SELECT 1')
    return null
  } catch (e) {
    return (e as { code?: string }).code ?? 'error'
  } finally {
    await c.end().catch(() => undefined)
  }
}

t.test('SIGHUP reloads users without dropping connections; a broken file keeps the old config; SIGTERM drains', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-cli-'))
  const file = join(dir, 'pgtenant.yaml')
  const port = await freePort()
  const config = (users: string): string =>
    `listen: 127.0.0.1:${port}\nlog_level: info\nusers:\n${users}\nbackends: { main: { url: "${backendUrl}", pool: 3 } }\n`
  writeFileSync(file, config('  a: { password: a_pw }'))
  const cli = startCli(['--config', file])
  await cli.waitFor(/pgtenant listening/)
  const url = (u: string, p: string): string => `postgres://${u}:${p}@127.0.0.1:${port}/postgres`
  const held = new pg.Client({ connectionString: url('a', 'a_pw') })
  const heldErrors: Error[] = []
  held.on('error', (e) => heldErrors.push(e))
  await held.connect()
  t.equal(await canLogin(url('b', 'b_pw')), '28P01', 'b unknown at first')
  writeFileSync(file, config('  a: { password: a_pw }\n  b: { password: b_pw }'))
  cli.child.kill('SIGHUP')
  await cli.waitFor(/configuration reloaded/)
  t.equal(await canLogin(url('b', 'b_pw')), null, 'b can log in after SIGHUP')
  t.equal((await held.query('SELECT 7 AS v')).rows[0].v, 7, 'the connection open across the reload still works')
  writeFileSync(file, 'listen: [this is not valid\n')
  cli.child.kill('SIGHUP')
  await cli.waitFor(/keeping the old one/)
  t.equal(await canLogin(url('b', 'b_pw')), null, 'an invalid file keeps the old config')
  // SIGTERM: a running transaction may finish; then the process exits.
  await held.query('BEGIN')
  const slow = held.query('SELECT pg_sleep(0.7) AS done')
  await waitForRunning(server, 'SELECT pg_sleep(0.7) AS done')
  cli.child.kill('SIGTERM')
  t.same((await slow).rows, [{ done: '' }], 'the running query finished during the drain')
  await held.query('COMMIT').catch(() => undefined)
  const code = await new Promise((r) => cli.child.on('exit', r))
  t.equal(code, 0, 'exits cleanly')
  t.match(cli.output(), /pgtenant stopped/)
  t.match(heldErrors[0]?.message ?? '', /shutting down/, 'after the drain, remaining clients are told why (57P01)')
  await held.end().catch(() => undefined)
})

t.test('login timeout and idle client timeout', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-cli-'))
  const file = join(dir, 'pgtenant.yaml')
  const port = await freePort()
  writeFileSync(
    file,
    `listen: 127.0.0.1:${port}\nusers: { a: { password: a_pw } }\nbackends: { main: { url: "${backendUrl}" } }\npool: { login_timeout_ms: 300, client_idle_timeout_ms: 400 }\n`,
  )
  const cli = startCli(['--config', file])
  await cli.waitFor(/pgtenant listening/)
  const silent = net.connect(port, '127.0.0.1')
  const told: Buffer[] = []
  silent.on('data', (d) => told.push(d)) // read, or the FIN is never seen
  const closedAfter = await new Promise<number>((resolve) => {
    const start = Date.now()
    silent.on('close', () => resolve(Date.now() - start))
    silent.on('error', () => undefined)
  })
  t.ok(closedAfter >= 250 && closedAfter < 5000, `a client that never logs in is closed (${closedAfter} ms)`)
  t.match(Buffer.concat(told).toString('latin1'), /FATAL.*08006.*login timed out/, 'with a FATAL saying why')
  const idle = new pg.Client({ connectionString: `postgres://a:a_pw@127.0.0.1:${port}/postgres` })
  const ended = new Promise<Error>((resolve) => idle.on('error', resolve))
  await idle.connect()
  const err = await ended
  t.match(err.message, /idle for longer than 400 ms/)
})

t.test('the demo: no --config starts an embedded database with two isolated tenants', async (t) => {
  const port = await freePort()
  const cli = startCli(['--port', String(port), '--metrics-port', String(await freePort())])
  await cli.waitFor(/Connect with:/, 90000)
  t.match(cli.output(), new RegExp(`psql "postgres://app:app_pw@127.0.0.1:${port}/demo"`))
  const url = `postgres://app:app_pw@127.0.0.1:${port}/demo`
  const none = await run('psql', psqlArgs(url, 'SELECT * FROM projects'))
  t.match(none.stderr, /no tenant is set/)
  const acme = await run('psql', ['-X', '-A', '-t', url], "SET app.tenant = 'acme';\nSELECT string_agg(DISTINCT tenant_id, ',') FROM projects;\n")
  const globex = await run('psql', ['-X', '-A', '-t', url], "SET app.tenant = 'globex';\nSELECT string_agg(DISTINCT tenant_id, ',') FROM projects;\n")
  t.equal(acme.stdout.trim().split('\n').pop(), 'acme')
  t.equal(globex.stdout.trim().split('\n').pop(), 'globex')
  cli.child.kill('SIGINT')
  t.equal(await new Promise((r) => cli.child.on('exit', r)), 0)
})
