// FROM items and DML targets: the names they define in a query level and their tenant ranges, each
// with the place its restriction must be (the level's WHERE, the ON of an outer join, or nowhere:
// a filtered derived table `(SELECT * FROM t WHERE c = T) alias` is then required).
import { Fail, type Level, type N, type NameInfo, type Range, type Scope, type VerifyState } from './state.js'
import { fenced, nodeType, rangeVarName, strings } from './nodes.js'
import { readsTenant, resolve } from './names.js'
import { isRestriction } from './restriction.js'
import { exprs } from './walk.js'

function newRange(ref: string, schema: string | null, key: string, col: string, place: Range['place'], nullBy: N[], joinPath: N[]): Range {
  return { ref, schema, key, col, derived: false, place, nullBy, joinPath }
}

/**
 * Registers a FROM item's names and tenant ranges in `level`; checks sub-queries in it.
 * `nullBy`: outer joins it is on the nullable side of; `derive`: only derived tables are valid here;
 * `hidden`: inside an aliased join (its names are not visible).
 */
export function fromItem(
  vs: VerifyState,
  item: N,
  level: Level,
  scope: Scope | null,
  nullBy: N[],
  joinPath: N[],
  derive: boolean,
  hidden: boolean,
  place: N | 'where',
): void {
  const type = nodeType(item)
  const v = item[type]
  switch (type) {
    case 'RangeVar':
      return rangeVarItem(vs, v, level, scope, nullBy, joinPath, derive, place)
    case 'JoinExpr':
      return joinItem(vs, v, level, scope, nullBy, joinPath, derive, hidden, place)
    case 'RangeSubselect':
      return subselectItem(vs, v, level, scope, nullBy, joinPath)
    case 'RangeFunction': {
      exprs(vs, v.functions, scope, level)
      const name = v.alias?.aliasname
      // a function in FROM is evaluated in its scan, per (already restricted) lateral row: its outputs are values
      if (name && !hidden) level.add(name, { plain: true, schema: null, ranges: [] })
      else if (!hidden) {
        // an unaliased function is known by its name
        const fn = v.functions?.[0]?.List?.items?.[0]?.FuncCall?.funcname
        const parts = fn ? strings(fn) : null
        if (parts?.length) level.add(parts[parts.length - 1], { plain: true, schema: null, ranges: [] })
      }
      return
    }
    case 'RangeTableSample': {
      fromItem(vs, v.relation, level, scope, nullBy, joinPath, derive, hidden, place)
      exprs(vs, [v.args, v.repeatable], scope, level)
      return
    }
    default: {
      // XMLTABLE, JSON_TABLE, …: expressions only
      exprs(vs, v, scope, level)
      const name = v?.alias?.aliasname
      if (name && !hidden) level.add(name, { plain: false, schema: null, ranges: [] })
    }
  }
}

function rangeVarItem(vs: VerifyState, v: N, level: Level, scope: Scope | null, nullBy: N[], joinPath: N[], derive: boolean, place: N | 'where'): void {
  const r = resolve(vs, v, scope)
  const { name, schema } = rangeVarName(v)
  const info: NameInfo = { plain: !r.cte || !!r.fenced, schema, ranges: [] }
  if (r.col !== undefined) {
    const range = newRange(name, schema, r.key, r.col, derive || v.alias?.colnames ? 'derive' : place, nullBy, joinPath)
    info.ranges.push(range)
    level.ranges.push(range)
  }
  // names inside an aliased join stay known (its ON refers to them; PostgreSQL rejects them outside)
  level.add(name, info)
}

