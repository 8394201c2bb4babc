// Data-modifying statements: UPDATE and DELETE (the target restricted in their own WHERE, or WHERE
// CURRENT OF), INSERT (the tenant column's value; ON CONFLICT DO UPDATE restricted in its WHERE),
// MERGE (the target restricted in the join condition, no WHEN NOT MATCHED BY SOURCE) and COPY.
import { Fail, Level, type N, type Range, type Scope, type VerifyState } from './state.js'
import { conjuncts, hasStar, nodeType, strings } from './nodes.js'
import { resolve, withScope } from './names.js'
import { fromItem, target } from './from.js'
import { isRestriction, levelRestrictions } from './restriction.js'
import { setTargets, tenantValue } from './tenant-value.js'
import { order } from './order-check.js'
import { joinQuals, select } from './select.js'
import { exprs } from './walk.js'

/** UPDATE (`from`: its FROM list) or DELETE (`from`: its USING list). */
export function updateOrDelete(vs: VerifyState, st: N, from: N[], what: 'UPDATE' | 'DELETE', scope: Scope | null, outer: Level | null): void {
  scope = withScope(vs, st.withClause, scope, outer)
  const level = new Level(outer)
  const t = target(vs, st.relation, level)
  level.bare = from.length === 0
  for (const item of from) fromItem(vs, item, level, scope, [], [], false, false, 'where')
  const currentOf = nodeType(st.whereClause) === 'CurrentOfExpr'
  const where = st.whereClause && !currentOf ? conjuncts(st.whereClause) : null
  if (t && what === 'UPDATE') setTargets(vs, st.targetList, t.key, t.col, 'UPDATE of', currentOf ? null : 'column')
  levelRestrictions(vs, level, where, `the ${what}'s WHERE`, currentOf ? t : null)
  joinQuals(vs, from, scope, level)
  // a DELETE has no targetList (undefined is walked as nothing)
  exprs(vs, [st.targetList, st.whereClause, st.returningList, st.returningClause], scope, level)
  if (vs.checkOrder && where) order(vs, where, level.ranges, level, null)
}

export function insert(vs: VerifyState, ins: N, scope: Scope | null, outer: Level | null): void {
  scope = withScope(vs, ins.withClause, scope, outer)
  const sel = ins.selectStmt?.SelectStmt
  if (ins.selectStmt && !sel) throw new Fail('?', 'an INSERT source that is not a SELECT')
  if (sel) select(vs, sel, scope, outer)
  const level = new Level(outer)
  const t = target(vs, ins.relation, level)
  level.add('excluded', { plain: true, schema: null, ranges: [] })
  if (t) insertTenantValues(vs, ins, sel, t.key, t.col)
  const oc = ins.onConflictClause
  if (oc) {
    const where = oc.whereClause ? conjuncts(oc.whereClause) : null
    if (t && oc.action === 'ONCONFLICT_UPDATE') {
      setTargets(vs, oc.targetList, t.key, t.col, 'INSERT … ON CONFLICT DO UPDATE of')
      if (!where || !where.some((c) => isRestriction(vs, c, t)))
        throw new Fail(t.key, `INSERT … ON CONFLICT DO UPDATE of tenant table "${t.key}" has no tenant restriction in its WHERE`)
    }
    exprs(vs, [oc.infer, oc.targetList, oc.whereClause], scope, level)
    if (vs.checkOrder && where) order(vs, where, level.ranges, level, null)
  }
  exprs(vs, [ins.returningList, ins.returningClause], scope, level)
}

/** The columns an INSERT into tenant table `key` sets; without a column list, the table's first columns in order (facts.columns, as the rewriter uses them). */
function insertColumns(vs: VerifyState, ins: N, sel: N, key: string): string[] | null {
  let cols: string[] | null = ins.cols ? ins.cols.map((x: N) => x?.ResTarget?.name) : null
  if (!cols && sel && (!sel.op || sel.op === 'SETOP_NONE')) {
    const known = vs.ctx.facts.columns?.get(key)
    const n = sel.valuesLists
      ? sel.valuesLists[0]?.List?.items?.length
      : (sel.targetList ?? []).some((x: N) => hasStar(x?.ResTarget?.val))
        ? undefined
        : sel.targetList?.length
    if (known && typeof n === 'number' && n <= known.length) cols = known.slice(0, n)
  }
  return cols
}

/** INSERT into tenant table `key`: every row's value of tenant column `col` (VALUES rows or the SELECT list). */
function insertTenantValues(vs: VerifyState, ins: N, sel: N, key: string, col: string): void {
  const cols = insertColumns(vs, ins, sel, key)
  if (!cols) throw new Fail(key, `INSERT into tenant table "${key}" without a column list`)
  if (!ins.cols) ins.cols = cols.map((name) => ({ ResTarget: { name } }))
  const idx = cols.indexOf(col)
  if (idx < 0) throw new Fail(key, `INSERT into tenant table "${key}" does not set its tenant column "${col}"`)
  if (cols.lastIndexOf(col) !== idx || ins.cols[idx].ResTarget.indirection)
    throw new Fail(key, `INSERT into "${key}": tenant column "${col}" listed twice or with a subscript`)
  if (!sel) throw new Fail(key, `INSERT into tenant table "${key}" … DEFAULT VALUES`)
  if (sel.valuesLists) {
    for (const row of sel.valuesLists) {
      const items: N[] | undefined = row?.List?.items
      if (!items || items.length !== cols.length) throw new Fail(key, `INSERT into "${key}": a VALUES row does not match the column list`)
      tenantValue(vs, items[idx], key, col, 'INSERT into')
    }
  } else if (sel.op && sel.op !== 'SETOP_NONE') {
    throw new Fail(key, `INSERT into "${key}" from a set operation whose tenant value the verifier cannot see`)
  } else {
    const tl: N[] = sel.targetList ?? []
    const starAt = tl.findIndex((x) => hasStar(x?.ResTarget?.val))
    if (starAt < 0) {
      if (tl.length !== cols.length) throw new Fail(key, `INSERT into "${key}": the SELECT list does not match the column list`)
      tenantValue(vs, tl[idx]?.ResTarget?.val, key, col, 'INSERT into')
    } else {
      // `SELECT *, T FROM (…)`: only the last position is known (the counts must match, or PostgreSQL fails)
      const last = tl[tl.length - 1]
      if (idx !== cols.length - 1 || hasStar(last?.ResTarget?.val))
        throw new Fail(key, `INSERT into "${key}": the tenant value's position behind a * is unknown`)
      tenantValue(vs, last?.ResTarget?.val, key, col, 'INSERT into')
    }
  }
}

