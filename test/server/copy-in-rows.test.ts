// The COPY FROM STDIN row transformer on its own (server/session/copy-in-rows.ts): what the server gets
// for the client's stream, in text, CSV and binary, appending the tenant or checking it; and the same
// output (or the same error) wherever the stream is cut into CopyData messages: at every byte, cut in
// two at every point, and cut at random points.
import t, { type Test } from 'tap'
import type { CopyInPlan } from '../../parser/types.js'
import { CopyRowsError, copyInRows } from '../../server/session/copy-in-rows.js'
import { mulberry32 } from '../helpers/rng.js'
import { binaryCopy, int4 } from '../helpers/copy-binary.js'

function plan(over: Partial<CopyInPlan> = {}): CopyInPlan {
  const format = over.format ?? 'text'
  const csv = format === 'csv'
  return {
    table: 'public.t',
    column: 'tenant_id',
    mode: 'append',
    index: 0,
    fields: 2,
    format,
    delimiter: format === 'binary' ? '' : csv ? ',' : '\t',
    null: csv ? '' : format === 'binary' ? '' : '\\N',
    quote: csv ? '"' : '',
    escape: csv ? '"' : '',
    header: 'none',
    columnType: 'text',
    ...over,
  }
}

interface Outcome {
  /** what reached the server */
  out: Buffer
  error: string | null
  sqlstate: string | null
}

function run(p: CopyInPlan, tenant: string, chunks: Buffer[]): Outcome {
  const rows = copyInRows(p, tenant)
  if (rows instanceof CopyRowsError) return { out: Buffer.alloc(0), error: rows.message, sqlstate: rows.sqlstate }
  const parts: Buffer[] = []
  for (const c of chunks) {
    const o = rows.push(c)
    if (o instanceof CopyRowsError) return { out: Buffer.concat(parts), error: o.message, sqlstate: o.sqlstate }
    parts.push(o ?? c)
  }
  const e = rows.end()
  if (e instanceof CopyRowsError) return { out: Buffer.concat(parts), error: e.message, sqlstate: e.sqlstate }
  if (e) parts.push(e)
  return { out: Buffer.concat(parts), error: null, sqlstate: null }
}

/** Cuts of `input`: whole, every byte apart, in two at every point, and 20 random cuts into 2–9 pieces. */
function cuts(input: Buffer, seed = 1): Buffer[][] {
  const all: Buffer[][] = [[input], [...input].map((b) => Buffer.from([b]))]
  for (let k = 0; k <= input.length; k++) all.push([input.subarray(0, k), input.subarray(k)])
  const rng = mulberry32(seed)
  for (let r = 0; r < 20; r++) {
    const points = Array.from({ length: 1 + Math.floor(rng() * 8) }, () => Math.floor(rng() * (input.length + 1))).sort((a, b) => a - b)
    let prev = 0
    const pieces: Buffer[] = []
    for (const p of points) {
      pieces.push(input.subarray(prev, p))
      prev = p
    }
    pieces.push(input.subarray(prev))
    all.push(pieces)
  }
  return all
}

/** The outcome for the whole stream, checked to be the same at every cut. */
function same(t: Test, p: CopyInPlan, tenant: string, input: Buffer | string): Outcome {
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : input
  const whole = run(p, tenant, [buf])
  let differ = 0
  for (const c of cuts(buf)) {
    const o = run(p, tenant, c)
    if (o.error !== whole.error || (whole.error === null && !o.out.equals(whole.out))) {
      if (differ++ === 0)
        t.fail(
          `cut at ${c.map((x) => x.length).join('+')}: ${JSON.stringify(o.out.toString('latin1'))} ${o.error} vs ${JSON.stringify(whole.out.toString('latin1'))} ${whole.error}`,
        )
    }
    // a row the check refuses never reaches the server whole: what was sent is a prefix of the input
    if (o.error !== null && p.mode === 'check' && !buf.subarray(0, o.out.length).equals(o.out)) t.fail('sent bytes that are not the input')
  }
  t.equal(differ, 0, 'the same outcome at every cut')
  return whole
}

