// Scans the backend → client byte stream message by message without decoding it.
// Pass-through messages (DataRow, RowDescription, CopyData, …) are forwarded as slices
// of the incoming chunk, even when they span chunks; only the few messages the proxy
// must read (ReadyForQuery, ErrorResponse, ParameterStatus, CommandComplete, and
// RowDescription: a described statement's result shape) are assembled whole (they are small). Messages the proxy makes up (`inject`) are placed
// right after the message being handled, so the client sees them in protocol order.
import { ProtocolViolation } from './frame-reader.js'

const NO_BYTES = Buffer.alloc(0)

/** Types whose payload the proxy reads. Everything else is only routed by its type byte. */
const INSPECTED = new Uint8Array(256)
for (const c of 'ZESCT') INSPECTED[c.charCodeAt(0)] = 1

export interface ScannerSink {
  /** A pass-through message begins: return true to forward its bytes, false to drop them. */
  onPassThrough(type: number): boolean
  /** A whole inspected message other than ReadyForQuery: return true to forward it as is. */
  onInspected(type: number, raw: Buffer): boolean
  /** ReadyForQuery, by its transaction status byte: return true to forward it. */
  onReadyForQuery(status: number): boolean
  /** Bytes to write to the client, in order. */
  forward(bytes: Buffer): void
}

export class BackendScanner {
  private partial: Buffer | null = null
  private passRemaining = 0
  private passForward = false
  private injected: Buffer[] = []
  /** The chunk being scanned, and where its current run of forwarded bytes starts (-1: none). */
  private chunk: Buffer = NO_BYTES
  private runStart = -1

  constructor(
    private sink: ScannerSink,
    private readonly maxInspectedBytes = 64 * 1024 * 1024,
  ) {}

  /** Send what follows to another sink (a message split across chunks continues there). */
  retarget(sink: ScannerSink): void {
    this.sink = sink
  }

  /** Emit `buf` to the client right after the message currently being handled. */
  inject(buf: Buffer): void {
    this.injected.push(buf)
  }

  scan(chunk: Buffer): void {
    this.chunk = chunk
    this.runStart = -1
    let pos = 0
    while (pos < chunk.length) {
      if (this.passRemaining > 0) {
        const n = Math.min(this.passRemaining, chunk.length - pos)
        if (this.passForward) {
          if (this.runStart < 0) this.runStart = pos
        } else this.flushRun(pos)
        pos += n
        this.passRemaining -= n
        if (this.passRemaining === 0) this.messageDone(pos)
        continue
      }
      if (this.partial) {
        this.flushRun(pos)
        pos = this.completePartial(chunk, pos)
        continue
      }
      if (chunk.length - pos < 5) {
        this.flushRun(pos)
        this.partial = Buffer.from(chunk.subarray(pos))
        break
      }
      const type = chunk[pos]
      const length = chunk.readInt32BE(pos + 1)
      if (length < 4) throw new ProtocolViolation(`backend sent a message with invalid length ${length}`)
      if (INSPECTED[type] === 1) {
        if (length > this.maxInspectedBytes) throw new ProtocolViolation(`backend message too long: ${length}`)
        if (chunk.length - pos < length + 1) {
          this.flushRun(pos)
          this.partial = Buffer.from(chunk.subarray(pos))
          break
        }
        // ReadyForQuery is read often and only for its status byte: no view of it is made.
        const keep =
          type === 0x5a && length === 5 ? this.sink.onReadyForQuery(chunk[pos + 5]) : this.sink.onInspected(type, chunk.subarray(pos, pos + length + 1))
        if (keep) {
          if (this.runStart < 0) this.runStart = pos
        } else this.flushRun(pos)
        pos += length + 1
        this.messageDone(pos)
        continue
      }
      this.passForward = this.sink.onPassThrough(type)
      this.passRemaining = length + 1
      if (!this.passForward) this.flushRun(pos)
    }
    this.flushRun(chunk.length)
    this.chunk = NO_BYTES
  }

  /** Forward the run of kept bytes of the current chunk that ends at `end` (the whole chunk as is when it is all kept). */
  private flushRun(end: number): void {
    const start = this.runStart
    if (start >= 0 && end > start) this.sink.forward(start === 0 && end === this.chunk.length ? this.chunk : this.chunk.subarray(start, end))
    this.runStart = -1
  }

  /** A message ended at `end`: emit what was injected while it was handled. */
  private messageDone(end: number): void {
    if (this.injected.length === 0) return
    this.flushRun(end)
    this.flushInjected()
  }

  /** Continue a message whose start arrived in an earlier chunk; returns the new position. */
  private completePartial(chunk: Buffer, pos: number): number {
    let partial = this.partial as Buffer
    if (partial.length < 5) {
      const take = Math.min(5 - partial.length, chunk.length - pos)
      partial = Buffer.concat([partial, chunk.subarray(pos, pos + take)])
      pos += take
      if (partial.length < 5) {
        this.partial = partial
        return pos
      }
    }
    const type = partial[0]
    const length = partial.readInt32BE(1)
    if (length < 4) throw new ProtocolViolation(`backend sent a message with invalid length ${length}`)
    if (INSPECTED[type] !== 1) {
      // A pass-through message whose header was split: emit the header, stream the rest.
      this.partial = null
      this.passForward = this.sink.onPassThrough(type)
      if (this.passForward) this.sink.forward(partial)
      this.passRemaining = length + 1 - partial.length
      if (this.passRemaining === 0) this.flushInjected()
      return pos
    }
    if (length > this.maxInspectedBytes) throw new ProtocolViolation(`backend message too long: ${length}`)
    const need = length + 1 - partial.length
    const take = Math.min(need, chunk.length - pos)
    partial = Buffer.concat([partial, chunk.subarray(pos, pos + take)])
    pos += take
    if (take < need) {
      this.partial = partial
      return pos
    }
    this.partial = null
    if (type === 0x5a && length === 5 ? this.sink.onReadyForQuery(partial[5]) : this.sink.onInspected(type, partial)) this.sink.forward(partial)
    this.flushInjected()
    return pos
  }

  private flushInjected(): void {
    for (const b of this.injected) this.sink.forward(b)
    this.injected = []
  }
}
