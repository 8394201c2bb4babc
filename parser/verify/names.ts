// Name resolution for the verifier: relations (CTEs, then the same search_path resolution as the
// rewriter's parser/rewrite/names.ts), CTE scopes, and qualifiers looked up through query levels.
import { refersTo as readsName } from '../rewrite/nodes.js'
import { Fail, type Level, type N, type NameInfo, type Range, type Scope, type VerifyState } from './state.js'
import { fenced, nodeType } from './nodes.js'

export function resolve(vs: VerifyState, rv: N, scope: Scope | null): { key: string; col: string | undefined; cte: boolean; fenced?: boolean } {
  const rel: string = rv.relname
  const schema: string | undefined = rv.schemaname
  if (typeof rel !== 'string') throw new Fail('?', 'a relation without a name')
  if (!schema) for (let s = scope; s; s = s.parent) if (s.ctes.has(rel)) return { key: rel, col: undefined, cte: true, fenced: s.ctes.get(rel) }
  const f = vs.ctx.facts
  let key: string
  if (schema) key = `${schema}.${rel}`
  else {
    key = ''
    if (f.knownRelations.has(`pg_catalog.${rel}`)) key = `pg_catalog.${rel}`
    else
      for (const s of vs.ctx.searchPath) {
        if (f.knownRelations.has(`${s}.${rel}`) || f.tenantTables.has(`${s}.${rel}`) || f.referenceTables.has(`${s}.${rel}`)) {
          key = `${s}.${rel}`
          break
        }
      }
    if (!key) key = rel.startsWith('pg_') ? `pg_catalog.${rel}` : `${vs.ctx.searchPath[0] ?? 'public'}.${rel}`
  }
  return { key, col: f.tenantTables.get(key), cte: false }
}

/** Does a statement read a tenant table anywhere (any relation that resolves to one; CTE names are not looked through)? */
export function readsTenant(vs: VerifyState, n: N): boolean {
  if (n === null || typeof n !== 'object') return false
  if (Array.isArray(n)) return n.some((x) => readsTenant(vs, x))
  for (const k in n) {
    const v = n[k]
    if (k === 'RangeVar') {
      try {
        if (resolve(vs, v, null).col !== undefined) return true
      } catch {
        return true
      }
    } else if (v && typeof v === 'object' && readsTenant(vs, v)) return true
  }
  return false
}

/** The CTE scope of a WITH clause (each CTE body checked, with `outer` as its outer level). */
export function withScope(vs: VerifyState, w: N, scope: Scope | null, outer: Level | null): Scope | null {
  if (!w) return scope
  const s: Scope = { ctes: new Map(), parent: scope }
  const ctes: N[] = w.ctes ?? []
  if (w.recursive) for (const c of ctes) s.ctes.set(c.CommonTableExpr.ctename, readsName(c.CommonTableExpr.ctequery, c.CommonTableExpr.ctename)) // a self-reference reads the materialized work table
  for (const c of ctes) {
    const cte = c.CommonTableExpr
    vs.walk.body(vs, cte.ctequery, s, outer)
    // a data-modifying CTE's RETURNING rows are stored values too
    // a CTE that refers to itself is never inlined: a fence like OFFSET 0
    s.ctes.set(
      cte.ctename,
      (w.recursive && readsName(cte.ctequery, cte.ctename)) ||
        (!w.recursive && (fenced(cte.ctequery) || nodeType(cte.ctequery) !== 'SelectStmt')) ||
        (w.recursive && fenced(cte.ctequery)) ||
        !readsTenant(vs, cte.ctequery), // reads no tenant table: computes nothing from tenant rows
    )
  }
  return s
}

/** Looks a qualifier up from `level` outwards: the ranges it names, or null when no level knows it. */
export function lookup(q: string, schema: string | null, level: Level | null): NameInfo[] | null {
  for (let l = level; l; l = l.parent) {
    const infos = l.names.get(q)
    if (infos) {
      const m = schema === null ? infos : infos.filter((i) => i.schema === schema)
      if (m.length) return m
    }
  }
  return null
}

/** The tenant ranges of `level` and every level around it. */
export function allRanges(level: Level | null): Range[] {
  const out: Range[] = []
  for (let l = level; l; l = l.parent) out.push(...l.ranges)
  return out
}
