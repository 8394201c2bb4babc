// The proxy process: listens, admits clients, owns the pools, the planner and the
// schema facts, reloads its config on SIGHUP and drains on SIGTERM.
import net from 'node:net'
import tls from 'node:tls'
import type { Logger } from 'pino'
import type { Config, UserConfig, BackendConfig } from './config-types.js'
import { Planner } from './planner.js'
import { PoolManager, type Pool } from './backend/pool.js'
import type { BackendConnection, BackendTarget } from './backend/connection.js'
import { ClientSession } from './session.js'
import type { ProxyContext, SessionMetrics } from './proxy-context.js'

export class Proxy implements ProxyContext {
  readonly planner: Planner
  readonly pools: PoolManager
  readonly sessions = new Map<number, ClientSession>()
  readonly maxMessageBytes = 256 * 1024 * 1024
  metrics?: SessionMetrics
  private readonly byPid = new Map<number, ClientSession>()
  private readonly statementNames = new Map<string, string>()
  private server: net.Server | null = null
  private secureContext: tls.SecureContext | null = null
  private nextSessionId = 1
  private reaper: NodeJS.Timeout | null = null
  private shuttingDown = false

  constructor(
    public config: Config,
    readonly log: Logger,
  ) {
    this.planner = new Planner(config)
    this.pools = new PoolManager(limitsOf(config))
    this.secureContext = config.tls ? tls.createSecureContext({ cert: config.tls.cert, key: config.tls.key }) : null
  }

  get tlsEnabled(): boolean {
    return this.secureContext !== null
  }

  async listen(): Promise<net.AddressInfo> {
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.config.listen.port, this.config.listen.host, () => resolve())
    })
    server.on('error', (err) => this.log.error({ err }, 'listener error'))
    this.reaper = setInterval(() => this.pools.reap(), Math.max(1000, Math.min(this.config.pool.idle_timeout_ms / 2, 10000)))
    this.reaper.unref()
    const addr = server.address() as net.AddressInfo
    this.log.info({ host: addr.address, port: addr.port }, 'pgtenant listening')
    return addr
  }

  private accept(socket: net.Socket): void {
    if (this.shuttingDown) {
      socket.destroy()
      return
    }
    const session = new ClientSession(socket, this, this.nextSessionId++)
    this.sessions.set(session.id, session)
  }

  startTls(session: ClientSession): void {
    const raw = session.socket
    raw.removeAllListeners('data')
    raw.pause()
    raw.write('S')
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.secureContext as tls.SecureContext })
    secure.on('error', (err) => {
      session.log.info({ err: err.message }, 'TLS handshake failed')
      raw.destroy()
    })
    session.resumeAfterTls(secure as unknown as net.Socket)
  }

  cancel(pid: number, secret: number): void {
    const session = this.byPid.get(pid)
    if (session && session.secret === secret) session.cancelRunning()
  }

  admitClient(session: ClientSession): { code: string; message: string } | null {
    if (this.shuttingDown) return { code: '57P03', message: 'pgtenant is shutting down' }
    const max = this.config.pool.max_client_connections
    if (this.byPid.size >= max) return { code: '53300', message: `too many client connections (pool.max_client_connections is ${max})` }
    if (session.database === 'pgtenant') return { code: '0A000', message: 'the admin console (database "pgtenant") is not available in this version' }
    this.byPid.set(session.pid, session)
    return null
  }

  findUser(name: string): UserConfig | undefined {
    return Object.prototype.hasOwnProperty.call(this.config.users, name) ? this.config.users[name] : undefined
  }

  sessionClosed(session: ClientSession): void {
    this.sessions.delete(session.id)
    if (this.byPid.get(session.pid) === session) this.byPid.delete(session.pid)
  }

  tenantChanged(_session: ClientSession): void {
    /* routing hooks in here */
  }

  async serverParams(session: ClientSession): Promise<Map<string, string>> {
    const pool = this.poolFor(session)
    if (!pool.serverParams) {
      const conn = await pool.acquire()
      pool.release(conn, true)
    }
    return pool.serverParams as Map<string, string>
  }

  async acquire(session: ClientSession): Promise<{ conn: BackendConnection; pool: Pool }> {
    const pool = this.poolFor(session)
    return { conn: await pool.acquire(), pool }
  }

  statementName(sql: string, paramTypes: Buffer): string {
    const key = paramTypes.length > 2 ? `${sql}\u0000${paramTypes.toString('hex')}` : sql
    let name = this.statementNames.get(key)
    if (!name) {
      name = `pgtenant_${this.statementNames.size + 1}`
      this.statementNames.set(key, name)
    }
    return name
  }

  /** The pool serving this session's next transaction. */
  poolFor(session: ClientSession): Pool {
    const backend = this.config.backends[this.config.placement.default]
    const target = targetFor(backend, session.user, this.findUser(session.user))
    const key = `${backend.name}\u0000${target.host}:${target.port}\u0000${target.database}\u0000${target.user}`
    return this.pools.pool(key, backend.name, target, backend.pool)
  }

  /** Apply a new config (SIGHUP): users, pool sizes and limits change; connections stay. */
  reload(config: Config): void {
    this.config = config
    this.planner.reconfigure(config)
    this.pools.limits = limitsOf(config)
    for (const pool of this.pools.pools.values()) {
      const backend = config.backends[pool.backendName]
      if (backend) pool.size = backend.pool
    }
    this.secureContext = config.tls ? tls.createSecureContext({ cert: config.tls.cert, key: config.tls.key }) : null
    this.log.info('configuration reloaded')
  }

  /** Stop accepting, let running transactions finish (up to the timeout), then close everything. */
  async shutdown(timeoutMs = this.config.pool.shutdown_timeout_ms): Promise<void> {
    this.shuttingDown = true
    this.server?.close()
    if (this.reaper) clearInterval(this.reaper)
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline && [...this.sessions.values()].some((s) => s.backend !== null)) {
      await new Promise((r) => setTimeout(r, 50))
    }
    for (const s of this.sessions.values()) s.fatal('57P01', 'terminating connection: pgtenant is shutting down')
    this.pools.closeAll()
    this.log.info('pgtenant stopped')
  }
}

function limitsOf(config: Config) {
  return {
    waitTimeoutMs: config.pool.wait_timeout_ms,
    connectTimeoutMs: config.pool.connect_timeout_ms,
    idleTimeoutMs: config.pool.idle_timeout_ms,
    maxServerConnections: config.pool.max_server_connections,
  }
}

/** Where and as whom to connect: the URL's user, else the client's own user and configured password. */
export function targetFor(backend: BackendConfig, clientUser: string, user: UserConfig | undefined): BackendTarget {
  const url = backend.url
  const password = url.user !== undefined ? url.password : user && !isHashed(user.password) ? user.password : undefined
  return {
    host: url.host,
    port: url.port,
    database: url.database,
    user: url.user ?? clientUser,
    password,
    sslmode: url.sslmode,
  }
}

function isHashed(password: string): boolean {
  return password.startsWith('SCRAM-SHA-256$') || (password.startsWith('md5') && password.length === 35)
}
