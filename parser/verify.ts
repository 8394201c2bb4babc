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
//   target's restriction among the conjuncts of its WHERE. COPY tenant TO: only as COPY (query); COPY tenant
//   FROM STDIN: only with the tenant column once in its column list (server/ appends or checks it per row).
// Evaluation order (issue #22, opts.checkOrder, default on): in every WHERE, JOIN … ON, MERGE … ON and
// ON CONFLICT … WHERE with tenant ranges in scope, each top-level conjunct that is neither a
// restriction nor leakproof-safe (parser/leakproof.ts) must be `CASE WHEN <guard> THEN <e> END`, the
// guard an AND of restrictions (`(q.c = T OR q.c IS NULL)` for ranges that may be NULL-extended
// there) covering every tenant range <e> references (an unqualified column or `*` references them all).
//
// Pure: one parseSync (libpg-query's WASM must be loaded: initParser()), no I/O, no state between
// calls. Never throws: an internal error is a failure (fail closed).
//
// This file is the hub: the entry points, the statement dispatch, and the wiring of the recursive
// walks. The checks are in parser/verify/:
//   state.ts        VerifyState (tenant, context, walk), Fail, query levels, tenant ranges, CTE scopes
//   nodes.ts        tree readers (conjuncts, names, operators) and the depth-limited walk they share
//   names.ts        relation resolution, WITH scopes, qualifier lookup through levels
//   walk.ts         expressions (sub-queries checked at their level) and other statements (no tenant table)
//   from.ts         FROM items and DML targets: names, tenant ranges, where each must be restricted
//   restriction.ts  `q.c = T`, its nullable form, and each level's ranges restricted where they must be
//   tenant-value.ts the tenant constant and values written to a tenant column (T, T::type, the guard)
//   order-check.ts  evaluation order (issue #22): conjuncts leakproof-safe or behind a CASE WHEN guard
//   select.ts       SELECT and its joins' ON conditions;  dml.ts UPDATE / DELETE, INSERT, MERGE, COPY
import { parseSync } from 'libpg-query'
import type { RewriteContext } from './types.js'
import { Fail, VerifyState, type Level, type N, type Scope, type VerifyWalk } from './verify/state.js'
import { nodeType } from './verify/nodes.js'
import { exprs, generic } from './verify/walk.js'
import { select } from './verify/select.js'
import { copy, insert, merge, updateOrDelete } from './verify/dml.js'

export type VerifyResult = { ok: true } | { ok: false; table: string; reason: string }

export interface VerifyOptions {
  /** Check the evaluation-order guard of issue #22 (default true). */
  checkOrder?: boolean
  /** The client's text: if it contains the tenant sentinel, verification fails (the sentinel must be unforgeable). */
  originalSql?: string
}

const OK: VerifyResult = { ok: true }

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

/** A statement body: CTE, PREPARE, DECLARE, COPY (query), top-level DML. */
function stmtBody(vs: VerifyState, n: N, scope: Scope | null, outer: Level | null): void {
  const type = nodeType(n)
  const v = n[type]
  switch (type) {
    case 'SelectStmt':
      return select(vs, v, scope, outer)
    case 'InsertStmt':
      return insert(vs, v, scope, outer)
    case 'UpdateStmt':
      return updateOrDelete(vs, v, v.fromClause ?? [], 'UPDATE', scope, outer)
    case 'DeleteStmt':
      return updateOrDelete(vs, v, v.usingClause ?? [], 'DELETE', scope, outer)
    case 'MergeStmt':
      return merge(vs, v, scope, outer)
    default:
      return generic(vs, n)
  }
}

const WALK: VerifyWalk = { body: stmtBody, select }

/** One top-level statement. */
function statement(vs: VerifyState, n: N): void {
  const type = nodeType(n)
  const v = n[type]
  if (NO_QUERY.has(type)) return
  switch (type) {
    case 'SelectStmt':
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      return stmtBody(vs, n, null, null)
    case 'ExplainStmt':
      return statement(vs, v.query)
    case 'PrepareStmt':
      return stmtBody(vs, v.query, null, null)
    case 'DeclareCursorStmt':
      return stmtBody(vs, v.query, null, null)
    case 'ExecuteStmt':
      return exprs(vs, v.params, null, null)
    case 'CopyStmt':
      return copy(vs, v)
    default:
      return generic(vs, n)
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
    const vs = new VerifyState(tenant, ctx, opts.checkOrder !== false, WALK)
    for (const s of tree.stmts ?? []) statement(vs, s.stmt)
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
export function fillForVerify(
  tpl: readonly (string | number)[],
  text: string,
  spans: readonly number[],
  checkedLits: ReadonlySet<number>,
  quotedSentinel: string,
): string {
  let out = ''
  for (const p of tpl) {
    if (typeof p === 'string') out += p
    else if (p < 0 || checkedLits.has(p)) out += quotedSentinel
    else out += text.slice(spans[2 * p], spans[2 * p + 1])
  }
  return out
}
