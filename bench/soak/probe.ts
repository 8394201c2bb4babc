// The soak benchmark (../soak.ts): reading the proxy process from outside — a --require probe that answers
// with process.memoryUsage (before and after a full GC), event-loop delay and CPU, heap snapshot object
// counts, RSS and open fds from /proc — and the summary as text.
import { readFileSync, writeFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { sleep } from './common.js'
import type { SoakSummary } from '../soak.js'

export const PRELOAD = `
const fs = require('node:fs')
const v8 = require('node:v8')
const delay = require('node:perf_hooks').monitorEventLoopDelay({ resolution: 20 })
delay.enable()
let cpuFrom = process.cpuUsage()
let wallFrom = Date.now()
process.on('SIGUSR2', () => {
  const dir = process.env.PGTENANT_SOAK_DIR
  const req = JSON.parse(fs.readFileSync(dir + '/mem-request.json', 'utf8'))
  const out = { before: process.memoryUsage(), handles: process._getActiveHandles().length, loopDelayMaxMs: Math.round(delay.max / 1e6), loopDelayP99Ms: Math.round(delay.percentile(99) / 1e6) }
  delay.reset()
  const cpu = process.cpuUsage(cpuFrom)
  out.cpuShare = Math.round(((cpu.user + cpu.system) / 1000 / Math.max(1, Date.now() - wallFrom)) * 100) / 100
  cpuFrom = process.cpuUsage()
  wallFrom = Date.now()
  if (req.kind !== 'peek') {
    global.gc()
    global.gc()
    out.after = process.memoryUsage()
  }
  if (req.kind === 'snapshot') out.snapshot = v8.writeHeapSnapshot(req.file)
  fs.writeFileSync(dir + '/mem-' + req.id + '.json', JSON.stringify(out))
})
`

export interface MemoryUsageMiB {
  rssMiB: number
  heapUsedMiB: number
  heapTotalMiB: number
  externalMiB: number
  arrayBuffersMiB: number
}
export interface ProxyMemory {
  before: MemoryUsageMiB
  /** After two full garbage collections (kind gc / snapshot). */
  after?: MemoryUsageMiB
  handles: number
  /** The proxy's event-loop delay since the previous probe (max and p99, ms). */
  loopDelayMaxMs?: number
  loopDelayP99Ms?: number
  /** CPU the proxy used since the previous probe, in cores (1 = one core busy all the time). */
  cpuShare?: number
}

export function mib(m: NodeJS.MemoryUsage): MemoryUsageMiB {
  const f = (n: number): number => Math.round((n / 1048576) * 10) / 10
  return { rssMiB: f(m.rss), heapUsedMiB: f(m.heapUsed), heapTotalMiB: f(m.heapTotal), externalMiB: f(m.external), arrayBuffersMiB: f(m.arrayBuffers) }
}

let memoryRequests = 0
export async function proxyMemory(dir: string, pid: number, kind: 'peek' | 'gc' | 'snapshot', file?: string): Promise<ProxyMemory | null> {
  const id = ++memoryRequests
  writeFileSync(join(dir, 'mem-request.json'), JSON.stringify({ id, kind, file }))
  try {
    process.kill(pid, 'SIGUSR2')
  } catch {
    return null
  }
  const out = join(dir, `mem-${id}.json`)
  for (let i = 0; i < 1200; i++) {
    try {
      const r = JSON.parse(readFileSync(out, 'utf8')) as {
        before: NodeJS.MemoryUsage
        after?: NodeJS.MemoryUsage
        handles: number
        loopDelayMaxMs: number
        loopDelayP99Ms: number
        cpuShare: number
      }
      return {
        cpuShare: r.cpuShare,
        before: mib(r.before),
        after: r.after ? mib(r.after) : undefined,
        handles: r.handles,
        loopDelayMaxMs: r.loopDelayMaxMs,
        loopDelayP99Ms: r.loopDelayP99Ms,
      }
    } catch {
      await sleep(100) // not written yet (a snapshot of a large heap takes seconds)
    }
  }
  return null
}

/** Objects a heap snapshot holds, by constructor name, for the names that say whether sessions or connections leaked. */
export function heapCounts(file: string): Record<string, { count: number; selfMiB: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }
    nodes: number[]
    strings: string[]
  }
  const fields = snap.snapshot.meta.node_fields
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const objectType = snap.snapshot.meta.node_types[0].indexOf('object')
  const byName = new Map<string, { count: number; self: number }>()
  for (let i = 0; i < snap.nodes.length; i += width) {
    if (snap.nodes[i + typeAt] !== objectType) continue
    const name = snap.strings[snap.nodes[i + nameAt]]
    const e = byName.get(name) ?? { count: 0, self: 0 }
    e.count++
    e.self += snap.nodes[i + sizeAt]
    byName.set(name, e)
  }
  const out: Record<string, { count: number; selfMiB: number }> = {}
  const top = [...byName].sort((a, b) => b[1].self - a[1].self).slice(0, 15)
  const wanted = ['ClientSession', 'BackendConnection', 'Socket', 'TLSSocket', 'Pool', 'ReplyQueue', 'Timeout']
  for (const [name, e] of [...top, ...[...byName].filter(([n]) => wanted.includes(n))])
    out[name] = { count: e.count, selfMiB: Math.round((e.self / 1048576) * 10) / 10 }
  return out
}

