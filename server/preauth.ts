// Limits on clients that have not logged in yet, as PostgreSQL has them: before
// authentication a message may be at most a few kB (PostgreSQL: a startup packet of
// 10,000 bytes, password and SASL messages of a few kB), a login must finish within
// pool.login_timeout_ms, and at most pool.max_authenticating_connections connections per
// process may be logging in at once. A connection cut off for any of these is destroyed
// (not half-closed: it could keep sending, and the proxy keep reading), logged, and
// counted by reason (pgtenant_client_login_cutoffs_total). An unauthenticated client then
// costs at most its socket and a few kB, and a login timeout frees it for certain.
import type net from 'node:net'
import type { Logger } from 'pino'
import { FrameReader, type MessageTooLarge } from './protocol/frame-reader.js'
import * as be from './protocol/backend.js'
import type { ClientSession } from './session.js'

/**
 * Largest message accepted before authentication. SCRAM's client messages are ~100 bytes
 * and a cleartext/md5 password message ~1 kB at most (PostgreSQL reads passwords with a
 * 1,000-byte limit); 16 KiB leaves room without letting a client buffer megabytes.
 */
export const PRE_AUTH_MAX_MESSAGE_BYTES = 16 * 1024

export type CutOffReason = 'login_timeout' | 'message_too_large' | 'too_many_authenticating'

export interface PreAuthHost {
  readonly log: Logger
  readonly maxMessageBytes: number
  /** Current limits (they change on reload). */
  limits(): { loginTimeoutMs: number; maxAuthenticating: number }
  cutOff(reason: CutOffReason): void
}

export class PreAuthGuard {
  /** Sessions accepted and not yet authenticated (swept lazily: see authenticating). */
  private readonly pending = new Set<ClientSession>()

  constructor(private readonly host: PreAuthHost) {}

  /** Connections still logging in (not authenticated, not closed). */
  get authenticating(): number {
    for (const s of this.pending) if (!isPreAuth(s)) this.pending.delete(s)
    return this.pending.size
  }

  /**
   * A new connection: false (and the socket refused with 53300 and destroyed) when too
   * many are logging in already. Sweeping the set here keeps it to sessions still logging in.
   */
  admit(socket: net.Socket): boolean {
    const max = this.host.limits().maxAuthenticating
    if (this.authenticating < max) return true
    this.host.cutOff('too_many_authenticating')
    this.host.log.warn(
      { client: `${socket.remoteAddress}:${socket.remotePort}`, authenticating: this.pending.size, max },
      'client cut off: too many connections still logging in',
    )
    socket.on('error', () => undefined)
    socket.end(
      be.errorResponse({ severity: 'FATAL', code: '53300', message: `too many connections still logging in (pool.max_authenticating_connections is ${max})` }),
    )
    destroySoon(socket)
    return false
  }

  track(session: ClientSession): void {
    this.pending.add(session)
  }

  /** The reader a new session frames its input with: small messages only until it has authenticated. */
  reader(session: ClientSession): FrameReader {
    return new FrameReader(this.host.maxMessageBytes, {
      limit: () => (isPreAuth(session) ? PRE_AUTH_MAX_MESSAGE_BYTES : this.host.maxMessageBytes),
      onTooLarge: (err) => this.tooLarge(session, err),
    })
  }

  /** The session's login timer fired. */
  loginTimedOut(session: ClientSession): void {
    if (session.state === 'closed' || session.state === 'ready') return
    this.host.cutOff('login_timeout')
    session.log.warn({ state: session.state, ms: Date.now() - session.connectedAt }, 'client cut off: login timed out')
    session.fatal('08006', 'login timed out: the client did not finish startup and authentication in time')
    destroySoon(session.socket) // fatal only ends it: a client that keeps sending would keep it open
  }

  /** A session closed: one that never authenticated may have been only half-closed (a FATAL, then end): destroy it. */
  closed(session: ClientSession): void {
    const wasPending = this.pending.delete(session)
    if (wasPending && session.userConfig === null) destroySoon(session.socket)
  }

  private tooLarge(session: ClientSession, err: MessageTooLarge): void {
    if (!isPreAuth(session)) return // a logged-in client's oversized message is a protocol error like any other
    this.host.cutOff('message_too_large')
    session.log.warn({ length: err.length, limit: err.limit, state: session.state }, 'client cut off: message too large before authentication')
    // The session answers the ProtocolViolation with a FATAL and ends the socket; then it goes.
    destroySoon(session.socket)
  }
}

function isPreAuth(session: ClientSession): boolean {
  return session.userConfig === null && session.state !== 'closed'
}

/** Destroy after the current turn, so that a FATAL written in this turn reaches the kernel first. */
function destroySoon(socket: net.Socket): void {
  setImmediate(() => socket.destroy())
}
