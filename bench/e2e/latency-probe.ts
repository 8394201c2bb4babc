// Where the latency tail at one client comes from (issue 18 item 4). Runs pgtenant in this
// process with its garbage collections and event-loop delay recorded, and pgbench -c 1 against
// it and against PostgreSQL directly, interleaved; then attributes the slow transactions (above
// direct's p99 plus a margin) to what overlapped them: a GC pause, or nothing the proxy did
// (the machine: the proxy waiting for a CPU, which an event-loop delay with no GC shows).
//
//   node dist/bench/e2e/latency-probe.js [--rounds 3] [--seconds 10] [--mode extended] [--io on,off] [--eld]
//
// --io: pgtenant's handle I/O (server/protocol/handle-io.ts) on, off or both (alternating).
// --eld: also sample the event loop's delay (a 1 ms timer in the proxy's process: it perturbs what it measures).
import { PerformanceObserver, monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import { startPostgres, ROLES } from '../../test/helpers/pg-server.js'
import { startProxy, basicYaml } from '../../test/helpers/proxy.js'
import { runCmd } from './proc.js'
import { pgbenchBin, percentile } from './pgbench.js'
import { setHandleIo } from '../../server/protocol/handle-io.js'

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : dflt
}
const rounds = Number(arg('--rounds', '3'))
const seconds = Number(arg('--seconds', '10'))
const mode = arg('--mode', 'extended')
const ioModes = arg('--io', 'on').split(',')
const eld = process.argv.includes('--eld')

interface Tx {
  /** epoch ms */
  start: number
  end: number
  ms: number
}

function readLog(dir: string): Tx[] {
  const out: Tx[] = []
  for (const name of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, name), 'latin1').split('\n')) {
      const f = line.split(' ')
      if (f.length < 6) continue
      const us = Number(f[2])
      const end = Number(f[4]) * 1000 + Number(f[5]) / 1000
      if (Number.isFinite(us) && Number.isFinite(end)) out.push({ start: end - us / 1000, end, ms: us / 1000 })
    }
  }
  return out
}

interface Gc {
  start: number
  end: number
  kind: number
}

/** Whether any interval of `sorted` (by start) overlaps [start, end]. */
function overlapsAny(sorted: Tx[], start: number, end: number): boolean {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (sorted[mid].start <= end) lo = mid + 1
    else hi = mid
  }
  // intervals starting at or before `end`: the last few may reach `start` (transactions are short; look back a bounded way)
  for (let i = lo - 1; i >= 0 && i >= lo - 64; i--) if (sorted[i].end >= start) return true
  return false
}

