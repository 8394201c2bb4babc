// Worker-direct benchmark on a real Citus cluster (issue 20): the tenant workload through pgtenant
// routed straight to the worker holding each tenant's shard, against the same workload through the
// coordinator (pgtenant with worker routing off, and PgBouncer in front of the coordinator), same
// run, interleaved.
//
//   test/citus/cluster.sh start && test/citus/cluster.sh adddb bench
//   PGTENANT_CITUS_URL=postgres://pgtenant:pgtenant@127.0.0.1:PORT/bench node dist/bench/citus/bench.js
//
// Options: --rounds N (3), --seconds S (10), --clients 8,32, --tenants N (8), --mode simple|extended|prepared
// (extended), --pool N (8: pgtenant's pool per worker when routing to workers), --coordinator-pool N
// (pool of pgtenant and PgBouncer in front of the coordinator; default --pool × workers, so that both
// paths may hold as many server connections). Prints a Markdown report (bench/RESULTS.md, "Citus").
//
// The database the URL names is used for the benchmark's own tables (accounts, projects: dropped and
// created again), distributed by tenant_id. The workload is bench/tenant-workload.sql (through pgtenant,
// no tenant filter: pgtenant adds it) and bench/tenant-workload-filtered.sql (through PgBouncer: the same
// statements with the tenant filter written out): BEGIN, a two-table join with GROUP BY, an UPDATE, END.
// One pgbench process per tenant, the clients split evenly among them. Each round runs every target
// once, in an order rotated from round to round.
import { mkdtempSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs'
import { tmpdir, cpus, loadavg } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawn } from 'node:child_process'
import pg from 'pg'
import { freePort } from '../../test/helpers/pg-server.js'
import { findPgbouncer, pgbouncerVersion, startPgbouncer } from '../e2e/targets.js'
import { runPgbenchGroup, percentile, type PgbenchRun, type QueryMode } from '../e2e/pgbench.js'
import { waitForPort, killPid, sleep } from '../e2e/proc.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..', '..', '..') // dist/bench/citus → project root
const cli = join(root, 'dist', 'server', 'cli.js')

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : dflt
}
const opt = {
  rounds: Number(arg('--rounds', '3')),
  seconds: Number(arg('--seconds', '10')),
  clients: arg('--clients', '8,32').split(',').map(Number),
  tenants: Number(arg('--tenants', '8')),
  mode: arg('--mode', 'extended') as QueryMode,
  pool: Number(arg('--pool', '8')),
  /** server pool of the coordinator targets (default: --pool × the number of workers, the connections the worker route may hold) */
  coordinatorPool: Number(arg('--coordinator-pool', '0')),
  accounts: 100,
  projects: 5,
}
const USER = 'bench'
const PASSWORD = 'bench_pw'

const url = process.env.PGTENANT_CITUS_URL
if (!url) {
  console.error('PGTENANT_CITUS_URL (a Citus coordinator database) is not set: see the header of bench/citus/bench.ts')
  process.exit(2)
}
const u = new URL(url)
const coord = { port: Number(u.port || 5432), database: u.pathname.slice(1), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) }

