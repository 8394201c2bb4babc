// The metadata queries run against the Citus-shaped catalog on a real PostgreSQL, produce
// the expected CitusMetadata, and the routing decisions match citus-catalog.md (and, for the
// non-uniform layout, PostgreSQL's own hash + bounds lookup).
import t from 'tap'
import pg from 'pg'
import { startPostgres, ROLES, type PgServer } from '../helpers/pg-server.js'
import { loadCitusCatalog } from './citus-catalog.js'
import { exampleBackends } from './fixtures.js'
import {
  CITUS_METADATA_SQL,
  buildCitusMetadata,
  loadCitusMetadata,
  findShard,
  describeCitusMetadata,
  type CitusMetadata,
  type MetadataRow,
} from '../../routing/citus-metadata.js'
import { decideRoute, type RouteInput, type Route } from '../../routing/placement.js'
import { hashint8, hashtext } from '../../routing/citus-hash.js'

const backends = exampleBackends()
const placement = { default: 'citus', tenants: {} as Record<string, string> }

function route(meta: CitusMetadata | null, tenant: string | null, tables: string[], over: Partial<RouteInput> = {}): Route {
  const d = decideRoute({ placement, backends, tenant, touchesTenant: tables.length > 0, bypass: false, citus: new Map([['citus', meta]]), tables, ...over })
  if (d.kind === 'refuse') throw new Error(`refused: ${d.message}`)
  return d
}

/** Runs the queries with node-postgres' parsed values, or with every value as raw text (as a text-format protocol codec gives them). */
async function metadataVia(server: PgServer, database: string, rawText: boolean): Promise<CitusMetadata> {
  const client = new pg.Client({
    connectionString: server.url(ROLES.scram.user, ROLES.scram.password, database),
    ...(rawText ? { types: { getTypeParser: () => (v: string) => v } } : {}),
  })
  await client.connect()
  try {
    return await loadCitusMetadata(async (sql) => (await client.query(sql)).rows as MetadataRow[])
  } finally {
    await client.end()
  }
}

