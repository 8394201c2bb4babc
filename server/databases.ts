// The database a client names in its startup packet, as PgBouncer's [databases] section maps
// it: to a backend and, optionally, another database on that backend's server. Without a
// `databases:` section a client may name a backend (its name) or the database of a backend's
// URL; anything else is refused with 3D000, as PostgreSQL refuses a database that does not
// exist. A `"*"` entry is PgBouncer's fallback: any other name goes to that backend, into the
// database of the name the client gave (or `dbname`).
//
// Tenant routing (DESIGN.md: shared database, Citus worker, a tenant's own database) applies to
// the sessions whose database is the routing one: the backend `placement.default` names, in
// its URL's database. A session on any other database stays on it: its backend is its
// default placement and tenants are not placed elsewhere.
import type { BackendConfig, Config, DatabaseConfig } from './config-types.js'
import type { ClientSession } from './session.js'

/** Where a client's database name leads. */
export interface DatabaseTarget {
  /** The name the client gave. */
  name: string
  /** The backend it maps to. */
  backend: string
  /** The server database when it is not the backend URL's own. */
  dbname?: string
  /** True when the session is tenant-routed (placement.tenants applies). */
  routed: boolean
}

/** The database a logged-in session named, resolved at login (absent: the admin console, or not logged in). */
const targets = new WeakMap<ClientSession, DatabaseTarget>()

export function setSessionDatabase(session: ClientSession, target: DatabaseTarget): void {
  targets.set(session, target)
}

export function sessionDatabase(session: ClientSession): DatabaseTarget | undefined {
  return targets.get(session)
}

/** The names a config accepts without a `databases:` section: each backend's name and its URL's database (when it has no {tenant}). */
export function defaultDatabases(config: Pick<Config, 'backends' | 'placement'>): Record<string, DatabaseConfig> {
  const out: Record<string, DatabaseConfig> = Object.create(null)
  const backends = Object.values(config.backends)
  // The default backend first, so that a database name two backends share goes there.
  backends.sort((a, b) => Number(b.name === config.placement.default) - Number(a.name === config.placement.default))
  for (const b of backends) if (!b.url.perTenant && !Object.hasOwn(out, b.url.database)) out[b.url.database] = { backend: b.name }
  for (const b of backends) out[b.name] = { backend: b.name } // a backend's name wins over another's URL database
  return out
}

/** The backend and server database for a client's database name; null: it does not exist (3D000). */
export function resolveDatabase(config: Pick<Config, 'backends' | 'placement' | 'databases'>, name: string): DatabaseTarget | null {
  const map = config.databases ?? defaultDatabases(config)
  let entry: DatabaseConfig | undefined
  let dbname: string | undefined
  if (Object.hasOwn(map, name) && name !== '*') {
    entry = map[name]
    dbname = entry.dbname
  } else if (Object.hasOwn(map, '*')) {
    entry = map['*']
    dbname = entry.dbname ?? name
  }
  if (!entry || !Object.hasOwn(config.backends, entry.backend)) return null
  const backend = config.backends[entry.backend]
  if (dbname === backend.url.database) dbname = undefined
  const target: DatabaseTarget = { name, backend: entry.backend, routed: entry.backend === config.placement.default && dbname === undefined }
  if (dbname !== undefined) target.dbname = dbname
  return target
}

/** What routing uses for a session: the config's placement and backends, or those of its database. */
export function routingFor(
  config: Pick<Config, 'backends' | 'placement'>,
  target: DatabaseTarget | undefined,
): { placement: Config['placement']; backends: Record<string, BackendConfig> } {
  if (!target || target.routed) return { placement: config.placement, backends: config.backends }
  const placement = { default: target.backend, tenants: {} }
  const backend = config.backends[target.backend]
  if (target.dbname === undefined || !backend) return { placement, backends: config.backends }
  return { placement, backends: { ...config.backends, [target.backend]: { ...backend, url: { ...backend.url, database: target.dbname } } } }
}

/** The backend `tenant` is placed on, as the database a session named places it (no target: the configured placement). */
export function placedBackend(config: Pick<Config, 'backends' | 'placement'>, target: DatabaseTarget | undefined, tenant: string | null): string {
  const p = routingFor(config, target).placement
  return tenant !== null && Object.hasOwn(p.tenants, tenant) ? p.tenants[tenant] : p.default
}

/** The server database a session logs in to (for the login log line): {tenant} filled in when the tenant is known. */
export function serverDatabaseOf(
  config: Pick<Config, 'backends' | 'placement'>,
  target: DatabaseTarget,
  tenant: string | null,
): { backend: string; server_database: string } {
  const { placement, backends } = routingFor(config, target)
  const name = tenant !== null && Object.hasOwn(placement.tenants, tenant) ? placement.tenants[tenant] : placement.default
  const url = backends[name]?.url
  const db = url ? (url.perTenant && tenant !== null ? url.database.replace(/\{tenant\}/g, tenant) : url.database) : '?'
  return { backend: name, server_database: db }
}
