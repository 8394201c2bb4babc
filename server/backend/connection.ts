// One server connection: connects (TLS per sslmode), logs in (SCRAM-SHA-256, md5,
// cleartext, trust), then hands its raw byte stream to whichever client session is
// attached. Nothing here decodes query traffic.
import net from 'node:net'
import tls from 'node:tls'
import { PassThrough } from 'node:stream'
import { serialize, parseBackend } from '../protocol/pg-protocol.js'
import type { BackendMessage } from 'pg-protocol/dist/messages.js'
import { ScramClient } from '../auth/scram.js'
import { md5Response } from '../auth/md5.js'
import { FrameReader } from '../protocol/frame-reader.js'
import { writeAll } from '../protocol/output.js'
import { markReused } from '../protocol/reused-memory.js'
import { PreparedStatements } from './prepared.js'

export interface BackendTarget {
  host: string
  port: number
  database: string
  user: string
  password?: string
  sslmode: 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full'
  /** application_name at login: set for the proxy's own catalog reads ("pgtenant catalog"), which are not pool connections. */
  applicationName?: string
  /** Told about every failed connect attempt, whatever the stage (the proxy logs and counts it). */
  onConnectFailed?: (err: BackendError) => void
}

export class BackendError extends Error {
  constructor(
    message: string,
    readonly sqlstate: string,
  ) {
    super(message)
  }
}

export interface AttachedHandler {
  /**
   * Bytes from the server. Return true when nothing refers to `chunk` after the call: on
   * plain-TCP connections it is a view of a read buffer that the next read overwrites,
   * so a handler that keeps it (or leaves it queued in a socket write) returns false.
   */
  onData(chunk: Buffer): boolean
  onClose(error: Error | null): void
}

let nextConnectionId = 1

export class BackendConnection {
  readonly id = nextConnectionId++
  pid = 0
  secret = 0
  readonly params = new Map<string, string>()
  /** Server-side names of the shared prepared statements on this connection (bounded, least recently used out: prepared.ts). */
  readonly prepared = new PreparedStatements()
  /** Which client's unnamed statement is currently parsed here (unnamed statements are per connection). */
  get unnamedOwner(): object | null {
    return this.unnamed
  }
  /** Identity of the session state (settings, tenant) last applied on this connection. */
  get stateKey(): string {
    return this.state
  }
  private unnamed: object | null = null
  private state = ''

  /** A client's Parse of the unnamed statement was sent here: `token` owns it until another one is. */
  claimUnnamed(token: object): void {
    this.unnamed = token
  }

  /** The unnamed statement is gone or replaced (a failed Parse of `token`, or anyone's when no token is given). */
  releaseUnnamed(token?: object): void {
    if (token === undefined || this.unnamed === token) this.unnamed = null
  }

  /** The session state `key` names is what this connection now has (replayed, or run by the client itself). */
  stateApplied(key: string): void {
    this.state = key
  }

  /** The connection's session state is no longer known (a setting changed on it, DISCARD ALL). */
  forgetState(): void {
    this.state = ''
  }

  /** DISCARD ALL / DEALLOCATE ALL ran: no statement, prepared or unnamed, is left on the server. */
  forgetStatements(): void {
    this.prepared.clear()
    this.unnamed = null
  }
  lastUsed = Date.now()
  closed = false
  /** Set by the pool while the connection is idle in it: the server closed it (killed, restarted), take it out now. */
  onIdleClose: ((conn: BackendConnection) => void) | null = null
  private handler: AttachedHandler | null = null
  /** While logging in, bytes go to the standard client-side codec; afterwards they pass raw. */
  private loginStream: PassThrough | null = null
  /** Frames login replies so that a bad length fails the login at once instead of waiting for bytes that never come. */
  private loginFrames: FrameReader | null = null
  private loginFailed: ((err: Error) => void) | null = null

  private constructor(
    readonly socket: net.Socket,
    readonly target: BackendTarget,
    private readonly reader: ReusedReadBuffer | null,
  ) {
    socket.setNoDelay(true)
    if (reader) reader.deliver = (chunk) => this.received(chunk, true)
    else socket.on('data', (chunk: Buffer) => this.received(chunk, false))
    socket.on('error', () => undefined)
    socket.on('close', () => {
      this.closed = true
      const h = this.handler
      this.handler = null
      if (h) h.onClose(new BackendError('server connection closed unexpectedly', '08006'))
      else this.onIdleClose?.(this)
    })
  }

