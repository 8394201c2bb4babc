// Per-tenant limits (tenant_limits: in the config, issue 19 section 1): how many server
// connections of a pool a tenant may hold at once, how many of its clients may wait, how many
// transactions a second it may start (a token bucket), and the statement_timeout its
// transactions run with. A TenantGate is one tenant's runtime state (its limits resolved from
// the default and its override, what it holds and how many of its clients wait, its bucket,
// its counters); pools keep a share per tenant of their own (server/backend/pool.ts) and hand
// connections out fairly between the tenants waiting for them.
//
// The order on the slow path (acquire): a rate token first (waiting for one up to the wait
// timeout: 53400), then a server connection of the pool (waiting in the tenant's queue up to the
// wait timeout: 53300). A tenant over max_waiting gets 53300 at once.
import type { Config, TenantLimitValues } from '../config-types.js'
import { BackendError, type BackendConnection } from './connection.js'
import type { AcquireDone, Pool } from './pool.js'
import { TokenBucket } from './token-bucket.js'

/** One tenant's limits, resolved (0: none). */
export interface ResolvedLimits {
  maxConnections: number
  /** max_connections as a share of the pool size (0: none; overrides maxConnections). */
  maxConnectionsPct: number
  maxWaiting: number
  tps: number
  burst: number
  statementTimeoutMs: number
  waitTimeoutMs: number
  weight: number
}

/** Where the limits' events go: per-tenant statistics (SHOW TENANTS) and Prometheus. */
export interface LimitEvents {
  /** A transaction had to wait because its tenant was at a limit. */
  throttled(tenant: string, limit: 'rate' | 'connections'): void
  /** A client got a limit's error: max_waiting, rate (53400), connections (its max_connections), wait_timeout (the pool was full). */
  rejected(tenant: string, reason: 'max_waiting' | 'rate' | 'connections' | 'wait_timeout'): void
  /** A transaction of the tenant waited this long for its server connection (only transactions that waited). */
  waited(tenant: string, seconds: number): void
}

interface RateWaiter {
  next(): void
  fail(err: Error): void
  deadline: number
}

export class TenantGate {
  /** Server connections the tenant holds in all pools (being opened for it included). */
  held = 0
  /** Its clients waiting for a rate token or a server connection. */
  waiting = 0
  bucket: TokenBucket | null = null
  /** Counters since start (SHOW TENANTS). */
  throttledCount = 0
  rejectedCount = 0
  waits = 0
  waitedMs = 0
  lastUsed = Date.now()
  /** Appended to the session state key: a server connection set up with another statement timeout gets the replay. */
  stateSuffix = ''
  private readonly rateQueue: RateWaiter[] = []
  private rateTimer: NodeJS.Timeout | null = null

  constructor(
    readonly name: string,
    public limits: ResolvedLimits,
    private readonly owner: { readonly events: LimitEvents },
  ) {
    this.configure(limits)
  }

  configure(limits: ResolvedLimits): void {
    this.limits = limits
    if (limits.tps > 0) {
      if (this.bucket) this.bucket.configure(limits.tps, limits.burst)
      else this.bucket = new TokenBucket(limits.tps, limits.burst)
    } else {
      this.bucket = null
      // No rate any more: whoever waited for a token goes on now.
      const go = this.rateQueue.splice(0)
      this.waiting -= go.length
      for (const w of go) w.next()
    }
    this.stateSuffix = limits.statementTimeoutMs > 0 ? `\u0001statement_timeout=${limits.statementTimeoutMs}` : ''
    if (this.rateQueue.length > 0) this.armRate()
  }

  /** Its max_connections in a pool of `size` (Infinity: none). */
  maxConnectionsIn(size: number): number {
    const l = this.limits
    if (l.maxConnectionsPct > 0) return Math.max(1, Math.floor((size * l.maxConnectionsPct) / 100))
    return l.maxConnections > 0 ? l.maxConnections : Infinity
  }

  /** May one more of its clients start waiting? */
  get mayWait(): boolean {
    return this.limits.maxWaiting === 0 || this.waiting < this.limits.maxWaiting
  }

  /** The error for a client over max_waiting. */
  tooManyWaiting(): BackendError {
    this.reject('max_waiting')
    return new BackendError(
      `tenant "${this.name}": too many clients waiting (its limit is ${this.limits.maxWaiting}: tenant_limits max_waiting); try again later`,
      '53300',
    )
  }

  reject(reason: 'max_waiting' | 'rate' | 'connections' | 'wait_timeout'): void {
    this.rejectedCount++
    this.owner.events.rejected(this.name, reason)
  }

