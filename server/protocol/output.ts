// Collects the buffers for one socket during one event-loop turn and writes them in
// one go (cork/uncork → a single writev), with backpressure reported to the caller.
import type { Socket } from 'node:net'

/** Up to this many bytes, several buffers are joined into one write instead of a writev. */
const JOIN_LIMIT = 64 * 1024

/**
 * Several buffers as one, for a single write(): a slice of the original when they lie back
 * to back in one allocation (frames forwarded from the chunk they arrived in), else a copy.
 * Null when they are too large to be worth copying (the caller writes them with writev).
 * A plain write costs Node far less than cork/uncork's writev path for small messages.
 */
export function joinBuffers(parts: Buffer[]): Buffer | null {
  const first = parts[0]
  let total = 0
  let contiguous = true
  let end = first.byteOffset
  for (const p of parts) {
    total += p.length
    if (p.buffer !== first.buffer || p.byteOffset !== end) contiguous = false
    end = p.byteOffset + p.length
  }
  if (contiguous) return Buffer.from(first.buffer, first.byteOffset, total)
  return total <= JOIN_LIMIT ? Buffer.concat(parts, total) : null
}

/** Write buffers to a socket in one system call; returns what socket.write returns. */
export function writeAll(socket: Socket, parts: Buffer[]): boolean {
  if (parts.length === 1) return socket.write(parts[0])
  const joined = joinBuffers(parts)
  if (joined) return socket.write(joined)
  socket.cork()
  for (const p of parts) socket.write(p)
  socket.uncork()
  return socket.writableLength < socket.writableHighWaterMark
}

export class BatchedWriter {
  private parts: Buffer[] = []
  private scheduled = false

  constructor(
    private socket: Socket,
    /** Called when the socket's buffer is over its high-water mark after a flush. */
    private readonly onBackpressure: () => void,
  ) {}

  setSocket(socket: Socket): void {
    this.socket = socket
  }

  push(buf: Buffer): void {
    this.parts.push(buf)
  }

  /** Write now. Returns false when the socket asked us to wait for 'drain'. */
  flush(): boolean {
    if (this.parts.length === 0 || this.socket.destroyed) {
      this.parts.length = 0
      return true
    }
    const ok = writeAll(this.socket, this.parts)
    this.parts = []
    if (!ok) this.onBackpressure()
    return ok
  }

  /** Flush at the end of the current tick (coalesces writes from several callbacks). */
  flushSoon(): void {
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(() => {
      this.scheduled = false
      this.flush()
    })
  }

  get pending(): number {
    return this.parts.length
  }
}
