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

export interface BackendTarget {
  host: string
  port: number
  database: string
  user: string
  password?: string
  sslmode: 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full'
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
  /** Server-side names of prepared statements that exist on this connection. */
  readonly prepared = new Set<string>()
  /** Which client's unnamed statement is currently parsed here (unnamed statements are per connection). */
  unnamedOwner: object | null = null
  /** Identity of the session state (settings, tenant) last applied on this connection. */
  stateKey = ''
  lastUsed = Date.now()
  closed = false
  private handler: AttachedHandler | null = null
  /** While logging in, bytes go to the standard client-side codec; afterwards they pass raw. */
  private loginStream: PassThrough | null = null

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
      h?.onClose(new BackendError('server connection closed unexpectedly', '08006'))
    })
  }

  static async connect(target: BackendTarget, timeoutMs: number): Promise<BackendConnection> {
    const { socket, reader } = await openSocket(target, timeoutMs)
    const conn = new BackendConnection(socket, target, reader)
    try {
      await withTimeout(conn.login(), timeoutMs, `connecting to ${target.host}:${target.port} timed out`)
    } catch (err) {
      conn.close()
      throw err
    }
    return conn
  }

  /** `reused`: chunk is a view of the connection's read buffer (see ReusedReadBuffer). */
  private received(chunk: Buffer, reused: boolean): void {
    if (this.loginStream) this.loginStream.write(reused ? Buffer.from(chunk) : chunk)
    else if (this.handler) {
      if (!this.handler.onData(chunk) && reused) this.reader?.renew()
    } else this.close() // a server talking while idle is out of step with us: drop it
  }

  attach(handler: AttachedHandler): void {
    this.handler = handler
    this.lastUsed = Date.now()
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

  write(buf: Buffer): boolean {
    return this.socket.write(buf)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    if (!this.socket.destroyed) {
      this.socket.end(serialize.end())
      this.socket.destroy()
    }
  }

  /** Sends a CancelRequest for whatever this connection is running, on a new socket. */
  cancel(): void {
    const s = net.connect({ host: this.target.host, port: this.target.port })
    s.on('error', () => undefined)
    s.on('connect', () => s.end(serialize.cancel(this.pid, this.secret)))
  }

  private login(): Promise<void> {
    const { user, database, password } = this.target
    const stream = new PassThrough()
    this.loginStream = stream
    return new Promise<void>((resolve, reject) => {
      let scram: ScramClient | null = null
      let settled = false
      const finish = (err?: Error): void => {
        if (settled) return
        settled = true
        this.loginStream = null
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
              if (!m.mechanisms.includes('SCRAM-SHA-256')) throw new BackendError(`server offers no supported SASL mechanism (${m.mechanisms.join(', ')})`, '28000')
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
      parseBackend(stream, onMessage).catch((err: Error) => finish(new BackendError(`bad login response from server: ${err.message}`, '08P01')))
      this.socket.once('close', () => finish(new BackendError('server closed the connection during login', '08006')))
      this.socket.write(serialize.startup({ user, database, client_encoding: 'UTF8' }))
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
 */
class ReusedReadBuffer {
  private buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES)
  deliver: (chunk: Buffer) => void = () => undefined

  renew(): void {
    this.buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES)
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

/** A connected socket; `reader` is set unless the connection went over TLS. */
function openSocket(target: BackendTarget, timeoutMs: number): Promise<{ socket: net.Socket; reader: ReusedReadBuffer | null }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const reader = new ReusedReadBuffer()
      const socket = net.connect({ host: target.host, port: target.port, onread: reader.options })
      socket.once('error', (err) => reject(new BackendError(`could not connect to server ${target.host}:${target.port}: ${err.message}`, '08001')))
      socket.once('connect', () => {
        socket.removeAllListeners('error')
        if (target.sslmode === 'disable' || target.sslmode === 'allow') return resolve({ socket, reader })
        negotiateTls(socket, reader, target).then(resolve, reject)
      })
    }),
    timeoutMs,
    `connecting to ${target.host}:${target.port} timed out`,
  )
}

function negotiateTls(socket: net.Socket, reader: ReusedReadBuffer, target: BackendTarget): Promise<{ socket: net.Socket; reader: ReusedReadBuffer | null }> {
  return new Promise((resolve, reject) => {
    reader.deliver = (answer: Buffer) => {
      reader.deliver = () => undefined
      if (answer[0] === 0x53 /* S */) {
        // TLS reads the socket itself from here on; the reused buffer is no longer involved.
        const secure = tls.connect({
          socket,
          servername: net.isIP(target.host) ? undefined : target.host,
          rejectUnauthorized: target.sslmode === 'verify-ca' || target.sslmode === 'verify-full',
          checkServerIdentity: target.sslmode === 'verify-full' ? tls.checkServerIdentity : () => undefined,
        })
        secure.once('secureConnect', () => resolve({ socket: secure as unknown as net.Socket, reader: null }))
        secure.once('error', (err) => reject(new BackendError(`TLS to server failed: ${err.message}`, '08001')))
      } else if (target.sslmode === 'prefer') resolve({ socket, reader })
      else reject(new BackendError(`server ${target.host}:${target.port} does not support TLS (sslmode=${target.sslmode})`, '08001'))
    }
    socket.write(serialize.requestSsl())
  })
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new BackendError(message, '08001')), ms)
    p.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (e) => {
        clearTimeout(timer)
        reject(e)
      },
    )
  })
}
