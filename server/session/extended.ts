// The extended query protocol: Parse (rewritten for the tenant, shared server statements),
// Bind, Describe, Execute, Close and Sync, over the statement registry (statements.ts).
import { type Frame } from '../protocol/frame-reader.js'
import * as fe from '../protocol/frontend.js'
import { serialize } from '../protocol/pg-protocol.js'
import { ParseMemo } from '../protocol/parse-memo.js'
import * as be from '../protocol/backend.js'
import { BackendConnection } from '../backend/connection.js'
import { closeEvicted } from '../backend/prepared.js'
import type { TenantCommand, Refusal, RewriteResult, SessionEffect } from '../../parser/types.js'
import { NO_EFFECTS } from './reply-queue.js'
import { clientStatement, needsParse, type ClientStatement } from './statements.js'
import { NO_HINT, isPlainBegin } from './statement-text.js'
import { SessionCopyIn } from './copy-in.js'

export abstract class SessionExtended extends SessionCopyIn {
  // The simple-protocol layer (server/session.ts) owns planning, BEGIN deferral and effect checks.
  protected abstract plan(sql: string): RewriteResult | null
  protected abstract checkEffect(effect: SessionEffect, preparedHere?: ReadonlySet<string>): Refusal | null
  protected abstract applyImmediateEffects(effects: readonly (SessionEffect | null)[]): void
  protected abstract canDeferBegin(): boolean
  protected abstract executeDeferredBegin(): boolean
  protected abstract bindOnServer(portal: string, stmt: ClientStatement): void

  protected parseMemoInstance: ParseMemo | null = null
  protected get parseMemo(): ParseMemo {
    return (this.parseMemoInstance ??= new ParseMemo())
  }

