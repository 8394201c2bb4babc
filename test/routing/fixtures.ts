// Config fixtures for routing tests and the routing benchmark (shaped like server/config.ts output).
import type { BackendConfig, BackendUrl } from '../../server/config-types.js'

export function backendUrl(parts: { host: string; port?: number; database: string; user?: string; password?: string }): BackendUrl {
  const url: BackendUrl = {
    host: parts.host,
    port: parts.port ?? 5432,
    database: parts.database,
    sslmode: 'prefer',
    raw: `postgres://${parts.user ? `${parts.user}${parts.password ? ':***' : ''}@` : ''}${parts.host}:${parts.port ?? 5432}/${parts.database}`,
    perTenant: [parts.host, parts.database, parts.user ?? ''].some((s) => s.includes('{tenant}')),
  }
  if (parts.user !== undefined) url.user = parts.user
  if (parts.password !== undefined) url.password = parts.password
  return url
}

export function backend(name: string, parts: Parameters<typeof backendUrl>[0], opts: { citus?: boolean; pool?: number } = {}): BackendConfig {
  return { name, url: backendUrl(parts), pool: opts.pool ?? 20, citus: opts.citus ?? false }
}

/** The DESIGN.md example backends. */
export function exampleBackends(): Record<string, BackendConfig> {
  return {
    shared: backend('shared', { host: '127.0.0.1', port: 5432, database: 'saas', user: 'app', password: 'pw' }),
    citus: backend('citus', { host: 'citus-coordinator', port: 5432, database: 'saas', user: 'app', password: 'pw' }, { citus: true }),
    dedicated: backend('dedicated', { host: '127.0.0.1', port: 5432, database: 'tenant_{tenant}', user: 'app', password: 'pw' }, { pool: 5 }),
    asclient: backend('asclient', { host: 'db.internal', port: 6543, database: 'saas' }),
    perhost: backend('perhost', { host: '{tenant}.db.internal', port: 5432, database: 'app', user: 'u_{tenant}', password: 'pw' }),
  }
}
