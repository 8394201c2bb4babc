// One client connection: startup, authentication, tenant and session state, and the
// relay to whichever backend connection serves its current transaction.
//
// Responses reach the client in protocol order through one queue of expected
// responses (`queue`): backend-bound messages push entries that the backend's replies
// complete, and answers the proxy makes itself (refusals, tenant commands, a
// ParseComplete for a statement already prepared on that connection) push synthetic
// entries that are emitted when they reach the head.
import type { Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { FrameReader, ProtocolViolation, type Frame } from './protocol/frame-reader.js'
import * as fe from './protocol/frontend.js'
import { serialize } from './protocol/pg-protocol.js'
import { ParseMemo } from './protocol/parse-memo.js'
import * as be from './protocol/backend.js'
import { BackendScanner, type ScannerSink } from './protocol/backend-scanner.js'
import { BatchedWriter, writeAll } from './protocol/output.js'
import { BackendConnection, BackendError } from './backend/connection.js'
import type { Pool } from './backend/pool.js'
import { REPLICATION_REFUSAL, replicationAttempts } from './session/replication.js'
import { closeEvicted } from './backend/prepared.js'
import type { Config, UserConfig } from './config-types.js'
import type { RewriteResult, SessionEffect, StatementPlan, TenantCommand, Refusal } from '../parser/types.js'
import { quoteLiteral, quoteIdent } from './planner.js'
import { startLogin, type LoginHost } from './session/login.js'
import { settingRefusal } from '../parser/policy/settings.js'
import { guardViolationColumn } from '../parser/index.js'
import { fingerprintSync } from 'libpg-query'
import type { ProxyContext, RouteMemo } from './proxy-context.js'
import { ReplyQueue, entry, NO_EFFECTS } from './session/reply-queue.js'
import { SessionState } from './session/state.js'
import { StatementRegistry, clientStatement, needsParse, type ClientStatement } from './session/statements.js'
import { cleanUpForReuse } from './session/cleanup.js'
import { NO_HINT, parseOptions, hintOf, isPlainBegin, deferredBeginMessages, beginTag, loneCommand, parseSearchPath, isSearchPathEffect } from './session/statement-text.js'

type TxStatus = be.TxStatus

export class ClientSession {
  readonly id: number
  readonly pid: number
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
  private readonly st = new SessionState()
  /** The client's statements and portals (session/statements.ts). */
  private readonly stmts = new StatementRegistry()
  private readonly reader: FrameReader
  private readonly out: BatchedWriter
  private readonly scanner: BackendScanner
  /** What the server connection still owes (see session/reply-queue.ts); proxy-made answers wait in it too. */
  private readonly queue = new ReplyQueue((b) => this.scanner.inject(b))
  private txStatus: TxStatus = 'I'
  private txTouchedTenant = false
  backend: BackendConnection | null = null
  /** Name of the configured backend serving the current transaction (for metrics and logs). */
  backendName: string | null = null
  /** What the first statement of the next transaction touches: routing input. */
  routeHint: { touchesTenant: boolean; relations: readonly string[] } = NO_HINT
  /** The proxy's last routing answer for this session (it decides when it is still good). */
  routeMemo: RouteMemo | null = null
  private pool: Pool | null = null
  private rowsSent = 0
  private bytesSent = 0
  private acquiring = false
  private stalled: Frame | null = null
  private inputHeldForServer = false // client reads paused until the server connection drains
  /** A proxy-made error in an extended batch: the client's messages up to its Sync are dropped. */
  private skipUntilSync = false
  /** SQL-level prepared statements (PREPARE) live on one server connection: while any exist, the client keeps it. */
  private readonly sqlPrepared = new Set<string>()
  private toBackend: Buffer[] = []
  private loginTimer: NodeJS.Timeout | null = null
  private idleTimer: NodeJS.Timeout | null = null
  private authStep: ((frame: Frame) => void) | null = null
  private currentQueryStart = 0
  /** Holds the raw socket (possibly TLS-wrapped after SSLRequest). */
  socket: Socket

  constructor(
    socket: Socket,
    private readonly ctx: ProxyContext,
    id: number,
  ) {
    this.socket = socket
    this.id = id
    this.pid = ctx.clientPid()
    this.secret = randomBytes(4).readInt32BE(0)
    this.log = ctx.log.child({ session: id, client: `${socket.remoteAddress}:${socket.remotePort}` })
    this.reader = ctx.preAuth.reader(this)
    this.out = new BatchedWriter(socket, () => this.backend?.socket.pause())
    this.scanner = new BackendScanner(this.sink)
    this.attachSocket(socket)
    this.loginTimer = setTimeout(() => ctx.preAuth.loginTimedOut(this), ctx.config.pool.login_timeout_ms)
  }

  /** The session's tenant (SET LOCAL aside: see effectiveTenant). */
  get tenant(): string | null {
    return this.st.tenant
  }

  set tenant(value: string | null) {
    this.st.setTenant(value, false)
  }

  // ---------------------------------------------------------------- sockets

  private attachSocket(socket: Socket): void {
    this.socket = socket
    socket.setNoDelay(true)
    socket.on('data', this.onClientData)
    socket.on('drain', () => this.backend?.socket.resume())
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'client socket error'))
    socket.on('close', () => this.onClientClose())
  }

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.state === 'startup' && this.reader.buffered === 0) this.packetHead = Buffer.from(chunk.subarray(0, 8)) // what a new packet starts with (see processStartup)
    this.reader.push(chunk)
    try {
      this.processInput()
    } catch (err) {
      this.onInputError(err as Error)
    }
  }

  private onInputError(err: Error): void {
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

  private onClientClose(): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.clearTimers()
    this.ctx.sessionClosed(this)
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
        cleanUpForReuse({ conn, pool, queue: this.queue, scanner: this.scanner, status: this.txStatus, reset: !transactionPooling || this.pinned || !this.queue.settled || this.txStatus !== 'I', log: this.log })
      }
    }
    this.log.info('client disconnected')
  }

  private clearTimers(): void {
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

  private processInput(): void {
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
  private packetHead: Buffer | null = null

  private processStartup(): void {
    const head = this.reader.buffered > 0 ? this.packetHead : null
    if (head && head.length >= 5 && head[0] === 0x58 && head.readInt32BE(1) === 4) {
      // Terminate before any startup packet (node-postgres closing a connection it never used): PostgreSQL closes silently.
      this.log.debug('Terminate before the startup packet: closed')
      this.socket.end()
      return this.onClientClose()
    }
    if (head && /^(GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) /.test(head.toString('latin1')))
      throw new ProtocolViolation('this is a PostgreSQL port (pgtenant), not an HTTP server: connect with a PostgreSQL client; metrics are served over HTTP on the metrics address')
    let frame: Frame | null
    try {
      frame = this.reader.nextUntyped()
    } catch (err) {
      if (!(err instanceof ProtocolViolation)) throw err
      throw new ProtocolViolation(`${err.message}: expected a startup packet (length, then protocol 3.0 and parameters), an SSLRequest, a GSSENCRequest or a CancelRequest`)
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
        return this.ctx.startTls(this)
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
    this.socket.removeAllListeners('data')
    this.socket.removeAllListeners('drain')
    this.socket.removeAllListeners('close')
    this.attachSocket(tlsSocket)
    this.out.setSocket(tlsSocket)
  }

  private startLogin(params: Record<string, string>): void {
    startLogin(this.loginHost(), params)
  }

  /** What the login (session/login.ts) may touch of this session. */
  private loginHost(): LoginHost {
    return {
      session: this,
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
    }
  }

  /** Connected to the admin console (database "pgtenant"): the proxy answers everything itself. */
  get isAdminConsole(): boolean {
    return this.database === 'pgtenant'
  }

  /** Replication is not proxied: one clear FATAL; a client retrying in a loop is refused without a log line each (session/replication.ts). */
  private refuseReplication(): void {
    const address = this.socket.remoteAddress ?? ''
    const verdict = replicationAttempts.attempt(address)
    this.ctx.metrics?.clientRefused(verdict === 'refuse' ? 'replication' : 'replication_rate_limited')
    if (verdict === 'refuse') this.log.warn({ client: address, reason: 'replication' }, 'replication connection refused: pgtenant does not proxy replication')
    this.fatal('0A000', REPLICATION_REFUSAL)
  }

  /** The rewriter splices UTF-8 text with standard-conforming string literals: anything else could change what a statement means. */
  private unsafeTextSettings(): string | null {
    if (!this.ctx.planner.tenantMode || this.bypass) return null
    const encoding = this.st.settings.get('client_encoding')?.replace(/'/g, '')
    if (encoding !== undefined && !/^(utf-?8|unicode)$/i.test(encoding)) return `pgtenant needs client_encoding UTF8 for tenant sessions (the client asked for ${encoding})`
    const scs = this.st.settings.get('standard_conforming_strings')?.replace(/'/g, '')
    if (scs !== undefined && !/^(on|true|yes|1)$/i.test(scs)) return 'pgtenant needs standard_conforming_strings on for tenant sessions'
    // startup settings follow the same allow list as SET (parser/policy/settings.ts)
    for (const name of this.st.settings.keys()) {
      const refusal = settingRefusal(name)
      if (refusal) return refusal
    }
    return null
  }

  private applyStartupParams(params: Record<string, string>): void {
    for (const [key, value] of Object.entries(params)) {
      if (key === 'user' || key === 'database' || key === 'replication') continue
      if (key === 'options') {
        for (const [name, val] of parseOptions(value)) this.applyStartupSetting(name, val)
      } else this.applyStartupSetting(key, value)
    }
  }

  private applyStartupSetting(name: string, value: string): void {
    if (name.toLowerCase() === this.ctx.planner.setting && this.ctx.planner.tenantMode) {
      if (this.userConfig?.tenant === undefined) this.st.setTenant(value === '' ? null : value, false)
      return
    }
    this.st.setStartupSetting(name, value)
  }

  private armIdleTimer(): void {
    const ms = this.ctx.config.pool.client_idle_timeout_ms
    if (!ms) return
    if (this.idleTimer) clearTimeout(this.idleTimer)
    this.idleTimer = setTimeout(() => {
      if (this.backend) return this.armIdleTimer()
      this.fatal('57P05', `terminating connection: client idle for longer than ${ms} ms (pool.client_idle_timeout_ms)`)
    }, ms)
  }

  // ---------------------------------------------------------------- messages

  private retriedFrame: Frame | null = null
  /** A search_path SET but not yet committed: statements sent after it are planned with it. */
  private planSearchPath: string | null = null
  /** A BEGIN answered by the proxy, to be sent ahead of the transaction's first statement. */
  private deferredBegin: string | null = null
  /** Type byte of the client message being handled (which protocol the transaction's first statement uses). */
  private currentType = 0
  /** A portal bound to a BEGIN by the proxy itself (extended protocol), and its statement. */
  private beginPortal: string | null = null
  private beginStatement: ClientStatement | null = null
  /** The server sent FATAL before closing while the client was idle: nothing to tell it (see serverEndsClient). */
  private serverFatal = false
  /** The server's FATAL was forwarded: the client's connection closes with the server's. */
  private endsWithServer = false

  /**
   * A refusal because a relation is unknown may just mean the table is newer than our schema
   * facts: rediscover once and plan the same message again (it stays stalled meanwhile).
   */
  private refreshedFor(frame: Frame, refusal: Refusal): boolean {
    if (this.retriedFrame === frame || refusal.reason !== 'unknown_relation') return false
    this.retriedFrame = frame
    this.ctx.refreshFactsFor(this).finally(() => this.resumeInput())
    return true
  }

  /** Schema facts being discovered (first use of a per-tenant database): hold the message until they are. */
  private waitForFacts(frame: Frame): boolean {
    const facts = this.ctx.factsFor(this)
    if (!(facts instanceof Promise)) return false
    this.stalled = frame
    this.socket.pause()
    facts.finally(() => this.resumeInput())
    return true
  }

  private resumeInput(): void {
    if (this.state !== 'ready') return
    this.socket.resume()
    try {
      this.processInput()
    } catch (err) {
      this.onInputError(err as Error)
    }
  }

  /** Handle one client message. Returns false when it needs a backend connection not yet attached. */
  private handleMessage(frame: Frame): boolean {
    const type = String.fromCharCode(frame.type)
    this.currentType = frame.type
    if (this.isAdminConsole) return this.handleAdminMessage(frame, type)
    if (this.skipUntilSync && type !== 'S' && 'PBDECH'.includes(type)) return true
    switch (type) {
      case 'Q':
        return this.handleQuery(frame)
      case 'P':
        return this.handleParse(frame)
      case 'B':
        return this.handleBind(frame)
      case 'D':
        return this.handleDescribe(frame)
      case 'E':
        return this.handleExecute(frame)
      case 'C':
        return this.handleClose(frame)
      case 'S':
        return this.handleSync(frame)
      case 'H':
        if (this.backend) this.send(frame.raw)
        return true
      case 'd':
      case 'c':
      case 'f':
        if (this.backend) this.send(frame.raw) // outside COPY the server ignores these too
        return true
      case 'F':
        if (this.ctx.planner.tenantMode && !this.bypass) {
          // A function called by OID runs no SQL the proxy can check.
          this.refuse({ kind: 'refuse', sqlstate: '0A000', message: 'the FunctionCall protocol message is not allowed for tenant sessions: call the function in a SELECT' }, false)
          return true
        }
        if (!this.ensureBackend()) return false
        this.send(frame.raw)
        this.queue.expect('function')
        return true
      case 'X':
        this.socket.end()
        this.onClientClose()
        return true
      default:
        throw new ProtocolViolation(`unexpected message type "${type}" (0x${frame.type.toString(16)})`)
    }
  }

  private handleAdminMessage(frame: Frame, type: string): boolean {
    if (type === 'Q') {
      for (const b of this.ctx.admin.execute(fe.decodeQuery(frame), this)) this.out.push(b)
      return true
    }
    if (type === 'X') {
      this.socket.end()
      this.onClientClose()
      return true
    }
    if (type === 'S') {
      this.skipUntilSync = false
      this.out.push(be.readyForQuery('I'))
      return true
    }
    if (!this.skipUntilSync) {
      this.out.push(be.errorResponse({ severity: 'ERROR', code: '0A000', message: 'the admin console speaks the simple query protocol only' }))
      this.skipUntilSync = true
    }
    return true
  }

  /** A WITH HOLD cursor outlives its transaction on the server connection: nobody else may use that connection meanwhile. */
  private holdsCursor = false
  /** A cursor was declared or closed since the server was last asked whether held cursors remain (askForHeldCursors). */
  private cursorCheck = false
  /** How many times the proxy closed every cursor on the server connection (a tenant change). */
  private cursorsClosed = 0

  private get pinned(): boolean {
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

  private loginPoolMode: 'transaction' | 'session' | null = null

  private decidePoolMode(): 'transaction' | 'session' {
    const config = this.ctx.config
    const byUser = this.userConfig?.pool_mode
    if (byUser) return byUser
    const tenant = this.effectiveTenant
    const backend = (tenant !== null && config.placement.tenants[tenant]) || config.placement.default
    return config.backends[backend]?.pool_mode ?? config.pool.mode
  }

  /** Which setting would give this client session pooling (for hints). */
  private get sessionModeSetting(): string {
    const config = this.ctx.config
    const user = `users.${this.user}.pool_mode: session`
    if (this.userConfig?.pool_mode) return user
    const tenant = this.effectiveTenant
    const backend = (tenant !== null && config.placement.tenants[tenant]) || config.placement.default
    return `${user} (or backends.${backend}.pool_mode: session)`
  }

  /**
   * Whether a server connection ending now must end this client's connection too, as
   * PostgreSQL's would: always under session pooling, and under transaction pooling when
   * the client is inside a transaction, has state on that server connection (pinned), or
   * waits for replies. Otherwise (an idle client between transactions) the next
   * transaction simply gets another server connection.
   */
  private serverEndsClient(): boolean {
    return this.poolMode !== 'transaction' || this.txStatus !== 'I' || this.pinned || this.queue.owesReplies || this.queue.unsynced
  }

  get effectiveTenant(): string | null {
    return this.st.effectiveTenant
  }

  private plan(sql: string): RewriteResult | null {
    const timed = this.ctx.timingRewrites
    const start = timed ? process.hrtime.bigint() : 0n
    const facts = this.ctx.factsFor(this)
    const result = this.ctx.planner.plan({
      sql,
      facts: facts instanceof Promise ? undefined : facts,
      tenant: this.effectiveTenant,
      bypass: this.userConfig?.bypass ?? false,
      searchPath: this.searchPath(),
    })
    if (timed) this.ctx.metrics?.rewriteObserved(result, Number(process.hrtime.bigint() - start) / 1e9)
    const failed = result?.refusal?.verifyFailure
    if (failed) this.log.error({ fingerprint: fingerprintOf(sql), table: failed.table, reason: failed.reason, user: this.user }, 'rewritten statement failed verification: refused')
    return result
  }

  /** The search_path the planner resolves names with, parsed once per value of the setting. */
  private searchPath(): readonly string[] {
    const raw = this.planSearchPath ?? this.st.settings.get('search_path') ?? ''
    if (this.parsedSearchPath === null || this.parsedSearchPath.raw !== raw) this.parsedSearchPath = { raw, path: parseSearchPath(raw, this.user) }
    return this.parsedSearchPath.path
  }

  private parsedSearchPath: { raw: string; path: readonly string[] } | null = null

  private handleQuery(frame: Frame): boolean {
    const sql = fe.decodeQuery(frame)
    this.currentQueryStart = Date.now()
    this.lastSql = sql
    const plan = this.plan(sql)
    if (this.deferTransactionControl(frame, sql, plan)) return true
    if (plan === null) {
      this.routeHint = NO_HINT
      if (!this.ensureBackend()) return false
      this.send(frame.raw)
      this.queue.expect('query')
      if (this.st.batchChangedTenant) this.holdForTenantOutcome = true // the Query ends the batch that set the tenant
    this.ctx.metrics?.statementSent(this)
      return true
    }
    if (plan.refusal) {
      if (this.refreshedFor(frame, plan.refusal)) return false
      this.refuse(plan.refusal, false)
      return true
    }
    const tenantCommands = plan.statements.filter((s): s is Extract<StatementPlan, { kind: 'tenant' }> => s.kind === 'tenant')
    if (tenantCommands.length > 0) {
      if (plan.statements.length > 1)
        this.refuse({ kind: 'refuse', sqlstate: '0A000', message: `${this.ctx.planner.setting} must be set in a statement of its own, not together with other statements` }, false)
      else if (this.mustWaitForStatus()) return false
      else this.answerTenantCommand(tenantCommands[0].command, 'simple')
      return true
    }
    /** One per statement, in the order the server completes them: what its CommandComplete confirms. */
    const effects: (SessionEffect | null)[] = []
    this.routeHint = hintOf(plan)
    const setsPath = plan.statements.findIndex((st) => st.kind === 'forward' && isSearchPathEffect(st.effect))
    if (setsPath >= 0 && setsPath < plan.statements.length - 1 && this.ctx.planner.tenantMode && !this.bypass) {
      this.refuse({ kind: 'refuse', sqlstate: '0A000', message: 'SET search_path must be sent in a statement of its own: the statements after it would be checked against the old search_path' }, false)
      return true
    }
    const preparedHere = new Set<string>()
    for (const st of plan.statements) {
      if (st.kind !== 'forward') continue
      if (st.effect) {
        if (st.effect.kind === 'prepare') preparedHere.add(st.effect.name)
        const blocked = this.checkEffect(st.effect, preparedHere)
        if (blocked) {
          this.refuse(blocked, false)
          return true
        }
      }
      effects.push(st.effect ?? null)
      if (st.touchesTenant) this.txTouchedTenant = true
    }
    if (!this.ensureBackend()) return false
    this.send(plan.sql !== undefined && plan.sql !== sql ? fe.encodeQuery(plan.sql) : frame.raw)
    this.queue.expect('query', { effects })
    if (this.st.batchChangedTenant) this.holdForTenantOutcome = true // the Query ends the batch that set the tenant
    this.ctx.metrics?.statementSent(this)
    this.applyImmediateEffects(effects)
    return true
  }

  /**
   * BEGIN deferral (transaction pooling): a lone BEGIN is answered by the proxy and sent to
   * the server together with the transaction's first real statement, so the transaction is
   * routed by what it touches (a tenant's Citus worker, say) and holds a server connection
   * one round trip less. A COMMIT/ROLLBACK before anything else needs no server at all.
   */
  private deferTransactionControl(frame: Frame, sql: string, plan: RewriteResult | null): boolean {
    if (this.backend || this.acquiring || this.poolMode !== 'transaction') return false
    if (this.deferredBegin === null) {
      if (!this.canDeferBegin() || !isPlainBegin(sql)) return false
      this.deferredBegin = sql
      this.txStatus = 'T'
      this.answer([be.commandComplete(beginTag(sql)), be.readyForQuery('T')])
      return true
    }
    if (/^\s*(commit|end|rollback|abort)(\s+(work|transaction))?\s*;?\s*$/i.test(sql)) {
      const command = loneCommand(sql, plan)
      this.deferredBegin = null
      this.txStatus = 'I'
      this.transactionEnded()
      this.answer([be.commandComplete(command === 'COMMIT' || command === 'END' ? 'COMMIT' : 'ROLLBACK'), be.readyForQuery('I')])
      return true
    }
    return false
  }

  /** Whether a BEGIN now may be answered by the proxy and sent later with the transaction's first statement. */
  private canDeferBegin(): boolean {
    return !this.backend && !this.acquiring && this.deferredBegin === null && this.txStatus === 'I' && this.poolMode === 'transaction'
  }

  /**
   * BEGIN deferral for the extended protocol (pgbench -M extended/prepared, JDBC): Parse and
   * Bind of a lone BEGIN were answered by the proxy while the session was idle; at Execute
   * the BEGIN is kept to go ahead of the transaction's first statement (see attachBackend).
   * False when the session is no longer idle: the portal is then made on the server.
   */
  private executeDeferredBegin(): boolean {
    const stmt = this.beginStatement as ClientStatement
    if (!this.canDeferBegin()) return false
    this.beginPortal = null
    this.beginStatement = null
    this.deferredBegin = stmt.sql
    this.txStatus = 'T'
    this.answer([be.commandComplete(beginTag(stmt.sql))])
    return true
  }

  /** Create on the server a BEGIN portal the proxy bound itself (its BindComplete was already answered). */
  private bindOnServer(portal: string, stmt: ClientStatement): void {
    this.beginPortal = null
    this.beginStatement = null
    this.ensurePrepared(stmt)
    this.send(serialize.bind({ portal, statement: stmt.serverName }))
    this.queue.expect('bind', { swallow: true })
  }

  /** Effects the pooler cannot carry across connections: refuse them, or pin the session. */
  private checkEffect(effect: SessionEffect, preparedHere?: ReadonlySet<string>): Refusal | null {
    if (this.ctx.planner.tenantMode && !this.bypass && effect.kind === 'set_local' && effect.name.toLowerCase() === 'search_path')
      return { kind: 'refuse', sqlstate: '0A000', message: 'SET LOCAL search_path is not supported for tenant sessions: use SET search_path', hint: 'The proxy resolves table names with the session search_path.' }
    if (this.poolMode !== 'transaction') return null
    if (effect.kind === 'listen')
      return {
        kind: 'refuse',
        sqlstate: '0A000',
        message: 'LISTEN is not supported under transaction pooling: notifications would reach whichever client next uses the server connection',
        hint: `Connect listeners in session pooling: set ${this.sessionModeSetting}.`,
      }
    // SQL EXECUTE reaches only statements this client PREPAREd: the pooled connection also holds
    // other clients' (and the proxy's shared) statements
    // (a PREPARE earlier in the same message counts: the server runs it first)
    if (effect.kind === 'execute' && !this.sqlPrepared.has(effect.name) && !preparedHere?.has(effect.name))
      return { kind: 'refuse', sqlstate: '26000' as Refusal['sqlstate'], message: `prepared statement "${effect.name}" does not exist` }
    return null // prepared names and pins change when the server confirms the statement (confirmed)
  }

  /**
   * The search_path the next statements are planned with changes as soon as they are sent
   * (they run after it on the server); everything else waits for the server (confirmed).
   */
  private applyImmediateEffects(effects: readonly (SessionEffect | null)[]): void {
    for (const e of effects) {
      if (e === null) continue
      if (isSearchPathEffect(e)) this.planSearchPath = e.kind === 'set' ? e.valueSql : ''
      if (e.kind === 'reset_all' || e.kind === 'discard_all') this.planSearchPath = ''
    }
  }

  /**
   * A statement of the client completed on the server (its CommandComplete): the session
   * effect it carried, and what its tag says, count now. Tags cover what the planner does
   * not see (plain pooling, bypass users, multi-statement text): cursors and SQL-level
   * prepared statements pin the connection in every mode.
   */
  private confirmed(tag: string, effect: SessionEffect | null): void {
    if (DDL_TAG.test(tag)) this.ctx.schemaChanged() // statements prepared from now on are planned against the new schema
    switch (tag) {
      case 'DECLARE CURSOR':
        this.cursorCheck = true // WITH HOLD or not: the server is asked before the connection is released
        break
      case 'CLOSE CURSOR':
        if (this.holdsCursor) this.cursorCheck = true
        break
      case 'CLOSE CURSOR ALL':
        this.holdsCursor = false
        this.cursorCheck = false
        break
      case 'PREPARE':
        this.sqlPrepared.add(effect?.kind === 'prepare' ? effect.name : UNTRACKED_PREPARE)
        break
      case 'DEALLOCATE':
        if (effect?.kind === 'deallocate' && effect.name !== null) {
          this.sqlPrepared.delete(effect.name)
          this.backend?.prepared.delete(effect.name) // (a bypass session may deallocate a shared statement by name)
        }
        break
      case 'DEALLOCATE ALL':
        this.sqlPrepared.clear()
        this.forgetServerStatements()
        break
      case 'DISCARD ALL':
        this.sqlPrepared.clear()
        this.holdsCursor = false
        this.cursorCheck = false
        this.forgetServerStatements()
        this.stmts.clear()
        this.st.pendingEffects.push({ kind: 'discard_all' })
        this.clearTenantAfterReset()
        return
      case 'COMMIT':
        this.commitPendingEffects()
        return
      case 'ROLLBACK':
        this.st.pendingEffects = []
        this.revertBatchTenant() // a tenant set before BEGIN in the same batch is rolled back with it
        return
    }
    if (effect === null) return
    if (effect.kind === 'set' || effect.kind === 'reset' || effect.kind === 'reset_all') this.st.pendingEffects.push(effect)
    if (effect.kind === 'reset_all') this.clearTenantAfterReset()
  }

  /** RESET ALL / DISCARD ALL reset the tenant setting on the server too. */
  private clearTenantAfterReset(): void {
    if (this.userConfig?.tenant !== undefined || !this.ctx.planner.tenantMode) return
    this.st.clearTenant()
  }

  /** DEALLOCATE ALL / DISCARD ALL ran on the server connection: the proxy's shared statements there are gone. */
  private forgetServerStatements(): void {
    const conn = this.backend
    if (!conn) return
    conn.prepared.clear()
    conn.unnamedOwner = null
  }

  private parseMemoInstance: ParseMemo | null = null
  private get parseMemo(): ParseMemo {
    return (this.parseMemoInstance ??= new ParseMemo())
  }

  private handleParse(frame: Frame): boolean {
    const msg = this.parseMemo.decode(frame)
    if (this.queue.length === 0) this.currentQueryStart = Date.now()
    this.lastSql = msg.sql
    if (msg.name !== '' && this.stmts.has(msg.name)) {
      this.extendedError({ kind: 'refuse', sqlstate: '42P05' as Refusal['sqlstate'], message: `prepared statement "${msg.name}" already exists` })
      return true
    }
    const stmt = this.prepareStatement(msg.name, msg.sql, msg.paramTypes)
    if ('kind' in stmt) {
      if (this.refreshedFor(frame, stmt)) return false
      this.extendedError(stmt)
      return true
    }
    if (stmt.local) {
      this.stmts.register(msg.name, stmt)
      this.answer([be.parseComplete()], this.stmts.unregisterer(msg.name, stmt))
      return true
    }
    if (stmt.effect) {
      const blocked = this.checkEffect(stmt.effect)
      if (blocked) {
        this.extendedError(blocked)
        return true
      }
    }
    if (stmt.begins && this.canDeferBegin()) {
      // Prepared on a server connection only if it ever runs there (ensurePrepared).
      this.stmts.register(msg.name, stmt)
      this.answer([be.parseComplete()], this.stmts.unregisterer(msg.name, stmt))
      return true
    }
    if (!this.ensureBackend()) return false
    if (this.txStatus === 'E' && stmt.serverName !== '' && (this.backend as BackendConnection).prepared.has(stmt.serverName)) {
      // The server would refuse this Parse; the proxy must not answer it from the shared statement.
      this.extendedError({ kind: 'refuse', sqlstate: '25P02' as Refusal['sqlstate'], message: 'current transaction is aborted, commands ignored until end of transaction block' })
      return true
    }
    // Registered now so that a Bind in the same batch finds it; undone if the server refuses or skips the Parse.
    this.stmts.register(msg.name, stmt)
    this.sendParse(stmt, msg.name, stmt.serverName === msg.name && stmt.sql === msg.sql ? frame.raw : null)
    return true
  }

  /**
   * The server statement `serverName` was planned against an older schema (0A000 "cached plan
   * must not change result type"). The client gets the error, as directly; Parses from now on
   * get new server statements (a driver's own re-prepare, as postgres.js does, then works), and
   * this client's statements on that name are prepared afresh at their next use.
   */
  private staleStatement(serverName: string | null): void {
    this.ctx.schemaChanged()
    if (!serverName) return
    this.log.info({ statement: serverName }, 'shared statement planned against an older schema: preparing afresh')
    this.stmts.renameServerStatement(serverName, (name, stmt) => this.serverNameFor(name, stmt.sql, stmt.paramTypes))
  }

  /** Rewrite a statement for the current tenant (or explain why not). */
  private prepareStatement(name: string, sql: string, paramTypes: Buffer): ClientStatement | Refusal {
    const plan = this.plan(sql)
    const tenant = this.effectiveTenant
    if (plan === null) {
      this.routeHint = NO_HINT
      return clientStatement(sql, paramTypes, tenant, sql, this.serverNameFor(name, sql, paramTypes), null, undefined, isPlainBegin(sql))
    }
    if (plan.refusal) return plan.refusal
    if (plan.statements.length > 1) return { kind: 'refuse', sqlstate: '42601', message: 'cannot insert multiple commands into a prepared statement' }
    const st = plan.statements[0]
    if (!st) return clientStatement(sql, paramTypes, tenant, sql, this.serverNameFor(name, sql, paramTypes), null, undefined)
    if (st.kind === 'tenant') return clientStatement(sql, paramTypes, tenant, sql, '', st.command, undefined)
    if (st.kind === 'refuse') return st
    this.routeHint = { touchesTenant: st.touchesTenant, relations: st.relations }
    if (st.touchesTenant) this.txTouchedTenant = true
    const out = plan.sql ?? st.sql
    return clientStatement(sql, paramTypes, tenant, out, this.serverNameFor(name, out, paramTypes), null, st.effect, isPlainBegin(sql))
  }

  /** Named statements get a server-side name derived from their text, shared by every client. */
  private serverNameFor(clientName: string, sql: string, paramTypes: Buffer): string {
    if (clientName === '') return ''
    return this.ctx.statementName(sql, paramTypes)
  }

  /**
   * Make sure `stmt` exists on the attached backend (prepare it there if needed). `clientName`:
   * the client's own Parse (its registration is undone if the server refuses or skips it);
   * null: a Parse the proxy adds itself, whose reply the client does not see.
   */
  private sendParse(stmt: ClientStatement, clientName: string | null, unchanged: Buffer | null = null): void {
    const conn = this.backend as BackendConnection
    const internal = clientName === null
    const unregister = clientName === null ? null : this.stmts.unregisterer(clientName, stmt)
    if (stmt.serverName === '') {
      this.send(unchanged ?? this.parseMemo.encodeUnnamed(stmt.sql, stmt.paramTypes))
      const token = {}
      conn.unnamedOwner = token
      stmt.token = token
      const onFail = (): void => {
        if (conn.unnamedOwner === token) conn.unnamedOwner = null
        unregister?.()
      }
      this.queue.expect('parse', { serverName: null, swallow: internal, onFail })
      return
    }
    if (conn.prepared.has(stmt.serverName)) {
      if (!internal) this.answer([be.parseComplete()], unregister)
      return
    }
    const name = stmt.serverName
    conn.prepared.add(name) // optimistic: a Bind in the same batch must not prepare it again; undone on failure
    closeEvicted(conn.prepared, this.queue, (b) => this.send(b)) // statements evicted from the connection's LRU (backend/prepared.ts)
    this.send(fe.encodeParse(name, stmt.sql, stmt.paramTypes))
    const onFail = (): void => {
      conn.prepared.delete(name)
      unregister?.()
    }
    this.queue.expect('parse', { serverName: name, swallow: internal, onFail })
  }

  /** Find a client statement, re-rewriting it if the tenant changed since it was prepared. */
  private resolveStatement(name: string): ClientStatement | Refusal {
    return this.stmts.resolve(name, this.effectiveTenant, (old) => this.prepareStatement(name, old.originalSql, old.paramTypes))
  }

  /** Before Bind/Describe of a statement: prepare it on this connection if it is not there. */
  private ensurePrepared(stmt: ClientStatement): void {
    if (needsParse(stmt, this.backend as BackendConnection)) this.sendParse(stmt, null)
  }

  private handleBind(frame: Frame): boolean {
    const head = fe.decodeBindHead(frame)
    if (this.queue.length === 0) this.currentQueryStart = Date.now()
    if (this.beginPortal === head.portal) this.beginPortal = null // rebinding the name replaces the proxy's BEGIN portal
    const stmt = this.resolveStatement(head.statement)
    if ('kind' in stmt) {
      this.extendedError(stmt)
      return true
    }
    if (stmt.local) {
      const bound = this.bindTenantCommand(frame, head, stmt)
      if ('kind' in bound) {
        this.extendedError(bound)
        return true
      }
      this.stmts.localPortals.set(head.portal, bound)
      this.answer([be.bindComplete()])
      return true
    }
    this.stmts.localPortals.delete(head.portal)
    if (stmt.begins && this.canDeferBegin()) {
      this.beginPortal = head.portal
      this.beginStatement = stmt
      this.stmts.portalEffects.delete(head.portal)
      this.answer([be.bindComplete()])
      return true
    }
    if (!this.ensureBackend()) return false
    this.ensurePrepared(stmt)
    this.send(stmt.serverName === head.statement ? frame.raw : fe.encodeBind(frame, head, stmt.serverName))
    this.queue.expect('bind', { serverName: stmt.serverName })
    this.stmts.portalEffects.set(head.portal, stmt.effect)
    return true
  }

  /** `SELECT set_config('app.tenant', $n, …)`: the tenant is the Bind's parameter $n (text format), never a cleared tenant. */
  private bindTenantCommand(frame: Frame, head: fe.BindHead, stmt: ClientStatement): ClientStatement | Refusal {
    const cmd = stmt.local as TenantCommand
    if (cmd.op !== 'set_config' || !cmd.valueParam) return stmt
    const p = fe.decodeBindParam(frame, head, cmd.valueParam - 1)
    if (!p) return { kind: 'refuse', sqlstate: '08P01' as Refusal['sqlstate'], message: `bind message supplies too few parameters for set_config('${this.ctx.planner.setting}', $${cmd.valueParam}, …)` }
    if (p.format !== 0) return { kind: 'refuse', sqlstate: '0A000', message: `set_config('${this.ctx.planner.setting}', $${cmd.valueParam}, …) needs its parameter in text format` }
    return { ...stmt, local: { op: 'set_config', value: p.value === null ? null : p.value.toString('utf8'), local: cmd.local } }
  }

  private handleDescribe(frame: Frame): boolean {
    const target = fe.decodeTarget(frame)
    if (target.kind === 'P') {
      if (target.name === this.beginPortal) {
        this.answer([be.noData()])
        return true
      }
      const local = this.stmts.localPortals.get(target.name)
      if (local) {
        this.answer([this.localRowDescription(local.local as TenantCommand)])
        return true
      }
      if (!this.ensureBackend()) return false
      this.send(frame.raw)
      this.queue.expect('describe')
      return true
    }
    const stmt = this.resolveStatement(target.name)
    if ('kind' in stmt) {
      this.extendedError(stmt)
      return true
    }
    if (stmt.local) {
      this.answer([parameterDescription(stmt.local), this.localRowDescription(stmt.local)])
      return true
    }
    if (!this.ensureBackend()) return false
    this.ensurePrepared(stmt)
    this.send(stmt.serverName === target.name ? frame.raw : fe.encodeTarget('D', 'S', stmt.serverName))
    this.queue.expect('describe', { serverName: stmt.serverName })
    return true
  }

  private localRowDescription(cmd: TenantCommand): Buffer {
    if (cmd.op === 'show') return be.rowDescription([this.ctx.planner.setting])
    if (cmd.op === 'set_config') return be.rowDescription(['set_config'])
    return be.noData()
  }

  private handleExecute(frame: Frame): boolean {
    const portal = frame.raw[5] === 0 ? '' : new fe.PayloadReader(frame.raw, 5).cstring()
    const local = this.stmts.localPortals.get(portal)
    if (local) {
      if (this.mustWaitForStatus()) return false
      this.answerTenantCommand(local.local as TenantCommand, 'extended')
      return true
    }
    if (portal === this.beginPortal && this.executeDeferredBegin()) return true
    if (!this.ensureBackend()) return false
    if (portal === this.beginPortal) this.bindOnServer(portal, this.beginStatement as ClientStatement)
    this.send(frame.raw)
    const effect = this.stmts.portalEffects.get(portal)
    const effects = effect ? [effect] : NO_EFFECTS
    this.queue.expect('execute', { effects })
    this.ctx.metrics?.statementSent(this)
    this.applyImmediateEffects(effects)
    return true
  }

  private handleClose(frame: Frame): boolean {
    const target = fe.decodeTarget(frame)
    if (target.kind === 'S') {
      // Server-side statements are shared and stay prepared; only the client's name goes.
      this.stmts.forget(target.name)
      this.answer([be.closeComplete()])
      return true
    }
    this.stmts.localPortals.delete(target.name)
    this.stmts.portalEffects.delete(target.name)
    if (target.name === this.beginPortal) this.beginPortal = null
    if (!this.backend) {
      this.answer([be.closeComplete()])
      return true
    }
    this.send(frame.raw)
    this.queue.expect('close')
    return true
  }

  private handleSync(frame: Frame): boolean {
    const refusedInBatch = this.skipUntilSync
    this.skipUntilSync = false
    if (refusedInBatch) this.revertBatchTenant() // the proxy's refusal failed the batch, as the server's error would
    if (this.txStatus === 'I') this.beginPortal = null // the implicit transaction's portals end here
    if (!this.backend && !this.acquiring) {
      if (this.txStatus === 'I') {
        this.st.endLocal() // not inside a deferred BEGIN
        this.st.settleBatch(false)
      }
      this.answer([be.readyForQuery(this.txStatus)])
      return true
    }
    if (!this.ensureBackend()) return false
    this.send(frame.raw)
    this.queue.expect('sync')
    if (this.st.batchChangedTenant) this.holdForTenantOutcome = true
    return true
  }

  // ---------------------------------------------------------------- proxy answers

  /** A refusal: ErrorResponse (+ ReadyForQuery for the simple protocol); nothing reaches the server. */
  private refuse(r: Refusal, extended: boolean): void {
    this.ctx.metrics?.refused(this, r)
    this.log.info({ sqlstate: r.sqlstate, reason: r.message }, 'statement refused')
    const err = be.errorResponse({ severity: 'ERROR', code: r.sqlstate, message: r.message, hint: r.hint })
    if (extended) this.answer([err])
    else this.answer([err, be.readyForQuery(this.txStatus)])
  }

  private extendedError(r: Refusal): void {
    this.skipUntilSync = true
    if (this.backend && this.queue.unsynced && !this.queue.skipping) {
      // An extended batch is open on the server (say an INSERT executed, no Sync yet). PostgreSQL's
      // own error would abort its implicit transaction; so must the proxy's: the server gets a Parse
      // that always fails (a syntax error, or 25P02 in an aborted transaction) in the refused
      // message's place, skips to the client's Sync and rolls back. The client gets the refusal in
      // place of that server error.
      this.ctx.metrics?.refused(this, r)
      this.log.info({ sqlstate: r.sqlstate, reason: r.message }, 'statement refused inside a batch: the server aborts it')
      this.send(fe.encodeParse(REFUSAL_STATEMENT, REFUSAL_SQL, Buffer.alloc(2)))
      this.queue.expect('parse', { serverName: REFUSAL_STATEMENT, swallow: true, bytes: [be.errorResponse({ severity: 'ERROR', code: r.sqlstate, message: r.message, hint: r.hint })] })
      return
    }
    this.refuse(r, true)
  }

  private answerTenantCommand(cmd: TenantCommand, protocol: 'simple' | 'extended'): void {
    const tail = protocol === 'simple' ? [be.readyForQuery(this.txStatus)] : []
    const setting = this.ctx.planner.setting
    if (this.txStatus === 'E') {
      // As PostgreSQL: an aborted transaction block ignores SET, set_config and SHOW too.
      const aborted: Refusal = { kind: 'refuse', sqlstate: '25P02', message: 'current transaction is aborted, commands ignored until end of transaction block' }
      if (protocol === 'simple') this.refuse(aborted, false)
      else this.extendedError(aborted)
      return
    }
    if (cmd.op === 'show') {
      const rows = [be.dataRow([this.effectiveTenant ?? '']), be.commandComplete('SHOW')]
      this.answer(protocol === 'simple' ? [be.rowDescription([setting]), ...rows, ...tail] : rows)
      return
    }
    const undo = protocol === 'extended' ? this.undoInImplicitTransaction(cmd) : null
    const refusal = this.changeTenant(cmd.value, cmd.local)
    if (refusal) {
      if (protocol === 'simple') this.refuse(refusal, false)
      else this.extendedError(refusal)
      return
    }
    if (cmd.op === 'set_config') {
      const rows = [be.dataRow([cmd.value ?? '']), be.commandComplete('SELECT 1')]
      this.answer(protocol === 'simple' ? [be.rowDescription(['set_config']), ...rows, ...tail] : rows, undo)
      return
    }
    this.answer([be.commandComplete(cmd.tag), ...tail], undo)
  }

  /** A Sync or Query that ends such a batch went to the server: the client's next messages wait for its outcome. */
  private holdForTenantOutcome = false

  /**
   * A tenant command is answered by the proxy from the transaction status; with a pipelined
   * Query or Sync still unanswered that status is not known yet (the server may be about to
   * report an aborted block): hold the command, and the client's input, until it is.
   */
  private mustWaitForStatus(): boolean {
    if (!this.queue.awaitsClientReady) return false
    this.holdForTenantOutcome = true
    return true
  }

  /** Remembers the tenant to restore if this batch fails; returns what a skipped answer must undo. */
  private undoInImplicitTransaction(cmd: TenantCommand): (() => void) | null {
    if (cmd.op === 'show' || this.userConfig?.tenant !== undefined) return null
    if (cmd.local) {
      // Skipped by the server after an earlier error in the batch: SET LOCAL never happened.
      const before = this.st.localTenant
      return () => {
        this.st.localTenant = before
        this.st.invalidate()
      }
    }
    if (this.txStatus !== 'I') return null
    this.st.rememberBatchTenant() // PostgreSQL runs the batch as one implicit transaction: undone if it fails
    return () => this.revertBatchTenant()
  }

  /** The batch that changed the tenant failed: the tenant is what it was before the batch. */
  private revertBatchTenant(): void {
    if (this.st.revertBatchTenant()) this.ctx.tenantChanged(this)
  }

  /** The server answered the Sync or Query that ended the batch: read the client again. */
  private releaseTenantHold(status: TxStatus): void {
    if (status === 'E') this.revertBatchTenant() // a BEGIN in the batch made it a failed block: it will be rolled back
    if (!this.holdForTenantOutcome) return
    this.holdForTenantOutcome = false
    queueMicrotask(() => this.resumeInput()) // not from inside the server reply being scanned
  }

  private changeTenant(value: string | null, local: boolean): Refusal | null {
    const setting = this.ctx.planner.setting
    if (this.userConfig?.tenant !== undefined) {
      if (value === this.userConfig.tenant) return null
      return { kind: 'refuse', sqlstate: '42501', message: `user "${this.user}" is pinned to tenant "${this.userConfig.tenant}" and cannot change ${setting}` }
    }
    if (value !== null && value.includes('\0')) return { kind: 'refuse', sqlstate: '42501', message: `invalid ${setting} value: contains a NUL byte` }
    const inTransaction = this.txStatus !== 'I'
    if (local) {
      if (!inTransaction) {
        this.answerWarning(`SET LOCAL ${setting} can only be used in transaction blocks`)
        return null
      }
    }
    if (inTransaction && value !== this.effectiveTenant && (this.txTouchedTenant || !local))
      return {
        kind: 'refuse',
        sqlstate: '25001',
        message: `cannot change ${setting} inside a transaction that has already used tenant data`,
        hint: 'Set the tenant before BEGIN, or use SET LOCAL right after BEGIN.',
      }
    // A cursor may be open if one was declared and the server has not said otherwise (cursorCheck: not asked yet, as
    // always under session pooling; holdsCursor: it said so, or the question is still out).
    const mayHoldCursor = this.holdsCursor || this.cursorCheck
    if (value !== this.effectiveTenant && (this.sqlPrepared.size > 0 || mayHoldCursor) && this.backend) {
      // SQL-level prepared statements and held cursors were rewritten for the old tenant: drop them.
      this.send(fe.encodeQuery('DEALLOCATE ALL; CLOSE ALL'))
      this.queue.expect('internal')
      this.cursorsClosed++ // an answer to an earlier held-cursor question is out of date
      this.sqlPrepared.clear()
      this.holdsCursor = false
      this.cursorCheck = false
      this.answerWarning(`${setting} changed: SQL-level prepared statements and cursors of the previous tenant were dropped`)
    }
    this.st.setTenant(value, local)
    if (this.backend && inTransaction && this.ctx.planner.tenantMode) {
      // Keep current_setting() on the server in step for the rest of this transaction.
      this.send(fe.encodeQuery(`SELECT set_config(${quoteLiteral(setting)}, ${quoteLiteral(value ?? '')}, true)`))
      this.queue.expect('internal')
      this.backend.stateKey = ''
    }
    this.ctx.tenantChanged(this)
    return null
  }

  private answerWarning(message: string): void {
    this.answer([be.noticeResponse({ severity: 'WARNING', code: '25P01', message })])
  }

  /** Emit proxy-made messages, after every response still owed by the server. */
  private answer(bytes: Buffer[], onFail: (() => void) | null = null): void {
    if (!this.queue.answer(bytes, onFail)) for (const b of bytes) this.out.push(b)
  }

  // ---------------------------------------------------------------- backend

  private send(buf: Buffer): void {
    this.toBackend.push(buf)
  }

  private flushBackend(): void {
    const conn = this.backend
    if (!conn || this.toBackend.length === 0) return
    const ok = writeAll(conn.socket, this.toBackend)
    this.toBackend = []
    if (!ok && !this.inputHeldForServer) {
      this.inputHeldForServer = true
      this.socket.pause()
      conn.socket.once('drain', () => this.releaseHeldInput())
    }
  }

  /** Read the client again after the server took what we had for it (or went away: see onBackendClose). */
  private releaseHeldInput(): void {
    if (!this.inputHeldForServer) return
    this.inputHeldForServer = false
    if (this.state !== 'closed') this.socket.resume()
  }

  /** True when a backend is attached; otherwise starts getting one and returns false. */
  private ensureBackend(): boolean {
    if (this.backend) return true
    if (this.acquiring) return false
    const now = this.ctx.acquireNow(this)
    if (now) {
      this.attachBackend(now.conn, now.pool)
      return true
    }
    this.acquiring = true
    this.ctx
      .acquire(this)
      .then(({ conn, pool }) => this.onAcquired(conn, pool))
      .catch((err: Error) => this.onAcquireFailed(err))
    return false
  }

  private onAcquired(conn: BackendConnection, pool: Pool): void {
    this.acquiring = false
    if (this.state === 'closed') {
      pool.release(conn, true)
      return
    }
    this.attachBackend(conn, pool)
    this.socket.resume()
    try {
      this.processInput()
    } catch (err) {
      this.onInputError(err as Error)
    }
  }

  private attachBackend(conn: BackendConnection, pool: Pool): void {
    this.backend = conn
    this.pool = pool
    this.backendName = pool.backendName
    conn.attach({ onData: this.onBackendData, onClose: this.onBackendClose })
    if (this.deferredBegin !== null) {
      if (this.currentType === 0x51 /* Q */ || this.currentType === 0x46 /* F */) {
        this.toBackend.unshift(fe.encodeQuery(this.deferredBegin))
        this.queue.expectFirst(entry('internal'))
      } else {
        // Ahead of an extended-protocol statement the BEGIN goes as Parse/Bind/Execute with no
        // Sync of its own: the server answers it in the same flush as the client's statement.
        // It takes the unnamed statement and portal, which the client's own messages replace.
        this.toBackend.unshift(...deferredBeginMessages(this.deferredBegin))
        this.queue.expectFirst(entry('parse', { swallow: true }), entry('bind', { swallow: true }), entry('execute', { swallow: true }))
        conn.unnamedOwner = null
      }
      this.deferredBegin = null
    }
    this.syncSessionState(conn)
  }

  private onAcquireFailed(err: Error): void {
    this.acquiring = false
    if (this.state === 'closed') return
    const code = err instanceof BackendError ? err.sqlstate : '08006'
    this.log.warn({ err: err.message }, 'could not get a server connection')
    const frame = this.stalled
    this.stalled = null
    const extended = frame !== null && frame.type !== 0x51 /* Q */
    this.refuse({ kind: 'refuse', sqlstate: code as Refusal['sqlstate'], message: err.message }, extended)
    if (extended) {
      this.skipUntilSync = frame?.type !== 0x53
      if (frame?.type === 0x53) this.answer([be.readyForQuery(this.txStatus)])
    }
    this.socket.resume()
    this.processInput()
  }

  /** Bring the server connection's session state (settings, tenant) in line with this client's. */
  private syncSessionState(conn: BackendConnection): void {
    const key = this.st.key
    if (conn.stateKey === key) return
    // Pipelined ahead of the client's own messages; its replies are swallowed.
    this.toBackend.unshift(fe.encodeQuery(this.st.replaySql(this.ctx.planner.tenantMode ? this.ctx.planner.setting : null)))
    this.queue.expectFirst(entry('internal'))
    conn.stateKey = key
  }

  /** The session state a server connection needs for this client (pools prefer one already in it). */
  get poolStateKey(): string {
    return this.st.key
  }

  /** Returns true when no part of `chunk` is still referenced (every slice of it reached the kernel). */
  private readonly onBackendData = (chunk: Buffer): boolean => {
    this.bytesSent += chunk.length
    try {
      this.scanner.scan(chunk)
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'bad data from server')
      this.backend?.close()
      return false
    }
    if (!this.out.flush()) this.backend?.socket.pause()
    this.maybeRelease()
    return this.out.pending === 0 && this.socket.writableLength === 0
  }

  private readonly onBackendClose = (err: Error | null): void => {
    const conn = this.backend
    const pool = this.pool
    this.backend = null
    this.pool = null
    if (conn && pool) pool.release(conn, false)
    // No 'drain' will come from a closed server: a client held back for it reads again (its
    // COPY data is then dropped, as a server drops it outside COPY) and gets the error.
    this.releaseHeldInput()
    if (this.state !== 'ready') return
    const owed = this.queue.owesReplies
    const idleFatal = this.serverFatal
    // Told FATAL, or lost without a word while in a transaction, holding session state or under session pooling: the client's connection ends too.
    const ends = this.endsWithServer || (!idleFatal && (this.poolMode !== 'transaction' || this.txStatus !== 'I' || this.pinned))
    this.serverFatal = false
    if (ends) {
      if (!this.endsWithServer) this.out.push(be.errorResponse({ severity: 'FATAL', code: '08006', message: 'server closed the connection unexpectedly', detail: err?.message }))
      this.log.warn({ err: err?.message }, 'server connection lost: client connection closed')
      this.out.flush()
      this.socket.end()
      this.onClientClose()
      return
    }
    this.queue.clear()
    this.txStatus = 'I'
    this.st.transactionLost()
    this.txTouchedTenant = false
    // Whatever lived on that server connection is gone with it.
    this.sqlPrepared.clear()
    this.holdsCursor = false
    this.cursorCheck = false
    if (owed) {
      this.log.warn({ err: err?.message }, 'server connection lost')
      this.out.push(be.errorResponse({ severity: 'ERROR', code: '08006', message: 'server connection lost: the query was interrupted (pgtenant keeps this session open)' }))
      this.out.push(be.readyForQuery('I'))
      this.out.flush()
    }
  }

  /**
   * Under transaction pooling, give the connection back once the transaction is over: only
   * at a ReadyForQuery that answered a Sync (or Query) with status idle, nothing owed, no
   * extended batch open (queue.settled), and nothing pinned. A transaction that declared a
   * cursor first asks the server whether a WITH HOLD cursor outlived it.
   */
  private maybeRelease(): void {
    const conn = this.backend
    if (!conn || !this.queue.settled || this.txStatus !== 'I') return
    if (this.poolMode !== 'transaction' || this.toBackend.length > 0) return
    if (this.cursorCheck) return this.askForHeldCursors(conn)
    if (this.pinned) return
    this.backend = null
    const pool = this.pool as Pool
    this.pool = null
    conn.detach()
    pool.release(conn, true)
  }

  /**
   * Whether WITH HOLD cursors exist on the server connection, from the server itself: the
   * tag of `SELECT 1 FROM pg_cursors WHERE is_holdable` counts them. Asked only after a
   * transaction whose statements completed a DECLARE (or a CLOSE while cursors were held),
   * whatever protocol, spelling or mode declared it.
   */
  private askForHeldCursors(conn: BackendConnection): void {
    this.cursorCheck = false
    this.holdsCursor = true // until the server answers: a tenant change meanwhile closes what may be open
    const asked = this.cursorsClosed
    this.queue.expect('internal', {
      onTag: (tag) => {
        if (asked !== this.cursorsClosed) return
        const n = /^SELECT (\d+)$/.exec(tag)
        this.holdsCursor = n === null || n[1] !== '0' // unreadable: keep the connection (fail safe)
      },
    })
    conn.write(fe.encodeQuery('SELECT 1 FROM pg_catalog.pg_cursors WHERE is_holdable'))
  }

  // ---------------------------------------------------------------- server replies

  private readonly sink: ScannerSink = {
    forward: (bytes) => this.out.push(bytes),
    onPassThrough: (type) => {
      const head = this.queue.head
      if (!head) return true // NoticeResponse / NotificationResponse between queries
      switch (type) {
        case 0x31: // ParseComplete
          return !(this.queue.parseComplete()?.swallow ?? false)
        case 0x32: // BindComplete
        case 0x33: // CloseComplete
          return !(this.queue.bindOrCloseComplete()?.swallow ?? false)
        case 0x6e: // NoData
          this.queue.describeDone()
          return true
        case 0x54: // RowDescription
          if (this.queue.describeDone()) return true
          return head.kind !== 'internal'
        case 0x73: // PortalSuspended
        case 0x49: // EmptyQueryResponse
          this.queue.executeDone()
          return head.kind !== 'internal'
        case 0x44: // DataRow
          if (head.kind === 'internal') return false
          this.rowsSent++
          return true
        default:
          return head.kind !== 'internal'
      }
    },
    onReadyForQuery: (status) => this.onReadyForQuery(status),
    onInspected: (type, raw) => {
      switch (type) {
        case 0x5a: // ReadyForQuery of an unexpected length (the scanner gives the usual one to onReadyForQuery)
          return this.onReadyForQuery(raw[5])
        case 0x45: // ErrorResponse
          return this.onErrorResponse(raw)
        case 0x43: {
          // CommandComplete
          const tag = raw.toString('utf8', 5, raw.length - 1)
          const { entry: done, effect } = this.queue.commandComplete(tag)
          if (done === null) return true
          if (done.kind === 'internal') {
            if (tag === 'DEALLOCATE ALL' || tag === 'DISCARD ALL') this.forgetServerStatements()
            return false
          }
          this.confirmed(tag, effect)
          return !(done.kind === 'execute' && done.swallow)
        }
        case 0x53: // ParameterStatus
          return this.queue.head?.kind !== 'internal'
        default:
          return true
      }
    },
  }

  private onReadyForQuery(statusByte: number): boolean {
    const status = String.fromCharCode(statusByte) as TxStatus
    const answered = this.queue.readyForQuery()
    if (answered?.kind === 'internal') return false // the proxy's own statement; the client's status comes with its own reply
    const wasInTransaction = this.txStatus !== 'I'
    this.txStatus = status
    this.reportQuery()
    if (status === 'I') {
      // An error with no transaction block open rolled back the implicit transaction it was in.
      this.transactionEnded(answered?.failed ?? false)
      this.ctx.metrics?.transactionDone(this)
    } else if (!wasInTransaction) this.txStartedAt = Date.now()
    this.releaseTenantHold(status)
    return true
  }

  private txStartedAt = 0

  private reportQuery(): void {
    const m = this.ctx.metrics
    if (m && this.currentQueryStart > 0) m.queryDone(this, (Date.now() - this.currentQueryStart) / 1000, this.rowsSent, this.bytesSent)
    this.rowsSent = 0
    this.bytesSent = 0
  }

  private transactionEnded(rolledBack = false): void {
    if (rolledBack) this.st.pendingEffects = []
    else this.commitPendingEffects()
    if (this.st.settleBatch(rolledBack)) this.ctx.tenantChanged(this)
    this.planSearchPath = null // the committed settings say it now
    this.txTouchedTenant = false
    this.st.endLocal()
  }

  private commitPendingEffects(): void {
    // The connection already has these settings: it ran the statements itself.
    if (this.st.commitPending() && this.backend) this.backend.stateKey = this.st.key
  }

  private onErrorResponse(raw: Buffer): boolean {
    const forward = this.handleErrorResponse(raw)
    if (!forward) return false
    // The rewriter's execution-time guard fails with a cast error that names itself: report it as the tenant violation it is.
    const guardColumn = guardViolationColumn(raw.toString('utf8', 5))
    if (guardColumn === null) return true
    const fields = be.decodeFields(raw)
    this.scanner.inject(
      be.errorResponse({
        severity: 'ERROR',
        code: '42501',
        message: `tenant violation: ${guardColumn} must equal the session tenant (${this.effectiveTenant ?? 'none'}); nothing was written`,
        detail: fields.M,
      }),
    )
    return false
  }

  private handleErrorResponse(raw: Buffer): boolean {
    const fields = be.decodeFields(raw)
    if (fields.S === 'FATAL' || fields.S === 'PANIC') {
      if (this.serverEndsClient()) {
        // As PostgreSQL: the client gets the FATAL as it is and its connection ends with the server's (onBackendClose).
        this.endsWithServer = true
        this.log.info({ sqlstate: fields.C, message: fields.M }, 'server ended the connection: ending the client connection too')
        return true
      }
      // An idle client between transactions, nothing on that connection: the next transaction gets another one, unseen.
      this.serverFatal = true
      this.log.info({ sqlstate: fields.C, message: fields.M }, 'server ended an idle connection')
      return false
    }
    // The queue marks the request failed and, in an extended batch, skips to Sync as the server does
    // (failed Parses are unregistered by their onFail).
    const head = this.queue.error()
    if (!head) return true
    if (head.kind === 'parse' && head.serverName === REFUSAL_STATEMENT) {
      // The failure the proxy caused to abort the batch (extendedError): the client gets the refusal instead.
      for (const b of head.bytes) this.scanner.inject(b)
      return false
    }
    if (fields.C === '0A000' && (fields.R === 'RevalidateCachedQuery' || /cached plan must not change result type/.test(fields.M ?? ''))) this.staleStatement(head.serverName)
    this.ctx.metrics?.backendError(this, fields.C ?? 'XX000')
    if (this.backendName && this.ctx.config.backends[this.backendName]?.citus) this.ctx.workerError(this.backendName, fields.C ?? 'XX000')
    if (head.kind === 'internal') {
      this.log.warn({ sqlstate: fields.C, message: fields.M }, 'internal statement on the server failed')
      if (head.onTag) this.holdsCursor = true // the held-cursor question went unanswered: keep the connection
      return false
    }
    return true
  }
}

/** Command tags of statements that may change what a prepared statement returns (ALTER TABLE, DROP/CREATE VIEW, …). */
const DDL_TAG = /^(ALTER|CREATE|DROP) /

/** A Parse the server always refuses, sent in place of a message the proxy refused inside an open batch (extendedError). */
const REFUSAL_STATEMENT = 'pgtenant_refused'
const REFUSAL_SQL = 'pgtenant: a statement in this batch was refused by the proxy'

/** A PREPARE the planner did not see (plain pooling, after another statement): pins until DEALLOCATE ALL / DISCARD ALL. */
const UNTRACKED_PREPARE = '\u0000untracked'

/** The statement's fingerprint (no literals, so no tenant data in the log). */
function fingerprintOf(sql: string): string {
  try {
    return fingerprintSync(sql)
  } catch {
    return '(no fingerprint)'
  }
}

/** ParameterDescription of a statement the proxy answers itself: set_config's $n parameters are text, else none. */
function parameterDescription(cmd: TenantCommand): Buffer {
  const n = cmd.op === 'set_config' && cmd.valueParam ? cmd.valueParam : 0
  const b = Buffer.alloc(7 + 4 * n)
  b[0] = 0x74
  b.writeInt32BE(6 + 4 * n, 1)
  b.writeInt16BE(n, 5)
  for (let i = 0; i < n; i++) b.writeInt32BE(25, 7 + 4 * i)
  return b
}
