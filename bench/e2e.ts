// End-to-end benchmark: pgbench against PostgreSQL directly, through PgBouncer (transaction
// pooling) and through pgtenant (transaction pooling), in the same run, interleaved.
//
//   npm run bench:e2e                      # full: 3 rounds × 10 s per case; writes bench/RESULTS.md
//   npm run bench:e2e -- --quick           # 1 round × 3 s, fewer cases (under 2 minutes)
//   node dist/bench/e2e.js --quick --out /tmp/r.md
//
// Options: --rounds N, --seconds S, --clients 1,10,50,200, --tenant-shapes 5x2,5x10,50x2,500x1 (tenants × clients
// each; --tenant-clients 10,50 means 5 tenants), --rate R and --rate-clients N (the fixed-rate CPU cases, pgbench -R),
// --pool N (server pool size of both proxies), --workers N (pgtenant processes), --idle N (idle clients for the memory test),
// --only select,rate,tenant,storm,memory, --no-install (don't apt-get install pgbouncer), --node-pipe onread (the Node pipe
// reads with onread and writes with writev on the fd, pgtenant's I/O floor, instead of socket.pipe()),
// --out FILE (default bench/RESULTS.md), --baseline DIST/server/cli.js (an older pgtenant build, e.g. a
// `git worktree` of an earlier commit built with `npm run build`, run as a fifth target "pgtenant (baseline)"
// with the same configuration: an A/B of two versions in the same interleaved run).
//
// What it does: starts its own PostgreSQL (test/helpers/pg-server.ts), loads pgbench's
// tables and a multi-tenant schema (twice: in `public`, and in `rls` with FORCE ROW LEVEL
// SECURITY policies for the "PgBouncer + RLS" target), starts PgBouncer (installing Debian's package when it is
// missing) and two pgtenant child processes (a transparent pooler for pgbench -S and the
// storm, and one with `tenant: { column: tenant_id }` for the tenant workload), then runs
// every case on every target: case 1 on A, B, C, case 2 on B, C, A… and the whole list again
// each round with the target order rotated, so a noisy machine affects all targets alike.
import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawn, spawnSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import { startPostgres, type PgServer } from '../test/helpers/pg-server.js'
import { treeCpuSeconds, treeRssBytes, sleep, runCmd, withRaisedNofile, killPid } from './e2e/proc.js'
import {
  ensurePgbouncer,
  startPgbouncer,
  startPgtenant,
  startNodePipe,
  pgtenantTarget,
  directTarget,
  usable,
  isPgtenant,
  type Target,
  type PgtenantInstance,
} from './e2e/targets.js'
import { runPgbench, runPgbenchGroup, pgbenchBin, type PgbenchRun, type QueryMode, type PgbenchResult } from './e2e/pgbench.js'
import {
  machineDescription,
  resultsTable,
  memoryTable,
  rateTable,
  latencyTable,
  isolationTable,
  summarize,
  fmtTps,
  type Cell,
  type CaseRow,
  type RoundResult,
  type MemoryResult,
} from './e2e/report.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..', '..') // dist/bench → project root
const cli = join(root, 'dist', 'server', 'cli.js')

// ------------------------------------------------------------------ options

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}
function numList(s: string | undefined, dflt: number[]): number[] {
  return s
    ? s
        .split(',')
        .map(Number)
        .filter((n) => n > 0)
    : dflt
}

const quick = process.argv.includes('--quick')

