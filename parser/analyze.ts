// Cold path: parse the text once with libpg-query, walk the tree and produce a Plan: for each
// statement either a refusal, a tenant command, or a template (the client's text with tenant
// restrictions spliced in at positions from the tree and the tokenizer; the tenant value and
// the client's literals are slots). Nothing is deparsed: comments, literals, casts and layout
// of the client's text stay byte-identical.
//
// Strategies, per reference to a tenant table T (column c) in a FROM list:
//  - T is not on the nullable side of an outer join: AND `alias.c = 'tenant'` into the WHERE of the
//    SELECT / UPDATE / DELETE that owns the FROM list (keeps ctid/system columns, FOR UPDATE OF,
//    `schema.T.col` references and ORM aliases working);
//  - T is on the nullable side of a LEFT/RIGHT JOIN … ON: AND the predicate into that join's ON
//    (innermost such join), so the join stays an outer join;
//  - T is on a nullable side without an ON (USING/NATURAL), in a FULL JOIN, inside a join that has an
//    alias (which hides T's name), or has a column alias list: replace `T a` by
//    `(SELECT * FROM T WHERE c = 'tenant') a` (the alias is kept; a bare T gets alias T);
//  - UPDATE/DELETE targets: WHERE predicate; INSERT: tenant column added or checked/guarded;
//    MERGE: target restricted in the ON condition, a tenant source becomes a filtered derived table.
// Positions come from the parse tree (byte offsets converted to char indices) and, where the tree
// has none (end of a FROM list or WHERE/ON expression, the WHERE keyword), from tokenize(): a clause
// keyword at the SELECT's own paren depth. Anything the analysis cannot place is refused (0A000),
// never forwarded unrestricted.
import { parseSync } from 'libpg-query'
import type { RewriteContext, Refusal, SessionEffect, Sqlstate, TenantCommand } from './types.js'
import { tokenize, normalizeLiterals, decodeSimpleLiteral, T_WORD, T_PUNCT, T_OP, type Token, type Normalized } from './scan.js'
import { quoteIdent, quoteLiteral } from './quote.js'
import { functionRefusal } from './policy/functions.js'
import { settingRefusal, settingValueRefusal, setConfigRefusal } from './policy/settings.js'
import { relationRefusal } from './policy/relations.js'
import { conjunctFacts, type RangeInfo } from './order.js'

/* eslint-disable @typescript-eslint/no-explicit-any */
type N = any

/** Template part: a string, TENANT (the quoted session tenant) or k >= 0 (the client's k-th literal). */
export type Part = string | number
export const TENANT = -1

export interface CompiledStmt {
  kind: 'forward' | 'tenant' | 'refuse'
  tpl: Part[]
  command: string
  touchesTenant: boolean
  /** First tenant table touched (for the "no tenant set" refusal). */
  firstTenantTable: string | null
  relations: string[]
  effect?: SessionEffect
  tenantCommand?: TenantCommand
  refusal?: Refusal
}

export interface Check {
  stmt: number
  /** literal index in the normalised spans */
  lit: number
  message: string
}

export interface Plan {
  stmts: CompiledStmt[]
  /** Template of the whole text when every statement is forwarded. */
  whole: Part[] | null
  refusal: Refusal | null
  checks: Check[]
  /** May the plan be shared by texts that differ only in literal values? */
  normalizable: boolean
  touchesTenant: boolean
}

export class Refuse extends Error {
  constructor(
    public sqlstate: Sqlstate,
    message: string,
    public hint?: string,
  ) {
    super(message)
  }
}

interface Edit {
  s: number
  e: number
  parts: Part[]
  /** order among edits at the same position: prio first (an outer construct's opening < 0), then creation order */
  prio: number
  seq: number
}

interface Scope {
  ctes: Set<string>
  parent: Scope | null
}

type RelKind = 'tenant' | 'reference' | 'system' | 'unknown' | 'cte'
interface Resolved {
  key: string
  kind: RelKind
  col?: string
}

const SYSTEM_SCHEMAS = new Set(['pg_catalog', 'information_schema'])
/** Node types that cannot contain a sub-SELECT, a function call or a relation: the walker skips them. */
const LEAF_NODES = new Set(['ColumnRef', 'A_Const', 'ParamRef', 'String', 'Integer', 'Float', 'Boolean', 'TypeName', 'A_Star', 'SetToDefault', 'location', 'name', 'fields'])

const JOIN_STOP = new Set([
  'join', 'inner', 'left', 'right', 'full', 'cross', 'natural', 'on', 'where', 'group', 'having', 'window', 'order',
  'limit', 'offset', 'fetch', 'for', 'union', 'intersect', 'except', 'returning', 'when', 'using',
])
const SELECT_AFTER_WHERE = new Set(['group', 'having', 'window', 'order', 'limit', 'offset', 'fetch', 'for'])
const SELECT_END = new Set(['union', 'intersect', 'except', 'returning'])

const STMT_COMMAND: Record<string, string> = {
  SelectStmt: 'SELECT',
  InsertStmt: 'INSERT',
  UpdateStmt: 'UPDATE',
  DeleteStmt: 'DELETE',
  MergeStmt: 'MERGE',
}

/** Does a statement read a relation named `name` without a schema (a CTE referring to itself)? */
function refersTo(n: N, name: string): boolean {
  if (n === null || typeof n !== 'object') return false
  if (Array.isArray(n)) return n.some((x) => refersTo(x, name))
  for (const k in n) {
    const v = n[k]
    if (k === 'RangeVar' && v.relname === name && !v.schemaname) return true
    if (v && typeof v === 'object' && refersTo(v, name)) return true
  }
  return false
}

function nodeType(n: N): string {
  for (const k in n) return k
  return ''
}

function lower(s: string): string {
  return s.toLowerCase()
}

/** A string, integer, float or boolean constant's text; undefined when the node is not a plain constant. */
function constValue(n: N): string | null | undefined {
  const c = n?.A_Const
  if (!c) return undefined
  if (c.isnull) return null
  if (c.sval) return c.sval.sval ?? ''
  if (c.ival) return String(c.ival.ival ?? 0)
  if (c.fval) return c.fval.fval
  if (c.boolval) return c.boolval.boolval ? 'true' : 'false'
  if (c.bsval) return undefined
  return undefined
}

function funcName(fc: N): { schema: string | null; name: string } {
  const parts = (fc.funcname ?? []).map((x: N) => x.String?.sval ?? '')
  return { schema: parts.length > 1 ? parts[parts.length - 2] : null, name: parts[parts.length - 1] ?? '' }
}

export class Analyzer {
  readonly toks: Token[]
  readonly lits: Normalized
  readonly ascii: boolean
  private b2cMap: Int32Array | null = null
  edits: Edit[] = []
  private seq = 0
  normalizable = true
  checks: { lit: number; message: string; stmt: number }[] = []
  // per statement
  private relations = new Set<string>()
  private touchesTenant = false
  private firstTenantTable: string | null = null
  private stmtIndex = 0
  /** "schema.table" of tenant tables made derived tables without an alias (their alias is the bare name) */
  private derivedQualified = new Set<string>()
  private readonly setting: string
  /** FROM items of the query levels being walked, innermost last (for the evaluation-order guard). */
  private levels: RangeInfo[][] = []
  /** Tenant table references seen so far (a sub-select that adds some reads tenant rows). */
  private tenantRefs = 0

  constructor(
    readonly text: string,
    readonly ctx: RewriteContext,
    lits?: Normalized,
  ) {
    this.toks = tokenize(text)
    this.lits = lits ?? normalizeLiterals(text)
    if (this.lits.key === null) this.normalizable = false
    this.ascii = Buffer.byteLength(text, 'utf8') === text.length
    this.setting = lower(ctx.setting)
  }

  // ---- positions ----------------------------------------------------------------------------

  /** Byte offset (libpg-query location) → char index. */
  c(b: number): number {
    if (this.ascii) return b
    if (!this.b2cMap) {
      const t = this.text
      const map = new Int32Array(Buffer.byteLength(t, 'utf8') + 1)
      let bi = 0
      for (let ci = 0; ci < t.length; ci++) {
        const cp = t.charCodeAt(ci)
        map[bi] = ci
        if (cp < 0x80) bi += 1
        else if (cp < 0x800) bi += 2
        else if (cp >= 0xd800 && cp <= 0xdbff && ci + 1 < t.length && (t.charCodeAt(ci + 1) & 0xfc00) === 0xdc00) {
          map[bi] = ci
          bi += 4
          ci++
        } else bi += 3
      }
      map[bi] = t.length
      this.b2cMap = map
    }
    return this.b2cMap[b] ?? this.text.length
  }

