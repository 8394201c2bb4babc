// Collects the buffers for one socket during one event-loop turn and writes them in
// one go (cork/uncork → a single writev), with backpressure reported to the caller.
import type { Socket } from 'node:net'

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
    let ok = true
    if (this.parts.length === 1) ok = this.socket.write(this.parts[0])
    else {
      this.socket.cork()
      for (const p of this.parts) ok = this.socket.write(p)
      this.socket.uncork()
    }
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
