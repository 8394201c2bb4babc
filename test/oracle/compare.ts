// The differential oracle (harness.ts), its comparing half: one statement run on both sides (the
// one-tenant database directly, the all-tenant database rewritten or through pgtenant), the rows, the
// data changes and the errors compared, and the negative corpus (statements that must be refused).
import { TENANTS, isTenantColumn } from './facts.js'
import {
  clientTarget,
  type OracleEnv,
  type OracleTarget,
  type ExecOk,
  type ExecOutcome,
  type Protocol,
  type CorpusEntry,
  type NegativeEntry,
} from './harness.js'

// ------------------------------------------------------------------ comparison

export interface RunOptions {
  /** Rows compared in order. */
  ordered?: boolean
  /** Do not compare returned rows (only command, row count, columns and data). */
  ignoreRows?: boolean
  /** Compare only command tag, row count and data, not the returned rows (EXPLAIN ANALYZE output, plans). */
  ignore_rows?: boolean
  /** Restrict protocols (multi-statement entries can only run in the simple protocol). */
  protocols?: Protocol[]
  /** A refusal by the rewriter is acceptable (fuzz mutations); otherwise a refusal is a failure. */
  allowRefusal?: boolean
  /** A refusal is acceptable when the original fails too (expect_error entries). */
  allowRefusalIfOriginalFails?: boolean
}

export interface RunResult {
  id: string
  sql: string
  params?: unknown[]
  tenant: string
  protocol: Protocol
  pass: boolean
  /** Refused by the rewriter (acceptable only with allowRefusal). */
  refused: boolean
  /** A row of another tenant was returned or another tenant's data changed. */
  leak: boolean
  problems: string[]
  expected: ExecOutcome
  got: ExecOutcome
}

function rowKey(r: unknown[]): string {
  return JSON.stringify(r)
}

function multisetDiff(a: string[], b: string[]): { onlyA: string[]; onlyB: string[] } {
  const counts = new Map<string, number>()
  for (const x of a) counts.set(x, (counts.get(x) ?? 0) + 1)
  const onlyB: string[] = []
  for (const x of b) {
    const c = counts.get(x) ?? 0
    if (c > 0) counts.set(x, c - 1)
    else onlyB.push(x)
  }
  const onlyA: string[] = []
  for (const [x, c] of counts) for (let i = 0; i < c; i++) onlyA.push(x)
  return { onlyA, onlyB }
}

const MAX_DIFF = 8
function listRows(label: string, rows: string[]): string {
  if (rows.length === 0) return ''
  const shown = rows.slice(0, MAX_DIFF).map((r) => `      ${r}`)
  if (rows.length > MAX_DIFF) shown.push(`      … ${rows.length - MAX_DIFF} more`)
  return `    ${label} (${rows.length}):\n${shown.join('\n')}\n`
}

/** Values of tenant columns in result rows that are not the session tenant. */
function foreignTenantValues(out: ExecOk, tenant: string): string[] {
  const idx = out.fields.map((f, i) => (isTenantColumn(f) ? i : -1)).filter((i) => i >= 0)
  const bad = new Set<string>()
  for (const r of out.rows) for (const i of idx) if (r[i] !== null && r[i] !== tenant) bad.add(String(r[i]))
  return [...bad]
}

async function safeRollback(t: OracleTarget): Promise<void> {
  try {
    await t.rollback()
  } catch {
    /* connection already broken */
  }
}

interface SideRun {
  out: ExecOutcome
  snap?: Record<string, string>
}

async function runSide(target: OracleTarget, sql: string, params: unknown[] | undefined, protocol: Protocol): Promise<SideRun> {
  await target.begin()
  await target.control('SELECT oracle_reset()')
  const out = await target.exec(sql, params, protocol)
  if (!out.ok) return { out }
  const snapRows = await target.control('SELECT oracle_snapshot()')
  const raw = snapRows[0]?.[0]
  return { out, snap: (typeof raw === 'string' ? JSON.parse(raw) : raw) as Record<string, string> }
}

/**
 * Runs `sql` for `tenant` on `target` (the rewriter or the proxy, on all_tenants) and
 * directly on only_<tenant>, and compares results and data. Both transactions are rolled back.
 */
