// Citus metadata: the exact queries pgtenant runs on a Citus coordinator (answerable by
// Citus 11–13: only long-standing columns are selected), and pure functions that turn their
// rows into a CitusMetadata value the router can search in O(log shards).
//
// Routing a transaction to the worker that holds the tenant's shard is a locality
// optimisation: since Citus 11 every node with synced metadata plans distributed queries
// itself, so a stale or slightly inconsistent snapshot never gives wrong results, only a
// worse route. Whatever looks doubtful is reported in `problems` and routes to the coordinator.
import { hashableType, type HashableType } from './citus-hash.js'

/**
 * The four metadata queries. Names are unqualified: on Citus they resolve to pg_catalog
 * (pg_dist_* and column_to_column_name live there). Run them on the coordinator (through a
 * connection server/ provides), in any order; one REPEATABLE READ transaction gives one
 * snapshot but is not required.
 */
export const CITUS_METADATA_SQL = {
  /** One row per Citus table: name, method, replication model, colocation group, distribution column and its type. */
  partitions: `SELECT x.relid, x.schema_name, x.table_name, x.partmethod, x.repmodel, x.colocationid, x.dist_column,
       format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END, NULL) AS dist_type
  FROM (SELECT p.logicalrelid::oid AS relid,
               n.nspname::text AS schema_name,
               c.relname::text AS table_name,
               p.partmethod::text AS partmethod,
               p.repmodel::text AS repmodel,
               p.colocationid,
               CASE WHEN p.partmethod = 'h' THEN column_to_column_name(p.logicalrelid, p.partkey) END AS dist_column
          FROM pg_dist_partition p
          JOIN pg_class c ON c.oid = p.logicalrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace) x
  LEFT JOIN pg_attribute a ON a.attrelid = x.relid AND a.attname = x.dist_column AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_type t ON t.oid = a.atttypid
 ORDER BY x.schema_name, x.table_name`,

  /** The shard intervals of every hash-distributed table. */
  shards: `SELECT s.logicalrelid::oid AS relid, s.shardid, s.shardminvalue, s.shardmaxvalue
  FROM pg_dist_shard s
  JOIN pg_dist_partition p ON p.logicalrelid = s.logicalrelid
 WHERE p.partmethod = 'h'
 ORDER BY s.logicalrelid, s.shardid`,

  /** Where those shards are: one row per placement (node group). */
  placements: `SELECT pl.shardid, pl.groupid, pl.shardstate
  FROM pg_dist_placement pl
  JOIN pg_dist_shard s ON s.shardid = pl.shardid
  JOIN pg_dist_partition p ON p.logicalrelid = s.logicalrelid
 WHERE p.partmethod = 'h'
 ORDER BY pl.shardid, pl.placementid`,

  /** The primary node of each group, with the flags that say whether it can take queries. */
  nodes: `SELECT nodeid, groupid, nodename, nodeport, noderole::text AS noderole, isactive, hasmetadata, metadatasynced, shouldhaveshards
  FROM pg_dist_node
 WHERE noderole::text = 'primary'
 ORDER BY nodeid`,
} as const

/** A result row as any driver returns it: text-format strings, or parsed numbers/booleans. */
export type MetadataRow = Readonly<Record<string, unknown>>

export interface CitusMetadataRows {
  partitions: readonly MetadataRow[]
  shards: readonly MetadataRow[]
  placements: readonly MetadataRow[]
  nodes: readonly MetadataRow[]
}

export interface CitusNode {
  nodeId: number
  groupId: number
  host: string
  port: number
  isActive: boolean
  hasMetadata: boolean
  metadataSynced: boolean
  shouldHaveShards: boolean
}

export interface ShardInterval {
  /** Inclusive bounds, int32. */
  min: number
  max: number
  /** The shard id of the group's representative table (see ColocationGroup.representative). */
  shardId: number
  /** The node group of the chosen placement (0 = the coordinator), or null when the shard has no placement. */
  groupId: number | null
  /** The active primary node holding the shard, ready to take queries; null when there is none (see `problem`). */
  node: CitusNode | null
  /** Why `node` is null. */
  problem?: string
}

export interface ColocationGroup {
  colocationId: number
  /** The distribution column type as format_type() prints it (all tables of a group share it). */
  type: string
  /** The canonical hash kind, or null when pgtenant cannot hash this type. */
  hashType: HashableType | null
  /** The table whose shard ids `intervals` carry ("schema.table"). */
  representative: string
  /** Member tables, "schema.table", sorted. */
  tables: string[]
  /** Sorted by min, non-overlapping. */
  intervals: ShardInterval[]
  /** intervals[i].min, for the binary search. */
  mins: Int32Array
  /** Anything that makes routing by this group doubtful; non-empty → route to the coordinator. */
  problems: string[]
}

