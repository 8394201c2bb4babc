// MOVE TENANT 'x' TO <backend> and PURGE TENANT 'x' FROM <backend> (admin console).
//
// A move: check both schemas (every tenant table of the source exists on the target with the
// copied columns, and holds no row of the tenant there) → PAUSE the tenant (new transactions
// wait) → wait, bounded, until none of its sessions is in a transaction, holds a server
// connection or is about to get one → one REPEATABLE READ READ ONLY transaction on the source and
// one transaction on the target: per table `COPY (SELECT … WHERE col = 'x') TO STDOUT` streamed
// frame for frame into `COPY t (cols) FROM STDIN` (the source socket is paused while the target's
// is full), then count and md5 of the rows on both sides → serial/identity sequences on the
// target advanced past the copied values → COMMIT on the target → the placement state file →
// the running placement (the router's memos are recomputed) → RESUME. Any failure: both
// connections are closed (the target transaction is rolled back with it), the placement stays,
// RESUME; the reason goes to the log and SHOW MOVES. The proxy's own server connections
// (server/backend/connection.ts), outside the pools, application_name "pgtenant move".
import type { Logger } from 'pino'
import type { BackendConfig, Config, UserConfig } from './config-types.js'
import { BackendConnection, BackendError, type BackendTarget } from './backend/connection.js'
import { Pool, type PoolManager } from './backend/pool.js'
import { targetFor, isHashed } from './backend/target.js'
import type { SchemaFacts } from '../parser/types.js'
import type { ClientSession } from './session.js'
import { applyPlacementOverrides, decideRoute } from '../routing/placement.js'
import { readPlacementState, writePlacementState } from './placement-state.js'
import { checkWorker, citusGroups, isolateTenant, moveShard, parseWorker, tenantRows, tenantShard } from './tenant-move-citus.js'

/** What a move needs of the proxy (server/proxy.ts). */
export interface MoveHost {
  config: Config
  readonly log: Logger
  readonly tenantPattern: RegExp
  readonly sessions: ReadonlyMap<number, ClientSession>
  readonly paused: ReadonlySet<string>
  /** Tenants a move is pausing: their sessions leave the server connections they keep between transactions (session pooling, pinned). */
  readonly moving: Set<string>
  readonly role: unknown
  /** The move's connections count under pool.max_server_connections (one-connection pools of their own, as the catalog reads'). */
  readonly pools: PoolManager
  readonly catalogs: {
    readonly facts: ReadonlyMap<string, SchemaFacts>
    factsFor(name: string, tenant: string | null): SchemaFacts | Promise<void> | undefined
    refreshFor(name: string, tenant: string | null): Promise<boolean>
    readonly citusLoadedAt: ReadonlyMap<string, number>
    refreshCitus(backendName: string): Promise<void>
  }
  placementFor(tenant: string | null): string
  findUser(name: string): UserConfig | undefined
  pause(tenant: string): void
  resume(tenant?: string): void
  heldByPause(): Set<ClientSession>
  routingChanged(): void
}

export type MoveState = 'checking' | 'pausing' | 'copying' | 'verifying' | 'isolating' | 'moving' | 'switching' | 'done' | 'failed'

export interface MoveRecord {
  tenant: string
  from: string
  to: string
  state: MoveState
  /** The table being copied (or verified). */
  table: string | null
  rowsCopied: number
  tables: number
  startedAt: number
  finishedAt: number | null
  /** How long the tenant's new transactions were held (so far, while paused). */
  pauseMs: number | null
  pausedAt: number | null
  error: string | null
}

interface TableCopy {
  name: string
  column: string
  /** Quoted column list, in the source's attnum order (generated columns left out). */
  cols: string
}

/** Kept in SHOW MOVES. */
const KEEP_MOVES = 100

export class TenantMoves {
  readonly moves: MoveRecord[] = []
  private readonly running = new Set<string>()

  constructor(private readonly host: MoveHost) {}

