// The oracle's all-tenant database on a real Citus cluster: test/oracle/schema.sql and the same seed
// rows, the tenant tables distributed by their tenant column (one colocation group), the reference
// tables as Citus reference tables, then the tenant-column defaults dropped as in
// test/oracle/harness.ts (startOracle). The only_<tenant> side stays on a plain PostgreSQL that
// startOracle builds, so the comparison is "pgtenant routed on Citus" against "the tenant's own
// database", exactly as in the other oracle runs.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { ORACLE_DIR, type OracleEnv } from '../oracle/harness.js'
import { ORACLE_TENANT_CONFIG, REFERENCE_TABLES, TENANT_TABLES } from '../oracle/facts.js'
import { seedSql } from '../oracle/seed.js'
import { SCHEMA_DISCOVERY_SQL, buildSchemaFacts } from '../../routing/schema-facts.js'

/**
 * Tenant tables in foreign-key order (Citus distributes a table only once the tables it references
 * are distributed or reference tables). Every one is colocated with companies.
 */
const DISTRIBUTION_ORDER = [
  'public.companies',
  'public.users',
  'public.projects',
  'public.tasks',
  'public.comments',
  'public.invoices',
  'public.invoice_lines',
  'public.tags',
  'public.events',
  'public.categories',
  'public.accounts',
  'billing.payments',
  'public.api_keys',
]

/**
 * Where the Citus copy differs from schema.sql, and why (each is a Citus rule, not a pgtenant one):
 * api_keys' globally unique `key` cannot be a unique constraint on a table distributed by
 * tenant_id (Citus requires the distribution column in every unique constraint), so it is dropped;
 * corpus/isolation.yaml's entries on it compare isolation only.
 */
const CITUS_ADJUSTMENTS = [`ALTER TABLE api_keys DROP CONSTRAINT api_keys_key_key`]

/**
 * After distributing: on the workers Citus gives events_id_seq a range of its own per node
 * (281474976710657… on the first worker), so oracle_reset()'s setval(100000) fails there and an
 * INSERT routed to a worker would number events differently from the tenant's own database. The
 * workers' copies get MINVALUE 1 (a local change: Citus refuses ALTER SEQUENCE on a distributed
 * sequence when it propagates), so the worker pgtenant routes to numbers events as only_<tenant> does.
 */
const WORKER_ADJUSTMENTS = [`SET citus.enable_ddl_propagation TO off; ALTER SEQUENCE events_id_seq MINVALUE 1`]

/** What loadOracleOnCitus leaves behind, for the report. */
export interface CitusOracleInfo {
  tables: number
  referenceTables: number
  /** tenant → "host:port" of the worker holding its shard of companies (get_shard_id_for_distribution_column). */
  placements: Map<string, string>
  seconds: number
}

export async function connectCitus(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  await client.query(`SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 1`)
  return client
}

/** Drops what an earlier run left (tables, views, functions, the sequence, schema billing). */
async function dropOracle(c: pg.Client): Promise<void> {
  await c.query(`DROP VIEW IF EXISTS open_tasks, task_stats`)
  const tables = [...TENANT_TABLES.keys()].reverse().concat([...REFERENCE_TABLES])
  await c.query(`DROP TABLE IF EXISTS ${tables.join(', ')} CASCADE`)
  await c.query(`DROP FUNCTION IF EXISTS oracle_tables(), oracle_reset(), oracle_snapshot(), oracle_rows(text, text)`)
  await c.query(`DROP SEQUENCE IF EXISTS events_id_seq`)
  await c.query(`DROP SCHEMA IF EXISTS billing CASCADE`)
}