  /** Index of the token starting at (or containing) char position p. */
  tokAt(p: number): number {
    const t = this.toks
    let lo = 0
    let hi = t.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (t[mid].s <= p) lo = mid + 1
      else hi = mid - 1
    }
    if (hi < 0 || t[hi].e <= p) throw new Refuse('0A000', 'pgtenant could not locate a token in the statement')
    return hi
  }

  /** Smallest location (char index) in a subtree. */
  minLoc(n: N): number {
    let best = Infinity
    const visit = (x: N) => {
      if (x === null || typeof x !== 'object') return
      if (Array.isArray(x)) {
        for (const y of x) visit(y)
        return
      }
      for (const k in x) {
        const v = x[k]
        if (k === 'location' && typeof v === 'number') {
          if (v >= 0 && v < best) best = v
        } else if (typeof v === 'object') visit(v)
      }
    }
    visit(n)
    if (best === Infinity) throw new Refuse('0A000', 'pgtenant could not locate an expression in the statement')
    return this.c(best)
  }

  isWord(i: number, w: string): boolean {
    const t = this.toks[i]
    return t !== undefined && t.k === T_WORD && t.w === w
  }

  /** A keyword at i (not a column label after "." or AS). */
  kw(i: number): string {
    const t = this.toks[i]
    if (!t || t.k !== T_WORD) return ''
    const p = this.toks[i - 1]
    if (p && (p.w === '.' || (p.k === T_WORD && p.w === 'as'))) return ''
    return t.w
  }

  edit(s: number, e: number, parts: Part[], prio = 0): void {
    this.edits.push({ s, e, parts, prio, seq: this.seq++ })
  }
  insert(p: number, parts: Part[], prio = 0): void {
    this.edit(p, p, parts, prio)
  }

  // ---- names --------------------------------------------------------------------------------

  resolve(rv: N, scope: Scope | null, forWrite: boolean): Resolved {
    const rel: string = rv.relname
    const schema: string | undefined = rv.schemaname
    if (!schema && scope) {
      for (let s: Scope | null = scope; s; s = s.parent) if (s.ctes.has(rel)) return { key: rel, kind: 'cte' }
    }
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
      if (!key) {
        if (rel.startsWith('pg_')) key = `pg_catalog.${rel}`
        else key = `${this.ctx.searchPath[0] ?? 'public'}.${rel}`
      }
    }
    this.relations.add(key)
    const dot = key.indexOf('.')
    const sch = key.slice(0, dot)
    const denied = relationRefusal(sch, key.slice(dot + 1))
    if (denied) throw new Refuse('42501', denied)
    const col = f.tenantTables.get(key)
    if (col !== undefined) {
      this.touchesTenant = true
      this.tenantRefs++
      if (this.firstTenantTable === null) this.firstTenantTable = key
      return { key, kind: 'tenant', col }
    }
    if (f.referenceTables.has(key)) {
      if (forWrite) throw new Refuse('42501', `table "${key}" is a reference table: tenant sessions may read it but not change it`)
      return { key, kind: 'reference' }
    }
    if (SYSTEM_SCHEMAS.has(sch)) {
      if (forWrite) throw new Refuse('42501', `"${key}" is a system catalog: tenant sessions may not change it`)
      return { key, kind: 'system' }
    }
    if (f.unknown === 'reject')
      throw new Refuse('42501', `relation "${key}" is not known to pgtenant (neither a tenant table nor a reference table)`, 'add it to tenant.tables or tenant.reference, or refresh the schema')
    return { key, kind: 'unknown' }
  }

  withScope(w: N | undefined, scope: Scope | null): Scope | null {
    if (!w) return scope
    const s: Scope = { ctes: new Set(), parent: scope }
    const ctes: N[] = w.ctes ?? []
    if (w.recursive) for (const c of ctes) s.ctes.add(c.CommonTableExpr.ctename)
    for (const c of ctes) {
      const cte = c.CommonTableExpr
      const before = this.tenantRefs
      this.walkStmtBody(cte.ctequery, s)
      // a recursive CTE is never inlined (and cannot take OFFSET): it is a fence already
      if ((this.tenantRefs !== before || this.guarding()) && cte.ctequery.SelectStmt && !refersTo(cte.ctequery, cte.ctename))
        this.fenceSubselect(cte.ctequery.SelectStmt)
      s.ctes.add(cte.ctename)
    }
    return s
  }

  // ---- expressions --------------------------------------------------------------------------

  walkExpr(n: N, scope: Scope | null): void {
    if (n === null || typeof n !== 'object') return
    if (Array.isArray(n)) {
      for (let i = 0; i < n.length; i++) this.walkExpr(n[i], scope)
      return
    }
    for (const k in n) {
      const v = n[k]
      if (v === null || typeof v !== 'object' || LEAF_NODES.has(k)) continue
      switch (k) {
        case 'SelectStmt':
          this.walkSelect(v, scope)
          break
        case 'InsertStmt':
        case 'UpdateStmt':
        case 'DeleteStmt':
        case 'MergeStmt':
        case 'RangeVar':
          throw new Refuse('0A000', `pgtenant cannot rewrite a ${k} in this position`)
        case 'FuncCall':
          this.checkFunc(v)
          this.walkExpr(v, scope)
          break
        case 'SubLink': {
          const before = this.tenantRefs
          this.walkExpr(v, scope)
          if ((v.subLinkType === 'ANY_SUBLINK' || v.subLinkType === 'ALL_SUBLINK') && this.tenantRefs !== before && v.subselect?.SelectStmt)
            this.fenceSubselect(v.subselect.SelectStmt)
          break
        }
        case 'MultiAssignRef':
          // SET (a, b) = (SELECT …): every target repeats the same source; walk it once
          if (v.colno === 1) this.walkExpr(v.source, scope)
          break
        default:
          this.walkExpr(v, scope)
      }
    }
  }

  checkFunc(fc: N): void {
    if (this.ctx.mode !== 'tenant') return
    const { schema, name } = funcName(fc)
    const refusal = functionRefusal(schema, name, this.ctx.facts.functionPolicy)
    if (refusal) throw new Refuse('42501', refusal)
    if (lower(name) === 'set_config' && (!schema || lower(schema) === 'pg_catalog')) this.checkSetConfig(fc)
  }

  /**
   * set_config() inside a statement: a constant setting name on the allow list, transaction-local only
   * (a session-level change would stay on the pooled server connection without the proxy knowing;
   * `SELECT set_config(name, value, false)` alone in a statement is tracked like SET instead).
   */
  checkSetConfig(fc: N): void {
    this.normalizable = false // the literal setting name decides
    const args: N[] = fc.args ?? []
    const v = constValue(args[0])
    if (typeof v !== 'string') throw new Refuse('42501', 'set_config() with a setting name that is not a string literal is not allowed for tenant sessions')
    const lv = lower(v)
    if (lv === this.setting) throw new Refuse('0A000', `set_config('${this.ctx.setting}', …) must be alone in its statement: SELECT set_config('${this.ctx.setting}', 'x', false)`)
    const refusal = setConfigRefusal(lv)
    if (refusal) throw new Refuse('42501', refusal)
    const local = constValue(args[2])
    if (typeof local !== 'string' || parseBool(local) !== true)
      throw new Refuse('42501', `set_config('${lv}', …, false) inside a statement is not allowed for tenant sessions: it would change the pooled server session behind pgtenant (use SET, or is_local true)`)
  }

  // ---- SELECT -------------------------------------------------------------------------------

  walkSelect(sel: N, scope: Scope | null): void {
    scope = this.withScope(sel.withClause, scope)
    if (sel.intoClause) throw new Refuse('42501', 'SELECT … INTO creates a table: DDL is not allowed for tenant sessions')
    if (sel.op && sel.op !== 'SETOP_NONE') {
      this.walkSelect(sel.larg, scope)
      this.walkSelect(sel.rarg, scope)
      this.walkExpr([sel.sortClause, sel.limitCount, sel.limitOffset], scope)
      return
    }
    if (sel.valuesLists) {
      this.walkExpr(sel.valuesLists, scope)
      this.walkExpr([sel.sortClause, sel.limitCount, sel.limitOffset], scope)
      return
    }
    const from: N[] = sel.fromClause ?? []
    const pl = new Placement()
    this.levels.push(pl.ranges)
    try {
      for (const item of from) this.fromItem(item, scope, pl, null, false)
      this.walkExpr(
        [sel.targetList, sel.whereClause, sel.groupClause, sel.havingClause, sel.windowClause, sel.sortClause, sel.limitCount, sel.limitOffset, sel.distinctClause],
        scope,
      )
      // lockingClause names FROM items: nothing to resolve
      if (!pl.empty()) {
        // anchor: first target (or first FROM item for TABLE t)
        const tl: N[] = sel.targetList ?? []
        let anchor = -1
        const tloc = tl.length ? tl[0].ResTarget?.location : -1
        if (tloc !== undefined && tloc >= 0) anchor = this.tokAt(this.c(tloc))
        else if (from.length) {
          anchor = this.tokAt(this.minLoc(from[0]))
          // TABLE t: turn it into SELECT * FROM t so a WHERE can follow
          let k = anchor - 1
          while (k >= 0 && (this.isWord(k, 'only') || this.toks[k].w === '(')) k--
          if (this.isWord(k, 'table')) this.edit(this.toks[k].s, this.toks[k].e, ['SELECT * FROM'])
        } else throw new Refuse('0A000', 'pgtenant could not locate the SELECT clauses')
        this.applyPlacement(pl, anchor, sel.whereClause)
      }
      if (this.guarding()) {
        for (const join of pl.joins) this.guardConjuncts(join.quals, ...this.onExtent(join))
        if (sel.whereClause) this.guardConjuncts(sel.whereClause, ...this.whereExtent(this.selectAnchor(sel), false))
        // a HAVING conjunct without an aggregate may be moved into WHERE by the planner: its guard holds an aggregate
        if (sel.havingClause) this.guardConjuncts(sel.havingClause, ...this.havingExtent(this.selectAnchor(sel)), true)
      }
    } finally {
      this.levels.pop()
    }
  }

  /** First token of a SELECT's target list (or of its FROM for TABLE t): where its clause scan starts. */
  selectAnchor(sel: N): number {
    const tl: N[] = sel.targetList ?? []
    const tloc = tl.length ? tl[0].ResTarget?.location : -1
    if (tloc !== undefined && tloc >= 0) return this.tokAt(this.c(tloc))
    const from: N[] = sel.fromClause ?? []
    if (from.length) return this.tokAt(this.minLoc(from[0]))
    throw new Refuse('0A000', 'pgtenant could not locate the SELECT clauses')
  }

  // ---- evaluation order (issue #22, parser/order.ts) -----------------------------------------

  /** Is there a tenant range in scope whose conditions need ordering? */
  guarding(): boolean {
    return this.ctx.mode === 'tenant' && this.levels.some((l) => l.some((r) => r.tenant))
  }

  /** Token range [first, last] of the WHERE expression of the query whose clauses start at `anchor`. */
  whereExtent(anchor: number, dml: boolean): [number, number] {
    const sc = dml ? this.scanDml(anchor) : this.scanSelect(anchor)
    const stop = sc.after >= 0 ? sc.after : sc.end
    if (sc.where < 0 || sc.where + 1 >= stop) throw new Refuse('0A000', 'pgtenant could not locate the WHERE expression')
    return [sc.where + 1, stop - 1]
  }

  /** Token range [first, last] of the HAVING expression of the SELECT whose clauses start at `anchor`. */
  havingExtent(anchor: number): [number, number] {
    let having = -1
    const sc = this.scanLevel(anchor, (r, i, w) => {
      if (w === 'having' && having < 0) having = i
      else if (having >= 0 && (w === 'window' || w === 'order' || w === 'limit' || w === 'offset' || w === 'fetch' || w === 'for')) return true
      return SELECT_END.has(w)
    })
    if (having < 0 || having + 1 >= sc.end) throw new Refuse('0A000', 'pgtenant could not locate the HAVING expression')
    return [having + 1, sc.end - 1]
  }

  /** Token range [first, last] of a JOIN … ON condition. */
  onExtent(join: N): [number, number] {
    const t = this.toks
    const q = this.tokAt(this.minLoc(join.quals))
    let k = q - 1
    while (k >= 0 && t[k].w === '(' && t[k].k === T_PUNCT) k--
    if (!this.isWord(k, 'on')) throw new Refuse('0A000', 'pgtenant could not locate a JOIN … ON condition')
    const d = t[k].d
    let i = k + 1
    let cases = 0 // CASE … END at this depth: its WHEN is not a clause keyword
    for (; i < t.length; i++) {
      const x = t[i]
      if (x.d < d) break
      if (x.d > d) continue
      if (x.k === T_PUNCT && (x.w === ',' || x.w === ';')) break
      const w = this.kw(i)
      if (w === 'case') cases++
      else if (w === 'end' && cases > 0) cases--
      else if (cases === 0 && w && JOIN_STOP.has(w) && !(t[i + 1] && t[i + 1].w === '(' && (w === 'left' || w === 'right'))) break
    }
    if (i === k + 1) throw new Refuse('0A000', 'pgtenant could not locate a JOIN … ON condition')
    return [k + 1, i - 1]
  }

  /**
   * Put every top-level conjunct of `expr` (tokens a..b) that is not leakproof-safe behind the tenant
   * restriction of the ranges it references: `CASE WHEN <restrictions> THEN (<conjunct>) END`.
   * Conjuncts are the text between ANDs at the expression's own depth; an AND that starts no argument of
   * the tree's AND (BETWEEN … AND …) does not split.
   */
  guardConjuncts(expr: N, a: number, b: number, having = false): void {
    const t = this.toks
    const args: N[] = expr.BoolExpr?.boolop === 'AND_EXPR' ? expr.BoolExpr.args : [expr]
    const d = t[a].d
    const segs: { s: number; e: number; args: N[] }[] = []
    let start = a
    for (let i = a; i <= b + 1; i++) {
      if (i <= b && !(t[i].d === d && t[i].k === T_WORD && t[i].w === 'and' && this.kw(i))) continue
      segs.push({ s: start, e: i - 1, args: [] })
      start = i + 1
    }
    for (const arg of args) {
      const loc = this.minLoc(arg)
      let k = segs.length - 1
      while (k > 0 && t[segs[k].s].s > loc) k--
      segs[k].args.push(arg)
    }
    // a segment that starts no argument continues the one before it (BETWEEN x AND y)
    const merged: typeof segs = []
    for (const sg of segs) {
      if (sg.args.length === 0 && merged.length) merged[merged.length - 1].e = sg.e
      else merged.push(sg)
    }
    const columnsOf = (rv: N) => this.columnsOfRangeVar(rv)
    for (const sg of merged) {
      if (sg.e < sg.s || sg.args.length === 0) throw new Refuse('0A000', 'pgtenant could not split a condition into its conjuncts')
      let safe = true
      const refs = new Set<RangeInfo>()
      for (const arg of sg.args) {
        const f = conjunctFacts(arg, this.levels, columnsOf)
        if (!f.safe) safe = false
        f.refs.forEach((r) => refs.add(r))
      }
      if (safe) continue
      const guard = this.guardOf(refs)
      if (!guard.length) continue
      const when: Part[] = having ? ['coalesce(bool_and(', ...guard, '), true)'] : guard
      this.insert(t[sg.s].s, ['CASE WHEN ', ...when, ' THEN ('], 1)
      this.insert(t[sg.e].e, [') END'], -1)
    }
  }

  /** The restriction of the tenant ranges in `refs`, NULL-extended rows admitted for nullable ones. */
  guardOf(refs: Set<RangeInfo>): Part[] {
    const out: Part[] = []
    for (const r of refs) {
      if (!r.tenant) continue
      if (r.tenantRef === null) throw new Refuse('0A000', `pgtenant cannot order a condition behind the tenant restriction of "${r.name}" (a column alias list hides its tenant column)`)
      if (out.length) out.push(' AND ')
      if (r.nullable) out.push(`(${r.tenantRef} = `, TENANT, ` OR ${r.tenantRef} IS NULL)`)
      else out.push(`${r.tenantRef} = `, TENANT)
    }
    return out
  }

  columnsOfRangeVar(rv: N): readonly string[] | null {
    const f = this.ctx.facts.columns
    if (!f) return null
    if (rv.schemaname) return f.get(`${rv.schemaname}.${rv.relname}`) ?? null
    for (const sch of ['pg_catalog', ...this.ctx.searchPath]) {
      const c = f.get(`${sch}.${rv.relname}`)
      if (c) return c
    }
    return null
  }

  /**
   * End a sub-select (derived table, CTE, IN/ANY sub-select) that reads tenant rows with OFFSET 0: the
   * planner then neither pulls it up nor pushes an outer condition into it, so an outer condition on
   * its columns (which may be expressions over another tenant's rows) runs after its own restriction.
   */
  fenceSubselect(sel: N): void {
    if (this.ctx.mode !== 'tenant' || sel.limitCount || sel.limitOffset || sel.valuesLists) return
    const t = this.toks
    const first = this.tokAt(this.minLoc(sel))
    const last = this.tokAt(this.maxLoc(sel))
    // the innermost parenthesis around the whole sub-select
    let depth = t[first].d
    for (let k = first - 1; k >= 0 && depth > 0; k--) {
      if (t[k].k !== T_PUNCT || t[k].w !== '(' || t[k].d !== depth - 1) continue
      depth--
      const { close } = this.parenList(k)
      if (close > last) {
        this.insert(t[close - 1].e, [' OFFSET 0'], 5)
        return
      }
    }
    throw new Refuse('0A000', 'pgtenant could not locate the end of a sub-select')
  }

  /** Largest location (char index) in a subtree. */
  maxLoc(n: N): number {
    let best = -1
    const visit = (x: N) => {
      if (x === null || typeof x !== 'object') return
      if (Array.isArray(x)) {
        for (const y of x) visit(y)
        return
      }
      for (const k in x) {
        const v = x[k]
        if (k === 'location' && typeof v === 'number') {
          if (v > best) best = v
        } else if (typeof v === 'object') visit(v)
      }
    }
    visit(n)
    if (best < 0) throw new Refuse('0A000', 'pgtenant could not locate an expression in the statement')
    return this.c(best)
  }

  applyPlacement(pl: Placement, anchor: number, whereClause: N, update = false): void {
    for (const [join, preds] of pl.on) this.addToOn(join, preds)
    if (pl.where.length) {
      const sc = update ? this.scanDml(anchor) : this.scanSelect(anchor)
      if (whereClause && nodeType(whereClause) === 'CurrentOfExpr') return // WHERE CURRENT OF: the cursor's own query was restricted
      this.addToWhere(sc, pl.where, !!whereClause)
    }
  }

  addToWhere(sc: ClauseScan, preds: Part[][], hasWhere: boolean): void {
    const t = this.toks
    const stop = sc.after >= 0 ? sc.after : sc.end
    const joined = joinPreds(preds)
    if (sc.where >= 0) {
      if (!hasWhere) throw new Refuse('0A000', 'pgtenant could not match the WHERE clause')
      if (sc.where + 1 >= stop) throw new Refuse('0A000', 'pgtenant could not locate the WHERE expression')
      this.insert(t[sc.where + 1].s, ['('])
      this.insert(t[stop - 1].e, [') AND ', ...joined])
    } else {
      if (hasWhere) throw new Refuse('0A000', 'pgtenant could not locate the WHERE keyword')
      this.insert(t[stop - 1].e, [' WHERE ', ...joined])
    }
  }

  addToOn(join: N, preds: Part[][]): void {
    const t = this.toks
    const [a, b] = this.onExtent(join)
    this.insert(t[a].s, ['('])
    this.insert(t[b].e, [') AND ', ...joinPreds(preds)])
  }

  scanSelect(a: number): ClauseScan {
    return this.scanLevel(a, (r, i, w) => {
      if (w === 'from') {
        if (r.from < 0 && r.where < 0 && r.after < 0 && !this.isWord(i - 1, 'distinct')) r.from = i
      } else if (w === 'where') {
        if (r.where < 0 && r.after < 0) r.where = i
      } else if (SELECT_AFTER_WHERE.has(w)) {
        if (!(w === 'group' && this.isWord(i - 1, 'within')) && r.after < 0) r.after = i
      } else if (SELECT_END.has(w) || (w === 'on' && this.isWord(i + 1, 'conflict'))) return true
      return false
    })
  }

  /** Clause scan for UPDATE/DELETE from the target relation's token. */
  scanDml(a: number): ClauseScan {
    return this.scanLevel(a, (r, i, w) => {
      if (w === 'where' && r.where < 0) r.where = i
      return w === 'returning'
    })
  }

  /**
   * Walks the keywords at token a's nesting depth until the depth closes, a `;`, or `visit`
   * says the clause ends there (r.end = that token).
   */
  private scanLevel(a: number, visit: (r: ClauseScan, i: number, w: string) => boolean): ClauseScan {
    const t = this.toks
    const d = t[a].d
    const r: ClauseScan = { from: -1, where: -1, after: -1, end: t.length }
    for (let i = a; i < t.length; i++) {
      const x = t[i]
      if (x.d < d || (x.d === d && x.k === T_PUNCT && x.w === ';')) {
        r.end = i
        break
      }
      if (x.d > d) continue
      const w = this.kw(i)
      if (w && visit(r, i, w)) {
        r.end = i
        break
      }
    }
    return r
  }

  fromItem(item: N, scope: Scope | null, pl: Placement, nullable: N | null, derive: boolean): void {
    const type = nodeType(item)
    const v = item[type]
    switch (type) {
      case 'RangeVar': {
        const r = this.resolve(v, scope, false)
        const name: string = v.alias?.aliasname ?? v.relname
        if (r.kind !== 'tenant') {
          pl.ranges.push({ name, tenant: false, table: r.kind !== 'cte', tenantRef: null, nullable: false, columns: r.kind === 'cte' ? null : (this.ctx.facts.columns?.get(r.key) ?? null) })
          return
        }
        const qual = quoteIdent(name)
        const pred: Part[] = [`${qual}.${quoteIdent(r.col!)} = `, TENANT]
        pl.ranges.push(this.tenantRange(v, r, !!nullable || derive || !!v.alias?.colnames))
        if (derive || v.alias?.colnames) this.deriveTable(v, r.col!)
        else if (nullable) pl.addOn(nullable, pred)
        else pl.where.push(pred)
        return
      }
      case 'JoinExpr': {
        this.walkExpr(v.quals, scope)
        if (v.quals) pl.joins.push(v)
        if (v.alias) pl.ranges.push({ name: v.alias.aliasname, tenant: false, table: false, tenantRef: null, nullable: false, columns: null })
        const d = derive || !!v.alias
        const jt = v.jointype
        if (jt === 'JOIN_INNER') {
          this.fromItem(v.larg, scope, pl, nullable, d)
          this.fromItem(v.rarg, scope, pl, nullable, d)
        } else if (jt === 'JOIN_LEFT' || jt === 'JOIN_RIGHT') {
          const hasOn = !!v.quals
          const [keep, opt] = jt === 'JOIN_LEFT' ? [v.larg, v.rarg] : [v.rarg, v.larg]
          this.fromItem(keep, scope, pl, nullable, d)
          this.fromItem(opt, scope, pl, hasOn ? v : nullable, d || !hasOn)
        } else {
          this.fromItem(v.larg, scope, pl, nullable, true)
          this.fromItem(v.rarg, scope, pl, nullable, true)
        }
        return
      }
      case 'RangeSubselect': {
        const before = this.tenantRefs
        this.walkSelect(v.subquery.SelectStmt, scope)
        if (this.tenantRefs !== before || this.guarding()) this.fenceSubselect(v.subquery.SelectStmt)
        pl.ranges.push({ name: v.alias?.aliasname ?? '', tenant: false, table: false, tenantRef: null, nullable: false, columns: null })
        return
      }
      case 'RangeFunction':
        this.walkExpr(v.functions, scope)
        pl.ranges.push({ name: v.alias?.aliasname ?? funcName(v.functions?.[0]?.List?.items?.[0]?.FuncCall ?? {}).name, tenant: false, table: false, tenantRef: null, nullable: false, columns: null })
        return
      case 'RangeTableSample': {
        const rv = v.relation.RangeVar
        if (derive || rv.alias?.colnames) {
          const r = this.resolve(rv, scope, false)
          if (r.kind === 'tenant') throw new Refuse('0A000', `TABLESAMPLE on tenant table "${r.key}" in this join position is not supported`)
        } else this.fromItem(v.relation, scope, pl, nullable, false)
        this.walkExpr([v.args, v.repeatable], scope)
        return
      }
      default:
        // RangeTableFunc (XMLTABLE), JsonTable: expressions only
        this.walkExpr(v, scope)
    }
  }

  /** Token range [first, last] of a MERGE … ON condition (up to its first WHEN). */
  mergeOnExtent(m: N): [number, number] {
    const t = this.toks
    const q = this.tokAt(this.minLoc(m.joinCondition))
    let k = q - 1
    while (k >= 0 && t[k].w === '(' && t[k].k === T_PUNCT) k--
    if (!this.isWord(k, 'on')) throw new Refuse('0A000', 'pgtenant could not locate the MERGE … ON condition')
    const d = t[k].d
    let i = k + 1
    while (i < t.length && !(t[i].d === d && this.isWord(i, 'when')) && t[i].d >= d) i++
    return [k + 1, i - 1]
  }

  /** The range of an UPDATE/DELETE/MERGE target. */
  targetRange(rv: N, r: Resolved): RangeInfo {
    if (r.kind === 'tenant') return this.tenantRange(rv, r, false)
    return { name: rv.alias?.aliasname ?? rv.relname, tenant: false, table: true, tenantRef: null, nullable: false, columns: this.ctx.facts.columns?.get(r.key) ?? null }
  }

  /** Evaluation order for an UPDATE/DELETE: its joins' ON and its WHERE. */
  guardDml(pl: Placement, where: N, relTok: number): void {
    if (!this.guarding()) return
    for (const join of pl.joins) this.guardConjuncts(join.quals, ...this.onExtent(join))
    if (where && nodeType(where) !== 'CurrentOfExpr') this.guardConjuncts(where, ...this.whereExtent(relTok, true))
  }

  /** The guard's view of a tenant range: its tenant column as the range exposes it (renamed by a column alias list). */
  tenantRange(rv: N, r: Resolved, nullable: boolean): RangeInfo {
    const name: string = rv.alias?.aliasname ?? rv.relname
    const cols = this.ctx.facts.columns?.get(r.key) ?? null
    let col: string | null = r.col!
    const aliases: N[] | undefined = rv.alias?.colnames
    if (aliases) {
      const i = cols ? cols.indexOf(col) : -1
      col = i < 0 ? null : i < aliases.length ? (aliases[i].String?.sval ?? null) : col
    }
    return { name, tenant: true, table: true, tenantRef: col === null ? null : `${quoteIdent(name)}.${quoteIdent(col)}`, nullable, columns: aliases ? null : cols }
  }

  /** Replace `[ONLY] name [alias]` by `(SELECT * FROM [ONLY] name WHERE col = 'T') alias`. */
  deriveTable(rv: N, col: string): void {
    const t = this.toks
    const i = this.tokAt(this.c(rv.location))
    let start = i
    let paren = false
    if (this.isWord(i - 1, 'only')) start = i - 1
    else if (t[i - 1]?.w === '(' && this.isWord(i - 2, 'only')) {
      start = i - 2
      paren = true
    }
    let j = this.nameEnd(i)
    if (paren) j++
    if (t[j + 1]?.w === '*' && t[j + 1].k === T_OP) j++
    const alias = rv.alias ? '' : ' ' + quoteIdent(rv.relname)
    if (!rv.alias && rv.schemaname) this.derivedQualified.add(`${rv.schemaname}.${rv.relname}`)
    this.insert(t[start].s, ['(SELECT * FROM '])
    this.insert(t[j].e, [` WHERE ${quoteIdent(col)} = `, TENANT, ')' + alias])
  }

  /** Last token of a possibly qualified name starting at token i. */
  nameEnd(i: number): number {
    const t = this.toks
    let j = i
    while (t[j + 1]?.w === '.' && t[j + 1].k === T_PUNCT) j += 2
    return j
  }

  // ---- statements -------------------------------------------------------------------------

  /** Bodies allowed inside CTEs, PREPARE, EXPLAIN, DECLARE, COPY (query). */
  walkStmtBody(n: N, scope: Scope | null): void {
    const type = nodeType(n)
    const v = n[type]
    switch (type) {
      case 'SelectStmt':
        return this.walkSelect(v, scope)
      case 'InsertStmt':
        return this.walkInsert(v, scope)
      case 'UpdateStmt':
        return this.walkUpdate(v, scope)
      case 'DeleteStmt':
        return this.walkDelete(v, scope)
      case 'MergeStmt':
        return this.walkMerge(v, scope)
      default:
        throw new Refuse('42501', `${type.replace(/Stmt$/, '')} is not allowed here for tenant sessions`)
    }
  }

  typeOf(key: string): string {
    return this.ctx.facts.tenantColumnTypes?.get(key) ?? 'text'
  }

  /**
   * The value for a tenant column at tokens [a, b]: a plain literal is checked against the session
   * tenant before sending (on every use of the plan, since the literal and the tenant vary), DEFAULT
   * becomes the tenant, and anything else (parameters, expressions, EXCLUDED.col, sub-selects) is
   * wrapped in an execution-time guard:
   *
   *   CASE (<expr>)::<type> WHEN '<tenant>' THEN '<tenant>'::<type>
   *     ELSE ((<expr>)::<type>::text || ' pgtenant: <col> must equal the session tenant')::int4::text::<type> END
   *
   * Why this shape: PostgreSQL 15 has no error() function, so the ELSE branch raises through a
   * failing cast whose message carries our text: `invalid input syntax for type integer: "globex
   * pgtenant: company_id must equal the session tenant"` (SQLSTATE 22P02, the statement writes
   * nothing). The text can never be a valid integer, and it depends on <expr>, so the planner cannot
   * fold it into an error while the branch is not taken (a constant '…'::int4 would raise at parse
   * time). A NULL value yields NULL (NULL || text is NULL), exactly what the statement does on the
   * tenant's own database (a NOT NULL tenant column then fails with 23502). `<type>` is the column's
   * type (SchemaFacts.tenantColumnTypes, from format_type), so the expression keeps the column type
   * and a `$n` parameter is inferred as that type. The simple CASE evaluates <expr> once on the good
   * path; the ELSE branch evaluates it again only to build the error (a volatile <expr> can then at
   * worst yield NULL, never another tenant's value).
   */
  tenantValue(node: N, a: number, b: number, key: string, col: string, what: string): void {
    const t = this.toks
    const message = `${what} "${key}": column "${col}" must equal the session tenant`
    const cv = constValue(node)
    if (typeof cv === 'string' && a === b) {
      const li = this.litIndex(t[a].s, t[a].e)
      if (li >= 0) {
        const lt = this.text.slice(t[a].s, t[a].e)
        const dec = decodeSimpleLiteral(lt, this.lits.kinds[li])
        if (dec !== null && dec === cv) {
          this.checks.push({ lit: li, message, stmt: this.stmtIndex })
          return
        }
      }
    }
    if (nodeType(node) === 'SetToDefault') {
      this.edit(t[a].s, t[b].e, [TENANT])
      return
    }
    const type = this.typeOf(key)
    const expr = this.text.slice(t[a].s, t[b].e)
    // the expression's text is repeated in the ELSE branch: a plan whose copy holds a literal cannot be
    // shared with texts that differ in that literal
    const sp = this.lits.spans
    for (let k = 0; k < sp.length; k += 2) if (sp[k] >= t[a].s && sp[k + 1] <= t[b].e) this.normalizable = false
    this.insert(t[a].s, ['CASE ('])
    this.insert(t[b].e, [`)::${type} WHEN `, TENANT, ' THEN ', TENANT, `::${type} ELSE ${guardRaise(expr, type, col)} END`])
  }

  litIndex(s: number, e: number): number {
    const sp = this.lits.spans
    let lo = 0
    let hi = sp.length / 2 - 1
    while (lo <= hi) {
      const m = (lo + hi) >> 1
      if (sp[2 * m] < s) lo = m + 1
      else if (sp[2 * m] > s) hi = m - 1
      else return sp[2 * m + 1] === e ? m : -1
    }
    return -1
  }

  /** Items of a parenthesised, comma-separated list whose "(" is token `open`: [first, last] token pairs, and the ")" index. */
  parenList(open: number): { items: [number, number][]; close: number } {
    const t = this.toks
    const d = t[open].d
    const items: [number, number][] = []
    let start = open + 1
    let i = open + 1
    for (; i < t.length; i++) {
      const x = t[i]
      if (x.d === d && x.w === ')') break
      if (x.d === d + 1 && x.k === T_PUNCT && x.w === ',') {
        items.push([start, i - 1])
        start = i + 1
      }
    }
    if (i >= t.length) throw new Refuse('0A000', 'pgtenant could not match a parenthesised list')
    if (i > start || items.length) items.push([start, i - 1])
    return { items, close: i }
  }

  /** Expression range starting at token a: up to a "," at the same depth or a stop keyword. */
  exprRange(a: number, stops: Set<string>): number {
    const t = this.toks
    const d = t[a].d
    let i = a
    for (; i < t.length; i++) {
      const x = t[i]
      if (x.d < d) break
      if (x.d > d) continue
      if (x.k === T_PUNCT && (x.w === ',' || x.w === ';')) break
      const w = this.kw(i)
      if (w && stops.has(w) && i > a) break
    }
    return i - 1
  }

  /** SET targets (UPDATE, ON CONFLICT DO UPDATE, MERGE UPDATE): the tenant column may only be set to the tenant. */
  setTargets(targets: N[], key: string, col: string, stops: Set<string>, what: string): void {
    const t = this.toks
    for (const rt of targets) {
      const r = rt.ResTarget
      if (r.name !== col) continue
      if (r.indirection) throw new Refuse('42501', `${what} "${key}": the tenant column "${col}" cannot be assigned through a subscript or field`)
      const val = r.val
      if (val?.MultiAssignRef) {
        const src = val.MultiAssignRef.source
        if (!src.RowExpr) throw new Refuse('0A000', `${what} "${key}": assigning the tenant column "${col}" from a sub-SELECT is not supported`)
        const open = this.tokAt(this.c(src.RowExpr.location))
        let o = open
        if (this.isWord(o, 'row')) o++
        const { items } = this.parenList(o)
        const k = val.MultiAssignRef.colno - 1
        const node = src.RowExpr.args[k]
        this.tenantValue(node, items[k][0], items[k][1], key, col, what)
        continue
      }
      // name [= value]: find "=" after the column name
      let i = this.tokAt(this.c(r.location))
      while (i < t.length && !(t[i].k === T_OP && t[i].w === '=')) i++
      const a = i + 1
      const b = this.exprRange(a, stops)
      this.tenantValue(val, a, b, key, col, what)
    }
  }

  walkInsert(ins: N, scope: Scope | null): void {
    scope = this.withScope(ins.withClause, scope)
    const rv = ins.relation
    const r = this.resolve(rv, null, true)
    const sel = ins.selectStmt?.SelectStmt
    // the SELECT first: its edits then come before ours at the same position (a wrap closes after them)
    if (sel) this.walkSelect(sel, scope)
    if (r.kind === 'tenant') this.insertTenant(ins, rv, r, sel)
    const oc = ins.onConflictClause
    if (oc) this.walkExpr([oc.infer, oc.targetList, oc.whereClause], scope)
    this.walkExpr(ins.returningClause ?? ins.returningList, scope)
  }

  insertTenant(ins: N, rv: N, r: Resolved, sel: N): void {
    const t = this.toks
    const key = r.key
    const col = r.col!
    const qcol = quoteIdent(col)
    const relTok = this.tokAt(this.c(rv.location))
    let j = this.nameEnd(relTok)
    if (this.isWord(j + 1, 'as')) j += 2
    let cols: string[] | null = ins.cols ? ins.cols.map((x: N) => x.ResTarget.name) : null
    let generated = false
    if (ins.cols) {
      for (const x of ins.cols) if (x.ResTarget.name === col && x.ResTarget.indirection) throw new Refuse('42501', `INSERT into "${key}": the tenant column "${col}" cannot be assigned through a subscript or field`)
    }
    if (!cols && sel) {
      const known = this.ctx.facts.columns?.get(key)
      if (!known)
        throw new Refuse('0A000', `INSERT into tenant table "${key}" needs a column list: pgtenant cannot see column positions`, `write INSERT INTO ${key} (col, …) VALUES …`)
      let n: number
      if (sel.valuesLists) n = sel.valuesLists[0].List.items.length
      else {
        let s = sel
        while (s.op && s.op !== 'SETOP_NONE') s = s.larg
        const tl: N[] = s.targetList ?? []
        if (tl.some((x) => JSON.stringify(x).includes('A_Star')))
          throw new Refuse('0A000', `INSERT into tenant table "${key}" from SELECT * needs a column list`)
        n = tl.length
      }
      if (n > known.length) throw new Refuse('0A000', `INSERT into "${key}" has more values than the table has columns`)
      cols = known.slice(0, n)
      generated = true
    }
    const idx = cols ? cols.indexOf(col) : -1
    const oc = ins.onConflictClause
    if (!sel) {
      // DEFAULT VALUES
      let i = j + 1
      while (i < t.length && !(this.isWord(i, 'default') && this.isWord(i + 1, 'values'))) i++
      if (i >= t.length) throw new Refuse('0A000', 'pgtenant could not locate DEFAULT VALUES')
      this.edit(t[i].s, t[i + 1].e, [`(${qcol}) VALUES (`, TENANT, ')'])
    } else if (idx < 0) {
      // add the tenant column and the tenant value
      if (generated) this.insert(t[j].e, [` (${[...cols!, col].map(quoteIdent).join(', ')})`])
      else {
        const open = j + 1
        if (t[open]?.w !== '(') throw new Refuse('0A000', 'pgtenant could not locate the INSERT column list')
        const { close } = this.parenList(open)
        this.insert(t[close - 1].e, [`, ${qcol}`])
      }
      const typed = this.ctx.facts.tenantColumnTypes?.get(key)
      if (sel.valuesLists) {
        // rows: "(" at the VALUES keyword's depth
        const first = this.tokAt(this.minLoc(sel.valuesLists[0]))
        let v = first
        while (v >= 0 && !this.isWord(v, 'values')) v--
        if (v < 0) throw new Refuse('0A000', 'pgtenant could not locate VALUES')
        const d = t[v].d
        let rows = 0
        for (let i = v + 1; i < t.length && rows < sel.valuesLists.length; i++) {
          if (t[i].d === d && t[i].w === '(' && t[i].k === T_PUNCT) {
            const { close } = this.parenList(i)
            this.insert(t[close - 1].e, [', ', TENANT])
            rows++
            i = close
          } else if (t[i].d < d) break
        }
        if (rows !== sel.valuesLists.length) throw new Refuse('0A000', 'pgtenant could not locate every VALUES row')
      } else if (!sel.op || sel.op === 'SETOP_NONE') {
        const tl: N[] = sel.targetList ?? []
        if (!tl.length) throw new Refuse('0A000', 'INSERT … SELECT without a target list is not supported')
        const a = this.tokAt(this.c(tl[0].ResTarget.location))
        const sc = this.scanSelect(a)
        const stop = sc.from >= 0 ? sc.from : sc.where >= 0 ? sc.where : sc.after >= 0 ? sc.after : sc.end
        this.insert(t[stop - 1].e, [', ', TENANT, typed ? `::${typed}` : ''])
      } else {
        // set operation: wrap it
        const a = (() => {
          let s = sel
          while (s.op && s.op !== 'SETOP_NONE') s = s.larg
          return this.tokAt(this.minLoc([s.targetList, s.valuesLists, s.fromClause]))
        })()
        // walk back to the first token of the SELECT (after the column list / relation)
        const colsEnd = generated ? j : this.parenList(j + 1).close
        let start = colsEnd + 1
        if (start > a) start = a
        const d = t[start].d
        let end = start
        for (let i = start; i < t.length; i++) {
          const x = t[i]
          if (x.d < d || (x.d === d && x.w === ';' && x.k === T_PUNCT)) break
          if (x.d === d && (this.kw(i) === 'returning' || (this.kw(i) === 'on' && this.isWord(i + 1, 'conflict')))) break
          end = i
        }
        this.insert(t[start].s, ['SELECT *, ', TENANT, `${typed ? `::${typed}` : ''} FROM (`], -1)
        this.insert(t[end].e, [') AS pgtenant_src'])
      }
    } else {
      // the tenant column is given: every value must equal the tenant
      if (sel.valuesLists) {
        const first = this.tokAt(this.minLoc(sel.valuesLists[0]))
        let v = first
        while (v >= 0 && !this.isWord(v, 'values')) v--
        if (v < 0) throw new Refuse('0A000', 'pgtenant could not locate VALUES')
        const d = t[v].d
        let row = 0
        for (let i = v + 1; i < t.length && row < sel.valuesLists.length; i++) {
          if (t[i].d === d && t[i].w === '(' && t[i].k === T_PUNCT) {
            const { items, close } = this.parenList(i)
            const node = sel.valuesLists[row].List.items[idx]
            if (!items[idx]) throw new Refuse('0A000', 'pgtenant could not match a VALUES row')
            this.tenantValue(node, items[idx][0], items[idx][1], key, col, 'INSERT into')
            row++
            i = close
          } else if (t[i].d < d) break
        }
        if (row !== sel.valuesLists.length) throw new Refuse('0A000', 'pgtenant could not locate every VALUES row')
      } else if ((!sel.op || sel.op === 'SETOP_NONE') && sel.targetList?.[idx] && !JSON.stringify(sel.targetList[idx]).includes('A_Star')) {
        const tl: N[] = sel.targetList
        if (tl.length !== cols!.length) throw new Refuse('0A000', `INSERT into "${key}": SELECT list does not match the column list`)
        const a0 = this.tokAt(this.c(tl[0].ResTarget.location))
        // targets are comma separated at the SELECT's depth
        const d = t[a0].d
        const starts = [a0]
        const sc = this.scanSelect(a0)
        const stop = sc.from >= 0 ? sc.from : sc.where >= 0 ? sc.where : sc.after >= 0 ? sc.after : sc.end
        for (let i = a0; i < stop; i++) if (t[i].d === d && t[i].k === T_PUNCT && t[i].w === ',') starts.push(i + 1)
        if (starts.length !== tl.length) throw new Refuse('0A000', 'pgtenant could not match the SELECT list')
        const a = starts[idx]
        let b = idx + 1 < starts.length ? starts[idx + 1] - 2 : stop - 1
        if (tl[idx].ResTarget.name) {
          // "expr AS name" or "expr name": guard only the expression
          b = this.isWord(b - 1, 'as') ? b - 2 : b - 1
          if (b < a) throw new Refuse('0A000', 'pgtenant could not match the SELECT list')
        }
        this.tenantValue(tl[idx].ResTarget.val, a, b, key, col, 'INSERT into')
      } else
        throw new Refuse('0A000', `INSERT into "${key}" … SELECT with the tenant column "${col}" in the column list is only supported for a plain SELECT list: omit the column and pgtenant adds it`)
    }
    if (oc && oc.action === 'ONCONFLICT_UPDATE') {
      const qual = quoteIdent(rv.alias?.aliasname ?? rv.relname)
      this.setTargets(oc.targetList ?? [], key, col, new Set(['where', 'returning']), 'INSERT … ON CONFLICT DO UPDATE of')
      // WHERE of the DO UPDATE: after "DO"
      let i = this.tokAt(this.c(oc.location))
      const d = t[i].d
      while (i < t.length && !(t[i].d === d && this.isWord(i, 'do'))) i++
      let where = -1
      let end = t.length
      for (let k = i; k < t.length; k++) {
        const x = t[k]
        if (x.d < d) {
          end = k
          break
        }
        if (x.d > d) continue
        if (x.k === T_PUNCT && x.w === ';') {
          end = k
          break
        }
        const w = this.kw(k)
        if (w === 'where' && where < 0) where = k
        else if (w === 'returning') {
          end = k
          break
        }
      }
      this.addToWhere({ from: -1, where, after: -1, end }, [[`${qual}.${qcol} = `, TENANT]], !!oc.whereClause)
      if (oc.whereClause && this.ctx.mode === 'tenant') {
        // the conflicting row may be another tenant's (a key unique across tenants): order the client's condition behind the restriction
        this.levels.push([this.tenantRange(rv, r, false), { name: 'excluded', tenant: false, table: true, tenantRef: null, nullable: false, columns: null }])
        try {
          this.guardConjuncts(oc.whereClause, where + 1, end - 1)
        } finally {
          this.levels.pop()
        }
      }
    }
  }

  walkUpdate(up: N, scope: Scope | null): void {
    scope = this.withScope(up.withClause, scope)
    const rv = up.relation
    const r = this.resolve(rv, null, true)
    const pl = new Placement()
    const relTok = this.tokAt(this.c(rv.location))
    if (r.kind === 'tenant') {
      pl.where.push([`${quoteIdent(rv.alias?.aliasname ?? rv.relname)}.${quoteIdent(r.col!)} = `, TENANT])
      this.setTargets(up.targetList ?? [], r.key, r.col!, new Set(['from', 'where', 'returning']), 'UPDATE of')
    }
    pl.ranges.push(this.targetRange(rv, r))
    this.levels.push(pl.ranges)
    try {
      for (const item of up.fromClause ?? []) this.fromItem(item, scope, pl, null, false)
      this.walkExpr([up.targetList, up.whereClause, up.returningClause ?? up.returningList], scope)
      this.guardDml(pl, up.whereClause, relTok)
    } finally {
      this.levels.pop()
    }
    if (r.kind === 'tenant' && up.whereClause && nodeType(up.whereClause) === 'CurrentOfExpr') {
      // WHERE CURRENT OF cannot take another condition: the cursor's own query was restricted, and
      // as a second line (a WITH HOLD cursor may outlive a tenant change) the row's tenant column is
      // re-assigned through the guard, which fails for another tenant's row
      if (up.fromClause) throw new Refuse('0A000', `UPDATE of tenant table "${r.key}" … FROM … WHERE CURRENT OF is not supported`)
      const col = r.col!
      if (!(up.targetList ?? []).some((x: N) => x.ResTarget?.name === col)) {
        const sc = this.scanDml(relTok)
        if (sc.where < 1) throw new Refuse('0A000', 'pgtenant could not locate WHERE CURRENT OF')
        const type = this.typeOf(r.key)
        const qcol = quoteIdent(col)
        this.insert(this.toks[sc.where - 1].e, [`, ${qcol} = CASE (${qcol})::${type} WHEN `, TENANT, ' THEN ', TENANT, `::${type} ELSE ${guardRaise(qcol, type, col)} END`])
      }
      return
    }
    if (!pl.empty()) this.applyPlacement(pl, relTok, up.whereClause, true)
  }

  walkDelete(del: N, scope: Scope | null): void {
    scope = this.withScope(del.withClause, scope)
    const rv = del.relation
    const r = this.resolve(rv, null, true)
    const pl = new Placement()
    const relTok = this.tokAt(this.c(rv.location))
    if (r.kind === 'tenant') pl.where.push([`${quoteIdent(rv.alias?.aliasname ?? rv.relname)}.${quoteIdent(r.col!)} = `, TENANT])
    if (r.kind === 'tenant' && del.whereClause && nodeType(del.whereClause) === 'CurrentOfExpr')
      throw new Refuse('0A000', `DELETE from tenant table "${r.key}" … WHERE CURRENT OF is not supported: delete by key`)
    pl.ranges.push(this.targetRange(rv, r))
    this.levels.push(pl.ranges)
    try {
      for (const item of del.usingClause ?? []) this.fromItem(item, scope, pl, null, false)
      this.walkExpr([del.whereClause, del.returningClause ?? del.returningList], scope)
      this.guardDml(pl, del.whereClause, relTok)
    } finally {
      this.levels.pop()
    }
    if (!pl.empty()) this.applyPlacement(pl, relTok, del.whereClause, true)
  }

  walkMerge(m: N, scope: Scope | null): void {
    scope = this.withScope(m.withClause, scope)
    const rv = m.relation
    const r = this.resolve(rv, null, true)
    const t = this.toks
    for (const wc of m.mergeWhenClauses ?? []) {
      const w = wc.MergeWhenClause
      if (w.matchKind === 'MERGE_WHEN_NOT_MATCHED_BY_SOURCE' && r.kind === 'tenant')
        throw new Refuse('0A000', `MERGE into tenant table "${r.key}" with WHEN NOT MATCHED BY SOURCE is not supported`)
    }
    // source: a tenant table becomes a filtered derived table (its rows must not even be seen as unmatched)
    const src = m.sourceRelation
    const st = nodeType(src)
    const ranges: RangeInfo[] = [this.targetRange(rv, r)]
    if (st === 'RangeVar') {
      const sr = this.resolve(src.RangeVar, scope, false)
      if (sr.kind === 'tenant') {
        this.deriveTable(src.RangeVar, sr.col!)
        ranges.push(this.tenantRange(src.RangeVar, sr, true))
      } else ranges.push({ name: src.RangeVar.alias?.aliasname ?? src.RangeVar.relname, tenant: false, table: sr.kind !== 'cte', tenantRef: null, nullable: false, columns: null })
    } else {
      const pl = new Placement()
      this.fromItem(src, scope, pl, null, true)
      if (!pl.empty()) throw new Refuse('0A000', 'MERGE with a join as source is not supported for tenant tables')
      ranges.push(...pl.ranges)
    }
    this.levels.push(ranges)
    try {
      this.walkExpr(m.joinCondition, scope)
      if (this.guarding()) this.guardConjuncts(m.joinCondition, ...this.mergeOnExtent(m))
    } finally {
      this.levels.pop()
    }
    if (r.kind === 'tenant') {
      const key = r.key
      const col = r.col!
      const qcol = quoteIdent(col)
      const qual = quoteIdent(rv.alias?.aliasname ?? rv.relname)
      // restrict the target in the join condition: another tenant's row then counts as NOT MATCHED,
      // exactly as on a database holding only this tenant's rows
      const q = this.tokAt(this.minLoc(m.joinCondition))
      let k = q - 1
      while (k >= 0 && t[k].w === '(' && t[k].k === T_PUNCT) k--
      if (!this.isWord(k, 'on')) throw new Refuse('0A000', 'pgtenant could not locate the MERGE … ON condition')
      const d = t[k].d
      let i = k + 1
      while (i < t.length && !(t[i].d === d && this.isWord(i, 'when')) && t[i].d >= d) i++
      this.insert(t[k + 1].s, ['('])
      this.insert(t[i - 1].e, [`) AND ${qual}.${qcol} = `, TENANT])
      for (const wc of m.mergeWhenClauses ?? []) {
        const w = wc.MergeWhenClause
        if (w.commandType === 'CMD_UPDATE') this.setTargets(w.targetList ?? [], key, col, new Set(['when', 'returning']), 'MERGE UPDATE of')
        else if (w.commandType === 'CMD_INSERT') {
          const cols: string[] = (w.targetList ?? []).map((x: N) => x.ResTarget.name)
          if (!w.targetList) throw new Refuse('0A000', `MERGE … INSERT into tenant table "${key}" needs a column list`)
          const idx = cols.indexOf(col)
          const open = this.tokAt(this.c(w.targetList[0].ResTarget.location)) - 1
          const cl = this.parenList(open)
          if (!w.values) {
            // INSERT DEFAULT VALUES
            throw new Refuse('0A000', `MERGE … INSERT DEFAULT VALUES into tenant table "${key}" is not supported`)
          }
          let vo = cl.close + 1
          while (vo < t.length && !(t[vo].w === '(' && t[vo].k === T_PUNCT)) vo++
          const vl = this.parenList(vo)
          if (idx < 0) {
            this.insert(t[cl.close - 1].e, [`, ${qcol}`])
            this.insert(t[vl.close - 1].e, [', ', TENANT])
          } else this.tenantValue(w.values[idx], vl.items[idx][0], vl.items[idx][1], key, col, 'MERGE INSERT into')
        }
      }
    }
    for (const wc of m.mergeWhenClauses ?? []) {
      const w = wc.MergeWhenClause
      this.walkExpr([w.condition, w.targetList, w.values], scope)
    }
    this.walkExpr(m.returningClause ?? m.returningList, scope)
  }

  copy(cp: N): void {
    if (cp.is_program || cp.filename) throw new Refuse('42501', 'COPY to or from a server file or program is not allowed for tenant sessions')
    if (cp.query) {
      if (cp.is_from) throw new Refuse('0A000', 'COPY (query) FROM is not valid')
      this.walkStmtBody(cp.query, null)
      return
    }
    const rv = cp.relation
    const r = this.resolve(rv, null, !!cp.is_from)
    if (r.kind !== 'tenant') return
    if (cp.is_from)
      throw new Refuse('0A000', `COPY FROM into tenant table "${r.key}" is not supported: use INSERT, or a bypass user for bulk loads`)
    const t = this.toks
    const i = this.tokAt(this.c(rv.location))
    let j = this.nameEnd(i)
    let cols = '*'
    if (cp.attlist) {
      const open = j + 1
      const { close } = this.parenList(open)
      cols = this.text.slice(t[open + 1].s, t[close - 1].e)
      j = close
    }
    const name = this.text.slice(t[i].s, t[this.nameEnd(i)].e)
    this.edit(t[i].s, t[j].e, [`(SELECT ${cols} FROM ${name} WHERE ${quoteIdent(r.col!)} = `, TENANT, ')'])
  }

  // ---- top level ------------------------------------------------------------------------------

  /** Analyse one top-level statement; returns the non-template part of its plan. */
  statement(n: N, range: [number, number], index: number): Omit<CompiledStmt, 'tpl'> {
    this.relations = new Set()
    this.touchesTenant = false
    this.firstTenantTable = null
    this.stmtIndex = index
    this.derivedQualified.clear()
    const type = nodeType(n)
    const v = n[type]
    const command = this.commandOf(type, v, range)
    const base = (extra: Partial<CompiledStmt> = {}): Omit<CompiledStmt, 'tpl'> => {
      if (this.derivedQualified.size) this.unqualifyRefs(n)
      return this.plain(command, extra)
    }
    const tenantMode = this.ctx.mode === 'tenant'
    // session-level statements: the same in both modes
    switch (type) {
      case 'VariableSetStmt':
        return this.variableSet(v, range, base)
      case 'VariableShowStmt':
        this.normalizable = false
        if (lower(v.name ?? '') === this.setting) return { ...base(), kind: 'tenant', tenantCommand: { op: 'show' } }
        return base()
      case 'SelectStmt': {
        const tc = this.setConfigCommand(v)
        if (tc) return { ...base(), kind: 'tenant', tenantCommand: tc }
        const set = tenantMode ? this.sessionSetConfig(v) : null
        if (set) return base({ effect: set })
        break
      }
      case 'DiscardStmt':
        return base(v.target === 'DISCARD_ALL' ? { effect: { kind: 'discard_all' } } : {})
      case 'ListenStmt':
        return base({ effect: { kind: 'listen', channel: v.conditionname } })
      case 'DeallocateStmt':
        return base({ effect: { kind: 'deallocate', name: v.isall ? null : (v.name ?? null) } })
    }
    if (!tenantMode) {
      if (type === 'PrepareStmt') return base({ effect: { kind: 'prepare', name: v.name } })
      return base()
    }
    switch (type) {
      case 'SelectStmt':
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        this.walkStmtBody(n, null)
        return base()
      case 'ExplainStmt':
        this.explainBody(v.query)
        return base(v.query?.ExecuteStmt ? { effect: { kind: 'execute', name: v.query.ExecuteStmt.name } } : {})
      case 'PrepareStmt':
        this.walkStmtBody(v.query, null)
        return base({ effect: { kind: 'prepare', name: v.name } })
      case 'ExecuteStmt':
        this.walkExpr(v.params, null)
        return base({ effect: { kind: 'execute', name: v.name } })
      case 'DeclareCursorStmt':
        this.walkStmtBody(v.query, null)
        return base()
      case 'CopyStmt':
        this.copy(v)
        return base()
      case 'FetchStmt':
      case 'ClosePortalStmt':
      case 'TransactionStmt':
      case 'UnlistenStmt':
      case 'NotifyStmt':
      case 'ConstraintsSetStmt':
        return base()
      case 'CallStmt':
      case 'DoStmt':
        throw new Refuse('42501', `${command} is not allowed for tenant sessions: procedural code runs outside the tenant filter`)
      case 'TruncateStmt':
        throw new Refuse('42501', 'TRUNCATE is not allowed for tenant sessions: it would remove every tenant\'s rows')
      case 'LockStmt':
        throw new Refuse('42501', 'LOCK TABLE is not allowed for tenant sessions: it would block other tenants')
      default:
        throw new Refuse('42501', `${command} is not allowed for tenant sessions (DDL and administrative statements need a bypass user)`)
    }
  }

  plain(command: string, extra: Partial<CompiledStmt>): Omit<CompiledStmt, 'tpl'> {
    return {
      kind: 'forward',
      command,
      touchesTenant: this.touchesTenant,
      firstTenantTable: this.firstTenantTable,
      relations: [...this.relations],
      ...extra,
    }
  }

  /**
   * `schema.table.col` column references to a table we turned into a derived table aliased `table`
   * would no longer resolve: drop their `schema.` (and `catalog.`) prefix. `table.col` resolves to the
   * same FROM item, since an unaliased `schema.table` is known by its bare name anyway.
   */
  unqualifyRefs(n: N): void {
    const t = this.toks
    const visit = (x: N) => {
      if (x === null || typeof x !== 'object') return
      if (Array.isArray(x)) {
        for (const y of x) visit(y)
        return
      }
      for (const k in x) {
        const v = x[k]
        if (k === 'ColumnRef') {
          const f: N[] = v.fields ?? []
          const names = f.map((y) => y.String?.sval ?? '*')
          const last = names.length - 1
          if (names.length >= 3 && this.derivedQualified.has(`${names[last - 2]}.${names[last - 1]}`) && v.location >= 0) {
            const i = this.tokAt(this.c(v.location))
            const skip = names.length === 4 ? 4 : 2
            if (t[i + skip]) this.edit(t[i].s, t[i + skip].s, [])
          }
        } else if (v && typeof v === 'object') visit(v)
      }
    }
    visit(n)
  }

  explainBody(q: N): void {
    const type = nodeType(q)
    if (type === 'ExecuteStmt') return this.walkExpr(q.ExecuteStmt.params, null)
    if (type === 'DeclareCursorStmt') return this.walkStmtBody(q.DeclareCursorStmt.query, null)
    if (type === 'CreateTableAsStmt') throw new Refuse('42501', 'EXPLAIN of CREATE TABLE AS is not allowed for tenant sessions')
    this.walkStmtBody(q, null)
  }

  commandOf(type: string, v: N, range: [number, number]): string {
    if (STMT_COMMAND[type] && v.valuesLists) return 'VALUES'
    const t = this.toks
    // first token at or after the statement start (which may be blank space or a comment)
    let lo = 0
    let hi = t.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (t[mid].e <= range[0]) lo = mid + 1
      else hi = mid
    }
    let i = lo
    while (t[i] && t[i].w === '(') i++
    const first = t[i]?.k === T_WORD ? t[i].w.toUpperCase() : ''
    if (first === 'WITH' || !first) return STMT_COMMAND[type] ?? (first || type.replace(/Stmt$/, '').toUpperCase())
    return first
  }

  setConfigCommand(sel: N): TenantCommand | null {
    const tl: N[] = sel.targetList ?? []
    if (tl.length !== 1 || sel.fromClause || sel.whereClause || sel.withClause || sel.groupClause || sel.havingClause || sel.sortClause) return null
    if (sel.limitCount || sel.limitOffset || sel.distinctClause || sel.intoClause || sel.lockingClause || sel.windowClause) return null
    const fc = tl[0].ResTarget?.val?.FuncCall
    if (!fc) return null
    const { schema, name } = funcName(fc)
    if (name !== 'set_config' || (schema && schema !== 'pg_catalog')) return null
    this.normalizable = false // the literal setting name decides what this statement is
    const args: N[] = fc.args ?? []
    if (args.length !== 3) return null
    const nm = constValue(args[0])
    if (typeof nm !== 'string' || lower(nm) !== this.setting) return null
    this.normalizable = false
    const val = constValue(args[1])
    const param: number | undefined = args[1]?.ParamRef?.number
    if (val === undefined && !param) throw new Refuse('0A000', `set_config('${this.ctx.setting}', …) needs a literal value or a parameter`)
    const loc = constValue(args[2])
    if (loc === undefined || loc === null) throw new Refuse('0A000', `set_config('${this.ctx.setting}', …) needs a literal is_local`)
    const b = parseBool(loc)
    if (b === null) throw new Refuse('0A000', `set_config('${this.ctx.setting}', …): is_local must be true or false`)
    if (param) return { op: 'set_config', value: null, local: b, valueParam: param }
    if (val !== null && val !== undefined && val.includes('\0')) throw new Refuse('42501', 'a tenant value cannot contain a NUL character')
    return { op: 'set_config', value: val ?? null, local: b }
  }

  /**
   * `SELECT set_config('name', 'value', false)` alone in a statement, for a setting other than the tenant:
   * a session-level change the proxy tracks and replays like `SET name = 'value'`. Null for any other shape.
   */
  sessionSetConfig(sel: N): SessionEffect | null {
    const tl: N[] = sel.targetList ?? []
    if (tl.length !== 1 || sel.fromClause || sel.whereClause || sel.withClause || sel.groupClause || sel.havingClause || sel.sortClause) return null
    if (sel.limitCount || sel.limitOffset || sel.distinctClause || sel.intoClause || sel.lockingClause || sel.windowClause || sel.valuesLists) return null
    const fc = tl[0].ResTarget?.val?.FuncCall
    if (!fc || fc.agg_star || fc.over || fc.agg_filter) return null
    const { schema, name } = funcName(fc)
    if (lower(name) !== 'set_config' || (schema && lower(schema) !== 'pg_catalog')) return null
    const args: N[] = fc.args ?? []
    if (args.length !== 3) return null
    const nm = constValue(args[0])
    const val = constValue(args[1])
    const local = constValue(args[2])
    if (typeof nm !== 'string' || typeof val !== 'string' || typeof local !== 'string' || parseBool(local) !== false) return null
    this.normalizable = false
    const n = lower(nm)
    const refusal = setConfigRefusal(n) ?? settingValueRefusal(n, val)
    if (refusal) throw new Refuse('42501', refusal)
    return { kind: 'set', name: n, valueSql: quoteLiteral(val) }
  }

  variableSet(v: N, range: [number, number], base: (e?: Partial<CompiledStmt>) => Omit<CompiledStmt, 'tpl'>): Omit<CompiledStmt, 'tpl'> {
    this.normalizable = false
    const kind: string = v.kind
    if (kind === 'VAR_RESET_ALL') return base({ effect: { kind: 'reset_all' } })
    const name = lower(v.name ?? '')
    const tenantMode = this.ctx.mode === 'tenant'
    if (name === this.setting) {
      const local = !!v.is_local
      if (kind === 'VAR_SET_VALUE') {
        const args: N[] = v.args ?? []
        const val = args.length === 1 ? constValue(args[0]) : undefined
        if (val === undefined || val === null) throw new Refuse('0A000', `SET ${this.ctx.setting} needs one literal value`)
        if (val.includes('\0')) throw new Refuse('42501', 'a tenant value cannot contain a NUL character')
        return { ...base(), kind: 'tenant', tenantCommand: { op: 'set', value: val, local, tag: 'SET' } }
      }
      if (kind === 'VAR_SET_DEFAULT') return { ...base(), kind: 'tenant', tenantCommand: { op: 'set', value: null, local, tag: 'SET' } }
      if (kind === 'VAR_RESET') return { ...base(), kind: 'tenant', tenantCommand: { op: 'set', value: null, local: false, tag: 'RESET' } }
      throw new Refuse('0A000', `this form of SET ${this.ctx.setting} is not supported`)
    }
    if (tenantMode) {
      if (name === 'role' || name === 'session_authorization')
        throw new Refuse('42501', `${kind === 'VAR_RESET' ? 'RESET' : 'SET'} ${name === 'role' ? 'ROLE' : 'SESSION AUTHORIZATION'} is not allowed for tenant sessions`)
      if (kind !== 'VAR_RESET') {
        const refusal = settingRefusal(name)
        if (refusal) throw new Refuse('42501', refusal)
      }
      if (kind === 'VAR_SET_VALUE' || kind === 'VAR_SET_DEFAULT' || kind === 'VAR_SET_CURRENT') {
        // pgtenant lexes the text as UTF-8 with standard_conforming_strings on: the server must read it the same way
        const args: N[] = v.args ?? []
        const val = kind === 'VAR_SET_VALUE' && args.length === 1 ? constValue(args[0]) : undefined
        const refusal = settingValueRefusal(name, typeof val === 'string' ? val : null)
        if (refusal && (name === 'client_encoding' || name === 'standard_conforming_strings')) throw new Refuse('0A000', refusal)
      }
    }
    switch (kind) {
      case 'VAR_SET_VALUE': {
        if (v.is_local) return base({ effect: { kind: 'set_local', name } })
        const start = this.minLoc(v.args)
        let valueSql = this.text.slice(start, range[1]).trim()
        if (valueSql.endsWith(';')) valueSql = valueSql.slice(0, -1).trim()
        return base({ effect: { kind: 'set', name, valueSql } })
      }
      case 'VAR_SET_DEFAULT':
        return base({ effect: v.is_local ? { kind: 'set_local', name } : { kind: 'reset', name } })
      case 'VAR_RESET':
        return base({ effect: { kind: 'reset', name } })
      case 'VAR_SET_MULTI':
        // SET TRANSACTION … lasts for the transaction; SET SESSION CHARACTERISTICS is not tracked
        return base(name === 'transaction' ? { effect: { kind: 'set_local', name } } : {})
      default:
        return base()
    }
  }
}

