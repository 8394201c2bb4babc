// BEGIN deferral through the extended protocol (pgbench -M extended/prepared, JDBC): the
// proxy answers Parse/Bind/Describe/Execute of a lone BEGIN itself while the session is idle
// and sends the BEGIN with the transaction's first statement. The client must see exactly the
// messages PostgreSQL sends, and the statements must run in one transaction.
import t, { type Test } from 'tap'
import net from 'node:net'
import pg from 'pg'
import { serialize } from '../../server/protocol/pg-protocol.js'
import { decodeFields } from '../../server/protocol/backend.js'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml } from '../helpers/proxy.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const proxy = await startProxy(basicYaml(server, { pool: 2 }))
t.teardown(() => proxy.stop())

interface Reply {
  /** One entry per message: type, plus the tag, status or SQLSTATE where there is one. */
  messages: string[]
  /** Data rows, first column, as text. */
  values: string[]
}

/** A logged-in connection whose socket we then drive with raw protocol messages. */
async function rawConnection(url: string): Promise<{ exchange: (bytes: Buffer[], readyCount: number) => Promise<Reply>; close: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const stream = (client as unknown as { connection: { stream: net.Socket } }).connection.stream
  stream.removeAllListeners('data') // from here on the bytes are ours, not node-postgres's
  let pending = Buffer.alloc(0)
  let waiter: (() => void) | null = null
  stream.on('data', (d: Buffer) => {
    pending = Buffer.concat([pending, d])
    waiter?.()
  })
  const exchange = async (bytes: Buffer[], readyCount: number): Promise<Reply> => {
    stream.write(Buffer.concat(bytes))
    const reply: Reply = { messages: [], values: [] }
    let ready = 0
    while (ready < readyCount) {
      if (pending.length < 5 || pending.length < 1 + pending.readInt32BE(1)) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`timed out; got ${reply.messages.join(' ')}`)), 10_000)
          waiter = () => {
            clearTimeout(timer)
            waiter = null
            resolve()
          }
        })
        continue
      }
      const len = pending.readInt32BE(1)
      const msg = pending.subarray(0, 1 + len)
      pending = pending.subarray(1 + len)
      const type = String.fromCharCode(msg[0])
      if (type === 'Z') {
        ready++
        reply.messages.push(`Z:${String.fromCharCode(msg[5])}`)
      } else if (type === 'C') reply.messages.push(`C:${msg.toString('utf8', 5, msg.length - 1)}`)
      else if (type === 'E' || type === 'N') reply.messages.push(`${type}:${decodeFields(msg).C}`)
      else if (type === 'D') {
        reply.messages.push('D')
        const n = msg.readInt32BE(7)
        reply.values.push(n < 0 ? 'NULL' : msg.toString('utf8', 11, 11 + n))
      } else if (type !== 'S') reply.messages.push(type) // ParameterStatus may differ between the two
    }
    return reply
  }
  return { exchange, close: () => client.end() }
}

const direct = server.url(ROLES.scram.user, ROLES.scram.password, 'postgres')
const proxied = proxy.url('app', 'app_pw', 'postgres')

const P = (sql: string, name = ''): Buffer => serialize.parse({ name, text: sql, types: [] })
const B = (statement = '', portal = ''): Buffer => serialize.bind({ statement, portal, values: [] })
const Dp = (portal = ''): Buffer => serialize.describe({ type: 'P', name: portal })
const E = (portal = ''): Buffer => serialize.execute({ portal })
const S = serialize.sync()
const Q = (sql: string): Buffer => serialize.query(sql)

/** The same exchanges directly and through the proxy: the same messages, in the same order. */
async function both(t: Test, steps: [Buffer[], number][]): Promise<{ direct: Reply[]; proxied: Reply[] }> {
  const out = { direct: [] as Reply[], proxied: [] as Reply[] }
  for (const [which, url] of [
    ['direct', direct],
    ['proxied', proxied],
  ] as const) {
    const c = await rawConnection(url)
    for (const [bytes, readies] of steps) out[which].push(await c.exchange(bytes, readies))
    await c.close()
  }
  t.same(
    out.proxied.map((r) => r.messages),
    out.direct.map((r) => r.messages),
    'same messages as PostgreSQL',
  )
  return out
}

t.test('pgbench -M extended shape: BEGIN, two statements, END, each with its own Sync', async (t) => {
  const txid = 'SELECT txid_current()::text'
  const r = await both(t, [
    [[P('BEGIN'), B(), Dp(), E(), S], 1],
    [[P(txid), B(), Dp(), E(), S], 1],
    [[P(txid), B(), Dp(), E(), S], 1],
    [[P('END'), B(), Dp(), E(), S], 1],
  ])
  t.same(r.proxied[0].messages, ['1', '2', 'n', 'C:BEGIN', 'Z:T'])
  t.equal(r.proxied[1].values[0], r.proxied[2].values[0], 'both statements ran in one transaction')
})

