// A client session's state as the server must see it: the tenant (and SET LOCAL's override),
// the settings the client changed, the changes waiting for their transaction to commit, and
// the state key pools match server connections by. Pure: no sockets, no timers.
//
// What PostgreSQL does, and so this does:
// - A SET inside a transaction counts when the transaction commits; a rollback drops it.
// - SET LOCAL (here: of the tenant) lasts until the transaction ends.
// - Messages up to a Sync run as one implicit transaction: a tenant change in a batch that
//   fails is undone (see rememberBatchTenant / settleBatch).
import type { SessionEffect } from '../../parser/types.js'
import { quoteIdent, quoteLiteral } from '../planner.js'

export class SessionState {
  tenant: string | null = null
  /** SET LOCAL tenant: overrides `tenant` until the transaction ends (undefined: none). */
  localTenant: string | null | undefined = undefined
  /** Settings the client changed (lower-case name → SQL value), replayed on each server connection. */
  readonly settings = new Map<string, string>()
  /** Setting changes the server confirmed inside the current transaction: kept if it commits. */
  pendingEffects: SessionEffect[] = []
  /** The tenant before the first change of an extended batch outside a transaction block (null: nothing to undo). */
  private batchUndo: { tenant: string | null } | null = null
  private keyCache: string | null = null

  get effectiveTenant(): string | null {
    return this.localTenant !== undefined ? this.localTenant : this.tenant
  }

  /** Tenant and settings as one string: a server connection with the same key needs no replay. */
  get key(): string {
    if (this.keyCache === null) {
      let key = `${this.effectiveTenant ?? ''}\u0000`
      for (const [k, v] of this.settings) key += `${k}=${v}\u0000`
      this.keyCache = key
    }
    return this.keyCache
  }

  /** Call after changing `tenant`, `localTenant` or `settings` directly. */
  invalidate(): void {
    this.keyCache = null
  }

  /** SET / set_config of the tenant (already checked by the caller). */
  setTenant(value: string | null, local: boolean): void {
    if (local) this.localTenant = value
    else {
      this.tenant = value
      this.localTenant = undefined
    }
    this.invalidate()
  }

  /** RESET ALL / DISCARD ALL cleared the tenant on the server; returns whether it was set. */
  clearTenant(): boolean {
    if (this.tenant === null) return false
    this.tenant = null
    this.invalidate()
    return true
  }

  /** A setting the client sent in its startup packet (a literal value). */
  setStartupSetting(name: string, value: string): void {
    this.settings.set(name.toLowerCase(), quoteLiteral(value))
    this.invalidate()
  }

  /** A confirmed SET / RESET / RESET ALL / DISCARD ALL takes effect; returns whether it changed anything. */
  applySettingEffect(e: SessionEffect): boolean {
    switch (e.kind) {
      case 'set':
        this.settings.set(e.name.toLowerCase(), e.valueSql)
        break
      case 'reset':
        this.settings.delete(e.name.toLowerCase())
        break
      case 'reset_all':
      case 'discard_all':
        this.settings.clear()
        break
      default:
        return false
    }
    this.invalidate()
    return true
  }

  /** COMMIT: the transaction's setting changes stand. Returns whether any did. */
  commitPending(): boolean {
    let changed = false
    for (const e of this.pendingEffects) changed = this.applySettingEffect(e) || changed
    this.pendingEffects = []
    return changed
  }

  /** The transaction ended: SET LOCAL of the tenant ends with it. */
  endLocal(): void {
    if (this.localTenant === undefined) return
    this.localTenant = undefined
    this.invalidate()
  }

  /** The server connection was lost: what lived in its transaction is gone. */
  transactionLost(): void {
    this.localTenant = undefined
    this.pendingEffects = []
    this.invalidate()
  }

  /** Before the first tenant change of an extended batch outside a transaction block: remember what to restore. */
  rememberBatchTenant(): void {
    this.batchUndo ??= { tenant: this.tenant }
  }

  get batchChangedTenant(): boolean {
    return this.batchUndo !== null
  }

  /** The batch that changed the tenant failed: returns true if the tenant went back to its value before the batch. */
  revertBatchTenant(): boolean {
    const undo = this.batchUndo
    this.batchUndo = null
    if (undo === null || undo.tenant === this.tenant) return false
    this.tenant = undo.tenant
    this.invalidate()
    return true
  }

  /** The batch's implicit transaction ended: the change stands (committed) or goes (rolled back). Returns true if the tenant changed back. */
  settleBatch(rolledBack: boolean): boolean {
    if (rolledBack) return this.revertBatchTenant()
    this.batchUndo = null
    return false
  }

  /** The SQL that brings a server connection to this state (its replies are not the client's). */
  replaySql(tenantSetting: string | null): string {
    const parts = ['RESET ALL']
    for (const [name, value] of this.settings) parts.push(`SET ${quoteIdent(name)} TO ${value}`)
    if (tenantSetting !== null) parts.push(`SELECT set_config(${quoteLiteral(tenantSetting)}, ${quoteLiteral(this.effectiveTenant ?? '')}, false)`)
    return parts.join('; ')
  }
}
