// Reads pgtenant's YAML configuration into the validated shape of config-types.ts.
// Every problem is reported with the path of its key; all problems are reported at once.
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import YAML from 'yaml'
import { applyPlacementOverrides } from '../routing/placement.js'
import { readPlacementState } from './placement-state.js'
import type {
  BackendConfig,
  BackendUrl,
  Config,
  DatabaseConfig,
  PassthroughConfig,
  HostPort,
  PoolConfig,
  TenantConfig,
  TenantLimitValues,
  TenantLimitsConfig,
  UserConfig,
} from './config-types.js'

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`)
  }
}

/** Worker processes (`workers: N`); a client's cancel key carries its worker in 6 bits. */
export const MAX_WORKERS = 64

const TOP_LEVEL = new Set([
  'listen',
  'metrics',
  'tls',
  'auth',
  'users',
  'passthrough',
  'trust',
  'tenant',
  'backends',
  'databases',
  'placement',
  'pool',
  'tenant_limits',
  'log_level',
  'log_format',
  'log',
  'citus',
  'workers',
])
const SSLMODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

export const POOL_DEFAULTS: PoolConfig = {
  mode: 'transaction',
  max_client_connections: 1000,
  wait_timeout_ms: 30000,
  connect_timeout_ms: 5000,
  idle_timeout_ms: 60000,
  login_timeout_ms: 10000,
  max_authenticating_connections: 1000,
  client_idle_timeout_ms: 0,
  shutdown_timeout_ms: 30000,
  max_server_connections: 200,
  max_prepared_statements: 100,
}

export function loadConfig(path: string): Config {
  return parseConfig(readFileSync(path, 'utf8'), process.env, dirname(resolve(path)))
}

type Obj = Record<string, unknown>

class Reader {
  readonly problems: string[] = []
  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly baseDir: string,
  ) {}

  fail(path: string, message: string): undefined {
    this.problems.push(`${path}: ${message}`)
    return undefined
  }

  /** A string with ${ENV_VAR}s replaced. */
  str(v: unknown, path: string): string | undefined {
    if (typeof v === 'number') v = String(v)
    if (typeof v !== 'string') return this.fail(path, 'must be a string')
    return v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const value = this.env[name]
      if (value === undefined) {
        this.fail(path, `environment variable ${name} is not set`)
        return ''
      }
      return value
    })
  }

  obj(v: unknown, path: string): Obj | undefined {
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'object' || Array.isArray(v)) return this.fail(path, 'must be a mapping')
    return v as Obj
  }

  int(v: unknown, path: string, dflt: number, min = 0): number {
    if (v === undefined) return dflt
    const n = typeof v === 'string' ? Number(this.str(v, path)) : v
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min) {
      this.fail(path, `must be an integer ≥ ${min}`)
      return dflt
    }
    return n
  }

  bool(v: unknown, path: string): boolean {
    if (v === undefined) return false
    if (typeof v !== 'boolean') this.fail(path, 'must be true or false')
    return v === true
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], dflt: T): T {
    if (v === undefined) return dflt
    const s = this.str(v, path)
    if (s === undefined || !(allowed as readonly string[]).includes(s)) {
      this.fail(path, `must be ${allowed.map((a) => `"${a}"`).join(' or ')}`)
      return dflt
    }
    return s as T
  }

  hostPort(v: unknown, path: string): HostPort | undefined {
    const s = this.str(v, path)
    if (s === undefined) return undefined
    const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s)
    if (!m || Number(m[3]) > 65535) return this.fail(path, `must be host:port, got "${s}"`)
    return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) }
  }

  /** A path relative to the config file's directory, made absolute. */
  path(s: string): string {
    return resolve(this.baseDir, s)
  }

  file(v: unknown, path: string): { path: string; text: string } | undefined {
    const s = this.str(v, path)
    if (s === undefined) return undefined
    const full = resolve(this.baseDir, s)
    try {
      return { path: full, text: readFileSync(full, 'utf8') }
    } catch (err) {
      return this.fail(path, `cannot read ${full}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
}

