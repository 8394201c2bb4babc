// One client connection (the top layer of server/session/: see core.ts for the layers):
// message dispatch, simple-protocol queries, BEGIN deferral, and the session effects
// (SET, PREPARE, cursors, LISTEN …) the pooler checks before and confirms after the server runs them.
import { ProtocolViolation, type Frame } from './protocol/frame-reader.js'
import * as fe from './protocol/frontend.js'
import { serialize } from './protocol/pg-protocol.js'
import * as be from './protocol/backend.js'
import type { RewriteResult, SessionEffect, StatementPlan, Refusal } from '../parser/types.js'
import { fingerprintSync } from 'libpg-query'
import { type ClientStatement } from './session/statements.js'
import { NO_HINT, hintOf, isPlainBegin, beginTag, loneCommand, parseSearchPath, isSearchPathEffect } from './session/statement-text.js'
import { SessionExtended } from './session/extended.js'

export class ClientSession extends SessionExtended {
  /** Handle one client message. Returns false when it needs a backend connection not yet attached. */
  protected handleMessage(frame: Frame): boolean {
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
        return this.handleCopyMessage(frame) // session/copy-in.ts
      case 'F':
        if (this.ctx.planner.tenantMode && !this.bypass) {
          // A function called by OID runs no SQL the proxy can check.
          this.refuse(
            {
              kind: 'refuse',
              sqlstate: '0A000',
              message: 'the FunctionCall protocol message is not allowed for tenant sessions: call the function in a SELECT',
            },
            false,
          )
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

  protected handleAdminMessage(frame: Frame, type: string): boolean {
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

  protected plan(sql: string): RewriteResult | null {
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
    if (failed)
      this.log.error(
        { fingerprint: fingerprintOf(sql), table: failed.table, reason: failed.reason, user: this.user },
        'rewritten statement failed verification: refused',
      )
    return result
  }

  /** The search_path the planner resolves names with, parsed once per value of the setting. */
  protected searchPath(): readonly string[] {
    const raw = this.planSearchPath ?? this.st.settings.get('search_path') ?? ''
    if (this.parsedSearchPath === null || this.parsedSearchPath.raw !== raw) this.parsedSearchPath = { raw, path: parseSearchPath(raw, this.user) }
    return this.parsedSearchPath.path
  }

  protected parsedSearchPath: { raw: string; path: readonly string[] } | null = null

  protected handleQuery(frame: Frame): boolean {
    const sql = fe.decodeQuery(frame)
    this.currentQueryStart = Date.now()
    this.lastSql = sql
    const plan = this.plan(sql)
    if (this.deferTransactionControl(sql, plan)) return true
    if (plan === null) {
      this.routeHint = NO_HINT
      if (!this.ensureBackend()) return false
      this.send(frame.raw)
      this.queue.expect('query')
      this.copyBegin(null)
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
        this.refuse(
          {
            kind: 'refuse',
            sqlstate: '0A000',
            message: `${this.ctx.planner.setting} must be set in a statement of its own, not together with other statements`,
          },
          false,
        )
      else if (this.mustWaitForStatus()) return false
      else this.answerTenantCommand(tenantCommands[0].command, 'simple')
      return true
    }
    /** One per statement, in the order the server completes them: what its CommandComplete confirms. */
    const effects: (SessionEffect | null)[] = []
    this.routeHint = hintOf(plan)
    const setsPath = plan.statements.findIndex((st) => st.kind === 'forward' && isSearchPathEffect(st.effect))
    if (setsPath >= 0 && setsPath < plan.statements.length - 1 && this.ctx.planner.tenantMode && !this.bypass) {
      this.refuse(
        {
          kind: 'refuse',
          sqlstate: '0A000',
          message: 'SET search_path must be sent in a statement of its own: the statements after it would be checked against the old search_path',
        },
        false,
      )
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
    const copy = this.copyForQuery(plan) // COPY … FROM STDIN into a tenant table (session/copy-in.ts)
    if (copy === undefined) return true
    if (!this.ensureBackend()) return false
    this.send(plan.sql !== undefined && plan.sql !== sql ? fe.encodeQuery(plan.sql) : frame.raw)
    this.queue.expect('query', { effects })
    this.copyBegin(copy)
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
  protected deferTransactionControl(sql: string, plan: RewriteResult | null): boolean {
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
  protected canDeferBegin(): boolean {
    return !this.backend && !this.acquiring && this.deferredBegin === null && this.txStatus === 'I' && this.poolMode === 'transaction'
  }

  /**
   * BEGIN deferral for the extended protocol (pgbench -M extended/prepared, JDBC): Parse and
   * Bind of a lone BEGIN were answered by the proxy while the session was idle; at Execute
   * the BEGIN is kept to go ahead of the transaction's first statement (see attachBackend).
   * False when the session is no longer idle: the portal is then made on the server.
   */
  protected executeDeferredBegin(): boolean {
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
  protected bindOnServer(portal: string, stmt: ClientStatement): void {
    this.beginPortal = null
    this.beginStatement = null
    this.ensurePrepared(stmt)
    this.send(serialize.bind({ portal, statement: stmt.serverName }))
    this.queue.expect('bind', { swallow: true })
  }

  /** Effects the pooler cannot carry across connections: refuse them, or pin the session. */
  protected checkEffect(effect: SessionEffect, preparedHere?: ReadonlySet<string>): Refusal | null {
    if (this.ctx.planner.tenantMode && !this.bypass && effect.kind === 'set_local' && effect.name.toLowerCase() === 'search_path')
      return {
        kind: 'refuse',
        sqlstate: '0A000',
        message: 'SET LOCAL search_path is not supported for tenant sessions: use SET search_path',
        hint: 'The proxy resolves table names with the session search_path.',
      }
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
  protected applyImmediateEffects(effects: readonly (SessionEffect | null)[]): void {
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
  protected confirmed(tag: string, effect: SessionEffect | null): void {
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
  protected clearTenantAfterReset(): void {
    if (this.userConfig?.tenant !== undefined || !this.ctx.planner.tenantMode) return
    this.st.clearTenant()
  }

  /** DEALLOCATE ALL / DISCARD ALL ran on the server connection: the proxy's shared statements there are gone. */
  protected forgetServerStatements(): void {
    const conn = this.backend
    if (!conn) return
    conn.forgetStatements()
  }
}

/** Command tags of statements that may change what a prepared statement returns (ALTER TABLE, DROP/CREATE VIEW, …). */
const DDL_TAG = /^(ALTER|CREATE|DROP) /

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
