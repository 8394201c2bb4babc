// Server-connection pools: one per (backend, database, user), all under one global cap
// (pool.max_server_connections), which may be below the sum of the pool sizes.
//
// Under the cap, connections move to where clients wait (issue 15 item 4):
// - a pool that needs a connection while the cap is reached closes the least recently used
//   idle connection of another pool (`PoolManager.makeRoom`);
// - a connection released in one pool is closed instead of being reused there when another
//   pool is blocked by the cap with clients waiting and deserves it more (`PoolManager.giveWay`):
//   always when the releasing pool has no one waiting (it would only sit idle), else when the
//   other pool's clients have waited longer and it holds a smaller share of its size, so that
//   busy pools converge on shares of the cap in proportion to their sizes without trading one
//   connection back and forth; a pool with waiters and no connection at all always gets one.
//   The blocked pool then opens its connection ahead of anyone else.
// - when a connection goes away anywhere, pools with waiters are served oldest waiter first.
// A closed connection leaves the count only when the server has closed its end (its backend
// has exited; `BackendConnection.retire`), so the server itself never sees more than the
// cap or a pool's size, not even while a connection moves from one pool to another.
// The manager keeps the number of server connections as a running counter, so these checks
// cost O(pools with waiters), not O(pools).
//
// The proxy's own catalog reads (schema discovery, Citus metadata: server/schema-catalogs.ts)
// take their connections from small pools of their own (`urgent`, one connection per backend),
// not registered with the manager's pools but counted under the same cap: they wait for room
// like any pool, ahead of every client (sessions may be waiting for what they read), and never
// take the server above max_server_connections.
import { BackendConnection, BackendError, type BackendTarget } from './connection.js'
import { DEFAULT_MAX_PREPARED_STATEMENTS } from './prepared.js'

interface Waiter {
  resolve(conn: BackendConnection): void
  reject(err: Error): void
  timer: NodeJS.Timeout
  /** The session state the client needs (tenant, settings): a connection already in it needs no replay. */
  stateKey: string
  /** How many times a later waiter was served before this one. */
  passed: number
  /** Arrival order across all pools (a manager-wide sequence): smaller waited longer. */
  since: number
}

export interface PoolLimits {
  waitTimeoutMs: number
  connectTimeoutMs: number
  idleTimeoutMs: number
  maxServerConnections: number
  /** Shared prepared statements kept per server connection (pool.max_prepared_statements; 0 = unlimited). */
  maxPreparedStatements?: number
}

/** How long a closed server connection may take to go away on the server before it is cut off and no longer counted. */
const RETIRE_TIMEOUT_MS = 5000

/** How many idle connections the pool looks through for one already in the client's state. */
const AFFINITY_SCAN = 16
/**
 * A released connection goes to the first of this many waiting clients that needs the
 * session state it is already in (the same tenant, say), sparing a RESET ALL and set_config
 * replay on the server; a client passed over this many times is served next whatever its
 * state. Without it, 5 tenants × 10 clients on a pool of 20 replayed state on 2 of every 3
 * transactions. Waiting stays first come, first served within that bound.
 */
const WAITER_SCAN = 32
const MAX_PASSED = 16

export class Pool {
  readonly idle: BackendConnection[] = []
  active = 0
  connecting = 0
  private readonly waiters: Waiter[] = []
  /** ParameterStatus values of the first connection, reported to clients at login. */
  serverParams: Map<string, string> | null = null
  lastUsed = Date.now()
  /** Connections this pool closed to make room for another pool's waiters (metrics, tests). */
  gaveWay = 0
  /** Connections other pools are closing to make room for this one's waiters. */
  incoming = 0
  /**
   * Connections of this pool closed but not yet gone on the server: they still count against
   * its size (a replacement waits for them), so the server never sees more than `size` of them.
   */
  retiring = 0
  /**
   * Every server connection this pool opened whose socket is not closed yet (idle, in use,
   * being cleaned up, being retired): RECONNECT marks them all, WAIT_CLOSE waits for them.
   */
  readonly live = new Set<BackendConnection>()
  /** Bumped by RECONNECT/RELOAD (replace): a connect started before it is closed once released. */
  private generation = 0
  /** Connects in flight that started before the last replace() (WAIT_CLOSE waits for them too). */
  staleConnecting = 0
  /** Dropped from the manager's map by a reload that changed its backend: what it still opens is closed once released. */
  retired = false

