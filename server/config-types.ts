// The validated, normalised configuration (see DESIGN.md "Configuration" and README).
// server/config.ts turns YAML text into this; everything else reads only this shape.

export interface HostPort {
  host: string
  port: number
}

export interface UserConfig {
  /** Plain password, or a SCRAM verifier "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>", or an md5 hash "md5<32 hex>". */
  password: string
  /** Tenant pinned by login: the user cannot change it. */
  tenant?: string
  /** No rewriting (migrations, ops). */
  bypass: boolean
  /** May use the admin console (database "pgtenant"). */
  admin: boolean
  /** Overrides the backend's and the global pool mode for this user's clients (PgBouncer's per-user pool_mode). */
  pool_mode?: 'transaction' | 'session'
  /** Logs in without a password (local development; warned about at start-up). */
  trust?: boolean
}

/** Passthrough authentication: users not in `users`, or listed without a password, are checked against the server. */
export interface PassthroughConfig {
  /** Where passwords are checked (its URL's host, port and database); absent: the backend of the client's database. */
  backend?: string
  /** A successful check is remembered (a salted hash, in memory) this long; 0: every login asks the server. */
  cache_ttl_ms: number
  /** loopback (default): the clear-text password only over TLS or from a loopback address; allow: over any connection. */
  plaintext: 'loopback' | 'allow'
}

export interface BackendUrl {
  host: string
  port: number
  database: string
  /** Absent: connect as the client's own user with its password from `users`. */
  user?: string
  password?: string
  /** libpq sslmode: disable | allow | prefer | require | verify-ca | verify-full. Default prefer. */
  sslmode: 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full'
  /** Raw URL (with `{tenant}` placeholders kept), for logs with the password masked. */
  raw: string
  /** True when `{tenant}` appears in the URL: one database per tenant. */
  perTenant: boolean
}

export interface BackendConfig {
  name: string
  url: BackendUrl
  /** Max server connections per pool (one pool per backend, database and user). */
  pool: number
  citus: boolean
  /** Overrides pool.mode for clients whose login lands on this backend (PgBouncer's per-database pool_mode). */
  pool_mode?: 'transaction' | 'session'
}

/** A client database name (PgBouncer's [databases] entry): which backend, and optionally which database on its server. */
export interface DatabaseConfig {
  backend: string
  /** The server database; absent: the backend URL's (for "*": the name the client gave). */
  dbname?: string
}

export interface TenantConfig {
  setting: string
  column: string
  tables: Record<string, string>
  reference: string[]
  unknown: 'reject' | 'allow'
  /** Valid tenant values (a tenant is put into database URLs). */
  pattern: string
  /** How many of the most active tenants keep their own metrics label (the rest: "_other"); 0 = none. */
  metrics_top?: number
  /** Functions outside pg_catalog tenant sessions may call ("name" or "schema.name"). */
  functions?: string[]
  /** reject (default): only `functions`; allow: every function outside pg_catalog (their bodies run unrewritten SQL). */
  user_functions?: 'reject' | 'allow'
}

export interface PoolConfig {
  mode: 'transaction' | 'session'
  max_client_connections: number
  /** A client waiting longer than this for a server connection gets 53300/57014-style error. */
  wait_timeout_ms: number
  connect_timeout_ms: number
  /** Idle server connections are closed after this. */
  idle_timeout_ms: number
  /** A client must finish startup+auth within this. */
  login_timeout_ms: number
  /** Client connections (per process) that may be logging in at once; more are refused with 53300. */
  max_authenticating_connections: number
  /** Idle clients (no transaction open) are disconnected after this; 0 = never. */
  client_idle_timeout_ms: number
  /** On SIGTERM, running transactions get this long before connections are closed. */
  shutdown_timeout_ms: number
  /** Global cap on backend connections across all pools. */
  max_server_connections: number
  /** Shared prepared statements kept per server connection, least recently used closed first; 0 = unlimited. */
  max_prepared_statements: number
}

/** One tenant's limits (tenant_limits.default, or merged with tenant_limits.tenants.NAME). 0 means no limit. */
export interface TenantLimitValues {
  /** Server connections the tenant may hold at once in one pool; 0 = no limit (see max_connections_pct). */
  max_connections: number
  /** "N%": the limit is this share of the pool's size (at least 1); overrides max_connections when set. */
  max_connections_pct?: number
  /** Clients of the tenant waiting (for a server connection or a rate token) at once; more get 53300 at once. */
  max_waiting: number
  /** Transactions a second (token bucket); 0 = no limit. */
  tps: number
  /** Tokens the bucket holds (transactions that may start at once after a quiet period); default max(1, tps). */
  burst: number
  /** statement_timeout set on the server connection for the tenant's transactions; 0 = the server's own. */
  statement_timeout_ms: number
  /** How long a client waits over a limit before its error; default pool.wait_timeout_ms. */
  wait_timeout_ms: number
  /** Share of hand-outs when tenants wait for one pool (fair scheduling): weight 2 gets twice weight 1's. */
  weight: number
}

/** Per-tenant limits and fair scheduling (tenant_limits:). */
export interface TenantLimitsConfig {
  default: TenantLimitValues
  /** Overrides by tenant; keys absent there take the default's. */
  tenants: Record<string, Partial<TenantLimitValues>>
}

export interface Config {
  listen: HostPort
  metrics?: HostPort
  tls?: { cert: string; key: string; certPath: string; keyPath: string }
  /** How clients authenticate: scram-sha-256 (default) or md5 (md5 needs plain passwords in `users`). */
  auth: 'scram-sha-256' | 'md5'
  users: Record<string, UserConfig>
  /** Users not in `users` (or without a password) log in with their server password, checked on the server. */
  passthrough?: PassthroughConfig
  /** loopback: every client connecting from a loopback address logs in without a password (local development). Default off. */
  trust?: 'off' | 'loopback'
  tenant?: TenantConfig
  backends: Record<string, BackendConfig>
  /** Client database name -> backend (and server database); "*" is the fallback. Absent: backend names and their URLs' databases (server/databases.ts). */
  databases?: Record<string, DatabaseConfig>
  placement: {
    default: string
    /** placement.tenants with the placement state file's entries laid over it (they win). */
    tenants: Record<string, string>
    /** MOVE TENANT writes the tenants it moved here (JSON, atomically); read at start and reload. */
    state_file?: string
    /** The entries read from state_file (also in `tenants`). */
    moved?: Record<string, string>
    /** How long MOVE TENANT waits for the tenant's running transactions (ms, default 30000). */
    move_wait_ms?: number
  }
  pool: PoolConfig
  /** Per-tenant limits (absent: none; tenants still share a pool fairly). */
  tenant_limits?: TenantLimitsConfig
  /** Statements slower than this (client-visible) are logged with literals replaced; 0 = off. */
  log?: { slow_statement_ms: number; /** A stats line this often (default 60000; 0 = none). */ stats_interval_ms?: number }
  /** Citus metadata refresh period. */
  citus?: { refresh_interval_ms: number }
  log_level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'
  /** json (default, one object a line) or pretty (readable time and level, for a terminal). */
  log_format?: 'json' | 'pretty'
  /** Processes serving clients (Node cluster, the listening socket shared); pools are split among them. */
  workers: number
}
