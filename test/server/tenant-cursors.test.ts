// A tenant change closes the cursors of the previous tenant in every pool mode (held-out attack
// finding: a WITH HOLD cursor declared as tenant a was FETCHed after SET app.tenant = 'b' under
// session pooling, and under transaction pooling when the SET came right after the DECLARE).
import t from 'tap'
import pg from 'pg'
import { rawConnection, P, B, E, S, Q } from '../helpers/raw-client.js'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, type RunningProxy } from '../helpers/proxy.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`
  CREATE TABLE notes (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
  INSERT INTO notes SELECT t, g FROM unnest(ARRAY['a', 'b']) t, generate_series(1, 3) g;
`)

const proxies: Record<string, RunningProxy> = {}
for (const mode of ['session', 'transaction']) {
  proxies[mode] = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
tenant:
  column: tenant_id
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres", pool: 2 }
pool: { mode: ${mode} }
`)
  t.teardown(() => proxies[mode].stop())
}

for (const mode of ['session', 'transaction']) {
  const url = (): string => proxies[mode].url('app', 'app_pw')

  t.test(`${mode} pooling: a WITH HOLD cursor of tenant a is gone after SET app.tenant = 'b'`, async (t) => {
    for (const declare of [
      'DECLARE c CURSOR WITH HOLD FOR SELECT tenant_id FROM notes',
      'BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT tenant_id FROM notes; COMMIT',
    ]) {
      const c = new pg.Client({ connectionString: url() })
      await c.connect()
      await c.query("SET app.tenant = 'a'")
      await c.query(declare)
      await c.query("SET app.tenant = 'b'")
      await t.rejects(c.query('FETCH ALL FROM c'), { code: '34000' }, `${declare}: FETCH finds no cursor`)
      t.same((await c.query('SELECT DISTINCT tenant_id FROM notes')).rows, [{ tenant_id: 'b' }])
      await c.end()
    }
  })

  t.test(`${mode} pooling: pipelined DECLARE (extended protocol), SET, FETCH`, async (t) => {
    const c = await rawConnection(url())
    await c.exchange([Q("SET app.tenant = 'a'")], 1)
    const out = await c.exchange(
      [P('DECLARE c CURSOR WITH HOLD FOR SELECT tenant_id FROM notes'), B(), E(), S, Q("SET app.tenant = 'b'"), Q('FETCH ALL FROM c')],
      3,
    )
    await c.close()
    t.notOk(out.includes('D:a'), `no row of tenant a: ${out.join(' ')}`)
    t.ok(out.includes('E:34000'), 'the cursor was closed')
  })
}
