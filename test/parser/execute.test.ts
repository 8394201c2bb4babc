// Executes rewritten statements on a real PostgreSQL and checks the specification directly:
// for tenant T, the rewritten statement on the all-tenant database returns (and changes) exactly
// what the original returns (and changes) on a database holding only T's rows plus reference tables.
import t from 'tap'
import pg from 'pg'
import { startPostgres } from '../helpers/pg-server.js'
import { initParser, rewriteQuery, RewriteCache } from '../../parser/index.js'
import type { RewriteContext, SchemaFacts } from '../../parser/types.js'
import { SCHEMA_DISCOVERY_SQL, buildSchemaFacts, type SchemaRow } from '../../routing/schema-facts.js'

const SCHEMA = `
CREATE TABLE companies (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE campaigns (company_id int NOT NULL, id int NOT NULL, name text, budget numeric, PRIMARY KEY (company_id, id));
CREATE TABLE ads (company_id int NOT NULL, id int NOT NULL, campaign_id int, title text, country text, PRIMARY KEY (company_id, id));
CREATE TABLE clicks (company_id int NOT NULL, id int NOT NULL, ad_id int, amount int, PRIMARY KEY (company_id, id));
CREATE TABLE "Notes" (tenant_id text NOT NULL, id serial, body text);
CREATE VIEW ad_titles AS SELECT company_id, id, title FROM ads;
CREATE SCHEMA app;
CREATE TABLE app.users (company_id int NOT NULL, id int NOT NULL, "Name" text, PRIMARY KEY (company_id, id));
INSERT INTO countries VALUES ('FR', 'France'), ('DE', 'Germany'), ('JP', 'Japan');
`

function data(tenants: number[]): string {
  const out: string[] = []
  for (const c of tenants) {
    out.push(`INSERT INTO companies VALUES (${c}, 'company ${c} é')`)
    for (let i = 1; i <= 3; i++) out.push(`INSERT INTO campaigns VALUES (${c}, ${i}, 'camp ${c}.${i}', ${c * 10 + i})`)
    for (let i = 1; i <= 6; i++)
      out.push(`INSERT INTO ads VALUES (${c}, ${i}, ${((i + c) % 4) + 1}, 'ad ${c}.${i}', ${i % 3 === 0 ? 'NULL' : `'${['FR', 'DE', 'JP'][(i + c) % 3]}'`})`)
    for (let i = 1; i <= 8; i++) out.push(`INSERT INTO clicks VALUES (${c}, ${i}, ${((i * c) % 7) + 1}, ${i * c})`)
    out.push(`INSERT INTO "Notes" (tenant_id, id, body) VALUES ('${c}', ${c}, 'note ${c}')`)
    for (let i = 1; i <= 2; i++) out.push(`INSERT INTO app.users VALUES (${c}, ${i}, 'user ${c}.${i}')`)
  }
  return out.join(';\n') + ';'
}

