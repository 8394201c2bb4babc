// The expected-reply bookkeeping of one client session's server connection, as a pure
// state machine: no sockets, no timers. The session tells it what it sent (or answered
// itself) and what the server replied; it says which reply belongs to which request, which
// requests the server skipped after an error, and whether the connection is at a point
// where nothing is owed and no extended-protocol batch is open on the server.
//
// PostgreSQL's rules it follows:
// - A simple Query, a FunctionCall and a Sync each end with one ReadyForQuery.
// - Extended-protocol messages (Parse/Bind/Describe/Execute/Close) run in an implicit
//   transaction that stays open until the next Sync (or simple Query, whose end commits it):
//   until then the server holds uncommitted work, portals and possibly an error.
// - After an error in an extended message the server discards every message up to the next
//   Sync, simple Queries included, and answers that Sync with ReadyForQuery.
// - COPY … FROM STDIN (CopyInResponse): until the client's CopyDone or CopyFail the server reads
//   copy data and ignores Sync and Flush (libpq sends a Sync right after the Execute of a COPY),
//   so a Sync sent meanwhile gets no ReadyForQuery. Outside COPY the server ignores CopyDone/CopyFail.
//
// A server connection may go back to a pool only when `settled` is true (and the
// transaction status of the last ReadyForQuery is idle).
import type { SessionEffect } from '../../parser/types.js'

export type EntryKind = 'query' | 'internal' | 'parse' | 'bind' | 'describe' | 'close' | 'execute' | 'sync' | 'function' | 'synthetic' | 'copyend'

/**
 * One expected server reply (or proxy-made answer) in the order the client asked for it.
 * Every kind has the same fields so the per-message code sees one object shape.
 */
export interface Entry {
  kind: EntryKind
  /** parse: the server-side statement name (null: unnamed) */
  serverName: string | null
  /** parse, bind or execute made by the proxy itself: its ParseComplete / BindComplete / CommandComplete is not the client's */
  swallow: boolean
  /** query: one per statement, in order, the session effect its CommandComplete confirms (null: none); execute: at most one */
  effects: readonly (SessionEffect | null)[]
  /** query: how many of its statements the server completed so far */
  completed: number
  failed: boolean
  /** synthetic: the bytes to send; a request the proxy sent only to make the server fail: what the client gets in place of the server's error */
  bytes: readonly Buffer[]
  /** Called when the server rejects or skips this request (or a proxy answer is dropped because the server skipped its batch). */
  onFail: (() => void) | null
  /** internal: called with the tag of each CommandComplete it produces */
  onTag: ((tag: string) => void) | null
  /** describe of a statement: called with its result shape (the RowDescription's bytes, or 'n' for NoData) */
  onShape: ((shape: string) => void) | null
}

/** Shared empty lists (never written to: entries' effects and bytes are only read). */
export const NO_EFFECTS: readonly (SessionEffect | null)[] = []
const NO_BYTES: readonly Buffer[] = []

export interface EntryOptions {
  serverName?: string | null
  swallow?: boolean
  effects?: readonly (SessionEffect | null)[]
  bytes?: readonly Buffer[]
  onFail?: (() => void) | null
  onTag?: ((tag: string) => void) | null
  onShape?: ((shape: string) => void) | null
}

const NO_OPTIONS: EntryOptions = {}

export function entry(kind: EntryKind, o: EntryOptions = NO_OPTIONS): Entry {
  return {
    kind,
    serverName: o.serverName ?? null,
    swallow: o.swallow ?? false,
    effects: o.effects ?? NO_EFFECTS,
    completed: 0,
    failed: false,
    bytes: o.bytes ?? NO_BYTES,
    onFail: o.onFail ?? null,
    onTag: o.onTag ?? null,
    onShape: o.onShape ?? null,
  }
}

// (switches, not Sets: these run for every message, and a Set of strings hashes the kind each time)
function isExtended(kind: EntryKind): boolean {
  switch (kind) {
    case 'parse':
    case 'bind':
    case 'describe':
    case 'close':
    case 'execute':
      return true
    default:
      return false
  }
}

/** Requests the server answers with ReadyForQuery. */
function endsWithReady(kind: EntryKind): boolean {
  switch (kind) {
    case 'query':
    case 'internal':
    case 'sync':
    case 'function':
      return true
    default:
      return false
  }
}

