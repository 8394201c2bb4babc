// The hash functions agree bit-for-bit with the real PostgreSQL functions of the test server,
// for every smallint, and for >100,000 random and edge int4/int8/text/bpchar/uuid values.
import t from 'tap'
import pg from 'pg'
import { randomUUID } from 'node:crypto'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { hashint2, hashint4, hashint8, hashtext, hashbpchar, uuid_hash, hashForType, hashableType, parseUuid } from '../../routing/citus-hash.js'
import { mulberry32 as rng } from '../helpers/rng.js' // deterministic, so a failure reproduces

const rand = rng(20261122)
const randInt = (n: number) => Math.floor(rand() * n)
const randU32 = () => Math.floor(rand() * 4294967296)

const BATCH = 10000

async function pgHashes(client: pg.Client, fn: string, type: string, values: string[]): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < values.length; i += BATCH) {
    const { rows } = await client.query({
      text: `SELECT ${fn}(x::${type}) AS h FROM unnest($1::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i`,
      values: [values.slice(i, i + BATCH)],
      rowMode: 'array',
    })
    for (const r of rows) out.push(r[0] as number)
  }
  return out
}

let compared = 0
/** The values whose hash differs from PostgreSQL's (first 10), or a length mismatch. */
function mismatches(values: string[], expected: number[], ours: (v: string) => number | null): string[] {
  if (expected.length !== values.length) return [`PostgreSQL returned ${expected.length} hashes for ${values.length} values`]
  const out: string[] = []
  for (let i = 0; i < values.length && out.length < 10; i++) {
    const got = ours(values[i])
    if (got !== expected[i]) out.push(`${JSON.stringify(values[i].slice(0, 80))}: ours ${got}, PostgreSQL ${expected[i]}`)
  }
  compared += values.length
  return out
}

t.test('verified Citus values (citus-catalog.md)', async (t) => {
  t.equal(hashint8(5), -1330264708)
  t.equal(hashint8(5n), -1330264708)
  t.equal(hashint4(5), -1330264708, 'hashint4(5) = hashint8(5)')
  t.equal(hashint8(1), -1905060026)
  t.equal(hashtext('acme'), -1850687378)
  t.equal(hashForType('bigint', '5'), -1330264708)
  t.equal(hashForType('int8', '1'), -1905060026)
  t.equal(hashForType('text', 'acme'), -1850687378)
  t.equal(hashForType('character varying', 'acme'), -1850687378)
  t.equal(hashForType('character varying(64)', 'acme'), -1850687378)
})

