// Verify after rewrite (issue #13, defence in depth): parse the REWRITTEN text again and check on the
// parse tree, independently of the splicer and of its idea of the text, that every reference to a
// tenant table carries the tenant restriction. What PostgreSQL will parse is what is checked:
// comment, string and operator tricks that fooled the splicer show up here as a missing or
// misplaced restriction.
//
//   verifyRewrite(rewrittenSql, tenant, ctx)   → { ok: true } | { ok: false, table, reason }
//
// `tenant` is the tenant VALUE (not a quoted literal) that was put in the rewriter's tenant slots.
// Call it with a sentinel value that cannot occur in the client's text (a per-process random string;
// pass the client's text as opts.originalSql to have that checked), and with the sentinel also in
// every literal slot the plan checks against the tenant before sending (INSERT/UPDATE tenant values):
// a restriction the CLIENT wrote with a real tenant's value then never counts as the rewriter's.
// See fillForVerify below.
//
// Accepted restriction forms (what parser/analyze.ts produces), `T` = the tenant constant:
//   R1  a tenant RangeVar not on the nullable side of an outer join: `q.c = T` among the top-level AND
//       conjuncts of the WHERE of the SELECT / UPDATE / DELETE owning its FROM list (q = alias, else
//       relname, or schema.relname when unaliased; bare `c` when it is the only FROM item);
//   R2  on the nullable side of LEFT/RIGHT JOIN … ON: `q.c = T` among the top-level AND conjuncts of
//       the ON of the innermost outer join that makes it nullable;
//   R3  anywhere (and required in a FULL JOIN, a USING/NATURAL nullable side, an aliased join, under a
//       column alias list, as a MERGE source): `(SELECT * FROM [ONLY] t WHERE [q.]c = T) alias` —
//       falls out of R1 applied to the derived table's own level; recognised as a "derived tenant
//       range" for the evaluation-order check.
//   UPDATE/DELETE targets: R1 on their own WHERE (WHERE CURRENT OF: accepted, the cursor's query was
//   restricted). MERGE: the target's restriction among the conjuncts of the join condition, no WHEN
//   NOT MATCHED BY SOURCE. INSERT / MERGE INSERT / UPDATE SET / ON CONFLICT DO UPDATE SET of the tenant
//   column: the value is T, T::<column type>, or the guard
//   `CASE (<e>)::<type> WHEN T THEN T::<type> ELSE <failing cast> END`; ON CONFLICT DO UPDATE: the
//   target's restriction among the conjuncts of its WHERE. COPY tenant TO: only as COPY (query).
// Evaluation order (issue #22, opts.checkOrder, default on): in every WHERE, JOIN … ON, MERGE … ON and
// ON CONFLICT … WHERE with tenant ranges in scope, each top-level conjunct that is neither a
// restriction nor leakproof-safe (parser/leakproof.ts) must be `CASE WHEN <guard> THEN <e> END`, the
// guard an AND of restrictions (`(q.c = T OR q.c IS NULL)` for ranges that may be NULL-extended
// there) covering every tenant range <e> references (an unqualified column or `*` references them all).
//
// Pure: one parseSync (libpg-query's WASM must be loaded: initParser()), no I/O, no state between
// calls. Never throws: an internal error is a failure (fail closed).
import { parseSync } from 'libpg-query'
import type { RewriteContext } from './types.js'
import { isLeakproofSafe } from './leakproof.js'
import { refersTo as readsName, relationColumns } from './rewrite/nodes.js'

/* eslint-disable @typescript-eslint/no-explicit-any */
type N = any

export type VerifyResult = { ok: true } | { ok: false; table: string; reason: string }

export interface VerifyOptions {
  /** Check the evaluation-order guard of issue #22 (default true). */
  checkOrder?: boolean
  /** The client's text: if it contains the tenant sentinel, verification fails (the sentinel must be unforgeable). */
  originalSql?: string
}

const OK: VerifyResult = { ok: true }

class Fail extends Error {
  constructor(
    readonly table: string,
    readonly reason: string,
  ) {
    super(reason)
  }
}

/** Statements that hold no query and no relation reference to check. */
const NO_QUERY = new Set([
  'VariableSetStmt',
  'VariableShowStmt',
  'TransactionStmt',
  'DiscardStmt',
  'ListenStmt',
  'UnlistenStmt',
  'NotifyStmt',
  'DeallocateStmt',
  'FetchStmt',
  'ClosePortalStmt',
  'ConstraintsSetStmt',
])

/** Expression keys that cannot contain a sub-query or a relation. */
const LEAF = new Set(['ColumnRef', 'A_Const', 'ParamRef', 'String', 'Integer', 'Float', 'Boolean', 'TypeName', 'A_Star', 'SetToDefault'])

interface Range {
  /** name column references use: the alias, else the relation name */
  ref: string
  /** schema a 3-part column reference may use (unaliased schema-qualified RangeVar), else null */
  schema: string | null
  key: string
  col: string
  /** a derived table `(SELECT * FROM t WHERE c = T) alias` (restricted inside) */
  derived: boolean
  /** where its restriction must be: this level's WHERE, the ON of this JoinExpr, or nowhere (must be a derived table) */
  place: 'where' | 'derive' | N
  /** outer joins (JoinExpr nodes) on whose nullable side it is, innermost first */
  nullBy: N[]
  /** JoinExpr nodes above it in its FROM item, innermost first */
  joinPath: N[]
}

interface NameInfo {
  /** a plain table (or the EXCLUDED row): its columns are stored values, not computed outputs */
  plain: boolean
  schema: string | null
  ranges: Range[]
}

class Level {
  names = new Map<string, NameInfo[]>()
  ranges: Range[] = []
  /** an unqualified tenant column can only mean the one FROM item's (a lone RangeVar) */
  bare = false
  constructor(readonly parent: Level | null) {}
  add(name: string, info: NameInfo): void {
    const l = this.names.get(name)
    if (l) l.push(info)
    else this.names.set(name, [info])
  }
}

interface Scope {
  /** CTE name → its body is fenced (a SELECT ending in LIMIT/OFFSET or VALUES: outer conditions are not pushed into it) */
  ctes: Map<string, boolean>
  parent: Scope | null
}