/** Tenant workload shapes: [tenants, clients per tenant] (one pgbench process per tenant). */
function tenantShapes(): [number, number][] {
  const shapes = argValue('--tenant-shapes')
  if (shapes)
    return shapes.split(',').map((s) => {
      const [tenants, each] = s.split('x').map(Number)
      return [tenants, each || 1]
    })
  const clients = numList(argValue('--tenant-clients'), [])
  if (clients.length) return clients.map((n) => [Math.min(5, n), Math.max(1, Math.round(n / Math.min(5, n)))])
  return quick
    ? [[5, 2]]
    : [
        [5, 2],
        [5, 10],
        [50, 2],
        [500, 1],
      ]
}
if (process.argv.includes('--help')) {
  process.stdout.write(
    readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('//'))
      .slice(0, 20)
      .map((l) => l.slice(3))
      .join('\n') + '\n',
  )
  process.exit(0)
}
const opt = {
  rounds: Number(argValue('--rounds') ?? (quick ? 1 : 3)),
  seconds: Number(argValue('--seconds') ?? (quick ? 3 : 10)),
  clients: numList(argValue('--clients'), quick ? [10] : [1, 10, 50, 200]),
  modes: (argValue('--modes')?.split(',') ?? ['simple', 'extended', 'prepared']) as QueryMode[],
  tenantShapes: tenantShapes(),
  rate: Number(argValue('--rate') ?? (quick ? 1000 : 3000)),
  rateClients: Number(argValue('--rate-clients') ?? 10),
  rateModes: (argValue('--rate-modes')?.split(',') ?? (quick ? ['simple'] : ['simple', 'extended', 'prepared'])) as QueryMode[],
  tenantModes: (argValue('--tenant-modes')?.split(',') ?? (quick ? ['simple', 'prepared'] : ['simple', 'extended', 'prepared'])) as QueryMode[],
  stormClients: Number(argValue('--storm-clients') ?? 8),
  pool: Number(argValue('--pool') ?? 20),
  /** pgtenant `workers:` (processes) */
  workers: Number(argValue('--workers') ?? 1),
  idle: Number(argValue('--idle') ?? (quick ? 1000 : 10_000)),
  scale: Number(argValue('--scale') ?? (quick ? 1 : 10)),
  tenants: Number(argValue('--tenants') ?? (quick ? 100 : 1000)),
  accountsPerTenant: 100,
  projectsPerAccount: 5,
  only: new Set(argValue('--only')?.split(',') ?? ['select', 'rate', 'tenant', 'storm', 'memory']),
  install: !process.argv.includes('--no-install'),
  out: resolve(argValue('--out') ?? join(root, 'bench', 'RESULTS.md')),
  baseline: argValue('--baseline'),
  /** the Node pipe reference: socket.pipe() (default) or onread + writev on the fd (pgtenant's own I/O floor) */
  nodePipe: (argValue('--node-pipe') === 'onread' ? 'onread' : 'pipe') as 'pipe' | 'onread',
}
const USER = 'app'
const PASSWORD = 'app_pw'
const DB = 'bench'

const started = Date.now()
function log(s: string): void {
  process.stderr.write(`[e2e ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${s}\n`)
}

// ------------------------------------------------------------------ setup

let targets: Target[] = []
let pg: PgServer | null = null
process.once('exit', () => {
  for (const t of targets) t.kill()
})
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130))

function loadTenantSchema(server: PgServer): void {
  const T = opt.tenants
  const A = opt.accountsPerTenant
  const P = opt.projectsPerAccount
  server.sql(
    `CREATE TABLE accounts (tenant_id int NOT NULL, id int NOT NULL, name text NOT NULL, balance bigint NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, id));
     CREATE TABLE projects (tenant_id int NOT NULL, id int NOT NULL, account_id int NOT NULL, name text NOT NULL, budget int NOT NULL, PRIMARY KEY (tenant_id, id));
     CREATE INDEX projects_account ON projects (tenant_id, account_id);
     INSERT INTO accounts SELECT t, a, 'account ' || t || '-' || a, 0 FROM generate_series(1, ${T}) t, generate_series(1, ${A}) a;
     INSERT INTO projects SELECT t, (a - 1) * ${P} + k, a, 'project ' || k, 1000 * k FROM generate_series(1, ${T}) t, generate_series(1, ${A}) a, generate_series(1, ${P}) k;
     ALTER TABLE accounts OWNER TO ${USER};
     ALTER TABLE projects OWNER TO ${USER};`,
    DB,
  )
  server.sql('VACUUM ANALYZE accounts', DB)
  server.sql('VACUUM ANALYZE projects', DB)
  // The same tables and rows in schema rls, isolated by PostgreSQL itself: FORCE ROW LEVEL
  // SECURITY (the owner, app, is subject to it too), the tenant from current_setting('app.tenant'),
  // which the RLS workload sets per transaction (set_config(…, true), i.e. SET LOCAL).
  server.sql(
    `CREATE SCHEMA rls AUTHORIZATION ${USER};
     CREATE TABLE rls.accounts (LIKE public.accounts INCLUDING ALL);
     CREATE TABLE rls.projects (LIKE public.projects INCLUDING ALL);
     INSERT INTO rls.accounts SELECT * FROM public.accounts;
     INSERT INTO rls.projects SELECT * FROM public.projects;
     ALTER TABLE rls.accounts OWNER TO ${USER};
     ALTER TABLE rls.projects OWNER TO ${USER};
     ALTER TABLE rls.accounts ENABLE ROW LEVEL SECURITY;
     ALTER TABLE rls.accounts FORCE ROW LEVEL SECURITY;
     ALTER TABLE rls.projects ENABLE ROW LEVEL SECURITY;
     ALTER TABLE rls.projects FORCE ROW LEVEL SECURITY;
     CREATE POLICY tenant_isolation ON rls.accounts USING (tenant_id = current_setting('app.tenant')::int);
     CREATE POLICY tenant_isolation ON rls.projects USING (tenant_id = current_setting('app.tenant')::int);`,
    DB,
  )
  server.sql('VACUUM ANALYZE rls.accounts', DB)
  server.sql('VACUUM ANALYZE rls.projects', DB)
}

