// Day-one operations (issue 16), in process: what an operator sees in the log and the
// metrics when a backend is down, a non-PostgreSQL client knocks, a login fails; readiness;
// what a reload applies and what needs a restart; the admin console's PgBouncer commands.
import t from 'tap'
import pg from 'pg'
import net from 'node:net'
import { startPostgres, freePort, ROLES } from '../helpers/pg-server.js'
import { run } from '../helpers/proxy.js'
import { parseConfig } from '../../server/config.js'
import { createLogger, prettyLine } from '../../server/log.js'
import { Proxy } from '../../server/proxy.js'
import { initParser } from '../../parser/index.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`CREATE TABLE items (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
  INSERT INTO items SELECT 't' || k, g FROM generate_series(1, 3) k, generate_series(1, 2) g;`)
await initParser()

interface Started {
  proxy: Proxy
  port: number
  mport: number
  lines: Record<string, any>[]
  waitLog(re: RegExp, ms?: number): Promise<Record<string, any>>
  yaml(extra?: string): string
}

async function start(backendUrl: string, extra = ''): Promise<Started> {
  const port = await freePort()
  const mport = await freePort()
  const lines: Record<string, any>[] = []
  const yaml = (more = extra): string =>
    `listen: 127.0.0.1:${port}\nmetrics: 127.0.0.1:${mport}\nlog_level: info\nusers:\n  app: { password: app_pw }\n  boss: { password: boss_pw, admin: true }\nbackends:\n  main: { url: "${backendUrl}", pool: 3 }\ntenant: { column: tenant_id }\npool: { connect_timeout_ms: 2000, wait_timeout_ms: 20000 }\n${more}`
  const log = createLogger('info', undefined, 'json', { write: (l: string) => lines.push(JSON.parse(l)) })
  const proxy = new Proxy(parseConfig(yaml(), process.env, process.cwd()), log)
  await proxy.listen()
  t.teardown(() => proxy.shutdown(200))
  const waitLog = (re: RegExp, ms = 20000): Promise<Record<string, any>> =>
    new Promise((resolve, reject) => {
      const started = Date.now()
      const look = (): void => {
        const hit = lines.find((l) => re.test(l.msg))
        if (hit) resolve(hit)
        else if (Date.now() - started > ms) reject(new Error(`no log line ${re}: ${JSON.stringify(lines.map((l) => l.msg))}`))
        else setTimeout(look, 25)
      }
      look()
    })
  return { proxy, port, mport, lines, waitLog, yaml }
}

async function scrape(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^(pgtenant_[a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (m) out.set(m[1], Number(m[2]))
  }
  return out
}

async function loginError(url: string): Promise<{ code?: string; message: string } | null> {
  const c = new pg.Client({ connectionString: url })
  c.on('error', () => undefined)
  try {
    await c.connect()
    await c.query('SELECT 1')
    return null
  } catch (e) {
    return e as { code?: string; message: string }
  } finally {
    await c.end().catch(() => undefined)
  }
}

t.test('a backend down when clients log in: warn line with backend and reason, connect errors counted, still ready', async (t) => {
  const closed = await freePort()
  const s = await start(`postgres://u:p@127.0.0.1:${closed}/db`)
  const err = await loginError(`postgres://app:app_pw@127.0.0.1:${s.port}/db`)
  t.match(err?.message ?? '', /could not reach the server/, 'the client is told')
  const line = await s.waitLog(/server connect failed/)
  t.equal(line.level, 40, 'logged at warn')
  t.equal(line.backend, 'main')
  t.match(line.reason, /ECONNREFUSED|could not connect/)
  t.equal(line.server, `127.0.0.1:${closed}`)
  const m = await scrape(s.mport)
  t.ok((m.get('pgtenant_server_connect_errors_total{backend="main"}') ?? 0) >= 2, 'catalog discovery and the login both counted')
  t.equal(m.get('pgtenant_ready'), 1, 'a backend outage does not make the proxy unready')
  t.equal((await fetch(`http://127.0.0.1:${s.mport}/readyz`)).status, 200)
})

t.test('a backend that refuses the password: counted and logged too', async (t) => {
  const s = await start(server.url(ROLES.scram.user, 'not the password'))
  const before = (await scrape(s.mport)).get('pgtenant_server_connect_errors_total{backend="main"}') ?? 0
  const err = await loginError(`postgres://app:app_pw@127.0.0.1:${s.port}/postgres`)
  t.ok(err, 'login fails')
  const after = (await scrape(s.mport)).get('pgtenant_server_connect_errors_total{backend="main"}') ?? 0
  t.ok(after > before, `counted (${before} -> ${after})`)
  const line = s.lines.find((l) => l.msg === 'server connect failed' && l.purpose === 'pool')
  t.equal(line?.sqlstate, '28P01')
})

