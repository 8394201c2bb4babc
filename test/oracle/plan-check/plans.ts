// Plan check (../plan-check.ts), the pure half: scan nodes of an EXPLAIN (FORMAT JSON) plan, per-relation
// summaries, the findings of comparing two plans, and the variants of the rewritten text without the
// CASE guards or the OFFSET 0 fences that attribute a finding to its cause.
import { parseSync } from 'libpg-query'
import { TENANT_TABLES } from '../facts.js'
import { isLeakproofSafe } from '../../../parser/leakproof.js'

type N = any

// ------------------------------------------------------------------ plans

export interface ScanNode {
  type: string
  relation: string
  alias: string
  indexes: string[]
  indexCond: string[]
  filter?: string
  /** index key columns (not the tenant column) constrained by an Index Cond clause with constants / parameters only */
  condCols: Set<string>
  /** … by an Index Cond clause that references another relation (a parameterized scan: nested-loop join) */
  joinCols: Set<string>
  usesIndex: boolean
}

export interface RelSummary {
  idx: number
  seq: number
  indexes: Set<string>
  condCols: Set<string>
  joinCols: Set<string>
}

export interface IndexInfo {
  table: string
  cols: string[]
}

let INDEXES = new Map<string, IndexInfo>()
/** bare table name → tenant column */
export const TENANT_COL = new Map([...TENANT_TABLES].map(([k, v]) => [k.split('.')[1], v]))

/** Identifier references (optionally qualified) in a deparsed expression, string literals skipped. */
export function identRefs(text: string): { q: string | null; name: string }[] {
  const out: { q: string | null; name: string }[] = []
  const re = /'(?:[^']|'')*'|((?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\.(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*))?)/g
  const unq = (s: string) => (s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s)
  let m: RegExpExecArray | null
  while ((m = re.exec(text))) {
    if (!m[1]) continue
    // a type name after :: is not a column
    if (text.slice(Math.max(0, m.index - 2), m.index) === '::') continue
    const parts = m[1].match(/"(?:[^"]|"")+"|[A-Za-z_][\w$]*/g) ?? []
    if (parts.length === 2) out.push({ q: unq(parts[0]!), name: unq(parts[1]!) })
    else out.push({ q: null, name: unq(parts[0]!) })
  }
  return out
}

/** The top-level AND clauses of a deparsed Index Cond. */
export function splitAnd(cond: string): string[] {
  let c = cond.trim()
  const mask = codeMask(c)
  if (c.startsWith('(') && matchParen(c, mask, 0) === c.length - 1) c = c.slice(1, -1)
  const m2 = codeMask(c)
  const out: string[] = []
  let d = 0
  let last = 0
  for (let i = 0; i < c.length; i++) {
    if (!m2[i]) continue
    if (c[i] === '(') d++
    else if (c[i] === ')') d--
    else if (d === 0 && c.startsWith(' AND ', i)) {
      out.push(c.slice(last, i))
      last = i + 5
    }
  }
  out.push(c.slice(last))
  return out
}

export function scanNodes(plan: N): ScanNode[] {
  const out: ScanNode[] = []
  const bitmapIndexes = (n: N, acc: { names: string[]; conds: string[] }) => {
    if (n['Node Type'] === 'Bitmap Index Scan') {
      acc.names.push(n['Index Name'])
      if (n['Index Cond']) acc.conds.push(n['Index Cond'])
    }
    for (const c of n.Plans ?? []) bitmapIndexes(c, acc)
  }
  const visit = (n: N) => {
    const type: string = n['Node Type']
    const rel: string | undefined = n['Relation Name']
    if (rel && ['Seq Scan', 'Index Scan', 'Index Only Scan', 'Bitmap Heap Scan', 'Tid Scan', 'Tid Range Scan', 'Sample Scan'].includes(type)) {
      const node: ScanNode = {
        type,
        relation: rel,
        alias: n.Alias ?? rel,
        indexes: [],
        indexCond: [],
        filter: n.Filter,
        condCols: new Set(),
        joinCols: new Set(),
        usesIndex: false,
      }
      if (type === 'Index Scan' || type === 'Index Only Scan') {
        node.indexes.push(n['Index Name'])
        if (n['Index Cond']) node.indexCond.push(n['Index Cond'])
        node.usesIndex = true
      } else if (type === 'Bitmap Heap Scan') {
        const acc = { names: [] as string[], conds: [] as string[] }
        for (const c of n.Plans ?? []) bitmapIndexes(c, acc)
        node.indexes.push(...acc.names)
        node.indexCond.push(...acc.conds)
        node.usesIndex = true
      }
      const tcol = TENANT_COL.get(rel)
      const keyCols = new Set(node.indexes.flatMap((i) => INDEXES.get(i)?.cols ?? []))
      for (const cond of node.indexCond)
        for (const clause of splitAnd(cond)) {
          const refs = identRefs(clause)
          const join = refs.some((r) => r.q !== null && r.q !== node.alias)
          for (const r of refs)
            if ((r.q === null || r.q === node.alias) && keyCols.has(r.name) && r.name !== tcol) (join ? node.joinCols : node.condCols).add(r.name)
        }
      out.push(node)
      if (type === 'Bitmap Heap Scan') return // its children are the bitmap index scans, already read
    }
    for (const c of n.Plans ?? []) visit(c)
  }
  visit(plan)
  return out
}