/** A sub-select the planner neither pulls up nor pushes outer conditions into: its output columns are computed values, fixed before an outer condition sees them. */
/** Columns every table has (an unqualified one inside a sub-select with a FROM table is that table's). */
const SYSTEM_COLUMNS = new Set(['ctid', 'xmin', 'xmax', 'cmin', 'cmax', 'tableoid'])

function fenced(q: N): boolean {
  const sel = q?.SelectStmt
  return !!sel && nodeType(q) === 'SelectStmt' && (!!sel.limitOffset || !!sel.limitCount || !!sel.valuesLists)
}

function nodeType(n: N): string {
  if (n === null || typeof n !== 'object') return ''
  for (const k in n) return k
  return ''
}

/** Top-level AND conjuncts (nested ANDs flattened). */
function conjuncts(n: N): N[] {
  const out: N[] = []
  const visit = (x: N, depth: number) => {
    if (depth > 1000) throw new Fail('?', 'expression nested too deeply')
    const b = x?.BoolExpr
    if (b && b.boolop === 'AND_EXPR' && nodeType(x) === 'BoolExpr') for (const a of b.args ?? []) visit(a, depth + 1)
    else if (x !== undefined && x !== null) out.push(x)
  }
  visit(n, 0)
  return out
}

function strings(fields: N[]): string[] | null {
  const out: string[] = []
  for (const f of fields) {
    const s = f?.String?.sval
    if (typeof s !== 'string') return null
    out.push(s)
  }
  return out
}

function isOp(name: N, op: string): boolean {
  const p = Array.isArray(name) ? strings(name) : null
  if (!p) return false
  return (p.length === 1 && p[0] === op) || (p.length === 2 && p[0] === 'pg_catalog' && p[1] === op)
}

function hasStar(n: N): boolean {
  const f: N[] = n?.ColumnRef?.fields ?? []
  return f.some((x) => x?.A_Star !== undefined)
}

class Verifier {
  private typeNames = new Map<string, string>()

  constructor(
    readonly tenant: string,
    readonly ctx: RewriteContext,
    readonly checkOrder: boolean,
  ) {}

  // ---- names (the same resolution as parser/analyze.ts Analyzer.resolve) --------------------------

  /** Does a statement read a tenant table anywhere (any relation that resolves to one; CTE names are not looked through)? */
  readsTenant(n: N): boolean {
    if (n === null || typeof n !== 'object') return false
    if (Array.isArray(n)) return n.some((x) => this.readsTenant(x))
    for (const k in n) {
      const v = n[k]
      if (k === 'RangeVar') {
        try {
          if (this.resolve(v, null).col !== undefined) return true
        } catch {
          return true
        }
      } else if (v && typeof v === 'object' && this.readsTenant(v)) return true
    }
    return false
  }

  resolve(rv: N, scope: Scope | null): { key: string; col: string | undefined; cte: boolean; fenced?: boolean } {
    const rel: string = rv.relname
    const schema: string | undefined = rv.schemaname
    if (typeof rel !== 'string') throw new Fail('?', 'a relation without a name')
    if (!schema) for (let s = scope; s; s = s.parent) if (s.ctes.has(rel)) return { key: rel, col: undefined, cte: true, fenced: s.ctes.get(rel) }
    const f = this.ctx.facts
    let key: string
    if (schema) key = `${schema}.${rel}`
    else {
      key = ''
      if (f.knownRelations.has(`pg_catalog.${rel}`)) key = `pg_catalog.${rel}`
      else
        for (const s of this.ctx.searchPath) {
          if (f.knownRelations.has(`${s}.${rel}`) || f.tenantTables.has(`${s}.${rel}`) || f.referenceTables.has(`${s}.${rel}`)) {
            key = `${s}.${rel}`
            break
          }
        }
      if (!key) key = rel.startsWith('pg_') ? `pg_catalog.${rel}` : `${this.ctx.searchPath[0] ?? 'public'}.${rel}`
    }
    return { key, col: f.tenantTables.get(key), cte: false }
  }

  withScope(w: N, scope: Scope | null, outer: Level | null): Scope | null {
    if (!w) return scope
    const s: Scope = { ctes: new Map(), parent: scope }
    const ctes: N[] = w.ctes ?? []
    if (w.recursive) for (const c of ctes) s.ctes.set(c.CommonTableExpr.ctename, readsName(c.CommonTableExpr.ctequery, c.CommonTableExpr.ctename)) // a self-reference reads the materialized work table
    for (const c of ctes) {
      const cte = c.CommonTableExpr
      this.stmtBody(cte.ctequery, s, outer)
      // a data-modifying CTE's RETURNING rows are stored values too
      // a CTE that refers to itself is never inlined: a fence like OFFSET 0
      s.ctes.set(
        cte.ctename,
        (w.recursive && readsName(cte.ctequery, cte.ctename)) ||
          (!w.recursive && (fenced(cte.ctequery) || nodeType(cte.ctequery) !== 'SelectStmt')) ||
          (w.recursive && fenced(cte.ctequery)) ||
          !this.readsTenant(cte.ctequery), // reads no tenant table: computes nothing from tenant rows
      )
    }
    return s
  }

  // ---- constants and tenant values -----------------------------------------------------------------

  isTenantConst(n: N): boolean {
    const c = n?.A_Const
    if (!c || nodeType(n) !== 'A_Const' || c.isnull) return false
    if (c.sval) return (c.sval.sval ?? '') === this.tenant
    if (c.ival) return String(c.ival.ival ?? 0) === this.tenant
    if (c.fval) return c.fval.fval === this.tenant
    return false
  }

  /** Canonical form of a TypeName (names, typmods, array bounds), locations dropped. */
  typeKey(tn: N): string {
    return JSON.stringify(tn, (k, v) => (k === 'location' ? undefined : v))
  }

  /** The TypeName key of the tenant column's type for a table ("text" when facts do not say). */
  columnTypeKey(key: string): string {
    const type = this.ctx.facts.tenantColumnTypes?.get(key) ?? 'text'
    let k = this.typeNames.get(type)
    if (k === undefined) {
      k = '!'
      try {
        const t: N = parseSync(`SELECT NULL::${type}`)
        const tn = t.stmts?.[0]?.stmt?.SelectStmt?.targetList?.[0]?.ResTarget?.val?.TypeCast?.typeName
        if (tn && t.stmts.length === 1) k = this.typeKey(tn)
      } catch {
        k = '!'
      }
      this.typeNames.set(type, k)
    }
    return k
  }

