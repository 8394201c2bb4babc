// What the proxy reads from its backends' catalogs: schema facts (which relations are tenant
// tables, for the rewriter) per backend, and Citus metadata (which worker holds which shard, for
// routing) per Citus coordinator, refreshed on a timer, after an error that may mean a shard
// moved, and when a statement names a table newer than the facts. The catalog connections are
// short-lived (application_name "pgtenant catalog"), one at a time per backend, and count
// under pool.max_server_connections like pool connections: each comes from a small pool of its
// own (one connection, urgent: it waits for room ahead of clients, closing an idle connection
// of another pool if the cap is reached; backend/pool.ts), so the server never sees more than
// the cap, and never more than `pool` + 1 connections of the proxy per backend.
import type { Logger } from 'pino'
import type { Config, UserConfig, BackendConfig } from './config-types.js'
import type { BackendConnection, BackendError, BackendTarget } from './backend/connection.js'
import { Pool, type PoolManager } from './backend/pool.js'
import { queryRows } from './backend/query.js'
import { targetFor, isHashed } from './backend/target.js'
import type { Observers } from './observers.js'
import { decideRoute } from '../routing/placement.js'
import { loadCitusMetadata, type CitusMetadata } from '../routing/citus-metadata.js'
import { schemaDiscoverySql, buildSchemaFacts, type SchemaRow } from '../routing/schema-facts.js'
import type { SchemaFacts } from '../parser/types.js'

/** What the catalogs need of the proxy (server/proxy.ts). */
export interface CatalogHost {
  readonly config: Config
  readonly log: Logger
  readonly metrics: Observers
  readonly tenantPattern: RegExp
  /** The pools and the global cap the catalog connections count under. */
  readonly pools: PoolManager
  findUser(name: string): UserConfig | undefined
  connectFailed(backend: string, target: BackendTarget, err: BackendError, purpose: 'pool' | 'catalog'): void
  /** New Citus metadata: the same statement may now be routed elsewhere. */
  routingChanged(): void
}

/** Catalog connections per backend at once (beyond its pool, under the global cap). */
const CATALOG_CONNECTIONS = 1

export class SchemaCatalogs {
  /** Schema facts per backend name (for per-tenant backends: read from the first tenant database used). */
  readonly facts = new Map<string, SchemaFacts>()
  readonly citus = new Map<string, CitusMetadata | null>()
  readonly citusLoadedAt = new Map<string, number>()
  private readonly loading = new Map<string, Promise<void>>()
  /** What discovery found, before the Citus metadata is merged in (updateFacts). */
  private readonly discovered = new Map<string, SchemaFacts>()
  /** The catalog rows discovery last read per backend, and the tenant column it looked for: a reload rebuilds the facts from them. */
  private readonly discoveredRows = new Map<string, { column: string; rows: SchemaRow[] }>()
  private readonly failedAt = new Map<string, number>()
  private readonly refreshedAt = new Map<string, number>()
  private citusTimer: NodeJS.Timeout | null = null
  /** The catalog connections' own pools, by backend and server target (dropped when empty). */
  private readonly catalogPools = new Map<string, Pool>()

  constructor(private readonly host: CatalogHost) {}

  /** Schema facts and Citus metadata for every backend that has a fixed database. */
  async loadAll(): Promise<void> {
    const { config } = this.host
    const jobs: Promise<unknown>[] = []
    for (const backend of Object.values(config.backends)) {
      if (backend.url.perTenant) continue
      if (config.tenant) jobs.push(this.refreshFacts(backend.name, this.target(backend)))
      if (backend.citus) jobs.push(this.refreshCitus(backend.name))
    }
    await Promise.all(jobs)
    const interval = config.citus?.refresh_interval_ms ?? 60_000
    if (!this.citusTimer && Object.values(config.backends).some((b) => b.citus)) {
      this.citusTimer = setInterval(() => {
        for (const b of Object.values(this.host.config.backends)) if (b.citus) void this.refreshCitus(b.name)
      }, interval)
      this.citusTimer.unref()
    }
  }

