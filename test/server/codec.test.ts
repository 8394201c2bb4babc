// Codec unit tests: framing and scanning must give the same result however the byte
// stream is split into chunks.
import t from 'tap'
import { serialize } from '../../server/protocol/pg-protocol.js'
import { FrameReader } from '../../server/protocol/frame-reader.js'
import * as fe from '../../server/protocol/frontend.js'
import * as be from '../../server/protocol/backend.js'
import { BackendScanner } from '../../server/protocol/backend-scanner.js'
import { ParseMemo } from '../../server/protocol/parse-memo.js'

const frontendStream = Buffer.concat([
  serialize.query("SELECT 1; SELECT 'é—'"),
  serialize.parse({ name: 's1', text: 'SELECT $1::int', types: [23] }),
  serialize.bind({ statement: 's1', portal: 'p', values: ['42'] }),
  serialize.describe({ type: 'P', name: 'p' }),
  serialize.execute({ portal: 'p' }),
  serialize.close({ type: 'S', name: 's1' }),
  serialize.sync(),
  serialize.copyData(Buffer.alloc(3000, 7)),
  serialize.end(),
])

function frameAll(chunks: Buffer[]): { type: string; raw: string }[] {
  const reader = new FrameReader(1 << 20)
  const out: { type: string; raw: string }[] = []
  for (const c of chunks) {
    reader.push(c)
    for (let f = reader.next(); f; f = reader.next()) out.push({ type: String.fromCharCode(f.type), raw: f.raw.toString('hex') })
  }
  return out
}

t.test('frontend frames are identical for every split offset', async (t) => {
  const whole = frameAll([frontendStream])
  t.same(
    whole.map((f) => f.type),
    ['Q', 'P', 'B', 'D', 'E', 'C', 'S', 'd', 'X'],
  )
  let mismatches = 0
  for (let i = 1; i < frontendStream.length; i++) {
    const split = frameAll([frontendStream.subarray(0, i), frontendStream.subarray(i)])
    if (JSON.stringify(split) !== JSON.stringify(whole)) mismatches++
  }
  t.equal(mismatches, 0, 'two-chunk splits at every offset')
  const bytewise = frameAll([...frontendStream].map((b) => Buffer.from([b])))
  t.same(bytewise, whole, 'one byte at a time')
})

t.test('frontend decoders read what pg-protocol encoded', async (t) => {
  const reader = new FrameReader(1 << 20)
  reader.push(frontendStream)
  t.equal(fe.decodeQuery(reader.next()!), "SELECT 1; SELECT 'é—'")
  const parse = fe.decodeParse(reader.next()!)
  t.equal(parse.name, 's1')
  t.equal(parse.sql, 'SELECT $1::int')
  t.equal(parse.paramTypes.toString('hex'), '000100000017')
  const bindFrame = reader.next()!
  const head = fe.decodeBindHead(bindFrame)
  t.same([head.portal, head.statement], ['p', 's1'])
  const renamed = fe.encodeBind(bindFrame, head, 'pgtenant_7')
  const back = new FrameReader(1 << 20)
  back.push(renamed)
  const rf = back.next()!
  const rhead = fe.decodeBindHead(rf)
  t.same([rhead.portal, rhead.statement], ['p', 'pgtenant_7'])
  t.same(rf.raw.subarray(rhead.restStart), bindFrame.raw.subarray(head.restStart), 'parameters pass unchanged')
  t.same(fe.decodeTarget(reader.next()!), { kind: 'P', name: 'p' })
  const renamedDescribe = fe.encodeTarget('D', 'S', 'pgtenant_3')
  t.same(renamedDescribe, serialize.describe({ type: 'S', name: 'pgtenant_3' }), 'a renamed Describe is byte-identical to what a client would send')
  const text = "SELECT 'é—😀' AS x WHERE tenant_id = 'ü'"
  t.same(fe.encodeQuery(text), serialize.query(text), 'a rewritten Query (multi-byte text) is byte-identical to what a client would send')
  t.same(fe.encodeParse('pgtenant_1', text, parse.paramTypes), serialize.parse({ name: 'pgtenant_1', text, types: [23] }), 'and a rewritten Parse')
})

