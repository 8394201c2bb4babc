// Soak benchmark (issue 15): pgtenant as its own process in front of a throwaway PostgreSQL,
// mixed tenant traffic from several client processes (node-postgres and postgres.js, simple
// and extended protocol, named statements, write transactions), while
// - server connections are killed at random (pg_terminate_backend on a direct connection),
// - clients hang up in the middle of a query,
// - the config is reloaded (SIGHUP) with changed settings.
// It reports errors by kind, the proxy's RSS and open fds (ready, under load, after settle),
// p50/p99 latency, the most server connections seen in pg_stat_activity per pool (never above
// the configured sizes), hung clients, proxy exits, and whether every acknowledged commit is
// in the database at the end (a ledger of committed inserts, checked row by row).
//
//   npm run soak                         10 minutes, 5,000 client connections, 5 client processes
//   node dist/bench/soak.js --quick      about 60 s, 500 clients, 2 processes (runs in npm test)
//   options: --duration S, --clients N, --procs N, --json FILE (write the summary as JSON)
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import pg from 'pg'
import postgres from 'postgres'
import { startPostgres, ROLES, freePort, type PgServer } from '../test/helpers/pg-server.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..', '..')
const cli = join(root, 'dist', 'server', 'cli.js')

const TENANTS = 40
/** Tenants t0..t9 live on the second backend (its own database and pool). */
const OTHER_TENANTS = 10
const POOLS = { main: 16, other: 6 }
/** The client libraries give up connecting (TCP, login) after this: an error of its own kind, before the hang watchdog. */
const CONNECT_TIMEOUT_MS = 60_000

// ------------------------------------------------------------------ latency histogram

/** Log-scale buckets of 5 % from 10 µs: p50/p99 within 5 %, mergeable across processes. */
const BUCKETS = 400
function bucketOf(ms: number): number {
  const us = Math.max(10, ms * 1000)
  return Math.min(BUCKETS - 1, Math.floor(Math.log(us / 10) / Math.log(1.05)))
}
function bucketMs(b: number): number {
  return (10 * Math.pow(1.05, b + 0.5)) / 1000
}
function quantile(hist: number[], q: number): number {
  const total = hist.reduce((a, b) => a + b, 0)
  if (total === 0) return 0
  let seen = 0
  for (let b = 0; b < hist.length; b++) {
    seen += hist[b]
    if (seen >= q * total) return bucketMs(b)
  }
  return bucketMs(hist.length - 1)
}

// ------------------------------------------------------------------ worker (client process)

