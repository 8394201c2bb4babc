// Evaluation order (issue #22): PostgreSQL does not evaluate ANDed conditions in text order, so a
// condition the client wrote can run on other tenants' rows before the tenant restriction rejects
// them, and carry a value out through a side effect or an error message. As for row-level security,
// only leakproof conditions may run first; the rewriter puts every other conjunct of a WHERE / ON /
// HAVING behind the restriction of the tenant ranges it references:
//
//   WHERE id = 5 AND f(email)   →   WHERE (id = 5 AND CASE WHEN u.company_id = 'T' THEN (f(email)) END) AND u.company_id = 'T'
//
// (a CASE evaluates its THEN branch only when the WHEN holds, whatever the planner does with the
// conjunct). This module holds the pure parts: which tenant ranges a conjunct references, and whether
// a conjunct is leakproof-safe once its sub-selects (which restrict themselves) are set aside.
import { isLeakproofSafe } from './leakproof.js'

type N = any

/** One FROM item of a query level, as the guard sees it. */
export interface RangeInfo {
  /** The name a column reference qualifies it with: alias, else relation name (folded, as the parser gives it). */
  name: string
  /** A tenant table (or a derived table of one). */
  tenant: boolean
  /** A plain table or view, not a sub-select, CTE or function (informational: those are fenced). */
  table: boolean
  /** `"q"."col"` of the tenant column as the range exposes it; null when unknown (column alias lists). */
  tenantRef: string | null
  /** On the nullable side of an outer join (or a derived table): the guard also admits NULL-extended rows. */
  nullable: boolean
  /** Column names, when known (schema facts); null = unknown. */
  columns: readonly string[] | null
}

export type Levels = readonly (readonly RangeInfo[])[]

function columnFields(ref: N): string[] {
  return (ref.fields ?? []).map((f: N) => f.String?.sval ?? '*')
}

/** The ranges of `levels` (innermost last) an unqualified column name can mean: the innermost level that may have it. */
function rangesForColumn(levels: Levels, col: string): readonly RangeInfo[] | null {
  for (let i = levels.length - 1; i >= 0; i--) {
    const level = levels[i]
    const named = level.filter((r) => r.name === col) // a whole-row reference to a range
    const maybe = level.filter((r) => r.columns === null || r.columns.includes(col))
    if (named.length || maybe.length) return [...named, ...maybe]
  }
  return null
}

function rangeNamed(levels: Levels, q: string): RangeInfo | null {
  for (let i = levels.length - 1; i >= 0; i--) for (const r of levels[i]) if (r.name === q) return r
  return null
}

/** Every range of every level: what a reference that cannot be resolved may mean. */
function allRanges(levels: Levels): RangeInfo[] {
  return levels.flat()
}

/** The ranges a column reference of the current level means (several when it cannot be told). */
export function rangesOfRef(levels: Levels, ref: N): readonly RangeInfo[] {
  const f = columnFields(ref)
  if (f.length >= 2) {
    const r = rangeNamed(levels, f[f.length - 2])
    return r ? [r] : allRanges(levels)
  }
  return rangesForColumn(levels, f[0]) ?? allRanges(levels)
}

/** Names and columns of the relations a sub-select reads (at any depth), to tell its own columns from outer references. */
interface InnerNames {
  names: Set<string>
  columns: Set<string>
  /** Some FROM item's columns are unknown (sub-select, function, unknown table): unqualified names are ambiguous. */
  open: boolean
}

function innerNames(sel: N, columnsOf: (rv: N) => readonly string[] | null): InnerNames {
  const out: InnerNames = { names: new Set(), columns: new Set(), open: false }
  const visit = (x: N): void => {
    if (x === null || typeof x !== 'object') return
    if (Array.isArray(x)) return x.forEach(visit)
    for (const k in x) {
      const v = x[k]
      if (k === 'RangeVar') {
        out.names.add(v.alias?.aliasname ?? v.relname)
        const cols = columnsOf(v)
        if (cols && !v.alias?.colnames) cols.forEach((c) => out.columns.add(c))
        else out.open = true
        for (const c of v.alias?.colnames ?? []) out.columns.add(c.String?.sval ?? '')
      } else if (k === 'RangeSubselect' || k === 'RangeFunction' || k === 'RangeTableFunc' || k === 'JoinExpr') {
        if (v.alias) out.names.add(v.alias.aliasname)
        if (k !== 'JoinExpr') out.open = true
        visit(v)
      } else if (k === 'CommonTableExpr') {
        out.names.add(v.ctename)
        out.open = true
        visit(v)
      } else if (v && typeof v === 'object') visit(v)
    }
  }
  visit(sel)
  return out
}

