// Where a tenant table's restriction goes (one query level's FROM list; see analyze.ts for the strategy):
//  - not on the nullable side of an outer join: ANDed into the WHERE of the level;
//  - on the nullable side of a LEFT/RIGHT JOIN … ON: ANDed into that join's ON;
//  - anywhere else (FULL JOIN, USING/NATURAL on the nullable side, under an aliased join, a column
//    alias list): the table becomes a derived table `(SELECT * FROM T WHERE c = 'tenant') alias`.
import { T_OP } from '../scan.js'
import { quoteIdent } from '../quote.js'
import type { RangeInfo } from '../order.js'
import { unlocatable, unsupported } from './refuse.js'
import type { RewriteState, Scope } from './state.js'
import { TENANT, type Part } from './template.js'
import { resolve } from './names.js'
import { fenceSubselect, guarding, plainRange, tenantRange } from './order-guard.js'
import { onExtent, scanDml, scanSelect, type ClauseScan } from './clauses.js'
import { field, funcName, nodeKind, payload, rangeName, type JoinExpr, type Node, type RangeVar } from './nodes.js'

/** The restrictions of one query level, and its FROM items for the evaluation-order guard. */
export class Placement {
  where: Part[][] = []
  on = new Map<JoinExpr, Part[][]>()
  /** Every FROM item of the level, for the evaluation-order guard. */
  ranges: RangeInfo[] = []
  /** Joins with an ON condition. */
  joins: JoinExpr[] = []
  /** Ranges an outer join walked so far may NULL-extend. */
  extendable = new Set<RangeInfo>()
  /** Per join with ON: the ranges under it that no join inside it NULL-extends (raw rows in its ON). */
  rawIn = new Map<JoinExpr, Set<RangeInfo>>()
  addOn(join: JoinExpr, pred: Part[]): void {
    const l = this.on.get(join)
    if (l) l.push(pred)
    else this.on.set(join, [pred])
  }
  empty(): boolean {
    return this.where.length === 0 && this.on.size === 0
  }
}

/** `"name"."col" = 'tenant'` for a range named `name`. */
export function tenantPredicate(name: string, col: string): Part[] {
  return [`${quoteIdent(name)}.${quoteIdent(col)} = `, TENANT]
}

/**
 * Place the restrictions of one FROM item. `nullable`: the innermost outer join with an ON whose
 * nullable side holds the item (null = none); `derive`: the item must become a derived table.
 */
export function fromItem(cx: RewriteState, item: Node, scope: Scope | null, pl: Placement, nullable: JoinExpr | null, derive: boolean): void {
  switch (nodeKind(item)) {
    case 'RangeVar':
      return rangeVarItem(cx, field(item, 'RangeVar')!, scope, pl, nullable, derive)
    case 'JoinExpr':
      return joinItem(cx, field(item, 'JoinExpr')!, scope, pl, nullable, derive)
    case 'RangeSubselect': {
      const v = field(item, 'RangeSubselect')!
      const sel = field(v.subquery, 'SelectStmt')!
      const before = cx.tenantRefs
      cx.walk.select(sel, scope)
      if (cx.tenantRefs !== before || guarding(cx)) fenceSubselect(cx, sel)
      pl.ranges.push(plainRange(v.alias?.aliasname ?? ''))
      return
    }
    case 'RangeFunction': {
      const v = field(item, 'RangeFunction')!
      cx.walk.expr(v.functions, scope)
      const fc = field(field(v.functions?.[0], 'List')?.items?.[0], 'FuncCall') ?? {}
      pl.ranges.push(plainRange(v.alias?.aliasname ?? funcName(fc).name))
      return
    }
    case 'RangeTableSample': {
      const v = field(item, 'RangeTableSample')!
      const rv = field(v.relation, 'RangeVar')!
      if (derive || rv.alias?.colnames) {
        const r = resolve(cx, rv, scope, false)
        if (r.kind === 'tenant') throw unsupported(`TABLESAMPLE on tenant table "${r.key}" in this join position is not supported`)
      } else fromItem(cx, v.relation!, scope, pl, nullable, false)
      cx.walk.expr([v.args, v.repeatable], scope)
      return
    }
    default:
      // RangeTableFunc (XMLTABLE), JsonTable: expressions only
      cx.walk.expr(payload(item), scope)
  }
}

function rangeVarItem(cx: RewriteState, v: RangeVar, scope: Scope | null, pl: Placement, nullable: JoinExpr | null, derive: boolean): void {
  const r = resolve(cx, v, scope, false)
  const name = rangeName(v)
  if (r.kind !== 'tenant') {
    pl.ranges.push(plainRange(name, r.kind !== 'cte', r.kind === 'cte' ? null : (cx.ctx.facts.columns?.get(r.key) ?? null)))
    return
  }
  const pred = tenantPredicate(name, r.col!)
  pl.ranges.push(tenantRange(cx, v, r, !!nullable || derive || !!v.alias?.colnames))
  if (derive || v.alias?.colnames) deriveTable(cx, v, r.col!)
  else if (nullable) pl.addOn(nullable, pred)
  else pl.where.push(pred)
}