  isTypedTenant(n: N, key: string): boolean {
    const tc = n?.TypeCast
    return !!tc && nodeType(n) === 'TypeCast' && this.isTenantConst(tc.arg) && this.typeKey(tc.typeName) === this.columnTypeKey(key)
  }

  /** The ELSE of the guard: a cast chain containing `(… || '<not a number>')::int4`, which can only fail (or give NULL). */
  isRaise(n: N): boolean {
    for (let d = 0; d < 16 && nodeType(n) === 'TypeCast'; d++) {
      const tc = n.TypeCast
      const names = strings(tc.typeName?.names ?? [])
      const last = names?.[names.length - 1]
      const a = tc.arg?.A_Expr
      if ((last === 'int4' || last === 'integer') && !tc.typeName.arrayBounds && a && nodeType(tc.arg) === 'A_Expr' && a.kind === 'AEXPR_OP' && isOp(a.name, '||')) {
        const s = a.rexpr?.A_Const?.sval?.sval
        if (typeof s === 'string' && /[^\s0-9+-]/.test(s)) return true
      }
      n = tc.arg
    }
    return false
  }

  /** A value written into a tenant column: T, T::<type> or the execution-time guard. */
  tenantValue(n: N, key: string, col: string, what: string): void {
    if (this.isTenantConst(n) || this.isTypedTenant(n, key)) return
    const c = n?.CaseExpr
    if (c && nodeType(n) === 'CaseExpr') {
      const tk = this.columnTypeKey(key)
      const arg = c.arg?.TypeCast
      const args: N[] = c.args ?? []
      const w = args[0]?.CaseWhen
      if (
        arg &&
        nodeType(c.arg) === 'TypeCast' &&
        this.typeKey(arg.typeName) === tk &&
        args.length === 1 &&
        w &&
        this.isTenantConst(w.expr) &&
        this.isTypedTenant(w.result, key) &&
        c.defresult !== undefined &&
        this.isRaise(c.defresult)
      )
        return
    }
    throw new Fail(key, `${what} "${key}": the value of tenant column "${col}" is neither the tenant constant nor the tenant guard`)
  }

  /** SET targets (UPDATE, ON CONFLICT DO UPDATE, MERGE UPDATE) assigning the tenant column. */
  setTargets(targets: N[] | undefined, key: string, col: string, what: string): void {
    for (const t of targets ?? []) {
      const r = t?.ResTarget
      if (!r || r.name !== col) continue
      if (r.indirection) throw new Fail(key, `${what} "${key}": tenant column "${col}" assigned through a subscript or field`)
      const v = r.val
      if (v?.MultiAssignRef) {
        const src = v.MultiAssignRef.source
        const row = src?.RowExpr
        if (!row || nodeType(src) !== 'RowExpr') throw new Fail(key, `${what} "${key}": tenant column "${col}" assigned from a sub-SELECT`)
        this.tenantValue(row.args?.[v.MultiAssignRef.colno - 1], key, col, what)
      } else this.tenantValue(v, key, col, what)
    }
  }

  // ---- restrictions --------------------------------------------------------------------------------

  /** Does column reference `ref` name range r's tenant column? `bare`: an unqualified `c` counts. */
  refersTo(ref: N, r: Range, bare: boolean): boolean {
    if (nodeType(ref) !== 'ColumnRef') return false
    const f = strings(ref.ColumnRef.fields ?? [])
    if (!f || f[f.length - 1] !== r.col) return false
    if (f.length === 1) return bare
    if (f.length === 2) return f[0] === r.ref
    if (f.length === 3) return r.schema !== null && f[0] === r.schema && f[1] === r.ref
    return false
  }

  /** `q.c = T` (either side) for range r. */
  isRestriction(n: N, r: Range, bare = false): boolean {
    const a = n?.A_Expr
    if (!a || nodeType(n) !== 'A_Expr' || a.kind !== 'AEXPR_OP' || !isOp(a.name, '=')) return false
    return (this.refersTo(a.lexpr, r, bare) && this.isTenantConst(a.rexpr)) || (this.refersTo(a.rexpr, r, bare) && this.isTenantConst(a.lexpr))
  }

  /** `(q.c = T OR q.c IS NULL)` for range r. */
  isNullableRestriction(n: N, r: Range): boolean {
    const b = n?.BoolExpr
    if (!b || nodeType(n) !== 'BoolExpr' || b.boolop !== 'OR_EXPR' || b.args?.length !== 2) return false
    const [x, y] = b.args
    const nt = (z: N) => nodeType(z) === 'NullTest' && z.NullTest.nulltesttype === 'IS_NULL' && this.refersTo(z.NullTest.arg, r, false)
    return (this.isRestriction(x, r) && nt(y)) || (this.isRestriction(y, r) && nt(x))
  }

  requireRestriction(conj: N[], r: Range, bare: boolean, where: string): void {
    if (!conj.some((c) => this.isRestriction(c, r, bare)))
      throw new Fail(r.key, `tenant table "${r.key}" (as "${r.ref}") has no tenant restriction among the top-level conditions of ${where}`)
  }

  // ---- FROM items ----------------------------------------------------------------------------------