function log(s: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`)
}

async function load(): Promise<Map<number, string>> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  const T = opt.tenants
  const A = opt.accounts
  const P = opt.projects
  await c.query(`DROP TABLE IF EXISTS projects, accounts`)
  await c.query(`CREATE TABLE accounts (tenant_id int NOT NULL, id int NOT NULL, name text NOT NULL, balance bigint NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, id));
     CREATE TABLE projects (tenant_id int NOT NULL, id int NOT NULL, account_id int NOT NULL, name text NOT NULL, budget int NOT NULL, PRIMARY KEY (tenant_id, id));
     CREATE INDEX projects_account ON projects (tenant_id, account_id)`)
  await c.query(`SELECT create_distributed_table('accounts', 'tenant_id')`)
  await c.query(`SELECT create_distributed_table('projects', 'tenant_id', colocate_with => 'accounts')`)
  await c.query(`INSERT INTO accounts SELECT t, a, 'account ' || t || '-' || a, 0 FROM generate_series(1, ${T}) t, generate_series(1, ${A}) a`)
  await c.query(
    `INSERT INTO projects SELECT t, (a - 1) * ${P} + k, a, 'project ' || k, 1000 * k FROM generate_series(1, ${T}) t, generate_series(1, ${A}) a, generate_series(1, ${P}) k`,
  )
  await c.query(`VACUUM ANALYZE accounts`)
  await c.query(`VACUUM ANALYZE projects`)
  const where = new Map<number, string>()
  for (let t = 1; t <= T; t++) {
    const r = await c.query(
      `SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) WHERE p.shardid = get_shard_id_for_distribution_column('accounts', $1::int)`,
      [t],
    )
    where.set(t, String(r.rows[0].nodeport))
  }
  await c.end()
  return where
}

interface Target {
  name: string
  port: number
  /** pgtenant: the workload without tenant filter and the tenant in PGOPTIONS; else the filtered script */
  rewrites: boolean
  stop(): Promise<void>
}

async function startPgtenant(name: string, citus: boolean, dir: string, pool: number): Promise<Target> {
  const port = await freePort()
  const cfg = join(dir, `${citus ? 'workers' : 'coordinator'}.yaml`)
  writeFileSync(
    cfg,
    [
      `listen: 127.0.0.1:${port}`,
      'log_level: warn',
      'users:',
      `  ${USER}: { password: ${JSON.stringify(PASSWORD)} }`,
      'tenant: { setting: app.tenant, column: tenant_id, unknown: reject }',
      'backends:',
      `  citus: { url: ${JSON.stringify(url)}, citus: ${citus}, pool: ${pool} }`,
      'pool: { mode: transaction, wait_timeout_ms: 60000 }',
      '',
    ].join('\n'),
  )
  const logPath = join(dir, `${citus ? 'workers' : 'coordinator'}.log`)
  const out = openSync(logPath, 'a')
  const child = spawn(process.execPath, [cli, '--config', cfg], { stdio: ['ignore', out, out] })
  closeSync(out)
  if (!(await waitForPort(port, child, 30_000))) throw new Error(`${name} did not start: see ${logPath}`)
  return {
    name,
    port,
    rewrites: true,
    async stop() {
      killPid(child.pid, 'SIGTERM')
      await sleep(300)
    },
  }
}

function runsFor(t: Target, clients: number): PgbenchRun[] {
  const tenants = Array.from({ length: Math.min(opt.tenants, clients) }, (_, i) => i + 1)
  return tenants.map((tenant, i) => {
    const n = Math.floor(clients / tenants.length) + (i < clients % tenants.length ? 1 : 0)
    const base = {
      port: t.port,
      user: t.rewrites ? USER : coord.user,
      password: t.rewrites ? PASSWORD : coord.password,
      database: coord.database,
      clients: n,
      threads: opt.mode === 'prepared' ? n : 1,
      mode: opt.mode,
      seconds: opt.seconds,
      defines: { accounts: String(opt.accounts), tenant: String(tenant) },
    }
    return t.rewrites
      ? { ...base, script: join(root, 'bench', 'tenant-workload.sql'), env: { PGOPTIONS: `-c app.tenant=${tenant}` } }
      : { ...base, script: join(root, 'bench', 'tenant-workload-filtered.sql') }
  })
}

interface Cell {
  tps: number[]
  latencies: Float64Array[]
  errors: string[]
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'pgtenant-bench-citus-'))
  log(`loading ${opt.tenants} tenants × ${opt.accounts} accounts × ${opt.projects} projects into ${coord.database}`)
  const placement = await load()
  const workers = new Set(placement.values()).size
  const coordinatorPool = opt.coordinatorPool || opt.pool * workers
  const targets: Target[] = [
    await startPgtenant('pgtenant → workers', true, work, opt.pool),
    await startPgtenant('pgtenant → coordinator', false, work, coordinatorPool),
  ]
  const bouncerBin = findPgbouncer()
  let bouncerNote = 'PgBouncer: not installed, not measured'
  if (bouncerBin) {
    const b = await startPgbouncer({
      bin: bouncerBin,
      pgPort: coord.port,
      database: coord.database,
      user: coord.user,
      secret: coord.password,
      poolSize: opt.pool,
      maxClients: 500,
    })
    if (b.available) {
      targets.push({ name: 'PgBouncer → coordinator', port: b.port, rewrites: false, stop: () => b.stop() })
      bouncerNote = `PgBouncer: ${pgbouncerVersion(bouncerBin)}, transaction pooling, pool ${coordinatorPool}`
    } else bouncerNote = `PgBouncer did not start: ${b.reason}`
  }
  const cells = new Map<string, Cell>()
  const key = (t: Target, c: number) => `${t.name}|${c}`
  try {
    // warm-up: every target once (plans, pools, metadata)
    for (const t of targets)
      await runPgbenchGroup(
        'pgbench',
        runsFor(t, opt.clients[0]).map((r) => ({ ...r, seconds: 2 })),
        work,
      )
    for (let round = 0; round < opt.rounds; round++)
      for (const clients of opt.clients)
        for (let k = 0; k < targets.length; k++) {
          const t = targets[(k + round) % targets.length]
          const r = await runPgbenchGroup('pgbench', runsFor(t, clients), work)
          const cell = cells.get(key(t, clients)) ?? { tps: [], latencies: [], errors: [] }
          if (r.ok) {
            cell.tps.push(r.tps)
            cell.latencies.push(r.latencies)
          } else cell.errors.push(r.error ?? '?')
          cells.set(key(t, clients), cell)
          log(`round ${round + 1}, ${clients} clients, ${t.name}: ${r.ok ? `${r.tps.toFixed(0)} tps` : r.error}`)
        }
  } finally {
    for (const t of targets) await t.stop()
    rmSync(work, { recursive: true, force: true })
  }
  const onWorker = new Map<string, number[]>()
  for (const [t, p] of placement) onWorker.set(p, [...(onWorker.get(p) ?? []), t])
  const lines = [
    `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), shared; load average at the end ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}. Cluster: test/citus/cluster.sh (Citus 13.2.2, PostgreSQL 15.20, coordinator + 2 workers on this machine, fsync off).`,
    `Workload: ${opt.tenants} tenants × ${opt.accounts} accounts × ${opt.projects} projects, distributed by tenant_id (32 shards; tenants per worker port: ${[
      ...onWorker,
    ]
      .map(([p, ts]) => `${p}: ${ts.join(', ')}`)
      .join(
        '; ',
      )}). pgbench -M ${opt.mode}, one process per tenant, ${opt.rounds} rounds × ${opt.seconds} s per target and client count, targets interleaved (order rotated each round). Server pools: pgtenant → workers ${opt.pool} per worker, the coordinator targets ${coordinatorPool}. ${bouncerNote}.`,
    '',
    '| clients | target | TPS (median of rounds) | rounds | latency avg ms | p99 ms | × pgtenant → coordinator |',
    '|---|---|---|---|---|---|---|',
  ]
  for (const clients of opt.clients) {
    const base = median(cells.get(`pgtenant → coordinator|${clients}`)?.tps ?? [])
    for (const t of targets) {
      const cell = cells.get(key(t, clients))
      if (!cell || cell.tps.length === 0) {
        lines.push(`| ${clients} | ${t.name} | failed: ${cell?.errors[0] ?? 'not run'} | 0 | | | |`)
        continue
      }
      const all = Float64Array.from(cell.latencies.flatMap((l) => [...l])).sort()
      const avg = all.reduce((a, b) => a + b, 0) / Math.max(1, all.length)
      const tps = median(cell.tps)
      lines.push(
        `| ${clients} | ${t.name} | ${tps.toFixed(0)} (${cell.tps.map((x) => x.toFixed(0)).join(', ')}) | ${cell.tps.length}${cell.errors.length ? ` (+${cell.errors.length} failed)` : ''} | ${avg.toFixed(2)} | ${percentile(all, 99).toFixed(2)} | ${base ? (tps / base).toFixed(2) : '?'} |`,
      )
    }
  }
  process.stdout.write(lines.join('\n') + '\n')
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

await main()
