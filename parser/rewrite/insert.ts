// INSERT into a tenant table: the tenant column is added (column list + the tenant in every VALUES row,
// the SELECT list, or a wrap around a set operation), or, when the client gives it, every value is
// checked or guarded (tenant-value.ts). DEFAULT VALUES gets the tenant; ON CONFLICT DO UPDATE is
// restricted to the tenant's rows and its SET / WHERE treated like an UPDATE's.
import { T_PUNCT } from '../scan.js'
import { quoteIdent } from '../quote.js'
import { unlocatable, unsupported, Refuse } from './refuse.js'
import type { RewriteState, Scope } from './state.js'
import { TENANT } from './template.js'
import { resolve, withScope, type Resolved } from './names.js'
import { addToWhere, tenantPredicate } from './placement.js'
import { atLevel, guardConjuncts, plainRange, tenantRange } from './order-guard.js'
import { scanSelect, selectListEnd } from './clauses.js'
import { setTargets, tenantValue } from './tenant-value.js'
import { field, rangeName, type InsertStmt, type Node, type OnConflictClause, type RangeVar, type SelectStmt } from './nodes.js'

/** What the INSERT writes to: the target, its tenant column, and the token after `name [AS alias]`. */
interface Target {
  rv: RangeVar
  r: Resolved
  key: string
  col: string
  /** last token of the relation name (and its alias) */
  j: number
}

export function walkInsert(cx: RewriteState, ins: InsertStmt, scope: Scope | null): void {
  scope = withScope(cx, ins.withClause, scope)
  const rv = ins.relation!
  const r = resolve(cx, rv, null, true)
  const sel = field(ins.selectStmt, 'SelectStmt')
  // the SELECT first: its edits then come before ours at the same position (a wrap closes after them)
  if (sel) cx.walk.select(sel, scope)
  if (r.kind === 'tenant') insertTenant(cx, ins, rv, r, sel)
  const oc = ins.onConflictClause
  if (oc) cx.walk.expr([oc.infer, oc.targetList, oc.whereClause], scope)
  cx.walk.expr(ins.returningClause, scope)
}

function insertTenant(cx: RewriteState, ins: InsertStmt, rv: RangeVar, r: Resolved, sel: SelectStmt | undefined): void {
  let j = cx.nameEnd(cx.tokAt(cx.c(rv.location!)))
  if (cx.isWord(j + 1, 'as')) j += 2
  const tg: Target = { rv, r, key: r.key, col: r.col!, j }
  for (const x of ins.cols ?? []) {
    const rt = field(x, 'ResTarget')!
    if (rt.name === tg.col && rt.indirection)
      throw new Refuse('tenant_value', '42501', `INSERT into "${tg.key}": the tenant column "${tg.col}" cannot be assigned through a subscript or field`)
  }
  const { cols, generated } = insertColumns(cx, ins, tg, sel)
  const idx = cols ? cols.indexOf(tg.col) : -1
  if (!sel) defaultValues(cx, tg)
  else if (idx < 0) {
    addTenantColumn(cx, tg, cols, generated)
    addTenantValue(cx, tg, sel, generated)
  } else if (sel.valuesLists) checkValuesRows(cx, tg, sel, idx)
  else checkSelectList(cx, tg, sel, cols!, idx)
  const oc = ins.onConflictClause
  if (oc && oc.action === 'ONCONFLICT_UPDATE') onConflictUpdate(cx, tg, oc)
}

/** The INSERT's column list: as written, or (no list) the table's first columns, as many as the values. */
function insertColumns(cx: RewriteState, ins: InsertStmt, tg: Target, sel: SelectStmt | undefined): { cols: string[] | null; generated: boolean } {
  if (ins.cols) return { cols: ins.cols.map((x) => field(x, 'ResTarget')!.name!), generated: false }
  if (!sel) return { cols: null, generated: false }
  const known = cx.ctx.facts.columns?.get(tg.key)
  if (!known)
    throw unsupported(
      `INSERT into tenant table "${tg.key}" needs a column list: pgtenant cannot see column positions`,
      `write INSERT INTO ${tg.key} (col, …) VALUES …`,
    )
  let n: number
  if (sel.valuesLists) n = field(sel.valuesLists[0], 'List')!.items!.length
  else {
    const tl = leftmost(sel).targetList ?? []
    if (tl.some((x) => JSON.stringify(x).includes('A_Star'))) throw unsupported(`INSERT into tenant table "${tg.key}" from SELECT * needs a column list`)
    n = tl.length
  }
  if (n > known.length) throw unsupported(`INSERT into "${tg.key}" has more values than the table has columns`)
  return { cols: known.slice(0, n), generated: true }
}

