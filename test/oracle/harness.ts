// The differential correctness oracle.
//
// Specification (DESIGN.md, "Rewrite rules"): for tenant T, a statement run with T's
// rewriting on the database holding ALL tenants must return the same multiset of rows and
// leave the same data as the original statement run directly on a copy holding ONLY T's
// rows (plus reference tables).
//
// One PostgreSQL serves: oracle_template (schema + every tenant's rows), all_tenants (a
// copy, tenant-column defaults dropped like a production schema) and only_<tenant> per
// tenant (a copy with the other tenants' rows deleted). Every compared statement runs in a
// transaction that is rolled back, so the databases never change and runs can repeat.
//
// Reuse from a proxy test: build an `OracleTarget` around a node-postgres client connected
// to pgtenant (clientTarget(client)) and call runCorpusEntry(env, entry, tenant, target,
// protocol). The harness's control calls (oracle_reset(), oracle_snapshot(),
// oracle_rows()) are plain function calls on no relation, so they pass through the proxy.
import pg from 'pg'
import { readFileSync, readdirSync, existsSync } from 'node:fs'
import { join, dirname, basename } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import YAML from 'yaml'
import { startPostgres, ROLES, type PgServer } from '../helpers/pg-server.js'
import type { RewriteContext, RewriteResult, SchemaFacts } from '../../parser/types.js'
import { TENANTS, TENANT_TABLES, ALL_DB, TEMPLATE_DB, onlyDb, oracleFacts, isTenantColumn, ORACLE_TENANT_CONFIG } from './facts.js'
import { SCHEMA_DISCOVERY_SQL, buildSchemaFacts } from '../../routing/schema-facts.js'
import { seedSql } from './seed.js'

// ------------------------------------------------------------------ paths

/** The repository root (where package.json is), found from this compiled file's location. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir)
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url))
    dir = up
  }
  return dir
}
/** test/oracle in the source tree (schema.sql and the YAML corpus are not compiled into dist/). */
export const ORACLE_DIR = join(repoRoot(), 'test', 'oracle')

// ------------------------------------------------------------------ corpus

export interface CorpusEntry {
  /** "file:name", unique. */
  id: string
  file: string
  name: string
  sql: string
  /** Bind parameters ($1…): the entry then runs in the extended protocol only. */
  params?: unknown[]
  /** Tenants to run for (default: all). */
  tenants?: string[]
  /** Compare rows in order (only for a total, deterministic ORDER BY). Default: as a multiset. */
  ordered?: boolean
  /** The original statement is expected to fail on only_T (the rewritten one must fail too). */
  expect_error?: boolean
  /** Compare only command tag, row count and data, not the returned rows (EXPLAIN ANALYZE output, plans). */
  ignore_rows?: boolean
  /** Restrict protocols (multi-statement entries can only run in the simple protocol). */
  protocols?: Protocol[]
  /** A refusal by the rewriter is acceptable (e.g. MERGE: "rewritten or refused"); if forwarded it must be oracle-equal. */
  allow_refusal?: boolean
  /** Results cannot be equal by construction (global unique keys): only require that no other tenant's row is returned or changed. */
  isolation_only?: boolean
  /** A known rewriter gap: still run, reported separately (never silently skipped). */
  known_gap?: string
}

export interface NegativeEntry {
  id: string
  name: string
  sql: string
  params?: unknown[]
  /** Session tenant; null = no tenant set. Default: acme. */
  tenant?: string | null
  /** Accepted SQLSTATEs (the rewriter's refusal, or for `expect: error` also the backend's). */
  sqlstate: string[]
  /** refuse: rewriteQuery must refuse (nothing sent). error: a refusal OR an execution error (runtime checks on parameters); either way nothing may change. */
  expect: 'refuse' | 'error'
  known_gap?: string
}

function asArray<T>(v: T | T[] | undefined): T[] | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v : [v]
}