  /**
   * Registers a FROM item's names and tenant ranges in `level`; checks sub-queries in it.
   * `nullBy`: outer joins it is on the nullable side of; `derive`: only derived tables are valid here;
   * `hidden`: inside an aliased join (its names are not visible).
   */
  fromItem(item: N, level: Level, scope: Scope | null, nullBy: N[], joinPath: N[], derive: boolean, hidden: boolean, place: N | 'where'): void {
    const type = nodeType(item)
    const v = item[type]
    switch (type) {
      case 'RangeVar': {
        const r = this.resolve(v, scope)
        const name: string = v.alias?.aliasname ?? v.relname
        const schema: string | null = v.alias ? null : (v.schemaname ?? null)
        const info: NameInfo = { plain: !r.cte || !!r.fenced, schema, ranges: [] }
        if (r.col !== undefined) {
          const range: Range = { ref: name, schema, key: r.key, col: r.col, derived: false, place: derive || v.alias?.colnames ? 'derive' : place, nullBy, joinPath }
          info.ranges.push(range)
          level.ranges.push(range)
        }
        // names inside an aliased join stay known (its ON refers to them; PostgreSQL rejects them outside)
        level.add(name, info)
        return
      }
      case 'JoinExpr': {
        const path = [v, ...joinPath]
        const d = derive || !!v.alias
        const h = hidden || !!v.alias
        const jt = v.jointype
        const before = level.ranges.length
        if (jt === 'JOIN_INNER') {
          this.fromItem(v.larg, level, scope, nullBy, path, d, h, place)
          this.fromItem(v.rarg, level, scope, nullBy, path, d, h, place)
        } else if (jt === 'JOIN_LEFT' || jt === 'JOIN_RIGHT') {
          const hasOn = !!v.quals
          const [keep, opt] = jt === 'JOIN_LEFT' ? [v.larg, v.rarg] : [v.rarg, v.larg]
          this.fromItem(keep, level, scope, nullBy, path, d, h, place)
          this.fromItem(opt, level, scope, [v, ...nullBy], path, d || !hasOn, h, hasOn ? v : place)
        } else {
          this.fromItem(v.larg, level, scope, [v, ...nullBy], path, true, h, place)
          this.fromItem(v.rarg, level, scope, [v, ...nullBy], path, true, h, place)
        }
        if (v.alias) {
          // names inside are hidden; the alias stands for all of them
          if (!hidden) level.add(v.alias.aliasname, { plain: false, schema: null, ranges: level.ranges.slice(before) })
        }
        return
      }
      case 'RangeSubselect': {
        const sub = v.subquery?.SelectStmt
        if (!sub || nodeType(v.subquery) !== 'SelectStmt') throw new Fail('?', 'a FROM sub-query that is not a SELECT')
        const name: string | undefined = v.alias?.aliasname
        const d = this.derivedRange(sub, scope)
        // a derived tenant table outputs the table's stored columns: as plain as the table
        // a sub-select that reads no tenant table (and is not LATERAL) computes nothing from tenant rows
        const info: NameInfo = { plain: !!d || fenced(v.subquery) || (!v.lateral && !this.readsTenant(v.subquery)), schema: null, ranges: [] }
        if (d && name) {
          const range: Range = { ref: name, schema: null, key: d.key, col: d.col, derived: true, place: 'where', nullBy, joinPath }
          // the alias's column list may rename c: then the guard cannot name it
          if (v.alias.colnames) range.col = '\u0000'
          info.ranges.push(range)
          level.ranges.push(range)
        } else this.select(sub, scope, v.lateral ? level : level.parent)
        if (name) level.add(name, info)
        return
      }
      case 'RangeFunction': {
        this.exprs(v.functions, scope, level)
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
        this.fromItem(v.relation, level, scope, nullBy, joinPath, derive, hidden, place)
        this.exprs([v.args, v.repeatable], scope, level)
        return
      }
      default: {
        // XMLTABLE, JSON_TABLE, …: expressions only
        this.exprs(v, scope, level)
        const name = v?.alias?.aliasname
        if (name && !hidden) level.add(name, { plain: false, schema: null, ranges: [] })
      }
    }
  }

  /** `SELECT * FROM [ONLY] t [alias] WHERE [q.]c = T` with t a tenant table: its key and column. */
  derivedRange(sel: N, scope: Scope | null): { key: string; col: string } | null {
    if ((sel.op && sel.op !== 'SETOP_NONE') || sel.withClause || sel.valuesLists || sel.intoClause) return null
    if (sel.groupClause || sel.havingClause || sel.distinctClause || sel.windowClause || sel.sortClause || sel.limitCount || sel.limitOffset || sel.lockingClause) return null
    const tl: N[] = sel.targetList ?? []
    if (tl.length !== 1 || tl[0]?.ResTarget?.name || tl[0]?.ResTarget?.indirection) return null
    const star = tl[0]?.ResTarget?.val?.ColumnRef?.fields
    if (!star || star.length !== 1 || star[0]?.A_Star === undefined) return null
    const from: N[] = sel.fromClause ?? []
    if (from.length !== 1 || nodeType(from[0]) !== 'RangeVar') return null
    const rv = from[0].RangeVar
    if (rv.alias?.colnames) return null
    const r = this.resolve(rv, scope)
    if (r.col === undefined) return null
    const range: Range = { ref: rv.alias?.aliasname ?? rv.relname, schema: rv.alias ? null : (rv.schemaname ?? null), key: r.key, col: r.col, derived: false, place: 'where', nullBy: [], joinPath: [] }
    if (!sel.whereClause || !this.isRestriction(sel.whereClause, range, true)) return null
    return { key: r.key, col: r.col }
  }

  // ---- statements ----------------------------------------------------------------------------------

  stmtBody(n: N, scope: Scope | null, outer: Level | null): void {
    const type = nodeType(n)
    const v = n[type]
    switch (type) {
      case 'SelectStmt':
        return this.select(v, scope, outer)
      case 'InsertStmt':
        return this.insert(v, scope, outer)
      case 'UpdateStmt':
        return this.update(v, scope, outer)
      case 'DeleteStmt':
        return this.delete(v, scope, outer)
      case 'MergeStmt':
        return this.merge(v, scope, outer)
      default:
        return this.generic(n)
    }
  }

  /** Any other statement: valid only if it references no tenant table at all. */
  generic(n: N): void {
    const visit = (x: N, depth: number) => {
      if (depth > 2000) throw new Fail('?', 'statement nested too deeply')
      if (x === null || typeof x !== 'object') return
      if (Array.isArray(x)) {
        for (const y of x) visit(y, depth + 1)
        return
      }
      for (const k in x) {
        const v = x[k]
        if (k === 'RangeVar' && v && typeof v === 'object') {
          const r = this.resolve(v, null)
          if (r.col !== undefined) throw new Fail(r.key, `tenant table "${r.key}" in a statement the verifier does not check`)
        }
        if (v && typeof v === 'object') visit(v, depth + 1)
      }
    }
    visit(n, 0)
  }

