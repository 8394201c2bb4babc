// Statement classification: what one top-level statement is (its command tag, session effect or
// tenant command), whether tenant sessions may run it at all, and for those that read or write
// tables, the walk that rewrites them (through cx.walk.body, wired by the hub).
import { T_WORD } from '../scan.js'
import { Refuse } from './refuse.js'
import type { RewriteState } from './state.js'
import type { CompiledStmt, StmtInfo } from './plan.js'
import { walkCopy } from './copy.js'
import { sessionSetConfig, setConfigCommand, variableSet, type Base } from './settings.js'
import { field, lower, nodeKind, type Json, type Node } from './nodes.js'

const STMT_COMMAND: Record<string, string> = {
  SelectStmt: 'SELECT',
  InsertStmt: 'INSERT',
  UpdateStmt: 'UPDATE',
  DeleteStmt: 'DELETE',
  MergeStmt: 'MERGE',
}

/** Analyse one top-level statement; returns the non-template part of its plan. */
export function statement(cx: RewriteState, n: Node, range: [number, number], index: number): StmtInfo {
  cx.beginStatement(index)
  const command = commandOf(cx, n, range)
  const base: Base = (extra = {}) => {
    if (cx.derivedQualified.size) unqualifyRefs(cx, n)
    return plain(cx, command, extra)
  }
  return sessionStatement(cx, n, range, base) ?? (cx.tenantMode ? tenantStatement(cx, n, command, base) : bypassStatement(n, base))
}

/** Session-level statements, the same in both modes; null for any other statement. */
function sessionStatement(cx: RewriteState, n: Node, range: [number, number], base: Base): StmtInfo | null {
  switch (nodeKind(n)) {
    case 'VariableSetStmt':
      return variableSet(cx, field(n, 'VariableSetStmt')!, range, base)
    case 'VariableShowStmt':
      cx.normalizable = false
      if (lower(field(n, 'VariableShowStmt')!.name ?? '') === cx.setting) return { ...base(), kind: 'tenant', tenantCommand: { op: 'show' } }
      return base()
    case 'SelectStmt': {
      const sel = field(n, 'SelectStmt')!
      const tc = setConfigCommand(cx, sel)
      if (tc) return { ...base(), kind: 'tenant', tenantCommand: tc }
      const set = cx.tenantMode ? sessionSetConfig(cx, sel) : null
      if (set) return base({ effect: set })
      return null
    }
    case 'DiscardStmt':
      return base(field(n, 'DiscardStmt')!.target === 'DISCARD_ALL' ? { effect: { kind: 'discard_all' } } : {})
    case 'ListenStmt':
      return base({ effect: { kind: 'listen', channel: field(n, 'ListenStmt')!.conditionname! } })
    case 'DeallocateStmt': {
      const v = field(n, 'DeallocateStmt')!
      return base({ effect: { kind: 'deallocate', name: v.isall ? null : (v.name ?? null) } })
    }
    default:
      return null
  }
}

/** Bypass mode only classifies: every statement is forwarded unchanged. */
function bypassStatement(n: Node, base: Base): StmtInfo {
  const prep = field(n, 'PrepareStmt')
  if (prep) return base({ effect: { kind: 'prepare', name: prep.name! } })
  return base()
}

