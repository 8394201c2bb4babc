// Decides what to do with each statement a client sends: the bridge from server/ to
// parser/. With no `tenant:` config (or for bypass users) statements are only
// classified, and only those that change session state are parsed at all.
import { rewriteQuery, RewriteCache } from '../parser/index.js'
import type { RewriteContext, RewriteResult, SchemaFacts } from '../parser/types.js'
import type { Config } from './config-types.js'

/** Statements whose session effects the pooler must see; anything else passes untouched in bypass mode. */
const STATEFUL = new Set(['SET', 'RESET', 'DISCARD', 'LISTEN', 'PREPARE', 'DEALLOCATE'])

const EMPTY_FACTS: SchemaFacts = { tenantTables: new Map(), referenceTables: new Set(), knownRelations: new Set(), unknown: 'allow' }

/** Before discovery has succeeded nothing is known, so every table is refused (fail closed). */
const UNDISCOVERED: SchemaFacts = { tenantTables: new Map(), referenceTables: new Set(), knownRelations: new Set(), unknown: 'reject' }

export interface PlanInput {
  sql: string
  /** Facts of the backend the session's tenant is placed on. */
  facts: SchemaFacts | undefined
  tenant: string | null
  bypass: boolean
  searchPath: readonly string[]
}

export class Planner {
  readonly cache = new RewriteCache({ maxBytes: 32 * 1024 * 1024 })

  constructor(private config: Config) {}

  reconfigure(config: Config): void {
    this.config = config
  }

  get tenantMode(): boolean {
    return this.config.tenant !== undefined
  }

  get setting(): string {
    return this.config.tenant?.setting ?? 'app.tenant'
  }

  /** null means: forward the text unchanged, nothing to track. */
  plan(input: PlanInput): RewriteResult | null {
    const bypass = input.bypass || !this.tenantMode
    if (bypass && !STATEFUL.has(firstKeyword(input.sql))) return null
    const ctx: RewriteContext = {
      mode: bypass ? 'bypass' : 'tenant',
      tenant: input.tenant,
      setting: this.setting,
      searchPath: input.searchPath,
      facts: bypass ? EMPTY_FACTS : (input.facts ?? UNDISCOVERED),
    }
    return rewriteQuery(input.sql, ctx, this.cache)
  }
}

/** Upper-cased first keyword of a statement, skipping white space and comments. */
export function firstKeyword(sql: string): string {
  let i = 0
  const n = sql.length
  while (i < n) {
    const c = sql.charCodeAt(i)
    if (c === 32 || (c >= 9 && c <= 13) || c === 40 /* ( */) i++
    else if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      const nl = sql.indexOf('\n', i)
      i = nl < 0 ? n : nl + 1
    } else if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        if (sql.charCodeAt(i) === 47 && sql.charCodeAt(i + 1) === 42) {
          depth++
          i += 2
        } else if (sql.charCodeAt(i) === 42 && sql.charCodeAt(i + 1) === 47) {
          depth--
          i += 2
        } else i++
      }
    } else break
  }
  let j = i
  while (j < n) {
    const c = sql.charCodeAt(j) | 0x20
    if (c >= 97 && c <= 122) j++
    else break
  }
  return sql.slice(i, j).toUpperCase()
}

/** Quote a value as an SQL string literal (standard_conforming_strings on). */
export function quoteLiteral(value: string): string {
  return "'" + value.replace(/'/g, "''") + "'"
}

export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"'
}
