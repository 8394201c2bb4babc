#!/usr/bin/env node
// pgtenant command line: `pgtenant --config FILE` runs the proxy in the foreground;
// with no --config it starts the demo on an embedded database.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { loadConfig, ConfigError } from './config.js'
import { createLogger } from './log.js'
import { Proxy } from './proxy.js'
import { initParser } from '../parser/index.js'
import { demoConfig, startDemoDatabase } from './demo.js'
import type { Config } from './config-types.js'
import cluster from 'node:cluster'
import { joinCluster, runPrimary, workerRole } from './cluster.js'

const USAGE = `usage: pgtenant [--config FILE] [--port N]

  --config FILE   run the proxy with this YAML configuration (see README)
  --port N        demo mode only: the port to listen on (default 6432)
  --version       print the version
  (no --config)   start a demo: an embedded PostgreSQL with two tenants, the proxy in front
`

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

function version(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  return JSON.parse(readFileSync(join(here, '..', '..', 'package.json'), 'utf8')).version
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) return void process.stdout.write(USAGE)
  if (process.argv.includes('--version')) return void console.log(`pgtenant ${version()}`)
  await initParser()
  const configPath = arg('--config')
  let config: Config
  let stopDemo: (() => Promise<void>) | null = null
  if (configPath) {
    try {
      config = loadConfig(configPath)
    } catch (err) {
      console.error(err instanceof ConfigError ? err.message : `pgtenant: ${(err as Error).message}`)
      process.exit(2)
    }
  } else {
    const demo = await startDemoDatabase()
    stopDemo = demo.stop
    config = demoConfig(demo.port, Number(arg('--port') ?? 6432))
  }
  const role = workerRole()
  const log = createLogger(config.log_level, role ? { worker: role.index + 1 } : undefined)
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
      cancel: (pid, secret) => proxy.cancelLocal(pid, secret),
      ready: () => proxy.ready(),
      command: (c) => {
        if (c.op === 'reload') reload()
        else if (c.op === 'pause') proxy.pause(c.tenant)
        else if (c.op === 'resume') proxy.resume(c.tenant)
      },
    })
  const addr = await proxy.listen()
  if (!configPath) printDemoHelp(addr.port)

  process.on('SIGHUP', reload)
  let stopping = false
  const stop = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    await proxy.shutdown()
    await stopDemo?.()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

function printDemoHelp(port: number): void {
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

Users: app/app_pw (sets its tenant), acme/acme_pw (pinned to acme), admin/admin_pw (bypass).
Ctrl-C stops the demo.
`)
}

main().catch((err) => {
  console.error(`pgtenant: ${(err as Error)?.stack ?? err}`)
  process.exit(1)
})
