// Passthrough authentication (PgBouncer's auth_query, PgDog's passthrough): a user not in
// `users` (or listed without a password) sends its password in clear text (over TLS, or on
// loopback), and the proxy checks it by logging in to the server as that user. A successful
// check is remembered as a salted hash (scrypt, never the password) for `cache_ttl_ms`, so
// a login within that time costs no server round trip. Failed checks are never remembered.
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto'
import { BackendConnection, type BackendTarget } from '../backend/connection.js'

const MAX_ENTRIES = 10_000
/** scrypt with a small cost: the cache lives in this process's memory only, and each hit pays it. */
const SCRYPT = { N: 1024, r: 8, p: 1 } as const

interface Entry {
  salt: Buffer
  hash: Buffer
  expires: number
}

function hashOf(password: string, salt: Buffer): Buffer {
  return scryptSync(password, salt, 32, SCRYPT)
}

/** Verified (server, database, user, password) logins, each until it expires. */
export class PassthroughCache {
  private readonly entries = new Map<string, Entry>()

  static key(target: Pick<BackendTarget, 'host' | 'port' | 'database' | 'user'>): string {
    return `${target.host}:${target.port}/${target.database}\u0000${target.user}`
  }

  /** True when this password was verified for this key less than the TTL ago. */
  hit(key: string, password: string, now = Date.now()): boolean {
    const e = this.entries.get(key)
    if (!e) return false
    if (e.expires <= now) {
      this.entries.delete(key)
      return false
    }
    return timingSafeEqual(hashOf(password, e.salt), e.hash)
  }

  remember(key: string, password: string, ttlMs: number, now = Date.now()): void {
    if (ttlMs <= 0) return
    this.entries.delete(key) // re-inserted last: the map's order is the eviction order
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string)
    const salt = randomBytes(16)
    this.entries.set(key, { salt, hash: hashOf(password, salt), expires: now + ttlMs })
  }

  forget(key: string): void {
    this.entries.delete(key)
  }

  get size(): number {
    return this.entries.size
  }
}

/** The process-wide cache (one per worker process). */
export const passthroughCache = new PassthroughCache()

export type CheckResult =
  { ok: true; cached: boolean } | { ok: false; rejected: true; message: string } | { ok: false; rejected: false; message: string; sqlstate: string }

/** Checks a password by logging in to the server as the user (or from the cache). */
export async function checkPassword(target: BackendTarget, ttlMs: number, timeoutMs: number): Promise<CheckResult> {
  const key = PassthroughCache.key(target)
  const password = target.password ?? ''
  if (passthroughCache.hit(key, password)) return { ok: true, cached: true }
  try {
    const conn = await BackendConnection.connect({ ...target, applicationName: 'pgtenant passthrough check' }, timeoutMs)
    conn.close()
  } catch (err) {
    const e = err as Error & { sqlstate?: string }
    // 28P01 wrong password / unknown role, 28000 no pg_hba entry or login not allowed.
    if (e.sqlstate === '28P01' || e.sqlstate === '28000') {
      passthroughCache.forget(key)
      return { ok: false, rejected: true, message: e.message }
    }
    return { ok: false, rejected: false, message: e.message, sqlstate: e.sqlstate ?? '08006' }
  }
  passthroughCache.remember(key, password, ttlMs)
  return { ok: true, cached: false }
}
