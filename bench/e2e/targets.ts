// The targets of the end-to-end benchmark: PostgreSQL itself ("direct"), Debian's
// PgBouncer in transaction mode, and pgtenant as a child process (`node dist/server/cli.js
// --config FILE`), each on 127.0.0.1 with the same server pool size; plus, for pgbench -S
// only, a bare Node.js socket pipe as a reference (bench/e2e/node-pipe.ts).
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync, readFileSync, existsSync, chownSync, openSync, closeSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../../test/helpers/pg-server.js'
import { waitForPort, findInTree, killPid, withRaisedNofile, sleep, nofileLimit } from './proc.js'

export type TargetName = 'direct' | 'PgBouncer' | 'PgBouncer + RLS' | 'pgtenant' | 'pgtenant (baseline)' | 'Node pipe'

/** pgtenant, or an older build of it started with `--baseline` for an A/B in the same run. */
export function isPgtenant(t: { name: TargetName }): boolean {
  return t.name === 'pgtenant' || t.name === 'pgtenant (baseline)'
}

export interface Target {
  name: TargetName
  /** false when it could not be installed or started; reason says why */
  available: boolean
  reason?: string
  /** port for the plain (select-only, storm) workloads */
  port: number
  /** port for the tenant workload (pgtenant: a second instance with the tenant section) */
  tenantPort: number
  /** pid whose process tree is the proxy (null for direct) */
  proxyPid(workload: 'plain' | 'tenant'): number | null
  /** -M prepared works under transaction pooling */
  prepared: boolean
  version: string
  /** open-files limit of the proxy process */
  nofile?: number | null
  /** last lines of the proxy's log, for failure reports */
  logTail?: () => string
  /** stop the proxy processes (SIGTERM, SIGKILL after 3 s) and remove their files */
  stop(): Promise<void>
  /** synchronous last resort at process exit: SIGKILL */
  kill(): void
}

const isRoot = process.getuid?.() === 0

function postgresIds(): { uid: number; gid: number } | null {
  if (!isRoot) return null
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  }
}

function tail(path: string, n = 15): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-n).join('\n')
  } catch {
    return ''
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

/** SIGTERM the given pids, wait for the child to exit (SIGKILL after 3 s), remove dir. */
async function stopChild(child: ChildProcess, pids: (number | null | undefined)[], dir: string): Promise<void> {
  for (const pid of pids) killPid(pid, 'SIGTERM')
  for (let i = 0; i < 60 && !exited(child); i++) await sleep(50)
  if (!exited(child)) for (const pid of pids) killPid(pid, 'SIGKILL')
  rmSync(dir, { recursive: true, force: true })
}

// ---------------------------------------------------------------- PgBouncer

export function findPgbouncer(): string | null {
  for (const p of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer']) if (existsSync(p)) return p
  const w = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' })
  return w.status === 0 && w.stdout.trim() ? w.stdout.trim() : null
}

/** Find pgbouncer, installing Debian's package when it is missing and we may. */
export function ensurePgbouncer(log: (s: string) => void, allowInstall: boolean): { bin: string | null; reason?: string } {
  const found = findPgbouncer()
  if (found) return { bin: found }
  if (!allowInstall) return { bin: null, reason: 'pgbouncer not installed (--no-install)' }
  if (!isRoot) return { bin: null, reason: 'pgbouncer not installed, and not root to apt-get install it' }
  log("pgbouncer is missing: installing Debian's package (apt-get update && apt-get install -y pgbouncer)…")
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const upd = spawnSync('apt-get', ['update', '-qq'], { env, encoding: 'utf8', timeout: 300_000 })
  if (upd.status !== 0) log(`apt-get update failed (${upd.status}): ${(upd.stderr || '').trim().slice(0, 300)}; trying the install anyway`)
  const inst = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'pgbouncer'], { env, encoding: 'utf8', timeout: 300_000 })
  const bin = findPgbouncer()
  if (!bin) return { bin: null, reason: `apt-get install pgbouncer failed (${inst.status}): ${(inst.stderr || inst.stdout || '').trim().slice(-300)}` }
  log(`installed ${bin}`)
  return { bin }
}

export function pgbouncerVersion(bin: string): string {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' })
  return (r.stdout || r.stderr || '').split('\n')[0].trim()
}

export interface PgbouncerOptions {
  bin: string
  pgPort: number
  database: string
  user: string
  /** SCRAM verifier (or plain password) for the auth_file */
  secret: string
  poolSize: number
  maxClients: number
}

