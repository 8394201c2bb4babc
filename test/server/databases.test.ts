// The database a client names (issue 14 item 5): mapped to a backend as PgBouncer's
// [databases] section does, unknown names refused with FATAL 3D000 as PostgreSQL refuses
// them, tenant routing kept for the routing database.
import t from 'tap'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, run, psqlArgs, loginError } from '../helpers/proxy.js'
import { parseConfig, ConfigError } from '../../server/config.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql('CREATE DATABASE other_db')
server.sql('CREATE DATABASE app_test')
server.sql('CREATE DATABASE tenant_acme')
const auth = `${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}`

async function currentDatabase(url: string, options?: string): Promise<string> {
  const c = new pg.Client({ connectionString: url, options })
  await c.connect()
  try {
    return (await c.query('SELECT current_database() AS db')).rows[0].db
  } finally {
    await c.end()
  }
}

t.test('without databases: backend names and their URLs databases; anything else is 3D000', async (t) => {
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
metrics: 127.0.0.1:0
users: { app: { password: app_pw } }
backends:
  main:  { url: "postgres://${auth}@127.0.0.1:${server.port}/postgres", pool: 2 }
  other: { url: "postgres://${auth}@127.0.0.1:${server.port}/other_db", pool: 2 }
placement: { default: main }
`)
  const refused = async (): Promise<number> => {
    const m = await proxy.proxy.metrics.prometheus!.registry.getSingleMetric('pgtenant_client_connections_refused_total')!.get()
    return m.values.find((v) => v.labels.reason === 'unknown_database')?.value ?? 0
  }
  t.teardown(() => proxy.stop())
  t.equal(await currentDatabase(proxy.url('app', 'app_pw', 'postgres')), 'postgres', 'the URL database of main')
  t.equal(await currentDatabase(proxy.url('app', 'app_pw', 'main')), 'postgres', 'the backend name main')
  t.equal(await currentDatabase(proxy.url('app', 'app_pw', 'other')), 'other_db', 'the backend name other')
  t.equal(await currentDatabase(proxy.url('app', 'app_pw', 'other_db')), 'other_db', 'the URL database of other')
  const err = await loginError(proxy.url('app', 'app_pw', 'no_such_db'))
  t.equal(err?.code, '3D000', 'node-postgres: 3D000')
  t.equal(err?.message, 'database "no_such_db" does not exist', 'as PostgreSQL says it')
  const r = await run('psql', psqlArgs(proxy.url('app', 'app_pw', 'no_such_db'), 'SELECT 1'))
  t.not(r.code, 0, 'psql fails')
  t.match(r.stderr, /FATAL: {1,2}database "no_such_db" does not exist/, `psql says so: ${r.stderr.trim()}`)
  // PostgreSQL checks the database after the password: a wrong password says nothing about it.
  t.equal((await loginError(proxy.url('app', 'wrong', 'no_such_db')))?.code, '28P01', 'a wrong password is 28P01 whatever the database')
  // psql without a database name uses the user name: "app" is no database here.
  const noDb = await run('psql', ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(proxy.port), '-U', 'app', '-c', 'SELECT 1'], undefined, {
    PGPASSWORD: 'app_pw',
  })
  t.match(noDb.stderr, /database "app" does not exist/, 'the default database name (the user name) is checked too')
  t.equal(await refused(), 3, 'each 3D000 refusal counted: pgtenant_client_connections_refused_total{reason="unknown_database"}')
})

t.test('databases: mapped names reach their server database; "*" is the fallback; tenant routing stays for the routing database', async (t) => {
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw } }
tenant: { column: tenant_id }
backends:
  main:       { url: "postgres://${auth}@127.0.0.1:${server.port}/postgres", pool: 2 }
  per_tenant: { url: "postgres://${auth}@127.0.0.1:${server.port}/tenant_{tenant}", pool: 2 }
placement: { default: main, tenants: { acme: per_tenant } }
databases:
  app: main
  test_app: { backend: main, dbname: app_test }
`)
  t.teardown(() => proxy.stop())
  t.equal(await currentDatabase(proxy.url('app', 'app_pw', 'app')), 'postgres', 'app -> main, its URL database')
  t.equal(await currentDatabase(proxy.url('app', 'app_pw', 'test_app')), 'app_test', 'test_app -> main, database app_test')
  t.equal(
    await currentDatabase(proxy.url('app', 'app_pw', 'app'), '-c app.tenant=acme'),
    'tenant_acme',
    'the routing database: tenant acme goes to its own database',
  )
  t.equal(await currentDatabase(proxy.url('app', 'app_pw', 'test_app'), '-c app.tenant=acme'), 'app_test', 'another database: the session stays in it')
  for (const name of ['postgres', 'main', 'other_db'])
    t.equal((await loginError(proxy.url('app', 'app_pw', name)))?.code, '3D000', `${name}: not listed, 3D000`)

  const fallback = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw } }
backends:
  main: { url: "postgres://${auth}@127.0.0.1:${server.port}/postgres", pool: 2 }
databases:
  app: main
  "*": main
`)
  t.teardown(() => fallback.stop())
  t.equal(await currentDatabase(fallback.url('app', 'app_pw', 'other_db')), 'other_db', '"*": the database the client named, on that backend')
  t.equal(await currentDatabase(fallback.url('app', 'app_pw', 'app')), 'postgres', 'a listed name still wins')
  const missing = await loginError(fallback.url('app', 'app_pw', 'nowhere'))
  t.equal(missing?.code, '3D000', "a fallback database that does not exist on the server: the server's 3D000")
  t.match(missing?.message ?? '', /database "nowhere" does not exist/)
})

t.test('databases: validated', async (t) => {
  const base = `users: { a: { password: x } }\nbackends:\n  main: { url: "postgres://u:p@h/db" }\n  per: { url: "postgres://u:p@h/t_{tenant}" }\nplacement: { default: main }\n`
  const problems = (yaml: string): string[] => {
    try {
      parseConfig(base + yaml, {}, '/')
      return []
    } catch (err) {
      return (err as ConfigError).problems
    }
  }
  t.same(problems('databases: { app: main, x: { backend: main, dbname: other } }\n'), [])
  t.match(problems('databases: { app: nope }\n'), [/databases\.app\.backend: no backend named "nope"/])
  t.match(problems('databases: { pgtenant: main }\n'), [/databases\.pgtenant: .*admin console/])
  t.match(problems('databases: { "*": per }\n'), [/databases\.\*: backend "per" has one database per tenant/])
  t.match(problems('databases: { x: { backend: per, dbname: y } }\n'), [/databases\.x: backend "per" has one database per tenant/])
  t.match(problems('databases: { x: { backend: main, db: y } }\n'), [/databases\.x\.db: unknown key/])
})
