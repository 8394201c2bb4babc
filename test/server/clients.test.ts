// Real clients through pgtenant as a transparent pooler (no tenant config):
// psql, node-postgres and postgres.js behave as they do against PostgreSQL directly.
import t from 'tap'
import pg from 'pg'
import postgres from 'postgres'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml, run, psqlArgs } from '../helpers/proxy.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`CREATE TABLE items (id int PRIMARY KEY, name text, payload text);
  INSERT INTO items SELECT g, 'item ' || g, repeat('x', 10) FROM generate_series(1, 1000) g;
  GRANT ALL ON items TO PUBLIC;`)
const proxy = await startProxy(basicYaml(server, { pool: 5 }))
t.teardown(() => proxy.stop())
const url = proxy.url('app', 'app_pw')

t.test('psql: queries, errors, multi-statement, \\copy both ways', async (t) => {
  const r = await run('psql', psqlArgs(url, 'SELECT count(*), sum(id) FROM items'))
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.trim(), '1000|500500')
  const err = await run('psql', psqlArgs(url, 'SELECT * FROM no_such_table'))
  t.not(err.code, 0)
  t.match(err.stderr, /relation "no_such_table" does not exist/)
  const multi = await run('psql', ['-X', '-A', '-t', url], 'SELECT 1; SELECT 2;\nBEGIN; SELECT 3; COMMIT;\n')
  t.equal(multi.stdout.trim().split('\n').join(','), '1,2,BEGIN,3,COMMIT')
  const out = await run('psql', psqlArgs(url, '\\copy (SELECT id, name FROM items WHERE id <= 3 ORDER BY id) TO STDOUT WITH (FORMAT csv)'))
  t.equal(out.stdout, '1,item 1\n2,item 2\n3,item 3\n')
  const copyIn = await run(
    'psql',
    [...psqlArgs(url), '-c', 'CREATE TEMP TABLE x (a int, b text)', '-c', '\\copy items (id, name) FROM STDIN WITH (FORMAT csv)'],
    '5001,five\n5002,six\n',
  )
  t.equal(copyIn.code, 0, copyIn.stderr)
  t.equal(server.sql('SELECT count(*) FROM items WHERE id > 5000'), '2')
  server.sql('DELETE FROM items WHERE id > 5000')
})

t.test('node-postgres: named prepared statements survive transaction pooling across many clients', async (t) => {
  const clients = await Promise.all(
    Array.from({ length: 12 }, async () => {
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      return c
    }),
  )
  for (let round = 0; round < 5; round++) {
    await Promise.all(
      clients.map(async (c, i) => {
        const res = await c.query({ name: 'by-id', text: 'SELECT id, name FROM items WHERE id = $1', values: [i + round + 1] })
        t.equal(res.rows[0].id, i + round + 1)
        const res2 = await c.query({ name: 'count', text: 'SELECT count(*)::int AS n FROM items WHERE id <= $1', values: [i + 1] })
        t.equal(res2.rows[0].n, i + 1)
      }),
    )
  }
  await Promise.all(clients.map((c) => c.end()))
})

t.test('node-postgres: errors inside transactions, then the session is usable', async (t) => {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  await c.query('BEGIN')
  await c.query("INSERT INTO items VALUES (9001, 'tx', '')")
  await t.rejects(c.query('SELECT 1/0'), /division by zero/)
  await t.rejects(c.query('SELECT 1'), /current transaction is aborted/)
  await c.query('ROLLBACK')
  t.equal((await c.query('SELECT count(*)::int AS n FROM items WHERE id = 9001')).rows[0].n, 0, 'rolled back')
  await t.rejects(c.query({ text: 'SELECT $1::int', values: ['not a number'] }), /invalid input syntax/)
  t.equal((await c.query({ text: 'SELECT $1::int AS v', values: [7] })).rows[0].v, 7)
  await c.end()
})

t.test('settings are kept per client under transaction pooling and never leak', async (t) => {
  const small = await startProxy(basicYaml(server, { pool: 1 }))
  const a = new pg.Client({ connectionString: small.url('app', 'app_pw') })
  const b = new pg.Client({ connectionString: small.url('app', 'app_pw') })
  await a.connect()
  await b.connect()
  await a.query("SET TimeZone = 'Asia/Tokyo'")
  await a.query("SET application_name = 'client-a'")
  await b.query("SET statement_timeout = '1234ms'")
  for (let i = 0; i < 3; i++) {
    t.equal((await a.query('SHOW TimeZone')).rows[0].TimeZone, 'Asia/Tokyo')
    t.equal((await b.query('SHOW TimeZone')).rows[0].TimeZone, server.sql('SHOW TimeZone'))
    t.equal((await a.query('SHOW statement_timeout')).rows[0].statement_timeout, '0')
    t.equal((await b.query('SHOW statement_timeout')).rows[0].statement_timeout, '1234ms')
    t.equal((await a.query('SHOW application_name')).rows[0].application_name, 'client-a')
  }
  await b.query('BEGIN')
  await b.query("SET search_path = 'nowhere'")
  await b.query('ROLLBACK')
  t.equal((await b.query('SHOW search_path')).rows[0].search_path, '"$user", public', 'a rolled-back SET is not replayed')
  await a.query('RESET TimeZone')
  t.equal((await a.query('SHOW TimeZone')).rows[0].TimeZone, server.sql('SHOW TimeZone'))
  await a.end()
  await b.end()
  await small.stop()
})

t.test('startup options and parameters reach the server session', async (t) => {
  const c = new pg.Client({ connectionString: url, application_name: 'from-startup', options: '-c work_mem=7MB' })
  await c.connect()
  t.equal((await c.query('SHOW application_name')).rows[0].application_name, 'from-startup')
  t.equal((await c.query('SHOW work_mem')).rows[0].work_mem, '7MB')
  t.equal((await c.query('SELECT current_user AS u')).rows[0].u, ROLES.scram.user, 'backend URL user')
  await c.end()
})

t.test('LISTEN is refused under transaction pooling, with a clear error', async (t) => {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  await t.rejects(c.query('LISTEN jobs'), { code: '0A000', message: /LISTEN is not supported under transaction pooling/ })
  t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1)
  await c.end()
})

t.test('postgres.js: pipelined prepared queries, COPY, a 100 MB result', async (t) => {
  const sql = postgres(url, { max: 4, prepare: true, onnotice: () => undefined })
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => sql`SELECT ${i + 1}::int AS v, name FROM items WHERE id = ${(i % 1000) + 1}`))
  t.same(
    results.map((r) => r[0].v),
    Array.from({ length: 200 }, (_, i) => i + 1),
  )
  const rows = await sql.begin(async (tx) => {
    await tx`CREATE TEMP TABLE copied (id int, name text) ON COMMIT DROP`
    const writable = await tx`COPY copied FROM STDIN`.writable()
    await new Promise<void>((resolve, reject) => {
      writable.on('error', reject)
      writable.on('finish', resolve)
      for (let i = 0; i < 1000; i++) writable.write(`${i}\tname ${i}\n`)
      writable.end()
    })
    return tx`SELECT count(*)::int AS n FROM copied`
  })
  t.equal(rows[0].n, 1000, 'COPY FROM STDIN through the proxy')
  const big = await sql`SELECT sum(length(repeat('x', 1000) || g))::bigint AS total, count(*)::int AS n FROM generate_series(1, 100) g`
  t.equal(big[0].n, 100)
  let bytes = 0
  let count = 0
  await sql`SELECT repeat('y', 1000) AS filler, g FROM generate_series(1, 100000) g`.cursor(5000, (batch) => {
    for (const r of batch) bytes += r.filler.length
    count += batch.length
  })
  t.equal(count, 100000)
  t.equal(bytes, 100_000_000, '100 MB of rows streamed through')
  await sql.end()
})

t.test('cancel request reaches the query on whichever server connection runs it', async (t) => {
  const sql = postgres(url, { max: 1 })
  const q = sql`SELECT pg_sleep(30)`
  const started = Date.now()
  setTimeout(() => q.cancel(), 300)
  await t.rejects(q, { code: '57014' })
  t.ok(Date.now() - started < 10000, 'cancelled well before the sleep ended')
  t.equal((await sql`SELECT 1 AS one`)[0].one, 1)
  await sql.end()
})

t.test('200 concurrent clients share a pool of 5', async (t) => {
  const clients = Array.from({ length: 200 }, () => new pg.Client({ connectionString: url }))
  await Promise.all(clients.map((c) => c.connect()))
  const sums = await Promise.all(
    clients.map(async (c, i) => {
      await c.query('BEGIN')
      const r = await c.query('SELECT $1::int + count(*)::int AS v FROM items WHERE id <= 10', [i])
      await c.query('COMMIT')
      return r.rows[0].v
    }),
  )
  t.same(
    sums,
    clients.map((_, i) => i + 10),
  )
  const backends = Number(server.sql(`SELECT count(*) FROM pg_stat_activity WHERE usename = '${ROLES.scram.user}'`))
  t.ok(backends <= 5 + 1, `server connections stay within the pool (saw ${backends})`)
  await Promise.all(clients.map((c) => c.end()))
})