export async function runStatement(
  env: OracleEnv,
  id: string,
  sql: string,
  params: unknown[] | undefined,
  tenant: string,
  target: OracleTarget,
  protocol: Protocol,
  opts: RunOptions = {},
): Promise<RunResult> {
  const direct = clientTarget(env.onlyClients.get(tenant)!, { setTenant: tenant, label: 'direct' })
  const problems: string[] = []
  let leak = false
  let refused = false
  let exp: SideRun = { out: { ok: false, code: 'XXXXX', message: 'not run' } }
  let got: SideRun = { out: { ok: false, code: 'XXXXX', message: 'not run' } }
  try {
    ;[exp, got] = await Promise.all([runSide(direct, sql, params, protocol), runSide(target, sql, params, protocol)])
    const e = exp.out
    const g = got.out
    if (!g.ok && g.refused) refused = true
    if (!e.ok && !g.ok) {
      if (!g.refused && e.code.slice(0, 2) !== g.code.slice(0, 2))
        problems.push(`both failed, but SQLSTATE ${g.code} (${g.message}) vs expected ${e.code} (${e.message})`)
      if (g.refused && !opts.allowRefusal && !opts.allowRefusalIfOriginalFails)
        problems.push(`refused by the rewriter: ${g.code} ${g.message} (the original also fails on only_${tenant}: ${e.code} ${e.message})`)
    } else if (e.ok && !g.ok) {
      if (g.refused) {
        if (!opts.allowRefusal) problems.push(`refused by the rewriter: ${g.code} ${g.message}`)
      } else problems.push(`rewritten statement failed: ${g.code} ${g.message}`)
    } else if (!e.ok && g.ok) {
      problems.push(`original fails on only_${tenant} (${e.code} ${e.message}) but the rewritten statement succeeded (${g.command} ${g.rowCount})`)
      const foreign = foreignTenantValues(g, tenant)
      if (foreign.length) {
        leak = true
        problems.push(`LEAK: returned rows of tenant(s) ${foreign.join(', ')}`)
      }
    } else if (e.ok && g.ok) {
      // Tenant-named columns may legitimately hold another tenant's name (a literal); only values the original did not return count.
      const allowed = new Set(foreignTenantValues(e, tenant))
      const foreign = foreignTenantValues(g, tenant).filter((v) => !allowed.has(v))
      if (foreign.length) {
        leak = true
        problems.push(`LEAK: returned rows of tenant(s) ${foreign.join(', ')}`)
      }
      if (e.command !== g.command) problems.push(`command tag ${g.command} vs expected ${e.command}`)
      if (e.rowCount !== g.rowCount) problems.push(`rowCount ${g.rowCount} vs expected ${e.rowCount}`)
      if (JSON.stringify(e.fields) !== JSON.stringify(g.fields)) problems.push(`columns ${JSON.stringify(g.fields)} vs expected ${JSON.stringify(e.fields)}`)
      const ek = opts.ignoreRows ? [] : e.rows.map(rowKey)
      const gk = opts.ignoreRows ? [] : g.rows.map(rowKey)
      const { onlyA, onlyB } = multisetDiff(ek, gk)
      if (onlyA.length || onlyB.length) {
        problems.push(
          `rows differ (expected ${ek.length}, got ${gk.length}):\n` +
            listRows('missing (expected, not returned)', onlyA) +
            listRows('extra (returned, not expected)', onlyB),
        )
      } else if (opts.ordered && JSON.stringify(ek) !== JSON.stringify(gk)) {
        problems.push(`same rows, different order:\n` + listRows('expected', ek) + listRows('got', gk))
      }
      // Data: the tenant's rows and reference tables as on only_T.
      const es = exp.snap ?? {}
      const gs = got.snap ?? {}
      for (const key of [...new Set([...Object.keys(es), ...Object.keys(gs)])].sort()) {
        const [tbl, grp] = splitKey(key)
        if ((grp === tenant || grp === '*') && es[key] !== gs[key]) {
          const [ea, ga] = await Promise.all([
            direct.control('SELECT oracle_rows($1, $2)', [tbl, grp]),
            target.control('SELECT oracle_rows($1, $2)', [tbl, grp]),
          ])
          const d = multisetDiff(jsonRows(ea), jsonRows(ga))
          problems.push(
            `data differs in ${tbl} for ${grp === '*' ? 'the reference table' : `tenant ${grp}`}:\n` +
              listRows('expected, missing', d.onlyA) +
              listRows('unexpected', d.onlyB),
          )
        }
      }
    }
    // Every other tenant's rows (and NULL-tenant rows) exactly as in the baseline, whatever the outcome.
    if (got.snap) {
      const gs = got.snap
      for (const key of [...new Set([...Object.keys(gs), ...Object.keys(env.baseline)])].sort()) {
        const [tbl, grp] = splitKey(key)
        if (grp === tenant || grp === '*' || gs[key] === env.baseline[key]) continue
        leak = true
        const [ba, ga] = await Promise.all([
          env.inspectClient.query('SELECT oracle_rows($1, $2) AS r', [tbl, grp]).then((r) => [[r.rows[0].r]]),
          target.control('SELECT oracle_rows($1, $2)', [tbl, grp]),
        ])
        const d = multisetDiff(jsonRows(ba), jsonRows(ga))
        problems.push(
          `LEAK: another tenant's data changed in ${tbl} (tenant ${grp}):\n` + listRows('before, now gone', d.onlyA) + listRows('after, new', d.onlyB),
        )
      }
    }
  } catch (err) {
    problems.push(`harness error: ${(err as Error).stack ?? err}`)
  } finally {
    await Promise.all([safeRollback(direct), safeRollback(target)])
    // Prepared statements outlive the transaction: drop them so the entry can run again.
    if (/\bPREPARE\b/i.test(sql)) await Promise.all([direct.control('DEALLOCATE ALL'), target.control('DEALLOCATE ALL')]).catch(() => {})
  }
  return { id, sql, params, tenant, protocol, pass: problems.length === 0, refused, leak, problems, expected: exp.out, got: got.out }
}

