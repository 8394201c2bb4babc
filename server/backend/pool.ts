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
//
// Within a pool, waiting clients queue per tenant (issue 19): a connection that comes free goes
// to the tenant whose turn it is (round robin, weighted by tenant_limits weight), not to the
// client that came first, so one tenant with hundreds of waiting clients cannot starve one with
// two; the tenant that released it keeps it while no more than four hand-outs ahead (its state is
// already on it). A tenant holding its max_connections here waits even while connections are
// idle. Waiting is a plain callback in a queue; one timer per manager times waits out (issue 18).
import { BackendConnection, BackendError, type BackendTarget } from './connection.js'
import { DEFAULT_MAX_PREPARED_STATEMENTS } from './prepared.js'
import type { TenantGate } from './tenant-limits.js'

/**
 * How a waiting client hears back: once, with a connection or an error (the wait timeout,
 * the pool closed, a failed connect). A plain callback (issue 18 item 3): waiting costs no
 * Promise, no async frame and no timer of its own; one sweep per manager times waits out.
 */
export type AcquireDone = (err: Error | null, conn: BackendConnection | null) => void

interface Waiter {
  done: AcquireDone
  /** The session state the client needs (tenant, settings): a connection already in it needs no replay. */
  stateKey: string
  /** Its tenant's part of the pool. */
  share: PoolShare
  /** How many times a later waiter of the same tenant was served before this one. */
  passed: number
  /** Arrival order across all pools (a manager-wide sequence): smaller waited longer. */
  since: number
  /** Date.now() after which it gets the wait timeout's error (the manager's sweep). */
  deadline: number
  timeoutMs: number
}

/**
 * One tenant's part of a pool (issue 19): the connections it holds here, its waiting clients in
 * arrival order, and its place in the fair round robin between tenants (`pass`: the virtual time
 * of its next hand-out; each hand-out adds 1/weight). Clients with no tenant share one.
 */
class PoolShare {
  held = 0
  readonly queue: Waiter[] = []
  pass = 0
  constructor(
    readonly key: string,
    public gate: TenantGate | null,
  ) {}
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
 * A released connection goes to the first of this many waiting clients of the chosen tenant
 * that needs the session state it is already in, sparing a RESET ALL and set_config replay on
 * the server; a client passed over this many times is served next whatever its state. Without
 * it, 5 tenants × 10 clients on a pool of 20 replayed state on 2 of every 3 transactions.
 */
const WAITER_SCAN = 32
const MAX_PASSED = 16
/**
 * Between tenants, a released connection stays with the tenant that just used it (its state
 * needs no replay) while that tenant is at most this many hand-outs (of weight 1) ahead of the
 * tenant whose turn it is: a tenant with one waiter behind a busy one is served within five
 * hand-outs. With 1, five equally busy tenants on one pool took turns on every hand-out and
 * replayed state twice as often as before fair scheduling (pgbench -M extended, 5 tenants × 10
 * clients, pool 20: 1,470–1,580 set_config replays per 10,000 transactions; 4: 662–709; the
 * first-come-first-served pool before it: 712–966).
 */
const TENANT_SLACK = 4

export class Pool {
  readonly idle: BackendConnection[] = []
  active = 0
  connecting = 0
  /** Tenants' parts of the pool, by tenant (the no-tenant share is `anon`). */
  private readonly shares = new Map<string, PoolShare>()
  private readonly anon = new PoolShare('', null)
  /** Shares with waiting clients (fair hand-out scans them). */
  private readonly waitingShares: PoolShare[] = []
  private waitCount = 0
  /** Virtual time of the last hand-out to a waiting client: a tenant that starts waiting starts here. */
  private vtime = 0
  /** Which tenant's share holds each connection handed to a tenant (released: its count goes down). */
  private readonly holders = new Map<BackendConnection, PoolShare>()
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
    return this.waitCount
  }

  get waitTimeoutMs(): number {
    return this.manager.limits.waitTimeoutMs
  }

  /** Arrival order of the client that has waited longest here (Infinity: nobody waits). */
  get oldestWait(): number {
    let oldest = Infinity
    for (const s of this.waitingShares) if (s.queue[0].since < oldest) oldest = s.queue[0].since
    return oldest
  }

  /** Waiting clients a connection could serve now (their tenant below its max_connections here). */
  get servable(): number {
    if (this.waitingShares.length === 1 && this.waitingShares[0].gate === null) return this.waitCount
    let n = 0
    for (const s of this.waitingShares) n += Math.min(s.queue.length, Math.max(0, this.maxOf(s) - s.held))
    return n
  }

