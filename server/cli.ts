#!/usr/bin/env node
// pgtenant command line: `pgtenant --config FILE` runs the proxy in the foreground;
// `--check` validates a config and connects to its backends; `hash-password` makes a
// SCRAM verifier; with no --config it starts the demo on an embedded database.
//
// Exit codes: 0 done; 1 an unexpected error; 2 a usage, configuration or startup error
// (bad flag, invalid config, a port that cannot be bound, a backend --check cannot reach).
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join, resolve } from 'node:path'
import { loadConfig, ConfigError } from './config.js'
import { createLogger } from './log.js'
import { Proxy, ListenError } from './proxy.js'
import { targetFor } from './backend/target.js'
import { initParser } from '../parser/index.js'
import { demoConfig, startDemoDatabase, DEMO_METRICS_PORT } from './demo.js'
import type { Config } from './config-types.js'
import cluster from 'node:cluster'
import { joinCluster, runPrimary, workerOfPid, workerRole } from './cluster.js'
import { BackendConnection } from './backend/connection.js'
import { queryRows } from './backend/query.js'
import { schemaDiscoverySql, buildSchemaFacts, type SchemaRow } from '../routing/schema-facts.js'
import { scramSecretFromPassword, formatScramVerifier } from './auth/scram.js'

const USAGE = `usage: pgtenant --config FILE            run the proxy
       pgtenant --check --config FILE    validate FILE, connect to each backend, list its tenant tables
       pgtenant hash-password [PASSWORD] print a SCRAM-SHA-256 verifier for users.*.password
                                         (reads the password from stdin when not given)
       pgtenant [--port N] [--metrics-port N]
                                         demo: an embedded PostgreSQL with two tenants, the proxy
                                         in front (metrics on 127.0.0.1:${DEMO_METRICS_PORT} unless --metrics-port 0)
       pgtenant --version | --help

Signals: SIGHUP reloads the config; SIGTERM shuts down safely (stop accepting, let running
transactions finish up to pool.shutdown_timeout_ms, close idle clients); a second SIGTERM,
or SIGINT (Ctrl-C), shuts down at once.
`

class UsageError extends Error {}

interface Args {
  config?: string
  port?: number
  metricsPort?: number
  check: boolean
  help: boolean
  version: boolean
  hashPassword?: { password?: string }
}

