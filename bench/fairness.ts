// Noisy neighbour benchmark (issue 19 section 1): one heavy tenant (40 clients in a tight
// loop) and 5 light tenants (2 clients each, at a modest fixed rate) on a server pool of 10.
// Reports the light tenants' p50/p99 latency with the heavy tenant and without it, through
// pgtenant without tenant limits (fair hand-out between tenants only), through pgtenant with
// limits on the heavy tenant, and through PgBouncer 1.18 (transaction pooling, the same pool;
// it knows no tenants, so the light tenants wait in one queue with the heavy one), all in the
// same run, interleaved (each round runs every case, in a rotated order).
//
//   npm run bench:fairness                          # 3 rounds × 10 s per case
//   node dist/bench/fairness.js --rounds 1 --seconds 5
//
// Options: --rounds N, --seconds S (light measurement per case), --pool N (10), --heavy N (40
// clients), --sleep-ms M (what a heavy transaction holds its server connection for, in
// pg_sleep: 3), --light-rate R (transactions a second per light tenant: 40), --limits YAML (the
// heavy tenant's override; default `{ max_connections: 7 }`), --no-pgbouncer.
//
// The heavy transaction is BEGIN; SELECT by key; SELECT pg_sleep(0.003); SELECT by key; COMMIT
// (it holds a server connection ~4 ms, as an application transaction that does work between
// statements), the light one a single SELECT by key. Through pgtenant the tenant comes from
// the startup packet (PGOPTIONS=-c app.tenant=…) and the statements are rewritten; through
// PgBouncer they carry the tenant filter themselves.
import { mkdtempSync, writeFileSync, rmSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { startPostgres, freePort, type PgServer } from '../test/helpers/pg-server.js'
import { sleep, waitForPort, killPid, treeCpuSeconds, runCmd } from './e2e/proc.js'
import { ensurePgbouncer, startPgbouncer, type Target } from './e2e/targets.js'
import { pgbenchBin, percentile } from './e2e/pgbench.js'
import { machineDescription } from './e2e/report.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..', '..')
const cli = join(root, 'dist', 'server', 'cli.js')

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt
}

const opt = {
  rounds: Number(arg('--rounds', '3')),
  seconds: Number(arg('--seconds', '10')),
  pool: Number(arg('--pool', '10')),
  heavy: Number(arg('--heavy', '40')),
  sleepMs: Number(arg('--sleep-ms', '3')),
  lightRate: Number(arg('--light-rate', '40')),
  limits: arg('--limits', '{ max_connections: 7 }'),
  pgbouncer: !process.argv.includes('--no-pgbouncer'),
}
const USER = 'bench'
const PASSWORD = 'bench_pw'
const DB = 'fair'
const LIGHT = ['l1', 'l2', 'l3', 'l4', 'l5']
const ROWS = 1000

const log = (s: string): void => console.error(`[fairness] ${s}`)

interface Proxy {
  name: string
  port: number
  pid: number | null
  /** pgtenant knows tenants (PGOPTIONS, rewriting); PgBouncer gets hand-filtered statements. */
  tenantAware: boolean
  stop(): Promise<void>
}

