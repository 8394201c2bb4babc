// The rows of a COPY … FROM STDIN into a tenant table, as they stream (issue 19): pure, no sockets.
// Fed the payload of each CopyData message the client sends, it returns what the server gets in its
// place: unchanged (null), the rows with the tenant's value appended ('append' plans), or an error that
// aborts the COPY (a row of another tenant in 'check' plans, or data the server would refuse too).
// Rows cross message boundaries anywhere; the state between messages is a few scalars (constant
// memory: no row is buffered, a tenant field is compared byte by byte as it arrives).
//
// Rows are split exactly as PostgreSQL's COPY FROM splits them (src/backend/commands/copyfromparse.c,
// CopyReadLineText and CopyReadAttributesText/CSV): the newline style is fixed by the first line (\n,
// \r or \r\n) and another one is an error; in text format a backslash takes the next byte literally
// (octal \ooo and hex \xhh escapes take up to 3 / 2 more), `\.` at the start of a line followed by the
// newline ends the data (it and everything after it are dropped here, as the server ignores them, so
// that no server version reads it as a row) and anywhere else is refused; in CSV the quote character
// toggles a quoted section (newlines and delimiters inside are data) and the escape character inside
// one takes a following quote or escape literally. A field equal to the NULL string as sent (in CSV:
// unquoted) is NULL. Binary: the 19-byte header and its extension, then per tuple an int16 field count
// (-1: the trailer) and per field an int32 length (-1: NULL) and the bytes.
//
// A row is never complete on the server before the proxy has checked it: the server acts on a text
// row at its newline and on a binary tuple at its last byte, and an error drops the whole message
// the verdict was reached in.
import type { CopyInPlan } from '../../parser/types.js'

/** Why the COPY is aborted (the client gets it as an ErrorResponse; the server gets a CopyFail). */
export class CopyRowsError {
  constructor(
    readonly sqlstate: string,
    readonly message: string,
    readonly hint?: string,
  ) {}
}

const LF = 10
const CR = 13
const BS = 92
const DOT = 46

const enum Eol {
  Unknown,
  NL,
  CR,
  CRNL,
}

/** Text-format escape states: after a backslash, after 1 or 2 octal digits, after \x, after \x and one hex digit. */
const enum Esc {
  None,
  Backslash,
  Oct1,
  Oct2,
  Hex0,
  Hex1,
}

const enum Bin {
  Signature,
  Flags,
  ExtLength,
  Ext,
  Count,
  Length,
  Data,
  Trailer,
}

const NO_BYTES = Buffer.alloc(0)
const TRAILER = Buffer.from([0xff, 0xff])

/** Output of one message: slices of the input and inserted bytes, copied once into one buffer (`headroom` bytes left free in front). */
class Output {
  buf: Buffer = NO_BYTES
  pos = 0

  constructor(private readonly headroom: number) {}

  start(estimate: number): void {
    this.buf = Buffer.allocUnsafe(this.headroom + estimate + 64)
    this.pos = this.headroom
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n + 64))
    this.buf.copy(bigger, 0, 0, this.pos)
    this.buf = bigger
  }

  append(src: Uint8Array, from: number, to: number): void {
    const n = to - from
    if (n <= 0) return
    this.room(n)
    const b = this.buf
    let p = this.pos
    if (n < 96) for (let k = from; k < to; k++) b[p++] = src[k]
    else if (src instanceof Buffer) p += src.copy(b, p, from, to)
    else {
      b.set(src.subarray(from, to), p)
      p += n
    }
    this.pos = p
  }

  take(): Buffer {
    const out = this.buf.subarray(0, this.pos)
    this.buf = NO_BYTES
    return out
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 65 && c <= 70) return c - 55
  if (c >= 97 && c <= 102) return c - 87
  return -1
}