export function parseArgs(argv: string[]): Args {
  const a: Args = { check: false, help: false, version: false }
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1]
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`)
    return v
  }
  const port = (v: string, flag: string): number => {
    if (!/^\d+$/.test(v) || Number(v) > 65535) throw new UsageError(`${flag} needs a port number (0-65535), not "${v}"`)
    return Number(v)
  }
  if (argv[0] === 'hash-password') {
    if (argv.length > 2) throw new UsageError('hash-password takes at most one argument (the password; else it is read from stdin)')
    a.hashPassword = { password: argv[1] }
    return a
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const eq = /^(--[a-z-]+)=(.*)$/.exec(arg)
    if (eq) {
      argv = [...argv.slice(0, i), eq[1], eq[2], ...argv.slice(i + 1)]
      i--
      continue
    }
    switch (arg) {
      case '--config':
      case '-c':
        a.config = value(i++, arg)
        break
      case '--port':
        a.port = port(value(i++, arg), arg)
        break
      case '--metrics-port':
        a.metricsPort = port(value(i++, arg), arg)
        break
      case '--check':
        a.check = true
        break
      case '--help':
      case '-h':
        a.help = true
        break
      case '--version':
      case '-V':
        a.version = true
        break
      default:
        throw new UsageError(arg.startsWith('-') ? `unknown option ${arg}` : `unexpected argument "${arg}"`)
    }
  }
  if (a.config !== undefined && (a.port !== undefined || a.metricsPort !== undefined))
    throw new UsageError('--port and --metrics-port are for the demo; with --config, set listen: and metrics: in the file')
  if (a.check && a.config === undefined) throw new UsageError('--check needs --config FILE')
  return a
}

function version(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  return JSON.parse(readFileSync(join(here, '..', '..', 'package.json'), 'utf8')).version
}

function load(path: string): Config {
  try {
    return loadConfig(path)
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : `pgtenant: ${(err as Error).message}`)
    process.exit(2)
  }
}

async function main(): Promise<void> {
  let args: Args
  try {
    args = parseArgs(process.argv.slice(2))
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`pgtenant: ${err.message}\n\n${USAGE}`)
    process.exit(2)
  }
  if (args.help) return void process.stdout.write(USAGE)
  if (args.version) return void console.log(`pgtenant ${version()}`)
  if (args.hashPassword) return hashPassword(args.hashPassword.password)
  if (args.check) return check(args.config as string)
  await initParser()
  const configPath = args.config !== undefined ? resolve(args.config) : undefined
  let config: Config
  let stopDemo: (() => Promise<void>) | null = null
  if (configPath) config = load(configPath)
  else {
    console.log('pgtenant demo: starting embedded PostgreSQL (PGlite)…')
    const demo = await startDemoDatabase()
    stopDemo = demo.stop
    config = demoConfig(demo.port, args.port ?? 6432, args.metricsPort ?? DEMO_METRICS_PORT)
  }
  const role = workerRole()
  const log = createLogger(config.log_level, role ? { worker: role.index + 1 } : undefined, config.log_format)
  if (configPath && config.workers > 1 && cluster.isPrimary) return runPrimary(configPath, config, log)
  const proxy = new Proxy(config, log, role)
  proxy.configPath = configPath
  const reload = (): void => {
    if (!configPath) return
    try {
      proxy.reload(loadConfig(configPath))
    } catch (err) {
      log.error({ err: (err as Error).message }, 'new configuration is invalid; keeping the old one')
    }
  }
  if (role)
    proxy.clusterLink = joinCluster(role, {
      // a miss is counted once: by the worker a proxy-made key names
      cancel: (pid, secret) => void proxy.cancelLocal(pid, secret, workerOfPid(pid) === role.index),
      ready: () => proxy.ready(),
      command: (c) => {
        if (c.op === 'reload') reload()
        else if (c.op === 'pause') proxy.pause(c.tenant)
        else if (c.op === 'resume') proxy.resume(c.tenant)
        else if (c.op === 'disable' && 'database' in c) proxy.disableDatabase(c.database)
        else if (c.op === 'enable' && 'database' in c) proxy.enableDatabase(c.database)
        else if (c.op === 'disable') proxy.disabled.add(c.tenant)
        else if (c.op === 'enable') proxy.disabled.delete(c.tenant)
      },
    })
  let addr
  try {
    addr = await proxy.listen()
  } catch (err) {
    if (!(err instanceof ListenError)) throw err
    console.error(`pgtenant: ${err.message}`)
    await stopDemo?.().catch(() => undefined)
    process.exit(2)
  }
  if (!configPath) printDemoHelp(addr.port, config)

  process.on('SIGHUP', reload)
  // SIGTERM: safe shutdown (drain); a second SIGTERM, or SIGINT, at any time: immediate.
  let stopping = false
  const stop = async (immediate: boolean): Promise<void> => {
    if (stopping) {
      if (immediate) await proxy.terminate()
      return
    }
    stopping = true
    await (immediate ? proxy.terminate() : proxy.shutdown())
    await stopDemo?.().catch(() => undefined)
    process.exit(0)
  }
  let terms = 0
  process.on('SIGTERM', () => void stop(++terms > 1))
  process.on('SIGINT', () => void stop(true))
}

/** `pgtenant hash-password`: the verifier PostgreSQL would store, for users.*.password. */
async function hashPassword(given?: string): Promise<void> {
  let password = given
  if (password === undefined) {
    if (process.stdin.isTTY) process.stderr.write('password: ')
    const chunks: Buffer[] = []
    for await (const c of process.stdin) chunks.push(c as Buffer)
    password = Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '')
  }
  if (!password) {
    console.error('pgtenant: hash-password: empty password')
    process.exit(2)
  }
  console.log(formatScramVerifier(scramSecretFromPassword(password)))
}

/** `pgtenant --check --config FILE`: validate, connect to each backend, print the tenant tables found. */
async function check(path: string): Promise<void> {
  const config = load(path)
  console.log(`${path}: configuration is valid`)
  let failed = 0
  for (const backend of Object.values(config.backends)) {
    const where = `${backend.url.host}:${backend.url.port}/${backend.url.database}`
    if (backend.url.perTenant) {
      console.log(`backend ${backend.name} (${where}): one database per tenant; checked when a tenant first uses it`)
      continue
    }
    const user = backend.url.user ?? Object.keys(config.users).find((u) => !/^(SCRAM-SHA-256\$|md5[0-9a-f]{32}$)/.test(config.users[u].password))
    if (!user) {
      console.log(`backend ${backend.name} (${where}): not checked: the URL names no user and every user's password is hashed`)
      continue
    }
    const target = targetFor(backend, user, config.users[user])
    let conn: BackendConnection | null = null
    try {
      conn = await BackendConnection.connect(target, config.pool.connect_timeout_ms)
      const version = conn.params.get('server_version') ?? '?'
      console.log(`backend ${backend.name} (${where} as ${target.user}): connected, PostgreSQL ${version}`)
      if (config.tenant) {
        const rows = await queryRows(conn, schemaDiscoverySql(config.tenant.column))
        const facts = buildSchemaFacts(rows as unknown as SchemaRow[], config.tenant)
        const tables = [...facts.tenantTables].map(([t, c]) => `${t} (${c})`).sort()
        console.log(`  tenant tables: ${tables.length ? tables.join(', ') : '(none found)'}`)
        console.log(`  reference tables: ${facts.referenceTables.size ? [...facts.referenceTables].sort().join(', ') : '(none)'}`)
        if (tables.length === 0) console.log(`  warning: no table has the column "${config.tenant.column}" and tenant.tables names none found here`)
      }
    } catch (err) {
      failed++
      console.log(`backend ${backend.name} (${where} as ${target.user}): FAILED: ${(err as Error).message}`)
    } finally {
      conn?.close()
    }
  }
  console.log(failed ? `${failed} backend(s) failed` : 'all backends reachable')
  process.exit(failed ? 2 : 0)
}