export function parseConfig(yamlText: string, env: NodeJS.ProcessEnv, baseDir: string): Config {
  let doc: unknown
  try {
    doc = YAML.parse(yamlText)
  } catch (err) {
    throw new ConfigError([`not valid YAML: ${(err as Error).message}`])
  }
  const r = new Reader(env, baseDir)
  const root = r.obj(doc ?? {}, '(top level)') ?? {}
  for (const key of Object.keys(root)) if (!TOP_LEVEL.has(key)) r.fail(key, `unknown key (expected one of: ${[...TOP_LEVEL].join(', ')})`)

  const listen = root.listen === undefined ? { host: '127.0.0.1', port: 6432 } : r.hostPort(root.listen, 'listen')
  const metrics = root.metrics === undefined ? undefined : r.hostPort(root.metrics, 'metrics')
  const tls = readTls(r, root.tls)
  const auth = r.oneOf(root.auth, 'auth', ['scram-sha-256', 'md5'] as const, 'scram-sha-256')
  const trust = root.trust === false ? 'off' : r.oneOf(root.trust, 'trust', ['off', 'loopback'] as const, 'off')
  const passthroughOn = root.passthrough !== undefined && root.passthrough !== false && root.passthrough !== null
  const users = readUsers(r, root.users, auth, passthroughOn || trust === 'loopback')
  const tenant = root.tenant === undefined ? undefined : readTenant(r, root.tenant)
  const pool = readPool(r, root.pool)
  const tenantLimits = root.tenant_limits === undefined || root.tenant_limits === null ? undefined : readTenantLimits(r, root.tenant_limits)
  const backends = readBackends(r, root.backends)
  const placement = readPlacement(r, root.placement, backends)
  const databases = root.databases === undefined ? undefined : readDatabases(r, root.databases, backends)
  const passthrough = passthroughOn ? readPassthrough(r, root.passthrough, backends) : undefined
  const citusObj = r.obj(root.citus, 'citus')
  const citus = citusObj ? { refresh_interval_ms: r.int(citusObj.refresh_interval_ms, 'citus.refresh_interval_ms', 60000, 1000) } : undefined
  const log_level = r.oneOf(root.log_level, 'log_level', LOG_LEVELS, 'info')
  const logObj = r.obj(root.log, 'log')
  if (logObj)
    for (const k of Object.keys(logObj))
      if (k !== 'slow_statement_ms' && k !== 'stats_interval_ms') r.fail(`log.${k}`, 'unknown key (expected slow_statement_ms, stats_interval_ms)')
  const log = logObj
    ? {
        slow_statement_ms: r.int(logObj.slow_statement_ms, 'log.slow_statement_ms', 0),
        stats_interval_ms: r.int(logObj.stats_interval_ms, 'log.stats_interval_ms', 60000, 0),
      }
    : undefined
  const log_format = r.oneOf(root.log_format, 'log_format', ['json', 'pretty'] as const, 'json')

  const workers = r.int(root.workers, 'workers', 1, 1)
  if (workers > MAX_WORKERS) r.fail('workers', `at most ${MAX_WORKERS}`)

  if (r.problems.length > 0 || !listen) throw new ConfigError(r.problems.length > 0 ? r.problems : ['listen: invalid'])
  const config: Config = { listen, metrics, tls, auth, users, tenant, backends, placement, pool, log_level, log_format, log, citus, workers }
  if (databases) config.databases = databases
  if (tenantLimits) config.tenant_limits = tenantLimits
  if (passthrough) config.passthrough = passthrough
  if (trust !== 'off') config.trust = trust
  return config
}

/** `passthrough:` (or `passthrough: true`): check unlisted users' passwords on the server. */
function readPassthrough(r: Reader, v: unknown, backends: Record<string, BackendConfig>): PassthroughConfig {
  const o = v === true ? {} : (r.obj(v, 'passthrough') ?? {})
  for (const k of Object.keys(o))
    if (!['backend', 'cache_ttl_ms', 'plaintext'].includes(k)) r.fail(`passthrough.${k}`, 'unknown key (expected backend, cache_ttl_ms, plaintext)')
  const out: PassthroughConfig = {
    cache_ttl_ms: r.int(o.cache_ttl_ms, 'passthrough.cache_ttl_ms', 60000, 0),
    plaintext: r.oneOf(o.plaintext, 'passthrough.plaintext', ['loopback', 'allow'] as const, 'loopback'),
  }
  if (o.backend !== undefined) {
    const name = r.str(o.backend, 'passthrough.backend')
    if (name !== undefined && !backends[name]) r.fail('passthrough.backend', `no backend named "${name}"`)
    else if (name !== undefined && backends[name].url.perTenant)
      r.fail('passthrough.backend', `backend "${name}" has one database per tenant: name one with a fixed database`)
    else if (name !== undefined) out.backend = name
  }
  return out
}