t.test('bad clients and failed logins: warn lines with a reason, counted by reason; the client sees one message', async (t) => {
  const s = await start(server.url(ROLES.scram.user, ROLES.scram.password))
  // An HTTP request on the PostgreSQL port.
  const http = await fetch(`http://127.0.0.1:${s.port}/`).then(
    () => 'answered',
    () => 'failed',
  )
  t.equal(http, 'failed')
  const line = await s.waitLog(/protocol violation before login/)
  t.equal(line.level, 40)
  // Garbage: a short length word.
  const sock = net.connect(s.port, '127.0.0.1')
  sock.on('error', () => undefined)
  const told: Buffer[] = []
  sock.on('data', (d) => told.push(d)) // read, or the FIN is never seen
  const startedAt = Date.now()
  sock.write(Buffer.from([0, 0, 0, 3, 1, 2, 3]))
  await new Promise((r) => sock.on('close', r))
  t.ok(Date.now() - startedAt < 5000, `garbage is refused at once (${Date.now() - startedAt} ms)`)
  t.match(Buffer.concat(told).toString('latin1'), /08P01/)
  let m = await scrape(s.mport)
  t.equal(m.get('pgtenant_client_connections_refused_total{reason="protocol"}'), 2, 'HTTP and garbage counted as protocol')
  const unknown = await loginError(`postgres://nobody:x@127.0.0.1:${s.port}/postgres`)
  const wrong = await loginError(`postgres://app:wrong@127.0.0.1:${s.port}/postgres`)
  t.equal(unknown?.code, '28P01')
  t.equal(wrong?.code, '28P01')
  t.equal(unknown?.message.replace('nobody', 'X'), wrong?.message.replace('app', 'X'), 'the same message for both')
  const reasons = s.lines.filter((l) => l.msg === 'password authentication failed').map((l) => [l.level, l.reason])
  t.same(reasons, [
    [40, 'unknown_user'],
    [40, 'wrong_password'],
  ])
  const notAdmin = await loginError(`postgres://app:app_pw@127.0.0.1:${s.port}/pgtenant`)
  t.match(notAdmin?.message ?? '', /admin: true/)
  m = await scrape(s.mport)
  t.equal(m.get('pgtenant_auth_failures_total{reason="unknown_user"}'), 1)
  t.equal(m.get('pgtenant_auth_failures_total{reason="wrong_password"}'), 1)
  t.equal(m.get('pgtenant_auth_failures_total{reason="not_admin"}'), 1)
  t.equal(m.get('pgtenant_client_connections_refused_total{reason="auth"}'), 3)
})

t.test('reload: log level applied live, listen and metrics need a restart, SHOW CONFIG shows the running values', async (t) => {
  const s = await start(server.url(ROLES.scram.user, ROLES.scram.password))
  const other = await freePort()
  s.proxy.reload(
    parseConfig(
      s
        .yaml()
        .replace(`listen: 127.0.0.1:${s.port}`, `listen: 127.0.0.1:${other}`)
        .replace('log_level: info', 'log_level: debug')
        .replace(`metrics: 127.0.0.1:${s.mport}`, 'metrics: 127.0.0.1:1'),
      process.env,
      process.cwd(),
    ),
  )
  const warn = await s.waitLog(/needs restart/)
  t.equal(warn.level, 40)
  t.same(warn.keys, ['listen', 'metrics'])
  t.equal(s.proxy.log.level, 'debug', 'log level applied')
  const config = await run('psql', ['-X', '-A', '-t', '-F', '|', '-c', 'SHOW CONFIG', `postgres://boss:boss_pw@127.0.0.1:${s.port}/pgtenant`])
  t.match(config.stdout, new RegExp(`^listen\\|127\\.0\\.0\\.1:${s.port}$`, 'm'), 'the running listen address')
  t.match(config.stdout, new RegExp(`^metrics\\|127\\.0\\.0\\.1:${s.mport}$`, 'm'))
  t.match(config.stdout, /^log_level\|debug$/m)
  t.equal(await loginError(`postgres://app:app_pw@127.0.0.1:${s.port}/postgres`), null, 'still serving on the running port')
})

t.test('log_format pretty: readable time and level', async (t) => {
  const line = prettyLine(
    JSON.stringify({
      level: 40,
      time: Date.UTC(2025, 0, 2, 3, 4, 5, 6),
      msg: 'server connect failed',
      service: 'pgtenant',
      backend: 'main',
      reason: 'connect ECONNREFUSED 127.0.0.1:1',
    }),
  )
  t.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} WARN {2}server connect failed {2}backend=main reason="connect ECONNREFUSED 127\.0\.0\.1:1"\n$/)
  const out: string[] = []
  const log = createLogger('info', undefined, 'pretty', { write: (s: string) => out.push(s) })
  log.info({ clients: 2 }, 'stats')
  t.match(out[0], / INFO {2}stats {2}clients=2\n$/)
})