export interface DistributedTable {
  name: string
  relid: number
  column: string
  type: string
  colocationId: number
  /** This table's shard id for each interval of its colocation group (same index). */
  shardIds: number[]
}

export interface CitusMetadata {
  /** Hash-distributed tables, "schema.table" (unquoted, as in pg_namespace/pg_class). */
  tables: ReadonlyMap<string, DistributedTable>
  /** Reference tables (partmethod 'n', repmodel 't'): a full copy on every node. */
  referenceTables: ReadonlySet<string>
  /** Other Citus tables (Citus local, single-shard/schema-based, append, range, broken) → why they are not routed by tenant hash. */
  otherTables: ReadonlyMap<string, string>
  groups: ReadonlyMap<number, ColocationGroup>
  /** Primary nodes, by node id order. */
  nodes: readonly CitusNode[]
  /** Everything found doubtful while building (also listed per group). */
  problems: readonly string[]
}

// ---- row coercion (text-format strings or driver-parsed values) ----

function str(row: MetadataRow, col: string): string | null {
  const v = row[col]
  if (v === null || v === undefined) return null
  return typeof v === 'string' ? v : String(v)
}

function int(row: MetadataRow, col: string): number | null {
  const v = row[col]
  if (v === null || v === undefined) return null
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : null
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null
  const s = String(v).trim()
  if (!/^[+-]?\d+$/.test(s)) return null
  const n = Number(s)
  return Number.isSafeInteger(n) ? n : null
}

function bool(row: MetadataRow, col: string): boolean {
  const v = row[col]
  return v === true || v === 't' || v === 'true' || v === 'on' || v === 1
}

const INT32_MIN = -2147483648
const INT32_MAX = 2147483647

function int32(s: string | null): number | null {
  if (s === null || !/^\s*[+-]?\d+\s*$/.test(s)) return null
  const n = Number(s)
  return Number.isInteger(n) && n >= INT32_MIN && n <= INT32_MAX ? n : null
}

/** A node can take the tenant's queries when it is an active primary with synced metadata. */
export function nodeProblem(node: CitusNode): string | null {
  const what = `node ${node.nodeId} (${node.host}:${node.port}, group ${node.groupId})`
  if (!node.isActive) return `${what} is not active`
  if (!node.hasMetadata) return `${what} has no Citus metadata`
  if (!node.metadataSynced) return `${what} has metadata that is not synced`
  return null
}