/** `databases:` client name -> { backend, dbname }; "*" is the fallback. */
function readDatabases(r: Reader, v: unknown, backends: Record<string, BackendConfig>): Record<string, DatabaseConfig> | undefined {
  const o = r.obj(v, 'databases')
  if (!o) return undefined
  const out: Record<string, DatabaseConfig> = Object.create(null)
  for (const [name, raw] of Object.entries(o)) {
    const path = `databases.${name}`
    if (name === 'pgtenant') {
      r.fail(path, 'the name "pgtenant" is the admin console')
      continue
    }
    // `name: backend` is short for `name: { backend: backend }`.
    const e = typeof raw === 'string' ? { backend: raw } : r.obj(raw, path)
    if (!e) {
      r.fail(path, 'must be a backend name or a mapping with backend (and dbname)')
      continue
    }
    for (const k of Object.keys(e)) if (k !== 'backend' && k !== 'dbname') r.fail(`${path}.${k}`, 'unknown key (expected backend, dbname)')
    const backend = e.backend === undefined ? r.fail(`${path}.backend`, 'required') : r.str(e.backend, `${path}.backend`)
    if (backend === undefined) continue
    const b = backends[backend]
    if (!b) {
      r.fail(`${path}.backend`, `no backend named "${backend}"`)
      continue
    }
    const entry: DatabaseConfig = { backend }
    if (e.dbname !== undefined) {
      const dbname = r.str(e.dbname, `${path}.dbname`)
      if (dbname) entry.dbname = dbname
      else if (dbname !== undefined) r.fail(`${path}.dbname`, 'must not be empty')
    }
    if ((entry.dbname !== undefined || name === '*') && (b.url.perTenant || b.citus))
      r.fail(
        path,
        `backend "${backend}" ${b.citus ? 'is a Citus cluster' : 'has one database per tenant'}: ${name === '*' ? 'it cannot take other database names' : 'dbname cannot change its database'}`,
      )
    out[name] = entry
  }
  return out
}

function readTls(r: Reader, v: unknown): Config['tls'] {
  const o = r.obj(v, 'tls')
  if (!o) return undefined
  const cert = r.file(o.cert, 'tls.cert')
  const key = r.file(o.key, 'tls.key')
  if (!cert || !key) return undefined
  return { cert: cert.text, key: key.text, certPath: cert.path, keyPath: key.path }
}

function readUsers(r: Reader, v: unknown, auth: Config['auth'], anyUser: boolean): Record<string, UserConfig> {
  const o = r.obj(v, 'users')
  if (!o) {
    // With passthrough or trust: loopback, users are optional (those listed get settings).
    if (!anyUser) r.fail('users', 'required: at least one user who may log in (or passthrough / trust: loopback)')
    return Object.create(null)
  }
  const users: Record<string, UserConfig> = Object.create(null)
  for (const [name, raw] of Object.entries(o)) {
    const path = `users.${name}`
    const u = r.obj(raw, path)
    if (!u) {
      r.fail(path, 'must be a mapping with a password')
      continue
    }
    for (const k of Object.keys(u)) if (!['password', 'tenant', 'bypass', 'admin', 'pool_mode', 'trust'].includes(k)) r.fail(`${path}.${k}`, 'unknown key')
    const trust = r.bool(u.trust, `${path}.trust`)
    // Without a password: trusted, or checked on the server (passthrough).
    const password =
      u.password === undefined
        ? trust || anyUser
          ? undefined
          : r.fail(`${path}.password`, 'required (or trust: true, or a passthrough section)')
        : r.str(u.password, `${path}.password`)
    if (password !== undefined && auth === 'md5' && password.startsWith('SCRAM-SHA-256$'))
      r.fail(`${path}.password`, 'auth: md5 needs a plain or md5 password, not a SCRAM verifier')
    const tenant = u.tenant === undefined ? undefined : r.str(u.tenant, `${path}.tenant`)
    const bypass = r.bool(u.bypass, `${path}.bypass`)
    if (bypass && tenant !== undefined) r.fail(path, 'a user cannot be both pinned to a tenant and bypass')
    users[name] = { password: password ?? '', tenant, bypass, admin: r.bool(u.admin, `${path}.admin`) }
    const poolMode = readPoolMode(r, u.pool_mode, `${path}.pool_mode`)
    if (poolMode) users[name].pool_mode = poolMode
    if (trust) users[name].trust = true
  }
  return users
}