function joinItem(
  vs: VerifyState,
  v: N,
  level: Level,
  scope: Scope | null,
  nullBy: N[],
  joinPath: N[],
  derive: boolean,
  hidden: boolean,
  place: N | 'where',
): void {
  const path = [v, ...joinPath]
  const d = derive || !!v.alias
  const h = hidden || !!v.alias
  const jt = v.jointype
  const before = level.ranges.length
  if (jt === 'JOIN_INNER') {
    fromItem(vs, v.larg, level, scope, nullBy, path, d, h, place)
    fromItem(vs, v.rarg, level, scope, nullBy, path, d, h, place)
  } else if (jt === 'JOIN_LEFT' || jt === 'JOIN_RIGHT') {
    const hasOn = !!v.quals
    const [keep, opt] = jt === 'JOIN_LEFT' ? [v.larg, v.rarg] : [v.rarg, v.larg]
    fromItem(vs, keep, level, scope, nullBy, path, d, h, place)
    fromItem(vs, opt, level, scope, [v, ...nullBy], path, d || !hasOn, h, hasOn ? v : place)
  } else {
    fromItem(vs, v.larg, level, scope, [v, ...nullBy], path, true, h, place)
    fromItem(vs, v.rarg, level, scope, [v, ...nullBy], path, true, h, place)
  }
  if (v.alias) {
    // names inside are hidden; the alias stands for all of them
    if (!hidden) level.add(v.alias.aliasname, { plain: false, schema: null, ranges: level.ranges.slice(before) })
  }
}

function subselectItem(vs: VerifyState, v: N, level: Level, scope: Scope | null, nullBy: N[], joinPath: N[]): void {
  const sub = v.subquery?.SelectStmt
  if (!sub || nodeType(v.subquery) !== 'SelectStmt') throw new Fail('?', 'a FROM sub-query that is not a SELECT')
  const name: string | undefined = v.alias?.aliasname
  const d = derivedRange(vs, sub, scope)
  // a derived tenant table outputs the table's stored columns: as plain as the table
  // a sub-select that reads no tenant table (and is not LATERAL) computes nothing from tenant rows
  const info: NameInfo = { plain: !!d || fenced(v.subquery) || (!v.lateral && !readsTenant(vs, v.subquery)), schema: null, ranges: [] }
  if (d && name) {
    const range: Range = { ref: name, schema: null, key: d.key, col: d.col, derived: true, place: 'where', nullBy, joinPath }
    // the alias's column list may rename c: then the guard cannot name it
    if (v.alias.colnames) range.col = '\u0000'
    info.ranges.push(range)
    level.ranges.push(range)
  } else vs.walk.select(vs, sub, scope, v.lateral ? level : level.parent)
  if (name) level.add(name, info)
}

/** `SELECT * FROM [ONLY] t [alias] WHERE [q.]c = T` with t a tenant table: its key and column. */
function derivedRange(vs: VerifyState, sel: N, scope: Scope | null): { key: string; col: string } | null {
  if ((sel.op && sel.op !== 'SETOP_NONE') || sel.withClause || sel.valuesLists || sel.intoClause) return null
  if (sel.groupClause || sel.havingClause || sel.distinctClause || sel.windowClause || sel.sortClause || sel.limitCount || sel.limitOffset || sel.lockingClause)
    return null
  const tl: N[] = sel.targetList ?? []
  if (tl.length !== 1 || tl[0]?.ResTarget?.name || tl[0]?.ResTarget?.indirection) return null
  const star = tl[0]?.ResTarget?.val?.ColumnRef?.fields
  if (!star || star.length !== 1 || star[0]?.A_Star === undefined) return null
  const from: N[] = sel.fromClause ?? []
  if (from.length !== 1 || nodeType(from[0]) !== 'RangeVar') return null
  const rv = from[0].RangeVar
  if (rv.alias?.colnames) return null
  const r = resolve(vs, rv, scope)
  if (r.col === undefined) return null
  const { name, schema } = rangeVarName(rv)
  const range = newRange(name, schema, r.key, r.col, 'where', [], [])
  if (!sel.whereClause || !isRestriction(vs, sel.whereClause, range, true)) return null
  return { key: r.key, col: r.col }
}

/** The target of UPDATE / DELETE / MERGE / INSERT: resolved without CTEs (a target is always a table). */
export function target(vs: VerifyState, rv: N, level: Level): Range | null {
  const r = resolve(vs, rv, null)
  const { name, schema } = rangeVarName(rv)
  const info: NameInfo = { plain: true, schema, ranges: [] }
  let range: Range | null = null
  if (r.col !== undefined) {
    range = newRange(name, schema, r.key, r.col, 'where', [], [])
    info.ranges.push(range)
    level.ranges.push(range)
  }
  level.add(name, info)
  return range
}