t.test('Citus-shaped catalog', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  loadCitusCatalog(server, 'uniform')
  loadCitusCatalog(server, 'isolated', { isolated: true })

  t.test('each query answers on the catalog, selecting only Citus 11–13 columns', async (t) => {
    for (const [name, sql] of Object.entries(CITUS_METADATA_SQL)) {
      t.doesNotThrow(() => server.sql(sql, 'uniform'), name)
    }
    // Without the columns newer Citus versions added (13.2: nodeisclone, nodeprimarynodeid;
    // 11.0: autoconverted), and with the unused ones gone too, every query still answers.
    server.sql(`CREATE DATABASE minimal TEMPLATE uniform`)
    server.sql(
      `ALTER TABLE pg_dist_node DROP COLUMN nodeisclone, DROP COLUMN nodeprimarynodeid, DROP COLUMN noderack, DROP COLUMN nodecluster;
                ALTER TABLE pg_dist_partition DROP COLUMN autoconverted;
                ALTER TABLE pg_dist_shard DROP COLUMN shardstorage;
                ALTER TABLE pg_dist_placement DROP COLUMN shardlength`,
      'minimal',
    )
    for (const [name, sql] of Object.entries(CITUS_METADATA_SQL)) {
      t.doesNotThrow(() => server.sql(sql, 'minimal'), `${name} without newer/unused columns`)
    }
    t.same(describeCitusMetadata(await metadataVia(server, 'minimal', false)), describeCitusMetadata(await metadataVia(server, 'uniform', false)))
  })

  const meta = await metadataVia(server, 'uniform', false)
  const metaText = await metadataVia(server, 'uniform', true)

  t.test('metadata: tables, reference tables, groups, nodes', async (t) => {
    t.same(meta.problems, [])
    t.same(Object.fromEntries([...meta.tables].map(([k, v]) => [k, [v.column, v.type, v.colocationId, v.shardIds.length]])), {
      'public.ads': ['company_id', 'bigint', 1, 32],
      'public.campaigns': ['company_id', 'bigint', 1, 32],
      'public.companies': ['id', 'bigint', 1, 32],
      'public.tenant_events': ['tenant', 'text', 2, 32],
      'public.measurements': ['sensor', 'numeric', 4, 4],
    })
    t.same([...meta.referenceTables], ['public.countries'])
    t.same([...meta.otherTables], [['public.audit_log', 'a Citus local table (on the coordinator only)']])
    t.same([...meta.groups.keys()], [1, 2, 4])
    const g1 = meta.groups.get(1)!
    t.equal(g1.type, 'bigint')
    t.equal(g1.hashType, 'int8')
    t.same(g1.tables, ['public.ads', 'public.campaigns', 'public.companies'])
    t.equal(g1.intervals.length, 32)
    t.same(
      g1.intervals.slice(0, 2).map((i) => [i.min, i.max, i.node?.port]),
      [
        [-2147483648, -2013265921, 9701],
        [-2013265920, -1879048193, 9702],
      ],
    )
    t.equal(g1.intervals[31].max, 2147483647)
    for (let i = 1; i < 32; i++) t.equal(g1.intervals[i].min, g1.intervals[i - 1].max + 1)
    t.same(meta.tables.get('public.campaigns')!.shardIds.slice(0, 4), [102040, 102041, 102042, 102043])
    t.same(meta.tables.get('public.companies')!.shardIds.slice(0, 2), [102008, 102009])
    t.equal(meta.groups.get(2)!.type, 'text')
    t.equal(meta.groups.get(4)!.hashType, null)
    t.same(
      meta.nodes.map((n) => [n.nodeId, n.groupId, n.host, n.port, n.isActive, n.hasMetadata, n.metadataSynced, n.shouldHaveShards]),
      [
        [1, 0, '127.0.0.1', 9700, true, true, true, false],
        [2, 1, '127.0.0.1', 9701, true, true, true, true],
        [3, 2, '127.0.0.1', 9702, true, true, true, true],
      ],
    )
    t.same(describeCitusMetadata(metaText), describeCitusMetadata(meta), 'raw-text rows give the same metadata')
    t.same(JSON.parse(JSON.stringify(describeCitusMetadata(meta))), describeCitusMetadata(meta), 'summary is JSON')
  })

  t.test('findShard: the verified hash → shard → node table', async (t) => {
    const five = findShard(meta, 'public.campaigns', hashint8(5))!
    t.same([five.shardId, five.interval.min, five.interval.max, five.interval.node!.port], [102046, -1342177280, -1207959553, 9701])
    const one = findShard(meta, 'public.campaigns', hashint8(1))!
    t.same([one.shardId, one.interval.min, one.interval.max, one.interval.node!.port], [102041, -2013265920, -1879048193, 9702])
    const acme = findShard(meta, 'public.tenant_events', hashtext('acme'))!
    t.same([acme.shardId, acme.interval.min, acme.interval.max, acme.interval.node!.port], [102106, -1879048192, -1744830465, 9701])
    t.equal(findShard(meta, 1, hashint8(5))!.shardId, 102078, 'by colocation id: the representative (ads) shard')
    t.equal(findShard(meta, 'public.nope', 0), null)
    t.equal(findShard(meta, 99, 0), null)
    for (const h of [-2147483648, 2147483647, 0, -1]) t.ok(findShard(meta, 1, h), `hash ${h} is covered`)
  })

  t.test('decisions for tenants 5, 1 and acme', async (t) => {
    for (const m of [meta, metaText]) {
      const five = route(m, '5', ['public.campaigns'])
      t.equal(five.kind, 'citus-worker')
      t.same(five.target, { host: '127.0.0.1', port: 9701, database: 'saas', user: 'app', password: 'pw', sslmode: 'prefer' })
      t.same(five.shard, {
        colocationId: 1,
        table: 'public.campaigns',
        type: 'bigint',
        hash: -1330264708,
        shardId: 102046,
        min: -1342177280,
        max: -1207959553,
        groupId: 1,
        nodeId: 2,
      })
      t.equal(five.reason, "tenant '5' → hash -1330264708 (bigint) → shard 102046 [-1342177280, -1207959553] → node 2 127.0.0.1:9701")
      t.equal(five.poolKey, 'citus|127.0.0.1:9701|saas|app')

      const one = route(m, '1', ['public.campaigns', 'public.ads', 'public.countries', 'pg_catalog.pg_class'])
      t.equal(one.kind, 'citus-worker')
      t.equal(one.target.port, 9702)
      t.equal(one.shard!.shardId, 102041)
      t.equal(route(m, '1', ['public.ads']).shard!.shardId, 102073, 'shard id of the first table named')

      const acme = route(m, 'acme', ['public.tenant_events'])
      t.equal(acme.kind, 'citus-worker')
      t.equal(acme.target.port, 9701)
      t.same([acme.shard!.shardId, acme.shard!.hash, acme.shard!.type], [102106, -1850687378, 'text'])
    }
  })

  t.test('doubt → coordinator, with a reason', async (t) => {
    const cases: [string, string | null, string[], RegExp][] = [
      ['text tenant on a bigint group', 'acme', ['public.campaigns'], /'acme' is not a valid bigint/],
      ['two colocation groups', '5', ['public.campaigns', 'public.tenant_events'], /different colocation groups/],
      ['unsupported type', '5', ['public.measurements'], /numeric is not hashed/],
      ['Citus local table', '5', ['public.campaigns', 'public.audit_log'], /audit_log is a Citus local table/],
      ['not a Citus table', '5', ['public.campaigns', 'public.settings'], /settings is not a distributed table/],
      ['only a reference table, several groups', '5', ['public.countries'], /no distributed table touched and 3 colocation groups/],
      ['no tenant', null, [], /no tenant set/],
    ]
    for (const [label, tenant, tables, why] of cases) {
      const d = route(meta, tenant, tables)
      t.equal(d.kind, 'citus-coordinator', label)
      t.same([d.target.host, d.target.port], ['citus-coordinator', 5432], label)
      t.match(d.reason, why, label)
    }
    t.equal(route(meta, '5', ['public.campaigns'], { bypass: true }).kind, 'citus-coordinator', 'bypass')
  })

  t.test('one colocation group: statements without a distributed table still go to the tenant worker', async (t) => {
    server.sql(`CREATE DATABASE single TEMPLATE uniform`)
    server.sql(
      `DELETE FROM pg_dist_shard WHERE logicalrelid IN ('tenant_events'::regclass, 'measurements'::regclass);
                DELETE FROM pg_dist_partition WHERE logicalrelid IN ('tenant_events'::regclass, 'measurements'::regclass)`,
      'single',
    )
    const single = await metadataVia(server, 'single', false)
    const d = route(single, '5', [], { touchesTenant: false })
    t.equal(d.kind, 'citus-worker')
    t.equal(d.target.port, 9701)
    t.match(d.reason, /only colocation group/)
    t.equal(route(single, '5', ['public.countries']).target.port, 9701)
  })

  t.test('nodes that cannot take queries → coordinator', async (t) => {
    server.sql(`CREATE DATABASE unsynced TEMPLATE uniform`)
    server.sql(`UPDATE pg_dist_node SET metadatasynced = false WHERE nodeid = 2`, 'unsynced')
    const m = await metadataVia(server, 'unsynced', false)
    const five = route(m, '5', ['public.campaigns'])
    t.equal(five.kind, 'citus-coordinator')
    t.match(five.reason, /node 2 \(127\.0\.0\.1:9701, group 1\) has metadata that is not synced/)
    t.equal(route(m, '1', ['public.campaigns']).target.port, 9702, 'other node unaffected')

    server.sql(`UPDATE pg_dist_node SET metadatasynced = true WHERE nodeid = 2; UPDATE pg_dist_node SET isactive = false WHERE nodeid = 3`, 'unsynced')
    const m2 = await metadataVia(server, 'unsynced', false)
    t.match(route(m2, '1', ['public.campaigns']).reason, /node 3 .* is not active/)
    t.equal(route(m2, '5', ['public.campaigns']).target.port, 9701)

    server.sql(`UPDATE pg_dist_node SET noderole = 'secondary' WHERE nodeid = 3`, 'unsynced')
    const m3 = await metadataVia(server, 'unsynced', false)
    t.match(route(m3, '1', ['public.campaigns']).reason, /group 2 has no primary node/)

    // A shard on the coordinator (group 0): coordinator, with the shard reported.
    server.sql(`UPDATE pg_dist_placement SET groupid = 0 WHERE shardid IN (102014, 102046, 102078)`, 'unsynced')
    const m4 = await metadataVia(server, 'unsynced', false)
    const c = route(m4, '5', ['public.campaigns'])
    t.equal(c.kind, 'citus-coordinator')
    t.equal(c.shard?.shardId, 102046)
    t.match(c.reason, /is on the coordinator/)
  })

  t.test('inconsistent colocation → coordinator', async (t) => {
    server.sql(`CREATE DATABASE skewed TEMPLATE uniform`)
    server.sql(
      `UPDATE pg_dist_shard SET shardmaxvalue = '-2013265922' WHERE shardid = 102040;
                UPDATE pg_dist_shard SET shardminvalue = '-2013265921' WHERE shardid = 102041`,
      'skewed',
    )
    const m = await metadataVia(server, 'skewed', false)
    t.match(m.groups.get(1)!.problems.join('\n'), /shards of public\.campaigns do not match those of public\.ads/)
    t.match(route(m, '5', ['public.companies']).reason, /colocation group 1:/)
    t.equal(route(m, 'acme', ['public.tenant_events']).kind, 'citus-worker', 'other groups unaffected')
  })

  t.test('non-uniform layout after isolate_tenant_to_new_shard', async (t) => {
    const iso = await metadataVia(server, 'isolated', false)
    t.same(iso.problems, [])
    const g1 = iso.groups.get(1)!
    t.equal(g1.intervals.length, 34)
    t.same(
      g1.intervals.slice(5, 10).map((i) => [i.min, i.max]),
      [
        [-1476395008, -1342177281],
        [-1342177280, -1330264709],
        [-1330264708, -1330264708],
        [-1330264707, -1207959553],
        [-1207959552, -1073741825],
      ],
    )
    const five = route(iso, '5', ['public.campaigns'])
    t.equal(five.kind, 'citus-worker')
    t.same([five.shard!.shardId, five.shard!.min, five.shard!.max, five.target.port], [102145, -1330264708, -1330264708, 9703])
    t.equal(route(iso, '5', ['public.companies']).shard!.shardId, 102142)
    t.equal(route(iso, '1', ['public.campaigns']).shard!.shardId, 102041)

    // Neighbours on both sides of the isolated tenant stay on group 1, in the new outer shards.
    const left = [...Array(100000).keys()].find((v) => hashint8(v) >= -1342177280 && hashint8(v) < -1330264708)!
    const right = [...Array(100000).keys()].find((v) => hashint8(v) > -1330264708 && hashint8(v) <= -1207959553)!
    t.same([route(iso, String(left), ['public.campaigns']).shard!.shardId, route(iso, String(left), ['public.campaigns']).target.port], [102144, 9701])
    t.same([route(iso, String(right), ['public.campaigns']).shard!.shardId, route(iso, String(right), ['public.campaigns']).target.port], [102146, 9701])

    // Differential: for 20,000 tenants, PostgreSQL's own hashint8 + bounds + placement + node gives the same shard and port.
    const ids = [5, left, right, ...Array.from({ length: 20000 }, (_, i) => i * 7919 - 50000000)]
    const client = new pg.Client({ connectionString: server.url(ROLES.scram.user, ROLES.scram.password, 'isolated') })
    await client.connect()
    const { rows } = await client.query({
      text: `SELECT x::text, s.shardid::int, n.nodeport
               FROM unnest($1::int8[]) WITH ORDINALITY AS u(x, i)
               JOIN pg_dist_shard s ON s.logicalrelid = 'campaigns'::regclass
                AND hashint8(x) BETWEEN s.shardminvalue::int AND s.shardmaxvalue::int
               JOIN pg_dist_placement p ON p.shardid = s.shardid
               JOIN pg_dist_node n ON n.groupid = p.groupid
              ORDER BY i`,
      values: [ids.map(String)],
      rowMode: 'array',
    })
    await client.end()
    t.equal(rows.length, ids.length)
    const diffs = rows.filter(([x, shard, port]) => {
      const d = route(iso, x, ['public.campaigns'])
      return d.shard?.shardId !== shard || d.target.port !== port
    })
    t.same(diffs.slice(0, 5), [], `${ids.length} tenants route like PostgreSQL's lookup`)
    t.ok(rows.some((r) => r[2] === 9703) && rows.some((r) => r[2] === 9701) && rows.some((r) => r[2] === 9702))
  })

  t.test('buildCitusMetadata tolerates junk rows', async (t) => {
    const m = buildCitusMetadata({
      partitions: [
        { relid: null },
        { relid: 1, schema_name: 'public', table_name: 't', partmethod: 'h', repmodel: 's', colocationid: 9, dist_column: null, dist_type: null },
      ],
      shards: [{ relid: 1, shardid: 'x' }],
      placements: [{}],
      nodes: [{ nodeid: 'a' }],
    })
    t.equal(m.tables.size, 0)
    t.ok(m.problems.length >= 3)
    t.match(m.otherTables.get('public.t'), /no resolvable distribution column/)
  })
})