  /** Expressions: check every sub-query in them (with `level` as their outer level). */
  exprs(n: N, scope: Scope | null, level: Level | null): void {
    const visit = (x: N, depth: number) => {
      if (depth > 2000) throw new Fail('?', 'expression nested too deeply')
      if (x === null || typeof x !== 'object') return
      if (Array.isArray(x)) {
        for (const y of x) visit(y, depth + 1)
        return
      }
      for (const k in x) {
        const v = x[k]
        if (v === null || typeof v !== 'object' || LEAF.has(k)) continue
        switch (k) {
          case 'SelectStmt':
            this.select(v, scope, level)
            break
          case 'InsertStmt':
          case 'UpdateStmt':
          case 'DeleteStmt':
          case 'MergeStmt':
            throw new Fail('?', `a ${k} inside an expression`)
          case 'RangeVar': {
            const r = this.resolve(v, scope)
            if (r.col !== undefined) throw new Fail(r.key, `tenant table "${r.key}" referenced where the verifier cannot check it`)
            break
          }
          default:
            visit(v, depth + 1)
        }
      }
    }
    visit(n, 0)
  }

  /** Restrictions of a level's ranges; `where`: the conjuncts of the WHERE (null: the level has no WHERE to hold them). */
  levelRestrictions(level: Level, where: N[] | null, whereName: string, skipTarget: Range | null): void {
    const bare = level.bare && level.ranges.length === 1
    for (const r of level.ranges) {
      if (r.derived || r === skipTarget) continue
      if (r.place === 'derive')
        throw new Fail(r.key, `tenant table "${r.key}" (as "${r.ref}") is in a position (FULL JOIN, USING/NATURAL outer join, aliased join, column alias list, MERGE source) where only a filtered derived table restricts it`)
      if (r.place === 'where') {
        if (!where) throw new Fail(r.key, `tenant table "${r.key}" (as "${r.ref}") has no WHERE to restrict it`)
        this.requireRestriction(where, r, bare, whereName)
      } else this.requireRestriction(conjuncts(r.place.quals), r, false, 'its outer join\'s ON condition')
    }
  }

  /** Outer joins' and inner joins' ON conditions of a level: their sub-queries and evaluation order. */
  joinQuals(from: N[], scope: Scope | null, level: Level): void {
    const visit = (item: N) => {
      const j = item?.JoinExpr
      if (!j || nodeType(item) !== 'JoinExpr') return
      visit(j.larg)
      visit(j.rarg)
      if (j.quals) {
        this.exprs(j.quals, scope, level)
        if (this.checkOrder) this.order(conjuncts(j.quals), level.ranges.filter((r) => r.joinPath.includes(j)), level, j)
      }
    }
    for (const f of from) visit(f)
  }

  select(sel: N, scope: Scope | null, outer: Level | null): void {
    scope = this.withScope(sel.withClause, scope, outer)
    if (sel.op && sel.op !== 'SETOP_NONE') {
      this.select(sel.larg, scope, outer)
      this.select(sel.rarg, scope, outer)
      this.exprs([sel.sortClause, sel.limitCount, sel.limitOffset], scope, outer)
      return
    }
    if (sel.valuesLists) {
      this.exprs([sel.valuesLists, sel.sortClause, sel.limitCount, sel.limitOffset], scope, outer)
      return
    }
    const level = new Level(outer)
    const from: N[] = sel.fromClause ?? []
    level.bare = from.length === 1 && nodeType(from[0]) === 'RangeVar'
    for (const item of from) this.fromItem(item, level, scope, [], [], false, false, 'where')
    const where = sel.whereClause ? conjuncts(sel.whereClause) : []
    this.levelRestrictions(level, where, 'its WHERE', null)
    this.joinQuals(from, scope, level)
    this.exprs(
      [sel.targetList, sel.whereClause, sel.groupClause, sel.havingClause, sel.windowClause, sel.sortClause, sel.limitCount, sel.limitOffset, sel.distinctClause],
      scope,
      level,
    )
    if (this.checkOrder && sel.whereClause) this.order(where, level.ranges, level, null)
  }

  /** The target of UPDATE / DELETE / MERGE / INSERT: resolved without CTEs (a target is always a table). */
  target(rv: N, level: Level): Range | null {
    const r = this.resolve(rv, null)
    const name: string = rv.alias?.aliasname ?? rv.relname
    const schema: string | null = rv.alias ? null : (rv.schemaname ?? null)
    const info: NameInfo = { plain: true, schema, ranges: [] }
    let range: Range | null = null
    if (r.col !== undefined) {
      range = { ref: name, schema, key: r.key, col: r.col, derived: false, place: 'where', nullBy: [], joinPath: [] }
      info.ranges.push(range)
      level.ranges.push(range)
    }
    level.add(name, info)
    return range
  }

  update(up: N, scope: Scope | null, outer: Level | null): void {
    scope = this.withScope(up.withClause, scope, outer)
    const level = new Level(outer)
    const t = this.target(up.relation, level)
    const from: N[] = up.fromClause ?? []
    level.bare = from.length === 0
    for (const item of from) this.fromItem(item, level, scope, [], [], false, false, 'where')
    const currentOf = nodeType(up.whereClause) === 'CurrentOfExpr'
    const where = up.whereClause && !currentOf ? conjuncts(up.whereClause) : null
    if (t) this.setTargets(up.targetList, t.key, t.col, 'UPDATE of')
    this.levelRestrictions(level, where, 'the UPDATE\'s WHERE', currentOf ? t : null)
    this.joinQuals(from, scope, level)
    this.exprs([up.targetList, up.whereClause, up.returningList, up.returningClause], scope, level)
    if (this.checkOrder && where) this.order(where, level.ranges, level, null)
  }

  delete(del: N, scope: Scope | null, outer: Level | null): void {
    scope = this.withScope(del.withClause, scope, outer)
    const level = new Level(outer)
    const t = this.target(del.relation, level)
    const from: N[] = del.usingClause ?? []
    level.bare = from.length === 0
    for (const item of from) this.fromItem(item, level, scope, [], [], false, false, 'where')
    const currentOf = nodeType(del.whereClause) === 'CurrentOfExpr'
    const where = del.whereClause && !currentOf ? conjuncts(del.whereClause) : null
    this.levelRestrictions(level, where, 'the DELETE\'s WHERE', currentOf ? t : null)
    this.joinQuals(from, scope, level)
    this.exprs([del.whereClause, del.returningList, del.returningClause], scope, level)
    if (this.checkOrder && where) this.order(where, level.ranges, level, null)
  }