  constructor(
    readonly key: string,
    readonly backendName: string,
    public target: BackendTarget,
    public size: number,
    private readonly manager: PoolManager,
    /** Its waiters go before every client waiting anywhere (the proxy's own catalog reads, which sessions may be waiting for). */
    readonly urgent = false,
  ) {}

  get total(): number {
    return this.idle.length + this.active + this.connecting
  }

  /** Connections of this pool the server may have right now: `total` and those still going away. */
  get onServer(): number {
    return this.total + this.retiring
  }

  get waiting(): number {
    return this.waiters.length
  }

  /** Arrival order of the client that has waited longest here (Infinity: nobody waits). */
  get oldestWait(): number {
    return this.waiters.length > 0 ? this.waiters[0].since : Infinity
  }

  acquire(stateKey = ''): Promise<BackendConnection> {
    this.lastUsed = Date.now()
    const conn = this.takeIdle(stateKey)
    if (conn) return Promise.resolve(conn)
    if (this.onServer < this.size && this.manager.hasRoom()) return this.open()
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.removeWaiter(waiter)
          reject(
            new BackendError(
              `timed out after ${this.manager.limits.waitTimeoutMs} ms waiting for a server connection (backend "${this.backendName}", pool size ${this.size})`,
              '53300',
            ),
          )
        }, this.manager.limits.waitTimeoutMs),
        stateKey,
        passed: 0,
        since: this.urgent ? this.manager.arrival() - Number.MAX_SAFE_INTEGER : this.manager.arrival(),
      }
      this.waiters.push(waiter)
      if (this.waiters.length === 1) this.manager.waitingPools.add(this)
      if (this.onServer + this.incoming < this.size) this.manager.makeRoom(this)
    })
  }

  /** An idle connection right now, without waiting (the hot path), or null. */
  tryAcquire(stateKey = ''): BackendConnection | null {
    this.lastUsed = Date.now()
    return this.takeIdle(stateKey)
  }

  /** Give a connection back. `reusable` false (broken, or state unknown) closes it. */
  release(conn: BackendConnection, reusable: boolean): void {
    this.active--
    this.lastUsed = Date.now()
    if (!reusable || conn.closed || this.total >= this.size || (this.manager.closeNeeded.size > 0 && this.manager.closeNeeded.has(conn))) {
      this.manager.retire(conn, null, this)
      return
    }
    const other = this.manager.giveWay(this)
    if (other) {
      // Another pool's clients need the room under the cap more than this pool does.
      this.gaveWay++
      this.manager.retire(conn, other, this)
      return
    }
    const waiter = this.nextWaiter(conn.stateKey)
    if (waiter) {
      clearTimeout(waiter.timer)
      this.active++
      waiter.resolve(conn)
      return
    }
    this.idle.push(conn)
    conn.onIdleClose = this.idleClosed
  }

  /** Serve queued clients if there is room now (called when a connection closed anywhere). */
  serveWaiters(): void {
    while (this.waiters.length > 0) {
      const conn = this.takeIdle('')
      if (conn) {
        const w = this.shiftWaiter()
        clearTimeout(w.timer)
        w.resolve(conn)
        continue
      }
      if (this.onServer < this.size && this.manager.hasRoom()) {
        const w = this.shiftWaiter()
        clearTimeout(w.timer)
        this.open().then(w.resolve, w.reject)
        continue
      }
      break
    }
  }

  /** Close idle connections unused for longer than `maxIdleMs`; returns how many. */
  closeIdle(maxIdleMs: number, now = Date.now()): number {
    let closed = 0
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const c = this.idle[i]
      if (c.closed || now - c.lastUsed >= maxIdleMs) {
        this.idle.splice(i, 1)
        this.manager.retire(c, null, this)
        closed++
      }
    }
    return closed
  }

  /** Close the least recently used idle connection to make room for `to` under the global cap. */
  evictOne(to: Pool): boolean {
    if (this.idle.length === 0) return false
    this.gaveWay++
    this.manager.retire(this.idle.shift() as BackendConnection, to, this)
    return true
  }

  /**
   * RECONNECT (or a RELOAD that changed this pool's backend): idle connections are closed
   * now; those in use, being cleaned up or still connecting are marked close_needed and
   * closed when released, never reused.
   */
  replace(): void {
    this.generation++
    this.staleConnecting = this.connecting
    for (const c of this.live) this.manager.closeNeeded.set(c, this.backendName)
    for (const c of this.idle.splice(0)) this.manager.retire(c, null, this)
  }

  closeAll(): void {
    for (const c of this.idle.splice(0)) this.manager.retire(c, null, this)
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer)
      w.reject(new BackendError('pool closed', '57P01'))
    }
    this.manager.waitingPools.delete(this)
  }

  /** An idle connection the server closed (killed, restarted): out of the pool and the count at once. */
  private readonly idleClosed = (conn: BackendConnection): void => {
    const i = this.idle.indexOf(conn)
    if (i < 0) return
    this.idle.splice(i, 1)
    this.manager.count--
    this.manager.connectionClosed()
  }

  private shiftWaiter(): Waiter {
    const w = this.waiters.shift() as Waiter
    if (this.waiters.length === 0) this.manager.waitingPools.delete(this)
    return w
  }

  /**
   * The most recently used idle connection, preferring one whose session state (tenant and
   * settings) already matches `stateKey`: that saves the RESET/set_config the session would
   * otherwise pipeline ahead of its transaction. Only the newest few are looked at (O(1)).
   */
  private takeIdle(stateKey: string): BackendConnection | null {
    const last = this.idle.length - 1
    if (stateKey !== '' && last > 0 && this.idle[last].stateKey !== stateKey) {
      for (let i = last - 1; i >= 0 && i >= last - AFFINITY_SCAN; i--) {
        const c = this.idle[i]
        if (c.stateKey !== stateKey) continue
        this.idle[i] = this.idle[last]
        this.idle[last] = c
        break
      }
    }
    while (this.idle.length > 0) {
      const c = this.idle.pop() as BackendConnection
      c.onIdleClose = null
      if (!c.closed) {
        c.prepared.limit = this.manager.limits.maxPreparedStatements ?? DEFAULT_MAX_PREPARED_STATEMENTS
        this.active++
        return c
      }
      this.manager.retire(c, null, this) // counted until the server has let go of it
    }
    return null
  }

  private async open(): Promise<BackendConnection> {
    this.connecting++
    this.manager.count++
    const generation = this.generation
    try {
      const conn = await BackendConnection.connect(this.target, this.manager.limits.connectTimeoutMs)
      if (!this.serverParams) this.serverParams = new Map(conn.params)
      conn.prepared.limit = this.manager.limits.maxPreparedStatements ?? DEFAULT_MAX_PREPARED_STATEMENTS
      this.connecting--
      this.active++
      this.track(conn, generation !== this.generation || this.retired)
      return conn
    } catch (err) {
      this.connecting--
      this.manager.count--
      this.manager.connectionClosed()
      if (generation !== this.generation && !this.retired) {
        this.staleConnecting--
        this.manager.closeNeededChanged()
      }
      throw err
    }
  }

  /** Keep `conn` in `live` until its socket closes, whichever way (released, retired, shutdown, server gone). */
  private track(conn: BackendConnection, closeNeeded: boolean): void {
    if (closeNeeded) {
      if (!this.retired) this.staleConnecting--
      this.manager.closeNeeded.set(conn, this.backendName)
    }
    this.live.add(conn)
    conn.socket.once('close', () => {
      this.live.delete(conn)
      if (this.manager.closeNeeded.delete(conn)) this.manager.closeNeededChanged()
    })
  }

  /** The waiting client a released connection in state `stateKey` goes to (see WAITER_SCAN). */
  private nextWaiter(stateKey: string): Waiter | undefined {
    const head = this.waiters[0]
    if (head === undefined) return undefined
    if (stateKey === '' || head.stateKey === stateKey || head.passed >= MAX_PASSED) return this.shiftWaiter()
    const n = Math.min(this.waiters.length, WAITER_SCAN)
    for (let i = 1; i < n; i++) {
      if (this.waiters[i].stateKey !== stateKey) continue
      for (let j = 0; j < i; j++) this.waiters[j].passed++
      return this.waiters.splice(i, 1)[0]
    }
    return this.shiftWaiter()
  }

  private removeWaiter(w: Waiter): void {
    const i = this.waiters.indexOf(w)
    if (i >= 0) this.waiters.splice(i, 1)
    if (this.waiters.length === 0) this.manager.waitingPools.delete(this)
  }
}

