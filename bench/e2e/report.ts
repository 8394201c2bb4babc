// The end-to-end benchmark's output: the machine description and the Markdown tables.
import { readFileSync } from 'node:fs'
import { cpus, loadavg, totalmem, release } from 'node:os'
import { spawnSync } from 'node:child_process'
import { percentile, concatLatencies } from './pgbench.js'

export function machineDescription(extra: Record<string, string>): Record<string, string> {
  let model = cpus()[0]?.model ?? '?'
  try {
    model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? model
  } catch {
    /* not Linux */
  }
  const nproc = spawnSync('nproc', { encoding: 'utf8' }).stdout?.trim() || String(cpus().length)
  return {
    cpus: `${nproc} × ${model}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `Linux ${release()}`,
    node: process.version,
    ...extra,
    'load average at start': loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  }
}

export interface RoundResult {
  ok: boolean
  error?: string
  command: string
  tps: number
  transactions: number
  /** CPU seconds of the proxy process tree during the run (null: no proxy) */
  proxyCpu: number | null
  /** CPU seconds of the PostgreSQL server (postmaster and backends) during the run */
  pgCpu: number
  latencies: Float64Array
}

export interface Cell {
  /** 'ok', 'failed', 'n/a' (cannot run that mode), 'unavailable' (target not running) */
  status: 'ok' | 'failed' | 'n/a' | 'unavailable'
  note?: string
  rounds: RoundResult[]
}

export interface Summary {
  tps: number
  spread: number
  latAvg: number
  p99: number
  proxyCpuPer1k: number | null
  pgCpuPer1k: number
}

export function summarize(rounds: RoundResult[]): Summary | null {
  const ok = rounds.filter((r) => r.ok)
  if (ok.length === 0 || ok.length !== rounds.length) return null
  const tpsList = ok.map((r) => r.tps)
  const tps = tpsList.reduce((a, b) => a + b, 0) / tpsList.length
  const all = concatLatencies(ok.map((r) => r.latencies))
  all.sort()
  let sum = 0
  for (let i = 0; i < all.length; i++) sum += all[i]
  const tx = ok.reduce((n, r) => n + r.transactions, 0)
  const proxyCpu = ok.every((r) => r.proxyCpu !== null) ? ok.reduce((n, r) => n + (r.proxyCpu ?? 0), 0) : null
  return {
    tps,
    spread: tps > 0 ? (Math.max(...tpsList) - Math.min(...tpsList)) / tps : 0,
    latAvg: all.length ? sum / all.length : NaN,
    p99: percentile(all, 99),
    proxyCpuPer1k: proxyCpu === null || tx === 0 ? null : (proxyCpu / tx) * 1000,
    pgCpuPer1k: tx ? (ok.reduce((n, r) => n + r.pgCpu, 0) / tx) * 1000 : NaN,
  }
}

function fmt(n: number, digits: number): string {
  if (!Number.isFinite(n)) return '—'
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export function fmtTps(n: number): string {
  return fmt(n, n >= 100 ? 0 : 1)
}

function fmtMs(n: number): string {
  return fmt(n, n >= 10 ? 1 : n >= 1 ? 2 : 3)
}

function fmtRatio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !(b > 0)) return '—'
  return `${a / b >= 10 ? (a / b).toFixed(1) : (a / b).toFixed(2)}×`
}

export interface CaseRow {
  workload: string
  mode: string
  clients: number
  cells: Map<string, Cell>
}

/**
 * One row per case and target. Ratios are TPS ratios of the same run: on pgtenant's row
 * pgtenant ÷ PgBouncer and pgtenant ÷ direct; on PgBouncer's row PgBouncer ÷ direct; on the
 * Node pipe's row (a reference) Node pipe ÷ PgBouncer and ÷ direct. A target without a cell
 * in a case gets no row.
 */
export function resultsTable(cases: CaseRow[], targets: string[], footnotes: string[]): string {
  const head = [
    'workload',
    'mode',
    'clients',
    'target',
    'TPS',
    'TPS spread',
    'latency avg (ms)',
    'latency p99 (ms)',
    'proxy CPU s / 1k tx',
    'PostgreSQL CPU s / 1k tx',
    '÷ PgBouncer (TPS)',
    '÷ direct (TPS)',
  ]
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i < 4 ? '---' : '---:')).join('|')}|`]
  const noteIndex = (note: string): number => {
    let i = footnotes.indexOf(note)
    if (i < 0) i = footnotes.push(note) - 1
    return i + 1
  }
  for (const c of cases) {
    const sums = new Map<string, Summary | null>()
    for (const t of targets) sums.set(t, c.cells.get(t)?.status === 'ok' ? summarize(c.cells.get(t)!.rounds) : null)
    for (const t of targets) {
      const cell = c.cells.get(t)
      if (!cell) continue // target not part of this case (the Node pipe outside pgbench -S)
      const s = sums.get(t)
      const row = [c.workload, c.mode, String(c.clients), t]
      if (cell.status !== 'ok' || !s) {
        const status = cell.status === 'ok' ? 'failed' : cell.status
        const label = status === 'failed' ? '**FAILED**' : status
        row.push(cell?.note ? `${label} [${noteIndex(cell.note)}]` : label, '', '', '', '', '', '', '')
      } else {
        row.push(
          fmtTps(s.tps),
          `${(s.spread * 100).toFixed(0)}%`,
          fmtMs(s.latAvg),
          fmtMs(s.p99),
          s.proxyCpuPer1k === null ? '—' : fmt(s.proxyCpuPer1k, 3),
          fmt(s.pgCpuPer1k, 3),
          t.startsWith('pgtenant') || t === 'Node pipe' ? fmtRatio(s.tps, sums.get('PgBouncer')?.tps) : '',
          t === 'direct' ? '' : fmtRatio(s.tps, sums.get('direct')?.tps),
        )
      }
      lines.push(`| ${row.join(' | ')} |`)
    }
  }
  return lines.join('\n')
}

