// What a client session needs from the proxy around it (kept as an interface so the
// session can be read on its own).
import type { Logger } from 'pino'
import type { Config, UserConfig } from './config-types.js'
import type { Planner } from './planner.js'
import type { BackendConnection } from './backend/connection.js'
import type { Pool } from './backend/pool.js'
import type { ClientSession } from './session.js'
import type { Refusal, RewriteResult, SchemaFacts } from '../parser/types.js'
import type { Route } from '../routing/placement.js'
import type { PreAuthGuard } from './preauth.js'

/** A session's last routing answer, kept on the session by the router (see Router.routeAndPool in server/backend/router.ts). */
export interface RouteMemo {
  generation: number
  tenant: string | null
  /** Citus routes depend on the statement too (touchesTenant, relations); other routes only on the tenant. */
  byStatement: boolean
  touchesTenant: boolean
  relations: readonly string[]
  route: Route
  pool: Pool
  poolKey: string
}

export interface SessionMetrics {
  rewriteObserved(result: RewriteResult | null, seconds: number): void
  refused(session: ClientSession, refusal: Refusal): void
  backendError(session: ClientSession, sqlstate: string): void
  statementSent(session: ClientSession): void
  queryDone(session: ClientSession, seconds: number, rows: number, bytes: number): void
  transactionDone(session: ClientSession): void
  clientAccepted(): void
  /** `detail`: for auth, why (unknown_user, wrong_password, …): pgtenant_auth_failures_total{reason}. */
  clientRefused(reason: 'auth' | 'limit' | 'shutdown' | 'protocol' | 'replication' | 'replication_rate_limited' | 'unknown_database', detail?: string): void
}

export interface ProxyContext {
  /** Answers admin-console queries (database "pgtenant"). */
  readonly admin: { execute(sql: string, session: ClientSession): Buffer[] }
  readonly config: Config
  readonly log: Logger
  readonly planner: Planner
  readonly metrics?: SessionMetrics
  readonly maxMessageBytes: number
  /** Limits before authentication: the session's frame reader and its login timeout (server/preauth.ts). */
  readonly preAuth: Pick<PreAuthGuard, 'reader' | 'loginTimedOut'>
  /** Measure rewrite time per statement (only when Prometheus is on: it costs two clock reads). */
  readonly timingRewrites: boolean
  readonly tlsEnabled: boolean
  /** SSLRequest with TLS configured: answer S and hand the session a TLS socket. */
  startTls(session: ClientSession): void
  cancel(pid: number, secret: number): void
  /** Session pooling: the client's cancel key carries its server connection's pid (login.ts); cancel requests find the session by it too. */
  addServerCancelKey(session: ClientSession, serverPid: number): void
  /** The pid of a new client's cancel key. */
  clientPid(): number
  /** Checks made once the startup packet is read (connection limits, reserved databases). */
  admitClient(session: ClientSession): { code: string; message: string } | null
  findUser(name: string): UserConfig | undefined
  sessionClosed(session: ClientSession): void
  tenantChanged(session: ClientSession): void
  /** ParameterStatus values to report at login. */
  serverParams(session: ClientSession): Promise<Map<string, string>>
  /** A server error on a Citus worker connection (may mean stale shard metadata). */
  workerError(backendName: string, sqlstate: string): void
  /**
   * A server connection for the session if one is idle or may be opened without waiting for
   * another client; null when the session's transactions are held (PAUSE, DISABLE, shutdown),
   * its route is refused, or it would wait.
   */
  acquireWithoutWaiting(session: ClientSession): Promise<{ conn: BackendConnection; pool: Pool }> | null
  /** Where the session's next statement is routed and the pool that serves it (a refusal is thrown, as by acquire). */
  routed(session: ClientSession): RouteMemo
  /** Where the session's statements would be routed with `tenant` as its tenant (the session is not changed; a refusal is thrown). */
  routeFor(session: ClientSession, tenant: string | null): Pick<RouteMemo, 'route' | 'pool'>
  /** An idle server connection for the session's next transaction right now, or null (then use acquire). */
  acquireNow(session: ClientSession): { conn: BackendConnection; pool: Pool } | null
  /** A server connection for the session's next transaction. */
  acquire(session: ClientSession): Promise<{ conn: BackendConnection; pool: Pool }>
  /** The same through a callback, never called before it returns (no Promise per wait: the sessions' path). */
  acquireWith(session: ClientSession, done: (err: Error | null, conn: BackendConnection | null, pool: Pool | null) => void): void
  /** A MOVE TENANT of the session's tenant is pausing it: a session that keeps its server connection between transactions leaves it (backend-link leaveForMove). */
  leavesServerConnection(session: ClientSession): boolean
  /** What the session's tenant limits add to its server connection state (statement_timeout): a state key suffix ('' when none). */
  tenantStateKey(session: ClientSession): string
  /** The SQL that sets it after the state replay ('' when none); `clientSetsTimeout`: the client set its own statement_timeout. */
  tenantStateSql(session: ClientSession, clientSetsTimeout: boolean): string
  /** Schema facts for the session's placement; a promise while they are being discovered for the first time. */
  factsFor(session: ClientSession): SchemaFacts | Promise<void> | undefined
  /** A statement named a relation the facts do not know: rediscover (at most every few seconds). */
  refreshFactsFor(session: ClientSession): Promise<boolean>
  /** Server-side name for a named prepared statement with this text and parameter types. */
  statementName(sql: string, paramTypes: Buffer): string
  /** The schema changed (DDL, or a server's 0A000 on a shared statement): new Parses get new server statements. */
  schemaChanged(): void
  /** How many times the schema changed (statements prepared before may have another result shape now). */
  readonly schemaEpoch: number
}