/** A statement in tenant mode: rewritten, passed, or refused by kind. */
function tenantStatement(cx: RewriteState, n: Node, command: string, base: Base): StmtInfo {
  switch (nodeKind(n)) {
    case 'SelectStmt':
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      cx.walk.body(n, null)
      return base()
    case 'ExplainStmt': {
      const q = field(n, 'ExplainStmt')!.query!
      explainBody(cx, q)
      const exec = field(q, 'ExecuteStmt')
      return base(exec ? { effect: { kind: 'execute', name: exec.name! } } : {})
    }
    case 'PrepareStmt': {
      const v = field(n, 'PrepareStmt')!
      cx.walk.body(v.query!, null)
      return base({ effect: { kind: 'prepare', name: v.name! } })
    }
    case 'ExecuteStmt': {
      const v = field(n, 'ExecuteStmt')!
      cx.walk.expr(v.params, null)
      return base({ effect: { kind: 'execute', name: v.name! } })
    }
    case 'DeclareCursorStmt':
      cx.walk.body(field(n, 'DeclareCursorStmt')!.query!, null)
      return base()
    case 'CopyStmt': {
      const copyIn = walkCopy(cx, field(n, 'CopyStmt')!)
      return base(copyIn ? { copyIn } : {})
    }
    case 'FetchStmt':
    case 'ClosePortalStmt':
    case 'TransactionStmt':
    case 'UnlistenStmt':
    case 'NotifyStmt':
    case 'ConstraintsSetStmt':
      return base()
    case 'CallStmt':
    case 'DoStmt':
      throw new Refuse('statement_policy', '42501', `${command} is not allowed for tenant sessions: procedural code runs outside the tenant filter`)
    case 'TruncateStmt':
      throw new Refuse('statement_policy', '42501', "TRUNCATE is not allowed for tenant sessions: it would remove every tenant's rows")
    case 'LockStmt':
      throw new Refuse('statement_policy', '42501', 'LOCK TABLE is not allowed for tenant sessions: it would block other tenants')
    default:
      throw new Refuse('statement_policy', '42501', `${command} is not allowed for tenant sessions (DDL and administrative statements need a bypass user)`)
  }
}

function plain(cx: RewriteState, command: string, extra: Partial<CompiledStmt>): StmtInfo {
  return {
    kind: 'forward',
    command,
    touchesTenant: cx.touchesTenant,
    firstTenantTable: cx.firstTenantTable,
    relations: [...cx.relations],
    ...extra,
  }
}

/** EXPLAIN's statement: EXECUTE, DECLARE and the rewritable bodies; CREATE TABLE AS refused. */
function explainBody(cx: RewriteState, q: Node): void {
  const type = nodeKind(q)
  if (type === 'ExecuteStmt') return cx.walk.expr(field(q, 'ExecuteStmt')!.params, null)
  if (type === 'DeclareCursorStmt') return cx.walk.body(field(q, 'DeclareCursorStmt')!.query!, null)
  if (type === 'CreateTableAsStmt') throw new Refuse('statement_policy', '42501', 'EXPLAIN of CREATE TABLE AS is not allowed for tenant sessions')
  cx.walk.body(q, null)
}

/**
 * `schema.table.col` column references to a table we turned into a derived table aliased `table`
 * would no longer resolve: drop their `schema.` (and `catalog.`) prefix. `table.col` resolves to the
 * same FROM item, since an unaliased `schema.table` is known by its bare name anyway.
 */
function unqualifyRefs(cx: RewriteState, n: Json): void {
  const t = cx.toks
  const visit = (x: Json) => {
    if (x === null || typeof x !== 'object') return
    if (Array.isArray(x)) {
      for (const y of x) visit(y)
      return
    }
    for (const k in x) {
      const v = x[k]
      if (k === 'ColumnRef') {
        const f: Json[] = v.fields ?? []
        const names = f.map((y) => y.String?.sval ?? '*')
        const last = names.length - 1
        if (names.length >= 3 && cx.derivedQualified.has(`${names[last - 2]}.${names[last - 1]}`) && v.location >= 0) {
          // database.schema.table.column: PostgreSQL checks the database name; dropping it would turn an
          // error into a result (found by the attack mutation fuzzer), so refuse the rare form instead
          if (names.length === 4)
            throw new Refuse(
              'unsupported',
              '0A000',
              'a column reference with a database name to a table pgtenant filters through a derived table is not supported',
            )
          const i = cx.tokAt(cx.c(v.location))
          if (t[i + 2]) cx.edit(t[i].s, t[i + 2].s, [])
        }
      } else if (v && typeof v === 'object') visit(v)
    }
  }
  visit(n)
}

/** The command tag: the statement's first keyword (VALUES for a bare VALUES list). */
function commandOf(cx: RewriteState, n: Node, range: [number, number]): string {
  const type = nodeKind(n)
  if (field(n, 'SelectStmt')?.valuesLists) return 'VALUES'
  const t = cx.toks
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