export function loadCorpus(dir = join(ORACLE_DIR, 'corpus')): CorpusEntry[] {
  const out: CorpusEntry[] = []
  const seen = new Set<string>()
  for (const name of readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const file = basename(name, '.yaml')
    const doc = YAML.parse(readFileSync(join(dir, name), 'utf8')) as unknown
    if (!Array.isArray(doc)) throw new Error(`${name}: expected a YAML list of entries`)
    doc.forEach((raw: Record<string, unknown>, i) => {
      if (typeof raw.sql !== 'string') throw new Error(`${name}[${i}]: sql missing`)
      const entryName = String(raw.name ?? `#${i + 1}`)
      const id = `${file}:${entryName}`
      if (seen.has(id)) throw new Error(`duplicate corpus id ${id}`)
      seen.add(id)
      out.push({
        id,
        file,
        name: entryName,
        sql: raw.sql.trim().replace(/;\s*$/, ''),
        params: raw.params as unknown[] | undefined,
        tenants: asArray(raw.tenants as string | string[] | undefined),
        ordered: raw.ordered === true,
        expect_error: raw.expect_error === true,
        allow_refusal: raw.allow_refusal === true,
        ignore_rows: raw.ignore_rows === true,
        isolation_only: raw.isolation_only === true,
        protocols: asArray(raw.protocols as Protocol | Protocol[] | undefined),
        known_gap: raw.known_gap as string | undefined,
      })
    })
  }
  return out
}

export function loadNegative(path = join(ORACLE_DIR, 'negative.yaml')): NegativeEntry[] {
  const doc = YAML.parse(readFileSync(path, 'utf8')) as Record<string, unknown>[]
  return doc.map((raw, i) => ({
    id: `negative:${String(raw.name ?? i + 1)}`,
    name: String(raw.name ?? i + 1),
    sql: String(raw.sql).trim(),
    params: raw.params as unknown[] | undefined,
    tenant: raw.tenant === undefined ? 'acme' : (raw.tenant as string | null),
    sqlstate: (asArray(raw.sqlstate as string | string[]) ?? []).map(String),
    expect: raw.expect === 'error' ? 'error' : 'refuse',
    known_gap: raw.known_gap as string | undefined,
  }))
}

// ------------------------------------------------------------------ execution targets

export type Protocol = 'simple' | 'extended'

export interface ExecOk {
  ok: true
  command: string
  rowCount: number | null
  fields: string[]
  /** Type OIDs of the result columns (used to pair union-compatible statements). */
  types: number[]
  /** Rows as arrays of text values (no client-side type parsing: exact comparison). */
  rows: (string | null)[][]
  /** What was actually sent, when it differs from the input (the rewritten SQL). */
  sent?: string
}
export interface ExecErr {
  ok: false
  /** true: refused by the rewriter, nothing sent. undefined: unknown (e.g. through the proxy). */
  refused?: boolean
  code: string
  message: string
  sent?: string
}
export type ExecOutcome = ExecOk | ExecErr

/** One side of a comparison: a connection + how statements reach the database. */
export interface OracleTarget {
  /** Open the transaction the statement runs in (and set the tenant on the backend if the target needs it). */
  begin(): Promise<void>
  /** Run the statement under test. */
  exec(sql: string, params: unknown[] | undefined, protocol: Protocol): Promise<ExecOutcome>
  /** Run a harness query in the same transaction, unrewritten (function calls only). */
  control(sql: string, params?: unknown[]): Promise<unknown[][]>
  rollback(): Promise<void>
  /** Session tenant change (negative corpus "no tenant"); optional. */
  label?: string
}

const rawTypes = { getTypeParser: () => (v: string) => v }

export async function runOnClient(client: pg.Client, sql: string, params: unknown[] | undefined, protocol: Protocol): Promise<ExecOutcome> {
  try {
    const config: pg.QueryArrayConfig & { queryMode?: string } =
      protocol === 'simple'
        ? { text: sql, rowMode: 'array', types: rawTypes as never }
        : { text: sql, values: (params ?? []) as unknown[], rowMode: 'array', types: rawTypes as never, queryMode: 'extended' }
    const res = (await client.query(config)) as pg.QueryArrayResult | pg.QueryArrayResult[]
    // Multi-statement simple queries: the result of the last statement that is not bookkeeping.
    const list = Array.isArray(res) ? res : [res]
    const r =
      [...list].reverse().find((x) => !['DEALLOCATE', 'CLOSE', 'SET', 'PREPARE', 'DECLARE', 'BEGIN', 'COMMIT', 'SAVEPOINT', 'RELEASE'].includes(x.command)) ??
      list[list.length - 1]
    return {
      ok: true,
      command: r.command,
      rowCount: r.rowCount,
      fields: (r.fields ?? []).map((f) => f.name),
      types: (r.fields ?? []).map((f) => f.dataTypeID),
      rows: (r.rows ?? []) as (string | null)[][],
    }
  } catch (e) {
    const err = e as { code?: string; message?: string }
    return { ok: false, code: err.code ?? 'XXXXX', message: err.message ?? String(e) }
  }
}

