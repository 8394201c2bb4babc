// decideRoute without Citus: placement map, default, no tenant, {tenant} URLs, invalid tenants, bypass.
import t from 'tap'
import { decideRoute, compileTenantPattern, redactRoute, formatRoute, type RouteInput, type Route } from '../../routing/placement.js'
import { exampleBackends } from './fixtures.js'

const backends = exampleBackends()
const placement = { default: 'shared', tenants: { acme: 'dedicated', globex: 'asclient', initech: 'perhost', broken: 'nope' } }

function input(over: Partial<RouteInput>): RouteInput {
  return { placement, backends, tenant: null, touchesTenant: false, bypass: false, ...over }
}

function ok(d: ReturnType<typeof decideRoute>): Route {
  if (d.kind === 'refuse') throw new Error(`refused: ${d.message}`)
  return d
}

t.test('explicit map, else default; no tenant → default', async (t) => {
  const acme = ok(decideRoute(input({ tenant: 'acme', touchesTenant: true })))
  t.equal(acme.kind, 'dedicated')
  t.equal(acme.backend, 'dedicated')
  t.equal(acme.via, 'tenants')
  t.same(acme.target, { host: '127.0.0.1', port: 5432, database: 'tenant_acme', user: 'app', password: 'pw', sslmode: 'prefer' })
  t.equal(acme.tenant, 'acme')
  t.match(acme.reason, /placement\.tenants\["acme"\].*tenant_acme/)

  const other = ok(decideRoute(input({ tenant: 'umbrella', touchesTenant: true })))
  t.equal(other.kind, 'shared')
  t.equal(other.via, 'default')
  t.same(other.target, { host: '127.0.0.1', port: 5432, database: 'saas', user: 'app', password: 'pw', sslmode: 'prefer' })

  const none = ok(decideRoute(input({ tenant: null })))
  t.equal(none.kind, 'shared')
  t.equal(none.via, 'no-tenant')
  t.equal(none.backend, 'shared')
  t.match(none.reason, /no tenant set/)
})

t.test('inherited object keys are not placements', async (t) => {
  for (const tenant of ['__proto__', 'toString', 'constructor', 'hasOwnProperty']) {
    const d = ok(decideRoute(input({ tenant })))
    t.equal(d.backend, 'shared', tenant)
    t.equal(d.via, 'default', tenant)
  }
})

t.test('a backend URL without user connects as the client', async (t) => {
  const d = ok(decideRoute(input({ tenant: 'globex' })))
  t.equal(d.kind, 'shared')
  t.same(d.target, { host: 'db.internal', port: 6543, database: 'saas', sslmode: 'prefer' })
  t.notOk('user' in d.target)
  t.equal(d.poolKey, 'asclient|db.internal:6543|saas|')
})

t.test('{tenant} in host and user', async (t) => {
  const d = ok(decideRoute(input({ tenant: 'initech' })))
  t.equal(d.kind, 'dedicated')
  t.same(d.target, { host: 'initech.db.internal', port: 5432, database: 'app', user: 'u_initech', password: 'pw', sslmode: 'prefer' })
  t.equal(d.poolKey, 'perhost|initech.db.internal:5432|app|u_initech')
})

t.test('invalid tenant values for a per-tenant backend are refused with 42501', async (t) => {
  const p = { default: 'dedicated', tenants: {} }
  for (const bad of ['a b', "x'; DROP DATABASE saas; --", 'a/b', '../etc', 'é', '', 'x'.repeat(64), 'a\0b', 'acme?sslmode=disable', 'a{tenant}']) {
    const d = decideRoute(input({ placement: p, tenant: bad, touchesTenant: true }))
    t.equal(d.kind, 'refuse', JSON.stringify(bad))
    if (d.kind === 'refuse') {
      t.equal(d.sqlstate, '42501')
      t.match(d.message, /invalid tenant value/)
    }
  }
})

t.test('names PostgreSQL would truncate are refused', async (t) => {
  const p = { default: 'dedicated', tenants: {} }
  const d = decideRoute(input({ placement: p, tenant: 'x'.repeat(57) }))
  t.equal(d.kind, 'refuse')
  if (d.kind === 'refuse') t.match(d.message, /longer than 63 bytes/)
  t.equal(ok(decideRoute(input({ placement: p, tenant: 'x'.repeat(56) }))).target.database.length, 63)
})

