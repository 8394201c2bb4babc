// Tenant context through the proxy: how the tenant is set, shown, pinned and changed;
// what the server sees; prepared statements across tenant changes; many tenants at once.
import t, { type Test } from 'tap'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, run } from '../helpers/proxy.js'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`
  CREATE TABLE notes (tenant_id text NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant_id, id));
  CREATE TABLE audit (tenant_id text NOT NULL DEFAULT current_setting('app.tenant'), seen text);
  CREATE TABLE countries (code text PRIMARY KEY);
  CREATE SCHEMA other;
  CREATE TABLE other.notes (tenant_id text NOT NULL, id int NOT NULL, body text);
  INSERT INTO other.notes SELECT t, g, 'other ' || t FROM unnest(ARRAY['a', 'b']) t, generate_series(1, 3) g;
  INSERT INTO countries VALUES ('DE'), ('FR');
  INSERT INTO notes SELECT t, g, t || ' note ' || g FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e']) t, generate_series(1, 20) g;
  -- A trigger sees the tenant the proxy sets on the server.
  CREATE FUNCTION note_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO audit (tenant_id, seen) VALUES (NEW.tenant_id, current_setting('app.tenant', true)); RETURN NEW; END $$;
  CREATE TRIGGER note_audit AFTER INSERT ON notes FOR EACH ROW EXECUTE FUNCTION note_audit();
`)
const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
  svc_b: { password: svc_pw, tenant: b }
  ops: { password: ops_pw, bypass: true }
