// The proxy process: listens, admits clients, owns the pools, the planner and the
// schema facts, reloads its config on SIGHUP and drains on SIGTERM.
import net from 'node:net'
import tls from 'node:tls'
import type { Logger } from 'pino'
import type { Config, UserConfig } from './config-types.js'
import { Planner } from './planner.js'
import { PoolManager, type Pool } from './backend/pool.js'
import { TenantLimits, statementTimeoutSql, type TenantGate } from './backend/tenant-limits.js'
import type { BackendConnection, BackendTarget } from './backend/connection.js'
import { ClientSession } from './session.js'
import { SharedStatementNames, sharedNamesLimit } from './backend/prepared.js'
import type { ProxyContext, RouteMemo } from './proxy-context.js'
import { BackendError } from './backend/connection.js'
import { Metrics } from './metrics.js'
import promClient from 'prom-client'
import { clientPid, workerShare, type ClusterLink, type WorkerRole } from './cluster.js'
import { Observers } from './observers.js'
import { withSharedReadBuffer } from './client-socket.js'
import { PreAuthGuard } from './preauth.js'
import { AdminConsole } from './admin/console.js'
import { placedBackend, sessionDatabase } from './databases.js'
import { authWarnings } from './client-auth.js'
import { setLogLevel } from './log.js'
import { DEFAULT_SERVER_PARAMS, limitsOf, readVersion } from './proxy-defaults.js'
import { SchemaCatalogs } from './schema-catalogs.js'
import { Router, type Explained } from './backend/router.js'
import { bind, listenError } from './listen.js'
import { drainClients, keepRestartOnly, type RunningSettings } from './lifecycle.js'
import { compileTenantPattern, formatRoute, type Route } from '../routing/placement.js'

export { ListenError } from './listen.js'
import type { SchemaFacts } from '../parser/types.js'

export class Proxy implements ProxyContext {
  readonly planner: Planner
  readonly pools: PoolManager
  /** Per-tenant limits and their runtime state (tenant_limits:, server/backend/tenant-limits.ts). */
  readonly tenantLimits: TenantLimits
  readonly sessions = new Map<number, ClientSession>()
  readonly maxMessageBytes = 256 * 1024 * 1024
  /** Limits on clients still logging in: message size, login timeout, how many at once (server/preauth.ts). */
  readonly preAuth: PreAuthGuard
  /** Session hooks: per-tenant statistics always, Prometheus when configured. */
  readonly metrics: Observers
  /** Schema facts and Citus metadata per backend (server/schema-catalogs.ts). */
  readonly catalogs: SchemaCatalogs = new SchemaCatalogs(this)
  /** Where a session's transaction goes and which pool serves it (server/backend/router.ts). */
  readonly router: Router = new Router(this)
  tenantPattern: RegExp
  config: Config
  readonly admin: AdminConsole = new AdminConsole(this)
  readonly version: string = readVersion()
  /** PAUSE: tenants (or '*' for all) whose new transactions wait; running ones finish. */
  readonly paused = new Set<string>()
  private pauseWaiters: { session: ClientSession; go: () => void }[] = []
  /** Tenants a MOVE TENANT is pausing (server/tenant-move.ts): their sessions leave the server connections they keep between transactions. */
  readonly moving = new Set<string>()
  private readonly byPid = new Map<number, ClientSession>()
  /** Cancel keys of session-pooled clients, whose pid is their server connection's (server pids of different servers may repeat: keyed with the secret). */
  private readonly byServerCancelKey = new Map<string, ClientSession>()
  private readonly statementNames = new SharedStatementNames(() => sharedNamesLimit(this.config.pool.max_prepared_statements))
  private server: net.Server | null = null
  private secureContext: tls.SecureContext | null = null
  private nextSessionId = 1
  private reaper: NodeJS.Timeout | null = null
  private shuttingDown = false

  /** Set in a worker of `workers: N`: how to reach the other workers. */
  clusterLink: ClusterLink | null = null

