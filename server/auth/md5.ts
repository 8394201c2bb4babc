// PostgreSQL's md5 password scheme: stored "md5" + md5(password + user), and the
// per-login response "md5" + md5(hex(stored) + salt).
import { createHash, timingSafeEqual } from 'node:crypto'

const md5hex = (data: string | Buffer): string => createHash('md5').update(data).digest('hex')

export function md5PasswordHash(user: string, password: string): string {
  return 'md5' + md5hex(password + user)
}

function isMd5Hash(s: string): boolean {
  return /^md5[0-9a-f]{32}$/.test(s)
}

/** The client's answer to AuthenticationMD5Password, from a plain password or a stored md5 hash. */
export function md5Response(user: string, passwordOrHash: string, salt: Buffer): string {
  const stored = isMd5Hash(passwordOrHash) ? passwordOrHash : md5PasswordHash(user, passwordOrHash)
  return 'md5' + md5hex(Buffer.concat([Buffer.from(stored.slice(3)), salt]))
}

/** Server side: does the client's response match the configured password (plain or md5 hash)? */
export function verifyMd5(configured: string, user: string, salt: Buffer, response: string): boolean {
  if (configured.startsWith('SCRAM-SHA-256$')) return false
  const expected = Buffer.from(md5Response(user, configured, salt))
  const got = Buffer.from(response)
  return expected.length === got.length && timingSafeEqual(expected, got)
}