export class PoolManager {
  readonly pools = new Map<string, Pool>()
  /** Pools with at least one waiting client. */
  readonly waitingPools = new Set<Pool>()
  /** Server connections of all pools (idle, busy and being opened): a running counter. */
  count = 0
  private arrivals = 0

  constructor(public limits: PoolLimits) {}

  /**
   * Server connections RECONNECT or RELOAD replaced (close_needed), by backend name: closed
   * when released instead of being reused; an entry leaves when the connection's socket has
   * closed, whatever closed it.
   */
  readonly closeNeeded = new Map<BackendConnection, string>()
  private readonly closeWaiters = new Set<{ backend: string | undefined; done(): void }>()

  /** RECONNECT [backend]: replace the server connections of that backend's pools (or all). */
  replace(backend?: string, opts: { forget?: boolean } = {}): void {
    for (const [key, p] of this.pools) {
      if (backend !== undefined && p.backendName !== backend) continue
      p.replace()
      if (opts.forget) {
        // Its settings changed (RELOAD): the next transaction gets a new pool with the new target.
        p.retired = true
        p.staleConnecting = 0
        this.pools.delete(key)
      }
    }
    this.closeNeededChanged()
  }

  /** Server connections still to close after RECONNECT/RELOAD (of one backend, or all), connects in flight included. */
  closeNeededCount(backend?: string): number {
    let n = 0
    for (const b of this.closeNeeded.values()) if (backend === undefined || b === backend) n++
    for (const p of this.pools.values()) if (backend === undefined || p.backendName === backend) n += p.staleConnecting
    return n
  }