export function summarize(nodes: ScanNode[]): Map<string, RelSummary> {
  const m = new Map<string, RelSummary>()
  for (const n of nodes) {
    let s = m.get(n.relation)
    if (!s) m.set(n.relation, (s = { idx: 0, seq: 0, indexes: new Set(), condCols: new Set(), joinCols: new Set() }))
    if (n.usesIndex) s.idx++
    else s.seq++
    n.indexes.forEach((i) => s!.indexes.add(i))
    n.condCols.forEach((c) => s!.condCols.add(c))
    n.joinCols.forEach((c) => s!.joinCols.add(c))
  }
  return m
}

export function formatNode(n: ScanNode): string {
  const on = n.alias !== n.relation ? `${n.relation} ${n.alias}` : n.relation
  let s = `${n.type}${n.indexes.length ? ' using ' + n.indexes.join(', ') : ''} on ${on}`
  if (n.indexCond.length) s += `\n        Index Cond: ${n.indexCond.join(' | ')}`
  if (n.filter) s += `\n        Filter: ${n.filter.length > 400 ? n.filter.slice(0, 400) + ' …' : n.filter}`
  return s
}

// ------------------------------------------------------------------ findings

export type Kind = 'regression' | 'fewer-index-reads' | 'lost-index-cond' | 'lost-join-index-cond'
export interface Finding {
  kind: Kind
  relation: string
  detail: string
  /** lost columns (lost-index-cond) */
  cols?: string[]
}

export function compare(only: Map<string, RelSummary>, rew: Map<string, RelSummary>): Finding[] {
  const out: Finding[] = []
  for (const [rel, o] of only) {
    const r = rew.get(rel)
    if (!r) continue // not read at all through pgtenant (pruned): no regression
    if (o.idx > 0 && r.idx === 0 && r.seq > 0) out.push({ kind: 'regression', relation: rel, detail: `index (${[...o.indexes].join(', ')}) → sequential only` })
    else if (r.idx < o.idx && r.seq > o.seq)
      out.push({ kind: 'fewer-index-reads', relation: rel, detail: `index reads ${o.idx} → ${r.idx}, sequential ${o.seq} → ${r.seq}` })
    const used = (x: RelSummary) => [...x.condCols, ...[...x.joinCols].map((c) => c + ' (join)')].join(', ') || 'the tenant column only'
    const lost = [...o.condCols].filter((c) => !r.condCols.has(c) && !r.joinCols.has(c))
    if (lost.length && o.idx > 0 && r.idx > 0)
      out.push({
        kind: 'lost-index-cond',
        relation: rel,
        cols: lost,
        detail: `Index Cond on ${lost.join(', ')} (${[...o.indexes].join(', ')}) lost; through pgtenant: ${[...r.indexes].join(', ') || '-'} on ${used(r)}`,
      })
    const lostJoin = [...o.joinCols].filter((c) => !r.condCols.has(c) && !r.joinCols.has(c))
    if (lostJoin.length && o.idx > 0 && r.idx > 0)
      out.push({
        kind: 'lost-join-index-cond',
        relation: rel,
        cols: lostJoin,
        detail: `parameterized Index Cond (join) on ${lostJoin.join(', ')} (${[...o.indexes].join(', ')}) lost; through pgtenant: ${[...r.indexes].join(', ') || '-'} on ${used(r)}`,
      })
  }
  return out
}