export async function startPgbouncer(o: PgbouncerOptions): Promise<Target> {
  const version = pgbouncerVersion(o.bin)
  const m = /(\d+)\.(\d+)/.exec(version)
  const major = m ? Number(m[1]) : 0
  const minor = m ? Number(m[2]) : 0
  // max_prepared_statements (protocol-level prepared statements in transaction mode) came in 1.21.
  const prepared = major > 1 || (major === 1 && minor >= 21)
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-bench-pgbouncer-'))
  const ids = postgresIds()
  if (ids) chownSync(dir, ids.uid, ids.gid)
  const port = await freePort()
  const authFile = join(dir, 'userlist.txt')
  writeFileSync(authFile, `"${o.user}" "${o.secret}"\n`)
  const ini = [
    '[databases]',
    `${o.database} = host=127.0.0.1 port=${o.pgPort} dbname=${o.database}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${authFile}`,
    'pool_mode = transaction',
    `default_pool_size = ${o.poolSize}`,
    'min_pool_size = 0',
    'reserve_pool_size = 0',
    `max_client_conn = ${o.maxClients}`,
    'max_db_connections = 0',
    `logfile = ${join(dir, 'pgbouncer.log')}`,
    `pidfile = ${join(dir, 'pgbouncer.pid')}`,
    'log_connections = 0',
    'log_disconnections = 0',
    'log_pooler_errors = 1',
    'stats_period = 3600',
    'ignore_startup_parameters = extra_float_digits',
    ...(prepared ? ['max_prepared_statements = 1000'] : []),
    '',
  ].join('\n')
  const cfg = join(dir, 'pgbouncer.ini')
  writeFileSync(cfg, ini)
  if (ids) {
    for (const f of [authFile, cfg]) chownSync(f, ids.uid, ids.gid)
  }
  const out = openSync(join(dir, 'stdout.log'), 'a')
  // pgbouncer refuses to run as root: run it as the postgres OS user. runuser resets the
  // open-files limit (PAM), so it is raised again inside, for the 10,000 idle clients.
  const [file, args] = isRoot ? ['runuser', ['-u', 'postgres', '--', ...withRaisedNofile(o.bin, [cfg]).flat()]] : withRaisedNofile(o.bin, [cfg])
  const child = spawn(file, args, { stdio: ['ignore', out, out] })
  closeSync(out)
  let bouncerPid: number | null = null
  const stop = (): Promise<void> => stopChild(child, [bouncerPid ?? (child.pid ? findInTree(child.pid, 'pgbouncer') : null), child.pid], dir)
  const kill = (): void => {
    killPid(bouncerPid, 'SIGKILL')
    killPid(child.pid, 'SIGKILL')
  }
  const failed = async (reason: string): Promise<Target> => {
    await stop()
    return {
      name: 'PgBouncer',
      available: false,
      reason,
      port,
      tenantPort: port,
      proxyPid: () => null,
      prepared,
      version,
      stop: async () => {},
      kill: () => {},
    }
  }
  if (!(await waitForPort(port, child, 15_000))) {
    return failed(`PgBouncer did not start: ${tail(join(dir, 'pgbouncer.log'), 5) || tail(join(dir, 'stdout.log'), 5)}`)
  }
  for (let i = 0; i < 50 && !bouncerPid; i++) {
    bouncerPid = child.pid ? findInTree(child.pid, 'pgbouncer') : null
    if (!bouncerPid) await sleep(50)
  }
  const pid = bouncerPid
  if (!pid) return failed('PgBouncer started but its pid was not found')
  const nofile = nofileLimit(pid)
  return {
    name: 'PgBouncer',
    available: true,
    port,
    tenantPort: port,
    proxyPid: () => pid,
    prepared,
    version,
    nofile,
    logTail: () => tail(join(dir, 'pgbouncer.log'), 10),
    stop,
    kill,
  }
}

// ---------------------------------------------------------------- pgtenant

export interface PgtenantOptions {
  cli: string
  pgPort: number
  database: string
  user: string
  /** SCRAM verifier (or plain password) clients log in with */
  secret: string
  /** the password the proxy logs in to PostgreSQL with */
  backendPassword: string
  poolSize: number
  maxClients: number
  /** add `tenant: { column: tenant_id }` */
  tenant: boolean
  /** `workers: N` (processes sharing the port; the pool is split among them) */
  workers: number
}

export interface PgtenantInstance {
  ok: boolean
  reason?: string
  port: number
  pid: number | null
  logPath?: string
  stop(): Promise<void>
  kill(): void
}

function yamlString(s: string): string {
  return JSON.stringify(s)
}

