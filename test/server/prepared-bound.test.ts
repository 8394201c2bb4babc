// Bounded server-side prepared statements (issue 15 item 5): each server connection keeps at
// most pool.max_prepared_statements shared statements (least recently used closed first, with
// a Close sent before the next Parse and its reply swallowed), and the proxy's text → name
// map is bounded too. Checked on the server itself (pg_prepared_statements, read on the same
// server connection: pool size 1) through tenant rewriting, the pure pooler and a bypass user,
// and memory measured with 10,000 distinct statements (PREPARED_BOUND_LIMIT sets the limit of
// that block, e.g. 0 for the unbounded behaviour).
import t from 'tap'
import pg from 'pg'
import v8 from 'node:v8'
import vm from 'node:vm'
import { readFileSync } from 'node:fs'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml, type RunningProxy } from '../helpers/proxy.js'
import { PreparedStatements, SharedStatementNames, closeEvicted } from '../../server/backend/prepared.js'
import { ReplyQueue } from '../../server/session/reply-queue.js'

const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`

t.test('PreparedStatements: LRU, attachment protection, skipped Close', async (t) => {
  const p = new PreparedStatements(3)
  p.epoch = 1
  for (const n of ['a', 'b', 'c']) p.add(n)
  p.epoch = 2
  p.add('d')
  t.same([...p], ['b', 'c', 'd'], 'least recently used out')
  t.ok(p.has('b'))
  p.add('e')
  t.same([...p], ['d', 'b', 'e'], 'a use refreshes: c goes, not b')
  p.add('f')
  p.add('g')
  t.same([...p], ['d', 'b', 'e', 'f', 'g'], 'statements used in the current attachment are never evicted')
  t.equal(p.onServer, 7)
  p.epoch = 3
  p.add('h')
  t.same([...p], ['f', 'g', 'h'], 'the next attachment evicts down to the limit')
  const sent: string[] = []
  const q = new ReplyQueue(() => undefined)
  closeEvicted(p, q, (b) => sent.push(b.subarray(6, b.length - 1).toString()))
  t.same(sent, ['a', 'c', 'd', 'b', 'e'], 'one Close per evicted statement, oldest first')
  t.equal(q.length, 5)
  t.equal(p.onServer, 3)
  // The server skips them (an error earlier in the batch): they are still there, closed next time.
  q.error()
  t.equal(p.onServer, 8)
  t.ok(p.has('e'), 'an evicted statement still on the server is taken back instead of prepared again (no 42P05)')
  t.same(p.takeEvicted(), ['a', 'c', 'd', 'b'])
  p.clear()
  t.equal(p.onServer, 0)
  const unlimited = new PreparedStatements(0)
  for (let i = 0; i < 500; i++) unlimited.add(`s${i}`)
  t.equal(unlimited.size, 500, '0 = unlimited')

  const names = new SharedStatementNames(() => 3)
  const n1 = names.name('select 1', Buffer.alloc(2))
  t.equal(names.name('select 1', Buffer.alloc(2)), n1, 'same text, same name')
  for (const s of ['select 2', 'select 3', 'select 4']) names.name(s, Buffer.alloc(2))
  t.equal(names.size, 3, 'the map is bounded')
  const again = names.name('select 1', Buffer.alloc(2))
  t.not(again, n1, 'a forgotten text gets a new name, never an old one')
})

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  return c
}

/** Shared statements on the proxy's one server connection, as the server sees them. */
async function serverCount(c: pg.Client): Promise<number> {
  return (await c.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'pgt\\_%'")).rows[0].n
}

function proxyState(proxy: RunningProxy): { onConnection: number; names: number } {
  let onConnection = 0
  for (const pool of proxy.proxy.pools.pools.values()) for (const c of pool.idle) onConnection = Math.max(onConnection, c.prepared.onServer)
  const names = (proxy.proxy as unknown as { statementNames: SharedStatementNames }).statementNames.size
  return { onConnection, names }
}

t.test('one named statement for 300 tenants, a bypass user, the limit on the server connection', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  server.sql(`
    CREATE TABLE notes (tenant_id text NOT NULL, id int NOT NULL);
    INSERT INTO notes SELECT 't' || (g % 300), g FROM generate_series(0, 899) g;
    GRANT ALL ON notes TO ${ROLES.scram.user};`)
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
  ops: { password: ops_pw, bypass: true }
tenant: { column: tenant_id }
backends:
  main: { url: "postgres://${auth}@127.0.0.1:${server.port}/postgres", pool: 1 }
pool: { max_prepared_statements: 20 }
`)
  t.teardown(() => proxy.stop())
  const app = await client(proxy.url('app', 'app_pw'))
  const ops = await client(proxy.url('ops', 'ops_pw'))
  t.teardown(() => Promise.all([app.end(), ops.end()]))
  const wrong: string[] = []
  let peak = 0
  for (let i = 0; i < 300; i++) {
    await app.query(`SET app.tenant = 't${i}'`)
    const r = await app.query({ name: 'q', text: 'SELECT count(*)::int AS n, min(tenant_id) AS tenant FROM notes WHERE id >= $1', values: [0] })
    if (r.rows[0].n !== 3 || r.rows[0].tenant !== `t${i}`) wrong.push(`t${i}: ${JSON.stringify(r.rows[0])}`)
    if (i % 50 === 49) peak = Math.max(peak, await serverCount(ops))
  }
  t.same(wrong, [], 'every tenant got its own rows through the one named statement')
  const onServer = await serverCount(ops)
  t.ok(onServer <= 20 && peak <= 20, `at most 20 shared statements on the server connection (now ${onServer}, peak ${peak}; 300 before)`)
  t.ok(onServer >= 10, `the connection still keeps recent statements (${onServer})`)
  t.ok(proxyState(proxy).onConnection <= 20, `the proxy's view of the connection agrees (${proxyState(proxy).onConnection})`)

  // An evicted statement comes back: prepared again under its name, no 42P05, right rows.
  await app.query("SET app.tenant = 't0'")
  const back = await app.query({ name: 'q', text: 'SELECT count(*)::int AS n, min(tenant_id) AS tenant FROM notes WHERE id >= $1', values: [0] })
  t.same(back.rows[0], { n: 3, tenant: 't0' }, 'an evicted statement is prepared again when used')

  // A bypass user's own named statements are bounded the same way.
  for (let i = 0; i < 300; i++) {
    const r = await ops.query({ name: `b${i}`, text: `SELECT $1::int + ${i} AS v`, values: [1] })
    if (r.rows[0].v !== i + 1) wrong.push(`b${i}`)
  }
  t.same(wrong, [], 'bypass statements answer right')
  const afterBypass = await serverCount(ops)
  t.ok(afterBypass <= 20, `bypass user: at most 20 on the server connection (${afterBypass})`)
  // Every bypass statement still works after its server statement was evicted.
  const r = await ops.query({ name: 'b0', text: 'SELECT $1::int + 0 AS v', values: [41] })
  t.equal(r.rows[0].v, 41, 'the first bypass statement, long evicted, runs again')
})