tenant:
  column: tenant_id
  reference: [countries]
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres", pool: 3 }
`)
t.teardown(() => proxy.stop())

async function connect(user = 'app', password = 'app_pw', options?: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url(user, password), options })
  await c.connect()
  return c
}

const tenantsOf = async (c: pg.Client, sql = 'SELECT DISTINCT tenant_id FROM notes ORDER BY 1'): Promise<string[]> =>
  (await c.query(sql)).rows.map((r) => r.tenant_id)

t.test('every way to set, show and clear the tenant', async (t) => {
  const c = await connect()
  await t.rejects(c.query('SELECT * FROM notes'), { code: '42501', message: /no tenant is set/ })
  await c.query("SET app.tenant = 'a'")
  t.same(await tenantsOf(c), ['a'])
  await c.query('SET app.tenant TO b')
  t.same(await tenantsOf(c), ['b'])
  await c.query("SET SESSION app.tenant = 'c'")
  t.same(await tenantsOf(c), ['c'])
  t.equal((await c.query('SHOW app.tenant')).rows[0]['app.tenant'], 'c')
  t.same((await c.query("SELECT set_config('app.tenant', 'd', false)")).rows, [{ set_config: 'd' }])
  t.same(await tenantsOf(c), ['d'])
  await c.query('RESET app.tenant')
  await t.rejects(c.query('SELECT 1 FROM notes'), { code: '42501' })
  await c.query("SET app.tenant = 'e'")
  await c.query('SET app.tenant TO DEFAULT')
  await t.rejects(c.query('SELECT 1 FROM notes'), { code: '42501' })
  await c.query("SET app.tenant = 'a'")
  await c.query('RESET ALL')
  await t.rejects(c.query('SELECT 1 FROM notes'), { code: '42501' }, 'RESET ALL clears the tenant too')
  t.same(
    (await c.query('SELECT code FROM countries ORDER BY 1')).rows.map((r) => r.code),
    ['DE', 'FR'],
    'reference tables need no tenant',
  )
  await c.end()
  const viaOption = await connect('app', 'app_pw', '-c app.tenant=b')
  t.same(await tenantsOf(viaOption), ['b'], 'startup options=-c app.tenant=b')
  await viaOption.end()
})

t.test('psql: SET, SHOW and the tenant through the extended protocol (node-postgres parameters)', async (t) => {
  const r = await run('psql', ['-X', '-A', '-t', proxy.url('app', 'app_pw')], "SET app.tenant = 'c';\nSHOW app.tenant;\nSELECT count(*) FROM notes;\n")
  t.equal(r.stdout.trim().split('\n').join(','), 'SET,c,20')
  const c = await connect()
  await c.query({ text: "SET app.tenant = 'd'", values: [] }) // extended protocol: Parse/Bind/Execute answered by the proxy
  t.same(await tenantsOf(c), ['d'])
  t.equal((await c.query({ text: 'SELECT count(*)::int AS n FROM notes WHERE id <= $1', values: [5] })).rows[0].n, 5)
  await c.end()
})

t.test('set_config of the tenant with a Bind parameter sets the tenant from the parameter (issue 22)', async (t) => {
  const c = await connect()
  t.same((await c.query("SELECT set_config('app.tenant', $1, false)", ['b'])).rows, [{ set_config: 'b' }])
  t.equal((await c.query('SHOW app.tenant')).rows[0]['app.tenant'], 'b', 'the tenant is the parameter, not cleared')
  t.same(await tenantsOf(c), ['b'])
  // a named statement reused with another parameter
  const q = { name: 'settenant', text: "SELECT set_config('app.tenant', $1, false)" }
  await c.query({ ...q, values: ['c'] })
  t.same(await tenantsOf(c), ['c'])
  await c.query({ ...q, values: ['a'] })
  t.same(await tenantsOf(c), ['a'])
  // NULL clears it, as set_config(…, NULL, …) does on PostgreSQL
  await c.query("SELECT set_config('app.tenant', $1, false)", [null])
  await t.rejects(c.query('SELECT * FROM notes'), { code: '42501', message: /no tenant is set/ })
  await c.end()
})

t.test('a tenant table created after start-up is discovered at its first use (refusal reason unknown_relation)', async (t) => {
  server.sql(`CREATE TABLE late_notes (tenant_id text NOT NULL, id int); INSERT INTO late_notes SELECT t, 1 FROM unnest(ARRAY['a', 'b']) t;`)
  const c = await connect()
  await c.query("SET app.tenant = 'b'")
  t.same(await tenantsOf(c, 'SELECT tenant_id FROM late_notes'), ['b'], 'rediscovered, and restricted as a tenant table')
  await t.rejects(c.query('SELECT * FROM never_created_table'), { code: '42501', message: /is not known to pgtenant/ })
  await c.end()
})

t.test('the server sees the tenant: current_setting, defaults and triggers', async (t) => {
  const c = await connect()
  await c.query("SET app.tenant = 'e'")
  t.equal((await c.query("SELECT current_setting('app.tenant') AS v")).rows[0].v, 'e')
  await c.query("INSERT INTO notes (id, body) VALUES (100, 'from e')")
  const audit = server.sql("SELECT tenant_id || ':' || seen FROM audit WHERE tenant_id = 'e'")
  t.equal(audit, 'e:e', 'the trigger saw app.tenant = e')
  t.equal(server.sql('SELECT tenant_id FROM notes WHERE id = 100'), 'e', 'the tenant column was added')
  server.sql('DELETE FROM notes WHERE id = 100; DELETE FROM audit')
  await c.end()
})

t.test('pinned and bypass users', async (t) => {
  const svc = await connect('svc_b', 'svc_pw')
  t.same(await tenantsOf(svc), ['b'], 'pinned to b by login')
  await t.rejects(svc.query("SET app.tenant = 'a'"), { code: '42501', message: /pinned to tenant "b"/ })
  t.same(await tenantsOf(svc), ['b'])
  await svc.end()
  const ops = await connect('ops', 'ops_pw')
  t.same(await tenantsOf(ops), ['a', 'b', 'c', 'd', 'e'], 'bypass sees every tenant')
  await ops.query('CREATE TEMP TABLE x (a int)')
  await ops.end()
})

t.test('tenant changes inside transactions', async (t) => {
  const c = await connect()
  await c.query("SET app.tenant = 'a'")
  await c.query('BEGIN')
  t.same(await tenantsOf(c), ['a'])
  await t.rejects(c.query("SET app.tenant = 'b'"), { code: '25001' })
  t.same(await tenantsOf(c), ['a'], 'still tenant a, transaction still usable')
  await c.query('COMMIT')
  await c.query('BEGIN')
  await c.query("SET LOCAL app.tenant = 'c'")
  t.same(await tenantsOf(c), ['c'], 'SET LOCAL right after BEGIN')
  t.equal((await c.query("SELECT current_setting('app.tenant') AS v")).rows[0].v, 'c', 'and the server sees it')
  await c.query('COMMIT')
  t.same(await tenantsOf(c), ['a'], 'SET LOCAL ended with the transaction')
  await c.end()
})

t.test('prepared statements follow the current tenant, never the one they were prepared for', async (t) => {
  const c = await connect()
  await c.query("SET app.tenant = 'a'")
  const q = { name: 'mine', text: 'SELECT DISTINCT tenant_id FROM notes WHERE id < $1' }
  t.same((await c.query({ ...q, values: [5] })).rows, [{ tenant_id: 'a' }])
  await c.query("SET app.tenant = 'b'")
  t.same((await c.query({ ...q, values: [5] })).rows, [{ tenant_id: 'b' }], 'same statement name, now runs for b')
  await c.end()
})

t.test('one refused statement in a message: nothing of it reaches the server', async (t) => {
  const c = await connect()
  await c.query("SET app.tenant = 'a'")
  await t.rejects(c.query("INSERT INTO notes (id, body) VALUES (500, 'x'); DROP TABLE notes"), { code: '42501' })
  t.equal(server.sql('SELECT count(*) FROM notes WHERE id = 500'), '0', 'the INSERT before the refused DROP did not run')
  await t.rejects(c.query("INSERT INTO notes (tenant_id, id, body) VALUES ('b', 501, 'x')"), { code: '42501' })
  await t.rejects(c.query({ text: 'INSERT INTO notes (tenant_id, id, body) VALUES ($1, 502, $2)', values: ['b', 'x'] }), {
    code: '42501',
    message: /tenant violation: tenant_id must equal the session tenant/,
  })
  t.equal(server.sql('SELECT count(*) FROM notes WHERE id IN (501, 502)'), '0', 'no row written for another tenant')
  await t.rejects(c.query("UPDATE notes SET tenant_id = 'b' WHERE id = 1"), /tenant/)
  t.equal(server.sql("SELECT count(*) FROM notes WHERE tenant_id = 'a'"), '20')
  await t.rejects(c.query('SELECT * FROM pg_stat_activity'), { code: '42501' })
  await t.rejects(c.query('SELEC oops'), { code: '42601' })
  t.equal((await c.query('SELECT count(*)::int AS n FROM notes')).rows[0].n, 20, 'session usable after refusals')
  await c.end()
})

t.test('WITH HOLD cursors pin the connection; tenant changes drop SQL-level prepared statements; text settings', async (t) => {
  const c = await connect()
  await c.query("SET app.tenant = 'a'")
  await c.query('BEGIN')
  await c.query('DECLARE held CURSOR WITH HOLD FOR SELECT tenant_id FROM notes ORDER BY id')
  await c.query('COMMIT')
  // Other clients keep working on the remaining pool connections, and never see the cursor.
  const others = await Promise.all([1, 2, 3].map(() => connect('app', 'app_pw', '-c app.tenant=b')))
  for (const o of others) await t.rejects(o.query('FETCH 1 FROM held'), { code: '34000' }, 'another client cannot fetch from it')
  await Promise.all(others.map((o) => o.end()))
  t.same((await c.query('FETCH 2 FROM held')).rows, [{ tenant_id: 'a' }, { tenant_id: 'a' }], 'the owner still can')
  await c.query('PREPARE mine AS SELECT DISTINCT tenant_id FROM notes')
  t.same((await c.query('EXECUTE mine')).rows, [{ tenant_id: 'a' }])
  await c.query("SET app.tenant = 'b'")
  await t.rejects(c.query('EXECUTE mine'), { code: '26000' }, 'a statement prepared for tenant a cannot run for b')
  await t.rejects(c.query('FETCH 1 FROM held'), { code: '34000' }, 'nor can a cursor opened for tenant a')
  t.same(await tenantsOf(c), ['b'])
  await c.end()
  const latin = await run('psql', ['-X', '-c', 'SELECT 1', proxy.url('app', 'app_pw')], undefined, { PGCLIENTENCODING: 'LATIN1' })
  t.match(latin.stderr, /pgtenant needs client_encoding UTF8 for tenant sessions/)
})

t.test('search_path decides which table a name means, for the proxy too', async (t) => {
  const c = await connect()
  await c.query("SET app.tenant = 'a'")
  await c.query('SET search_path = other, public')
  t.same((await c.query('SELECT DISTINCT tenant_id, body FROM notes')).rows, [{ tenant_id: 'a', body: 'other a' }], 'other.notes, filtered')
  await c.query('RESET search_path')
  await c.query('BEGIN')
  await c.query('SET search_path = other')
  t.same((await c.query('SELECT count(*)::int AS n, min(body) AS b FROM notes')).rows, [{ n: 3, b: 'other a' }], 'a SET inside the transaction counts at once')
  await c.query('ROLLBACK')
  t.equal((await c.query('SELECT count(*)::int AS n FROM notes')).rows[0].n, 20, 'rolled back: public.notes again')
  await t.rejects(c.query('SET search_path = other; SELECT * FROM notes'), { code: '0A000' })
  await c.query('BEGIN')
  await t.rejects(c.query('SET LOCAL search_path = other'), { code: '0A000' })
  await c.query('ROLLBACK')
  await c.end()
})

t.test('many clients of different tenants on a pool of 3 only ever see their own rows', async (t) => {
  const tenants = ['a', 'b', 'c', 'd', 'e']
  const clients = await Promise.all(Array.from({ length: 25 }, (_, i) => connect('app', 'app_pw', `-c app.tenant=${tenants[i % 5]}`)))
  let foreign = 0
  let checks = 0
  await Promise.all(
    clients.map(async (c, i) => {
      const mine = tenants[i % 5]
      for (let round = 0; round < 20; round++) {
        const res =
          round % 3 === 0
            ? await c.query('SELECT tenant_id, id FROM notes WHERE id <= 3')
            : round % 3 === 1
              ? await c.query({
                  name: `q${round % 2}`,
                  text: 'SELECT n.tenant_id, n.id FROM notes n JOIN notes m ON m.id = n.id WHERE n.id <= $1',
                  values: [3],
                })
              : await c.query({ text: 'SELECT tenant_id, id FROM notes WHERE id = ANY($1)', values: [[1, 2, 3]] })
        checks++
        for (const r of res.rows) if (r.tenant_id !== mine) foreign++
        if (res.rows.length !== 3) foreign++
      }
    }),
  )
  t.equal(foreign, 0, `no foreign or missing rows in ${checks} queries`)
  await Promise.all(clients.map((c) => c.end()))
})

/** A tenant proxy with a pool of `pool` in front of a PostgreSQL that logs every statement. */
async function loggingTenantProxy(t: Test, pool: number): Promise<{ connect: (tenant: string) => Promise<pg.Client>; log: () => string }> {
  const logged = await startPostgres({ conf: ["log_statement = 'all'"] })
  t.teardown(() => logged.stop())
  const p = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw } }
tenant: { column: tenant_id }
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${logged.port}/postgres", pool: ${pool} }
`)
  t.teardown(() => p.stop())
  const connect = async (tenant: string): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: p.url('app', 'app_pw'), options: `-c app.tenant=${tenant}` })
    await c.connect()
    return c
  }
  return { connect, log: () => readFileSync(join(logged.dataDir, 'server.log'), 'utf8') }
}

