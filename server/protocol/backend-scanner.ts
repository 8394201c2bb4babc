// Scans the backend → client byte stream message by message without decoding it.
// Pass-through messages (DataRow, RowDescription, CopyData, …) are forwarded as slices
// of the incoming chunk, even when they span chunks; only the few messages the proxy
// must read (ReadyForQuery, ErrorResponse, ParameterStatus, CommandComplete) are
// assembled whole (they are small). Messages the proxy makes up (`inject`) are placed
// right after the message being handled, so the client sees them in protocol order.
import { ProtocolViolation } from './frame-reader.js'

/** Types whose payload the proxy reads. Everything else is only routed by its type byte. */
const INSPECTED = new Uint8Array(256)
for (const c of 'ZESC') INSPECTED[c.charCodeAt(0)] = 1

export interface ScannerSink {
  /** A pass-through message begins: return true to forward its bytes, false to drop them. */
  onPassThrough(type: number): boolean
  /** A whole inspected message: return true to forward it as is. */
  onInspected(type: number, raw: Buffer): boolean
  /** Bytes to write to the client, in order. */
  forward(bytes: Buffer): void
}

export class BackendScanner {
  private partial: Buffer | null = null
  private passRemaining = 0
  private passForward = false
  private injected: Buffer[] = []

  constructor(
    private readonly sink: ScannerSink,
    private readonly maxInspectedBytes = 64 * 1024 * 1024,
  ) {}

  /** Emit `buf` to the client right after the message currently being handled. */
  inject(buf: Buffer): void {
    this.injected.push(buf)
  }

  scan(chunk: Buffer): void {
    let pos = 0
    let runStart = -1 // start of a run of forwarded bytes in this chunk
    const flushRun = (end: number): void => {
      if (runStart >= 0 && end > runStart) this.sink.forward(chunk.subarray(runStart, end))
      runStart = -1
    }
    const messageDone = (end: number): void => {
      if (this.injected.length === 0) return
      flushRun(end)
      for (const b of this.injected) this.sink.forward(b)
      this.injected = []
    }
    while (pos < chunk.length) {
      if (this.passRemaining > 0) {
        const n = Math.min(this.passRemaining, chunk.length - pos)
        if (this.passForward) {
          if (runStart < 0) runStart = pos
        } else flushRun(pos)
        pos += n
        this.passRemaining -= n
        if (this.passRemaining === 0) messageDone(pos)
        continue
      }
      if (this.partial) {
        flushRun(pos)
        pos = this.completePartial(chunk, pos)
        continue
      }
      if (chunk.length - pos < 5) {
        flushRun(pos)
        this.partial = Buffer.from(chunk.subarray(pos))
        break
      }
      const type = chunk[pos]
      const length = chunk.readInt32BE(pos + 1)
      if (length < 4) throw new ProtocolViolation(`backend sent a message with invalid length ${length}`)
      if (INSPECTED[type] === 1) {
        if (length > this.maxInspectedBytes) throw new ProtocolViolation(`backend message too long: ${length}`)
        if (chunk.length - pos < length + 1) {
          flushRun(pos)
          this.partial = Buffer.from(chunk.subarray(pos))
          break
        }
        const raw = chunk.subarray(pos, pos + length + 1)
        if (this.sink.onInspected(type, raw)) {
          if (runStart < 0) runStart = pos
        } else flushRun(pos)
        pos += length + 1
        messageDone(pos)
        continue
      }
      this.passForward = this.sink.onPassThrough(type)
      this.passRemaining = length + 1
      if (!this.passForward) flushRun(pos)
    }
    flushRun(chunk.length)
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
    if (this.sink.onInspected(type, partial)) this.sink.forward(partial)
    this.flushInjected()
    return pos
  }

  private flushInjected(): void {
    for (const b of this.injected) this.sink.forward(b)
    this.injected = []
  }
}
