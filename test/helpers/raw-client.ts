// A logged-in node-postgres connection whose socket a test then drives with raw protocol
// messages (pipelined batches, Flush without Sync), and short builders for those messages.
// Replies come back as short strings: "1" ParseComplete, "C:<tag>", "E:<sqlstate>", "D:<first column>", "Z:<status>".
import net from 'node:net'
import pg from 'pg'
import { serialize } from '../../server/protocol/pg-protocol.js'
import { decodeFields } from '../../server/protocol/backend.js'

export interface Raw {
  exchange: (bytes: Buffer[], readyCount: number, untilMessage?: string) => Promise<string[]>
  close: () => Promise<void>
}

/** A logged-in node-postgres connection whose socket we then drive with raw protocol messages. */
export async function rawConnection(url: string): Promise<Raw> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const stream = (client as unknown as { connection: { stream: net.Socket } }).connection.stream
  stream.removeAllListeners('data')
  let pending = Buffer.alloc(0)
  let waiter: (() => void) | null = null
  stream.on('data', (d: Buffer) => {
    pending = Buffer.concat([pending, d])
    waiter?.()
  })
  const exchange = async (bytes: Buffer[], readyCount: number, untilMessage?: string): Promise<string[]> => {
    stream.write(Buffer.concat(bytes))
    const out: string[] = []
    let ready = 0
    while (untilMessage === undefined ? ready < readyCount : !out.includes(untilMessage)) {
      if (pending.length < 5 || pending.length < 1 + pending.readInt32BE(1)) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`timed out; got ${out.join(' ')}`)), 10_000)
          waiter = () => {
            clearTimeout(timer)
            waiter = null
            resolve()
          }
        })
        continue
      }
      const msg = pending.subarray(0, 1 + pending.readInt32BE(1))
      pending = pending.subarray(msg.length)
      const type = String.fromCharCode(msg[0])
      if (type === 'Z') {
        ready++
        out.push(`Z:${String.fromCharCode(msg[5])}`)
      } else if (type === 'C') out.push(`C:${msg.toString('utf8', 5, msg.length - 1)}`)
      else if (type === 'E') out.push(`E:${decodeFields(msg).C}`)
      else if (type === 'D') out.push(`D:${msg.toString('utf8', 11, 11 + msg.readInt32BE(7))}`)
      else if (type !== 'S' && type !== 'N') out.push(type)
    }
    return out
  }
  return { exchange, close: () => client.end() }
}

export const P = (sql: string, name = ''): Buffer => serialize.parse({ name, text: sql, types: [] })
export const B = (values: (string | null)[] = [], statement = ''): Buffer => serialize.bind({ statement, portal: '', values })
export const E = (): Buffer => serialize.execute({ portal: '' })
export const S = serialize.sync()
export const H = serialize.flush()
export const Q = (sql: string): Buffer => serialize.query(sql)
