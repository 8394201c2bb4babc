// Evaluation order (issue #22; the pure parts are in parser/order.ts): every conjunct of a WHERE / ON /
// HAVING that is not leakproof-safe is put behind the tenant restriction of the ranges it references
// (`CASE WHEN <restriction> THEN (<conjunct>) END`), and a sub-select that reads tenant rows is fenced
// with OFFSET 0 so the planner cannot push an outer condition into it.
import { T_PUNCT, T_WORD } from '../scan.js'
import { quoteIdent } from '../quote.js'
import { conjunctFacts, type RangeInfo } from '../order.js'
import { Refuse, unlocatable } from './refuse.js'
import type { RewriteState } from './state.js'
import { TENANT, type Part } from './template.js'
import type { Resolved } from './names.js'
import { onExtent, whereExtent } from './clauses.js'
import { field, nodeKind, rangeName, relationColumns, type JoinExpr, type Node, type RangeVar, type SelectStmt } from './nodes.js'

/** Is there a tenant range in scope whose conditions need ordering? */
export function guarding(cx: RewriteState): boolean {
  return cx.tenantMode && cx.levels.some((l) => l.some((r) => r.tenant))
}

/** Runs `f` with `ranges` as the innermost query level. */
export function atLevel<T>(cx: RewriteState, ranges: RangeInfo[], f: () => T): T {
  cx.levels.push(ranges)
  try {
    return f()
  } finally {
    cx.levels.pop()
  }
}

interface Segment {
  s: number
  e: number
  args: Node[]
}

/** Token ranges of the conjuncts of `expr` (tokens a..b), each with the AND arguments it holds. */
function conjuncts(cx: RewriteState, expr: Node, a: number, b: number): Segment[] {
  const t = cx.toks
  const and = field(expr, 'BoolExpr')
  const args = and?.boolop === 'AND_EXPR' ? and.args! : [expr]
  const d = t[a].d
  const segs: Segment[] = []
  let start = a
  for (let i = a; i <= b + 1; i++) {
    if (i <= b && !(t[i].d === d && t[i].k === T_WORD && t[i].w === 'and' && cx.kw(i))) continue
    segs.push({ s: start, e: i - 1, args: [] })
    start = i + 1
  }
  for (const arg of args) {
    const loc = cx.minLoc(arg)
    let k = segs.length - 1
    while (k > 0 && t[segs[k].s].s > loc) k--
    segs[k].args.push(arg)
  }
  // a segment that starts no argument continues the one before it (BETWEEN x AND y)
  const merged: Segment[] = []
  for (const sg of segs) {
    if (sg.args.length === 0 && merged.length) merged[merged.length - 1].e = sg.e
    else merged.push(sg)
  }
  return merged
}

/**
 * Put every top-level conjunct of `expr` (tokens a..b) that is not leakproof-safe behind the tenant
 * restriction of the ranges it references: `CASE WHEN <restrictions> THEN (<conjunct>) END`.
 * Conjuncts are the text between ANDs at the expression's own depth; an AND that starts no argument of
 * the tree's AND (BETWEEN … AND …) does not split.
 */
export function guardConjuncts(cx: RewriteState, expr: Node, a: number, b: number, having = false, raw?: ReadonlySet<RangeInfo>): void {
  const t = cx.toks
  const columnsOf = (rv: RangeVar) => relationColumns(cx.ctx, rv)
  for (const sg of conjuncts(cx, expr, a, b)) {
    if (sg.e < sg.s || sg.args.length === 0) throw unlocatable('split a condition into its conjuncts')
    let safe = true
    const refs = new Set<RangeInfo>()
    for (const arg of sg.args) {
      const f = conjunctFacts(arg, cx.levels, columnsOf, cx.ctx.facts.functionPolicy?.shadowed)
      if (!f.safe) safe = false
      f.refs.forEach((r) => refs.add(r))
    }
    if (safe) continue
    const guard = guardOf(refs, raw)
    if (!guard.length) continue
    const when: Part[] = having ? ['coalesce(bool_and(', ...guard, '), true)'] : guard
    cx.insert(t[sg.s].s, ['CASE WHEN ', ...when, ' THEN ('], 1)
    cx.insert(t[sg.e].e, [') END'], -1)
  }
}

/**
 * The restriction of the tenant ranges in `refs`, NULL-extended rows admitted for nullable ones, except
 * those in `raw` (an ON's own ranges no inner join NULL-extends: there `c IS NULL` would admit rows of no tenant).
 */
