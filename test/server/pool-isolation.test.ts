// Pooling isolation: a server connection goes back to the pool only at a ReadyForQuery that
// answers a Sync with status idle; a connection whose client vanished is cleaned (or closed)
// and its running query cancelled; session effects count when the server confirms them;
// WITH HOLD cursors pin in every mode; the proxy's statement names cannot be guessed.
// Checked against a real PostgreSQL, directly on the server where it matters.
import t, { type Test } from 'tap'
import net from 'node:net'
import pg from 'pg'
import { serialize } from '../../server/protocol/pg-protocol.js'
import { decodeFields } from '../../server/protocol/backend.js'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml, type RunningProxy } from '../helpers/proxy.js'
import { waitFor } from '../helpers/wait.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`
  CREATE TABLE flush_rows (id int);
  CREATE TABLE ret_rows (id int);
  CREATE TABLE tx_rows (id int);
  CREATE TABLE notes (tenant_id text NOT NULL, id int NOT NULL);
  INSERT INTO notes SELECT t, g FROM unnest(ARRAY['a', 'b']) t, generate_series(1, 5) g;
  GRANT ALL ON ALL TABLES IN SCHEMA public TO ${ROLES.scram.user};
`)
const one = await startProxy(basicYaml(server, { pool: 1 }))
t.teardown(() => one.stop())
const two = await startProxy(basicYaml(server, { pool: 2 }))
t.teardown(() => two.stop())
const tenant = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
  ops: { password: ops_pw, bypass: true }
tenant:
  column: tenant_id
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres", pool: 2 }
`)
t.teardown(() => tenant.stop())

interface Msg {
  type: string
  tag?: string
  status?: string
  code?: string
  value?: string
}

/** A logged-in connection whose socket the test then drives with raw protocol messages. */
class Raw {
  private pending = Buffer.alloc(0)
  private waiter: (() => void) | null = null
  private constructor(
    private readonly client: pg.Client,
    readonly stream: net.Socket,
  ) {
    stream.removeAllListeners('data')
    stream.on('data', (d: Buffer) => {
      this.pending = Buffer.concat([this.pending, d])
      this.waiter?.()
    })
  }

  static async open(url: string): Promise<Raw> {
    const client = new pg.Client({ connectionString: url })
    client.on('error', () => undefined)
    await client.connect()
    return new Raw(client, (client as unknown as { connection: { stream: net.Socket } }).connection.stream)
  }

  send(...bytes: Buffer[]): void {
    this.stream.write(Buffer.concat(bytes))
  }

  /** Messages up to and including the first one `last` accepts. */
  async until(last: (m: Msg) => boolean, timeoutMs = 8000): Promise<Msg[]> {
    const out: Msg[] = []
    for (;;) {
      if (this.pending.length < 5 || this.pending.length < 1 + this.pending.readInt32BE(1)) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`timed out; got ${out.map(show).join(' ')}`)), timeoutMs)
          this.waiter = () => {
            clearTimeout(timer)
            this.waiter = null
            resolve()
          }
        })
        continue
      }
      const len = this.pending.readInt32BE(1)
      const raw = this.pending.subarray(0, 1 + len)
      this.pending = this.pending.subarray(1 + len)
      const m: Msg = { type: String.fromCharCode(raw[0]) }
      if (m.type === 'Z') m.status = String.fromCharCode(raw[5])
      else if (m.type === 'C') m.tag = raw.toString('utf8', 5, raw.length - 1)
      else if (m.type === 'E' || m.type === 'N') m.code = decodeFields(raw).C
      else if (m.type === 'D') {
        const n = raw.readInt32BE(7)
        m.value = n < 0 ? 'NULL' : raw.toString('utf8', 11, 11 + n)
      }
      if (m.type === 'S') continue // ParameterStatus may differ between direct and proxied
      out.push(m)
      if (last(m)) return out
    }
  }

  /** Send, then read up to the n-th ReadyForQuery. */
  async exchange(bytes: Buffer[], readies = 1): Promise<string[]> {
    this.send(...bytes)
    let seen = 0
    return (await this.until((m) => m.type === 'Z' && ++seen === readies)).map(show)
  }

  /** The client vanishes: the socket closes without Terminate. */
  hangUp(): void {
    this.stream.destroy()
  }

  end(): Promise<void> {
    return this.client.end()
  }
}

