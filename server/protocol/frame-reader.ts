// Frames a byte stream into whole protocol messages, across split TCP chunks.
// Frames are subarrays of the input (no copy) except when a message spans chunks.

export class ProtocolViolation extends Error {
  readonly sqlstate = '08P01'
  override readonly name = 'ProtocolViolation'
}

export interface Frame {
  /** Message type byte (0 for the untyped startup-phase messages). */
  type: number
  /** The whole message: type byte (if any), length and payload. */
  raw: Buffer
  /** Offset of the payload inside `raw`. */
  bodyStart: number
}

export class FrameReader {
  private buf: Buffer = Buffer.alloc(0)
  private pos = 0

  constructor(private readonly maxMessageBytes: number) {}

  push(chunk: Buffer): void {
    if (this.pos >= this.buf.length) {
      this.buf = chunk
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk])
    }
    this.pos = 0
  }

  /** Bytes received but not yet returned as a frame. */
  get buffered(): number {
    return this.buf.length - this.pos
  }

  /** The next typed message, or null when more bytes are needed. Throws ProtocolViolation on a bad length. */
  next(): Frame | null {
    const available = this.buf.length - this.pos
    if (available < 5) return null
    const length = this.buf.readInt32BE(this.pos + 1)
    this.checkLength(length, 4)
    if (available < length + 1) return null
    const raw = this.buf.subarray(this.pos, this.pos + length + 1)
    this.pos += length + 1
    return { type: raw[0], raw, bodyStart: 5 }
  }

  /** The next untyped startup-phase message (StartupMessage, SSLRequest, CancelRequest, GSSENCRequest). */
  nextUntyped(): Frame | null {
    const available = this.buf.length - this.pos
    if (available < 4) return null
    const length = this.buf.readInt32BE(this.pos)
    this.checkLength(length, 8, 10000)
    if (available < length) return null
    const raw = this.buf.subarray(this.pos, this.pos + length)
    this.pos += length
    return { type: 0, raw, bodyStart: 4 }
  }

  /** Whatever is buffered and not yet framed (for handing a socket over to TLS). */
  takeRest(): Buffer {
    const rest = this.buf.subarray(this.pos)
    this.buf = Buffer.alloc(0)
    this.pos = 0
    return rest
  }

  private checkLength(length: number, min: number, max = this.maxMessageBytes): void {
    if (length < min) throw new ProtocolViolation(`invalid message length ${length}`)
    if (length > max) throw new ProtocolViolation(`message length ${length} exceeds the limit of ${max} bytes`)
  }
}
