// Name resolution: which relation a name in the statement means (CTE, search_path, pg_catalog first),
// and what it is to pgtenant (tenant table, reference table, system catalog, unknown). The relation
// deny list is applied here, so every reference to a relation passes it.
import { relationRefusal } from '../policy/relations.js'
import { Refuse } from './refuse.js'
import type { RewriteState, Scope } from './state.js'
import { field, refersTo, type RangeVar, type WithClause } from './nodes.js'
import { fenceSubselect, guarding } from './order-guard.js'

type RelKind = 'tenant' | 'reference' | 'system' | 'unknown' | 'cte'
export interface Resolved {
  /** "schema.table", or the CTE name */
  key: string
  kind: RelKind
  /** the tenant column (tenant tables) */
  col?: string
}

const SYSTEM_SCHEMAS = new Set(['pg_catalog', 'information_schema'])

/** "schema.table" a relation name means: its schema, else pg_catalog, else the first search_path schema that has it. */
function qualify(cx: RewriteState, rel: string, schema: string | undefined): string {
  if (schema) return `${schema}.${rel}`
  const f = cx.ctx.facts
  if (f.knownRelations.has(`pg_catalog.${rel}`)) return `pg_catalog.${rel}`
  for (const s of cx.ctx.searchPath) {
    const key = `${s}.${rel}`
    if (f.knownRelations.has(key) || f.tenantTables.has(key) || f.referenceTables.has(key)) return key
  }
  if (rel.startsWith('pg_')) return `pg_catalog.${rel}`
  return `${cx.ctx.searchPath[0] ?? 'public'}.${rel}`
}

/** Resolve a relation reference (recording it for the statement) and apply the relation policy; `forWrite` for write targets. */
export function resolve(cx: RewriteState, rv: RangeVar, scope: Scope | null, forWrite: boolean): Resolved {
  const rel = rv.relname!
  const schema = rv.schemaname
  if (!schema && scope) {
    for (let s: Scope | null = scope; s; s = s.parent) if (s.ctes.has(rel)) return { key: rel, kind: 'cte' }
  }
  const f = cx.ctx.facts
  const key = qualify(cx, rel, schema)
  cx.relations.add(key)
  const dot = key.indexOf('.')
  const sch = key.slice(0, dot)
  const denied = relationRefusal(sch, key.slice(dot + 1))
  if (denied) throw new Refuse('relation_policy', '42501', denied)
  const col = f.tenantTables.get(key)
  if (col !== undefined) {
    cx.touchesTenant = true
    cx.tenantRefs++
    if (cx.firstTenantTable === null) cx.firstTenantTable = key
    return { key, kind: 'tenant', col }
  }
  if (f.referenceTables.has(key)) {
    if (forWrite) throw new Refuse('read_only_relation', '42501', `table "${key}" is a reference table: tenant sessions may read it but not change it`)
    return { key, kind: 'reference' }
  }
  if (SYSTEM_SCHEMAS.has(sch)) {
    if (forWrite) throw new Refuse('read_only_relation', '42501', `"${key}" is a system catalog: tenant sessions may not change it`)
    return { key, kind: 'system' }
  }
  if (f.unknown === 'reject')
    throw new Refuse(
      'unknown_relation',
      '42501',
      `relation "${key}" is not known to pgtenant (neither a tenant table nor a reference table)`,
      'add it to tenant.tables or tenant.reference, or refresh the schema',
    )
  return { key, kind: 'unknown' }
}

/** The scope inside a WITH clause: walks each CTE's query (fencing one that reads tenant rows) and adds its name. */
export function withScope(cx: RewriteState, w: WithClause | undefined, scope: Scope | null): Scope | null {
  if (!w) return scope
  const s: Scope = { ctes: new Set(), parent: scope }
  const ctes = (w.ctes ?? []).map((c) => field(c, 'CommonTableExpr')!)
  if (w.recursive) for (const cte of ctes) s.ctes.add(cte.ctename!)
  for (const cte of ctes) {
    const before = cx.tenantRefs
    cx.walk.body(cte.ctequery!, s)
    // a recursive CTE is never inlined (and cannot take OFFSET): it is a fence already
    const sel = field(cte.ctequery, 'SelectStmt')
    if ((cx.tenantRefs !== before || guarding(cx)) && sel && !refersTo(cte.ctequery, cte.ctename!)) fenceSubselect(cx, sel)
    s.ctes.add(cte.ctename!)
  }
  return s
}