t.test('tenant.pattern is anchored as a whole and configurable', async (t) => {
  const p = { default: 'dedicated', tenants: {} }
  const unanchored = '[a-z]+'
  t.equal(decideRoute(input({ placement: p, tenant: 'abc;drop', tenantPattern: unanchored })).kind, 'refuse')
  t.equal(ok(decideRoute(input({ placement: p, tenant: 'abc', tenantPattern: unanchored }))).target.database, 'tenant_abc')
  t.equal(ok(decideRoute(input({ placement: p, tenant: 'abc', tenantPattern: compileTenantPattern('[a-c]{3}') }))).target.database, 'tenant_abc')
  t.equal(decideRoute(input({ placement: p, tenant: 'ABC', tenantPattern: '[a-z]+' })).kind, 'refuse')
  const broken = decideRoute(input({ placement: p, tenant: 'abc', tenantPattern: '(' }))
  t.equal(broken.kind, 'refuse')
  if (broken.kind === 'refuse') t.equal(broken.sqlstate, 'XX000')
  // With a permissive pattern, the tenant is still spliced literally (no `$&` expansion), once.
  t.equal(ok(decideRoute(input({ placement: p, tenant: "$&$'x{tenant}", tenantPattern: '.*' }))).target.database, "tenant_$&$'x{tenant}")
  // Invalid values are fine where nothing is spliced: a shared backend routes them.
  t.equal(ok(decideRoute(input({ tenant: "O'Brien & Co" }))).kind, 'shared')
})

t.test('per-tenant default backend with no tenant set is refused', async (t) => {
  const d = decideRoute(input({ placement: { default: 'dedicated', tenants: {} }, tenant: null }))
  t.equal(d.kind, 'refuse')
  if (d.kind === 'refuse') {
    t.equal(d.sqlstate, '42501')
    t.match(d.message, /no tenant is set/)
  }
})

t.test('a placement naming an unknown backend is a configuration error', async (t) => {
  const d = decideRoute(input({ tenant: 'broken' }))
  t.equal(d.kind, 'refuse')
  if (d.kind === 'refuse') t.equal(d.sqlstate, 'XX000')
})

t.test('bypass users: routed by placement, to the backend URL', async (t) => {
  const shared = ok(decideRoute(input({ tenant: null, bypass: true })))
  t.equal(shared.kind, 'shared')
  t.match(shared.reason, /bypass/)
  const ded = ok(decideRoute(input({ tenant: 'acme', bypass: true })))
  t.equal(ded.target.database, 'tenant_acme')
  const citus = ok(decideRoute(input({ placement: { default: 'citus', tenants: {} }, tenant: '5', bypass: true, tables: ['public.campaigns'] })))
  t.equal(citus.kind, 'citus-coordinator')
  t.equal(citus.target.host, 'citus-coordinator')
  t.match(citus.reason, /bypass/)
})

t.test('citus backend without metadata → coordinator', async (t) => {
  const d = ok(decideRoute(input({ placement: { default: 'citus', tenants: {} }, tenant: '5', touchesTenant: true, tables: ['public.campaigns'] })))
  t.equal(d.kind, 'citus-coordinator')
  t.same(d.target, { host: 'citus-coordinator', port: 5432, database: 'saas', user: 'app', password: 'pw', sslmode: 'prefer' })
  t.match(d.reason, /no Citus metadata/)
  const none = ok(decideRoute(input({ placement: { default: 'citus', tenants: {} }, tenant: null })))
  t.equal(none.kind, 'citus-coordinator')
  t.match(none.reason, /no tenant set/)
})

t.test('decisions are plain data: JSON round trip, passwords masked in logs', async (t) => {
  const d = ok(decideRoute(input({ tenant: 'acme' })))
  t.same(JSON.parse(JSON.stringify(d)), d)
  t.equal(redactRoute(d).target.password, '***')
  t.equal(d.target.password, 'pw', 'redactRoute copies')
  t.notMatch(formatRoute(d), /pw/)
  t.match(formatRoute(d), /^dedicated dedicated app@127\.0\.0\.1:5432\/tenant_acme: /)
  const r = decideRoute(input({ placement: { default: 'dedicated', tenants: {} }, tenant: 'a b' }))
  t.match(formatRoute(r), /^refuse 42501: invalid tenant value 'a b'/)
})
