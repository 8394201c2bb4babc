// parser/scan.ts against PostgreSQL's own lexer (libpg-query's scan.l, the parser the analyzer
// uses): every token boundary from tokenize() and every literal span from normalizeLiterals()
// must be PostgreSQL's, or the scanner must fail closed (key null / ScanUnsure). Any disagreement
// is a tenant-isolation hole: a restriction spliced where PostgreSQL sees a comment, or code in a
// literal slot of a shared plan (issue #13 class 1, #22).
//   - known tricky cases, each asserted explicitly (and each against the oracle);
//   - a seeded differential fuzz of generated statements (bench/scan-agreement.ts has the generator
//     and the comparison; `npm run bench:scan` runs 1,000,000). SCAN_SEED=… reproduces a run,
//     SCAN_INPUTS=… sets its size.
import t, { type Test } from 'tap'
import { loadOracle, compare, pgScan, run } from '../../bench/scan-agreement.js'
import {
  tokenize,
  normalizeLiterals,
  decodeSimpleLiteral,
  ScanUnsure,
  T_WORD,
  T_OP,
  T_STRING,
  T_NUMBER,
  T_PARAM,
  T_QIDENT,
  T_PUNCT,
  LIT_STRING,
  LIT_NUMBER,
  type Token,
} from '../../parser/scan.js'
import { initParser, rewriteQuery } from '../../parser/index.js'
import { goldenCtx } from './fixtures.js'

const words = (s: string) => tokenize(s).map((x) => s.slice(x.s, x.e))
const lits = (s: string) => {
  const nz = normalizeLiterals(s)
  return nz.kinds.map((_, i) => s.slice(nz.spans[2 * i], nz.spans[2 * i + 1]))
}
/** scan.ts agrees with PostgreSQL's lexer on s (or fails closed where it may) */
const agree = (tt: Test, s: string) => tt.equal(compare(s).problem, '', `agrees with PostgreSQL: ${JSON.stringify(s)}`)
const unsure = (s: string) => {
  try {
    tokenize(s)
    return false
  } catch (e) {
    if (e instanceof ScanUnsure) return true
    throw e
  }
}

