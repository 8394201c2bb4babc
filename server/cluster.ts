// Several processes (`workers: N`, Node cluster). The primary forks N workers that share the
// listening socket (Node's primary accepts and hands connections out round-robin); each
// worker is a whole proxy with its own pools, sized ceil(size / N) so the server connections
// stay close to what the config says. The primary supervises (a worker that dies is started
// again), relays SIGHUP and SIGTERM, forwards a CancelRequest that the worker which received it
// does not know to the other workers (a proxy-made key's pid holds its worker's index in the low
// 6 bits, which decides which worker counts it as unmatched), relays admin commands that
// act on the whole proxy, and serves /metrics summed over the workers (prom-client's
// AggregatorRegistry), /healthz and /readyz.
import cluster, { type Worker } from 'node:cluster'
import http from 'node:http'
import { randomInt } from 'node:crypto'
import client from 'prom-client'
import type { Logger } from 'pino'
import { loadConfig, MAX_WORKERS } from './config.js'
import type { Config } from './config-types.js'
import { setLogLevel } from './log.js'

export interface WorkerRole {
  index: number
  count: number
}

/** Admin commands that act on every worker. */
export type ClusterCommand =
  | { op: 'pause'; tenant: string }
  | { op: 'resume'; tenant?: string }
  | { op: 'disable'; tenant: string }
  | { op: 'enable'; tenant: string }
  | { op: 'disable'; database: string }
  | { op: 'enable'; database: string }
  | { op: 'reload' }
  | { op: 'shutdown' }

type Message =
  | { pgtenant: 'cancel'; pid: number; secret: number }
  | { pgtenant: 'command'; command: ClusterCommand }
  | { pgtenant: 'ready?'; id: number }
  | { pgtenant: 'ready'; id: number; ok: boolean }

const RESTART_DELAY_MS = 1000

/** This process's place in the cluster; null when pgtenant runs as one process. */
export function workerRole(): WorkerRole | null {
  if (!cluster.isWorker) return null
  return { index: Number(process.env.PGTENANT_WORKER_INDEX ?? 0), count: Number(process.env.PGTENANT_WORKERS ?? 1) }
}

/** A client's cancel-key pid: random, with the worker index in the low 6 bits. */
export function clientPid(workerIndex: number): number {
  return randomInt(1, 2 ** 25) * MAX_WORKERS + workerIndex
}

export function workerOfPid(pid: number): number {
  return pid % MAX_WORKERS
}

/** One worker's share of the config: pool sizes and connection limits divided among the workers. */
export function workerShare(config: Config, count: number): Config {
  if (count <= 1) return config
  const share = (n: number): number => Math.max(1, Math.ceil(n / count))
  const backends = Object.fromEntries(Object.entries(config.backends).map(([name, b]) => [name, { ...b, pool: share(b.pool) }]))
  const pool = {
    ...config.pool,
    max_client_connections: share(config.pool.max_client_connections),
    max_server_connections: share(config.pool.max_server_connections),
  }
  return { ...config, backends, pool }
}

function isMessage(m: unknown): m is Message {
  return typeof m === 'object' && m !== null && typeof (m as { pgtenant?: unknown }).pgtenant === 'string'
}

// ------------------------------------------------------------------ worker side

export interface WorkerHooks {
  cancel(pid: number, secret: number): void
  command(command: ClusterCommand): void
  ready(): Promise<boolean>
}

export interface ClusterLink {
  role: WorkerRole
  /** Hand a CancelRequest this worker does not know to the other workers. */
  forwardCancel(pid: number, secret: number): void
  /** Run an admin command on the other workers too (the caller runs it here). */
  broadcast(command: ClusterCommand): void
}

export function joinCluster(role: WorkerRole, hooks: WorkerHooks): ClusterLink {
  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return // prom-client's metric requests share the channel
    if (m.pgtenant === 'cancel') hooks.cancel(m.pid, m.secret)
    else if (m.pgtenant === 'command') hooks.command(m.command)
    else if (m.pgtenant === 'ready?') void hooks.ready().then((ok) => process.send?.({ pgtenant: 'ready', id: m.id, ok } satisfies Message))
  })
  return {
    role,
    forwardCancel: (pid, secret) => process.send?.({ pgtenant: 'cancel', pid, secret } satisfies Message),
    broadcast: (command) => process.send?.({ pgtenant: 'command', command } satisfies Message),
  }
}