/** A target that sends statements as they are on `client` (a direct connection, or a connection to the proxy). */
export function clientTarget(client: pg.Client, opts: { setTenant?: string | null; label?: string } = {}): OracleTarget {
  return {
    label: opts.label,
    async begin() {
      await client.query('BEGIN')
      if (opts.setTenant != null) await client.query(`SELECT set_config('app.tenant', $1, true)`, [opts.setTenant])
    },
    exec: (sql, params, protocol) => runOnClient(client, sql, params, protocol),
    async control(sql, params) {
      const r = await client.query({ text: sql, values: params, rowMode: 'array', types: rawTypes as never })
      return r.rows as unknown[][]
    },
    async rollback() {
      await client.query('ROLLBACK')
    },
  }
}

// ------------------------------------------------------------------ the rewriter

export interface RewriterApi {
  rewrite(sql: string, tenant: string | null): RewriteResult
  facts: SchemaFacts
}

interface ParserModule {
  initParser?: () => unknown
  RewriteCache?: new () => unknown
  rewriteQuery: (sql: string, ctx: RewriteContext, cache?: unknown) => RewriteResult
}

/** Loads parser/index.js (being written in parallel; imported dynamically so this file compiles without it). */
export async function loadRewriter(facts: SchemaFacts = oracleFacts(), opts: { cache?: boolean } = {}): Promise<RewriterApi> {
  const path = join(repoRoot(), 'dist', 'parser', 'index.js')
  if (!existsSync(path)) throw new Error(`rewriter not built: ${path} missing (parser/index.ts not written yet?)`)
  const mod = (await import(pathToFileURL(path).href)) as ParserModule
  if (typeof mod.rewriteQuery !== 'function') throw new Error('parser/index.js exports no rewriteQuery')
  if (mod.initParser) await mod.initParser()
  const cache = opts.cache !== false && mod.RewriteCache ? new mod.RewriteCache() : undefined
  return {
    facts,
    rewrite(sql, tenant) {
      const ctx: RewriteContext = { mode: 'tenant', tenant, setting: 'app.tenant', searchPath: ['public'], facts }
      return mod.rewriteQuery(sql, ctx, cache)
    },
  }
}

/** The sent text of a forwardable result, or the refusal. */
export function rewrittenText(r: RewriteResult): { sql: string } | { refusal: { sqlstate: string; message: string } } {
  const refusal = r.refusal ?? r.statements.find((s) => s.kind === 'refuse')
  if (refusal && refusal.kind === 'refuse') return { refusal }
  if (r.sql !== undefined) return { sql: r.sql }
  const fw = r.statements.filter((s): s is Extract<typeof s, { kind: 'forward' }> => s.kind === 'forward')
  if (fw.length === r.statements.length && fw.length > 0) return { sql: fw.map((s) => s.sql).join('; ') }
  return { refusal: { sqlstate: '0A000', message: `rewriter returned no forwardable SQL (plans: ${r.statements.map((s) => s.kind).join(',')})` } }
}

/**
 * The rewriter side without the proxy: rewriteQuery for `tenant`, then run the result on
 * `client` (connected to all_tenants). Like the proxy, it sets app.tenant on the backend
 * at the start of the transaction.
 */
