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
//
// Parser map (parser/rewrite/, one concern per module; this file only wires them):
//   state.ts        RewriteState: the text and tokens, edits, literal spans, checks, per-statement facts,
//                   and `walk` (the recursive walks below, so modules do not import each other in a cycle)
//   positions.ts    byte → char, token lookup, min/max location, parenthesised lists, expression ends
//   nodes.ts        parse-tree node types (libpg-query's) and small readers (constValue, funcName, …)
//   refuse.ts       Refuse: a refusal with its reason code (types.ts RefusalReason), SQLSTATE and message
//   names.ts        name resolution (CTE scopes, search_path), what a relation is, the relation policy
//   expressions.ts  expression walk: sub-selects, the function policy, set_config() inside a statement
//   clauses.ts      clause scans: FROM / WHERE / HAVING / ON extents the tree has no positions for
//   placement.ts    FROM items: where each tenant table's restriction goes (WHERE, ON, derived table)
//   order-guard.ts  evaluation order (issue #22): conjuncts behind the restriction, OFFSET 0 fences
//   select.ts       SELECT;  insert.ts INSERT;  dml.ts UPDATE / DELETE;  merge.ts MERGE;  copy.ts COPY
//   tenant-value.ts values written to a tenant column: checked literal, DEFAULT, execution-time guard
//   settings.ts     SET / RESET / set_config(): tenant commands, session effects, the settings policy
//   statement.ts    classification of one top-level statement (command tag, effects, allowed or not)
//   template.ts     edits + literal slots → templates;  plan.ts the Plan types
// To add a SQL construct: write one rewrite module for it (a function of (cx, node, scope) that
// resolves names through names.ts, places restrictions through placement.ts or cx.edit, and throws
// Refuse for what it cannot do), add its case to walkStmtBody below (or to statement.ts if it is a
// top-level-only command), and add a golden case in test/parser/golden/.
import { parseSync } from 'libpg-query'
import type { RewriteContext, Refusal } from './types.js'
import type { Normalized } from './scan.js'
import { RewriteState, type Scope, type Walk } from './rewrite/state.js'
import { Refuse } from './rewrite/refuse.js'
import { buildTemplate, firstWord, sortEdits, trimmed } from './rewrite/template.js'
import type { CompiledStmt, Plan, StmtInfo } from './rewrite/plan.js'
import { field, nodeKind, type Node, type ParseResult } from './rewrite/nodes.js'
import { walkExpr } from './rewrite/expressions.js'
import { walkSelect } from './rewrite/select.js'
import { walkInsert } from './rewrite/insert.js'
import { walkDelete, walkUpdate } from './rewrite/dml.js'
import { walkMerge } from './rewrite/merge.js'
import { statement } from './rewrite/statement.js'

export { TENANT, type Part } from './rewrite/template.js'
export type { CompiledStmt, Plan } from './rewrite/plan.js'

/** Bodies allowed inside CTEs, PREPARE, EXPLAIN, DECLARE, COPY (query), and as top-level DML. */
function walkStmtBody(cx: RewriteState, n: Node, scope: Scope | null): void {
  const type = nodeKind(n)
  switch (type) {
    case 'SelectStmt':
      return walkSelect(cx, field(n, type)!, scope)
    case 'InsertStmt':
      return walkInsert(cx, field(n, type)!, scope)
    case 'UpdateStmt':
      return walkUpdate(cx, field(n, type)!, scope)
    case 'DeleteStmt':
      return walkDelete(cx, field(n, type)!, scope)
    case 'MergeStmt':
      return walkMerge(cx, field(n, type)!, scope)
    default:
      throw new Refuse('statement_policy', '42501', `${type.replace(/Stmt$/, '')} is not allowed here for tenant sessions`)
  }
}

function newState(text: string, ctx: RewriteContext, lits?: Normalized): RewriteState {
  const walk: Walk = {
    body: (n, scope) => walkStmtBody(cx, n, scope),
    select: (sel, scope) => walkSelect(cx, sel, scope),
    expr: (n, scope) => walkExpr(cx, n, scope),
  }
  const cx: RewriteState = new RewriteState(text, ctx, walk, lits)
  return cx
}

function refusalOf(e: unknown): Refusal {
  if (e instanceof Refuse) return { kind: 'refuse', sqlstate: e.sqlstate, message: e.message, ...(e.hint ? { hint: e.hint } : {}), reason: e.reason }
  return { kind: 'refuse', sqlstate: '0A000', message: `pgtenant could not rewrite the statement: ${(e as Error)?.message ?? e}`, reason: 'internal' }
}

