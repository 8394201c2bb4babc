// What the proxy reports or uses when nothing more specific is known: ParameterStatus values
// before any server was asked, its own version, and the pool limits a config sets.
import { readFileSync } from 'node:fs'
import type { Config } from './config-types.js'
import type { PoolLimits } from './backend/pool.js'

/** ParameterStatus values reported when no server can be asked (see serverParams). */
export const DEFAULT_SERVER_PARAMS = new Map([
  ['server_version', '15.0'],
  ['server_encoding', 'UTF8'],
  ['client_encoding', 'UTF8'],
  ['DateStyle', 'ISO, MDY'],
  ['IntervalStyle', 'postgres'],
  ['integer_datetimes', 'on'],
  ['standard_conforming_strings', 'on'],
  ['TimeZone', 'UTC'],
  ['is_superuser', 'off'],
  ['application_name', ''],
])

export function readVersion(): string {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version
  } catch {
    return 'unknown'
  }
}

export function limitsOf(config: Config): PoolLimits {
  return {
    waitTimeoutMs: config.pool.wait_timeout_ms,
    connectTimeoutMs: config.pool.connect_timeout_ms,
    idleTimeoutMs: config.pool.idle_timeout_ms,
    maxServerConnections: config.pool.max_server_connections,
    maxPreparedStatements: config.pool.max_prepared_statements,
  }
}
