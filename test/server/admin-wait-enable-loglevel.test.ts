// Issue 16, the last admin-console items, against a real PostgreSQL with node-postgres on
// the console: WAIT_CLOSE blocks until the server connections RECONNECT or RELOAD replaced
// are closed (PgBouncer's behaviour; it used to answer 55006 at once); DISABLE/ENABLE of a
// database (a backend, as SHOW DATABASES names it); a log_level reload reaches sessions that
// were connected before it.
import t from 'tap'
import pg from 'pg'
import net from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPostgres, freePort, ROLES } from '../helpers/pg-server.js'
import { loadConfig } from '../../server/config.js'
import { createLogger } from '../../server/log.js'
import { Proxy } from '../../server/proxy.js'
import { initParser } from '../../parser/index.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`CREATE TABLE items (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
  INSERT INTO items SELECT 't' || k, g FROM generate_series(1, 3) k, generate_series(1, 2) g;`)
await initParser()

const mainUrl = server.url(ROLES.scram.user, ROLES.scram.password)
// Clients name the database "main" (a backend name): accepted with or without a `databases:` mapping.
const BACKENDS = `  main: { url: "${mainUrl}", pool: 3 }\n  other: { url: "${mainUrl}", pool: 3 }\n`

interface Started {
  proxy: Proxy
  port: number
  lines: Record<string, any>[]
  /** Rewrite the config file (RELOAD on the console re-reads it). */
  write(o: { logLevel?: string; backends?: string }): void
  url(user: string, password: string, database: string): string
}

async function start(): Promise<Started> {
  const port = await freePort()
  const file = join(mkdtempSync(join(tmpdir(), 'pgtenant-admin-')), 'pgtenant.yaml')
  const write = (o: { logLevel?: string; backends?: string }): void =>
    writeFileSync(
      file,
      `listen: 127.0.0.1:${port}\nlog_level: ${o.logLevel ?? 'info'}\nusers:\n  app: { password: app_pw }\n  boss: { password: boss_pw, admin: true }\n` +
        `backends:\n${o.backends ?? BACKENDS}placement: { default: main, tenants: { t2: other } }\ntenant: { column: tenant_id }\npool: { connect_timeout_ms: 2000, wait_timeout_ms: 20000 }\n`,
    )
  write({})
  const lines: Record<string, any>[] = []
  const log = createLogger('info', undefined, 'json', { write: (l: string) => lines.push(JSON.parse(l)) })
  const proxy = new Proxy(loadConfig(file), log)
  proxy.configPath = file
  await proxy.listen()
  t.teardown(() => proxy.shutdown(200))
  return { proxy, port, lines, write, url: (user, password, database) => `postgres://${user}:${password}@127.0.0.1:${port}/${database}` }
}

async function client(url: string, tenant?: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, ...(tenant ? { options: `-c app.tenant=${tenant}` } : {}) })
  c.on('error', () => undefined)
  await c.connect()
  t.teardown(() => c.end().catch(() => undefined))
  return c
}

/** A query's promise and whether it has settled yet. */
function watch<T>(p: Promise<T>): { p: Promise<T>; settled: () => boolean } {
  let settled = false
  p.then(
    () => (settled = true),
    () => (settled = true),
  )
  return { p, settled: () => settled }
}

