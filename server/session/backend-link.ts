// The session's server connection: getting one from the pool, replaying the session state on
// it, relaying the client's messages, reading the server's replies through the reply queue,
// and giving it back only when settled (or closing it).
import * as fe from '../protocol/frontend.js'
import * as be from '../protocol/backend.js'
import { type ScannerSink } from '../protocol/backend-scanner.js'
import { writeAll } from '../protocol/output.js'
import { BackendConnection, BackendError } from '../backend/connection.js'
import type { Pool } from '../backend/pool.js'
import type { Refusal, SessionEffect } from '../../parser/types.js'
import { guardViolationColumn } from '../../parser/index.js'
import { entry } from './reply-queue.js'
import { resetForReuse } from './cleanup.js'
import { deferredBeginMessages } from './statement-text.js'
import { SessionAnswers } from './answers.js'
import { REFUSAL_STATEMENT } from './answers.js'

type TxStatus = be.TxStatus

export abstract class SessionBackendLink extends SessionAnswers {
  /** A statement of the client completed on the server: the effect it carried counts now (session.ts). */
  protected abstract confirmed(tag: string, effect: SessionEffect | null): void
  /** DEALLOCATE ALL / DISCARD ALL ran on the server connection (session.ts). */
  protected abstract forgetServerStatements(): void
  /** A shared server statement was planned against an older schema (extended.ts). */
  protected abstract staleStatement(serverName: string | null): void

  // ---------------------------------------------------------------- backend