/** A fixed, spread-out set of n tenants: the same ones every run of the same size. */
function tenantSet(n = 5): number[] {
  return Array.from({ length: n }, (_, i) => 1 + Math.floor(((i + 0.37) * opt.tenants) / n))
}

// ------------------------------------------------------------------ cases

interface Case {
  workload: 'select' | 'rate' | 'tenant' | 'storm'
  label: string
  mode: QueryMode
  clients: number
  /** tenant workload: tenants (one pgbench process each) and clients per tenant */
  tenants?: number
  perTenant?: number
  /** rate: pgbench -R (transactions per second, all clients together) */
  rate?: number
}

function buildCases(): Case[] {
  const cases: Case[] = []
  if (opt.only.has('select'))
    for (const mode of opt.modes) for (const clients of opt.clients) cases.push({ workload: 'select', label: 'pgbench -S', mode, clients })
  if (opt.only.has('rate'))
    for (const mode of opt.rateModes) cases.push({ workload: 'rate', label: `pgbench -S -R ${opt.rate}`, mode, clients: opt.rateClients, rate: opt.rate })
  if (opt.only.has('tenant'))
    for (const mode of opt.tenantModes)
      for (const [tenants, perTenant] of opt.tenantShapes)
        cases.push({
          workload: 'tenant',
          label: `tenant join + UPDATE, ${tenants} tenants × ${perTenant}`,
          mode,
          clients: tenants * perTenant,
          tenants,
          perTenant,
        })
  if (opt.only.has('storm')) cases.push({ workload: 'storm', label: 'connect storm (-C -S)', mode: 'simple', clients: opt.stormClients })
  return cases
}

/** Whether target t runs case c: the Node pipe only pgbench -S, PgBouncer + RLS only the tenant workload, direct no fixed-rate CPU case. */
function runsCase(c: Case, t: Target): boolean {
  if (t.name === 'Node pipe') return c.workload === 'select' || c.workload === 'rate'
  if (t.name === 'PgBouncer + RLS') return c.workload === 'tenant'
  if (t.name === 'direct') return c.workload !== 'rate'
  return true
}

function pgbenchRuns(c: Case, t: Target): PgbenchRun[] {
  const base = { user: USER, password: PASSWORD, database: DB, mode: c.mode, seconds: opt.seconds }
  if (c.workload === 'select') return [{ ...base, port: t.port, clients: c.clients, threads: 2, script: '-S' }]
  if (c.workload === 'rate') return [{ ...base, port: t.port, clients: c.clients, threads: 2, script: '-S', rate: c.rate }]
  if (c.workload === 'storm') return [{ ...base, port: t.port, clients: c.clients, threads: 2, script: '-S', reconnect: true }]
  // Tenant workload: one pgbench process per tenant, perTenant clients each.
  // -M prepared gets a thread per client: pgbench prepares with a blocking call, and a thread
  // blocked on one client while its other clients hold open transactions (and so every
  // server connection of a transaction pool) deadlocks any transaction pooler.
  const clients = c.perTenant ?? 1
  return tenantSet(c.tenants).map((tenant) => {
    const defines = { accounts: String(opt.accountsPerTenant), tenant: String(tenant) }
    const threads = c.mode === 'prepared' ? clients : 1
    if (isPgtenant(t))
      return {
        ...base,
        port: t.tenantPort,
        clients,
        threads,
        script: join(root, 'bench', 'tenant-workload.sql'),
        defines,
        env: { PGOPTIONS: `-c app.tenant=${tenant}` },
      }
    const script = t.name === 'PgBouncer + RLS' ? join(root, 'bench', 'e2e', 'tenant-workload-rls.sql') : join(root, 'bench', 'tenant-workload-filtered.sql')
    return { ...base, port: t.tenantPort, clients, threads, script, defines }
  })
}

