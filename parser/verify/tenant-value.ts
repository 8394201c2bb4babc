// The tenant constant and the values written into a tenant column (INSERT, UPDATE SET, ON CONFLICT
// DO UPDATE SET, MERGE): T, T::<column type>, or the execution-time guard
// `CASE (<e>)::<type> WHEN T THEN T::<type> ELSE <failing cast> END`.
import { parseSync } from 'libpg-query'
import { Fail, type N, type VerifyState } from './state.js'
import { isOp, nodeType, strings } from './nodes.js'

export function isTenantConst(vs: VerifyState, n: N): boolean {
  const c = n?.A_Const
  if (!c || nodeType(n) !== 'A_Const' || c.isnull) return false
  if (c.sval) return (c.sval.sval ?? '') === vs.tenant
  if (c.ival) return String(c.ival.ival ?? 0) === vs.tenant
  if (c.fval) return c.fval.fval === vs.tenant
  return false
}

/** Canonical form of a TypeName (names, typmods, array bounds), locations dropped. */
function typeKey(tn: N): string {
  return JSON.stringify(tn, (k, v) => (k === 'location' ? undefined : v))
}

/** The TypeName key of the tenant column's type for a table ("text" when facts do not say). */
function columnTypeKey(vs: VerifyState, key: string): string {
  const type = vs.ctx.facts.tenantColumnTypes?.get(key) ?? 'text'
  let k = vs.typeNames.get(type)
  if (k === undefined) {
    k = '!'
    try {
      const t: N = parseSync(`SELECT NULL::${type}`)
      const tn = t.stmts?.[0]?.stmt?.SelectStmt?.targetList?.[0]?.ResTarget?.val?.TypeCast?.typeName
      if (tn && t.stmts.length === 1) k = typeKey(tn)
    } catch {
      k = '!'
    }
    vs.typeNames.set(type, k)
  }
  return k
}

function isTypedTenant(vs: VerifyState, n: N, key: string): boolean {
  const tc = n?.TypeCast
  return !!tc && nodeType(n) === 'TypeCast' && isTenantConst(vs, tc.arg) && typeKey(tc.typeName) === columnTypeKey(vs, key)
}

/** The ELSE of the guard: a cast chain containing `(… || '<not a number>')::int4`, which can only fail (or give NULL). */
function isRaise(n: N): boolean {
  for (let d = 0; d < 16 && nodeType(n) === 'TypeCast'; d++) {
    const tc = n.TypeCast
    const names = strings(tc.typeName?.names ?? [])
    const last = names?.[names.length - 1]
    const a = tc.arg?.A_Expr
    if (
      (last === 'int4' || last === 'integer') &&
      !tc.typeName.arrayBounds &&
      a &&
      nodeType(tc.arg) === 'A_Expr' &&
      a.kind === 'AEXPR_OP' &&
      isOp(a.name, '||')
    ) {
      const s = a.rexpr?.A_Const?.sval?.sval
      if (typeof s === 'string' && /[^\s0-9+-]/.test(s)) return true
    }
    n = tc.arg
  }
  return false
}

/** A value written into a tenant column: T, T::<type> or the execution-time guard. */
export function tenantValue(vs: VerifyState, n: N, key: string, col: string, what: string): void {
  if (isTenantConst(vs, n) || isTypedTenant(vs, n, key)) return
  const c = n?.CaseExpr
  if (c && nodeType(n) === 'CaseExpr') {
    const tk = columnTypeKey(vs, key)
    const arg = c.arg?.TypeCast
    const args: N[] = c.args ?? []
    const w = args[0]?.CaseWhen
    if (
      arg &&
      nodeType(c.arg) === 'TypeCast' &&
      typeKey(arg.typeName) === tk &&
      args.length === 1 &&
      w &&
      isTenantConst(vs, w.expr) &&
      isTypedTenant(vs, w.result, key) &&
      c.defresult !== undefined &&
      isRaise(c.defresult)
    )
      return
  }
  throw new Fail(key, `${what} "${key}": the value of tenant column "${col}" is neither the tenant constant nor the tenant guard`)
}

/** SET targets (UPDATE, ON CONFLICT DO UPDATE, MERGE UPDATE) assigning the tenant column. */
export function setTargets(vs: VerifyState, targets: N[] | undefined, key: string, col: string, what: string): void {
  for (const t of targets ?? []) {
    const r = t?.ResTarget
    if (!r || r.name !== col) continue
    if (r.indirection) throw new Fail(key, `${what} "${key}": tenant column "${col}" assigned through a subscript or field`)
    const v = r.val
    if (v?.MultiAssignRef) {
      const src = v.MultiAssignRef.source
      const row = src?.RowExpr
      if (!row || nodeType(src) !== 'RowExpr') throw new Fail(key, `${what} "${key}": tenant column "${col}" assigned from a sub-SELECT`)
      tenantValue(vs, row.args?.[v.MultiAssignRef.colno - 1], key, col, what)
    } else tenantValue(vs, v, key, col, what)
  }
}
