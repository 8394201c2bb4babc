// Session settings: SET / RESET / SET LOCAL and `SELECT set_config(…)` alone in a statement. Those of
// the tenant setting become tenant commands (the proxy answers them); others become session effects
// server/ tracks and replays, after the settings policy (parser/policy/settings.ts) in tenant mode.
import type { SessionEffect, TenantCommand } from '../types.js'
import { quoteLiteral } from '../quote.js'
import { settingRefusal, settingValueRefusal, setConfigRefusal } from '../policy/settings.js'
import { Refuse, unsupported } from './refuse.js'
import type { RewriteState } from './state.js'
import type { CompiledStmt, StmtInfo } from './plan.js'
import { constValue, field, funcName, lower, parseBool, type FuncCall, type SelectStmt, type VariableSetStmt } from './nodes.js'

/** The plan of a statement with the statement's facts, plus `extra`. */
export type Base = (extra?: Partial<CompiledStmt>) => StmtInfo

/** `SELECT f(…)` and nothing else (no FROM, WHERE, …): the call, else null. */
function loneCall(sel: SelectStmt): FuncCall | null {
  const tl = sel.targetList ?? []
  if (tl.length !== 1 || sel.fromClause || sel.whereClause || sel.withClause || sel.groupClause || sel.havingClause || sel.sortClause) return null
  if (sel.limitCount || sel.limitOffset || sel.distinctClause || sel.intoClause || sel.lockingClause || sel.windowClause) return null
  return field(field(tl[0], 'ResTarget')?.val, 'FuncCall') ?? null
}

/** `SELECT set_config('<tenant setting>', value, is_local)` alone: a tenant command; null for any other statement. */
export function setConfigCommand(cx: RewriteState, sel: SelectStmt): TenantCommand | null {
  const fc = loneCall(sel)
  if (!fc) return null
  const { schema, name } = funcName(fc)
  if (name !== 'set_config' || (schema && schema !== 'pg_catalog')) return null
  cx.normalizable = false // the literal setting name decides what this statement is
  const args = fc.args ?? []
  if (args.length !== 3) return null
  const nm = constValue(args[0])
  if (typeof nm !== 'string' || lower(nm) !== cx.setting) return null
  const val = constValue(args[1])
  const param = field(args[1], 'ParamRef')?.number
  if (val === undefined && !param) throw unsupported(`set_config('${cx.ctx.setting}', …) needs a literal value or a parameter`)
  const loc = constValue(args[2])
  if (loc === undefined || loc === null) throw unsupported(`set_config('${cx.ctx.setting}', …) needs a literal is_local`)
  const b = parseBool(loc)
  if (b === null) throw unsupported(`set_config('${cx.ctx.setting}', …): is_local must be true or false`)
  if (param) return { op: 'set_config', value: null, local: b, valueParam: param }
  if (val !== null && val !== undefined && val.includes('\0')) throw nulTenant()
  return { op: 'set_config', value: val ?? null, local: b }
}

function nulTenant(): Refuse {
  return new Refuse('tenant_value', '42501', 'a tenant value cannot contain a NUL character')
}

/**
 * `SELECT set_config('name', 'value', false)` alone in a statement, for a setting other than the tenant:
 * a session-level change the proxy tracks and replays like `SET name = 'value'`. Null for any other shape.
 */
export function sessionSetConfig(cx: RewriteState, sel: SelectStmt): SessionEffect | null {
  if (sel.valuesLists) return null
  const fc = loneCall(sel)
  if (!fc || fc.agg_star || fc.over || fc.agg_filter) return null
  const { schema, name } = funcName(fc)
  if (lower(name) !== 'set_config' || (schema && lower(schema) !== 'pg_catalog')) return null
  const args = fc.args ?? []
  if (args.length !== 3) return null
  const nm = constValue(args[0])
  const val = constValue(args[1])
  const local = constValue(args[2])
  if (typeof nm !== 'string' || typeof val !== 'string' || typeof local !== 'string' || parseBool(local) !== false) return null
  cx.normalizable = false
  const n = lower(nm)
  const refusal = setConfigRefusal(n) ?? settingValueRefusal(n, val)
  if (refusal) throw new Refuse('setting_policy', '42501', refusal)
  return { kind: 'set', name: n, valueSql: quoteLiteral(val) }
}