/** What commandComplete returns: one object per queue, overwritten by the next call (read it at once). */
export interface Completed {
  entry: Entry | null
  effect: SessionEffect | null
}

export class ReplyQueue {
  private readonly entries: Entry[] = []
  /** Extended-protocol messages went to the server since the last Sync, Query or FunctionCall sent. */
  private unsyncedSent = false
  /** The server reported an error in an extended message and discards everything up to the next Sync. */
  private skippingToSync = false
  /** The server is in COPY FROM STDIN (its CopyInResponse came) and the client's CopyDone/CopyFail has not been sent. */
  private copying = false
  private readonly completed: Completed = { entry: null, effect: null }

  /** `emit` receives the bytes of proxy-made answers when they reach the head of the queue. */
  constructor(public emit: (bytes: Buffer) => void) {}

  get length(): number {
    return this.entries.length
  }

  get head(): Entry | undefined {
    return this.entries[0]
  }

  /** The server still owes replies (proxy-made answers waiting behind them do not count). */
  get owesReplies(): boolean {
    for (const e of this.entries) if (e.kind !== 'synthetic' && e.kind !== 'copyend') return true
    return false
  }

  /** A client's Query, Sync or FunctionCall is still unanswered: the transaction status will be known at its ReadyForQuery. */
  get awaitsClientReady(): boolean {
    for (const e of this.entries) if (e.kind === 'query' || e.kind === 'sync' || e.kind === 'function') return true
    return false
  }

  /** The server reads COPY … FROM STDIN data (its CopyInResponse came; the CopyDone/CopyFail was not sent yet). */
  get inCopy(): boolean {
    return this.copying
  }

  /** The server is discarding messages until a Sync (an error in an extended batch, no Sync sent after it yet). */
  get skipping(): boolean {
    return this.skippingToSync
  }

  /** An extended batch is open on the server: messages were sent after the last Sync/Query, or the server awaits a Sync after an error. */
  get unsynced(): boolean {
    return this.unsyncedSent || this.skippingToSync
  }

  /** Nothing owed and no batch open: the only state in which the connection may serve someone else (with an idle status). */
  get settled(): boolean {
    return this.entries.length === 0 && !this.unsyncedSent && !this.skippingToSync
  }

  /**
   * A message went to the server; returns its entry. While the server skips to Sync, anything
   * but a Sync is discarded by the server: no reply is expected (its onFail runs at once).
   */
  expect(kind: Exclude<EntryKind, 'synthetic' | 'copyend'>, o: EntryOptions = NO_OPTIONS): Entry {
    const e = entry(kind, o)
    if (this.copying && kind === 'sync') return e // read and ignored by the server's COPY
    if (this.skippingToSync && kind !== 'sync') {
      e.failed = true
      e.onFail?.()
      return e
    }
    if (isExtended(kind)) this.unsyncedSent = true
    else this.unsyncedSent = false // Sync, Query and FunctionCall each end the implicit transaction
    this.entries.push(e)
    return e
  }

  /**
   * Messages the proxy puts on the wire ahead of everything still unsent (session-state
   * replay, a deferred BEGIN): they never end a batch the client opened.
   */
  expectFirst(...es: Entry[]): void {
    for (const e of es) if (isExtended(e.kind)) this.unsyncedSent = true
    this.entries.unshift(...es)
  }

  /**
   * A proxy-made answer: returns false when nothing is owed and the caller should send it now;
   * otherwise it is queued behind what the server owes (and dropped with it if the server
   * skips to Sync: PostgreSQL would not have answered that message either).
   */
  answer(bytes: readonly Buffer[], onFail: (() => void) | null = null): boolean {
    if (this.skippingToSync) {
      onFail?.()
      return true
    }
    if (this.entries.length === 0) return false
    this.entries.push(entry('synthetic', { bytes, onFail }))
    return true
  }

  /**
   * CopyInResponse: the request at the head started COPY FROM STDIN. Syncs the client sent after it
   * and before its CopyDone/CopyFail are read by the COPY, which ignores them: no reply comes for them.
   */
  copyIn(): void {
    for (let i = 1; i < this.entries.length;) {
      const k = this.entries[i].kind
      if (k === 'copyend') {
        this.entries.splice(i, 1)
        return
      }
      if (k === 'sync') this.entries.splice(i, 1)
      else i++
    }
    this.copying = true
  }