  /** MOVE TENANT: resolves with the finished record (state done), rejects with a BackendError (the record says failed). */
  async move(tenant: string, to: string): Promise<MoveRecord> {
    const { host } = this
    const config = host.config
    if (!config.tenant) throw new BackendError('MOVE TENANT needs tenant: in the configuration (no tenant tables are known)', '55000')
    if (!config.placement.state_file)
      throw new BackendError('MOVE TENANT needs placement.state_file in the configuration (where a move is kept across reload and restart)', '55000')
    if (host.role) throw new BackendError('MOVE TENANT is not supported with workers: N (each process routes on its own)', '0A000')
    if (!Object.hasOwn(config.backends, to)) throw new BackendError(`no database "${to}" (the names are those of SHOW DATABASES)`, '42704')
    const from = host.placementFor(tenant)
    if (from === to) throw new BackendError(`tenant "${tenant}" is already placed on "${to}"`, '55000')
    for (const name of [from, to])
      if (config.backends[name]?.citus)
        throw new BackendError(
          `MOVE TENANT ... TO <db> does not move a tenant into or out of a Citus backend ("${name}" is one); inside one: MOVE TENANT '${tenant}' ISOLATE, or MOVE TENANT '${tenant}' TO WORKER 'host:port'`,
          '0A000',
        )
    const rec = this.start(tenant, from, to)
    const log = host.log.child({ move: tenant, from, to })
    log.info('tenant move: started')
    let source: Wire | null = null
    let target: Wire | null = null
    let paused = false
    try {
      const lit = literal(tenant)
      source = await this.connect(from, tenant, `source "${from}"`)
      target = await this.connect(to, tenant, `target "${to}"`)
      const tables = await this.tables(from, tenant, source)
      rec.tables = tables.length
      await checkTarget(tables, target, to, tenant, lit)
      log.info({ tables: tables.map((t) => t.name) }, 'tenant move: schemas checked; pausing the tenant')

      paused = true
      await this.pauseAndDrain(rec)

      rec.state = 'copying'
      await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      await source.query('SELECT 1') // the snapshot: every transaction of the tenant has ended, none can start
      await target.query('BEGIN')
      for (const t of tables) {
        rec.table = t.name
        rec.state = 'copying'
        const before = rec.rowsCopied
        const copied = await copyTable(source, target, t, lit, (n) => (rec.rowsCopied = before + n))
        rec.rowsCopied = before + copied
        rec.state = 'verifying'
        const sql = checksumSql(t, lit)
        const [a, b] = [(await source.query(sql))[0], (await target.query(sql))[0]]
        if (a[0] !== b[0] || a[1] !== b[1])
          throw new BackendError(`verification failed for ${t.name}: source ${a[0]} rows (md5 ${a[1]}), target ${b[0]} rows (md5 ${b[1]})`, 'XX000')
        if (Number(a[0]) !== copied) throw new BackendError(`verification failed for ${t.name}: ${copied} rows copied, ${a[0]} in the snapshot`, 'XX000')
        log.info({ table: t.name, rows: copied, md5: a[1] }, 'tenant move: table copied and verified')
        await advanceSequences(target, t)
      }
      rec.table = null
      rec.state = 'switching'
      await target.query('COMMIT')
      this.place(tenant, to)
      rec.state = 'done'
      log.info({ rows: rec.rowsCopied, tables: rec.tables }, 'tenant move: placement switched')
      return rec
    } catch (err) {
      rec.state = 'failed'
      rec.error = (err as Error).message
      log.warn({ err: rec.error, table: rec.table }, 'tenant move failed: the tenant stays on its source')
      throw err instanceof BackendError ? err : new BackendError((err as Error).message, 'XX000')
    } finally {
      source?.close() // ends the read-only snapshot
      target?.close() // a target transaction not committed is rolled back by the server
      this.finish(rec, paused, log)
    }
  }