  protected flushBackend(): void {
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
  protected releaseHeldInput(): void {
    if (!this.inputHeldForServer) return
    this.inputHeldForServer = false
    if (this.state !== 'closed') this.socket.resume()
  }

  /** True when a backend is attached; otherwise starts getting one and returns false. */
  protected ensureBackend(): boolean {
    if (this.backend !== null && this.backendTenant !== this.effectiveTenant && !this.followTenant()) return false
    if (this.backend) return true
    if (this.acquiring) return false
    const now = this.ctx.acquireNow(this.session)
    if (now) {
      this.attachBackend(now.conn, now.pool)
      return true
    }
    this.acquiring = true
    this.ctx.acquireWith(this.session, this.acquired)
    return false
  }

  /** The tenant the attached server connection was routed for (another tenant may live on another server). */
  protected backendTenant: string | null = null
  /** A statement waits for the server connection to settle before the session leaves it for its tenant's server. */
  private waitingToMove = false

  /**
   * The tenant changed since the server connection was attached (a tenant command, set_config):
   * its statements may belong on another server (its own database, its Citus worker). Same
   * pool: the connection stays. Otherwise the session leaves it, between transactions only: the
   * connection is made clean (DISCARD ALL) and goes back to its pool, and the statement gets a
   * connection for the new tenant (under session pooling the client is warned that what lived on
   * the old one is gone). Inside a transaction or an unsynced extended batch the statement is
   * refused: one transaction cannot span two servers. False: the statement waits or was refused.
   */
  private followTenant(): boolean {
    let serves: boolean
    try {
      serves = this.connectionServesTenant()
    } catch (err) {
      return this.failLater(err as Error)
    }
    if (serves) {
      this.backendTenant = this.effectiveTenant
      return true
    }
    if (this.txStatus !== 'I' || this.queue.unsynced)
      return this.failLater(
        new BackendError(
          `${this.ctx.planner.setting} "${this.effectiveTenant ?? ''}" is placed on another server than the one this transaction runs on (backend "${this.backendName}"): end the transaction before using it`,
          '0A000',
        ),
      )
    if (!this.queue.settled || this.toBackend.length > 0) {
      this.waitingToMove = true // the server still owes replies on this connection: retried once it has answered (onBackendData)
      return false
    }
    this.leaveBackend()
    return true
  }

  /** Refuse the waiting statement as a failed acquire would be (after the current message is handled). */
  private failLater(err: Error): boolean {
    this.acquiring = true
    queueMicrotask(() => {
      try {
        this.onAcquireFailed(err)
      } catch (e) {
        this.onInputError(e as Error)
      }
    })
    return false
  }

  /**
   * MOVE TENANT pauses this session's tenant (server/tenant-move.ts): a session that keeps its
   * server connection between transactions (session pooling, or pinned by PREPARE or a WITH HOLD
   * cursor) leaves it as a tenant change does, so that its next transaction waits for the pause
   * and then runs where the tenant is placed. Only between transactions (none open, every reply
   * in, nothing unsent): true when it left or held none; false while busy (it leaves when its
   * transaction ends: maybeRelease asks ctx.leavesServerConnection).
   */
  leaveForMove(): boolean {
    if (this.backend === null) return true
    if (this.txStatus !== 'I' || !this.queue.settled || this.toBackend.length > 0 || this.waitingToMove || this.acquiring) return false
    this.leaveBackend('move')
    return true
  }

  /** Give the server connection up between transactions, for another server: made clean (DISCARD ALL) and back to its pool. */
  private leaveBackend(why: 'tenant' | 'move' = 'tenant'): void {
    const conn = this.backend as BackendConnection
    const pool = this.pool as Pool
    const from = this.backendName
    const kept = this.poolMode === 'session' || this.pinned
    this.backend = null
    this.pool = null
    conn.detach()
    resetForReuse(conn, pool, this.log)
    if (why === 'move') {
      // What lived on that connection is gone (DISCARD ALL): nothing pins the session to a connection any more.
      this.sqlPrepared.clear()
      this.holdsCursor = false
      this.cursorCheck = false
      this.log.info({ from, tenant: this.effectiveTenant }, 'tenant being moved (MOVE TENANT): session left its server connection')
      if (kept)
        this.answer([
          be.noticeResponse({
            severity: 'WARNING',
            code: '01000',
            message: `${this.ctx.planner.setting} "${this.effectiveTenant ?? ''}" is being moved to another server (MOVE TENANT): this session left its server connection; temporary tables, LISTEN, session advisory locks, PREPAREd statements and WITH HOLD cursors of that connection are gone`,
          }),
        ])
      this.out.flush()
      return
    }
    this.log.info({ from, tenant: this.effectiveTenant }, 'tenant placed on another server: session moved to a new server connection')
    if (this.poolMode === 'session')
      this.answer([
        be.noticeResponse({
          severity: 'WARNING',
          code: '01000',
          message: `${this.ctx.planner.setting} "${this.effectiveTenant ?? ''}" is placed on another server than backend "${from}": this session moved to a new server connection; temporary tables, LISTEN and session advisory locks of the previous one are gone`,
        }),
      ])
  }

  /**
   * Session pooling: the server connection is taken at login, so that the cancel key the client
   * gets carries that connection's pid, as PostgreSQL's carries its backend's (clients such as
   * postgres.js `pg_terminate_backend` it, or look it up in pg_stat_activity). Null, and the
   * connection taken at the first statement as before, when the session is transaction pooled,
   * its transactions are held (PAUSE, DISABLE, shutdown) or it would have to wait for another
   * client's connection (a login does not wait for the pool, as with PgBouncer).
   */
  protected async attachAtLogin(): Promise<number | null> {
    if (this.poolMode !== 'session' || this.isAdminConsole || this.backend) return null
    // a session whose tenant may change may move to another server (followTenant): its key stays the proxy's
    if (this.ctx.planner.tenantMode && !this.bypass && this.userConfig?.tenant === undefined) return null
    const pending = this.ctx.acquireWithoutWaiting(this.session)
    if (!pending) return null
    let got: { conn: BackendConnection; pool: Pool }
    try {
      got = await pending
    } catch {
      return null // the first statement gets the error (a refusal, the pool's wait timeout)
    }
    if (this.state === 'closed' || this.backend) {
      got.pool.release(got.conn, true)
      return null
    }
    this.attachBackend(got.conn, got.pool)
    return got.conn.pid
  }

  /** The pool's answer (a plain callback, called from another session's release or the pool's sweep: nothing may escape). */
  private readonly acquired = (err: Error | null, conn: BackendConnection | null, pool: Pool | null): void => {
    try {
      if (err === null) return this.onAcquired(conn as BackendConnection, pool as Pool)
    } catch (e) {
      err = e as Error
    }
    try {
      this.onAcquireFailed(err)
    } catch (e) {
      this.onInputError(e as Error)
    }
  }

  protected onAcquired(conn: BackendConnection, pool: Pool): void {
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

  protected attachBackend(conn: BackendConnection, pool: Pool): void {
    this.backend = conn
    this.backendTenant = this.effectiveTenant
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
        conn.releaseUnnamed()
      }
      this.deferredBegin = null
    }
    this.syncSessionState(conn)
  }

