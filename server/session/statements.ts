// The statements and portals one client created with the extended protocol, as the proxy
// keeps them: the client's name → what to send (the rewrite for the tenant it was prepared
// under) and its name on the server connections, which is shared by every client preparing
// the same text (server/session/statement-names.ts). Pure: no sockets.
import type { CopyInPlan, Refusal, SessionEffect, TenantCommand } from '../../parser/types.js'

/** A statement the client prepared with Parse. */
export interface ClientStatement {
  /** The SQL the client sent, kept to rewrite again if the tenant changes. */
  originalSql: string
  paramTypes: Buffer
  tenant: string | null
  /** What to send: rewritten SQL and its name on the servers ('' for the unnamed statement). */
  sql: string
  serverName: string
  /** Set when the proxy answers this statement itself (SET app.tenant through the extended protocol). */
  local: TenantCommand | null
  effect: SessionEffect | undefined
  /** For the unnamed statement: which Parse of it the server connection holds (see unnamedOwner). */
  token: object
  /** A lone BEGIN / START TRANSACTION: deferred like a simple-protocol BEGIN when the session is idle. */
  begins: boolean
  /** The result shape the client was told when it described the statement (RowDescription bytes, 'n': NoData; null: never described). */
  shape: string | null
  /** The proxy's schema epoch when the statement was prepared (or its shape last checked). */
  epoch: number
  /** Its result shape changed since the client described it: PostgreSQL answers 0A000 until the client prepares it again. */
  resultChanged: boolean
  /** COPY … FROM STDIN into a tenant table: what its rows go through (server/session/copy-in.ts). */
  copyIn: CopyInPlan | null
}

/** Not any Parse: an object (not null) so the field keeps one type and the shape never changes. */
export const NO_TOKEN = {}

/** Built in one place with every field, so all statements share one hidden class. */
export function clientStatement(
  originalSql: string,
  paramTypes: Buffer,
  tenant: string | null,
  sql: string,
  serverName: string,
  local: TenantCommand | null,
  effect: SessionEffect | undefined,
  begins = false,
  epoch = 0,
): ClientStatement {
  return { originalSql, paramTypes, tenant, sql, serverName, local, effect, token: NO_TOKEN, begins, shape: null, epoch, resultChanged: false, copyIn: null }
}

/** What the registry needs to know of a server connection: which statements it holds. */
export interface PreparedOn {
  prepared: { has(name: string): boolean }
  unnamedOwner: object | null
}

export class StatementRegistry {
  private readonly statements = new Map<string, ClientStatement>()
  /** Portals bound to a statement the proxy answers itself (tenant commands). */
  readonly localPortals = new Map<string, ClientStatement>()
  /** Portals bound on the server: the session effect their Execute carries. */
  readonly portalEffects = new Map<string, SessionEffect | undefined>()

  has(name: string): boolean {
    return this.statements.has(name)
  }

  /** Registered at Parse, before the server answers, so a Bind in the same batch finds it. */
  register(name: string, stmt: ClientStatement): void {
    this.statements.set(name, stmt)
  }

  /** Close of a statement: only the client's name goes (the server statement is shared). */
  forget(name: string): void {
    this.statements.delete(name)
  }

  /** DISCARD ALL: every statement of the client is gone. */
  clear(): void {
    this.statements.clear()
  }

  /** Undoes the registration of `stmt` as `name` if the server refuses or skips its Parse (and nothing replaced it since). */
  unregisterer(name: string, stmt: ClientStatement): () => void {
    return () => {
      if (this.statements.get(name) === stmt) this.statements.delete(name)
    }
  }

  /**
   * The statement `name` for a Bind or Describe under `tenant`: prepared under another tenant,
   * it is rewritten again (`reprepare`) so it runs for the current tenant, never the old one.
   */
  resolve(name: string, tenant: string | null, reprepare: (stmt: ClientStatement) => ClientStatement | Refusal): ClientStatement | Refusal {
    const stmt = this.statements.get(name)
    if (!stmt)
      return {
        kind: 'refuse',
        sqlstate: '26000' as Refusal['sqlstate'],
        message: name === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${name}" does not exist`,
      }
    if (stmt.local || stmt.tenant === tenant) return stmt
    const again = reprepare(stmt)
    if ('kind' in again) return again
    this.statements.set(name, again)
    return again
  }

  /** The server statement `serverName` is stale: each client statement on it gets the name `rename` gives. */
  renameServerStatement(serverName: string, rename: (clientName: string, stmt: ClientStatement) => string): void {
    for (const [name, stmt] of this.statements) if (stmt.serverName === serverName) this.statements.set(name, { ...stmt, serverName: rename(name, stmt) })
  }
}

/** Must `stmt` be prepared on `conn` before a Bind or Describe of it? */
export function needsParse(stmt: ClientStatement, conn: PreparedOn): boolean {
  if (stmt.serverName !== '') return !conn.prepared.has(stmt.serverName)
  return stmt.token === NO_TOKEN || conn.unnamedOwner !== stmt.token
}