  /**
   * MOVE TENANT 'x' ISOLATE / MOVE TENANT 'x' TO WORKER 'host:port', for a tenant placed on a Citus
   * backend: pause the tenant (as a move does), isolate its shard in every colocation group
   * (isolate_tenant_to_new_shard … 'CASCADE', skipped where it is isolated already), move the new
   * shards to the worker if one is named (citus_move_shard_placement, skipped where they are
   * there), refresh the proxy's Citus metadata (the tenant's next transaction goes straight to
   * the worker now holding it), resume. Runs on the coordinator; the placement does not change.
   */
  async moveCitus(tenant: string, worker: string | null): Promise<MoveRecord> {
    const { host } = this
    const config = host.config
    if (host.role) throw new BackendError('MOVE TENANT is not supported with workers: N (each process routes on its own)', '0A000')
    const from = host.placementFor(tenant)
    if (!config.backends[from]?.citus)
      throw new BackendError(
        `tenant "${tenant}" is placed on "${from}", not on a Citus backend: ISOLATE and TO WORKER are for Citus (use MOVE TENANT '${tenant}' TO <db>)`,
        '0A000',
      )
    const to = worker === null ? null : parseWorker(worker)
    if (worker !== null && to === null) throw new BackendError(`"${worker}" is not host:port`, '22023')
    const rec = this.start(tenant, from, to === null ? `${from} (isolated)` : `${from} worker ${to.host}:${to.port}`)
    const log = host.log.child({ move: tenant, from, to: rec.to })
    log.info('tenant move (Citus): started')
    let coordinator: Wire | null = null
    let paused = false
    try {
      coordinator = await this.connect(from, tenant, `coordinator of "${from}"`)
      const groups = await citusGroups(coordinator)
      if (groups.length === 0) throw new BackendError(`"${from}" has no hash-distributed table: nothing to isolate`, '55000')
      rec.tables = groups.reduce((n, g) => n + g.tables.length, 0)
      if (to !== null) {
        const why = await checkWorker(coordinator, to.host, to.port)
        if (why !== null) throw new BackendError(why, '42704')
      }
      log.info({ groups: groups.map((g) => g.tables) }, 'tenant move (Citus): colocation groups read; pausing the tenant')

      paused = true
      await this.pauseAndDrain(rec)

      for (const g of groups) {
        rec.table = g.table
        let place = await tenantShard(coordinator, g, tenant)
        if (!place.isolated) {
          rec.state = 'isolating'
          const shard = await isolateTenant(coordinator, g, tenant)
          place = await tenantShard(coordinator, g, tenant)
          log.info(
            { table: g.table, cascade: g.tables, shard, on: `${place.host}:${place.port}` },
            'tenant move (Citus): tenant isolated to a shard of its own',
          )
        } else log.info({ table: g.table, shard: place.shardId }, 'tenant move (Citus): tenant already isolated')
        if (to !== null && (place.host !== to.host || place.port !== to.port)) {
          rec.state = 'moving'
          await moveShard(coordinator, place.shardId, place, to)
          log.info(
            { table: g.table, shard: place.shardId, from: `${place.host}:${place.port}`, to: `${to.host}:${to.port}` },
            'tenant move (Citus): shard moved',
          )
        }
        rec.rowsCopied += await tenantRows(coordinator, g, tenant)
      }
      rec.table = null
      rec.state = 'switching'
      const before = host.catalogs.citusLoadedAt.get(from) ?? 0
      await host.catalogs.refreshCitus(from) // routing decisions are made again with the new shards
      if ((host.catalogs.citusLoadedAt.get(from) ?? 0) === before)
        log.warn('tenant move (Citus): the metadata refresh failed (see the log); the tenant is routed to the coordinator until the next refresh')
      rec.state = 'done'
      log.info({ rows: rec.rowsCopied }, 'tenant move (Citus): done')
      return rec
    } catch (err) {
      rec.state = 'failed'
      rec.error = (err as Error).message
      log.warn({ err: rec.error, table: rec.table }, 'tenant move (Citus) failed: the tenant is resumed where Citus has it')
      // What Citus did before the failure is kept (an isolated shard is an ordinary shard); the proxy reads it.
      if (paused) await host.catalogs.refreshCitus(from)
      throw err instanceof BackendError ? err : new BackendError((err as Error).message, (err as { sqlstate?: string }).sqlstate ?? 'XX000')
    } finally {
      coordinator?.close()
      this.finish(rec, paused, log)
    }
  }

  /** A move of `tenant` begins: refused while one runs or the tenant is paused; its record, kept for SHOW MOVES. */
  private start(tenant: string, from: string, to: string): MoveRecord {
    const { host } = this
    if (this.running.has(tenant)) throw new BackendError(`a move of tenant "${tenant}" is already running`, '55006')
    if (host.paused.has(tenant) || host.paused.has('*'))
      throw new BackendError(`tenant "${tenant}" is paused (RESUME it first: a move pauses and resumes it itself)`, '55000')
    const rec: MoveRecord = {
      tenant,
      from,
      to,
      state: 'checking',
      table: null,
      rowsCopied: 0,
      tables: 0,
      startedAt: Date.now(),
      finishedAt: null,
      pauseMs: null,
      pausedAt: null,
      error: null,
    }
    this.moves.push(rec)
    if (this.moves.length > KEEP_MOVES) this.moves.splice(0, this.moves.length - KEEP_MOVES)
    this.running.add(tenant)
    return rec
  }