/** The tenant column's value in the row format: text and CSV send it as text; binary in the column type's binary form. */
export function tenantBinary(type: string | null, tenant: string): Buffer | CopyRowsError {
  const t = (type ?? '').toLowerCase()
  if (/^(text|character varying(\(\d+\))?|varchar(\(\d+\))?|character(\(\d+\))?|bpchar|name|citext)$/.test(t)) return Buffer.from(tenant, 'utf8')
  const ints: Record<string, [number, bigint]> = { smallint: [2, 1n << 15n], integer: [4, 1n << 31n], bigint: [8, 1n << 63n] }
  const int = ints[t]
  if (int) {
    if (!/^-?[0-9]{1,30}$/.test(tenant))
      return new CopyRowsError('0A000', `binary COPY: the session tenant '${tenant}' is not an integer, the type of the tenant column`)
    const v = BigInt(tenant)
    if (v < -int[1] || v >= int[1]) return new CopyRowsError('22003', `binary COPY: the session tenant ${tenant} is out of range for type ${t}`)
    const b = Buffer.alloc(int[0])
    if (int[0] === 2) b.writeInt16BE(Number(v))
    else if (int[0] === 4) b.writeInt32BE(Number(v))
    else b.writeBigInt64BE(v)
    return b
  }
  if (t === 'uuid') {
    const m = /^(\{)?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})(\})?$/i.exec(tenant)
    if (!m || !!m[1] !== !!m[7]) return new CopyRowsError('0A000', `binary COPY: the session tenant '${tenant}' is not a UUID in a form pgtenant reads`)
    return Buffer.from(m.slice(2, 7).join(''), 'hex')
  }
  return new CopyRowsError(
    '0A000',
    `binary COPY into a tenant table whose tenant column is of type ${type ?? 'unknown'} is not supported: use text or CSV format`,
  )
}

/** Text format: a value as COPY text (backslash, delimiter, newline and carriage return escaped). */
function textField(value: string, delimiter: string): string {
  let out = ''
  for (const ch of value) {
    if (ch === '\\') out += '\\\\'
    else if (ch === '\n') out += '\\n'
    else if (ch === '\r') out += '\\r'
    else if (ch === delimiter) out += '\\' + ch
    else out += ch
  }
  return out
}

/** CSV: a value quoted (never the NULL string, never the DEFAULT marker). */
function csvField(value: string, quote: string, escape: string): string {
  let out = quote
  for (const ch of value) {
    if (ch === quote || ch === escape) out += (escape === quote ? quote : escape) + ch
    else out += ch
  }
  return out + quote
}

/** The streaming transformer for one COPY, or an error when the tenant cannot be written in this format. */
export function copyInRows(plan: CopyInPlan, tenant: string, headroom = 0): CopyInRows | CopyRowsError {
  if (tenant.includes('\0')) return new CopyRowsError('42501', 'the session tenant contains a NUL character and cannot be used')
  let value: Buffer
  let suffix: Buffer
  let headerSuffix = NO_BYTES
  if (plan.format === 'binary') {
    const b = tenantBinary(plan.columnType, tenant)
    if (b instanceof CopyRowsError) return b
    value = b
    suffix = Buffer.allocUnsafe(4 + b.length)
    suffix.writeInt32BE(b.length, 0)
    b.copy(suffix, 4)
  } else {
    value = Buffer.from(tenant, 'utf8')
    if (plan.format === 'text') {
      const field = textField(tenant, plan.delimiter)
      if (plan.mode === 'append' && field === plan.null)
        return new CopyRowsError(
          '0A000',
          `COPY into "${plan.table}": the session tenant written as COPY text equals the NULL string ${JSON.stringify(plan.null)}`,
        )
      suffix = Buffer.from(plan.delimiter + field, 'utf8')
      headerSuffix = Buffer.from(plan.delimiter + textField(plan.column, plan.delimiter), 'utf8')
    } else {
      suffix = Buffer.from(plan.delimiter + csvField(tenant, plan.quote, plan.escape), 'utf8')
      headerSuffix = Buffer.from(plan.delimiter + csvField(plan.column, plan.quote, plan.escape), 'utf8')
    }
  }
  return new CopyInRows(plan, tenant, value, suffix, headerSuffix, headroom)
}

