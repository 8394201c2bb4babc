// Server-connection pools: one per (backend, database, user), all under one global cap.
// When the cap is reached, idle connections of other pools are closed first; then
// clients wait, up to the wait timeout.
import { BackendConnection, BackendError, type BackendTarget } from './connection.js'

interface Waiter {
  resolve(conn: BackendConnection): void
  reject(err: Error): void
  timer: NodeJS.Timeout
  /** The session state the client needs (tenant, settings): a connection already in it needs no replay. */
  stateKey: string
  /** How many times a later waiter was served before this one. */
  passed: number
}

export interface PoolLimits {
  waitTimeoutMs: number
  connectTimeoutMs: number
  idleTimeoutMs: number
  maxServerConnections: number
}

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

  constructor(
    readonly key: string,
    readonly backendName: string,
    public target: BackendTarget,
    public size: number,
    private readonly manager: PoolManager,
  ) {}

  get total(): number {
    return this.idle.length + this.active + this.connecting
  }

  get waiting(): number {
    return this.waiters.length
  }

  acquire(stateKey = ''): Promise<BackendConnection> {
    this.lastUsed = Date.now()
    const conn = this.takeIdle(stateKey)
    if (conn) return Promise.resolve(conn)
    if (this.total < this.size && this.manager.reserve(this)) return this.open()
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
      }
      this.waiters.push(waiter)
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
    if (!reusable || conn.closed || this.total >= this.size + 1) {
      conn.close()
      this.manager.connectionClosed()
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
  }

  /** Serve queued clients if there is room now (called when a connection closed anywhere). */
  serveWaiters(): void {
    while (this.waiters.length > 0) {
      const conn = this.takeIdle('')
      if (conn) {
        const w = this.waiters.shift() as Waiter
        clearTimeout(w.timer)
        w.resolve(conn)
        continue
      }
      if (this.total < this.size && this.manager.reserve(this)) {
        const w = this.waiters.shift() as Waiter
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
        c.close()
        closed++
      }
    }
    return closed
  }

  /** Close the least recently used idle connection (to make room under the global cap). */
  evictOne(): boolean {
    if (this.idle.length === 0) return false
    const c = this.idle.shift() as BackendConnection
    c.close()
    return true
  }

  closeAll(): void {
    for (const c of this.idle) c.close()
    this.idle.length = 0
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer)
      w.reject(new BackendError('pool closed', '57P01'))
    }
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
      if (!c.closed) {
        this.active++
        return c
      }
      this.manager.connectionClosed()
    }
    return null
  }

  private async open(): Promise<BackendConnection> {
    this.connecting++
    try {
      const conn = await BackendConnection.connect(this.target, this.manager.limits.connectTimeoutMs)
      if (!this.serverParams) this.serverParams = new Map(conn.params)
      this.connecting--
      this.active++
      return conn
    } catch (err) {
      this.connecting--
      this.manager.connectionClosed()
      throw err
    }
  }

  /** The waiting client a released connection in state `stateKey` goes to (see WAITER_SCAN). */
  private nextWaiter(stateKey: string): Waiter | undefined {
    const head = this.waiters[0]
    if (head === undefined || stateKey === '' || head.stateKey === stateKey || head.passed >= MAX_PASSED) return this.waiters.shift()
    const n = Math.min(this.waiters.length, WAITER_SCAN)
    for (let i = 1; i < n; i++) {
      if (this.waiters[i].stateKey !== stateKey) continue
      for (let j = 0; j < i; j++) this.waiters[j].passed++
      return this.waiters.splice(i, 1)[0]
    }
    return this.waiters.shift()
  }

  private removeWaiter(w: Waiter): void {
    const i = this.waiters.indexOf(w)
    if (i >= 0) this.waiters.splice(i, 1)
  }
}

export class PoolManager {
  readonly pools = new Map<string, Pool>()

  constructor(public limits: PoolLimits) {}

  get totalConnections(): number {
    let n = 0
    for (const p of this.pools.values()) n += p.total
    return n
  }

  pool(key: string, backendName: string, target: BackendTarget, size: number): Pool {
    let p = this.pools.get(key)
    if (!p) {
      p = new Pool(key, backendName, target, size, this)
      this.pools.set(key, p)
    }
    return p
  }

  /** May `requester` open one more connection under the global cap? Evicts an idle one elsewhere if needed. */
  reserve(requester: Pool): boolean {
    if (this.totalConnections < this.limits.maxServerConnections) return true
    let victim: Pool | null = null
    for (const p of this.pools.values()) {
      if (p === requester || p.idle.length === 0) continue
      if (!victim || p.idle[0].lastUsed < victim.idle[0].lastUsed) victim = p
    }
    if (!victim) {
      const own = requester.idle.length > 0 ? requester : null
      return own ? own.evictOne() : false
    }
    return victim.evictOne()
  }

  /** A connection went away somewhere: let waiting clients of any pool use the room. */
  connectionClosed(): void {
    queueMicrotask(() => {
      for (const p of this.pools.values()) if (p.waiting > 0) p.serveWaiters()
    })
  }

  /** Periodic upkeep: close idle connections past the idle timeout, forget empty pools. */
  reap(now = Date.now()): void {
    let closed = 0
    for (const [key, p] of this.pools) {
      closed += p.closeIdle(this.limits.idleTimeoutMs, now)
      if (p.total === 0 && p.waiting === 0 && now - p.lastUsed >= this.limits.idleTimeoutMs) this.pools.delete(key)
    }
    if (closed > 0) this.connectionClosed()
  }

  closeAll(): void {
    for (const p of this.pools.values()) p.closeAll()
    this.pools.clear()
  }
}
