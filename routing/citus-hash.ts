// PostgreSQL's standard 32-bit hash functions (support function 1 of each type's default
// hash operator class), reimplemented bit-for-bit as PostgreSQL computes them on a
// little-endian machine, and returned as the signed int32 that `hashint8(5)` prints.
// Citus hashes a distribution column value with exactly these functions to pick a shard.
//
// hash_any() is Bob Jenkins' 2006 lookup3 mixing as adapted by PostgreSQL (src/common/hashfn.c):
// the state starts at 0x9e3779b9 + len + 3923095, whole 12-byte blocks are read as three
// little-endian words, and the 0..11 trailing bytes are added byte by byte, where PostgreSQL
// (unlike Jenkins' hashlittle) keeps the lowest byte of `c` free: bytes 8..10 go to bits
// 8..31 of c. Pure functions, no state.

/** Rotate a 32-bit value left by k bits (k in 1..31). */
function rot(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/** The `final` mixing step over (a, b, c); returns c as a signed int32. */
function finalMix(a: number, b: number, c: number): number {
  c ^= b
  c = (c - rot(b, 14)) | 0
  a ^= c
  a = (a - rot(c, 11)) | 0
  b ^= a
  b = (b - rot(a, 25)) | 0
  c ^= b
  c = (c - rot(b, 16)) | 0
  a ^= c
  a = (a - rot(c, 4)) | 0
  b ^= a
  b = (b - rot(a, 14)) | 0
  c ^= b
  c = (c - rot(b, 24)) | 0
  return c | 0
}

/** PostgreSQL's hash_any()/hash_bytes() over raw bytes, as a signed int32. */
export function hashBytes(k: Uint8Array): number {
  let len = k.length
  let a = (0x9e3779b9 + len + 3923095) | 0
  let b = a
  let c = a
  let i = 0
  while (len >= 12) {
    a = (a + (k[i] | (k[i + 1] << 8) | (k[i + 2] << 16) | (k[i + 3] << 24))) | 0
    b = (b + (k[i + 4] | (k[i + 5] << 8) | (k[i + 6] << 16) | (k[i + 7] << 24))) | 0
    c = (c + (k[i + 8] | (k[i + 9] << 8) | (k[i + 10] << 16) | (k[i + 11] << 24))) | 0
    // mix(a, b, c)
    a = (a - c) | 0
    a ^= rot(c, 4)
    c = (c + b) | 0
    b = (b - a) | 0
    b ^= rot(a, 6)
    a = (a + c) | 0
    c = (c - b) | 0
    c ^= rot(b, 8)
    b = (b + a) | 0
    a = (a - c) | 0
    a ^= rot(c, 16)
    c = (c + b) | 0
    b = (b - a) | 0
    b ^= rot(a, 19)
    a = (a + c) | 0
    c = (c - b) | 0
    c ^= rot(b, 4)
    b = (b + a) | 0
    i += 12
    len -= 12
  }
  // The trailing 0..11 bytes: what the C switch does with fall-through cases. The lowest
  // byte of c is reserved (for the length, in the older lookup2), so k[8..10] start at bit 8.
  if (len >= 11) c = (c + (k[i + 10] << 24)) | 0
  if (len >= 10) c = (c + (k[i + 9] << 16)) | 0
  if (len >= 9) c = (c + (k[i + 8] << 8)) | 0
  if (len >= 8) b = (b + (k[i + 7] << 24)) | 0
  if (len >= 7) b = (b + (k[i + 6] << 16)) | 0
  if (len >= 6) b = (b + (k[i + 5] << 8)) | 0
  if (len >= 5) b = (b + k[i + 4]) | 0
  if (len >= 4) a = (a + (k[i + 3] << 24)) | 0
  if (len >= 3) a = (a + (k[i + 2] << 16)) | 0
  if (len >= 2) a = (a + (k[i + 1] << 8)) | 0
  if (len >= 1) a = (a + k[i]) | 0
  return finalMix(a, b, c)
}

/** PostgreSQL's hash_uint32() (hash_bytes_uint32): the hash of one 32-bit word. */
export function hashUint32(k: number): number {
  const init = (0x9e3779b9 + 4 + 3923095) | 0
  return finalMix((init + k) | 0, init, init)
}

const INT16_MIN = -32768
const INT16_MAX = 32767
const INT32_MIN = -2147483648
const INT32_MAX = 2147483647
const INT64_MIN = -(1n << 63n)
const INT64_MAX = (1n << 63n) - 1n

/** hashint2(smallint): the value sign-extended to 32 bits. */
export function hashint2(v: number): number {
  if (!Number.isInteger(v) || v < INT16_MIN || v > INT16_MAX) throw new RangeError(`smallint out of range: ${v}`)
  return hashUint32(v | 0)
}

/** hashint4(integer). */
export function hashint4(v: number): number {
  if (!Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) throw new RangeError(`integer out of range: ${v}`)
  return hashUint32(v | 0)
}

/**
 * hashint8(bigint): the high 32 bits are folded into the low ones (xor with the high half
 * for values >= 0, with its complement for negative values), so every int8 value that fits
 * in an int4 hashes exactly like that int4.
 */
export function hashint8(v: bigint | number): number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new RangeError(`bigint must be an integer: ${v}`)
    if (v >= INT32_MIN && v <= INT32_MAX) return hashUint32(v | 0)
    if (!Number.isSafeInteger(v)) throw new RangeError(`bigint given as an unsafe JavaScript number: ${v}; pass a BigInt`)
    v = BigInt(v)
  }
  if (v < INT64_MIN || v > INT64_MAX) throw new RangeError(`bigint out of range: ${v}`)
  const lo = Number(BigInt.asIntN(32, v))
  const hi = Number(BigInt.asIntN(32, v >> 32n))
  return hashUint32(lo ^ (v >= 0n ? hi : ~hi))
}

