// A scripted fake PostgreSQL backend for fault-injection tests: it speaks just enough of
// the server side of the protocol (SSLRequest answer, startup, SCRAM's first step, simple
// and extended queries, COPY) to bring the proxy to a chosen stage, and then misbehaves
// there: resets the connection, stalls (answers nothing, closes nothing), closes it, or
// sends garbage. It tests the proxy's error paths, not behaviour users rely on, so it is a
// stub on purpose. `pass` mode forwards every new connection to a real server instead,
// which lets a test "heal" the backend at the same address.
//
// Stages:
//   ssl       after the SSLRequest arrives (before its one-byte answer)
//   tls       after answering 'S', when the TLS ClientHello arrives
//   startup   after the StartupMessage arrives
//   sasl      after AuthenticationSASL was sent and the SASLInitialResponse arrives
//   query     at a simple Query whose text contains "fault" (after ReadyForQuery; other queries are answered)
//   copy-in   a Query containing "copy" gets CopyInResponse; at the first CopyData
//   copy-out  a Query containing "copy" gets CopyOutResponse and one CopyData row, then the fault
import net from 'node:net'
import { once } from 'node:events'

export type Stage = 'ssl' | 'tls' | 'startup' | 'sasl' | 'query' | 'copy-in' | 'copy-out'
export type Fault = 'reset' | 'stall' | 'close' | 'garbage'
export type Script = { stage: Stage; fault: Fault } | { pass: { host: string; port: number } }

export const STAGES: readonly Stage[] = ['ssl', 'tls', 'startup', 'sasl', 'query', 'copy-in', 'copy-out']
export const FAULTS: readonly Fault[] = ['reset', 'stall', 'close', 'garbage']

/**
 * Bytes no PostgreSQL server sends: a 'Z' whose length field is negative, then noise. A
 * parser that trusts the length waits forever; one that checks it fails at once.
 */
export const GARBAGE = Buffer.from([0x5a, 0xff, 0xff, 0xff, 0xf0, 0x00, 0x13, 0x37, 0x42, 0x42, 0x42, 0x42])

const SSL_REQUEST_CODE = 80877103
const PROTOCOL_3 = 196608
const CANCEL_REQUEST_CODE = 80877102

export class FaultServer {
  /** Connections accepted so far. */
  accepted = 0
  /** Connections that reached the scripted fault. */
  faulted = 0
  /** CancelRequests received (on connections of their own, as the protocol has it). */
  cancels = 0
  private readonly open = new Set<net.Socket>()
  private closeWaiters: (() => void)[] = []

  private constructor(
    private readonly server: net.Server,
    public script: Script,
  ) {}

  static async start(script: Script): Promise<FaultServer> {
    const server = net.createServer()
    const fs = new FaultServer(server, script)
    server.on('connection', (socket) => fs.serve(socket))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return fs
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port
  }

  /** Server-side sockets still open (a stalled connection the proxy gave up on must be closed by the proxy). */
  get openConnections(): number {
    return this.open.size
  }