export class CopyInRows {
  /** Data rows (tuples) completed so far; the header line does not count. */
  rows = 0
  private readonly out: Output
  private readonly check: boolean
  private readonly csv: boolean
  private readonly delim: number
  private readonly quote: number
  /** CSV escape byte inside quotes; -1 when it is the quote itself (as the server's line reader treats it) */
  private readonly escape: number
  private readonly nullBytes: Buffer
  /** Per byte: 1 if it may change the text/CSV state (backslash, CR, LF, delimiter, quote, escape). */
  private readonly special = new Uint8Array(256)
  // where output stands in the message being transformed
  private emitFrom = 0
  private changed = false
  private failed: CopyRowsError | null = null
  // text / CSV
  private eol = Eol.Unknown
  private afterCR = false
  private lineStart = true
  private header: boolean
  private ended = false
  /** bytes of a possible end-of-copy marker at a line start: 1 = "\", 2 = "\.", 3 = "\.\r" */
  private marker = 0
  private esc = Esc.None
  private escValue = 0
  private inQuote = false
  private lastWasEsc = false
  private fieldNo = 0
  // the tenant field of the current row (check mode)
  private inTenant = false
  private rawPos = 0
  private rawOk = true
  private valPos = 0
  private valOk = true
  private sawQuote = false
  private fQuoted = false
  private fPendingEsc = false
  // binary
  private bin = Bin.Signature
  private need = 19
  private acc = 0
  private field = 0
  /** append mode: the field count the server gets */
  private readonly countBytes = Buffer.alloc(2)

  constructor(
    readonly plan: CopyInPlan,
    readonly tenant: string,
    private readonly value: Buffer,
    private readonly suffix: Buffer,
    private readonly headerSuffix: Buffer,
    headroom: number,
  ) {
    this.out = new Output(headroom)
    this.check = plan.mode === 'check'
    this.csv = plan.format === 'csv'
    this.header = plan.header !== 'none'
    this.delim = plan.delimiter.charCodeAt(0)
    this.quote = this.csv ? plan.quote.charCodeAt(0) : -1
    const esc = this.csv ? plan.escape.charCodeAt(0) : -1
    this.escape = esc === this.quote ? -1 : esc
    this.nullBytes = Buffer.from(plan.null, 'utf8')
    for (const c of [BS, CR, LF]) this.special[c] = 1
    if (this.check) this.special[this.delim] = 1
    if (this.csv) {
      this.special[this.quote] = 1
      if (this.escape >= 0) this.special[this.escape] = 1
    }
    if (plan.format === 'binary') {
      this.bin = Bin.Signature
      this.need = 11
    }
    this.inTenant = this.check && !this.header && plan.index === 0
    this.countBytes.writeInt16BE(plan.fields + 1, 0)
  }

  /**
   * One CopyData payload: null when the server gets it unchanged, the bytes to send instead (with
   * the headroom in front), or the error that aborts the COPY (then nothing of this message goes).
   */
  push(d: Buffer): Buffer | null | CopyRowsError {
    if (this.failed) return this.failed
    this.emitFrom = 0
    this.changed = false
    if (this.ended) {
      this.changed = true
      this.emitFrom = d.length
    } else if (this.plan.format === 'binary') this.binary(d)
    else this.text(d)
    if (this.failed) return this.failed
    if (!this.changed) return null
    if (this.out.buf === NO_BYTES) this.out.start(0)
    this.out.append(d, this.emitFrom, d.length)
    return this.out.take()
  }

  /** At the client's CopyDone: bytes to send before it (null: none), or the error that aborts the COPY. */
  end(): Buffer | null | CopyRowsError {
    if (this.failed) return this.failed
    if (this.ended || this.plan.format === 'binary') return null
    this.emitFrom = 0
    this.changed = false
    if (this.marker !== 0) {
      // "\" or "\." at the start of a line, then the end of the data
      if (!this.csv || this.marker === 3) return this.fail('22P04', 'end-of-copy marker corrupt')
      const held = this.marker === 1 ? [BS] : [BS, DOT]
      this.marker = 0
      this.replay(held)
    }
    if (this.afterCR) {
      this.afterCR = false
      if (this.eol === Eol.CRNL) return this.fail('22P04', this.csv ? 'unquoted carriage return found in data' : 'literal carriage return found in data')
      this.eol = Eol.CR
    }
    if (!this.lineStart) this.rowEnd(NO_BYTES, 0) // a last line without a newline is a row
    if (this.failed) return this.failed
    if (!this.changed) return null
    return this.out.take()
  }

  private fail(sqlstate: string, message: string, hint?: string): CopyRowsError {
    this.failed = new CopyRowsError(sqlstate, message, hint)
    return this.failed
  }

