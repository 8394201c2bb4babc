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
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import pg from 'pg'
import { startPostgres, ROLES, freePort, type PgServer } from '../test/helpers/pg-server.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..', '..')
const cli = join(root, 'dist', 'server', 'cli.js')

import {
  TENANTS,
  OTHER_TENANTS,
  POOLS,
  BUCKETS,
  bucketMs,
  quantile,
  sleep,
  rand,
  type WorkerOptions,
  type WorkerReport,
  type HangRecord,
} from './soak/common.js'

export type { HangRecord } from './soak/common.js'

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
import { PRELOAD, type ProxyMemory, proxyMemory, heapCounts, procStats, formatSummary } from './soak/probe.js'

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
          const child = fork(join(here, 'soak', 'worker.js'), [JSON.stringify(wo)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
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

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
