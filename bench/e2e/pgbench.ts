// Runs pgbench and reads what it measured: TPS and transaction counts from its summary,
// every transaction's latency from its per-transaction log (--log), for averages and p99.
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { runCmd } from './proc.js'

export type QueryMode = 'simple' | 'extended' | 'prepared'

export interface PgbenchRun {
  port: number
  user: string
  password: string
  database: string
  clients: number
  threads: number
  mode: QueryMode
  seconds: number
  /** '-S' for the built-in select-only script, else a script file for -f */
  script: string
  /** -C: a new connection per transaction */
  reconnect?: boolean
  /** -R: this many transactions per second in all (a fixed rate instead of as fast as possible) */
  rate?: number
  /** -D name=value */
  defines?: Record<string, string>
  /** extra environment (PGOPTIONS) */
  env?: Record<string, string>
}

export interface PgbenchResult {
  ok: boolean
  error?: string
  command: string
  tps: number
  transactions: number
  failed: number
  /** per-transaction latency, milliseconds */
  latencies: Float64Array
}

export function pgbenchBin(pgBin: string): string {
  const own = join(pgBin, 'pgbench')
  return existsSync(own) ? own : 'pgbench'
}

function readLatencies(dir: string): Float64Array {
  const values: number[] = []
  for (const name of readdirSync(dir)) {
    const text = readFileSync(join(dir, name), 'latin1')
    let start = 0
    while (start < text.length) {
      let end = text.indexOf('\n', start)
      if (end < 0) end = text.length
      // client_id transaction_no time script_no time_epoch time_us …; time is µs or failed/skipped
      const s1 = text.indexOf(' ', start)
      const s2 = s1 < 0 ? -1 : text.indexOf(' ', s1 + 1)
      const s3 = s2 < 0 ? -1 : text.indexOf(' ', s2 + 1)
      if (s3 > 0 && s3 < end) {
        const us = Number(text.slice(s2 + 1, s3))
        if (Number.isFinite(us)) values.push(us / 1000)
      }
      start = end + 1
    }
  }
  return Float64Array.from(values)
}

function summarizeError(stderr: string, stdout: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^pgbench \(|^starting vacuum|^transaction type/.test(l))
  // Many clients report the same error: keep distinct messages, client numbers stripped.
  const seen = new Set<string>()
  for (const l of lines) {
    seen.add(l.replace(/client \d+/g, 'client N').replace(/\s+/g, ' '))
    if (seen.size >= 3) break
  }
  const msg = [...seen].join(' | ')
  return msg || stdout.split('\n').slice(-3).join(' ').trim() || 'no output'
}

export async function runPgbench(bin: string, r: PgbenchRun, workDir: string): Promise<PgbenchResult> {
  const logDir = mkdtempSync(join(workDir, 'log-'))
  const url = `postgresql://${encodeURIComponent(r.user)}:${encodeURIComponent(r.password)}@127.0.0.1:${r.port}/${r.database}`
  const args = [
    '-n',
    '-c',
    String(r.clients),
    '-j',
    String(Math.max(1, Math.min(r.threads, r.clients))),
    '-T',
    String(r.seconds),
    '-M',
    r.mode,
    '--log',
    `--log-prefix=${join(logDir, 'tx')}`,
    ...(r.reconnect ? ['-C'] : []),
    ...(r.rate ? ['-R', String(r.rate)] : []),
    ...Object.entries(r.defines ?? {}).flatMap(([k, v]) => ['-D', `${k}=${v}`]),
    ...(r.script === '-S' ? ['-S'] : ['-f', r.script]),
    url,
  ]
  const env = { ...process.env, ...(r.env ?? {}) }
  delete env.PGPASSWORD
  const shown = `${Object.entries(r.env ?? {})
    .map(([k, v]) => `${k}='${v}' `)
    .join('')}pgbench ${args.slice(0, -1).join(' ')} postgresql://${r.user}:***@127.0.0.1:${r.port}/${r.database}`
  // Bounded: the run's own length plus time to open 200 SCRAM connections on a busy machine.
  const res = await runCmd(bin, args, { env, cwd: logDir, timeoutMs: (r.seconds + 90) * 1000 })
  const tps = Number(/tps = ([\d.]+)/.exec(res.stdout)?.[1] ?? NaN)
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(res.stdout)?.[1] ?? NaN)
  const failed = Number(/number of failed transactions: (\d+)/.exec(res.stdout)?.[1] ?? 0)
  let latencies: Float64Array
  try {
    latencies = readLatencies(logDir)
  } finally {
    rmSync(logDir, { recursive: true, force: true })
  }
  const ok = res.code === 0 && !res.timedOut && Number.isFinite(tps) && Number.isFinite(transactions) && failed === 0
  return {
    ok,
    error: ok
      ? undefined
      : res.timedOut
        ? `timed out after ${r.seconds + 90} s`
        : `exit ${res.code ?? res.signal}${failed ? `, ${failed} failed transactions` : ''}: ${summarizeError(res.stderr, res.stdout)}`,
    command: shown,
    tps: Number.isFinite(tps) ? tps : 0,
    transactions: Number.isFinite(transactions) ? transactions : 0,
    failed,
    latencies,
  }
}

/** Several pgbench processes at once (one per tenant); TPS and transactions add up. */
export async function runPgbenchGroup(bin: string, runs: PgbenchRun[], workDir: string): Promise<PgbenchResult> {
  const results = await Promise.all(runs.map((r) => runPgbench(bin, r, workDir)))
  const bad = results.find((r) => !r.ok)
  const latencies = concatLatencies(results.map((r) => r.latencies))
  return {
    ok: !bad,
    error: bad?.error,
    command: bad ? bad.command : `${results.length} × (${results[0]?.command ?? ''})`,
    tps: results.reduce((n, r) => n + r.tps, 0),
    transactions: results.reduce((n, r) => n + r.transactions, 0),
    failed: results.reduce((n, r) => n + r.failed, 0),
    latencies,
  }
}

export function concatLatencies(parts: Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    all.set(p, at)
    at += p.length
  }
  return all
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}