t.test('a stats line per interval', async (t) => {
  const s = await start(server.url(ROLES.scram.user, ROLES.scram.password), 'log: { stats_interval_ms: 300 }\n')
  const c = new pg.Client({ connectionString: `postgres://app:app_pw@127.0.0.1:${s.port}/postgres`, options: '-c app.tenant=t1' })
  await c.connect()
  await c.query('SELECT count(*) FROM items')
  await c.query('SELECT count(*) FROM items')
  // The two queries may fall into one interval or two: sum the lines until both are counted.
  const stats = (): Record<string, any>[] => s.lines.filter((l) => /^stats: /.test(l.msg))
  const total = (k: string): number => stats().reduce((n, l) => n + l[k], 0)
  const deadline = Date.now() + 20000
  while (total('queries') < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  t.equal(total('queries'), 2)
  t.equal(total('transactions'), 2)
  const line = stats().find((l) => l.queries > 0) as Record<string, any>
  t.equal(line.clients, 1)
  t.ok(line.server_connections >= 1)
  t.type(line.avg_query_ms, 'number')
  t.match(line.msg, /^stats: \d+ xacts\/0\.3 s, \d+ queries, avg [\d.]+ ms, 1 clients, \d+ server connections$/)
  await c.end()
})

t.test('admin console: SHOW HELP, DATABASES, USERS; DISABLE/ENABLE TENANT; RECONNECT and WAIT_CLOSE', async (t) => {
  const s = await start(server.url(ROLES.scram.user, ROLES.scram.password))
  const admin = new pg.Client({ connectionString: `postgres://boss:boss_pw@127.0.0.1:${s.port}/pgtenant` })
  await admin.connect()
  t.teardown(() => admin.end())
  const help = (await admin.query('SHOW HELP')).rows.map((r) => r.command)
  for (const c of [
    'SHOW DATABASES',
    'SHOW USERS',
    'RECONNECT [db]',
    'WAIT_CLOSE [db]',
    'DISABLE <db>',
    'ENABLE <db>',
    "DISABLE TENANT 'x'",
    "ENABLE TENANT 'x'",
  ])
    t.ok(help.includes(c), `SHOW HELP lists ${c}`)
  const dbs = (await admin.query('SHOW DATABASES')).rows
  t.equal(dbs.length, 1)
  t.match(dbs[0], { name: 'main', host: '127.0.0.1', database: 'postgres', user: 'scram_user', pool_size: '3', citus: 'false', default: 'true' })
  const users = (await admin.query('SHOW USERS')).rows
  t.same(
    users.map((u) => [u.name, u.admin, u.password]),
    [
      ['app', 'false', 'plain'],
      ['boss', 'true', 'plain'],
    ],
  )
  t.notMatch(JSON.stringify(users), /app_pw|boss_pw/)
  const c = new pg.Client({ connectionString: `postgres://app:app_pw@127.0.0.1:${s.port}/postgres`, options: '-c app.tenant=t1' })
  await c.connect()
  t.teardown(() => c.end())
  const pidBefore = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p
  // DISABLE: the tenant's new transactions are refused; the session stays; ENABLE lets it in.
  await admin.query("DISABLE TENANT 't1'")
  await t.rejects(c.query('SELECT count(*) FROM items'), { code: '57P03', message: /tenant "t1" is disabled/ })
  t.match(
    (await admin.query('SHOW TENANTS')).rows.find((r) => r.tenant === 't1'),
    { status: 'disabled' },
  )
  await admin.query("ENABLE TENANT 't1'")
  t.equal((await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 2, 'enabled again')
  // RECONNECT: an idle server connection is replaced; one in a transaction when it is released.
  await c.query('BEGIN')
  await c.query('SELECT 1')
  await admin.query('RECONNECT main')
  // WAIT_CLOSE blocks (as PgBouncer's) until the replaced connection is closed (more in admin-wait-enable-loglevel.test.ts).
  let waited = false
  const waiting = admin.query('WAIT_CLOSE main').then(() => (waited = true))
  t.equal((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p, pidBefore, 'the running transaction keeps its connection')
  t.notOk(waited, 'WAIT_CLOSE waits while the connection is in use')
  await c.query('COMMIT')
  await waiting
  t.ok(waited, 'WAIT_CLOSE returns once the old connection is closed')
  t.not((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p, pidBefore, 'a new server connection')
  await t.rejects(admin.query('RECONNECT nope'), { code: '42704' })
})