async function main(): Promise<void> {
  const server = await startPostgres()
  const bin = pgbenchBin(server.bin)
  const directUrl = `postgresql://${encodeURIComponent(ROLES.scram.user)}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres`
  const init = await runCmd(bin, ['-i', '-q', '-s', '1', directUrl], { timeoutMs: 120_000 })
  if (init.code !== 0) throw new Error(init.stderr)
  const proxy = await startProxy(basicYaml(server, { pool: 5 }))
  const proxyUrl = `postgresql://app:app_pw@127.0.0.1:${proxy.port}/postgres`
  const gcs: Gc[] = []
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const start = performance.timeOrigin + e.startTime
      gcs.push({ start, end: start + e.duration, kind: (e as unknown as { detail?: { kind: number } }).detail?.kind ?? 0 })
    }
  })
  obs.observe({ entryTypes: ['gc'] })
  const work = mkdtempSync(join(tmpdir(), 'pgtenant-latency-'))
  const results = new Map<string, Tx[]>()
  const delays = new Map<string, number[]>()
  const run = async (name: string, url: string): Promise<void> => {
    const dir = mkdtempSync(join(work, 'log-'))
    const h = monitorEventLoopDelay({ resolution: 1 })
    if (eld && name !== 'direct') h.enable()
    const r = await runCmd(bin, ['-n', '-S', '-c', '1', '-j', '1', '-M', mode, '-T', String(seconds), '--log', `--log-prefix=${join(dir, 'tx')}`, url], {
      cwd: dir,
      timeoutMs: (seconds + 60) * 1000,
    })
    if (eld && name !== 'direct') h.disable()
    if (r.code !== 0) throw new Error(`${name}: ${r.stderr}`)
    results.set(name, [...(results.get(name) ?? []), ...readLog(dir)])
    if (eld && name !== 'direct') delays.set(name, [...(delays.get(name) ?? []), h.percentile(99) / 1e6, h.max / 1e6])
    rmSync(dir, { recursive: true, force: true })
  }
  const load0 = loadavg()
  await run('warm-up', proxyUrl)
  results.delete('warm-up')
  for (let round = 0; round < rounds; round++) {
    await run('direct', directUrl)
    for (const io of ioModes) {
      setHandleIo(io === 'on')
      await run(`pgtenant (handle I/O ${io})`, proxyUrl)
    }
  }
  obs.disconnect()
  const direct = results.get('direct') ?? []
  const directSorted = Float64Array.from(direct.map((t) => t.ms)).sort()
  const slowMs = percentile(directSorted, 99)
  process.stdout.write(
    `pgbench -S -c 1 -M ${mode}, ${rounds} rounds × ${seconds} s, load average ${load0.map((l) => l.toFixed(1)).join(' ')} → ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}\n\n`,
  )
  process.stdout.write(
    '| target | tx | avg ms | p50 | p90 | p99 | p99.9 | max | GCs (scavenge/other) | GC pause total ms (max) | tx > direct p99 | of them overlapping a GC | event-loop delay p99 / max ms (per round) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n',
  )
  for (const [name, txs] of results) {
    const sorted = Float64Array.from(txs.map((t) => t.ms)).sort()
    const avg = sorted.reduce((a, b) => a + b, 0) / sorted.length
    let from = Infinity
    let to = -Infinity
    for (const t of txs) {
      if (t.start < from) from = t.start
      if (t.end > to) to = t.end
    }
    const mine = name === 'direct' ? [] : gcs.filter((g) => g.end >= from && g.start <= to)
    // GCs during this target's runs only (rounds interleave: keep those overlapping one of its transactions' windows)
    const byStart = [...txs].sort((a, b) => a.start - b.start)
    const inRuns = mine.filter((g) => overlapsAny(byStart, g.start, g.end))
    const slow = txs.filter((t) => t.ms > slowMs)
    const gcSorted = inRuns.map((g) => ({ start: g.start, end: g.end, ms: 0 })).sort((a, b) => a.start - b.start)
    const slowGc = slow.filter((t) => overlapsAny(gcSorted, t.start, t.end))
    const scav = inRuns.filter((g) => g.kind === 1).length
    const pause = inRuns.reduce((n, g) => n + (g.end - g.start), 0)
    const maxPause = inRuns.reduce((n, g) => Math.max(n, g.end - g.start), 0)
    const f = (x: number): string => x.toFixed(3)
    process.stdout.write(
      `| ${name} | ${txs.length} | ${f(avg)} | ${f(percentile(sorted, 50))} | ${f(percentile(sorted, 90))} | ${f(percentile(sorted, 99))} | ${f(percentile(sorted, 99.9))} | ${f(sorted[sorted.length - 1] ?? NaN)} | ${name === 'direct' ? '' : `${scav}/${inRuns.length - scav}`} | ${name === 'direct' ? '' : `${pause.toFixed(1)} (${maxPause.toFixed(2)})`} | ${slow.length} (${((100 * slow.length) / Math.max(1, txs.length)).toFixed(2)} %) | ${name === 'direct' ? '' : slowGc.length} | ${name === 'direct' ? '' : (delays.get(name) ?? []).map((d) => d.toFixed(2)).join(' ')} |\n`,
    )
  }
  process.stdout.write(`\nslow: above direct's p99 (${slowMs.toFixed(3)} ms)\n`)
  rmSync(work, { recursive: true, force: true })
  await proxy.stop()
  server.stop()
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`)
    process.exit(1)
  },
)