function show(m: Msg): string {
  if (m.type === 'Z') return `Z:${m.status}`
  if (m.type === 'C') return `C:${m.tag}`
  if (m.type === 'E' || m.type === 'N') return `${m.type}:${m.code}`
  if (m.type === 'D') return `D:${m.value}`
  return m.type
}

const P = (sql: string, name = ''): Buffer => serialize.parse({ name, text: sql, types: [] })
const B = (statement = '', portal = ''): Buffer => serialize.bind({ statement, portal, values: [] })
const E = (portal = ''): Buffer => serialize.execute({ portal })
const H = serialize.flush()
const S = serialize.sync()
const Q = (sql: string): Buffer => serialize.query(sql)

const appUrl = (p: RunningProxy): string => p.url('app', 'app_pw', 'postgres')
const count = (table: string): string => server.sql(`SELECT count(*) FROM ${table}`).trim()
const sessionOf = (p: RunningProxy, c: pg.Client) => [...p.proxy.sessions.values()].find((s) => s.pid === (c as unknown as { processID: number }).processID)

async function pgClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url })
  c.on('error', () => undefined)
  await c.connect()
  return c
}

t.test('Flush without Sync: the INSERT of a client that hangs up is rolled back, not committed by the next client', async (t) => {
  const a = await Raw.open(appUrl(one))
  a.send(P('INSERT INTO flush_rows VALUES (1)'), B(), E(), H)
  await a.until((m) => m.tag === 'INSERT 0 1')
  a.hangUp()
  const b = await pgClient(appUrl(one))
  for (let i = 0; i < 3; i++) t.equal((await b.query('SELECT 1 AS v')).rows[0].v, 1, 'the next client is served')
  await b.query('BEGIN')
  await b.query('SELECT 2')
  await b.query('COMMIT')
  await b.end()
  t.equal(count('flush_rows'), '0', 'nothing was committed (checked on PostgreSQL)')
})

t.test('an error inside a Flush-delimited batch, then Sync: the next statements return their rows and write', async (t) => {
  const a = await Raw.open(appUrl(one))
  a.send(P('SELECT 1/0'), B(), E(), H)
  t.equal((await a.until((m) => m.type === 'E')).map(show).pop(), 'E:22012', 'the batch fails (no Sync yet)')
  t.same(await a.exchange([S]), ['Z:I'], 'the Sync is answered (by the server)')
  t.same(await a.exchange([Q('SELECT 41 + 1')]), ['T', 'D:42', 'C:SELECT 1', 'Z:I'], 'SELECT returns its row')
  t.same(await a.exchange([Q('INSERT INTO ret_rows VALUES (5) RETURNING id')]), ['T', 'D:5', 'C:INSERT 0 1', 'Z:I'], 'INSERT … RETURNING returns its row')
  await a.end()
  t.equal(count('ret_rows'), '1', 'and the row is there (checked on PostgreSQL)')
})

for (const begin of ['BEGIN READ WRITE', 'START TRANSACTION ISOLATION LEVEL REPEATABLE READ']) {
  t.test(`${begin} + INSERT with Flush, then hang-up: the next client is not inside that transaction`, async (t) => {
    const a = await Raw.open(appUrl(one))
    a.send(P(begin), B(), E(), H)
    await a.until((m) => m.type === 'C')
    a.send(P('INSERT INTO tx_rows VALUES (7)'), B(), E(), H)
    await a.until((m) => m.tag === 'INSERT 0 1')
    a.hangUp()
    const b = await Raw.open(appUrl(one))
    t.same(await b.exchange([Q('SELECT count(*) FROM tx_rows')]), ['T', 'D:0', 'C:SELECT 1', 'Z:I'], 'the next client sees no open transaction and not its row')
    await b.end()
    t.equal(count('tx_rows'), '0', 'nothing was committed (checked on PostgreSQL)')
  })
}