async function startPgtenant(server: PgServer, verifier: string, limits: string | null): Promise<Proxy> {
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-fairness-'))
  const port = await freePort()
  const yaml = [
    `listen: 127.0.0.1:${port}`,
    'log_level: warn',
    'users:',
    `  ${USER}: { password: ${JSON.stringify(verifier)} }`,
    'tenant: { column: tenant_id }',
    'backends:',
    `  main: { url: ${JSON.stringify(`postgres://${USER}:${PASSWORD}@127.0.0.1:${server.port}/${DB}`)}, pool: ${opt.pool} }`,
    'pool: { wait_timeout_ms: 60000, login_timeout_ms: 60000 }',
    ...(limits ? ['tenant_limits:', '  tenants:', `    heavy: ${limits}`] : []),
    '',
  ].join('\n')
  const cfg = join(dir, 'pgtenant.yaml')
  writeFileSync(cfg, yaml)
  const child: ChildProcess = spawn(process.execPath, [cli, '--config', cfg], { stdio: ['ignore', 'ignore', 'inherit'] })
  if (!(await waitForPort(port, child, 30_000))) throw new Error('pgtenant did not start')
  return {
    name: limits ? 'pgtenant, limits on' : 'pgtenant, no limits',
    port,
    pid: child.pid ?? null,
    tenantAware: true,
    stop: async () => {
      killPid(child.pid, 'SIGTERM')
      for (let i = 0; i < 60 && child.exitCode === null && child.signalCode === null; i++) await sleep(50)
      killPid(child.pid, 'SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function scripts(dir: string): { heavyTenant: string; heavyFiltered: string; light: string; lightFiltered: (t: string) => string } {
  const w = (name: string, text: string): string => {
    const p = join(dir, name)
    writeFileSync(p, text)
    return p
  }
  const heavy = (filter: string): string =>
    `\\set id random(1, ${ROWS})\nBEGIN;\nSELECT v FROM items WHERE ${filter}id = :id;\nSELECT pg_sleep(${opt.sleepMs / 1000});\nSELECT v FROM items WHERE ${filter}id = :id;\nCOMMIT;\n`
  const light = (filter: string): string => `\\set id random(1, ${ROWS})\nSELECT v FROM items WHERE ${filter}id = :id;\n`
  return {
    heavyTenant: w('heavy.sql', heavy('')),
    heavyFiltered: w('heavy-filtered.sql', heavy("tenant_id = 'heavy' AND ")),
    light: w('light.sql', light('')),
    lightFiltered: (t) => w(`light-${t}.sql`, light(`tenant_id = '${t}' AND `)),
  }
}

interface Run {
  ok: boolean
  error?: string
  tps: number
  transactions: number
  /** per-transaction latency, ms (with -R: from the scheduled start, so a late start counts) */
  latencies: number[]
}

/** pgbench with a per-transaction log (and -R when `rate`), read back. */
async function pgbench(
  bin: string,
  port: number,
  o: { clients: number; threads: number; seconds: number; script: string; rate?: number; env: Record<string, string> },
  work: string,
): Promise<Run> {
  const logDir = mkdtempSync(join(work, 'log-'))
  const args = [
    '-n',
    '-M',
    'simple',
    '-c',
    String(o.clients),
    '-j',
    String(Math.min(o.threads, o.clients)),
    '-T',
    String(o.seconds),
    ...(o.rate ? ['-R', String(o.rate)] : []),
    '--log',
    `--log-prefix=${join(logDir, 'tx')}`,
    '-f',
    o.script,
    `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/${DB}`,
  ]
  const res = await runCmd(bin, args, { env: { ...process.env, ...o.env }, cwd: logDir, timeoutMs: (o.seconds + 90) * 1000 })
  const latencies: number[] = []
  for (const name of readdirSync(logDir))
    for (const line of readFileSync(join(logDir, name), 'latin1').split('\n')) {
      // client_id transaction_no time script_no time_epoch time_us [schedule_lag]; time in µs
      const f = line.split(' ')
      const us = Number(f[2])
      if (f.length >= 6 && Number.isFinite(us)) latencies.push(us / 1000)
    }
  rmSync(logDir, { recursive: true, force: true })
  const tps = Number(/tps = ([\d.]+)/.exec(res.stdout)?.[1] ?? NaN)
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(res.stdout)?.[1] ?? NaN)
  const ok = res.code === 0 && Number.isFinite(tps)
  return {
    ok,
    error: ok ? undefined : `exit ${res.code}: ${res.stderr.trim().split('\n').slice(-2).join(' | ')}`,
    tps: ok ? tps : 0,
    transactions: ok ? transactions : 0,
    latencies,
  }
}

interface CaseResult {
  target: string
  heavy: boolean
  ok: boolean
  error?: string
  light: Float64Array
  heavyTps: number
  lightTps: number
  proxyCpuMsPerTx: number
}

async function runCase(bin: string, proxy: Proxy, heavy: boolean, s: ReturnType<typeof scripts>, work: string): Promise<CaseResult> {
  const tenantEnv = (t: string): Record<string, string> => (proxy.tenantAware ? { PGOPTIONS: `-c app.tenant=${t}` } : {})
  const cpu0 = proxy.pid ? treeCpuSeconds(proxy.pid) : 0
  // The heavy tenant runs before, during and after the light tenants' measurement.
  const heavyRun: Promise<Run> | null = heavy
    ? pgbench(
        bin,
        proxy.port,
        {
          clients: opt.heavy,
          threads: 2,
          seconds: opt.seconds + 6,
          script: proxy.tenantAware ? s.heavyTenant : s.heavyFiltered,
          env: tenantEnv('heavy'),
        },
        work,
      )
    : null
  if (heavy) await sleep(3000)
  const lights = await Promise.all(
    LIGHT.map((t) =>
      pgbench(
        bin,
        proxy.port,
        { clients: 2, threads: 1, seconds: opt.seconds, rate: opt.lightRate, script: proxy.tenantAware ? s.light : s.lightFiltered(t), env: tenantEnv(t) },
        work,
      ),
    ),
  )
  const light = {
    ok: lights.every((r) => r.ok),
    error: lights.find((r) => !r.ok)?.error,
    tps: lights.reduce((n, r) => n + r.tps, 0),
    transactions: lights.reduce((n, r) => n + r.transactions, 0),
    latencies: Float64Array.from(lights.flatMap((r) => r.latencies)),
  }
  const h = heavyRun ? await heavyRun : null
  const cpu = proxy.pid ? treeCpuSeconds(proxy.pid) - cpu0 : 0
  const txs = light.transactions + (h?.transactions ?? 0)
  return {
    target: proxy.name,
    heavy,
    ok: light.ok && (h?.ok ?? true),
    error: light.error ?? h?.error,
    light: light.latencies.slice().sort(),
    heavyTps: h?.tps ?? 0,
    lightTps: light.tps,
    proxyCpuMsPerTx: txs > 0 ? (cpu * 1000) / txs : 0,
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN
}

async function main(): Promise<void> {
  const server = await startPostgres({ conf: ['max_connections = 300', 'log_min_messages = fatal'] })
  const cleanup: (() => Promise<void>)[] = [async () => server.stop()]
  const work = mkdtempSync(join(tmpdir(), 'pgtenant-fairness-work-'))
  try {
    server.sql(`SET password_encryption = 'scram-sha-256'; CREATE ROLE ${USER} LOGIN PASSWORD '${PASSWORD}';`)
    server.sql(`CREATE DATABASE ${DB} OWNER ${USER}`)
    server.sql(
      `CREATE TABLE items (tenant_id text NOT NULL, id int NOT NULL, v int NOT NULL, PRIMARY KEY (tenant_id, id));
       INSERT INTO items SELECT t, g, g FROM unnest(ARRAY['heavy', ${LIGHT.map((t) => `'${t}'`).join(', ')}]) t, generate_series(1, ${ROWS}) g;
       ALTER TABLE items OWNER TO ${USER}; ANALYZE items;`,
      DB,
    )
    const verifier = server.sql(`SELECT rolpassword FROM pg_authid WHERE rolname = '${USER}'`)
    const bin = pgbenchBin(server.bin)
    const s = scripts(work)
    const proxies: Proxy[] = []
    const noLimits = await startPgtenant(server, verifier, null)
    proxies.push(noLimits)
    cleanup.push(noLimits.stop)
    const limited = await startPgtenant(server, verifier, opt.limits)
    proxies.push(limited)
    cleanup.push(limited.stop)
    let bouncerVersion = 'not run'
    if (opt.pgbouncer) {
      const found = ensurePgbouncer(log, false)
      if (found.bin) {
        const t: Target = await startPgbouncer({
          bin: found.bin,
          pgPort: server.port,
          database: DB,
          user: USER,
          secret: verifier,
          poolSize: opt.pool,
          maxClients: 500,
        })
        if (t.available) {
          bouncerVersion = t.version
          proxies.push({ name: 'PgBouncer', port: t.port, pid: t.proxyPid('plain'), tenantAware: false, stop: t.stop })
          cleanup.push(t.stop)
        } else log(`PgBouncer not available: ${t.reason}`)
      } else log(`PgBouncer not available: ${found.reason}`)
    }
    const loadStart = loadavg()
    const cases: [Proxy, boolean][] = []
    for (const p of proxies) for (const heavy of [false, true]) cases.push([p, heavy])
    // Warm-up, not counted: each proxy's first logins, schema discovery, the rewriter's cold path, JIT.
    const seconds = opt.seconds
    opt.seconds = 3
    for (const p of proxies) await runCase(bin, p, true, s, work)
    opt.seconds = seconds
    const results: CaseResult[] = []
    for (let round = 0; round < opt.rounds; round++) {
      const order = cases.map((_, i) => cases[(i + round) % cases.length])
      for (const [p, heavy] of order) {
        const r = await runCase(bin, p, heavy, s, work)
        log(
          `round ${round + 1}: ${p.name}, ${heavy ? 'with' : 'without'} heavy: light p50 ${percentile(r.light, 50).toFixed(2)} ms p99 ${percentile(r.light, 99).toFixed(2)} ms (${r.light.length} tx), heavy ${r.heavyTps.toFixed(0)} tps${r.ok ? '' : ` FAILED: ${r.error}`}`,
        )
        results.push(r)
      }
    }
    const loadEnd = loadavg()
    // Per case: the median over rounds of each round's p50 and p99.
    const rows: string[] = []
    const p99Of = (target: string, heavy: boolean): number =>
      median(results.filter((r) => r.target === target && r.heavy === heavy).map((r) => percentile(r.light, 99)))
    for (const p of proxies)
      for (const heavy of [false, true]) {
        const rs = results.filter((r) => r.target === p.name && r.heavy === heavy)
        const p50 = median(rs.map((r) => percentile(r.light, 50)))
        const p99 = median(rs.map((r) => percentile(r.light, 99)))
        const ratio = heavy ? p99 / p99Of(p.name, false) : NaN
        rows.push(
          `| ${p.name} | ${heavy ? 'yes' : 'no'} | ${p50.toFixed(2)} | ${p99.toFixed(2)} | ${heavy ? `${ratio.toFixed(2)}×` : ''} | ${rs.map((r) => percentile(r.light, 99).toFixed(1)).join(' / ')} | ${heavy ? median(rs.map((r) => r.heavyTps)).toFixed(0) : ''} | ${median(rs.map((r) => r.proxyCpuMsPerTx * 1000)).toFixed(0)} | ${rs.every((r) => r.ok) ? '' : 'errors'} |`,
        )
      }
    const machine = machineDescription({
      PostgreSQL: spawnSync(join(server.bin, 'postgres'), ['--version'], { encoding: 'utf8' }).stdout.trim(),
      PgBouncer: bouncerVersion,
    })
    const out = [
      `Light tenants' latency (5 tenants × 2 clients, ${opt.lightRate} tx/s per tenant, one SELECT by key) with and without a heavy tenant (${opt.heavy} clients in a tight loop, BEGIN; SELECT; pg_sleep(${opt.sleepMs} ms); SELECT; COMMIT), server pool ${opt.pool}, ${opt.rounds} rounds × ${opt.seconds} s, interleaved. Limits on: \`tenant_limits.tenants.heavy: ${opt.limits}\`.`,
      '',
      '| target | heavy tenant | light p50 ms | light p99 ms | p99 ÷ without heavy | p99 per round | heavy TPS | proxy CPU µs/tx | |',
      '|---|---|---:|---:|---:|---|---:|---:|---|',
      ...rows,
      '',
      ...Object.entries(machine).map(([k, v]) => `- ${k}: ${v}`),
      `- load average at end: ${loadEnd.map((l) => l.toFixed(2)).join(' ')} (at start ${loadStart.map((l) => l.toFixed(2)).join(' ')})`,
    ].join('\n')
    console.log(out)
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => undefined)
    rmSync(work, { recursive: true, force: true })
  }
}

main().catch((err: Error) => {
  console.error(err)
  process.exitCode = 1
})