/** Turns the rows of CITUS_METADATA_SQL into a CitusMetadata value. Never throws on odd rows: they become problems. */
export function buildCitusMetadata(rows: CitusMetadataRows): CitusMetadata {
  const problems: string[] = []
  const referenceTables = new Set<string>()
  const otherTables = new Map<string, string>()
  const hashTables = new Map<number, { name: string; column: string; type: string; colocationId: number }>()

  for (const r of rows.partitions) {
    const schema = str(r, 'schema_name')
    const table = str(r, 'table_name')
    const relid = int(r, 'relid')
    if (schema === null || table === null || relid === null) {
      problems.push(`pg_dist_partition row without a resolvable table: ${JSON.stringify(r)}`)
      continue
    }
    const name = `${schema}.${table}`
    const method = str(r, 'partmethod')
    const repmodel = str(r, 'repmodel')
    const colocationId = int(r, 'colocationid') ?? 0
    if (method === 'n' && repmodel === 't') {
      referenceTables.add(name)
    } else if (method === 'n') {
      otherTables.set(name, colocationId === 0 ? 'a Citus local table (on the coordinator only)' : `a single-shard table (colocation group ${colocationId})`)
    } else if (method === 'h') {
      const column = str(r, 'dist_column')
      const type = str(r, 'dist_type')
      if (column === null || type === null) {
        const why = `hash-distributed table ${name} has no resolvable distribution column`
        otherTables.set(name, why)
        problems.push(why)
      } else if (colocationId === 0) {
        otherTables.set(name, 'a hash-distributed table without a colocation group')
      } else {
        hashTables.set(relid, { name, column, type, colocationId })
      }
    } else {
      otherTables.set(name, `distributed with method '${method}' (only hash distribution is routed)`)
    }
  }

  const nodesByGroup = new Map<number, CitusNode[]>()
  const nodes: CitusNode[] = []
  for (const r of rows.nodes) {
    const role = str(r, 'noderole')
    if (role !== null && role !== 'primary') continue
    const nodeId = int(r, 'nodeid')
    const groupId = int(r, 'groupid')
    const host = str(r, 'nodename')
    const port = int(r, 'nodeport')
    if (nodeId === null || groupId === null || host === null || port === null) {
      problems.push(`pg_dist_node row ignored: ${JSON.stringify(r)}`)
      continue
    }
    const node: CitusNode = {
      nodeId,
      groupId,
      host,
      port,
      isActive: bool(r, 'isactive'),
      hasMetadata: bool(r, 'hasmetadata'),
      metadataSynced: bool(r, 'metadatasynced'),
      shouldHaveShards: bool(r, 'shouldhaveshards'),
    }
    nodes.push(node)
    const list = nodesByGroup.get(groupId)
    if (list) list.push(node)
    else nodesByGroup.set(groupId, [node])
  }

  // shardid → placement groups (active placements first; shardstate 1 = active; Citus 11+ only has 1).
  const placements = new Map<number, number[]>()
  for (const r of rows.placements) {
    const shardId = int(r, 'shardid')
    const groupId = int(r, 'groupid')
    const state = int(r, 'shardstate') ?? 1
    if (shardId === null || groupId === null || state !== 1) continue
    const list = placements.get(shardId)
    if (list) list.push(groupId)
    else placements.set(shardId, [groupId])
  }

  // relid → its shards
  const shardsByRel = new Map<number, { min: number; max: number; shardId: number }[]>()
  for (const r of rows.shards) {
    const relid = int(r, 'relid')
    const shardId = int(r, 'shardid')
    if (relid === null || shardId === null || !hashTables.has(relid)) continue
    const min = int32(str(r, 'shardminvalue'))
    const max = int32(str(r, 'shardmaxvalue'))
    const table = hashTables.get(relid)!
    if (min === null || max === null || min > max) {
      problems.push(`shard ${shardId} of ${table.name} has invalid bounds [${str(r, 'shardminvalue')}, ${str(r, 'shardmaxvalue')}]`)
      continue
    }
    const list = shardsByRel.get(relid)
    if (list) list.push({ min, max, shardId })
    else shardsByRel.set(relid, [{ min, max, shardId }])
  }

  // Group the hash tables by colocation id; the first table by name is the representative.
  const members = new Map<number, number[]>()
  for (const [relid, tbl] of hashTables) {
    const list = members.get(tbl.colocationId)
    if (list) list.push(relid)
    else members.set(tbl.colocationId, [relid])
  }

  const tables = new Map<string, DistributedTable>()
  const groups = new Map<number, ColocationGroup>()
  for (const [colocationId, relids] of [...members].sort((a, b) => a[0] - b[0])) {
    relids.sort((a, b) => (hashTables.get(a)!.name < hashTables.get(b)!.name ? -1 : 1))
    const repRel = relids[0]
    const rep = hashTables.get(repRel)!
    const groupProblems: string[] = []
    const repShards = (shardsByRel.get(repRel) ?? []).slice().sort((a, b) => a.min - b.min)
    if (repShards.length === 0) groupProblems.push(`colocation group ${colocationId}: ${rep.name} has no shards`)
    for (let i = 1; i < repShards.length; i++) {
      if (repShards[i].min <= repShards[i - 1].max) {
        groupProblems.push(`colocation group ${colocationId}: shards ${repShards[i - 1].shardId} and ${repShards[i].shardId} of ${rep.name} overlap`)
      }
    }
    const intervals: ShardInterval[] = repShards.map((s) => placeShard(s, placements.get(s.shardId), nodesByGroup))
    const indexByBounds = new Map<string, number>()
    intervals.forEach((iv, i) => indexByBounds.set(`${iv.min}:${iv.max}`, i))
    const hashType = hashableType(rep.type)

    for (const relid of relids) {
      const tbl = hashTables.get(relid)!
      const shardIds: number[] = new Array(intervals.length).fill(0)
      if (tbl.type !== rep.type)
        groupProblems.push(`colocation group ${colocationId}: ${tbl.name}.${tbl.column} is ${tbl.type} but ${rep.name}.${rep.column} is ${rep.type}`)
      const own = shardsByRel.get(relid) ?? []
      let matched = 0
      for (const s of own) {
        const i = indexByBounds.get(`${s.min}:${s.max}`)
        if (i === undefined) continue
        shardIds[i] = s.shardId
        matched++
      }
      if (matched !== intervals.length || own.length !== intervals.length) {
        groupProblems.push(`colocation group ${colocationId}: shards of ${tbl.name} do not match those of ${rep.name}`)
      }
      tables.set(tbl.name, { name: tbl.name, relid, column: tbl.column, type: tbl.type, colocationId, shardIds })
    }
    problems.push(...groupProblems)
    groups.set(colocationId, {
      colocationId,
      type: rep.type,
      hashType,
      representative: rep.name,
      tables: relids.map((r) => hashTables.get(r)!.name),
      intervals,
      mins: Int32Array.from(intervals, (iv) => iv.min),
      problems: groupProblems,
    })
  }
  return { tables, referenceTables, otherTables, groups, nodes, problems }
}

