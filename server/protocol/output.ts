// The one write path for client and server sockets. A plain-TCP socket with nothing queued is
// written straight to its file descriptor (server/protocol/handle-io.ts): no Writable stream
// machinery, no copy, no buffer kept. When the kernel takes only part of it, the rest is copied
// and queued with socket.write (only then are forwarded views copied). TLS sockets, sockets
// with writes queued, and PGTENANT_HANDLE_IO=off go through socket.write, with views of reused
// read memory copied first (server/protocol/reused-memory.ts). Nothing passed in is referenced
// after the call: callers may hand in views of a read buffer that the next read overwrites.
//
// BatchedWriter collects what one read callback produces for a socket and writes it in one go.
import type { Socket } from 'node:net'
import { directFd, writeToFd, writeCounters } from './handle-io.js'
import { isReused, owned } from './reused-memory.js'

/** Up to this many bytes, several buffers are copied into one socket.write instead of one each (cheaper in Node). */
const JOIN_LIMIT = 64 * 1024

/** Write buffers to a socket; returns what socket.write returns (false: over its high-water mark, wait for 'drain'). */
export function writeAll(socket: Socket, parts: readonly Buffer[]): boolean {
  let total = 0
  for (let i = 0; i < parts.length; i++) total += parts[i].length
  if (total === 0) return true
  const fd = directFd(socket)
  if (fd >= 0) {
    const n = writeToFd(fd, parts, total)
    if (n === total) return true
    if (n > 0) return socket.write(rest(parts, n, total))
    // n === 0 (kernel buffer full) or -1 (an error socket.write reports its own way): queue it all.
  }
  return queue(socket, parts, total)
}

/** The bytes of `parts` after the first `skip`, as one new buffer. */
function rest(parts: readonly Buffer[], skip: number, total: number): Buffer {
  const out = Buffer.allocUnsafe(total - skip)
  let at = 0
  for (const p of parts) {
    if (skip >= p.length) {
      skip -= p.length
      continue
    }
    at += p.copy(out, at, skip)
    skip = 0
  }
  return out
}

/** Through socket.write, views of reused read memory copied (Node may keep what it is given until the write completes). */
function queue(socket: Socket, parts: readonly Buffer[], total: number): boolean {
  writeCounters.queued++
  if (parts.length === 1) return socket.write(owned(parts[0]))
  if (total <= JOIN_LIMIT) return socket.write(Buffer.concat(parts as Buffer[], total))
  socket.cork()
  for (const p of parts) socket.write(isReused(p) ? Buffer.from(p) : p)
  socket.uncork()
  return socket.writableLength < socket.writableHighWaterMark
}

export class BatchedWriter {
  private parts: Buffer[] = []

  constructor(
    private socket: Socket,
    /** Called when the socket's buffer is over its high-water mark after a flush. */
    private readonly onBackpressure: () => void,
  ) {}

  setSocket(socket: Socket): void {
    this.socket = socket
  }

  /** Queue `buf` for the next flush; a view of reused read memory must be flushed before its read callback returns. */
  push(buf: Buffer): void {
    this.parts.push(buf)
  }

  /** Write now. Returns false when the socket asked us to wait for 'drain'. */
  flush(): boolean {
    const parts = this.parts
    if (parts.length === 0) return true
    if (this.socket.destroyed) {
      parts.length = 0
      return true
    }
    const ok = writeAll(this.socket, parts)
    parts.length = 0 // writeAll keeps nothing of it
    if (!ok) this.onBackpressure()
    return ok
  }

  get pending(): number {
    return this.parts.length
  }
}
