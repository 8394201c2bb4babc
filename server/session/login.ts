// A client's login: the startup packet's user and database, authentication (client-auth.ts),
// then either the admin console or the first ParameterStatus/BackendKeyData/ReadyForQuery
// with the values of the server the session starts on. The session (session.ts) hands in
// what it owns through a LoginHost, so this file reads on its own.
import * as be from '../protocol/backend.js'
import type { Frame } from '../protocol/frame-reader.js'
import { BackendError } from '../backend/connection.js'
import { wantsReplication } from './replication.js'
import { authenticate } from '../client-auth.js'
import { resolveDatabase, serverDatabaseOf, setSessionDatabase } from '../databases.js'
import type { UserConfig } from '../config-types.js'
import type { ProxyContext } from '../proxy-context.js'
import type { ClientSession } from '../session.js'

/** What a login needs of its session beyond the session's public fields. */
export interface LoginHost {
  readonly session: ClientSession
  readonly ctx: ProxyContext
  /** The handler of the client's next message while authenticating (null: none). */
  setAuthStep(fn: ((frame: Frame) => void) | null): void
  /** The login is over: stop the login timer and accept messages. */
  loggedIn(): void
  processInput(): void
  applyStartupParams(params: Record<string, string>): void
  unsafeTextSettings(): string | null
  /** Fix the session's pool mode now (it is decided once, at login). */
  fixPoolMode(): void
  refuseReplication(): void
  /** Session pooling: take the client's server connection now; its pid, or null (not session pooled, or none to be had right now). */
  attachAtLogin(): Promise<number | null>
}

export function startLogin(host: LoginHost, params: Record<string, string>): void {
  const { session, ctx } = host
  session.user = params.user ?? ''
  session.database = params.database || session.user
  session.log = session.log.child({ user: session.user, database: session.database })
  if (!session.user) return session.fatal('28000', 'no PostgreSQL user name specified in startup packet')
  if (wantsReplication(params.replication)) return host.refuseReplication()
  const refusal = ctx.admitClient(session)
  if (refusal) {
    ctx.metrics?.clientRefused(refusal.code === '57P03' ? 'shutdown' : 'limit')
    return session.fatal(refusal.code, refusal.message)
  }
  session.state = 'auth'
  authenticate(session, ctx, {
    send: (buf) => session.socket.write(buf),
    onMessage: (fn) => host.setAuthStep(fn),
    done: (user) => finishLogin(host, user, params),
    fail: (code, message, reason) => {
      ctx.metrics?.clientRefused(code === '28P01' || code === '28000' || reason?.startsWith('passthrough') ? 'auth' : 'protocol', reason)
      session.fatal(code, message)
    },
  })
  host.processInput()
}

function finishLogin(host: LoginHost, user: UserConfig, params: Record<string, string>): void {
  const { session, ctx } = host
  session.userConfig = user
  host.setAuthStep(null)
  if (session.isAdminConsole) return finishAdminLogin(host, user)
  // As PostgreSQL: the database is checked after authentication (an unauthenticated client learns nothing).
  const database = resolveDatabase(ctx.config, session.database)
  if (!database) {
    session.log.warn({ reason: 'unknown_database' }, 'client refused: database does not exist')
    ctx.metrics?.clientRefused('unknown_database')
    return session.fatal('3D000', `database "${session.database}" does not exist`)
  }
  setSessionDatabase(session, database)
  host.applyStartupParams(params)
  const unsafe = host.unsafeTextSettings()
  if (unsafe) return session.fatal('0A000', unsafe)
  if (user.tenant !== undefined) session.tenant = user.tenant
  host.fixPoolMode()
  ctx
    .serverParams(session)
    .then(async (serverParams) => {
      if (session.state === 'closed') return
      // Under session pooling the cancel key names the client's server connection, as PostgreSQL's names its backend.
      const serverPid = await host.attachAtLogin()
      if ((session.state as string) === 'closed') return // the client left while the connection was taken
      if (serverPid !== null) ctx.addServerCancelKey(session, serverPid)
      session.socket.write(be.authenticationOk())
      const reported = new Map(serverParams)
      for (const [k, v] of Object.entries(params)) if (reported.has(k) || k === 'application_name') reported.set(k, v)
      const parts: Buffer[] = []
      for (const [k, v] of reported) parts.push(be.parameterStatus(k, v))
      parts.push(be.backendKeyData(serverPid ?? session.pid, session.secret), be.readyForQuery('I'))
      session.socket.write(Buffer.concat(parts))
      host.loggedIn()
      ctx.metrics?.clientAccepted()
      session.log.info({ tenant: session.tenant, ...serverDatabaseOf(ctx.config, database, session.effectiveTenant) }, 'client logged in')
      host.processInput()
    })
    .catch((err: Error) => {
      const code = err instanceof BackendError ? err.sqlstate : '08006'
      session.fatal(code, `pgtenant could not reach the server: ${err.message}`)
    })
}

function finishAdminLogin(host: LoginHost, user: UserConfig): void {
  const { session, ctx } = host
  if (!user.admin) {
    ctx.metrics?.clientRefused('auth', 'not_admin')
    session.log.warn({ reason: 'not_admin' }, 'admin console login refused: user lacks admin: true')
    return session.fatal('28000', `user "${session.user}" is not allowed to use the admin console (needs admin: true)`)
  }
  const parts = [
    be.authenticationOk(),
    be.parameterStatus('server_version', '15.0 (pgtenant admin console)'),
    be.parameterStatus('client_encoding', 'UTF8'),
    be.parameterStatus('standard_conforming_strings', 'on'),
    be.parameterStatus('DateStyle', 'ISO, MDY'),
    be.parameterStatus('integer_datetimes', 'on'),
  ]
  parts.push(be.backendKeyData(session.pid, session.secret), be.readyForQuery('I'))
  session.socket.write(Buffer.concat(parts))
  host.loggedIn()
  session.log.info('admin console login')
  host.processInput()
}