  throttle(limit: 'rate' | 'connections'): void {
    this.throttledCount++
    this.owner.events.throttled(this.name, limit)
  }

  /** A transaction of the tenant waited `ms` (rate and pool together). */
  waited(ms: number): void {
    this.waits++
    this.waitedMs += ms
    this.owner.events.waited(this.name, ms / 1000)
  }

  /** The hot path: may a transaction start now without waiting for a token? (Nothing is taken.) */
  rateOpen(now: number): boolean {
    return this.bucket === null || (this.rateQueue.length === 0 && this.bucket.available(now))
  }

  /** Take the token rateOpen() saw (after the server connection was had). */
  takeToken(now: number): void {
    this.bucket?.take(now)
  }

  /**
   * A token for a transaction that is about to wait for a connection anyway: `next` runs now
   * (true) or once a token is there (false; `fail` gets 53400 when the wait times out).
   */
  admit(next: () => void, fail: (err: Error) => void, now: number): boolean {
    if (this.bucket === null || (this.rateQueue.length === 0 && this.bucket.take(now))) return true
    if (!this.mayWait) throw this.tooManyWaiting()
    this.throttle('rate')
    this.waiting++
    this.rateQueue.push({ next, fail, deadline: now + this.limits.waitTimeoutMs })
    if (this.rateQueue.length === 1) this.armRate()
    return false
  }

  /** One timer per throttled tenant: the next token, or the first waiter's deadline, whichever comes first. */
  private armRate(): void {
    if (this.rateTimer !== null) clearTimeout(this.rateTimer)
    this.rateTimer = null
    const head = this.rateQueue[0]
    if (head === undefined || this.bucket === null) return
    const now = Date.now()
    const wait = Math.max(0, Math.min(this.bucket.msUntilToken(now), head.deadline - now))
    this.rateTimer = setTimeout(this.onRateTimer, wait)
    this.rateTimer.unref()
  }

  private readonly onRateTimer = (): void => {
    this.rateTimer = null
    const now = Date.now()
    const go: RateWaiter[] = []
    const late: RateWaiter[] = []
    while (this.rateQueue.length > 0) {
      const head = this.rateQueue[0]
      if (this.bucket !== null && !this.bucket.take(now)) {
        if (head.deadline > now) break
        late.push(head)
      } else go.push(head)
      this.rateQueue.shift()
      this.waiting--
    }
    this.armRate()
    for (const w of late) {
      this.reject('rate')
      w.fail(
        new BackendError(
          `tenant "${this.name}": rate limit of ${this.limits.tps} transactions per second exceeded (waited ${this.limits.waitTimeoutMs} ms for a turn; tenant_limits tps)`,
          '53400',
        ),
      )
    }
    for (const w of go) w.next()
  }

  /** Nothing held, nobody waiting, no token owed: the gate may be forgotten (it is made again when needed). */
  idle(now: number): boolean {
    return this.held === 0 && this.waiting === 0 && this.rateQueue.length === 0 && (this.bucket === null || this.bucket.full(now))
  }

  get rateWaiting(): number {
    return this.rateQueue.length
  }
}

const NO_EVENTS: LimitEvents = { throttled: () => undefined, rejected: () => undefined, waited: () => undefined }

export class TenantLimits {
  private readonly gates = new Map<string, TenantGate>()
  private last: TenantGate | null = null
  private config: Config
  events: LimitEvents = NO_EVENTS

  constructor(
    config: Config,
    /** Processes sharing the limits (workers: N): each enforces 1/N of max_connections, max_waiting and tps. */
    private readonly workers = 1,
  ) {
    this.config = config
  }

  /** Whether any limit is configured (SHOW TENANTS, README: limits are off without tenant_limits). */
  get configured(): boolean {
    return this.config.tenant_limits !== undefined
  }

  /** A reload: every known tenant's limits are resolved again; waiting clients see the new ones. */
  configure(config: Config): void {
    this.config = config
    for (const g of this.gates.values()) g.configure(this.resolve(g.name))
  }

