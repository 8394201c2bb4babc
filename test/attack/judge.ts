// The attack suite's judges (lib.ts re-exports them): the no-leak scanner (other tenants' markers in
// anything a client received) and the comparison of an outcome with the one-tenant database's.
import { parseSync } from 'libpg-query'
import type { Outcome, ResultSet } from './lib.js'
import { TENANTS, isTenantColumn } from '../oracle/facts.js'

// ------------------------------------------------------------------ the no-leak scanner

const LABEL: Record<string, string> = { acme: 'Acme', globex: 'Globex', initech: 'Initech', "o'hare": "O'Hare" }
/** A tenant name reduced to letters (user names, markers). */
export const SLUG = (t: string): string => t.replace(/[^a-z]/g, '')

/**
 * Markers of tenant `t`'s data: fragments that occur in (nearly) every seeded value of t and in
 * no value of another tenant: its e-mail domain, "<Label> Company/User/Project/task/…", "(Label)",
 * key-<slug>-, the capitalised label (error messages that quote only a token of a value), and a
 * tenant column holding t in JSON/XML/text output.
 */
export function markersOf(t: string): string[] {
  const L = LABEL[t]
  const s = SLUG(t)
  const m = [
    `@${s}.example`,
    `key-${s}-`,
    `(${L})`,
    L,
    ...['Company', 'User', 'Project', 'task', 'comment', 'category', 'account', 'key'].map((w) => `${L} ${w}`),
  ]
  m.push(
    `"tenant_id":"${t}"`,
    `"tenant_id": "${t}"`,
    `"org":"${t}"`,
    `"org": "${t}"`,
    `<tenant_id>${t}</tenant_id>`,
    `<org>${t}</org>`,
    `tenant_id = '${t.replace(/'/g, "''")}'`,
  )
  return m
}