function joinItem(cx: RewriteState, v: JoinExpr, scope: Scope | null, pl: Placement, nullable: JoinExpr | null, derive: boolean): void {
  cx.walk.expr(v.quals, scope)
  if (v.quals) pl.joins.push(v)
  if (v.alias) pl.ranges.push(plainRange(v.alias.aliasname!))
  const d = derive || !!v.alias
  const jt = v.jointype
  const first = pl.ranges.length
  let extendFrom = pl.ranges.length // ranges from here on are on this join's nullable side(s)
  if (jt === 'JOIN_INNER') {
    fromItem(cx, v.larg!, scope, pl, nullable, d)
    fromItem(cx, v.rarg!, scope, pl, nullable, d)
    extendFrom = pl.ranges.length
  } else if (jt === 'JOIN_LEFT' || jt === 'JOIN_RIGHT') {
    const hasOn = !!v.quals
    const [keep, opt] = jt === 'JOIN_LEFT' ? [v.larg!, v.rarg!] : [v.rarg!, v.larg!]
    fromItem(cx, keep, scope, pl, nullable, d)
    extendFrom = pl.ranges.length
    fromItem(cx, opt, scope, pl, hasOn ? v : nullable, d || !hasOn)
  } else {
    fromItem(cx, v.larg!, scope, pl, nullable, true)
    fromItem(cx, v.rarg!, scope, pl, nullable, true)
  }
  const under = pl.ranges.slice(first)
  // in this join's own ON a range's rows are raw unless a join inside it NULL-extends them
  if (v.quals) pl.rawIn.set(v, new Set(under.filter((r) => !pl.extendable.has(r))))
  for (const r of pl.ranges.slice(extendFrom)) pl.extendable.add(r)
}

/** Replace `[ONLY] name [alias]` by `(SELECT * FROM [ONLY] name WHERE col = 'T') alias`. */
export function deriveTable(cx: RewriteState, rv: RangeVar, col: string): void {
  const t = cx.toks
  const i = cx.tokAt(cx.c(rv.location!))
  let start = i
  let paren = false
  if (cx.isWord(i - 1, 'only')) start = i - 1
  else if (t[i - 1]?.w === '(' && cx.isWord(i - 2, 'only')) {
    start = i - 2
    paren = true
  }
  let j = cx.nameEnd(i)
  if (paren) j++
  if (t[j + 1]?.w === '*' && t[j + 1].k === T_OP) j++
  const alias = rv.alias ? '' : ' ' + quoteIdent(rv.relname!)
  if (!rv.alias && rv.schemaname) cx.derivedQualified.add(`${rv.schemaname}.${rv.relname}`)
  cx.insert(t[start].s, ['(SELECT * FROM '])
  cx.insert(t[j].e, [` WHERE ${quoteIdent(col)} = `, TENANT, ')' + alias])
}

/** Apply a level's restrictions: into the ON of their joins and the WHERE of the query whose clauses start at `anchor`. */
export function applyPlacement(cx: RewriteState, pl: Placement, anchor: number, whereClause: Node | undefined, dml = false): void {
  for (const [join, preds] of pl.on) addToOn(cx, join, preds)
  if (pl.where.length) {
    const sc = dml ? scanDml(cx, anchor) : scanSelect(cx, anchor)
    if (whereClause && nodeKind(whereClause) === 'CurrentOfExpr') return // WHERE CURRENT OF: the cursor's own query was restricted
    addToWhere(cx, sc, pl.where, !!whereClause)
  }
}

/** AND `preds` into the WHERE found by `sc` (parenthesising the client's condition), or add a WHERE. */
export function addToWhere(cx: RewriteState, sc: ClauseScan, preds: Part[][], hasWhere: boolean): void {
  const t = cx.toks
  const stop = sc.after >= 0 ? sc.after : sc.end
  const joined = joinPreds(preds)
  if (sc.where >= 0) {
    if (!hasWhere) throw unlocatable('match the WHERE clause')
    if (sc.where + 1 >= stop) throw unlocatable('locate the WHERE expression')
    cx.insert(t[sc.where + 1].s, ['('])
    cx.insert(t[stop - 1].e, [') AND ', ...joined])
  } else {
    if (hasWhere) throw unlocatable('locate the WHERE keyword')
    cx.insert(t[stop - 1].e, [' WHERE ', ...joined])
  }
}

function addToOn(cx: RewriteState, join: JoinExpr, preds: Part[][]): void {
  const t = cx.toks
  const [a, b] = onExtent(cx, join)
  cx.insert(t[a].s, ['('])
  cx.insert(t[b].e, [') AND ', ...joinPreds(preds)])
}

function joinPreds(preds: Part[][]): Part[] {
  const out: Part[] = []
  preds.forEach((p, i) => {
    if (i) out.push(' AND ')
    out.push(...p)
  })
  return out
}