  /** A tenant's max_connections in this pool (Infinity: none). */
  private maxOf(share: PoolShare): number {
    return share.gate === null ? Infinity : share.gate.maxConnectionsIn(this.size)
  }

  /** A tenant's part of the pool (made on first use). */
  private shareOf(gate: TenantGate | null): PoolShare {
    if (gate === null) return this.anon
    let s = this.shares.get(gate.name)
    if (s === undefined) {
      s = new PoolShare(gate.name, gate)
      this.shares.set(gate.name, s)
    } else if (s.gate !== gate) s.gate = gate // the tenant's gate was forgotten and made again
    return s
  }

  /** Connections the tenant holds in this pool. */
  heldBy(tenant: string): number {
    return this.shares.get(tenant)?.held ?? 0
  }

  /** Clients of the tenant waiting in this pool. */
  waitingOf(tenant: string): number {
    return this.shares.get(tenant)?.queue.length ?? 0
  }

  /** A connection for a client with no tenant (the proxy's own reads, login parameters): at once, or once one is free. */
  acquire(stateKey = ''): Promise<BackendConnection> {
    return new Promise((resolve, reject) => {
      const conn = this.request(stateKey, null, (err, c) => (err ? reject(err) : resolve(c as BackendConnection)), this.waitTimeoutMs)
      if (conn) resolve(conn)
    })
  }

  /**
   * A connection for a client of `gate`'s tenant (null: no tenant): returned at once (and
   * `done` is not called), else null and `done` called later, with a connection (freed, or
   * opened for it) or an error (the wait timeout, 53300; the pool closed; a failed connect).
   * A tenant at its max_connections here waits even when connections are idle; one whose
   * max_waiting clients already wait gets 53300 thrown at once (unless `checkWaiting` is false:
   * a client already let in, after its wait for a rate token).
   */
  request(stateKey: string, gate: TenantGate | null, done: AcquireDone, timeoutMs: number, checkWaiting = true): BackendConnection | null {
    this.lastUsed = Date.now()
    const share = this.shareOf(gate)
    const below = share.held < this.maxOf(share)
    if (below) {
      const conn = this.takeIdle(stateKey)
      if (conn) {
        if (gate !== null) this.hold(share, conn)
        return conn
      }
      if (this.mayOpen()) {
        this.openFor(share, done)
        return null
      }
    }
    if (gate !== null) {
      if (checkWaiting && !gate.mayWait) throw gate.tooManyWaiting()
      if (!below) gate.throttle('connections')
      gate.waiting++
    }
    const since = this.urgent ? this.manager.arrival() - Number.MAX_SAFE_INTEGER : this.manager.arrival()
    const w: Waiter = { done, stateKey, share, passed: 0, since, deadline: this.lastUsed + timeoutMs, timeoutMs }
    if (share.queue.length === 0) {
      share.pass = Math.max(share.pass, this.vtime)
      this.waitingShares.push(share)
    }
    share.queue.push(w)
    if (++this.waitCount === 1) this.manager.waitingPools.add(this)
    this.manager.sweepEvery(timeoutMs)
    if (below && this.onServer + this.incoming < this.size) this.manager.makeRoom(this)
    return null
  }

  /** Room for one more server connection: below the pool size and the proxy's max_server_connections. */
  private mayOpen(): boolean {
    return this.onServer < this.size && this.manager.hasRoom()
  }

  /** A request now would open a connection at once, queueing behind no one (login-time attach: it must not wait). */
  opensWithoutWaiting(): boolean {
    return this.waitCount === 0 && this.mayOpen()
  }

  /** An idle connection right now, without waiting (the hot path), within the tenant's max_connections, or null. */
  tryAcquire(stateKey = '', gate: TenantGate | null = null): BackendConnection | null {
    this.lastUsed = Date.now()
    if (gate === null) return this.takeIdle(stateKey)
    const share = this.shareOf(gate)
    if (share.held >= this.maxOf(share)) return null
    const conn = this.takeIdle(stateKey)
    if (conn !== null) this.hold(share, conn)
    return conn
  }

  /** Give a connection back. `reusable` false (broken, or state unknown) closes it. */
  release(conn: BackendConnection, reusable: boolean): void {
    this.active--
    this.lastUsed = Date.now()
    const from = this.holders.size > 0 ? this.unhold(conn) : undefined
    if (!reusable || conn.closed || this.total >= this.size || (this.manager.closeNeeded.size > 0 && this.manager.closeNeeded.has(conn))) {
      this.manager.retire(conn, null, this)
      // Its tenant may be below its limit again, with connections idle for it.
      if (from !== undefined && from.queue.length > 0) this.serveWaiters()
      return
    }
    const other = this.manager.giveWay(this)
    if (other) {
      // Another pool's clients need the room under the cap more than this pool does.
      this.gaveWay++
      this.manager.retire(conn, other, this)
      return
    }
    const w = this.waitCount > 0 ? this.nextWaiter(conn.stateKey, from) : undefined
    if (w !== undefined) {
      this.active++
      if (w.share.gate !== null) this.hold(w.share, conn)
      w.done(null, conn)
      return
    }
    this.idle.push(conn)
    conn.onIdleClose = this.idleClosed
  }