function splitKey(key: string): [string, string] {
  const i = key.lastIndexOf('|')
  return [key.slice(0, i), key.slice(i + 1)]
}

function jsonRows(rows: unknown[][]): string[] {
  const v = rows[0]?.[0]
  const arr = (typeof v === 'string' ? JSON.parse(v) : v) as unknown[]
  return (arr ?? []).map((x) => JSON.stringify(x))
}

/** The reusable entry point: one corpus entry, one tenant, one protocol, through `target`. */
export async function runCorpusEntry(env: OracleEnv, entry: CorpusEntry, tenant: string, target: OracleTarget, protocol: Protocol): Promise<RunResult> {
  const r = await runStatement(env, entry.id, entry.sql, entry.params, tenant, target, protocol, {
    ordered: entry.ordered,
    allowRefusal: entry.allow_refusal,
    allowRefusalIfOriginalFails: entry.expect_error,
    ignoreRows: entry.ignore_rows,
  })
  if (entry.isolation_only) {
    // Only isolation counts; keep the other differences as information.
    r.pass = !r.leak && !r.problems.some((p) => p.startsWith('harness error'))
    if (r.pass) r.problems = r.problems.map((p) => `(not oracle-equal by construction) ${p}`)
    return r
  }
  if (r.pass && entry.expect_error && r.expected.ok) {
    r.pass = false
    r.problems.push('entry says expect_error but the original succeeded on only_' + tenant)
  }
  return r
}

/** Protocols an entry runs in: parameterised entries only in the extended protocol. */
export function protocolsFor(entry: { params?: unknown[]; protocols?: Protocol[] }): Protocol[] {
  if (entry.protocols) return entry.protocols
  return entry.params && entry.params.length > 0 ? ['extended'] : ['simple', 'extended']
}

export function tenantsFor(entry: { tenants?: string[] }): string[] {
  return entry.tenants ?? [...TENANTS]
}

/** A readable failure report: statement, tenant, protocol, rewritten SQL, problems. */
export function formatResult(r: RunResult): string {
  const sent = r.got.sent ?? (r.got.ok ? undefined : r.got.sent)
  return [
    `✗ ${r.id}  tenant=${JSON.stringify(r.tenant)} protocol=${r.protocol}${r.leak ? '  ** LEAK **' : ''}`,
    `  sql:       ${oneLine(r.sql)}`,
    r.params ? `  params:    ${JSON.stringify(r.params)}` : '',
    `  rewritten: ${sent ? oneLine(sent) : r.got.ok ? '(unchanged?)' : r.got.refused ? `(refused ${r.got.code}: ${r.got.message})` : '(not sent)'}`,
    `  expected:  ${summary(r.expected)}`,
    `  got:       ${summary(r.got)}`,
    ...r.problems.map((p) => '  - ' + p.trimEnd()),
  ]
    .filter(Boolean)
    .join('\n')
}