t.test('a pool hands a client a connection already in its tenant state, so no RESET is pipelined', async (t) => {
  const { connect, log } = await loggingTenantProxy(t, 2)
  const [a, b] = await Promise.all([connect('acme'), connect('globex')])
  // Both transactions open at once: two server connections, one in each tenant's state.
  await a.query('BEGIN')
  await b.query('BEGIN')
  await a.query('SELECT 1')
  await b.query('SELECT 1')
  await a.query('COMMIT')
  await b.query('COMMIT')
  const resets = (): number => (log().match(/statement: RESET ALL/g) ?? []).length
  const before = resets()
  t.equal(before, 2, 'each server connection was brought into a tenant state once')
  const seen: string[] = []
  for (let i = 0; i < 20; i++) {
    for (const [c, tenant] of [
      [a, 'acme'],
      [b, 'globex'],
    ] as const) {
      const r = await c.query("SELECT current_setting('app.tenant') AS tenant")
      if (r.rows[0].tenant !== tenant) seen.push(`${tenant} saw ${r.rows[0].tenant}`)
    }
  }
  t.same(seen, [], 'every transaction ran in its own tenant state')
  t.equal(resets(), before, '40 alternating transactions of two tenants: no further RESET ALL')
  await Promise.all([a.end(), b.end()])
})