t.test('startup packets', async (t) => {
  const reader = new FrameReader(1 << 20)
  reader.push(Buffer.concat([serialize.requestSsl(), serialize.startup({ user: 'u', database: 'd', options: '-c app.tenant=x' })]))
  t.same(fe.decodeStartup(reader.nextUntyped()!), { kind: 'ssl' })
  t.same(fe.decodeStartup(reader.nextUntyped()!), {
    kind: 'startup',
    params: { user: 'u', database: 'd', options: '-c app.tenant=x', client_encoding: 'UTF8' },
  })
  reader.push(serialize.cancel(1234, -99))
  t.same(fe.decodeStartup(reader.nextUntyped()!), { kind: 'cancel', pid: 1234, secret: -99 })
  const v2 = Buffer.alloc(8)
  v2.writeInt32BE(8, 0)
  v2.writeInt32BE(0x00020000, 4)
  reader.push(v2)
  t.same(fe.decodeStartup(reader.nextUntyped()!), { kind: 'unsupported', version: 0x00020000 })
})

t.test('bad lengths are protocol violations, not crashes', async (t) => {
  const huge = Buffer.from([0x51, 0x40, 0, 0, 0]) // claims 1 GiB
  const r1 = new FrameReader(256 * 1024 * 1024)
  r1.push(huge)
  t.throws(() => r1.next(), { name: 'ProtocolViolation' })
  const negative = Buffer.from([0x51, 0xff, 0xff, 0xff, 0xff])
  const r2 = new FrameReader(1 << 20)
  r2.push(negative)
  t.throws(() => r2.next(), { name: 'ProtocolViolation' })
  const short = Buffer.from([0x51, 0, 0, 0, 2])
  const r3 = new FrameReader(1 << 20)
  r3.push(short)
  t.throws(() => r3.next(), { name: 'ProtocolViolation' })
  const r4 = new FrameReader(1 << 20)
  r4.push(Buffer.from([0, 0, 0, 3]))
  t.throws(() => r4.nextUntyped(), { name: 'ProtocolViolation' })
  const unterminated = Buffer.from([0x51, 0, 0, 0, 6, 0x41, 0x42])
  const r5 = new FrameReader(1 << 20)
  r5.push(unterminated)
  t.throws(() => fe.decodeQuery(r5.next()!), { name: 'ProtocolViolation' })
})

// A backend stream: rows, a big row spanning chunks, inspected messages in between.
const backendStream = Buffer.concat([
  be.rowDescription(['a', 'b']),
  be.dataRow(['1', null]),
  be.dataRow(['x'.repeat(5000), 'y']),
  be.parameterStatus('TimeZone', 'UTC'),
  be.commandComplete('SELECT 2'),
  be.errorResponse({ severity: 'ERROR', code: '42P01', message: 'no such table' }),
  be.readyForQuery('I'),
  be.parseComplete(),
  be.readyForQuery('T'),
])

interface Seen {
  events: string[]
  out: Buffer[]
}

function scanAll(chunks: Buffer[], drop: Set<string>, injectAfter: string | null): Seen {
  const seen: Seen = { events: [], out: [] }
  const scanner: BackendScanner = new BackendScanner({
    onPassThrough: (type) => {
      const c = String.fromCharCode(type)
      seen.events.push(c)
      if (c === injectAfter) scanner.inject(Buffer.from('<inj>'))
      return !drop.has(c)
    },
    onInspected: (type, raw) => {
      const c = String.fromCharCode(type)
      seen.events.push(`${c}:${raw.length}`)
      if (c === injectAfter) scanner.inject(Buffer.from('<inj>'))
      return !drop.has(c)
    },
    onReadyForQuery: (status) => {
      seen.events.push(`Z:${String.fromCharCode(status)}`)
      if (injectAfter === 'Z') scanner.inject(Buffer.from('<inj>'))
      return !drop.has('Z')
    },
    forward: (b) => seen.out.push(Buffer.from(b)),
  })
  for (const c of chunks) scanner.scan(c)
  return seen
}