function summary(o: ExecOutcome): string {
  return o.ok ? `${o.command} ${o.rowCount} row(s)` : `error ${o.code} ${o.message}${o.refused ? ' [refused]' : ''}`
}

export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim()
}

// ------------------------------------------------------------------ negative corpus

export interface NegativeResult {
  id: string
  entry: NegativeEntry
  protocol: Protocol
  pass: boolean
  leak: boolean
  problems: string[]
  got: ExecOutcome
}

/**
 * Runs a negative entry through `target` (on all_tenants, session tenant = entry.tenant):
 * it must be refused (or, for expect: error, fail) with an accepted SQLSTATE; whatever
 * happens, no data may change and no row of another tenant may come back. If the target
 * does run it, the damage is measured inside the transaction and rolled back.
 */
export async function runNegativeEntry(env: OracleEnv, entry: NegativeEntry, target: OracleTarget, protocol: Protocol): Promise<NegativeResult> {
  const problems: string[] = []
  let leak = false
  let got: ExecOutcome = { ok: false, code: 'XXXXX', message: 'not run' }
  try {
    await target.begin()
    await target.control('SELECT oracle_reset()')
    got = await target.exec(entry.sql, entry.params, protocol)
    const codeOk = entry.sqlstate.length === 0 || (!got.ok && entry.sqlstate.includes(got.code))
    if (got.ok) {
      problems.push(`NOT REFUSED: executed (${got.command} ${got.rowCount})` + (got.sent ? ` as: ${oneLine(got.sent)}` : ''))
      const foreign = got.rows.length ? foreignTenantValues(got, entry.tenant ?? '') : []
      if (foreign.length) {
        leak = true
        problems.push(`LEAK: returned rows of tenant(s) ${foreign.join(', ')}`)
      }
      const snap = JSON.parse(String((await target.control('SELECT oracle_snapshot()'))[0][0])) as Record<string, string>
      const changed = [...new Set([...Object.keys(snap), ...Object.keys(env.baseline)])].filter((k) => snap[k] !== env.baseline[k]).sort()
      if (changed.length) {
        const foreignChanged = changed.filter((k) => splitKey(k)[1] !== entry.tenant)
        if (foreignChanged.length) leak = true
        problems.push(`data changed (rolled back): ${changed.join(', ')}${foreignChanged.length ? '  ** other tenants / reference / NULL-tenant rows **' : ''}`)
      }
    } else if (entry.expect === 'refuse' && got.refused === false) {
      problems.push(`not refused by the rewriter: sent ${got.sent ? oneLine(got.sent) : '?'} and the backend failed with ${got.code} ${got.message}`)
    } else if (!codeOk) {
      problems.push(`refused/failed with SQLSTATE ${got.code} (${got.message}); expected one of ${entry.sqlstate.join(', ')}`)
    }
  } catch (err) {
    problems.push(`harness error: ${(err as Error).stack ?? err}`)
  } finally {
    await safeRollback(target)
  }
  return { id: entry.id, entry, protocol, pass: problems.length === 0, leak, problems, got }
}

export function formatNegative(r: NegativeResult): string {
  return [
    `✗ ${r.id}  tenant=${JSON.stringify(r.entry.tenant)} protocol=${r.protocol}${r.leak ? '  ** LEAK **' : ''}`,
    `  sql:       ${oneLine(r.entry.sql)}`,
    r.entry.params ? `  params:    ${JSON.stringify(r.entry.params)}` : '',
    `  expected:  ${r.entry.expect === 'refuse' ? 'refusal' : 'refusal or error'} with ${r.entry.sqlstate.length ? r.entry.sqlstate.join('/') : 'any SQLSTATE'}`,
    `  got:       ${summary(r.got)}`,
    ...r.problems.map((p) => '  - ' + p),
  ]
    .filter(Boolean)
    .join('\n')
}
