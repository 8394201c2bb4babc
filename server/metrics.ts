// Prometheus metrics (one prom-client registry) and the HTTP endpoint serving
// /metrics, /healthz and /readyz. Hot-path hooks are O(1) counter updates; gauges that
// describe current state are computed when Prometheus scrapes.
import http from 'node:http'
import client from 'prom-client'
import type { Logger } from 'pino'
import { METRICS } from './metric-names.js'
import { TenantLabeler } from './tenant-labels.js'
import type { RewriteResult, Refusal } from '../parser/types.js'
import type { ClientSession } from './session.js'
import type { SessionMetrics } from './proxy-context.js'

type PoolView = { backendName: string; active: number; idle: { length: number }; connecting: number; waiting: number; size: number }

export interface MetricsSource {
  sessions(): Iterable<ClientSession>
  pools(): Iterable<PoolView>
  citusAges(): Iterable<{ backend: string; ageSeconds: number }>
  ready(): Promise<boolean>
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const REWRITE_BUCKETS = [0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005]

export class Metrics implements SessionMetrics {
  readonly registry = new client.Registry()
  readonly tenants: TenantLabeler
  private readonly c: ReturnType<typeof makeMetrics>
  /** The per-query counters' increments since the last scrape (added to prom-client when it collects). */
  private readonly pending = new PendingCounts()
  private server: http.Server | null = null

  constructor(
    private readonly source: MetricsSource,
    tenantTop: number,
  ) {
    this.tenants = new TenantLabeler(tenantTop)
    this.c = makeMetrics(this.registry, source, () => this.pending.flushInto(this.c))
    client.collectDefaultMetrics({ register: this.registry })
  }

  label(session: ClientSession): string {
    return this.tenants.label(session.effectiveTenant)
  }

  // ---- hooks called by sessions, pools and routing

  rewriteObserved(result: RewriteResult | null, seconds: number): void {
    if (!result) return
    this.c.rewriteDuration.observe(seconds)
    if (result.cache !== 'none') this.pending.cacheHits.set(result.cache, (this.pending.cacheHits.get(result.cache) ?? 0) + 1)
  }

  refused(session: ClientSession, refusal: Refusal): void {
    const tenant = this.label(session)
    this.c.refused.inc({ tenant, sqlstate: refusal.sqlstate })
    this.c.clientErrors.inc({ tenant })
  }

  backendError(session: ClientSession, sqlstate: string): void {
    this.c.serverErrors.inc({ backend: session.backendName ?? 'unknown', class: sqlstate.slice(0, 2) })
    this.c.clientErrors.inc({ tenant: this.label(session) })
  }

  statementSent(session: ClientSession): void {
    this.pending.of(this.label(session), session.backendName ?? 'unknown').statements++
  }

  queryDone(session: ClientSession, seconds: number, rows: number, bytes: number): void {
    const tenant = this.label(session)
    this.c.queryDuration.observe({ tenant }, seconds)
    if (rows > 0 || bytes > 0) {
      const p = this.pending.of(tenant, session.backendName ?? 'unknown')
      p.rows += rows
      p.bytes += bytes
    }
  }

  transactionDone(session: ClientSession): void {
    this.pending.of(this.label(session), session.backendName ?? 'unknown').transactions++
  }

  poolWaited(backend: string, seconds: number): void {
    this.c.poolWait.observe({ backend }, seconds)
  }

  tenantThrottled(tenant: string, limit: 'rate' | 'connections'): void {
    this.c.tenantThrottled.inc({ tenant: this.tenants.label(tenant), limit })
  }

  tenantRejected(tenant: string, reason: 'max_waiting' | 'rate' | 'connections' | 'wait_timeout'): void {
    this.c.tenantRejected.inc({ tenant: this.tenants.label(tenant), reason })
  }

  tenantWaited(tenant: string, seconds: number): void {
    this.c.tenantWait.observe({ tenant: this.tenants.label(tenant) }, seconds)
  }

  connectFailed(backend: string): void {
    this.c.connectErrors.inc({ backend })
  }

  routed(kind: string, backend: string): void {
    this.c.routing.inc({ kind, backend })
  }

  citusRefreshFailed(backend: string): void {
    this.c.citusRefreshErrors.inc({ backend })
  }

  clientAccepted(): void {
    this.c.clientAccepted.inc()
  }