t.test('hashForType dispatch and refusals', async (t) => {
  t.equal(hashableType('bigint'), 'int8')
  t.equal(hashableType('pg_catalog.int4'), 'int4')
  t.equal(hashableType('character(10)'), 'bpchar')
  t.equal(hashableType('"char"'), null)
  t.equal(hashableType('numeric'), null)
  t.equal(hashForType('numeric', '5'), null, 'unsupported type')
  t.equal(hashForType('bigint', 'acme'), null, 'not an integer')
  t.equal(hashForType('bigint', '9223372036854775808'), null, 'int8 overflow')
  t.equal(hashForType('integer', '2147483648'), null, 'int4 overflow')
  t.equal(hashForType('smallint', '32768'), null, 'int2 overflow')
  t.equal(hashForType('bigint', ' +5 '), hashint8(5), 'whitespace and sign as int8in accepts them')
  t.equal(hashForType('uuid', 'not-a-uuid'), null)
  t.equal(hashForType('text', 'a\0b'), null, 'NUL cannot be in a text value')
  t.same(parseUuid('{a0eebc999c0b4ef8bb6d6bb9bd380a11}'), parseUuid('a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11'))
  t.equal(parseUuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1'), null, 'too short')
  t.equal(parseUuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111'), null, 'too long')
  t.throws(() => hashint4(2 ** 31))
  t.throws(() => hashint2(40000))
})

t.test('bit-exact against PostgreSQL', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const client = new pg.Client({ connectionString: server.url(ROLES.scram.user, ROLES.scram.password) })
  await client.connect()
  t.teardown(() => client.end())

  // smallint: every value.
  {
    const { rows } = await client.query({ text: 'SELECT hashint2(x::int2) FROM generate_series(-32768, 32767) x ORDER BY x', rowMode: 'array' })
    const values = Array.from({ length: 65536 }, (_, i) => String(i - 32768))
    t.same(
      mismatches(
        values,
        rows.map((r) => r[0] as number),
        (v) => hashint2(Number(v)),
      ),
      [],
      'hashint2 (all 65,536)',
    )
  }

  // integer: edges + random.
  {
    const values = ['0', '1', '-1', '2', '-2', '32767', '-32768', '32768', '-32769', '2147483647', '-2147483648', '2147483646', '-2147483647']
    for (let i = 0; i < 20000; i++) values.push(String(randU32() | 0))
    for (let i = 0; i < 2000; i++) values.push(String(randInt(2000) - 1000))
    const expected = await pgHashes(client, 'hashint4', 'int4', values)
    t.same(
      mismatches(values, expected, (v) => hashint4(Number(v))),
      [],
      'hashint4',
    )
    t.same(
      mismatches(values, expected, (v) => hashForType('integer', v)),
      [],
      'hashForType(integer)',
    )
  }

  // bigint: edges, the int32 boundary, the 2^32 boundary, and random 64-bit values.
  {
    const edges = [
      0n,
      1n,
      -1n,
      5n,
      2147483647n,
      -2147483648n,
      2147483648n,
      -2147483649n,
      4294967295n,
      4294967296n,
      -4294967296n,
      -4294967297n,
      9223372036854775807n,
      -9223372036854775808n,
      9223372036854775806n,
      -9223372036854775807n,
      1n << 62n,
      -(1n << 62n),
      0xffffffffn << 16n,
    ]
    const big: bigint[] = [...edges]
    for (let i = 0; i < 30000; i++) big.push(BigInt.asIntN(64, (BigInt(randU32()) << 32n) | BigInt(randU32())))
    for (let i = 0; i < 5000; i++) big.push(BigInt(randU32() | 0) * BigInt(randInt(5) - 2))
    for (let i = 0; i < 2000; i++) big.push(BigInt(randInt(1000000)))
    const values = big.map(String)
    const expected = await pgHashes(client, 'hashint8', 'int8', values)
    t.same(
      mismatches(values, expected, (v) => hashint8(BigInt(v))),
      [],
      'hashint8',
    )
    t.same(
      mismatches(values, expected, (v) => hashForType('bigint', v)),
      [],
      'hashForType(bigint)',
    )
    const smallIdx = values.map((_, i) => i).filter((i) => Number.isSafeInteger(Number(values[i])))
    t.same(
      mismatches(
        smallIdx.map((i) => values[i]),
        smallIdx.map((i) => expected[i]),
        (v) => hashint8(Number(v)),
      ),
      [],
      'hashint8(number)',
    )
  }

  // text: empty, every length 0..64 (every tail case, several 12-byte blocks), multi-byte UTF-8, long, random.
  {
    const alphabet = ['a', 'Z', '0', '_', '-', ' ', 'é', 'ß', '€', '—', '日', '本', '😀', '🇫🇷', '\u00ff', '\u0080', '\t', "'", '"', '\\']
    const values = ['', 'acme', 'a', 'ab', 'abc', 'tenant_1', ' trailing ', 'é', '😀', 'x'.repeat(1000), 'ünïcödé'.repeat(300), '日本語テキスト'.repeat(1000)]
    for (let n = 0; n <= 64; n++) values.push('abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ#$'.slice(0, n))
    for (let n = 0; n <= 40; n++) values.push('é'.repeat(n))
    for (let i = 0; i < 25000; i++) {
      const len = rand() < 0.9 ? randInt(40) : randInt(3000)
      let s = ''
      for (let j = 0; j < len; j++) s += rand() < 0.6 ? String.fromCharCode(0x20 + randInt(95)) : alphabet[randInt(alphabet.length)]
      values.push(s)
    }
    for (let i = 0; i < 5000; i++) {
      // random code points incl. the BMP and astral planes (no surrogates, no NUL)
      let s = ''
      const len = randInt(20)
      for (let j = 0; j < len; j++) {
        let cp = 1 + randInt(0x10ffff)
        if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41
        s += String.fromCodePoint(cp)
      }
      values.push(s)
    }
    const expected = await pgHashes(client, 'hashtext', 'text', values)
    t.same(mismatches(values, expected, hashtext), [], 'hashtext')
    t.same(
      mismatches(values, expected, (v) => hashForType('text', v)),
      [],
      'hashForType(text)',
    )
    const vexpected = await pgHashes(client, 'hashtext', 'varchar', values.slice(0, 2000))
    t.same(
      mismatches(values.slice(0, 2000), vexpected, (v) => hashForType('character varying', v)),
      [],
      'hashtext(varchar)',
    )
    const bvalues = [...values.slice(0, 5000), 'acme   ', '   ', '', 'a b  ', 'é ']
    const bexpected = await pgHashes(client, 'hashbpchar', 'bpchar', bvalues)
    t.same(mismatches(bvalues, bexpected, hashbpchar), [], 'hashbpchar')
    t.same(
      mismatches(bvalues, bexpected, (v) => hashForType('character', v)),
      [],
      'hashForType(character)',
    )
  }

  // uuid: random, edge, and the other input spellings uuid_in accepts.
  {
    const values = [
      '00000000-0000-0000-0000-000000000000',
      'ffffffff-ffff-ffff-ffff-ffffffffffff',
      'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
      '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
      'a0eebc999c0b4ef8bb6d6bb9bd380a11',
      'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11',
      '{a0eebc999c0b4ef8bb6d6bb9bd380a11}',
    ]
    for (let i = 0; i < 10000; i++) values.push(randomUUID())
    const expected = await pgHashes(client, 'uuid_hash', 'uuid', values)
    t.same(mismatches(values, expected, uuid_hash), [], 'uuid_hash')
    t.same(
      mismatches(values, expected, (v) => hashForType('uuid', v)),
      [],
      'hashForType(uuid)',
    )
  }

  t.ok(compared >= 100000, `${compared} values compared`)
})