  /** WAIT_CLOSE: settles once closeNeededCount(backend) is 0; cancel() forgets the wait. */
  waitClosed(backend?: string): { done: Promise<void>; cancel(): void } {
    if (this.closeNeededCount(backend) === 0) return { done: Promise.resolve(), cancel: () => undefined }
    let waiter!: { backend: string | undefined; done(): void }
    const done = new Promise<void>((resolve) => (waiter = { backend, done: resolve }))
    this.closeWaiters.add(waiter)
    return { done, cancel: () => void this.closeWaiters.delete(waiter) }
  }

  /** A close_needed connection went away (or a stale connect failed): settle the WAIT_CLOSEs now satisfied. */
  closeNeededChanged(): void {
    for (const w of this.closeWaiters) {
      if (this.closeNeededCount(w.backend) > 0) continue
      this.closeWaiters.delete(w)
      w.done()
    }
  }

  get totalConnections(): number {
    return this.count
  }

  /** The next waiter's place in the manager-wide arrival order. */
  arrival(): number {
    return ++this.arrivals
  }

  pool(key: string, backendName: string, target: BackendTarget, size: number): Pool {
    let p = this.pools.get(key)
    if (!p) {
      p = new Pool(key, backendName, target, size, this)
      this.pools.set(key, p)
    }
    return p
  }