/** The first SELECT of a set operation (the one whose list names the columns). */
function leftmost(sel: SelectStmt): SelectStmt {
  let s = sel
  while (s.op && s.op !== 'SETOP_NONE') s = s.larg!
  return s
}

function isSetOperation(sel: SelectStmt): boolean {
  return !!sel.op && sel.op !== 'SETOP_NONE'
}

/** INSERT … DEFAULT VALUES → (col) VALUES ('tenant'). */
function defaultValues(cx: RewriteState, tg: Target): void {
  const t = cx.toks
  let i = tg.j + 1
  while (i < t.length && !(cx.isWord(i, 'default') && cx.isWord(i + 1, 'values'))) i++
  if (i >= t.length) throw unlocatable('locate DEFAULT VALUES')
  cx.edit(t[i].s, t[i + 1].e, [`(${quoteIdent(tg.col)}) VALUES (`, TENANT, ')'])
}

/** Add the tenant column to the column list (or write the generated list with it). */
function addTenantColumn(cx: RewriteState, tg: Target, cols: string[] | null, generated: boolean): void {
  const t = cx.toks
  if (generated) {
    cx.insert(t[tg.j].e, [` (${[...cols!, tg.col].map(quoteIdent).join(', ')})`])
    return
  }
  const open = tg.j + 1
  if (t[open]?.w !== '(') throw unlocatable('locate the INSERT column list')
  const { close } = cx.parenList(open)
  cx.insert(t[close - 1].e, [`, ${quoteIdent(tg.col)}`])
}

/** Add the tenant value to every row: VALUES rows, the SELECT list, or a wrap around a set operation. */
function addTenantValue(cx: RewriteState, tg: Target, sel: SelectStmt, generated: boolean): void {
  const t = cx.toks
  const typed = cx.ctx.facts.tenantColumnTypes?.get(tg.key)
  if (sel.valuesLists) {
    eachValuesRow(cx, sel, (row) => cx.insert(t[row.close - 1].e, [', ', TENANT]))
  } else if (!isSetOperation(sel)) {
    const tl = sel.targetList ?? []
    if (!tl.length) throw unsupported('INSERT … SELECT without a target list is not supported')
    const a = cx.tokAt(cx.c(field(tl[0], 'ResTarget')!.location!))
    const stop = selectListEnd(scanSelect(cx, a))
    cx.insert(t[stop - 1].e, [', ', TENANT, typed ? `::${typed}` : ''])
  } else {
    // set operation: wrap it
    const s = leftmost(sel)
    const a = cx.tokAt(cx.minLoc([s.targetList, s.valuesLists, s.fromClause]))
    // walk back to the first token of the SELECT (after the column list / relation)
    const colsEnd = generated ? tg.j : cx.parenList(tg.j + 1).close
    let start = colsEnd + 1
    if (start > a) start = a
    const d = t[start].d
    let end = start
    for (let i = start; i < t.length; i++) {
      const x = t[i]
      if (x.d < d || (x.d === d && x.w === ';' && x.k === T_PUNCT)) break
      if (x.d === d && (cx.kw(i) === 'returning' || (cx.kw(i) === 'on' && cx.isWord(i + 1, 'conflict')))) break
      end = i
    }
    cx.insert(t[start].s, ['SELECT *, ', TENANT, `${typed ? `::${typed}` : ''} FROM (`], -1)
    cx.insert(t[end].e, [') AS pgtenant_src'])
  }
}

/** Calls `row(items, k)` with the value token ranges and ")" of every VALUES row, in order; refuses if any is not found. */
function eachValuesRow(cx: RewriteState, sel: SelectStmt, row: (list: { items: [number, number][]; close: number }, k: number) => void): void {
  const t = cx.toks
  const lists = sel.valuesLists!
  // rows: "(" at the VALUES keyword's depth
  let v = cx.tokAt(cx.minLoc(lists[0]))
  while (v >= 0 && !cx.isWord(v, 'values')) v--
  if (v < 0) throw unlocatable('locate VALUES')
  const d = t[v].d
  let rows = 0
  for (let i = v + 1; i < t.length && rows < lists.length; i++) {
    if (t[i].d === d && t[i].w === '(' && t[i].k === T_PUNCT) {
      const list = cx.parenList(i)
      row(list, rows)
      rows++
      i = list.close
    } else if (t[i].d < d) break
  }
  if (rows !== lists.length) throw unlocatable('locate every VALUES row')
}

