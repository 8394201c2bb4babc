// Which system relations a tenant session may read: an allow list. Drivers and ORMs introspect the
// catalogs (pg_class, pg_attribute, pg_type, information_schema, …), so those stay readable; what shows
// other sessions (pg_stat_activity, pg_prepared_statements and pg_cursors of the pooled connection,
// pg_locks), other tenants' values or counts (pg_statistic, pg_stats, pg_stat_*_tables), or data
// (pg_largeobject) is refused. information_schema is readable as a whole (its views show metadata only).

/** pg_catalog relations tenant sessions may read (PostgreSQL 15). */
const CATALOG_ALLOWED = new Set([
  // base catalogs
  'pg_aggregate',
  'pg_am',
  'pg_amop',
  'pg_amproc',
  'pg_attrdef',
  'pg_attribute',
  'pg_auth_members',
  'pg_cast',
  'pg_class',
  'pg_collation',
  'pg_constraint',
  'pg_conversion',
  'pg_database',
  'pg_db_role_setting',
  'pg_default_acl',
  'pg_depend',
  'pg_description',
  'pg_enum',
  'pg_event_trigger',
  'pg_extension',
  'pg_foreign_data_wrapper',
  'pg_foreign_server',
  'pg_foreign_table',
  'pg_index',
  'pg_inherits',
  'pg_init_privs',
  'pg_language',
  'pg_largeobject_metadata',
  'pg_namespace',
  'pg_opclass',
  'pg_operator',
  'pg_opfamily',
  'pg_parameter_acl',
  'pg_partitioned_table',
  'pg_policy',
  'pg_proc',
  'pg_publication',
  'pg_publication_namespace',
  'pg_publication_rel',
  'pg_range',
  'pg_rewrite',
  'pg_seclabel',
  'pg_sequence',
  'pg_shdepend',
  'pg_shdescription',
  'pg_shseclabel',
  'pg_statistic_ext',
  'pg_tablespace',
  'pg_transform',
  'pg_trigger',
  'pg_ts_config',
  'pg_ts_config_map',
  'pg_ts_dict',
  'pg_ts_parser',
  'pg_ts_template',
  'pg_type',
  // views
  'pg_available_extension_versions',
  'pg_available_extensions',
  'pg_group',
  'pg_indexes',
  'pg_matviews',
  'pg_policies',
  'pg_roles',
  'pg_rules',
  'pg_seclabels',
  'pg_sequences',
  'pg_settings',
  'pg_tables',
  'pg_timezone_abbrevs',
  'pg_timezone_names',
  'pg_user',
  'pg_views',
  'pg_publication_tables',
])

const REASONS: readonly [RegExp, string][] = [
  [/^(pg_stat_activity|pg_stat_statements.*|pg_locks|pg_prepared_xacts|pg_stat_ssl|pg_stat_gssapi|pg_backend_memory_contexts)$/, 'it shows other sessions'],
  [/^(pg_prepared_statements|pg_cursors)$/, "it shows the pooled server connection's statements and cursors, which may be other clients'"],
  [/^(pg_statistic|pg_statistic_ext_data|pg_stats|pg_stats_ext|pg_stats_ext_exprs)$/, "its column statistics show other tenants' values"],
  [/^(pg_stat_|pg_statio_)/, "its counters show other tenants' row counts and activity"],
  [/^pg_largeobject$/, 'it holds every large object'],
]

/** Relations refused in any schema (extensions install them in public). */
const ANY_SCHEMA_DENIED = /^(pg_stat_statements|pg_stat_statements_info|pg_stat_activity|pg_stats|pg_statistic)$/

/** The refusal message for reading relation `schema.rel` (a system schema, or any schema for the names above), or null. */
export function relationRefusal(schema: string, rel: string): string | null {
  const why = REASONS.find(([re]) => re.test(rel))?.[1]
  if (schema === 'pg_catalog') {
    if (CATALOG_ALLOWED.has(rel)) return null
    return `reading "pg_catalog.${rel}" is not allowed for tenant sessions: ${why ?? "it is not on pgtenant's list of catalogs that show no other tenant's or session's data"}`
  }
  if (schema === 'information_schema') return null
  if (ANY_SCHEMA_DENIED.test(rel)) return `reading "${rel}" is not allowed for tenant sessions: ${why ?? 'it shows other sessions'}`
  return null
}
