// Accepted client sockets read into one buffer shared by the whole process (net.Socket's
// `onread` option), and each read goes straight from the `onread` callback to the session
// that receives it (receiveReads): no 64 KiB allocation, no Readable stream machinery, no
// 'data' event and no copy per read. The view handed over is valid only until the receiver
// returns — the next read on any client socket overwrites the shared buffer — so whatever
// the session keeps longer it copies (server/protocol/reused-memory.ts: the frame reader's
// unfinished frame, a message held while the client waits for a server connection, bytes a
// write could not hand to the kernel at once).
//
// Moving the accepted handle into a socket that reads with `onread` uses a Node internal
// (server/protocol/handle-io.ts); when it is unavailable or switched off, the accepted socket
// is used as it is and the session listens for its 'data' events (chunks it owns).
import type net from 'node:net'
import { adoptAcceptedHandle } from './protocol/handle-io.js'
import { markReused } from './protocol/reused-memory.js'

const SHARED_READ_BYTES = 64 * 1024
let shared: Buffer | null = null

function sharedReadBuffer(): Buffer {
  shared ??= markReused(Buffer.allocUnsafeSlow(SHARED_READ_BYTES))
  return shared
}

/** Gets each read as a view of the shared buffer, valid until it returns. */
export type Receiver = (view: Buffer) => void

const kReceiver = Symbol('pgtenant.receiver')
const kEarly = Symbol('pgtenant.early')
interface DirectSocket {
  [kReceiver]?: Receiver | null
  /** Reads that came before a receiver was set (copies). */
  [kEarly]?: Buffer[]
}

/** The accepted socket (from a server made with `pauseOnConnect: true`), reading through the shared buffer. */
export function withSharedReadBuffer(accepted: net.Socket): net.Socket {
  const socket = adoptAcceptedHandle(accepted, {
    buffer: sharedReadBuffer,
    callback: (n: number, buf: Uint8Array): boolean => {
      const direct = socket as unknown as DirectSocket
      const view = (buf as Buffer).subarray(0, n)
      const receiver = direct[kReceiver]
      if (receiver) {
        receiver(view)
        return true
      }
      // Not claimed yet (nothing defers the session today): a copy is kept for the receiver, up to
      // what a client may send before logging in. null: the receiver let go (the socket was
      // handed to TLS, which reads it itself).
      if (receiver === undefined) {
        const early = (direct[kEarly] ??= [])
        early.push(Buffer.from(view))
        if (early.reduce((sum, b) => sum + b.length, 0) > SHARED_READ_BYTES) socket?.destroy()
      }
      return true
    },
  })
  if (socket) {
    ;(socket as unknown as DirectSocket)[kReceiver] = undefined
    return socket
  }
  accepted.resume()
  return accepted
}

/**
 * Deliver the socket's reads to `receiver` straight from the `onread` callback. False when the
 * socket does not read that way (TLS, the fallback): then the caller listens for 'data'.
 */
export function receiveReads(socket: net.Socket, receiver: Receiver): boolean {
  const direct = socket as unknown as DirectSocket
  if (!(kReceiver in direct)) return false
  direct[kReceiver] = receiver
  const early = direct[kEarly]
  if (early) {
    // After the caller's set-up (a session constructor) has finished, in the order they came.
    direct[kEarly] = undefined
    process.nextTick(() => {
      for (const chunk of early) if (direct[kReceiver] === receiver && !socket.destroyed) receiver(chunk)
    })
  }
  return true
}

/** Stop delivering reads (the socket is being handed over, e.g. to TLS); later reads are dropped. */
export function stopReceiving(socket: net.Socket): void {
  const direct = socket as unknown as DirectSocket
  if (kReceiver in direct) direct[kReceiver] = null
}

/** Whether the socket's reads go straight to a receiver (for tests). */
export function readsDirectly(socket: net.Socket): boolean {
  return typeof (socket as unknown as DirectSocket)[kReceiver] === 'function'
}
