// COPY … FROM STDIN into a tenant table (issue 19), the parser's part: the SQL the server gets, the plan
// server/ streams the rows through (append or check, which field, the format's bytes), what is refused,
// and what verify-after-rewrite accepts.
import t from 'tap'
import { initParser, rewriteQuery, RewriteCache } from '../../parser/index.js'
import { verifyRewrite } from '../../parser/verify.js'
import type { CopyInPlan, SchemaFacts, StatementPlan } from '../../parser/types.js'
import { goldenCtx, goldenFacts } from './fixtures.js'

await initParser()

const facts: SchemaFacts = { ...goldenFacts(), generatedColumns: new Map([['public.campaigns', new Set(['name'])]]) }
const ctx = goldenCtx({ facts })

function forward(sql: string): Extract<StatementPlan, { kind: 'forward' }> {
  const r = rewriteQuery(sql, ctx)
  if (r.refusal) throw new Error(`refused: ${r.refusal.message}`)
  return r.statements[0] as Extract<StatementPlan, { kind: 'forward' }>
}

function planOf(sql: string): CopyInPlan {
  const p = forward(sql).copyIn
  if (!p) throw new Error('no copy plan')
  return p
}

t.test('the tenant column left out: appended to the column list and to every row', async (t) => {
  const f = forward('COPY ads (id, title) FROM STDIN')
  t.equal(f.sql, 'COPY ads (id, title, company_id) FROM STDIN')
  t.match(f.copyIn, {
    table: 'public.ads',
    column: 'company_id',
    mode: 'append',
    fields: 2,
    format: 'text',
    delimiter: '\t',
    null: '\\N',
    header: 'none',
    columnType: 'integer',
  })
  t.ok(f.touchesTenant)
})

t.test('the tenant column listed: checked in its field', async (t) => {
  t.match(planOf('COPY ads (title, company_id, id) FROM STDIN'), { mode: 'check', index: 1, fields: 3 })
  t.match(planOf(`COPY ads (company_id, id) FROM STDIN WITH (FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'n/a', HEADER MATCH)`), {
    mode: 'check',
    index: 0,
    format: 'csv',
    delimiter: ';',
    quote: "'",
    escape: '\\',
    null: 'n/a',
    header: 'match',
  })
  t.match(planOf('COPY ads (company_id) FROM STDIN CSV HEADER'), { format: 'csv', header: 'skip', quote: '"', escape: '"', null: '', delimiter: ',' })
  t.match(planOf("COPY ads (company_id) FROM STDIN WITH (FORMAT text, HEADER false, FREEZE, ENCODING 'utf-8')"), { format: 'text', header: 'none' })
})

t.test('no column list: the columns PostgreSQL would take (generated ones left out), spelled out', async (t) => {
  const f = forward('COPY ads FROM STDIN (FORMAT binary)')
  t.equal(f.sql, 'COPY ads (id, company_id, campaign_id, title) FROM STDIN (FORMAT binary)')
  t.match(f.copyIn, { mode: 'check', index: 1, fields: 4, format: 'binary' })
  const g = forward('COPY campaigns FROM STDIN')
  t.equal(g.sql, 'COPY campaigns (id, company_id) FROM STDIN')
  t.match(g.copyIn, { mode: 'check', index: 1, fields: 2 })
})