  /**
   * Hold the tenant's new transactions and wait (placement.move_wait_ms) for its running ones. Sessions
   * that keep a server connection between transactions leave it now (those in a transaction when theirs ends).
   */
  private async pauseAndDrain(rec: MoveRecord): Promise<void> {
    const { host } = this
    const tenant = rec.tenant
    rec.state = 'pausing'
    host.pause(tenant)
    host.moving.add(tenant)
    rec.pausedAt = Date.now()
    for (const s of host.sessions.values()) if (s.effectiveTenant === tenant && !s.bypass) s.leaveForMove()
    await this.drained(tenant, host.config.placement.move_wait_ms ?? 30_000)
  }

  /** The move ended (done or failed): the tenant resumed if it was paused, the record closed. */
  private finish(rec: MoveRecord, paused: boolean, log: Logger): void {
    if (paused) {
      this.host.moving.delete(rec.tenant)
      this.host.resume(rec.tenant)
      rec.pauseMs = Date.now() - (rec.pausedAt as number)
      log.info({ pause_ms: rec.pauseMs }, 'tenant move: tenant resumed')
    }
    rec.finishedAt = Date.now()
    this.running.delete(rec.tenant)
  }

  /** PURGE TENANT 'x' FROM <db>: delete the tenant's rows from every tenant table there; the number deleted. */
  async purge(tenant: string, from: string): Promise<number> {
    const { host } = this
    if (!host.config.tenant) throw new BackendError('PURGE TENANT needs tenant: in the configuration', '55000')
    if (!Object.hasOwn(host.config.backends, from)) throw new BackendError(`no database "${from}" (the names are those of SHOW DATABASES)`, '42704')
    if (host.config.backends[from].citus) throw new BackendError('PURGE TENANT on a Citus backend is not supported', '0A000')
    if (host.placementFor(tenant) === from)
      throw new BackendError(`tenant "${tenant}" is placed on "${from}": its data there is live (PURGE only removes what a move left behind)`, '55006')
    if (this.running.has(tenant)) throw new BackendError(`a move of tenant "${tenant}" is running`, '55006')
    const conn = await this.connect(from, tenant, `"${from}"`)
    try {
      const tables = await this.tables(from, tenant, conn)
      const lit = literal(tenant)
      let n = 0
      await conn.query('BEGIN')
      for (const t of tables) n += Number(/(\d+)$/.exec(await conn.command(`DELETE FROM ${t.name} WHERE ${quoteIdent(t.column)} = ${lit}`))?.[1] ?? 0)
      await conn.query('COMMIT')
      host.log.info({ tenant, backend: from, rows: n }, 'tenant purged')
      return n
    } finally {
      conn.close()
    }
  }

  /** Every move of the tenant from now on reads and writes through this placement (file first, then memory). */
  private place(tenant: string, to: string): void {
    const { host } = this
    const file = host.config.placement.state_file as string
    const state = readPlacementState(file)
    state[tenant] = to
    writePlacementState(file, state)
    const placement = host.config.placement
    host.config = {
      ...host.config,
      placement: { ...applyPlacementOverrides(placement, { [tenant]: to }, host.config.backends), moved: { ...placement.moved, [tenant]: to } },
    }
    host.routingChanged() // route memos are decided again: the tenant's next transaction goes to `to`
  }