/** ELSE branch of the tenant guard: NULL for a NULL value, else an error whose message names the column. */
function guardRaise(expr: string, type: string, col: string): string {
  const msg = quoteLiteral(` pgtenant: ${col} must equal the session tenant`)
  return `((${expr})::${type}::text || ${msg})::int4::text::${type}`
}

function parseBool(s: string): boolean | null {
  const v = lower(s.trim())
  if (['t', 'true', 'on', '1', 'yes', 'y'].includes(v)) return true
  if (['f', 'false', 'off', '0', 'no', 'n'].includes(v)) return false
  return null
}

interface ClauseScan {
  from: number
  where: number
  after: number
  end: number
}

class Placement {
  where: Part[][] = []
  on = new Map<N, Part[][]>()
  /** Every FROM item of the level, for the evaluation-order guard. */
  ranges: RangeInfo[] = []
  /** Joins with an ON condition. */
  joins: N[] = []
  addOn(join: N, pred: Part[]): void {
    const l = this.on.get(join)
    if (l) l.push(pred)
    else this.on.set(join, [pred])
  }
  empty(): boolean {
    return this.where.length === 0 && this.on.size === 0
  }
}

function joinPreds(preds: Part[][]): Part[] {
  const out: Part[] = []
  preds.forEach((p, i) => {
    if (i) out.push(' AND ')
    out.push(...p)
  })
  return out
}