  /** Resolves once no accepted connection is open (the proxy closed every one), or rejects after `ms`. */
  async allClosed(ms: number): Promise<void> {
    if (this.open.size === 0) return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.open.size} connection(s) to the fault server still open after ${ms} ms`)), ms)
      this.closeWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** Resolves once `n` connections reached the fault. */
  async faults(n: number, ms: number): Promise<void> {
    await until(
      () => this.faulted >= n,
      ms,
      () => `only ${this.faulted} of ${n} connections reached the fault within ${ms} ms`,
    )
  }

  /** Resolves once `n` CancelRequests arrived. */
  async cancelled(n: number, ms: number): Promise<void> {
    await until(
      () => this.cancels >= n,
      ms,
      () => `${this.cancels} of ${n} CancelRequests arrived within ${ms} ms`,
    )
  }

  async stop(): Promise<void> {
    for (const s of this.open) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private serve(socket: net.Socket): void {
    this.accepted++
    this.open.add(socket)
    socket.on('error', () => undefined)
    socket.on('close', () => {
      this.open.delete(socket)
      if (this.open.size === 0) for (const w of this.closeWaiters.splice(0)) w()
    })
    const script = this.script
    if ('pass' in script) return this.passThrough(socket, script.pass)
    new FakeBackend(
      socket,
      script.stage,
      script.fault,
      () => this.faulted++,
      () => this.cancels++,
    )
  }

  private passThrough(socket: net.Socket, to: { host: string; port: number }): void {
    const upstream = net.connect(to)
    upstream.on('error', () => socket.destroy())
    socket.on('error', () => upstream.destroy())
    socket.on('close', () => upstream.destroy())
    upstream.on('close', () => socket.destroy())
    socket.pipe(upstream)
    upstream.pipe(socket)
  }
}

/** One scripted connection: a state machine over what the proxy sends. */
class FakeBackend {
  private buf: Buffer = Buffer.alloc(0)
  private phase: 'untyped' | 'tls' | 'sasl' | 'ready' | 'copy-in' | 'done' = 'untyped'

  constructor(
    private readonly socket: net.Socket,
    private readonly stage: Stage,
    private readonly fault: Fault,
    private readonly onFault: () => void,
    private readonly onCancel: () => void,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
      this.pump()
    })
  }

  private pump(): void {
    while (this.phase !== 'done') {
      if (this.phase === 'tls') {
        if (this.buf.length === 0) return
        return this.misbehave() // the ClientHello arrived
      }
      if (this.phase === 'untyped') {
        if (this.buf.length < 8) return
        const len = this.buf.readInt32BE(0)
        if (this.buf.length < len) return
        const code = this.buf.readInt32BE(4)
        this.buf = this.buf.subarray(len)
        if (code === SSL_REQUEST_CODE) this.sslRequest()
        else if (code === PROTOCOL_3) this.startup()
        else if (code === CANCEL_REQUEST_CODE) {
          this.onCancel()
          this.phase = 'done'
          return void this.socket.end()
        } else return void this.socket.destroy()
        continue
      }
      if (this.buf.length < 5) return
      const len = this.buf.readInt32BE(1)
      if (this.buf.length < len + 1) return
      const type = this.buf[0]
      const body = this.buf.subarray(5, len + 1)
      this.buf = this.buf.subarray(len + 1)
      this.message(type, body)
    }
  }

  private sslRequest(): void {
    if (this.stage === 'ssl') return this.misbehave()
    if (this.stage === 'tls') {
      this.socket.write('S')
      this.phase = 'tls'
      return
    }
    this.socket.write('N')
  }

  private startup(): void {
    if (this.stage === 'startup') return this.misbehave()
    if (this.stage === 'sasl') {
      this.socket.write(msg('R', int32(10), cstr('SCRAM-SHA-256'), Buffer.from([0])))
      this.phase = 'sasl'
      return
    }
    this.socket.write(
      Buffer.concat([
        msg('R', int32(0)),
        msg('S', cstr('server_version'), cstr('15.0 (fault server)')),
        msg('S', cstr('server_encoding'), cstr('UTF8')),
        msg('S', cstr('client_encoding'), cstr('UTF8')),
        msg('S', cstr('standard_conforming_strings'), cstr('on')),
        msg('S', cstr('integer_datetimes'), cstr('on')),
        msg('S', cstr('DateStyle'), cstr('ISO, MDY')),
        msg('K', int32(4242), int32(1234)),
        msg('Z', Buffer.from('I')),
      ]),
    )
    this.phase = 'ready'
  }

  private message(type: number, body: Buffer): void {
    const t = String.fromCharCode(type)
    if (this.phase === 'sasl') return this.misbehave() // the SASLInitialResponse
    if (this.phase === 'copy-in') {
      if (t === 'd') return this.misbehave()
      return
    }
    switch (t) {
      case 'Q': {
        const sql = body.toString('utf8').toLowerCase()
        if (this.stage === 'query' && sql.includes('fault')) return this.misbehave()
        if ((this.stage === 'copy-in' || this.stage === 'copy-out') && sql.includes('copy')) {
          if (this.stage === 'copy-in') {
            this.socket.write(msg('G', Buffer.from([0]), int16(0)))
            this.phase = 'copy-in'
            return
          }
          this.socket.write(Buffer.concat([msg('H', Buffer.from([0]), int16(0)), msg('d', Buffer.from('a row\n'))]))
          return this.misbehave()
        }
        this.socket.write(Buffer.concat([msg('C', cstr('SELECT 0')), msg('Z', Buffer.from('I'))]))
        return
      }
      case 'P':
        return void this.socket.write(msg('1'))
      case 'B':
        return void this.socket.write(msg('2'))
      case 'D':
        return void this.socket.write(msg('n'))
      case 'E':
        return void this.socket.write(msg('C', cstr('SELECT 0')))
      case 'C':
        return void this.socket.write(msg('3'))
      case 'S':
        return void this.socket.write(msg('Z', Buffer.from('I')))
      case 'X':
        this.phase = 'done'
        return void this.socket.end()
    }
  }

  private misbehave(): void {
    this.phase = 'done'
    this.onFault()
    switch (this.fault) {
      case 'reset':
        this.socket.resetAndDestroy()
        return
      case 'stall':
        return // keep the socket open and answer nothing, ever
      case 'close':
        this.socket.end()
        return
      case 'garbage':
        this.socket.write(GARBAGE)
        return
    }
  }
}

async function until(cond: () => boolean, ms: number, message: () => string): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(message())
    await new Promise((r) => setTimeout(r, 10))
  }
}

function msg(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts)
  const head = Buffer.alloc(5)
  head.write(type, 0, 'latin1')
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeInt32BE(n)
  return b
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeInt16BE(n)
  return b
}

function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])])
}