t.test('pure pooler: 10,000 distinct named statements; memory', async (t) => {
  const limit = Number(process.env.PREPARED_BOUND_LIMIT ?? 100)
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const proxy = await startProxy(
    basicYaml(server, { pool: 1 }).replace('wait_timeout_ms: 20000 }', `wait_timeout_ms: 20000, max_prepared_statements: ${limit} }`),
  )
  t.teardown(() => proxy.stop())
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  const memory = (): { rss: number; heap: number } => {
    gc()
    const m = process.memoryUsage()
    return { rss: Math.round(m.rss / 1048576), heap: Math.round(m.heapUsed / 1048576) }
  }
  // Several clients, each with its own statements (a client's own cache of names is its business).
  const clients = await Promise.all(Array.from({ length: 4 }, () => client(proxy.url('app', 'app_pw', 'postgres'))))
  t.teardown(() => Promise.all(clients.map((c) => c.end())))
  await clients[0].query('SELECT 1')
  const before = memory()
  const started = Date.now()
  const pad = 'x'.repeat(200) // statements of realistic length
  await Promise.all(
    clients.map(async (c, k) => {
      for (let i = k; i < 10_000; i += clients.length) {
        const r = await c.query({ name: `s${i}`, text: `SELECT $1::int + ${i} AS v, '${pad}' AS pad`, values: [1] })
        if (r.rows[0].v !== i + 1) throw new Error(`s${i}: ${r.rows[0].v}`)
      }
    }),
  )
  const ms = Date.now() - started
  const after = memory()
  const onServer = await serverCount(clients[0])
  const state = proxyState(proxy)
  // The server backend's private memory (the statements' plans live there): /proc/PID/status RssAnon.
  const pid = (await clients[0].query('SELECT pg_backend_pid() AS pid')).rows[0].pid
  const backendKiB = Number(/RssAnon:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
  t.comment(
    `limit ${limit}: 10,000 statements in ${ms} ms; RSS ${before.rss} → ${after.rss} MiB, heap ${before.heap} → ${after.heap} MiB (test process: proxy and clients); on the server connection ${onServer}, its backend's RssAnon ${Math.round(backendKiB / 1024)} MiB; proxy map ${state.names} texts`,
  )
  if (limit > 0) {
    t.ok(onServer <= limit, `at most ${limit} on the server connection (${onServer})`)
    t.ok(state.names <= Math.max(1000, 10 * limit), `the proxy's map is bounded (${state.names})`)
    t.ok(after.heap - before.heap < 40, `heap growth bounded (${after.heap - before.heap} MiB)`)
  } else t.equal(onServer, 10_000, 'unlimited: every statement stays')
})
