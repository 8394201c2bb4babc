// Answers the proxy makes itself (refusals, inside an extended batch too) and the tenant
// commands it answers without the server (SET / SHOW / set_config of the tenant setting).
import * as fe from '../protocol/frontend.js'
import * as be from '../protocol/backend.js'
import type { TenantCommand, Refusal } from '../../parser/types.js'
import { quoteLiteral } from '../planner.js'
import { SessionCore } from './core.js'

type TxStatus = be.TxStatus

export abstract class SessionAnswers extends SessionCore {
  // ---------------------------------------------------------------- proxy answers

  /** A refusal: ErrorResponse (+ ReadyForQuery for the simple protocol); nothing reaches the server. */
  protected refuse(r: Refusal, extended: boolean, routine?: string): void {
    this.ctx.metrics?.refused(this.session, r)
    this.log.info({ sqlstate: r.sqlstate, reason: r.message }, 'statement refused')
    const err = be.errorResponse({ severity: 'ERROR', code: r.sqlstate, message: r.message, hint: r.hint, routine })
    if (extended) this.answer([err])
    else this.answer([err, be.readyForQuery(this.txStatus)])
  }

  /** A refusal inside the extended protocol; `routine`: the server routine PostgreSQL would name (field R). */
  protected extendedError(r: Refusal, routine?: string): void {
    this.skipUntilSync = true
    if (this.backend && this.queue.unsynced && !this.queue.skipping) {
      // An extended batch is open on the server (say an INSERT executed, no Sync yet). PostgreSQL's
      // own error would abort its implicit transaction; so must the proxy's: the server gets a Parse
      // that always fails (a syntax error, or 25P02 in an aborted transaction) in the refused
      // message's place, skips to the client's Sync and rolls back. The client gets the refusal in
      // place of that server error.
      this.ctx.metrics?.refused(this.session, r)
      this.log.info({ sqlstate: r.sqlstate, reason: r.message }, 'statement refused inside a batch: the server aborts it')
      this.send(fe.encodeParse(REFUSAL_STATEMENT, REFUSAL_SQL, Buffer.alloc(2)))
      this.queue.expect('parse', {
        serverName: REFUSAL_STATEMENT,
        swallow: true,
        bytes: [be.errorResponse({ severity: 'ERROR', code: r.sqlstate, message: r.message, hint: r.hint, routine })],
      })
      return
    }
    this.refuse(r, true, routine)
  }

  protected answerTenantCommand(cmd: TenantCommand, protocol: 'simple' | 'extended'): void {
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

  /**
   * A tenant command is answered by the proxy from the transaction status; with a pipelined
   * Query or Sync still unanswered that status is not known yet (the server may be about to
   * report an aborted block): hold the command, and the client's input, until it is.
   */
  protected mustWaitForStatus(): boolean {
    if (!this.queue.awaitsClientReady) return false
    this.holdForTenantOutcome = true
    return true
  }

  /** Remembers the tenant to restore if this batch fails; returns what a skipped answer must undo. */
  protected undoInImplicitTransaction(cmd: TenantCommand): (() => void) | null {
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
  protected revertBatchTenant(): void {
    if (this.st.revertBatchTenant()) this.ctx.tenantChanged(this.session)
  }

  /** The server answered the Sync or Query that ended the batch: read the client again. */
  protected releaseTenantHold(status: TxStatus): void {
    if (status === 'E') this.revertBatchTenant() // a BEGIN in the batch made it a failed block: it will be rolled back
    if (!this.holdForTenantOutcome) return
    this.holdForTenantOutcome = false
    queueMicrotask(() => this.resumeInput()) // not from inside the server reply being scanned
  }

  protected changeTenant(value: string | null, local: boolean): Refusal | null {
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
    if (inTransaction && this.backend !== null && value !== this.effectiveTenant) {
      const elsewhere = this.placedElsewhere(value)
      if (elsewhere) return elsewhere
    }
    this.st.setTenant(value, local)
    if (this.backend && inTransaction && this.ctx.planner.tenantMode) {
      // Keep current_setting() on the server in step for the rest of this transaction.
      this.send(fe.encodeQuery(`SELECT set_config(${quoteLiteral(setting)}, ${quoteLiteral(value ?? '')}, true)`))
      this.queue.expect('internal')
      this.backend.forgetState()
    }
    this.ctx.tenantChanged(this.session)
    return null
  }

  /**
   * Whether the attached server connection serves the session's tenant: its statements route to
   * the connection's pool, or to any node of the same Citus backend (metadata is synced to every
   * node: only the worker-direct shortcut is lost). `tenant`: a tenant the session would change to
   * (default: its tenant now). Throws a routing refusal.
   */
  protected connectionServesTenant(tenant?: string | null): boolean {
    const routed = tenant === undefined ? this.ctx.routed(this.session) : this.ctx.routeFor(this.session, tenant)
    const citus = routed.route.kind === 'citus-worker' || routed.route.kind === 'citus-coordinator'
    return routed.pool === this.pool || (citus && routed.route.backend === this.backendName)
  }

  /** Inside a transaction the tenant may change only to one the transaction's server connection serves. */
  private placedElsewhere(value: string | null): Refusal | null {
    let serves: boolean
    try {
      serves = this.connectionServesTenant(value) // SET and SET LOCAL both make `value` the effective tenant
    } catch {
      serves = false
    }
    if (serves) return null
    const setting = this.ctx.planner.setting
    return {
      kind: 'refuse',
      sqlstate: '0A000',
      message: `${setting} "${value ?? ''}" is placed on another server than the one this transaction runs on (backend "${this.backendName ?? ''}")`,
      hint: `Set ${setting} before BEGIN (or right after BEGIN, before the transaction's first statement, under transaction pooling).`,
    }
  }

  protected answerWarning(message: string): void {
    this.answer([be.noticeResponse({ severity: 'WARNING', code: '25P01', message })])
  }

  /** Emit proxy-made messages, after every response still owed by the server. */
  protected answer(bytes: Buffer[], onFail: (() => void) | null = null): void {
    if (!this.queue.answer(bytes, onFail)) for (const b of bytes) this.out.push(b)
  }
}

/** A Parse the server always refuses, sent in place of a message the proxy refused inside an open batch (extendedError). */
export const REFUSAL_STATEMENT = 'pgtenant_refused'

const REFUSAL_SQL = 'pgtenant: a statement in this batch was refused by the proxy'
