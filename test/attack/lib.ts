// Shared machinery of the attack suite (test/attack/): the attempt format, a capturing
// executor that records EVERYTHING a client receives (rows, COPY data, errors with all their
// fields, notices, ParameterStatus, notifications), the proxy under attack and its clean-up;
// the no-leak scanner and the comparison against only_<tenant> are in judge.ts (re-exported).
//
// Nothing here edits test/oracle/: it imports the oracle's environment (startOracle) and
// facts, and adds a proxy configuration with a normal tenant user, pinned users and a bypass
// user (the latter only to inspect what a pooled server connection carries between clients).
import pg from 'pg'
import { readFileSync, readdirSync } from 'node:fs'
import { join, basename } from 'node:path'
import YAML from 'yaml'
import { repoRoot, type OracleEnv } from '../oracle/harness.js'
import { TENANTS, ALL_DB, onlyDb, TENANT_TABLES } from '../oracle/facts.js'
import { ROLES } from '../helpers/pg-server.js'
import { startProxy, type RunningProxy } from '../helpers/proxy.js'

export const ATTACK_DIR = join(repoRoot(), 'test', 'attack')

export type Protocol = 'simple' | 'extended'
export type Check = 'refused' | 'oracle-equal' | 'no-leak'

/** One step of a multi-client scenario (pool poisoning, shared server objects). */
export interface Step {
  /** Client label; a client is opened on first use with `tenant` (and `user`). */
  client: string
  tenant: string
  /** 'app' (SET app.tenant after login, default), 'pinned' (tenant pinned by login), 'startup' (options=-c app.tenant=…). */
  login?: 'app' | 'pinned' | 'startup'
  /** Extra startup options (e.g. "-c client_encoding=SJIS"). */
  options?: string
  sql: string
  params?: unknown[]
  protocol?: Protocol
  /** Protocol-level statement name (extended protocol, Parse with a name). */
  name?: string
  /** The result must equal the same statement run directly on only_<tenant> (any error = error). */
  oracle?: boolean
  /** Close this client after the step. */
  close?: boolean
  /** A regex over what the step received; group 1 is stored as ${capture_as} for later steps' SQL. */
  capture?: string
  capture_as?: string
}

export interface Attempt {
  cls: string
  id: string
  sql: string
  params?: unknown[]
  check: Check
  /** refused: accepted SQLSTATEs ([] = any ErrorResponse). */
  sqlstate: string[]
  /** oracle-equal: a refusal (any ErrorResponse) is acceptable too. */
  allow_refusal: boolean
  tenant: string
  protocols: Protocol[]
  /** Also run as a user pinned to the tenant by login. */
  pinned: boolean
  /** Statements run before `sql` in the same session and transaction, on both sides. */
  setup: string[]
  /** Statements run after `sql` in the same session (inside the transaction, and again after it); output scanned, not compared. */
  probes: string[]
  /** Run without BEGIN … ROLLBACK around it (the statement controls transactions itself; must not write). */
  txn: boolean
  /** Extra startup options for the attacker's connection. */
  options?: string
  /** Protocol-level named statement in the extended protocol. */
  named: boolean
  steps?: Step[]
  note?: string
}

const DEFAULT_PROBES = [`SELECT current_setting('x.k', true) AS k, current_setting('x.v', true) AS v`]

function arr<T>(v: T | T[] | undefined): T[] | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v : [v]
}