/** A plan of one statement that is not forwarded (refused, or unparseable in bypass mode). */
function single(stmt: CompiledStmt, refusal: Refusal | null, whole: CompiledStmt['tpl'] | null = null): Plan {
  return { stmts: [stmt], whole, refusal, checks: [], normalizable: false, touchesTenant: false }
}

/** Parse and analyse `text`. Never throws: failures become refusals. */
export function analyze(text: string, ctx: RewriteContext, lits?: Normalized): Plan {
  if (ctx.mode === 'tenant' && text.includes('\0')) {
    // the parser would stop at the NUL; never forward text it did not see
    const refusal: Refusal = {
      kind: 'refuse',
      sqlstate: '42601',
      message: 'pgtenant could not parse the statement: it contains a NUL character',
      reason: 'parse_error',
    }
    return single({ kind: 'refuse', refusal, tpl: [], command: '', touchesTenant: false, firstTenantTable: null, relations: [] }, refusal)
  }
  let tree: ParseResult
  try {
    tree = parseSync(text)
  } catch (e) {
    if (ctx.mode !== 'tenant') {
      // bypass: forward unparseable text unchanged, the backend reports the error
      return single({ kind: 'forward', tpl: [text], command: firstWord(text), touchesTenant: false, firstTenantTable: null, relations: [] }, null, [text])
    }
    const msg = (e as Error)?.message ?? String(e)
    const refusal: Refusal = { kind: 'refuse', sqlstate: '42601', message: `pgtenant could not parse the statement: ${msg}`, reason: 'parse_error' }
    return single(
      { ...refusal, kind: 'refuse', refusal, tpl: [], command: firstWord(text), touchesTenant: false, firstTenantTable: null, relations: [] },
      refusal,
    )
  }
  return analyzeTree(text, ctx, tree, lits)
}

/** Analyse an already parsed text (exported for benchmarks and tests). */
export function analyzeTree(text: string, ctx: RewriteContext, tree: ParseResult, lits?: Normalized): Plan {
  const cx = newState(text, ctx, lits)
  const stmts = tree.stmts ?? []
  const ranges: [number, number][] = stmts.map((s) => {
    const a = cx.c(s.stmt_location ?? 0)
    const b = s.stmt_len ? cx.c((s.stmt_location ?? 0) + s.stmt_len) : text.length
    return [a, b]
  })
  const partial: StmtInfo[] = []
  let refusal: Refusal | null = null
  stmts.forEach((s, i) => {
    const mark = cx.edits.length
    try {
      partial.push(statement(cx, s.stmt!, ranges[i], i))
    } catch (e) {
      cx.edits.length = mark
      const command = firstWord(text.slice(ranges[i][0], ranges[i][1]))
      if (ctx.mode !== 'tenant') {
        // bypass never refuses: forward the statement unchanged
        partial.push({ kind: 'forward', command, touchesTenant: false, firstTenantTable: null, relations: [] })
        cx.normalizable = false
        return
      }
      const r = refusalOf(e)
      if (!refusal) refusal = r
      partial.push({ kind: 'refuse', refusal: r, command, touchesTenant: false, firstTenantTable: null, relations: [] })
    }
  })
  sortEdits(cx.edits)
  const state = { ok: cx.normalizable }
  const spans = cx.lits.spans
  const allForward = partial.every((s) => s.kind === 'forward')
  const whole = allForward ? buildTemplate(text, 0, text.length, cx.edits, spans, true, state) : null
  const out: CompiledStmt[] = partial.map((p, i) => {
    const c = p as CompiledStmt
    if (p.kind !== 'forward') {
      c.tpl = []
      return c
    }
    // statement text: from its first non-blank to its last non-blank char
    const [a, b] = trimmed(text, ranges[i])
    c.tpl = whole && a === 0 && b === text.length ? whole : buildTemplate(text, a, b, cx.edits, spans, true, state)
    return c
  })
  return {
    stmts: out,
    whole,
    refusal,
    checks: cx.checks,
    // refusals are never shared by the literal-normalised key (a literal may be why it was refused)
    normalizable: state.ok && cx.lits.key !== null && refusal === null,
    touchesTenant: out.some((s) => s.touchesTenant),
  }
}