function postmasterPid(server: PgServer): number {
  return Number(readFileSync(join(server.dataDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])
}

async function measure(c: Case, t: Target, bin: string, work: string, pmPid: number): Promise<RoundResult> {
  const proxyPid = t.proxyPid(c.workload === 'tenant' ? 'tenant' : 'plain')
  const runs = pgbenchRuns(c, t)
  const cpu0 = proxyPid ? treeCpuSeconds(proxyPid) : null
  const pg0 = treeCpuSeconds(pmPid)
  const r: PgbenchResult = runs.length === 1 ? await runPgbench(bin, runs[0], work) : await runPgbenchGroup(bin, runs, work)
  const cpu1 = proxyPid ? treeCpuSeconds(proxyPid) : null
  const pg1 = treeCpuSeconds(pmPid)
  return {
    ok: r.ok,
    error: r.error,
    command: r.command,
    tps: r.tps,
    transactions: r.transactions,
    proxyCpu: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0,
    pgCpu: pg1 - pg0,
    latencies: r.latencies,
  }
}

/** Two instances of the pgtenant at `cliPath`: a transparent pooler and one with the tenant section, configured alike. */
function startPgtenantPair(cliPath: string, server: PgServer, verifier: string, maxClients: number): Promise<[PgtenantInstance, PgtenantInstance]> {
  const common = {
    cli: cliPath,
    pgPort: server.port,
    database: DB,
    user: USER,
    secret: verifier,
    backendPassword: PASSWORD,
    poolSize: opt.pool,
    maxClients,
    workers: opt.workers,
  }
  return Promise.all([startPgtenant({ ...common, tenant: false }), startPgtenant({ ...common, tenant: true })])
}

/** An older pgtenant build (`--baseline`), configured exactly as the current one. */
async function startBaseline(baselineCli: string, server: PgServer, verifier: string, maxClients: number): Promise<Target> {
  const baseRoot = resolve(dirname(baselineCli), '..', '..')
  const rev = spawnSync('git', ['-C', baseRoot, 'describe', '--always', '--dirty'], { encoding: 'utf8' }).stdout.trim() || baselineCli
  const [plain, tenant] = await startPgtenantPair(resolve(baselineCli), server, verifier, maxClients)
  const t = pgtenantTarget(plain, tenant, `pgtenant ${rev} (baseline)`, 'pgtenant (baseline)')
  log(t.available ? `baseline pgtenant ${rev} on ports ${t.port} and ${t.tenantPort}` : `baseline unavailable: ${t.reason}`)
  return t
}

// ------------------------------------------------------------------ memory

interface HolderEvent {
  event: string
  open?: number
  failed?: number
  errors?: Record<string, number>
  ms?: number
  checked?: number
  answered?: number
  error?: string
}

async function idleMemory(t: Target, count: number): Promise<MemoryResult> {
  const workload = usable(t, 'tenant') ? 'tenant' : 'plain'
  const pid = t.proxyPid(workload)
  const res: MemoryResult = { target: t.name, requested: count }
  if (!pid) return { ...res, error: `${t.name}: not running` }
  const port = workload === 'tenant' ? t.tenantPort : t.port
  // pgtenant's tenant instance gets each client's tenant as a startup option, as apps do;
  // PgBouncer 1.18 rejects the `options` startup parameter, so its clients send none.
  const tenants = isPgtenant(t) && workload === 'tenant' ? tenantSet().map(String) : undefined
  const holderArgs = JSON.stringify({ port, user: USER, password: PASSWORD, database: DB, count, concurrency: 64, tenants, timeoutMs: 240_000 })
  await sleep(500)
  res.rssBefore = treeRssBytes(pid)
  const [file, args] = withRaisedNofile(process.execPath, [join(here, 'e2e', 'idle-clients.js'), holderArgs])
  const holder = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  holder.stderr.on('data', (d) => (stderr += d))
  const events = createInterface({ input: holder.stdout })
  const waiters: ((e: HolderEvent) => void)[] = []
  events.on('line', (line) => {
    try {
      const e = JSON.parse(line) as HolderEvent
      waiters.shift()?.(e)
    } catch {
      /* not ours */
    }
  })
  const next = (ms: number): Promise<HolderEvent | null> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), ms)
      waiters.push((e) => {
        clearTimeout(timer)
        resolve(e)
      })
      holder.once('exit', () => resolve(null))
    })
  try {
    const ready = await next(300_000)
    if (!ready || ready.event !== 'ready')
      return { ...res, error: `${t.name}: idle-client holder failed: ${ready?.error ?? stderr.slice(0, 300) ?? 'no answer'}` }
    res.opened = ready.open
    res.failed = ready.failed
    res.openSeconds = (ready.ms ?? 0) / 1000
    if (ready.failed) res.error = `${t.name}: ${ready.failed} of ${count} idle connections failed: ${JSON.stringify(ready.errors)}`
    await sleep(1000)
    res.rssWith = treeRssBytes(pid)
    holder.stdin.write('check\n')
    const checked = await next(60_000)
    res.checked = checked?.event === 'checked' ? `${checked.answered}/${checked.checked} answered` : 'no answer'
    holder.stdin.write('close\n')
    await next(30_000)
    await sleep(2000)
    res.rssAfterClose = treeRssBytes(pid)
    return res
  } finally {
    killPid(holder.pid, 'SIGKILL')
  }
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const cases = buildCases()
  log(`${quick ? 'quick' : 'full'} run: ${opt.rounds} round(s) × ${opt.seconds} s, ${cases.length} cases; output ${opt.out}`)
  pg = await startPostgres({ conf: ['max_connections = 600', 'shared_buffers = 128MB', 'log_min_messages = fatal', 'log_connections = off'] })
  const server = pg
  const pgVersion = spawnSync(join(server.bin, 'postgres'), ['--version'], { encoding: 'utf8' }).stdout.trim()
  log(`${pgVersion} on port ${server.port}`)
  server.sql(`SET password_encryption = 'scram-sha-256'; CREATE ROLE ${USER} LOGIN PASSWORD '${PASSWORD}';`)
  server.sql(`CREATE DATABASE ${DB} OWNER ${USER}`)
  const verifier = server.sql(`SELECT rolpassword FROM pg_authid WHERE rolname = '${USER}'`)
  const bin = pgbenchBin(server.bin)
  const init = await runCmd(bin, ['-i', '-q', '-s', String(opt.scale), `postgresql://${USER}:${PASSWORD}@127.0.0.1:${server.port}/${DB}`], {
    timeoutMs: 600_000,
  })
  if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`)
  loadTenantSchema(server)
  log(`loaded pgbench scale ${opt.scale} and ${opt.tenants} tenants × ${opt.accountsPerTenant} accounts × ${opt.projectsPerAccount} projects`)

  const direct = directTarget(server.port, pgVersion)
  const maxClients = Math.max(opt.idle + 200, 1000)
  const bouncerBin = ensurePgbouncer(log, opt.install)
  const bouncer: Target = bouncerBin.bin
    ? await startPgbouncer({ bin: bouncerBin.bin, pgPort: server.port, database: DB, user: USER, secret: verifier, poolSize: opt.pool, maxClients })
    : {
        name: 'PgBouncer',
        available: false,
        reason: bouncerBin.reason,
        port: 0,
        tenantPort: 0,
        proxyPid: () => null,
        prepared: false,
        version: 'not installed',
        stop: async () => {},
        kill: () => {},
      }
  log(bouncer.available ? `${bouncer.version} on port ${bouncer.port} (open files limit ${bouncer.nofile})` : `PgBouncer unavailable: ${bouncer.reason}`)

  const gitRev = spawnSync('git', ['-C', root, 'describe', '--always', '--dirty'], { encoding: 'utf8' }).stdout.trim() || '?'
  let tenantTarget: Target
  if (!existsSync(cli)) {
    tenantTarget = {
      name: 'pgtenant',
      available: false,
      reason: `${cli} not built (npm run build)`,
      port: 0,
      tenantPort: 0,
      proxyPid: () => null,
      prepared: true,
      version: gitRev,
      stop: async () => {},
      kill: () => {},
    }
  } else {
    const [plain, tenant] = await startPgtenantPair(cli, server, verifier, maxClients)
    tenantTarget = pgtenantTarget(plain, tenant, `pgtenant ${gitRev}${opt.workers > 1 ? `, workers: ${opt.workers}` : ''}`)
  }
  log(
    tenantTarget.available
      ? `pgtenant on ports ${tenantTarget.port} (transparent) and ${tenantTarget.tenantPort} (tenant) (open files limit ${tenantTarget.nofile})`
      : `pgtenant unavailable: ${tenantTarget.reason}`,
  )
  if (tenantTarget.reason && tenantTarget.available) log(`pgtenant partly unavailable: ${tenantTarget.reason}`)
  const pipe = await startNodePipe(join(here, 'e2e', 'node-pipe.js'), server.port, opt.nodePipe)
  log(pipe.available ? `Node pipe (reference) on port ${pipe.port}` : `Node pipe unavailable: ${pipe.reason}`)
  // PgBouncer again, for the tenant workload isolated by row-level security instead (same process).
  const rls: Target = { ...bouncer, name: 'PgBouncer + RLS', stop: async () => {}, kill: () => {} }
  targets = [direct, bouncer, tenantTarget, pipe, ...(opt.only.has('tenant') ? [rls] : [])]
  if (opt.baseline) targets.push(await startBaseline(opt.baseline, server, verifier, maxClients))
  const names = targets.map((t) => t.name)

  const work = mkdtempSync(join(tmpdir(), 'pgtenant-bench-work-'))
  const pmPid = postmasterPid(server)
  const failures: string[] = []
  const footnotes: string[] = []

  // Warm-up, not recorded: each target's pools, caches and JIT get a short run first.
  for (const t of targets) {
    if (!usable(t, 'plain') || t.name === 'PgBouncer + RLS') continue
    const w = await runPgbench(
      bin,
      {
        port: t.port,
        user: USER,
        password: PASSWORD,
        database: DB,
        clients: 10,
        threads: 2,
        mode: t.prepared ? 'prepared' : 'simple',
        seconds: quick ? 1 : 3,
        script: '-S',
      },
      work,
    )
    if (!w.ok) log(`warm-up on ${t.name} failed: ${w.error}`)
  }

  // Interleaved rounds: every case on every target in turn, target order rotated per round.
  const cells = new Map<string, Map<string, Cell>>()
  const key = (c: Case): string => `${c.label}/${c.mode}/${c.clients}`
  for (const c of cases) {
    const m = new Map<string, Cell>()
    for (const t of targets) {
      const wl = c.workload === 'tenant' ? 'tenant' : 'plain'
      if (!runsCase(c, t)) continue // the Node pipe: pgbench -S only; PgBouncer + RLS: the tenant workload only
      if (!usable(t, wl)) m.set(t.name, { status: 'unavailable', note: `${t.name} unavailable: ${t.reason ?? 'not running'}`, rounds: [] })
      else if (c.mode === 'prepared' && !t.prepared)
        m.set(t.name, {
          status: 'n/a',
          note: `${t.version} has no protocol-level prepared statements under transaction pooling (max_prepared_statements came in 1.21)`,
          rounds: [],
        })
      else m.set(t.name, { status: 'ok', rounds: [] })
    }
    cells.set(key(c), m)
  }
  const totalRuns = opt.rounds * cases.reduce((n, c) => n + [...cells.get(key(c))!.values()].filter((x) => x.status === 'ok').length, 0)
  const runnable = (c: Case): Target[] => targets.filter((t) => cells.get(key(c))!.has(t.name))
  let runNo = 0
  for (let round = 0; round < opt.rounds; round++) {
    for (const [ci, c] of cases.entries()) {
      const caseTargets = runnable(c)
      const k = (round + ci) % caseTargets.length
      const order = [...caseTargets.slice(k), ...caseTargets.slice(0, k)]
      for (const t of order) {
        const cell = cells.get(key(c))!.get(t.name)!
        if (cell.status !== 'ok' && cell.status !== 'failed') continue
        runNo++
        const r = await measure(c, t, bin, work, pmPid)
        cell.rounds.push(r)
        if (!r.ok) {
          cell.status = 'failed'
          const msg = `${t.name}, ${c.label} -M ${c.mode} ${c.clients} clients, round ${round + 1}: \`${r.command}\` → ${r.error}`
          cell.note = msg
          failures.push(msg)
          if (t.logTail) {
            const tailText = t.logTail()
            if (tailText) failures.push(`${t.name} log tail:\n\n\`\`\`\n${tailText}\n\`\`\``)
          }
        }
        log(
          `[${runNo}/${totalRuns}] round ${round + 1} ${c.label} -M ${c.mode} c=${c.clients} ${t.name}: ${r.ok ? `${fmtTps(r.tps)} tps` : `FAILED ${r.error?.slice(0, 200)}`}`,
        )
        await sleep(200)
      }
    }
  }
  rmSync(work, { recursive: true, force: true })

  // Memory: idle clients held open (pgtenant, and PgBouncer for comparison).
  const memory: MemoryResult[] = []
  if (opt.only.has('memory')) {
    for (const t of [tenantTarget, bouncer]) {
      if (!t.available) {
        memory.push({ target: t.name, requested: opt.idle, error: `${t.name} unavailable: ${t.reason}` })
        continue
      }
      log(`memory: ${opt.idle} idle clients against ${t.name}…`)
      const m = await idleMemory(t, opt.idle)
      memory.push(m)
      if (m.error) failures.push(`memory, ${m.error}`)
      log(
        `memory ${t.name}: ${m.opened ?? 0} open, RSS ${((m.rssBefore ?? 0) / 2 ** 20).toFixed(1)} → ${((m.rssWith ?? 0) / 2 ** 20).toFixed(1)} MB${m.error ? ` (${m.error.slice(0, 200)})` : ''}`,
      )
    }
  }

  const machine = machineDescription({
    postgres: pgVersion,
    pgbench: spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim(),
    pgbouncer: bouncer.available ? bouncer.version : `unavailable: ${bouncer.reason}`,
    pgtenant: tenantTarget.version,
  })
  const rowOf = (c: Case): CaseRow => ({ workload: c.label, mode: c.mode, clients: c.clients, cells: cells.get(key(c))! })
  // The main table: saturated runs; PgBouncer + RLS appears in the isolation table, the fixed-rate runs in their own.
  const rows: CaseRow[] = cases.filter((c) => c.workload !== 'rate').map(rowOf)
  const table = resultsTable(
    rows,
    names.filter((n) => n !== 'PgBouncer + RLS'),
    footnotes,
  )
  const selectRows = cases.filter((c) => c.workload === 'select').map(rowOf)
  const rateRows = cases.filter((c) => c.workload === 'rate').map(rowOf)
  const tenantRows = cases.filter((c) => c.workload === 'tenant').map(rowOf)
  const oneClient = selectRows.filter((r) => r.clients === 1)
  const extraTables = [
    ...(rateRows.length ? ['## CPU per transaction at a fixed rate', '', rateTable(rateRows, selectRows, names), ''] : []),
    ...(oneClient.length ? ['## Added latency at one client', '', latencyTable(oneClient, names), ''] : []),
    ...(tenantRows.length ? ['## The same isolation three ways', '', isolationTable(tenantRows), ''] : []),
  ]
  const memTable = opt.only.has('memory') ? memoryTable(memory, footnotes) : ''
  const elapsed = (Date.now() - started) / 1000
  const md = [
    '# End-to-end benchmark results',
    '',
    `Produced by \`node dist/bench/e2e.js ${process.argv.slice(2).join(' ')}\` (\`npm run bench:e2e\`) on ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}, in ${elapsed.toFixed(0)} s.`,
    "Ratios are TPS ratios measured in the same run: on pgtenant's rows pgtenant ÷ PgBouncer and pgtenant ÷ direct, on PgBouncer's rows PgBouncer ÷ direct, on the Node pipe's rows Node pipe ÷ PgBouncer and ÷ direct.",
    '',
    '## Machine',
    '',
    ...Object.entries({
      ...machine,
      'load average at end': loadavg()
        .map((l) => l.toFixed(2))
        .join(' '),
    }).map(([k, v]) => `- ${k}: ${v}`),
    '',
    '## Settings',
    '',
    `- ${opt.rounds} round(s) × ${opt.seconds} s per case and target, interleaved: each case runs on every target in turn, the target order rotated from case to case and round to round; TPS is the mean over rounds, "TPS spread" is (max − min) ÷ mean over rounds.`,
    `- Server pool size ${opt.pool} for both PgBouncer (\`default_pool_size\`) and pgtenant (\`backends.main.pool\`), transaction pooling, SCRAM-SHA-256 client authentication on every target (the proxies hold the role's SCRAM verifier).`,
    `- Node pipe (pgbench -S only): a reference, not a pooler: \`bench/e2e/node-pipe.ts\`, a Node.js process that connects each client to PostgreSQL and copies bytes both ways ${opt.nodePipe === 'pipe' ? 'with `socket.pipe()`' : "reading with `onread` into one reused buffer and writing with writev on the descriptor (`--node-pipe onread`: the floor of pgtenant's own I/O path)"}, parsing nothing (one server connection per client). It shows what one Node.js thread costs per socket event before any proxy logic.`,
    `- \`pgbench -S\`: pgbench_accounts at scale ${opt.scale}, \`-j 2\`. Latency average and p99 come from pgbench's per-transaction log (\`--log\`), all rounds merged. A warm-up run on each target precedes the measurements.`,
    `- Tenant workload: ${opt.tenants} tenants × ${opt.accountsPerTenant} accounts × ${opt.projectsPerAccount} projects, account and project ids overlapping between tenants. One pgbench process per tenant runs at once (\`-j 1\`; \`-M prepared\`: a thread per client), "N tenants × k" meaning N processes of k clients each, the tenants spread over the id range (5 tenants: ${tenantSet().join(', ')}). Through pgtenant: \`bench/tenant-workload.sql\` (no tenant filter) with \`PGOPTIONS='-c app.tenant=N'\`, pgtenant adds the filter. Direct and through PgBouncer: \`bench/tenant-workload-filtered.sql\`, the same statements with \`tenant_id = :tenant\` on every table (\`-D tenant=N\`). Through "PgBouncer + RLS" (the same PgBouncer): \`bench/e2e/tenant-workload-rls.sql\`, the unfiltered statements on a copy of the tables in schema \`rls\` with FORCE ROW LEVEL SECURITY and the policy \`tenant_id = current_setting('app.tenant')::int\`, the tenant set per transaction by \`SELECT set_config('app.tenant', :tenant::text, true)\` (SET LOCAL; one statement more per transaction). Each transaction: BEGIN, a two-table join with GROUP BY, an UPDATE, END.`,
    `- Fixed rate (\`pgbench -S -R ${opt.rate}\`, ${opt.rateClients} clients): every target gets the same transactions per second, so the proxy's CPU per transaction compares work, not how busy the machine was; saturated TPS of the same case comes from the \`pgbench -S\` rows.`,
    `- Connection storm: \`pgbench -C -S\` with ${opt.stormClients} clients: a new connection (with SCRAM authentication) for every transaction.`,
    `- CPU: utime + stime from /proc/PID/stat of the proxy's process tree (and of the PostgreSQL postmaster with its backends, including exited ones), before and after each run, divided by the transactions of the run.`,
    `- Memory: ${opt.idle.toLocaleString('en-US')} client connections opened (startup and SCRAM authentication over raw sockets, \`bench/e2e/idle-clients.ts\`) and held idle; RSS is VmRSS from /proc/PID/status of the proxy process. pgtenant's clients send \`options=-c app.tenant=N\`; PgBouncer's none (1.18 refuses the \`options\` startup parameter).`,
    '',
    '## Results',
    '',
    table,
    '',
    ...extraTables,
    ...(memTable ? ['## Idle clients (memory)', '', memTable, ''] : []),
    ...(footnotes.length ? ['## Notes', '', ...footnotes.map((f, i) => `${i + 1}. ${f.replace(/\n/g, ' ')}`), ''] : []),
    ...(failures.length ? ['## Failures', '', ...failures.map((f) => (f.includes('```') ? f : `- ${f}`)), ''] : []),
  ].join('\n')
  process.stdout.write(
    '\n' + table + '\n\n' + extraTables.join('\n') + '\n' + (memTable ? memTable + '\n\n' : '') + footnotes.map((f, i) => `[${i + 1}] ${f}`).join('\n') + '\n',
  )
  writeFileSync(opt.out, md)
  log(`wrote ${opt.out}`)

  await Promise.all(targets.map((t) => t.stop()))
  targets = []
  server.stop()
  // A sanity summary for callers: direct must have produced numbers.
  const directOk = rows.some((r) => r.cells.get('direct')?.status === 'ok' && summarize(r.cells.get('direct')!.rounds))
  if (!directOk && cases.length) {
    log('no successful run against PostgreSQL directly: the benchmark itself is broken')
    process.exit(1)
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    log(`error: ${(err as Error)?.stack ?? err}`)
    process.exit(1)
  },
)