  /** Input [i, j) of the message goes to the server as `bytes` (i === j: inserted before i; empty bytes: dropped). */
  private splice(d: Uint8Array, i: number, j: number, bytes: Uint8Array): void {
    if (!this.changed) {
      this.changed = true
      this.out.start(d.length + Math.max(16 * bytes.length, d.length >> 2))
    }
    this.out.append(d, this.emitFrom, i)
    if (bytes.length > 0) this.out.append(bytes, 0, bytes.length)
    this.emitFrom = j
  }

  /** Insert `bytes` before input position i. */
  private insert(d: Uint8Array, i: number, bytes: Uint8Array): void {
    this.splice(d, i, i, bytes)
  }

  /** Leave input [i, j) out of the output. */
  private drop(d: Uint8Array, i: number, j: number): void {
    this.splice(d, i, j, NO_BYTES)
  }

  // ------------------------------------------------------------ text and CSV

  private text(d: Buffer): void {
    const n = d.length
    if (!this.csv && !this.header && this.plainState() && d.indexOf(BS) < 0 && d.indexOf(CR) < 0) {
      if (this.check) this.plainCheck(d)
      else this.plainRows(d)
      return
    }
    const special = this.special
    for (let i = 0; i < n; i++) {
      if (this.failed) return
      const c = d[i]
      if (special[c] === 0 && !this.lineStart && this.esc === Esc.None && !this.afterCR && this.marker === 0) {
        // the common byte: data of a field
        this.lastWasEsc = false
        if (this.inTenant) this.tenantByte(c)
        continue
      }
      if (this.afterCR) {
        this.afterCR = false
        if (c === LF) {
          this.eol = Eol.CRNL // "\r\n": this \n belongs to the newline that ended the row
          continue
        }
        if (this.eol === Eol.CRNL) {
          this.fail('22P04', this.csv ? 'unquoted carriage return found in data' : 'literal carriage return found in data')
          return
        }
        this.eol = Eol.CR
      }
      if (this.marker !== 0) {
        if (this.markerByte(d, i, c)) continue
        if (this.failed) return
        if (this.ended) {
          this.drop(d, i, n)
          return
        }
      } else if (this.lineStart && c === BS) {
        // "\" first on a line: perhaps the end-of-copy marker "\."; held back until that is known
        this.drop(d, i, i + 1)
        this.marker = 1
        this.lineStart = false
        continue
      }
      this.byte(d, i, c)
    }
  }

  /** Nothing pending between messages: no escape, marker or carriage return, newlines are \n (or none seen yet). */
  private plainState(): boolean {
    return this.esc === Esc.None && this.marker === 0 && !this.afterCR && (this.eol === Eol.Unknown || this.eol === Eol.NL)
  }

  /**
   * Text format, appending, a message without a backslash or carriage return (the usual bulk data)
   * and no header line pending: each newline gets the tenant before it, in one pass.
   */
  private plainRows(d: Buffer): void {
    const n = d.length
    if (n === 0) return
    let rows = 0
    for (let i = d.indexOf(LF); i >= 0; i = d.indexOf(LF, i + 1)) rows++
    this.lineStart = d[n - 1] === LF
    if (rows === 0) return
    const suffix = this.suffix
    const sl = suffix.length
    this.out.start(n + rows * sl)
    const b = this.out.buf
    let p = this.out.pos
    for (let k = 0; k < n; k++) {
      const c = d[k]
      if (c === LF) for (let x = 0; x < sl; x++) b[p++] = suffix[x]
      b[p++] = c
    }
    this.out.pos = p
    this.changed = true
    this.emitFrom = n
    this.rows += rows
    this.eol = Eol.NL
  }

