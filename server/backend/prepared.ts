// Bounded server-side prepared statements (issue 15 item 5).
//
// The proxy prepares named statements on server connections under shared names
// (pgt_<random>_<n>) and keeps them there for whichever client runs the same text next. Left
// alone they grow without bound: one client running one named statement for 300 tenants left
// 300 statements on one server connection. Like PgBouncer and PgDog, each server connection
// keeps at most `pool.max_prepared_statements` (default 100; 0 = unlimited), least recently
// used out first. An evicted statement is closed on the server (a Close message, the protocol
// form of DEALLOCATE) right before the next Parse on that connection, its CloseComplete
// swallowed; if the server skips the Close (an error earlier in the batch), the name is kept
// for the next Parse. A statement used since the connection was last attached (the current
// transaction under transaction pooling) is never evicted: a portal or a Bind of this batch
// may still refer to it. The proxy's text → name map is bounded too (SharedStatementNames).
import type { ReplyQueue } from '../session/reply-queue.js'
import { sharedStatementName } from '../session/statement-names.js'
import { encodeTarget } from '../protocol/frontend.js'

export const DEFAULT_MAX_PREPARED_STATEMENTS = 100

/** The shared statements prepared on one server connection, in least-recently-used order. */
export class PreparedStatements {
  /** Name → attachment (epoch) in which it was last used; Map order: least recently used first. */
  private readonly used = new Map<string, number>()
  /** Evicted here, still prepared on the server until their Close goes out. */
  private readonly evicted: string[] = []
  /** Bumped each time a client session attaches to the connection. */
  epoch = 0

  constructor(public limit = DEFAULT_MAX_PREPARED_STATEMENTS) {}

  /** Statements the proxy counts as prepared on the server (not counting evicted ones awaiting their Close). */
  get size(): number {
    return this.used.size
  }

  /** Statements that exist on the server right now, as far as the proxy knows. */
  get onServer(): number {
    return this.used.size + this.evicted.length
  }

  /** Is `name` prepared on the server? Counts as a use. An evicted name not yet closed is taken back. */
  has(name: string): boolean {
    if (this.used.delete(name)) {
      this.used.set(name, this.epoch)
      return true
    }
    const i = this.evicted.length > 0 ? this.evicted.indexOf(name) : -1
    if (i < 0) return false
    this.evicted.splice(i, 1)
    this.used.set(name, this.epoch)
    return true
  }

  /** A Parse of `name` goes to the server now. Evicts the least recently used beyond the limit. */
  add(name: string): void {
    this.used.delete(name)
    this.used.set(name, this.epoch)
    if (this.limit <= 0) return
    for (const [old, epoch] of this.used) {
      if (this.used.size <= this.limit || epoch === this.epoch) break
      this.used.delete(old)
      this.evicted.push(old)
    }
  }

  /** The server does not have `name` (its Parse failed or was skipped, or it was deallocated). */
  delete(name: string): boolean {
    return this.used.delete(name)
  }

  /** DEALLOCATE ALL / DISCARD ALL ran: nothing is prepared any more. */
  clear(): void {
    this.used.clear()
    this.evicted.length = 0
  }

  /** Names evicted and not yet closed; the caller sends their Close now. */
  takeEvicted(): string[] {
    return this.evicted.length === 0 ? NONE : this.evicted.splice(0)
  }

  /** A Close for an evicted name did not run (the server skipped it): it is still there, close it next time. */
  closeSkipped(name: string): void {
    if (!this.used.has(name) && !this.evicted.includes(name)) this.evicted.push(name)
  }

  /** Iteration over the names the proxy counts as prepared (tests, admin). */
  [Symbol.iterator](): IterableIterator<string> {
    return this.used.keys()
  }
}

const NONE: string[] = []

/**
 * Before a Parse on `prepared`'s connection: send a Close for every statement evicted there
 * (through `send`, the session's own path to the server, so it is ordered with the Parse) and
 * expect its CloseComplete, swallowed, in `queue`.
 */
export function closeEvicted(prepared: PreparedStatements, queue: ReplyQueue, send: (buf: Buffer) => void): void {
  for (const name of prepared.takeEvicted()) {
    send(encodeTarget('C', 'S', name))
    queue.expect('close', { swallow: true, onFail: () => prepared.closeSkipped(name) })
  }
}

/**
 * The proxy's map from statement text (and parameter types) to shared server-side name, least
 * recently used out beyond `limit()` entries (0: unlimited). A forgotten text gets a new name
 * when it comes back; statements under its old name age out of the connections' LRUs. Names
 * are never reused.
 */
export class SharedStatementNames {
  private readonly names = new Map<string, string>()
  private issued = 0

  constructor(private readonly limit: () => number) {}

  get size(): number {
    return this.names.size
  }

  /** Forget every text (after DDL): Parses from now on get new names. */
  clear(): void {
    this.names.clear()
  }

  name(sql: string, paramTypes: Buffer): string {
    const key = paramTypes.length > 2 ? `${sql}\u0000${paramTypes.toString('hex')}` : sql
    let name = this.names.get(key)
    if (name !== undefined) {
      this.names.delete(key)
      this.names.set(key, name)
      return name
    }
    name = sharedStatementName(++this.issued)
    this.names.set(key, name)
    const limit = this.limit()
    if (limit > 0)
      for (const k of this.names.keys()) {
        if (this.names.size <= limit) break
        this.names.delete(k)
      }
    return name
  }
}

/** How many texts the proxy remembers names for, given the per-connection limit: ten times it, at least 1,000; 0: unlimited. */
export function sharedNamesLimit(maxPreparedStatements: number): number {
  return maxPreparedStatements <= 0 ? 0 : Math.max(1000, 10 * maxPreparedStatements)
}
