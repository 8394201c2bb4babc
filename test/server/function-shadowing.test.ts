// An unqualified call of a pg_catalog function name may run a function of the same name in
// another schema (held-out attack finding: `replace(email::citext, …)` runs citext's
// public.replace): PostgreSQL picks the overload with the closest argument types. Such names are
// decided by the user-function policy too; the shadowing function here reads every tenant's rows.
import t from 'tap'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy } from '../helpers/proxy.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`
  CREATE TABLE notes (tenant_id text NOT NULL, id int NOT NULL, body varchar NOT NULL, PRIMARY KEY (tenant_id, id));
  INSERT INTO notes SELECT t, g, t || '-secret-' || g FROM unnest(ARRAY['a', 'b']) t, generate_series(1, 2) g;
  CREATE FUNCTION public.upper(x varchar) RETURNS text LANGUAGE sql AS $$ SELECT string_agg(body, ',') FROM notes $$;
  -- an extension's overloads of catalog names (citext: max, min, replace, split_part, …) are installed code, not the application's
  CREATE EXTENSION citext;
  ALTER TABLE notes ADD COLUMN tag citext NOT NULL DEFAULT 'Tag';
`)

async function proxyWith(functions: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const p = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
tenant:
  column: tenant_id
${functions}
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres", pool: 2 }
`)
  return { url: p.url('app', 'app_pw'), stop: () => p.stop() }
}

t.test('directly, upper(varchar) runs the shadowing public.upper', async (t) => {
  t.match(server.sql(`SELECT upper(body) FROM notes WHERE tenant_id = 'a' AND id = 1`), /b-secret/, 'it reads tenant b')
})

t.test('through pgtenant the shadowed name is refused; other catalog functions and pg_catalog.upper are not', async (t) => {
  const p = await proxyWith('')
  t.teardown(p.stop)
  const c = new pg.Client({ connectionString: p.url })
  await c.connect()
  await c.query("SET app.tenant = 'a'")
  await t.rejects(c.query('SELECT upper(body) FROM notes'), { code: '42501', message: /upper\(\) .*outside pg_catalog/ })
  await t.rejects(c.query('SELECT upper(body::text) FROM notes'), { code: '42501' }, 'refused whatever the argument type')
  t.same(
    (await c.query('SELECT pg_catalog.upper(body) AS u FROM notes ORDER BY id')).rows,
    [{ u: 'A-SECRET-1' }, { u: 'A-SECRET-2' }],
    'the qualified catalog function runs',
  )
  t.same((await c.query('SELECT lower(body) AS l FROM notes ORDER BY id LIMIT 1')).rows, [{ l: 'a-secret-1' }], 'a name nobody shadows runs')
  t.same(
    (await c.query("SELECT max(id) AS m, replace(tag, 'T', 'x') AS r, split_part(body, '-', 1) AS p FROM notes GROUP BY 2, 3")).rows,
    [{ m: 2, r: 'xag', p: 'a' }],
    "citext's overloads of max, replace, split_part run (extension members)",
  )
  await c.end()
})

t.test('listed in tenant.functions, the name is allowed (the operator vouches for it)', async (t) => {
  const p = await proxyWith('  functions: [upper]')
  t.teardown(p.stop)
  const c = new pg.Client({ connectionString: p.url })
  await c.connect()
  await c.query("SET app.tenant = 'a'")
  t.equal((await c.query('SELECT upper(body::text) AS u FROM notes ORDER BY id LIMIT 1')).rows[0].u, 'A-SECRET-1')
  await c.end()
})