const encoder = new TextEncoder()

/** hashtext(text) / varchar with a deterministic collation: hash_any over the UTF-8 bytes. */
export function hashtext(s: string): number {
  return hashBytes(encoder.encode(s))
}

/** hashbpchar(character(n)): trailing spaces do not count. */
export function hashbpchar(s: string): number {
  let end = s.length
  while (end > 0 && s.charCodeAt(end - 1) === 0x20) end--
  return hashtext(end === s.length ? s : s.slice(0, end))
}

/**
 * Parses a uuid the way PostgreSQL's uuid_in does: 32 hex digits, optionally inside one pair
 * of braces, optionally with a hyphen after any group of four digits. Returns the 16 bytes,
 * or null when PostgreSQL would reject the text.
 */
export function parseUuid(s: string): Uint8Array | null {
  let p = 0
  let end = s.length
  const braces = s.charCodeAt(0) === 0x7b // '{'
  if (braces) {
    if (s.charCodeAt(end - 1) !== 0x7d) return null
    p = 1
    end -= 1
  }
  const out = new Uint8Array(16)
  for (let i = 0; i < 16; i++) {
    if (p + 2 > end) return null
    const hi = hexDigit(s.charCodeAt(p))
    const lo = hexDigit(s.charCodeAt(p + 1))
    if (hi < 0 || lo < 0) return null
    out[i] = (hi << 4) | lo
    p += 2
    if (i % 2 === 1 && i < 15 && s.charCodeAt(p) === 0x2d) p++ // optional '-'
  }
  return p === end ? out : null
}

function hexDigit(ch: number): number {
  if (ch >= 0x30 && ch <= 0x39) return ch - 0x30
  if (ch >= 0x61 && ch <= 0x66) return ch - 0x61 + 10
  if (ch >= 0x41 && ch <= 0x46) return ch - 0x41 + 10
  return -1
}