const READS: string[] = [
  'SELECT * FROM ads',
  'SELECT id, title FROM ads WHERE id > 2 OR title LIKE $$%1%$$',
  'SELECT a.id, c.name FROM ads a JOIN campaigns c ON c.id = a.campaign_id',
  'SELECT a.id, c.name FROM ads a LEFT JOIN campaigns c ON c.id = a.campaign_id',
  'SELECT c.id, a.id FROM ads a RIGHT JOIN campaigns c ON c.id = a.campaign_id',
  'SELECT a.id, c.id FROM ads a FULL JOIN campaigns c ON c.id = a.campaign_id',
  'SELECT * FROM campaigns LEFT JOIN ads USING (id)',
  'SELECT * FROM ads NATURAL JOIN clicks',
  'SELECT co.name, c.id, a.id FROM companies co LEFT JOIN (campaigns c JOIN ads a ON a.campaign_id = c.id) ON c.company_id = co.id',
  'SELECT * FROM (ads a JOIN campaigns c ON a.campaign_id = c.id) AS j',
  'SELECT a.id, k.name FROM ads a LEFT JOIN countries k ON k.code = a.country',
  'SELECT k.code, count(a.id) FROM countries k LEFT JOIN ads a ON a.country = k.code GROUP BY k.code',
  'SELECT campaign_id, count(*), sum(id) FROM ads GROUP BY campaign_id HAVING count(*) > 1',
  'SELECT id, row_number() OVER (PARTITION BY campaign_id ORDER BY id), rank() OVER w FROM ads WINDOW w AS (ORDER BY title)',
  'SELECT campaign_id, country, count(*) FROM ads GROUP BY GROUPING SETS ((campaign_id), (country), ())',
  'SELECT DISTINCT ON (campaign_id) campaign_id, id FROM ads ORDER BY campaign_id, id DESC',
  'SELECT id FROM ads UNION SELECT id FROM campaigns EXCEPT SELECT ad_id FROM clicks',
  'SELECT * FROM campaigns c WHERE EXISTS (SELECT 1 FROM ads a WHERE a.campaign_id = c.id)',
  'SELECT * FROM campaigns WHERE id NOT IN (SELECT campaign_id FROM ads WHERE campaign_id IS NOT NULL)',
  'SELECT c.id, (SELECT count(*) FROM ads a WHERE a.campaign_id = c.id) FROM campaigns c',
  'SELECT (SELECT max(amount) FROM clicks), (SELECT count(*) FROM companies)',
  'SELECT * FROM countries WHERE code = ANY (SELECT country FROM ads)',
  'WITH RECURSIVE r(n) AS (SELECT min(id) FROM ads UNION ALL SELECT n + 1 FROM r WHERE n < (SELECT max(id) FROM clicks)) SELECT * FROM r',
  'WITH ads AS (SELECT 42 AS id) SELECT * FROM ads',
  'WITH x AS (SELECT * FROM ads) SELECT x.id, y.id FROM x JOIN x y ON x.campaign_id = y.campaign_id',
  'SELECT * FROM campaigns c, LATERAL (SELECT a.id FROM ads a WHERE a.campaign_id = c.id ORDER BY a.id LIMIT 1) x',
  'SELECT * FROM campaigns c LEFT JOIN LATERAL (SELECT a.id FROM ads a WHERE a.campaign_id = c.id) x ON true',
  'TABLE ads',
  'SELECT * FROM ONLY ads a',
  'SELECT x, y FROM ads AS a(x, y)',
  'SELECT count(*) FILTER (WHERE id > (SELECT min(id) FROM campaigns)) FROM clicks',
  'SELECT * FROM ad_titles',
  'SELECT * FROM "Notes"',
  'SELECT "Name" FROM app.users u',
  'SELECT * FROM users',
  'SELECT ads.* FROM ads, companies WHERE companies.id = ads.company_id',
  "SELECT 'é—ü', title FROM ads WHERE title <> 'ça'",
  'SELECT id FROM ads ORDER BY (SELECT count(*) FROM clicks WHERE clicks.ad_id = ads.id), id',
  'VALUES (1), (2)',
  'SELECT count(*) FROM pg_class WHERE relname = $$ads$$',
  'SELECT * FROM ads WHERE id = 3 FOR UPDATE',
  'SELECT * FROM ads a JOIN campaigns c ON c.id = a.campaign_id FOR UPDATE OF a',
  'SELECT * FROM (SELECT * FROM ads a FULL JOIN clicks k ON k.ad_id = a.id) s',
  'SELECT * FROM ads a RIGHT JOIN campaigns c USING (id)',
  'SELECT * FROM ads FULL JOIN campaigns USING (id)',
  'SELECT * FROM ads a LEFT JOIN clicks k ON k.ad_id = a.id LEFT JOIN campaigns c ON c.id = a.campaign_id',
  'SELECT * FROM campaigns c LEFT JOIN (ads a LEFT JOIN clicks k ON k.ad_id = a.id) ON a.campaign_id = c.id',
  'SELECT * FROM countries k LEFT JOIN (ads a JOIN campaigns c ON c.id = a.campaign_id) ON a.country = k.code',
  'SELECT * FROM countries k FULL JOIN ads a ON a.country = k.code',
  'SELECT * FROM ads a RIGHT JOIN (campaigns c LEFT JOIN clicks k ON k.ad_id = c.id) ON a.id = k.ad_id',
  'SELECT * FROM ads WHERE campaign_id IN (VALUES (1), (2))',
  'SELECT x.* FROM (TABLE ads) x',
  'SELECT id FROM ads INTERSECT ALL (SELECT ad_id FROM clicks ORDER BY 1 LIMIT 3)',
  'SELECT * FROM clicks WHERE ad_id = ANY (ARRAY(SELECT id FROM ads))',
  'SELECT a FROM ads a',
  'SELECT count(*) FROM ads TABLESAMPLE BERNOULLI (100)',
  "SELECT * FROM ads WHERE title = 'ad 1.1' -- comment",
  'SELECT * FROM ads a WHERE NOT EXISTS (SELECT FROM clicks k WHERE k.ad_id = a.id)',
  'SELECT DISTINCT campaign_id FROM ads ORDER BY 1',
  'SELECT * FROM ads a JOIN LATERAL (SELECT * FROM clicks k WHERE k.ad_id = a.id) s ON true',
  'SELECT * FROM ads WHERE (id, campaign_id) IN (SELECT id, campaign_id FROM ads WHERE id < 3)',
  'SELECT campaign_id, array_agg(id ORDER BY id) FROM ads GROUP BY ROLLUP (campaign_id)',
  'WITH a AS (SELECT * FROM ads), b AS (SELECT a.id FROM a JOIN clicks ON clicks.ad_id = a.id) SELECT count(*) FROM b',
  'SELECT * FROM ads WHERE id = 1 UNION ALL (SELECT * FROM ads WHERE id = 2 LIMIT 1)',
  'SELECT id, title FROM ads WHERE id = $$2$$::int OR title ILIKE $$%.3$$ ORDER BY id FETCH FIRST 2 ROWS ONLY',
  'SELECT c.name, sum(k.amount) FROM campaigns c JOIN ads a ON a.campaign_id = c.id JOIN clicks k ON k.ad_id = a.id GROUP BY c.name HAVING sum(k.amount) > 0',
  'SELECT * FROM ads WHERE country IS NULL AND EXISTS (SELECT 1 FROM countries)',
  'SELECT (SELECT title FROM ads x WHERE x.id = k.ad_id), k.id FROM clicks k',
  'SELECT * FROM generate_series(1, 3) g LEFT JOIN ads ON ads.id = g',
  'SELECT * FROM ads WHERE id IN (SELECT ad_id FROM clicks GROUP BY ad_id HAVING count(*) > 1)',
  'SELECT public.ads.id, c.id FROM public.ads FULL JOIN campaigns c ON c.id = public.ads.campaign_id',
]

