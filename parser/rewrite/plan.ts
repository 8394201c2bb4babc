// What analyze() returns: per statement a forward template, a tenant command or a refusal.
import type { CopyInPlan, Refusal, SessionEffect, TenantCommand } from '../types.js'
import type { Check } from './state.js'
import type { Part } from './template.js'

export interface CompiledStmt {
  kind: 'forward' | 'tenant' | 'refuse'
  tpl: Part[]
  command: string
  touchesTenant: boolean
  /** First tenant table touched (for the "no tenant set" refusal). */
  firstTenantTable: string | null
  relations: string[]
  effect?: SessionEffect
  copyIn?: CopyInPlan
  tenantCommand?: TenantCommand
  refusal?: Refusal
}

/** A statement's plan before its template is built. */
export type StmtInfo = Omit<CompiledStmt, 'tpl'>

export interface Plan {
  stmts: CompiledStmt[]
  /** Template of the whole text when every statement is forwarded. */
  whole: Part[] | null
  refusal: Refusal | null
  checks: Check[]
  /** May the plan be shared by texts that differ only in literal values? */
  normalizable: boolean
  touchesTenant: boolean
}
