// Replication connections (`replication=true|database` in the startup packet) are not proxied:
// a replication stream carries every tenant's changes, and pgtenant pools ordinary sessions
// only. They get one clear FATAL. A client that retries in a loop (a replica or a CDC tool
// pointed at the proxy by mistake) is rate-limited per address: past the limit its attempts are
// refused without a log line each, and counted.

/** Replication attempts a second from one address that are refused with a log line; more are refused silently. */
export const REPLICATION_ATTEMPTS_PER_SECOND = 10

export const REPLICATION_REFUSAL =
  'pgtenant does not proxy replication connections (replication=true or database in the startup packet): connect to the PostgreSQL server directly'

/** Whether a startup packet asks for a replication connection (PostgreSQL: true/on/yes/1 or database). */
export function wantsReplication(value: string | undefined): boolean {
  if (value === undefined) return false
  const v = value.toLowerCase()
  return !['false', 'off', 'no', '0', ''].includes(v)
}

export type Verdict = 'refuse' | 'refuse_quietly'

/** Attempts per address in fixed one-second windows. Memory: at most one entry per address seen in the last second (swept). */
export class AttemptLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>()

  constructor(
    private readonly perSecond = REPLICATION_ATTEMPTS_PER_SECOND,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count one attempt from `address`: the first `perSecond` of a window are refused normally, the rest quietly. */
  attempt(address: string): Verdict {
    const t = this.now()
    if (this.windows.size > 1000) for (const [a, w] of this.windows) if (t - w.start >= 1000) this.windows.delete(a)
    let w = this.windows.get(address)
    if (!w || t - w.start >= 1000) {
      w = { start: t, count: 0 }
      this.windows.set(address, w)
    }
    w.count++
    return w.count > this.perSecond ? 'refuse_quietly' : 'refuse'
  }
}

/** One per process: the limit is per address whichever session sees the attempt. */
export const replicationAttempts = new AttemptLimiter()
