// The contract between server/ and parser/: plain data in, plain data out.
// parser/ never touches sockets, timers or global state; server/ owns the cache instance.
import type { UserFunctionPolicy } from './policy/functions.js'
export type { UserFunctionPolicy } from './policy/functions.js'

/** Facts about the backend's schema that decide how a table is treated. Keys are "schema.table", unquoted, as stored in pg_class/pg_namespace. */
export interface SchemaFacts {
  /** Tenant tables: "schema.table" → name of its tenant column. */
  tenantTables: ReadonlyMap<string, string>
  /** Shared tables every tenant may read (never written by tenant sessions). */
  referenceTables: ReadonlySet<string>
  /** Every relation known in the database (tables, views, matviews, foreign tables, incl. the two sets above), "schema.table". */
  knownRelations: ReadonlySet<string>
  /** What to do with a relation that is in none of the sets: reject it (42501) or pass it through unrestricted. */
  unknown: 'reject' | 'allow'
  /** Optional (added by parser/): "schema.table" → SQL type of its tenant column (format_type), e.g. "integer", "uuid".
   *  Used to keep the column's type in the execution-time guard of INSERT/UPDATE values; "text" when absent. */
  tenantColumnTypes?: ReadonlyMap<string, string>
  /** Optional (added by parser/): "schema.table" → column names in attnum order. Lets `INSERT INTO t VALUES (…)`
   *  without a column list be rewritten for tenant tables (otherwise it is refused with 0A000). */
  columns?: ReadonlyMap<string, readonly string[]>
  /** Optional (added by parser/): "schema.table" → its generated columns. COPY FROM without a column list leaves them out
   *  (PostgreSQL's own default list); absent = none known. */
  generatedColumns?: ReadonlyMap<string, ReadonlySet<string>>
  /** Optional: which functions outside pg_catalog tenant sessions may call (`tenant.functions`,
   *  `tenant.user_functions`); absent = none (see parser/policy/functions.ts). */
  functionPolicy?: UserFunctionPolicy
}

/** Session-state changes the pooler tracks so a client keeps its session under transaction pooling. */
export type SessionEffect =
  /** SET [SESSION] name = value / TO value: `valueSql` is the exact text after = / TO, to replay verbatim. */
  | { kind: 'set'; name: string; valueSql: string }
  /** SET LOCAL …: lasts until the transaction ends, nothing to replay. */
  | { kind: 'set_local'; name: string }
  | { kind: 'reset'; name: string }
  /** RESET ALL: forwarded (kind 'forward' with this effect), and server/ also clears the session tenant, as
   *  RESET ALL resets the tenant setting too. It is NOT returned as a tenant command. */
  | { kind: 'reset_all' }
  /** DISCARD ALL: forwarded; like RESET ALL it also resets every setting, so server/ clears the session tenant too. */
  | { kind: 'discard_all' }
  | { kind: 'listen'; channel: string }
  | { kind: 'prepare'; name: string }
  | { kind: 'deallocate'; name: string | null }
  /** SQL EXECUTE name (also EXPLAIN EXECUTE): server/ allows it only for a name this client PREPAREd itself. */
  | { kind: 'execute'; name: string }

export interface RewriteContext {
  /** 'tenant' rewrites and enforces; 'bypass' only classifies (bypass users, or no `tenant:` config): sql unchanged, no refusals except none. */
  mode: 'tenant' | 'bypass'
  /** The session tenant, or null when none is set. */
  tenant: string | null
  /** The session variable clients use to set the tenant, e.g. "app.tenant". */
  setting: string
  /**
   * Schemas an unqualified name is looked up in, in order ("$user" already expanded; pg_catalog
   * is implicit first). Never changed once passed: RewriteCache remembers its key by identity.
   */
  searchPath: readonly string[]
  facts: SchemaFacts
}

/** A statement the proxy answers itself instead of sending it to the backend.
 *  (Returned in both modes: a bypass session's SET/SHOW/RESET of the setting and set_config() of it are
 *  tenant commands too, so server/ can still route by the tenant a bypass user chooses.) */
export type TenantCommand =
  /** SET/RESET app.tenant, SET … TO DEFAULT, RESET ALL (value null = clear). Answered with CommandComplete "SET"/"RESET". */
  | { op: 'set'; value: string | null; local: boolean; tag: 'SET' | 'RESET' }
  /** SHOW app.tenant: answered with a one-row, one-column result named after the setting. */
  | { op: 'show' }
  /** SELECT set_config('app.tenant', v, is_local) alone: answered with a one-row result, column "set_config". */
  | {
      op: 'set_config'
      value: string | null
      local: boolean
      /** Optional (added by parser/): the value is the statement's parameter $valueParam (1-based; extended
       *  protocol, e.g. `SELECT set_config('app.tenant', $1, false)`); `value` is then null and server/ takes
       *  the tenant from the Bind message's parameter (text format) instead. */
      valueParam?: number
    }

export type Sqlstate =
  | '42501' // insufficient_privilege: a tenant violation
  | '42601' // syntax_error: the statement does not parse
  | '0A000' // feature_not_supported
  | '42P01' // undefined_table
  | '25001' // active_sql_transaction (tenant change inside a transaction; decided by server/)
  | '25P02' // in_failed_sql_transaction (a tenant command in an aborted transaction block; decided by server/)
  | '3D000'