/** Every test/attack/*.yaml file is a class; entries are attempts. */
export function loadAttempts(dir = ATTACK_DIR): Attempt[] {
  const out: Attempt[] = []
  const seen = new Set<string>()
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.yaml'))
    .sort()) {
    const cls = basename(f, '.yaml')
    const doc = YAML.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>[]
    if (!Array.isArray(doc)) throw new Error(`${f}: expected a list`)
    for (const [i, raw] of doc.entries()) {
      const id = String(raw.id ?? `#${i + 1}`)
      if (seen.has(`${cls}:${id}`)) throw new Error(`duplicate attempt ${cls}:${id}`)
      seen.add(`${cls}:${id}`)
      const steps = raw.steps as Step[] | undefined
      if (!steps && typeof raw.sql !== 'string') throw new Error(`${f}:${id}: sql missing`)
      const check = (raw.check ?? (steps ? 'no-leak' : 'oracle-equal')) as Check
      if (!['refused', 'oracle-equal', 'no-leak'].includes(check)) throw new Error(`${f}:${id}: bad check ${check}`)
      out.push({
        cls,
        id,
        sql: typeof raw.sql === 'string' ? raw.sql : '',
        params: raw.params as unknown[] | undefined,
        check,
        sqlstate: (arr(raw.sqlstate as string | string[]) ?? []).map(String),
        allow_refusal: raw.allow_refusal === true,
        tenant: String(raw.tenant ?? 'acme'),
        protocols: (arr(raw.protocols as Protocol | Protocol[]) ?? (raw.params ? ['extended'] : ['simple', 'extended'])) as Protocol[],
        pinned: raw.pinned === true,
        setup: arr(raw.setup as string | string[]) ?? [],
        probes: [...DEFAULT_PROBES, ...(arr(raw.probes as string | string[]) ?? [])],
        txn: raw.txn !== false,
        options: raw.options as string | undefined,
        named: raw.named === true,
        steps: steps?.map((s) => ({ ...s, tenant: String(s.tenant) })),
        note: raw.note as string | undefined,
      })
    }
  }
  return out
}

// ------------------------------------------------------------------ capture

export interface ResultSet {
  command: string
  rowCount: number | null
  fields: string[]
  rows: (string | null)[][]
}
export interface Outcome {
  ok: boolean
  code?: string
  message?: string
  /** The error came from PostgreSQL (it carries a source file); false: made by the proxy. */
  fromServer?: boolean
  results: ResultSet[]
  copy: string[]
  audit: AuditRow[]
  /** Everything received while the statement ran, as text (scanned for leaks). */
  blob: string
}

const rawTypes = { getTypeParser: () => (v: string) => v }

export interface CapClient {
  client: pg.Client
  label: string
  tenant: string
  /** Text received since the last take(). */
  take(): string
  copyLines(): string[]
  /** Text received outside any statement (ParameterStatus at login, async notices). */
  all: string[]
  /** Row changes reported by the audit trigger since the last takeAudit() (not part of the scanned text). */
  takeAudit(): AuditRow[]
  dead: boolean
}

/** One row change seen by the audit trigger: table, operation, tenant of the old/new row, the row JSON. */
export interface AuditRow {
  table: string
  op: string
  tenants: string[]
  line: string
}

export const AUDIT_PREFIX = 'attack-audit '
/**
 * A row trigger on every tenant table that reports each change to the client as a WARNING
 * (in the statement's own transaction, so uncommitted changes are visible even when the
 * proxy refuses the harness's snapshot function). Installed on oracle_template, all_tenants
 * and every only_<tenant>.
 */
export const AUDIT_SQL = `
CREATE OR REPLACE FUNCTION attack_audit() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  RAISE WARNING '${AUDIT_PREFIX}%', json_build_object('t', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 'op', TG_OP,
    'old', CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END, 'new', CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END)::text;
  RETURN NULL;
END $f$;
DO $d$ DECLARE r record; BEGIN
  FOR r IN SELECT * FROM oracle_tables() WHERE tcol <> '' LOOP
    EXECUTE format('CREATE TRIGGER attack_audit AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION attack_audit()', r.tbl);
  END LOOP;
END $d$;
`

function msgText(msg: Record<string, unknown>): string {
  const parts: string[] = [String(msg.name ?? '')]
  for (const [k, v] of Object.entries(msg)) {
    if (k === 'name' || k === 'length') continue
    if (Buffer.isBuffer(v)) parts.push(v.toString('utf8'), v.toString('latin1'))
    else if (Array.isArray(v)) parts.push(v.map((x) => (x && typeof x === 'object' ? JSON.stringify(x) : String(x))).join('\t'))
    else if (v !== undefined && v !== null) parts.push(String(v))
  }
  return parts.join('\t')
}

