// Per-tenant statistics for the admin console (SHOW TENANTS) — always on, independent of
// Prometheus. Bounded: at most `maxTenants` are tracked; the least recently active go first.
export interface TenantCounters {
  tenant: string
  statements: number
  transactions: number
  errors: number
  refusals: number
  queries: number
  totalLatencyMs: number
  rows: number
  /** Transactions that waited because the tenant was at a limit (tenant_limits: rate or max_connections). */
  throttled: number
  /** Clients that got a limit's error (max_waiting, rate, max_connections, wait timeout). */
  rejected: number
  /** Transactions that waited for a server connection (or a rate token), and how long in all. */
  waits: number
  waitMs: number
  lastActive: number
}

type Counts = Omit<TenantCounters, 'tenant' | 'lastActive'>

/** Every counter at zero: a new tenant's, and the totals'. */
function zeroCounts(): Counts {
  return { statements: 0, transactions: 0, errors: 0, refusals: 0, queries: 0, totalLatencyMs: 0, rows: 0, throttled: 0, rejected: 0, waits: 0, waitMs: 0 }
}

export class TenantStats {
  private readonly byTenant = new Map<string, TenantCounters>()
  readonly totals: Counts = zeroCounts()

  constructor(private readonly maxTenants = 100_000) {}

  /** The counters of a tenant, moved to the most-recently-active end (Map order). */
  private last: TenantCounters | null = null

  private of(tenant: string | null): TenantCounters {
    const key = tenant ?? '(none)'
    // The same tenant as the last event (the common case) is already the most recent entry.
    if (this.last !== null && this.last.tenant === key) return this.last
    let c = this.byTenant.get(key)
    if (c) this.byTenant.delete(key)
    else {
      c = { tenant: key, ...zeroCounts(), lastActive: 0 }
      if (this.byTenant.size >= this.maxTenants) this.byTenant.delete(this.byTenant.keys().next().value as string)
    }
    c.lastActive = Date.now()
    this.byTenant.set(key, c)
    this.last = c
    return c
  }

  statement(tenant: string | null): void {
    this.of(tenant).statements++
    this.totals.statements++
  }

  transaction(tenant: string | null): void {
    this.of(tenant).transactions++
    this.totals.transactions++
  }

  error(tenant: string | null): void {
    this.of(tenant).errors++
    this.totals.errors++
  }

  refusal(tenant: string | null): void {
    const c = this.of(tenant)
    c.refusals++
    c.errors++
    this.totals.refusals++
    this.totals.errors++
  }

  query(tenant: string | null, ms: number, rows: number): void {
    const c = this.of(tenant)
    c.queries++
    c.totalLatencyMs += ms
    c.rows += rows
    this.totals.queries++
    this.totals.totalLatencyMs += ms
    this.totals.rows += rows
  }

  throttled(tenant: string): void {
    this.of(tenant).throttled++
    this.totals.throttled++
  }

  rejected(tenant: string): void {
    this.of(tenant).rejected++
    this.totals.rejected++
  }

  waited(tenant: string, ms: number): void {
    const c = this.of(tenant)
    c.waits++
    c.waitMs += ms
    this.totals.waits++
    this.totals.waitMs += ms
  }

  /** A tenant's counters, if tracked (no reordering). */
  get(tenant: string): TenantCounters | undefined {
    return this.byTenant.get(tenant)
  }

  /** Most recently active first. */
  list(): TenantCounters[] {
    return [...this.byTenant.values()].reverse()
  }

  get size(): number {
    return this.byTenant.size
  }
}
