// Drivers that send a Parse for every execution (pgbench -M extended, node-postgres without
// a statement name) send the same few statements again and again. A session remembers the
// last few it decoded, by their bytes, and the unnamed Parse messages it encoded, by their
// rewritten text, so a repeat costs a byte comparison instead of decoding and encoding SQL.
// The decoded text being the same string each time also keeps its hash for the rewrite cache.
import { decodeParse, encodeParse, type ParseMessage } from './frontend.js'
import type { Frame } from './frame-reader.js'

/** Entries kept per table; a session that cycles through more starts again from empty. */
const MAX_ENTRIES = 16
/** Longer messages are decoded each time: comparing them saves little and keeping them costs memory. */
const MAX_MESSAGE_BYTES = 8192

export class ParseMemo {
  /** Decoded Parse messages by message length (a cheap first key), checked byte for byte. */
  private readonly decoded = new Map<number, { raw: Buffer; msg: ParseMessage }>()
  /** Encoded unnamed Parse messages by statement text. */
  private readonly encoded = new Map<string, { paramTypes: Buffer; bytes: Buffer }>()

  decode(frame: Frame): ParseMessage {
    const raw = frame.raw
    if (raw.length > MAX_MESSAGE_BYTES) {
      const long = decodeParse(frame)
      return { ...long, paramTypes: Buffer.from(long.paramTypes) } // kept with the statement: not a view of a read buffer
    }
    const hit = this.decoded.get(raw.length)
    if (hit !== undefined && hit.raw.equals(raw)) return hit.msg
    const own = Buffer.from(raw) // the frame is a view of a read chunk: keep a copy, not the chunk
    const msg = decodeParse({ type: frame.type, raw: own, bodyStart: frame.bodyStart })
    if (this.decoded.size >= MAX_ENTRIES && hit === undefined) this.decoded.clear()
    this.decoded.set(raw.length, { raw: own, msg })
    return msg
  }

  /** A Parse of `sql` as the unnamed statement. */
  encodeUnnamed(sql: string, paramTypes: Buffer): Buffer {
    const hit = this.encoded.get(sql)
    if (hit !== undefined && hit.paramTypes.equals(paramTypes)) return hit.bytes
    const bytes = encodeParse('', sql, paramTypes)
    if (bytes.length > MAX_MESSAGE_BYTES) return bytes
    if (this.encoded.size >= MAX_ENTRIES && hit === undefined) this.encoded.clear()
    this.encoded.set(sql, { paramTypes: Buffer.from(paramTypes), bytes })
    return bytes
  }
}