/** Merge edits and literal slots over [from, to) into a template. */
function buildTemplate(text: string, from: number, to: number, edits: Edit[], spans: number[], useLits: boolean, state: { ok: boolean }): Part[] {
  const out: Part[] = []
  let pos = from
  let li = 0
  const sp = spans
  const nl = sp.length / 2
  while (li < nl && sp[2 * li] < from) li++
  const emitText = (a: number, b: number) => {
    // text [a, b) with literal slots
    while (a < b) {
      if (useLits && li < nl && sp[2 * li] < b) {
        const ls = sp[2 * li]
        const le = sp[2 * li + 1]
        if (ls < a) {
          // a literal overlapping an edit boundary: cannot share this plan
          state.ok = false
          li++
          continue
        }
        if (ls > a) out.push(text.slice(a, ls))
        if (le > b) {
          state.ok = false
          out.push(text.slice(ls, b))
          a = b
          break
        }
        out.push(li)
        li++
        a = le
      } else {
        out.push(text.slice(a, b))
        a = b
      }
    }
  }
  for (const ed of edits) {
    if (ed.s < from || ed.s > to) continue
    emitText(pos, ed.s)
    out.push(...ed.parts)
    pos = Math.max(pos, ed.e)
    if (ed.e > ed.s) while (li < nl && sp[2 * li] < ed.e) {
      state.ok = false
      li++
    }
  }
  emitText(pos, to)
  // merge adjacent strings
  const merged: Part[] = []
  for (const p of out) {
    if (typeof p === 'string' && typeof merged[merged.length - 1] === 'string') merged[merged.length - 1] += p
    else if (p !== '') merged.push(p)
  }
  return merged
}

