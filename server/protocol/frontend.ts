// Decoders for the frontend (client → server) messages the proxy must read, and
// encoders for the ones it rewrites before sending them on.
import { ProtocolViolation, type Frame } from './frame-reader.js'

export const PROTOCOL_3_0 = 196608
export const SSL_REQUEST_CODE = 80877103
export const GSSENC_REQUEST_CODE = 80877104
export const CANCEL_REQUEST_CODE = 80877102

/** Reads NUL-terminated strings and integers from a message payload. */
export class PayloadReader {
  constructor(
    private readonly buf: Buffer,
    public pos: number,
  ) {}

  cstring(): string {
    const end = this.buf.indexOf(0, this.pos)
    if (end < 0) throw new ProtocolViolation('unterminated string in message')
    const s = this.buf.toString('utf8', this.pos, end)
    this.pos = end + 1
    return s
  }

  int16(): number {
    this.need(2)
    const v = this.buf.readInt16BE(this.pos)
    this.pos += 2
    return v
  }

  int32(): number {
    this.need(4)
    const v = this.buf.readInt32BE(this.pos)
    this.pos += 4
    return v
  }

  bytes(n: number): Buffer {
    this.need(n)
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }

  rest(): Buffer {
    return this.buf.subarray(this.pos)
  }

  get done(): boolean {
    return this.pos >= this.buf.length
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new ProtocolViolation('message shorter than its contents')
  }
}

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: number }
  | { kind: 'startup'; params: Record<string, string> }
  | { kind: 'unsupported'; version: number }

export function decodeStartup(frame: Frame): StartupPacket {
  const r = new PayloadReader(frame.raw, 4)
  const code = r.int32()
  if (code === SSL_REQUEST_CODE) return { kind: 'ssl' }
  if (code === GSSENC_REQUEST_CODE) return { kind: 'gssenc' }
  if (code === CANCEL_REQUEST_CODE) return { kind: 'cancel', pid: r.int32(), secret: r.int32() }
  if (code !== PROTOCOL_3_0) return { kind: 'unsupported', version: code }
  const params: Record<string, string> = {}
  for (;;) {
    const key = r.cstring()
    if (key === '') break
    params[key] = r.cstring()
  }
  return { kind: 'startup', params }
}

export function decodeQuery(frame: Frame): string {
  return new PayloadReader(frame.raw, frame.bodyStart).cstring()
}

export interface ParseMessage {
  name: string
  sql: string
  /** The raw parameter-type section (int16 count + int32 OIDs), passed through as is. */
  paramTypes: Buffer
}

export function decodeParse(frame: Frame): ParseMessage {
  const r = new PayloadReader(frame.raw, frame.bodyStart)
  const name = r.cstring()
  const sql = r.cstring()
  return { name, sql, paramTypes: r.rest() }
}

export interface BindHead {
  portal: string
  statement: string
  /** Offset in frame.raw where the parameter formats start (everything after the names). */
  restStart: number
}

export function decodeBindHead(frame: Frame): BindHead {
  const r = new PayloadReader(frame.raw, frame.bodyStart)
  const portal = r.cstring()
  const statement = r.cstring()
  return { portal, statement, restStart: r.pos }
}

/** Parameter `index` (0-based) of a Bind message: its bytes (null for SQL NULL) and format code; null when absent. */
export function decodeBindParam(frame: Frame, head: BindHead, index: number): { value: Buffer | null; format: number } | null {
  const r = new PayloadReader(frame.raw, head.restStart)
  const nFormats = r.int16()
  const formats: number[] = []
  for (let i = 0; i < nFormats; i++) formats.push(r.int16())
  const nParams = r.int16()
  if (index < 0 || index >= nParams) return null
  for (let i = 0; i < nParams; i++) {
    const len = r.int32()
    const value = len < 0 ? null : r.bytes(len)
    if (i === index) return { value, format: nFormats === 0 ? 0 : nFormats === 1 ? formats[0] : (formats[i] ?? 0) }
  }
  return null
}

/** Describe ('D') and Close ('C') share one shape: a kind byte and a name. */
export function decodeTarget(frame: Frame): { kind: 'S' | 'P'; name: string } {
  const r = new PayloadReader(frame.raw, frame.bodyStart)
  const kind = String.fromCharCode(r.bytes(1)[0])
  if (kind !== 'S' && kind !== 'P') throw new ProtocolViolation(`invalid Describe/Close target "${kind}"`)
  return { kind, name: r.cstring() }
}

export function decodeSaslInitial(frame: Frame): { mechanism: string; data: string } {
  const r = new PayloadReader(frame.raw, frame.bodyStart)
  const mechanism = r.cstring()
  const len = r.int32()
  return { mechanism, data: len < 0 ? '' : r.bytes(len).toString('utf8') }
}

export function decodePasswordPayload(frame: Frame): Buffer {
  return frame.raw.subarray(frame.bodyStart)
}

// ---------- encoders for rewritten messages ----------

function message(type: string, parts: (Buffer | string)[]): Buffer {
  const bufs = parts.map((p) => (typeof p === 'string' ? Buffer.from(p + '\0', 'utf8') : p))
  const length = 4 + bufs.reduce((n, b) => n + b.length, 0)
  const out = Buffer.allocUnsafe(1 + length)
  out[0] = type.charCodeAt(0)
  out.writeInt32BE(length, 1)
  let pos = 5
  for (const b of bufs) pos += b.copy(out, pos)
  return out
}

export function encodeQuery(sql: string): Buffer {
  return message('Q', [sql])
}

export function encodeParse(name: string, sql: string, paramTypes: Buffer): Buffer {
  return message('P', [name, sql, paramTypes])
}

export function encodeBind(frame: Frame, head: BindHead, statement: string): Buffer {
  return message('B', [head.portal, statement, frame.raw.subarray(head.restStart)])
}

export function encodeTarget(type: 'D' | 'C', kind: 'S' | 'P', name: string): Buffer {
  return message(type, [Buffer.from(kind, 'latin1'), name]) // the kind is one byte, not a string
}

export function encodeCancel(pid: number, secret: number): Buffer {
  const out = Buffer.allocUnsafe(16)
  out.writeInt32BE(16, 0)
  out.writeInt32BE(CANCEL_REQUEST_CODE, 4)
  out.writeInt32BE(pid, 8)
  out.writeInt32BE(secret, 12)
  return out
}

export const SYNC = Buffer.from([0x53, 0, 0, 0, 4])