t.test('backend scanner: same events and bytes for every split offset, with drops and injections', async (t) => {
  const cases: [Set<string>, string | null][] = [
    [new Set(), null],
    [new Set(['S', 'E']), null],
    [new Set(['D']), '1'],
    [new Set(['T']), 'Z'],
    [new Set(), 'D'],
    [new Set(['Z']), 'C'],
  ]
  for (const [drop, inject] of cases) {
    const whole = scanAll([backendStream], drop, inject)
    const wholeOut = Buffer.concat(whole.out).toString('latin1')
    let bad = 0
    for (let i = 1; i < backendStream.length; i++) {
      const s = scanAll([backendStream.subarray(0, i), backendStream.subarray(i)], drop, inject)
      if (s.events.join() !== whole.events.join() || Buffer.concat(s.out).toString('latin1') !== wholeOut) bad++
    }
    const three = scanAll([backendStream.subarray(0, 7), backendStream.subarray(7, 3000), backendStream.subarray(3000)], drop, inject)
    t.equal(bad, 0, `drop=${[...drop]} inject=${inject}: every two-chunk split`)
    t.equal(Buffer.concat(three.out).toString('latin1'), wholeOut, 'three chunks')
  }
  const all = scanAll([backendStream], new Set(), null)
  t.same(Buffer.concat(all.out), backendStream, 'forwarding everything reproduces the stream byte for byte')
  const noErr = scanAll([backendStream], new Set(['E']), null)
  t.equal(Buffer.concat(noErr.out).length, backendStream.length - be.errorResponse({ severity: 'ERROR', code: '42P01', message: 'no such table' }).length)
})

t.test('backend scanner: pass-through rows are forwarded without copying', async (t) => {
  const rows = Buffer.concat(Array.from({ length: 100 }, (_, i) => be.dataRow([String(i)])))
  const out: Buffer[] = []
  const scanner = new BackendScanner({ onPassThrough: () => true, onInspected: () => true, onReadyForQuery: () => true, forward: (b) => out.push(b) })
  scanner.scan(rows)
  t.equal(out.length, 1, 'one slice for a whole chunk of rows')
  t.equal(out[0].buffer, rows.buffer, 'the slice shares the chunk memory')
  scanner.scan(Buffer.concat([rows, be.readyForQuery('I')]).subarray(0, rows.length + 6))
  t.equal(out.length, 2, 'rows and ReadyForQuery kept: still one piece for the chunk')
})

t.test('transaction-ending command tags are recognised from their bytes', async (t) => {
  t.equal(be.transactionEndTag(be.commandComplete('COMMIT')), 'COMMIT')
  t.equal(be.transactionEndTag(be.commandComplete('ROLLBACK')), 'ROLLBACK')
  for (const other of ['COMMIT PREPARED', 'ROLLBACK PREPARED', 'COMMITS', 'CREATE TABLE', 'R', 'SELECT 1', ''])
    t.equal(be.transactionEndTag(be.commandComplete(other)), null, JSON.stringify(other))
})

t.test('error fields decode', async (t) => {
  const raw = be.errorResponse({ severity: 'ERROR', code: '42501', message: 'nope', hint: 'set a tenant' })
  t.same(be.decodeFields(raw), { S: 'ERROR', V: 'ERROR', C: '42501', M: 'nope', H: 'set a tenant' })
})

t.test('Parse memo: a repeat decodes and encodes to the same as without it, and only a byte-equal repeat hits', async (t) => {
  const memo = new ParseMemo()
  const frame = (name: string, text: string, types: number[]): { type: number; raw: Buffer; bodyStart: number } => {
    const raw = serialize.parse({ name, text, types })
    return { type: raw[0], raw, bodyStart: 5 }
  }
  const a = frame('', 'SELECT $1::int + 1', [23])
  const sameLength = frame('', 'SELECT $1::int + 2', [23]) // a different statement of the same length
  const otherTypes = frame('', 'SELECT $1::int + 1', [20])
  const first = memo.decode(a)
  t.same(first, fe.decodeParse(a), 'decodes like decodeParse')
  a.raw.fill(0) // the frame is a view of a read buffer that the next read overwrites
  t.equal(memo.decode(frame('', 'SELECT $1::int + 1', [23])), first, 'a byte-equal repeat is the remembered message (the memo kept its own copy of the bytes)')
  t.equal(memo.decode(sameLength).sql, 'SELECT $1::int + 2', 'the same length with other bytes is decoded anew')
  t.same(memo.decode(otherTypes).paramTypes, fe.decodeParse(otherTypes).paramTypes, 'other parameter types are not mixed up')
  const types23 = fe.decodeParse(frame('', 'x', [23])).paramTypes
  const types20 = fe.decodeParse(frame('', 'x', [20])).paramTypes
  const enc = memo.encodeUnnamed('SELECT 1', types23)
  t.same(enc, fe.encodeParse('', 'SELECT 1', types23), 'encodes like encodeParse')
  t.equal(memo.encodeUnnamed('SELECT 1', types23), enc, 'a repeat is the remembered buffer')
  t.same(memo.encodeUnnamed('SELECT 1', types20), fe.encodeParse('', 'SELECT 1', types20), 'other parameter types are encoded anew')
})
