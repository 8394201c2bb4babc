// Starts pgtenant in the test process in front of a test PostgreSQL, from YAML text,
// so tests exercise the same config path users do.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync, spawn } from 'node:child_process'
import { parseConfig } from '../../server/config.js'
import type { Config } from '../../server/config-types.js'
import { createLogger } from '../../server/log.js'
import { Proxy } from '../../server/proxy.js'
import { initParser } from '../../parser/index.js'
import pg from 'pg'
import { freePort, type PgServer } from './pg-server.js'

export interface RunningProxy {
  proxy: Proxy
  port: number
  url(user: string, password: string, database?: string, extra?: string): string
  stop(): Promise<void>
}

export async function startProxy(yamlText: string, opts: { dir?: string } = {}): Promise<RunningProxy> {
  await initParser()
  const port = await freePort()
  const text = yamlText.replace(/\$PROXY_PORT/g, String(port))
  const config = parseConfig(text, process.env, opts.dir ?? process.cwd())
  const proxy = new Proxy(config, createLogger((process.env.PGTENANT_TEST_LOG as 'info') ?? 'silent'))
  await proxy.listen()
  return {
    proxy,
    port,
    url: (user, password, database = clientDatabase(config), extra = '') =>
      `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}${extra}`,
    stop: () => proxy.shutdown(200),
  }
}

/** A database name the config accepts (server/databases.ts): its first `databases:` entry, else the default backend's URL database (or its name). */
export function clientDatabase(config: Config): string {
  if (config.databases) {
    const name = Object.keys(config.databases).find((n) => n !== '*')
    if (name !== undefined) return name
  }
  const backend = config.backends[config.placement.default]
  return backend && !backend.url.perTenant ? backend.url.database : config.placement.default
}

/** A minimal config: one backend (the test server), the given users, transaction pooling. */
export function basicYaml(pg: PgServer, o: { pool?: number; mode?: string; users?: string; extra?: string; backendUser?: string } = {}): string {
  const backendAuth = o.backendUser ?? 'scram_user:scram%20pw'
  return `
listen: 127.0.0.1:$PROXY_PORT
users:
${o.users ?? '  app: { password: app_pw }'}
backends:
  main: { url: "postgres://${backendAuth}@127.0.0.1:${pg.port}/postgres", pool: ${o.pool ?? 5} }
pool: { mode: ${o.mode ?? 'transaction'}, wait_timeout_ms: 20000 }
${o.extra ?? ''}
`
}

export interface CmdResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Run a client program (psql, pgbench) without blocking the event loop the proxy runs on. */
export function run(cmd: string, args: string[], input?: string, env: Record<string, string> = {}): Promise<CmdResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.on('error', () => undefined) // a program that exits before reading all its input
    if (input !== undefined) child.stdin.end(input)
    else child.stdin.end()
  })
}

export function psqlArgs(url: string, sql?: string): string[] {
  return ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', url, ...(sql ? ['-c', sql] : [])]
}

/** A self-signed certificate for TLS tests. */
export function selfSignedCert(): { dir: string; cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-tls-'))
  const cert = join(dir, 'server.crt')
  const key = join(dir, 'server.key')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], {
    stdio: 'ignore',
  })
  writeFileSync(join(dir, 'ok'), '')
  return { dir, cert, key }
}

/** A node-postgres login that is expected to fail: its error (null: it logged in). */
export async function loginError(url: string): Promise<{ code?: string; message: string } | null> {
  const c = new pg.Client({ connectionString: url })
  c.on('error', () => undefined)
  try {
    await c.connect()
    await c.end()
    return null
  } catch (err) {
    return err as { code?: string; message: string }
  }
}