t.test("a hung-up client's pg_sleep is cancelled, and the server never runs more than `pool` statements for the proxy", async (t) => {
  const monitor = await pgClient(server.url(ROLES.scram.user, ROLES.scram.password, 'postgres'))
  let max = 0
  let sleeping5 = 0
  let stop = false
  const watching = (async () => {
    while (!stop) {
      const r = await monitor.query(
        `SELECT count(*)::int AS active, count(*) FILTER (WHERE query = 'SELECT pg_sleep(5)')::int AS s5 FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND pid <> pg_backend_pid()`,
        [ROLES.scram.user],
      )
      max = Math.max(max, r.rows[0].active)
      sleeping5 = r.rows[0].s5
      await new Promise((r) => setTimeout(r, 10))
    }
  })()
  const quitters = await Promise.all([0, 1, 2, 3].map(() => pgClient(appUrl(two))))
  for (const q of quitters) q.query('SELECT pg_sleep(5)').catch(() => undefined)
  await waitFor('two pg_sleep(5) running', () => sleeping5 === 2)
  const hungUpAt = Date.now()
  for (const q of quitters) (q as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy()
  const others = await Promise.all([0, 1, 2].map(() => pgClient(appUrl(two))))
  await Promise.all(
    others.map(async (c) => {
      for (let i = 0; i < 3; i++) await c.query('SELECT pg_sleep(0.1)')
    }),
  )
  await waitFor('no pg_sleep(5) left running', () => sleeping5 === 0, 4000)
  t.ok(Date.now() - hungUpAt < 4500, `the hung-up queries ended ${Date.now() - hungUpAt} ms after the hang-up (cancelled, not run to the end)`)
  stop = true
  await watching
  await monitor.end()
  for (const c of others) await c.end()
  t.ok(max <= 2, `at most 2 active server backends for the proxy (saw ${max})`)
})

/** The same exchanges directly and through the proxy: the same messages, in the same order. */
async function both(t: Test, url: string, steps: Buffer[][]): Promise<string[][]> {
  const out: Record<string, string[][]> = { direct: [], proxied: [] }
  for (const [which, u] of [
    ['direct', server.url(ROLES.scram.user, ROLES.scram.password, 'postgres')],
    ['proxied', url],
  ] as const) {
    const c = await Raw.open(u)
    for (const bytes of steps) out[which].push(await c.exchange(bytes))
    await c.end()
  }
  t.same(out.proxied, out.direct, 'same messages as PostgreSQL')
  return out.proxied
}

t.test('a named Parse the server refuses (aborted transaction) does not keep its name', async (t) => {
  const r = await both(t, appUrl(one), [
    [Q('BEGIN')],
    [Q('SELECT 1/0')],
    [P('SELECT 2 AS late', 'late'), S],
    [Q('ROLLBACK')],
    [P('SELECT 2 AS late', 'late'), B('late'), E(), S],
  ])
  t.same(r[2], ['E:25P02', 'Z:E'])
  t.same(r[4], ['1', '2', 'D:2', 'C:SELECT 1', 'Z:I'], 'the name can be used again (no 42P05)')
})

t.test('a named Parse of a text already prepared on the connection, in an aborted transaction: refused like PostgreSQL', async (t) => {
  const r = await both(t, appUrl(one), [
    [P('SELECT 3 AS shared', 's1'), S],
    [Q('BEGIN')],
    [Q('SELECT 1/0')],
    [P('SELECT 3 AS shared', 's2'), S],
    [Q('ROLLBACK')],
    [B('s2'), E(), S],
  ])
  t.same(r[3], ['E:25P02', 'Z:E'])
  t.same(r[5], ['E:26000', 'Z:I'], 's2 does not exist')
})

t.test('PREPARE p; SELECT 1/0; DEALLOCATE p in one Query: p exists afterwards and pins the connection', async (t) => {
  const c = await pgClient(appUrl(two))
  await t.rejects(c.query('PREPARE p AS SELECT 1 AS v; SELECT 1/0; DEALLOCATE p'), { code: '22012' })
  t.not(sessionOf(two, c)?.backend ?? null, null, 'the connection holding p stays with the client')
  t.same((await c.query('EXECUTE p')).rows, [{ v: 1 }], 'p exists, as on PostgreSQL')
  await c.query('DEALLOCATE p')
  t.equal(sessionOf(two, c)?.backend ?? null, null, 'unpinned once the server confirmed DEALLOCATE')
  await c.end()
})

/** A WITH HOLD cursor outlives COMMIT: its connection must stay with the client, whatever declared it. */
async function heldCursor(
  t: Test,
  proxy: RunningProxy,
  url: string,
  setup: (c: pg.Client) => Promise<unknown>,
  declare: (c: pg.Client) => Promise<unknown>,
  expected: unknown[],
): Promise<void> {
  const a = await pgClient(url)
  await setup(a)
  await a.query('BEGIN')
  await declare(a)
  await a.query('COMMIT')
  t.not(sessionOf(proxy, a)?.backend ?? null, null, 'pinned after COMMIT')
  // Another client takes a connection and keeps it: without the pin it would take a's.
  const b = await pgClient(url)
  await setup(b)
  await b.query('BEGIN')
  await b.query('SELECT 1')
  t.same(
    (await a.query('FETCH 2 FROM c')).rows.map((r) => Object.values(r)[0]),
    expected,
    'FETCH from the held cursor works',
  )
  await b.query('COMMIT')
  await b.end()
  await a.query('CLOSE c')
  await waitFor('the connection to be released', () => (sessionOf(proxy, a)?.backend ?? null) === null)
  t.pass('released once the last held cursor is closed (the server said none is left)')
  await a.end()
}

const declareSimple = (c: pg.Client) => c.query('DECLARE c CURSOR WITH HOLD FOR SELECT generate_series(1, 3) AS v')
const declareExtended = (c: pg.Client) => c.query({ text: 'DECLARE c CURSOR WITH HOLD FOR SELECT generate_series(1, $1::int) AS v', values: [3] })
const noSetup = async () => undefined

t.test('WITH HOLD, plain pooling, simple protocol', (t) => heldCursor(t, two, appUrl(two), noSetup, declareSimple, [1, 2]))
t.test('WITH HOLD, plain pooling, extended protocol', (t) => heldCursor(t, two, appUrl(two), noSetup, declareExtended, [1, 2]))
t.test('WITH HOLD, bypass user', (t) => heldCursor(t, tenant, tenant.url('ops', 'ops_pw', 'postgres'), noSetup, declareSimple, [1, 2]))
t.test('WITH HOLD, tenant session, a comment between WITH and HOLD', (t) =>
  heldCursor(
    t,
    tenant,
    appUrl(tenant),
    (c) => c.query("SET app.tenant = 'a'"),
    (c) => c.query('DECLARE c CURSOR WITH /* keep */ HOLD FOR SELECT id FROM notes ORDER BY id'),
    [1, 2],
  ),
)
t.test('WITH HOLD, tenant session, extended protocol', (t) =>
  heldCursor(
    t,
    tenant,
    appUrl(tenant),
    (c) => c.query("SET app.tenant = 'b'"),
    (c) => c.query({ text: 'DECLARE c CURSOR WITH HOLD FOR SELECT id FROM notes WHERE id > $1 ORDER BY id', values: [0] }),
    [1, 2],
  ),
)

t.test('a cursor without HOLD does not pin; CLOSE ALL unpins', async (t) => {
  const a = await pgClient(appUrl(two))
  await a.query('BEGIN')
  await a.query('DECLARE plain CURSOR FOR SELECT 1')
  await a.query('COMMIT')
  await waitFor('the connection to be released', () => (sessionOf(two, a)?.backend ?? null) === null)
  t.pass('not pinned')
  await declareSimple(a)
  t.not(sessionOf(two, a)?.backend ?? null, null, 'pinned (declared outside a transaction block with HOLD)')
  await a.query('CLOSE ALL')
  await waitFor('the connection to be released', () => (sessionOf(two, a)?.backend ?? null) === null)
  t.pass('CLOSE ALL unpins')
  await a.end()
})

t.test("the proxy's server-side statement names cannot be guessed or run by another client", async (t) => {
  const a = await pgClient(appUrl(one))
  t.same((await a.query({ name: 'mine', text: 'SELECT 7 AS v' })).rows, [{ v: 7 }])
  const names = (await a.query('SELECT name FROM pg_prepared_statements')).rows.map((r) => r.name as string)
  t.ok(names.length > 0 && names.every((n) => /^pgt_[0-9a-f]{16}_\d+$/.test(n)), `random names: ${names.join(', ')}`)
  await a.end()
  const b = await pgClient(appUrl(one))
  await t.rejects(b.query('EXECUTE pgtenant_1'), { code: '26000' }, 'the old predictable name does not exist')
  await b.end()
})

for (const reset of ['SELECT 1; DEALLOCATE ALL', 'DISCARD ALL', 'DEALLOCATE ALL']) {
  t.test(`${reset} on a connection holding shared statements: the proxy's map stays right`, async (t) => {
    const a = await pgClient(appUrl(one))
    t.same((await a.query({ name: 'n1', text: `SELECT 8 AS v /* ${reset} */` })).rows, [{ v: 8 }])
    await a.query(reset)
    await a.end()
    const b = await pgClient(appUrl(one))
    t.same((await b.query({ name: 'n2', text: `SELECT 8 AS v /* ${reset} */` })).rows, [{ v: 8 }], 'the same text prepared again by another client runs')
    await b.end()
  })
}
