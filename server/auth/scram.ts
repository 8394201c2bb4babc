// SCRAM-SHA-256 (RFC 5802, RFC 7677) for both sides: the server side authenticates
// clients against `users`, the client side logs in to backends.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'

export class ScramError extends Error {
  override readonly name = 'ScramError'
}

export interface ScramSecret {
  iterations: number
  salt: Buffer
  storedKey: Buffer
  serverKey: Buffer
}

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest()
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest()

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i]
  return out
}

/** PostgreSQL normalises passwords with SASLprep; for ASCII (the common case) that is the identity. NFKC covers the rest approximately. */
function saslprep(password: string): string {
  return /^[\x20-\x7e]*$/.test(password) ? password : password.normalize('NFKC')
}

function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(saslprep(password), salt, iterations, 32, 'sha256')
}

export function scramSecretFromPassword(password: string, salt = randomBytes(16), iterations = 4096): ScramSecret {
  const salted = saltedPassword(password, salt, iterations)
  return { iterations, salt, storedKey: sha256(hmac(salted, 'Client Key')), serverKey: hmac(salted, 'Server Key') }
}

/** Parses a verifier as stored in pg_authid: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>. */
export function parseScramVerifier(text: string): ScramSecret {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text)
  if (!m) throw new ScramError('not a SCRAM-SHA-256 verifier')
  return { iterations: Number(m[1]), salt: Buffer.from(m[2], 'base64'), storedKey: Buffer.from(m[3], 'base64'), serverKey: Buffer.from(m[4], 'base64') }
}

export function formatScramVerifier(s: ScramSecret): string {
  return `SCRAM-SHA-256$${s.iterations}:${s.salt.toString('base64')}$${s.storedKey.toString('base64')}:${s.serverKey.toString('base64')}`
}

const fakeKey = randomBytes(32)
/** A secret for a user that does not exist: stable per name, so probing cannot tell users apart; no password matches it. */
export function fakeScramSecret(user: string): ScramSecret {
  const salt = hmac(fakeKey, `salt:${user}`).subarray(0, 16)
  return { iterations: 4096, salt, storedKey: hmac(fakeKey, `stored:${user}`), serverKey: hmac(fakeKey, `server:${user}`) }
}

function parseAttributes(msg: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of msg.split(',')) {
    const eq = part.indexOf('=')
    if (eq !== 1) throw new ScramError(`malformed SCRAM attribute "${part.slice(0, 20)}"`)
    out.set(part[0], part.slice(2))
  }
  return out
}

export class ScramServer {
  private clientFirstBare = ''
  private serverFirst = ''
  private nonce = ''
  private gs2Header = ''

  constructor(
    private readonly secret: ScramSecret,
    private readonly serverNonce = randomBytes(18).toString('base64'),
  ) {}

  handleClientFirst(msg: string): string {
    const m = /^([ny]),(a=[^,]*)?,(.*)$/.exec(msg)
    if (!m) {
      if (msg.startsWith('p=')) throw new ScramError('channel binding is not supported (the proxy offers SCRAM-SHA-256 only)')
      throw new ScramError('malformed SCRAM client-first message')
    }
    this.gs2Header = `${m[1]},${m[2] ?? ''},`
    this.clientFirstBare = m[3]
    const attrs = parseAttributes(this.clientFirstBare)
    const clientNonce = attrs.get('r')
    if (!clientNonce || !attrs.has('n')) throw new ScramError('SCRAM client-first message lacks a nonce or user name')
    this.nonce = clientNonce + this.serverNonce
    this.serverFirst = `r=${this.nonce},s=${this.secret.salt.toString('base64')},i=${this.secret.iterations}`
    return this.serverFirst
  }

  handleClientFinal(msg: string): { ok: boolean; serverFinal?: string } {
    const proofAt = msg.lastIndexOf(',p=')
    if (proofAt < 0) throw new ScramError('SCRAM client-final message lacks a proof')
    const withoutProof = msg.slice(0, proofAt)
    const attrs = parseAttributes(withoutProof)
    if (attrs.get('c') !== Buffer.from(this.gs2Header).toString('base64')) throw new ScramError('SCRAM channel binding does not match')
    if (attrs.get('r') !== this.nonce) throw new ScramError('SCRAM nonce does not match')
    const proof = Buffer.from(msg.slice(proofAt + 3), 'base64')
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`
    const signature = hmac(this.secret.storedKey, authMessage)
    if (proof.length !== signature.length) return { ok: false }
    const clientKey = xor(proof, signature)
    if (!timingSafeEqual(sha256(clientKey), this.secret.storedKey)) return { ok: false }
    return { ok: true, serverFinal: `v=${hmac(this.secret.serverKey, authMessage).toString('base64')}` }
  }
}

export class ScramClient {
  private clientFirstBare = ''
  private expectedServerSignature: Buffer | null = null

  constructor(
    _user: string, // (the SCRAM exchange names no user: PostgreSQL takes it from the startup packet)
    private readonly password: string,
    private readonly clientNonce = randomBytes(18).toString('base64'),
  ) {}

  clientFirst(): string {
    // PostgreSQL ignores the SCRAM user name (it uses the startup packet's); send it empty as libpq does.
    this.clientFirstBare = `n=,r=${this.clientNonce}`
    return `n,,${this.clientFirstBare}`
  }

  handleServerFirst(msg: string): string {
    const attrs = parseAttributes(msg)
    const nonce = attrs.get('r')
    const salt = attrs.get('s')
    const iterations = Number(attrs.get('i'))
    if (!nonce || !nonce.startsWith(this.clientNonce) || !salt || !Number.isInteger(iterations) || iterations < 1)
      throw new ScramError('malformed SCRAM server-first message')
    const salted = saltedPassword(this.password, Buffer.from(salt, 'base64'), iterations)
    const clientKey = hmac(salted, 'Client Key')
    const withoutProof = `c=biws,r=${nonce}`
    const authMessage = `${this.clientFirstBare},${msg},${withoutProof}`
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage))
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage)
    return `${withoutProof},p=${proof.toString('base64')}`
  }

  verifyServerFinal(msg: string): void {
    const attrs = parseAttributes(msg)
    if (attrs.has('e')) throw new ScramError(`server rejected SCRAM: ${attrs.get('e')}`)
    const v = Buffer.from(attrs.get('v') ?? '', 'base64')
    if (!this.expectedServerSignature || v.length !== 32 || !timingSafeEqual(v, this.expectedServerSignature))
      throw new ScramError('server signature does not match: the server does not know the password')
  }
}
