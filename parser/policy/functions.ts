// Which functions a tenant session may call: an allow list, never a deny list.
//
// A function call is allowed when it is known not to run SQL text, read whole tables, files or
// other databases, show other sessions, or change session state behind the proxy:
//  - pg_catalog functions: the non-volatile ones of PostgreSQL 15 (pg15-functions.ts, generated from
//    pg_proc) minus the reviewed exclusions below, plus the reviewed volatile ones below. Any other
//    pg_catalog name (volatile, or unknown to this list, e.g. new in a later PostgreSQL) is refused.
//  - functions in other schemas (the application's, extensions'): their bodies run their own SQL,
//    which the proxy does not rewrite, so they are refused unless the configuration lists them
//    (`tenant.functions`) or allows them all (`tenant.user_functions: allow`). Known extension
//    functions that reach outside the tenant (dblink, pg_stat_statements, …) stay refused even then.
// set_config() is decided by the settings policy (policy/settings.ts), not here.
import { PG15_NON_VOLATILE_FUNCTIONS } from './pg15-functions.js'

/** Non-volatile pg_catalog functions that still reach outside the tenant filter. */
const EXCLUDED: ReadonlyMap<string, string> = new Map([
  ['table_to_xml', 'it reads a whole table'],
  ['table_to_xmlschema', 'it reads a whole table'],
  ['table_to_xml_and_xmlschema', 'it reads a whole table'],
  ['schema_to_xml', 'it reads whole tables'],
  ['schema_to_xmlschema', 'it reads whole tables'],
  ['schema_to_xml_and_xmlschema', 'it reads whole tables'],
  ['database_to_xml', 'it reads whole tables'],
  ['database_to_xmlschema', 'it reads whole tables'],
  ['database_to_xml_and_xmlschema', 'it reads whole tables'],
  ['pg_cursor', "it shows the cursors of the pooled server connection (other clients')"],
  ['pg_prepared_statement', "it shows the prepared statements of the pooled server connection (other clients')"],
  ['pg_get_replication_slots', 'it shows replication state'],
  ['pg_config', 'it shows the server build'],
  ['pg_mcv_list_items', "it shows planner statistics (other tenants' values)"],
])
const EXCLUDED_PREFIXES: readonly [string, string][] = [['pg_stat_', "it shows other sessions' activity or other tenants' row counts"]]

/** Reviewed volatile pg_catalog functions: they neither read outside the tenant nor leave session state. */
const VOLATILE_ALLOWED = new Set([
  'random',
  'setseed',
  'clock_timestamp',
  'timeofday',
  'gen_random_uuid',
  'nextval',
  'currval',
  'lastval',
  'pg_sleep',
  'pg_sleep_for',
  'pg_sleep_until',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  'pg_notify',
  'txid_status',
  'pg_xact_status',
])

/** Why a well-known volatile pg_catalog function is refused (for a message that says why). */
const VOLATILE_REASONS: readonly [RegExp, string][] = [
  [
    /^(query_to_xml|query_to_xmlschema|query_to_xml_and_xmlschema|cursor_to_xml|cursor_to_xmlschema|ts_rewrite|ts_stat)$/,
    'it runs SQL text that pgtenant does not rewrite',
  ],
  [
    /^(pg_read_file|pg_read_binary_file|pg_ls_|pg_stat_file|lo_|loread|lowrite|pg_current_logfile)/,
    'it reads files or large objects outside the tenant filter',
  ],
  [
    /^(pg_advisory_lock|pg_advisory_unlock|pg_try_advisory_lock|pg_advisory_lock_shared|pg_try_advisory_lock_shared|pg_advisory_unlock_shared|pg_advisory_unlock_all)$/,
    'a session-level advisory lock would stay on the pooled server connection (use the _xact_ variants)',
  ],
  [/^setval$/, 'it changes a sequence shared by every tenant'],
  [/^(pg_terminate_backend|pg_cancel_backend)$/, 'it acts on other sessions'],
  [
    /^(pg_relation_size|pg_table_size|pg_total_relation_size|pg_indexes_size|pg_database_size|pg_tablespace_size)$/,
    "its result depends on other tenants' rows",
  ],
]