/** Wraps a connected pg.Client: every backend message is recorded. */
export function capture(client: pg.Client, label: string, tenant: string): CapClient {
  let buf: string[] = []
  let copy: string[] = []
  let audit: AuditRow[] = []
  const all: string[] = []
  const con = (client as unknown as { connection: NodeJS.EventEmitter }).connection
  const cap: CapClient = {
    client,
    label,
    tenant,
    all,
    dead: false,
    take() {
      const s = buf.join('\n')
      buf = []
      return s
    },
    copyLines() {
      const c = copy
      copy = []
      return c
    },
    takeAudit() {
      const a = audit
      audit = []
      return a
    },
  }
  con.on('message', (msg: Record<string, unknown>) => {
    if (msg.name === 'notice' && typeof msg.message === 'string' && msg.message.startsWith(AUDIT_PREFIX)) {
      const line = msg.message.slice(AUDIT_PREFIX.length)
      try {
        const j = JSON.parse(line) as { t: string; op: string; old: Record<string, unknown> | null; new: Record<string, unknown> | null }
        const tenants = [j.old, j.new].filter((x): x is Record<string, unknown> => !!x).map((x) => String(x.tenant_id ?? x.org ?? '<null>'))
        audit.push({ table: j.t, op: j.op, tenants, line })
      } catch {
        audit.push({ table: '?', op: '?', tenants: ['?'], line })
      }
      return
    }
    const t = msgText(msg)
    buf.push(t)
    all.push(t)
    if (msg.name === 'copyData' && Buffer.isBuffer(msg.chunk))
      copy.push(
        ...(msg.chunk as Buffer)
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== ''),
      )
  })
  client.on('error', () => {
    cap.dead = true
  })
  client.on('end', () => {
    cap.dead = true
  })
  return cap
}

export async function exec(c: CapClient, sql: string, params: unknown[] | undefined, protocol: Protocol, name?: string): Promise<Outcome> {
  c.take()
  c.copyLines()
  c.takeAudit()
  try {
    const config: Record<string, unknown> = { text: sql, rowMode: 'array', types: rawTypes }
    if (protocol === 'extended') {
      config.values = params ?? []
      config.queryMode = 'extended'
      if (name) config.name = name
    }
    const res = (await withTimeout(c.client.query(config as never), 20_000)) as pg.QueryArrayResult | pg.QueryArrayResult[]
    const list = Array.isArray(res) ? res : [res]
    return {
      ok: true,
      results: list.map((r) => ({
        command: r.command,
        rowCount: r.rowCount,
        fields: (r.fields ?? []).map((f) => f.name),
        rows: (r.rows ?? []) as (string | null)[][],
      })),
      copy: c.copyLines(),
      audit: c.takeAudit(),
      blob: c.take(),
    }
  } catch (e) {
    const err = e as Record<string, unknown>
    const extra = [
      `message=${String(err.message ?? e)}`,
      ...Object.entries(err)
        .filter(([, v]) => typeof v === 'string')
        .map(([k, v]) => `${k}=${v}`),
    ].join('\t')
    return {
      ok: false,
      code: String(err.code ?? 'XXXXX'),
      message: String(err.message ?? e),
      fromServer: typeof err.file === 'string',
      results: [],
      copy: c.copyLines(),
      audit: c.takeAudit(),
      blob: c.take() + '\n' + extra,
    }
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      p,
      new Promise<T>((_, rej) => (timer = setTimeout(() => rej(Object.assign(new Error(`timeout after ${ms} ms`), { code: 'TIMEOUT' })), ms))),
    ])
  } finally {
    clearTimeout(timer)
  }
}

export { markersOf, normalise, type Leak, scanLeaks, foreignTenantColumns, compareOutcomes } from './judge.js'
import { SLUG } from './judge.js'

// ------------------------------------------------------------------ the proxy under attack

export const USERS = {
  app: { user: 'app', password: 'app_pw' },
  admin: { user: 'ops', password: 'ops_pw' },
}
export function pinnedUser(tenant: string): { user: string; password: string } {
  return { user: `svc_${SLUG(tenant)}`, password: `svc_${SLUG(tenant)}_pw` }
}

