// Evaluation order (issue #22): in a WHERE / ON with tenant ranges in scope, each top-level conjunct
// is a restriction, leakproof-safe (parser/leakproof.ts), or `CASE WHEN <guard> THEN <e> END` whose
// guard restricts every tenant range <e> reads, so that nothing sees another tenant's row first.
import { isLeakproofSafe } from '../leakproof.js'
import { relationColumns } from '../rewrite/nodes.js'
import { Fail, type Level, type N, type Range, type VerifyState } from './state.js'
import { SYSTEM_COLUMNS, conjuncts, eachField, eachFromItem, nodeType, strings } from './nodes.js'
import { allRanges, lookup } from './names.js'
import { isNullableRestriction, isRestriction } from './restriction.js'

/** Columns of a sub-select's FROM tables, as an unqualified name would find them; null when some item's columns are unknown. */
function fromColumns(vs: VerifyState, from: N[] | undefined): Set<string> | null {
  const cols = new Set<string>()
  let open = false
  eachFromItem(from, (t, v) => {
    if (t === 'RangeVar' && !v.alias?.colnames) {
      const known = relationColumns(vs.ctx, v)
      if (known) known.forEach((c) => cols.add(c))
      else open = true
    } else if (t !== 'JoinExpr') open = true
  })
  return open ? null : cols
}

/** The names a sub-select's FROM items define (aliases, unaliased relation names). */
function fromNames(from: N[] | undefined): Set<string> {
  const s = new Set<string>()
  eachFromItem(from, (t, v) => {
    if (v.alias?.aliasname) s.add(v.alias.aliasname)
    if (t === 'RangeVar') s.add(v.alias?.aliasname ?? v.relname)
  })
  return s
}

/** Tenant ranges an expression references (conservatively: unqualified columns, `*` and unknown qualifiers reference every range in scope). */
function referenced(vs: VerifyState, expr: N, level: Level, inScope: Range[]): Set<Range> {
  const out = new Set<Range>()
  const all = () => {
    for (const r of inScope) out.add(r)
  }
  const shadows: Set<string>[] = []
  // columns of each enclosing sub-select's FROM tables (null: some item's columns are unknown)
  const shadowCols: (Set<string> | null)[] = []
  const tooDeep = 'expression nested too deeply'
  const field = (k: string, v: N, depth: number): void => {
    if (k === 'ColumnRef') {
      const f: N[] = v.fields ?? []
      const names = strings(f.filter((y) => y?.A_Star === undefined))
      if (!names || names.length === 0 || (names.length === 1 && f.length === 1)) {
        // an unqualified name a sub-select's own tables have is theirs (SQL resolves innermost first)
        if (names?.length === 1 && shadowCols.some((c) => c !== null && (c.has(names[0]) || SYSTEM_COLUMNS.has(names[0])))) return
        if (names?.length === 1 && f.length === 1) {
          // innermost level first, as SQL resolves it: the tenant ranges whose (known) columns include it
          let found = false
          for (let l: Level | null = level; l && !found; l = l.parent) {
            const cands = l.ranges.filter((r) => {
              const cols = vs.ctx.facts.columns?.get(r.key)
              return !cols || cols.includes(names[0])
            })
            for (const r of cands) if (inScope.includes(r)) out.add(r)
            found = cands.length > 0
          }
          if (found) return
        }
        all()
        return
      }
      // q.c, s.q.c, d.s.q.c, q.*: the qualifier is the name before the column (or before *)
      const star = f[f.length - 1]?.A_Star !== undefined
      const parts = star ? names : names.slice(0, -1)
      const q = parts[parts.length - 1]
      const schema = parts.length >= 2 ? parts[parts.length - 2] : null
      if (shadows.some((s) => s.has(q))) return
      const infos = lookup(q, schema, level)
      if (!infos) all()
      else for (const i of infos) for (const r of i.ranges) out.add(r)
    } else if (k === 'SelectStmt' || k === 'larg' || k === 'rarg') {
      // (the arms of a set operation are SelectStmts without the wrapper key)
      shadows.push(fromNames(v.fromClause))
      shadowCols.push(fromColumns(vs, v.fromClause))
      for (const c of v.withClause?.ctes ?? []) shadows[shadows.length - 1].add(c?.CommonTableExpr?.ctename)
      eachField(v, depth + 1, tooDeep, field)
      shadows.pop()
      shadowCols.pop()
    } else eachField(v, depth + 1, tooDeep, field)
  }
  eachField(expr, 0, tooDeep, field)
  return out
}

/**
 * A conjunct with each sub-link set aside: sub-selects are checked (restrictions and order) at their
 * own level, so here a sub-link counts as a parameter, except that a non-EXISTS sub-select that reads
 * a tenant range of this or an outer level (correlation) evaluates its target list per row of it:
 * then the conjunct is not leakproof-safe. `refs`: the tenant ranges the conjunct's evaluation reads.
 */
