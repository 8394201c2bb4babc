// Authenticates a client against `users`: SCRAM-SHA-256 (default) or md5. A wrong
// password and an unknown user get the same 28P01 error after the same exchange.
import { randomBytes } from 'node:crypto'
import * as be from './protocol/backend.js'
import { decodeSaslInitial, decodePasswordPayload } from './protocol/frontend.js'
import type { Frame } from './protocol/frame-reader.js'
import { ScramServer, scramSecretFromPassword, parseScramVerifier, fakeScramSecret, type ScramSecret } from './auth/scram.js'
import { verifyMd5 } from './auth/md5.js'
import type { TLSSocket } from 'node:tls'
import type { BackendUrl, Config, PassthroughConfig, UserConfig } from './config-types.js'
import { checkPassword } from './auth/passthrough.js'
import { resolveDatabase } from './databases.js'
import type { ProxyContext } from './proxy-context.js'
import type { ClientSession } from './session.js'

export interface AuthIO {
  send(buf: Buffer): void
  onMessage(handler: (frame: Frame) => void): void
  done(user: UserConfig): void
  /** `reason` (for the log and metrics only, never the client): unknown_user, wrong_password, … */
  fail(code: string, message: string, reason?: string): void
}

const secretCache = new Map<string, ScramSecret>()

/** SCRAM secret for a configured password (plain passwords are salted once per process). */
function secretFor(name: string, user: UserConfig | undefined): ScramSecret {
  if (!user || user.password === '') return fakeScramSecret(name)
  if (user.password.startsWith('SCRAM-SHA-256$')) return parseScramVerifier(user.password)
  if (user.password.startsWith('md5') && user.password.length === 35) return fakeScramSecret(name) // cannot do SCRAM with an md5 hash
  const key = `${name}\u0000${user.password}`
  let s = secretCache.get(key)
  if (!s) {
    s = scramSecretFromPassword(user.password)
    secretCache.set(key, s)
  }
  return s
}

/** Settings of a user not in `users` (passthrough, trust: loopback): a tenant session, not pinned, not bypass, no admin console. */
function unlistedUser(): UserConfig {
  return { password: '', bypass: false, admin: false }
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped form. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false
  const a = address.startsWith('::ffff:') ? address.slice(7) : address
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a)
}

/** How a user logs in: its password from `users`, trusted, or checked on the server. */
export function loginMethod(config: Config, user: UserConfig | undefined, remoteAddress: string | undefined): 'password' | 'trust' | 'passthrough' {
  if (user?.trust || (config.trust === 'loopback' && isLoopback(remoteAddress))) return 'trust'
  if (config.passthrough && (!user || user.password === '')) return 'passthrough'
  return 'password'
}

/** What start-up should warn about: logins without a password, clear-text passwords over plain connections. */
export function authWarnings(config: Config): string[] {
  const out: string[] = []
  if (config.trust === 'loopback')
    out.push('trust: loopback: every client connecting from a loopback address logs in without a password (local development only)')
  for (const [name, u] of Object.entries(config.users))
    if (u.trust) out.push(`users.${name}.trust: user "${name}" logs in without a password from any address (local development only)`)
  if (config.passthrough?.plaintext === 'allow')
    out.push('passthrough.plaintext: allow: clear-text passwords of passthrough users may cross unencrypted connections')
  return out
}

export function authenticate(session: ClientSession, ctx: ProxyContext, io: AuthIO): void {
  const listed = ctx.findUser(session.user)
  const client = `${session.socket.remoteAddress}:${session.socket.remotePort}`
  // The client sees the same message whatever the reason; the log and the metrics say which.
  const failed = (why?: string): void => {
    const reason =
      why ??
      (!listed || listed.password === ''
        ? 'unknown_user'
        : ctx.config.auth !== 'md5' && listed.password.startsWith('md5') && listed.password.length === 35
          ? 'md5_hash_with_scram'
          : 'wrong_password')
    session.log.warn({ reason, client }, 'password authentication failed')
    io.fail('28P01', `password authentication failed for user "${session.user}"`, reason)
  }
  const method = loginMethod(ctx.config, listed, session.socket.remoteAddress)
  if (method === 'trust') {
    session.log.info({ client, reason: listed?.trust ? 'user' : 'loopback' }, 'trusted login: no password asked')
    return io.done(listed ?? unlistedUser())
  }
  if (method === 'passthrough') {
    const encrypted = (session.socket as TLSSocket).encrypted === true
    if (encrypted || isLoopback(session.socket.remoteAddress) || ctx.config.passthrough?.plaintext === 'allow')
      return passthrough(session, ctx, io, listed, failed)
    // The password would cross the network in clear text: the same exchange as an unknown user.
    return scramOrMd5(session, ctx, io, undefined, () => failed('passthrough_needs_tls'))
  }
  scramOrMd5(session, ctx, io, listed, failed)
}