  constructor(
    config: Config,
    readonly log: Logger,
    /** This process's place among `workers: N` (null: the only process). */
    readonly role: WorkerRole | null = null,
  ) {
    config = workerShare(config, role?.count ?? 1)
    this.config = config
    this.planner = new Planner(config)
    this.metrics = new Observers(log)
    this.metrics.slowStatementMs = config.log?.slow_statement_ms ?? 0
    this.pools = new PoolManager(limitsOf(config))
    this.tenantLimits = new TenantLimits(config, role?.count ?? 1)
    this.tenantLimits.events = {
      throttled: (tenant, limit) => {
        this.metrics.stats.throttled(tenant)
        this.metrics.prometheus?.tenantThrottled(tenant, limit)
      },
      rejected: (tenant, reason) => {
        this.metrics.stats.rejected(tenant)
        this.metrics.prometheus?.tenantRejected(tenant, reason)
      },
      waited: (tenant, seconds) => {
        this.metrics.stats.waited(tenant, seconds * 1000)
        this.metrics.prometheus?.tenantWaited(tenant, seconds)
      },
    }
    this.secureContext = config.tls ? tls.createSecureContext({ cert: config.tls.cert, key: config.tls.key }) : null
    this.tenantPattern = compileTenantPattern(config.tenant?.pattern)
    this.preAuth = new PreAuthGuard({
      log,
      maxMessageBytes: this.maxMessageBytes,
      limits: () => ({ loginTimeoutMs: this.config.pool.login_timeout_ms, maxAuthenticating: this.config.pool.max_authenticating_connections }),
      cutOff: (reason) => this.metrics.prometheus?.loginCutOff(reason),
    })
  }

  get tlsEnabled(): boolean {
    return this.secureContext !== null
  }