  protected onAcquireFailed(err: Error): void {
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
  protected syncSessionState(conn: BackendConnection): void {
    const key = this.poolStateKey
    if (conn.stateKey === key) return
    // Pipelined ahead of the client's own messages; its replies are swallowed. The tenant's
    // limits (statement_timeout) come last, so the next tenant's RESET ALL takes them off.
    const limits = this.ctx.tenantStateSql(this.session, this.st.settings.has('statement_timeout'))
    const replay = this.st.replaySql(this.ctx.planner.tenantMode ? this.ctx.planner.setting : null)
    this.toBackend.unshift(fe.encodeQuery(limits === '' ? replay : `${replay}; ${limits}`))
    this.queue.expectFirst(entry('internal'))
    conn.stateApplied(key)
  }

  /** The session state a server connection needs for this client (pools prefer one already in it). */
  get poolStateKey(): string {
    return this.st.key + this.ctx.tenantStateKey(this.session)
  }

  /** Returns true when no part of `chunk` is still referenced (every slice of it reached the kernel). */
  protected readonly onBackendData = (chunk: Buffer): boolean => {
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
    if (this.waitingToMove && this.queue.settled) {
      this.waitingToMove = false
      queueMicrotask(() => this.resumeInput()) // the statement that waited to move goes on
    }
    return this.out.pending === 0 && this.socket.writableLength === 0
  }

  protected readonly onBackendClose = (err: Error | null): void => {
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
      if (!this.endsWithServer)
        this.out.push(be.errorResponse({ severity: 'FATAL', code: '08006', message: 'server closed the connection unexpectedly', detail: err?.message }))
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
      this.out.push(
        be.errorResponse({ severity: 'ERROR', code: '08006', message: 'server connection lost: the query was interrupted (pgtenant keeps this session open)' }),
      )
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
  protected maybeRelease(): void {
    const conn = this.backend
    if (!conn || !this.queue.settled || this.txStatus !== 'I' || this.toBackend.length > 0) return
    // The transaction is over: what it used may now be evicted (backend/prepared.ts), also on a connection the session keeps.
    conn.prepared.epoch++
    // A move of the tenant is pausing it: a session that would keep the connection leaves it (leaveForMove).
    if ((this.poolMode !== 'transaction' || this.pinned) && this.ctx.leavesServerConnection(this.session)) return this.leaveBackend('move')
    if (this.poolMode !== 'transaction') return
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
  protected askForHeldCursors(conn: BackendConnection): void {
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

  /** Where the server's replies go (core.ts builds the scanner with it). */
  protected createSink(): ScannerSink {
    return {
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
          case 0x6e: {
            // NoData
            const described = this.queue.describeDone()
            described?.onShape?.('n')
            return !(described?.swallow ?? false)
          }
          case 0x74: // ParameterDescription (of a Describe the proxy sent itself: not the client's)
            return !(head.kind === 'internal' || (head.kind === 'describe' && head.swallow))
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
          case 0x54: {
            // RowDescription: of a Describe (its shape is recorded), or of a query's result
            const described = this.queue.describeDone()
            if (described) {
              described.onShape?.(raw.toString('latin1'))
              return !described.swallow
            }
            const head = this.queue.head
            return head === undefined || head.kind !== 'internal'
          }
          default:
            return true
        }
      },
    }
  }

  protected onReadyForQuery(statusByte: number): boolean {
    const status = String.fromCharCode(statusByte) as TxStatus
    const answered = this.queue.readyForQuery()
    if (answered?.kind === 'internal') return false // the proxy's own statement; the client's status comes with its own reply
    const wasInTransaction = this.txStatus !== 'I'
    this.txStatus = status
    this.reportQuery()
    if (status === 'I') {
      // An error with no transaction block open rolled back the implicit transaction it was in.
      this.transactionEnded(answered?.failed ?? false)
      this.ctx.metrics?.transactionDone(this.session)
    } else if (!wasInTransaction) this.txStartedAt = Date.now()
    this.releaseTenantHold(status)
    return true
  }

  protected txStartedAt = 0

  protected reportQuery(): void {
    const m = this.ctx.metrics
    if (m && this.currentQueryStart > 0) m.queryDone(this.session, (Date.now() - this.currentQueryStart) / 1000, this.rowsSent, this.bytesSent)
    this.rowsSent = 0
    this.bytesSent = 0
  }

  protected transactionEnded(rolledBack = false): void {
    if (rolledBack) this.st.pendingEffects = []
    else this.commitPendingEffects()
    if (this.st.settleBatch(rolledBack)) this.ctx.tenantChanged(this.session)
    this.planSearchPath = null // the committed settings say it now
    this.txTouchedTenant = false
    this.st.endLocal()
  }

  protected commitPendingEffects(): void {
    // The connection already has these settings: it ran the statements itself.
    if (this.st.commitPending() && this.backend) this.backend.stateApplied(this.st.key)
  }

  protected onErrorResponse(raw: Buffer): boolean {
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

  protected handleErrorResponse(raw: Buffer): boolean {
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
    if (fields.C === '0A000' && (fields.R === 'RevalidateCachedQuery' || /cached plan must not change result type/.test(fields.M ?? '')))
      this.staleStatement(head.serverName)
    this.ctx.metrics?.backendError(this.session, fields.C ?? 'XX000')
    if (this.backendName && this.ctx.config.backends[this.backendName]?.citus) this.ctx.workerError(this.backendName, fields.C ?? 'XX000')
    if (head.kind === 'internal') {
      this.log.warn({ sqlstate: fields.C, message: fields.M }, 'internal statement on the server failed')
      if (head.onTag) this.holdsCursor = true // the held-cursor question went unanswered: keep the connection
      return false
    }
    return true
  }
}