/** Loads the oracle's all-tenant database into the Citus coordinator database `url` names (replacing an earlier copy). */
export async function loadOracleOnCitus(url: string, tenants: readonly string[]): Promise<CitusOracleInfo> {
  const started = Date.now()
  const c = await connectCitus(url)
  try {
    await dropOracle(c)
    await c.query(readFileSync(join(ORACLE_DIR, 'schema.sql'), 'utf8'))
    await c.query(seedSql())
    for (const sql of CITUS_ADJUSTMENTS) await c.query(sql)
    // like production (and like all_tenants in startOracle): no tenant-column defaults (dropped before
    // distributing: Citus refuses ALTER TABLE on a distribution column)
    for (const [t, col] of TENANT_TABLES) await c.query(`ALTER TABLE ${t} ALTER COLUMN ${col} DROP DEFAULT`)
    // Citus distributes a table only if no local table references it, and turns a local table that
    // references a reference table into a "Citus local table": every foreign key is taken off first
    // and put back once all tables are distributed (the tenant tables are colocated, so Citus keeps them)
    const fks = (
      await c.query(
        `SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
          WHERE contype = 'f' AND connamespace IN ('public'::regnamespace, 'billing'::regnamespace) ORDER BY 1, 2`,
      )
    ).rows as { tbl: string; conname: string; def: string }[]
    for (const fk of fks) await c.query(`ALTER TABLE ${fk.tbl} DROP CONSTRAINT ${fk.conname}`)
    for (const t of REFERENCE_TABLES) await c.query(`SELECT create_reference_table($1)`, [t])
    let first: string | null = null
    for (const t of DISTRIBUTION_ORDER) {
      const col = TENANT_TABLES.get(t)!
      await c.query(`SELECT create_distributed_table($1, $2, colocate_with => $3)`, [t, col, first ?? 'none'])
      // the local copy of the rows create_distributed_table moved into the shards
      await c.query(`SELECT truncate_local_data_after_distributing_table($1)`, [t])
      first ??= t
    }
    for (const fk of fks) await c.query(`ALTER TABLE ${fk.tbl} ADD CONSTRAINT ${fk.conname} ${fk.def}`)
    for (const sql of WORKER_ADJUSTMENTS) {
      const r = await c.query(`SELECT nodename, nodeport, success, result FROM run_command_on_workers($1)`, [sql])
      const bad = r.rows.filter((x) => !x.success)
      if (bad.length) throw new Error(`on the workers: ${sql}: ${JSON.stringify(bad)}`)
    }
    await c.query('ANALYZE')
    const placements = new Map<string, string>()
    for (const tenant of tenants) {
      const r = await c.query(
        `SELECT n.nodename || ':' || n.nodeport AS node FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
          WHERE p.shardid = get_shard_id_for_distribution_column('public.companies', $1::text) AND n.noderole = 'primary'`,
        [tenant],
      )
      placements.set(tenant, String(r.rows[0]?.node))
    }
    return { tables: DISTRIBUTION_ORDER.length, referenceTables: REFERENCE_TABLES.size, placements, seconds: (Date.now() - started) / 1000 }
  } finally {
    await c.end()
  }
}

/**
 * An OracleEnv whose all-tenant side is the Citus cluster: `local` is startOracle's environment (its
 * only_<tenant> databases are the expected side); its own all_tenants connections are closed and
 * replaced by connections to the coordinator (baseline, schema facts and the leak check's
 * `oracle_rows` then read Citus).
 */
export async function citusOracleEnv(local: OracleEnv, url: string): Promise<OracleEnv> {
  await local.allClient.end()
  await local.inspectClient.end()
  const allClient = await connectCitus(url)
  const inspectClient = await connectCitus(url)
  const baseline = (await inspectClient.query('SELECT oracle_snapshot() AS s')).rows[0].s as Record<string, string>
  const facts = buildSchemaFacts((await inspectClient.query(SCHEMA_DISCOVERY_SQL, [ORACLE_TENANT_CONFIG.column])).rows, ORACLE_TENANT_CONFIG)
  return {
    ...local,
    allClient,
    inspectClient,
    baseline,
    facts,
    async close() {
      await allClient.end().catch(() => undefined)
      await inspectClient.end().catch(() => undefined)
      for (const c of local.onlyClients.values()) await c.end().catch(() => undefined)
      local.server.stop()
    },
  }
}