  /**
   * Text format, checking, a message without a backslash or carriage return and no header line
   * pending: fields and rows in one pass (what tenantStart/tenantByte/tenantEnd do, without escapes).
   */
  private plainCheck(d: Buffer): void {
    const n = d.length
    const delim = this.delim
    const index = this.plan.index
    const value = this.value
    const vl = value.length
    const nb = this.nullBytes
    const nl = nb.length
    let fieldNo = this.fieldNo
    let inTenant = this.inTenant
    let valPos = this.valPos
    let valOk = this.valOk
    let rawPos = this.rawPos
    let rawOk = this.rawOk
    let rows = this.rows
    let bad = ''
    for (let k = 0; k < n; k++) {
      const c = d[k]
      if (c === LF || c === delim) {
        if (inTenant) {
          if (rawOk && rawPos === nl) bad = 'is NULL'
          else if (!valOk || valPos !== vl) bad = `is not the session tenant's value '${this.tenant}'`
          if (bad) break
          inTenant = false
        }
        if (c === LF) {
          if (fieldNo < index) {
            this.rows = rows
            this.fail('22P04', `missing data for column "${this.plan.column}" in row ${rows + 1}`)
            return
          }
          rows++
          fieldNo = 0
        } else fieldNo++
        if (fieldNo === index) {
          inTenant = true
          valPos = rawPos = 0
          valOk = rawOk = true
        }
        continue
      }
      if (inTenant) {
        if (valOk) {
          if (valPos < vl && value[valPos] === c) valPos++
          else valOk = false
        }
        if (rawOk) {
          if (rawPos < nl && nb[rawPos] === c) rawPos++
          else rawOk = false
        }
      }
    }
    this.rows = rows
    if (bad) return this.violation(bad)
    this.fieldNo = fieldNo
    this.inTenant = inTenant
    this.valPos = valPos
    this.valOk = valOk
    this.rawPos = rawPos
    this.rawOk = rawOk
    if (n > 0) {
      this.lineStart = d[n - 1] === LF
      if (d.indexOf(LF) >= 0) this.eol = Eol.NL
    }
  }

  /** The next byte after a held "\", "\." or "\.\r" at a line start. Returns true when it was consumed as part of the marker. */
  private markerByte(d: Buffer, i: number, c: number): boolean {
    const eolByte = c === CR || c === LF
    if (this.marker === 1) {
      if (c === DOT) {
        this.drop(d, i, i + 1)
        this.marker = 2
        return true
      }
      this.marker = 0
      this.replay([BS])
      return false
    }
    if (this.marker === 2) {
      if (eolByte) {
        const e = this.eol
        if (e === Eol.CRNL && c === CR) {
          this.drop(d, i, i + 1)
          this.marker = 3
          return true
        }
        if ((e === Eol.NL && c !== LF) || (e === Eol.CR && c !== CR) || (e === Eol.CRNL && c !== CR)) {
          this.fail('22P04', 'end-of-copy marker does not match previous newline style')
          return false
        }
        this.ended = true // the end of the data: the marker and what follows go nowhere
        this.marker = 0
        return false
      }
      if (!this.csv) {
        this.fail('22P04', 'end-of-copy marker corrupt')
        return false
      }
      this.marker = 0
      this.replay([BS, DOT])
      return false
    }
    // marker 3: "\.\r" with \r\n newlines
    if (c === LF) {
      this.ended = true
      this.marker = 0
      return false
    }
    this.fail('22P04', this.csv ? 'unquoted carriage return found in data' : 'end-of-copy marker corrupt')
    return false
  }

  /** Held marker bytes that turned out to be data: to the output, and through the row state (they never end a row). */
  private replay(held: number[]): void {
    const bytes = Uint8Array.from(held)
    if (!this.changed) {
      this.changed = true
      this.out.start(64)
    }
    this.out.append(bytes, 0, bytes.length)
    this.lineStart = true
    for (const b of held) this.byte(bytes, -1, b)
  }

  /** One byte of a row (not a held marker byte). `i` is its input position (-1: a replayed byte, never a newline). */
  private byte(d: Uint8Array, i: number, c: number): void {
    this.lineStart = false
    if (!this.csv) {
      if (this.esc !== Esc.None && this.escByte(c)) return
      if (c === BS) {
        this.esc = Esc.Backslash
        if (this.inTenant) this.tenantRaw(c)
        return
      }
    } else {
      // the server's line reader: the quote toggles, the escape inside quotes protects a following quote
      if (this.inQuote && c === this.escape) this.lastWasEsc = !this.lastWasEsc
      if (c === this.quote && !this.lastWasEsc) this.inQuote = !this.inQuote
      if (c !== this.escape) this.lastWasEsc = false
    }
    if ((c === CR || c === LF) && !this.inQuote) {
      if (c === CR) {
        if (this.eol === Eol.NL) {
          this.fail('22P04', this.csv ? 'unquoted carriage return found in data' : 'literal carriage return found in data')
          return
        }
      } else if (this.eol === Eol.CR || this.eol === Eol.CRNL) {
        this.fail('22P04', this.csv ? 'unquoted newline found in data' : 'literal newline found in data')
        return
      } else this.eol = Eol.NL
      this.rowEnd(d, i)
      if (c === CR && this.eol !== Eol.CR) this.afterCR = true
      return
    }
    if (!this.check || this.header) return
    if (c === this.delim && !this.inQuote) {
      if (this.inTenant) this.tenantEnd()
      this.fieldNo++
      this.inTenant = this.fieldNo === this.plan.index
      if (this.inTenant) this.tenantStart()
      return
    }
    if (this.inTenant) this.tenantByte(c)
  }