export async function startPgtenant(o: PgtenantOptions): Promise<PgtenantInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-bench-proxy-'))
  const port = await freePort()
  const backendUrl = `postgres://${encodeURIComponent(o.user)}:${encodeURIComponent(o.backendPassword)}@127.0.0.1:${o.pgPort}/${o.database}`
  const yaml = [
    `listen: 127.0.0.1:${port}`,
    'log_level: warn',
    `workers: ${o.workers}`,
    'auth: scram-sha-256',
    'users:',
    `  ${o.user}: { password: ${yamlString(o.secret)} }`,
    ...(o.tenant ? ['tenant:', '  setting: app.tenant', '  column: tenant_id', '  unknown: reject'] : []),
    'backends:',
    `  main: { url: ${yamlString(backendUrl)}, pool: ${o.poolSize} }`,
    'placement:',
    '  default: main',
    'pool:',
    '  mode: transaction',
    `  max_client_connections: ${o.maxClients}`,
    `  max_server_connections: ${Math.max(200, o.poolSize)}`,
    '  wait_timeout_ms: 60000',
    '  login_timeout_ms: 60000',
    // PGTENANT_BENCH_YAML: extra top-level configuration lines (e.g. `metrics: 127.0.0.1:0`), for profiling runs
    ...(process.env.PGTENANT_BENCH_YAML ? [process.env.PGTENANT_BENCH_YAML] : []),
    '',
  ].join('\n')
  const cfg = join(dir, 'pgtenant.yaml')
  writeFileSync(cfg, yaml)
  const logPath = join(dir, 'pgtenant.log')
  const out = openSync(logPath, 'a')
  // PGTENANT_BENCH_NODE_ARGS: extra node options for the pgtenant processes, e.g. `--cpu-prof --cpu-prof-dir=DIR`
  // (a profile is written when pgtenant exits on the bench's SIGTERM).
  const nodeArgs = (process.env.PGTENANT_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)
  const [file, args] = withRaisedNofile(process.execPath, [...nodeArgs, o.cli, '--config', cfg])
  const child: ChildProcess = spawn(file, args, { stdio: ['ignore', out, out] })
  closeSync(out)
  let exitInfo = ''
  child.on('exit', (code, signal) => (exitInfo = `exited with ${code ?? signal}`))
  const stop = (): Promise<void> => stopChild(child, [child.pid], dir)
  const kill = (): void => killPid(child.pid, 'SIGKILL')
  if (!(await waitForPort(port, child, 30_000))) {
    const why = `pgtenant (node ${o.cli} --config …${o.tenant ? ' with tenant section' : ''}) did not start (${exitInfo || 'no listening port after 30 s'}): ${tail(logPath, 6)}`
    await stop()
    return { ok: false, reason: why, port, pid: null, logPath, stop: async () => {}, kill: () => {} }
  }
  return { ok: true, port, pid: child.pid ?? null, logPath, stop, kill }
}

export function pgtenantTarget(plain: PgtenantInstance, tenant: PgtenantInstance, version: string, name: TargetName = 'pgtenant'): Target {
  const reasons = [plain, tenant].filter((i) => !i.ok).map((i) => i.reason)
  return {
    name,
    available: plain.ok || tenant.ok,
    reason: reasons.length ? reasons.join('; ') : undefined,
    port: plain.port,
    tenantPort: tenant.port,
    proxyPid: (w) => (w === 'tenant' ? tenant.pid : plain.pid),
    prepared: true,
    version,
    nofile: plain.pid ? nofileLimit(plain.pid) : null,
    logTail: () =>
      [plain, tenant]
        .map((i) => (i.logPath ? tail(i.logPath, 10) : ''))
        .filter(Boolean)
        .join('\n'),
    stop: async () => {
      await Promise.all([plain.stop(), tenant.stop()])
    },
    kill: () => {
      plain.kill()
      tenant.kill()
    },
  }
}

/** Whether an instance is usable for a workload (pgtenant may start one config and not the other). */
export function usable(t: Target, workload: 'plain' | 'tenant'): boolean {
  if (!t.available) return false
  if (!isPgtenant(t)) return true
  return t.proxyPid(workload) !== null
}

export function directTarget(pgPort: number, version: string): Target {
  return {
    name: 'direct',
    available: true,
    port: pgPort,
    tenantPort: pgPort,
    proxyPid: () => null,
    prepared: true,
    version,
    stop: async () => {},
    kill: () => {},
  }
}

// ---------------------------------------------------------------- Node pipe (reference)

/** The bare Node.js pipe (bench/e2e/node-pipe.js) in front of PostgreSQL. */
export async function startNodePipe(script: string, pgPort: number, how: 'pipe' | 'onread' = 'pipe'): Promise<Target> {
  const port = await freePort()
  const child: ChildProcess = spawn(process.execPath, [script, String(port), String(pgPort), how], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d) => (stderr += d))
  const stop = async (): Promise<void> => {
    killPid(child.pid, 'SIGTERM')
    for (let i = 0; i < 60 && !exited(child); i++) await sleep(50)
    if (!exited(child)) killPid(child.pid, 'SIGKILL')
  }
  const base = {
    name: 'Node pipe' as const,
    port,
    tenantPort: port,
    prepared: true,
    version: `node ${process.version} ${how === 'pipe' ? 'socket.pipe()' : 'onread + writev on the fd'}`,
    stop,
    kill: () => killPid(child.pid, 'SIGKILL'),
  }
  if (!(await waitForPort(port, child, 10_000))) {
    await stop()
    return { ...base, available: false, reason: `node-pipe did not start: ${stderr.trim().slice(0, 300)}`, proxyPid: () => null }
  }
  return { ...base, available: true, proxyPid: () => child.pid ?? null }
}