  insert(ins: N, scope: Scope | null, outer: Level | null): void {
    scope = this.withScope(ins.withClause, scope, outer)
    const sel = ins.selectStmt?.SelectStmt
    if (ins.selectStmt && !sel) throw new Fail('?', 'an INSERT source that is not a SELECT')
    if (sel) this.select(sel, scope, outer)
    const level = new Level(outer)
    const t = this.target(ins.relation, level)
    level.add('excluded', { plain: true, schema: null, ranges: [] })
    if (t) {
      const { key, col } = t
      let cols: string[] | null = ins.cols ? ins.cols.map((x: N) => x?.ResTarget?.name) : null
      if (!cols && sel && (!sel.op || sel.op === 'SETOP_NONE')) {
        // no column list: positions are the table's columns in order (facts.columns, as the rewriter uses them)
        const known = this.ctx.facts.columns?.get(key)
        const n = sel.valuesLists ? sel.valuesLists[0]?.List?.items?.length : (sel.targetList ?? []).some((x: N) => hasStar(x?.ResTarget?.val)) ? undefined : sel.targetList?.length
        if (known && typeof n === 'number' && n <= known.length) cols = known.slice(0, n)
      }
      if (!cols) throw new Fail(key, `INSERT into tenant table "${key}" without a column list`)
      if (!ins.cols) ins.cols = cols.map((name) => ({ ResTarget: { name } }))
      const idx = cols.indexOf(col)
      if (idx < 0) throw new Fail(key, `INSERT into tenant table "${key}" does not set its tenant column "${col}"`)
      if (cols.lastIndexOf(col) !== idx || ins.cols[idx].ResTarget.indirection) throw new Fail(key, `INSERT into "${key}": tenant column "${col}" listed twice or with a subscript`)
      if (!sel) throw new Fail(key, `INSERT into tenant table "${key}" … DEFAULT VALUES`)
      if (sel.valuesLists) {
        for (const row of sel.valuesLists) {
          const items: N[] | undefined = row?.List?.items
          if (!items || items.length !== cols.length) throw new Fail(key, `INSERT into "${key}": a VALUES row does not match the column list`)
          this.tenantValue(items[idx], key, col, 'INSERT into')
        }
      } else if (sel.op && sel.op !== 'SETOP_NONE') {
        throw new Fail(key, `INSERT into "${key}" from a set operation whose tenant value the verifier cannot see`)
      } else {
        const tl: N[] = sel.targetList ?? []
        const starAt = tl.findIndex((x) => hasStar(x?.ResTarget?.val))
        if (starAt < 0) {
          if (tl.length !== cols.length) throw new Fail(key, `INSERT into "${key}": the SELECT list does not match the column list`)
          this.tenantValue(tl[idx]?.ResTarget?.val, key, col, 'INSERT into')
        } else {
          // `SELECT *, T FROM (…)`: only the last position is known (the counts must match, or PostgreSQL fails)
          const last = tl[tl.length - 1]
          if (idx !== cols.length - 1 || hasStar(last?.ResTarget?.val)) throw new Fail(key, `INSERT into "${key}": the tenant value's position behind a * is unknown`)
          this.tenantValue(last?.ResTarget?.val, key, col, 'INSERT into')
        }
      }
    }
    const oc = ins.onConflictClause
    if (oc) {
      const where = oc.whereClause ? conjuncts(oc.whereClause) : null
      if (t && oc.action === 'ONCONFLICT_UPDATE') {
        this.setTargets(oc.targetList, t.key, t.col, 'INSERT … ON CONFLICT DO UPDATE of')
        if (!where || !where.some((c) => this.isRestriction(c, t)))
          throw new Fail(t.key, `INSERT … ON CONFLICT DO UPDATE of tenant table "${t.key}" has no tenant restriction in its WHERE`)
      }
      this.exprs([oc.infer, oc.targetList, oc.whereClause], scope, level)
      if (this.checkOrder && where) this.order(where, level.ranges, level, null)
    }
    this.exprs([ins.returningList, ins.returningClause], scope, level)
  }

  merge(m: N, scope: Scope | null, outer: Level | null): void {
    scope = this.withScope(m.withClause, scope, outer)
    const level = new Level(outer)
    const t = this.target(m.relation, level)
    // a source join would hold the ranges in one FROM item without a WHERE: only derived tables are valid
    this.fromItem(m.sourceRelation, level, scope, [], [], true, false, 'where')
    const on = conjuncts(m.joinCondition)
    this.levelRestrictions(level, null, '', t)
    const clauses: N[] = (m.mergeWhenClauses ?? []).map((w: N) => w?.MergeWhenClause)
    if (t) {
      const { key, col } = t
      if (!on.some((c) => this.isRestriction(c, t))) throw new Fail(key, `MERGE into tenant table "${key}" has no tenant restriction in its ON condition`)
      for (const w of clauses) {
        if (!w) throw new Fail(key, 'a MERGE WHEN clause the verifier does not know')
        if (w.matchKind === 'MERGE_WHEN_NOT_MATCHED_BY_SOURCE') throw new Fail(key, `MERGE into tenant table "${key}" with WHEN NOT MATCHED BY SOURCE`)
        if (w.commandType === 'CMD_UPDATE') this.setTargets(w.targetList, key, col, 'MERGE UPDATE of')
        else if (w.commandType === 'CMD_INSERT') {
          const cols: string[] = (w.targetList ?? []).map((x: N) => x?.ResTarget?.name)
          const idx = cols.indexOf(col)
          if (idx < 0 || !w.values || cols.lastIndexOf(col) !== idx || w.values.length !== cols.length)
            throw new Fail(key, `MERGE … INSERT into tenant table "${key}" does not set its tenant column "${col}"`)
          this.tenantValue(w.values[idx], key, col, 'MERGE INSERT into')
        }
      }
    }
    this.joinQuals([m.sourceRelation], scope, level)
    this.exprs([m.joinCondition, clauses.map((w) => [w?.condition, w?.targetList, w?.values]), m.returningList, m.returningClause], scope, level)
    if (this.checkOrder) this.order(on, level.ranges, level, null)
  }

