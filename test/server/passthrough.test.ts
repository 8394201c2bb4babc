// Logins without a password in the YAML (issue 14 item 8): passthrough authentication (the
// password is checked by logging in to the server as that user, as PgBouncer's auth_query and
// PgDog's passthrough do) and trust for local development.
import t from 'tap'
import pg from 'pg'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, run, psqlArgs, loginError } from '../helpers/proxy.js'
import { PassthroughCache } from '../../server/auth/passthrough.js'
import { isLoopback, loginMethod } from '../../server/client-auth.js'
import { parseConfig } from '../../server/config.js'

const server = await startPostgres()
t.teardown(() => server.stop())
server.sql(`SET password_encryption = 'scram-sha-256'; CREATE ROLE pt_user LOGIN PASSWORD 'pt pw'; CREATE ROLE pt_ops LOGIN PASSWORD 'ops pw'`)

async function whoAmI(url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    return (await c.query('SELECT current_user AS u, 1 AS one')).rows[0].u
  } finally {
    await c.end()
  }
}

t.test('passthrough: users not in the YAML log in with their server password', async (t) => {
  // No user in the backend URL: server connections are made as the client's user, with the password it gave.
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
metrics: 127.0.0.1:0
users:
  app: { password: app_pw }
  boss: { password: boss_pw, admin: true }
  pt_ops: { bypass: true }
passthrough: { cache_ttl_ms: 60000 }
backends:
  main: { url: "postgres://127.0.0.1:${server.port}/postgres", pool: 2 }
`)
  t.teardown(() => proxy.stop())
  const failures = async (reason: string): Promise<number> => {
    const m = await proxy.proxy.metrics.prometheus!.registry.getSingleMetric('pgtenant_auth_failures_total')!.get()
    return m.values.find((v) => v.labels.reason === reason)?.value ?? 0
  }
  t.equal(
    await whoAmI(proxy.url('pt_user', 'pt pw')),
    'pt_user',
    'a user with no YAML entry: the right password logs in, and the server connection is made as that user',
  )
  t.equal(await whoAmI(proxy.url('pt_user', 'pt pw')), 'pt_user', 'again (from the cache)')
  t.equal(await whoAmI(proxy.url('pt_ops', 'ops pw')), 'pt_ops', 'a user listed without a password')
  const before = await failures('passthrough_rejected')
  const wrong = await loginError(proxy.url('pt_user', 'wrong'))
  t.equal(wrong?.code, '28P01', 'a wrong password: 28P01')
  t.equal(wrong?.message, 'password authentication failed for user "pt_user"')
  const unknown = await loginError(proxy.url('nobody', 'whatever'))
  t.equal(unknown?.code, '28P01', 'a user the server does not know either: 28P01')
  t.equal(unknown?.message, 'password authentication failed for user "nobody"', 'the same message as for a wrong password')
  t.equal((await failures('passthrough_rejected')) - before, 2, 'both counted as auth failures (reason passthrough_rejected)')
  const psqlWrong = await run('psql', psqlArgs(proxy.url('pt_user', 'wrong'), 'SELECT 1'))
  t.match(psqlWrong.stderr, /FATAL: {1,2}password authentication failed for user "pt_user"/, 'psql: the message PostgreSQL gives')
  const psqlRight = await run('psql', psqlArgs(proxy.url('pt_user', 'pt pw'), 'SELECT current_user'))
  t.equal(psqlRight.stdout.trim(), 'pt_user', 'psql logs in with the right password')
  const listed = await loginError(proxy.url('app', 'wrong'))
  t.equal(listed?.code, '28P01', 'a listed user with a password is still checked against it (SCRAM with the proxy), not on the server')
  // SHOW USERS: listed users with their login kind, and unlisted passthrough users while they have clients
  const held = new pg.Client({ connectionString: proxy.url('pt_user', 'pt pw') })
  await held.connect()
  t.teardown(() => held.end())
  const admin = new pg.Client({ connectionString: proxy.url('boss', 'boss_pw', 'pgtenant') })
  await admin.connect()
  t.teardown(() => admin.end())
  t.same(
    (await admin.query('SHOW USERS')).rows.map((u) => [u.name, u.password, u.clients]),
    [
      ['app', 'plain', '0'],
      ['boss', 'plain', '1'], // this console
      ['pt_ops', 'passthrough', '0'],
      ['pt_user', 'passthrough', '1'],
    ],
    'SHOW USERS: the passthrough user with a client appears, with its login kind',
  )
})

t.test('without passthrough, an unlisted user cannot log in', async (t) => {
  const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { app: { password: app_pw } }
backends:
  main: { url: "postgres://127.0.0.1:${server.port}/postgres", pool: 2 }
`)
  t.teardown(() => proxy.stop())
  t.equal((await loginError(proxy.url('pt_user', 'pt pw')))?.code, '28P01')
})

