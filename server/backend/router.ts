// Where a session's next transaction goes and the pool that serves it: the routing decision
// (routing/placement.ts, pure) applied to the session's tenant, database and statement facts,
// remembered on the session while nothing it was decided from changes; the Citus fallback to the
// coordinator; and EXPLAIN REWRITE's route. The proxy asks it; it owns no sockets.
import type { Config, UserConfig } from '../config-types.js'
import type { Planner } from '../planner.js'
import type { PoolManager, Pool } from './pool.js'
import { BackendError, type BackendConnection, type BackendTarget } from './connection.js'
import type { ClientSession } from '../session.js'
import type { RouteMemo } from '../proxy-context.js'
import type { Observers } from '../observers.js'
import type { SchemaCatalogs } from '../schema-catalogs.js'
import { routingFor, sessionDatabase } from '../databases.js'
import { isHashed } from './target.js'
import { decideRoute, formatRoute, redactRoute, type Route } from '../../routing/placement.js'
import type { Refusal } from '../../parser/types.js'

/** What the router reads from the proxy. */
export interface RouterHost {
  readonly config: Config
  readonly tenantPattern: RegExp
  readonly planner: Planner
  readonly pools: PoolManager
  readonly metrics: Observers
  readonly catalogs: SchemaCatalogs
  readonly log: { info(o: object, msg: string): void }
  findUser(name: string): UserConfig | undefined
  placementFor(tenant: string | null): string
  connectFailed(backend: string, target: BackendTarget, err: BackendError, purpose: 'pool' | 'catalog'): void
}

export interface Explained {
  sql: string | null
  refusal: Refusal | null
  cache: string
  route: Route | null
  routeError: string | null
}

export class Router {
  /** Bumped whenever the same session and statement could be routed differently: config reload, new Citus metadata. */
  private generation = 0

  constructor(private readonly host: RouterHost) {}

  /** Routes decided before now may be wrong: decide again. */
  changed(): void {
    this.generation++
  }

  /**
   * The route and pool of the session's next transaction (a refusal is thrown). The session
   * keeps the answer, reused while nothing it was decided from has changed: same tenant, same
   * routing generation (bumped by a reload and by new Citus metadata), the pool still open,
   * and for a Citus route the same statement facts (tenant tables touched, relations).
   */
  routeAndPool(session: ClientSession): RouteMemo {
    const hint = session.routeHint
    const tenant = session.effectiveTenant
    const m = session.routeMemo
    if (
      m !== null &&
      m.generation === this.generation &&
      m.tenant === tenant &&
      (m.byStatement === false || (m.touchesTenant === hint.touchesTenant && m.relations === hint.relations)) &&
      this.host.pools.pools.get(m.poolKey) === m.pool
    )
      return m
    const route = this.route(session, hint)
    const poolKey = this.poolKey(session, route)
    const pool = this.poolFor(session, route, poolKey)
    const memo: RouteMemo = {
      generation: this.generation,
      tenant,
      byStatement: route.kind === 'citus-worker' || route.kind === 'citus-coordinator',
      touchesTenant: hint.touchesTenant,
      relations: hint.relations,
      route,
      pool,
      poolKey,
    }
    session.routeMemo = memo
    return memo
  }

  /**
   * Where the session's statements would go if its tenant were `tenant`, and the pool that would serve
   * them (nothing of the session changes, no memo): whether a tenant change inside a transaction stays
   * on the transaction's server. A refusal is thrown.
   */
  routeFor(session: ClientSession, tenant: string | null): { route: Route; pool: Pool } {
    const route = this.route(session, session.routeHint, tenant)
    return { route, pool: this.poolFor(session, route) }
  }

  /** Where this session's next transaction goes, or a refusal (thrown as an error with its SQLSTATE). */
  route(session: ClientSession, hint: { touchesTenant: boolean; relations: readonly string[] }, tenant = session.effectiveTenant): Route {
    const { config, tenantPattern, catalogs, metrics } = this.host
    const decision = decideRoute({
      ...routingFor(config, sessionDatabase(session)), // the client's database (server/databases.ts)
      tenant,
      touchesTenant: hint.touchesTenant,
      bypass: session.bypass,
      tenantPattern,
      citus: catalogs.citus,
      tables: hint.relations,
    })
    if (decision.kind === 'refuse') {
      metrics.prometheus?.routed('refuse', decision.backend ?? 'none')
      throw new BackendError(decision.message, decision.sqlstate)
    }
    if (session.log.isLevelEnabled('debug')) session.log.debug({ route: formatRoute(decision) }, 'routed')
    return decision
  }

