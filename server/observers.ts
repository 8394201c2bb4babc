// Fans the session hooks out to what observes them: per-tenant statistics (always),
// Prometheus metrics (when `metrics:` is configured) and the slow-statement log.
import type { Logger } from 'pino'
import { normalizeSync } from 'libpg-query'
import type { RewriteResult, Refusal } from '../parser/types.js'
import type { SessionMetrics } from './proxy-context.js'
import type { ClientSession } from './session.js'
import type { Metrics } from './metrics.js'
import { TenantStats } from './tenant-stats.js'

export class Observers implements SessionMetrics {
  readonly stats = new TenantStats()
  prometheus: Metrics | null = null
  slowStatementMs = 0

  constructor(private readonly log: Logger) {}

  rewriteObserved(result: RewriteResult | null, seconds: number): void {
    this.prometheus?.rewriteObserved(result, seconds)
  }

  refused(session: ClientSession, refusal: Refusal): void {
    this.stats.refusal(session.effectiveTenant)
    this.prometheus?.refused(session, refusal)
  }

  backendError(session: ClientSession, sqlstate: string): void {
    this.stats.error(session.effectiveTenant)
    this.prometheus?.backendError(session, sqlstate)
  }

  statementSent(session: ClientSession): void {
    this.stats.statement(session.effectiveTenant)
    this.prometheus?.statementSent(session)
  }

  queryDone(session: ClientSession, seconds: number, rows: number, bytes: number): void {
    this.stats.query(session.effectiveTenant, seconds * 1000, rows)
    this.prometheus?.queryDone(session, seconds, rows, bytes)
    if (this.slowStatementMs > 0 && seconds * 1000 >= this.slowStatementMs) this.logSlow(session, seconds)
  }

  transactionDone(session: ClientSession): void {
    this.stats.transaction(session.effectiveTenant)
    this.prometheus?.transactionDone(session)
  }

  clientAccepted(): void {
    this.prometheus?.clientAccepted()
  }

  clientRefused(reason: 'auth' | 'limit' | 'shutdown' | 'protocol' | 'replication' | 'replication_rate_limited' | 'unknown_database', detail?: string): void {
    this.prometheus?.clientRefused(reason, detail)
  }

  /**
   * A stats line every `intervalMs` (0: none), like PgBouncer's: transactions, queries and
   * their mean latency in the interval, clients and server connections now.
   */
  startStatsLog(intervalMs: number, now: () => { clients: number; server_connections: number }): NodeJS.Timeout | null {
    if (intervalMs <= 0) return null
    let last = { ...this.stats.totals }
    const timer = setInterval(() => {
      const t = this.stats.totals
      const queries = t.queries - last.queries
      const ms = t.totalLatencyMs - last.totalLatencyMs
      const line = {
        interval_s: intervalMs / 1000,
        transactions: t.transactions - last.transactions,
        queries,
        avg_query_ms: queries ? Number((ms / queries).toFixed(3)) : 0,
        errors: t.errors - last.errors,
        refusals: t.refusals - last.refusals,
        ...now(),
      }
      last = { ...t }
      this.log.info(
        line,
        `stats: ${line.transactions} xacts/${line.interval_s} s, ${line.queries} queries, avg ${line.avg_query_ms} ms, ${line.clients} clients, ${line.server_connections} server connections`,
      )
    }, intervalMs)
    timer.unref()
    return timer
  }

  /** Slow statements are logged with literals replaced, so no tenant data reaches the log. */
  private logSlow(session: ClientSession, seconds: number): void {
    let statement = '(not available)'
    if (session.lastSql) {
      try {
        statement = normalizeSync(session.lastSql)
      } catch {
        statement = '(statement could not be normalised)'
      }
    }
    this.log.warn(
      { tenant: session.effectiveTenant, user: session.user, backend: session.backendName, ms: Math.round(seconds * 1000), statement },
      'slow statement',
    )
  }
}