t.test('trust: a trusted user, or every user on loopback, logs in without a password', async (t) => {
  const dev = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users: { dev: { trust: true }, app: { password: app_pw } }
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/postgres", pool: 2 }
`)
  t.teardown(() => dev.stop())
  const noPassword = (p: typeof dev, user: string): string => `postgres://${user}@127.0.0.1:${p.port}/postgres`
  const r = await run('psql', ['-w', ...psqlArgs(noPassword(dev, 'dev'), 'SELECT 1')])
  t.equal(r.stdout.trim(), '1', `users.dev.trust: psql logs in without a password ${r.stderr}`)
  t.match((await loginError(noPassword(dev, 'app')))?.message ?? '', /client password must be a string/, 'app still needs its password (the proxy asks for it)')

  const loopback = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
trust: loopback
backends:
  main: { url: "postgres://127.0.0.1:${server.port}/postgres", pool: 2 }
`)
  t.teardown(() => loopback.stop())
  t.equal(
    await whoAmI(noPassword(loopback, ROLES.trust.user)),
    ROLES.trust.user,
    'trust: loopback: node-postgres logs in without a password, as a user the server trusts',
  )
  const p = await run('psql', ['-w', ...psqlArgs(noPassword(loopback, ROLES.trust.user), 'SELECT current_user')])
  t.equal(p.stdout.trim(), ROLES.trust.user, `psql too ${p.stderr}`)
})

t.test('pieces: the cache, loopback, the login method, the config', async (t) => {
  const cache = new PassthroughCache()
  cache.remember('k', 'pw', 1000, 0)
  t.ok(cache.hit('k', 'pw', 500), 'the password it verified')
  t.notOk(cache.hit('k', 'other', 500), 'not another one')
  t.notOk(cache.hit('k', 'pw', 1000), 'not after the TTL')
  cache.remember('k', 'pw', 0)
  t.notOk(cache.hit('k', 'pw'), 'TTL 0: nothing remembered')
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) t.ok(isLoopback(a), a)
  for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '128.0.0.1', undefined]) t.notOk(isLoopback(a), String(a))
  const base = 'backends: { main: { url: "postgres://h/db" } }\n'
  const c = parseConfig(`${base}users: { a: { password: x }, b: { tenant: t1 } }\npassthrough: true\n`, {}, '/')
  t.same(c.passthrough, { cache_ttl_ms: 60000, plaintext: 'loopback' }, 'passthrough: true takes the defaults')
  t.equal(loginMethod(c, c.users.a, '10.0.0.1'), 'password')
  t.equal(loginMethod(c, c.users.b, '10.0.0.1'), 'passthrough', 'listed without a password')
  t.equal(loginMethod(c, undefined, '10.0.0.1'), 'passthrough', 'not listed')
  const tr = parseConfig(`${base}trust: loopback\n`, {}, '/')
  t.equal(loginMethod(tr, undefined, '127.0.0.1'), 'trust')
  t.equal(loginMethod(tr, undefined, '10.0.0.1'), 'password', 'trust: loopback trusts only loopback')
  t.throws(
    () => parseConfig(`${base}users: { a: { tenant: t1 } }\n`, {}, '/'),
    /users\.a\.password: required/,
    'without passthrough or trust a password is required',
  )
  t.throws(
    () => parseConfig(`${base}users: { a: { password: x } }\npassthrough: { backend: nope }\n`, {}, '/'),
    /passthrough\.backend: no backend named "nope"/,
  )
})
