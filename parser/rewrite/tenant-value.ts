// Values written to a tenant column (INSERT values, UPDATE / ON CONFLICT / MERGE SET): each must equal
// the session tenant. A plain literal is checked before sending, DEFAULT becomes the tenant, anything
// else is wrapped in an execution-time guard that fails for any other value.
import { decodeSimpleLiteral, T_OP } from '../scan.js'
import { quoteLiteral } from '../quote.js'
import { Refuse, unsupported } from './refuse.js'
import type { RewriteState } from './state.js'
import { TENANT, type Part } from './template.js'
import { columnRefNames, constValue, field, nodeKind, type Node } from './nodes.js'

/** Marker in the guard's error text (the ELSE branch below); server/ reports such an error as a tenant violation. */
const GUARD_MARKER = ' pgtenant: '

const GUARD_SUFFIX = ' must equal the session tenant'

/**
 * The tenant column named by a server error raised by the guard's ELSE branch, or null for any other
 * error: the one place that reads the guard's text is the module that writes it.
 */
export function guardViolationColumn(serverMessage: string): string | null {
  const at = serverMessage.indexOf(GUARD_MARKER)
  if (at < 0) return null
  const rest = serverMessage.slice(at + GUARD_MARKER.length)
  const end = rest.indexOf(GUARD_SUFFIX)
  if (end <= 0 || /\s/.test(rest.slice(0, end))) return null
  return rest.slice(0, end)
}

/** The tenant column's SQL type (format_type), "text" when the facts do not say. */
export function typeOf(cx: RewriteState, key: string): string {
  return cx.ctx.facts.tenantColumnTypes?.get(key) ?? 'text'
}

/**
 * The execution-time guard around <expr> (a parameter, an expression, a column of the INSERT's
 * SELECT, a sub-select, …) written into tenant column <col> of type <type>, the tenant in the
 * template slots:
 *
 *   CASE WHEN (<expr>)::<type> = '<tenant>' THEN '<tenant>'::<type>
 *     ELSE ((NULLIF((<expr>)::<type>, '<tenant>'::<type>))::text
 *           || ' pgtenant: <col> must equal the session tenant')::int4::text::<type> END
 *
 * What each part is for:
 * - The value written is the tenant constant (THEN), never <expr>, so nothing but the tenant can be
 *   written; <expr> is evaluated once on the good path (in the WHEN). A NULL value yields NULL
 *   (NULLIF(NULL, …) is NULL and NULL || text is NULL), exactly what the statement does on the
 *   tenant's own database (a NOT NULL tenant column then fails with 23502).
 * - The ELSE raises: PostgreSQL 15 has no error() function, so it fails through a cast whose input
 *   carries our text: `invalid input syntax for type integer: "globex pgtenant: company_id must
 *   equal the session tenant"` (SQLSTATE 22P02, the statement writes nothing; server/ reports it as
 *   a tenant violation through guardViolationColumn). The text can never be a valid integer, and it
 *   depends on <expr>, so the planner cannot fold it into an error while the branch is not taken.
 * - Citus evaluates the distribution column's value on the node that plans the INSERT, before it
 *   picks the shard, and it does so part by part: parameters, then each function, operator and cast
 *   below a CASE on its own, the ELSE branch included, and a simple CASE's WHEN (`CASE x WHEN v`)
 *   without its CASE value, which makes every WHEN false. The guard written as a simple CASE
 *   without NULLIF therefore failed for every valid value on Citus (issue 20). Here each part is
 *   right on its own: the WHEN is a complete comparison, and NULLIF(<expr>, tenant) makes the ELSE
 *   NULL for the tenant's own value, so it fails only for another tenant's value, whoever evaluates
 *   it and in whatever order; Citus then folds the CASE of constants to the tenant and routes the
 *   row to the tenant's shard.
 * - The ELSE evaluates <expr> again (only to build the error): a volatile <expr> that now equals
 *   the tenant yields NULL there, never another tenant's value.
 * - `<type>` is the column's type (SchemaFacts.tenantColumnTypes, from format_type), so the guard
 *   keeps the column type and a `$n` parameter is inferred as that type.
 */
export function guard(expr: string, type: string, col: string): Part[] {
  return [`CASE WHEN (${expr}`, ...guardTail(expr, type, col)]
}

/** The guard after `CASE WHEN (<expr>`: what is inserted behind the expression's tokens (tenantValue). */
function guardTail(expr: string, type: string, col: string): Part[] {
  const msg = quoteLiteral(`${GUARD_MARKER}${col}${GUARD_SUFFIX}`)
  return [
    `)::${type} = `,
    TENANT,
    ' THEN ',
    TENANT,
    `::${type} ELSE ((NULLIF((${expr})::${type}, `,
    TENANT,
    `::${type}))::text || ${msg})::int4::text::${type} END`,
  ]
}

