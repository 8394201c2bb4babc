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
//   npm run soak                         10 minutes (two cycles of 5), 5,000 client connections, 5 client processes
//   node dist/bench/soak.js --quick      about 60 s, 500 clients, 2 processes (runs in npm test)
//   options: see --help (USAGE below)
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync, rmSync, readFileSync, readdirSync, readlinkSync } from 'node:fs'
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

/** One catalog read at the cap: a new table, named by a client while others waited for a server connection. */
export interface CatalogProbe {
  backend: string
  table: string
  /** pgtenant_pool_waiting_clients of that backend, and the server connections in pg_stat_activity, just before. */
  waitingBefore: number
  serverConnectionsBefore: number
  ms: number
  /** 'rows' (the new table was found and filtered to the tenant), or the error. */
  outcome: string
}

/** The kernel's TcpExt ListenOverflows (connections dropped because an accept queue was full), machine-wide. */
function listenOverflows(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n')
    const i = lines.findIndex((l) => l.startsWith('TcpExt:'))
    const names = lines[i].split(/\s+/)
    const values = lines[i + 1].split(/\s+/)
    return Number(values[names.indexOf('ListenOverflows')])
  } catch {
    return -1
  }
}

/** The proxy's open fds by kind: TCP sockets by state and local/peer role (from ss), the rest by link target. */
function describeFds(pid: number): Record<string, number> {
  const out: Record<string, number> = {}
  const r = spawnSync('ss', ['-tanpH'], { encoding: 'utf8' })
  for (const line of (r.stdout ?? '').split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue
    const [state, , , local, peer] = line.trim().split(/\s+/)
    const k = `tcp ${state} ${local.replace(/:\d+$/, '')}:${state === 'LISTEN' ? local.split(':').pop() : '*'} -> ${peer.replace(/:\d+$/, ':*')}`
    out[k] = (out[k] ?? 0) + 1
  }
  // Socket inodes by protocol, from the process's network namespace tables.
  const proto = new Map<string, string>()
  for (const table of ['tcp', 'tcp6', 'udp', 'udp6', 'unix', 'netlink', 'raw']) {
    try {
      const lines = readFileSync(`/proc/${pid}/net/${table}`, 'utf8').trim().split('\n')
      const cols = lines[0].trim().split(/\s+/)
      // tcp/udp/raw: the header's "tx_queue rx_queue" and "tr tm->when" are one column each in the rows
      const at = table === 'unix' || table === 'netlink' ? cols.indexOf('Inode') : cols.indexOf('inode') - 2
      for (const l of lines.slice(1)) {
        const f = l.trim().split(/\s+/)
        if (f[at]) proto.set(f[at], table === 'unix' ? `unix ${f[7] ?? '(unnamed)'}` : table)
      }
    } catch {
      /* no such table */
    }
  }
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let target = '?'
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`)
        const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1]
        target = inode ? `socket ${proto.get(inode) ?? '?'}` : link.replace(/\[\d+\]$/, '').replace(/:$/, '')
      } catch {
        /* closed meanwhile */
      }
      const k = `fd ${target}`
      out[k] = (out[k] ?? 0) + 1
    }
  } catch {
    /* gone */
  }
  return out
}

// ------------------------------------------------------------------ parent

const USAGE = `usage: node dist/bench/soak.js [options]
  --quick             about 60 s: 500 clients, 2 processes, 50 s (runs in npm test)
  --duration S        seconds of client traffic per cycle (300; quick 50)
  --clients N         concurrent client connections (5000; quick 500)
  --procs N           client processes (5; quick 2)
  --ramp S            seconds over which the clients connect (60; quick 8)
  --cycles N          run the clients N times against the same proxy (2; quick 1); after each cycle
                      the proxy's memory is read once the clients left: RSS flat after settle means
                      no cycle ends more than 5 % above the one before it (FLAT_RULE in soak/probe.ts)
  --proxy-env K=V     environment for the proxy process (repeatable), e.g. MALLOC_ARENA_MAX=2
  --malloc-trim       after the last cycle, call glibc malloc_trim(0) in the proxy (gdb) and read
                      its memory again: what RSS is free memory the allocator kept (diagnostic)
  --json FILE         write the summary as JSON
  --heap-snapshot F   write a heap snapshot of the proxy after the clients left, count its objects
`

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
  rampMs: number
  proxyEnv: Record<string, string>
  mallocTrim: boolean
}

function parseArgs(argv: string[]): Options {
  const val = (name: string): string | undefined => {
    const i = argv.indexOf(name)
    return i >= 0 ? argv[i + 1] : undefined
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE)
    process.exit(0)
  }
  const quick = argv.includes('--quick')
  const proxyEnv: Record<string, string> = {}
  argv.forEach((a, i) => {
    if (a !== '--proxy-env') return
    const [k, ...v] = (argv[i + 1] ?? '').split('=')
    if (!k || v.length === 0) throw new Error(`--proxy-env wants K=V, got ${argv[i + 1]}`)
    proxyEnv[k] = v.join('=')
  })
  return {
    quick,
    // The full run: 10 minutes of traffic as two cycles of 5 (RSS flat after settle is judged between cycles).
    durationMs: Number(val('--duration') ?? (quick ? 50 : 300)) * 1000,
    clients: Number(val('--clients') ?? (quick ? 500 : 5000)),
    procs: Number(val('--procs') ?? (quick ? 2 : 5)),
    json: val('--json') ?? null,
    heapSnapshot: val('--heap-snapshot') ?? null,
    cycles: Number(val('--cycles') ?? (quick ? 1 : 2)),
    rampMs: Number(val('--ramp') ?? (quick ? 8 : 60)) * 1000,
    proxyEnv,
    mallocTrim: argv.includes('--malloc-trim'),
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
import {
  PRELOAD,
  type ProxyMemory,
  type SmapsBreakdown,
  type SettledPoint,
  type FlatVerdict,
  proxyMemory,
  heapCounts,
  procStats,
  formatSummary,
  smapsBreakdown,
  fmtSmaps,
  flatVerdict,
} from './soak/probe.js'

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
  /** RSS and fds flat after settle (FLAT_RULE), pass or fail, with the numbers it was decided on. */
  flat: FlatVerdict
  /** After each cycle (clients gone, full GC): RSS and where it is. */
  afterCycles: SettledPoint[]
  /** With --malloc-trim: the proxy's memory after glibc's malloc_trim(0), after the last cycle. */
  mallocTrimmed: SmapsBreakdown | null
  /** Environment given to the proxy (--proxy-env), e.g. allocator settings. */
  proxyEnv: Record<string, string>
  /** Seconds after the clients left (and the console closed) until the fds were back (at most 60). */
  fdsSettleS: number
  /** When the fds did not come back: the kinds of fds (TCP states and peers, link targets) the proxy had more of than at ready, and how many more. */
  fdKinds?: Record<string, number>
  /** The proxy's listen socket: its accept queue (max seen, backlog, samples at the backlog) and the kernel's ListenOverflows during the run (machine-wide). */
  listen: { max: number; backlog: number; samplesFull: number; samples: number; overflows: number }
  /** Catalog reads at the cap: a new tenant table named by a client while the pools are full and clients wait. */
  catalogProbes: CatalogProbe[]
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
        env: { ...process.env, ...opt.proxyEnv, PGTENANT_SOAK_DIR: dir },
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
    log(`proxy ready: RSS ${fmtSmaps(smapsBreakdown(proxyPid()))} MiB, ${ready.fds} fds`)

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
    /** The proxy's connections to the server right now (each is one fd of the proxy). */
    const serverConnections = async (): Promise<number> =>
      (await direct.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'", [ROLES.scram.user])).rows[0]
        .n as number
    const serverAtReady = await serverConnections()
    // The fds at ready for the flat check: counted with their kinds at the same moment, after the
    // memory probe's first answer (its signal handling and file writes open what they need once).
    const fdKindsReady = describeFds(proxyPid())
    const readyFds = { fds: procStats(proxyPid()).fds }
    // The proxy's listen socket (ss: Recv-Q = connections in the accept queue, Send-Q = its backlog) and
    // the kernel's count of connections dropped because an accept queue was full (the whole machine's).
    let running = true
    const overflowsAtStart = listenOverflows()
    const listenQueue = { max: 0, backlog: 0, samplesFull: 0, samples: 0 }
    const listenSampler = (async () => {
      while (running) {
        const r = spawnSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' })
        const m = /^\S+\s+(\d+)\s+(\d+)/.exec(r.stdout ?? '')
        if (m) {
          const [q, backlog] = [Number(m[1]), Number(m[2])]
          listenQueue.max = Math.max(listenQueue.max, q)
          listenQueue.backlog = backlog
          listenQueue.samples++
          if (q >= backlog) listenQueue.samplesFull++
        }
        await sleep(500)
      }
    })()
    const maxSeen: Record<string, number> = { soak: 0, soak_other: 0 }
    let maxTotal = 0
    let maxCatalog = 0
    let killed = 0
    let reloads = 0
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
    // Catalog reads at the cap with clients waiting (issue 15): a new tenant table appears in each
    // database (created directly), and a client of a tenant placed there names it at once. The
    // proxy must read the catalogs again (schema discovery, one connection under
    // max_server_connections, ahead of the waiting clients) while every server connection is in use
    // and clients wait; the sampler checks that the server never sees more than the cap.
    const catalogProbes: CatalogProbe[] = []
    const catalogProber = (async () => {
      await sleep(opt.rampMs + (opt.quick ? 2000 : 10_000))
      for (let k = 1; running; k++) {
        for (const [db, tenant] of [
          ['soak', `t${OTHER_TENANTS + k}`],
          ['soak_other', `t${k % OTHER_TENANTS}`],
        ] as const) {
          if (!running) break
          const table = `extra_${k}`
          server.sql(
            `CREATE TABLE ${table} (tenant_id text NOT NULL, n int); INSERT INTO ${table} VALUES ('${tenant}', 1), ('x', 2); GRANT ALL ON ${table} TO ${ROLES.scram.user};`,
            db,
          )
          catalogProbes.push(await catalogProbe(db, tenant, table))
        }
        await sleep(opt.quick ? 8000 : 25_000)
      }
    })()
    async function catalogProbe(db: string, tenant: string, table: string): Promise<CatalogProbe> {
      const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
        .then((r) => r.text())
        .catch(() => '')
      const backend = db === 'soak' ? 'main' : 'other'
      const waiting = Number(new RegExp(`^pgtenant_pool_waiting_clients\\{backend="${backend}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? -1)
      const serverTotal = await serverConnections()
      const c = new pg.Client({
        connectionString: `postgres://app:app_pw@127.0.0.1:${port}/soak`,
        options: `-c app.tenant=${tenant}`,
        connectionTimeoutMillis: 90_000,
      })
      c.on('error', () => undefined)
      const t0 = Date.now()
      let outcome = 'rows'
      let connected = false
      try {
        await c.connect()
        connected = true
        const r = await c.query(`SELECT count(*)::int AS n FROM ${table}`)
        if (r.rows[0].n !== 1) outcome = `wrong count ${r.rows[0].n} (not only the tenant's row)`
      } catch (err) {
        const e = err as { code?: string; message: string }
        outcome = `${connected ? '' : 'login: '}${e.code ?? '-'} ${e.message.slice(0, 80)}`
      } finally {
        await c.end().catch(() => undefined)
      }
      return { backend, table, waitingBefore: waiting, serverConnectionsBefore: serverTotal, ms: Date.now() - t0, outcome }
    }
    const reloader = (async () => {
      while (running) {
        await sleep(opt.quick ? 10_000 : 30_000)
        if (!running) break
        writeFileSync(configPath, configYaml(port, metricsPort, server, ++reloads))
        proxy?.kill('SIGHUP')
      }
    })()

    // Client processes.
    const rampMs = opt.rampMs
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
    /** After each cycle, once the clients left and a full GC ran: RSS and where it is (smaps). */
    const afterCycles: SettledPoint[] = []
    for (let cycle = 0; cycle < opt.cycles; cycle++) {
      if (cycle > 0) {
        await settleFds()
        const m = await proxyMemory(dir, proxyPid(), 'gc')
        if (m) betweenCycles.push(m)
        const point = { cycle, rssMiB: procStats(proxyPid()).rssMiB, heapUsedMiB: m?.after?.heapUsedMiB ?? -1, smaps: smapsBreakdown(proxyPid()) }
        afterCycles.push(point)
        log(`cycle ${cycle} done: proxy RSS ${m?.before.rssMiB} MiB, after a full GC ${fmtSmaps(point.smaps)} MiB (heap used ${m?.after?.heapUsedMiB} MiB)`)
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
    await Promise.all([sampler, killer, reloader, catalogProber, listenSampler])
    const loadAverage = loadavg()
    const cutoffs = await proxyCounters(metricsPort)
    log(`clients done after ${elapsedS.toFixed(0)} s; settling`)

    // Settle: every client is gone; the proxy's fds fall back (idle server connections stay until idle_timeout).
    await settleFds()
    const left = await showClients()
    const sessionsLeft = left[0]?.error ? -1 : left.filter((r) => r.database !== 'pgtenant').length
    await (adminConsole as pg.Client | null)?.end().catch(() => undefined)
    // fds flat: wait (up to 60 s) until the proxy's fds, less its server connections, are back where they were at ready.
    let settled = procStats(proxyPid())
    let serverAtSettle = await serverConnections()
    const settleFrom = Date.now()
    while (settled.fds - serverAtSettle > readyFds.fds - serverAtReady && Date.now() - settleFrom < 60_000) {
      await sleep(500)
      settled = procStats(proxyPid())
      serverAtSettle = await serverConnections()
    }
    const fdsSettleS = Math.round((Date.now() - settleFrom) / 100) / 10
    // When they did not come back: which kinds of fds there are more of than at ready.
    let fdKinds: Record<string, number> | undefined
    if (settled.fds - serverAtSettle > readyFds.fds - serverAtReady) {
      fdKinds = {}
      for (const [k, n] of Object.entries(describeFds(proxyPid()))) if (n > (fdKindsReady[k] ?? 0)) fdKinds[k] = n - (fdKindsReady[k] ?? 0)
    }
    // Memory after the clients left, before and after two full GCs: what is still referenced (a leak) or only not given back.
    if (betweenCycles.length > 0) memory.betweenCycles = betweenCycles
    memory.settled = await proxyMemory(dir, proxyPid(), opt.heapSnapshot ? 'snapshot' : 'gc', opt.heapSnapshot ?? undefined)
    if (opt.heapSnapshot) memory.heap = heapCounts(opt.heapSnapshot)
    afterCycles.push({
      cycle: opt.cycles,
      rssMiB: procStats(proxyPid()).rssMiB,
      heapUsedMiB: memory.settled?.after?.heapUsedMiB ?? -1,
      smaps: smapsBreakdown(proxyPid()),
    })
    log(`cycle ${opt.cycles} done: after a full GC ${fmtSmaps(afterCycles[afterCycles.length - 1].smaps)} MiB`)
    let trimmed: SmapsBreakdown | null = null
    if (opt.mallocTrim) {
      // Diagnostic: memory glibc holds free is given back by malloc_trim; what stays is in use (ours, V8's or the WASM memory's).
      const r = spawnSync('gdb', ['-p', String(proxyPid()), '-batch', '-ex', 'call (int)malloc_trim(0)'], { encoding: 'utf8', timeout: 60_000 })
      trimmed = smapsBreakdown(proxyPid())
      log(`after malloc_trim(0) (gdb ${r.status ?? r.error?.message}): ${fmtSmaps(trimmed)} MiB`)
    }
    const flat = flatVerdict(afterCycles, { ready: readyFds, readyServer: serverAtReady, settled, settledServer: serverAtSettle })

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
      flat,
      afterCycles,
      mallocTrimmed: trimmed,
      proxyEnv: opt.proxyEnv,
      fdsSettleS,
      fdKinds,
      listen: { ...listenQueue, overflows: listenOverflows() - overflowsAtStart },
      catalogProbes,
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
