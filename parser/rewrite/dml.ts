// UPDATE and DELETE: the target restricted in the WHERE (with the FROM / USING items placed like a
// SELECT's), SET of the tenant column guarded, conditions ordered behind the restrictions.
// WHERE CURRENT OF takes no other condition: see currentOfUpdate.
import { quoteIdent } from '../quote.js'
import { unlocatable, unsupported } from './refuse.js'
import type { RewriteState, Scope } from './state.js'
import { resolve, withScope, type Resolved } from './names.js'
import { Placement, applyPlacement, fromItem, tenantPredicate } from './placement.js'
import { atLevel, guardDml, targetRange } from './order-guard.js'
import { scanDml } from './clauses.js'
import { guard, setTargets, typeOf } from './tenant-value.js'
import { field, nodeKind, rangeName, type DeleteStmt, type Node, type UpdateStmt } from './nodes.js'

function isCurrentOf(where: Node | undefined): boolean {
  return !!where && nodeKind(where) === 'CurrentOfExpr'
}

export function walkUpdate(cx: RewriteState, up: UpdateStmt, scope: Scope | null): void {
  scope = withScope(cx, up.withClause, scope)
  const rv = up.relation!
  const r = resolve(cx, rv, null, true)
  const pl = new Placement()
  const relTok = cx.tokAt(cx.c(rv.location!))
  if (r.kind === 'tenant') {
    pl.where.push(tenantPredicate(rangeName(rv), r.col!))
    // `SET <col> = <col>` keeps the row's own tenant (the row is restricted to the tenant) and needs no guard, which
    // Citus refuses as changing the distribution column; under WHERE CURRENT OF the assignment is the row's check
    const own = isCurrentOf(up.whereClause) ? null : 'column'
    setTargets(cx, up.targetList ?? [], r.key, r.col!, new Set(['from', 'where', 'returning']), 'UPDATE of', own)
  }
  pl.ranges.push(targetRange(cx, rv, r))
  atLevel(cx, pl.ranges, () => {
    for (const item of up.fromClause ?? []) fromItem(cx, item, scope, pl, null, false)
    cx.walk.expr([up.targetList, up.whereClause, up.returningClause], scope)
    guardDml(cx, pl.joins, pl.rawIn, up.whereClause, relTok)
  })
  if (r.kind === 'tenant' && isCurrentOf(up.whereClause)) return currentOfUpdate(cx, up, r, relTok)
  if (!pl.empty()) applyPlacement(cx, pl, relTok, up.whereClause, true)
}

/**
 * UPDATE … WHERE CURRENT OF cannot take another condition: the cursor's own query was restricted, and
 * as a second line (a WITH HOLD cursor may outlive a tenant change) the row's tenant column is
 * re-assigned through the guard, which fails for another tenant's row.
 */
function currentOfUpdate(cx: RewriteState, up: UpdateStmt, r: Resolved, relTok: number): void {
  if (up.fromClause) throw unsupported(`UPDATE of tenant table "${r.key}" … FROM … WHERE CURRENT OF is not supported`)
  const col = r.col!
  if ((up.targetList ?? []).some((x) => field(x, 'ResTarget')?.name === col)) return
  const sc = scanDml(cx, relTok)
  if (sc.where < 1) throw unlocatable('locate WHERE CURRENT OF')
  const type = typeOf(cx, r.key)
  const qcol = quoteIdent(col)
  cx.insert(cx.toks[sc.where - 1].e, [`, ${qcol} = `, ...guard(qcol, type, col)])
}

export function walkDelete(cx: RewriteState, del: DeleteStmt, scope: Scope | null): void {
  scope = withScope(cx, del.withClause, scope)
  const rv = del.relation!
  const r = resolve(cx, rv, null, true)
  const pl = new Placement()
  const relTok = cx.tokAt(cx.c(rv.location!))
  if (r.kind === 'tenant') pl.where.push(tenantPredicate(rangeName(rv), r.col!))
  if (r.kind === 'tenant' && isCurrentOf(del.whereClause))
    throw unsupported(`DELETE from tenant table "${r.key}" … WHERE CURRENT OF is not supported: delete by key`)
  pl.ranges.push(targetRange(cx, rv, r))
  atLevel(cx, pl.ranges, () => {
    for (const item of del.usingClause ?? []) fromItem(cx, item, scope, pl, null, false)
    cx.walk.expr([del.whereClause, del.returningClause], scope)
    guardDml(cx, pl.joins, pl.rawIn, del.whereClause, relTok)
  })
  if (!pl.empty()) applyPlacement(cx, pl, relTok, del.whereClause, true)
}