  /** Serve queued clients if there is room now (a connection closed anywhere, a tenant below its limit again, a reload). */
  serveWaiters(): void {
    while (this.waitCount > 0) {
      const share = this.pickShare(undefined)
      if (share === undefined) break // every waiting tenant is at its max_connections here
      const conn = this.takeIdle('')
      if (conn) {
        const w = this.takeWaiter(share, conn.stateKey)
        if (w.share.gate !== null) this.hold(w.share, conn)
        w.done(null, conn)
        continue
      }
      if (this.mayOpen()) {
        const w = this.takeWaiter(share, '')
        this.openFor(w.share, w.done)
        continue
      }
      break
    }
  }

  /** The sweep: waiting clients past their deadline get the wait timeout's error (53300). */
  expire(now: number): void {
    let late: Waiter[] | null = null
    for (let i = 0; i < this.waitingShares.length;) {
      const s = this.waitingShares[i]
      while (s.queue.length > 0 && s.queue[0].deadline <= now) {
        const w = s.queue.shift() as Waiter
        this.waitCount--
        if (s.gate !== null) s.gate.waiting--
        ;(late ??= []).push(w)
      }
      if (s.queue.length === 0) this.waitingShares.splice(i, 1)
      else i++
    }
    if (late === null) return
    if (this.waitCount === 0) this.manager.waitingPools.delete(this)
    for (const w of late) w.done(this.timeoutError(w), null)
  }

  private timeoutError(w: Waiter): BackendError {
    const gate = w.share.gate
    const max = this.maxOf(w.share)
    if (gate !== null && w.share.held >= max) {
      gate.reject('connections')
      return new BackendError(
        `tenant "${gate.name}": timed out after ${w.timeoutMs} ms waiting for a server connection: it holds its limit of ${max} of backend "${this.backendName}" (tenant_limits max_connections)`,
        '53300',
      )
    }
    gate?.reject('wait_timeout')
    return new BackendError(
      `timed out after ${w.timeoutMs} ms waiting for a server connection (backend "${this.backendName}", pool size ${this.size}${gate !== null ? `, tenant "${gate.name}"` : ''})`,
      '53300',
    )
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
    // Tenants with nothing here any more are forgotten (made again on their next request).
    for (const [key, s] of this.shares) if (s.held === 0 && s.queue.length === 0) this.shares.delete(key)
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
    const waiters: Waiter[] = []
    for (const s of this.waitingShares.splice(0)) {
      if (s.gate !== null) s.gate.waiting -= s.queue.length
      waiters.push(...s.queue.splice(0))
    }
    this.waitCount = 0
    this.manager.waitingPools.delete(this)
    for (const w of waiters) w.done(new BackendError('pool closed', '57P01'), null)
  }

  /** An idle connection the server closed (killed, restarted): out of the pool and the count at once. */
  private readonly idleClosed = (conn: BackendConnection): void => {
    const i = this.idle.indexOf(conn)
    if (i < 0) return
    this.idle.splice(i, 1)
    this.manager.count--
    this.manager.connectionClosed()
  }

  /** `conn` goes to a client of `share`'s tenant: counted against its max_connections until released. */
  private hold(share: PoolShare, conn: BackendConnection): void {
    share.held++
    ;(share.gate as TenantGate).held++
    this.holders.set(conn, share)
  }

  /** A connection came back: its tenant holds one fewer. Returns the tenant's share (undefined: no tenant). */
  private unhold(conn: BackendConnection): PoolShare | undefined {
    const share = this.holders.get(conn)
    if (share === undefined) return undefined
    this.holders.delete(conn)
    share.held--
    if (share.gate !== null) share.gate.held--
    return share
  }

