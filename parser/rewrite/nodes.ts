// Parse-tree node types: libpg-query's own (it re-exports @pgsql/types, generated from PostgreSQL's
// parse nodes), plus the few helpers the rewrite modules use to read them. A `Node` is a one-key
// wrapper ({ SelectStmt: {...} }); `field(n, 'SelectStmt')` unwraps it when it is of that kind.
// Generic walks over the whole tree (locations, column references) treat it as plain JSON (`Json`).
import type { Node, A_Const, FuncCall, RangeVar } from 'libpg-query'
import type { RewriteContext } from '../types.js'

export type {
  Node,
  ParseResult,
  CopyStmt,
  DeleteStmt,
  FuncCall,
  InsertStmt,
  JoinExpr,
  MergeStmt,
  MergeWhenClause,
  MultiAssignRef,
  OnConflictClause,
  RangeVar,
  SelectStmt,
  SubLink,
  UpdateStmt,
  VariableSetStmt,
  WithClause,
} from 'libpg-query'

/** Every key a Node wrapper can have ("SelectStmt", "RangeVar", …). */
type NodeKind = Node extends infer U ? (U extends unknown ? keyof U : never) : never
/** The payload type of node kind K. */
type NodeOf<K extends NodeKind> = Extract<Node, Record<K, unknown>>[K]

/** The parse tree as plain JSON, for walks that visit every field (the JSON boundary). */

export type Json = any

/** The payload of `n` if it is a node of kind `k`. */
export function field<K extends NodeKind>(n: Node | undefined | null, k: K): NodeOf<K> | undefined {
  return n ? (n as unknown as Partial<Record<K, NodeOf<K>>>)[k] : undefined
}

/** The name parts of a column reference (`q.col` → ['q', 'col']; a `*` part is undefined); empty when `n` is not one. */
export function columnRefNames(n: Node | undefined): (string | undefined)[] {
  return (field(n, 'ColumnRef')?.fields ?? []).map((f) => field(f, 'String')?.sval)
}

/** A node's kind (its one key). */
export function nodeKind(n: Node): NodeKind {
  for (const k in n) return k as NodeKind
  return '' as NodeKind
}

/** A node's payload, whatever its kind. */
export function payload(n: Node): Json {
  return (n as Record<string, unknown>)[nodeKind(n)]
}

export function lower(s: string): string {
  return s.toLowerCase()
}

/** A string, integer, float or boolean constant's text; undefined when the node is not a plain constant. */
export function constValue(n: Node | undefined): string | null | undefined {
  const c: A_Const | undefined = field(n, 'A_Const')
  if (!c) return undefined
  if (c.isnull) return null
  if (c.sval) return c.sval.sval ?? ''
  if (c.ival) return String(c.ival.ival ?? 0)
  if (c.fval) return c.fval.fval
  if (c.boolval) return c.boolval.boolval ? 'true' : 'false'
  return undefined
}

/** A function call's name and (when qualified) schema, as written (folded by the parser). */
export function funcName(fc: FuncCall): { schema: string | null; name: string } {
  const parts = (fc.funcname ?? []).map((x) => field(x, 'String')?.sval ?? '')
  return { schema: parts.length > 1 ? parts[parts.length - 2] : null, name: parts[parts.length - 1] ?? '' }
}

/** The name a FROM item of this relation is known by: its alias, else its relation name. */
export function rangeName(rv: RangeVar): string {
  return rv.alias?.aliasname ?? rv.relname!
}

/** Does a statement read a relation named `name` without a schema (a CTE referring to itself)? */
export function refersTo(n: Json, name: string): boolean {
  if (n === null || typeof n !== 'object') return false
  if (Array.isArray(n)) return n.some((x) => refersTo(x, name))
  for (const k in n) {
    const v = n[k]
    if (k === 'RangeVar' && v.relname === name && !v.schemaname) return true
    if (v && typeof v === 'object' && refersTo(v, name)) return true
  }
  return false
}

/** Column names of a relation reference in attnum order, when the schema facts have them (pg_catalog, then the search_path). */
export function relationColumns(ctx: RewriteContext, rv: { schemaname?: string; relname?: string }): readonly string[] | null {
  const f = ctx.facts.columns
  if (!f) return null
  if (rv.schemaname) return f.get(`${rv.schemaname}.${rv.relname}`) ?? null
  for (const sch of ['pg_catalog', ...ctx.searchPath]) {
    const c = f.get(`${sch}.${rv.relname}`)
    if (c) return c
  }
  return null
}

/** PostgreSQL's boolean input forms; null when `s` is none of them. */
export function parseBool(s: string): boolean | null {
  const v = lower(s.trim())
  if (['t', 'true', 'on', '1', 'yes', 'y'].includes(v)) return true
  if (['f', 'false', 'off', '0', 'no', 'n'].includes(v)) return false
  return null
}