t.test('refused: what the proxy cannot reproduce row by row', async (t) => {
  const refused: [string, RegExp, string][] = [
    ['COPY clicks FROM STDIN', /without a column list/, '0A000'],
    ["COPY ads (id) FROM STDIN WITH (DEFAULT '\\D')", /DEFAULT/, '0A000'],
    ['COPY ads (id, company_id) FROM STDIN WITH (FORMAT csv, FORCE_NULL *)', /FORCE_NULL/, '0A000'],
    ["COPY ads (id) FROM STDIN WITH (ENCODING 'SJIS')", /ENCODING/, '0A000'],
    ["COPY ads (id) FROM STDIN WITH (DELIMITER 'ab')", /single one-byte/, '0A000'],
    ["COPY ads (id) FROM STDIN WITH (DELIMITER 'x')", /cannot be "x"/, '0A000'],
    ["COPY ads (id) FROM STDIN WITH (FORMAT csv, QUOTE '\\')", /QUOTE backslash/, '0A000'],
    ['COPY ads (id) FROM STDIN WITH (FORMAT xml)', /not recognized/, '0A000'],
    ['COPY ads (id) FROM STDIN WITH (HEADER 2)', /HEADER/, '0A000'],
    ['COPY ads (id) FROM STDIN WITH (FORMAT binary, HEADER)', /BINARY/, '0A000'],
    ['COPY ads (id) FROM STDIN WITH (CONVERT_SELECTIVELY (id))', /convert_selectively/, '0A000'],
    ["COPY ads (id) FROM '/tmp/x'", /file or program/, '42501'],
    ["COPY ads (id) FROM PROGRAM 'cat'", /file or program/, '42501'],
    ['COPY countries FROM STDIN', /reference table/, '42501'],
    ["COPY ads (id) FROM STDIN WHERE pg_read_file('PG_VERSION') IS NULL", /pg_read_file/, '42501'],
  ]
  for (const [sql, pattern, code] of refused) {
    const r = rewriteQuery(sql, ctx)
    t.equal(r.refusal?.sqlstate, code, sql)
    t.match(r.refusal?.message ?? '', pattern, sql)
  }
  const none = rewriteQuery('COPY ads (id) FROM STDIN', goldenCtx({ facts, tenant: null }))
  t.match(none.refusal?.message, /no tenant is set/)
})

t.test('plans are not shared between texts that differ in an option literal', async (t) => {
  const cache = new RewriteCache()
  const a = rewriteQuery("COPY ads (id) FROM STDIN WITH (DELIMITER ',')", ctx, cache)
  const b = rewriteQuery("COPY ads (id) FROM STDIN WITH (DELIMITER ';')", ctx, cache)
  t.equal((a.statements[0] as { copyIn: CopyInPlan }).copyIn.delimiter, ',')
  t.equal((b.statements[0] as { copyIn: CopyInPlan }).copyIn.delimiter, ';')
  t.not(b.cache, 'normalized')
})

t.test('COPY FROM of a table that is not a tenant table has no plan (the rows go as they are)', async (t) => {
  const r = rewriteQuery('COPY audit FROM STDIN', goldenCtx({ facts: { ...facts, unknown: 'allow' } }))
  t.equal(r.refusal, undefined)
  t.equal((r.statements[0] as { copyIn?: CopyInPlan }).copyIn, undefined)
})

t.test('verify-after-rewrite: COPY FROM STDIN of a tenant table only with its tenant column listed once', async (t) => {
  const S = 'sentinel-x'
  t.ok(verifyRewrite('COPY ads (id, company_id) FROM STDIN', S, ctx).ok)
  t.ok(verifyRewrite('COPY ads (company_id) FROM STDIN WHERE id > 1', S, ctx).ok)
  t.notOk(verifyRewrite('COPY ads (id, title) FROM STDIN', S, ctx).ok, 'tenant column missing')
  t.notOk(verifyRewrite('COPY ads FROM STDIN', S, ctx).ok, 'no column list')
  t.notOk(verifyRewrite('COPY ads (company_id, id, company_id) FROM STDIN', S, ctx).ok, 'listed twice')
  t.notOk(verifyRewrite("COPY ads (company_id) FROM '/tmp/f'", S, ctx).ok, 'from a file')
  t.notOk(verifyRewrite('COPY ads (company_id) TO STDOUT', S, ctx).ok, 'to the client unrestricted')
  t.notOk(verifyRewrite('COPY ads (company_id) FROM STDIN WHERE id IN (SELECT id FROM ads)', S, ctx).ok, 'a tenant table in its WHERE')
})