/** uuid_hash(uuid): hash_any over the 16 bytes. Throws on an invalid uuid text. */
export function uuid_hash(v: string | Uint8Array): number {
  const bytes = typeof v === 'string' ? parseUuid(v) : v
  if (!bytes || bytes.length !== 16) throw new RangeError(`invalid uuid: ${String(v)}`)
  return hashBytes(bytes)
}

/**
 * Parses an integer literal as PostgreSQL's int2in/int4in/int8in accept it in decimal:
 * optional surrounding whitespace, an optional sign, decimal digits (PostgreSQL 16+ also
 * allows `_` between digits). Returns null when the text is not such an integer or is out
 * of [min, max].
 */
export function parseInteger(s: string, min: bigint, max: bigint): bigint | null {
  const m = /^[ \t\n\r\v\f]*([+-]?)([0-9]+(?:_[0-9]+)*)[ \t\n\r\v\f]*$/.exec(s)
  if (!m) return null
  const digits = m[2].includes('_') ? m[2].replace(/_/g, '') : m[2]
  if (digits.length > 25) return null
  let v = BigInt(digits)
  if (m[1] === '-') v = -v
  return v < min || v > max ? null : v
}

/** The hash kinds pgtenant can compute, keyed by the canonical type. */
export type HashableType = 'int2' | 'int4' | 'int8' | 'text' | 'bpchar' | 'uuid'

/** Type names as format_type() prints them, plus PostgreSQL's internal names and the usual aliases. */
const TYPE_ALIASES: Record<string, HashableType> = {
  int2: 'int2',
  smallint: 'int2',
  int4: 'int4',
  integer: 'int4',
  int: 'int4',
  int8: 'int8',
  bigint: 'int8',
  text: 'text',
  varchar: 'text',
  'character varying': 'text',
  bpchar: 'bpchar',
  character: 'bpchar',
  char: 'bpchar',
  uuid: 'uuid',
}

/**
 * The canonical hashable type for a type name (`bigint`, `int8`, `character varying(20)`,
 * `pg_catalog.text`, …), or null when pgtenant does not hash that type (route to the
 * coordinator). `"char"` (the one-byte internal type) is not `character`.
 */
export function hashableType(typeName: string): HashableType | null {
  let t = typeName.trim().toLowerCase()
  if (t.startsWith('pg_catalog.')) t = t.slice('pg_catalog.'.length)
  if (t === '"char"') return null
  t = t.replace(/\s*\(\s*\d+\s*\)\s*$/, '') // typmod: varchar(20), character(10)
  return Object.hasOwn(TYPE_ALIASES, t) ? TYPE_ALIASES[t] : null
}

/**
 * Hashes a value given as text (as a tenant value is) with the hash function of the
 * distribution column's type. Returns null when the type is not supported or the text is
 * not a valid value of the type (the coordinator then decides, and reports the error).
 */
export function hashForType(typeName: string, value: string): number | null {
  switch (hashableType(typeName)) {
    case 'int2': {
      const v = parseInteger(value, -32768n, 32767n)
      return v === null ? null : hashUint32(Number(v))
    }
    case 'int4': {
      const v = parseInteger(value, -2147483648n, 2147483647n)
      return v === null ? null : hashUint32(Number(v))
    }
    case 'int8': {
      // Fast path: plain decimals that fit in an int32 hash like int4 (no BigInt needed).
      if (value.length <= 10 && /^-?[0-9]{1,10}$/.test(value)) {
        const n = Number(value)
        if (n >= INT32_MIN && n <= INT32_MAX) return hashUint32(n | 0)
      }
      const v = parseInteger(value, INT64_MIN, INT64_MAX)
      return v === null ? null : hashint8(v)
    }
    case 'text':
      return value.includes('\0') ? null : hashtext(value)
    case 'bpchar':
      return value.includes('\0') ? null : hashbpchar(value)
    case 'uuid': {
      const bytes = parseUuid(value)
      return bytes === null ? null : hashBytes(bytes)
    }
    default:
      return null
  }
}
