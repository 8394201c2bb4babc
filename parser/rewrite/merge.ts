// MERGE: the target is restricted in the ON condition (another tenant's row then counts as NOT
// MATCHED, as on a database holding only this tenant's rows); a tenant source becomes a filtered
// derived table; UPDATE SET / INSERT values of the tenant column are guarded or added.
import { T_PUNCT } from '../scan.js'
import { quoteIdent } from '../quote.js'
import type { RangeInfo } from '../order.js'
import { unsupported } from './refuse.js'
import type { RewriteState, Scope } from './state.js'
import { TENANT } from './template.js'
import { resolve, withScope, type Resolved } from './names.js'
import { Placement, deriveTable, fromItem } from './placement.js'
import { atLevel, guardConjuncts, guarding, plainRange, targetRange, tenantRange } from './order-guard.js'
import { mergeOnExtent } from './clauses.js'
import { setTargets, tenantValue } from './tenant-value.js'
import { field, rangeName, type MergeStmt, type MergeWhenClause, type Node, type RangeVar } from './nodes.js'

function whenClauses(m: MergeStmt): MergeWhenClause[] {
  return (m.mergeWhenClauses ?? []).map((wc) => field(wc, 'MergeWhenClause')!)
}

export function walkMerge(cx: RewriteState, m: MergeStmt, scope: Scope | null): void {
  scope = withScope(cx, m.withClause, scope)
  const rv = m.relation!
  const r = resolve(cx, rv, null, true)
  for (const w of whenClauses(m))
    if (w.matchKind === 'MERGE_WHEN_NOT_MATCHED_BY_SOURCE' && r.kind === 'tenant')
      throw unsupported(`MERGE into tenant table "${r.key}" with WHEN NOT MATCHED BY SOURCE is not supported`)
  const ranges: RangeInfo[] = [targetRange(cx, rv, r), ...sourceRanges(cx, m.sourceRelation!, scope)]
  atLevel(cx, ranges, () => {
    cx.walk.expr(m.joinCondition, scope)
    if (guarding(cx)) guardConjuncts(cx, m.joinCondition!, ...mergeOnExtent(cx, m))
  })
  if (r.kind === 'tenant') restrictTarget(cx, m, rv, r)
  for (const w of whenClauses(m)) cx.walk.expr([w.condition, w.targetList, w.values], scope)
  cx.walk.expr(m.returningClause, scope)
}

/** The source: a tenant table becomes a filtered derived table (its rows must not even be seen as unmatched). */
function sourceRanges(cx: RewriteState, src: Node, scope: Scope | null): RangeInfo[] {
  const srv = field(src, 'RangeVar')
  if (srv) {
    const sr = resolve(cx, srv, scope, false)
    if (sr.kind !== 'tenant') return [plainRange(rangeName(srv), sr.kind !== 'cte')]
    deriveTable(cx, srv, sr.col!)
    return [tenantRange(cx, srv, sr, true)]
  }
  const pl = new Placement()
  fromItem(cx, src, scope, pl, null, true)
  if (!pl.empty()) throw unsupported('MERGE with a join as source is not supported for tenant tables')
  return pl.ranges
}

/** Restrict a tenant target in the ON condition, and its UPDATE / INSERT actions. */
function restrictTarget(cx: RewriteState, m: MergeStmt, rv: RangeVar, r: Resolved): void {
  const t = cx.toks
  const key = r.key
  const col = r.col!
  const qcol = quoteIdent(col)
  const qual = quoteIdent(rangeName(rv))
  const [a, b] = mergeOnExtent(cx, m)
  cx.insert(t[a].s, ['('])
  cx.insert(t[b].e, [`) AND ${qual}.${qcol} = `, TENANT])
  for (const w of whenClauses(m)) {
    if (w.commandType === 'CMD_UPDATE') setTargets(cx, w.targetList ?? [], key, col, new Set(['when', 'returning']), 'MERGE UPDATE of', 'column')
    else if (w.commandType === 'CMD_INSERT') mergeInsert(cx, w, key, col)
  }
}

/** WHEN NOT MATCHED THEN INSERT (cols) VALUES (…): the tenant column added, or its value guarded. */
function mergeInsert(cx: RewriteState, w: MergeWhenClause, key: string, col: string): void {
  const t = cx.toks
  const targets = w.targetList
  if (!targets) throw unsupported(`MERGE … INSERT into tenant table "${key}" needs a column list`)
  const cols = targets.map((x) => field(x, 'ResTarget')!.name!)
  const idx = cols.indexOf(col)
  const cl = cx.parenList(cx.tokAt(cx.c(field(targets[0], 'ResTarget')!.location!)) - 1)
  if (!w.values) throw unsupported(`MERGE … INSERT DEFAULT VALUES into tenant table "${key}" is not supported`)
  let vo = cl.close + 1
  while (vo < t.length && !(t[vo].w === '(' && t[vo].k === T_PUNCT)) vo++
  const vl = cx.parenList(vo)
  if (idx < 0) {
    cx.insert(t[cl.close - 1].e, [`, ${quoteIdent(col)}`])
    cx.insert(t[vl.close - 1].e, [', ', TENANT])
  } else tenantValue(cx, w.values[idx], vl.items[idx][0], vl.items[idx][1], key, col, 'MERGE INSERT into')
}