t.test('a released connection goes to a waiting client of its own tenant first, and a passed-over client is still served', async (t) => {
  const { connect, log } = await loggingTenantProxy(t, 1)
  const resets = (): number => (log().match(/statement: RESET ALL/g) ?? []).length
  const [holder, other, same] = await Promise.all([connect('acme'), connect('globex'), connect('acme')])
  await holder.query('BEGIN')
  await holder.query("SELECT 'holder'")
  const before = resets()
  // The one server connection is taken: globex asks first, then acme.
  const otherDone = other.query("SELECT 'other waiter'")
  await new Promise((r) => setTimeout(r, 100))
  const sameDone = same.query("SELECT 'same waiter'")
  await new Promise((r) => setTimeout(r, 100))
  await holder.query('COMMIT')
  await Promise.all([otherDone, sameDone])
  const text = log()
  t.ok(text.indexOf("SELECT 'same waiter'") < text.indexOf("SELECT 'other waiter'"), 'the acme waiter got the acme connection first')
  t.equal(resets(), before + 1, 'one state change (for globex), not two')

  // Fairness: three acme clients keep the pool busy; the globex client is still served soon.
  const busy = await Promise.all([connect('acme'), connect('acme'), connect('acme')])
  let acmeDone = 0
  let stop = false
  const loops = busy.map(async (c) => {
    // Each holds the connection a while, so the other acme clients are queued behind it.
    for (let i = 0; i < 40 && !stop; i++) {
      await c.query('SELECT pg_sleep(0.005)')
      acmeDone++
    }
  })
  while (acmeDone < 6) await new Promise((r) => setTimeout(r, 1))
  const startedAt = acmeDone
  await other.query("SELECT 'passed over'")
  const servedAfter = acmeDone - startedAt
  stop = true
  await Promise.all(loops)
  // 16 passes at most, plus the acme clients queued ahead of it or running, plus completions counted late;
  // without the bound it would wait for all 120.
  t.ok(servedAfter <= 16 + 2 * busy.length + 2, `globex was served after ${servedAfter} acme transactions`)
  await Promise.all([holder, other, same, ...busy].map((c) => c.end()))
})
