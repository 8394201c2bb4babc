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

const us = (ms: number): string => (Number.isFinite(ms) ? fmt(ms * 1000, 0) : '—')

/**
 * CPU per transaction at a fixed rate (pgbench -R): the figure that holds on a busy machine.
 * Beside it the saturated TPS of the same mode and clients (the pgbench -S rows of the run), if measured.
 */
export function rateTable(rateRows: CaseRow[], selectRows: CaseRow[], targets: string[]): string {
  const head = ['mode', 'clients', 'rate (tx/s)', 'target', 'achieved TPS', 'proxy CPU µs / tx', 'CPU ÷ PgBouncer', 'saturated TPS', 'TPS ÷ PgBouncer']
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i === 0 || i === 3 ? '---' : '---:')).join('|')}|`]
  for (const c of rateRows) {
    const sat = selectRows.find((r) => r.mode === c.mode && r.clients === c.clients)
    const sum = (row: CaseRow | undefined, t: string): Summary | null => (row?.cells.get(t)?.status === 'ok' ? summarize(row.cells.get(t)!.rounds) : null)
    const bouncer = sum(c, 'PgBouncer')
    const bouncerSat = sum(sat, 'PgBouncer')
    for (const t of targets) {
      const cell = c.cells.get(t)
      if (!cell) continue
      const s = sum(c, t)
      const st = sum(sat, t)
      const cpu = s?.proxyCpuPer1k ?? null
      const rate = /-R (\d+)/.exec(c.workload)?.[1] ?? ''
      lines.push(
        `| ${c.mode} | ${c.clients} | ${rate} | ${t} | ${s ? fmtTps(s.tps) : cell.status} | ${cpu === null ? '—' : fmt(cpu * 1000, 1)} | ${
          t === 'PgBouncer' || cpu === null ? '' : fmtRatio(cpu, bouncer?.proxyCpuPer1k ?? undefined)
        } | ${st ? fmtTps(st.tps) : '—'} | ${t === 'PgBouncer' ? '' : fmtRatio(st?.tps, bouncerSat?.tps)} |`,
      )
    }
  }
  return lines.join('\n')
}

/** Latency one client feels (pgbench -c 1, closed loop): average and p99, and what each proxy adds to direct's. */
export function latencyTable(oneClientRows: CaseRow[], targets: string[]): string {
  const head = ['mode', 'target', 'avg (ms)', 'p99 (ms)', 'added avg (µs)', 'added p99 (µs)', 'added avg ÷ PgBouncer', 'added p99 ÷ PgBouncer']
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i < 2 ? '---' : '---:')).join('|')}|`]
  for (const c of oneClientRows) {
    const sum = (t: string): Summary | null => (c.cells.get(t)?.status === 'ok' ? summarize(c.cells.get(t)!.rounds) : null)
    const direct = sum('direct')
    const bouncer = sum('PgBouncer')
    const added = (s: Summary | null): [number, number] => (s && direct ? [s.latAvg - direct.latAvg, s.p99 - direct.p99] : [NaN, NaN])
    const [bAvg, bP99] = added(bouncer)
    for (const t of targets) {
      if (!c.cells.has(t)) continue
      const s = sum(t)
      if (!s) {
        lines.push(`| ${c.mode} | ${t} | ${c.cells.get(t)?.status ?? '—'} | | | | | |`)
        continue
      }
      const [aAvg, aP99] = added(s)
      const proxy = t !== 'direct'
      lines.push(
        `| ${c.mode} | ${t} | ${fmtMs(s.latAvg)} | ${fmtMs(s.p99)} | ${proxy ? us(aAvg) : ''} | ${proxy ? us(aP99) : ''} | ${
          proxy && t !== 'PgBouncer' ? fmtRatio(aAvg, bAvg) : ''
        } | ${proxy && t !== 'PgBouncer' ? fmtRatio(aP99, bP99) : ''} |`,
      )
    }
  }
  return lines.join('\n')
}

/**
 * The same isolation three ways: the tenant workload through pgtenant (it adds the filter),
 * through PgBouncer onto tables with FORCE ROW LEVEL SECURITY, and filtered by hand through
 * PgBouncer (and directly, the anchor).
 */
export function isolationTable(tenantRows: CaseRow[]): string {
  const names = ['pgtenant', 'PgBouncer + RLS', 'PgBouncer', 'direct']
  const head = [
    'shape (tenants × clients each)',
    'mode',
    'pgtenant TPS',
    'PgBouncer + RLS TPS',
    'PgBouncer, filtered by hand, TPS',
    'direct, filtered by hand, TPS',
    'pgtenant ÷ PgBouncer + RLS',
    'pgtenant ÷ PgBouncer filtered',
    'p99 ms (pgtenant / RLS / filtered)',
    'proxy CPU µs / tx (pgtenant / PgBouncer)',
  ]
  const lines = [
    `| ${head.join(' | ')} |`,
    `|---|---|${head
      .slice(2)
      .map(() => '---:')
      .join('|')}|`,
  ]
  for (const c of tenantRows) {
    const s = new Map(names.map((t) => [t, c.cells.get(t)?.status === 'ok' ? summarize(c.cells.get(t)!.rounds) : null]))
    const tps = (t: string): string => {
      const x = s.get(t)
      return x ? fmtTps(x.tps) : (c.cells.get(t)?.status ?? '—')
    }
    const p = s.get('pgtenant')
    const shape = /(\d+) tenants × (\d+)/.exec(c.workload)
    const cpu = (t: string): string => {
      const v = s.get(t)?.proxyCpuPer1k
      return v === null || v === undefined ? '—' : fmt(v * 1000, 0)
    }
    lines.push(
      `| ${shape ? `${shape[1]} × ${shape[2]}` : c.clients} | ${c.mode} | ${tps('pgtenant')} | ${tps('PgBouncer + RLS')} | ${tps('PgBouncer')} | ${tps('direct')} | ${fmtRatio(
        p?.tps,
        s.get('PgBouncer + RLS')?.tps,
      )} | ${fmtRatio(p?.tps, s.get('PgBouncer')?.tps)} | ${['pgtenant', 'PgBouncer + RLS', 'PgBouncer'].map((t) => (s.get(t) ? fmtMs(s.get(t)!.p99) : '—')).join(' / ')} | ${cpu('pgtenant')} / ${cpu('PgBouncer')} |`,
    )
  }
  return lines.join('\n')
}
