// PostgreSQL's binary COPY format, for tests that send COPY data: the signature and header, each
// tuple as a field count and length-prefixed fields (-1 for NULL), and the -1 trailer.

/** A binary COPY stream of these tuples (without the trailer when `trailer` is false). */
export function binaryCopy(tuples: (Buffer | null)[][], trailer = true): Buffer {
  const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]
  for (const tuple of tuples) {
    const n = Buffer.alloc(2)
    n.writeInt16BE(tuple.length)
    parts.push(n)
    for (const f of tuple) {
      const len = Buffer.alloc(4)
      len.writeInt32BE(f === null ? -1 : f.length)
      parts.push(len)
      if (f) parts.push(f)
    }
  }
  if (trailer) parts.push(Buffer.from([0xff, 0xff]))
  return Buffer.concat(parts)
}

/** A binary int4 field. */
export function int4(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeInt32BE(v)
  return b
}

/** A binary int8 field. */
export function int8(v: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigInt64BE(BigInt(v))
  return b
}