  loginCutOff(reason: 'login_timeout' | 'message_too_large' | 'too_many_authenticating'): void {
    this.c.loginCutoffs.inc({ reason })
  }

  cancelRequest(result: 'local' | 'forwarded' | 'unmatched'): void {
    this.c.cancelRequests.inc({ result })
  }

  clientRefused(reason: 'auth' | 'limit' | 'shutdown' | 'protocol' | 'replication' | 'replication_rate_limited' | 'unknown_database', detail?: string): void {
    this.c.clientRefused.inc({ reason })
    if (reason === 'auth') this.c.authFailures.inc({ reason: detail ?? 'other' })
  }

  // ---- HTTP endpoint

  async listen(host: string, port: number, log: Logger): Promise<number> {
    const server = http.createServer((req, res) => {
      this.handle(req.url ?? '/').then(
        ({ status, type, body }) => {
          res.writeHead(status, { 'content-type': type })
          res.end(body)
        },
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' })
          res.end(`error: ${err.message}\n`)
        },
      )
    })
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => resolve())
    })
    const actual = (server.address() as { port: number }).port
    log.info({ host, port: actual }, 'metrics endpoint listening')
    return actual
  }

  private async handle(url: string): Promise<{ status: number; type: string; body: string }> {
    const path = url.split('?')[0]
    if (path === '/metrics') return { status: 200, type: this.registry.contentType, body: await this.registry.metrics() }
    if (path === '/healthz') return { status: 200, type: 'text/plain', body: 'ok\n' }
    if (path === '/readyz') {
      const ok = await this.source.ready()
      return { status: ok ? 200 : 503, type: 'text/plain', body: ok ? 'ready\n' : 'not ready: pgtenant is not accepting clients (starting or shutting down)\n' }
    }
    return { status: 404, type: 'text/plain', body: 'not found: try /metrics, /healthz or /readyz\n' }
  }

  close(): void {
    this.server?.close()
    this.server = null
  }
}

/**
 * The counters every query updates (statements, transactions, rows and bytes sent, rewrite cache hits), counted in
 * plain fields per (tenant label, backend) and added to the prom-client counters when they are
 * collected (a scrape): prom-client builds and hashes a label key on every `inc`, about 2 µs each,
 * four times per query. What a scrape shows is the same.
 */
class PendingCounts {
  private readonly byKey = new Map<string, Map<string, Pending>>()
  /** The last entry used (a session's queries mostly hit the same one). */
  private last: Pending | null = null
  /** Rewrite plans by cache outcome (pgtenant_rewrite_cache_total). */
  readonly cacheHits = new Map<string, number>()

  /** The entry of a tenant label and backend (rows and bytes are summed per tenant when flushed). */
  of(tenant: string, backend: string): Pending {
    const last = this.last
    if (last !== null && last.tenant === tenant && last.backend === backend) return last
    let perTenant = this.byKey.get(tenant)
    if (perTenant === undefined) this.byKey.set(tenant, (perTenant = new Map()))
    let p = perTenant.get(backend)
    if (p === undefined) perTenant.set(backend, (p = { tenant, backend, statements: 0, transactions: 0, rows: 0, bytes: 0 }))
    this.last = p
    return p
  }

  /** Add what was counted to the counters and start from zero (entries are kept: the label sets are bounded, as prom-client's are). */
  flushInto(c: ReturnType<typeof makeMetrics>): void {
    for (const perTenant of this.byKey.values())
      for (const p of perTenant.values()) {
        if (p.statements > 0) c.statements.inc({ tenant: p.tenant, backend: p.backend }, p.statements)
        if (p.transactions > 0) c.transactions.inc({ tenant: p.tenant, backend: p.backend }, p.transactions)
        if (p.rows > 0) c.rowsSent.inc({ tenant: p.tenant }, p.rows)
        if (p.bytes > 0) c.bytesSent.inc({ tenant: p.tenant }, p.bytes)
        p.statements = p.transactions = p.rows = p.bytes = 0
      }
    for (const [kind, n] of this.cacheHits) if (n > 0) c.rewriteCache.inc({ kind }, n)
    this.cacheHits.clear()
  }
}

interface Pending {
  tenant: string
  backend: string
  statements: number
  transactions: number
  rows: number
  bytes: number
}