  /** The pool for a route: one per backend, server address, database and user. */
  poolFor(session: ClientSession, route: Route, key = this.poolKey(session, route)): Pool {
    const { pools, config } = this.host
    const user = route.target.user ?? session.user
    const existing = pools.pools.get(key)
    if (existing) return existing
    // The session's own settings: a passthrough user's carry the password the server accepted.
    const configured = session.userConfig ?? this.host.findUser(session.user)
    const password =
      route.target.user !== undefined ? route.target.password : configured?.password && !isHashed(configured.password) ? configured.password : undefined
    const target: BackendTarget = {
      host: route.target.host,
      port: route.target.port,
      database: route.target.database,
      user,
      password,
      sslmode: route.target.sslmode,
    }
    target.onConnectFailed = (err) => this.host.connectFailed(route.backend, target, err, 'pool')
    return pools.pool(key, route.backend, target, config.backends[route.backend].pool)
  }

  /** The Citus worker of a route is unreachable and nothing was sent yet: the coordinator of its backend serves. */
  async onCoordinator(session: ClientSession, backendName: string): Promise<{ conn: BackendConnection; pool: Pool }> {
    const coordinator = decideRoute({
      placement: { default: backendName, tenants: {} },
      backends: this.host.config.backends,
      tenant: session.effectiveTenant,
      touchesTenant: false,
      bypass: true, // bypass routing = the coordinator of a Citus backend
      tenantPattern: this.host.tenantPattern,
    })
    if (coordinator.kind === 'refuse') throw new BackendError(coordinator.message, coordinator.sqlstate)
    this.host.metrics.prometheus?.routed(coordinator.kind, coordinator.backend)
    const pool = this.poolFor(session, coordinator)
    return { conn: await pool.acquire(), pool }
  }

  /** A Citus worker answered with an error that may mean the shard moved: reload the metadata (at most every 5 s). */
  workerError(backendName: string, sqlstate: string): void {
    if (!['42P01', 'XX000', '57P01', '08006', '25006'].includes(sqlstate)) return
    const last = this.host.catalogs.citusLoadedAt.get(backendName) ?? 0
    if (Date.now() - last < 5000) return
    this.host.log.info({ backend: backendName, sqlstate }, 'error from a Citus worker: refreshing metadata')
    void this.host.catalogs.refreshCitus(backendName)
  }

  /** EXPLAIN REWRITE: what the proxy would do with a statement for a tenant, as data. */
  explain(tenant: string | null, sql: string): Explained {
    const { config, catalogs, planner, tenantPattern } = this.host
    const facts = catalogs.facts.get(this.host.placementFor(tenant))
    const plan = planner.plan({ sql, facts, tenant, bypass: false, searchPath: ['public'] })
    let route: Route | null = null
    let routeError: string | null = null
    const hint = { touchesTenant: false, relations: [] as string[] }
    for (const st of plan?.statements ?? [])
      if (st.kind === 'forward') {
        hint.touchesTenant ||= st.touchesTenant
        hint.relations.push(...st.relations)
      }
    const decision = decideRoute({
      placement: config.placement,
      backends: config.backends,
      tenant,
      touchesTenant: hint.touchesTenant,
      bypass: false,
      tenantPattern,
      citus: catalogs.citus,
      tables: hint.relations,
    })
    if (decision.kind === 'refuse') routeError = `refused ${decision.sqlstate}: ${decision.message}`
    else route = redactRoute(decision)
    if (plan === null) return { sql, refusal: null, cache: 'none (transparent)', route, routeError }
    return { sql: plan.sql ?? null, refusal: plan.refusal ?? null, cache: plan.cache, route, routeError }
  }

  /** Pools are per route target and, when the backend URL names no user, per client user. */
  private poolKey(session: ClientSession, route: Route): string {
    return route.target.user !== undefined ? route.poolKey : `${route.poolKey}\u0000${session.user}`
  }
}