/** SET / RESET: a tenant command for the tenant setting, else the effect to track (after the settings policy). */
export function variableSet(cx: RewriteState, v: VariableSetStmt, range: [number, number], base: Base): StmtInfo {
  cx.normalizable = false
  const kind = v.kind
  if (kind === 'VAR_RESET_ALL') return base({ effect: { kind: 'reset_all' } })
  const name = lower(v.name ?? '')
  if (name === cx.setting) return tenantSet(cx, v, base)
  if (cx.tenantMode) checkSet(v, name)
  switch (kind) {
    case 'VAR_SET_VALUE': {
      if (v.is_local) return base({ effect: { kind: 'set_local', name } })
      const start = cx.minLoc(v.args)
      let valueSql = cx.text.slice(start, range[1]).trim()
      if (valueSql.endsWith(';')) valueSql = valueSql.slice(0, -1).trim()
      return base({ effect: { kind: 'set', name, valueSql } })
    }
    case 'VAR_SET_DEFAULT':
      return base({ effect: v.is_local ? { kind: 'set_local', name } : { kind: 'reset', name } })
    case 'VAR_RESET':
      return base({ effect: { kind: 'reset', name } })
    case 'VAR_SET_MULTI':
      // SET TRANSACTION … lasts for the transaction; SET SESSION CHARACTERISTICS is not tracked
      return base(name === 'transaction' ? { effect: { kind: 'set_local', name } } : {})
    default:
      return base()
  }
}

/** SET / RESET of the tenant setting itself. */
function tenantSet(cx: RewriteState, v: VariableSetStmt, base: Base): StmtInfo {
  const local = !!v.is_local
  const tenant = (tenantCommand: TenantCommand): StmtInfo => ({ ...base(), kind: 'tenant', tenantCommand })
  switch (v.kind) {
    case 'VAR_SET_VALUE': {
      const args = v.args ?? []
      const val = args.length === 1 ? constValue(args[0]) : undefined
      if (val === undefined || val === null) throw unsupported(`SET ${cx.ctx.setting} needs one literal value`)
      if (val.includes('\0')) throw nulTenant()
      return tenant({ op: 'set', value: val, local, tag: 'SET' })
    }
    case 'VAR_SET_DEFAULT':
      return tenant({ op: 'set', value: null, local, tag: 'SET' })
    case 'VAR_RESET':
      return tenant({ op: 'set', value: null, local: false, tag: 'RESET' })
    default:
      throw unsupported(`this form of SET ${cx.ctx.setting} is not supported`)
  }
}

/** The settings policy for SET / RESET of another setting (tenant mode). */
function checkSet(v: VariableSetStmt, name: string): void {
  const kind = v.kind
  if (name === 'role' || name === 'session_authorization')
    throw new Refuse(
      'statement_policy',
      '42501',
      `${kind === 'VAR_RESET' ? 'RESET' : 'SET'} ${name === 'role' ? 'ROLE' : 'SESSION AUTHORIZATION'} is not allowed for tenant sessions`,
    )
  if (kind !== 'VAR_RESET') {
    const refusal = settingRefusal(name)
    if (refusal) throw new Refuse('setting_policy', '42501', refusal)
  }
  if (kind === 'VAR_SET_VALUE' || kind === 'VAR_SET_DEFAULT' || kind === 'VAR_SET_CURRENT') {
    // pgtenant lexes the text as UTF-8 with standard_conforming_strings on: the server must read it the same way
    const args = v.args ?? []
    const val = kind === 'VAR_SET_VALUE' && args.length === 1 ? constValue(args[0]) : undefined
    const refusal = settingValueRefusal(name, typeof val === 'string' ? val : null)
    if (refusal && (name === 'client_encoding' || name === 'standard_conforming_strings')) throw new Refuse('setting_policy', '0A000', refusal)
  }
}
