// Bounded tenant label values for metrics: the `top` most active tenants over a sliding
// window keep their own label, everyone else is summed as "_other", so 100,000 tenants
// cannot blow up Prometheus. O(1) per event; the top set is recomputed once per window.
export const OTHER_TENANT = '_other'
export const NO_TENANT = '_none'

export class TenantLabeler {
  private current = new Map<string, number>()
  private top = new Set<string>()
  private windowStart: number

  constructor(
    private readonly limit: number,
    private readonly windowMs = 60_000,
    now = Date.now(),
  ) {
    this.windowStart = now
  }

  /** The label to use for this tenant's event (and count the event towards the next window). */
  label(tenant: string | null, now = Date.now()): string {
    if (tenant === null) return NO_TENANT
    if (this.limit <= 0) return OTHER_TENANT
    if (now - this.windowStart >= this.windowMs) this.roll(now)
    this.current.set(tenant, (this.current.get(tenant) ?? 0) + 1)
    if (this.top.has(tenant)) return tenant
    // Until the set is full, first come first served (the first window has no history).
    if (this.top.size < this.limit) {
      this.top.add(tenant)
      return tenant
    }
    return OTHER_TENANT
  }

  /** Tenants that currently have their own label. */
  labelled(): ReadonlySet<string> {
    return this.top
  }

  /** Start a new window: the busiest tenants of the one that ended keep labels. Returns the tenants that lost theirs. */
  roll(now = Date.now()): string[] {
    const ranked = [...this.current.entries()].sort((a, b) => b[1] - a[1]).slice(0, this.limit)
    const next = new Set(ranked.map(([t]) => t))
    const dropped = [...this.top].filter((t) => !next.has(t))
    this.top = next
    this.current = new Map()
    this.windowStart = now
    return dropped
  }
}
