// Routing decision benchmark: decideRoute() throughput with 1,000 vs 1,000,000 tenants in
// placement.tenants, for a map hit (per-tenant database URL), a map miss (shared default) and a
// Citus route (bigint hash + shard binary search). A decision must cost the same at both sizes.
// Usage: node dist/bench/routing.js [decisions per scenario, default 1000000]
import type { BackendConfig, BackendUrl } from '../server/config-types.js'
import { decideRoute, compileTenantPattern, type RouteInput } from '../routing/placement.js'
import { buildCitusMetadata, type CitusMetadata } from '../routing/citus-metadata.js'

const N = Number(process.argv[2] ?? 1_000_000)

function url(host: string, database: string): BackendUrl {
  return {
    host,
    port: 5432,
    database,
    user: 'app',
    password: 'pw',
    sslmode: 'prefer',
    raw: `postgres://app:***@${host}:5432/${database}`,
    perTenant: database.includes('{tenant}'),
  }
}
const backends: Record<string, BackendConfig> = {
  shared: { name: 'shared', url: url('127.0.0.1', 'saas'), pool: 20, citus: false },
  dedicated: { name: 'dedicated', url: url('127.0.0.1', 'tenant_{tenant}'), pool: 5, citus: false },
  citus: { name: 'citus', url: url('citus-coordinator', 'saas'), pool: 20, citus: true },
}

/** A 32-shard, 2-worker Citus layout for companies/campaigns/ads (bigint), as citus-catalog.md describes. */
function citusMetadata(): CitusMetadata {
  const tables = ['companies', 'campaigns', 'ads']
  const partitions = tables.map((t, i) => ({
    relid: 16000 + i,
    schema_name: 'public',
    table_name: t,
    partmethod: 'h',
    repmodel: 's',
    colocationid: 1,
    dist_column: t === 'companies' ? 'id' : 'company_id',
    dist_type: 'bigint',
  }))
  const shards: Record<string, unknown>[] = []
  const placements: Record<string, unknown>[] = []
  tables.forEach((_, t) => {
    for (let i = 0; i < 32; i++) {
      const min = -2147483648 + i * 134217728
      const shardid = 102008 + t * 32 + i
      shards.push({ relid: 16000 + t, shardid, shardminvalue: String(min), shardmaxvalue: String(min + 134217727) })
      placements.push({ shardid, groupid: 1 + (i % 2), shardstate: 1 })
    }
  })
  const nodes = [0, 1, 2].map((g) => ({
    nodeid: g + 1,
    groupid: g,
    nodename: '127.0.0.1',
    nodeport: 9700 + g,
    noderole: 'primary',
    isactive: true,
    hasmetadata: true,
    metadatasynced: true,
    shouldhaveshards: g > 0,
  }))
  return buildCitusMetadata({ partitions, shards, placements, nodes })
}

interface Scenario {
  name: string
  input: RouteInput
  tenants: string[]
}

function run(s: Scenario): { perSec: number; us: number; sample: string } {
  const tenants = s.tenants
  const m = tenants.length
  let sink = 0
  const input = { ...s.input }
  // warm-up
  for (let i = 0; i < Math.min(N, 200_000); i++) {
    input.tenant = tenants[i % m]
    sink += decideRoute(input).kind.length
  }
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    input.tenant = tenants[i % m]
    sink += decideRoute(input).kind.length
  }
  const ns = Number(process.hrtime.bigint() - t0)
  input.tenant = tenants[0]
  const d = decideRoute(input)
  if (sink === 42) console.log('')
  return {
    perSec: (N / ns) * 1e9,
    us: ns / N / 1000,
    sample: d.kind === 'refuse' ? d.message : `${d.kind} ${d.target.host}:${d.target.port}/${d.target.database}`,
  }
}

const meta = citusMetadata()
const pattern = compileTenantPattern()
const results: string[][] = []
const notes: string[] = []
for (const size of [1_000, 1_000_000]) {
  const t0 = Date.now()
  const tenants: Record<string, string> = {}
  for (let i = 0; i < size; i++) tenants[`tenant${i}`] = 'dedicated'
  const buildMs = Date.now() - t0
  // Look-ups spread over the whole map (cache-unfriendly at 1M), 100k distinct values.
  const hits = Array.from({ length: 100_000 }, (_, i) => `tenant${Math.floor((i * 2654435761) % size)}`)
  const misses = Array.from({ length: 100_000 }, (_, i) => String(i * 7919 + 1))
  const base = { backends, touchesTenant: true, bypass: false, tenantPattern: pattern, tenant: null }
  const scenarios: Scenario[] = [
    { name: 'map hit → {tenant} database', input: { ...base, placement: { default: 'shared', tenants } }, tenants: hits },
    { name: 'map miss → shared default', input: { ...base, placement: { default: 'shared', tenants } }, tenants: misses },
    {
      name: 'map miss → citus worker',
      input: { ...base, placement: { default: 'citus', tenants }, citus: new Map([['citus', meta]]), tables: ['public.campaigns', 'public.ads'] },
      tenants: misses,
    },
  ]
  for (const s of scenarios) {
    const r = run(s)
    results.push([size.toLocaleString('en-US'), s.name, Math.round(r.perSec).toLocaleString('en-US'), r.us.toFixed(3), r.sample])
  }
  notes.push(`${size.toLocaleString('en-US')} tenants: placement map built in ${buildMs} ms`)
}

const header = ['tenants in map', 'scenario', 'decisions/s', 'µs/decision', 'sample decision']
const widths = header.map((h, i) => Math.max(h.length, ...results.map((r) => r[i].length)))
const line = (cols: string[]) => cols.map((c, i) => (i >= 2 && i <= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ')
console.log(`routing decisions, ${N.toLocaleString('en-US')} per scenario, node ${process.version}`)
console.log(line(header))
for (const r of results) console.log(line(r))
for (let i = 0; i < 3; i++) {
  const small = Number(results[i][3])
  const big = Number(results[i + 3][3])
  console.log(`${results[i][1]}: 1M/1k cost ratio ${(big / small).toFixed(2)}`)
}
for (const n of notes) console.log(n)