export function procStats(pid: number): { rssMiB: number; fds: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
    return { rssMiB: Math.round(rss / 1024), fds: readdirSync(`/proc/${pid}/fd`).length }
  } catch {
    return { rssMiB: 0, fds: 0 }
  }
}

export function formatSummary(s: SoakSummary): string {
  const errs = Object.entries(s.errors)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `    ${String(n).padStart(7)}  ${k}`)
    .join('\n')
  return [
    `soak (${s.mode}): ${s.clients} clients in ${s.procs} processes, ${s.durationS} s`,
    `  ops ${s.ops} (${s.opsPerSec}/s), client connects ${s.connects}, latency p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms, ${s.over60s} answered after 60 s or more`,
    `  server connections killed ${s.killed}, clients hung up mid-query ${s.hangups}, config reloads ${s.reloads}`,
    `  proxy exits ${s.proxyExits}, clients hung ${s.hung}; the proxy cut off or refused: ${
      Object.entries(s.proxyCounters)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none'
    }`,
    `  event-loop delay max/p99: proxy ${s.loopDelay.proxyMaxMs}/${s.loopDelay.proxyP99Ms} ms, client processes (worst) ${s.loopDelay.clientsMaxMs}/${s.loopDelay.clientsP99Ms} ms; ` +
      `proxy CPU (cores) ramp ${s.memory.load?.cpuShare ?? '?'}, after it ${s.memory.settled?.cpuShare ?? '?'}; load average at the end ${s.loadAverage.map((n) => n.toFixed(1)).join(' ')}`,
    `  proxy RSS/fds: ready ${s.proxy.ready.rssMiB} MiB/${s.proxy.ready.fds}, under load ${s.proxy.load.rssMiB} MiB/${s.proxy.load.fds}, settled ${s.proxy.settled.rssMiB} MiB/${s.proxy.settled.fds}`,
    ...fmtFlat(s),
    `  server connections (pg_stat_activity) max: main ${s.serverConnections.max.main}/${s.serverConnections.poolSizes.main}, other ${s.serverConnections.max.other}/${s.serverConnections.poolSizes.other}, catalog reads ${s.serverConnections.maxCatalog}, total with them ${s.serverConnections.maxTotal}/${s.serverConnections.poolSizes.main + s.serverConnections.poolSizes.other} (the cap)`,
    ...fmtCatalog(s),
    `  listen socket: accept queue at most ${s.listen.max} of backlog ${s.listen.backlog} (at the backlog in ${s.listen.samplesFull} of ${s.listen.samples} samples); ` +
      `kernel ListenOverflows during the run ${s.listen.overflows} (machine-wide: connections dropped with an accept queue full)`,
    `  ledger: ${s.ledger.acknowledged} acknowledged commits, ${s.ledger.present} present, ${s.ledger.missing} missing`,
    `  client errors by kind:${errs ? '\n' + errs : ' none'}`,
    `  hung operations:${s.hangs.length === 0 ? ' none' : ''}`,
    ...s.hangs.map(
      (h) =>
        `    ${h.lib} ${h.what} at ${h.atS} s: ${h.answeredAfterS === null ? 'no answer within the grace' : `${h.lateOutcome === 'rows' ? 'answered' : `failed (${h.lateOutcome})`} after ${h.answeredAfterS} s`}; proxy: ${h.proxyState ?? '?'}`,
    ),
    `  proxy memory (MiB; rss / heapUsed / heapTotal / external / arrayBuffers): ready ${fmtMem(s.memory.ready?.before)}, under load ${fmtMem(s.memory.load?.before)}, ` +
      `settled ${fmtMem(s.memory.settled?.before)}, settled after full GC ${fmtMem(s.memory.settled?.after)}; active handles settled ${s.memory.settled?.handles ?? '?'}; client sessions left ${s.sessionsLeft}`,
    ...(s.memory.betweenCycles
      ? [
          `  between cycles (clients gone), RSS before / after a full GC, heap used after: ${s.memory.betweenCycles.map((m) => `${m.before.rssMiB} / ${m.after?.rssMiB} MiB, ${m.after?.heapUsedMiB} MiB`).join('; ')}`,
        ]
      : []),
    ...(s.memory.heap
      ? [
          `  heap snapshot (after the clients left): ${Object.entries(s.memory.heap)
            .map(([n, e]) => `${n} ${e.count} (${e.selfMiB} MiB)`)
            .join(', ')}`,
        ]
      : []),
  ].join('\n')
}