export function merge(vs: VerifyState, m: N, scope: Scope | null, outer: Level | null): void {
  scope = withScope(vs, m.withClause, scope, outer)
  const level = new Level(outer)
  const t = target(vs, m.relation, level)
  // a source join would hold the ranges in one FROM item without a WHERE: only derived tables are valid
  fromItem(vs, m.sourceRelation, level, scope, [], [], true, false, 'where')
  const on = conjuncts(m.joinCondition)
  levelRestrictions(vs, level, null, '', t)
  const clauses: N[] = (m.mergeWhenClauses ?? []).map((w: N) => w?.MergeWhenClause)
  if (t) {
    const { key, col } = t
    if (!on.some((c) => isRestriction(vs, c, t))) throw new Fail(key, `MERGE into tenant table "${key}" has no tenant restriction in its ON condition`)
    for (const w of clauses) {
      if (!w) throw new Fail(key, 'a MERGE WHEN clause the verifier does not know')
      if (w.matchKind === 'MERGE_WHEN_NOT_MATCHED_BY_SOURCE') throw new Fail(key, `MERGE into tenant table "${key}" with WHEN NOT MATCHED BY SOURCE`)
      if (w.commandType === 'CMD_UPDATE') setTargets(vs, w.targetList, key, col, 'MERGE UPDATE of', 'column')
      else if (w.commandType === 'CMD_INSERT') {
        const cols: string[] = (w.targetList ?? []).map((x: N) => x?.ResTarget?.name)
        const idx = cols.indexOf(col)
        if (idx < 0 || !w.values || cols.lastIndexOf(col) !== idx || w.values.length !== cols.length)
          throw new Fail(key, `MERGE … INSERT into tenant table "${key}" does not set its tenant column "${col}"`)
        if (!isSourceTenantColumn(vs, level, t, w.values[idx])) tenantValue(vs, w.values[idx], key, col, 'MERGE INSERT into')
      }
    }
  }
  joinQuals(vs, [m.sourceRelation], scope, level)
  exprs(vs, [m.joinCondition, clauses.map((w) => [w?.condition, w?.targetList, w?.values]), m.returningList, m.returningClause], scope, level)
  if (vs.checkOrder) order(vs, on, level.ranges, level, null)
}

/**
 * `<source>.<tenant column>` in a MERGE INSERT: the source is a filtered derived table
 * `(SELECT * FROM s WHERE c = T) alias` whose tenant column has the target's type, so every source row
 * (and a NOT MATCHED row is a source row) holds exactly the tenant's value (parser/rewrite/merge.ts).
 */
function isSourceTenantColumn(vs: VerifyState, level: Level, target: Range, v: N): boolean {
  const names = nodeType(v) === 'ColumnRef' ? strings(v.ColumnRef.fields ?? []) : null
  if (!names || names.length !== 2) return false
  const infos = level.names.get(names[0])
  const src = infos?.length === 1 && infos[0].ranges.length === 1 ? infos[0].ranges[0] : null
  if (!src || src === target || !src.derived || src.col !== names[1] || src.nullBy.length !== 0) return false
  const types = vs.ctx.facts.tenantColumnTypes
  const tt = types?.get(target.key)
  return tt !== undefined && types!.get(src.key) === tt
}

/**
 * COPY: COPY (query) TO is checked as a query. A tenant table is valid only in COPY … FROM STDIN with a
 * column list that names its tenant column once: the rows are then appended to or checked by server/
 * (parser/rewrite/copy.ts, server/session/copy-in-rows.ts), never taken from a file or program.
 */
export function copy(vs: VerifyState, cp: N): void {
  if (cp.query) return vs.walk.body(vs, cp.query, null, null)
  if (!cp.relation) return
  const r = resolve(vs, cp.relation, null)
  if (r.col === undefined) return
  if (!cp.is_from || cp.filename || cp.is_program)
    throw new Fail(r.key, `COPY of tenant table "${r.key}" (only COPY (SELECT … restricted) TO and COPY … FROM STDIN are valid)`)
  const cols: unknown[] = (cp.attlist ?? []).map((x: N) => x?.String?.sval)
  if (cols.indexOf(r.col) < 0 || cols.lastIndexOf(r.col) !== cols.indexOf(r.col))
    throw new Fail(r.key, `COPY FROM STDIN into tenant table "${r.key}" without its tenant column "${r.col}" once in the column list`)
  exprs(vs, cp.whereClause, null, new Level(null))
}