  /**
   * A reload (the new configuration is in place): the facts are rebuilt at once from the rows last
   * discovered, under the new tenant section, for every backend whose URL did not change
   * (`changedBackends`) and whose rows were read for the same tenant column; the others are
   * forgotten. Then everything is read again (loadAll). Clearing every backend's facts instead left
   * each statement refused with 42501 as naming an unknown relation until the new read finished,
   * or for 5 s when it failed (the soak: reloads while server connections were being killed).
   */
  reset(changedBackends: readonly string[] = []): void {
    this.facts.clear()
    this.discovered.clear()
    const tenant = this.host.config.tenant
    for (const [name, found] of [...this.discoveredRows]) {
      const backend = this.host.config.backends[name]
      if (!tenant || !backend || changedBackends.includes(name) || found.column !== tenant.column) this.discoveredRows.delete(name)
      else this.setDiscovered(name, found.rows)
    }
  }

  stop(): void {
    if (this.citusTimer) clearInterval(this.citusTimer)
    this.citusTimer = null
    for (const p of this.catalogPools.values()) p.closeAll()
    this.catalogPools.clear()
  }

  /**
   * The facts for backend `name` as a session of `tenant` needs them: known, or a promise while
   * they are first discovered (undefined: none, and none coming — discovery failed just now).
   */
  factsFor(name: string, tenant: string | null): SchemaFacts | Promise<void> | undefined {
    const facts = this.facts.get(name)
    if (facts) return facts
    const backend = this.host.config.backends[name]
    if (!backend || this.failedAt.get(name)! > Date.now() - 5000) return undefined
    if (backend.url.perTenant && tenant === null) return undefined
    return this.refreshFacts(name, this.target(backend, tenant ?? undefined))
  }

  /** A statement named a relation the facts do not know: read them again (at most every 2 s); true if they changed. */
  async refreshFor(name: string, tenant: string | null): Promise<boolean> {
    const backend = this.host.config.backends[name]
    if (!backend) return false
    const before = this.facts.get(name)
    const running = this.loading.get(name)
    if (running) {
      // Another statement asked just before (or a reload reads them): its answer is this one's too.
      await running
      return this.facts.get(name) !== before
    }
    const last = this.refreshedAt.get(name) ?? 0
    if (Date.now() - last < 2000) return false
    this.refreshedAt.set(name, Date.now())
    await this.refreshFacts(name, this.target(backend, tenant ?? undefined))
    return this.facts.get(name) !== before
  }

  /** Where the proxy reads catalogs: the backend URL's user, else the first user with a plain password. */
  private target(backend: BackendConfig, tenant?: string): BackendTarget {
    const { config } = this.host
    const user = backend.url.user ?? Object.keys(config.users).find((u) => !isHashed(config.users[u].password)) ?? 'postgres'
    const t = targetFor(backend, user, this.host.findUser(user))
    t.onConnectFailed = (err) => this.host.connectFailed(backend.name, t, err, 'catalog')
    t.applicationName = 'pgtenant catalog' // outside the pools: tell them apart in pg_stat_activity
    if (tenant !== undefined) {
      const route = decideRoute({
        placement: { default: backend.name, tenants: {} },
        backends: config.backends,
        tenant,
        touchesTenant: true,
        bypass: false,
        tenantPattern: this.host.tenantPattern,
      })
      if (route.kind !== 'refuse') return { ...t, host: route.target.host, port: route.target.port, database: route.target.database }
    }
    return t
  }

  /**
   * Run `fn` on a catalog connection of `backendName` to `target`: from the backend's catalog
   * pool (one connection; under the global cap, waiting for room ahead of clients), closed
   * afterwards (it stays counted until the server has let it go).
   */
  private async withConnection<T>(backendName: string, target: BackendTarget, fn: (conn: BackendConnection) => Promise<T>): Promise<T> {
    const key = `${backendName}\u0000${target.host}:${target.port}/${target.database}\u0000${target.user}`
    let pool = this.catalogPools.get(key)
    if (!pool) {
      pool = new Pool(key, backendName, target, CATALOG_CONNECTIONS, this.host.pools, true)
      this.catalogPools.set(key, pool)
    }
    const forget = (): void => {
      // Kept while anything of it is left on the server, so that a next read waits for that room.
      if (pool.total === 0 && pool.waiting === 0 && pool.live.size === 0 && this.catalogPools.get(key) === pool) this.catalogPools.delete(key)
    }
    let conn: BackendConnection
    try {
      conn = await pool.acquire()
    } catch (err) {
      forget()
      throw err
    }
    conn.socket.once('close', forget)
    try {
      return await fn(conn)
    } finally {
      pool.release(conn, false)
    }
  }