  /** The client's CopyDone or CopyFail (or the proxy's CopyFail) went to the server. */
  copyEnd(): void {
    if (this.copying) this.copying = false
    // the COPY has not started yet (or never will: the server ignores the message outside COPY)
    else if (this.entries.length > 0) this.entries.push(entry('copyend'))
  }

  /** Drop the head entry and emit any proxy-made answers now at the head. */
  private complete(): Entry {
    const done = this.entries.shift() as Entry
    this.emitSynthetic()
    return done
  }

  private emitSynthetic(): void {
    while (this.entries.length > 0 && (this.entries[0].kind === 'synthetic' || this.entries[0].kind === 'copyend')) {
      const e = this.entries.shift() as Entry
      for (const b of e.bytes) this.emit(b)
    }
  }

  // ------------------------------------------------------------ server replies

  /** ParseComplete: the parse entry it answers, or null (not expected: forward it as is). */
  parseComplete(): Entry | null {
    return this.head?.kind === 'parse' ? this.complete() : null
  }

  /** BindComplete or CloseComplete. */
  bindOrCloseComplete(): Entry | null {
    const k = this.head?.kind
    return k === 'bind' || k === 'close' ? this.complete() : null
  }

  /** NoData or RowDescription: completes a Describe (a RowDescription may also be a query's). */
  describeDone(): Entry | null {
    return this.head?.kind === 'describe' ? this.complete() : null
  }

  /** PortalSuspended or EmptyQueryResponse: the end of an Execute. */
  executeDone(): Entry | null {
    return this.head?.kind === 'execute' ? this.complete() : null
  }

  /**
   * CommandComplete. Returns the entry it belongs to (still at the head for a query, which
   * ends with ReadyForQuery) and the effect this statement's completion confirms, in an
   * object the next call overwrites.
   */
  commandComplete(tag: string): Completed {
    const head = this.head
    const out = this.completed
    out.entry = head ?? null
    out.effect = null
    if (!head) return out
    if (head.kind === 'execute') {
      this.complete()
      out.effect = head.effects[0] ?? null
      return out
    }
    if (head.kind === 'query' || head.kind === 'function') {
      out.effect = head.effects[head.completed] ?? null
      head.completed++
      return out
    }
    if (head.kind === 'internal') head.onTag?.(tag)
    return out
  }

  /**
   * ErrorResponse (ERROR severity). Returns the entry it answers. After an error in an
   * extended message the server skips to Sync, and so does the queue: the requests in
   * between are dropped (and their onFail run), proxy answers among them too.
   */
  error(): Entry | null {
    this.copying = false // an error ends a COPY: the server reads commands again
    const head = this.head
    if (!head) return null
    head.failed = true
    if (endsWithReady(head.kind)) return head // ReadyForQuery follows
    this.skippingToSync = true
    while (this.entries.length > 0 && this.entries[0].kind !== 'sync') {
      const e = this.entries.shift() as Entry
      e.failed = true
      e.onFail?.()
    }
    return head
  }

  /**
   * ReadyForQuery: pops everything up to the request it answers (extended requests left
   * unanswered after an error go too; proxy answers among them are emitted) and returns it;
   * `failed` on it says the work it ended was rolled back (an error, if in no transaction block).
   */
  readyForQuery(): Entry | null {
    this.copying = false
    let answered: Entry | null = null
    while (this.entries.length > 0) {
      const e = this.entries[0]
      if (e.kind === 'synthetic') {
        this.entries.shift()
        for (const b of e.bytes) this.emit(b)
        continue
      }
      if (endsWithReady(e.kind)) {
        // A Sync that ends a batch the server skipped after an error ends a rolled-back implicit transaction.
        if (e.kind === 'sync' && this.skippingToSync) e.failed = true
        answered = this.complete()
        break
      }
      this.entries.shift()
      if (!e.failed) {
        e.failed = true
        e.onFail?.()
      }
    }
    if (answered !== null) this.skippingToSync = false // a ReadyForQuery means the server reads commands again
    return answered
  }

  /** The server connection is gone: forget everything (no callbacks run). */
  clear(): void {
    this.entries.length = 0
    this.unsyncedSent = false
    this.skippingToSync = false
    this.copying = false
  }
}