export function findingKey(f: Finding): string {
  return `${f.kind}|${f.relation}|${(f.cols ?? []).join(',')}`
}

// ------------------------------------------------------------------ variants of the rewritten text (cause attribution)

/** Positions outside string literals, quoted identifiers and comments. */
export function codeMask(sql: string): boolean[] {
  const mask = new Array<boolean>(sql.length).fill(true)
  let i = 0
  while (i < sql.length) {
    const c = sql[i]
    const start = i
    if (c === "'" || c === '"') {
      i++
      while (i < sql.length) {
        if (sql[i] === c) {
          if (sql[i + 1] === c) i += 2
          else break
        } else i++
      }
      i++
    } else if (c === '-' && sql[i + 1] === '-') {
      while (i < sql.length && sql[i] !== '\n') i++
    } else if (c === '/' && sql[i + 1] === '*') {
      let d = 0
      while (i < sql.length) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          d++
          i += 2
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          d--
          i += 2
          if (d === 0) break
        } else i++
      }
    } else if (c === '$' && /^\$[A-Za-z_]*\$/.test(sql.slice(i))) {
      const tag = sql.slice(i).match(/^\$[A-Za-z_]*\$/)![0]
      const end = sql.indexOf(tag, i + tag.length)
      i = end < 0 ? sql.length : end + tag.length
    } else {
      i++
      continue
    }
    for (let k = start; k < i && k < sql.length; k++) mask[k] = false
  }
  return mask
}

export function matchParen(sql: string, mask: boolean[], open: number): number {
  let d = 0
  for (let i = open; i < sql.length; i++) {
    if (!mask[i]) continue
    if (sql[i] === '(') d++
    else if (sql[i] === ')' && --d === 0) return i
  }
  return -1
}

export interface Guard {
  start: number
  end: number
  guard: string
  body: string
}

/** The rewriter's `CASE WHEN <tenant restriction> THEN (<cond>) END` wrappers (outermost first). */
export function findGuards(sql: string, tenantLit: string): Guard[] {
  const mask = codeMask(sql)
  const out: Guard[] = []
  const re = /CASE WHEN /g
  let m: RegExpExecArray | null
  while ((m = re.exec(sql))) {
    const s = m.index
    if (!mask[s]) continue
    // the guard ends at the first ` THEN (` at its own parenthesis depth
    let d = 0
    let thenAt = -1
    for (let i = s + m[0].length; i < sql.length; i++) {
      if (!mask[i]) continue
      if (sql[i] === '(') d++
      else if (sql[i] === ')') d--
      if (d < 0) break
      if (d === 0 && sql.startsWith(' THEN (', i)) {
        thenAt = i
        break
      }
    }
    if (thenAt < 0) continue
    const guard = sql.slice(s + m[0].length, thenAt)
    if (!guard.includes(`= ${tenantLit}`)) continue
    const open = thenAt + ' THEN '.length
    const close = matchParen(sql, mask, open)
    if (close < 0 || !sql.startsWith(' END', close + 1)) continue
    out.push({ start: s, end: close + 1 + ' END'.length, guard, body: sql.slice(open + 1, close) })
  }
  return out
}

export function stripGuards(sql: string, tenantLit: string): string {
  // innermost first would shift offsets of outer ones; redo the search after each replacement
  for (let n = 0; n < 1000; n++) {
    const g = findGuards(sql, tenantLit)
    if (!g.length) return sql
    const last = g[g.length - 1]
    sql = sql.slice(0, last.start) + '(' + last.body + ')' + sql.slice(last.end)
  }
  return sql
}

export function stripFences(sql: string, original: string): string {
  if (/offset\s+0\b/i.test(original)) return sql // cannot tell the client's OFFSET 0 from the rewriter's
  const mask = codeMask(sql)
  let out = ''
  let last = 0
  const re = / OFFSET 0(?=\s*\))/g
  let m: RegExpExecArray | null
  while ((m = re.exec(sql))) {
    if (!mask[m.index]) continue
    out += sql.slice(last, m.index)
    last = m.index + m[0].length
  }
  return out + sql.slice(last)
}

