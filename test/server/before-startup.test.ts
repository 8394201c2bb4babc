// Issue 14 item 6: bytes before the startup packet. A Terminate (node-postgres sends one when
// a connection is closed before its startup) is closed silently, as PostgreSQL does; an HTTP
// request is told this is a PostgreSQL port; other junk is told what was expected.
import t from 'tap'
import net from 'node:net'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml } from '../helpers/proxy.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const proxy = await startProxy(basicYaml(server))
t.teardown(() => proxy.stop())

/** Send bytes on a fresh connection; everything received until the other side closes. */
function exchange(port: number, bytes: Buffer, timeoutMs = 20_000): Promise<{ received: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes))
    const timer = setTimeout(() => {
      s.destroy()
      resolve({ received: Buffer.concat(chunks), closed: false })
    }, timeoutMs)
    s.on('data', (d) => chunks.push(d))
    s.on('error', () => undefined)
    s.on('close', () => {
      clearTimeout(timer)
      resolve({ received: Buffer.concat(chunks), closed: true })
    })
  })
}

const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4])

t.test('Terminate before the startup packet: closed silently, directly and through pgtenant', async (t) => {
  for (const [label, port] of [
    ['direct', server.port],
    ['pgtenant', proxy.port],
  ] as const) {
    const r = await exchange(port, TERMINATE)
    t.ok(r.closed, `${label}: the connection is closed`)
    t.equal(r.received.length, 0, `${label}: nothing is sent back (got ${JSON.stringify(r.received.toString('latin1'))})`)
  }
})

t.test('an HTTP request is told this is a PostgreSQL port (08P01)', async (t) => {
  const r = await exchange(proxy.port, Buffer.from('GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n'))
  t.ok(r.closed)
  const text = r.received.toString('utf8')
  t.equal(r.received[0], 0x45, 'an ErrorResponse')
  t.match(text, /SFATAL/)
  t.match(text, /C08P01/)
  t.match(text, /this is a PostgreSQL port/)
})

t.test('other junk is told what was expected', async (t) => {
  const r = await exchange(proxy.port, Buffer.from([0x7f, 0x7f, 0x7f, 0x7f, 1, 2, 3, 4]))
  t.ok(r.closed)
  const text = r.received.toString('utf8')
  t.match(text, /C08P01/)
  t.match(text, /expected a startup packet/)
})

t.test('a real client still logs in after all that', async (t) => {
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw', 'postgres') })
  await c.connect()
  t.same((await c.query('SELECT current_user AS u')).rows, [{ u: ROLES.scram.user }])
  await c.end()
})
