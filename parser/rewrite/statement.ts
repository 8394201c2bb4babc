// Statement classification: what one top-level statement is (its command tag, session effect or
// tenant command), whether tenant sessions may run it at all, and for those that read or write
// tables, the walk that rewrites them (through cx.walk.body, wired by the hub).
import { T_WORD } from '../scan.js'
import { Refuse } from './refuse.js'
import type { RewriteState } from './state.js'
import type { CompiledStmt, StmtInfo } from './plan.js'
import { walkCopy } from './copy.js'
import { sessionSetConfig, setConfigCommand, variableSet } from './settings.js'
import { field, lower, nodeKind, payload, type Json, type Node } from './nodes.js'

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
  const type = nodeKind(n)
  const v = payload(n)
  const command = commandOf(cx, type, v, range)
  const base = (extra: Partial<CompiledStmt> = {}): StmtInfo => {
    if (cx.derivedQualified.size) unqualifyRefs(cx, n)
    return plain(cx, command, extra)
  }
  // session-level statements: the same in both modes
  switch (type) {
    case 'VariableSetStmt':
      return variableSet(cx, v, range, base)
    case 'VariableShowStmt':
      cx.normalizable = false
      if (lower(v.name ?? '') === cx.setting) return { ...base(), kind: 'tenant', tenantCommand: { op: 'show' } }
      return base()
    case 'SelectStmt': {
      const tc = setConfigCommand(cx, v)
      if (tc) return { ...base(), kind: 'tenant', tenantCommand: tc }
      const set = cx.tenantMode ? sessionSetConfig(cx, v) : null
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
  if (!cx.tenantMode) {
    if (type === 'PrepareStmt') return base({ effect: { kind: 'prepare', name: v.name } })
    return base()
  }
  return tenantStatement(cx, n, type, v, command, base)
}

/** A statement in tenant mode: rewritten, passed, or refused by kind. */
function tenantStatement(cx: RewriteState, n: Node, type: string, v: Json, command: string, base: (extra?: Partial<CompiledStmt>) => StmtInfo): StmtInfo {
  switch (type) {
    case 'SelectStmt':
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      cx.walk.body(n, null)
      return base()
    case 'ExplainStmt': {
      explainBody(cx, v.query)
      const exec = field(v.query, 'ExecuteStmt')
      return base(exec ? { effect: { kind: 'execute', name: exec.name! } } : {})
    }
    case 'PrepareStmt':
      cx.walk.body(v.query, null)
      return base({ effect: { kind: 'prepare', name: v.name } })
    case 'ExecuteStmt':
      cx.walk.expr(v.params, null)
      return base({ effect: { kind: 'execute', name: v.name } })
    case 'DeclareCursorStmt':
      cx.walk.body(v.query, null)
      return base()
    case 'CopyStmt':
      walkCopy(cx, v)
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
          const i = cx.tokAt(cx.c(v.location))
          const skip = names.length === 4 ? 4 : 2
          if (t[i + skip]) cx.edit(t[i].s, t[i + skip].s, [])
        }
      } else if (v && typeof v === 'object') visit(v)
    }
  }
  visit(n)
}

/** The command tag: the statement's first keyword (VALUES for a bare VALUES list). */
function commandOf(cx: RewriteState, type: string, v: Json, range: [number, number]): string {
  if (STMT_COMMAND[type] && v.valuesLists) return 'VALUES'
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
