// The state one analysis shares between the rewrite modules: the text and its tokens (SourceText),
// the edits made so far, the literal spans, the checks to run on every use of the plan, and the
// facts of the statement being analysed. Modules are functions of (state, node, …); recursion into
// a nested statement, SELECT or expression goes through `walk`, which the hub (analyze.ts) wires.
import type { RewriteContext } from '../types.js'
import { normalizeLiterals, type Normalized } from '../scan.js'
import type { RangeInfo } from '../order.js'
import { SourceText } from './positions.js'
import type { Part } from './template.js'
import type { Node, SelectStmt } from './nodes.js'
import { lower } from './nodes.js'

export interface Edit {
  s: number
  e: number
  parts: Part[]
  /** order among edits at the same position: prio first (an outer construct's opening < 0), then creation order */
  prio: number
  seq: number
}

/** CTE names visible at a point of the statement, innermost scope first. */
export interface Scope {
  ctes: Set<string>
  parent: Scope | null
}

/** A literal whose value must equal the session tenant on every use of the plan (see index.ts). */
export interface Check {
  stmt: number
  /** literal index in the normalised spans */
  lit: number
  message: string
}

/** The recursive walks, provided by the hub so modules need not import each other in a cycle. */
export interface Walk {
  /** A statement allowed as a body (CTE, PREPARE, EXPLAIN, DECLARE, COPY (query)). */
  body(n: Node, scope: Scope | null): void
  select(sel: SelectStmt, scope: Scope | null): void
  /** Any expression (or list of them): sub-selects, function policy. */
  expr(n: unknown, scope: Scope | null): void
}

export class RewriteState extends SourceText {
  readonly lits: Normalized
  readonly setting: string
  edits: Edit[] = []
  private seq = 0
  normalizable = true
  checks: Check[] = []
  /** FROM items of the query levels being walked, innermost last (for the evaluation-order guard). */
  levels: RangeInfo[][] = []
  /** Tenant table references seen so far (a sub-select that adds some reads tenant rows). */
  tenantRefs = 0
  // per statement
  relations = new Set<string>()
  touchesTenant = false
  firstTenantTable: string | null = null
  stmtIndex = 0
  /** "schema.table" of tenant tables made derived tables without an alias (their alias is the bare name) */
  readonly derivedQualified = new Set<string>()

  constructor(
    text: string,
    readonly ctx: RewriteContext,
    readonly walk: Walk,
    lits?: Normalized,
  ) {
    super(text)
    this.lits = lits ?? normalizeLiterals(text)
    if (this.lits.key === null) this.normalizable = false
    this.setting = lower(ctx.setting)
  }

  get tenantMode(): boolean {
    return this.ctx.mode === 'tenant'
  }

  /** Start the per-statement facts for statement `index`. */
  beginStatement(index: number): void {
    this.relations = new Set()
    this.touchesTenant = false
    this.firstTenantTable = null
    this.stmtIndex = index
    this.derivedQualified.clear()
  }

  /** Replace chars [s, e) by `parts` (s === e inserts). */
  edit(s: number, e: number, parts: Part[], prio = 0): void {
    this.edits.push({ s, e, parts, prio, seq: this.seq++ })
  }

  insert(p: number, parts: Part[], prio = 0): void {
    this.edit(p, p, parts, prio)
  }
}