  /** Until every session of the tenant is held by the pause or idle: none in a transaction, holding a server connection or waiting for one. */
  private async drained(tenant: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const held = this.host.heldByPause()
      let busy = 0
      const why: string[] = []
      for (const s of this.host.sessions.values()) {
        if (s.effectiveTenant === tenant && !s.bypass && s.backend !== null && !s.inTransaction) s.leaveForMove() // between transactions now: leaves
        // Held by the pause: no server connection yet (a BEGIN the proxy answered itself included); it starts after RESUME, on the new placement.
        if (s.effectiveTenant === tenant && !s.bypass && !held.has(s) && (s.inTransaction || s.backend !== null || s.metricState === 'waiting')) {
          busy++
          if (why.length < 5)
            why.push(`client ${s.id} ${s.metricState}${s.inTransaction ? ' in a transaction' : ''}${s.backend !== null ? ' holding a server connection' : ''}`)
        }
      }
      if (busy === 0) return
      if (Date.now() > deadline)
        throw new BackendError(
          `tenant "${tenant}" still has ${busy} session(s) in a transaction or holding a server connection after ${timeoutMs} ms (placement.move_wait_ms): ${why.join(', ')}`,
          '55006',
        )
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  /** The tenant tables on backend `name` (real tables, partitions through their parent), with the columns to copy. */
  private async tables(name: string, tenant: string, conn: Wire): Promise<TableCopy[]> {
    let facts = this.host.catalogs.facts.get(name)
    if (!facts) {
      await this.host.catalogs.factsFor(name, tenant)
      facts = this.host.catalogs.facts.get(name)
    }
    if (!facts) {
      // Discovery failed a moment ago (a loaded server: the connect timed out): one more try now, not in 5 s.
      await this.host.catalogs.refreshFor(name, tenant)
      facts = this.host.catalogs.facts.get(name)
    }
    if (!facts) throw new BackendError(`the schema of "${name}" could not be read (see the log: schema discovery failed)`, '58000')
    const out: TableCopy[] = []
    for (const [table, column] of [...facts.tenantTables].sort((a, b) => a[0].localeCompare(b[0]))) {
      const rows = await conn.query(
        `SELECT c.relkind::text, string_agg(quote_ident(a.attname), ',' ORDER BY a.attnum) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid ` +
          `WHERE c.oid = to_regclass(${literal(qualified(table))}) AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' GROUP BY 1`,
      )
      if (rows.length === 0) continue // a view, a partition, or gone
      out.push({ name: qualified(table), column, cols: rows[0][1] as string })
    }
    return out
  }

  /**
   * A server connection of the move's own to backend `name` for this tenant, from a
   * one-connection pool that counts under pool.max_server_connections (urgent: it waits for room
   * ahead of clients, as the catalog reads do; pool.wait_timeout_ms at most), closed when the move
   * is done, and counted until the server has let it go.
   */
  private async connect(name: string, tenant: string, label: string): Promise<Wire> {
    const target = this.target(name, tenant)
    const pool = new Pool(`move\u0000${name}\u0000${target.host}:${target.port}/${target.database}`, name, target, 1, this.host.pools, true)
    const conn = await pool.acquire()
    return new Wire(conn, label, () => pool.release(conn, false))
  }

  /** Where the move connects for backend `name` and this tenant: as the catalog reads do (the URL's user, else the first user with a plain password). */
  private target(name: string, tenant: string): BackendTarget {
    const { config } = this.host
    const backend: BackendConfig = config.backends[name]
    const user = backend.url.user ?? Object.keys(config.users).find((u) => !isHashed(config.users[u].password)) ?? 'postgres'
    const t = targetFor(backend, user, this.host.findUser(user))
    t.applicationName = 'pgtenant move'
    const route = decideRoute({
      placement: { default: name, tenants: {} },
      backends: config.backends,
      tenant,
      touchesTenant: true,
      bypass: true,
      tenantPattern: this.host.tenantPattern,
    })
    if (route.kind === 'refuse') throw new BackendError(route.message, route.sqlstate)
    return { ...t, host: route.target.host, port: route.target.port, database: route.target.database }
  }
}

/** The target has every table with every copied column, and none of the tenant's rows yet. */
async function checkTarget(tables: TableCopy[], target: Wire, to: string, tenant: string, lit: string): Promise<void> {
  const missing: string[] = []
  for (const t of tables) {
    const rows = await target.query(
      `SELECT string_agg(quote_ident(a.attname), ',') FROM pg_attribute a WHERE a.attrelid = to_regclass(${literal(t.name)}) AND a.attnum > 0 AND NOT a.attisdropped`,
    )
    const have = new Set((rows[0]?.[0] ?? '').split(',').filter((c) => c !== ''))
    if (have.size === 0) {
      missing.push(`table ${t.name}`)
      continue
    }
    const lacking = t.cols.split(',').filter((c) => !have.has(c))
    if (lacking.length > 0) missing.push(`${t.name} columns ${lacking.join(', ')}`)
  }
  if (missing.length > 0) throw new BackendError(`the target "${to}" lacks ${missing.join('; ')} (create the schema there first)`, '42P01')
  for (const t of tables) {
    const n = (await target.query(`SELECT count(*) FROM ${t.name} WHERE ${quoteIdent(t.column)} = ${lit}`))[0][0]
    if (n !== '0')
      throw new BackendError(
        `the target "${to}" already holds ${n} rows of tenant "${tenant}" in ${t.name} (PURGE TENANT '${tenant}' FROM ${to} first)`,
        '55000',
      )
  }
}

function checksumSql(t: TableCopy, lit: string): string {
  return `SELECT count(*)::text, coalesce(md5(string_agg(x::text, '|' ORDER BY x::text COLLATE "C")), '') FROM (SELECT ${t.cols} FROM ${t.name} WHERE ${quoteIdent(t.column)} = ${lit}) x`
}

/** Serial and identity columns: the target's sequence goes past the largest value now in the table (never backwards). */
async function advanceSequences(target: Wire, t: TableCopy): Promise<void> {
  const seqs = await target.query(
    `SELECT quote_ident(a.attname), s FROM pg_attribute a, pg_get_serial_sequence(${literal(t.name)}, a.attname) s ` +
      `WHERE a.attrelid = to_regclass(${literal(t.name)}) AND a.attnum > 0 AND NOT a.attisdropped AND s IS NOT NULL`,
  )
  for (const [col, seq] of seqs)
    await target.query(
      `SELECT setval(${literal(seq as string)}, m) FROM (SELECT max(${col})::bigint AS m FROM ${t.name}) x ` +
        `WHERE m IS NOT NULL AND m > (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ${seq})`,
    )
}

/** One table: the source's CopyData frames go to the target as they come, the source paused while the target is full. */
async function copyTable(source: Wire, target: Wire, t: TableCopy, lit: string, progress: (rows: number) => void): Promise<number> {
  await target.copyIn(`COPY ${t.name} (${t.cols}) FROM STDIN`)
  let rows = 0
  let full = false
  await source.copyOut(`COPY (SELECT ${t.cols} FROM ${t.name} WHERE ${quoteIdent(t.column)} = ${lit}) TO STDOUT`, (frames, n) => {
    rows += n
    progress(rows)
    if (target.failed) return // copyDone reports the target's error
    if (!target.write(frames) && !full) {
      full = true
      source.pauseReading()
      target.onDrain(() => {
        full = false
        source.resumeReading()
      })
    }
  })
  const tag = await target.copyDone()
  const n = Number(/(\d+)$/.exec(tag)?.[1] ?? -1)
  if (n !== rows) throw new BackendError(`${t.name}: the target took ${n} rows of ${rows}`, 'XX000')
  return rows
}

type Row = (string | null)[]

interface Op {
  rows: Row[]
  tag: string
  error: BackendError | null
  /** Copy-out: CopyData frames, as a run of whole frames, and how many. */
  copyData?: (frames: Buffer, n: number) => void
  /** Resolved at CopyInResponse ('G') instead of ReadyForQuery. */
  untilCopyIn?: boolean
  done: (err: Error | null, op: Op) => void
}

/** A server connection spoken to directly: simple queries, COPY out and in. One operation at a time. */
class Wire {
  private buf: Buffer = Buffer.alloc(0)
  private op: Op | null = null
  private closedWith: Error | null = null
  /** An error the server sent while no operation waited (a COPY FROM STDIN that failed mid-stream): the next one gets it. */
  private unsolicited: BackendError | null = null