  /**
   * Connects and logs in within `timeoutMs` in all (TCP, SSLRequest, TLS, startup,
   * authentication). Every way a server can fail — refuse, reset, close, stall, answer
   * garbage — at every stage rejects with a BackendError and destroys every socket the
   * attempt made; nothing is left unsettled or listening, and no socket is ever without
   * an 'error' listener (an unhandled 'error' event would end the process).
   */
  static connect(target: BackendTarget, timeoutMs: number): Promise<BackendConnection> {
    return new Promise((resolve, reject) => {
      const attempt: Attempt = { sockets: [], settled: false }
      const where = `${target.host}:${target.port}`
      const fail = (err: Error): void => {
        if (attempt.settled) return
        attempt.settled = true
        clearTimeout(timer)
        for (const s of attempt.sockets) s.destroy()
        const e = err instanceof BackendError ? err : new BackendError(`connection to server ${where} failed: ${err.message}`, '08006')
        target.onConnectFailed?.(e)
        reject(e)
      }
      const timer = setTimeout(() => fail(new BackendError(`connecting to server ${where} timed out after ${timeoutMs} ms`, '08001')), timeoutMs)
      openSocket(target, attempt).then(({ socket, reader }) => {
        if (attempt.settled) return
        const conn = new BackendConnection(socket, target, reader)
        conn.login().then(() => {
          if (attempt.settled) return conn.close()
          attempt.settled = true
          clearTimeout(timer)
          resolve(conn)
        }, fail)
      }, fail)
    })
  }

  /** `reused`: chunk is a view of the connection's read buffer (see ReusedReadBuffer). */
  private received(chunk: Buffer, reused: boolean): void {
    if (this.loginStream) this.loginReceived(reused ? Buffer.from(chunk) : chunk)
    else if (this.handler) {
      if (!this.handler.onData(chunk) && reused) this.reader?.renew()
    } else this.closeGently() // a server talking while idle (a FATAL before it exits, or out of step): drop it
  }

  /**
   * Close, but let the server close its end first (it does as its backend exits): until the
   * socket's 'close' the connection still counts in its pool (the FATAL of a terminated backend
   * arrives before the backend has left pg_stat_activity). Cut off after RETIRE_FALLBACK_MS.
   */
  private closeGently(): void {
    if (this.closed) return
    this.closed = true
    this.socket.end(serialize.end())
    if (this.socket.isPaused()) this.socket.resume()
    setTimeout(() => this.socket.destroy(), RETIRE_FALLBACK_MS).unref()
  }

  private loginReceived(chunk: Buffer): void {
    const frames = this.loginFrames as FrameReader
    frames.push(chunk)
    try {
      for (let f = frames.next(); f && this.loginStream; f = frames.next()) this.loginStream.write(f.raw)
    } catch (err) {
      this.loginFailed?.(new BackendError(`bad login response from server: ${(err as Error).message}`, '08P01'))
    }
  }

  attach(handler: AttachedHandler): void {
    this.handler = handler
    this.lastUsed = Date.now()
    this.prepared.epoch++ // statements used from here on stay until the next attachment
  }

  detach(): void {
    this.handler = null
    this.lastUsed = Date.now()
    // A client that read slowly may have left it paused (its last reply filled the client's
    // socket); idle, it must read again so a closing server is noticed and the next client's
    // replies flow.
    if (this.socket.isPaused()) this.socket.resume()
  }

  get attached(): boolean {
    return this.handler !== null
  }

  /** Through the one write path (server/protocol/output.ts); false: over the socket's high-water mark. */
  write(buf: Buffer): boolean {
    return writeAll(this.socket, [buf])
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    if (!this.socket.destroyed) {
      this.socket.end(serialize.end())
      this.socket.destroy()
    }
  }

