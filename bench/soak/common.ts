// The soak benchmark (../soak.ts): what its parent and its client processes share — the shape of the
// traffic, the latency histogram and the worker's options and report.

export const TENANTS = 40
/** Tenants t0..t9 live on the second backend (its own database and pool). */
export const OTHER_TENANTS = 10
export const POOLS = { main: 16, other: 6 }
/** The client libraries give up connecting (TCP, login) after this: an error of its own kind, before the hang watchdog. */
export const CONNECT_TIMEOUT_MS = 60_000

// ------------------------------------------------------------------ latency histogram

/** Log-scale buckets of 5 % from 10 µs: p50/p99 within 5 %, mergeable across processes. */
export const BUCKETS = 400
export function bucketOf(ms: number): number {
  const us = Math.max(10, ms * 1000)
  return Math.min(BUCKETS - 1, Math.floor(Math.log(us / 10) / Math.log(1.05)))
}
export function bucketMs(b: number): number {
  return (10 * Math.pow(1.05, b + 0.5)) / 1000
}
export function quantile(hist: number[], q: number): number {
  const total = hist.reduce((a, b) => a + b, 0)
  if (total === 0) return 0
  let seen = 0
  for (let b = 0; b < hist.length; b++) {
    seen += hist[b]
    if (seen >= q * total) return bucketMs(b)
  }
  return bucketMs(hist.length - 1)
}

export interface WorkerOptions {
  id: number
  port: number
  clients: number
  durationMs: number
  rampMs: number
  thinkMs: [number, number]
  hangupRate: number
  pgjsShare: number
  opTimeoutMs: number
  /** After the op timeout, how much longer a hung operation is watched for a late answer before it is dropped. */
  hangGraceMs: number
}

/** One operation that got no answer within the op timeout: what it was, and whether an answer came later. */
export interface HangRecord {
  lib: 'pg' | 'postgres.js'
  what: string
  /** Seconds into the run when it started. */
  atS: number
  /** The client's local port (node-postgres), to find it in the proxy's SHOW CLIENTS. */
  localPort: number | null
  /** Seconds from its start to its answer (late, past the op timeout), or null: none within the grace. */
  answeredAfterS: number | null
  /** What came late: 'rows' (the operation succeeded) or the error kind (a timeout of the client library, a connection reset, …). */
  lateOutcome?: string
  /** The proxy's view of that client when it was declared hung (SHOW CLIENTS state, backend), filled in by the parent. */
  proxyState?: string
}

export interface WorkerReport {
  id: number
  ops: number
  hist: number[]
  errors: Record<string, number>
  hangups: number
  hung: number
  hangs: HangRecord[]
  committed: number[]
  connects: number
  /** This client process's own event-loop delay over the run (ms): a starved client answers late whatever the proxy does. */
  loopDelayMaxMs: number
  loopDelayP99Ms: number
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
export const rand = (a: number, b: number): number => a + Math.random() * (b - a)
