// Quoting helpers. standard_conforming_strings is assumed on (the rewriter refuses turning it off),
// so a literal only needs its single quotes doubled; backslashes are ordinary characters.

/** PostgreSQL reserved keywords (and type_func_name keywords) that must be quoted as identifiers. */
const RESERVED = new Set(
  (
    'all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate collation ' +
    'column concurrently constraint create cross current_catalog current_date current_role current_schema current_time ' +
    'current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign freeze ' +
    'from full grant group having ilike in initially inner intersect into is isnull join lateral leading left like limit ' +
    'localtime localtimestamp natural not notnull null offset on only or order outer overlaps placing primary references ' +
    'returning right select session_user similar some symmetric system_user table tablesample then to trailing true union unique ' +
    'user using variadic verbose when where window with'
  ).split(' '),
)

export function quoteIdent(name: string): string {
  if (/^[a-z_][a-z0-9_$]*$/.test(name) && !RESERVED.has(name)) return name
  return '"' + name.replaceAll('"', '""') + '"'
}

/** A SQL string literal for any value without NUL (callers refuse NUL first). */
export function quoteLiteral(value: string): string {
  return "'" + value.replaceAll("'", "''") + "'"
}