/** Why a statement was refused, as data: decide on this, never on the message text (which may be reworded). */
export type RefusalReason =
  /** The text does not parse (or holds a NUL character the parser would stop at). */
  | 'parse_error'
  /** A statement kind tenant sessions may not run: DDL, administrative commands, TRUNCATE, LOCK, CALL/DO,
   *  SELECT … INTO, COPY to or from a server file or program, SET ROLE / SESSION AUTHORIZATION. */
  | 'statement_policy'
  /** A relation in none of the schema-facts sets while `unknown: reject`: may be newer than the facts (refresh them and retry). */
  | 'unknown_relation'
  /** A relation the deny list forbids (parser/policy/relations.ts). */
  | 'relation_policy'
  /** A write to a reference table or a system catalog. */
  | 'read_only_relation'
  /** A function call the function policy forbids (parser/policy/functions.ts). */
  | 'function_policy'
  /** A setting tenant sessions may not change, or set_config() in a form pgtenant cannot track (parser/policy/settings.ts). */
  | 'setting_policy'
  /** A tenant column assigned in a way pgtenant cannot check, or a tenant value it cannot use (e.g. with a NUL). */
  | 'tenant_value'
  /** A statement shape the rewriter does not support for tenant tables (0A000). */
  | 'unsupported'
  /** The rewriter could not locate a clause or token it needs in the text (0A000): never forwarded unrestricted. */
  | 'unlocatable'
  /** An unexpected failure inside the rewriter. */
  | 'internal'

export interface Refusal {
  kind: 'refuse'
  sqlstate: Sqlstate
  /** Optional (added by parser/): why, as a code. Set on every refusal of the analysis (parser/analyze.ts); not yet on
   *  those parser/index.ts makes itself (no tenant set, a checked tenant literal, verify failure: see verifyFailure). */
  reason?: RefusalReason
  /** Says what was refused and why, e.g. `table "public.orders" is a tenant table and no tenant is set`. */
  message: string
  hint?: string
  /** Set when the verify-after-rewrite step (parser/verify.ts) refused the rewritten text: server/ logs it at error level. */
  verifyFailure?: { table: string; reason: string }
}

/** COPY … FROM STDIN into a tenant table (parser/rewrite/copy.ts): what server/ does with every row the client streams.
 *  The forwarded SQL names the tenant column in an explicit column list; the plan holds no tenant value. */
export interface CopyInPlan {
  /** "schema.table" */
  table: string
  /** its tenant column */
  column: string
  /** 'append': the client's rows lack the tenant column (the server gets `COPY t (cols…, col)`): append the tenant's value to
   *  each row. 'check': field `index` of each row is the tenant column: a row whose value is not exactly the tenant's aborts the COPY. */
  mode: 'append' | 'check'
  /** check: the tenant column's field (0-based) */
  index: number
  /** fields in each of the client's rows */
  fields: number
  format: 'text' | 'csv' | 'binary'
  /** one byte each (text/CSV; quote and escape in CSV only, '' otherwise) */
  delimiter: string
  null: string
  quote: string
  escape: string
  /** the first line is a header: passed as is ('skip') or, in append mode, given the tenant column's name ('match') */
  header: 'none' | 'skip' | 'match'
  /** the tenant column's SQL type (format_type), which binary values are encoded in; null when unknown */
  columnType: string | null
}

/** One statement of the client's text. */
export type StatementPlan =
  | {
      kind: 'forward'
      /** The SQL to send: the client's text with tenant restrictions spliced in (or unchanged). */
      sql: string
      /** Upper-cased first keyword, e.g. "SELECT", "INSERT", "BEGIN", "SET", "LISTEN", "PREPARE". */
      command: string
      /** Did the statement reference a tenant table (so it needs a tenant, and routes by it)? */
      touchesTenant: boolean
      /** Resolved "schema.table" names the statement references (for routing, metrics, EXPLAIN REWRITE). */
      relations: string[]
      /** What the statement does to session state the pooler must track (SET replay, LISTEN refusal, prepared names). */
      effect?: SessionEffect
      /** Optional (added by parser/): COPY … FROM STDIN into a tenant table: the rows the client streams go through this plan. */
      copyIn?: CopyInPlan
    }
  | { kind: 'tenant'; command: TenantCommand }
  | Refusal

/** The outcome for one client message (a simple Query may hold several statements).
 *  Statements after a tenant command in the same message are rewritten for the tenant that command
 *  sets (RESET ALL / DISCARD ALL clear it for the statements after them); if server/ refuses the
 *  tenant command it must refuse the whole message.
 *  Rewritten SQL embeds the tenant as a literal: a statement prepared (PREPARE, DECLARE … WITH HOLD,
 *  or a protocol-level named statement) under one tenant keeps filtering for that tenant, so server/
 *  must not run it after a tenant change (re-prepare, or refuse EXECUTE/FETCH). */
export interface RewriteResult {
  /** If any statement is refused, the whole message is refused: `refusal` is set and nothing is sent. */
  refusal?: Refusal
  statements: StatementPlan[]
  /** The whole text to send when every statement is `forward` (statements' sql joined, with the client's separators). */
  sql?: string
  /** How the plan was obtained, for metrics: exact text hit, literal-normalised hit, or a cold parse. */
  cache: 'exact' | 'normalized' | 'cold' | 'none'
}
