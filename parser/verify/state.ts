// What one verification shares between the verify modules: the tenant value and context, the
// verifier's own failure (Fail), the query levels and their tenant ranges, CTE scopes, and `walk`
// (the recursive walks into a statement body or a SELECT, wired by the hub parser/verify.ts so that
// modules do not import each other in a cycle).
import type { RewriteContext } from '../types.js'

/** A libpg-query parse-tree node, read as untyped JSON. */
export type N = any

/** A verification failure: the tenant table concerned ('?' when none) and why. */
export class Fail extends Error {
  constructor(
    readonly table: string,
    readonly reason: string,
  ) {
    super(reason)
  }
}

/** One reference to a tenant table (or a derived tenant table) in a FROM list. */
export interface Range {
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

export interface NameInfo {
  /** a plain table (or the EXCLUDED row): its columns are stored values, not computed outputs */
  plain: boolean
  schema: string | null
  ranges: Range[]
}

/** One query level (a SELECT / UPDATE / DELETE / INSERT / MERGE): the names its FROM items define. */
export class Level {
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

export interface Scope {
  /** CTE name → its body is fenced (a SELECT ending in LIMIT/OFFSET or VALUES: outer conditions are not pushed into it) */
  ctes: Map<string, boolean>
  parent: Scope | null
}

/** The recursive walks, provided by the hub. */
export interface VerifyWalk {
  /** A statement body (SELECT, INSERT, UPDATE, DELETE, MERGE; anything else is checked generically). */
  body(vs: VerifyState, n: N, scope: Scope | null, outer: Level | null): void
  select(vs: VerifyState, sel: N, scope: Scope | null, outer: Level | null): void
}

export class VerifyState {
  /** Tenant column type name → its TypeName key (one parse per type and verification). */
  readonly typeNames = new Map<string, string>()

  constructor(
    readonly tenant: string,
    readonly ctx: RewriteContext,
    readonly checkOrder: boolean,
    readonly walk: VerifyWalk,
  ) {}
}
