// Frames a byte stream into whole protocol messages, across split TCP chunks.
// Frames are subarrays of the input (no copy) except when a message spans chunks: then
// the chunks are kept in a list and copied once, when the message is complete, so a
// message arriving in n chunks costs O(its size), not O(n × its size).
//
// A chunk may be a view of a read buffer the next read overwrites (reused-memory.ts): the
// reader's owner calls `settle()` before its read callback returns, and whatever is still
// unread (an unfinished frame, frames left for later) is copied then, once; a chunk read
// to its end is never copied.
//
// The size limit may change over a connection's life (`limit`): PostgreSQL accepts only
// small messages before authentication (a startup packet of at most 10,000 bytes, password
// and SASL messages of a few kB), and so does the proxy. A message over the limit is
// refused as soon as its length word arrives, and from then on the reader keeps nothing.

import { isReused } from './reused-memory.js'

export class ProtocolViolation extends Error {
  readonly sqlstate = '08P01'
  override readonly name = 'ProtocolViolation'
}

/** A message declared longer than the limit in force (a ProtocolViolation with the numbers). */
export class MessageTooLarge extends ProtocolViolation {
  constructor(
    readonly length: number,
    readonly limit: number,
  ) {
    super(`message length ${length} exceeds the limit of ${limit} bytes`)
  }
}

export interface Frame {
  /** Message type byte (0 for the untyped startup-phase messages). */
  type: number
  /** The whole message: type byte (if any), length and payload. */
  raw: Buffer
  /** Offset of the payload inside `raw`. */
  bodyStart: number
}

/** Largest startup-phase message PostgreSQL accepts (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET_BYTES = 10000

export interface FrameReaderOptions {
  /** The limit in force now for typed messages (default: the constructor's maxMessageBytes). Read at every message. */
  limit?: () => number
  /** Called once when a message over the limit is refused (before `next` throws). */
  onTooLarge?: (err: MessageTooLarge) => void
}

const EMPTY = Buffer.alloc(0)

export class FrameReader {
  /** The current chunk; `pos` is where unread bytes start. */
  private buf: Buffer = EMPTY
  private pos = 0
  /** Chunks received after `buf` while a message spanning them is incomplete. */
  private pending: Buffer[] = []
  private pendingBytes = 0
  /** Set once a message over the limit was seen: everything after it is dropped. */
  private refused: MessageTooLarge | null = null

  constructor(
    private readonly maxMessageBytes: number,
    private readonly options: FrameReaderOptions = {},
  ) {}

  push(chunk: Buffer): void {
    if (this.refused) return
    if (this.pos >= this.buf.length && this.pending.length === 0) {
      this.buf = chunk
      this.pos = 0
      return
    }
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    // Bytes nobody frames (a session that stopped reading, say, after refusing its client) must
    // not pile up either: under a limit, more than twice the limit unread refuses the rest.
    if (this.options.limit) {
      const limit = Math.min(this.options.limit(), this.maxMessageBytes)
      if (this.buffered > 2 * limit + MAX_STARTUP_PACKET_BYTES) this.refuse(new MessageTooLarge(this.buffered, limit))
    }
  }

  /**
   * The read callback that pushed the last chunk is about to return: unread bytes that are
   * views of reused read memory are copied (each byte at most once), and nothing else of
   * that memory is referenced.
   */
  settle(): void {
    if (this.pos >= this.buf.length) {
      this.buf = EMPTY
      this.pos = 0
    } else if (isReused(this.buf)) {
      this.buf = Buffer.from(this.buf.subarray(this.pos))
      this.pos = 0
    }
    const pending = this.pending
    for (let i = 0; i < pending.length; i++) if (isReused(pending[i])) pending[i] = Buffer.from(pending[i])
  }

  /** Bytes received but not yet returned as a frame. */
  get buffered(): number {
    return this.buf.length - this.pos + this.pendingBytes
  }

  /** The next typed message, or null when more bytes are needed. Throws ProtocolViolation on a bad length. */
  next(): Frame | null {
    if (this.refused) throw this.refused
    if (!this.gather(5)) return null
    const length = this.buf.readInt32BE(this.pos + 1)
    this.checkLength(length, 4, this.options.limit ? Math.min(this.options.limit(), this.maxMessageBytes) : this.maxMessageBytes)
    if (!this.gather(length + 1)) return null
    const raw = this.buf.subarray(this.pos, this.pos + length + 1)
    this.pos += length + 1
    return { type: raw[0], raw, bodyStart: 5 }
  }

  /** The next untyped startup-phase message (StartupMessage, SSLRequest, CancelRequest, GSSENCRequest). */
  nextUntyped(): Frame | null {
    if (this.refused) throw this.refused
    if (!this.gather(4)) return null
    const length = this.buf.readInt32BE(this.pos)
    this.checkLength(length, 8, MAX_STARTUP_PACKET_BYTES)
    if (!this.gather(length)) return null
    const raw = this.buf.subarray(this.pos, this.pos + length)
    this.pos += length
    return { type: 0, raw, bodyStart: 4 }
  }

  /** Whatever is buffered and not yet framed (for handing a socket over to TLS). */
  takeRest(): Buffer {
    this.gather(this.buffered)
    const rest = this.buf.subarray(this.pos)
    this.buf = EMPTY
    this.pos = 0
    return rest
  }

  /**
   * Makes at least `n` unread bytes contiguous in `buf` if that many have arrived; false if
   * not. Pending chunks are joined only when they complete what is needed (one copy per
   * message), never one by one as they arrive.
   */
  private gather(n: number): boolean {
    const inBuf = this.buf.length - this.pos
    if (inBuf >= n) return true
    if (inBuf + this.pendingBytes < n) return false
    this.buf = Buffer.concat([this.buf.subarray(this.pos), ...this.pending], inBuf + this.pendingBytes)
    this.pos = 0
    this.pending = []
    this.pendingBytes = 0
    return true
  }

  private checkLength(length: number, min: number, max: number): void {
    if (length < min) throw new ProtocolViolation(`invalid message length ${length}`)
    if (length > max) throw this.refuse(new MessageTooLarge(length, max))
  }

  private refuse(err: MessageTooLarge): MessageTooLarge {
    this.refused = err
    this.buf = EMPTY
    this.pos = 0
    this.pending = []
    this.pendingBytes = 0
    this.options.onTooLarge?.(err)
    return err
  }
}
