// Runs one statement on a server connection the proxy holds itself (schema discovery,
// Citus metadata) and decodes the rows with the standard client-side codec.
import { PassThrough } from 'node:stream'
import { serialize, parseBackend } from '../protocol/pg-protocol.js'
import type { BackendMessage } from 'pg-protocol/dist/messages.js'
import { BackendError, type BackendConnection } from './connection.js'

export type Row = Record<string, string | null>

export function queryRows(conn: BackendConnection, sql: string, timeoutMs = 10000): Promise<Row[]> {
  return new Promise((resolve, reject) => {
    const stream = new PassThrough()
    let fields: string[] = []
    const rows: Row[] = []
    let error: BackendError | null = null
    let settled = false
    const finish = (err: Error | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      conn.detach()
      stream.end()
      if (err) reject(err)
      else resolve(rows)
    }
    const timer = setTimeout(() => finish(new BackendError(`internal query timed out after ${timeoutMs} ms`, '57014')), timeoutMs)
    parseBackend(stream, (msg: BackendMessage) => {
      const m = msg as any
      if (msg.name === 'rowDescription') fields = m.fields.map((f: { name: string }) => f.name)
      else if (msg.name === 'dataRow') {
        const row: Row = {}
        fields.forEach((f, i) => (row[f] = m.fields[i]))
        rows.push(row)
      } else if (msg.name === 'error') error = new BackendError(m.message, m.code ?? 'XX000')
      else if (msg.name === 'readyForQuery') finish(error)
    }).catch((err: Error) => finish(err))
    conn.attach({
      onData: (chunk) => {
        stream.write(chunk)
        return false // the stream keeps the chunk
      },
      onClose: (err) => finish(err ?? new BackendError('server connection closed', '08006')),
    })
    conn.write(serialize.query(sql))
  })
}
