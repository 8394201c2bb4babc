// Issue 14 item 7: replication connections (replication=true|database in the startup packet)
// are not proxied. Each gets one clear FATAL (0A000, saying to connect to the server directly);
// a client retrying in a loop from one address is rate-limited: past 10 attempts a second they
// are refused without a log line each, and counted apart.
import t from 'tap'
import net from 'node:net'
import pg from 'pg'
import { startPostgres, freePort } from '../helpers/pg-server.js'
import { startProxy, basicYaml, run, psqlArgs } from '../helpers/proxy.js'
import { decodeFields } from '../../server/protocol/backend.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const mport = await freePort()
const proxy = await startProxy(basicYaml(server, { extra: `metrics: 127.0.0.1:${mport}` }))
t.teardown(() => proxy.stop())

function startupPacket(params: Record<string, string>): Buffer {
  const body = Buffer.concat([...Object.entries(params).flatMap(([k, v]) => [Buffer.from(`${k}\0`), Buffer.from(`${v}\0`)]), Buffer.from([0])])
  const head = Buffer.alloc(8)
  head.writeInt32BE(8 + body.length, 0)
  head.writeInt32BE(196608, 4)
  return Buffer.concat([head, body])
}

/** One replication attempt on a raw socket: the SQLSTATE, severity and message of the reply, and whether the proxy closed. */
function attempt(replication: string): Promise<{ severity?: string; code?: string; message?: string; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    const s = net.connect(proxy.port, '127.0.0.1', () => s.write(startupPacket({ user: 'app', database: 'postgres', replication })))
    s.on('data', (d) => chunks.push(d))
    s.on('error', () => undefined)
    s.on('close', () => {
      const b = Buffer.concat(chunks)
      if (b.length < 5 || b[0] !== 0x45) return resolve({ closed: true })
      const f = decodeFields(b.subarray(0, 1 + b.readInt32BE(1)))
      resolve({ severity: f.S, code: f.C, message: f.M, closed: true })
    })
  })
}

async function refusedCounts(): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^pgtenant_client_connections_refused_total\{reason="([^"]+)"\} (\d+)/gm)) out[m[1]] = Number(m[2])
  return out
}

t.test('a client retrying 50 times at once is rate-limited after 10, every attempt still told why', async (t) => {
  const started = Date.now()
  const replies = await Promise.all(Array.from({ length: 50 }, () => attempt('true')))
  const elapsed = Date.now() - started
  for (const r of replies) {
    t.equal(r.severity, 'FATAL')
    t.equal(r.code, '0A000')
    t.match(r.message, /does not proxy replication.*connect to the PostgreSQL server directly/)
  }
  const counts = await refusedCounts()
  // A loaded machine may spread the 50 attempts over more than one one-second window: 10 logged per window.
  const windows = elapsed < 1000 ? 1 : Math.floor(elapsed / 1000) + 1
  if (windows === 1) t.equal(counts.replication, 10, '10 refused (and logged) in the second')
  else t.ok(counts.replication >= 10 && counts.replication <= 10 * windows, `at most 10 logged per second (${counts.replication} in ${elapsed} ms)`)
  t.equal(counts.replication + counts.replication_rate_limited, 50, 'the others refused quietly, counted apart')
  // Ordinary logins from the same address are not limited.
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw', 'postgres') })
  await c.connect()
  t.same((await c.query('SELECT 1 AS x')).rows, [{ x: 1 }])
  await c.end()
})

t.test('replication=database from psql and node-postgres: one clear error', async (t) => {
  // A new one-second window: refused normally again.
  await new Promise((r) => setTimeout(r, 1100))
  const url = proxy.url('app', 'app_pw', 'postgres', '?replication=database')
  const r = await run('psql', psqlArgs(url, 'IDENTIFY_SYSTEM'))
  t.not(r.code, 0)
  t.match(r.stderr, /pgtenant does not proxy replication connections.*connect to the PostgreSQL server directly/)
  const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw', 'postgres'), replication: 'database' } as pg.ClientConfig)
  await t.rejects(c.connect(), { code: '0A000', message: /does not proxy replication/ })
  for (const off of ['false', 'off', '0']) {
    const ok = await run('psql', psqlArgs(proxy.url('app', 'app_pw', 'postgres', `?replication=${off}`), 'SELECT 1'))
    t.equal(ok.code, 0, `replication=${off} is an ordinary connection (${ok.stderr.trim()})`)
  }
  const counts = await refusedCounts()
  t.equal(counts.replication, 12)
})