/** Chooses the node for one shard: the first placement whose group has a primary that can take queries. */
function placeShard(s: { min: number; max: number; shardId: number }, groupIds: number[] | undefined, nodesByGroup: Map<number, CitusNode[]>): ShardInterval {
  if (!groupIds || groupIds.length === 0) return { ...s, groupId: null, node: null, problem: `shard ${s.shardId} has no active placement` }
  const why: string[] = []
  for (const groupId of groupIds) {
    const candidates = nodesByGroup.get(groupId) ?? []
    if (candidates.length === 0) why.push(`group ${groupId} has no primary node`)
    for (const node of candidates) {
      const p = nodeProblem(node)
      if (p === null) return { ...s, groupId, node }
      why.push(p)
    }
  }
  return { ...s, groupId: groupIds[0], node: null, problem: `shard ${s.shardId}: ${why.join('; ')}` }
}

export interface ShardHit {
  group: ColocationGroup
  /** Index into group.intervals. */
  index: number
  interval: ShardInterval
  /** The shard id of the table asked for (or of the group's representative when asked by colocation id). */
  shardId: number
}

/**
 * The shard interval holding `hash` (int32), for a table ("schema.table") or a colocation
 * group id: a binary search over the real bounds, so non-uniform layouts (after
 * isolate_tenant_to_new_shard or shard splits) work. Null when the table/group is unknown or
 * no interval covers the hash.
 */
export function findShard(meta: CitusMetadata, tableOrColocationId: string | number, hash: number): ShardHit | null {
  let group: ColocationGroup | undefined
  let table: DistributedTable | undefined
  if (typeof tableOrColocationId === 'string') {
    table = meta.tables.get(tableOrColocationId)
    if (!table) return null
    group = meta.groups.get(table.colocationId)
  } else {
    group = meta.groups.get(tableOrColocationId)
  }
  if (!group) return null
  const index = searchIntervals(group, hash)
  if (index < 0) return null
  const interval = group.intervals[index]
  return { group, index, interval, shardId: table ? table.shardIds[index] : interval.shardId }
}

/** Index of the interval containing hash, or -1. */
export function searchIntervals(group: ColocationGroup, hash: number): number {
  const mins = group.mins
  let lo = 0
  let hi = mins.length - 1
  let found = -1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    if (mins[mid] <= hash) {
      found = mid
      lo = mid + 1
    } else {
      hi = mid - 1
    }
  }
  return found >= 0 && hash <= group.intervals[found].max ? found : -1
}

/** Runs the four queries through a function server/ provides (one connection or a pool) and builds the metadata. */
export async function loadCitusMetadata(query: (sql: string) => Promise<readonly MetadataRow[]>): Promise<CitusMetadata> {
  const partitions = await query(CITUS_METADATA_SQL.partitions)
  const shards = await query(CITUS_METADATA_SQL.shards)
  const placements = await query(CITUS_METADATA_SQL.placements)
  const nodes = await query(CITUS_METADATA_SQL.nodes)
  return buildCitusMetadata({ partitions, shards, placements, nodes })
}

/** A JSON-friendly summary (Maps flattened), for the admin console, logs and tests. */
export function describeCitusMetadata(meta: CitusMetadata): object {
  return {
    tables: Object.fromEntries(
      [...meta.tables].map(([k, v]) => [k, { column: v.column, type: v.type, colocationId: v.colocationId, shards: v.shardIds.length }]),
    ),
    referenceTables: [...meta.referenceTables].sort(),
    otherTables: Object.fromEntries(meta.otherTables),
    groups: Object.fromEntries(
      [...meta.groups].map(([id, g]) => [
        id,
        {
          type: g.type,
          tables: g.tables,
          shards: g.intervals.map((iv) => `${iv.shardId} [${iv.min}, ${iv.max}] → ${iv.node ? `${iv.node.host}:${iv.node.port}` : `none (${iv.problem})`}`),
          problems: g.problems,
        },
      ]),
    ),
    nodes: meta.nodes.map((n) => `${n.nodeId} group ${n.groupId} ${n.host}:${n.port}${nodeProblem(n) ? ` (${nodeProblem(n)})` : ''}`),
    problems: meta.problems,
  }
}
