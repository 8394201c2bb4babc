// Authenticates a client against `users`: SCRAM-SHA-256 (default) or md5. A wrong
// password and an unknown user get the same 28P01 error after the same exchange.
import { randomBytes } from 'node:crypto'
import * as be from './protocol/backend.js'
import { decodeSaslInitial, decodePasswordPayload } from './protocol/frontend.js'
import type { Frame } from './protocol/frame-reader.js'
import { ScramServer, scramSecretFromPassword, parseScramVerifier, fakeScramSecret, type ScramSecret } from './auth/scram.js'
import { verifyMd5 } from './auth/md5.js'
import type { UserConfig } from './config-types.js'
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
  if (!user) return fakeScramSecret(name)
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

export function authenticate(session: ClientSession, ctx: ProxyContext, io: AuthIO): void {
  const user = ctx.findUser(session.user)
  // The client sees the same message whatever the reason; the log and the metrics say which.
  const failed = (): void => {
    const reason = !user ? 'unknown_user' : ctx.config.auth !== 'md5' && user.password.startsWith('md5') && user.password.length === 35 ? 'md5_hash_with_scram' : 'wrong_password'
    session.log.warn({ reason, client: `${session.socket.remoteAddress}:${session.socket.remotePort}` }, 'password authentication failed')
    io.fail('28P01', `password authentication failed for user "${session.user}"`, reason)
  }
  if (ctx.config.auth === 'md5') {
    const salt = randomBytes(4)
    io.send(be.authenticationMd5(salt))
    io.onMessage((frame) => {
      if (frame.type !== 0x70) return io.fail('08P01', 'expected a password message')
      const response = decodePasswordPayload(frame).toString('utf8').replace(/\0$/, '')
      if (user && verifyMd5(user.password, session.user, salt, response)) io.done(user)
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