export function fmtMem(m: MemoryUsageMiB | undefined): string {
  return m ? `${m.rssMiB}/${m.heapUsedMiB}/${m.heapTotalMiB}/${m.externalMiB}/${m.arrayBuffersMiB}` : '?'
}

/**
 * Where the proxy's resident memory is, from /proc/PID/smaps (KiB summed per kind, in MiB):
 * - `brk`: the [heap] mapping, glibc malloc's main arena (Buffers, OpenSSL, libuv, C++ objects of the main thread);
 * - `arenas`: anonymous mappings inside 64 MiB-aligned reservations, glibc's per-thread arenas;
 * - `wasm`: an anonymous mapping inside a reservation of GiBs (a WebAssembly memory between its guard regions: libpg-query);
 * - `otherAnon`: the rest of the anonymous memory, mostly the V8 heap's pages;
 * - `file`: the node binary and libraries mapped from files.
 */
export interface SmapsBreakdown {
  rssMiB: number
  brkMiB: number
  arenasMiB: number
  wasmMiB: number
  otherAnonMiB: number
  fileMiB: number
}

export function smapsBreakdown(pid: number): SmapsBreakdown | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8')
  } catch {
    return null
  }
  const kib = { rss: 0, brk: 0, arenas: 0, wasm: 0, otherAnon: 0, file: 0 }
  // A mapping's header line, then its fields; only Rss is used. Thread arenas are a 64 MiB-aligned
  // reservation, its used part rw-p followed by its ---p rest: both start in the same 64 MiB block.
  const arena = 64 * 1024 * 1024
  const lines = text.split('\n')
  const maps: { start: bigint; end: bigint; perms: string; name: string; rss: number }[] = []
  for (const line of lines) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s*(.*)$/.exec(line)
    if (head) {
      maps.push({ start: BigInt('0x' + head[1]), end: BigInt('0x' + head[2]), perms: head[3], name: head[5].trim(), rss: 0 })
      continue
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss && maps.length > 0) maps[maps.length - 1].rss = Number(rss[1])
  }
  // A WebAssembly memory is its accessible part inside a reservation of GiBs (guard regions, ---p) on either side.
  const huge = (j: number): boolean => maps[j] !== undefined && maps[j].perms === '---p' && maps[j].end - maps[j].start >= 1n << 30n
  const nextToReservation = (i: number): boolean =>
    maps[i].perms === 'rw-p' && ((huge(i - 1) && maps[i - 1].end === maps[i].start) || (huge(i + 1) && maps[i + 1].start === maps[i].end))
  for (let i = 0; i < maps.length; i++) {
    const m = maps[i]
    kib.rss += m.rss
    if (m.name === '[heap]') kib.brk += m.rss
    else if (m.name !== '' && !m.name.startsWith('[')) kib.file += m.rss
    else if (m.name !== '')
      kib.otherAnon += m.rss // [stack], [vvar], …
    else if (m.end - m.start >= 1n << 30n || nextToReservation(i)) kib.wasm += m.rss
    else {
      const next = maps[i + 1]
      const aligned = m.start % BigInt(arena) === 0n
      const isArena =
        aligned && m.perms === 'rw-p' && next !== undefined && next.perms === '---p' && next.start === m.end && next.end - m.start === BigInt(arena)
      const whole = aligned && m.perms === 'rw-p' && m.end - m.start === BigInt(arena)
      if (isArena || whole) kib.arenas += m.rss
      else kib.otherAnon += m.rss
    }
  }
  const f = (n: number): number => Math.round((n / 1024) * 10) / 10
  return { rssMiB: f(kib.rss), brkMiB: f(kib.brk), arenasMiB: f(kib.arenas), wasmMiB: f(kib.wasm), otherAnonMiB: f(kib.otherAnon), fileMiB: f(kib.file) }
}