/** The tenant column is given in VALUES rows: every value must equal the tenant. */
function checkValuesRows(cx: RewriteState, tg: Target, sel: SelectStmt, idx: number): void {
  eachValuesRow(cx, sel, ({ items }, k) => {
    const node = field(sel.valuesLists![k], 'List')!.items![idx]
    if (!items[idx]) throw unlocatable('match a VALUES row')
    tenantValue(cx, node, items[idx][0], items[idx][1], tg.key, tg.col, 'INSERT into')
  })
}

/** The tenant column is given in a plain SELECT list: its expression must equal the tenant. */
function checkSelectList(cx: RewriteState, tg: Target, sel: SelectStmt, cols: string[], idx: number): void {
  const t = cx.toks
  const tl = sel.targetList
  if (isSetOperation(sel) || !tl?.[idx] || JSON.stringify(tl[idx]).includes('A_Star'))
    throw unsupported(
      `INSERT into "${tg.key}" … SELECT with the tenant column "${tg.col}" in the column list is only supported for a plain SELECT list: omit the column and pgtenant adds it`,
    )
  if (tl.length !== cols.length) throw unsupported(`INSERT into "${tg.key}": SELECT list does not match the column list`)
  const a0 = cx.tokAt(cx.c(field(tl[0], 'ResTarget')!.location!))
  // targets are comma separated at the SELECT's depth
  const d = t[a0].d
  const starts = [a0]
  const stop = selectListEnd(scanSelect(cx, a0))
  for (let i = a0; i < stop; i++) if (t[i].d === d && t[i].k === T_PUNCT && t[i].w === ',') starts.push(i + 1)
  if (starts.length !== tl.length) throw unlocatable('match the SELECT list')
  const a = starts[idx]
  let b = idx + 1 < starts.length ? starts[idx + 1] - 2 : stop - 1
  const target = field(tl[idx], 'ResTarget')!
  if (target.name) {
    // "expr AS name" or "expr name": guard only the expression
    b = cx.isWord(b - 1, 'as') ? b - 2 : b - 1
    if (b < a) throw unlocatable('match the SELECT list')
  }
  tenantValue(cx, target.val, a, b, tg.key, tg.col, 'INSERT into')
}

/**
 * ON CONFLICT DO UPDATE: SET of the tenant column guarded (unless it is EXCLUDED.col, see isOwnValue),
 * the update restricted to the tenant's rows (its WHERE).
 */
function onConflictUpdate(cx: RewriteState, tg: Target, oc: OnConflictClause): void {
  const t = cx.toks
  setTargets(cx, oc.targetList ?? [], tg.key, tg.col, new Set(['where', 'returning']), 'INSERT … ON CONFLICT DO UPDATE of', 'excluded')
  // WHERE of the DO UPDATE: after "DO"
  let i = cx.tokAt(cx.c(oc.location!))
  const d = t[i].d
  while (i < t.length && !(t[i].d === d && cx.isWord(i, 'do'))) i++
  let where = -1
  let end = t.length
  for (let k = i; k < t.length; k++) {
    const x = t[k]
    if (x.d < d) {
      end = k
      break
    }
    if (x.d > d) continue
    if (x.k === T_PUNCT && x.w === ';') {
      end = k
      break
    }
    const w = cx.kw(k)
    if (w === 'where' && where < 0) where = k
    else if (w === 'returning') {
      end = k
      break
    }
  }
  addToWhere(cx, { from: -1, where, after: -1, end }, [tenantPredicate(rangeName(tg.rv), tg.col)], !!oc.whereClause)
  if (oc.whereClause && cx.tenantMode) {
    // the conflicting row may be another tenant's (a key unique across tenants): order the client's condition behind the restriction
    const whereClause: Node = oc.whereClause
    atLevel(cx, [tenantRange(cx, tg.rv, tg.r, false), plainRange('excluded', true)], () => guardConjuncts(cx, whereClause, where + 1, end - 1))
  }
}