function refusalOf(e: unknown): Refusal {
  if (e instanceof Refuse) return { kind: 'refuse', sqlstate: e.sqlstate, message: e.message, ...(e.hint ? { hint: e.hint } : {}) }
  return { kind: 'refuse', sqlstate: '0A000', message: `pgtenant could not rewrite the statement: ${(e as Error)?.message ?? e}` }
}

/** Parse and analyse `text`. Never throws: failures become refusals. */
export function analyze(text: string, ctx: RewriteContext, lits?: Normalized): Plan {
  if (ctx.mode === 'tenant' && text.includes('\0')) {
    // the parser would stop at the NUL; never forward text it did not see
    const refusal: Refusal = { kind: 'refuse', sqlstate: '42601', message: 'pgtenant could not parse the statement: it contains a NUL character' }
    return { stmts: [{ kind: 'refuse', refusal, tpl: [], command: '', touchesTenant: false, firstTenantTable: null, relations: [] }], whole: null, refusal, checks: [], normalizable: false, touchesTenant: false }
  }
  let tree: N
  try {
    tree = parseSync(text)
  } catch (e) {
    const msg = (e as Error)?.message ?? String(e)
    const refusal: Refusal =
      ctx.mode === 'tenant'
        ? { kind: 'refuse', sqlstate: '42601', message: `pgtenant could not parse the statement: ${msg}` }
        : (null as unknown as Refusal)
    if (ctx.mode !== 'tenant') {
      // bypass: forward unparseable text unchanged, the backend reports the error
      return {
        stmts: [{ kind: 'forward', tpl: [text], command: firstWord(text), touchesTenant: false, firstTenantTable: null, relations: [] }],
        whole: [text],
        refusal: null,
        checks: [],
        normalizable: false,
        touchesTenant: false,
      }
    }
    return { stmts: [{ ...refusal, kind: 'refuse', refusal, tpl: [], command: firstWord(text), touchesTenant: false, firstTenantTable: null, relations: [] }], whole: null, refusal, checks: [], normalizable: false, touchesTenant: false }
  }
  return analyzeTree(text, ctx, tree, lits)
}