  /**
   * Close for good and settle when the server has closed its end too, which it does as its
   * backend process exits (after leaving pg_stat_activity): until then the connection still
   * counts against the pool's promise to the database. A server that does not close within
   * `timeoutMs` (busy, unreachable) is cut off and settles then.
   */
  retire(timeoutMs: number): Promise<void> {
    this.onIdleClose = null
    if (this.socket.destroyed) {
      this.closed = true
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy()
        resolve()
      }, timeoutMs)
      this.socket.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      if (!this.closed) {
        this.closed = true
        this.socket.end(serialize.end())
      }
      if (this.socket.isPaused()) this.socket.resume() // the server's close must be read to be seen
    })
  }

  /** Sends a CancelRequest for whatever this connection is running, on a new socket. */
  cancel(): void {
    const s = ignoreErrors(net.connect({ host: this.target.host, port: this.target.port }))
    // A server that neither answers nor closes must not keep the socket forever.
    s.setTimeout(CANCEL_TIMEOUT_MS, () => s.destroy())
    s.on('connect', () => s.end(serialize.cancel(this.pid, this.secret)))
  }

  private login(): Promise<void> {
    const { user, database, password } = this.target
    const stream = new PassThrough()
    this.loginStream = stream
    this.loginFrames = new FrameReader(MAX_LOGIN_MESSAGE_BYTES)
    return new Promise<void>((resolve, reject) => {
      let scram: ScramClient | null = null
      let settled = false
      const finish = (err?: Error): void => {
        if (settled) return
        settled = true
        this.loginStream = null
        this.loginFrames = null
        this.loginFailed = null
        stream.end()
        if (err) reject(err)
        else resolve()
      }
      const onMessage = (msg: BackendMessage): void => {
        if (settled) return
        const m = msg as any
        try {
          switch (msg.name) {
            case 'authenticationCleartextPassword':
              this.socket.write(serialize.password(requirePassword(password)))
              break
            case 'authenticationMD5Password':
              this.socket.write(serialize.password(md5Response(user, requirePassword(password), Buffer.from(m.salt))))
              break
            case 'authenticationSASL':
              if (!m.mechanisms.includes('SCRAM-SHA-256'))
                throw new BackendError(`server offers no supported SASL mechanism (${m.mechanisms.join(', ')})`, '28000')
              scram = new ScramClient(user, requirePassword(password))
              this.socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirst()))
              break
            case 'authenticationSASLContinue':
              this.socket.write(serialize.sendSCRAMClientFinalMessage((scram as ScramClient).handleServerFirst(m.data)))
              break
            case 'authenticationSASLFinal':
              ;(scram as ScramClient).verifyServerFinal(m.data)
              break
            case 'parameterStatus':
              this.params.set(m.parameterName, m.parameterValue)
              break
            case 'backendKeyData':
              this.pid = m.processID
              this.secret = m.secretKey
              break
            case 'error':
              finish(new BackendError(m.message, m.code ?? '08006'))
              break
            case 'readyForQuery':
              finish()
              break
          }
        } catch (err) {
          finish(err instanceof BackendError ? err : new BackendError(`login to server failed: ${(err as Error).message}`, '28000'))
        }
      }
      this.loginFailed = finish
      parseBackend(stream, onMessage).catch((err: Error) => finish(new BackendError(`bad login response from server: ${err.message}`, '08P01')))
      this.socket.once('close', () => finish(new BackendError('server closed the connection during login', '08006')))
      const startup: Record<string, string> = { user, database, client_encoding: 'UTF8' }
      if (this.target.applicationName) startup.application_name = this.target.applicationName
      this.socket.write(serialize.startup(startup))
    })
  }
}

function requirePassword(password: string | undefined): string {
  if (password === undefined) throw new BackendError('server asked for a password but none is configured for this user', '28P01')
  return password
}

/**
 * Reads of a plain-TCP server connection land in one reused buffer (Node's `onread`), which
 * skips a Buffer allocation and the Readable stream machinery per read. When a handler
 * keeps a view of it, `renew` gives later reads a fresh buffer and leaves the old one to it.
 * It is registered as reused memory: the write path copies views of it that it cannot hand
 * to the kernel at once (server/protocol/output.ts).
 */
class ReusedReadBuffer {
  private buffer = markReused(Buffer.allocUnsafeSlow(READ_BUFFER_BYTES))
  deliver: (chunk: Buffer) => void = () => undefined

  renew(): void {
    this.buffer = markReused(Buffer.allocUnsafeSlow(READ_BUFFER_BYTES))
  }