/** Extension functions that stay refused even with `user_functions: allow`. */
const USER_DENIED =
  /^(dblink.*|pg_stat_statements.*|pg_read_.*|lo_.*|pg_ls_.*|pg_file_.*|pg_logdir_ls|postgres_fdw_.*|pg_buffercache_pages|pg_visibility.*|heap_page_items|get_raw_page|bt_page_items|pgstattuple.*|pg_relpages)$/

const NON_VOLATILE: ReadonlySet<string> = new Set(PG15_NON_VOLATILE_FUNCTIONS.split(/\s+/).filter((s) => s.length > 0))

/** How functions outside pg_catalog are treated (from `tenant.functions` / `tenant.user_functions`). */
export interface UserFunctionPolicy {
  /** allow: every function outside pg_catalog may be called; reject: only those in `allowed`. */
  readonly user: 'allow' | 'reject'
  /** "name" or "schema.name", lower-cased. */
  readonly allowed: ReadonlySet<string>
  /** Names (lower-cased) of functions outside pg_catalog in the database: an unqualified call of a
   *  pg_catalog name among them may run that function instead (PostgreSQL picks the closest argument types). */
  readonly shadowed?: ReadonlySet<string>
}

export const DEFAULT_USER_FUNCTION_POLICY: UserFunctionPolicy = { user: 'reject', allowed: new Set() }

/** Is `name` a pg_catalog function pgtenant knows about (allowed or not)? */
function isCatalogName(name: string): boolean {
  return name === 'set_config' || NON_VOLATILE.has(name) || VOLATILE_ALLOWED.has(name) || VOLATILE_REASONS.some(([re]) => re.test(name))
}

/**
 * The refusal message for calling `schema.name` in a tenant session, or null when it is allowed.
 * `schema` is null for an unqualified name (pg_catalog is searched first, as PostgreSQL does).
 */
export function functionRefusal(schema: string | null, name: string, policy: UserFunctionPolicy = DEFAULT_USER_FUNCTION_POLICY): string | null {
  const n = name.toLowerCase()
  const s = schema?.toLowerCase() ?? null
  if (s === 'pg_catalog') return catalogRefusal(n)
  let shadowed = false
  if (s === null && isCatalogName(n)) {
    const refusal = catalogRefusal(n)
    if (refusal !== null || !policy.shadowed?.has(n)) return refusal
    shadowed = true // allowed as pg_catalog's, but the database has a function of that name elsewhere: the user-function policy decides too
  }
  const qualified = s ? `${s}.${n}` : n
  if (USER_DENIED.test(n)) return `function ${qualified}() is not allowed for tenant sessions: it reaches outside the tenant filter`
  if (policy.user === 'allow' || policy.allowed.has(n) || policy.allowed.has(qualified)) return null
  if (shadowed)
    return `function ${n}() is not allowed for tenant sessions: the database has a function ${n}() outside pg_catalog (an extension's or the application's), which PostgreSQL may call instead; it runs its own SQL, which pgtenant does not rewrite (list it in tenant.functions if it is tenant-safe, or call pg_catalog.${n}())`
  return `function ${qualified}() is not allowed for tenant sessions: functions outside pg_catalog run their own SQL, which pgtenant does not rewrite (list it in tenant.functions if it is tenant-safe)`
}

function catalogRefusal(n: string): string | null {
  if (n === 'set_config') return null // decided by the settings policy
  const ex = EXCLUDED.get(n) ?? EXCLUDED_PREFIXES.find(([p]) => n.startsWith(p))?.[1]
  if (ex) return `function ${n}() is not allowed for tenant sessions: ${ex}`
  if (NON_VOLATILE.has(n) || VOLATILE_ALLOWED.has(n)) return null
  const why = VOLATILE_REASONS.find(([re]) => re.test(n))?.[1]
  return `function ${n}() is not allowed for tenant sessions: ${why ?? 'it is not on the list of pg_catalog functions known to stay inside the tenant (volatile or unknown)'}`
}
