// A configuration reload reads the schema again. Until the new read is in, the proxy must keep
// planning with the tables it knew: before, a reload dropped every backend's schema facts, and
// when the new read failed (the catalog connection killed or refused, as in the soak, which
// reloads while server connections are being killed) every statement naming a tenant table was
// refused with 42501 "not known to pgtenant" for the next 5 s. Here the catalog read cannot log in
// (the backend role loses LOGIN after the pool's connections are open), the pooled connections
// keep serving, and the reload must not cost the clients anything.
import t from 'tap'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'
import { parseConfig } from '../../server/config.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`
  CREATE TABLE notes (tenant_id text NOT NULL, id int NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id));
  INSERT INTO notes SELECT t, g, t || '-' || g FROM unnest(ARRAY['a', 'b']) t, generate_series(1, 3) g;
`)

const yaml = (slow: number) => `
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
tenant:
  column: tenant_id
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres", pool: 2 }
pool: { mode: transaction, wait_timeout_ms: 3000 }
log: { slow_statement_ms: ${slow} }
`

const proxy = await startProxy(yaml(0))
t.teardown(() => proxy.stop())

t.test('a reload whose schema read fails keeps the tables the proxy knew', async (t) => {
  const clients = [0, 1].map(() => new pg.Client({ connectionString: proxy.url('app', 'app_pw', 'postgres') }))
  for (const c of clients) {
    await c.connect()
    t.teardown(() => c.end())
    await c.query(`SET app.tenant = 'a'`)
  }
  // both pooled server connections open (one client each at once), then the role may no longer log in
  await Promise.all(clients.map((c) => c.query('SELECT pg_sleep(0.2)')))
  server.sql(`ALTER ROLE ${ROLES.scram.user} NOLOGIN`)
  t.teardown(() => server.sql(`ALTER ROLE ${ROLES.scram.user} LOGIN`))

  proxy.proxy.reload(parseConfig(yaml(1000).replace(/\$PROXY_PORT/g, String(proxy.port)), process.env, process.cwd()))
  const outcomes: string[] = []
  const until = Date.now() + 2500
  while (Date.now() < until) {
    for (const c of clients) {
      const r = await c.query('SELECT id, body FROM notes ORDER BY id').then(
        (r) => r.rows.map((x) => x.body).join(','),
        (e: { code?: string; message: string }) => `${e.code} ${e.message}`,
      )
      outcomes.push(r)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const wrong = outcomes.filter((o) => o !== 'a-1,a-2,a-3')
  t.ok(outcomes.length >= 10, `${outcomes.length} statements during and after the reload`)
  t.same(wrong, [], 'every statement answered with the tenant rows, none refused')
})