  /** May one more connection be opened under the global cap? */
  hasRoom(): boolean {
    return this.count < this.limits.maxServerConnections
  }

  /**
   * `requester` has waiters and is below its size: if the cap is what stops it, close the
   * least recently used idle connection of another pool for it (the room goes to it once
   * that connection is gone on the server).
   */
  makeRoom(requester: Pool): void {
    let victim: Pool | null = null
    for (const p of this.pools.values()) {
      if (p === requester || p.idle.length === 0) continue
      if (!victim || p.idle[0].lastUsed < victim.idle[0].lastUsed) victim = p
    }
    victim?.evictOne(requester)
  }

  /**
   * Close `conn` (already out of its pool's idle list and active count). It stays counted
   * until the server has let go of it; then the room goes first to `forPool` (the pool it
   * was closed for), then to the longest-waiting clients of any pool.
   */
  retire(conn: BackendConnection, forPool: Pool | null, from: Pool): void {
    if (forPool) forPool.incoming++
    this.retiring++
    from.retiring++
    conn.retire(RETIRE_TIMEOUT_MS).then(() => {
      this.retiring--
      from.retiring--
      this.count--
      if (forPool) {
        forPool.incoming--
        if (forPool.waiting > 0) forPool.serveWaiters()
      }
      this.serveOldestFirst()
    })
  }

  /** Connections closed but not yet gone on the server (still counted). */
  private retiring = 0

  /**
   * `from` is about to reuse a released connection (hand it to its own waiter or keep it
   * idle). Returns the pool that should get the room instead, or null. Only at the cap, and
   * only for a pool that is blocked by it (clients waiting, below its own size). Among those,
   * the one whose client has waited longest. If `from` has waiters of its own, it gives way
   * only to a pool whose waiters are older and that, even with one more connection, would
   * hold a smaller share of its size than `from` holds now (or that holds nothing at all):
   * weighted shares converge (water-filling), and a connection is never traded straight back.
   */
  giveWay(from: Pool): Pool | null {
    if (this.waitingPools.size === 0 || this.count < this.limits.maxServerConnections) return null
    let best: Pool | null = null
    for (const p of this.waitingPools) {
      // Blocked: clients waiting beyond what is already on its way, room below its size.
      if (p === from || p.onServer + p.incoming >= p.size || p.waiting <= p.incoming) continue
      if (!best || p.oldestWait < best.oldestWait) best = p
    }
    if (!best) return null
    if (from.waiting === 0) return best
    if (best.oldestWait > from.oldestWait) return null
    const has = best.total + best.incoming
    if (has === 0) return best
    // from.total already excludes the released connection: (has+1)/best.size < (from+1)/from.size.
    return (has + 1) * from.size < (from.total + 1) * best.size ? best : null
  }

  /** A connection went away somewhere: let waiting clients of any pool use the room, longest-waiting first. */
  connectionClosed(): void {
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(() => {
      this.scheduled = false
      this.serveOldestFirst()
    })
  }

  private serveOldestFirst(): void {
    if (this.waitingPools.size === 0 || !this.hasRoom()) return
    const pools = this.waitingPools.size === 1 ? [...this.waitingPools] : [...this.waitingPools].sort((a, b) => a.oldestWait - b.oldestWait)
    for (const p of pools) if (p.waiting > 0) p.serveWaiters()
  }

  private scheduled = false

  /** Periodic upkeep: close idle connections past the idle timeout, forget empty pools. */
  reap(now = Date.now()): void {
    for (const [key, p] of this.pools) {
      p.closeIdle(this.limits.idleTimeoutMs, now)
      if (p.total === 0 && p.waiting === 0 && p.incoming === 0 && p.retiring === 0 && now - p.lastUsed >= this.limits.idleTimeoutMs) this.pools.delete(key)
    }
  }

  closeAll(): void {
    for (const p of this.pools.values()) p.closeAll()
    this.pools.clear()
  }
}