export function fmtSmaps(s: SmapsBreakdown | null | undefined): string {
  return s ? `${s.rssMiB} (brk ${s.brkMiB}, arenas ${s.arenasMiB}, wasm ${s.wasmMiB}, other anon ${s.otherAnonMiB}, files ${s.fileMiB})` : '?'
}

/** The proxy's memory after one cycle of clients: they all left, fds settled, two full GCs ran. */
export interface SettledPoint {
  cycle: number
  rssMiB: number
  heapUsedMiB: number
  smaps: SmapsBreakdown | null
}

/** How much RSS after a cycle may exceed RSS after the cycle before it and still count as flat. */
export const FLAT_RSS_GROWTH = 0.05

export const FLAT_RULE =
  `RSS flat: with --cycles >= 2, RSS after each cycle (all clients gone, fds settled, full GC) at most ${FLAT_RSS_GROWTH * 100} % above ` +
  'RSS after the cycle before it (memory reused, not accumulated); fds flat: the settled fds, less the server connections the pool ' +
  'keeps idle until idle_timeout_ms (counted in pg_stat_activity), at most those at ready'

export interface FlatVerdict {
  pass: boolean
  rss: 'pass' | 'fail' | 'not measured (one cycle)'
  fds: 'pass' | 'fail'
  /** RSS after each cycle, MiB. */
  rssAfterCycles: number[]
  /** The largest growth from one cycle to the next, in % (negative: it shrank). */
  worstGrowthPct: number | null
  fdsReady: number
  fdsSettled: number
  serverConnectionsReady: number
  serverConnectionsSettled: number
}