  /** (Re)discover which relations are tenant tables on a backend. */
  private refreshFacts(backendName: string, target: BackendTarget): Promise<void> {
    const running = this.loading.get(backendName)
    if (running) return running
    const tenant = this.host.config.tenant
    if (!tenant) return Promise.resolve()
    const job = this.withConnection(backendName, target, (conn) => queryRows(conn, schemaDiscoverySql(tenant.column)))
      .then((rows) => {
        this.discoveredRows.set(backendName, { column: tenant.column, rows: rows as unknown as SchemaRow[] })
        const facts = this.setDiscovered(backendName, rows as unknown as SchemaRow[])
        this.host.log.info({ backend: backendName, tenantTables: facts.tenantTables.size, relations: facts.knownRelations.size }, 'schema facts loaded')
      })
      .catch((err: Error) => {
        this.failedAt.set(backendName, Date.now())
        this.host.log.warn({ backend: backendName, err: err.message }, 'schema discovery failed')
      })
      .finally(() => this.loading.delete(backendName))
    this.loading.set(backendName, job)
    return job
  }

  /** The facts of a backend from discovered catalog rows, under the current tenant section. */
  private setDiscovered(backendName: string, rows: SchemaRow[]): SchemaFacts {
    const facts = buildSchemaFacts(rows, this.host.config.tenant!)
    const backend = this.host.config.backends[backendName]
    // In a database of its own, a tenant's tables without the tenant column are its own.
    this.discovered.set(backendName, backend?.url.perTenant ? { ...facts, unknown: 'allow' } : facts)
    this.updateFacts(backendName)
    return facts
  }

  async refreshCitus(backendName: string): Promise<void> {
    const backend = this.host.config.backends[backendName]
    try {
      const meta = await this.withConnection(backendName, this.target(backend), (conn) => loadCitusMetadata(async (sql) => queryRows(conn, sql)))
      this.citus.set(backendName, meta)
      this.host.routingChanged()
      this.citusLoadedAt.set(backendName, Date.now())
      this.updateFacts(backendName)
      this.host.log.info({ backend: backendName, tables: meta.tables.size, problems: meta.problems.length }, 'Citus metadata loaded')
    } catch (err) {
      this.host.metrics.prometheus?.citusRefreshFailed(backendName)
      this.host.log.warn({ backend: backendName, err: (err as Error).message }, 'Citus metadata refresh failed; routing to the coordinator')
    }
  }

  /**
   * The facts the rewriter uses for a backend: what discovery found, plus, on a Citus
   * coordinator, every distributed table as a tenant table keyed by its distribution column
   * and every Citus reference table as a reference table (explicit tenant.tables win).
   */
  private updateFacts(backendName: string): void {
    const base = this.discovered.get(backendName)
    if (!base) return
    const meta = this.citus.get(backendName)
    if (!meta) {
      this.facts.set(backendName, base)
      return
    }
    const tenantTables = new Map(base.tenantTables)
    const tenantColumnTypes = new Map(base.tenantColumnTypes ?? [])
    const referenceTables = new Set(base.referenceTables)
    const explicit = new Set(Object.keys(this.host.config.tenant?.tables ?? {}).map((k) => (k.includes('.') ? k : `public.${k}`)))
    for (const [name, table] of meta.tables) {
      if (explicit.has(name)) continue
      tenantTables.set(name, table.column)
      tenantColumnTypes.set(name, table.type)
    }
    for (const name of meta.referenceTables) {
      referenceTables.add(name)
      tenantTables.delete(name)
    }
    this.facts.set(backendName, { ...base, tenantTables, tenantColumnTypes, referenceTables })
  }
}
