// Encoders for the backend (server → client) messages the proxy writes itself,
// and a decoder for ErrorResponse/NoticeResponse fields.
import { PayloadReader } from './frontend.js'

function message(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length)
  out[0] = type.charCodeAt(0)
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}

function cstr(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf8')
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4)
  b.writeInt32BE(n, 0)
  return b
}

export const authenticationOk = (): Buffer => message('R', int32(0))
export const authenticationCleartext = (): Buffer => message('R', int32(3))
export const authenticationMd5 = (salt: Buffer): Buffer => message('R', Buffer.concat([int32(5), salt]))
export const authenticationSasl = (mechanisms: string[]): Buffer => message('R', Buffer.concat([int32(10), ...mechanisms.map(cstr), Buffer.from([0])]))
export const authenticationSaslContinue = (data: string): Buffer => message('R', Buffer.concat([int32(11), Buffer.from(data, 'utf8')]))
export const authenticationSaslFinal = (data: string): Buffer => message('R', Buffer.concat([int32(12), Buffer.from(data, 'utf8')]))

export const parameterStatus = (name: string, value: string): Buffer => message('S', Buffer.concat([cstr(name), cstr(value)]))
export const backendKeyData = (pid: number, secret: number): Buffer => message('K', Buffer.concat([int32(pid), int32(secret)]))
// The messages the proxy answers with on every transaction are made once: they are only
// ever written to sockets, never changed.
const READY: Record<TxStatus, Buffer> = { I: message('Z', Buffer.from('I')), T: message('Z', Buffer.from('T')), E: message('Z', Buffer.from('E')) }
const COMMON_TAGS = new Map(['BEGIN', 'COMMIT', 'ROLLBACK', 'SET', 'RESET'].map((tag) => [tag, message('C', cstr(tag))]))
const PARSE_COMPLETE = message('1', Buffer.alloc(0))
const BIND_COMPLETE = message('2', Buffer.alloc(0))
const CLOSE_COMPLETE = message('3', Buffer.alloc(0))
const NO_DATA = message('n', Buffer.alloc(0))

export const readyForQuery = (status: TxStatus): Buffer => READY[status] ?? message('Z', Buffer.from(status, 'latin1'))
export const commandComplete = (tag: string): Buffer => COMMON_TAGS.get(tag) ?? message('C', cstr(tag))
export const parseComplete = (): Buffer => PARSE_COMPLETE
export const bindComplete = (): Buffer => BIND_COMPLETE
export const closeComplete = (): Buffer => CLOSE_COMPLETE
export const emptyQueryResponse = (): Buffer => message('I', Buffer.alloc(0))
export const noData = (): Buffer => NO_DATA

export type TxStatus = 'I' | 'T' | 'E'

/** RowDescription for text columns (type OID 25). */
export function rowDescription(columns: string[]): Buffer {
  const parts: Buffer[] = [Buffer.from([columns.length >> 8, columns.length & 0xff])]
  for (const name of columns) {
    const meta = Buffer.alloc(18)
    meta.writeInt32BE(0, 0) // table oid
    meta.writeInt16BE(0, 4) // column number
    meta.writeInt32BE(25, 6) // type oid: text
    meta.writeInt16BE(-1, 10) // type size
    meta.writeInt32BE(-1, 12) // type modifier
    meta.writeInt16BE(0, 16) // format: text
    parts.push(cstr(name), meta)
  }
  return message('T', Buffer.concat(parts))
}

export function dataRow(values: (string | null)[]): Buffer {
  const parts: Buffer[] = [Buffer.from([values.length >> 8, values.length & 0xff])]
  for (const v of values) {
    if (v === null) parts.push(int32(-1))
    else {
      const b = Buffer.from(v, 'utf8')
      parts.push(int32(b.length), b)
    }
  }
  return message('D', Buffer.concat(parts))
}

export interface ErrorFields {
  severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'INFO' | 'LOG'
  code: string
  message: string
  detail?: string
  hint?: string
  /** The server routine that raised it (field R); drivers key some retries on it (postgres.js: RevalidateCachedQuery). */
  routine?: string
}

function fieldsBody(f: ErrorFields): Buffer {
  const parts = [Buffer.from('S'), cstr(f.severity), Buffer.from('V'), cstr(f.severity), Buffer.from('C'), cstr(f.code), Buffer.from('M'), cstr(f.message)]
  if (f.detail) parts.push(Buffer.from('D'), cstr(f.detail))
  if (f.hint) parts.push(Buffer.from('H'), cstr(f.hint))
  if (f.routine) parts.push(Buffer.from('R'), cstr(f.routine))
  parts.push(Buffer.from([0]))
  return Buffer.concat(parts)
}

export const errorResponse = (f: ErrorFields): Buffer => message('E', fieldsBody(f))
export const noticeResponse = (f: ErrorFields): Buffer => message('N', fieldsBody(f))

/** Decodes an ErrorResponse/NoticeResponse payload into its single-letter fields. */
export function decodeFields(raw: Buffer, bodyStart = 5): Record<string, string> {
  const r = new PayloadReader(raw, bodyStart)
  const out: Record<string, string> = {}
  while (!r.done) {
    const code = r.bytes(1)[0]
    if (code === 0) break
    out[String.fromCharCode(code)] = r.cstring()
  }
  return out
}

export function decodeParameterStatus(raw: Buffer): { name: string; value: string } {
  const r = new PayloadReader(raw, 5)
  return { name: r.cstring(), value: r.cstring() }
}

const COMMIT_TAG = Buffer.from('COMMIT\0')
const ROLLBACK_TAG = Buffer.from('ROLLBACK\0')

/** Whether a CommandComplete's tag is exactly `tag` (compared as bytes: no string is made). */
function tagIs(raw: Buffer, tag: Buffer): boolean {
  if (raw.length !== tag.length + 5) return false
  for (let i = 0; i < tag.length; i++) if (raw[5 + i] !== tag[i]) return false
  return true
}

/** 'COMMIT' or 'ROLLBACK' when a CommandComplete reports one of those, else null. */
export function transactionEndTag(raw: Buffer): 'COMMIT' | 'ROLLBACK' | null {
  const first = raw[5]
  if (first === 0x43 /* C */) return tagIs(raw, COMMIT_TAG) ? 'COMMIT' : null
  if (first === 0x52 /* R */) return tagIs(raw, ROLLBACK_TAG) ? 'ROLLBACK' : null
  return null
}
