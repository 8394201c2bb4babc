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
import { TENANTS, TENANT_TABLES, ALL_DB, TEMPLATE_DB, onlyDb, oracleFacts, ORACLE_TENANT_CONFIG } from './facts.js'
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

/** A connection to pgtenant that remembers its last error: a server error carries a source file, a refusal the proxy made none. */
export interface ProxyClient {
  client: pg.Client
  lastError: () => { file?: string } | null
}

/** Connect to pgtenant at `url` as `tenant` (a startup option; null: none), with the oracle's session settings. */
export async function proxyClient(url: string, tenant: string | null): Promise<ProxyClient> {
  const options = tenant === null ? undefined : `-c app.tenant=${tenant.replace(/([\\ ])/g, '\\$1')}`
  const client = new pg.Client({ connectionString: url, options })
  await client.connect()
  await client.query(`SET lock_timeout = '3s'; SET statement_timeout = '15s'; SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 1`)
  let last: { file?: string } | null = null
  const query = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>
  ;(client as unknown as { query: unknown }).query = (...a: unknown[]) =>
    query(...a).catch((e: { file?: string }) => {
      last = e
      throw e
    })
  return { client, lastError: () => last }
}

/** A target that sends statements through pgtenant (clientTarget); an error the proxy made itself is a refusal. */
export function proxyTarget(c: ProxyClient, label = 'proxy'): OracleTarget {
  return {
    ...clientTarget(c.client, { label }),
    async exec(sql, params, protocol) {
      const out = await runOnClient(c.client, sql, params, protocol)
      if (!out.ok && !c.lastError()?.file) return { ...out, refused: true }
      return out
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

export * from './compare.js'