/** Ask for the password in clear text and check it on the server (server/auth/passthrough.ts). */
function passthrough(session: ClientSession, ctx: ProxyContext, io: AuthIO, listed: UserConfig | undefined, failed: (why?: string) => void): void {
  const settings = ctx.config.passthrough as PassthroughConfig
  io.send(be.authenticationCleartext())
  io.onMessage((frame) => {
    if (frame.type !== 0x70) return io.fail('08P01', 'expected a password message')
    io.onMessage(() => io.fail('08P01', 'unexpected message during authentication'))
    const password = decodePasswordPayload(frame).toString('utf8').replace(/\0$/, '')
    if (password === '') return failed('empty_password')
    const target = passthroughTarget(ctx.config, session)
    if (!target) return failed('passthrough_no_backend')
    checkPassword({ ...target, user: session.user, password }, settings.cache_ttl_ms, ctx.config.pool.connect_timeout_ms).then(
      (result) => {
        if (session.state === 'closed') return
        if (result.ok) {
          session.log.debug({ cached: result.cached }, 'passthrough password checked')
          return io.done({ ...(listed ?? unlistedUser()), password })
        }
        if (result.rejected) {
          session.log.info(
            { server: `${target.host}:${target.port}`, database: target.database, reason: result.message },
            'passthrough: the server refused the password',
          )
          return failed('passthrough_rejected')
        }
        session.log.warn(
          { server: `${target.host}:${target.port}`, database: target.database, sqlstate: result.sqlstate, reason: result.message },
          'passthrough: could not check the password on the server',
        )
        io.fail('08006', `pgtenant could not reach the server to check the password: ${result.message}`, 'passthrough_server_error')
      },
      (err: Error) => io.fail('08006', `pgtenant could not check the password: ${err.message}`, 'passthrough_server_error'),
    )
  })
}

/**
 * Where a passthrough password is checked: `passthrough.backend`, else the backend of the
 * database the client named (with its `dbname`), else `placement.default`; never a
 * database per tenant (null then).
 */
function passthroughTarget(config: Config, session: ClientSession): { host: string; port: number; database: string; sslmode: BackendUrl['sslmode'] } | null {
  const pick = (name: string | undefined, dbname?: string) => {
    const b = name !== undefined ? config.backends[name] : undefined
    if (!b || b.url.perTenant) return null
    return { host: b.url.host, port: b.url.port, database: dbname ?? b.url.database, sslmode: b.url.sslmode }
  }
  if (config.passthrough?.backend) return pick(config.passthrough.backend)
  const db = session.isAdminConsole ? null : resolveDatabase(config, session.database)
  return (db && pick(db.backend, db.dbname)) ?? pick(config.placement.default)
}

/** The password exchange for a listed user (undefined: one that fails the same way, for anyone else). */
function scramOrMd5(session: ClientSession, ctx: ProxyContext, io: AuthIO, user: UserConfig | undefined, failed: () => void): void {
  if (ctx.config.auth === 'md5') {
    const salt = randomBytes(4)
    io.send(be.authenticationMd5(salt))
    io.onMessage((frame) => {
      if (frame.type !== 0x70) return io.fail('08P01', 'expected a password message')
      const response = decodePasswordPayload(frame).toString('utf8').replace(/\0$/, '')
      if (user && user.password !== '' && verifyMd5(user.password, session.user, salt, response)) io.done(user)
      else failed()
    })
    return
  }
  const scram = new ScramServer(secretFor(session.user, user))
  io.send(be.authenticationSasl(['SCRAM-SHA-256']))
  io.onMessage((first) => {
    try {
      if (first.type !== 0x70) return io.fail('08P01', 'expected a SASL initial response')
      const initial = decodeSaslInitial(first)
      if (initial.mechanism !== 'SCRAM-SHA-256') {
        session.log.warn({ reason: 'unsupported_mechanism', mechanism: initial.mechanism }, 'authentication failed')
        return io.fail('28000', `SASL mechanism "${initial.mechanism}" is not supported (use SCRAM-SHA-256)`, 'unsupported_mechanism')
      }
      io.send(be.authenticationSaslContinue(scram.handleClientFirst(initial.data)))
      io.onMessage((final) => {
        try {
          if (final.type !== 0x70) return io.fail('08P01', 'expected a SASL response')
          const result = scram.handleClientFinal(decodePasswordPayload(final).toString('utf8'))
          if (!result.ok || !user) return failed()
          io.send(be.authenticationSaslFinal(result.serverFinal as string))
          io.done(user)
        } catch {
          failed()
        }
      })
    } catch (err) {
      io.fail('08P01', `malformed SCRAM message: ${(err as Error).message}`)
    }
  })
}