export function rewriterTarget(client: pg.Client, rewriter: RewriterApi, tenant: string | null): OracleTarget {
  const base = clientTarget(client, { setTenant: tenant, label: 'rewriter' })
  return {
    ...base,
    async exec(sql, params, protocol) {
      let result: RewriteResult
      try {
        result = rewriter.rewrite(sql, tenant)
      } catch (e) {
        return { ok: false, refused: true, code: 'XX000', message: `rewriteQuery threw: ${(e as Error).stack ?? e}` }
      }
      const text = rewrittenText(result)
      if ('refusal' in text) return { ok: false, refused: true, code: text.refusal.sqlstate, message: text.refusal.message }
      const out = await runOnClient(client, text.sql, params, protocol)
      out.sent = text.sql
      // The rewriter's execution-time guard (a tenant value only known at execution) fails the statement with a message
      // starting "pgtenant:": that is a refusal too, made by the backend on the rewriter's behalf.
      if (!out.ok) out.refused = /pgtenant:/.test(out.message)
      return out
    },
  }
}

// ------------------------------------------------------------------ the environment

export interface OracleEnv {
  server: PgServer
  /** SchemaFacts discovered from all_tenants by routing/schema-facts.ts (what the proxy uses; includes column order). */
  facts: SchemaFacts
  /** Committed snapshot of all_tenants (the baseline every other tenant's rows must keep). */
  baseline: Record<string, string>
  /** Connection to all_tenants for the rewriter side (sequential use). */
  allClient: pg.Client
  /** Direct connection to only_<tenant>, per tenant. */
  onlyClients: Map<string, pg.Client>
  /** Separate autocommit connection to all_tenants for baseline row fetches. */
  inspectClient: pg.Client
  connect(database: string): Promise<pg.Client>
  close(): Promise<void>
}

export async function connectTo(server: PgServer, database: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: server.url(ROLES.scram.user, ROLES.scram.password, database) })
  await client.connect()
  await client.query(`SET lock_timeout = '3s'; SET statement_timeout = '15s'; SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 1`)
  return client
}

export async function startOracle(opts: { server?: PgServer } = {}): Promise<OracleEnv> {
  const server = opts.server ?? (await startPostgres())
  const admin = await connectTo(server, 'postgres')
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`)
  const tpl = await connectTo(server, TEMPLATE_DB)
  await tpl.query(readFileSync(join(ORACLE_DIR, 'schema.sql'), 'utf8'))
  await tpl.query(seedSql())
  await tpl.query('ANALYZE')
  await tpl.end()

  await admin.query(`CREATE DATABASE ${ALL_DB} TEMPLATE ${TEMPLATE_DB}`)
  for (const t of TENANTS) await admin.query(`CREATE DATABASE ${onlyDb(t)} TEMPLATE ${TEMPLATE_DB}`)
  await admin.end()

  // all_tenants: like production, no tenant-column defaults (a forgotten tenant column fails NOT NULL).
  const all = await connectTo(server, ALL_DB)
  for (const [table, col] of TENANT_TABLES) await all.query(`ALTER TABLE ${table} ALTER COLUMN ${col} DROP DEFAULT`)

  const onlyClients = new Map<string, pg.Client>()
  for (const t of TENANTS) {
    const c = await connectTo(server, onlyDb(t))
    await c.query(`SET session_replication_role = replica`)
    for (const [table, col] of TENANT_TABLES) await c.query(`DELETE FROM ${table} WHERE ${col} <> $1`, [t])
    await c.query(`RESET session_replication_role`)
    await c.query('ANALYZE')
    onlyClients.set(t, c)
  }
  const inspectClient = await connectTo(server, ALL_DB)
  const baseline = (await inspectClient.query('SELECT oracle_snapshot() AS s')).rows[0].s as Record<string, string>
  const facts = buildSchemaFacts((await inspectClient.query(SCHEMA_DISCOVERY_SQL, [ORACLE_TENANT_CONFIG.column])).rows, ORACLE_TENANT_CONFIG)
  const extra: pg.Client[] = []
  return {
    server,
    facts,
    baseline,
    allClient: all,
    onlyClients,
    inspectClient,
    async connect(database) {
      const c = await connectTo(server, database)
      extra.push(c)
      return c
    },
    async close() {
      for (const c of [all, inspectClient, ...onlyClients.values(), ...extra]) await c.end().catch(() => {})
      if (!opts.server) server.stop()
    },
  }
}

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