function readTenant(r: Reader, v: unknown): TenantConfig | undefined {
  const o = r.obj(v ?? {}, 'tenant') ?? {}
  const known = ['setting', 'column', 'tables', 'reference', 'unknown', 'pattern', 'metrics_top', 'functions', 'user_functions']
  for (const k of Object.keys(o)) if (!known.includes(k)) r.fail(`tenant.${k}`, 'unknown key')
  const setting = o.setting === undefined ? 'app.tenant' : r.str(o.setting, 'tenant.setting')
  if (setting !== undefined && !/^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$/.test(setting))
    r.fail('tenant.setting', 'must be a custom setting name with a dot, like app.tenant')
  const column = o.column === undefined ? 'tenant_id' : r.str(o.column, 'tenant.column')
  const tables: Record<string, string> = {}
  const t = r.obj(o.tables, 'tenant.tables')
  if (t) for (const [table, col] of Object.entries(t)) tables[table] = r.str(col, `tenant.tables.${table}`) ?? ''
  let reference: string[] = []
  if (o.reference !== undefined) {
    if (!Array.isArray(o.reference)) r.fail('tenant.reference', 'must be a list of table names')
    else reference = o.reference.map((x, i) => r.str(x, `tenant.reference[${i}]`) ?? '')
  }
  let functions: string[] = []
  if (o.functions !== undefined) {
    if (!Array.isArray(o.functions)) r.fail('tenant.functions', 'must be a list of function names ("name" or "schema.name")')
    else functions = o.functions.map((x, i) => (r.str(x, `tenant.functions[${i}]`) ?? '').toLowerCase())
  }
  const pattern = o.pattern === undefined ? '^[A-Za-z0-9_-]{1,63}$' : r.str(o.pattern, 'tenant.pattern')
  if (pattern !== undefined) {
    try {
      new RegExp(pattern)
    } catch {
      r.fail('tenant.pattern', 'not a valid regular expression')
    }
  }
  return {
    setting: (setting ?? 'app.tenant').toLowerCase(),
    column: column ?? 'tenant_id',
    tables,
    reference,
    unknown: r.oneOf(o.unknown, 'tenant.unknown', ['reject', 'allow'] as const, 'reject'),
    pattern: pattern ?? '^[A-Za-z0-9_-]{1,63}$',
    metrics_top: r.int(o.metrics_top, 'tenant.metrics_top', 100),
    functions,
    user_functions: r.oneOf(o.user_functions, 'tenant.user_functions', ['reject', 'allow'] as const, 'reject'),
  }
}

export const TENANT_LIMIT_DEFAULTS: TenantLimitValues = {
  max_connections: 0,
  max_waiting: 0,
  tps: 0,
  burst: 0,
  statement_timeout_ms: 0,
  wait_timeout_ms: -1,
  weight: 1,
}
const TENANT_LIMIT_KEYS = Object.keys(TENANT_LIMIT_DEFAULTS)

/** `tenant_limits:` a default for every tenant and overrides by tenant (see README "Per-tenant limits"). */
function readTenantLimits(r: Reader, v: unknown): TenantLimitsConfig | undefined {
  const o = r.obj(v, 'tenant_limits')
  if (!o) return undefined
  for (const k of Object.keys(o)) if (k !== 'default' && k !== 'tenants') r.fail(`tenant_limits.${k}`, 'unknown key (expected default, tenants)')
  const dflt: TenantLimitValues = { ...TENANT_LIMIT_DEFAULTS, ...readLimitValues(r, o.default, 'tenant_limits.default') }
  const tenants: Record<string, Partial<TenantLimitValues>> = Object.create(null)
  const t = r.obj(o.tenants, 'tenant_limits.tenants')
  if (t) for (const [name, raw] of Object.entries(t)) tenants[name] = readLimitValues(r, raw ?? {}, `tenant_limits.tenants.${name}`)
  return { default: dflt, tenants }
}

