// The plan cache: exact and literal-normalised hits give the same answers as a cold rewrite,
// checks that depend on literal values run on every hit, and the key holds the whole context.
import t from 'tap'
import { initParser, rewriteQuery, RewriteCache } from '../../parser/index.js'
import { normalizeLiterals } from '../../parser/scan.js'
import { goldenCtx, goldenFacts } from './fixtures.js'

t.test('plan cache', async (t) => {
  await initParser()

  t.test('exact and normalised hits splice literals and tenant', async (t) => {
    const cache = new RewriteCache()
    const ctx = goldenCtx()
    const a = rewriteQuery("SELECT * FROM ads WHERE id = 1 AND title = 'x'", ctx, cache)
    t.equal(a.cache, 'cold')
    const b = rewriteQuery("SELECT * FROM ads WHERE id = 1 AND title = 'x'", ctx, cache)
    t.equal(b.cache, 'exact')
    t.equal(b.sql, a.sql)
    const c = rewriteQuery("SELECT * FROM ads WHERE id = 22 AND title = 'y''z'", ctx, cache)
    t.equal(c.cache, 'normalized')
    t.equal(c.sql, "SELECT * FROM ads WHERE (id = 22 AND title = 'y''z') AND ads.company_id = 'acme'")
    const d = rewriteQuery("SELECT * FROM ads WHERE id = 1 AND title = 'x'", goldenCtx({ tenant: "o'hara" }), cache)
    t.equal(d.cache, 'exact')
    t.equal(d.sql, "SELECT * FROM ads WHERE (id = 1 AND title = 'x') AND ads.company_id = 'o''hara'")
    const e = rewriteQuery("SELECT 'é—' AS x FROM ads WHERE id = 1", ctx, cache)
    const f = rewriteQuery("SELECT 'ü😀ü' AS x FROM ads WHERE id = 7", ctx, cache)
    t.equal(f.cache, 'normalized')
    t.equal(f.sql, "SELECT 'ü😀ü' AS x FROM ads WHERE (id = 7) AND ads.company_id = 'acme'")
    t.equal(e.cache, 'cold')
    // a literal of another kind is another key
    t.equal(rewriteQuery("SELECT * FROM ads WHERE id = '1' AND title = 'x'", ctx, cache).cache, 'cold')
  })

  t.test('tenant-column literal checks run on every hit', async (t) => {
    const cache = new RewriteCache()
    const ctx = goldenCtx()
    t.notOk(rewriteQuery("INSERT INTO ads (id, company_id) VALUES (1, 'acme')", ctx, cache).refusal)
    const n = rewriteQuery("INSERT INTO ads (id, company_id) VALUES (2, 'evil')", ctx, cache)
    t.equal(n.cache, 'normalized')
    t.equal(n.refusal?.sqlstate, '42501')
    const x = rewriteQuery("INSERT INTO ads (id, company_id) VALUES (1, 'acme')", goldenCtx({ tenant: 'globex' }), cache)
    t.equal(x.cache, 'exact')
    t.equal(x.refusal?.sqlstate, '42501', 'exact hit, other session tenant: refused')
    const ok = rewriteQuery("INSERT INTO ads (id, company_id) VALUES (3, 'globex')", goldenCtx({ tenant: 'globex' }), cache)
    t.equal(ok.cache, 'normalized')
    t.equal(ok.sql, "INSERT INTO ads (id, company_id) VALUES (3, 'globex')")
  })

  t.test('no tenant on a cached plan', async (t) => {
    const cache = new RewriteCache()
    rewriteQuery('SELECT * FROM ads', goldenCtx(), cache)
    const r = rewriteQuery('SELECT * FROM ads', goldenCtx({ tenant: null }), cache)
    t.equal(r.cache, 'exact')
    t.equal(r.refusal?.sqlstate, '42501')
    t.match(r.refusal?.message, /no tenant is set/)
    const nul = rewriteQuery('SELECT * FROM ads', goldenCtx({ tenant: 'a\0b' }), cache)
    t.equal(nul.refusal?.sqlstate, '42501', 'NUL in the tenant is refused')
  })

  t.test('statements whose literals decide are not shared', async (t) => {
    const cache = new RewriteCache()
    const ctx = goldenCtx()
    const a = rewriteQuery("SET app.tenant = 'a'", ctx, cache)
    const b = rewriteQuery("SET app.tenant = 'b'", ctx, cache)
    t.same(b.statements[0], { kind: 'tenant', command: { op: 'set', value: 'b', local: false, tag: 'SET' } })
    t.equal(a.cache, 'cold')
    t.equal(b.cache, 'cold')
    rewriteQuery("SELECT set_config('search_path', 'x', false)", ctx, cache)
    const s = rewriteQuery("SELECT set_config('app.tenant', 'x', false)", ctx, cache)
    t.equal(s.statements[0].kind, 'tenant')
    const by = goldenCtx({ mode: 'bypass' })
    rewriteQuery("SELECT set_config('search_path', 'x', false)", by, cache)
    t.equal(rewriteQuery("SELECT set_config('app.tenant', 'x', false)", by, cache).statements[0].kind, 'tenant', 'bypass too')
    rewriteQuery("SET statement_timeout = '1s'", ctx, cache)
    const st = rewriteQuery("SET statement_timeout = '2s'", ctx, cache)
    t.same((st.statements[0] as { effect: unknown }).effect, { kind: 'set', name: 'statement_timeout', valueSql: "'2s'" })
  })

  t.test('the key holds mode, search path, facts and setting', async (t) => {
    const cache = new RewriteCache()
    const q = 'SELECT * FROM items'
    const app = rewriteQuery(q, goldenCtx(), cache)
    t.match(app.sql, /tenant_id = 'acme'/)
    const pub = rewriteQuery(q, goldenCtx({ searchPath: ['public'] }), cache)
    t.equal(pub.refusal?.sqlstate, '42501', 'public.items is unknown')
    const facts = goldenFacts()
    const noItems = { ...facts, tenantTables: new Map([...facts.tenantTables].filter(([k]) => k !== 'app.items')) }
    t.equal(rewriteQuery(q, goldenCtx({ facts: noItems }), cache).cache, 'cold', 'new facts object, new plan')
    const by = rewriteQuery(q, goldenCtx({ mode: 'bypass' }), cache)
    t.equal(by.sql, q)
    t.equal(rewriteQuery('SHOW my.tenant', goldenCtx({ setting: 'my.tenant' }), cache).statements[0].kind, 'tenant')
    t.equal(rewriteQuery('SHOW my.tenant', goldenCtx(), cache).statements[0].kind, 'forward')
    // One search_path array reused by a session (its key is remembered by identity) with other facts, modes and settings.
    const path = ['public', 'app']
    t.match(rewriteQuery(q, goldenCtx({ searchPath: path }), cache).sql, /tenant_id = 'acme'/)
    t.equal(rewriteQuery(q, goldenCtx({ searchPath: path }), cache).cache, 'exact', 'same array: a hit')
    t.equal(rewriteQuery(q, goldenCtx({ searchPath: path, facts: noItems }), cache).refusal?.sqlstate, '42501', 'same array, other facts: their plan')
    t.equal(rewriteQuery(q, goldenCtx({ searchPath: path, mode: 'bypass' }), cache).sql, q, 'same array, bypass: not rewritten')
    t.equal(
      rewriteQuery('SHOW my.tenant', goldenCtx({ searchPath: path, setting: 'my.tenant' }), cache).statements[0].kind,
      'tenant',
      'same array, other setting',
    )
    t.match(rewriteQuery(q, goldenCtx({ searchPath: path }), cache).sql, /tenant_id = 'acme'/, 'and back')
  })

  t.test('bounded in bytes', async (t) => {
    const cache = new RewriteCache({ maxBytes: 64 * 1024 })
    const ctx = goldenCtx()
    for (let i = 0; i < 3000; i++) rewriteQuery(`SELECT c${i} FROM ads WHERE id = ${i}`, ctx, cache)
    t.ok(cache.bytes <= 64 * 1024, `bytes ${cache.bytes}`)
    t.ok(cache.size > 10, `entries ${cache.size}`)
    // frequently used entries survive
    const hot = 'SELECT hot FROM ads'
    rewriteQuery(hot, ctx, cache)
    for (let i = 0; i < 2000; i++) {
      rewriteQuery(`SELECT d${i} FROM ads`, ctx, cache)
      if (i % 50 === 0) t.equal(rewriteQuery(hot, ctx, cache).cache, i === 0 ? 'exact' : 'exact')
    }
  })

  t.test('a NUL in the text is refused (the parser would stop there)', async (t) => {
    const r = rewriteQuery('SELECT 1\0; DROP TABLE ads', goldenCtx(), new RewriteCache())
    t.equal(r.refusal?.sqlstate, '42601')
  })

  t.test('normalised keys', async (t) => {
    const a = normalizeLiterals("SELECT 'a''b', E'x\\'y', $$z$$, 1.5e3, x FROM t -- 'no'\n WHERE \"q'\" = 2")
    t.equal(a.key, "SELECT \u0001, \u0002, \u0005, \u0004, x FROM t -- 'no'\n WHERE \"q'\" = \u0004")
    t.equal(a.spans.length, 10)
    t.equal(normalizeLiterals("SELECT U&'d\\0061t'").key, null, 'unicode escapes are not shared')
    t.equal(normalizeLiterals('SELECT \u0001').key, null, 'marker chars in the text are not shared')
    t.equal(normalizeLiterals("SELECT 'open").key, null, 'unterminated literal')
    t.equal(normalizeLiterals('SELECT 0x1F').key, null, 'PG16 numeric forms are not shared')
  })
})
