// Readers of the (untyped) libpg-query tree the verifier uses, and the depth-limited walk shared by
// its generic tree walks.
import { Fail, type N } from './state.js'

/** Expression keys that cannot contain a sub-query or a relation. */
export const LEAF = new Set(['ColumnRef', 'A_Const', 'ParamRef', 'String', 'Integer', 'Float', 'Boolean', 'TypeName', 'A_Star', 'SetToDefault'])

/** Columns every table has (an unqualified one inside a sub-select with a FROM table is that table's). */
export const SYSTEM_COLUMNS = new Set(['ctid', 'xmin', 'xmax', 'cmin', 'cmax', 'tableoid'])

export function nodeType(n: N): string {
  if (n === null || typeof n !== 'object') return ''
  for (const k in n) return k
  return ''
}

/** A sub-select the planner neither pulls up nor pushes outer conditions into: its output columns are computed values, fixed before an outer condition sees them. */
export function fenced(q: N): boolean {
  const sel = q?.SelectStmt
  return !!sel && nodeType(q) === 'SelectStmt' && (!!sel.limitOffset || !!sel.limitCount || !!sel.valuesLists)
}

/** Top-level AND conjuncts (nested ANDs flattened). */
export function conjuncts(n: N): N[] {
  const out: N[] = []
  const visit = (x: N, depth: number) => {
    if (depth > 1000) throw new Fail('?', 'expression nested too deeply')
    const b = x?.BoolExpr
    if (b && b.boolop === 'AND_EXPR' && nodeType(x) === 'BoolExpr') for (const a of b.args ?? []) visit(a, depth + 1)
    else if (x !== undefined && x !== null) out.push(x)
  }
  visit(n, 0)
  return out
}

export function strings(fields: N[]): string[] | null {
  const out: string[] = []
  for (const f of fields) {
    const s = f?.String?.sval
    if (typeof s !== 'string') return null
    out.push(s)
  }
  return out
}

export function isOp(name: N, op: string): boolean {
  const p = Array.isArray(name) ? strings(name) : null
  if (!p) return false
  return (p.length === 1 && p[0] === op) || (p.length === 2 && p[0] === 'pg_catalog' && p[1] === op)
}

export function hasStar(n: N): boolean {
  const f: N[] = n?.ColumnRef?.fields ?? []
  return f.some((x) => x?.A_Star !== undefined)
}

/** The name a RangeVar is referred to by (alias, else relation name), and its schema when unaliased. */
export function rangeVarName(rv: N): { name: string; schema: string | null } {
  return { name: rv.alias?.aliasname ?? rv.relname, schema: rv.alias ? null : (rv.schemaname ?? null) }
}

/**
 * One step of a depth-limited walk over a parse tree: `field(k, v, depth)` for each field of x whose
 * value is an object (arrays are looked through, one level deeper each). The callback continues the
 * walk into v, if it wants to, with eachField(v, depth + 1, …). Too deep: Fail with `tooDeep`.
 */
export function eachField(x: N, depth: number, tooDeep: string, field: (k: string, v: N, depth: number) => void): void {
  if (depth > 2000) throw new Fail('?', tooDeep)
  if (x === null || typeof x !== 'object') return
  if (Array.isArray(x)) {
    for (const y of x) eachField(y, depth + 1, tooDeep, field)
    return
  }
  for (const k in x) {
    const v = x[k]
    if (v !== null && typeof v === 'object') field(k, v, depth)
  }
}

/** `f(type, node)` for each FROM item and, inside a join, each joined item (a join before its arms). */
export function eachFromItem(from: N[] | undefined, f: (t: string, v: N) => void): void {
  const visit = (it: N) => {
    const t = nodeType(it)
    const v = it?.[t]
    if (!v) return
    f(t, v)
    if (t === 'JoinExpr') {
      visit(v.larg)
      visit(v.rarg)
    }
  }
  for (const it of from ?? []) visit(it)
}