/** Analyse an already parsed text (exported for benchmarks and tests). */
export function analyzeTree(text: string, ctx: RewriteContext, tree: N, lits?: Normalized): Plan {
  const an = new Analyzer(text, ctx, lits)
  const stmts: N[] = tree.stmts ?? []
  const ranges: [number, number][] = stmts.map((s: N) => {
    const a = an.c(s.stmt_location ?? 0)
    const b = s.stmt_len ? an.c((s.stmt_location ?? 0) + s.stmt_len) : text.length
    return [a, b]
  })
  const partial: Omit<CompiledStmt, 'tpl'>[] = []
  let refusal: Refusal | null = null
  stmts.forEach((s: N, i: number) => {
    const mark = an.edits.length
    try {
      partial.push(an.statement(s.stmt, ranges[i], i))
    } catch (e) {
      an.edits.length = mark
      if (ctx.mode !== 'tenant') {
        // bypass never refuses: forward the statement unchanged
        partial.push({ kind: 'forward', command: safeCommand(an, ranges[i]), touchesTenant: false, firstTenantTable: null, relations: [] })
        an.normalizable = false
        return
      }
      const r = refusalOf(e)
      if (!refusal) refusal = r
      partial.push({ kind: 'refuse', refusal: r, command: safeCommand(an, ranges[i]), touchesTenant: false, firstTenantTable: null, relations: [] })
    }
  })
  an.edits.sort((a, b) => a.s - b.s || a.prio - b.prio || a.seq - b.seq)
  const state = { ok: an.normalizable }
  const spans = an.lits.spans
  const allForward = partial.every((s) => s.kind === 'forward')
  const whole = allForward ? buildTemplate(text, 0, text.length, an.edits, spans, true, state) : null
  const out: CompiledStmt[] = partial.map((p, i) => {
    const c = p as CompiledStmt
    if (p.kind !== 'forward') {
      c.tpl = []
      return c
    }
    // statement text: from its first non-blank to its last non-blank char
    let [a, b] = ranges[i]
    while (a < b && isBlank(text.charCodeAt(a))) a++
    while (b > a && isBlank(text.charCodeAt(b - 1))) b--
    c.tpl = whole && a === 0 && b === text.length ? whole : buildTemplate(text, a, b, an.edits, spans, true, state)
    return c
  })
  return {
    stmts: out,
    whole,
    refusal,
    checks: an.checks,
    // refusals are never shared by the literal-normalised key (a literal may be why it was refused)
    normalizable: state.ok && an.lits.key !== null && refusal === null,
    touchesTenant: out.some((s) => s.touchesTenant),
  }
}

function isBlank(c: number): boolean {
  return c === 32 || c === 10 || c === 9 || c === 13 || c === 12 || c === 11
}

function firstWord(text: string): string {
  const m = /^[\s(]*([A-Za-z_]+)/.exec(text.replace(/^(\s*(--[^\n]*\n|\/\*[\s\S]*?\*\/))*/, ''))
  return m ? m[1].toUpperCase() : ''
}

function safeCommand(an: Analyzer, range: [number, number]): string {
  return firstWord(an.text.slice(range[0], range[1]))
}