  /**
   * Text format: a byte after a backslash (or inside an octal or hex escape). Returns true when the
   * escape consumed it; false when it ended the escape and must be handled as a byte of its own.
   */
  private escByte(c: number): boolean {
    const tenant = this.inTenant && !this.header
    switch (this.esc) {
      case Esc.Backslash: {
        if (tenant) this.tenantRaw(c)
        if (c === DOT) {
          // "\." inside a line: the server ends the data there (PostgreSQL 15) or refuses it
          this.fail('0A000', 'the end-of-copy marker \\. is only accepted alone on a line')
          return true
        }
        this.esc = Esc.None
        if (c >= 48 && c <= 55) {
          this.esc = Esc.Oct1
          this.escValue = c - 48
        } else if (c === 120 /* x */) this.esc = Esc.Hex0
        else if (tenant) {
          const map: Record<number, number> = { 98: 8, 102: 12, 110: 10, 114: 13, 116: 9, 118: 11 }
          this.tenantValue(map[c] ?? c)
        }
        return true
      }
      case Esc.Oct1:
      case Esc.Oct2:
        if (c >= 48 && c <= 55) {
          if (tenant) this.tenantRaw(c)
          this.escValue = (this.escValue << 3) + (c - 48)
          if (this.esc === Esc.Oct1) this.esc = Esc.Oct2
          else {
            this.esc = Esc.None
            if (tenant) this.tenantValue(this.escValue & 0xff)
          }
          return true
        }
        this.esc = Esc.None
        if (tenant) this.tenantValue(this.escValue & 0xff)
        return false
      case Esc.Hex0: {
        const h = hexValue(c)
        if (h >= 0) {
          if (tenant) this.tenantRaw(c)
          this.escValue = h
          this.esc = Esc.Hex1
          return true
        }
        this.esc = Esc.None
        if (tenant) this.tenantValue(120) // "\x" without a hex digit is "x"
        return false
      }
      default: {
        const h = hexValue(c)
        this.esc = Esc.None
        if (h >= 0) {
          if (tenant) {
            this.tenantRaw(c)
            this.tenantValue(((this.escValue << 4) + h) & 0xff)
          }
          return true
        }
        if (tenant) this.tenantValue(this.escValue & 0xff)
        return false
      }
    }
  }

  /** A newline ends the row at input position i (before the newline's bytes). */
  private rowEnd(d: Uint8Array, i: number): void {
    if (this.esc !== Esc.None) {
      // an octal or hex escape ends with the line; a lone backslash there is dropped by the server
      if (this.inTenant && !this.header && this.esc !== Esc.Backslash) this.tenantValue(this.esc === Esc.Hex0 ? 120 : this.escValue & 0xff)
      this.esc = Esc.None
    }
    if (this.header) {
      this.header = false
      if (!this.check && this.plan.header === 'match') this.insertAt(d, i, this.headerSuffix)
    } else {
      if (this.check) {
        if (this.inTenant) this.tenantEnd()
        else if (this.fieldNo < this.plan.index) this.fail('22P04', `missing data for column "${this.plan.column}" in row ${this.rows + 1}`)
      } else this.insertAt(d, i, this.suffix)
      this.rows++
    }
    this.lineStart = true
    this.inQuote = false
    this.lastWasEsc = false
    this.fieldNo = 0
    this.inTenant = this.check && this.plan.index === 0
    if (this.inTenant) this.tenantStart()
  }

