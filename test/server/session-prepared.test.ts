// Bounded prepared statements on a server connection a client keeps (issue 15): under session
// pooling, and under transaction pooling while a session is pinned (SQL PREPARE), the client
// never lets go of its server connection, so the shared statements it prepares there must be
// trimmed at its transaction boundaries (least recently used out, pool.max_prepared_statements)
// as they are when connections go back to the pool. Clients prepare 10,000 distinct named and
// unnamed statements through node-postgres and postgres.js; the server's own
// pg_prepared_statements (read on the same server connection) stays within the limit, and every
// statement, evicted or not, still answers under the client's name.
import t from 'tap'
import pg from 'pg'
import postgres from 'postgres'
import { startPostgres } from '../helpers/pg-server.js'
import { startProxy, basicYaml } from '../helpers/proxy.js'

const LIMIT = 50
const N = 10_000

async function serverCount(c: pg.Client): Promise<number> {
  return (await c.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'pgt\\_%'")).rows[0].n
}

t.test('session pooling: 10,000 distinct statements stay within max_prepared_statements on the server', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const proxy = await startProxy(
    basicYaml(server, { pool: 2, mode: 'session' }).replace('wait_timeout_ms: 20000 }', `wait_timeout_ms: 20000, max_prepared_statements: ${LIMIT} }`),
  )
  t.teardown(() => proxy.stop())
  const url = proxy.url('app', 'app_pw', 'postgres')

  t.test('node-postgres, named statements', async (t) => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    t.teardown(() => c.end())
    const wrong: string[] = []
    let peak = 0
    for (let i = 0; i < N; i++) {
      const r = await c.query({ name: `s${i}`, text: `SELECT $1::int + ${i} AS v`, values: [1] })
      if (r.rows[0].v !== i + 1) wrong.push(`s${i}: ${r.rows[0].v}`)
      if (i % 1000 === 999) peak = Math.max(peak, await serverCount(c))
    }
    t.same(wrong, [], 'every statement answered right')
    t.ok(peak <= LIMIT, `at most ${LIMIT} shared statements on the server connection (peak ${peak}; ${N} without the bound)`)
    t.ok(peak >= LIMIT / 2, `recent statements stay prepared (${peak})`)
    // The client's own names keep working, long after their server statements were evicted.
    for (const i of [0, 1, 4999, N - 1]) {
      const r = await c.query({ name: `s${i}`, text: `SELECT $1::int + ${i} AS v`, values: [10] })
      t.equal(r.rows[0].v, i + 10, `s${i} runs again under the client's name`)
    }
    // And inside a transaction, the statements it uses are not closed under it.
    await c.query('BEGIN')
    for (let i = 0; i < 2 * LIMIT; i++) await c.query({ name: `s${i}`, text: `SELECT $1::int + ${i} AS v`, values: [1] })
    t.equal(await serverCount(c), 2 * LIMIT, 'statements used in the open transaction all stay until it ends')
    await c.query('COMMIT')
    // The next statement prepared after it (s7000 was evicted long ago) trims the connection again.
    await c.query({ name: 's7000', text: 'SELECT $1::int + 7000 AS v', values: [1] })
    const after = await serverCount(c)
    t.ok(after <= LIMIT, `trimmed at the next Parse after the transaction (${after})`)
  })

  t.test('node-postgres, unnamed statements', async (t) => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    t.teardown(() => c.end())
    const wrong: string[] = []
    for (let i = 0; i < N; i++) {
      const r = await c.query(`SELECT $1::int + ${i} AS v`, [1])
      if (r.rows[0].v !== i + 1) wrong.push(`u${i}`)
    }
    t.same(wrong, [], 'every unnamed statement answered right')
    t.equal(await serverCount(c), 0, 'unnamed statements leave nothing prepared')
  })

  t.test('postgres.js (prepares every statement under its own name)', async (t) => {
    const sql = postgres(url, { max: 1, idle_timeout: 0, onnotice: () => undefined })
    t.teardown(() => sql.end({ timeout: 1 }))
    const wrong: string[] = []
    let peak = 0
    const count = async (): Promise<number> =>
      (await sql.unsafe("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'pgt\\_%'").simple())[0].n as number
    for (let i = 0; i < N; i++) {
      const r = await sql.unsafe(`SELECT $1::int + ${i} AS v`, [1], { prepare: true })
      if (r[0].v !== i + 1) wrong.push(`p${i}: ${r[0].v}`)
      if (i % 1000 === 999) peak = Math.max(peak, await count())
    }
    t.same(wrong, [], 'every statement answered right')
    t.ok(peak <= LIMIT, `at most ${LIMIT} shared statements on the server connection (peak ${peak})`)
    const again = await sql.unsafe('SELECT $1::int + 0 AS v', [7], { prepare: true })
    t.equal(again[0].v, 7, "the first statement, long evicted, runs again under postgres.js's name")
  })
})

t.test('transaction pooling, pinned by SQL PREPARE: statements are trimmed too', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const proxy = await startProxy(
    basicYaml(server, { pool: 2 }).replace('wait_timeout_ms: 20000 }', `wait_timeout_ms: 20000, max_prepared_statements: ${LIMIT} }`),
  )
  t.teardown(() => proxy.stop())
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw', 'postgres') })
  await c.connect()
  t.teardown(() => c.end())
  await c.query('PREPARE pin AS SELECT 1') // pins the session to its server connection
  let peak = 0
  for (let i = 0; i < 2000; i++) {
    const r = await c.query({ name: `s${i}`, text: `SELECT $1::int + ${i} AS v`, values: [1] })
    if (r.rows[0].v !== i + 1) t.fail(`s${i}`)
    if (i % 500 === 499) peak = Math.max(peak, await serverCount(c))
  }
  t.ok(peak <= LIMIT, `at most ${LIMIT} on the pinned connection (peak ${peak})`)
  t.equal((await c.query('EXECUTE pin')).rows[0]['?column?'], 1, "the client's SQL-level statement is untouched")
})