// node-postgres keeps the command tag up to the first non-letter: WAIT_CLOSE's CommandComplete reads 'WAIT'.
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const pid = async (c: pg.Client): Promise<number> => (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p

t.test('WAIT_CLOSE blocks until the connection RECONNECT replaced is released and closed; the event loop and the console stay usable', async (t) => {
  const s = await start()
  const admin = await client(s.url('boss', 'boss_pw', 'pgtenant'))
  const other = await client(s.url('boss', 'boss_pw', 'pgtenant'))
  const c = await client(s.url('app', 'app_pw', 'main'), 't1')
  await c.query('BEGIN')
  const before = await pid(c)
  t.equal((await admin.query('WAIT_CLOSE')).command, 'WAIT', 'nothing marked: answers at once')
  await admin.query('RECONNECT main')
  const servers = (await other.query('SHOW SERVERS')).rows
  t.match(
    servers.find((r) => Number(r.server_pid) === before),
    { close_needed: 'true', state: 'active' },
    'SHOW SERVERS: close_needed',
  )
  const wait = watch(admin.query('WAIT_CLOSE main'))
  await sleep(400)
  t.notOk(wait.settled(), 'WAIT_CLOSE is still waiting while the connection is in a transaction')
  t.equal(await pid(c), before, 'the transaction keeps its server connection')
  t.equal((await other.query('SHOW VERSION')).rows.length, 1, 'another console session is answered meanwhile')
  const waitOther = watch(other.query('WAIT_CLOSE other'))
  t.equal((await waitOther.p).command, 'WAIT', 'WAIT_CLOSE of another database answers at once')
  await c.query('COMMIT')
  const done = Date.now()
  t.equal((await wait.p).command, 'WAIT', 'WAIT_CLOSE returns once the connection is released and closed')
  t.ok(Date.now() - done < 3000, 'promptly')
  t.equal(server.sql(`SELECT count(*) FROM pg_stat_activity WHERE pid = ${before}`).trim(), '0', 'the old server connection is gone on the server')
  t.not(await pid(c), before, 'the next transaction gets a new server connection')
  t.equal((await admin.query('SHOW VERSION')).rows.length, 1, 'the console session that waited is usable')
  await t.rejects(admin.query('WAIT_CLOSE nope'), { code: '42704', message: /no database "nope".*main, other/ })
})

t.test('WAIT_CLOSE returns when the marked connection dies on the server, or its client goes away mid-transaction', async (t) => {
  const s = await start()
  const admin = await client(s.url('boss', 'boss_pw', 'pgtenant'))
  const c = await client(s.url('app', 'app_pw', 'main'), 't1')
  await c.query('BEGIN')
  const killed = await pid(c)
  await admin.query('RECONNECT')
  const wait = watch(admin.query('WAIT_CLOSE'))
  await sleep(300)
  t.notOk(wait.settled())
  server.sql(`SELECT pg_terminate_backend(${killed})`)
  t.equal((await wait.p).command, 'WAIT', 'the server ended the connection: WAIT_CLOSE returns')

  const d = await client(s.url('app', 'app_pw', 'main'), 't1')
  await d.query('BEGIN')
  await d.query('SELECT 1')
  await admin.query('RECONNECT main')
  const wait2 = watch(admin.query('WAIT_CLOSE main'))
  await sleep(300)
  t.notOk(wait2.settled())
  await d.end() // mid-transaction: the proxy rolls it back, releases, and the release closes it
  t.equal((await wait2.p).command, 'WAIT', 'the client left: WAIT_CLOSE returns')
})

t.test('RELOAD that changes a backend marks its connections; WAIT_CLOSE waits for them; a CancelRequest ends a wait with 57014', async (t) => {
  const s = await start()
  const admin = await client(s.url('boss', 'boss_pw', 'pgtenant'))
  const c = await client(s.url('app', 'app_pw', 'main'), 't1')
  await c.query('BEGIN')
  const before = await pid(c)
  s.write({ logLevel: 'warn' }) // the same backends: nothing to replace
  await admin.query('RELOAD')
  t.equal((await admin.query('WAIT_CLOSE')).command, 'WAIT', 'a reload that changed no backend marks nothing')
  s.write({ backends: `  main: { url: "${mainUrl.replace('127.0.0.1', 'localhost')}", pool: 3 }\n  other: { url: "${mainUrl}", pool: 3 }\n` })
  await admin.query('RELOAD')
  const wait = watch(admin.query('WAIT_CLOSE main'))
  await sleep(300)
  t.notOk(wait.settled(), 'the reload marked the connection of the changed backend')
  await c.query('COMMIT')
  t.equal((await wait.p).command, 'WAIT')
  t.not(await pid(c), before, 'a new connection, to the new address')

  // CancelRequest (psql's Ctrl-C) on a waiting WAIT_CLOSE.
  await c.query('BEGIN')
  await c.query('SELECT 1')
  await admin.query('RECONNECT')
  const wait2 = watch(admin.query('WAIT_CLOSE'))
  await sleep(200)
  const p = admin as unknown as { processID: number; secretKey: number }
  await new Promise<void>((resolve) => {
    const sock = net.connect(s.port, '127.0.0.1', () => {
      const b = Buffer.alloc(16)
      b.writeInt32BE(16, 0)
      b.writeInt32BE(80877102, 4)
      b.writeInt32BE(p.processID, 8)
      b.writeInt32BE(p.secretKey, 12)
      sock.end(b)
    })
    sock.on('close', () => resolve())
  })
  await t.rejects(wait2.p, { code: '57014' }, 'canceled')
  t.equal((await admin.query('SHOW VERSION')).rows.length, 1, 'the console session is usable after the cancel')
  await c.query('COMMIT')
})

t.test('WAIT_CLOSE holds the messages sent after it: replies stay in order', async (t) => {
  const s = await start()
  const admin = await client(s.url('boss', 'boss_pw', 'pgtenant'))
  const c = await client(s.url('app', 'app_pw', 'main'), 't1')
  await c.query('BEGIN')
  await c.query('SELECT 1')
  await admin.query('RECONNECT')
  // Pipeline two queries on the console's connection, under node-postgres's query queue.
  const con = (admin as unknown as { connection: import('node:events').EventEmitter & { query(sql: string): void } }).connection
  con.removeAllListeners('commandComplete')
  con.removeAllListeners('readyForQuery')
  con.removeAllListeners('dataRow')
  con.removeAllListeners('rowDescription')
  const seen: string[] = []
  con.on('commandComplete', (m: { text: string }) => seen.push(m.text))
  con.on('dataRow', () => seen.push('row'))
  let ready = 0
  con.on('readyForQuery', () => ready++)
  con.query('WAIT_CLOSE')
  con.query('SHOW VERSION')
  await sleep(400)
  t.same(seen, [], 'nothing answered while WAIT_CLOSE waits, not even the query after it')
  await c.query('COMMIT')
  const deadline = Date.now() + 5000
  while (ready < 2 && Date.now() < deadline) await sleep(20)
  t.same(seen, ['WAIT_CLOSE', 'row', 'SELECT 1'], 'WAIT_CLOSE first, then SHOW VERSION')
})

t.test('DISABLE <db> / ENABLE <db>: new logins on that backend get 57P03, connected sessions continue; the tenant form still works', async (t) => {
  const s = await start()
  const admin = await client(s.url('boss', 'boss_pw', 'pgtenant'))
  const old = await client(s.url('app', 'app_pw', 'main'), 't1')
  await old.query('SELECT 1')
  await admin.query('DISABLE main')
  t.match(
    (await admin.query('SHOW DATABASES')).rows.map((r) => [r.name, r.disabled]),
    [
      ['main', 'true'],
      ['other', 'false'],
    ],
  )
  const refused = await client(s.url('app', 'app_pw', 'main'), 't1').then(
    () => null,
    (e) => e,
  )
  t.match(refused, { code: '57P03', message: /^database "main" is disabled/ }, 'a new login on main is refused with 57P03')
  t.match(
    s.lines.find((l) => l.msg === 'client refused: database disabled'),
    { level: 40, backend: 'main' },
    'logged at warn',
  )
  t.equal((await old.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 2, 'the session connected before DISABLE continues')
  const onOther = await client(s.url('app', 'app_pw', 'main'), 't2')
  t.equal((await onOther.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 2, 'a login placed on another backend is let in')
  await onOther.query("SET app.tenant = 't1'")
  await t.rejects(
    onOther.query('SELECT count(*) FROM items'),
    { code: '57P03', message: /database "main" is disabled/ },
    'a session connected after DISABLE cannot move onto it',
  )
  await old.query("SET app.tenant = 't2'")
  await old.query('SELECT 1')
  await old.query("SET app.tenant = 't1'")
  t.equal((await old.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 2, 'an older session may come back to it')
  await t.rejects(admin.query('DISABLE nope'), { code: '42704' })
  // The tenant form is unchanged.
  await admin.query("DISABLE TENANT 't1'")
  await t.rejects(old.query('SELECT count(*) FROM items'), { code: '57P03', message: /tenant "t1" is disabled/ })
  await admin.query("ENABLE TENANT 't1'")
  await admin.query('ENABLE "main"') // a name may be quoted
  t.equal((await admin.query('SHOW DATABASES')).rows.find((r) => r.name === 'main').disabled, 'false')
  const back = await client(s.url('app', 'app_pw', 'main'), 't1')
  t.equal((await back.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 2, 'ENABLE: new logins again')
  t.equal((await onOther.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 2)
})

t.test('log_level reload reaches sessions connected before it', async (t) => {
  const s = await start()
  const c = await client(s.url('app', 'app_pw', 'main'), 't1')
  await c.query('SELECT count(*) FROM items')
  const admin = await client(s.url('boss', 'boss_pw', 'pgtenant'))
  const sid = Number((await admin.query('SHOW CLIENTS')).rows.find((r) => r.user === 'app').id)
  const mine = (level: number): Record<string, any>[] => s.lines.filter((l) => l.session === sid && l.level === level)
  t.equal(mine(20).length, 0, 'no debug lines from the session at info')
  s.write({ logLevel: 'debug' })
  await admin.query('RELOAD')
  await c.query('SELECT count(*) FROM items')
  t.ok(mine(20).length > 0, 'the session connected before the reload logs at debug now')
  s.write({ logLevel: 'warn' })
  await admin.query('RELOAD')
  const debug = mine(20).length
  const info = mine(30).length
  await c.query('SELECT count(*) FROM items')
  await c.end()
  await sleep(100)
  t.equal(mine(20).length, debug, 'no debug lines after the reload to warn')
  t.equal(mine(30).length, info, 'no info line ("client disconnected") either')
})

t.test('pgtenant --config with workers: 2: SIGHUP applies log_level in the workers (sessions connected before) and in the primary', async (t) => {
  const { startCli } = await import('../helpers/cli.js')
  const port = await freePort()
  const file = join(mkdtempSync(join(tmpdir(), 'pgtenant-admin-cli-')), 'pgtenant.yaml')
  const yaml = (level: string): string =>
    `listen: 127.0.0.1:${port}\nlog_level: ${level}\nworkers: 2\nusers:\n  app: { password: app_pw }\nbackends:\n  main: { url: "${mainUrl}", pool: 3 }\n`
  writeFileSync(file, yaml('info'))
  const cli = startCli(['--config', file])
  await cli.waitFor(/pgtenant listening[\s\S]*pgtenant listening/)
  const c = await client(`postgres://app:app_pw@127.0.0.1:${port}/main`)
  await c.query('SELECT 1')
  const json = (): Record<string, any>[] =>
    cli
      .output()
      .split('\n')
      .flatMap((l) => (l.startsWith('{') ? [JSON.parse(l)] : []))
  t.equal(json().filter((l) => l.level === 20).length, 0, 'nothing at debug yet')
  writeFileSync(file, yaml('debug'))
  cli.child.kill('SIGHUP')
  await cli.waitFor(/"to":"debug"[\s\S]*"to":"debug"/, 10000) // both workers
  await c.query('SELECT 1')
  await sleep(200)
  t.ok(
    json().some((l) => l.level === 20 && l.session !== undefined),
    'the session connected before SIGHUP logs at debug',
  )
  writeFileSync(file, yaml('warn'))
  cli.child.kill('SIGHUP')
  await cli.waitFor(/"to":"warn"[\s\S]*"to":"warn"/, 10000)
  await sleep(300)
  t.ok(
    json().some((l) => l.msg === 'log level changed' && l.to === 'warn' && l.worker === undefined),
    'the primary applied it too',
  )
  const mark = cli.output().length
  await c.end()
  cli.child.kill('SIGTERM')
  await new Promise((resolve) => cli.child.once('exit', resolve))
  const after = cli.output().slice(mark)
  t.notMatch(after, /stopping workers/, 'the primary logs at warn now (its info line "stopping workers" is gone)')
  t.notMatch(after, /client disconnected|draining/, 'the workers too')
})