  /** Insert at input position i of the message (i < 0 or an empty input at end(): at the end of the output). */
  private insertAt(d: Uint8Array, i: number, bytes: Uint8Array): void {
    if (d.length === 0) {
      if (!this.changed) {
        this.changed = true
        this.out.start(bytes.length)
      }
      this.out.append(bytes, 0, bytes.length)
      return
    }
    this.insert(d, i, bytes)
  }

  // the tenant field of a row: compared with the tenant as it streams

  private tenantStart(): void {
    this.rawPos = 0
    this.rawOk = true
    this.valPos = 0
    this.valOk = true
    this.sawQuote = false
    this.fQuoted = false
    this.fPendingEsc = false
  }

  /** A byte of the field as sent (for the NULL string). */
  private tenantRaw(c: number): void {
    if (this.rawOk) {
      if (this.rawPos < this.nullBytes.length && this.nullBytes[this.rawPos] === c) this.rawPos++
      else this.rawOk = false
    }
  }

  /** A byte of the field's value. */
  private tenantValue(c: number): void {
    if (this.valOk) {
      if (this.valPos < this.value.length && this.value[this.valPos] === c) this.valPos++
      else this.valOk = false
    }
  }

  /** A data byte of the tenant field (not a delimiter or newline ending it). */
  private tenantByte(c: number): void {
    this.tenantRaw(c)
    if (!this.csv) return this.tenantValue(c)
    // CSV: CopyReadAttributesCSV's quote and escape handling
    if (this.fPendingEsc) {
      this.fPendingEsc = false
      const esc = this.escape < 0 ? this.quote : this.escape
      if (c === esc || c === this.quote) return this.tenantValue(c)
      if (this.escape < 0)
        this.fQuoted = false // it was the closing quote
      else this.tenantValue(esc)
    }
    if (!this.fQuoted) {
      if (c === this.quote) {
        this.sawQuote = true
        this.fQuoted = true
      } else this.tenantValue(c)
      return
    }
    if (c === (this.escape < 0 ? this.quote : this.escape)) this.fPendingEsc = true
    else if (c === this.quote) this.fQuoted = false
    else this.tenantValue(c)
  }

  /** The tenant field ended: the row is the tenant's only if the value is exactly the tenant's. */
  private tenantEnd(): void {
    this.inTenant = false
    if (this.fPendingEsc) {
      this.fPendingEsc = false
      if (this.escape >= 0) this.tenantValue(this.escape)
    }
    const isNull = (!this.csv || !this.sawQuote) && this.rawOk && this.rawPos === this.nullBytes.length
    if (isNull) return this.violation('is NULL')
    if (!this.valOk || this.valPos !== this.value.length) this.violation(`is not the session tenant's value '${this.tenant}'`)
  }

  private violation(what: string): void {
    this.fail(
      '42501',
      `tenant violation: COPY into "${this.plan.table}", row ${this.rows + 1}: column "${this.plan.column}" ${what}; nothing was written`,
      `every row's ${this.plan.column} must be exactly '${this.tenant}' (or leave the column out: pgtenant fills it in)`,
    )
  }

  // ------------------------------------------------------------ binary