  get options(): net.OnReadOpts {
    return {
      buffer: () => this.buffer,
      callback: (n: number, buf: Uint8Array): boolean => {
        this.deliver((buf as Buffer).subarray(0, n))
        return true // keep reading (backpressure pauses the socket explicitly)
      },
    }
  }
}

const READ_BUFFER_BYTES = 64 * 1024
const CANCEL_TIMEOUT_MS = 10_000
/** How long a closing connection waits for the server to close its end before cutting it off. */
const RETIRE_FALLBACK_MS = 5_000
/** No login reply (authentication request, ParameterStatus, BackendKeyData, an error) is anywhere near this. */
const MAX_LOGIN_MESSAGE_BYTES = 1024 * 1024

/** One connection attempt: every socket it made (destroyed when it fails) and whether it is over. */
interface Attempt {
  sockets: net.Socket[]
  settled: boolean
}

function ignoreErrors(socket: net.Socket): net.Socket {
  socket.on('error', () => undefined) // errors are handled through 'close' and the attempt's own listeners
  return socket
}

/** A connected socket; `reader` is set unless the connection went over TLS. Rejects on any failure before it is ready. */
function openSocket(target: BackendTarget, attempt: Attempt): Promise<{ socket: net.Socket; reader: ReusedReadBuffer | null }> {
  const where = `${target.host}:${target.port}`
  return new Promise((resolve, reject) => {
    const reader = new ReusedReadBuffer()
    const socket = ignoreErrors(net.connect({ host: target.host, port: target.port, onread: reader.options }))
    attempt.sockets.push(socket)
    let connected = false
    socket.once('error', (err) => {
      if (!connected) reject(new BackendError(`could not connect to server ${where}: ${err.message}`, '08001'))
      else reject(new BackendError(`connection to server ${where} failed while negotiating TLS: ${err.message}`, '08006'))
    })
    socket.once('close', () => reject(new BackendError(`server ${where} closed the connection before it was established`, '08006')))
    socket.once('connect', () => {
      connected = true
      if (target.sslmode === 'disable' || target.sslmode === 'allow') return resolve({ socket, reader })
      negotiateTls(socket, reader, target, attempt).then(resolve, reject)
    })
  })
}

function negotiateTls(
  socket: net.Socket,
  reader: ReusedReadBuffer,
  target: BackendTarget,
  attempt: Attempt,
): Promise<{ socket: net.Socket; reader: ReusedReadBuffer | null }> {
  const where = `${target.host}:${target.port}`
  return new Promise((resolve, reject) => {
    reader.deliver = (answer: Buffer) => {
      reader.deliver = () => undefined
      // One byte, and nothing after it: bytes that follow an 'S' before the handshake could
      // have been injected by a man in the middle (as libpq refuses them).
      if (answer.length !== 1 || (answer[0] !== 0x53 /* S */ && answer[0] !== 0x4e) /* N */) {
        return reject(
          new BackendError(`server ${where} sent an invalid answer to SSLRequest (${answer.length} bytes, first 0x${answer[0].toString(16)})`, '08P01'),
        )
      }
      if (answer[0] === 0x53) {
        // TLS reads the socket itself from here on; the reused buffer is no longer involved.
        const secure = tls.connect({
          socket,
          servername: net.isIP(target.host) ? undefined : target.host,
          rejectUnauthorized: target.sslmode === 'verify-ca' || target.sslmode === 'verify-full',
          checkServerIdentity: target.sslmode === 'verify-full' ? tls.checkServerIdentity : () => undefined,
        })
        ignoreErrors(secure as unknown as net.Socket)
        attempt.sockets.push(secure as unknown as net.Socket)
        secure.once('secureConnect', () => resolve({ socket: secure as unknown as net.Socket, reader: null }))
        secure.once('error', (err) => reject(new BackendError(`TLS to server ${where} failed: ${err.message}`, '08001')))
        secure.once('close', () => reject(new BackendError(`server ${where} closed the connection during the TLS handshake`, '08006')))
      } else if (target.sslmode === 'prefer') resolve({ socket, reader })
      else reject(new BackendError(`server ${where} does not support TLS (sslmode=${target.sslmode})`, '08001'))
    }
    socket.write(serialize.requestSsl())
  })
}
