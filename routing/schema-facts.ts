// Schema discovery for the rewriter (pure): the query server/ runs on a backend, and the function
// that turns its rows into parser SchemaFacts.
//
// Run SCHEMA_DISCOVERY_SQL with one parameter: $1 = the default tenant column name
// (TenantConfig.column), e.g. `client.query(SCHEMA_DISCOVERY_SQL, [config.tenant.column])`.
// (schemaDiscoverySql(column) gives the same text with the name spliced in as a quoted literal,
// for the simple protocol.) Then `buildSchemaFacts(rows, config.tenant)`.
//
// How relations are classified:
// - an explicit `tables` entry ("table" = "public.table", or "schema.table") → tenant table with
//   that column;
// - otherwise a relation having the default tenant column → tenant table. That includes views,
//   materialized views and foreign tables: pgtenant cannot look inside a view, so a view that
//   exposes the tenant column is filtered by that column like a table (the view's own query is
//   not rewritten: a view joining other tenants' rows must itself expose a correct column);
// - `reference` entries → reference tables (read-only for tenant sessions);
// - every other relation (including views without the tenant column) is known but neither:
//   `unknown: reject` refuses statements that touch it.
// System schemas (pg_catalog, information_schema) are listed too, so unqualified names like
// pg_class resolve; the parser always allows reading them.
// Rows of kind 'F' name functions the application defined outside the system schemas (not
// extension members): a pg_catalog function name one of them shares is treated as a user function
// (parser/policy/functions.ts, `shadowed`).
import type { SchemaFacts } from '../parser/types.js'
import type { TenantConfig } from '../server/config-types.js'

const QUERY = (column: string) => `SELECT n.nspname::text AS schema,
       c.relname::text AS name,
       c.relkind::text AS kind,
       ta.attname::text AS tenant_column,
       format_type(ta.atttypid, ta.atttypmod) AS tenant_type,
       CASE WHEN n.nspname IN ('pg_catalog', 'information_schema') THEN NULL ELSE
         (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) END AS columns,
       CASE WHEN n.nspname IN ('pg_catalog', 'information_schema') THEN NULL ELSE
         (SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) END AS column_types,
       CASE WHEN n.nspname IN ('pg_catalog', 'information_schema') THEN NULL ELSE
         (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '') END AS generated_columns
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_attribute ta
         ON ta.attrelid = c.oid AND ta.attname = ${column} AND ta.attnum > 0 AND NOT ta.attisdropped
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
UNION ALL
-- functions the application defined outside the system schemas, one row per name (kind 'F'): an
-- unqualified call of a pg_catalog name may resolve to one of them (closer argument types).
-- Extension members are left out: they are installed code like pg_catalog's (citext's max(citext),
-- replace(citext, …)), and those that reach outside the tenant are refused by name (policy/functions.ts).
SELECT DISTINCT n.nspname::text, p.proname::text, 'F', NULL, NULL, NULL::text[], NULL::text[], NULL::text[]
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 1, 2`

/** The discovery query; $1 = the default tenant column name. */
export const SCHEMA_DISCOVERY_SQL = QUERY('$1::name')

/** The same query with the column name as a quoted literal (simple protocol). */
export function schemaDiscoverySql(column: string): string {
  if (column.includes('\0')) throw new Error('tenant column name contains NUL')
  return QUERY(`'${column.replaceAll("'", "''")}'::name`)
}

export interface SchemaRow {
  schema: string
  name: string
  kind: string
  tenant_column?: string | null
  tenant_type?: string | null
  /** text[]: a JS array (node-postgres) or PostgreSQL's text form "{a,b,\"c d\"}". */
  columns?: string[] | string | null
  column_types?: string[] | string | null
  /** text[] of the generated columns (attgenerated), which COPY FROM without a column list leaves out; null: none. */
  generated_columns?: string[] | string | null
}

/** Parse a one-dimensional PostgreSQL array literal of text. */
export function parseTextArray(v: string[] | string | null | undefined): string[] | null {
  if (v === null || v === undefined) return null
  if (Array.isArray(v)) return v
  const s = v.trim()
  if (!s.startsWith('{') || !s.endsWith('}')) return null
  const out: string[] = []
  let i = 1
  const n = s.length - 1
  while (i < n) {
    if (s[i] === '"') {
      let val = ''
      i++
      while (i < n && s[i] !== '"') {
        if (s[i] === '\\') i++
        val += s[i]
        i++
      }
      i++
      out.push(val)
    } else {
      let j = i
      while (j < n && s[j] !== ',') j++
      const raw = s.slice(i, j).trim()
      out.push(raw)
      i = j
    }
    if (s[i] === ',') i++
  }
  return out
}

function qualify(name: string): string {
  return name.includes('.') ? name : `public.${name}`
}

export function buildSchemaFacts(rows: readonly SchemaRow[], tenantConfig: TenantConfig): SchemaFacts {
  const explicit = new Map<string, string>()
  for (const [t, col] of Object.entries(tenantConfig.tables ?? {})) explicit.set(qualify(t), col)
  const reference = new Set((tenantConfig.reference ?? []).map(qualify))
  const tenantTables = new Map<string, string>()
  const tenantColumnTypes = new Map<string, string>()
  const referenceTables = new Set<string>()
  const knownRelations = new Set<string>()
  const columns = new Map<string, readonly string[]>()
  const generatedColumns = new Map<string, ReadonlySet<string>>()
  const shadowed = new Set<string>()
  for (const r of rows) {
    if (r.kind === 'F') {
      shadowed.add(r.name.toLowerCase())
      continue
    }
    const key = `${r.schema}.${r.name}`
    knownRelations.add(key)
    const cols = parseTextArray(r.columns)
    const types = parseTextArray(r.column_types)
    if (cols) columns.set(key, cols)
    const generated = parseTextArray(r.generated_columns)
    if (generated && generated.length > 0) generatedColumns.set(key, new Set(generated))
    const ex = explicit.get(key)
    if (ex !== undefined) {
      tenantTables.set(key, ex)
      const k = cols ? cols.indexOf(ex) : -1
      if (k >= 0 && types && types[k]) tenantColumnTypes.set(key, types[k])
      else if (r.tenant_column === ex && r.tenant_type) tenantColumnTypes.set(key, r.tenant_type)
    } else if (reference.has(key)) {
      referenceTables.add(key)
    } else if (r.tenant_column && r.schema !== 'pg_catalog' && r.schema !== 'information_schema') {
      tenantTables.set(key, r.tenant_column)
      if (r.tenant_type) tenantColumnTypes.set(key, r.tenant_type)
    }
  }
  // configured names that the database does not have (yet) still count: fail closed on them
  for (const [key, col] of explicit)
    if (!tenantTables.has(key)) {
      tenantTables.set(key, col)
      knownRelations.add(key)
    }
  for (const key of reference)
    if (!tenantTables.has(key)) {
      referenceTables.add(key)
      knownRelations.add(key)
    }
  const functionPolicy = {
    user: tenantConfig.user_functions ?? 'reject',
    allowed: new Set((tenantConfig.functions ?? []).map((f) => f.toLowerCase())),
    shadowed,
  }
  return { tenantTables, referenceTables, knownRelations, unknown: tenantConfig.unknown, tenantColumnTypes, columns, generatedColumns, functionPolicy }
}