function readLimitValues(r: Reader, v: unknown, path: string): Partial<TenantLimitValues> {
  const o = r.obj(v, path)
  const out: Partial<TenantLimitValues> = {}
  if (!o) return out
  for (const k of Object.keys(o)) if (!TENANT_LIMIT_KEYS.includes(k)) r.fail(`${path}.${k}`, `unknown key (expected one of: ${TENANT_LIMIT_KEYS.join(', ')})`)
  if (o.max_connections !== undefined) {
    const pct = typeof o.max_connections === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(o.max_connections) : null
    if (pct) {
      const n = Number(pct[1])
      if (n <= 0 || n > 100) r.fail(`${path}.max_connections`, 'a percentage must be above 0 and at most 100')
      else out.max_connections_pct = n
      out.max_connections = 0
    } else {
      out.max_connections = r.int(o.max_connections, `${path}.max_connections`, 0)
      out.max_connections_pct = undefined // a tenant's count replaces a default's percentage
    }
  }
  if (o.max_waiting !== undefined) out.max_waiting = r.int(o.max_waiting, `${path}.max_waiting`, 0)
  for (const key of ['tps', 'burst', 'weight'] as const) {
    if (o[key] === undefined) continue
    const n = typeof o[key] === 'string' ? Number(o[key]) : o[key]
    const min = key === 'weight' ? 0.01 : 0
    if (typeof n !== 'number' || !Number.isFinite(n) || n < min)
      r.fail(`${path}.${key}`, key === 'weight' ? 'must be a number above 0' : 'must be a number ≥ 0')
    else out[key] = n
  }
  if (o.statement_timeout_ms !== undefined) out.statement_timeout_ms = r.int(o.statement_timeout_ms, `${path}.statement_timeout_ms`, 0)
  if (o.wait_timeout_ms !== undefined) out.wait_timeout_ms = r.int(o.wait_timeout_ms, `${path}.wait_timeout_ms`, -1, 0)
  return out
}

/** A per-backend or per-user pool_mode (absent: the next level's). */
function readPoolMode(r: Reader, v: unknown, path: string): 'transaction' | 'session' | undefined {
  if (v === undefined) return undefined
  return r.oneOf(v, path, ['transaction', 'session'] as const, 'transaction')
}

function readPool(r: Reader, v: unknown): PoolConfig {
  const o = r.obj(v, 'pool') ?? {}
  const keys = Object.keys(POOL_DEFAULTS)
  for (const k of Object.keys(o)) if (!keys.includes(k)) r.fail(`pool.${k}`, `unknown key (expected one of: ${keys.join(', ')})`)
  const out = { ...POOL_DEFAULTS, mode: r.oneOf(o.mode, 'pool.mode', ['transaction', 'session'] as const, 'transaction') }
  for (const k of keys) {
    if (k === 'mode') continue
    const key = k as Exclude<keyof PoolConfig, 'mode'>
    out[key] = r.int(
      o[key],
      `pool.${key}`,
      POOL_DEFAULTS[key],
      key === 'max_client_connections' || key === 'max_server_connections' || key === 'max_authenticating_connections' ? 1 : 0,
    )
  }
  return out
}

function readBackends(r: Reader, v: unknown): Record<string, BackendConfig> {
  const o = r.obj(v, 'backends')
  const out: Record<string, BackendConfig> = Object.create(null)
  if (!o || Object.keys(o).length === 0) {
    r.fail('backends', 'required: at least one backend with a url')
    return out
  }
  for (const [name, raw] of Object.entries(o)) {
    const path = `backends.${name}`
    const b = r.obj(raw, path)
    if (!b) continue
    for (const k of Object.keys(b)) if (!['url', 'pool', 'citus', 'pool_mode'].includes(k)) r.fail(`${path}.${k}`, 'unknown key')
    const urlText = b.url === undefined ? r.fail(`${path}.url`, 'required') : r.str(b.url, `${path}.url`)
    const url = urlText === undefined ? undefined : parseBackendUrl(urlText, `${path}.url`, r)
    if (!url) continue
    out[name] = { name, url, pool: r.int(b.pool, `${path}.pool`, 20, 1), citus: r.bool(b.citus, `${path}.citus`) }
    const poolMode = readPoolMode(r, b.pool_mode, `${path}.pool_mode`)
    if (poolMode) out[name].pool_mode = poolMode
  }
  return out
}

