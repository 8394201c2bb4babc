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
    `  server connections (pg_stat_activity) max: main ${s.serverConnections.max.main}/${s.serverConnections.poolSizes.main}, other ${s.serverConnections.max.other}/${s.serverConnections.poolSizes.other}, catalog reads ${s.serverConnections.maxCatalog}, total with them ${s.serverConnections.maxTotal}/${s.serverConnections.poolSizes.main + s.serverConnections.poolSizes.other} (the cap)`,
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