t.test('pgbench -M prepared shape: a named BEGIN prepared once, run in several transactions', async (t) => {
  const r = await both(t, [
    [[P('BEGIN', 'b'), S], 1],
    [[P('SELECT txid_current()::text', 'x'), S], 1],
    [[B('b'), Dp(), E(), S], 1],
    [[B('x'), Dp(), E(), S], 1],
    [[B('x'), Dp(), E(), S], 1],
    [[Q('COMMIT')], 1],
    [[B('b'), Dp(), E(), S], 1],
    [[B('x'), Dp(), E(), S], 1],
    [[Q('ROLLBACK')], 1],
  ])
  t.equal(r.proxied[3].values[0], r.proxied[4].values[0], 'one transaction')
  t.not(r.proxied[4].values[0], r.proxied[7].values[0], 'the next BEGIN starts another')
})

t.test('JDBC shape: BEGIN and the first statement in one batch with one Sync', async (t) => {
  await both(t, [
    [[P('BEGIN'), B(), E(), P('SELECT 1'), B(), Dp(), E(), S], 1],
    [[Q('SELECT 2; COMMIT')], 1],
  ])
})

t.test('a BEGIN portal executed after another statement in the same batch is made on the server', async (t) => {
  await both(t, [
    [[P('BEGIN'), B('', 'pb'), P('SELECT 1', 'q'), B('q', 'pq'), E('pq'), E('pb'), S], 1],
    [[Q('SELECT 3'), Q('COMMIT')], 2],
  ])
})

t.test('an error after a deferred BEGIN aborts the transaction as it would directly', async (t) => {
  await both(t, [
    [[P('BEGIN'), B(), E(), S], 1],
    [[P('SELECT 1/0'), B(), E(), S], 1],
    [[P('SELECT 1'), B(), E(), S], 1],
    [[Q('ROLLBACK')], 1],
    [[Q('SELECT 4')], 1],
  ])
})

t.test('BEGIN then COMMIT with nothing between, and BEGIN inside a transaction', async (t) => {
  await both(t, [
    [[P('BEGIN'), B(), E(), S], 1],
    [[P('COMMIT'), B(), E(), S], 1],
    [[Q('BEGIN')], 1],
    [[P('BEGIN'), B(), E(), S], 1], // a WARNING from the server: already in a transaction
    [[Q('COMMIT')], 1],
  ])
})

t.test('the deferred BEGIN holds no server connection until the first statement', async (t) => {
  const active = (): number => [...proxy.proxy.pools.pools.values()].reduce((n, p) => n + p.active, 0)
  const c = await rawConnection(proxied)
  t.same((await c.exchange([P('BEGIN'), B(), Dp(), E(), S], 1)).messages, ['1', '2', 'n', 'C:BEGIN', 'Z:T'])
  t.equal(active(), 0, 'after BEGIN: no server connection in use')
  t.same((await c.exchange([P('SELECT 1'), B(), E(), S], 1)).messages, ['1', '2', 'D', 'C:SELECT 1', 'Z:T'])
  t.equal(active(), 1, 'the first statement took one, and the transaction keeps it')
  t.same((await c.exchange([Q('COMMIT')], 1)).messages, ['C:COMMIT', 'Z:I'])
  t.equal(active(), 0, 'given back at COMMIT')
  await c.close()
})

t.test('a BEGIN portal rebound to something else before it runs', async (t) => {
  await both(t, [
    [[P('BEGIN'), B(), P('SELECT 5'), B(), Dp(), E(), S], 1],
    [[P('BEGIN'), B(), P('SHOW app.tenant'), B(), Dp(), E(), S], 1],
  ])
})

t.test('START TRANSACTION is deferred like BEGIN and answered with its own tag', async (t) => {
  const r = await both(t, [
    [[Q('START TRANSACTION')], 1],
    [[Q('SELECT txid_current()::text')], 1],
    [[Q('SELECT txid_current()::text'), Q('COMMIT')], 2],
    [[P('start transaction;'), B(), Dp(), E(), S], 1],
    [[P('SELECT 1'), B(), E(), S], 1],
    [[Q('END')], 1],
  ])
  t.same(r.proxied[0].messages, ['C:START TRANSACTION', 'Z:T'])
  t.equal(r.proxied[1].values[0], r.proxied[2].values[0], 'one transaction')
})

t.test('a BEGIN with options is not deferred: the server answers it, and its errors come at the BEGIN', async (t) => {
  await both(t, [
    [[P('BEGIN ISOLATION LEVEL BANANA'), B(), E(), S], 1],
    [[P('SELECT 1'), B(), Dp(), E(), S], 1],
    [[Q('BEGIN ISOLATION LEVEL BANANA')], 1],
    [[Q('SELECT 7')], 1],
    [[P('BEGIN ISOLATION LEVEL REPEATABLE READ'), B(), E(), S], 1],
    [[Q('SHOW transaction_isolation'), Q('COMMIT')], 2],
    [[Q('START TRANSACTION WORK')], 1], // not PostgreSQL syntax: its error must come at once
    [[Q('SELECT 9')], 1],
    [[Q('begin work;')], 1],
    [[Q('SELECT 8'), Q('END')], 2],
  ])
})