function conjunctFacts(vs: VerifyState, expr: N, level: Level, inScope: Range[]): { stripped: N; refs: Set<Range>; correlated: boolean } {
  let correlated = false
  const subRefs = new Set<Range>()
  const strip = (x: N, depth: number): N => {
    if (depth > 2000) throw new Fail('?', 'expression nested too deeply')
    if (x === null || typeof x !== 'object') return x
    if (Array.isArray(x)) return x.map((y) => strip(y, depth + 1))
    const out: N = {}
    for (const k in x) {
      const v = x[k]
      if (k === 'SubLink' && v && typeof v === 'object') {
        if (v.subLinkType !== 'EXISTS_SUBLINK') {
          const r = referenced(vs, v.subselect, level, inScope)
          if (r.size) correlated = true
          for (const y of r) subRefs.add(y)
        }
        const param = { ParamRef: { number: 1 } }
        if (v.subLinkType === 'ANY_SUBLINK' || v.subLinkType === 'ALL_SUBLINK') {
          const name = v.operName ?? [{ String: { sval: '=' } }]
          return {
            A_Expr: { kind: v.subLinkType === 'ANY_SUBLINK' ? 'AEXPR_OP_ANY' : 'AEXPR_OP_ALL', name, lexpr: strip(v.testexpr, depth + 1), rexpr: param },
          }
        }
        return param
      }
      out[k] = strip(v, depth + 1)
    }
    return out
  }
  const stripped = strip(expr, 0)
  const refs = referenced(vs, stripped, level, inScope)
  for (const r of subRefs) refs.add(r)
  return { stripped, refs, correlated }
}

/** Is column reference `ref` (inner object) to a plain table's stored column? */
function plainColumn(ref: N, level: Level): boolean {
  const names = strings(ref.fields ?? [])
  if (!names) return false
  if (names.length === 1) {
    for (let l: Level | null = level; l; l = l.parent) for (const infos of l.names.values()) if (infos.some((i) => !i.plain)) return false
    return true
  }
  const q = names[names.length - 2]
  const schema = names.length >= 3 ? names[names.length - 3] : null
  const infos = lookup(q, schema, level)
  return !!infos && infos.every((i) => i.plain)
}

/**
 * Conjuncts of a WHERE / ON with tenant ranges in scope: each is a restriction, leakproof-safe, or
 * `CASE WHEN <guard> THEN <e> END` whose guard covers the ranges <e> references.
 * `here`: the clause's own level's ranges visible to it; `join`: the JoinExpr for an ON, null for a WHERE.
 */
export function order(vs: VerifyState, conj: N[], here: Range[], level: Level, join: N | null): void {
  const inScope = [...here, ...allRanges(level.parent)]
  if (inScope.length === 0) return
  // `(q.c = T OR q.c IS NULL)` is accepted only where the range's rows may be NULL-extended: on the
  // nullable side of an outer join, except in the ON of a join above it that no join inside NULL-extends
  // it from (there its rows are raw, and the OR would admit rows of no tenant).
  const nullableHere = (r: Range): boolean => {
    if (r.nullBy.length === 0) return false
    const j = join ? r.joinPath.indexOf(join) : -1
    return j < 0 || r.joinPath.indexOf(r.nullBy[0]) < j
  }
  for (const c of conj) {
    if (inScope.some((r) => isRestriction(vs, c, r))) continue
    const f = conjunctFacts(vs, c, level, inScope)
    if (!f.correlated && isLeakproofSafe(f.stripped, (ref) => plainColumn(ref, level), vs.ctx.facts.functionPolicy?.shadowed)) continue
    const ce = c?.CaseExpr
    const w = ce?.args?.[0]?.CaseWhen
    const nullDefault = ce?.defresult === undefined || (ce.defresult?.A_Const?.isnull && nodeType(ce.defresult) === 'A_Const')
    const refs = f.refs
    // reads no tenant range of this or an outer level (its sub-queries' own ranges are checked at their level)
    if (refs.size === 0) continue
    const first = [...refs][0]
    if (!ce || nodeType(c) !== 'CaseExpr' || ce.arg || ce.args.length !== 1 || !w || !nullDefault)
      throw new Fail(
        first.key,
        `a condition on tenant table "${first.key}" is neither leakproof-safe nor behind the tenant restriction (CASE WHEN <restriction> THEN … END)`,
      )
    const covered = new Set<Range>()
    for (const g of conjuncts(w.expr)) {
      const r = inScope.find((x) => isRestriction(vs, g, x) || (nullableHere(x) && isNullableRestriction(vs, g, x)))
      if (!r) throw new Fail(first.key, 'a CASE WHEN guard holds something other than tenant restrictions')
      for (const x of inScope) if (isRestriction(vs, g, x) || (nullableHere(x) && isNullableRestriction(vs, g, x))) covered.add(x)
    }
    for (const r of conjunctFacts(vs, w.result, level, inScope).refs)
      if (!covered.has(r))
        throw new Fail(r.key, `a condition reads tenant table "${r.key}" (as "${r.ref}") before its tenant restriction holds: the guard does not cover it`)
  }
}
