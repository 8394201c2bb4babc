// The admin console: clients connecting to database "pgtenant" (users with admin: true)
// get PgBouncer-style commands answered by the proxy itself as ordinary result sets, so
// psql prints them. execute() returns the full response to one Query (ending in
// ReadyForQuery). Commands are case-insensitive; a trailing semicolon is fine.
import * as be from '../protocol/backend.js'
import { loadConfig } from '../config.js'
import { formatRoute } from '../../routing/placement.js'
import type { Proxy } from '../proxy.js'
import type { ClientSession } from '../session.js'

type Rows = (string | number | boolean | null)[][]

const COMMANDS =
  'SHOW POOLS | CLIENTS | SERVERS | TENANTS | STATS | CONFIG | VERSION, EXPLAIN REWRITE [FOR TENANT \'x\'] <statement>, RELOAD, PAUSE [TENANT \'x\'], RESUME [TENANT \'x\'], KILL CLIENT <id>, SHUTDOWN'

export class AdminConsole {
  constructor(private readonly proxy: Proxy) {}

  execute(sql: string, session: ClientSession): Buffer[] {
    const text = sql.trim().replace(/;\s*$/, '').trim()
    try {
      return [...this.run(text, session), be.readyForQuery('I')]
    } catch (err) {
      return [be.errorResponse({ severity: 'ERROR', code: (err as { sqlstate?: string }).sqlstate ?? 'XX000', message: (err as Error).message }), be.readyForQuery('I')]
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

  private show(what: string): Buffer[] {
    const p = this.proxy
    switch (what) {
      case 'version':
        return table(['version', 'worker'], [[`pgtenant ${p.version}`, p.role ? `${p.role.index + 1} of ${p.role.count}` : '1 of 1']])
      case 'pools':
        return table(
          ['backend', 'host', 'port', 'database', 'user', 'active', 'idle', 'connecting', 'waiting', 'size'],
          [...p.pools.pools.values()].map((pool) => [pool.backendName, pool.target.host, pool.target.port, pool.target.database, pool.target.user, pool.active, pool.idle.length, pool.connecting, pool.waiting, pool.size]),
        )
      case 'clients':
        return table(
          ['id', 'user', 'database', 'tenant', 'state', 'address', 'connected_at', 'backend'],
          [...p.sessions.values()].map((s) => [s.id, s.user, s.database, s.effectiveTenant, s.metricState, `${s.socket.remoteAddress}:${s.socket.remotePort}`, new Date(s.connectedAt).toISOString(), s.backendName]),
        )
      case 'servers': {
        const rows: Rows = []
        for (const pool of p.pools.pools.values()) {
          for (const s of p.sessions.values()) if (s.backend) rows.push([s.backend.id, pool.backendName, `${s.backend.target.host}:${s.backend.target.port}`, s.backend.target.database, 'active', s.backend.pid, s.id])
          for (const c of pool.idle) rows.push([c.id, pool.backendName, `${c.target.host}:${c.target.port}`, c.target.database, 'idle', c.pid, null])
        }
        return table(['id', 'backend', 'address', 'database', 'state', 'server_pid', 'client_id'], dedupe(rows))
      }
      case 'tenants': {
        const clients = new Map<string, number>()
        for (const s of p.sessions.values()) if (s.effectiveTenant !== null) clients.set(s.effectiveTenant, (clients.get(s.effectiveTenant) ?? 0) + 1)
        return table(
          ['tenant', 'placement', 'clients', 'statements', 'transactions', 'errors', 'refusals', 'rows', 'total_ms', 'mean_ms'],
          p.metrics.stats.list().map((c) => [
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
          ]),
        )
      }
      case 'stats': {
        const t = p.metrics.stats.totals
        return table(
          ['clients', 'tenants_tracked', 'statements', 'transactions', 'queries', 'errors', 'refusals', 'rows', 'mean_ms', 'server_connections'],
          [[p.sessions.size, p.metrics.stats.size, t.statements, t.transactions, t.queries, t.errors, t.refusals, t.rows, t.queries ? (t.totalLatencyMs / t.queries).toFixed(3) : '0', p.pools.totalConnections]],
        )
      }
      case 'config':
        return table(['key', 'value'], configRows(p))
      default:
        throw adminError('42601', `unknown SHOW item "${what}"`, COMMANDS)
    }
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
  return [be.rowDescription(columns), ...rows.map((r) => be.dataRow(r.map((v) => (v === null || v === undefined ? null : String(v))))), be.commandComplete(`SELECT ${rows.length}`)]
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
  for (const b of Object.values(c.backends)) rows.push([`backends.${b.name}`, `${b.url.raw} pool=${b.pool}${b.citus ? ' citus' : ''}`])
  for (const [name, u] of Object.entries(c.users)) rows.push([`users.${name}`, `password=*** ${u.tenant !== undefined ? `tenant=${u.tenant} ` : ''}${u.bypass ? 'bypass ' : ''}${u.admin ? 'admin' : ''}`.trim()])
  return rows
}