function guardOf(refs: Set<RangeInfo>, raw?: ReadonlySet<RangeInfo>): Part[] {
  const out: Part[] = []
  for (const r of refs) {
    if (!r.tenant) continue
    if (r.tenantRef === null)
      throw new Refuse(
        'unsupported',
        '0A000',
        `pgtenant cannot order a condition behind the tenant restriction of "${r.name}" (a column alias list hides its tenant column)`,
      )
    if (out.length) out.push(' AND ')
    if (r.nullable && !raw?.has(r)) out.push(`(${r.tenantRef} = `, TENANT, ` OR ${r.tenantRef} IS NULL)`)
    else out.push(`${r.tenantRef} = `, TENANT)
  }
  return out
}

/** Guards the ON conditions of a level's joins. */
export function guardJoins(cx: RewriteState, joins: JoinExpr[], rawIn: ReadonlyMap<JoinExpr, ReadonlySet<RangeInfo>>): void {
  for (const join of joins) guardConjuncts(cx, join.quals!, ...onExtent(cx, join), false, rawIn.get(join))
}

/** Evaluation order for an UPDATE/DELETE: its joins' ON and its WHERE. */
export function guardDml(
  cx: RewriteState,
  joins: JoinExpr[],
  rawIn: ReadonlyMap<JoinExpr, ReadonlySet<RangeInfo>>,
  where: Node | undefined,
  relTok: number,
): void {
  if (!guarding(cx)) return
  guardJoins(cx, joins, rawIn)
  if (where && nodeKind(where) !== 'CurrentOfExpr') guardConjuncts(cx, where, ...whereExtent(cx, relTok, true))
}

/**
 * End a sub-select (derived table, CTE, IN/ANY sub-select) that reads tenant rows with OFFSET 0: the
 * planner then neither pulls it up nor pushes an outer condition into it, so an outer condition on
 * its columns (which may be expressions over another tenant's rows) runs after its own restriction.
 */
export function fenceSubselect(cx: RewriteState, sel: SelectStmt): void {
  if (!cx.tenantMode || sel.limitCount || sel.limitOffset || sel.valuesLists) return
  const t = cx.toks
  const first = cx.tokAt(cx.minLoc(sel))
  const last = cx.tokAt(cx.maxLoc(sel))
  // the innermost parenthesis around the whole sub-select
  let depth = t[first].d
  for (let k = first - 1; k >= 0 && depth > 0; k--) {
    if (t[k].k !== T_PUNCT || t[k].w !== '(' || t[k].d !== depth - 1) continue
    depth--
    const { close } = cx.parenList(k)
    if (close > last) {
      cx.insert(t[close - 1].e, [' OFFSET 0'], 5)
      return
    }
  }
  throw unlocatable('locate the end of a sub-select')
}

/** The guard's view of a tenant range: its tenant column as the range exposes it (renamed by a column alias list). */
export function tenantRange(cx: RewriteState, rv: RangeVar, r: Resolved, nullable: boolean): RangeInfo {
  const name = rangeName(rv)
  const cols = cx.ctx.facts.columns?.get(r.key) ?? null
  let col: string | null = r.col!
  const aliases = rv.alias?.colnames
  if (aliases) {
    const i = cols ? cols.indexOf(col) : -1
    col = i < 0 ? null : i < aliases.length ? (field(aliases[i], 'String')?.sval ?? null) : col
  }
  return {
    name,
    tenant: true,
    table: true,
    tenantRef: col === null ? null : `${quoteIdent(name)}.${quoteIdent(col)}`,
    nullable,
    columns: aliases ? null : cols,
  }
}

/** The range of an UPDATE/DELETE/MERGE target. */
export function targetRange(cx: RewriteState, rv: RangeVar, r: Resolved): RangeInfo {
  if (r.kind === 'tenant') return tenantRange(cx, rv, r, false)
  return { name: rangeName(rv), tenant: false, table: true, tenantRef: null, nullable: false, columns: cx.ctx.facts.columns?.get(r.key) ?? null }
}

/** A FROM item the guard sees but never restricts (sub-select, function, CTE, join alias). */
export function plainRange(name: string, table = false, columns: readonly string[] | null = null): RangeInfo {
  return { name, tenant: false, table, tenantRef: null, nullable: false, columns }
}