  /**
   * The tenant whose waiting client gets the next connection: among tenants below their
   * max_connections, the one whose turn it is (smallest pass: round robin, weighted). The
   * tenant that released the connection (`from`, its state already on it) keeps it while it is
   * no more than TENANT_SLACK hand-outs ahead. With one tenant waiting, that tenant.
   */
  private pickShare(from: PoolShare | undefined): PoolShare | undefined {
    const shares = this.waitingShares
    if (shares.length === 1) {
      const only = shares[0]
      return only.gate === null || only.held < this.maxOf(only) ? only : undefined
    }
    let best: PoolShare | undefined
    for (const s of shares) {
      if (s.gate !== null && s.held >= this.maxOf(s)) continue
      if (best === undefined || s.pass < best.pass) best = s
    }
    if (
      best !== undefined &&
      from !== undefined &&
      from !== best &&
      from.queue.length > 0 &&
      from.pass <= best.pass + TENANT_SLACK &&
      from.held < this.maxOf(from)
    )
      return from
    return best
  }

  /** The waiting client a released connection in state `stateKey` goes to (see pickShare, WAITER_SCAN). */
  private nextWaiter(stateKey: string, from: PoolShare | undefined): Waiter | undefined {
    const share = this.pickShare(from)
    return share === undefined ? undefined : this.takeWaiter(share, stateKey)
  }

  /** Take a client out of `share`'s queue: the first of WAITER_SCAN already in `stateKey`'s state, within MAX_PASSED. */
  private takeWaiter(share: PoolShare, stateKey: string): Waiter {
    const q = share.queue
    let i = 0
    const head = q[0]
    if (stateKey !== '' && head.stateKey !== stateKey && head.passed < MAX_PASSED) {
      const n = Math.min(q.length, WAITER_SCAN)
      for (let j = 1; j < n; j++) {
        if (q[j].stateKey !== stateKey) continue
        for (let k = 0; k < j; k++) q[k].passed++
        i = j
        break
      }
    }
    const w = i === 0 ? (q.shift() as Waiter) : q.splice(i, 1)[0]
    // Its tenant's turn is used: the next one comes 1/weight later (weighted round robin).
    if (share.pass > this.vtime) this.vtime = share.pass
    share.pass += 1 / (share.gate?.limits.weight ?? 1)
    if (q.length === 0) this.waitingShares.splice(this.waitingShares.indexOf(share), 1)
    if (share.gate !== null) share.gate.waiting--
    if (--this.waitCount === 0) this.manager.waitingPools.delete(this)
    return w
  }

  /** Open a connection for a client of `share` (counted against its tenant at once); `done` gets it or the error. */
  private openFor(share: PoolShare, done: AcquireDone): void {
    this.connecting++
    this.manager.count++
    const gate = share.gate
    if (gate !== null) {
      share.held++
      gate.held++
    }
    const generation = this.generation
    BackendConnection.connect(this.target, this.manager.limits.connectTimeoutMs).then(
      (conn) => {
        if (!this.serverParams) this.serverParams = new Map(conn.params)
        conn.prepared.limit = this.manager.limits.maxPreparedStatements ?? DEFAULT_MAX_PREPARED_STATEMENTS
        this.connecting--
        this.active++
        if (gate !== null) this.holders.set(conn, share)
        this.track(conn, generation !== this.generation || this.retired)
        done(null, conn)
      },
      (err: Error) => {
        this.connecting--
        this.manager.count--
        if (gate !== null) {
          share.held--
          gate.held--
        }
        this.manager.connectionClosed()
        if (generation !== this.generation && !this.retired) {
          this.staleConnecting--
          this.manager.closeNeededChanged()
        }
        done(err, null)
      },
    )
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
      if (p === from || p.onServer + p.incoming >= p.size || p.servable <= p.incoming) continue
      if (!best || p.oldestWait < best.oldestWait) best = p
    }
    if (!best) return null
    if (from.servable === 0) return best
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

  /**
   * One timer times out every waiting client of every pool (instead of a timer per wait): it
   * runs while anyone waits, every 1/20 of the shortest wait timeout in use (5–200 ms), so a
   * wait ends at most that much after its deadline.
   */
  sweepEvery(timeoutMs: number): void {
    const period = Math.max(5, Math.min(200, Math.floor(timeoutMs / 20)))
    if (this.sweeper !== null && period >= this.sweepMs) return
    if (this.sweeper !== null) clearInterval(this.sweeper)
    this.sweepMs = period
    this.sweeper = setInterval(this.sweep, period)
    this.sweeper.unref()
  }

  private sweeper: NodeJS.Timeout | null = null
  private sweepMs = 0

  private readonly sweep = (): void => {
    const now = Date.now()
    for (const p of [...this.waitingPools]) p.expire(now)
    if (this.waitingPools.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper)
      this.sweeper = null
    }
  }

  /** Tenant limits changed (a reload): clients waiting for a tenant now below its limit are served if there is room. */
  limitsChanged(): void {
    for (const p of [...this.waitingPools]) p.serveWaiters()
  }

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
    if (this.sweeper !== null) clearInterval(this.sweeper)
    this.sweeper = null
  }
}
