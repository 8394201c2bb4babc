// A server connection whose client went away before the connection was settled (replies
// still owed, an extended batch without its Sync, a transaction open, session state that
// must not reach the next client) is made clean here before it goes back to its pool, or
// closed. It stays counted as busy in the pool until then: the pool size is a promise to
// the database.
//
// Steps, each after the server answered everything before it (the session's reply queue
// carries on, so a reply split across reads and the skip-to-Sync rule still hold):
//   1. Something still running: CancelRequest. A connection whose query was cancelled is
//      closed once the server is idle again, never reused: a cancel that reaches the
//      server late must not hit the next client's query.
//   2. The server skips to Sync after an error: Sync.
//   3. An extended batch open (no Sync since) or a transaction open: ROLLBACK as a simple
//      query (it aborts the implicit transaction of an unsynced batch too; a Sync would
//      commit it).
//   4. Session state: DISCARD ALL.
// Any error of its own, a FATAL, or no progress within `timeoutMs` closes the connection.
import type { Logger } from 'pino'
import * as fe from '../protocol/frontend.js'
import { serialize } from '../protocol/pg-protocol.js'
import { decodeFields, type TxStatus } from '../protocol/backend.js'
import { BackendScanner, type ScannerSink } from '../protocol/backend-scanner.js'
import type { BackendConnection } from '../backend/connection.js'
import type { Pool } from '../backend/pool.js'
import { ReplyQueue } from './reply-queue.js'

export interface CleanupInput {
  conn: BackendConnection
  pool: Pool
  queue: ReplyQueue
  /** The session's scanner (a reply split across reads continues in it); null: a new one. */
  scanner: BackendScanner | null
  /** Transaction status of the last ReadyForQuery the session saw. */
  status: TxStatus
  /** Run DISCARD ALL before reuse (session pooling, pinned state, anything left dirty). */
  reset: boolean
  log: Logger
  timeoutMs?: number
}

export function cleanUpForReuse(input: CleanupInput): void {
  new Cleanup(input).start()
}

/** A settled connection a live session gives up between transactions (its tenant lives on another server): DISCARD ALL, then back to its pool. */
export function resetForReuse(conn: BackendConnection, pool: Pool, log: Logger): void {
  const queue = new ReplyQueue(() => undefined)
  new Cleanup({ conn, pool, queue, scanner: null, status: 'I', reset: true, log }).start()
}

class Cleanup implements ScannerSink {
  private status: TxStatus
  private cancelled = false
  private rollbacks = 0
  private resetSent = false
  private failed = false
  private done = false
  private timer: NodeJS.Timeout | null = null

  constructor(private readonly input: CleanupInput) {
    this.status = input.status
  }

  start(): void {
    const { conn, queue } = this.input
    queue.emit = () => undefined // the client is gone: proxy-made answers go nowhere
    const scanner = this.input.scanner ?? new BackendScanner(this)
    scanner.retarget(this)
    conn.attach({
      onData: (chunk) => {
        try {
          scanner.scan(chunk)
        } catch {
          this.finish(false)
          return true
        }
        this.step()
        return true // nothing of the chunk is kept
      },
      onClose: () => this.finish(false),
    })
    if (queue.owesReplies) {
      conn.cancel()
      this.cancelled = true
    }
    this.timer = setTimeout(() => {
      this.input.log.warn('server connection of a disconnected client did not become idle in time: closed')
      this.finish(false)
    }, this.input.timeoutMs ?? 30_000)
    this.step()
  }

  // ------------------------------------------------------------ ScannerSink: everything is dropped

  forward(): void {}

  onPassThrough(type: number): boolean {
    const q = this.input.queue
    switch (type) {
      case 0x31: // ParseComplete
        q.parseComplete()
        break
      case 0x32: // BindComplete
      case 0x33: // CloseComplete
        q.bindOrCloseComplete()
        break
      case 0x6e: // NoData
      case 0x54: // RowDescription
        q.describeDone()
        break
      case 0x73: // PortalSuspended
      case 0x49: // EmptyQueryResponse
        q.executeDone()
        break
    }
    return false
  }

  onReadyForQuery(status: number): boolean {
    this.status = String.fromCharCode(status) as TxStatus
    this.input.queue.readyForQuery()
    return false
  }

  onInspected(type: number, raw: Buffer): boolean {
    const q = this.input.queue
    if (type === 0x5a) return this.onReadyForQuery(raw[5])
    if (type === 0x43) q.commandComplete(raw.toString('utf8', 5, raw.length - 1))
    else if (type === 0x45) {
      const fields = decodeFields(raw)
      if (fields.S === 'FATAL' || fields.S === 'PANIC') this.failed = true
      const head = q.error()
      if (head?.kind === 'internal' && !(this.cancelled && fields.C === '57014')) this.failed = true
    }
    return false
  }

  // ------------------------------------------------------------ steps

  private step(): void {
    if (this.done) return
    const { conn, queue } = this.input
    if (queue.owesReplies) return
    if (this.failed || this.cancelled) return this.finish(false)
    if (queue.skipping) {
      conn.write(serialize.sync())
      queue.expect('sync')
      return
    }
    if (queue.unsynced || this.status !== 'I') {
      if (this.rollbacks++ > 1) return this.finish(false)
      conn.write(fe.encodeQuery('ROLLBACK'))
      queue.expect('internal')
      return
    }
    if (this.input.reset && !this.resetSent) {
      this.resetSent = true
      conn.write(fe.encodeQuery('DISCARD ALL'))
      queue.expect('internal')
      return
    }
    this.finish(true)
  }

  private finish(reusable: boolean): void {
    if (this.done) return
    this.done = true
    if (this.timer) clearTimeout(this.timer)
    const { conn, pool } = this.input
    conn.detach()
    if (this.resetSent) {
      // DISCARD ALL dropped the proxy's statements and the settings it had replayed there.
      conn.forgetStatements()
      conn.forgetState()
    }
    pool.release(conn, reusable && !conn.closed)
  }
}
