// Configuration: the DESIGN.md example parses, defaults are as documented, and every
// mistake is reported with the path of its key.
import t from 'tap'
import { parseConfig, ConfigError, POOL_DEFAULTS } from '../server/config.js'

const EXAMPLE = `
listen: 127.0.0.1:6432
metrics: 127.0.0.1:9187
users:
  app:   { password: app_pw }
  svc:   { password: "\${SVC_PW}", tenant: acme }
  admin: { password: a_pw, bypass: true, admin: true }
tenant:
  setting: app.tenant
  column: tenant_id
  tables: { companies: id, campaigns: company_id }
  reference: [countries]
  unknown: reject
backends:
  shared:     { url: "postgres://app:pw@127.0.0.1:5432/saas", pool: 20 }
  citus:      { url: "postgres://app:pw@citus-coordinator:5432/saas", citus: true }
  dedicated:  { url: "postgres://app:p%40ss@127.0.0.1:5432/tenant_{tenant}?sslmode=require", pool: 5 }
placement:
  default: shared
  tenants: { acme: dedicated }
pool: { mode: transaction }
`

function problems(yaml: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(yaml, env, '/tmp')
    return []
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return err.problems
  }
}

t.test('the DESIGN.md example, with an environment variable', async (t) => {
  const c = parseConfig(EXAMPLE, { SVC_PW: 'from-env' }, '/tmp')
  t.same(c.listen, { host: '127.0.0.1', port: 6432 })
  t.same(c.metrics, { host: '127.0.0.1', port: 9187 })
  t.equal(c.users.svc.password, 'from-env')
  t.equal(c.users.svc.tenant, 'acme')
  t.ok(c.users.admin.bypass && c.users.admin.admin)
  t.same(c.tenant?.tables, { companies: 'id', campaigns: 'company_id' })
  t.equal(c.backends.citus.citus, true)
  t.equal(c.backends.citus.pool, 20, 'default pool size')
  const d = c.backends.dedicated.url
  t.same([d.host, d.port, d.user, d.password, d.database, d.sslmode, d.perTenant], ['127.0.0.1', 5432, 'app', 'p@ss', 'tenant_{tenant}', 'require', true])
  t.notMatch(d.raw, /p%40ss/, 'the password is masked in the raw URL kept for logs')
  t.equal(c.placement.tenants.acme, 'dedicated')
  t.same(c.pool, POOL_DEFAULTS)
  t.equal(c.auth, 'scram-sha-256')
})

t.test('defaults: no tenant section is a transparent pooler; one backend is the default placement', async (t) => {
  const c = parseConfig('users: { a: { password: x } }\nbackends: { only: { url: "postgresql://h/db" } }', {}, '/tmp')
  t.equal(c.tenant, undefined)
  t.equal(c.placement.default, 'only')
  t.same(c.listen, { host: '127.0.0.1', port: 6432 })
  t.same([c.backends.only.url.port, c.backends.only.url.user, c.backends.only.url.sslmode], [5432, undefined, 'prefer'])
  const tenant = parseConfig('users: { a: { password: x } }\nbackends: { only: { url: "postgres://h/db" } }\ntenant: {}', {}, '/tmp').tenant
  t.same(tenant, {
    setting: 'app.tenant',
    column: 'tenant_id',
    tables: {},
    reference: [],
    unknown: 'reject',
    pattern: '^[A-Za-z0-9_-]{1,63}$',
    metrics_top: 100,
    functions: [],
    user_functions: 'reject',
  })
})

t.test('every mistake names its key', async (t) => {
  const base = 'users: { a: { password: x } }\n'
  t.same(problems(base + 'backends: { main: { url: "mysql://h/db" } }'), ['backends.main.url: not a postgres:// URL'])
  t.same(problems(base + 'backends: { main: { url: "postgres://h/db" } }\nplacement: { default: x }'), ['placement.default: no backend named "x"'])
  t.same(problems('users: { a: { tenant: t } }\nbackends: { m: { url: "postgres://h/db" } }'), [
    'users.a.password: required (or trust: true, or a passthrough section)',
  ])
  t.same(problems(base + 'backends: { m: { url: "postgres://h/db" } }\npool: { mode: statement }'), ['pool.mode: must be "transaction" or "session"'])
  t.same(problems(base + 'backends: { m: { url: "postgres://h/db?sslmode=maybe" } }'), [
    'backends.m.url: sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full',
  ])
  t.same(problems(base + 'backends: { m: { url: "postgres://h/db" } }\nlisten: nowhere'), ['listen: must be host:port, got "nowhere"'])
  t.same(problems(base + 'backends: { m: { url: "postgres://h/db" } }\nlisten_port: 5'), [
    'listen_port: unknown key (expected one of: listen, metrics, tls, auth, users, passthrough, trust, tenant, backends, databases, placement, pool, tenant_limits, log_level, log_format, log, citus, workers)',
  ])
  t.same(problems(base + 'backends: { m: { url: "postgres://h/db" } }\nworkers: 65'), ['workers: at most 64'])
  t.same(problems(base + 'backends: { m: { url: "postgres://${NOPE}@h/db" } }'), ['backends.m.url: environment variable NOPE is not set'])
  t.same(problems(base + 'backends: { m: { url: "postgres://h/db" } }\ntls: { cert: /nonexistent.crt, key: /nonexistent.key }'), [
    'tls.cert: cannot read /nonexistent.crt: ENOENT',
    'tls.key: cannot read /nonexistent.key: ENOENT',
  ])
  t.same(problems('auth: md5\nusers: { a: { password: "SCRAM-SHA-256$4096:AA==$AA==:AA==" } }\nbackends: { m: { url: "postgres://h/db" } }'), [
    'users.a.password: auth: md5 needs a plain or md5 password, not a SCRAM verifier',
  ])
  t.same(problems(base + 'backends: { a: { url: "postgres://h/db" }, b: { url: "postgres://h/db" } }'), [
    'placement.default: required when there is more than one backend',
  ])
  t.same(problems(base + 'backends: { m: { url: "postgres://h/db" } }\npool: { wait_timeout_ms: -1 }'), ['pool.wait_timeout_ms: must be an integer ≥ 0'])
  t.same(problems('backends: { m: { url: "postgres://h/db" } }'), ['users: required: at least one user who may log in (or passthrough / trust: loopback)'])
  t.same(problems(': : :'), [problems(': : :')[0]], 'bad YAML is one clear problem')
  t.match(problems(': : :')[0], /^not valid YAML/)
  t.equal(problems(base + 'backends: { m: { url: "ftp://x" } }\npool: { mode: x }\nlisten: y').length, 3, 'all problems at once')
})
