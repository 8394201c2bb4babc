// Every use of Node.js internals for socket I/O, in one place, each with a public-API fallback.
// test/server/hot-path.test.ts checks each of them on the running Node and fails loudly when
// Node changes one; PGTENANT_HANDLE_IO=off turns all of them off (the fallbacks then run).
//
// 1. Reads into a buffer we own (`onread`) for accepted sockets. Node offers `onread` only to
//    sockets it constructs from options, not to the ones a net.Server accepts, so the server
//    accepts paused and the accepted TCP handle moves into a socket constructed with `onread`
//    through net.Socket's `handle` option (used by Node itself for handles passed between
//    processes, undocumented). Fallback: the accepted socket as it is, with 'data' events.
// 2. Writes straight to the socket's file descriptor (`_handle.fd`, a non-blocking TCP socket):
//    `writev(2)` through fs.writevSync, which says how many bytes the kernel took. What it
//    did not take is copied and queued with socket.write. A write through the handle's own
//    `writev` cannot be used for views of reused read memory: when it goes asynchronous, libuv
//    keeps pointers into the caller's buffers until it completes, and the next read overwrites
//    them. Used only when nothing is queued on the socket (order is kept) and it is plain TCP.
//    Fallback: socket.write.
import fs from 'node:fs'
import net from 'node:net'

/** False with PGTENANT_HANDLE_IO=off|0|false: socket.write and 'data' events only. */
let enabled = !/^(off|0|false|no)$/i.test(process.env.PGTENANT_HANDLE_IO ?? '')

/** Whether the internals are in use (for tests and SHOW-style reporting). */
export function handleIoEnabled(): boolean {
  return enabled
}

/** Turn the internals on or off for sockets accepted and writes made from now on (tests run both paths). */
export function setHandleIo(on: boolean): void {
  enabled = on
}

/** How the write path went, since the process started (tests assert which path ran). */
export const writeCounters = { direct: 0, partial: 0, queued: 0 }

interface HandleOwner {
  _handle?: { fd?: unknown; readStart?: unknown } | null
  encrypted?: boolean
}

/**
 * The accepted socket's TCP handle in a new socket that reads through `onread`, or null when
 * that is not possible (switched off, not a TCP handle, another runtime): then the caller
 * resumes the accepted socket and reads its 'data' events.
 */
export function adoptAcceptedHandle(accepted: net.Socket, onread: net.OnReadOpts): net.Socket | null {
  if (!enabled) return null
  const owner = accepted as unknown as HandleOwner
  const handle = owner._handle
  if (!handle || typeof handle !== 'object' || typeof handle.readStart !== 'function') return null
  let socket: net.Socket
  try {
    socket = new net.Socket({ handle, readable: true, writable: true, onread } as net.SocketConstructorOpts)
  } catch {
    return null
  }
  owner._handle = null // the new socket owns it now
  return socket
}

const kFd = Symbol('pgtenant.fd')
interface FdCache {
  [kFd]?: number
}

/**
 * The file descriptor to write to directly, or -1: switched off, TLS, not connected, ended,
 * destroyed, or something already queued on the socket (a direct write would overtake it).
 */
export function directFd(socket: net.Socket): number {
  if (!enabled || socket.writableLength !== 0 || socket.destroyed || socket.writableEnded || socket.connecting) return -1
  const cache = socket as unknown as FdCache
  const known = cache[kFd]
  if (known !== undefined) return known
  const owner = socket as unknown as HandleOwner
  let fd = -1
  if (!owner.encrypted && owner._handle && typeof owner._handle.fd === 'number' && owner._handle.fd >= 0 && isTcpHandle(owner._handle)) fd = owner._handle.fd
  cache[kFd] = fd
  return fd
}

function isTcpHandle(handle: object): boolean {
  return handle.constructor?.name === 'TCP'
}

/**
 * Write `parts` (`total` bytes) to `fd` now, without blocking: the number of bytes the kernel
 * took (0 when its buffer is full), or -1 on any other error (the caller then hands everything
 * to socket.write, whose own error path reports it).
 */
export function writeToFd(fd: number, parts: readonly Buffer[], total: number): number {
  try {
    const n = parts.length === 1 ? fs.writeSync(fd, parts[0]) : fs.writevSync(fd, parts)
    if (n === total) writeCounters.direct++
    else writeCounters.partial++
    return n
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
      writeCounters.partial++
      return 0
    }
    return -1
  }
}
