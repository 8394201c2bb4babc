// Where a transaction goes: session tenant → placement (explicit map, else default) →
// backend → concrete target (host, port, database, user), as plain data. Pure: no sockets,
// no timers, no global state; O(1) in the number of tenants in the placement map (one hash
// lookup), plus O(log shards) for a Citus backend.
import type { BackendConfig, BackendUrl } from '../server/config-types.js'
import { hashForType, hashableType } from './citus-hash.js'
import { findShard, type CitusMetadata, type ColocationGroup, type ShardHit } from './citus-metadata.js'

/** The default `tenant.pattern`: what may be put into a database name, host or user. */
export const DEFAULT_TENANT_PATTERN = '^[A-Za-z0-9_-]{1,63}$'

/** PostgreSQL truncates identifiers (database and role names) to NAMEDATALEN-1 = 63 bytes. */
const MAX_IDENTIFIER_BYTES = 63

export interface RouteInput {
  placement: { readonly default: string; readonly tenants: Readonly<Record<string, string>> }
  backends: Readonly<Record<string, BackendConfig>>
  /** The session tenant, or null when none is set. */
  tenant: string | null
  /** Does the statement reference a tenant table? */
  touchesTenant: boolean
  /** The user is a bypass user (not rewritten): no shard routing. */
  bypass: boolean
  /** `tenant.pattern` from the config (anchored as a whole); a RegExp from compileTenantPattern() is fastest. Default DEFAULT_TENANT_PATTERN. */
  tenantPattern?: string | RegExp
  /** Citus metadata per backend name (absent or null: not loaded → coordinator). */
  citus?: ReadonlyMap<string, CitusMetadata | null>
  /**
   * Relations the statement touches, "schema.table" (the parser's `relations`, or just its
   * tenant tables). For Citus: distributed tables pick the colocation group; reference tables
   * and pg_catalog/information_schema are ignored; anything else sends it to the coordinator.
   */
  tables?: readonly string[]
}

export interface RouteTarget {
  host: string
  port: number
  database: string
  /** Absent: connect as the client's own user (with its password from `users`). */
  user?: string
  password?: string
  sslmode: BackendUrl['sslmode']
}

export type RouteKind = 'shared' | 'dedicated' | 'citus-worker' | 'citus-coordinator'

export interface ShardRoute {
  colocationId: number
  /** The table whose shard id is reported (first distributed table touched, or the group's representative). */
  table: string
  /** The distribution column type the tenant was hashed as. */
  type: string
  hash: number
  shardId: number
  min: number
  max: number
  groupId: number
  nodeId: number
}

export interface Route {
  kind: RouteKind
  /** Backend name from the config. */
  backend: string
  target: RouteTarget
  /** Identity of the server pool: equal keys ⇔ interchangeable connections. Without password; when target.user is absent, add the client's user. */
  poolKey: string
  tenant: string | null
  /** How the backend was chosen: the tenant's entry in placement.tenants, placement.default for a tenant, or placement.default with no tenant. */
  via: 'tenants' | 'default' | 'no-tenant'
  /** For citus-worker routes (and coordinator routes whose shard is on the coordinator). */
  shard?: ShardRoute
  /** Why, in one line, for logs, EXPLAIN ROUTE and tests. */
  reason: string
}

export interface RouteRefusal {
  kind: 'refuse'
  backend: string | null
  /** 42501 for a tenant that cannot be used here; XX000 for a configuration error. */
  sqlstate: '42501' | 'XX000'
  /** For the client's ErrorResponse. */
  message: string
  hint?: string
  reason: string
}

export type RouteDecision = Route | RouteRefusal

/** Compiles `tenant.pattern`, anchored as a whole (an unanchored pattern must not accept a value by a substring). */
export function compileTenantPattern(pattern: string = DEFAULT_TENANT_PATTERN): RegExp {
  return new RegExp(`^(?:${pattern})$`)
}

function patternText(re: RegExp): string {
  const s = re.source
  return s.startsWith('^(?:') && s.endsWith(')$') ? s.slice(4, -2) : s
}

const PLACEHOLDER = /\{tenant\}|%7Btenant%7D/gi

function hasPlaceholder(s: string | undefined): boolean {
  return s !== undefined && /\{tenant\}|%7Btenant%7D/i.test(s)
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8')
}

/**
 * The placement with tenants moved by MOVE TENANT (the placement state file, server/tenant-move.ts)
 * laid over the configured one: an override wins over `placement.tenants`; one naming a backend
 * that is not configured is left out (the configured placement stays). Pure: a new object.
 */
