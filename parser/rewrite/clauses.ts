// Clause positions the parse tree does not give: where a query level's FROM / WHERE / later clauses
// start and where it ends, the token extent of a WHERE, HAVING, JOIN … ON or MERGE … ON expression.
// All by scanning keywords at the query's own parenthesis depth (scan.ts tokens).
import { T_PUNCT } from '../scan.js'
import type { SourceText } from './positions.js'
import { unlocatable } from './refuse.js'
import type { JoinExpr, MergeStmt, SelectStmt } from './nodes.js'
import { field } from './nodes.js'

/** Keyword token indexes of one query level (-1 = absent); `end` is the first token after it. */
export interface ClauseScan {
  from: number
  where: number
  /** first clause after WHERE (GROUP BY, ORDER BY, LIMIT, …) */
  after: number
  end: number
}

const JOIN_STOP = new Set([
  'join',
  'inner',
  'left',
  'right',
  'full',
  'cross',
  'natural',
  'on',
  'where',
  'group',
  'having',
  'window',
  'order',
  'limit',
  'offset',
  'fetch',
  'for',
  'union',
  'intersect',
  'except',
  'returning',
  'when',
  'using',
])
const SELECT_AFTER_WHERE = new Set(['group', 'having', 'window', 'order', 'limit', 'offset', 'fetch', 'for'])
const SELECT_END = new Set(['union', 'intersect', 'except', 'returning'])

/**
 * Walks the keywords at token a's nesting depth until the depth closes, a `;`, or `visit`
 * says the clause ends there (r.end = that token).
 */
function scanLevel(src: SourceText, a: number, visit: (r: ClauseScan, i: number, w: string) => boolean): ClauseScan {
  const t = src.toks
  const d = t[a].d
  const r: ClauseScan = { from: -1, where: -1, after: -1, end: t.length }
  for (let i = a; i < t.length; i++) {
    const x = t[i]
    if (x.d < d || (x.d === d && x.k === T_PUNCT && x.w === ';')) {
      r.end = i
      break
    }
    if (x.d > d) continue
    const w = src.kw(i)
    if (w && visit(r, i, w)) {
      r.end = i
      break
    }
  }
  return r
}

/** Clause scan for a SELECT from its first target (or FROM item). */
export function scanSelect(src: SourceText, a: number): ClauseScan {
  return scanLevel(src, a, (r, i, w) => {
    if (w === 'from') {
      if (r.from < 0 && r.where < 0 && r.after < 0 && !src.isWord(i - 1, 'distinct')) r.from = i
    } else if (w === 'where') {
      if (r.where < 0 && r.after < 0) r.where = i
    } else if (SELECT_AFTER_WHERE.has(w)) {
      if (!(w === 'group' && src.isWord(i - 1, 'within')) && r.after < 0) r.after = i
    } else if (SELECT_END.has(w) || (w === 'on' && src.isWord(i + 1, 'conflict'))) return true
    return false
  })
}

/** Clause scan for UPDATE/DELETE from the target relation's token. */
export function scanDml(src: SourceText, a: number): ClauseScan {
  return scanLevel(src, a, (r, i, w) => {
    if (w === 'where' && r.where < 0) r.where = i
    return w === 'returning'
  })
}

/** First token after a SELECT's target list: its FROM, WHERE, later clause or end. */
export function selectListEnd(sc: ClauseScan): number {
  return sc.from >= 0 ? sc.from : sc.where >= 0 ? sc.where : sc.after >= 0 ? sc.after : sc.end
}

/** First token of a SELECT's target list (or of its FROM for TABLE t): where its clause scan starts. */
export function selectAnchor(src: SourceText, sel: SelectStmt): number {
  const tl = sel.targetList ?? []
  const tloc = tl.length ? field(tl[0], 'ResTarget')?.location : -1
  if (tloc !== undefined && tloc >= 0) return src.tokAt(src.c(tloc))
  const from = sel.fromClause ?? []
  if (from.length) return src.tokAt(src.minLoc(from[0]))
  throw unlocatable('locate the SELECT clauses')
}

/** Token range [first, last] of the WHERE expression of the query whose clauses start at `anchor`. */
export function whereExtent(src: SourceText, anchor: number, dml: boolean): [number, number] {
  const sc = dml ? scanDml(src, anchor) : scanSelect(src, anchor)
  const stop = sc.after >= 0 ? sc.after : sc.end
  if (sc.where < 0 || sc.where + 1 >= stop) throw unlocatable('locate the WHERE expression')
  return [sc.where + 1, stop - 1]
}

/** Token range [first, last] of the HAVING expression of the SELECT whose clauses start at `anchor`. */
export function havingExtent(src: SourceText, anchor: number): [number, number] {
  let having = -1
  const sc = scanLevel(src, anchor, (_r, i, w) => {
    if (w === 'having' && having < 0) having = i
    else if (having >= 0 && (w === 'window' || w === 'order' || w === 'limit' || w === 'offset' || w === 'fetch' || w === 'for')) return true
    return SELECT_END.has(w)
  })
  if (having < 0 || having + 1 >= sc.end) throw unlocatable('locate the HAVING expression')
  return [having + 1, sc.end - 1]
}

/** Token range [first, last] of a JOIN … ON condition. */
export function onExtent(src: SourceText, join: JoinExpr): [number, number] {
  const t = src.toks
  const k = src.keywordBefore(join.quals)
  if (!src.isWord(k, 'on')) throw unlocatable('locate a JOIN … ON condition')
  const d = t[k].d
  let i = k + 1
  let cases = 0 // CASE … END at this depth: its WHEN is not a clause keyword
  for (; i < t.length; i++) {
    const x = t[i]
    if (x.d < d) break
    if (x.d > d) continue
    if (x.k === T_PUNCT && (x.w === ',' || x.w === ';')) break
    const w = src.kw(i)
    if (w === 'case') cases++
    else if (w === 'end' && cases > 0) cases--
    else if (cases === 0 && w && JOIN_STOP.has(w) && !(t[i + 1] && t[i + 1].w === '(' && (w === 'left' || w === 'right'))) break
  }
  if (i === k + 1) throw unlocatable('locate a JOIN … ON condition')
  return [k + 1, i - 1]
}

/** Token range [first, last] of a MERGE … ON condition (up to its first WHEN). */
export function mergeOnExtent(src: SourceText, m: MergeStmt): [number, number] {
  const t = src.toks
  const k = src.keywordBefore(m.joinCondition)
  if (!src.isWord(k, 'on')) throw unlocatable('locate the MERGE … ON condition')
  const d = t[k].d
  let i = k + 1
  while (i < t.length && !(t[i].d === d && src.isWord(i, 'when')) && t[i].d >= d) i++
  return [k + 1, i - 1]
}
