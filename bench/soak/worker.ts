// A client process of the soak benchmark (../soak.ts forks it with its options as JSON): node-postgres
// and postgres.js clients of many tenants, simple and extended, named statements, write transactions,
// hang-ups mid-query; it reports operations, errors by kind, latencies and hangs to the parent.
import net from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import pg from 'pg'
import postgres from 'postgres'
import { TENANTS, CONNECT_TIMEOUT_MS, BUCKETS, bucketOf, sleep, rand, type WorkerOptions, type WorkerReport, type HangRecord } from './common.js'

function errorKind(err: unknown): string {
  const e = err as { code?: string; message?: string }
  const msg = (e.message ?? String(err))
    .replace(/\d+/g, 'N')
    .replace(/"[^"]*"/g, '"…"')
    .slice(0, 70)
  return `${e.code ?? '-'} ${msg}`
}

async function runWorker(o: WorkerOptions): Promise<WorkerReport> {
  const report: WorkerReport = {
    id: o.id,
    ops: 0,
    hist: new Array(BUCKETS).fill(0),
    errors: {},
    hangups: 0,
    hung: 0,
    hangs: [],
    committed: [],
    connects: 0,
    loopDelayMaxMs: 0,
    loopDelayP99Ms: 0,
  }
  const runStart = Date.now()
  const loopDelay = monitorEventLoopDelay({ resolution: 20 })
  loopDelay.enable()
  const deadline = Date.now() + o.durationMs
  let nextId = o.id * 1_000_000_000
  const url = (): string => `postgres://app:app_pw@127.0.0.1:${o.port}/soak`
  const count = (kind: string): void => {
    report.errors[kind] = (report.errors[kind] ?? 0) + 1
  }
  /**
   * Runs `op` with a watchdog: past opTimeoutMs the operation counts as hung. It is then
   * watched for up to hangGraceMs more (an answer that comes late means a slow system, none at
   * all a lost client), reported to the parent (which looks the client up on the proxy's admin
   * console), and dropped.
   */
  const timed = async <T>(
    op: Promise<T>,
    onHang: () => void,
    lib: HangRecord['lib'],
    what: string | (() => string),
    localPort: () => number | null = () => null,
    timeoutMs = o.opTimeoutMs,
  ): Promise<T> => {
    const t0 = Date.now()
    let timer: NodeJS.Timeout | null = null
    const settled = op.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    )
    const watchdog = new Promise<null>((res) => (timer = setTimeout(() => res(null), timeoutMs)))
    try {
      const first = await Promise.race([settled, watchdog])
      if (first !== null) {
        if ('error' in first) throw first.error
        return first.value
      }
      report.hung++
      const rec: HangRecord = {
        lib,
        what: typeof what === 'string' ? what : what(),
        atS: Math.round((t0 - runStart) / 1000),
        localPort: localPort(),
        answeredAfterS: null,
      }
      report.hangs.push(rec)
      process.send?.({ hang: rec, worker: o.id, index: report.hangs.length - 1 })
      const late = await Promise.race([settled, sleep(o.hangGraceMs).then(() => null)])
      if (late !== null) {
        rec.answeredAfterS = Math.round((Date.now() - t0) / 100) / 10
        rec.lateOutcome = 'error' in late ? errorKind(late.error) : 'rows'
      }
      onHang()
      throw Object.assign(new Error('client hung (no answer within the op timeout)'), { code: 'HUNG' })
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  async function nodePgClient(slot: number): Promise<void> {
    while (Date.now() < deadline) {
      const tenant = `t${Math.floor(Math.random() * TENANTS)}`
      const c = new pg.Client({ connectionString: url(), options: `-c app.tenant=${tenant}`, connectionTimeoutMillis: CONNECT_TIMEOUT_MS })
      c.on('error', () => undefined)
      const stream = (): net.Socket => (c as unknown as { connection: { stream: net.Socket } }).connection.stream
      const drop = (): void => void stream().destroy()
      const port = (): number | null => stream().localPort ?? null
      try {
        await timed(c.connect(), drop, 'pg', 'connect', port)
        report.connects++
        while (Date.now() < deadline) {
          await sleep(rand(o.thinkMs[0], o.thinkMs[1]))
          if (Date.now() >= deadline) break
          const r = Math.random()
          if (r < o.hangupRate) {
            // Hang up in the middle of a query: the proxy must cancel it and keep the pool's promise.
            const q = c.query('SELECT pg_sleep(1.5)').catch(() => undefined)
            await sleep(rand(20, 300))
            drop()
            await q
            report.hangups++
            break
          }
          const t0 = performance.now()
          if (r < 0.35) await timed(c.query('SELECT count(*)::int AS n FROM items'), drop, 'pg', 'simple query', port)
          else if (r < 0.6) await timed(c.query('SELECT n FROM items WHERE n > $1 ORDER BY n LIMIT 3', [slot % 5]), drop, 'pg', 'extended query', port)
          else if (r < 0.75)
            await timed(
              c.query({ name: 'by_n', text: 'SELECT count(*)::int AS n FROM items WHERE n >= $1', values: [slot % 3] }),
              drop,
              'pg',
              'named statement',
              port,
            )
          else {
            const id = ++nextId
            let step = 'BEGIN'
            await timed(
              (async () => {
                await c.query('BEGIN')
                step = 'INSERT'
                await c.query('INSERT INTO ledger (id, worker) VALUES ($1, $2)', [id, o.id])
                step = 'COMMIT'
                await c.query('COMMIT')
              })(),
              drop,
              'pg',
              () => `write transaction (${step})`,
              port,
            )
            report.committed.push(id) // acknowledged: it must be there at the end
          }
          report.hist[bucketOf(performance.now() - t0)]++
          report.ops++
        }
      } catch (err) {
        count(errorKind(err))
        await sleep(rand(50, 300))
      } finally {
        await c.end().catch(() => undefined)
      }
    }
  }

  // A postgres.js client's first operation includes its connect (TCP, possibly a wait in the proxy's
  // accept queue, and the login), which the library bounds by connect_timeout: that operation is hung
  // only past connect_timeout plus the op timeout (node-postgres's connect has a watchdog of its own).
  const firstTimeout = (first: boolean): number => (first ? CONNECT_TIMEOUT_MS + o.opTimeoutMs : o.opTimeoutMs)

  async function postgresJsClient(slot: number): Promise<void> {
    while (Date.now() < deadline) {
      const tenant = `t${Math.floor(Math.random() * TENANTS)}`
      const sql = postgres(url(), {
        max: 1,
        idle_timeout: 0,
        connect_timeout: CONNECT_TIMEOUT_MS / 1000,
        onnotice: () => undefined,
        connection: { options: `-c app.tenant=${tenant}` } as Record<string, string>,
      })
      const drop = (): void => void sql.end({ timeout: 0 }).catch(() => undefined)
      try {
        let first = true
        while (Date.now() < deadline) {
          await sleep(rand(o.thinkMs[0], o.thinkMs[1]))
          if (Date.now() >= deadline) break
          const r = Math.random()
          const t0 = performance.now()
          if (r < 0.3)
            await timed(
              sql.unsafe('SELECT count(*)::int AS n FROM items').simple(),
              drop,
              'postgres.js',
              first ? 'connect + simple query' : 'simple query',
              undefined,
              firstTimeout(first),
            )
          else if (r < 0.75)
            await timed(
              sql`SELECT count(*)::int AS n FROM items WHERE n >= ${slot % 4}`,
              drop,
              'postgres.js',
              first ? 'connect + prepared query' : 'prepared query',
              undefined,
              firstTimeout(first),
            )
          else {
            const id = ++nextId
            await timed(
              sql.begin(async (tx) => {
                await tx`INSERT INTO ledger (id, worker) VALUES (${id}, ${o.id})`
              }),
              drop,
              'postgres.js',
              first ? 'connect + write transaction' : 'write transaction',
              undefined,
              firstTimeout(first),
            )
            report.committed.push(id)
          }
          if (first) {
            report.connects++
            first = false
          }
          report.hist[bucketOf(performance.now() - t0)]++
          report.ops++
        }
      } catch (err) {
        count(errorKind(err))
        await sleep(rand(50, 300))
      } finally {
        await sql.end({ timeout: 5 }).catch(() => undefined)
      }
    }
  }

  await Promise.all(
    Array.from({ length: o.clients }, async (_, slot) => {
      await sleep((slot / o.clients) * o.rampMs)
      if (slot / o.clients < o.pgjsShare) await postgresJsClient(slot)
      else await nodePgClient(slot)
    }),
  )
  report.loopDelayMaxMs = Math.round(loopDelay.max / 1e6)
  report.loopDelayP99Ms = Math.round(loopDelay.percentile(99) / 1e6)
  const crashes = (globalThis as { libraryCrashes?: () => number }).libraryCrashes?.() ?? 0
  if (crashes > 0) report.errors['client library: uncaught exception'] = crashes
  return report
}

// A client library's own crash (postgres.js writing to a socket it already dropped) must not
// end the client process: it is counted in the report as an error of its own kind.
let libraryCrashes = 0
process.on('uncaughtException', () => libraryCrashes++)
process.on('unhandledRejection', () => libraryCrashes++)
;(globalThis as { libraryCrashes?: () => number }).libraryCrashes = () => libraryCrashes
runWorker(JSON.parse(process.argv[2]) as WorkerOptions).then(
  (report) => process.send?.(report, () => process.exit(0)),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