/**
 * The value for a tenant column at tokens [a, b]: a plain literal is checked against the session
 * tenant before sending (on every use of the plan, since the literal and the tenant vary), DEFAULT
 * becomes the tenant, and anything else (parameters, expressions, EXCLUDED.col, sub-selects) is
 * wrapped in the execution-time guard (guard above).
 */
export function tenantValue(cx: RewriteState, node: Node | undefined, a: number, b: number, key: string, col: string, what: string): void {
  const t = cx.toks
  const message = `${what} "${key}": column "${col}" must equal the session tenant`
  const cv = constValue(node)
  if (typeof cv === 'string' && a === b) {
    const li = litIndex(cx, t[a].s, t[a].e)
    if (li >= 0) {
      const lt = cx.text.slice(t[a].s, t[a].e)
      const dec = decodeSimpleLiteral(lt, cx.lits.kinds[li])
      if (dec !== null && dec === cv) {
        cx.checks.push({ lit: li, message, stmt: cx.stmtIndex })
        return
      }
    }
  }
  if (node && nodeKind(node) === 'SetToDefault') {
    cx.edit(t[a].s, t[b].e, [TENANT])
    return
  }
  const type = typeOf(cx, key)
  const expr = cx.text.slice(t[a].s, t[b].e)
  // the expression's text is repeated in the ELSE branch: a plan whose copy holds a literal cannot be
  // shared with texts that differ in that literal
  const sp = cx.lits.spans
  for (let k = 0; k < sp.length; k += 2) if (sp[k] >= t[a].s && sp[k + 1] <= t[b].e) cx.normalizable = false
  cx.insert(t[a].s, ['CASE WHEN ('])
  cx.insert(t[b].e, guardTail(expr, type, col))
}

/** Index of the client literal spanning exactly chars [s, e), or -1. */
function litIndex(cx: RewriteState, s: number, e: number): number {
  const sp = cx.lits.spans
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

/**
 * Which SET values are the tenant column's own value and need no guard (Citus accepts exactly these
 * as "not modifying the partition value" and refuses a guard around them):
 * - 'excluded' (ON CONFLICT DO UPDATE): EXCLUDED.<col>, the row proposed for insertion, whose tenant
 *   column the INSERT part already added, checked or guarded. (A bare <col> is ambiguous there:
 *   PostgreSQL refuses it.)
 * - 'column': the bare <col>, the target row's own column, for an UPDATE or MERGE UPDATE whose target
 *   rows are restricted to the tenant (an unqualified name resolves to the target first, and is
 *   ambiguous — an error — if a FROM item or the MERGE source has it too). Not for UPDATE … WHERE
 *   CURRENT OF, whose row is re-checked through this very assignment; the callers (rewrite/dml.ts,
 *   rewrite/merge.ts) do not pass it yet.
 */
export type OwnValue = 'excluded' | 'column' | null

export function isOwnValue(node: Node | undefined, col: string, own: OwnValue): boolean {
  if (!own) return false
  const names = columnRefNames(node)
  if (own === 'column') return names.length === 1 && names[0] === col
  return names.length === 2 && names[0] === 'excluded' && names[1] === col
}

/**
 * SET targets (UPDATE, ON CONFLICT DO UPDATE, MERGE UPDATE): the tenant column may only be set to
 * the tenant, or to its own value where `own` says so (isOwnValue).
 */
export function setTargets(cx: RewriteState, targets: Node[], key: string, col: string, stops: Set<string>, what: string, own: OwnValue = null): void {
  const t = cx.toks
  for (const target of targets) {
    const r = field(target, 'ResTarget')!
    if (r.name !== col) continue
    if (r.indirection) throw new Refuse('tenant_value', '42501', `${what} "${key}": the tenant column "${col}" cannot be assigned through a subscript or field`)
    const val = r.val
    const multi = field(val, 'MultiAssignRef')
    if (multi) {
      const row = field(multi.source, 'RowExpr')
      if (!row) throw unsupported(`${what} "${key}": assigning the tenant column "${col}" from a sub-SELECT is not supported`)
      let o = cx.tokAt(cx.c(row.location!))
      if (cx.isWord(o, 'row')) o++
      const { items } = cx.parenList(o)
      const k = multi.colno! - 1
      if (!isOwnValue(row.args![k], col, own)) tenantValue(cx, row.args![k], items[k][0], items[k][1], key, col, what)
      continue
    }
    if (isOwnValue(val, col, own)) continue
    // name [= value]: find "=" after the column name
    let i = cx.tokAt(cx.c(r.location!))
    while (i < t.length && !(t[i].k === T_OP && t[i].w === '=')) i++
    const a = i + 1
    const b = cx.exprRange(a, stops)
    tenantValue(cx, val, a, b, key, col, what)
  }
}