  protected handleParse(frame: Frame): boolean {
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
      this.extendedError({
        kind: 'refuse',
        sqlstate: '25P02' as Refusal['sqlstate'],
        message: 'current transaction is aborted, commands ignored until end of transaction block',
      })
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
  protected staleStatement(serverName: string | null): void {
    this.ctx.schemaChanged()
    if (!serverName) return
    this.log.info({ statement: serverName }, 'shared statement planned against an older schema: preparing afresh')
    this.stmts.renameServerStatement(serverName, (name, stmt) => this.serverNameFor(name, stmt.sql, stmt.paramTypes))
  }

  /** Rewrite a statement for the current tenant (or explain why not), as of the current schema epoch. */
  protected prepareStatement(name: string, sql: string, paramTypes: Buffer): ClientStatement | Refusal {
    const stmt = this.rewriteStatement(name, sql, paramTypes)
    if (!('kind' in stmt)) stmt.epoch = this.ctx.schemaEpoch
    return stmt
  }

  private rewriteStatement(name: string, sql: string, paramTypes: Buffer): ClientStatement | Refusal {
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
    const stmt = clientStatement(sql, paramTypes, tenant, out, this.serverNameFor(name, out, paramTypes), null, st.effect, isPlainBegin(sql))
    stmt.copyIn = st.copyIn ?? null
    return stmt
  }

  /** Named statements get a server-side name derived from their text, shared by every client. */
  protected serverNameFor(clientName: string, sql: string, paramTypes: Buffer): string {
    if (clientName === '') return ''
    return this.ctx.statementName(sql, paramTypes)
  }

  /**
   * Make sure `stmt` exists on the attached backend (prepare it there if needed). `clientName`:
   * the client's own Parse (its registration is undone if the server refuses or skips it);
   * null: a Parse the proxy adds itself, whose reply the client does not see.
   */
  protected sendParse(stmt: ClientStatement, clientName: string | null, unchanged: Buffer | null = null): void {
    const conn = this.backend as BackendConnection
    const internal = clientName === null
    const unregister = clientName === null ? null : this.stmts.unregisterer(clientName, stmt)
    if (stmt.serverName === '') {
      this.send(unchanged ?? this.parseMemo.encodeUnnamed(stmt.sql, stmt.paramTypes))
      const token = {}
      conn.claimUnnamed(token)
      stmt.token = token
      const onFail = (): void => {
        conn.releaseUnnamed(token)
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
  protected resolveStatement(name: string): ClientStatement | Refusal {
    return this.stmts.resolve(name, this.effectiveTenant, (old) => this.prepareStatement(name, old.originalSql, old.paramTypes))
  }

  /** Before Bind/Describe of a statement: prepare it on this connection if it is not there. */
  protected ensurePrepared(stmt: ClientStatement): void {
    if (needsParse(stmt, this.backend as BackendConnection)) this.sendParse(stmt, null)
  }

  /**
   * Before a Bind: a statement the client described before the schema changed, about to be
   * prepared afresh on a connection that never had it, may return other columns now, which
   * PostgreSQL would refuse (0A000) rather than send. The server describes it first (Parse,
   * Describe, Flush) and the Bind waits for the answer; false while it does.
   */
  private checkedShape(stmt: ClientStatement): boolean {
    const conn = this.backend as BackendConnection
    if (stmt.shape === null || stmt.epoch === this.ctx.schemaEpoch || !needsParse(stmt, conn)) return true
    if (this.queue.skipping) return true // the server discards the Bind anyway (an earlier error in the batch)
    this.holdForShape = true
    this.sendParse(stmt, null)
    const epoch = this.ctx.schemaEpoch
    const resume = (): void => {
      this.holdForShape = false
      queueMicrotask(() => this.resumeInput())
    }
    this.send(fe.encodeTarget('D', 'S', stmt.serverName))
    this.queue.expect('describe', {
      serverName: stmt.serverName,
      swallow: true,
      onShape: (shape) => {
        if (shape !== stmt.shape) stmt.resultChanged = true
        else stmt.epoch = epoch
        resume()
      },
      onFail: resume,
    })
    this.send(serialize.flush()) // the server answers the Parse and Describe now, not at the client's Sync
    return false
  }

  /** A Bind waits for the server to describe its statement (checkedShape). */
  private holdForShape = false

  protected handleBind(frame: Frame): boolean {
    const head = fe.decodeBindHead(frame)
    if (this.queue.length === 0) this.currentQueryStart = Date.now()
    if (this.beginPortal === head.portal) this.beginPortal = null // rebinding the name replaces the proxy's BEGIN portal
    this.copyPortals.delete(head.portal)
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
    if (this.holdForShape || !this.checkedShape(stmt)) return false
    if (stmt.resultChanged) {
      // as PostgreSQL says it (drivers re-prepare on this routine: postgres.js)
      this.extendedError({ kind: 'refuse', sqlstate: '0A000', message: 'cached plan must not change result type' }, 'RevalidateCachedQuery')
      return true
    }
    this.ensurePrepared(stmt)
    this.send(stmt.serverName === head.statement ? frame.raw : fe.encodeBind(frame, head, stmt.serverName))
    this.queue.expect('bind', { serverName: stmt.serverName })
    this.stmts.portalEffects.set(head.portal, stmt.effect)
    if (stmt.copyIn) this.copyPortals.set(head.portal, stmt.copyIn) // its Execute starts a COPY into a tenant table (copy-in.ts)
    return true
  }

  /** `SELECT set_config('app.tenant', $n, …)`: the tenant is the Bind's parameter $n (text format), never a cleared tenant. */
  protected bindTenantCommand(frame: Frame, head: fe.BindHead, stmt: ClientStatement): ClientStatement | Refusal {
    const cmd = stmt.local as TenantCommand
    if (cmd.op !== 'set_config' || !cmd.valueParam) return stmt
    const p = fe.decodeBindParam(frame, head, cmd.valueParam - 1)
    if (!p)
      return {
        kind: 'refuse',
        sqlstate: '08P01' as Refusal['sqlstate'],
        message: `bind message supplies too few parameters for set_config('${this.ctx.planner.setting}', $${cmd.valueParam}, …)`,
      }
    if (p.format !== 0)
      return {
        kind: 'refuse',
        sqlstate: '0A000',
        message: `set_config('${this.ctx.planner.setting}', $${cmd.valueParam}, …) needs its parameter in text format`,
      }
    return { ...stmt, local: { op: 'set_config', value: p.value === null ? null : p.value.toString('utf8'), local: cmd.local } }
  }

  protected handleDescribe(frame: Frame): boolean {
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
    // What the client now knows of the result (a client may decode later rows by it: see checkedShape).
    const epoch = this.ctx.schemaEpoch
    this.queue.expect('describe', {
      serverName: stmt.serverName,
      onShape: (shape) => {
        stmt.shape = shape
        stmt.epoch = epoch
        stmt.resultChanged = false
      },
    })
    return true
  }

  protected localRowDescription(cmd: TenantCommand): Buffer {
    if (cmd.op === 'show') return be.rowDescription([this.ctx.planner.setting])
    if (cmd.op === 'set_config') return be.rowDescription(['set_config'])
    return be.noData()
  }

  protected handleExecute(frame: Frame): boolean {
    const portal = frame.raw[5] === 0 ? '' : new fe.PayloadReader(frame.raw, 5).cstring()
    const local = this.stmts.localPortals.get(portal)
    if (local) {
      if (this.mustWaitForStatus()) return false
      this.answerTenantCommand(local.local as TenantCommand, 'extended')
      return true
    }
    if (portal === this.beginPortal && this.executeDeferredBegin()) return true
    const copy = this.copyForPortal(portal)
    if (copy === undefined) return true
    if (!this.ensureBackend()) return false
    if (portal === this.beginPortal) this.bindOnServer(portal, this.beginStatement as ClientStatement)
    this.send(frame.raw)
    this.copyBegin(copy)
    const effect = this.stmts.portalEffects.get(portal)
    const effects = effect ? [effect] : NO_EFFECTS
    this.queue.expect('execute', { effects })
    this.ctx.metrics?.statementSent(this.session)
    this.applyImmediateEffects(effects)
    return true
  }

  protected handleClose(frame: Frame): boolean {
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

  protected handleSync(frame: Frame): boolean {
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
