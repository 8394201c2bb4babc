// The tenant constant and the values written into a tenant column (INSERT, UPDATE SET, ON CONFLICT
// DO UPDATE SET, MERGE): T, T::<column type>, the execution-time guard
// `CASE WHEN (<e>)::<type> = T THEN T::<type> ELSE <failing cast of NULLIF((<e>)::<type>, T::<type>)> END`
// (parser/rewrite/tenant-value.ts, guard), and in ON CONFLICT DO UPDATE SET the column's own value.
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

/**
 * The ELSE of the guard: a cast chain containing `(<v>::text || '<not a number>')::int4`, which can
 * only fail or give NULL. <v> is `NULLIF((<e>)::<type>, T::<type>)`: NULL for the tenant's own value,
 * so that the branch is harmless when evaluated on its own, as Citus does.
 */
function isRaise(vs: VerifyState, n: N, key: string): boolean {
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
      return typeof s === 'string' && /[^\s0-9+-]/.test(s) && isRaised(vs, a.lexpr, key)
    }
    n = tc.arg
  }
  return false
}

/** The value the ELSE of the guard turns into an error: `(NULLIF((<e>)::<type>, T::<type>))::text`. */
function isRaised(vs: VerifyState, n: N, key: string): boolean {
  const tc = n?.TypeCast
  if (!tc || nodeType(n) !== 'TypeCast' || strings(tc.typeName?.names ?? [])?.join('.') !== 'text' || tc.typeName.arrayBounds) return false
  const v = tc.arg
  const tk = columnTypeKey(vs, key)
  const ni = v?.A_Expr
  return !!ni && nodeType(v) === 'A_Expr' && ni.kind === 'AEXPR_NULLIF' && isTypedTo(ni.lexpr, tk) && isTypedTenant(vs, ni.rexpr, key)
}

function isTypedTo(n: N, tk: string): boolean {
  return nodeType(n) === 'TypeCast' && typeKey(n.TypeCast.typeName) === tk
}

/**
 * A value written into a tenant column: T, T::<type> or the execution-time guard
 * `CASE WHEN (<e>)::<type> = T THEN T::<type> ELSE <raise of NULLIF((<e>)::<type>, T::<type>)> END`
 * (parser/rewrite/tenant-value.ts, guard), the one form the rewriter writes.
 */
export function tenantValue(vs: VerifyState, n: N, key: string, col: string, what: string): void {
  if (isTenantConst(vs, n) || isTypedTenant(vs, n, key)) return
  const c = n?.CaseExpr
  if (c && nodeType(n) === 'CaseExpr') {
    const tk = columnTypeKey(vs, key)
    const args: N[] = c.args ?? []
    const w = args[0]?.CaseWhen
    // the guard: WHEN (<e>)::<type> = T (a simple CASE `CASE <e> WHEN T` is not it: Citus mis-evaluates it)
    const eq = w?.expr?.A_Expr
    if (
      args.length === 1 &&
      w &&
      c.arg === undefined &&
      isTypedTenant(vs, w.result, key) &&
      c.defresult !== undefined &&
      eq &&
      nodeType(w.expr) === 'A_Expr' &&
      eq.kind === 'AEXPR_OP' &&
      isOp(eq.name, '=') &&
      isTypedTo(eq.lexpr, tk) &&
      isTenantConst(vs, eq.rexpr) &&
      isRaise(vs, c.defresult, key)
    )
      return
  }
  throw new Fail(key, `${what} "${key}": the value of tenant column "${col}" is neither the tenant constant nor the tenant guard`)
}

/** `what` of the ON CONFLICT DO UPDATE SET list (parser/verify/dml.ts). */
const ON_CONFLICT = 'INSERT … ON CONFLICT DO UPDATE of'

/**
 * The tenant column's own value, which needs no guard (parser/rewrite/tenant-value.ts, isOwnValue):
 * 'excluded' (ON CONFLICT DO UPDATE SET): EXCLUDED.<col>, the proposed row, whose tenant value the
 * INSERT part sets and is verified; 'column': the bare <col> of a target whose rows are restricted
 * (never for UPDATE … WHERE CURRENT OF).
 */
export type OwnValue = 'excluded' | 'column' | null

function isOwnValue(n: N, col: string, own: OwnValue): boolean {
  if (!own || nodeType(n) !== 'ColumnRef') return false
  const names = strings(n.ColumnRef.fields ?? [])
  if (!names) return false
  if (own === 'column') return names.length === 1 && names[0] === col
  return names.length === 2 && names[0] === 'excluded' && names[1] === col
}

/**
 * SET targets (UPDATE, ON CONFLICT DO UPDATE, MERGE UPDATE) assigning the tenant column: the tenant,
 * the guard, or the column's own value where `own` says so (default: EXCLUDED.<col> in ON CONFLICT).
 */
export function setTargets(
  vs: VerifyState,
  targets: N[] | undefined,
  key: string,
  col: string,
  what: string,
  own: OwnValue = what === ON_CONFLICT ? 'excluded' : null,
): void {
  for (const t of targets ?? []) {
    const r = t?.ResTarget
    if (!r || r.name !== col) continue
    if (r.indirection) throw new Fail(key, `${what} "${key}": tenant column "${col}" assigned through a subscript or field`)
    const v = r.val
    if (v?.MultiAssignRef) {
      const src = v.MultiAssignRef.source
      const row = src?.RowExpr
      if (!row || nodeType(src) !== 'RowExpr') throw new Fail(key, `${what} "${key}": tenant column "${col}" assigned from a sub-SELECT`)
      const x = row.args?.[v.MultiAssignRef.colno - 1]
      if (!isOwnValue(x, col, own)) tenantValue(vs, x, key, col, what)
    } else if (!isOwnValue(v, col, own)) tenantValue(vs, v, key, col, what)
  }
}