function printDemoHelp(port: number, config: Config): void {
  const pool = Object.values(config.backends)[0].pool
  console.log(`
pgtenant demo: an embedded PostgreSQL (PGlite) with two tenants, acme and globex,
behind pgtenant on 127.0.0.1:${port}. Connect with:

  psql "postgres://app:app_pw@127.0.0.1:${port}/demo"

then try:

  SELECT * FROM projects;                 -- refused: no tenant set
  SET app.tenant = 'acme';
  SELECT * FROM projects;                 -- only acme's projects
  SET app.tenant = 'globex';
  SELECT a.name, p.name FROM accounts a JOIN projects p ON p.account_id = a.id;

Users: app/app_pw (sets its tenant), acme/acme_pw (pinned to acme),
admin/admin_pw (bypass, and the admin console:
  psql "postgres://admin:admin_pw@127.0.0.1:${port}/pgtenant" -c "SHOW HELP").
Metrics: ${config.metrics ? `http://${config.metrics.host}:${config.metrics.port}/metrics` : 'off (--metrics-port 0)'}
Limits: the data lives in memory and is gone when the demo stops; PGlite runs one
query at a time, so a slow query makes the others wait; the pool has ${pool} server
connections. Ctrl-C stops the demo at once (running queries are cut off).
`)
}

main().catch((err) => {
  console.error(`pgtenant: ${(err as Error)?.stack ?? err}`)
  process.exit(1)
})
