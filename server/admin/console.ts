// The admin console: clients connecting to database "pgtenant" (users with admin: true)
// get PgBouncer-style commands answered by the proxy itself as ordinary result sets, so
// psql prints them. execute() returns the full response to one Query (ending in
// ReadyForQuery). Commands are case-insensitive; a trailing semicolon is fine.
import * as be from '../protocol/backend.js'
import { loadConfig } from '../config.js'
import { formatRoute } from '../../routing/placement.js'
import type { Proxy } from '../proxy.js'
import type { ClientSession } from '../session.js'
import { loginMethod } from '../client-auth.js'
import type { Config, UserConfig } from '../config-types.js'
import type { TenantCounters } from '../tenant-stats.js'
import { TenantMoves } from '../tenant-move.js'

type Rows = (string | number | boolean | null)[][]

const COMMANDS =
  "SHOW POOLS | CLIENTS | SERVERS | DATABASES | USERS | TENANTS | STATS | CONFIG | VERSION | HELP, EXPLAIN REWRITE [FOR TENANT 'x'] <statement>, RELOAD, PAUSE [TENANT 'x'], RESUME [TENANT 'x'], DISABLE <db>, ENABLE <db>, DISABLE TENANT 'x', ENABLE TENANT 'x', MOVE TENANT 'x' TO <db>, MOVE TENANT 'x' ISOLATE | TO WORKER 'host:port', PURGE TENANT 'x' FROM <db>, SHOW MOVES, RECONNECT [db], WAIT_CLOSE [db], KILL CLIENT <id>, SHUTDOWN"

const HELP: [string, string][] = [
  ['SHOW POOLS', 'server connection pools: active, idle, connecting, waiting clients, size'],
  ['SHOW CLIENTS', 'client connections: user, database, tenant, state, address'],
  ['SHOW SERVERS', 'server connections and the client using each'],
  ['SHOW DATABASES', 'backends: address, database, pool size, Citus, tenants placed there'],
  ['SHOW USERS', 'users: pinned tenant, bypass, admin, password kind (never the password)'],
  [
    'SHOW TENANTS',
    'per-tenant statements, transactions, errors, refusals, latency; paused/disabled; server connections held, waiting clients, limits, throttled/rejected',
  ],
  ['SHOW STATS', 'totals since start'],
  ['SHOW CONFIG', 'the running configuration (passwords masked)'],
  ['SHOW VERSION', 'pgtenant version and worker'],
  ["EXPLAIN REWRITE [FOR TENANT 'x'] <statement>", 'what pgtenant would send for a tenant, and where'],
  ['RELOAD', 're-read the configuration file (as SIGHUP)'],
  ["PAUSE [TENANT 'x']", 'hold new transactions (of one tenant); running ones finish'],
  ["RESUME [TENANT 'x']", 'release paused transactions'],
  ['DISABLE <db>', 'refuse new clients of a backend (SHOW DATABASES name) with 57P03; connected ones stay'],
  ['ENABLE <db>', 'undo DISABLE <db>'],
  ["DISABLE TENANT 'x'", "refuse the tenant's new transactions with 57P03 until ENABLE"],
  ["ENABLE TENANT 'x'", "undo DISABLE TENANT 'x'"],
  ["MOVE TENANT 'x' TO <db>", "copy the tenant's rows to another backend during a pause, verify them, switch its placement (answers when done)"],
  [
    "MOVE TENANT 'x' ISOLATE | TO WORKER 'host:port'",
    "Citus: isolate the tenant's shard during a pause (and move it to that worker), refresh the routing metadata",
  ],
  ["PURGE TENANT 'x' FROM <db>", 'delete the rows a move left on a backend the tenant is no longer placed on'],
  ['SHOW MOVES', 'tenant moves: from, to, state, table, rows copied, started, pause ms, error'],
  ['RECONNECT [db]', 'replace server connections (of a backend, or all): idle ones now, busy ones when released'],
  ['WAIT_CLOSE [db]', 'wait until the server connections RECONNECT or RELOAD replaced are closed'],
  ['KILL CLIENT <id>', 'close one client connection (57P01)'],
  ['SHUTDOWN', 'safe shutdown, as SIGTERM'],
]

/** A database (backend) name: "quoted" (any name, "" for a quote) or bare. Groups 2 and 3. */
const DB = '(?:"((?:[^"]|"")+)"|([^\\s"\';]+))'
const dbName = (m: RegExpExecArray): string => (m[2] !== undefined ? m[2].replace(/""/g, '"') : m[3])
const ENABLE_DB = new RegExp(`^(disable|enable)\\s+${DB}$`, 'i')
const RECONNECT = new RegExp(`^(reconnect|wait_close)(?:\\s+${DB})?$`, 'i')

