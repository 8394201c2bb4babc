// MOVE TENANT on a Citus backend (issue 19 section 3): the SQL the move runs on the coordinator.
// Every hash-distributed table belongs to a colocation group; per group the tenant's shard is
// isolated (`isolate_tenant_to_new_shard(<one table of the group>, value, 'CASCADE')`: every
// colocated table's shard is split alike) unless it already holds only that tenant's hash
// value, and, when a worker is named, the new shard (with its colocated shards) is moved there
// (`citus_move_shard_placement`). server/tenant-move.ts pauses the tenant around it, refreshes
// the proxy's Citus metadata and resumes.

type Row = (string | null)[]

/** What the coordinator connection offers (tenant-move.ts's Wire). */
export interface CoordinatorConnection {
  query(sql: string): Promise<Row[]>
}

/** One colocation group of hash-distributed tables. */
export interface CitusGroup {
  colocationId: string
  /** The group's table the functions are called with (the first by name). */
  table: string
  /** Every table of the group (regclass text), for counting the tenant's rows. */
  tables: string[]
  /** Distribution column of each table (quoted), in `tables` order. */
  columns: string[]
  /** The distribution column's type (format_type), the tenant value is cast to it. */
  type: string
}

export interface ShardPlace {
  shardId: string
  /** The shard holds one hash value: the tenant is isolated already. */
  isolated: boolean
  host: string
  port: number
}

/** `host:port` of a worker, as MOVE TENANT … TO WORKER names it. */
export function parseWorker(text: string): { host: string; port: number } | null {
  const m = /^(.+):(\d{1,5})$/.exec(text.trim())
  if (!m) return null
  const port = Number(m[2])
  return port > 0 && port < 65536 ? { host: m[1].replace(/^\[(.*)\]$/, '$1'), port } : null
}

/** The hash-distributed tables (not partitions), by colocation group. */
export async function citusGroups(conn: CoordinatorConnection): Promise<CitusGroup[]> {
  const rows = await conn.query(
    `SELECT p.colocationid::text, p.logicalrelid::regclass::text, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod)
       FROM pg_dist_partition p
       JOIN pg_class c ON c.oid = p.logicalrelid
       JOIN pg_attribute a ON a.attrelid = p.logicalrelid AND a.attname = column_to_column_name(p.logicalrelid, p.partkey)
      WHERE p.partmethod = 'h' AND NOT c.relispartition
      ORDER BY 1, 2`,
  )
  const groups = new Map<string, CitusGroup>()
  for (const [colocation, table, column, type] of rows as string[][]) {
    let g = groups.get(colocation)
    if (!g) {
      g = { colocationId: colocation, table, tables: [], columns: [], type }
      groups.set(colocation, g)
    }
    g.tables.push(table)
    g.columns.push(column)
  }
  return [...groups.values()]
}

/** The tenant value as a literal of the group's distribution column type. */
export function tenantValue(g: CitusGroup, tenant: string): string {
  return `${literal(tenant)}::${g.type}`
}

/** Where the tenant's shard of the group is, and whether it holds only the tenant's hash value. */
export async function tenantShard(conn: CoordinatorConnection, g: CitusGroup, tenant: string): Promise<ShardPlace> {
  const rows = await conn.query(
    `SELECT s.shardid::text, (s.shardminvalue = s.shardmaxvalue)::text, n.nodename, n.nodeport::text
       FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
      WHERE s.shardid = get_shard_id_for_distribution_column(${literal(g.table)}, ${tenantValue(g, tenant)}) AND n.noderole = 'primary'`,
  )
  if (rows.length !== 1) throw new Error(`tenant's shard of ${g.table}: ${rows.length} primary placements found (expected 1)`)
  const [shardId, isolated, host, port] = rows[0] as string[]
  return { shardId, isolated: isolated === 'true', host, port: Number(port) }
}

/** The worker exists as an active primary that may hold shards; otherwise why not. */
export async function checkWorker(conn: CoordinatorConnection, host: string, port: number): Promise<string | null> {
  const rows = await conn.query(
    `SELECT isactive::text, shouldhaveshards::text, noderole::text FROM pg_dist_node WHERE groupid > 0 AND nodename = ${literal(host)} AND nodeport = ${port}`,
  )
  if (rows.length === 0) {
    const known = await conn.query(
      `SELECT string_agg(nodename || ':' || nodeport, ', ' ORDER BY nodeid) FROM pg_dist_node WHERE groupid > 0 AND noderole = 'primary'`,
    )
    return `no worker ${host}:${port} in pg_dist_node (workers: ${known[0]?.[0] ?? 'none'})`
  }
  const [active, shards, role] = rows[0]
  if (role !== 'primary') return `worker ${host}:${port} is a ${role ?? '?'} node, not a primary`
  if (active !== 'true') return `worker ${host}:${port} is not active`
  if (shards !== 'true') return `worker ${host}:${port} is marked shouldhaveshards = false`
  return null
}

/** isolate_tenant_to_new_shard for the group (CASCADE: every colocated table); the tenant's new shard id. */
export async function isolateTenant(conn: CoordinatorConnection, g: CitusGroup, tenant: string): Promise<string> {
  const rows = await conn.query(
    `SELECT isolate_tenant_to_new_shard(${literal(g.table)}, ${tenantValue(g, tenant)}, 'CASCADE', shard_transfer_mode => 'auto')::text`,
  )
  return rows[0][0] as string
}

/** citus_move_shard_placement of the shard (its colocated shards move with it). */
export async function moveShard(
  conn: CoordinatorConnection,
  shardId: string,
  from: { host: string; port: number },
  to: { host: string; port: number },
): Promise<void> {
  await conn.query(
    `SELECT citus_move_shard_placement(${shardId}, ${literal(from.host)}, ${from.port}, ${literal(to.host)}, ${to.port}, shard_transfer_mode => 'auto')`,
  )
}

/** The tenant's rows in every table of the group (reported as the move's rows). */
export async function tenantRows(conn: CoordinatorConnection, g: CitusGroup, tenant: string): Promise<number> {
  const value = tenantValue(g, tenant)
  const parts = g.tables.map((t, i) => `(SELECT count(*) FROM ${t} WHERE ${g.columns[i]} = ${value})`)
  const rows = await conn.query(`SELECT (${parts.join(' + ')})::text`)
  return Number(rows[0][0])
}

function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`
}
