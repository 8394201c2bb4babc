// The admin console: clients connecting to database "pgtenant" (users with admin: true)
// get PgBouncer-style commands answered by the proxy itself as ordinary result sets.
// execute() returns the full response for one Query message (ending in ReadyForQuery).
import * as be from '../protocol/backend.js'
import type { Proxy } from '../proxy.js'
import type { ClientSession } from '../session.js'

export class AdminConsole {
  constructor(private readonly proxy: Proxy) {}

  execute(sql: string, _session: ClientSession): Buffer[] {
    const text = sql.trim().replace(/;\s*$/, '')
    if (/^show\s+version$/i.test(text)) return [...resultSet(['version'], [[`pgtenant ${this.proxy.version}`]], 'SHOW'), be.readyForQuery('I')]
    return [be.errorResponse({ severity: 'ERROR', code: '42601', message: `unknown admin command: ${text.slice(0, 80)}`, hint: 'Try SHOW VERSION.' }), be.readyForQuery('I')]
  }
}

/** A text result set: RowDescription, DataRows, CommandComplete. */
export function resultSet(columns: string[], rows: (string | null)[][], tag: string): Buffer[] {
  return [be.rowDescription(columns), ...rows.map((r) => be.dataRow(r)), be.commandComplete(tag === 'SHOW' ? 'SHOW' : `${tag} ${rows.length}`)]
}
