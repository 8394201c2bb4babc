// The tenant restriction `q.c = T` (and `(q.c = T OR q.c IS NULL)` in a guard), and the check that
// every tenant range of a query level has one where it must: among the top-level conjuncts of the
// level's WHERE, or of the ON of the outer join that makes it nullable.
import { Fail, type Level, type N, type Range, type VerifyState } from './state.js'
import { conjuncts, isOp, nodeType, strings } from './nodes.js'
import { isTenantConst } from './tenant-value.js'

/** Does column reference `ref` name range r's tenant column? `bare`: an unqualified `c` counts. */
function refersTo(ref: N, r: Range, bare: boolean): boolean {
  if (nodeType(ref) !== 'ColumnRef') return false
  const f = strings(ref.ColumnRef.fields ?? [])
  if (!f || f[f.length - 1] !== r.col) return false
  if (f.length === 1) return bare
  if (f.length === 2) return f[0] === r.ref
  if (f.length === 3) return r.schema !== null && f[0] === r.schema && f[1] === r.ref
  return false
}

/** `q.c = T` (either side) for range r. */
export function isRestriction(vs: VerifyState, n: N, r: Range, bare = false): boolean {
  const a = n?.A_Expr
  if (!a || nodeType(n) !== 'A_Expr' || a.kind !== 'AEXPR_OP' || !isOp(a.name, '=')) return false
  return (refersTo(a.lexpr, r, bare) && isTenantConst(vs, a.rexpr)) || (refersTo(a.rexpr, r, bare) && isTenantConst(vs, a.lexpr))
}

/** `(q.c = T OR q.c IS NULL)` for range r. */
export function isNullableRestriction(vs: VerifyState, n: N, r: Range): boolean {
  const b = n?.BoolExpr
  if (!b || nodeType(n) !== 'BoolExpr' || b.boolop !== 'OR_EXPR' || b.args?.length !== 2) return false
  const [x, y] = b.args
  const nt = (z: N) => nodeType(z) === 'NullTest' && z.NullTest.nulltesttype === 'IS_NULL' && refersTo(z.NullTest.arg, r, false)
  return (isRestriction(vs, x, r) && nt(y)) || (isRestriction(vs, y, r) && nt(x))
}

function requireRestriction(vs: VerifyState, conj: N[], r: Range, bare: boolean, where: string): void {
  if (!conj.some((c) => isRestriction(vs, c, r, bare)))
    throw new Fail(r.key, `tenant table "${r.key}" (as "${r.ref}") has no tenant restriction among the top-level conditions of ${where}`)
}

/** Restrictions of a level's ranges; `where`: the conjuncts of the WHERE (null: the level has no WHERE to hold them). */
export function levelRestrictions(vs: VerifyState, level: Level, where: N[] | null, whereName: string, skipTarget: Range | null): void {
  const bare = level.bare && level.ranges.length === 1
  for (const r of level.ranges) {
    if (r.derived || r === skipTarget) continue
    if (r.place === 'derive')
      throw new Fail(
        r.key,
        `tenant table "${r.key}" (as "${r.ref}") is in a position (FULL JOIN, USING/NATURAL outer join, aliased join, column alias list, MERGE source) where only a filtered derived table restricts it`,
      )
    if (r.place === 'where') {
      if (!where) throw new Fail(r.key, `tenant table "${r.key}" (as "${r.ref}") has no WHERE to restrict it`)
      requireRestriction(vs, where, r, bare, whereName)
    } else requireRestriction(vs, conjuncts(r.place.quals), r, false, "its outer join's ON condition")
  }
}