  copy(cp: N): void {
    if (cp.query) return this.stmtBody(cp.query, null, null)
    if (!cp.relation) return
    const r = this.resolve(cp.relation, null)
    if (r.col !== undefined) throw new Fail(r.key, `COPY of tenant table "${r.key}" (only COPY (SELECT … restricted) TO is valid)`)
  }

  statement(n: N): void {
    const type = nodeType(n)
    const v = n[type]
    if (NO_QUERY.has(type)) return
    switch (type) {
      case 'SelectStmt':
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        return this.stmtBody(n, null, null)
      case 'ExplainStmt':
        return this.statement(v.query)
      case 'PrepareStmt':
        return this.stmtBody(v.query, null, null)
      case 'DeclareCursorStmt':
        return this.stmtBody(v.query, null, null)
      case 'ExecuteStmt':
        return this.exprs(v.params, null, null)
      case 'CopyStmt':
        return this.copy(v)
      default:
        return this.generic(n)
    }
  }

  // ---- evaluation order (issue #22) ----------------------------------------------------------------

  /** Looks a qualifier up from `level` outwards: the ranges it names, or null when no level knows it. */
  lookup(q: string, schema: string | null, level: Level | null): NameInfo[] | null {
    for (let l = level; l; l = l.parent) {
      const infos = l.names.get(q)
      if (infos) {
        const m = schema === null ? infos : infos.filter((i) => i.schema === schema)
        if (m.length) return m
      }
    }
    return null
  }

  allRanges(level: Level | null): Range[] {
    const out: Range[] = []
    for (let l = level; l; l = l.parent) out.push(...l.ranges)
    return out
  }

  /** Tenant ranges an expression references (conservatively: unqualified columns, `*` and unknown qualifiers reference every range in scope). */
  referenced(expr: N, level: Level, inScope: Range[]): Set<Range> {
    const out = new Set<Range>()
    const all = () => {
      for (const r of inScope) out.add(r)
    }
    const shadows: Set<string>[] = []
    // columns of each enclosing sub-select's FROM tables (null: some item's columns are unknown)
    const shadowCols: (Set<string> | null)[] = []
    const fromColumns = (from: N[] | undefined): Set<string> | null => {
      const cols = new Set<string>()
      let open = false
      const visit = (it: N) => {
        const t = nodeType(it)
        const v = it?.[t]
        if (!v) return
        if (t === 'RangeVar' && !v.alias?.colnames) {
          const known = relationColumns(this.ctx, v)
          if (known) known.forEach((c) => cols.add(c))
          else open = true
        } else if (t === 'JoinExpr') {
          visit(v.larg)
          visit(v.rarg)
        } else open = true
      }
      for (const it of from ?? []) visit(it)
      return open ? null : cols
    }
    const fromNames = (from: N[] | undefined): Set<string> => {
      const s = new Set<string>()
      const visit = (it: N) => {
        const t = nodeType(it)
        const v = it?.[t]
        if (!v) return
        if (v.alias?.aliasname) s.add(v.alias.aliasname)
        if (t === 'RangeVar') s.add(v.alias?.aliasname ?? v.relname)
        if (t === 'JoinExpr') {
          visit(v.larg)
          visit(v.rarg)
        }
      }
      for (const it of from ?? []) visit(it)
      return s
    }
    const visit = (x: N, depth: number) => {
      if (depth > 2000) throw new Fail('?', 'expression nested too deeply')
      if (x === null || typeof x !== 'object') return
      if (Array.isArray(x)) {
        for (const y of x) visit(y, depth + 1)
        return
      }
      for (const k in x) {
        const v = x[k]
        if (v === null || typeof v !== 'object') continue
        if (k === 'ColumnRef') {
          const f: N[] = v.fields ?? []
          const names = strings(f.filter((y) => y?.A_Star === undefined))
          if (!names || names.length === 0 || (names.length === 1 && f.length === 1)) {
            // an unqualified name a sub-select's own tables have is theirs (SQL resolves innermost first)
            if (names?.length === 1 && shadowCols.some((c) => c !== null && (c.has(names[0]) || SYSTEM_COLUMNS.has(names[0])))) continue
            if (names?.length === 1 && f.length === 1) {
              // innermost level first, as SQL resolves it: the tenant ranges whose (known) columns include it
              let found = false
              for (let l: Level | null = level; l && !found; l = l.parent) {
                const cands = l.ranges.filter((r) => {
                  const cols = this.ctx.facts.columns?.get(r.key)
                  return !cols || cols.includes(names[0])
                })
                for (const r of cands) if (inScope.includes(r)) out.add(r)
                found = cands.length > 0
              }
              if (found) continue
            }
            all()
            continue
          }
          // q.c, s.q.c, d.s.q.c, q.*: the qualifier is the name before the column (or before *)
          const star = f[f.length - 1]?.A_Star !== undefined
          const parts = star ? names : names.slice(0, -1)
          const q = parts[parts.length - 1]
          const schema = parts.length >= 2 ? parts[parts.length - 2] : null
          if (shadows.some((s) => s.has(q))) continue
          const infos = this.lookup(q, schema, level)
          if (!infos) all()
          else for (const i of infos) for (const r of i.ranges) out.add(r)
        } else if (k === 'SelectStmt' || k === 'larg' || k === 'rarg') {
          // (the arms of a set operation are SelectStmts without the wrapper key)
          shadows.push(fromNames(v.fromClause))
          shadowCols.push(fromColumns(v.fromClause))
          for (const c of v.withClause?.ctes ?? []) shadows[shadows.length - 1].add(c?.CommonTableExpr?.ctename)
          visit(v, depth + 1)
          shadows.pop()
          shadowCols.pop()
        } else visit(v, depth + 1)
      }
    }
    visit(expr, 0)
    return out
  }