  private binary(d: Buffer): void {
    const n = d.length
    let i = 0
    while (i < n && !this.failed) {
      switch (this.bin) {
        case Bin.Signature:
        case Bin.Flags:
        case Bin.Ext: {
          const k = Math.min(this.need, n - i)
          i += k
          this.need -= k
          if (this.need > 0) break
          if (this.bin === Bin.Signature) this.binState(Bin.Flags, 4)
          else if (this.bin === Bin.Flags) this.binState(Bin.ExtLength, 4)
          else this.binState(Bin.Count, 2)
          break
        }
        case Bin.ExtLength:
          this.acc = (this.acc << 8) | d[i++]
          if (--this.need > 0) break
          if (this.acc < 0) this.fail('22P04', 'invalid COPY file header (missing length)')
          else if (this.acc === 0) this.binState(Bin.Count, 2)
          else this.binState(Bin.Ext, this.acc)
          break
        case Bin.Count:
          if (this.need === 2) {
            const j = this.wholeTuples(d, i)
            if (j !== i) {
              i = j
              break
            }
          }
          if (this.need === 2 && i + 2 <= n) {
            this.acc = d.readUInt16BE(i)
            i += 2
            this.tupleStart(d, i, i - 2)
            break
          }
          // the count is rewritten in append mode: its bytes are held until both are in
          if (!this.check) this.drop(d, i, i + 1)
          this.acc = (this.acc << 8) | d[i++]
          if (--this.need > 0) break
          this.tupleStart(d, i, i)
          break
        case Bin.Length:
          if (this.need === 4 && i + 4 <= n) {
            this.acc = d.readInt32BE(i)
            i += 4
            this.fieldStart(d, i)
            break
          }
          this.acc = (this.acc << 8) | d[i++]
          if (--this.need > 0) break
          this.fieldStart(d, i)
          break
        case Bin.Data: {
          const k = Math.min(this.need, n - i)
          if (this.check && this.field === this.plan.index) {
            const at = this.value.length - this.need
            if (d.compare(this.value, at, at + k, i, i + k) !== 0) this.binViolation(`is not the session tenant's value '${this.tenant}'`)
          }
          i += k
          this.need -= k
          if (this.need === 0) this.fieldDone(d, i)
          break
        }
        case Bin.Trailer:
          // the server refuses data after the trailer itself
          return
      }
    }
  }

  /**
   * The tuples that lie whole in this message from i on, in one pass (the usual case): count rewritten
   * and tenant appended, or the tenant field compared. Returns where the first tuple that is not whole,
   * not as expected, or refused starts: the state machine takes it from there.
   */
  private wholeTuples(d: Buffer, i: number): number {
    const n = d.length
    const fields = this.plan.fields
    const index = this.check ? this.plan.index : -1
    const value = this.value
    while (i + 2 <= n) {
      if (d.readInt16BE(i) !== fields) return i
      let j = i + 2
      for (let f = 0; f < fields; f++) {
        if (j + 4 > n) return i
        const len = d.readInt32BE(j)
        j += 4
        if (len < -1 || j + len > n) return i
        if (f === index && (len !== value.length || d.compare(value, 0, len, j, j + len) !== 0)) return i
        if (len > 0) j += len
      }
      if (!this.check) {
        this.splice(d, i, i + 2, this.countBytes)
        this.splice(d, j, j, this.suffix)
      }
      this.rows++
      i = j
    }
    return i
  }

  private binState(s: Bin, need: number): void {
    this.bin = s
    this.need = need
    this.acc = 0
  }

  /** A tuple's field count ended at input position i; `from`: where its bytes start in this message (i when they were dropped as they came). */
  private tupleStart(d: Buffer, i: number, from: number): void {
    const count = (this.acc << 16) >> 16
    if (count === -1) {
      if (!this.check) this.splice(d, from, i, TRAILER)
      this.binState(Bin.Trailer, 0)
      return
    }
    if (count !== this.plan.fields) {
      this.fail('22P04', `row field count is ${count}, expected ${this.plan.fields}`)
      return
    }
    if (!this.check) this.splice(d, from, i, this.countBytes)
    this.field = 0
    this.binState(Bin.Length, 4)
  }

  private fieldStart(d: Buffer, i: number): void {
    const len = this.acc | 0
    if (len < -1) {
      this.fail('22P04', 'invalid field size')
      return
    }
    if (this.check && this.field === this.plan.index) {
      if (len === -1) return this.binViolation('is NULL')
      if (len !== this.value.length) return this.binViolation(`is not the session tenant's value '${this.tenant}'`)
    }
    if (len <= 0) {
      this.fieldDone(d, i)
      return
    }
    this.binState(Bin.Data, len)
  }

  private fieldDone(d: Buffer, i: number): void {
    this.field++
    if (this.field < this.plan.fields) {
      this.binState(Bin.Length, 4)
      return
    }
    this.rows++
    if (!this.check) this.insert(d, i, this.suffix)
    this.binState(Bin.Count, 2)
  }

  private binViolation(what: string): void {
    this.fail(
      '42501',
      `tenant violation: COPY into "${this.plan.table}", row ${this.rows + 1}: column "${this.plan.column}" ${what}; nothing was written`,
      `every row's ${this.plan.column} must be exactly '${this.tenant}' (or leave the column out: pgtenant fills it in)`,
    )
  }
}
