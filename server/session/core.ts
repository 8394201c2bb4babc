// The client connection of a session: its socket, timers, startup and login, the input loop
// that hands each message to the layer that handles it, and the state every layer reads.
// The session is built in layers, one concern per file (lowest first): core.ts, answers.ts
// (proxy-made answers and tenant commands), backend-link.ts (the server connection: acquire,
// state replay, release, server replies), extended.ts (Parse/Bind/Describe/Execute/Close/Sync),
// and server/session.ts (message dispatch, simple queries, BEGIN deferral, session effects).
import type { Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { FrameReader, ProtocolViolation, type Frame } from '../protocol/frame-reader.js'
import * as fe from '../protocol/frontend.js'
import * as be from '../protocol/backend.js'
import { BackendScanner, type ScannerSink } from '../protocol/backend-scanner.js'
import { BatchedWriter } from '../protocol/output.js'
import { isReused } from '../protocol/reused-memory.js'
import { receiveReads, stopReceiving } from '../client-socket.js'
import { BackendConnection } from '../backend/connection.js'
import type { Pool } from '../backend/pool.js'
import { REPLICATION_REFUSAL, replicationAttempts } from './replication.js'
import type { UserConfig } from '../config-types.js'
import type { Refusal } from '../../parser/types.js'
import { startLogin, type LoginHost } from './login.js'
import { settingRefusal } from '../../parser/policy/settings.js'
import type { ClientSession } from '../session.js'
import type { ProxyContext, RouteMemo } from '../proxy-context.js'
import { ReplyQueue } from './reply-queue.js'
import { SessionState } from './state.js'
import { StatementRegistry, type ClientStatement } from './statements.js'
import { cleanUpForReuse } from './cleanup.js'
import { placedBackend, sessionDatabase } from '../databases.js'
import { NO_HINT, parseOptions } from './statement-text.js'

type TxStatus = be.TxStatus

export abstract class SessionCore {
  readonly id: number
  readonly pid: number
  /** The pid in the client's cancel key when it is its server connection's (session pooling: login.ts), else null. */
  serverCancelPid: number | null = null
  readonly secret: number
  readonly connectedAt = Date.now()
  user = ''
  database = ''
  /** The SQL of the statement most recently sent (a reference, for the slow-statement log). */
  lastSql: string | null = null
  userConfig: UserConfig | null = null
  log: Logger
  state: 'startup' | 'auth' | 'ready' | 'closed' = 'startup'

  /** Tenant, settings and what waits for COMMIT (session/state.ts). */
  protected readonly st = new SessionState()
  /** The client's statements and portals (session/statements.ts); made at first use: an idle client has none (issue 18, memory per client). */
  private stmtsInstance: StatementRegistry | null = null
  protected get stmts(): StatementRegistry {
    return (this.stmtsInstance ??= new StatementRegistry())
  }
  protected readonly reader: FrameReader
  protected readonly out: BatchedWriter
  protected readonly scanner: BackendScanner
  /** What the server connection still owes (see session/reply-queue.ts); proxy-made answers wait in it too. */
  protected readonly queue = new ReplyQueue((b) => this.scanner.inject(b))
  protected txStatus: TxStatus = 'I'
  protected txTouchedTenant = false
  backend: BackendConnection | null = null
  /** Name of the configured backend serving the current transaction (for metrics and logs). */
  backendName: string | null = null
  /** What the first statement of the next transaction touches: routing input. */
  routeHint: { touchesTenant: boolean; relations: readonly string[] } = NO_HINT
  /** The proxy's last routing answer for this session (it decides when it is still good). */
  routeMemo: RouteMemo | null = null
  protected pool: Pool | null = null
  protected rowsSent = 0
  protected bytesSent = 0
  protected acquiring = false
  protected stalled: Frame | null = null
  protected inputHeldForServer = false // client reads paused until the server connection drains
  /** A proxy-made error in an extended batch: the client's messages up to its Sync are dropped. */
  protected skipUntilSync = false
  /** SQL-level prepared statements (PREPARE) live on one server connection: while any exist, the client keeps it. Made at first use. */
  private sqlPreparedInstance: Set<string> | null = null
  protected get sqlPrepared(): Set<string> {
    return (this.sqlPreparedInstance ??= new Set<string>())
  }
  protected toBackend: Buffer[] = []
  protected loginTimer: NodeJS.Timeout | null = null
  protected idleTimer: NodeJS.Timeout | null = null
  protected authStep: ((frame: Frame) => void) | null = null
  protected currentQueryStart = 0
  /** Holds the raw socket (possibly TLS-wrapped after SSLRequest). */
  socket: Socket

  constructor(
    socket: Socket,
    protected readonly ctx: ProxyContext,
    id: number,
  ) {
    this.socket = socket
    this.id = id
    this.pid = ctx.clientPid()
    this.secret = randomBytes(4).readInt32BE(0)
    this.log = ctx.log.child({ session: id, client: `${socket.remoteAddress}:${socket.remotePort}` })
    this.reader = ctx.preAuth.reader(this.session)
    this.out = new BatchedWriter(socket, () => this.backend?.socket.pause())
    this.scanner = new BackendScanner(this.createSink())
    this.attachSocket(socket)
    this.loginTimer = setTimeout(() => ctx.preAuth.loginTimedOut(this.session), ctx.config.pool.login_timeout_ms)
  }

  /** This session as the proxy knows it: the layers in server/session/ make up one ClientSession. */
  protected get session(): ClientSession {
    return this as unknown as ClientSession
  }

  /** Queue a message for the server connection (sent by flushBackend). */
  protected send(buf: Buffer): void {
    this.toBackend.push(buf)
  }

  /** Handle one client message. Returns false when it needs a backend connection not yet attached. */
  protected abstract handleMessage(frame: Frame): boolean
  protected abstract flushBackend(): void
  protected abstract attachAtLogin(): Promise<number | null>
  /** The scanner's sink for server replies (backend-link.ts); called once, from the constructor. */
  protected abstract createSink(): ScannerSink
  /** A Sync or Query that ends a batch which changed the tenant went to the server: the client's next messages wait for its outcome (answers.ts). */
  protected holdForTenantOutcome = false

  /** The session's tenant (SET LOCAL aside: see effectiveTenant). */
  get tenant(): string | null {
    return this.st.tenant
  }

  set tenant(value: string | null) {
    this.st.setTenant(value, false)
  }

  // ---------------------------------------------------------------- sockets

  protected attachSocket(socket: Socket): void {
    this.socket = socket
    socket.setNoDelay(true)
    // Reads come straight from the socket's `onread` callback where it has one (client-socket.ts), else as 'data' events.
    if (!receiveReads(socket, this.onClientData)) socket.on('data', this.onClientData)
    socket.on('drain', () => this.backend?.socket.resume())
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'client socket error'))
    socket.on('close', () => this.onClientClose())
  }

  protected readonly onClientData = (chunk: Buffer): void => {
    // What a new packet starts with (see processStartup). Its own memory, not a slice of Node's shared 8 KiB
    // allocation pool: a slice kept for the session's life would keep that whole pool chunk alive (issue 18:
    // about 2 KB per idle client), and it is dropped once the startup phase is over.
    if (this.state === 'startup' && this.reader.buffered === 0) {
      const head = Buffer.allocUnsafeSlow(Math.min(8, chunk.length))
      chunk.copy(head, 0, 0, head.length)
      this.packetHead = head
    } else if (this.packetHead !== null && this.state !== 'startup') this.packetHead = null
    this.reader.push(chunk)
    try {
      this.processInput()
    } catch (err) {
      this.onInputError(err as Error)
    } finally {
      this.settleInput()
    }
  }

  /**
   * The read callback is about to return, and `chunk` may be a view of the shared read buffer
   * that the next read on any client socket overwrites: what the session keeps of it (unread
   * bytes, a message stalled until a server connection is attached, messages not yet sent to
   * the server) is copied now. Mostly nothing is kept, and nothing is copied.
   */
  protected settleInput(): void {
    this.reader.settle()
    const stalled = this.stalled
    if (stalled !== null && isReused(stalled.raw)) stalled.raw = Buffer.from(stalled.raw) // the same Frame: retriedFrame compares identity
    const out = this.toBackend
    for (let i = 0; i < out.length; i++) if (isReused(out[i])) out[i] = Buffer.from(out[i])
  }

  protected onInputError(err: Error): void {
    if (err instanceof ProtocolViolation) {
      if (this.state === 'startup' || this.state === 'auth') {
        // Not a PostgreSQL client (an HTTP request, a port scanner, garbage): say so in the log and the metrics.
        this.ctx.metrics?.clientRefused('protocol')
        this.log.warn({ client: `${this.socket.remoteAddress}:${this.socket.remotePort}`, err: err.message }, 'client refused: protocol violation before login')
      }
      this.fatal('08P01', `protocol violation: ${err.message}`)
    } else {
      this.log.error({ err }, 'internal error while handling client message')
      this.fatal('XX000', `internal proxy error: ${err.message}`)
    }
  }

  protected onClientClose(): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.clearTimers()
    this.ctx.sessionClosed(this.session)
    if (this.backend) {
      const conn = this.backend
      const pool = this.pool as Pool
      this.flushBackend() // messages already taken from the client go out: the queue expects their replies
      this.backend = null
      this.pool = null
      conn.detach()
      const transactionPooling = this.poolMode === 'transaction'
      if (this.queue.settled && this.txStatus === 'I' && !this.pinned && transactionPooling) pool.release(conn, true)
      else {
        // Mid-batch, mid-query, mid-transaction or with session state: made clean first (or closed).
        cleanUpForReuse({
          conn,
          pool,
          queue: this.queue,
          scanner: this.scanner,
          status: this.txStatus,
          reset: !transactionPooling || this.pinned || !this.queue.settled || this.txStatus !== 'I',
          log: this.log,
        })
      }
    }
    this.log.info('client disconnected')
  }

  protected clearTimers(): void {
    if (this.loginTimer) clearTimeout(this.loginTimer)
    if (this.idleTimer) clearTimeout(this.idleTimer)
    this.loginTimer = this.idleTimer = null
  }

  /** Send a FATAL error and close the connection. */
  fatal(code: string, message: string): void {
    if (this.state === 'closed') return
    this.out.push(be.errorResponse({ severity: 'FATAL', code, message }))
    this.out.flush()
    this.socket.end()
    this.onClientClose()
  }

  /** Cancel whatever this client is running (CancelRequest with our key). */
  cancelRunning(): void {
    if (this.backend && this.queue.owesReplies) this.backend.cancel()
  }

  // ---------------------------------------------------------------- input

  protected processInput(): void {
    if (this.state === 'startup') return this.processStartup()
    if (this.state === 'auth') {
      const frame = this.reader.next()
      if (frame) this.authStep?.(frame)
      return
    }
    if (this.state !== 'ready') return
    this.armIdleTimer()
    while (this.state === 'ready' && !this.holdForTenantOutcome) {
      const frame = this.stalled ?? this.reader.next()
      if (!frame) break
      this.stalled = null
      if ((frame.type === 0x51 || frame.type === 0x50) && this.waitForFacts(frame)) break
      if (!this.handleMessage(frame)) {
        this.stalled = frame // needs a backend connection: resume when one is attached
        this.socket.pause()
        break
      }
    }
    this.flushBackend()
    this.out.flush()
  }

  /** The first bytes of the packet being read before login: a Terminate or an HTTP request is not a startup packet. */
  protected packetHead: Buffer | null = null

  protected processStartup(): void {
    const head = this.reader.buffered > 0 ? this.packetHead : null
    if (head && head.length >= 5 && head[0] === 0x58 && head.readInt32BE(1) === 4) {
      // Terminate before any startup packet (node-postgres closing a connection it never used): PostgreSQL closes silently.
      this.log.debug('Terminate before the startup packet: closed')
      this.socket.end()
      return this.onClientClose()
    }
    if (head && /^(GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) /.test(head.toString('latin1')))
      throw new ProtocolViolation(
        'this is a PostgreSQL port (pgtenant), not an HTTP server: connect with a PostgreSQL client; metrics are served over HTTP on the metrics address',
      )
    let frame: Frame | null
    try {
      frame = this.reader.nextUntyped()
    } catch (err) {
      if (!(err instanceof ProtocolViolation)) throw err
      throw new ProtocolViolation(
        `${err.message}: expected a startup packet (length, then protocol 3.0 and parameters), an SSLRequest, a GSSENCRequest or a CancelRequest`,
      )
    }
    if (!frame) return
    const packet = fe.decodeStartup(frame)
    switch (packet.kind) {
      case 'ssl': {
        if (!this.ctx.tlsEnabled) {
          this.socket.write('N')
          return this.processStartup()
        }
        // Bytes sent before the TLS handshake could be injected by a man in the middle: refuse them.
        if (this.reader.buffered > 0) return this.fatal('08P01', 'received unencrypted data after SSL request')
        return this.ctx.startTls(this.session)
      }
      case 'gssenc':
        this.socket.write('N')
        return this.processStartup()
      case 'cancel':
        this.ctx.cancel(packet.pid, packet.secret)
        this.socket.end()
        return this.onClientClose()
      case 'unsupported':
        return this.fatal('0A000', `unsupported frontend protocol ${packet.version >> 16}.${packet.version & 0xffff}: pgtenant speaks protocol 3.0`)
      case 'startup':
        return this.startLogin(packet.params)
    }
  }

  /** Called by the proxy after the TLS handshake: the startup packet comes next, encrypted. */
  resumeAfterTls(tlsSocket: Socket): void {
    stopReceiving(this.socket)
    this.socket.removeAllListeners('data')
    this.socket.removeAllListeners('drain')
    this.socket.removeAllListeners('close')
    this.attachSocket(tlsSocket)
    this.out.setSocket(tlsSocket)
  }

  protected startLogin(params: Record<string, string>): void {
    startLogin(this.loginHost(), params)
  }

  /** What the login (session/login.ts) may touch of this session. */
  protected loginHost(): LoginHost {
    return {
      session: this.session,
      ctx: this.ctx,
      setAuthStep: (fn) => {
        this.authStep = fn
      },
      loggedIn: () => {
        if (this.loginTimer) clearTimeout(this.loginTimer)
        this.loginTimer = null
        this.state = 'ready'
      },
      processInput: () => this.processInput(),
      applyStartupParams: (params) => this.applyStartupParams(params),
      unsafeTextSettings: () => this.unsafeTextSettings(),
      fixPoolMode: () => {
        this.loginPoolMode = this.decidePoolMode()
      },
      refuseReplication: () => this.refuseReplication(),
      attachAtLogin: () => this.attachAtLogin(),
    }
  }

  /** Connected to the admin console (database "pgtenant"): the proxy answers everything itself. */
  get isAdminConsole(): boolean {
    return this.database === 'pgtenant'
  }

  /** Replication is not proxied: one clear FATAL; a client retrying in a loop is refused without a log line each (session/replication.ts). */
  protected refuseReplication(): void {
    const address = this.socket.remoteAddress ?? ''
    const verdict = replicationAttempts.attempt(address)
    this.ctx.metrics?.clientRefused(verdict === 'refuse' ? 'replication' : 'replication_rate_limited')
    if (verdict === 'refuse') this.log.warn({ client: address, reason: 'replication' }, 'replication connection refused: pgtenant does not proxy replication')
    this.fatal('0A000', REPLICATION_REFUSAL)
  }

  /** The rewriter splices UTF-8 text with standard-conforming string literals: anything else could change what a statement means. */
  protected unsafeTextSettings(): string | null {
    if (!this.ctx.planner.tenantMode || this.bypass) return null
    const encoding = this.st.settings.get('client_encoding')?.replace(/'/g, '')
    if (encoding !== undefined && !/^(utf-?8|unicode)$/i.test(encoding))
      return `pgtenant needs client_encoding UTF8 for tenant sessions (the client asked for ${encoding})`
    const scs = this.st.settings.get('standard_conforming_strings')?.replace(/'/g, '')
    if (scs !== undefined && !/^(on|true|yes|1)$/i.test(scs)) return 'pgtenant needs standard_conforming_strings on for tenant sessions'
    // startup settings follow the same allow list as SET (parser/policy/settings.ts)
    for (const name of this.st.settings.keys()) {
      const refusal = settingRefusal(name)
      if (refusal) return refusal
    }
    return null
  }

  protected applyStartupParams(params: Record<string, string>): void {
    for (const [key, value] of Object.entries(params)) {
      if (key === 'user' || key === 'database' || key === 'replication') continue
      if (key === 'options') {
        for (const [name, val] of parseOptions(value)) this.applyStartupSetting(name, val)
      } else this.applyStartupSetting(key, value)
    }
  }

  protected applyStartupSetting(name: string, value: string): void {
    if (name.toLowerCase() === this.ctx.planner.setting && this.ctx.planner.tenantMode) {
      if (this.userConfig?.tenant === undefined) this.st.setTenant(value === '' ? null : value, false)
      return
    }
    this.st.setStartupSetting(name, value)
  }

  protected armIdleTimer(): void {
    const ms = this.ctx.config.pool.client_idle_timeout_ms
    if (!ms) return
    if (this.idleTimer) clearTimeout(this.idleTimer)
    this.idleTimer = setTimeout(() => {
      if (this.backend) return this.armIdleTimer()
      this.fatal('57P05', `terminating connection: client idle for longer than ${ms} ms (pool.client_idle_timeout_ms)`)
    }, ms)
  }

  // ---------------------------------------------------------------- messages

  protected retriedFrame: Frame | null = null
  /** A search_path SET but not yet committed: statements sent after it are planned with it. */
  protected planSearchPath: string | null = null
  /** A BEGIN answered by the proxy, to be sent ahead of the transaction's first statement. */
  protected deferredBegin: string | null = null
  /** Type byte of the client message being handled (which protocol the transaction's first statement uses). */
  protected currentType = 0
  /** A portal bound to a BEGIN by the proxy itself (extended protocol), and its statement. */
  protected beginPortal: string | null = null
  protected beginStatement: ClientStatement | null = null
  /** The server sent FATAL before closing while the client was idle: nothing to tell it (see serverEndsClient). */
  protected serverFatal = false
  /** The server's FATAL was forwarded: the client's connection closes with the server's. */
  protected endsWithServer = false

  /**
   * A refusal because a relation is unknown may just mean the table is newer than our schema
   * facts: rediscover once and plan the same message again (it stays stalled meanwhile).
   */
  protected refreshedFor(frame: Frame, refusal: Refusal): boolean {
    if (this.retriedFrame === frame || refusal.reason !== 'unknown_relation') return false
    this.retriedFrame = frame
    this.ctx.refreshFactsFor(this.session).finally(() => this.resumeInput())
    return true
  }

  /** Schema facts being discovered (first use of a per-tenant database): hold the message until they are. */
  protected waitForFacts(frame: Frame): boolean {
    const facts = this.ctx.factsFor(this.session)
    if (!(facts instanceof Promise)) return false
    this.stalled = frame
    this.socket.pause()
    facts.finally(() => this.resumeInput())
    return true
  }

  protected resumeInput(): void {
    if (this.state !== 'ready') return
    this.socket.resume()
    try {
      this.processInput()
    } catch (err) {
      this.onInputError(err as Error)
    }
  }

  /** A WITH HOLD cursor outlives its transaction on the server connection: nobody else may use that connection meanwhile. */
  protected holdsCursor = false
  /** A cursor was declared or closed since the server was last asked whether held cursors remain (askForHeldCursors). */
  protected cursorCheck = false
  /** How many times the proxy closed every cursor on the server connection (a tenant change). */
  protected cursorsClosed = 0

  protected get pinned(): boolean {
    return this.sqlPrepared.size > 0 || this.holdsCursor
  }

  /** For the client-connections gauge. */
  get metricState(): 'login' | 'active' | 'idle' | 'idle_in_transaction' | 'waiting' {
    if (this.state !== 'ready') return 'login'
    if (this.acquiring) return 'waiting'
    if (!this.backend) return 'idle'
    return this.queue.length === 0 && this.txStatus !== 'I' ? 'idle_in_transaction' : 'active'
  }

  /** Inside a transaction (the client's view: BEGIN answered, COMMIT not yet). */
  get inTransaction(): boolean {
    return this.txStatus !== 'I'
  }

  /** In a transaction, owed replies, or waiting for a server connection: a shutdown drain lets it finish. */
  get busy(): boolean {
    return this.state === 'ready' && (this.acquiring || this.txStatus !== 'I' || !this.queue.settled)
  }

  get bypass(): boolean {
    return this.userConfig?.bypass ?? false
  }

  /**
   * The pool mode this session runs under, fixed at login: the user's `pool_mode`, else that of
   * the backend its login lands on (the placement of its login tenant, else the default
   * backend), else `pool.mode` (PgBouncer: per-user, per-database, global).
   */
  get poolMode(): 'transaction' | 'session' {
    return this.loginPoolMode ?? this.decidePoolMode()
  }

  protected loginPoolMode: 'transaction' | 'session' | null = null

  protected decidePoolMode(): 'transaction' | 'session' {
    const config = this.ctx.config
    const byUser = this.userConfig?.pool_mode
    if (byUser) return byUser
    return config.backends[this.placedBackend()]?.pool_mode ?? config.pool.mode
  }

  /** Which setting would give this client session pooling (for hints). */
  protected get sessionModeSetting(): string {
    const user = `users.${this.user}.pool_mode: session`
    if (this.userConfig?.pool_mode) return user
    return `${user} (or backends.${this.placedBackend()}.pool_mode: session)`
  }

  /** The backend this session's tenant is placed on, as the database the client named places it (server/databases.ts). */
  private placedBackend(): string {
    return placedBackend(this.ctx.config, sessionDatabase(this.session), this.effectiveTenant)
  }

  /**
   * Whether a server connection ending now must end this client's connection too, as
   * PostgreSQL's would: always under session pooling, and under transaction pooling when
   * the client is inside a transaction, has state on that server connection (pinned), or
   * waits for replies. Otherwise (an idle client between transactions) the next
   * transaction simply gets another server connection.
   */
  protected serverEndsClient(): boolean {
    return this.poolMode !== 'transaction' || this.txStatus !== 'I' || this.pinned || this.queue.owesReplies || this.queue.unsynced
  }

  get effectiveTenant(): string | null {
    return this.st.effectiveTenant
  }
}