const WRITES: { sql: string; params?: unknown[] }[] = [
  { sql: "INSERT INTO ads (id, campaign_id, title) VALUES (100, 1, 'new'), (101, 2, 'new2') RETURNING *" },
  { sql: 'INSERT INTO ads (id, title) VALUES ($1, $2) RETURNING id, company_id', params: [102, 'p'] },
  { sql: "INSERT INTO ads (id, company_id, title) VALUES (103, $1, 'guarded') RETURNING *", params: ['TENANT'] },
  { sql: 'INSERT INTO ads (id, title) SELECT id + 200, name FROM campaigns RETURNING *' },
  { sql: "INSERT INTO ads (id, title) SELECT id + 300, name FROM campaigns UNION SELECT 399, 'u' RETURNING *" },
  { sql: 'INSERT INTO ads DEFAULT VALUES RETURNING *'.replace('ads', 'companies').replace('companies', '"Notes"') },
  { sql: "INSERT INTO ads (id, title) VALUES (1, 'dup') ON CONFLICT (company_id, id) DO UPDATE SET title = EXCLUDED.title RETURNING *" },
  { sql: "INSERT INTO ads (id, title) VALUES (2, 'dup') ON CONFLICT DO NOTHING RETURNING *" },
  { sql: "UPDATE ads SET title = title || '!' WHERE id < 4 RETURNING *" },
  { sql: 'UPDATE ads SET title = c.name FROM campaigns c WHERE c.id = ads.campaign_id RETURNING ads.id, ads.title' },
  { sql: 'UPDATE ads SET company_id = $1 WHERE id = 2 RETURNING *', params: ['TENANT'] },
  { sql: 'DELETE FROM clicks WHERE amount > 3 RETURNING *' },
  { sql: 'DELETE FROM ads a USING campaigns c WHERE a.campaign_id = c.id AND c.id = 2 RETURNING a.id' },
  { sql: 'WITH d AS (DELETE FROM clicks WHERE ad_id IN (SELECT id FROM ads WHERE campaign_id = 1) RETURNING *) SELECT count(*) FROM d' },
  {
    sql: 'MERGE INTO ads a USING campaigns c ON a.id = c.id WHEN MATCHED THEN UPDATE SET title = c.name WHEN NOT MATCHED THEN INSERT (id, title) VALUES (c.id + 500, c.name)',
  },
  { sql: 'UPDATE ads a SET title = k.amount::text FROM clicks k LEFT JOIN campaigns c ON c.id = k.ad_id WHERE k.ad_id = a.id RETURNING a.id, a.title' },
  { sql: 'DELETE FROM ads WHERE id IN (SELECT ad_id FROM clicks) RETURNING id' },
  {
    sql: 'INSERT INTO clicks (id, ad_id, amount) SELECT 100 + id, id, 0 FROM ads WHERE NOT EXISTS (SELECT 1 FROM clicks WHERE clicks.ad_id = ads.id) RETURNING *',
  },
  { sql: 'WITH u AS (UPDATE ads SET title = upper(title) RETURNING id) DELETE FROM clicks WHERE ad_id IN (SELECT id FROM u) RETURNING *' },
  { sql: "INSERT INTO campaigns (id, name) VALUES (9, 'nine') RETURNING *" },
  { sql: 'INSERT INTO clicks VALUES (DEFAULT, 77, 1, 5) RETURNING *' },
  { sql: 'INSERT INTO app.users ("Name", id) VALUES ($$n$$, 9) RETURNING *' },
  { sql: 'UPDATE ads SET campaign_id = NULL WHERE campaign_id NOT IN (SELECT id FROM campaigns) RETURNING id' },
  {
    sql: 'MERGE INTO clicks k USING (SELECT id FROM ads WHERE id < 4) s ON k.ad_id = s.id WHEN MATCHED THEN UPDATE SET amount = k.amount + 1 WHEN NOT MATCHED THEN INSERT (id, ad_id, amount) VALUES (s.id + 100, s.id, 0)',
  },
  { sql: 'MERGE INTO ads a USING clicks k ON a.id = k.id WHEN MATCHED AND k.amount > 2 THEN DELETE' },
  { sql: 'DELETE FROM ads'.replace('ads', 'campaigns c USING ads a WHERE a.campaign_id = c.id AND a.id > 4') },
  { sql: 'UPDATE ads SET (campaign_id, title) = (SELECT c.id, c.name FROM campaigns c ORDER BY c.id LIMIT 1) RETURNING id, campaign_id, title' },
  {
    sql: "INSERT INTO ads (id, title) SELECT 2000 + id, name FROM campaigns WHERE id = 2 UNION ALL SELECT 3000 + id, 'x' FROM clicks WHERE id > 6 RETURNING *",
  },
  { sql: 'MERGE INTO ads a USING campaigns c JOIN clicks k ON k.id = c.id ON a.id = c.id WHEN MATCHED THEN UPDATE SET title = k.amount::text' },
  { sql: 'DELETE FROM ads' },
]

