// Collects the buffers for one socket during one event-loop turn and writes them in
// one go (small batches copied into one buffer, large ones as a single writev), with
// backpressure reported to the caller.
import type { Socket } from 'node:net'

/** Up to this many bytes, several buffers are copied into one write instead of a writev (cheaper in Node). */
const JOIN_LIMIT = 64 * 1024

/** Write buffers to a socket in one system call; returns what socket.write returns. */
export function writeAll(socket: Socket, parts: Buffer[]): boolean {
  if (parts.length === 1) return socket.write(parts[0])
  let total = 0
  for (const p of parts) total += p.length
  if (total <= JOIN_LIMIT) return socket.write(Buffer.concat(parts, total))
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