const ok = (t: Test, p: CopyInPlan, tenant: string, input: string, expected: string): void => {
  const o = same(t, p, tenant, input)
  t.equal(o.error, null, 'no error')
  t.equal(o.out.toString('utf8'), expected)
}
const refused = (t: Test, p: CopyInPlan, tenant: string, input: string | Buffer, pattern: RegExp, sqlstate = '42501'): void => {
  const o = same(t, p, tenant, input)
  t.match(o.error ?? '', pattern)
  t.equal(o.sqlstate, sqlstate)
}

t.test('text, append: the tenant before each newline, whatever the newline style', async (t) => {
  ok(t, plan(), 'acme', '1\tx\n2\ty\n', '1\tx\tacme\n2\ty\tacme\n')
  ok(t, plan(), 'acme', '1\tx\r\n2\ty\r\n', '1\tx\tacme\r\n2\ty\tacme\r\n')
  ok(t, plan(), 'acme', '1\tx\r2\ty\r', '1\tx\tacme\r2\ty\tacme\r')
  ok(t, plan(), 'acme', '1\tx\n2\ty', '1\tx\tacme\n2\ty\tacme')
  ok(t, plan(), 'acme', '', '')
  ok(t, plan(), 'acme', '\n\n', '\tacme\n\tacme\n')
  ok(t, plan({ fields: 1 }), 'a\\b\tc\nd', '1\n', '1\ta\\\\b\\\tc\\nd\n')
})

t.test('text, append: backslash escapes are data, the end marker ends the data', async (t) => {
  ok(t, plan(), 'acme', 'a\\\nb\tc\n', 'a\\\nb\tc\tacme\n')
  ok(t, plan(), 'acme', 'a\\\rb\tc\n', 'a\\\rb\tc\tacme\n')
  ok(t, plan(), 'acme', 'a\\\\\tb\n', 'a\\\\\tb\tacme\n')
  ok(t, plan(), 'acme', '1\tx\n\\.\n', '1\tx\tacme\n')
  ok(t, plan(), 'acme', '1\tx\n\\.\nignored\tafter\n', '1\tx\tacme\n')
  ok(t, plan(), 'acme', '1\tx\r\n\\.\r\n', '1\tx\tacme\r\n')
  ok(t, plan(), 'acme', '\\.\n', '')
  ok(t, plan(), 'acme', '\\N\tx\n', '\\N\tx\tacme\n')
  refused(t, plan(), 'acme', '1\tx\\.\n', /end-of-copy marker/, '0A000')
  refused(t, plan(), 'acme', '1\tx\n\\.x\n', /end-of-copy marker corrupt/, '22P04')
  refused(t, plan(), 'acme', '1\tx\n\\.\r\n', /does not match previous newline style/, '22P04')
})

t.test('text: a newline of another style is refused, as the server refuses it', async (t) => {
  refused(t, plan(), 'acme', '1\tx\n2\ty\r\n', /literal carriage return/, '22P04')
  refused(t, plan(), 'acme', '1\tx\r\n2\ty\n', /literal newline/, '22P04')
  refused(t, plan(), 'acme', '1\tx\r\n2\ty\r3\n', /literal carriage return/, '22P04')
})

t.test('text, append: HEADER is passed; HEADER MATCH gets the tenant column', async (t) => {
  ok(t, plan({ header: 'skip' }), 'acme', 'a\tb\n1\t2\n', 'a\tb\n1\t2\tacme\n')
  ok(t, plan({ header: 'match' }), 'acme', 'a\tb\n1\t2\n', 'a\tb\ttenant_id\n1\t2\tacme\n')
})