/** run() returned it: the reply comes later (a blocking WAIT_CLOSE). */
const DEFERRED: Buffer[] = []

export class AdminConsole {
  constructor(private readonly proxy: Proxy) {
    this.moves = new TenantMoves(proxy)
  }

  /** MOVE TENANT / PURGE TENANT (server/tenant-move.ts). */
  readonly moves: TenantMoves

  /** Sessions whose WAIT_CLOSE is still waiting: the promise settles after its reply is written. */
  private readonly waiting = new Map<ClientSession, { held: Promise<void>; cancel(): void }>()

  execute(sql: string, session: ClientSession): Buffer[] {
    const text = sql.trim().replace(/;\s*$/, '').trim()
    try {
      const reply = this.run(text, session)
      return reply === DEFERRED ? [] : [...reply, be.readyForQuery('I')]
    } catch (err) {
      return [
        be.errorResponse({ severity: 'ERROR', code: (err as { sqlstate?: string }).sqlstate ?? 'XX000', message: (err as Error).message }),
        be.readyForQuery('I'),
      ]
    }
  }

  private run(text: string, session: ClientSession): Buffer[] {
    let m: RegExpExecArray | null
    if ((m = /^show\s+(\w+)$/i.exec(text))) return this.show(m[1].toLowerCase())
    if ((m = /^explain\s+rewrite\s+(?:for\s+tenant\s+('(?:[^']|'')*')\s+)?([\s\S]+)$/i.exec(text)))
      return this.explainRewrite(m[1] ? unquote(m[1]) : session.effectiveTenant, m[2])
    if (/^reload$/i.test(text)) {
      if (!this.proxy.configPath) throw adminError('55000', 'RELOAD needs a configuration file (the proxy was started without --config)')
      this.proxy.reload(loadConfig(this.proxy.configPath))
      this.proxy.clusterLink?.broadcast({ op: 'reload' })
      return [be.commandComplete('RELOAD')]
    }
    if ((m = /^pause(?:\s+tenant\s+('(?:[^']|'')*'))?$/i.exec(text))) {
      const tenant = m[1] ? unquote(m[1]) : '*'
      this.proxy.pause(tenant)
      this.proxy.clusterLink?.broadcast({ op: 'pause', tenant })
      return [be.commandComplete('PAUSE')]
    }
    if ((m = /^resume(?:\s+tenant\s+('(?:[^']|'')*'))?$/i.exec(text))) {
      const tenant = m[1] ? unquote(m[1]) : undefined
      this.proxy.resume(tenant)
      this.proxy.clusterLink?.broadcast({ op: 'resume', tenant })
      return [be.commandComplete('RESUME')]
    }
    if ((m = ENABLE_DB.exec(text)) && !/^tenant$/i.test(m[3] ?? '')) {
      const backend = this.backendName(dbName(m))
      const disable = m[1].toLowerCase() === 'disable'
      if (disable) this.proxy.disableDatabase(backend)
      else this.proxy.enableDatabase(backend)
      this.proxy.clusterLink?.broadcast(disable ? { op: 'disable', database: backend } : { op: 'enable', database: backend })
      this.proxy.log.warn({ backend }, disable ? 'database disabled on the admin console: new clients are refused' : 'database enabled on the admin console')
      return [be.commandComplete(disable ? 'DISABLE' : 'ENABLE')]
    }
    if ((m = /^(disable|enable)\s+tenant\s+('(?:[^']|'')*')$/i.exec(text))) {
      const tenant = unquote(m[2])
      const disable = m[1].toLowerCase() === 'disable'
      if (disable) this.proxy.disabled.add(tenant)
      else this.proxy.disabled.delete(tenant)
      this.proxy.clusterLink?.broadcast(disable ? { op: 'disable', tenant } : { op: 'enable', tenant })
      this.proxy.log.warn({ tenant }, disable ? 'tenant disabled on the admin console' : 'tenant enabled on the admin console')
      return [be.commandComplete(disable ? 'DISABLE' : 'ENABLE')]
    }
    if ((m = /^move\s+tenant\s+('(?:[^']|'')*')\s+(?:isolate|to\s+worker\s+('(?:[^']|'')*'))$/i.exec(text))) {
      // A tenant placed on a Citus backend: isolate its shard (and move it to the worker).
      const tenant = unquote(m[1])
      const worker = m[2] !== undefined ? unquote(m[2]) : null
      return this.later(session, () => this.moves.moveCitus(tenant, worker).then((r) => [be.commandComplete(`MOVE ${r.rowsCopied}`)]))
    }
    if ((m = new RegExp(`^move\\s+tenant\\s+('(?:[^']|'')*')\\s+to\\s+${DB}$`, 'i').exec(text))) {
      const tenant = unquote(m[1])
      const to = m[2] !== undefined ? m[2].replace(/""/g, '"') : m[3]
      return this.later(session, () => this.moves.move(tenant, to).then((r) => [be.commandComplete(`MOVE ${r.rowsCopied}`)]))
    }
    if ((m = new RegExp(`^purge\\s+tenant\\s+('(?:[^']|'')*')\\s+from\\s+${DB}$`, 'i').exec(text))) {
      const tenant = unquote(m[1])
      const from = m[2] !== undefined ? m[2].replace(/""/g, '"') : m[3]
      return this.later(session, () => this.moves.purge(tenant, from).then((n) => [be.commandComplete(`PURGE ${n}`)]))
    }
    if ((m = RECONNECT.exec(text))) {
      const backend = m[2] === undefined && m[3] === undefined ? undefined : this.backendName(dbName(m))
      if (m[1].toLowerCase() === 'reconnect') {
        this.proxy.reconnect(backend)
        return [be.commandComplete('RECONNECT')]
      }
      return this.waitClose(session, backend)
    }
    if ((m = /^kill\s+client\s+(\d+)$/i.exec(text))) {
      const victim = this.proxy.sessions.get(Number(m[1]))
      if (!victim) throw adminError('42704', `no client with id ${m[1]} (see SHOW CLIENTS)`)
      victim.fatal('57P01', 'terminating connection due to KILL CLIENT on the pgtenant admin console')
      return [be.commandComplete('KILL')]
    }
    if (/^shutdown$/i.test(text)) {
      // With workers, the primary stops them all (this one included) and then itself.
      if (this.proxy.clusterLink) this.proxy.clusterLink.broadcast({ op: 'shutdown' })
      else setImmediate(() => void this.proxy.shutdown().then(() => process.emit('SIGTERM' as never)))
      return [be.commandComplete('SHUTDOWN')]
    }
    throw adminError('42601', `unknown admin command: ${text.slice(0, 80)}`, COMMANDS)
  }

  /** A name from SHOW DATABASES (a configured backend), else 42704. */
  private backendName(name: string): string {
    if (!Object.hasOwn(this.proxy.config.backends, name))
      throw adminError('42704', `no database "${name}" (the names are those of SHOW DATABASES: ${Object.keys(this.proxy.config.backends).join(', ')})`)
    return name
  }

  /**
   * WAIT_CLOSE [db], as PgBouncer's: the reply (CommandComplete, ReadyForQuery) is written
   * once every server connection RECONNECT or RELOAD marked close_needed is closed, however
   * it closes (released, shutdown, the server gone). Nothing blocks meanwhile: the session
   * holds any message the client sends after it (held(), through the session's wait for
   * schema facts) until the reply is out; a CancelRequest ends the wait with 57014.
   */
  private waitClose(session: ClientSession, backend: string | undefined): Buffer[] {
    if (this.proxy.pools.closeNeededCount(backend) === 0) return [be.commandComplete('WAIT_CLOSE')]
    const wait = this.proxy.pools.waitClosed(backend)
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const finish = (reply: Buffer[]): void => {
      if (this.waiting.get(session)?.held !== held) return
      this.waiting.delete(session)
      wait.cancel()
      session.socket.off('close', gone)
      if (session.state !== 'closed' && !session.socket.destroyed) session.socket.write(Buffer.concat([...reply, be.readyForQuery('I')]))
      release()
    }
    const gone = (): void => finish([])
    this.waiting.set(session, {
      held,
      cancel: () => finish([be.errorResponse({ severity: 'ERROR', code: '57014', message: 'canceling statement due to user request (WAIT_CLOSE)' })]),
    })
    session.socket.once('close', gone)
    void wait.done.then(() => finish([be.commandComplete('WAIT_CLOSE')]))
    return DEFERRED
  }

  /**
   * A command that answers when its work is done (MOVE, PURGE): as WAIT_CLOSE, the session holds
   * what the client sends meanwhile; an error becomes an ErrorResponse with its SQLSTATE. A
   * cancel only stops the wait for the reply (the work goes on; SHOW MOVES follows it).
   */
  private later(session: ClientSession, work: () => Promise<Buffer[]>): Buffer[] {
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const finish = (reply: Buffer[]): void => {
      if (this.waiting.get(session)?.held !== held) return
      this.waiting.delete(session)
      if (session.state !== 'closed' && !session.socket.destroyed) session.socket.write(Buffer.concat([...reply, be.readyForQuery('I')]))
      release()
    }
    this.waiting.set(session, {
      held,
      cancel: () =>
        finish([be.errorResponse({ severity: 'ERROR', code: '57014', message: 'canceling the wait for the reply (the work goes on: SHOW MOVES)' })]),
    })
    session.socket.once('close', () => finish([]))
    let job: Promise<Buffer[]>
    try {
      job = work()
    } catch (err) {
      job = Promise.reject(err as Error)
    }
    job.then(finish, (err: Error) =>
      finish([be.errorResponse({ severity: 'ERROR', code: (err as { sqlstate?: string }).sqlstate ?? 'XX000', message: err.message })]),
    )
    return DEFERRED
  }

  /** While a WAIT_CLOSE of this session waits: a promise that settles once its reply is written. */
  held(session: ClientSession): Promise<void> | undefined {
    return this.waiting.get(session)?.held
  }

  /** A CancelRequest for an admin console session: ends its WAIT_CLOSE. */
  cancel(session: ClientSession): void {
    this.waiting.get(session)?.cancel()
  }

  private show(what: string): Buffer[] {
    const p = this.proxy
    switch (what) {
      case 'version':
        return table(['version', 'worker'], [[`pgtenant ${p.version}`, p.role ? `${p.role.index + 1} of ${p.role.count}` : '1 of 1']])
      case 'pools':
        return table(
          ['backend', 'host', 'port', 'database', 'user', 'active', 'idle', 'connecting', 'waiting', 'size'],
          [...p.pools.pools.values()].map((pool) => [
            pool.backendName,
            pool.target.host,
            pool.target.port,
            pool.target.database,
            pool.target.user,
            pool.active,
            pool.idle.length,
            pool.connecting,
            pool.waiting,
            pool.size,
          ]),
        )
      case 'clients':
        return table(
          ['id', 'user', 'database', 'tenant', 'state', 'address', 'connected_at', 'backend'],
          [...p.sessions.values()].map((s) => [
            s.id,
            s.user,
            s.database,
            s.effectiveTenant,
            s.metricState,
            `${s.socket.remoteAddress}:${s.socket.remotePort}`,
            new Date(s.connectedAt).toISOString(),
            s.backendName,
          ]),
        )
      case 'servers': {
        const rows: Rows = []
        for (const pool of p.pools.pools.values()) {
          for (const s of p.sessions.values())
            if (s.backend)
              rows.push([
                s.backend.id,
                pool.backendName,
                `${s.backend.target.host}:${s.backend.target.port}`,
                s.backend.target.database,
                'active',
                s.backend.pid,
                s.id,
                p.pools.closeNeeded.has(s.backend),
              ])
          for (const c of pool.idle) rows.push([c.id, pool.backendName, `${c.target.host}:${c.target.port}`, c.target.database, 'idle', c.pid, null, false])
        }
        return table(['id', 'backend', 'address', 'database', 'state', 'server_pid', 'client_id', 'close_needed'], dedupe(rows))
      }
      case 'tenants': {
        const clients = new Map<string, number>()
        for (const s of p.sessions.values()) if (s.effectiveTenant !== null) clients.set(s.effectiveTenant, (clients.get(s.effectiveTenant) ?? 0) + 1)
        const counters = p.metrics.stats.list()
        // Tenants the limits know (holding or waiting, or named in tenant_limits) that have no statistics yet.
        const listed = new Set(counters.map((c) => c.tenant))
        const more: string[] = []
        for (const g of p.tenantLimits.list()) if (!listed.has(g.name)) more.push(g.name)
        for (const name of Object.keys(p.config.tenant_limits?.tenants ?? {})) if (!listed.has(name) && !more.includes(name)) more.push(name)
        const rows: Rows = counters.map((c) => [
          c.tenant,
          p.placementFor(c.tenant),
          clients.get(c.tenant) ?? 0,
          c.statements,
          c.transactions,
          c.errors,
          c.refusals,
          c.rows,
          c.totalLatencyMs.toFixed(1),
          c.queries ? (c.totalLatencyMs / c.queries).toFixed(3) : '0',
          this.tenantStatus(c.tenant),
          ...this.tenantLimitColumns(c.tenant, c),
        ])
        for (const name of more)
          rows.push([
            name,
            p.placementFor(name),
            clients.get(name) ?? 0,
            0,
            0,
            0,
            0,
            0,
            '0.0',
            '0',
            this.tenantStatus(name),
            ...this.tenantLimitColumns(name, undefined),
          ])
        return table(
          [
            'tenant',
            'placement',
            'clients',
            'statements',
            'transactions',
            'errors',
            'refusals',
            'rows',
            'total_ms',
            'mean_ms',
            'status',
            'server_connections',
            'waiting',
            'max_connections',
            'max_waiting',
            'tps',
            'statement_timeout_ms',
            'wait_timeout_ms',
            'weight',
            'throttled',
            'rejected',
            'waits',
            'mean_wait_ms',
          ],
          rows,
        )
      }
      case 'stats': {
        const t = p.metrics.stats.totals
        return table(
          ['clients', 'tenants_tracked', 'statements', 'transactions', 'queries', 'errors', 'refusals', 'rows', 'mean_ms', 'server_connections'],
          [
            [
              p.sessions.size,
              p.metrics.stats.size,
              t.statements,
              t.transactions,
              t.queries,
              t.errors,
              t.refusals,
              t.rows,
              t.queries ? (t.totalLatencyMs / t.queries).toFixed(3) : '0',
              p.pools.totalConnections,
            ],
          ],
        )
      }
      case 'config':
        return table(['key', 'value'], configRows(p))
      case 'help':
        return table(['command', 'description'], HELP)
      case 'databases': {
        const placed = new Map<string, number>()
        for (const b of Object.values(p.config.placement.tenants)) placed.set(b, (placed.get(b) ?? 0) + 1)
        return table(
          ['name', 'host', 'port', 'database', 'user', 'pool_size', 'citus', 'per_tenant', 'default', 'tenants_placed', 'server_connections', 'disabled'],
          Object.values(p.config.backends).map((b) => {
            let conns = 0
            for (const pool of p.pools.pools.values()) if (pool.backendName === b.name) conns += pool.total
            return [
              b.name,
              b.url.host,
              b.url.port,
              b.url.database,
              b.url.user ?? '(client user)',
              b.pool,
              b.citus,
              b.url.perTenant,
              p.config.placement.default === b.name,
              placed.get(b.name) ?? 0,
              conns,
              p.disabledDatabases.has(b.name),
            ]
          }),
        )
      }
      case 'moves':
        return table(
          ['tenant', 'from', 'to', 'state', 'table', 'rows_copied', 'started', 'pause_ms', 'error'],
          this.moves.moves.map((r) => [
            r.tenant,
            r.from,
            r.to,
            r.state,
            r.table,
            r.rowsCopied,
            new Date(r.startedAt).toISOString(),
            r.pauseMs ?? (r.pausedAt !== null ? Date.now() - r.pausedAt : null),
            r.error,
          ]),
        )
      case 'users':
        return table(['name', 'tenant', 'bypass', 'admin', 'password', 'clients'], this.userRows())
      default:
        throw adminError('42601', `unknown SHOW item "${what}"`, COMMANDS)
    }
  }

  private tenantStatus(tenant: string): string {
    const p = this.proxy
    return p.disabled.has(tenant) ? 'disabled' : p.paused.has(tenant) || p.paused.has('*') ? 'paused' : 'active'
  }

  /** SHOW TENANTS: what the tenant uses now and its limits (tenant_limits; 0 = none), then the limits' counters. */
  private tenantLimitColumns(tenant: string, c: TenantCounters | undefined): (string | number)[] {
    const limits = this.proxy.tenantLimits
    const gate = tenant === '(none)' ? undefined : limits.peek(tenant)
    const l = tenant === '(none)' ? null : (gate?.limits ?? limits.resolve(tenant))
    return [
      gate?.held ?? 0,
      gate?.waiting ?? 0,
      l === null ? 0 : l.maxConnectionsPct > 0 ? `${l.maxConnectionsPct}%` : l.maxConnections,
      l?.maxWaiting ?? 0,
      l?.tps ?? 0,
      l?.statementTimeoutMs ?? 0,
      l?.waitTimeoutMs ?? this.proxy.config.pool.wait_timeout_ms,
      l?.weight ?? 1,
      c?.throttled ?? 0,
      c?.rejected ?? 0,
      c?.waits ?? 0,
      c && c.waits > 0 ? (c.waitMs / c.waits).toFixed(3) : '0',
    ]
  }

  /** Configured users, then users logged in without an entry (passthrough, trust: loopback) while they have clients. */
  private userRows(): Rows {
    const p = this.proxy
    const clients = new Map<string, ClientSession[]>()
    for (const s of p.sessions.values()) {
      if (!s.user) continue
      const list = clients.get(s.user)
      if (list) list.push(s)
      else clients.set(s.user, [s])
    }
    const rows: Rows = Object.entries(p.config.users).map(([name, u]) => [
      name,
      u.tenant ?? null,
      u.bypass,
      u.admin,
      passwordKind(p.config, u),
      clients.get(name)?.length ?? 0,
    ])
    for (const [name, sessions] of clients) {
      if (Object.hasOwn(p.config.users, name)) continue
      const loggedIn = sessions.filter((s) => s.userConfig && !s.isAdminConsole) // logged in, not still authenticating
      if (loggedIn.length) rows.push([name, null, false, false, loginMethod(p.config, undefined, loggedIn[0].socket.remoteAddress), loggedIn.length])
    }
    return rows
  }

  private explainRewrite(tenant: string | null, statement: string): Buffer[] {
    const e = this.proxy.explain(tenant, statement)
    const rows: Rows = [
      ['tenant', tenant],
      ['outcome', e.refusal ? `refused ${e.refusal.sqlstate}` : 'forward'],
      [e.refusal ? 'reason' : 'rewritten', e.refusal ? e.refusal.message : e.sql],
      ['cache', e.cache],
      ['route', e.route ? formatRoute(e.route) : e.routeError],
    ]
    return table(['item', 'value'], rows)
  }
}

function table(columns: string[], rows: Rows): Buffer[] {
  return [
    be.rowDescription(columns),
    ...rows.map((r) => be.dataRow(r.map((v) => (v === null || v === undefined ? null : String(v))))),
    be.commandComplete(`SELECT ${rows.length}`),
  ]
}

function dedupe(rows: Rows): Rows {
  const seen = new Set<string>()
  return rows.filter((r) => {
    const k = String(r[0])
    if (seen.has(k)) return false
    seen.add(k)
    return true
  })
}

function unquote(literal: string): string {
  return literal.slice(1, -1).replace(/''/g, "'")
}

function adminError(sqlstate: string, message: string, hint?: string): Error {
  return Object.assign(new Error(hint ? `${message} (commands: ${hint})` : message), { sqlstate })
}

/** The running configuration, passwords masked. */
function configRows(p: Proxy): Rows {
  const c = p.config
  const rows: Rows = [
    ['listen', `${c.listen.host}:${c.listen.port}`],
    ['metrics', c.metrics ? `${c.metrics.host}:${c.metrics.port}` : null],
    ['auth', c.auth],
    ['tls', c.tls ? 'on' : 'off'],
    ['log_level', c.log_level],
    ['tenant', c.tenant ? JSON.stringify({ ...c.tenant }) : null],
    ['placement.default', c.placement.default],
    ['placement.tenants', String(Object.keys(c.placement.tenants).length)],
  ]
  for (const [k, v] of Object.entries(c.pool)) rows.push([`pool.${k}`, v])
  if (c.tenant_limits) {
    rows.push(['tenant_limits.default', JSON.stringify(c.tenant_limits.default)])
    for (const [name, o] of Object.entries(c.tenant_limits.tenants)) rows.push([`tenant_limits.tenants.${name}`, JSON.stringify(o)])
  }
  for (const b of Object.values(c.backends)) rows.push([`backends.${b.name}`, `${b.url.raw} pool=${b.pool}${b.citus ? ' citus' : ''}`])
  for (const [name, u] of Object.entries(c.users))
    rows.push([
      `users.${name}`,
      `password=*** ${u.tenant !== undefined ? `tenant=${u.tenant} ` : ''}${u.bypass ? 'bypass ' : ''}${u.admin ? 'admin' : ''}`.trim(),
    ])
  return rows
}

/** How a configured user logs in: the kind of its password, or trust / passthrough (never the password itself). */
function passwordKind(config: Config, u: UserConfig): string {
  if (u.trust) return 'trust'
  if (u.password === '') return config.passthrough ? 'passthrough' : 'none'
  return u.password.startsWith('SCRAM-SHA-256$') ? 'scram-sha-256' : /^md5[0-9a-f]{32}$/.test(u.password) ? 'md5' : 'plain'
}
