// Which settings a tenant session may change, by any route (SET, SET LOCAL, set_config() anywhere in a
// statement, the startup packet's options): an allow list. Settings that change how the server lexes
// text (client_encoding, standard_conforming_strings, backslash_quote, …), who the session is (role,
// session_authorization) or how names resolve behind the proxy's back (search_path outside SET) are
// not on it. Custom settings with a dot (app.user_id, …) are allowed: they only hold values.

/** Settings tenant sessions may change (lower-case). */
const ALLOWED = new Set([
  'application_name',
  'datestyle',
  'intervalstyle',
  'timezone',
  'extra_float_digits',
  'bytea_output',
  'client_min_messages',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'idle_session_timeout',
  'search_path', // SET only: tracked and replayed by the proxy (set_config of it is refused below)
  'work_mem',
  'hash_mem_multiplier',
  'temp_buffers',
  'default_transaction_isolation',
  'default_transaction_read_only',
  'default_transaction_deferrable',
  'transaction_isolation',
  'transaction_read_only',
  'transaction_deferrable',
  'transaction',
  'session characteristics',
  'transaction snapshot',
  'seed',
  'synchronous_commit',
  'random_page_cost',
  'seq_page_cost',
  'cpu_tuple_cost',
  'cpu_index_tuple_cost',
  'cpu_operator_cost',
  'effective_cache_size',
  'effective_io_concurrency',
  'parallel_setup_cost',
  'parallel_tuple_cost',
  'max_parallel_workers_per_gather',
  'min_parallel_table_scan_size',
  'min_parallel_index_scan_size',
  'jit',
  'jit_above_cost',
  'jit_inline_above_cost',
  'jit_optimize_above_cost',
  'join_collapse_limit',
  'from_collapse_limit',
  'geqo',
  'geqo_threshold',
  'plan_cache_mode',
  'cursor_tuple_fraction',
  'constraint_exclusion',
  'default_statistics_target',
  'default_text_search_config',
  'gin_fuzzy_search_limit',
  'xmlbinary',
  'xmloption',
  'lc_monetary',
  'lc_numeric',
  'lc_time',
  'row_security',
  'array_nulls',
  'quote_all_identifiers',
  'client_encoding', // only UTF8 (valueRefusal)
  'standard_conforming_strings', // only on (valueRefusal)
])

/** The refusal message for changing `name` in a tenant session, or null when allowed. */
export function settingRefusal(name: string): string | null {
  const n = name.toLowerCase()
  if (ALLOWED.has(n) || n.startsWith('enable_')) return null
  if (n.includes('.')) return null // a custom placeholder setting: holds a value, changes nothing
  if (n === 'role' || n === 'session_authorization') return `changing "${n}" is not allowed for tenant sessions: it would change who the session is`
  return `changing "${n}" is not allowed for tenant sessions: it is not on pgtenant's list of settings that cannot change how statements are read or who runs them`
}

/** For the settings whose value matters to the splicer: the refusal for `value`, or null. */
export function settingValueRefusal(name: string, value: string | null): string | null {
  const n = name.toLowerCase()
  const v = value?.toLowerCase().trim() ?? null
  if (n === 'client_encoding' && !(v !== null && ['utf8', 'utf-8', 'unicode'].includes(v)))
    return 'client_encoding must stay UTF8 for tenant sessions: pgtenant reads the text as UTF-8'
  if (n === 'standard_conforming_strings' && !(v !== null && ['on', 'true', 'yes', '1', 't', 'y'].includes(v)))
    return 'standard_conforming_strings must stay on for tenant sessions: pgtenant reads string literals that way'
  return null
}

/** Settings set_config() may change inside a statement (transaction-local only): the allow list minus the tracked and lexing ones. */
export function setConfigRefusal(name: string): string | null {
  const n = name.toLowerCase()
  if (
    n === 'search_path' ||
    n === 'client_encoding' ||
    n === 'standard_conforming_strings' ||
    n === 'transaction' ||
    n === 'session characteristics' ||
    n === 'transaction snapshot' ||
    n === 'seed'
  )
    return `set_config('${n}', …) is not allowed for tenant sessions: use SET ${n}, which pgtenant tracks`
  return settingRefusal(n)
}
