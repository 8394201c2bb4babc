// SELECT: one query level — its WITH, its FROM items placed (placement.ts), its expressions walked,
// the restrictions applied to its WHERE / ON, and its conditions ordered behind them (order-guard.ts).
// Set operations and VALUES walk their parts.
import { Refuse, unlocatable } from './refuse.js'
import type { RewriteState, Scope } from './state.js'
import { withScope } from './names.js'
import { Placement, applyPlacement, fromItem } from './placement.js'
import { atLevel, guardConjuncts, guardJoins, guarding } from './order-guard.js'
import { havingExtent, selectAnchor, whereExtent } from './clauses.js'
import { field, type SelectStmt } from './nodes.js'

export function walkSelect(cx: RewriteState, sel: SelectStmt, scope: Scope | null): void {
  scope = withScope(cx, sel.withClause, scope)
  if (sel.intoClause) throw new Refuse('statement_policy', '42501', 'SELECT … INTO creates a table: DDL is not allowed for tenant sessions')
  if (sel.op && sel.op !== 'SETOP_NONE') {
    walkSelect(cx, sel.larg!, scope)
    walkSelect(cx, sel.rarg!, scope)
    cx.walk.expr([sel.sortClause, sel.limitCount, sel.limitOffset], scope)
    return
  }
  if (sel.valuesLists) {
    cx.walk.expr(sel.valuesLists, scope)
    cx.walk.expr([sel.sortClause, sel.limitCount, sel.limitOffset], scope)
    return
  }
  const pl = new Placement()
  atLevel(cx, pl.ranges, () => {
    for (const item of sel.fromClause ?? []) fromItem(cx, item, scope, pl, null, false)
    cx.walk.expr(
      [
        sel.targetList,
        sel.whereClause,
        sel.groupClause,
        sel.havingClause,
        sel.windowClause,
        sel.sortClause,
        sel.limitCount,
        sel.limitOffset,
        sel.distinctClause,
      ],
      scope,
    )
    // lockingClause names FROM items: nothing to resolve
    if (!pl.empty()) applyPlacement(cx, pl, restrictionAnchor(cx, sel), sel.whereClause)
    if (guarding(cx)) {
      guardJoins(cx, pl.joins, pl.rawIn)
      if (sel.whereClause) guardConjuncts(cx, sel.whereClause, ...whereExtent(cx, selectAnchor(cx, sel), false))
      // a HAVING conjunct without an aggregate may be moved into WHERE by the planner: its guard holds an aggregate
      if (sel.havingClause) guardConjuncts(cx, sel.havingClause, ...havingExtent(cx, selectAnchor(cx, sel)), true)
    }
  })
}

/** The SELECT's clause-scan anchor (first target, or first FROM item); `TABLE t` becomes `SELECT * FROM t` so a WHERE can follow. */
function restrictionAnchor(cx: RewriteState, sel: SelectStmt): number {
  const tl = sel.targetList ?? []
  const from = sel.fromClause ?? []
  const tloc = tl.length ? field(tl[0], 'ResTarget')?.location : -1
  if (tloc !== undefined && tloc >= 0) return cx.tokAt(cx.c(tloc))
  if (!from.length) throw unlocatable('locate the SELECT clauses')
  const anchor = cx.tokAt(cx.minLoc(from[0]))
  let k = anchor - 1
  while (k >= 0 && (cx.isWord(k, 'only') || cx.toks[k].w === '(')) k--
  if (cx.isWord(k, 'table')) cx.edit(cx.toks[k].s, cx.toks[k].e, ['SELECT * FROM'])
  return anchor
}