interface WorkerOptions {
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

interface WorkerReport {
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

function errorKind(err: unknown): string {
  const e = err as { code?: string; message?: string }
  const msg = (e.message ?? String(err))
    .replace(/\d+/g, 'N')
    .replace(/"[^"]*"/g, '"…"')
    .slice(0, 70)
  return `${e.code ?? '-'} ${msg}`
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const rand = (a: number, b: number): number => a + Math.random() * (b - a)

async function runWorker(o: WorkerOptions): Promise<WorkerReport> {
  const report: WorkerReport = {
    id: o.id,
    ops: 0,
    hist: new Array(BUCKETS).fill(0),
    errors: {},
    hangups: 0,
    hung: 0,
    hangs: [],
    committed: [],
    connects: 0,
    loopDelayMaxMs: 0,
    loopDelayP99Ms: 0,
  }
  const runStart = Date.now()
  const loopDelay = monitorEventLoopDelay({ resolution: 20 })
  loopDelay.enable()
  const deadline = Date.now() + o.durationMs
  let nextId = o.id * 1_000_000_000
  const url = (): string => `postgres://app:app_pw@127.0.0.1:${o.port}/soak`
  const count = (kind: string): void => {
    report.errors[kind] = (report.errors[kind] ?? 0) + 1
  }
  /**
   * Runs `op` with a watchdog: past opTimeoutMs the operation counts as hung. It is then
   * watched for up to hangGraceMs more (an answer that comes late means a slow system, none at
   * all a lost client), reported to the parent (which looks the client up on the proxy's admin
   * console), and dropped.
   */
  const timed = async <T>(
    op: Promise<T>,
    onHang: () => void,
    lib: HangRecord['lib'],
    what: string | (() => string),
    localPort: () => number | null = () => null,
  ): Promise<T> => {
    const t0 = Date.now()
    let timer: NodeJS.Timeout | null = null
    const settled = op.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    )
    const watchdog = new Promise<null>((res) => (timer = setTimeout(() => res(null), o.opTimeoutMs)))
    try {
      const first = await Promise.race([settled, watchdog])
      if (first !== null) {
        if ('error' in first) throw first.error
        return first.value
      }
      report.hung++
      const rec: HangRecord = {
        lib,
        what: typeof what === 'string' ? what : what(),
        atS: Math.round((t0 - runStart) / 1000),
        localPort: localPort(),
        answeredAfterS: null,
      }
      report.hangs.push(rec)
      process.send?.({ hang: rec, worker: o.id, index: report.hangs.length - 1 })
      const late = await Promise.race([settled, sleep(o.hangGraceMs).then(() => null)])
      if (late !== null) {
        rec.answeredAfterS = Math.round((Date.now() - t0) / 100) / 10
        rec.lateOutcome = 'error' in late ? errorKind(late.error) : 'rows'
      }
      onHang()
      throw Object.assign(new Error('client hung (no answer within the op timeout)'), { code: 'HUNG' })
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  async function nodePgClient(slot: number): Promise<void> {
    while (Date.now() < deadline) {
      const tenant = `t${Math.floor(Math.random() * TENANTS)}`
      const c = new pg.Client({ connectionString: url(), options: `-c app.tenant=${tenant}`, connectionTimeoutMillis: CONNECT_TIMEOUT_MS })
      c.on('error', () => undefined)
      const stream = (): net.Socket => (c as unknown as { connection: { stream: net.Socket } }).connection.stream
      const drop = (): void => void stream().destroy()
      const port = (): number | null => stream().localPort ?? null
      try {
        await timed(c.connect(), drop, 'pg', 'connect', port)
        report.connects++
        while (Date.now() < deadline) {
          await sleep(rand(o.thinkMs[0], o.thinkMs[1]))
          if (Date.now() >= deadline) break
          const r = Math.random()
          if (r < o.hangupRate) {
            // Hang up in the middle of a query: the proxy must cancel it and keep the pool's promise.
            const q = c.query('SELECT pg_sleep(1.5)').catch(() => undefined)
            await sleep(rand(20, 300))
            drop()
            await q
            report.hangups++
            break
          }
          const t0 = performance.now()
          if (r < 0.35) await timed(c.query('SELECT count(*)::int AS n FROM items'), drop, 'pg', 'simple query', port)
          else if (r < 0.6) await timed(c.query('SELECT n FROM items WHERE n > $1 ORDER BY n LIMIT 3', [slot % 5]), drop, 'pg', 'extended query', port)
          else if (r < 0.75)
            await timed(
              c.query({ name: 'by_n', text: 'SELECT count(*)::int AS n FROM items WHERE n >= $1', values: [slot % 3] }),
              drop,
              'pg',
              'named statement',
              port,
            )
          else {
            const id = ++nextId
            let step = 'BEGIN'
            await timed(
              (async () => {
                await c.query('BEGIN')
                step = 'INSERT'
                await c.query('INSERT INTO ledger (id, worker) VALUES ($1, $2)', [id, o.id])
                step = 'COMMIT'
                await c.query('COMMIT')
              })(),
              drop,
              'pg',
              () => `write transaction (${step})`,
              port,
            )
            report.committed.push(id) // acknowledged: it must be there at the end
          }
          report.hist[bucketOf(performance.now() - t0)]++
          report.ops++
        }
      } catch (err) {
        count(errorKind(err))
        await sleep(rand(50, 300))
      } finally {
        await c.end().catch(() => undefined)
      }
    }
  }

  async function postgresJsClient(slot: number): Promise<void> {
    while (Date.now() < deadline) {
      const tenant = `t${Math.floor(Math.random() * TENANTS)}`
      const sql = postgres(url(), {
        max: 1,
        idle_timeout: 0,
        connect_timeout: CONNECT_TIMEOUT_MS / 1000,
        onnotice: () => undefined,
        connection: { options: `-c app.tenant=${tenant}` } as Record<string, string>,
      })
      const drop = (): void => void sql.end({ timeout: 0 }).catch(() => undefined)
      try {
        let first = true
        while (Date.now() < deadline) {
          await sleep(rand(o.thinkMs[0], o.thinkMs[1]))
          if (Date.now() >= deadline) break
          const r = Math.random()
          const t0 = performance.now()
          if (r < 0.3)
            await timed(sql.unsafe('SELECT count(*)::int AS n FROM items').simple(), drop, 'postgres.js', first ? 'connect + simple query' : 'simple query')
          else if (r < 0.75)
            await timed(
              sql`SELECT count(*)::int AS n FROM items WHERE n >= ${slot % 4}`,
              drop,
              'postgres.js',
              first ? 'connect + prepared query' : 'prepared query',
            )
          else {
            const id = ++nextId
            await timed(
              sql.begin(async (tx) => {
                await tx`INSERT INTO ledger (id, worker) VALUES (${id}, ${o.id})`
              }),
              drop,
              'postgres.js',
              first ? 'connect + write transaction' : 'write transaction',
            )
            report.committed.push(id)
          }
          if (first) {
            report.connects++
            first = false
          }
          report.hist[bucketOf(performance.now() - t0)]++
          report.ops++
        }
      } catch (err) {
        count(errorKind(err))
        await sleep(rand(50, 300))
      } finally {
        await sql.end({ timeout: 5 }).catch(() => undefined)
      }
    }
  }

  await Promise.all(
    Array.from({ length: o.clients }, async (_, slot) => {
      await sleep((slot / o.clients) * o.rampMs)
      if (slot / o.clients < o.pgjsShare) await postgresJsClient(slot)
      else await nodePgClient(slot)
    }),
  )
  report.loopDelayMaxMs = Math.round(loopDelay.max / 1e6)
  report.loopDelayP99Ms = Math.round(loopDelay.percentile(99) / 1e6)
  const crashes = (globalThis as { libraryCrashes?: () => number }).libraryCrashes?.() ?? 0
  if (crashes > 0) report.errors['client library: uncaught exception'] = crashes
  return report
}

// ------------------------------------------------------------------ parent

interface Options {
  quick: boolean
  durationMs: number
  clients: number
  procs: number
  json: string | null
  /** Write a heap snapshot of the proxy after the clients left (and summarise what it holds). */
  heapSnapshot: string | null
  /** Run the clients this many times against the same proxy; between cycles the proxy's memory is read after the clients left (does RSS keep growing, or is it reused?). */
  cycles: number
}

function parseArgs(argv: string[]): Options {
  const val = (name: string): string | undefined => {
    const i = argv.indexOf(name)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const quick = argv.includes('--quick')
  return {
    quick,
    durationMs: Number(val('--duration') ?? (quick ? 50 : 600)) * 1000,
    clients: Number(val('--clients') ?? (quick ? 500 : 5000)),
    procs: Number(val('--procs') ?? (quick ? 2 : 5)),
    json: val('--json') ?? null,
    heapSnapshot: val('--heap-snapshot') ?? null,
    cycles: Number(val('--cycles') ?? 1),
  }
}

function configYaml(port: number, metricsPort: number, server: PgServer, variant: number): string {
  const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`
  const placed = Array.from({ length: OTHER_TENANTS }, (_, i) => `t${i}: other`).join(', ')
  return `
listen: 127.0.0.1:${port}
metrics: 127.0.0.1:${metricsPort}
log_level: ${variant % 2 === 0 ? 'warn' : 'error'}
users: { app: { password: app_pw }, ops: { password: ops_pw, admin: true, bypass: true } }
tenant: { column: tenant_id }
backends:
  main:  { url: "postgres://${auth}@127.0.0.1:${server.port}/soak", pool: ${POOLS.main} }
  other: { url: "postgres://${auth}@127.0.0.1:${server.port}/soak_other", pool: ${POOLS.other} }
placement: { default: main, tenants: { ${placed} } }
pool:
  max_client_connections: 8000
  max_server_connections: ${POOLS.main + POOLS.other}
  wait_timeout_ms: 30000
  login_timeout_ms: 30000
  idle_timeout_ms: ${variant % 2 === 0 ? 30000 : 20000}
  max_prepared_statements: ${variant % 2 === 0 ? 100 : 50}
`
}

/**
 * Loaded into the proxy with --require (the proxy itself is unchanged): on SIGUSR2 it writes
 * process.memoryUsage() and the number of active handles, and on request runs a full
 * garbage collection first (--expose-gc) or writes a heap snapshot, so that the soak can tell
 * memory still referenced (a leak) from memory the V8 heap or the allocator has not given back.
 */
const PRELOAD = `
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

interface MemoryUsageMiB {
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

function mib(m: NodeJS.MemoryUsage): MemoryUsageMiB {
  const f = (n: number): number => Math.round((n / 1048576) * 10) / 10
  return { rssMiB: f(m.rss), heapUsedMiB: f(m.heapUsed), heapTotalMiB: f(m.heapTotal), externalMiB: f(m.external), arrayBuffersMiB: f(m.arrayBuffers) }
}

let memoryRequests = 0
async function proxyMemory(dir: string, pid: number, kind: 'peek' | 'gc' | 'snapshot', file?: string): Promise<ProxyMemory | null> {
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
function heapCounts(file: string): Record<string, { count: number; selfMiB: number }> {
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

function procStats(pid: number): { rssMiB: number; fds: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
    return { rssMiB: Math.round(rss / 1024), fds: readdirSync(`/proc/${pid}/fd`).length }
  } catch {
    return { rssMiB: 0, fds: 0 }
  }
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((res) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy()
        res(true)
      })
      s.on('error', () => res(false))
    })
    if (ok) return
    await sleep(100)
  }
  throw new Error(`proxy did not listen on ${port} within ${ms} ms`)
}

export interface SoakSummary {
  mode: string
  durationS: number
  clients: number
  procs: number
  ops: number
  opsPerSec: number
  connects: number
  p50Ms: number
  p99Ms: number
  /** Operations that succeeded but took 60 s or more (below the hang watchdog). */
  over60s: number
  errors: Record<string, number>
  hangups: number
  hung: number
  killed: number
  reloads: number
  proxyExits: number
  proxy: { ready: { rssMiB: number; fds: number }; load: { rssMiB: number; fds: number }; settled: { rssMiB: number; fds: number } }
  serverConnections: { max: Record<string, number>; poolSizes: Record<string, number>; maxTotal: number; maxCatalog: number }
  ledger: { acknowledged: number; present: number; missing: number }
  /** Operations with no answer within the op timeout, each with whether an answer came later and the proxy's view of the client. */
  hangs: HangRecord[]
  /** The proxy's memory (process.memoryUsage in the proxy): ready, under load, and after the clients left, before and after a full GC. */
  memory: {
    ready: ProxyMemory | null
    load: ProxyMemory | null
    settled: ProxyMemory | null
    /** With --cycles: after each cycle but the last, once the clients left, before and after a full GC. */
    betweenCycles?: ProxyMemory[]
    heap?: Record<string, { count: number; selfMiB: number }>
  }
  /** Client sessions the proxy still had after every client left (SHOW CLIENTS, the console itself not counted). */
  sessionsLeft: number
  /** Event-loop delay (max / p99, ms): the client processes' worst, and the proxy's from ready to under load and from then to the end. */
  loopDelay: { clientsMaxMs: number; clientsP99Ms: number; proxyMaxMs: number; proxyP99Ms: number }
  /** The machine's load average (1, 5, 15 min) when the clients were done: other work shares the cores. */
  loadAverage: number[]
  /** The proxy's own counters of clients it cut off or refused (its /metrics), when the clients were done. */
  proxyCounters: Record<string, number>
}

/** Client connections the proxy cut off or refused, by reason, from its /metrics (the soak's config enables it). */
async function proxyCounters(metricsPort: number): Promise<Record<string, number>> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const out: Record<string, number> = {}
    for (const line of text.split('\n')) {
      const m = /^(pgtenant_client_login_cutoffs_total|pgtenant_client_connections_refused_total)\{reason="([^"]+)"\} (\d+)/.exec(line)
      if (m) out[`${m[1].replace('pgtenant_client_', '')} ${m[2]}`] = Number(m[3])
    }
    return out
  } catch (err) {
    return { [`metrics unavailable: ${(err as Error).message}`]: 0 }
  }
}

async function main(): Promise<void> {
  const opt = parseArgs(process.argv.slice(2))
  const log = (s: string): void => console.error(`[soak ${new Date().toISOString().slice(11, 19)}] ${s}`)
  log(`${opt.quick ? 'quick' : 'full'}: ${opt.clients} clients in ${opt.procs} processes for ${opt.durationMs / 1000} s`)
  const server = await startPostgres({ conf: ['max_connections = 100'] })
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-soak-'))
  let proxy: ChildProcess | null = null
  let stopping = false
  const workers: ChildProcess[] = []
  try {
    for (const db of ['soak', 'soak_other']) {
      server.sql(`CREATE DATABASE ${db}`)
      server.sql(
        `CREATE TABLE items (tenant_id text NOT NULL, n int NOT NULL);
         CREATE TABLE ledger (tenant_id text NOT NULL, id bigint PRIMARY KEY, worker int NOT NULL);
         INSERT INTO items SELECT 't' || t, n FROM generate_series(0, ${TENANTS - 1}) t, generate_series(1, 10) n;
         GRANT ALL ON items, ledger TO ${ROLES.scram.user};`,
        db,
      )
    }
    const port = await freePort()
    const metricsPort = await freePort()
    const configPath = join(dir, 'pgtenant.yaml')
    writeFileSync(configPath, configYaml(port, metricsPort, server, 0))
    const preload = join(dir, 'memory-probe.cjs')
    writeFileSync(preload, PRELOAD)
    let proxyExits = 0
    const startProxyProcess = (): ChildProcess => {
      const child = spawn(process.execPath, ['--expose-gc', '--require', preload, cli, '--config', configPath], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, PGTENANT_SOAK_DIR: dir },
      })
      let stderr = ''
      child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-4000)))
      child.on('exit', (code, signal) => {
        if (stopping) return
        proxyExits++
        log(`PROXY EXITED (code ${code}, signal ${signal}); restarting. stderr tail: ${stderr.slice(-1000)}`)
        proxy = startProxyProcess()
      })
      return child
    }
    proxy = startProxyProcess()
    await waitForPort(port, 30_000)
    const proxyPid = (): number => (proxy as ChildProcess).pid as number
    const ready = procStats(proxyPid())
    const memory: SoakSummary['memory'] = { ready: await proxyMemory(dir, proxyPid(), 'peek'), load: null, settled: null }
    log(`proxy ready: RSS ${ready.rssMiB} MiB, ${ready.fds} fds`)

    // The admin console: the proxy's own view of a client that got no answer (SHOW CLIENTS).
    const consoleUrl = `postgres://ops:ops_pw@127.0.0.1:${port}/pgtenant`
    let adminConsole: pg.Client | null = null
    let consoleTriedAt = 0
    let inFlight: Promise<Record<string, string>[]> | null = null
    let lastRows: { at: number; rows: Record<string, string>[] } = { at: 0, rows: [] }
    /** SHOW CLIENTS, at most one at a time and one a second; a failed console login is retried after 5 s (no login storm). */
    const showClients = async (): Promise<Record<string, string>[]> => {
      if (Date.now() - lastRows.at < 1000) return lastRows.rows
      inFlight ??= showClientsNow().then((rows) => {
        lastRows = { at: Date.now(), rows }
        inFlight = null
        return rows
      })
      return inFlight
    }
    const showClientsNow = async (): Promise<Record<string, string>[]> => {
      if (!adminConsole && Date.now() - consoleTriedAt < 5000) return [{ error: 'console unavailable (retried every 5 s)' }]
      try {
        if (!adminConsole) {
          consoleTriedAt = Date.now()
          adminConsole = new pg.Client({ connectionString: consoleUrl })
          adminConsole.on('error', () => (adminConsole = null))
          await adminConsole.connect()
        }
        return (await adminConsole.query('SHOW CLIENTS')).rows as Record<string, string>[]
      } catch (err) {
        adminConsole = null
        return [{ error: (err as Error).message }]
      }
    }
    const hangStates = new Map<string, string>()
    const lookUpHang = async (worker: number, index: number, rec: HangRecord): Promise<void> => {
      const rows = await showClients()
      const mine = rec.localPort === null ? undefined : rows.find((r) => typeof r.address === 'string' && r.address.endsWith(`:${rec.localPort}`))
      const waiting = rows.filter((r) => r.state === 'waiting').length
      const login = rows.filter((r) => r.state === 'login').length
      const state = rows[0]?.error
        ? `console: ${rows[0].error}`
        : `${mine ? `client ${mine.id} ${mine.state} on ${mine.backend ?? '-'}` : rec.localPort === null ? 'client not identifiable' : 'client not in SHOW CLIENTS'}; ${rows.length} clients, ${waiting} waiting, ${login} logging in`
      hangStates.set(`${worker}/${index}`, state)
      if (hangStates.size <= 50) log(`hung: worker ${worker} ${rec.lib} ${rec.what} started at ${rec.atS} s: ${state}`)
    }

    // The server's view, on a direct superuser connection over the Unix socket.
    const direct = new pg.Client({ host: server.socketDir, port: server.port, user: 'postgres', database: 'postgres' })
    await direct.connect()
    const maxSeen: Record<string, number> = { soak: 0, soak_other: 0 }
    let maxTotal = 0
    let maxCatalog = 0
    let killed = 0
    let reloads = 0
    let running = true
    const sampler = (async () => {
      while (running) {
        // Pool connections per database; the proxy's schema reads (application_name "pgtenant catalog") apart, and in the total (they count under the cap).
        const r = await direct.query(
          "SELECT datname, application_name = 'pgtenant catalog' AS catalog, count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend' GROUP BY 1, 2",
          [ROLES.scram.user],
        )
        let total = 0
        let catalog = 0
        for (const row of r.rows) {
          if (row.catalog) {
            catalog += row.n
            total += row.n
            continue
          }
          maxSeen[row.datname] = Math.max(maxSeen[row.datname] ?? 0, row.n)
          total += row.n
        }
        maxTotal = Math.max(maxTotal, total)
        maxCatalog = Math.max(maxCatalog, catalog)
        await sleep(50)
      }
    })()
    const killer = (async () => {
      await sleep(3000)
      while (running) {
        const r = await direct.query(
          "SELECT pg_terminate_backend(pid) AS ok FROM (SELECT pid FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend' AND application_name <> 'pgtenant catalog' ORDER BY random() LIMIT 1) p",
          [ROLES.scram.user],
        )
        if (r.rows[0]?.ok) killed++
        await sleep(rand(500, opt.quick ? 2000 : 3000))
      }
    })()
    const reloader = (async () => {
      while (running) {
        await sleep(opt.quick ? 10_000 : 30_000)
        if (!running) break
        writeFileSync(configPath, configYaml(port, metricsPort, server, ++reloads))
        proxy?.kill('SIGHUP')
      }
    })()

    // Client processes.
    const rampMs = opt.quick ? 8000 : 60_000
    const reports: WorkerReport[] = []
    let load = ready
    const loadTimer = setTimeout(() => {
      load = procStats(proxyPid())
      void proxyMemory(dir, proxyPid(), 'peek').then((m) => (memory.load = m))
    }, rampMs + 5000)
    const started = Date.now()
    const settleFds = async (): Promise<{ rssMiB: number; fds: number }> => {
      let now = procStats(proxyPid())
      for (let i = 0; i < 100 && now.fds > ready.fds + POOLS.main + POOLS.other + 5; i++) {
        await sleep(200)
        now = procStats(proxyPid())
      }
      return now
    }
    const betweenCycles: ProxyMemory[] = []
    for (let cycle = 0; cycle < opt.cycles; cycle++) {
      if (cycle > 0) {
        await settleFds()
        const m = await proxyMemory(dir, proxyPid(), 'gc')
        if (m) betweenCycles.push(m)
        log(`cycle ${cycle} done: proxy RSS ${m?.before.rssMiB} MiB, after a full GC ${m?.after?.rssMiB} MiB (heap used ${m?.after?.heapUsedMiB} MiB)`)
      }
      await runClients(cycle)
    }
    async function runClients(cycle: number): Promise<void> {
      await Promise.all(
        Array.from({ length: opt.procs }, (_, i) => {
          const wo: WorkerOptions = {
            id: cycle * opt.procs + i + 1,
            port,
            clients: Math.ceil(opt.clients / opt.procs),
            durationMs: opt.durationMs,
            rampMs,
            thinkMs: opt.quick ? [300, 2000] : [1000, 9000],
            hangupRate: 0.02,
            hangGraceMs: opt.quick ? 30_000 : 120_000,
            pgjsShare: 0.3,
            // Longer than the proxy may take by design for one operation: a login (login_timeout_ms
            // 30 s) and then a wait for a server connection (wait_timeout_ms 30 s) before 53300.
            opTimeoutMs: 75_000,
          }
          const child = fork(fileURLToPath(import.meta.url), ['--worker', JSON.stringify(wo)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
          workers.push(child)
          return new Promise<void>((res) => {
            child.on('message', (m: WorkerReport | { hang: HangRecord; worker: number; index: number }) => {
              if ('hang' in m) void lookUpHang(m.worker, m.index, m.hang)
              else reports.push(m)
            })
            child.on('exit', (code) => {
              if (code !== 0) log(`client process ${i + 1} exited with ${code}`)
              res()
            })
          })
        }),
      )
    }
    clearTimeout(loadTimer)
    const elapsedS = (Date.now() - started) / 1000
    running = false
    await Promise.all([sampler, killer, reloader])
    const loadAverage = loadavg()
    const cutoffs = await proxyCounters(metricsPort)
    log(`clients done after ${elapsedS.toFixed(0)} s; settling`)

    // Settle: every client is gone; the proxy's fds fall back (idle server connections stay until idle_timeout).
    let settled = await settleFds()
    await sleep(2000)
    settled = procStats(proxyPid())
    const left = await showClients()
    const sessionsLeft = left[0]?.error ? -1 : left.filter((r) => r.database !== 'pgtenant').length
    await (adminConsole as pg.Client | null)?.end().catch(() => undefined)
    // Memory after the clients left, before and after two full GCs: what is still referenced (a leak) or only not given back.
    if (betweenCycles.length > 0) memory.betweenCycles = betweenCycles
    memory.settled = await proxyMemory(dir, proxyPid(), opt.heapSnapshot ? 'snapshot' : 'gc', opt.heapSnapshot ?? undefined)
    if (opt.heapSnapshot) memory.heap = heapCounts(opt.heapSnapshot)

    // The ledger: every acknowledged commit must be there.
    const acknowledged = reports.flatMap((r) => r.committed)
    let present = 0
    for (const db of ['soak', 'soak_other']) {
      const c = new pg.Client({ host: server.socketDir, port: server.port, user: 'postgres', database: db })
      await c.connect()
      for (let i = 0; i < acknowledged.length; i += 50_000) {
        const r = await c.query('SELECT count(*)::int AS n FROM ledger WHERE id = ANY($1::bigint[])', [acknowledged.slice(i, i + 50_000)])
        present += r.rows[0].n
      }
      await c.end()
    }
    await direct.end()

    const hist = new Array(BUCKETS).fill(0)
    const errors: Record<string, number> = {}
    for (const r of reports) {
      r.hist.forEach((n, b) => (hist[b] += n))
      for (const [k, n] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + n
    }
    const ops = reports.reduce((n, r) => n + r.ops, 0)
    const summary: SoakSummary = {
      mode: opt.quick ? 'quick' : 'full',
      durationS: Math.round(elapsedS),
      clients: opt.clients,
      procs: opt.procs,
      ops,
      opsPerSec: Math.round(ops / elapsedS),
      connects: reports.reduce((n, r) => n + r.connects, 0),
      p50Ms: Number(quantile(hist, 0.5).toFixed(2)),
      p99Ms: Number(quantile(hist, 0.99).toFixed(2)),
      over60s: hist.reduce((n, c, b) => (bucketMs(b) >= 60_000 ? n + c : n), 0),
      errors,
      hangups: reports.reduce((n, r) => n + r.hangups, 0),
      hung: reports.reduce((n, r) => n + r.hung, 0) + (opt.procs * opt.cycles - reports.length) * 1_000_000,
      killed,
      reloads,
      proxyExits,
      proxy: { ready, load, settled },
      serverConnections: { max: { main: maxSeen.soak, other: maxSeen.soak_other }, poolSizes: { ...POOLS }, maxTotal, maxCatalog },
      ledger: { acknowledged: acknowledged.length, present, missing: acknowledged.length - present },
      hangs: reports.flatMap((r) => r.hangs.map((h, i) => ({ ...h, proxyState: hangStates.get(`${r.id}/${i}`) }))),
      memory,
      sessionsLeft,
      loadAverage,
      proxyCounters: cutoffs,
      loopDelay: {
        clientsMaxMs: Math.max(0, ...reports.map((r) => r.loopDelayMaxMs)),
        clientsP99Ms: Math.max(0, ...reports.map((r) => r.loopDelayP99Ms)),
        proxyMaxMs: Math.max(memory.load?.loopDelayMaxMs ?? 0, memory.settled?.loopDelayMaxMs ?? 0),
        proxyP99Ms: Math.max(memory.load?.loopDelayP99Ms ?? 0, memory.settled?.loopDelayP99Ms ?? 0),
      },
    }
    stopping = true
    console.log(formatSummary(summary))
    if (opt.json) writeFileSync(opt.json, JSON.stringify(summary, null, 2))
  } finally {
    stopping = true
    for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL')
    const p = proxy as ChildProcess | null
    if (p && p.exitCode === null) {
      p.kill('SIGINT')
      await new Promise((r) => setTimeout(r, 500))
      if (p.exitCode === null) p.kill('SIGKILL')
    }
    server.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

function formatSummary(s: SoakSummary): string {
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

function fmtMem(m: MemoryUsageMiB | undefined): string {
  return m ? `${m.rssMiB}/${m.heapUsedMiB}/${m.heapTotalMiB}/${m.externalMiB}/${m.arrayBuffersMiB}` : '?'
}

if (process.argv[2] === '--worker') {
  // A client library's own crash (postgres.js writing to a socket it already dropped) must not
  // end the client process: it is counted in the report as an error of its own kind.
  let libraryCrashes = 0
  process.on('uncaughtException', () => libraryCrashes++)
  process.on('unhandledRejection', () => libraryCrashes++)
  ;(globalThis as { libraryCrashes?: () => number }).libraryCrashes = () => libraryCrashes
  runWorker(JSON.parse(process.argv[3]) as WorkerOptions).then(
    (report) => process.send?.(report, () => process.exit(0)),
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
} else {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