/** Outer ranges a sub-select refers to (correlation); `unknown` when an unqualified name may be outer. */
function outerRefsOf(sel: N, levels: Levels, columnsOf: (rv: N) => readonly string[] | null, out: Set<RangeInfo>): void {
  const inner = innerNames(sel, columnsOf)
  const visit = (x: N): void => {
    if (x === null || typeof x !== 'object') return
    if (Array.isArray(x)) return x.forEach(visit)
    for (const k in x) {
      const v = x[k]
      if (k === 'ColumnRef') {
        const f = columnFields(v)
        if (f.length >= 2) {
          const q = f[f.length - 2]
          if (inner.names.has(q)) continue
          const r = rangeNamed(levels, q)
          if (r) out.add(r)
          else allRanges(levels).forEach((a) => out.add(a))
        } else if (f[0] !== '*' && (inner.open || !inner.columns.has(f[0])) && !inner.names.has(f[0])) {
          // may be an outer column: every outer range that may have it
          ;(rangesForColumn(levels, f[0]) ?? []).forEach((a) => out.add(a))
          if (inner.open) allRanges(levels).forEach((a) => out.add(a))
        }
      } else if (v && typeof v === 'object') visit(v)
    }
  }
  visit(sel)
}

export interface ConjunctFacts {
  /** Leakproof-safe: may be evaluated before the restriction. */
  safe: boolean
  /** The ranges (of this and outer levels) whose rows the conjunct's evaluation sees. */
  refs: Set<RangeInfo>
}

/**
 * Decide for one conjunct. Sub-selects restrict their own tables (and their own conditions are guarded
 * at their level); what matters here is the conjunct's expression around them and any column of this
 * or an outer level that a sub-select other than EXISTS evaluates (its target list runs per row).
 */
export function conjunctFacts(expr: N, levels: Levels, columnsOf: (rv: N) => readonly string[] | null, shadowed?: ReadonlySet<string>): ConjunctFacts {
  const refs = new Set<RangeInfo>()
  let correlated = false
  // a copy with each sub-select replaced by a parameter (an operand the leakproof test accepts)
  const strip = (x: N): N => {
    if (x === null || typeof x !== 'object') return x
    if (Array.isArray(x)) return x.map(strip)
    const out: N = {}
    for (const k in x) {
      const v = x[k]
      if (k === 'ColumnRef') {
        rangesOfRef(levels, v).forEach((r) => refs.add(r))
        out[k] = v
      } else if (k === 'SubLink') {
        const before = refs.size
        if (v.subLinkType !== 'EXISTS_SUBLINK') outerRefsOf(v.subselect, levels, columnsOf, refs)
        if (refs.size !== before) correlated = true
        const param = { ParamRef: { number: 1 } }
        if (v.subLinkType === 'ANY_SUBLINK' || v.subLinkType === 'ALL_SUBLINK') {
          const name = v.operName ?? [{ String: { sval: '=' } }]
          return { A_Expr: { kind: v.subLinkType === 'ANY_SUBLINK' ? 'AEXPR_OP_ANY' : 'AEXPR_OP_ALL', name, lexpr: strip(v.testexpr), rexpr: param } }
        }
        return param
      } else out[k] = strip(v)
    }
    return out
  }
  const stripped = strip(expr)
  // Every column is a stored value here: sub-selects, CTEs and LATERAL items that could turn a column
  // into an expression over tenant rows are fenced with OFFSET 0 by the rewriter (never pulled up).
  const safe = !correlated && isLeakproofSafe(stripped, undefined, shadowed)
  return { safe, refs }
}