function makeMetrics(registry: client.Registry, source: MetricsSource, flushPending: () => void) {
  const m = METRICS
  const counter = <L extends string>(d: { name: string; help: string; labels: readonly L[] }, collect?: () => void) =>
    new client.Counter<L>({ name: d.name, help: d.help, labelNames: d.labels, registers: [registry], collect })
  /** A counter updated from PendingCounts: whichever of them is collected first adds every pending count. */
  const pendingCounter = <L extends string>(d: { name: string; help: string; labels: readonly L[] }) => counter(d, flushPending)
  const histogram = <L extends string>(d: { name: string; help: string; labels: readonly L[] }, buckets: number[]) =>
    new client.Histogram<L>({ name: d.name, help: d.help, labelNames: d.labels, buckets, registers: [registry] })
  new client.Gauge({
    name: m.clientConnections.name,
    help: m.clientConnections.help,
    labelNames: m.clientConnections.labels,
    registers: [registry],
    collect() {
      const counts: Record<string, number> = { active: 0, idle: 0, idle_in_transaction: 0, waiting: 0, login: 0 }
      for (const s of source.sessions()) counts[s.metricState]++
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n)
    },
  })
  new client.Gauge({
    name: m.serverConnections.name,
    help: m.serverConnections.help,
    labelNames: m.serverConnections.labels,
    registers: [registry],
    collect() {
      this.reset()
      const sums = new Map<string, { active: number; idle: number; connecting: number }>()
      for (const p of source.pools()) {
        const s = sums.get(p.backendName) ?? { active: 0, idle: 0, connecting: 0 }
        s.active += p.active
        s.idle += p.idle.length
        s.connecting += p.connecting
        sums.set(p.backendName, s)
      }
      for (const [backend, s] of sums) for (const [state, n] of Object.entries(s)) this.set({ backend, state }, n)
    },
  })
  /** A gauge per backend: the sum of one pool field over the backend's pools. */
  const perBackend = (d: { name: string; help: string; labels: readonly string[] }, field: (p: PoolView) => number): void => {
    new client.Gauge({
      name: d.name,
      help: d.help,
      labelNames: d.labels,
      registers: [registry],
      collect() {
        this.reset()
        const sums = new Map<string, number>()
        for (const p of source.pools()) sums.set(p.backendName, (sums.get(p.backendName) ?? 0) + field(p))
        for (const [backend, n] of sums) this.set({ backend }, n)
      },
    })
  }
  new client.Gauge({
    name: m.ready.name,
    help: m.ready.help,
    registers: [registry],
    aggregator: 'min', // with workers: ready only when every worker is
    async collect() {
      this.set((await source.ready()) ? 1 : 0)
    },
  })
  perBackend(m.poolSize, (p) => p.size)
  perBackend(m.poolWaiting, (p) => p.waiting)
  new client.Gauge({
    name: m.citusMetadataAge.name,
    help: m.citusMetadataAge.help,
    labelNames: m.citusMetadataAge.labels,
    registers: [registry],
    collect() {
      this.reset()
      for (const a of source.citusAges()) this.set({ backend: a.backend }, a.ageSeconds)
    },
  })
  return {
    clientAccepted: counter(m.clientAccepted),
    clientRefused: counter(m.clientRefused),
    loginCutoffs: counter(m.loginCutoffs),
    authFailures: counter(m.authFailures),
    cancelRequests: counter(m.cancelRequests),
    poolWait: histogram(m.poolWait, LATENCY_BUCKETS),
    connectErrors: counter(m.connectErrors),
    serverErrors: counter(m.serverErrors),
    transactions: pendingCounter(m.transactions),
    statements: pendingCounter(m.statements),
    queryDuration: histogram(m.queryDuration, LATENCY_BUCKETS),
    rowsSent: pendingCounter(m.rowsSent),
    bytesSent: pendingCounter(m.bytesSent),
    clientErrors: counter(m.clientErrors),
    rewriteDuration: histogram(m.rewriteDuration, REWRITE_BUCKETS),
    rewriteCache: pendingCounter(m.rewriteCache),
    refused: counter(m.refused),
    routing: counter(m.routing),
    citusRefreshErrors: counter(m.citusRefreshErrors),
    tenantThrottled: counter(m.tenantThrottled),
    tenantRejected: counter(m.tenantRejected),
    tenantWait: histogram(m.tenantWait, LATENCY_BUCKETS),
  }
}
