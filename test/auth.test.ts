// SCRAM-SHA-256 and md5, both sides: the RFC 7677 test vector, verifiers made by PostgreSQL
// itself, and the proxy logging in to real servers with every method they offer.
import t from 'tap'
import pg from 'pg'
import { ScramServer, ScramClient, scramSecretFromPassword, parseScramVerifier, formatScramVerifier, fakeScramSecret } from '../server/auth/scram.js'
import { md5PasswordHash, md5Response, verifyMd5 } from '../server/auth/md5.js'
import { startPostgres, ROLES } from './helpers/pg-server.js'
import { startProxy, basicYaml } from './helpers/proxy.js'

t.test('server side matches the RFC 7677 test vector', async (t) => {
  const secret = scramSecretFromPassword('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096)
  const server = new ScramServer(secret, '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0')
  t.equal(
    server.handleClientFirst('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'),
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  )
  const result = server.handleClientFinal('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=')
  t.same(result, { ok: true, serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=' })
})

t.test('client and server round trip; wrong passwords and unknown users fail alike', async (t) => {
  const secret = scramSecretFromPassword('s3cret')
  const exchange = (password: string, s = secret): { ok: boolean; client: ScramClient; final?: string } => {
    const server = new ScramServer(s)
    const client = new ScramClient('u', password)
    const serverFirst = server.handleClientFirst(client.clientFirst())
    const r = server.handleClientFinal(client.handleServerFirst(serverFirst))
    return { ok: r.ok, client, final: r.serverFinal }
  }
  const good = exchange('s3cret')
  t.ok(good.ok)
  t.doesNotThrow(() => good.client.verifyServerFinal(good.final!), 'client verifies the server signature')
  t.notOk(exchange('wrong').ok)
  t.notOk(exchange('s3cret', fakeScramSecret('nobody')).ok, 'no password matches an unknown user')
  t.same(fakeScramSecret('nobody').salt, fakeScramSecret('nobody').salt, 'an unknown user always gets the same salt')
  t.throws(
    () => good.client.verifyServerFinal('v=' + Buffer.alloc(32).toString('base64')),
    { name: 'ScramError' },
    'a server that does not know the password is rejected',
  )
  t.same(parseScramVerifier(formatScramVerifier(secret)), secret)
})

t.test('malformed SCRAM messages are typed errors, never crashes', async (t) => {
  const server = () => new ScramServer(scramSecretFromPassword('x'))
  for (const bad of ['', 'garbage', 'p=tls-server-end-point,,n=,r=abc', 'n,,r=abc', 'n,,n=u'])
    t.throws(() => server().handleClientFirst(bad), { name: 'ScramError' }, JSON.stringify(bad))
  const s = server()
  s.handleClientFirst('n,,n=,r=abc')
  t.throws(() => s.handleClientFinal('c=biws,r=abc'), { name: 'ScramError' }, 'no proof')
  t.throws(() => s.handleClientFinal('c=biws,r=wrongnonce,p=AAAA'), { name: 'ScramError' }, 'nonce mismatch')
  t.throws(() => new ScramClient('u', 'p').handleServerFirst('r=zzz,s=AAAA,i=4096'), { name: 'ScramError' }, 'server nonce must extend ours')
  t.throws(() => parseScramVerifier('SCRAM-SHA-256$x'), { name: 'ScramError' })
})

t.test('md5 hashes as PostgreSQL computes them', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  t.equal(server.sql(`SELECT rolpassword FROM pg_authid WHERE rolname = '${ROLES.md5.user}'`), md5PasswordHash(ROLES.md5.user, ROLES.md5.password))
  const salt = Buffer.from([1, 2, 3, 4])
  const response = md5Response('u', 'pw', salt)
  t.ok(verifyMd5('pw', 'u', salt, response), 'plain password in config')
  t.ok(verifyMd5(md5PasswordHash('u', 'pw'), 'u', salt, response), 'md5 hash in config')
  t.notOk(verifyMd5('other', 'u', salt, response))
  t.notOk(verifyMd5('SCRAM-SHA-256$4096:AAAA$AAAA:AAAA', 'u', salt, response), 'a SCRAM verifier cannot check md5')
})

t.test('a SCRAM verifier made by PostgreSQL authenticates clients of the proxy', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const verifier = server.sql(`SELECT rolpassword FROM pg_authid WHERE rolname = '${ROLES.scram.user}'`)
  t.match(verifier, /^SCRAM-SHA-256\$4096:/)
  const s = new ScramServer(parseScramVerifier(verifier))
  const c = new ScramClient('x', ROLES.scram.password)
  const r = s.handleClientFinal(c.handleServerFirst(s.handleClientFirst(c.clientFirst())))
  t.ok(r.ok)
  const proxy = await startProxy(basicYaml(server, { users: `  vuser: { password: "${verifier.replace(/\$/g, '$')}" }` }))
  const client = new pg.Client({ connectionString: proxy.url('vuser', ROLES.scram.password) })
  await client.connect()
  t.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1, 'logged in to the proxy with the verifier from pg_authid')
  await client.end()
  await proxy.stop()
})

t.test('the proxy logs in to servers with SCRAM, md5, cleartext and trust', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  for (const role of [ROLES.scram, ROLES.md5, ROLES.plain, ROLES.trust]) {
    const auth = role.password ? `${role.user}:${encodeURIComponent(role.password)}` : role.user
    const proxy = await startProxy(basicYaml(server, { backendUser: auth }))
    const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw') })
    await c.connect()
    t.equal((await c.query('SELECT current_user AS u')).rows[0].u, role.user, `backend login as ${role.user}`)
    await c.end()
    await proxy.stop()
  }
  // A backend URL without a user: the client's own user and password are used (as PgBouncer does).
  const proxy = await startProxy(basicYaml(server, { users: `  ${ROLES.md5.user}: { password: ${ROLES.md5.password} }` }).replace(`scram_user:scram%20pw@`, ''))
  const c = new pg.Client({ connectionString: proxy.url(ROLES.md5.user, ROLES.md5.password) })
  await c.connect()
  t.equal((await c.query('SELECT current_user AS u')).rows[0].u, ROLES.md5.user, 'pass-through user')
  await c.end()
  await proxy.stop()
})