/** postgres://[user[:password]@]host[:port]/database[?sslmode=…], with {tenant} allowed in host, user and database. */
export function parseBackendUrl(text: string, path: string, r?: Reader): BackendUrl | undefined {
  const fail = (m: string): undefined => (r ? r.fail(path, m) : undefined)
  const m = /^(postgres|postgresql):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?(\[[^\]]+\]|[^:/?]*)(?::(\d+))?(?:\/([^?]*))?(?:\?(.*))?$/.exec(text)
  if (!m) return fail('not a postgres:// URL')
  const decode = (s: string | undefined): string | undefined => {
    if (s === undefined || s === '') return undefined
    try {
      return decodeURIComponent(s).replace(/%7Btenant%7D/gi, '{tenant}')
    } catch {
      fail(`bad percent-encoding in "${s}"`)
      return s
    }
  }
  const host = (decode(m[4]) ?? '').replace(/^\[|\]$/g, '')
  if (!host) return fail('needs a host')
  const port = m[5] ? Number(m[5]) : 5432
  if (port < 1 || port > 65535) return fail('port out of range')
  const user = decode(m[2])
  const database = decode(m[6]) ?? user
  if (!database) return fail('needs a database name')
  const params = new URLSearchParams(m[7] ?? '')
  const sslmode = (params.get('sslmode') ?? 'prefer') as BackendUrl['sslmode']
  if (!(SSLMODES as readonly string[]).includes(sslmode)) return fail(`sslmode must be one of ${SSLMODES.join(', ')}`)
  for (const k of params.keys()) if (k !== 'sslmode') fail(`unsupported URL parameter "${k}"`)
  const perTenant = [host, user, database].some((s) => s !== undefined && s.includes('{tenant}'))
  const raw = m[3] !== undefined ? text.replace(`:${m[3]}@`, ':***@') : text
  return { host, port, database, user, password: decode(m[3]), sslmode, raw, perTenant }
}

function readPlacement(r: Reader, v: unknown, backends: Record<string, BackendConfig>): Config['placement'] {
  const o = r.obj(v, 'placement') ?? {}
  const names = Object.keys(backends)
  let dflt = o.default === undefined ? undefined : r.str(o.default, 'placement.default')
  if (dflt === undefined) {
    if (names.length === 1) dflt = names[0]
    else if (names.length > 1) r.fail('placement.default', 'required when there is more than one backend')
  } else if (!backends[dflt]) r.fail('placement.default', `no backend named "${dflt}"`)
  const tenants: Record<string, string> = Object.create(null)
  const t = r.obj(o.tenants, 'placement.tenants')
  if (t)
    for (const [tenant, backend] of Object.entries(t)) {
      const b = r.str(backend, `placement.tenants.${tenant}`)
      if (b !== undefined && !backends[b]) r.fail(`placement.tenants.${tenant}`, `no backend named "${b}"`)
      else if (b !== undefined) tenants[tenant] = b
    }
  const out: Config['placement'] = { default: dflt ?? '', tenants }
  for (const k of Object.keys(o))
    if (!['default', 'tenants', 'state_file', 'move_wait_ms'].includes(k))
      r.fail(`placement.${k}`, 'unknown key (expected default, tenants, state_file, move_wait_ms)')
  if (o.move_wait_ms !== undefined) out.move_wait_ms = r.int(o.move_wait_ms, 'placement.move_wait_ms', 30000, 1)
  if (o.state_file !== undefined) {
    const file = r.str(o.state_file, 'placement.state_file')
    if (file !== undefined) {
      out.state_file = r.path(file)
      try {
        out.moved = readPlacementState(out.state_file)
      } catch (err) {
        r.fail('placement.state_file', (err as Error).message)
      }
      for (const [tenant, b] of Object.entries(out.moved ?? {}))
        if (!backends[b]) r.fail('placement.state_file', `tenant "${tenant}" is placed on backend "${b}", which is not configured`)
      out.tenants = applyPlacementOverrides(out, out.moved ?? {}, backends).tenants
    }
  }
  return out
}
