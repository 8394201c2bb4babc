// A refusal the proxy makes inside an extended-protocol batch must abort the server's implicit
// transaction, as an error from PostgreSQL itself does: Parse/Bind/Execute(INSERT) with no Sync,
// then a Parse the proxy refuses, then Sync. Directly, the error rolls the INSERT back; through
// the proxy the INSERT must not commit either, and the connection must serve what follows.
import t from 'tap'
import pg from 'pg'
import { rawConnection, P, B, E, S, H, Q } from '../helpers/raw-client.js'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`CREATE TABLE notes (tenant_id text NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant_id, id));`)
const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  svc_b: { password: svc_pw, tenant: b }
  ops: { password: ops_pw, bypass: true }
tenant:
  column: tenant_id
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres", pool: 1 }
pool: { mode: transaction, wait_timeout_ms: 20000 }
`)
t.teardown(() => proxy.stop())

const direct = server.url(ROLES.scram.user, ROLES.scram.password, 'postgres')
const count = (id: number): string => server.sql(`SELECT count(*) FROM notes WHERE id = ${id}`).trim()

/** The batch: INSERT (executed, not synced), optionally a Flush and waiting for its replies, then `refused`, then Sync. */
async function batch(url: string, id: number, refused: string, flushFirst: boolean): Promise<{ replies: string[]; after: string[] }> {
  const c = await rawConnection(url)
  const insert = [P(`INSERT INTO notes (tenant_id, id, body) VALUES ('b', ${id}, 'x')`), B(), E()]
  let replies: string[]
  if (flushFirst) {
    // The INSERT runs on the server (Flush) before the refused Parse is sent: its replies are read with the rest.
    const first = await c.exchange([...insert, H], 0, 'C:INSERT 0 1')
    replies = [...first, ...(await c.exchange([P(refused), B(), E(), S], 1))]
  } else replies = await c.exchange([...insert, P(refused), B(), E(), S], 1)
  const after = await c.exchange([Q(`SELECT count(*) FROM notes WHERE id = ${id}`)], 1)
  await c.close()
  return { replies, after }
}

t.test('directly, an error after an unsynced INSERT rolls it back', async (t) => {
  const r = await batch(direct, 1, 'SELECT * FROM no_such_table', false)
  t.same(r.replies, ['1', '2', 'C:INSERT 0 1', 'E:42P01', 'Z:I'])
  t.same(r.after, ['T', 'D:0', 'C:SELECT 1', 'Z:I'])
  t.equal(count(1), '0')
})

for (const [what, refused] of [
  ['an unknown table', 'SELECT * FROM no_such_table'],
  ['DDL as a tenant', 'CREATE TABLE made_by_tenant (a int)'],
] as const) {
  for (const flushFirst of [false, true]) {
    t.test(`through pgtenant, ${what} refused after an unsynced INSERT${flushFirst ? ' (flushed)' : ''} rolls it back`, async (t) => {
      const id = 10 + (refused.startsWith('SELECT') ? 0 : 2) + (flushFirst ? 1 : 0)
      const r = await batch(proxy.url('svc_b', 'svc_pw'), id, refused, flushFirst)
      t.same(
        r.replies.map((m) => m.slice(0, 1)),
        ['1', '2', 'C', 'E', 'Z'],
        'the client sees what PostgreSQL sends',
      )
      t.equal(r.replies[4], 'Z:I')
      t.notOk(
        ['E:42601', 'E:25P02'].includes(r.replies[3]),
        `the client gets the proxy's refusal, not the server error that aborted the batch (${r.replies[3]})`,
      )
      t.same(r.after, ['T', 'D:0', 'C:SELECT 1', 'Z:I'], 'the INSERT is not visible and the connection answers the next query')
      t.equal(count(id), '0', 'the INSERT did not commit')
      // The single pooled connection serves another client normally.
      const c = new pg.Client({ connectionString: proxy.url('svc_b', 'svc_pw') })
      await c.connect()
      t.same((await c.query('SELECT count(*)::int AS n FROM notes WHERE id = $1', [id])).rows, [{ n: 0 }])
      await c.query(`INSERT INTO notes (tenant_id, id, body) VALUES ('b', ${id + 100}, 'y')`)
      await c.end()
      t.equal(count(id + 100), '1', 'a later transaction on the same server connection commits')
    })
  }
}
