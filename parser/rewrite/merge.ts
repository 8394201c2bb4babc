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
import { columnRefNames, field, rangeName, type MergeStmt, type MergeWhenClause, type Node, type RangeVar } from './nodes.js'

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
  const source = sourceRanges(cx, m.sourceRelation!, scope)
  const ranges: RangeInfo[] = [targetRange(cx, rv, r), ...source.ranges]
  atLevel(cx, ranges, () => {
    cx.walk.expr(m.joinCondition, scope)
    if (guarding(cx)) guardConjuncts(cx, m.joinCondition!, ...mergeOnExtent(cx, m))
  })
  if (r.kind === 'tenant') restrictTarget(cx, m, rv, r, sameTypeSource(cx, r, source.tenant))
  for (const w of whenClauses(m)) cx.walk.expr([w.condition, w.targetList, w.values], scope)
  cx.walk.expr(m.returningClause, scope)
}

/** The source's tenant column, when the source is a tenant table pgtenant made a filtered derived table of. */
interface SourceTenant {
  key: string
  /** its alias (or table name) and tenant column, as a column reference in the WHEN clauses names them */
  name: string
  col: string
}

/**
 * The source: a tenant table becomes a filtered derived table (its rows must not even be seen as
 * unmatched). Not nullable: the ON sees raw source rows (only the target is NULL-extended, for NOT
 * MATCHED), so its guard is the strict restriction, as the verifier requires; `c IS NULL` there would
 * admit rows of no tenant.
 */
function sourceRanges(cx: RewriteState, src: Node, scope: Scope | null): { ranges: RangeInfo[]; tenant: SourceTenant | null } {
  const srv = field(src, 'RangeVar')
  if (srv) {
    const sr = resolve(cx, srv, scope, false)
    if (sr.kind !== 'tenant') return { ranges: [plainRange(rangeName(srv), sr.kind !== 'cte')], tenant: null }
    deriveTable(cx, srv, sr.col!)
    const tenant = srv.alias?.colnames ? null : { key: sr.key, name: rangeName(srv), col: sr.col! }
    return { ranges: [tenantRange(cx, srv, sr, false)], tenant }
  }
  const pl = new Placement()
  fromItem(cx, src, scope, pl, null, true)
  if (!pl.empty()) throw unsupported('MERGE with a join as source is not supported for tenant tables')
  return { ranges: pl.ranges, tenant: null }
}

/**
 * The source's tenant column when its type is the target's (then every source row holds exactly the
 * tenant's value in the target's type): WHEN NOT MATCHED THEN INSERT writes it into the target's tenant
 * column instead of the constant. Same rows on PostgreSQL; Citus accepts a MERGE INSERT only when the
 * distribution column is given the joined source's column (parser/verify/dml.ts accepts it).
 */
function sameTypeSource(cx: RewriteState, target: Resolved, src: SourceTenant | null): SourceTenant | null {
  const types = cx.ctx.facts.tenantColumnTypes
  const tt = types?.get(target.key)
  return src && tt !== undefined && types!.get(src.key) === tt ? src : null
}

/** Restrict a tenant target in the ON condition, and its UPDATE / INSERT actions. */
function restrictTarget(cx: RewriteState, m: MergeStmt, rv: RangeVar, r: Resolved, src: SourceTenant | null): void {
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
    else if (w.commandType === 'CMD_INSERT') mergeInsert(cx, w, key, col, src)
  }
}

/** WHEN NOT MATCHED THEN INSERT (cols) VALUES (…): the tenant column added (the source's, else the constant), or its value guarded. */
function mergeInsert(cx: RewriteState, w: MergeWhenClause, key: string, col: string, src: SourceTenant | null): void {
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
    cx.insert(t[vl.close - 1].e, src ? [`, ${quoteIdent(src.name)}.${quoteIdent(src.col)}`] : [', ', TENANT])
  } else if (!(src && isSourceTenantColumn(w.values[idx], src)))
    tenantValue(cx, w.values[idx], vl.items[idx][0], vl.items[idx][1], key, col, 'MERGE INSERT into')
}

/** `<source>.<its tenant column>`: the tenant's own value, no guard needed. */
function isSourceTenantColumn(v: Node, src: SourceTenant): boolean {
  const names = columnRefNames(v)
  return names.length === 2 && names[0] === src.name && names[1] === src.col
}