  constructor(
    private readonly conn: BackendConnection,
    private readonly label: string,
    /** Gives the connection back to its pool, to be closed (and counted until the server let it go). */
    private readonly release: () => void,
  ) {
    conn.attach({
      onData: (chunk) => {
        this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk])
        this.parse()
        return true // copied
      },
      onClose: (err) => {
        this.closedWith = new BackendError(`${this.label}: ${err?.message ?? 'server connection closed'}`, (err as BackendError | null)?.sqlstate ?? '08006')
        this.finish(this.closedWith)
      },
    })
  }

  query(sql: string): Promise<Row[]> {
    return this.run(sql, {}).then((op) => op.rows)
  }

  command(sql: string): Promise<string> {
    return this.run(sql, {}).then((op) => op.tag)
  }

  copyIn(sql: string): Promise<void> {
    return this.run(sql, { untilCopyIn: true }).then(() => undefined)
  }

  /** After copyIn: CopyDone, then the server's COPY n tag (its error, if the rows failed). */
  copyDone(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.start({}, (err, op) => (err ? reject(err) : resolve(op.tag)))
      this.conn.write(frame(0x63, Buffer.alloc(0)))
    })
  }

  copyOut(sql: string, sink: (frames: Buffer, n: number) => void): Promise<string> {
    return this.run(sql, { copyData: sink }).then((op) => op.tag)
  }

  /** The server reported an error outside an operation (the COPY FROM STDIN failed): further rows are pointless. */
  get failed(): boolean {
    return this.unsolicited !== null || this.closedWith !== null
  }

  write(frames: Buffer): boolean {
    return this.conn.write(frames)
  }

  onDrain(f: () => void): void {
    this.conn.socket.once('drain', f)
  }

  pauseReading(): void {
    this.conn.socket.pause()
  }

  resumeReading(): void {
    this.conn.socket.resume()
  }

  close(): void {
    if (this.released) return
    this.released = true
    this.conn.detach()
    this.release()
  }

  private released = false

  private run(sql: string, extra: Partial<Op>): Promise<Op> {
    return new Promise((resolve, reject) => {
      this.start(extra, (err, op) => (err ? reject(err) : resolve(op)))
      this.conn.write(frame(0x51, Buffer.from(`${sql}\0`, 'utf8')))
    })
  }

  private start(extra: Partial<Op>, done: Op['done']): void {
    if (this.closedWith) return done(this.closedWith, null as unknown as Op)
    if (this.op) return done(new BackendError(`${this.label}: busy`, 'XX000'), null as unknown as Op)
    if (this.unsolicited) return done(this.unsolicited, null as unknown as Op)
    this.op = { rows: [], tag: '', error: null, ...extra, done }
  }

  private finish(err: Error | null): void {
    const op = this.op
    if (!op) return
    this.op = null
    op.done(err, op)
  }

  private parse(): void {
    let at = 0
    const buf = this.buf
    let runStart = -1
    let runCount = 0
    const flush = (end: number): void => {
      if (runStart < 0) return
      this.op?.copyData?.(buf.subarray(runStart, end), runCount)
      runStart = -1
      runCount = 0
    }
    while (buf.length - at >= 5) {
      const len = buf.readInt32BE(at + 1)
      if (buf.length - at < 1 + len) break
      const type = buf[at]
      if (type === 0x64 && this.op?.copyData) {
        if (runStart < 0) runStart = at
        runCount++
        at += 1 + len
        continue
      }
      flush(at)
      this.message(type, buf.subarray(at + 5, at + 1 + len))
      at += 1 + len
    }
    flush(at)
    this.buf = at === buf.length ? Buffer.alloc(0) : buf.subarray(at)
  }

  private message(type: number, body: Buffer): void {
    const op = this.op
    if (!op) {
      if (type === 0x45) this.unsolicited ??= errorOf(body, this.label)
      return
    }
    switch (type) {
      case 0x44: {
        // DataRow
        const n = body.readInt16BE(0)
        const row: Row = []
        let p = 2
        for (let i = 0; i < n; i++) {
          const len = body.readInt32BE(p)
          p += 4
          if (len < 0) row.push(null)
          else {
            row.push(body.toString('utf8', p, p + len))
            p += len
          }
        }
        op.rows.push(row)
        break
      }
      case 0x43: // CommandComplete
        op.tag = body.toString('utf8', 0, body.length - 1)
        break
      case 0x45: // ErrorResponse
        op.error = errorOf(body, this.label)
        break
      case 0x47: // CopyInResponse
        if (op.untilCopyIn) this.finish(null)
        break
      case 0x5a: // ReadyForQuery
        if (op.untilCopyIn && !op.error) op.error = new BackendError(`${this.label}: expected COPY FROM STDIN to start`, 'XX000')
        this.finish(op.error)
        break
      default: // RowDescription, CopyOutResponse, CopyDone, notices, parameter status
    }
  }
}

function errorOf(body: Buffer, label: string): BackendError {
  const fields = new Map<string, string>()
  let p = 0
  while (p < body.length && body[p] !== 0) {
    const code = String.fromCharCode(body[p])
    const end = body.indexOf(0, p + 1)
    fields.set(code, body.toString('utf8', p + 1, end))
    p = end + 1
  }
  return new BackendError(`${label}: ${fields.get('M') ?? 'error'}`, fields.get('C') ?? 'XX000')
}

function frame(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length)
  out[0] = type
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}

function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`
}

/** "schema.table" (the schema facts' key) → "schema"."table". */
function qualified(name: string): string {
  const dot = name.indexOf('.')
  return dot < 0 ? quoteIdent(name) : `${quoteIdent(name.slice(0, dot))}.${quoteIdent(name.slice(dot + 1))}`
}

function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`
}