  /**
   * Binds the client port and the metrics port (every port before announcing anything);
   * a port that cannot be bound rejects with a ListenError and leaves nothing bound.
   */
  async listen(): Promise<net.AddressInfo> {
    const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.accept(withSharedReadBuffer(socket)))
    await bind(server, this.config.listen.host, this.config.listen.port, 'listen')
    if (this.config.metrics) {
      this.metrics.prometheus = new Metrics(this.metricsSource(), this.config.tenant?.metrics_top ?? 100)
      // Workers answer the primary's metric requests; only the primary serves HTTP.
      if (this.role) {
        new promClient.AggregatorRegistry() // in a worker, this installs the answering side
        promClient.AggregatorRegistry.setRegistries([this.metrics.prometheus.registry])
      } else {
        try {
          this.metricsPort = await this.metrics.prometheus.listen(this.config.metrics.host, this.config.metrics.port, this.log)
        } catch (err) {
          server.close()
          throw listenError(err as NodeJS.ErrnoException, 'metrics', this.config.metrics.host, this.config.metrics.port)
        }
      }
    }
    this.server = server
    this.running = { listen: this.config.listen, metrics: this.config.metrics, workers: this.config.workers, log_level: this.config.log_level }
    server.on('error', (err) => this.log.error({ err }, 'listener error'))
    this.reaper = setInterval(
      () => {
        this.pools.reap()
        this.tenantLimits.reap()
      },
      Math.max(1000, Math.min(this.config.pool.idle_timeout_ms / 2, 10000)),
    )
    this.reaper.unref()
    const addr = server.address() as net.AddressInfo
    this.log.info(
      {
        host: addr.address,
        port: addr.port,
        metrics: this.config.metrics && !this.role ? `${this.config.metrics.host}:${this.metricsPort}` : this.config.metrics ? 'primary' : 'off',
        tls: this.tlsEnabled ? 'on' : 'off',
        pool_mode: this.config.pool.mode,
        config: this.configPath ?? '(demo)',
        version: this.version,
      },
      `pgtenant listening on ${addr.address}:${addr.port} (TLS ${this.tlsEnabled ? 'on' : 'off'}, ${this.config.pool.mode} pooling${this.config.metrics && !this.role ? `, metrics on ${this.config.metrics.host}:${this.metricsPort}` : ''})`,
    )
    for (const warning of authWarnings(this.config)) this.log.warn(warning)
    this.statsTimer = this.metrics.startStatsLog(this.config.log?.stats_interval_ms ?? 60_000, () => ({
      clients: this.sessions.size,
      server_connections: this.pools.totalConnections,
    }))
    await this.catalogs.loadAll()
    return addr
  }

  /** Settings that take effect only at start (a reload that changes them logs "needs restart"). */
  running: RunningSettings | null = null
  private statsTimer: NodeJS.Timeout | null = null

  metricsPort = 0
  /** The file the config came from (RELOAD on the admin console re-reads it). */
  configPath?: string

  get timingRewrites(): boolean {
    return this.metrics.prometheus !== null
  }

  /** Backend name a tenant is placed on. */
  placementFor(tenant: string | null): string {
    return this.placementOf(tenant === '(none)' ? null : tenant)
  }

  /** EXPLAIN REWRITE: what the proxy would do with a statement for a tenant, as data. */
  explain(tenant: string | null, sql: string): Explained {
    return this.router.explain(tenant, sql)
  }

  /** Schema facts for the backend this session's tenant is placed on; a promise while first discovered. */
  factsFor(session: ClientSession): SchemaFacts | Promise<void> | undefined {
    if (session.isAdminConsole) return this.admin.held(session) // a WAIT_CLOSE holds the messages after it
    if (!this.config.tenant || session.bypass) return undefined
    return this.catalogs.factsFor(this.placementOf(session.effectiveTenant, session), session.effectiveTenant)
  }

  refreshFactsFor(session: ClientSession): Promise<boolean> {
    return this.catalogs.refreshFor(this.placementOf(session.effectiveTenant, session), session.effectiveTenant)
  }

  routingChanged(): void {
    this.router.changed()
  }

  /** Every failed server connect, whatever the stage or the caller: a warn line and pgtenant_server_connect_errors_total. */
  connectFailed(backend: string, target: BackendTarget, err: BackendError, purpose: 'pool' | 'catalog'): void {
    this.metrics.prometheus?.connectFailed(backend)
    this.log.warn(
      { backend, server: `${target.host}:${target.port}`, database: target.database, user: target.user, purpose, sqlstate: err.sqlstate, reason: err.message },
      'server connect failed',
    )
  }

  /** The backend a tenant is placed on; for a session, as its database places it (server/databases.ts). */
  private placementOf(tenant: string | null, session?: ClientSession): string {
    return placedBackend(this.config, session ? sessionDatabase(session) : undefined, tenant)
  }

  private metricsSource() {
    return {
      sessions: () => this.sessions.values(),
      pools: () => this.pools.pools.values(),
      citusAges: () => [...this.catalogs.citusLoadedAt].map(([backend, at]) => ({ backend, ageSeconds: (Date.now() - at) / 1000 })),
      ready: () => this.ready(),
    }
  }

  /**
   * Ready: accepting clients (listening and not draining for shutdown). As with PgBouncer,
   * a backend outage does not make the proxy unready: clients still connect and get a
   * PostgreSQL error that says what is wrong (and the outage shows in
   * pgtenant_server_connect_errors_total), instead of being refused at TCP level.
   */
  async ready(): Promise<boolean> {
    return !!this.server?.listening && !this.shuttingDown
  }

  private accept(socket: net.Socket): void {
    if (this.shuttingDown) {
      socket.destroy()
      return
    }
    if (!this.preAuth.admit(socket)) return
    const session = new ClientSession(socket, this, this.nextSessionId++)
    this.sessions.set(session.id, session)
    this.preAuth.track(session)
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

  /**
   * A CancelRequest. A key this process gave out is served here; otherwise, in a cluster, the
   * primary hands it on: to the worker its pid's low bits name, and, since a session-pooled
   * client's key carries its server connection's pid (which names no worker), to the others too.
   */
  cancel(pid: number, secret: number): void {
    const link = this.clusterLink
    if (this.cancelLocal(pid, secret, !link)) return
    if (!link) return
    this.metrics.prometheus?.cancelRequest('forwarded')
    link.forwardCancel(pid, secret)
  }

  /** Serve a cancel key this process gave out; false when none matches (counted as unmatched when `countMiss`). */
  cancelLocal(pid: number, secret: number, countMiss = true): boolean {
    const own = this.byPid.get(pid)
    const session = own !== undefined && own.secret === secret ? own : this.byServerCancelKey.get(serverCancelKey(pid, secret))
    if (session === undefined) {
      if (countMiss) this.metrics.prometheus?.cancelRequest('unmatched')
      return false
    }
    this.metrics.prometheus?.cancelRequest('local')
    if (session.isAdminConsole)
      this.admin.cancel(session) // ends a waiting WAIT_CLOSE
    else session.cancelRunning()
    return true
  }

  addServerCancelKey(session: ClientSession, serverPid: number): void {
    this.byServerCancelKey.set(serverCancelKey(serverPid, session.secret), session)
    session.serverCancelPid = serverPid
  }

  /** The pid of a new client's cancel key (it names this worker). */
  clientPid(): number {
    return clientPid(this.role?.index ?? 0)
  }

  admitClient(session: ClientSession): { code: string; message: string } | null {
    if (this.shuttingDown) return { code: '57P03', message: 'pgtenant is shutting down' }
    const max = this.config.pool.max_client_connections
    if (this.byPid.size >= max) return { code: '53300', message: `too many client connections (pool.max_client_connections is ${max})` }
    this.byPid.set(session.pid, session)
    return null
  }

  findUser(name: string): UserConfig | undefined {
    return Object.prototype.hasOwnProperty.call(this.config.users, name) ? this.config.users[name] : undefined
  }

  sessionClosed(session: ClientSession): void {
    this.sessions.delete(session.id)
    this.preAuth.closed(session)
    if (this.byPid.get(session.pid) === session) this.byPid.delete(session.pid)
    if (session.serverCancelPid !== null) {
      const key = serverCancelKey(session.serverCancelPid, session.secret)
      if (this.byServerCancelKey.get(key) === session) this.byServerCancelKey.delete(key)
    }
  }

  tenantChanged(_session: ClientSession): void {
    /* routing hooks in here */
  }

  async serverParams(session: ClientSession): Promise<Map<string, string>> {
    // Reported at login: the values of the backend the session starts on (its default placement).
    if (this.disabledDatabases.size > 0) this.refuseDisabledLogin(session)
    let route: Route
    try {
      route = this.route(session, { touchesTenant: false, relations: [] })
    } catch {
      // No server to ask yet (a database per tenant and no tenant set): any pool of that backend, else defaults.
      const backend = this.placementOf(session.effectiveTenant, session)
      for (const p of this.pools.pools.values()) if (p.backendName === backend && p.serverParams) return p.serverParams
      return DEFAULT_SERVER_PARAMS
    }
    const pool = this.poolFor(session, route)
    if (!pool.serverParams) {
      const conn = await pool.acquire()
      pool.release(conn, true)
    }
    return pool.serverParams as Map<string, string>
  }

  /** DISABLE <database>: a login whose backend (its tenant's placement, else placement.default) is disabled gets FATAL 57P03. */
  private refuseDisabledLogin(session: ClientSession): void {
    const backend = this.placementOf(session.effectiveTenant, session)
    if (!this.disabledDatabases.has(backend)) return
    const err = this.databaseDisabledError(backend)
    session.log.warn({ backend, reason: 'database_disabled' }, 'client refused: database disabled')
    session.fatal(err.sqlstate, err.message) // the session's own catch would prefix "could not reach the server"
    throw err
  }

  /** DISABLE TENANT: its new transactions are refused with 57P03 until ENABLE (running ones finish). */
  readonly disabled = new Set<string>()

  /**
   * RECONNECT: the server connections of one backend (or all) are replaced: idle ones are
   * closed now, the others are marked close_needed and closed when released (WAIT_CLOSE
   * waits for them; see PoolManager.replace).
   */
  reconnect(backend?: string): void {
    this.pools.replace(backend)
  }

  /**
   * DISABLE <database>: backend name -> the first session id it refuses. Logins whose backend
   * it is are refused with 57P03, and so are new transactions there of sessions that connected
   * after the DISABLE; sessions already connected keep using it.
   */
  readonly disabledDatabases = new Map<string, number>()

  disableDatabase(backend: string): void {
    if (!this.disabledDatabases.has(backend)) this.disabledDatabases.set(backend, this.nextSessionId)
  }

  enableDatabase(backend: string): void {
    this.disabledDatabases.delete(backend)
  }

  private databaseDisabledError(backend: string): BackendError {
    return new BackendError(`database "${backend}" is disabled (DISABLE on the pgtenant admin console; ENABLE lets new clients in again)`, '57P03')
  }

  /** PAUSE: hold new transactions of this tenant ('*' = everyone) until RESUME. */
  pause(tenant: string): void {
    this.paused.add(tenant)
  }

  resume(tenant?: string): void {
    if (tenant === undefined) this.paused.clear()
    else this.paused.delete(tenant)
    const waiters = this.pauseWaiters
    this.pauseWaiters = []
    for (const w of waiters) w.go()
  }

  /** Sessions whose next transaction a PAUSE holds (MOVE TENANT waits for every other one of its tenant). */
  heldByPause(): Set<ClientSession> {
    return new Set(this.pauseWaiters.map((w) => w.session))
  }

  leavesServerConnection(session: ClientSession): boolean {
    return this.moving.size > 0 && !session.bypass && session.effectiveTenant !== null && this.moving.has(session.effectiveTenant)
  }

  private isPaused(session: ClientSession): boolean {
    if (this.paused.size === 0 || session.bypass) return false
    return this.paused.has('*') || (session.effectiveTenant !== null && this.paused.has(session.effectiveTenant))
  }

  /** The hot path: an idle server connection for this session's next transaction, right now, or null. */
  routed(session: ClientSession): RouteMemo {
    return this.router.routeAndPool(session)
  }

  routeFor(session: ClientSession, tenant: string | null): Pick<RouteMemo, 'route' | 'pool'> {
    return this.router.routeFor(session, tenant)
  }

  private holdsTransactions(session: ClientSession): boolean {
    return this.isPaused(session) || this.shuttingDown || this.disabled.size > 0 || this.disabledDatabases.size > 0
  }

  acquireWithoutWaiting(session: ClientSession): Promise<{ conn: BackendConnection; pool: Pool }> | null {
    const now = this.acquireNow(session)
    if (now) return Promise.resolve(now)
    if (this.holdsTransactions(session)) return null
    let pool: Pool
    try {
      pool = this.router.routeAndPool(session).pool
    } catch {
      return null
    }
    return pool.opensWithoutWaiting() ? this.acquire(session) : null
  }

  acquireNow(session: ClientSession): { conn: BackendConnection; pool: Pool } | null {
    if (this.holdsTransactions(session)) return null
    let memo: RouteMemo
    try {
      memo = this.router.routeAndPool(session)
    } catch {
      return null // the slow path reports the refusal
    }
    const conn = this.tenantLimits.tryAcquire(memo.pool, session.poolStateKey, this.gateOf(session))
    if (!conn) return null
    this.metrics.prometheus?.routed(memo.route.kind, memo.route.backend)
    return { conn, pool: memo.pool }
  }

  /** A server connection for the session's next transaction (a promise: login, tests; sessions use acquireWith). */
  acquire(session: ClientSession): Promise<{ conn: BackendConnection; pool: Pool }> {
    return new Promise((resolve, reject) => this.acquireWith(session, (err, conn, pool) => (err ? reject(err) : resolve({ conn: conn!, pool: pool! }))))
  }

  /**
   * A server connection for the session's next transaction, through a callback (issue 18: no
   * Promise or async frame per wait): after PAUSE, DISABLE and shutdown checks, a rate token and
   * a connection of the session's pool within its tenant's limits (server/backend/tenant-limits.ts).
   * `done` is never called before this returns.
   */
  acquireWith(session: ClientSession, done: (err: Error | null, conn: BackendConnection | null, pool: Pool | null) => void): void {
    let route: Route
    let pool: Pool
    try {
      if (this.shuttingDown && !session.inTransaction) throw new BackendError('pgtenant is shutting down: no new transactions', '57P01')
      const tenant = session.effectiveTenant
      if (tenant !== null && this.disabled.has(tenant) && !session.inTransaction)
        throw new BackendError(`tenant "${tenant}" is disabled (DISABLE on the pgtenant admin console; ENABLE lets it in again)`, '57P03')
      if (this.isPaused(session)) {
        this.pauseWaiters.push({ session, go: () => this.acquireWith(session, done) })
        return
      }
      ;({ route, pool } = this.router.routeAndPool(session))
      if (this.disabledDatabases.size > 0 && !session.inTransaction && session.id >= (this.disabledDatabases.get(route.backend) ?? Infinity))
        throw this.databaseDisabledError(route.backend)
    } catch (err) {
      queueMicrotask(() => done(err as Error, null, null))
      return
    }
    this.metrics.prometheus?.routed(route.kind, route.backend)
    const started = Date.now()
    this.tenantLimits.acquire(pool, session.poolStateKey, this.gateOf(session), (err, conn) => {
      if (err === null) {
        this.metrics.prometheus?.poolWaited(route.backend, (Date.now() - started) / 1000)
        return done(null, conn, pool)
      }
      if (route.kind === 'citus-worker' && err instanceof BackendError && err.sqlstate !== '53300' && err.sqlstate !== '53400') {
        // The worker is unreachable and nothing was sent yet: refresh the metadata, use the coordinator.
        session.log.warn({ route: formatRoute(route), err: err.message }, 'Citus worker unreachable; routing to the coordinator')
        void this.catalogs.refreshCitus(route.backend)
        this.router.onCoordinator(session, route.backend).then(
          (got) => done(null, got.conn, got.pool),
          (e: Error) => done(e, null, null),
        )
        return
      }
      if (err instanceof BackendError && err.sqlstate === '3D000' && route.kind === 'dedicated')
        return done(new BackendError(`the database for tenant "${route.tenant}" does not exist (${route.target.database})`, '3D000'), null, null)
      done(err, null, null)
    })
  }

  /** The session's tenant limits (null: none apply: no tenant, or a bypass user). */
  private gateOf(session: ClientSession): TenantGate | null {
    return session.bypass ? null : this.tenantLimits.gate(session.effectiveTenant)
  }

  /** What the tenant's limits add to the session state its server connection needs (the statement timeout): a key suffix. */
  tenantStateKey(session: ClientSession): string {
    return this.gateOf(session)?.stateSuffix ?? ''
  }

  /** The SQL that sets it, run after the session state replay ('' when nothing). */
  tenantStateSql(session: ClientSession, clientSetsTimeout: boolean): string {
    const gate = this.gateOf(session)
    return gate === null ? '' : statementTimeoutSql(gate.limits.statementTimeoutMs, clientSetsTimeout)
  }

  workerError(backendName: string, sqlstate: string): void {
    this.router.workerError(backendName, sqlstate)
  }

  route(session: ClientSession, hint: { touchesTenant: boolean; relations: readonly string[] }): Route {
    return this.router.route(session, hint)
  }

  poolFor(session: ClientSession, route: Route): Pool {
    return this.router.poolFor(session, route)
  }

  statementName(sql: string, paramTypes: Buffer): string {
    return this.statementNames.name(sql, paramTypes)
  }

  /**
   * DDL ran, or a server said a shared statement's result type changed (0A000): Parses from
   * now on get new server statements, planned against the schema as it is now; statements
   * clients prepared before keep theirs, and fail as they would directly.
   */
  schemaChanged(): void {
    this.statementNames.clear()
    this.schemaEpoch++
  }

  schemaEpoch = 0

  /** Apply a new config (SIGHUP): users, pool sizes and limits change; connections stay. */
  reload(config: Config): void {
    config = workerShare(config, this.role?.count ?? 1)
    // What only a restart can change keeps its running value (SHOW CONFIG shows what runs).
    if (this.running) {
      config = keepRestartOnly(config, this.running, this.config, this.log)
      setLogLevel(this.log, config.log_level) // session loggers are children: they follow
    }
    // A backend whose connection settings changed (or that is gone): its server connections
    // are replaced as by RECONNECT (close_needed; WAIT_CLOSE waits for them), as PgBouncer does.
    const changed = Object.keys(this.config.backends).filter(
      (name) => JSON.stringify(config.backends[name]?.url ?? null) !== JSON.stringify(this.config.backends[name].url),
    )
    for (const name of changed) {
      this.pools.replace(name, { forget: true })
      if (!Object.hasOwn(config.backends, name)) this.disabledDatabases.delete(name)
    }
    if (changed.length) this.log.info({ backends: changed }, 'configuration reload: server connections of changed backends are replaced')
    this.config = config
    this.router.changed()
    this.planner.reconfigure(config)
    this.pools.limits = limitsOf(config)
    this.tenantLimits.configure(config)
    for (const pool of this.pools.pools.values()) {
      const backend = config.backends[pool.backendName]
      if (backend) pool.size = backend.pool
    }
    this.pools.limitsChanged() // pool sizes and tenant limits may let waiting clients in now
    this.secureContext = config.tls ? tls.createSecureContext({ cert: config.tls.cert, key: config.tls.key }) : null
    this.tenantPattern = compileTenantPattern(config.tenant?.pattern)
    this.metrics.slowStatementMs = config.log?.slow_statement_ms ?? 0
    this.catalogs.reset(changed)
    void this.catalogs.loadAll()
    this.log.info('configuration reloaded')
  }

  /**
   * Safe shutdown (SIGTERM, SHUTDOWN): stop accepting, close idle clients at once, let
   * running transactions finish (up to the timeout) and close each client as its
   * transaction ends; a client that starts a new transaction meanwhile gets 57P01. Then
   * close everything. terminate() (a second signal, SIGINT) ends the wait at once.
   */
  async shutdown(timeoutMs = this.config.pool.shutdown_timeout_ms): Promise<void> {
    if (this.stopping) return this.stopping
    this.stopping = this.drain(timeoutMs)
    return this.stopping
  }

  /** Immediate shutdown: clients in a transaction are cut off now (57P01). */
  terminate(): Promise<void> {
    this.drainAbort?.()
    return this.shutdown(0)
  }

  private stopping: Promise<void> | null = null
  private drainAbort: (() => void) | null = null

  private async drain(timeoutMs: number): Promise<void> {
    this.shuttingDown = true
    this.server?.close()
    if (this.reaper) clearInterval(this.reaper)
    this.catalogs.stop()
    if (this.statsTimer) clearInterval(this.statsTimer)
    await drainClients(
      () => [...this.sessions.values()],
      timeoutMs,
      this.log,
      (abort) => (this.drainAbort = abort),
    )
    this.pools.closeAll()
    this.metrics.prometheus?.close()
    this.log.info('pgtenant stopped')
  }
}

function serverCancelKey(pid: number, secret: number): string {
  return `${pid}/${secret}`
}