const SNAPSHOT_TABLES = ['companies', 'campaigns', 'ads', 'clicks', '"Notes"', 'app.users', 'countries']

function canon(rows: unknown[]): string[] {
  return rows.map((r) => JSON.stringify(r)).sort()
}

t.test('rewritten statements match a tenant-only database', async (t) => {
  await initParser()
  const server = await startPostgres()
  t.teardown(() => server.stop())
  server.sql('CREATE DATABASE alltenants')
  server.sql('CREATE DATABASE only1')
  server.sql('CREATE DATABASE only2')
  server.sql(SCHEMA + data([1, 2, 3]), 'alltenants')
  // on a tenant's own database the tenant column defaults to the tenant (what an app relying on
  // pgtenant's automatic tenant column would see)
  const defaults = (n: number) =>
    ['companies:id', 'campaigns:company_id', 'ads:company_id', 'clicks:company_id', 'app.users:company_id']
      .map((x) => `ALTER TABLE ${x.split(':')[0]} ALTER ${x.split(':')[1]} SET DEFAULT ${n};`)
      .join('\n') + `ALTER TABLE "Notes" ALTER tenant_id SET DEFAULT '${n}';`
  server.sql(SCHEMA + data([1]) + defaults(1), 'only1')
  server.sql(SCHEMA + data([2]) + defaults(2), 'only2')
  for (const db of ['alltenants', 'only1', 'only2']) server.sql(`ALTER DATABASE ${db} SET search_path = public, app`)
  const connect = async (db: string) => {
    const c = new pg.Client({ host: server.socketDir, port: server.port, user: 'postgres', database: db })
    await c.connect()
    return c
  }
  const all = await connect('alltenants')
  const only: Record<string, pg.Client> = { '1': await connect('only1'), '2': await connect('only2') }
  t.teardown(async () => {
    await all.end()
    for (const c of Object.values(only)) await c.end()
  })

  const { rows } = await all.query(SCHEMA_DISCOVERY_SQL, ['company_id'])
  const facts: SchemaFacts = buildSchemaFacts(rows as SchemaRow[], {
    setting: 'app.tenant',
    column: 'company_id',
    tables: { companies: 'id', Notes: 'tenant_id' },
    reference: ['countries'],
    unknown: 'reject',
    pattern: '.*',
  })
  t.equal(facts.tenantTables.get('public.ads'), 'company_id', 'discovered ads')
  t.equal(facts.tenantTables.get('public.ad_titles'), 'company_id', 'view with the tenant column is a tenant relation')
  t.equal(facts.tenantTables.get('public.companies'), 'id', 'explicit column')
  t.equal(facts.tenantColumnTypes?.get('public.ads'), 'integer')
  t.ok(facts.knownRelations.has('pg_catalog.pg_class'))
  t.ok(facts.referenceTables.has('public.countries'))

  const cache = new RewriteCache()
  const ctx = (tenant: string): RewriteContext => ({ mode: 'tenant', tenant, setting: 'app.tenant', searchPath: ['public', 'app'], facts })

  for (const tenant of ['1', '2']) {
    await t.test(`reads, tenant ${tenant}`, async (t) => {
      for (const q of READS) {
        const r = rewriteQuery(q, ctx(tenant), cache)
        if (r.refusal || r.sql === undefined) {
          t.fail(`${q}: refused ${r.refusal?.message}`)
          continue
        }
        const expected = canon((await only[tenant].query(q)).rows)
        let got: string[]
        try {
          got = canon((await all.query(r.sql)).rows)
        } catch (e) {
          t.fail(`${q}\n  → ${r.sql}\n  failed: ${(e as Error).message}`)
          continue
        }
        t.same(got, expected, `${q}\n  → ${r.sql}`)
      }
    })

    await t.test(`writes, tenant ${tenant}`, async (t) => {
      for (const w of WRITES) {
        const r = rewriteQuery(w.sql, ctx(tenant), cache)
        if (r.refusal || r.sql === undefined) {
          t.fail(`${w.sql}: refused ${r.refusal?.message}`)
          continue
        }
        const params = w.params?.map((p) => (p === 'TENANT' ? tenant : p))
        const snapshot = async (c: pg.Client, filter: boolean) => {
          const out: Record<string, string[]> = {}
          for (const tb of SNAPSHOT_TABLES) {
            const col = tb === 'companies' ? 'id' : tb === '"Notes"' ? 'tenant_id' : tb === 'countries' ? null : 'company_id'
            const where = filter && col ? ` WHERE ${col}::text = '${tenant}'` : ''
            out[tb] = canon((await c.query(`SELECT * FROM ${tb}${where}`)).rows)
          }
          return out
        }
        const othersBefore = await all.query(
          'SELECT (SELECT count(*) FROM ads WHERE company_id <> $1::int) a, (SELECT sum(hashtext(ads::text)) FROM ads WHERE company_id <> $1::int) h, (SELECT sum(hashtext(clicks::text)) FROM clicks WHERE company_id <> $1::int) c',
          [tenant],
        )
        await all.query('BEGIN')
        await only[tenant].query('BEGIN')
        try {
          // serial ids differ between the databases: compare rows without them
          const strip = (rows: Record<string, unknown>[]) =>
            canon(rows.map((x) => ({ ...x, id: typeof x.id === 'number' && w.sql.includes('"Notes"') ? 0 : x.id })))
          const exp = strip((await only[tenant].query(w.sql, params)).rows)
          const got = strip((await all.query(r.sql, params)).rows)
          t.same(got, exp, `${w.sql}\n  → ${r.sql}: returned rows`)
          const a = await snapshot(all, true)
          const b = await snapshot(only[tenant], false)
          if (w.sql.includes('"Notes"')) {
            a['"Notes"'] = a['"Notes"'].map((x) => x.replace(/"id":\d+/, ''))
            b['"Notes"'] = b['"Notes"'].map((x) => x.replace(/"id":\d+/, ''))
            a['"Notes"'].sort()
            b['"Notes"'].sort()
          }
          t.same(a, b, `${w.sql}: tenant ${tenant}'s data after the statement`)
          const othersAfter = await all.query(
            'SELECT (SELECT count(*) FROM ads WHERE company_id <> $1::int) a, (SELECT sum(hashtext(ads::text)) FROM ads WHERE company_id <> $1::int) h, (SELECT sum(hashtext(clicks::text)) FROM clicks WHERE company_id <> $1::int) c',
            [tenant],
          )
          t.same(othersAfter.rows, othersBefore.rows, `${w.sql}: other tenants untouched`)
        } catch (e) {
          t.fail(`${w.sql}\n  → ${r.sql}\n  failed: ${(e as Error).message}`)
        } finally {
          await all.query('ROLLBACK')
          await only[tenant].query('ROLLBACK')
        }
      }
    })
  }

  await t.test('guards raise at execution time', async (t) => {
    const c = ctx('1')
    for (const [sql, params] of [
      ["INSERT INTO ads (id, company_id, title) VALUES (900, $1, 'x')", [2]],
      ['UPDATE ads SET company_id = $1 WHERE id = 1', [3]],
      ['INSERT INTO ads (id, company_id) SELECT id + 900, company_id + 1 FROM campaigns', []],
      ['INSERT INTO "Notes" (tenant_id, body) VALUES ($1, \'x\')', ['2']],
    ] as [string, unknown[]][]) {
      const r = rewriteQuery(sql, c, cache)
      t.notOk(r.refusal, `${sql} is rewritten, not refused`)
      await all.query('BEGIN')
      await t.rejects(all.query(r.sql!, params), /pgtenant: (company_id|tenant_id) must equal the session tenant/, sql)
      await all.query('ROLLBACK')
    }
    // NULL passes the guard, as on the tenant's own database: the NOT NULL constraint rejects it
    await all.query('BEGIN')
    await t.rejects(all.query(rewriteQuery('INSERT INTO ads (id, company_id) VALUES (901, NULL)', c, cache).sql!), /null value in column "company_id"/)
    await all.query('ROLLBACK')
    // a prepared statement with the guard: generic plans too
    const r = rewriteQuery('INSERT INTO ads (id, company_id) VALUES ($1, $2)', c, cache)
    await all.query('BEGIN')
    await all.query(`PREPARE g(int, int) AS ${r.sql}`)
    for (let i = 0; i < 7; i++) await all.query(`EXECUTE g(${1000 + i}, 1)`)
    await t.rejects(all.query('EXECUTE g(2000, 2)'), /pgtenant: company_id must equal the session tenant/, 'generic plan guard')
    await all.query('ROLLBACK')
  })

  await t.test('hostile tenant values stay data', async (t) => {
    for (const tenant of ["a'b", 'a\\b', "'; DROP TABLE ads; --", 'é—😀']) {
      const r = rewriteQuery('SELECT count(*) AS n FROM "Notes" n WHERE n.body IS NOT NULL', ctx(tenant), cache)
      const res = await all.query(r.sql!)
      t.equal(Number(res.rows[0].n), 0, `tenant ${JSON.stringify(tenant)}: no rows, statement intact`)
      const ins = rewriteQuery('INSERT INTO "Notes" (body) VALUES (\'x\') RETURNING tenant_id', ctx(tenant), cache)
      await all.query('BEGIN')
      const got = await all.query(ins.sql!)
      t.equal(got.rows[0].tenant_id, tenant, 'the tenant value round-trips byte for byte')
      await all.query('ROLLBACK')
    }
    const count = await all.query('SELECT count(*) AS n FROM ads')
    t.equal(Number(count.rows[0].n), 18, 'ads table still there')
  })

  await t.test('cross-tenant unique keys: ON CONFLICT never touches another tenant', async (t) => {
    await all.query('CREATE TABLE tokens (code text PRIMARY KEY, company_id int NOT NULL, v text)')
    await all.query("INSERT INTO tokens VALUES ('shared', 2, 'owned by 2')")
    const f2 = buildSchemaFacts((await all.query(SCHEMA_DISCOVERY_SQL, ['company_id'])).rows as SchemaRow[], {
      setting: 'app.tenant',
      column: 'company_id',
      tables: { companies: 'id', Notes: 'tenant_id' },
      reference: ['countries'],
      unknown: 'reject',
      pattern: '.*',
    })
    const c: RewriteContext = { mode: 'tenant', tenant: '1', setting: 'app.tenant', searchPath: ['public'], facts: f2 }
    const r = rewriteQuery("INSERT INTO tokens (code, v) VALUES ('shared', 'hijack') ON CONFLICT (code) DO UPDATE SET v = EXCLUDED.v RETURNING *", c)
    const res = await all.query(r.sql!)
    t.equal(res.rowCount, 0, 'no row inserted or updated')
    const row = await all.query("SELECT * FROM tokens WHERE code = 'shared'")
    t.same(row.rows, [{ code: 'shared', company_id: 2, v: 'owned by 2' }], "tenant 2's row unchanged")
    await all.query('CREATE TABLE things (id int, org uuid NOT NULL)')
    const f3 = buildSchemaFacts((await all.query(SCHEMA_DISCOVERY_SQL, ['org'])).rows as SchemaRow[], {
      setting: 'app.tenant',
      column: 'org',
      tables: {},
      reference: [],
      unknown: 'allow',
      pattern: '.*',
    })
    t.equal(f3.tenantColumnTypes?.get('public.things'), 'uuid')
    const org = '6f1c1f3e-6d2b-4c53-9a57-0d2f3c1b2a10'
    const cu: RewriteContext = { mode: 'tenant', tenant: org, setting: 'app.tenant', searchPath: ['public'], facts: f3 }
    const ins = rewriteQuery('INSERT INTO things (id, org) VALUES ($1, $2) RETURNING org', cu)
    t.equal((await all.query(ins.sql!, [1, org])).rows[0].org, org, 'uuid parameter equal to the tenant passes the guard')
    await t.rejects(all.query(ins.sql!, [2, '00000000-0000-0000-0000-000000000000']), /pgtenant: org must equal the session tenant/)
    const sel = rewriteQuery('SELECT count(*)::int AS n FROM things', cu)
    t.equal((await all.query(sel.sql!)).rows[0].n, 1)
    await all.query('DROP TABLE tokens, things')
  })

  await t.test('COPY TO and cursors', async (t) => {
    const c = ctx('2')
    const r = rewriteQuery('COPY ads (id, title) TO STDOUT', c, cache)
    t.match(r.sql!, /^COPY \(SELECT id, title FROM ads WHERE company_id = '2'\) TO STDOUT$/)
    await all.query('BEGIN')
    const d = rewriteQuery('DECLARE cur CURSOR FOR SELECT id FROM ads ORDER BY id', c, cache)
    await all.query(d.sql!)
    const f = await all.query('FETCH ALL FROM cur')
    t.same(
      f.rows.map((x) => x.id),
      [1, 2, 3, 4, 5, 6],
    )
    await all.query('ROLLBACK')
    // UPDATE … WHERE CURRENT OF: works on the tenant's row, fails on another tenant's row
    const u = rewriteQuery("UPDATE ads SET title = 'cur' WHERE CURRENT OF c2", c, cache)
    await all.query('BEGIN')
    await all.query(rewriteQuery('DECLARE c2 CURSOR FOR SELECT * FROM ads WHERE id = 3', c, cache).sql!)
    await all.query('FETCH NEXT FROM c2')
    t.equal((await all.query(u.sql!)).rowCount, 1, 'own row updated through the cursor')
    await all.query('ROLLBACK')
    await all.query('BEGIN')
    await all.query('DECLARE c2 CURSOR FOR SELECT * FROM ads WHERE company_id = 3 AND id = 3') // a stale cursor on tenant 3
    await all.query('FETCH NEXT FROM c2')
    await t.rejects(all.query(u.sql!), /pgtenant: company_id must equal the session tenant/, "another tenant's row through a cursor fails")
    await all.query('ROLLBACK')
    const e = rewriteQuery('EXPLAIN (COSTS OFF) SELECT * FROM ads', c, cache)
    const plan = (await all.query(e.sql!)).rows.map((x) => x['QUERY PLAN']).join('\n')
    t.match(plan, /company_id = 2/, 'EXPLAIN shows the tenant filter')
  })
})
