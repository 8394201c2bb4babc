// SELECT (set operations, VALUES, one query level with its FROM list) and the ON conditions of a
// level's joins.
import { Level, type N, type Scope, type VerifyState } from './state.js'
import { conjuncts, nodeType } from './nodes.js'
import { withScope } from './names.js'
import { fromItem } from './from.js'
import { levelRestrictions } from './restriction.js'
import { order } from './order-check.js'
import { exprs } from './walk.js'

export function select(vs: VerifyState, sel: N, scope: Scope | null, outer: Level | null): void {
  scope = withScope(vs, sel.withClause, scope, outer)
  if (sel.op && sel.op !== 'SETOP_NONE') {
    select(vs, sel.larg, scope, outer)
    select(vs, sel.rarg, scope, outer)
    exprs(vs, [sel.sortClause, sel.limitCount, sel.limitOffset], scope, outer)
    return
  }
  if (sel.valuesLists) {
    exprs(vs, [sel.valuesLists, sel.sortClause, sel.limitCount, sel.limitOffset], scope, outer)
    return
  }
  const level = new Level(outer)
  const from: N[] = sel.fromClause ?? []
  level.bare = from.length === 1 && nodeType(from[0]) === 'RangeVar'
  for (const item of from) fromItem(vs, item, level, scope, [], [], false, false, 'where')
  const where = sel.whereClause ? conjuncts(sel.whereClause) : []
  levelRestrictions(vs, level, where, 'its WHERE', null)
  joinQuals(vs, from, scope, level)
  exprs(
    vs,
    [sel.targetList, sel.whereClause, sel.groupClause, sel.havingClause, sel.windowClause, sel.sortClause, sel.limitCount, sel.limitOffset, sel.distinctClause],
    scope,
    level,
  )
  if (vs.checkOrder && sel.whereClause) order(vs, where, level.ranges, level, null)
}

/** Outer joins' and inner joins' ON conditions of a level: their sub-queries and evaluation order. */
export function joinQuals(vs: VerifyState, from: N[], scope: Scope | null, level: Level): void {
  const visit = (item: N) => {
    const j = item?.JoinExpr
    if (!j || nodeType(item) !== 'JoinExpr') return
    visit(j.larg)
    visit(j.rarg)
    if (j.quals) {
      exprs(vs, j.quals, scope, level)
      if (vs.checkOrder)
        order(
          vs,
          conjuncts(j.quals),
          level.ranges.filter((r) => r.joinPath.includes(j)),
          level,
          j,
        )
    }
  }
  for (const f of from) visit(f)
}