export function countFences(sql: string, original: string): number {
  if (/offset\s+0\b/i.test(original)) return 0
  const mask = codeMask(sql)
  return [...sql.matchAll(/ OFFSET 0(?=\s*\))/g)].filter((m) => mask[m.index!]).length
}

/** A short label for why a wrapped condition is not leakproof-safe: its smallest unsafe part. */
export function shapeOf(cond: string): string {
  let tree: N
  try {
    tree = parseSync(`SELECT 1 WHERE ${cond}`)
  } catch {
    return 'unparsable'
  }
  let n: N = tree.stmts[0].stmt.SelectStmt.whereClause
  const key = (x: N) => Object.keys(x)[0]
  for (let depth = 0; depth < 50; depth++) {
    const k = key(n)
    const v = n[k]
    const kids: N[] =
      k === 'BoolExpr'
        ? v.args
        : k === 'A_Expr'
          ? [v.lexpr, v.rexpr].filter(Boolean).flatMap((x: N) => (x.List ? x.List.items : [x]))
          : k === 'NullTest' || k === 'BooleanTest'
            ? [v.arg]
            : []
    const unsafe = kids.filter((c) => !isLeakproofSafe(c))
    const op =
      k === 'A_Expr'
        ? (v.name ?? [])
            .map((x: N) => x.String?.sval)
            .filter((x: string) => x !== 'pg_catalog')
            .join('.')
        : ''
    const structural =
      k === 'BoolExpr' ||
      k === 'NullTest' ||
      k === 'BooleanTest' ||
      (k === 'A_Expr' &&
        [
          'AEXPR_OP',
          'AEXPR_IN',
          'AEXPR_BETWEEN',
          'AEXPR_NOT_BETWEEN',
          'AEXPR_BETWEEN_SYM',
          'AEXPR_NOT_BETWEEN_SYM',
          'AEXPR_DISTINCT',
          'AEXPR_NOT_DISTINCT',
          'AEXPR_OP_ANY',
          'AEXPR_OP_ALL',
        ].includes(v.kind) &&
        ['=', '<>', '!=', '<', '>', '<=', '>=', 'BETWEEN', 'NOT BETWEEN', 'BETWEEN SYMMETRIC', 'NOT BETWEEN SYMMETRIC'].includes(op))
    if (structural && unsafe.length) {
      n = unsafe[0]
      continue
    }
    switch (k) {
      case 'A_Expr': {
        const op = (v.name ?? []).map((x: N) => x.String?.sval).join('.')
        if (v.kind === 'AEXPR_LIKE') return op === '!~~' ? 'NOT LIKE' : 'LIKE'
        if (v.kind === 'AEXPR_ILIKE') return op === '!~~*' ? 'NOT ILIKE' : 'ILIKE'
        if (v.kind === 'AEXPR_SIMILAR') return 'SIMILAR TO'
        if (v.kind === 'AEXPR_OP_ANY' || v.kind === 'AEXPR_OP_ALL') return `${op} ${v.kind === 'AEXPR_OP_ANY' ? 'ANY' : 'ALL'}(non-constant)`
        return `operator ${op}`
      }
      case 'FuncCall':
        return `function ${(v.funcname ?? []).map((x: N) => x.String?.sval).join('.')}()`
      case 'TypeCast':
        return `cast of a column to ${(v.typeName?.names ?? [])
          .map((x: N) => x.String?.sval)
          .filter((s: string) => s !== 'pg_catalog')
          .join('.')}`
      case 'SubLink':
        return `sub-select (${v.subLinkType})`
      case 'ColumnRef':
        return 'column of a sub-select/CTE/function output'
      case 'CaseExpr':
        return 'CASE expression'
      case 'CoalesceExpr':
        return 'COALESCE'
      case 'A_Indirection':
        return 'subscript / field selection'
      case 'RowExpr':
        return 'row constructor'
      default:
        return k
    }
  }
  return 'deep expression'
}

/** The indexes of the databases under test (name → table and key columns), read once per pass. */
export function useIndexes(m: Map<string, IndexInfo>): void {
  INDEXES = m
}

export function indexInfo(name: string): IndexInfo | undefined {
  return INDEXES.get(name)
}
