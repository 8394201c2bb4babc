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
import { tmpdir } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
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
}

interface WorkerReport {
  id: number
  ops: number
  hist: number[]
  errors: Record<string, number>
  hangups: number
  hung: number
  committed: number[]
  connects: number
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
  const report: WorkerReport = { id: o.id, ops: 0, hist: new Array(BUCKETS).fill(0), errors: {}, hangups: 0, hung: 0, committed: [], connects: 0 }
  const deadline = Date.now() + o.durationMs
  let nextId = o.id * 1_000_000_000
  const url = (): string => `postgres://app:app_pw@127.0.0.1:${o.port}/soak`
  const count = (kind: string): void => {
    report.errors[kind] = (report.errors[kind] ?? 0) + 1
  }
  /** Runs `op` with a watchdog: past opTimeoutMs the client counts as hung and is dropped. */
  const timed = async <T>(op: Promise<T>, onHang: () => void): Promise<T> => {
    let timer: NodeJS.Timeout | null = null
    const watchdog = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        report.hung++
        onHang()
        reject(Object.assign(new Error('client hung (no answer within the op timeout)'), { code: 'HUNG' }))
      }, o.opTimeoutMs)
    })
    try {
      return await Promise.race([op, watchdog])
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  async function nodePgClient(slot: number): Promise<void> {
    while (Date.now() < deadline) {
      const tenant = `t${Math.floor(Math.random() * TENANTS)}`
      const c = new pg.Client({ connectionString: url(), options: `-c app.tenant=${tenant}`, connectionTimeoutMillis: o.opTimeoutMs })
      c.on('error', () => undefined)
      const drop = (): void => {
        ;(c as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy()
      }
      try {
        await timed(c.connect(), drop)
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
          if (r < 0.35) await timed(c.query('SELECT count(*)::int AS n FROM items'), drop)
          else if (r < 0.6) await timed(c.query('SELECT n FROM items WHERE n > $1 ORDER BY n LIMIT 3', [slot % 5]), drop)
          else if (r < 0.75) await timed(c.query({ name: 'by_n', text: 'SELECT count(*)::int AS n FROM items WHERE n >= $1', values: [slot % 3] }), drop)
          else {
            const id = ++nextId
            await timed(
              (async () => {
                await c.query('BEGIN')
                await c.query('INSERT INTO ledger (id, worker) VALUES ($1, $2)', [id, o.id])
                await c.query('COMMIT')
              })(),
              drop,
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
        connect_timeout: o.opTimeoutMs / 1000,
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
          if (r < 0.3) await timed(sql.unsafe('SELECT count(*)::int AS n FROM items').simple(), drop)
          else if (r < 0.75) await timed(sql`SELECT count(*)::int AS n FROM items WHERE n >= ${slot % 4}`, drop)
          else {
            const id = ++nextId
            await timed(
              sql.begin(async (tx) => {
                await tx`INSERT INTO ledger (id, worker) VALUES (${id}, ${o.id})`
              }),
              drop,
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
  }
}

function configYaml(port: number, server: PgServer, variant: number): string {
  const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`
  const placed = Array.from({ length: OTHER_TENANTS }, (_, i) => `t${i}: other`).join(', ')
  return `
listen: 127.0.0.1:${port}
log_level: ${variant % 2 === 0 ? 'warn' : 'error'}
users: { app: { password: app_pw } }
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
  errors: Record<string, number>
  hangups: number
  hung: number
  killed: number
  reloads: number
  proxyExits: number
  proxy: { ready: { rssMiB: number; fds: number }; load: { rssMiB: number; fds: number }; settled: { rssMiB: number; fds: number } }
  serverConnections: { max: Record<string, number>; poolSizes: Record<string, number>; maxTotal: number; maxCatalog: number }
  ledger: { acknowledged: number; present: number; missing: number }
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
    const configPath = join(dir, 'pgtenant.yaml')
    writeFileSync(configPath, configYaml(port, server, 0))
    let proxyExits = 0
    const startProxyProcess = (): ChildProcess => {
      const child = spawn(process.execPath, [cli, '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] })
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
    log(`proxy ready: RSS ${ready.rssMiB} MiB, ${ready.fds} fds`)

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
        // Pool connections; the proxy's schema reads (application_name "pgtenant catalog") are counted apart.
        const r = await direct.query(
          "SELECT datname, application_name = 'pgtenant catalog' AS catalog, count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend' GROUP BY 1, 2",
          [ROLES.scram.user],
        )
        let total = 0
        let catalog = 0
        for (const row of r.rows) {
          if (row.catalog) {
            catalog += row.n
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
        writeFileSync(configPath, configYaml(port, server, ++reloads))
        proxy?.kill('SIGHUP')
      }
    })()

    // Client processes.
    const rampMs = opt.quick ? 8000 : 60_000
    const reports: WorkerReport[] = []
    let load = ready
    const loadTimer = setTimeout(() => (load = procStats(proxyPid())), rampMs + 5000)
    const started = Date.now()
    await Promise.all(
      Array.from({ length: opt.procs }, (_, i) => {
        const wo: WorkerOptions = {
          id: i + 1,
          port,
          clients: Math.ceil(opt.clients / opt.procs),
          durationMs: opt.durationMs,
          rampMs,
          thinkMs: opt.quick ? [300, 2000] : [1000, 9000],
          hangupRate: 0.02,
          pgjsShare: 0.3,
          opTimeoutMs: 60_000,
        }
        const child = fork(fileURLToPath(import.meta.url), ['--worker', JSON.stringify(wo)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
        workers.push(child)
        return new Promise<void>((res) => {
          child.on('message', (m) => reports.push(m as WorkerReport))
          child.on('exit', (code) => {
            if (code !== 0) log(`client process ${i + 1} exited with ${code}`)
            res()
          })
        })
      }),
    )
    clearTimeout(loadTimer)
    const elapsedS = (Date.now() - started) / 1000
    running = false
    await Promise.all([sampler, killer, reloader])
    log(`clients done after ${elapsedS.toFixed(0)} s; settling`)

    // Settle: every client is gone; the proxy's fds fall back (idle server connections stay until idle_timeout).
    let settled = procStats(proxyPid())
    for (let i = 0; i < 100 && settled.fds > ready.fds + POOLS.main + POOLS.other + 5; i++) {
      await sleep(200)
      settled = procStats(proxyPid())
    }
    await sleep(2000)
    settled = procStats(proxyPid())

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
      errors,
      hangups: reports.reduce((n, r) => n + r.hangups, 0),
      hung: reports.reduce((n, r) => n + r.hung, 0) + (opt.procs - reports.length) * 1_000_000,
      killed,
      reloads,
      proxyExits,
      proxy: { ready, load, settled },
      serverConnections: { max: { main: maxSeen.soak, other: maxSeen.soak_other }, poolSizes: { ...POOLS }, maxTotal, maxCatalog },
      ledger: { acknowledged: acknowledged.length, present, missing: acknowledged.length - present },
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
    `  ops ${s.ops} (${s.opsPerSec}/s), client connects ${s.connects}, latency p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms`,
    `  server connections killed ${s.killed}, clients hung up mid-query ${s.hangups}, config reloads ${s.reloads}`,
    `  proxy exits ${s.proxyExits}, clients hung ${s.hung}`,
    `  proxy RSS/fds: ready ${s.proxy.ready.rssMiB} MiB/${s.proxy.ready.fds}, under load ${s.proxy.load.rssMiB} MiB/${s.proxy.load.fds}, settled ${s.proxy.settled.rssMiB} MiB/${s.proxy.settled.fds}`,
    `  server connections (pg_stat_activity) max: main ${s.serverConnections.max.main}/${s.serverConnections.poolSizes.main}, other ${s.serverConnections.max.other}/${s.serverConnections.poolSizes.other}, total ${s.serverConnections.maxTotal}; the proxy's catalog reads (outside the pools) ${s.serverConnections.maxCatalog}`,
    `  ledger: ${s.ledger.acknowledged} acknowledged commits, ${s.ledger.present} present, ${s.ledger.missing} missing`,
    `  client errors by kind:${errs ? '\n' + errs : ' none'}`,
  ].join('\n')
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
