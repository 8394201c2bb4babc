// The differential oracle through the real proxy: every corpus entry, for every tenant, in
// the simple and the extended protocol, sent by node-postgres to pgtenant (tenant set by
// the startup option, transaction pooling on a pool smaller than the number of clients)
// on the all-tenant database, compared with the same statement run directly on a copy of
// the database holding only that tenant's rows.
import t from 'tap'
import pg from 'pg'
import {
  startOracle,
  loadCorpus,
  loadNegative,
  runCorpusEntry,
  runNegativeEntry,
  proxyClient,
  proxyTarget,
  protocolsFor,
  tenantsFor,
  formatResult,
  formatNegative,
  type OracleTarget,
  type OracleEnv,
} from '../oracle/harness.js'
import { ALL_DB, TENANTS } from '../oracle/facts.js'
import { ROLES } from '../helpers/pg-server.js'
import { startProxy, type RunningProxy } from '../helpers/proxy.js'

const corpus = loadCorpus()
const negative = loadNegative()
let env: OracleEnv
let proxy: RunningProxy
const clients = new Map<string, pg.Client>()

t.before(async () => {
  env = await startOracle()
  proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
tenant:
  column: tenant_id
  tables: { accounts: org }
  reference: [countries, currencies, plans]
  functions: [oracle_reset, oracle_snapshot, oracle_rows]
  unknown: reject
backends:
  all: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${env.server.port}/${ALL_DB}", pool: 2 }
pool: { mode: transaction }
`)
  for (const tenant of TENANTS)
    clients.set(tenant, await proxyClient(proxy.url('app', 'app_pw'), tenant).then((c) => (targets.set(tenant, proxyTarget(c)), c.client)))
})
const targets = new Map<string, OracleTarget>()
t.teardown(async () => {
  for (const c of clients.values()) await c.end().catch(() => undefined)
  await proxy?.stop()
  await env?.close()
})

const files = [...new Set(corpus.map((e) => e.file))]
for (const file of files) {
  t.test(`through the proxy: ${file}`, async (t) => {
    let passed = 0
    const entries = corpus.filter((e) => e.file === file)
    for (const entry of entries) {
      const failures: string[] = []
      for (const tenant of tenantsFor(entry))
        for (const protocol of protocolsFor(entry)) {
          const r = await runCorpusEntry(env, entry, tenant, targets.get(tenant)!, protocol)
          if (!r.pass) failures.push(formatResult(r))
        }
      if (failures.length === 0) passed++
      else if (entry.known_gap) t.fail(entry.id, { todo: `known gap: ${entry.known_gap}` })
      else t.fail(`${entry.id}\n${failures[0]}\n  (${failures.length} failing runs)`, { diagnostic: false })
    }
    t.pass(`${file}: ${passed}/${entries.length} entries oracle-equal through the proxy`)
  })
}

t.test('negative corpus through the proxy: refused, nothing changed, session usable', async (t) => {
  for (const entry of negative) {
    const tenant = entry.tenant === undefined ? 'acme' : entry.tenant
    const c = tenant === null ? await proxyClient(proxy.url('app', 'app_pw'), null) : { client: clients.get(tenant)!, lastError: () => null }
    const target = tenant === null ? proxyTarget(c) : targets.get(tenant)!
    for (const protocol of entry.params ? (['extended'] as const) : (['simple', 'extended'] as const)) {
      const r = await runNegativeEntry(env, entry, target, protocol)
      if (!r.pass) {
        if (entry.known_gap) t.fail(entry.id, { todo: `known gap: ${entry.known_gap}` })
        else t.fail(formatNegative(r))
      }
    }
    if (tenant === null) await c.client.end()
  }
  for (const [tenant, client] of clients) {
    const r = await client.query('SELECT count(*)::int AS n FROM tasks')
    t.ok(r.rows[0].n >= 0, `session of ${tenant} still usable`)
  }
  t.pass(`${negative.length} negative entries`)
})
