// A tenant change inside an extended-protocol batch counts only if the batch does (issue 22):
// PostgreSQL runs the messages up to Sync as one implicit transaction, so an error anywhere in
// it (the server's, or a refusal by the proxy) leaves app.tenant as it was before the batch.
// Every case is run directly against PostgreSQL (app.tenant is a plain custom setting there)
// and through pgtenant, with the next statements pipelined behind the Sync.
import t from 'tap'
import { rawConnection, P, B, E, S, Q } from '../helpers/raw-client.js'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`
  CREATE TABLE notes (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
  INSERT INTO notes SELECT t, 1 FROM unnest(ARRAY['a', 'b']) t;
`)
const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
tenant:
  column: tenant_id
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres", pool: 1 }
pool: { mode: transaction }
`)
t.teardown(() => proxy.stop())

const direct = server.url(ROLES.scram.user, ROLES.scram.password, 'postgres')
const setTenant = (value: string): Buffer[] => [P("SELECT set_config('app.tenant', $1, false)"), B([value]), E()]
const run = (sql: string): Buffer[] => [P(sql), B(), E()]

/** Tenant 'a', then `batch` and a pipelined SHOW: the SHOW's value (and, through the proxy, whose rows a read sees). */
async function tenantAfter(url: string, batch: Buffer[]): Promise<{ replies: string[]; shown: string }> {
  const c = await rawConnection(url)
  await c.exchange([Q("SET app.tenant = 'a'")], 1)
  const out = await c.exchange([...batch, S, Q('SHOW app.tenant')], 2)
  await c.close()
  const shown = out.filter((m) => m.startsWith('D:')).at(-1) ?? ''
  return { replies: out.slice(0, out.indexOf('Z:I') + 1), shown: shown.slice(2) }
}

const cases: [string, Buffer[], string][] = [
  ['an error after the change rolls it back', [...setTenant('b'), ...run('SELECT 1/0')], 'a'],
  ['an error before the change makes the server skip it', [...run('SELECT 1/0'), ...setTenant('b')], 'a'],
  ['SET in the batch, an error after it', [...run("SET app.tenant = 'b'"), ...run('SELECT 1/0')], 'a'],
  ['a batch without an error keeps the change', [...setTenant('b'), ...run('SELECT 1')], 'b'],
  ['two changes, then an error: back to the first value', [...setTenant('b'), ...setTenant('c'), ...run('SELECT 1/0')], 'a'],
]
for (const [name, batch, expected] of cases) {
  t.test(name, async (t) => {
    const d = await tenantAfter(direct, batch)
    t.equal(d.shown, expected, `directly: ${d.replies.join(' ')}`)
    const p = await tenantAfter(proxy.url('app', 'app_pw'), batch)
    t.equal(p.shown, expected, `through pgtenant: ${p.replies.join(' ')}`)
    t.same(
      p.replies.map((m) => m.slice(0, 2)),
      d.replies.map((m) => m.slice(0, 2)),
      'the same replies as PostgreSQL',
    )
  })
}

t.test("a refusal by the proxy fails the batch too: the next read sees tenant a's rows", async (t) => {
  const c = await rawConnection(proxy.url('app', 'app_pw'))
  await c.exchange([Q("SET app.tenant = 'a'")], 1)
  const out = await c.exchange([...setTenant('b'), ...run('CREATE TABLE made_by_tenant (x int)'), S, Q('SELECT tenant_id FROM notes')], 2)
  await c.close()
  t.ok(out.includes('E:42501'), `the CREATE TABLE is refused: ${out.join(' ')}`)
  t.equal(out.filter((m) => m.startsWith('D:')).at(-1), 'D:a', 'the read after the failed batch runs as tenant a')
})

t.test('in an aborted transaction block a tenant command fails with 25P02, as on PostgreSQL', async (t) => {
  for (const url of [direct, proxy.url('app', 'app_pw')]) {
    const c = await rawConnection(url)
    await c.exchange([Q("SET app.tenant = 'a'")], 1)
    const out = await c.exchange([Q('BEGIN'), Q('SELECT 1/0'), Q("SET LOCAL app.tenant = 'b'"), Q('SHOW app.tenant'), Q('ROLLBACK'), Q('SHOW app.tenant')], 6)
    await c.close()
    t.same(
      out.filter((m) => m.startsWith('E:') || m.startsWith('D:')),
      ['E:22012', 'E:25P02', 'E:25P02', 'D:a'],
      url === direct ? 'directly' : 'through pgtenant',
    )
  }
})