/** Normalise the escapes a value can come back in (XML entities, doubled quotes, backslash quotes, hex bytea). */
export function normalise(text: string): string {
  let s = text
  s = s.replace(/\\\\x([0-9a-fA-F]{8,})|\\x([0-9a-fA-F]{8,})/g, (m, a: string, b: string) => {
    const hex = a ?? b
    try {
      return m + ' ' + Buffer.from(hex.length % 2 ? hex.slice(0, -1) : hex, 'hex').toString('utf8')
    } catch {
      return m
    }
  })
  s = s
    .replace(/&apos;|&#39;|&#x27;|''|\\'|\\u0027/g, "'")
    .replace(/&quot;|\\"/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
  return s
}

export interface Leak {
  tenant: string
  marker: string
  context: string
}

/** String constants anywhere in a parse tree. */
function collectStrings(node: unknown, out: string[], depth = 0): void {
  if (depth > 200 || node === null || typeof node !== 'object') return
  if (Array.isArray(node)) {
    for (const x of node) collectStrings(x, out, depth + 1)
    return
  }
  for (const [k, v] of Object.entries(node)) {
    if (typeof v === 'string' && (k === 'sval' || k === 'bsval')) out.push(v)
    else collectStrings(v, out, depth + 1)
  }
}

/**
 * The string constants of SQL a client sent, decoded as PostgreSQL reads them (E'…' escapes,
 * U&'…', $$…$$, continuations): a client that spelt its own value `E'key\x2dacme-3'` and got it
 * back in an error (a unique violation) wrote that value itself. Unparsable text adds nothing.
 */
export function sentValues(statements: string[]): string {
  const out: string[] = []
  for (const sql of statements) {
    try {
      collectStrings(parseSync(sql), out)
    } catch {
      // not SQL the server would run: only its raw text counts as echo
    }
  }
  return out.join('\n')
}

/**
 * Values of tenants other than `own` in `text`. Markers that the attacker wrote itself
 * (`echo`: the SQL it sent, as text and as the values of its string constants) are not evidence
 * and are skipped. Case-sensitive for the bare label (Globex), case-insensitive for the rest
 * (lower(), upper() output).
 */
export function scanLeaks(text: string, own: string, echo: string[] = []): Leak[] {
  const norm = normalise(text)
  const lower = norm.toLowerCase()
  const echoLower = normalise(echo.join('\n') + '\n' + sentValues(echo)).toLowerCase()
  const out: Leak[] = []
  for (const t of TENANTS) {
    if (t === own) continue
    for (const mk of markersOf(t)) {
      const bare = mk === LABEL[t]
      if (bare ? echoLower.includes(mk.toLowerCase()) : echoLower.includes(mk.toLowerCase())) continue
      const i = bare ? norm.indexOf(mk) : lower.indexOf(mk.toLowerCase())
      if (i < 0) continue
      // The bare label must stand alone (not inside an identifier the attacker spelt).
      if (bare && /[A-Za-z0-9_]/.test(norm[i + mk.length] ?? '')) continue
      out.push({ tenant: t, marker: mk, context: norm.slice(Math.max(0, i - 60), i + mk.length + 60).replace(/\s+/g, ' ') })
      break
    }
  }
  return out
}

/** Tenant-named result columns holding another tenant (the harness's rule). */
export function foreignTenantColumns(results: ResultSet[], own: string, allowed: Set<string>): string[] {
  const bad = new Set<string>()
  for (const r of results) {
    const idx = r.fields.map((f, i) => (isTenantColumn(f) ? i : -1)).filter((i) => i >= 0)
    for (const row of r.rows) for (const i of idx) if (row[i] !== null && row[i] !== own && !allowed.has(String(row[i]))) bad.add(String(row[i]))
  }
  return [...bad]
}

// ------------------------------------------------------------------ comparison

function rowKeys(o: Outcome): string[][] {
  return o.results.map((r) => r.rows.map((x) => JSON.stringify(x)).sort())
}

/** Differences between the proxy's and the direct outcome ([] = oracle-equal). Any error on both sides is equal. */
export function compareOutcomes(got: Outcome, exp: Outcome, allowRefusal: boolean): string[] {
  if (!exp.ok && !got.ok) return []
  if (exp.ok && !got.ok) return allowRefusal ? [] : [`failed through the proxy (${got.code} ${got.message}) but succeeds on only_T`]
  if (!exp.ok && got.ok)
    return [`succeeded through the proxy (${got.results.map((r) => `${r.command} ${r.rowCount}`).join('; ')}) but fails on only_T: ${exp.code} ${exp.message}`]
  const p: string[] = []
  if (got.results.length !== exp.results.length) p.push(`${got.results.length} result(s) vs expected ${exp.results.length}`)
  const gk = rowKeys(got)
  const ek = rowKeys(exp)
  for (let i = 0; i < Math.min(got.results.length, exp.results.length); i++) {
    const g = got.results[i]
    const e = exp.results[i]
    if (g.command !== e.command) p.push(`#${i + 1}: command ${g.command} vs ${e.command}`)
    if (g.rowCount !== e.rowCount) p.push(`#${i + 1}: rowCount ${g.rowCount} vs ${e.rowCount}`)
    if (JSON.stringify(gk[i]) !== JSON.stringify(ek[i])) {
      const extra = gk[i].filter((x) => !ek[i].includes(x)).slice(0, 3)
      const missing = ek[i].filter((x) => !gk[i].includes(x)).slice(0, 3)
      p.push(
        `#${i + 1}: rows differ (${gk[i].length} vs ${ek[i].length})${extra.length ? ' extra ' + extra.join(' ') : ''}${missing.length ? ' missing ' + missing.join(' ') : ''}`,
      )
    }
  }
  const gc = [...got.copy].sort()
  const ec = [...exp.copy].sort()
  if (JSON.stringify(gc) !== JSON.stringify(ec))
    p.push(
      `COPY data differs (${gc.length} vs ${ec.length} lines)${gc
        .filter((x) => !ec.includes(x))
        .slice(0, 2)
        .map((x) => ' extra ' + x)
        .join('')}`,
    )
  return p
}