  /**
   * A conjunct with each sub-link set aside: sub-selects are checked (restrictions and order) at their
   * own level, so here a sub-link counts as a parameter, except that a non-EXISTS sub-select that reads
   * a tenant range of this or an outer level (correlation) evaluates its target list per row of it:
   * then the conjunct is not leakproof-safe. `refs`: the tenant ranges the conjunct's evaluation reads.
   */
  conjunctFacts(expr: N, level: Level, inScope: Range[]): { stripped: N; refs: Set<Range>; correlated: boolean } {
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
            const r = this.referenced(v.subselect, level, inScope)
            if (r.size) correlated = true
            for (const y of r) subRefs.add(y)
          }
          const param = { ParamRef: { number: 1 } }
          if (v.subLinkType === 'ANY_SUBLINK' || v.subLinkType === 'ALL_SUBLINK') {
            const name = v.operName ?? [{ String: { sval: '=' } }]
            return { A_Expr: { kind: v.subLinkType === 'ANY_SUBLINK' ? 'AEXPR_OP_ANY' : 'AEXPR_OP_ALL', name, lexpr: strip(v.testexpr, depth + 1), rexpr: param } }
          }
          return param
        }
        out[k] = strip(v, depth + 1)
      }
      return out
    }
    const stripped = strip(expr, 0)
    const refs = this.referenced(stripped, level, inScope)
    for (const r of subRefs) refs.add(r)
    return { stripped, refs, correlated }
  }

  /** Is column reference `ref` (inner object) to a plain table's stored column? */
  plainColumn(ref: N, level: Level): boolean {
    const names = strings(ref.fields ?? [])
    if (!names) return false
    if (names.length === 1) {
      for (let l: Level | null = level; l; l = l.parent) for (const infos of l.names.values()) if (infos.some((i) => !i.plain)) return false
      return true
    }
    const q = names[names.length - 2]
    const schema = names.length >= 3 ? names[names.length - 3] : null
    const infos = this.lookup(q, schema, level)
    return !!infos && infos.every((i) => i.plain)
  }

  /**
   * Conjuncts of a WHERE / ON with tenant ranges in scope: each is a restriction, leakproof-safe, or
   * `CASE WHEN <guard> THEN <e> END` whose guard covers the ranges <e> references.
   * `here`: the clause's own level's ranges visible to it; `join`: the JoinExpr for an ON, null for a WHERE.
   */
  order(conj: N[], here: Range[], level: Level, join: N | null): void {
    const inScope = [...here, ...this.allRanges(level.parent)]
    if (inScope.length === 0) return
    // `(q.c = T OR q.c IS NULL)` is accepted for a range on the nullable side of an outer join. (Stricter
    // would be: only where it can be NULL-extended, i.e. not in the ON of the join that makes it
    // nullable, where the OR admits only rows whose tenant column is NULL — rows of no tenant.)
    const nullableHere = (r: Range): boolean => r.nullBy.length > 0
    void join
    for (const c of conj) {
      if (inScope.some((r) => this.isRestriction(c, r))) continue
      const f = this.conjunctFacts(c, level, inScope)
      if (!f.correlated && isLeakproofSafe(f.stripped, (ref) => this.plainColumn(ref, level))) continue
      const ce = c?.CaseExpr
      const w = ce?.args?.[0]?.CaseWhen
      const nullDefault = ce?.defresult === undefined || (ce.defresult?.A_Const?.isnull && nodeType(ce.defresult) === 'A_Const')
      const refs = f.refs
      // reads no tenant range of this or an outer level (its sub-queries' own ranges are checked at their level)
      if (refs.size === 0) continue
      const first = [...refs][0]
      if (!ce || nodeType(c) !== 'CaseExpr' || ce.arg || ce.args.length !== 1 || !w || !nullDefault)
        throw new Fail(first.key, `a condition on tenant table "${first.key}" is neither leakproof-safe nor behind the tenant restriction (CASE WHEN <restriction> THEN … END)`)
      const covered = new Set<Range>()
      for (const g of conjuncts(w.expr)) {
        const r = inScope.find((x) => this.isRestriction(g, x) || (nullableHere(x) && this.isNullableRestriction(g, x)))
        if (!r) throw new Fail(first.key, 'a CASE WHEN guard holds something other than tenant restrictions')
        for (const x of inScope) if (this.isRestriction(g, x) || (nullableHere(x) && this.isNullableRestriction(g, x))) covered.add(x)
      }
      for (const r of this.conjunctFacts(w.result, level, inScope).refs)
        if (!covered.has(r)) throw new Fail(r.key, `a condition reads tenant table "${r.key}" (as "${r.ref}") before its tenant restriction holds: the guard does not cover it`)
    }
  }
}

/**
 * Verify a rewritten text (one or several statements) for `tenant`, the value in its tenant slots.
 * Never throws; a parse failure or an internal error is a failure.
 */
export function verifyRewrite(rewrittenSql: string, tenant: string, ctx: RewriteContext, opts: VerifyOptions = {}): VerifyResult {
  try {
    if (ctx.mode !== 'tenant') return OK
    if (typeof tenant !== 'string' || tenant.length === 0) return { ok: false, table: '?', reason: 'no tenant value to verify against' }
    if (opts.originalSql !== undefined && opts.originalSql.includes(tenant))
      return { ok: false, table: '?', reason: "the client's text contains the verification sentinel" }
    const tree: N = parseSync(rewrittenSql)
    const v = new Verifier(tenant, ctx, opts.checkOrder !== false)
    for (const s of tree.stmts ?? []) v.statement(s.stmt)
    return OK
  } catch (e) {
    if (e instanceof Fail) return { ok: false, table: e.table, reason: e.reason }
    return { ok: false, table: '?', reason: `verification failed: ${(e as Error)?.message ?? String(e)}` }
  }
}

/**
 * The text to verify for a rewriter template (parser/analyze.ts Part[]: strings, -1 = tenant slot,
 * k >= 0 = the client's k-th literal at spans[2k], spans[2k+1]): tenant slots AND the literal slots in
 * `checkedLits` (the literals the plan compares with the session tenant before sending) are filled
 * with `quotedSentinel`; other literals keep the client's text.
 */
export function fillForVerify(tpl: readonly (string | number)[], text: string, spans: readonly number[], checkedLits: ReadonlySet<number>, quotedSentinel: string): string {
  let out = ''
  for (const p of tpl) {
    if (typeof p === 'string') out += p
    else if (p < 0 || checkedLits.has(p)) out += quotedSentinel
    else out += text.slice(spans[2 * p], spans[2 * p + 1])
  }
  return out
}