export interface MemoryResult {
  target: string
  requested: number
  opened?: number
  failed?: number
  rssBefore?: number
  rssWith?: number
  rssAfterClose?: number
  openSeconds?: number
  checked?: string
  error?: string
}

export function memoryTable(rows: MemoryResult[], footnotes: string[]): string {
  const head = [
    'target',
    'idle clients held',
    'RSS before (MB)',
    'RSS with clients (MB)',
    'per client (KB)',
    'RSS after close (MB)',
    'time to open (s)',
    'SELECT 1 on a sample',
  ]
  const lines = [
    `| ${head.join(' | ')} |`,
    `|---|${head
      .slice(1)
      .map(() => '---:')
      .join('|')}|`,
  ]
  const mb = (b?: number): string => (b === undefined ? '—' : fmt(b / 2 ** 20, 1))
  for (const r of rows) {
    if (r.error && r.rssWith === undefined) {
      let i = footnotes.indexOf(r.error)
      if (i < 0) i = footnotes.push(r.error) - 1
      lines.push(`| ${r.target} | **FAILED** [${i + 1}] | | | | | | |`)
      continue
    }
    const held = `${fmt(r.opened ?? 0, 0)} of ${fmt(r.requested, 0)}${r.failed ? ` (${r.failed} refused)` : ''}`
    const per = r.rssWith !== undefined && r.rssBefore !== undefined && r.opened ? fmt((r.rssWith - r.rssBefore) / r.opened / 1024, 1) : '—'
    lines.push(
      `| ${r.target} | ${held} | ${mb(r.rssBefore)} | ${mb(r.rssWith)} | ${per} | ${mb(r.rssAfterClose)} | ${r.openSeconds === undefined ? '—' : r.openSeconds.toFixed(1)} | ${r.checked ?? '—'} |`,
    )
  }
  return lines.join('\n')
}
