// Expressions: walks any expression tree for what it may hide — a sub-SELECT (rewritten like any
// query, and fenced when an IN/ANY sub-select reads tenant rows), a function call (the function
// policy, parser/policy/functions.ts, and set_config() inside a statement), a nested statement or a
// relation where none can be rewritten (refused).
import { functionRefusal } from '../policy/functions.js'
import { setConfigRefusal } from '../policy/settings.js'
import { Refuse, unsupported } from './refuse.js'
import type { RewriteState, Scope } from './state.js'
import { fenceSubselect } from './order-guard.js'
import { constValue, field, funcName, lower, parseBool, type FuncCall, type Json, type SubLink, type MultiAssignRef } from './nodes.js'

/** Node types that cannot contain a sub-SELECT, a function call or a relation: the walker skips them. */
const LEAF_NODES = new Set([
  'ColumnRef',
  'A_Const',
  'ParamRef',
  'String',
  'Integer',
  'Float',
  'Boolean',
  'TypeName',
  'A_Star',
  'SetToDefault',
  'location',
  'name',
  'fields',
])

export function walkExpr(cx: RewriteState, n: Json, scope: Scope | null): void {
  if (n === null || typeof n !== 'object') return
  if (Array.isArray(n)) {
    for (let i = 0; i < n.length; i++) walkExpr(cx, n[i], scope)
    return
  }
  for (const k in n) {
    const v = n[k]
    if (v === null || typeof v !== 'object' || LEAF_NODES.has(k)) continue
    switch (k) {
      case 'SelectStmt':
        cx.walk.select(v, scope)
        break
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
      case 'RangeVar':
        throw unsupported(`pgtenant cannot rewrite a ${k} in this position`)
      case 'FuncCall':
        checkFunc(cx, v)
        walkExpr(cx, v, scope)
        break
      case 'SubLink':
        subLink(cx, v, scope)
        break
      case 'MultiAssignRef':
        // SET (a, b) = (SELECT …): every target repeats the same source; walk it once
        if ((v as MultiAssignRef).colno === 1) walkExpr(cx, v.source, scope)
        break
      default:
        walkExpr(cx, v, scope)
    }
  }
}

function subLink(cx: RewriteState, v: SubLink, scope: Scope | null): void {
  const before = cx.tenantRefs
  walkExpr(cx, v, scope)
  const sel = field(v.subselect, 'SelectStmt')
  if ((v.subLinkType === 'ANY_SUBLINK' || v.subLinkType === 'ALL_SUBLINK') && cx.tenantRefs !== before && sel) fenceSubselect(cx, sel)
}

/** The function policy for a call (tenant mode). */
function checkFunc(cx: RewriteState, fc: FuncCall): void {
  if (!cx.tenantMode) return
  const { schema, name } = funcName(fc)
  const refusal = functionRefusal(schema, name, cx.ctx.facts.functionPolicy)
  if (refusal) throw new Refuse('function_policy', '42501', refusal)
  if (lower(name) === 'set_config' && (!schema || lower(schema) === 'pg_catalog')) checkSetConfig(cx, fc)
}

/**
 * set_config() inside a statement: a constant setting name on the allow list, transaction-local only
 * (a session-level change would stay on the pooled server connection without the proxy knowing;
 * `SELECT set_config(name, value, false)` alone in a statement is tracked like SET instead).
 */
function checkSetConfig(cx: RewriteState, fc: FuncCall): void {
  cx.normalizable = false // the literal setting name decides
  const args = fc.args ?? []
  const v = constValue(args[0])
  if (typeof v !== 'string')
    throw new Refuse('setting_policy', '42501', 'set_config() with a setting name that is not a string literal is not allowed for tenant sessions')
  const lv = lower(v)
  if (lv === cx.setting)
    throw unsupported(`set_config('${cx.ctx.setting}', …) must be alone in its statement: SELECT set_config('${cx.ctx.setting}', 'x', false)`)
  const refusal = setConfigRefusal(lv)
  if (refusal) throw new Refuse('setting_policy', '42501', refusal)
  const local = constValue(args[2])
  if (typeof local !== 'string' || parseBool(local) !== true)
    throw new Refuse(
      'setting_policy',
      '42501',
      `set_config('${lv}', …, false) inside a statement is not allowed for tenant sessions: it would change the pooled server session behind pgtenant (use SET, or is_local true)`,
    )
}