  /** The limits of a tenant: its override over the default, this process's share of them. */
  resolve(tenant: string): ResolvedLimits {
    const tl = this.config.tenant_limits
    const v: Partial<TenantLimitValues> = tl ? { ...tl.default, ...(Object.hasOwn(tl.tenants, tenant) ? tl.tenants[tenant] : {}) } : {}
    const share = (n: number): number => (n > 0 && this.workers > 1 ? Math.max(1, Math.ceil(n / this.workers)) : n)
    const tps = v.tps !== undefined && v.tps > 0 ? v.tps / this.workers : 0
    const wait = v.wait_timeout_ms
    return {
      maxConnections: share(v.max_connections ?? 0),
      maxConnectionsPct: v.max_connections_pct ?? 0,
      maxWaiting: share(v.max_waiting ?? 0),
      tps,
      burst: v.burst !== undefined && v.burst >= 1 ? v.burst : Math.max(1, Math.ceil(tps)),
      statementTimeoutMs: v.statement_timeout_ms ?? 0,
      waitTimeoutMs: wait !== undefined && wait >= 0 ? wait : this.config.pool.wait_timeout_ms,
      weight: v.weight !== undefined && v.weight > 0 ? v.weight : 1,
    }
  }

  /** The gate of a tenant (made on first use); null for no tenant (no limits, its own share of each pool). */
  gate(tenant: string | null): TenantGate | null {
    if (tenant === null) return null
    const last = this.last
    if (last !== null && last.name === tenant) return last
    let g = this.gates.get(tenant)
    if (g === undefined) {
      g = new TenantGate(tenant, this.resolve(tenant), this)
      this.gates.set(tenant, g)
    }
    this.last = g
    return g
  }

  /** A known gate, without making one (SHOW TENANTS). */
  peek(tenant: string): TenantGate | undefined {
    return this.gates.get(tenant)
  }

  list(): IterableIterator<TenantGate> {
    return this.gates.values()
  }

  /**
   * The hot path: an idle connection of `pool` for the tenant right now, within its limits
   * (a rate token is taken only when a connection was had), or null: then acquire().
   */
  tryAcquire(pool: Pool, stateKey: string, gate: TenantGate | null): BackendConnection | null {
    if (gate === null) return pool.tryAcquire(stateKey, null)
    const now = Date.now()
    if (!gate.rateOpen(now)) return null
    const conn = pool.tryAcquire(stateKey, gate)
    if (conn !== null) {
      gate.takeToken(now)
      gate.lastUsed = now
    }
    return conn
  }

  /**
   * The slow path: a rate token, then a connection of `pool` (at once, once one is free or
   * opened, or an error: a limit's, the wait timeout's, a connect failure). `done` is never
   * called before acquire() returns.
   */
  acquire(pool: Pool, stateKey: string, gate: TenantGate | null, done: AcquireDone): void {
    const started = Date.now()
    let sync = true
    const finish: AcquireDone = (err, conn) => {
      if (sync) {
        queueMicrotask(() => finish(err, conn))
        return
      }
      if (gate !== null) {
        const ms = Date.now() - started
        if (ms > 0) gate.waited(ms)
      }
      done(err, conn)
    }
    // After a wait for a token the client was already let in: max_waiting is not asked again.
    const toPool = (checkWaiting = true): void => {
      try {
        const conn = pool.request(stateKey, gate, finish, gate !== null ? gate.limits.waitTimeoutMs : pool.waitTimeoutMs, checkWaiting)
        if (conn !== null) finish(null, conn)
      } catch (err) {
        finish(err as Error, null)
      }
    }
    try {
      if (gate === null) toPool()
      else {
        gate.lastUsed = started
        if (
          gate.admit(
            () => toPool(false),
            (err) => finish(err, null),
            started,
          )
        )
          toPool()
      }
    } catch (err) {
      finish(err as Error, null)
    }
    sync = false
  }

  /** Forget tenants with nothing held, waiting or owed (the reaper, every few seconds). */
  reap(now = Date.now()): void {
    for (const [name, g] of this.gates) {
      if (!g.idle(now) || now - g.lastUsed < 60_000) continue
      this.gates.delete(name)
      if (this.last === g) this.last = null
    }
  }
}

/**
 * The SQL that puts a tenant's statement_timeout on a server connection, after the session
 * state replay (RESET ALL and the client's settings): a connection handed to another tenant
 * gets that tenant's replay, whose RESET ALL takes it off again. A client that set its own
 * statement_timeout keeps it when it is shorter (min of the two, read back in milliseconds).
 */
export function statementTimeoutSql(ms: number, clientSetsTimeout: boolean): string {
  if (ms <= 0) return ''
  if (!clientSetsTimeout) return `SET statement_timeout TO ${ms}`
  return `SELECT set_config('statement_timeout', CASE WHEN setting::bigint BETWEEN 1 AND ${ms} THEN setting ELSE '${ms}' END, false) FROM pg_catalog.pg_settings WHERE name = 'statement_timeout'`
}