t.test('text, check: rows of the tenant pass unchanged, another tenant or NULL aborts', async (t) => {
  const p = plan({ mode: 'check', index: 1 })
  ok(t, p, 'acme', '1\tacme\n2\tacme\n', '1\tacme\n2\tacme\n')
  ok(t, p, 'acme', '1\t\\141cme\n2\t\\x61cme\n3\tac\\me\n', '1\t\\141cme\n2\t\\x61cme\n3\tac\\me\n')
  refused(t, p, 'acme', '1\tacme\n2\tglobex\n', /row 2: column "tenant_id" is not the session tenant's value 'acme'/)
  refused(t, p, 'acme', '1\tacme\n2\tacm\n', /row 2/)
  refused(t, p, 'acme', '1\tacme\n2\tacmee\n', /row 2/)
  refused(t, p, 'acme', '1\t\\N\n', /row 1: column "tenant_id" is NULL/)
  refused(t, p, 'acme', '1\tacme\n2\tglobex', /row 2/)
  refused(t, p, 'acme', '1\n', /missing data for column "tenant_id"/, '22P04')
  const first = plan({ mode: 'check', index: 0 })
  ok(t, first, 'acme', 'acme\t1\nacme\t2\n', 'acme\t1\nacme\t2\n')
  refused(t, first, 'acme', 'acme\t1\nbeta\t2\n', /row 2/)
  ok(t, plan({ mode: 'check', index: 0, header: 'skip' }), 'acme', 'globex\tx\nacme\t2\n', 'globex\tx\nacme\t2\n')
  // a NULL string that is the tenant: the field is NULL, not the tenant
  refused(t, plan({ mode: 'check', index: 0, null: 'acme' }), 'acme', 'acme\t1\n', /is NULL/)
  // an escaped delimiter is data: this row's second field is "acme\tx"
  refused(t, p, 'acme', '1\tacme\\\tx\n', /row 1/)
})

t.test('text, check: a hex escape may take a delimiter that is a hex digit', async (t) => {
  // DELIMITER 'A': "\x4A" is one escape (J), so the tenant field is "J"
  const p = plan({ mode: 'check', index: 0, delimiter: 'A' })
  ok(t, p, 'J', '\\x4AA1\n', '\\x4AA1\n')
  refused(t, p, 'acme', '\\x4AA1\n', /row 1/)
})

t.test('CSV, append: quoted newlines and delimiters are data; the tenant is quoted', async (t) => {
  const p = plan({ format: 'csv', fields: 3 })
  ok(t, p, 'acme', 'a,"x\ny",c\n', 'a,"x\ny",c,"acme"\n')
  ok(t, p, 'acme', 'a,"x,""y",c\r\nd,e,f\r\n', 'a,"x,""y",c,"acme"\r\nd,e,f,"acme"\r\n')
  ok(t, p, 'ac"me', 'a,b,c\n', 'a,b,c,"ac""me"\n')
  ok(t, p, 'acme', 'a,b,c\n\\.\n', 'a,b,c,"acme"\n')
  ok(t, p, 'acme', '\\.x,b,c\n', '\\.x,b,c,"acme"\n')
  ok(t, p, 'acme', '\\x,b,c\n', '\\x,b,c,"acme"\n')
  ok(t, plan({ format: 'csv', fields: 3, header: 'match' }), 'acme', 'a,b,c\n1,2,3\n', 'a,b,c,"tenant_id"\n1,2,3,"acme"\n')
  const esc = plan({ format: 'csv', fields: 2, escape: '\\' })
  ok(t, esc, 'acme', '"a\\"\nb",c\n', '"a\\"\nb",c,"acme"\n')
  ok(t, esc, 'a"c\\e', '"a\\\\",c\n', '"a\\\\",c,"a\\"c\\\\e"\n')
  refused(t, p, 'acme', 'a,b,c\r\nd,e,f\n', /unquoted newline/, '22P04')
})

t.test('CSV, check: the value after quotes and escapes is compared; unquoted NULL string is NULL', async (t) => {
  const p = plan({ format: 'csv', mode: 'check', index: 1 })
  ok(t, p, 'acme', '1,acme\n2,"acme"\n3,"ac""me"x\n'.replace('3,"ac""me"x\n', '3,ac"m"e\n'), '1,acme\n2,"acme"\n3,ac"m"e\n')
  refused(t, p, 'acme', '1,acme\n2,"ac""me"\n', /row 2/)
  refused(t, p, 'acme', '1,\n', /row 1: column "tenant_id" is NULL/)
  refused(t, p, 'acme', '1,"acme\n"\n', /row 1/)
  ok(t, p, 'a"b', '1,"a""b"\n', '1,"a""b"\n')
  ok(t, p, 'a,b', '1,"a,b"\n', '1,"a,b"\n')
  refused(t, p, '', '1,\n', /is NULL/)
  ok(t, p, '', '1,""\n', '1,""\n')
  const esc = plan({ format: 'csv', mode: 'check', index: 1, escape: '\\' })
  ok(t, esc, 'a"b', '1,"a\\"b"\n', '1,"a\\"b"\n')
  ok(t, esc, 'a\\b', '1,"a\\b"\n', '1,"a\\b"\n')
  refused(t, esc, 'a"b', '1,"a""b"\n', /row 1/)
  ok(t, plan({ format: 'csv', mode: 'check', index: 0, header: 'skip' }), 'acme', 'tenant_id,x\nacme,1\n', 'tenant_id,x\nacme,1\n')
})

const txt = (s: string): Buffer => Buffer.from(s, 'utf8')

t.test('binary, append: the field count gains one and each tuple the tenant field', async (t) => {
  const p = plan({ format: 'binary', fields: 2, columnType: 'text' })
  const input = binaryCopy([
    [int4(1), txt('x')],
    [int4(2), null],
  ])
  const o = same(t, p, 'acme', input)
  t.equal(o.error, null)
  t.same(
    o.out,
    binaryCopy([
      [int4(1), txt('x'), txt('acme')],
      [int4(2), null, txt('acme')],
    ]),
  )
  const withExt = Buffer.concat([
    Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'),
    int4(0),
    int4(3),
    Buffer.from('abc'),
    binaryCopy([[int4(7), txt('y')]]).subarray(19),
  ])
  const o2 = same(t, p, 'acme', withExt)
  t.same(o2.out, Buffer.concat([withExt.subarray(0, 22), binaryCopy([[int4(7), txt('y'), txt('acme')]]).subarray(19)]))
  const ints = same(t, plan({ format: 'binary', fields: 1, columnType: 'integer' }), '42', binaryCopy([[txt('z')]], false))
  t.same(ints.out, binaryCopy([[txt('z'), int4(42)]], false))
  t.match(run(plan({ format: 'binary', columnType: 'integer' }), 'acme', []).error, /not an integer/)
  t.match(run(plan({ format: 'binary', columnType: 'numeric' }), '1', []).error, /type numeric is not supported/)
  const uuid = same(t, plan({ format: 'binary', fields: 1, columnType: 'uuid' }), '{0123456789ABCDEF0123456789abcdef}', binaryCopy([[txt('z')]]))
  t.same(uuid.out, binaryCopy([[txt('z'), Buffer.from('0123456789abcdef0123456789abcdef', 'hex')]]))
  refused(t, p, 'acme', binaryCopy([[int4(1)]]), /row field count is 1, expected 2/, '22P04')
})

t.test('binary, check: the tenant field must be the tenant in the column type', async (t) => {
  const p = plan({ format: 'binary', mode: 'check', index: 1, fields: 2, columnType: 'integer' })
  const good = binaryCopy([
    [txt('a'), int4(42)],
    [txt('b'), int4(42)],
  ])
  const o = same(t, p, '42', good)
  t.equal(o.error, null)
  t.same(o.out, good)
  const bad = binaryCopy([
    [txt('a'), int4(42)],
    [txt('b'), int4(43)],
  ])
  const b = same(t, p, '42', bad)
  t.match(b.error ?? '', /row 2: column "tenant_id" is not the session tenant's value '42'/)
  t.ok(b.out.length < bad.length - 2, 'the refused tuple never reached the server whole')
  t.match(same(t, p, '42', binaryCopy([[txt('a'), null]])).error ?? '', /is NULL/)
  t.match(same(t, p, '42', binaryCopy([[txt('a'), txt('42')]])).error ?? '', /not the session tenant/)
})

t.test('a tenant that cannot be written is refused before the COPY starts', async (t) => {
  t.match(run(plan(), 'a\0b', []).error, /NUL/)
  t.match(run(plan({ null: 'acme' }), 'acme', []).error, /equals the NULL string/)
})

t.test('a long stream in constant memory: 100,000 rows in 64 KiB messages', async (t) => {
  const row = '12345\tsome text with \\t an escape\n'
  const input = Buffer.from(row.repeat(100_000))
  const rows = copyInRows(plan(), 'acme') as Exclude<ReturnType<typeof copyInRows>, CopyRowsError>
  let total = 0
  for (let k = 0; k < input.length; k += 65536) {
    const o = rows.push(input.subarray(k, k + 65536))
    t.notOk(o instanceof CopyRowsError)
    total += (o as Buffer).length
  }
  t.equal(rows.rows, 100_000)
  t.equal(total, input.length + 100_000 * 5)
})