/** pgtenant with the oracle tenant config on all_tenants; pool of ONE server connection so every client shares it (pool poisoning is visible). */
export async function startAttackProxy(env: OracleEnv, pool = 1): Promise<RunningProxy> {
  const pinned = TENANTS.map((t) => `  ${pinnedUser(t).user}: { password: ${pinnedUser(t).password}, tenant: "${t.replace(/"/g, '\\"')}" }`).join('\n')
  return startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
  ops: { password: ops_pw, bypass: true }
${pinned}
tenant:
  column: tenant_id
  tables: { accounts: org }
  reference: [countries, currencies, plans]
  unknown: reject
  pattern: "^[a-z' ]{1,40}$"
backends:
  all: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${env.server.port}/${ALL_DB}", pool: ${pool} }
pool: { mode: transaction, wait_timeout_ms: 2500 }
`)
}

export function sqlLit(s: string): string {
  return `'${s.replace(/'/g, "''")}'`
}

/** A client of the proxy as `tenant`: 'app' sets the tenant with SET after login, 'pinned' logs in as the pinned user, 'startup' uses options=-c app.tenant=…. */
export async function proxyClient(
  proxy: RunningProxy,
  tenant: string,
  login: 'app' | 'pinned' | 'startup' = 'app',
  options?: string,
  label = 'attacker',
): Promise<CapClient> {
  const u = login === 'pinned' ? pinnedUser(tenant) : USERS.app
  const opts = [login === 'startup' ? `-c app.tenant=${tenant.replace(/([\\ ])/g, '\\$1')}` : '', options ?? ''].filter(Boolean).join(' ')
  const client = new pg.Client({ connectionString: proxy.url(u.user, u.password), options: opts || undefined })
  const cap = capture(client, label, tenant)
  await client.connect()
  if (login === 'app') await client.query(`SET app.tenant = ${sqlLit(tenant)}`)
  return cap
}

export async function directClient(env: OracleEnv, tenant: string, options?: string): Promise<CapClient> {
  const client = new pg.Client({ connectionString: env.server.url(ROLES.scram.user, ROLES.scram.password, onlyDb(tenant)), options })
  const cap = capture(client, 'direct', tenant)
  await client.connect()
  return cap
}

export async function closeQuietly(c: CapClient | undefined): Promise<void> {
  if (!c) return
  await Promise.race([c.client.end().catch(() => undefined), new Promise((r) => setTimeout(r, 1000))])
}

/** Committed snapshot of all_tenants (oracle_snapshot()), via a direct connection. */
export async function committedSnapshot(inspect: pg.Client): Promise<Record<string, string>> {
  return (await inspect.query('SELECT oracle_snapshot() AS s')).rows[0].s as Record<string, string>
}

/** Keys of a snapshot that differ from the baseline and do not belong to `own`. */
export function foreignChanges(snap: Record<string, string>, baseline: Record<string, string>, own: string | null): string[] {
  return [...new Set([...Object.keys(snap), ...Object.keys(baseline)])].filter((k) => snap[k] !== baseline[k] && k.slice(k.lastIndexOf('|') + 1) !== own).sort()
}

/** Ends every server connection to all_tenants except the listed pids (resets whatever a pooled connection carries). */
export async function killProxyBackends(inspect: pg.Client, keep: number[]): Promise<void> {
  await inspect.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' AND pid <> ALL($2::int[])`,
    [ALL_DB, keep],
  )
  await new Promise((r) => setTimeout(r, 150))
}

/**
 * The damaged all_tenants is rebuilt from the template (rarely needed: only when an attempt
 * committed a change). Returns a new inspect connection.
 */
export async function rebuildAllTenants(env: OracleEnv, inspect: pg.Client): Promise<pg.Client> {
  await inspect.end().catch(() => undefined)
  env.server.sql(`DROP DATABASE ${ALL_DB} WITH (FORCE)`)
  env.server.sql(`CREATE DATABASE ${ALL_DB} TEMPLATE oracle_template`)
  for (const [table, col] of TENANT_TABLES) env.server.sql(`ALTER TABLE ${table} ALTER COLUMN ${col} DROP DEFAULT`, ALL_DB)
  env.server.sql('ANALYZE', ALL_DB)
  const c = new pg.Client({ connectionString: env.server.url(ROLES.scram.user, ROLES.scram.password, ALL_DB) })
  await c.connect()
  return c
}

export function oneLine(s: string, max = 160): string {
  const x = s.replace(/\r/g, '\\r').replace(/\f/g, '\\f').replace(/\s+/g, ' ').trim()
  return x.length > max ? x.slice(0, max) + '…' : x
}