export function applyPlacementOverrides<P extends { readonly default: string; readonly tenants: Readonly<Record<string, string>> }>(
  placement: P,
  overrides: Readonly<Record<string, string>>,
  backends: Readonly<Record<string, unknown>>,
): P & { tenants: Record<string, string> } {
  const tenants: Record<string, string> = Object.assign(Object.create(null), placement.tenants)
  for (const [tenant, backend] of Object.entries(overrides)) if (Object.hasOwn(backends, backend)) tenants[tenant] = backend
  return { ...placement, tenants }
}

/** Decides where the current transaction goes. Never throws for any input. */
export function decideRoute(input: RouteInput): RouteDecision {
  const { tenant } = input
  let backendName: string
  let via: Route['via']
  if (tenant === null) {
    backendName = input.placement.default
    via = 'no-tenant'
  } else if (Object.hasOwn(input.placement.tenants, tenant)) {
    backendName = input.placement.tenants[tenant]
    via = 'tenants'
  } else {
    backendName = input.placement.default
    via = 'default'
  }
  const backend = Object.hasOwn(input.backends, backendName) ? input.backends[backendName] : undefined
  if (!backend) {
    return {
      kind: 'refuse',
      backend: backendName,
      sqlstate: 'XX000',
      message: `placement names backend "${backendName}", which is not configured`,
      reason: `no backend "${backendName}"`,
    }
  }
  const chosen = via === 'tenants' ? `placement.tenants["${tenant}"]` : 'placement.default'

  // The backend's own URL, with {tenant} substituted when it has one.
  const url = backend.url
  let target: RouteTarget
  if (url.perTenant || hasPlaceholder(url.database) || hasPlaceholder(url.host) || hasPlaceholder(url.user)) {
    if (tenant === null) {
      return {
        kind: 'refuse',
        backend: backendName,
        sqlstate: '42501',
        message: `no tenant is set, and backend "${backendName}" has one database per tenant`,
        hint: `set the tenant first (SET app.tenant = '…')`,
        reason: `per-tenant backend "${backendName}" needs a tenant`,
      }
    }
    let pattern: RegExp
    try {
      pattern = input.tenantPattern instanceof RegExp ? input.tenantPattern : compileTenantPattern(input.tenantPattern)
    } catch (err) {
      return {
        kind: 'refuse',
        backend: backendName,
        sqlstate: 'XX000',
        message: `tenant.pattern is not a valid regular expression: ${(err as Error).message}`,
        reason: 'invalid tenant.pattern',
      }
    }
    if (!pattern.test(tenant) || tenant.includes('\0')) {
      return {
        kind: 'refuse',
        backend: backendName,
        sqlstate: '42501',
        message: `invalid tenant value ${quote(tenant)}: it does not match tenant.pattern ${patternText(pattern)}`,
        hint: 'a tenant with its own database must be a valid database name part',
        reason: 'tenant fails tenant.pattern',
      }
    }
    const sub = (s: string) => s.replace(PLACEHOLDER, () => tenant) // a function: `$&` in a tenant stays literal
    target = { host: sub(url.host), port: url.port, database: sub(url.database), sslmode: url.sslmode }
    if (url.user !== undefined) target.user = sub(url.user)
    if (url.password !== undefined) target.password = url.password
    if (byteLength(target.database) > MAX_IDENTIFIER_BYTES || (target.user !== undefined && byteLength(target.user) > MAX_IDENTIFIER_BYTES)) {
      return {
        kind: 'refuse',
        backend: backendName,
        sqlstate: '42501',
        message: `invalid tenant value ${quote(tenant)}: the database or user name it makes is longer than 63 bytes`,
        reason: 'per-tenant name too long (PostgreSQL would truncate it)',
      }
    }
  } else {
    target = { host: url.host, port: url.port, database: url.database, sslmode: url.sslmode }
    if (url.user !== undefined) target.user = url.user
    if (url.password !== undefined) target.password = url.password
  }

  if (!backend.citus) {
    const kind: RouteKind = url.perTenant || target.database !== url.database || target.host !== url.host ? 'dedicated' : 'shared'
    const what = tenant === null ? 'no tenant set' : `tenant ${quote(tenant)}`
    return route(
      kind,
      backendName,
      target,
      tenant,
      via,
      `${what} → ${chosen} = "${backendName}"${kind === 'dedicated' ? ` (database ${target.database})` : ''}${input.bypass ? ' (bypass user)' : ''}`,
    )
  }

  // Citus: the coordinator unless every sign points to one worker.
  const coordinator = (why: string, shard?: ShardRoute): Route => route('citus-coordinator', backendName, target, tenant, via, why, shard)
  if (input.bypass) return coordinator('bypass user: no shard routing')
  if (tenant === null) return coordinator('no tenant set')
  const meta = input.citus?.get(backendName) ?? null
  if (!meta) return coordinator(`no Citus metadata loaded for backend "${backendName}"`)

  // Which colocation group do the touched tables belong to?
  let group: ColocationGroup | undefined
  let firstTable: string | undefined
  for (const name of input.tables ?? []) {
    const dist = meta.tables.get(name)
    if (dist) {
      if (group === undefined) {
        group = meta.groups.get(dist.colocationId)
        firstTable = name
        if (!group) return coordinator(`no colocation group ${dist.colocationId} for ${name}`)
      } else if (group.colocationId !== dist.colocationId) {
        return coordinator(`tables in different colocation groups: ${firstTable} (${group.colocationId}) and ${name} (${dist.colocationId})`)
      }
      continue
    }
    if (meta.referenceTables.has(name) || name.startsWith('pg_catalog.') || name.startsWith('information_schema.')) continue
    const other = meta.otherTables.get(name)
    return coordinator(`${name} is ${other ?? 'not a distributed table'}`)
  }
  let how = ''
  if (group === undefined) {
    if (meta.groups.size !== 1) return coordinator(`no distributed table touched and ${meta.groups.size} colocation groups`)
    group = meta.groups.values().next().value as ColocationGroup
    how = ` (${input.touchesTenant ? 'no distributed table named' : 'no tenant table touched'}; the only colocation group)`
  }
  if (group.problems.length > 0) return coordinator(`colocation group ${group.colocationId}: ${group.problems[0]}`)

  const hash = hashForType(group.type, tenant)
  if (hash === null) {
    return coordinator(
      hashableType(group.type) === null
        ? `distribution column type ${group.type} is not hashed by pgtenant`
        : `tenant ${quote(tenant)} is not a valid ${group.type}`,
    )
  }
  const hit: ShardHit | null = findShard(meta, firstTable ?? group.colocationId, hash)
  if (!hit) return coordinator(`no shard of colocation group ${group.colocationId} covers hash ${hash}`)
  const iv = hit.interval
  if (!iv.node) return coordinator(iv.problem ?? `shard ${hit.shardId} has no usable node`)
  const shard: ShardRoute = {
    colocationId: group.colocationId,
    table: firstTable ?? group.representative,
    type: group.type,
    hash,
    shardId: hit.shardId,
    min: iv.min,
    max: iv.max,
    groupId: iv.node.groupId,
    nodeId: iv.node.nodeId,
  }
  const where = `tenant ${quote(tenant)} → hash ${hash} (${group.type}) → shard ${hit.shardId} [${iv.min}, ${iv.max}]${how}`
  if (iv.node.groupId === 0) return coordinator(`${where} is on the coordinator`, shard)
  const worker: RouteTarget = { ...target, host: iv.node.host, port: iv.node.port }
  return route('citus-worker', backendName, worker, tenant, via, `${where} → node ${iv.node.nodeId} ${iv.node.host}:${iv.node.port}`, shard)
}

function route(kind: RouteKind, backend: string, target: RouteTarget, tenant: string | null, via: Route['via'], reason: string, shard?: ShardRoute): Route {
  const r: Route = {
    kind,
    backend,
    target,
    poolKey: `${backend}|${target.host}:${target.port}|${target.database}|${target.user ?? ''}`,
    tenant,
    via,
    reason,
  }
  if (shard) r.shard = shard
  return r
}

function quote(s: string): string {
  return `'${s.replace(/'/g, "''")}'`
}

/** A copy safe to log: the password masked. */
export function redactRoute<T extends RouteDecision>(d: T): T {
  if (d.kind === 'refuse' || (d as Route).target.password === undefined) return d
  return { ...d, target: { ...(d as Route).target, password: '***' } }
}

/** One line for logs and EXPLAIN-style output, password never shown. */
export function formatRoute(d: RouteDecision): string {
  if (d.kind === 'refuse') return `refuse ${d.sqlstate}: ${d.message} [${d.reason}]`
  const t = d.target
  return `${d.kind} ${d.backend} ${t.user ? `${t.user}@` : ''}${t.host}:${t.port}/${t.database}: ${d.reason}`
}