t.test('known tricky cases', async (t) => {
  await loadOracle()
  await initParser()

  t.test('a -- comment ends at \\r as well as \\n', async (t) => {
    const s = 'SELECT * FROM ads WHERE false --\r OR true\n'
    t.same(words(s), ['SELECT', '*', 'FROM', 'ads', 'WHERE', 'false', 'OR', 'true'])
    agree(t, s)
    agree(t, 'SELECT 1 --x\r\n, 2')
    agree(t, "SELECT 1 -- it's\r'a'")
    t.same(lits("SELECT 1 -- it's\r'a'"), ['1', "'a'"], "the quote in the comment starts nothing; 'a' after \\r is a literal")
    // the splice lands in code, not in the comment
    const r = rewriteQuery(s, goldenCtx())
    t.notOk(r.refusal, 'rewritten')
    const code = pgScan(r.sql!)
      .tokens.filter((x) => x.name !== 'SQL_COMMENT' && x.name !== 'C_COMMENT')
      .map((x) => x.text)
      .join(' ')
    t.match(code, /company_id/, `the restriction is code to PostgreSQL: ${JSON.stringify(r.sql)}`)
  })

  t.test('operators ending in + or - are split as PostgreSQL splits them', async (t) => {
    t.same(words('a =+1'), ['a', '=', '+', '1'])
    t.same(words('a =-1'), ['a', '=', '-', '1'])
    t.same(words('a <=-1'), ['a', '<=', '-', '1'])
    t.same(words('a *-+1'), ['a', '*', '-', '+', '1'])
    t.same(words('a @-1'), ['a', '@-', '1'], '@ makes a trailing - part of the operator')
    t.same(words('a !=-1'), ['a', '!=-', '1'])
    t.same(words('a %+1'), ['a', '%+', '1'])
    t.same(words('a ?|- b'), ['a', '?|-', 'b'])
    for (const s of ['a =+1', 'a =-1', 'a <=-1', 'a *-+1', 'a @-1', 'a !=-1', 'a %+1', 'a ?|- b', 'a <=> b', 'a ~~* b', 'a #- b', 'a ^- b', 'a &&- b'])
      agree(t, s)
  })

  t.test('-- and /* inside an operator start a comment', async (t) => {
    t.same(words('a *--c\nb'), ['a', '*', 'b'])
    t.same(words('a +/*c*/b'), ['a', '+', 'b'])
    t.same(words('a <--c\n> b'), ['a', '<', '>', 'b'])
    t.same(words('a @/**/- b'), ['a', '@', '-', 'b'])
    t.same(words('a /-* b'), ['a', '/-*', 'b'])
    for (const s of ['a *--c\nb', 'a +/*c*/b', 'a <--c\n> b', 'a @/**/- b', 'a /-* b', 'a -/**/- b', 'a */* c */ b']) agree(t, s)
  })

  t.test('nested comments', async (t) => {
    const s = 'SELECT 1 /* a /* b */ OR true */ x'
    t.same(words(s), ['SELECT', '1', 'x'])
    for (const x of [s, 'SELECT /*/ */ 1', 'SELECT /**/1', 'SELECT /* */*/ 1', 'SELECT /*/**/*/ 1', 'SELECT /* -- */ 1']) agree(t, x)
    t.equal(normalizeLiterals("SELECT 1 /* a /* b */ 'x' ").key, null, 'an unterminated comment is never shared')
  })

  t.test('string continuation: quotes separated by whitespace with a newline are one literal', async (t) => {
    t.same(lits("SELECT 'a'\n'b' x"), ["'a'\n'b'"])
    t.same(lits("SELECT 'a'\r\n\t 'b'"), ["'a'\r\n\t 'b'"])
    t.same(lits("SELECT 'a'\f\n\v'b'"), ["'a'\f\n\v'b'"], '\\f and \\v are whitespace here too')
    t.same(lits("SELECT 'a' 'b'"), ["'a'", "'b'"], 'no newline: two literals')
    // the continued part keeps E's backslash escapes: \' does not close it
    const e = "SELECT E'a'\n'\\' OR true --' FROM t"
    t.same(lits(e), ["E'a'\n'\\' OR true --'"])
    t.same(words(e), ['SELECT', "E'a'\n'\\' OR true --'", 'FROM', 't'])
    t.same(lits("SELECT B'1'\n'0', U&'a'\n'b'"), ["B'1'\n'0'", "U&'a'\n'b'"])
    for (const s of [
      "SELECT 'a'\n'b' x",
      "SELECT 'a'\r\n\t 'b'",
      "SELECT 'a'\f\n\v'b'",
      "SELECT 'a' 'b'",
      e,
      "SELECT B'1'\n'0', U&'a'\n'b'",
      "SELECT 'a'\n-'b'",
    ])
      agree(t, s)
    t.equal(decodeSimpleLiteral("'ac'\n'me'", LIT_STRING), 'acme', 'a continued literal decodes to its joined value')
    t.equal(decodeSimpleLiteral("'a''c'\r\n 'me'''", LIT_STRING), "a'cme'")
  })

  t.test('a continuation across a -- comment: PostgreSQL joins, libpg-query does not: fail closed', async (t) => {
    for (const s of ["SELECT 'a' -- c\n'b'", "SELECT 'a'\n-- c\n'b'", "SELECT 'a' --c\r'b'", "SELECT E'a' --\n'\\' OR true --'"]) {
      t.ok(unsure(s), `tokenize refuses ${JSON.stringify(s)}`)
      t.equal(normalizeLiterals(s).key, null, `not shared: ${JSON.stringify(s)}`)
      agree(t, s)
    }
    const r = rewriteQuery("SELECT * FROM ads WHERE title = 'a' -- c\n'b'", goldenCtx())
    t.ok(r.refusal, 'the statement is refused')
    t.notOk(unsure("SELECT 'a' -- c\n x"), 'a comment after a string is fine when no quote follows')
    t.notOk(unsure("SELECT 'a' /* c */\n'b'"), 'a /* */ comment ends the string in both')
  })

  t.test('every string form', async (t) => {
    t.same(words("SELECT B'1''0'"), ['SELECT', "B'1'", "'0'"], "B'' has no '' doubling")
    t.same(words("SELECT X'1F''0'"), ['SELECT', "X'1F'", "'0'"])
    t.same(words("SELECT N'x'"), ['SELECT', 'N', "'x'"], 'N is the keyword NCHAR, then a plain string')
    t.same(lits("SELECT N'x'"), ["'x'"])
    t.same(words("SELECT E'\\''"), ['SELECT', "E'\\''"])
    t.same(words("SELECT E'\\\\' OR true --'"), ['SELECT', "E'\\\\'", 'OR', 'true'])
    t.same(words("SELECT '\\' OR true --'"), ['SELECT', "'\\'", 'OR', 'true'], 'no backslash escapes in a plain string')
    t.same(words("SELECT U&'a''b' UESCAPE '!'"), ['SELECT', "U&'a''b'", 'UESCAPE', "'!'"])
    t.same(words("SELECT xb'1', ue'x', U&x"), ['SELECT', 'xb', "'1'", ',', 'ue', "'x'", ',', 'U', '&', 'x'])
    t.equal(normalizeLiterals("SELECT U&'d\\0061t'").key, null, 'U& strings are not shared')
    t.equal(normalizeLiterals("SELECT E'\\u0041'").key, null, 'E strings with \\u escapes are not shared')
    t.equal(normalizeLiterals("SELECT E'\\x41'").key, null, 'E strings with \\x escapes are not shared')
    t.not(normalizeLiterals("SELECT E'a\\\\b\\'c\\n'").key, null, "E strings with \\\\ \\' \\n are shared (node-postgres escapeLiteral)")
    for (const s of [
      "SELECT B'1''0'",
      "SELECT X'1F''0'",
      "SELECT N'x'",
      "SELECT n'x'''",
      "SELECT E'\\''",
      "SELECT E'\\\\' OR true --'",
      "SELECT '\\' OR true --'",
      "SELECT U&'a''b' UESCAPE '!'",
      "SELECT xb'1', ue'x', U&x",
      "SELECT E'\\u0041\\x41\\101\\'",
      "SELECT e'a' 'b'",
    ])
      agree(t, s)
  })

  t.test('dollar quotes and parameters', async (t) => {
    t.same(words('SELECT $1, $12x, $$a$$, $a$ $b$ $a$, x$a$y$a$, $é$x$é$'), [
      'SELECT',
      '$1',
      ',',
      '$12',
      'x',
      ',',
      '$$a$$',
      ',',
      '$a$ $b$ $a$',
      ',',
      'x$a$y$a$',
      ',',
      '$é$x$é$',
    ])
    t.same(words('SELECT $a b'), ['SELECT', '$', 'a', 'b'], '$ then an identifier is not a tag')
    t.same(words('SELECT $1$ a'), ['SELECT', '$1', '$', 'a'], '$1 is a parameter, never a tag')
    t.equal(tokenize('SELECT $1')[1].k, T_PARAM)
    t.equal(normalizeLiterals('SELECT $q$ abc').key, null, 'unterminated dollar quote')
    for (const s of ['SELECT $1, $12x, $$a$$, $a$ $b$ $a$, x$a$y$a$, $é$x$é$', 'SELECT $a b', 'SELECT $1$ a', 'SELECT $a$x$ba$a$', 'SELECT 1$a$x$a$'])
      agree(t, s)
  })

  t.test('quoted identifiers', async (t) => {
    t.same(words('SELECT "a""b", U&"x", "\'"'), ['SELECT', '"a""b"', ',', 'U&"x"', ',', '"\'"'])
    t.equal(tokenize('SELECT U&"x"')[1].k, T_QIDENT)
    t.equal(normalizeLiterals('SELECT "" FROM t').key, null, '"" is an error to PostgreSQL: never shared')
    t.equal(normalizeLiterals('SELECT U&"" FROM t').key, null)
    for (const s of ['SELECT "a""b", U&"x", "\'"', 'SELECT """" FROM t', 'SELECT "" FROM t', 'SELECT "a" "b"']) agree(t, s)
  })

  t.test('numbers', async (t) => {
    t.same(words('SELECT 1.e5, .5, 1., 1..2, 1.5.5, 1e-5, 1$'), [
      'SELECT',
      '1.e5',
      ',',
      '.5',
      ',',
      '1.',
      ',',
      '1',
      '..',
      '2',
      ',',
      '1.5',
      '.5',
      ',',
      '1e-5',
      ',',
      '1',
      '$',
    ])
    t.same(lits('SELECT a..5'), ['5'], '".." then 5, not ".5"')
    t.equal(tokenize('SELECT 1')[1].k, T_NUMBER)
    for (const s of ['SELECT 1e', 'SELECT 1x', 'SELECT 1.5_', 'SELECT 1e+', 'SELECT 0x', 'SELECT 0b2', 'SELECT 1_$', 'SELECT 1ea'])
      t.equal(normalizeLiterals(s).key, null, `trailing junk is an error to PostgreSQL: ${s}`)
    for (const s of ['SELECT 0x1F', 'SELECT 0o17', 'SELECT 0b101', 'SELECT 1_000', 'SELECT 1_0.5']) {
      t.ok(unsure(s), `PostgreSQL 16+ number syntax is refused (15 rejects it, 14 reads 0x1F as "0 AS x1F"): ${s}`)
      t.equal(normalizeLiterals(s).key, null)
    }
    t.equal(decodeSimpleLiteral('1.5e3', LIT_NUMBER), '1.5e3')
    t.equal(decodeSimpleLiteral('0x1F', LIT_NUMBER), null)
    for (const s of [
      'SELECT 1.e5, .5, 1., 1..2, 1.5.5, 1e-5, 1$',
      'SELECT a..5',
      'SELECT ...5',
      'SELECT 1e',
      'SELECT 0x1F',
      'SELECT 0x1F$',
      'SELECT 1_000',
      'SELECT 1__0',
      'SELECT 0_1',
    ])
      agree(t, s)
  })

  t.test('casts and punctuation', async (t) => {
    const s = 'SELECT a::int, f(b := 1, c => 2), x[1:2], a.b, 1..2'
    t.same(words(s), [
      'SELECT',
      'a',
      '::',
      'int',
      ',',
      'f',
      '(',
      'b',
      ':=',
      '1',
      ',',
      'c',
      '=>',
      '2',
      ')',
      ',',
      'x',
      '[',
      '1',
      ':',
      '2',
      ']',
      ',',
      'a',
      '.',
      'b',
      ',',
      '1',
      '..',
      '2',
    ])
    const k = tokenize(s)
    t.equal(k.find((x: Token) => s.slice(x.s, x.e) === '..')!.k, T_PUNCT)
    t.equal(k.find((x: Token) => s.slice(x.s, x.e) === '::')!.k, T_OP)
    agree(t, s)
  })

  t.test('whitespace, multibyte, control chars', async (t) => {
    t.same(words('a\vb\fc'), ['a', 'b', 'c'], '\\v and \\f are whitespace')
    t.same(words("éa'x' 日本 a😀b"), ['éa', "'x'", '日本', 'a😀b'], 'non-ASCII chars are identifier chars')
    t.same(lits('SELECT \'é—\' FROM "日本" WHERE x = 1'), ["'é—'", '1'])
    t.equal(tokenize('SELECT LI\u212AE')[1].w, 'li\u212ae', 'only ASCII letters are lower-cased (K, the Kelvin sign, is not k)')
    t.equal(tokenize('SELECT WHERE')[1].w, 'where')
    t.equal(tokenize('SELECT x')[1].k, T_WORD)
    t.ok(unsure("SELECT '\ud800' FROM t"), 'a lone surrogate is refused')
    t.equal(normalizeLiterals("SELECT '\ud800' FROM t").key, null)
    t.equal(normalizeLiterals("SELECT 'a\0b'").key, null, 'a NUL is never shared')
    t.equal(normalizeLiterals('SELECT \u0001').key, null, 'marker chars are never shared')
    for (const s of [
      'a\vb\fc',
      "éa'x' 日本 a😀b",
      'SELECT \'é—\' FROM "日本" WHERE x = 1',
      'SELECT a\\b{c}',
      'SELECT \u00a0x',
      "SELECT '\ud800' FROM t",
      'SELECT x\u007fy',
    ])
      agree(t, s)
  })

  t.test('plain SQL that ORMs send keeps working (shared, tokenized)', async (t) => {
    for (const s of [
      'SELECT "ads".* FROM "ads" WHERE "ads"."id" = 1 LIMIT 1',
      'SELECT "ads"."id", "ads"."title" FROM "ads" WHERE "ads"."status" = \'active\' AND "ads"."created_at" > \'2024-01-01\' ORDER BY "ads"."created_at" DESC LIMIT 25 OFFSET 50',
      'INSERT INTO "ads" ("title", "company_id") VALUES ($1, $2) RETURNING "id"',
      'UPDATE "ads" SET "title" = $1, "updated_at" = $2 WHERE "ads"."id" = $3',
      "SELECT ads.id AS ads_id FROM ads WHERE ads.title LIKE E'%\\\\_x%' -- django\n",
      'SELECT t0."id" FROM "ads" AS t0 WHERE (t0."price" >= 1.5 AND t0."score" < -2.5e-3) /* prisma */',
      'SELECT COUNT(*) FROM (SELECT 1 FROM "ads" WHERE "ads"."campaign_id" IN (1, 2, 3)) subquery',
      "SELECT $$literal$$, 'it''s', NULL::text, ARRAY[1,2]::int[], '{\"a\":1}'::jsonb->>'a'",
    ]) {
      t.notOk(unsure(s), `tokenized: ${s}`)
      t.not(normalizeLiterals(s).key, null, `shared: ${s}`)
      agree(t, s)
    }
  })

  t.test('kinds', async (t) => {
    const s = `SELECT 'a', E'b', B'1', $$d$$, U&'e', 1, $1, "q", w, +`
    t.same(
      tokenize(s).map((x: Token) => x.k),
      [
        T_WORD,
        T_STRING,
        T_PUNCT,
        T_STRING,
        T_PUNCT,
        T_STRING,
        T_PUNCT,
        T_STRING,
        T_PUNCT,
        T_STRING,
        T_PUNCT,
        T_NUMBER,
        T_PUNCT,
        T_PARAM,
        T_PUNCT,
        T_QIDENT,
        T_PUNCT,
        T_WORD,
        T_PUNCT,
        T_OP,
      ],
    )
    agree(t, s)
  })
})

t.test("differential fuzz against PostgreSQL's lexer", async (t) => {
  await loadOracle()
  const seed = Number(process.env.SCAN_SEED ?? Math.floor(Math.random() * 2 ** 31))
  const inputs = Number(process.env.SCAN_INPUTS ?? 40_000)
  t.comment(`seed ${seed} (SCAN_SEED=${seed} reproduces), ${inputs} inputs`)
  const res = run(seed, inputs, 20)
  t.comment(
    `inputs ${res.inputs}, disagreements ${res.disagreements}, rejected by PostgreSQL's lexer ${res.pgRejected}, accepted but not shared ${res.failedClosed}, shared ${res.shared}, ${(res.ms / 1000).toFixed(1)} s`,
  )
  for (const e of res.examples) t.comment(e)
  t.equal(res.disagreements, 0, `no disagreement with PostgreSQL's lexer (seed ${seed})`)
  t.ok(res.shared > inputs / 5, 'a good part of the inputs is shareable (the scanner does not just give up)')
})