export function flatVerdict(
  points: SettledPoint[],
  at: { ready: { fds: number }; readyServer: number; settled: { fds: number }; settledServer: number },
): FlatVerdict {
  const rss = points.map((p) => p.rssMiB)
  let worst: number | null = null
  for (let i = 1; i < rss.length; i++) {
    const g = (rss[i] / rss[i - 1] - 1) * 100
    worst = worst === null ? g : Math.max(worst, g)
  }
  const rssOk = worst === null ? 'not measured (one cycle)' : worst <= FLAT_RSS_GROWTH * 100 ? 'pass' : 'fail'
  const fdsOk = at.settled.fds - at.settledServer <= at.ready.fds - at.readyServer ? 'pass' : 'fail'
  return {
    pass: rssOk !== 'fail' && fdsOk === 'pass',
    rss: rssOk,
    fds: fdsOk,
    rssAfterCycles: rss,
    worstGrowthPct: worst === null ? null : Math.round(worst * 10) / 10,
    fdsReady: at.ready.fds,
    fdsSettled: at.settled.fds,
    serverConnectionsReady: at.readyServer,
    serverConnectionsSettled: at.settledServer,
  }
}

export function fmtFlat(s: SoakSummary): string[] {
  const f = s.flat
  return [
    `  flat after settle: ${f.pass ? 'PASS' : 'FAIL'} (RSS ${f.rss}, fds ${f.fds}); RSS after each cycle ${f.rssAfterCycles.join(' → ')} MiB` +
      `${f.worstGrowthPct === null ? '' : `, worst growth ${f.worstGrowthPct} %`}; fds ready ${f.fdsReady} (${f.serverConnectionsReady} server), settled ${f.fdsSettled} (${f.serverConnectionsSettled} server)`,
    `    rule: ${FLAT_RULE}`,
    ...s.afterCycles.map((p) => `    after cycle ${p.cycle}: RSS ${fmtSmaps(p.smaps)} MiB, heap used ${p.heapUsedMiB} MiB`),
    ...(s.mallocTrimmed ? [`    after malloc_trim(0): ${fmtSmaps(s.mallocTrimmed)} MiB`] : []),
    `    fds back ${s.fdsSettleS} s after the clients left${
      s.fdKinds
        ? `; more than at ready: ${Object.entries(s.fdKinds)
            .map(([k, n]) => `${n} ${k}`)
            .join(', ')}`
        : ''
    }`,
    ...(Object.keys(s.proxyEnv).length > 0
      ? [
          `    proxy environment: ${Object.entries(s.proxyEnv)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`,
        ]
      : []),
  ]
}

/** Catalog reads at the cap: pass when every probe found its new table (rows, only the tenant's) or, at worst, waited like any client (53300). */
export function fmtCatalog(s: SoakSummary): string[] {
  const p = s.catalogProbes
  if (p.length === 0) return ['  catalog reads at the cap: none run']
  const ok = p.filter((x) => x.outcome === 'rows').length
  const waited = p.filter((x) => x.outcome.startsWith('53300') || x.outcome.startsWith('login:')).length
  const bad = p.length - ok - waited
  const atCap = p.filter((x) => x.waitingBefore > 0).length
  const ms = p.map((x) => x.ms).sort((a, b) => a - b)
  return [
    `  catalog reads at the cap: ${bad === 0 && s.serverConnections.maxTotal <= s.serverConnections.poolSizes.main + s.serverConnections.poolSizes.other ? 'PASS' : 'FAIL'}: ` +
      `${p.length} new tenant tables named by a client (${atCap} with clients waiting for that pool just before), ${ok} answered with the tenant's row, ` +
      `${waited} waited like any client (53300 or a slow login), ${bad} failed otherwise; took ${ms[0]}–${ms[ms.length - 1]} ms (median ${ms[Math.floor(ms.length / 2)]}); ` +
      `server total at most ${s.serverConnections.maxTotal}, catalog connections at most ${s.serverConnections.maxCatalog}`,
    ...p.filter((x) => x.outcome !== 'rows').map((x) => `    ${x.backend} ${x.table}: ${x.outcome} (${x.waitingBefore} waiting before, ${x.ms} ms)`),
  ]
}