// ------------------------------------------------------------------ primary

export async function runPrimary(configPath: string, config: Config, log: Logger): Promise<void> {
  const count = config.workers
  const workers = new Map<number, Worker>()
  const readiness = new Map<number, (ok: boolean) => void>()
  let nextRequest = 1
  let stopping = false
  let metricsServer: http.Server | null = null

  const others = (except: Worker | null): Worker[] => [...workers.values()].filter((w) => w !== except && w.isConnected())
  const onMessage = (from: Worker, m: unknown): void => {
    if (!isMessage(m)) return
    // to every other worker: a session-pooled client's key carries a server pid, which names no worker
    if (m.pgtenant === 'cancel') for (const w of others(from)) w.send(m)
    else if (m.pgtenant === 'ready') readiness.get(m.id)?.(m.ok)
    else if (m.pgtenant === 'command') {
      if (m.command.op === 'shutdown') stop()
      else for (const w of others(from)) w.send(m)
    }
  }
  const fork = (index: number): void => {
    const worker = cluster.fork({ PGTENANT_WORKER_INDEX: String(index), PGTENANT_WORKERS: String(count) })
    workers.set(index, worker)
    worker.on('message', (m) => onMessage(worker, m))
    worker.on('exit', (code, signal) => {
      if (workers.get(index) === worker) workers.delete(index)
      if (stopping) {
        if (workers.size === 0) finish()
        return
      }
      log.error({ worker: index, code, signal }, 'worker exited; starting it again')
      setTimeout(() => !stopping && fork(index), RESTART_DELAY_MS)
    })
  }
  const finish = (): void => {
    metricsServer?.close()
    process.exit(0)
  }
  const stop = (): void => {
    if (stopping) return
    stopping = true
    log.info('stopping workers')
    if (workers.size === 0) return finish()
    for (const w of workers.values()) w.process.kill('SIGTERM')
    // Workers drain for up to pool.shutdown_timeout_ms; do not wait forever for one that hangs.
    setTimeout(() => {
      for (const w of workers.values()) w.process.kill('SIGKILL')
      finish()
    }, config.pool.shutdown_timeout_ms + 5000).unref()
  }
  const allReady = (): Promise<boolean> => {
    const live = others(null)
    if (live.length < count) return Promise.resolve(false)
    return Promise.all(
      live.map(
        (w) =>
          new Promise<boolean>((resolve) => {
            const id = nextRequest++
            const timer = setTimeout(() => done(false), 3000)
            const done = (ok: boolean): void => {
              clearTimeout(timer)
              readiness.delete(id)
              resolve(ok)
            }
            readiness.set(id, done)
            w.send({ pgtenant: 'ready?', id } satisfies Message)
          }),
      ),
    ).then((all) => all.every(Boolean))
  }

  for (let i = 0; i < count; i++) fork(i)
  if (config.metrics) metricsServer = await serveClusterMetrics(config.metrics.host, config.metrics.port, allReady, log)
  log.info({ workers: count, listen: `${config.listen.host}:${config.listen.port}` }, 'pgtenant primary started')

  process.on('SIGHUP', () => {
    try {
      setLogLevel(log, loadConfig(configPath).log_level) // each worker reads it again; the primary only applies its log level
    } catch (err) {
      log.error({ err: (err as Error).message }, 'new configuration is invalid; keeping the old one')
      return
    }
    for (const w of others(null)) w.send({ pgtenant: 'command', command: { op: 'reload' } } satisfies Message)
  })
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

async function serveClusterMetrics(host: string, port: number, ready: () => Promise<boolean>, log: Logger): Promise<http.Server> {
  const aggregator = new client.AggregatorRegistry()
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type })
      res.end(body)
    }
    if (path === '/metrics')
      aggregator.clusterMetrics().then(
        (body) => reply(200, aggregator.contentType, body),
        (err: Error) => reply(500, 'text/plain', `error: ${err.message}\n`),
      )
    else if (path === '/healthz') reply(200, 'text/plain', 'ok\n')
    else if (path === '/readyz')
      void ready().then((ok) => reply(ok ? 200 : 503, 'text/plain', ok ? 'ready\n' : 'not ready: a worker is down or its default backend unreachable\n'))
    else reply(404, 'text/plain', 'not found: try /metrics, /healthz or /readyz\n')
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  log.info({ host, port: (server.address() as { port: number }).port }, 'metrics endpoint listening (summed over workers)')
  return server
}
