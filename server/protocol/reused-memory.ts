// Read buffers whose memory the next read overwrites: the client sockets' shared read buffer
// (server/client-socket.ts) and each server connection's reused one (server/backend/connection.ts).
// A view of one is valid only until its read callback returns; whatever keeps bytes longer (a
// partial frame, a stalled message, a write the kernel did not take at once) copies them
// first. Identified by their ArrayBuffer (each is allocated on its own, never from Node's pool).
const reused = new WeakSet<ArrayBufferLike>()

/** Register `buf` as memory later reads overwrite. */
export function markReused(buf: Buffer): Buffer {
  reused.add(buf.buffer)
  return buf
}

/** Whether `buf` is a view of reused read memory (valid only until its read callback returns). */
export function isReused(buf: Buffer): boolean {
  return reused.has(buf.buffer)
}

/** `buf` itself, or a copy when it is a view of reused read memory. */
export function owned(buf: Buffer): Buffer {
  return reused.has(buf.buffer) ? Buffer.from(buf) : buf
}
