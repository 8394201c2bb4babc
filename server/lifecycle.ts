// The proxy's life-cycle rules as small functions: what a reload may not change while running,
// and how clients are drained at shutdown (PgBouncer's SHUTDOWN WAIT_FOR_CLIENTS behaviour).
import type { Logger } from 'pino'
import type { Config } from './config-types.js'
import type { ClientSession } from './session.js'

/** Settings that take effect only at start (a reload that changes them logs "needs restart"). */
export interface RunningSettings {
  listen: Config['listen']
  metrics: Config['metrics']
  workers: number
  log_level: string
}

/** A reloaded config with every restart-only setting kept at its running value; the keys that wanted to change are logged. */
export function keepRestartOnly(config: Config, running: RunningSettings, current: Config, log: Logger): Config {
  const restart: string[] = []
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null)
  if (!same(config.listen, running.listen)) restart.push('listen')
  if (!same(config.metrics, running.metrics)) restart.push('metrics')
  if (config.workers !== running.workers) restart.push('workers')
  if ((config.log_format ?? 'json') !== (current.log_format ?? 'json')) restart.push('log_format')
  if ((config.tenant?.metrics_top ?? 100) !== (current.tenant?.metrics_top ?? 100)) restart.push('tenant.metrics_top')
  if (restart.length) log.warn({ keys: restart }, `configuration reload: ${restart.join(', ')} changed and needs restart; keeping the running value`)
  const kept = { ...config, listen: running.listen, metrics: running.metrics, workers: running.workers, log_format: current.log_format }
  if (kept.tenant && current.tenant) kept.tenant = { ...kept.tenant, metrics_top: current.tenant.metrics_top }
  return kept
}

/**
 * Close idle clients at once and each busy one when its transaction ends, up to `timeoutMs`
 * (or until `abort` is called: a second signal); then close the rest, cut off mid-transaction.
 */
export async function drainClients(sessions: () => ClientSession[], timeoutMs: number, log: Logger, onAbort: (abort: () => void) => void): Promise<void> {
  const bye = (s: ClientSession): void => s.fatal('57P01', 'terminating connection: pgtenant is shutting down')
  const closeIdle = (): number => {
    let busy = 0
    for (const s of sessions()) {
      if (s.busy) busy++
      else bye(s)
    }
    return busy
  }
  const busy = closeIdle()
  const deadline = Date.now() + timeoutMs
  if (timeoutMs > 0) log.info({ clients: busy, timeout_s: timeoutMs / 1000 }, `draining ${busy} clients, up to ${timeoutMs / 1000} s`)
  if (busy > 0 && timeoutMs > 0) {
    let aborted = false
    const abort = new Promise<void>((resolve) => onAbort(() => ((aborted = true), resolve())))
    while (!aborted && Date.now() < deadline && closeIdle() > 0) await Promise.race([new Promise((r) => setTimeout(r, 50)), abort])
    if (aborted) log.warn('second shutdown signal: closing every client now')
  }
  const cut = sessions().filter((s) => s.busy).length
  if (cut > 0) log.warn({ clients: cut }, `shutdown: ${cut} clients still in a transaction are cut off`)
  for (const s of sessions()) bye(s)
}
