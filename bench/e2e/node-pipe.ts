// A reference point for the end-to-end benchmark, not part of the product: the least a
// Node.js proxy can do. It accepts a client, connects it to PostgreSQL and copies bytes both
// ways, parsing nothing and pooling nothing (one server connection per client). In the same
// run as pgtenant, its TPS and CPU show how much of pgtenant's distance to PgBouncer is
// Node's own cost per socket event rather than pgtenant's work.
//
// Two ways (the third argument):
// - `pipe` (default): `socket.pipe()` both ways, Node's Readable/Writable streams.
// - `onread`: the floor pgtenant's own I/O path can reach (issue 18): each side reads into one
//   reused buffer through net.Socket's `onread` (accepted sockets adopted as pgtenant does,
//   server/protocol/handle-io.ts) and each read is written straight to the other socket's
//   descriptor (pgtenant's write path, server/protocol/output.ts: writev on the fd, a copy
//   through socket.write only when the kernel does not take it all).
// Usage: node node-pipe.js <listen port> <PostgreSQL port> [pipe|onread]
import net from 'node:net'
import { adoptAcceptedHandle } from '../../server/protocol/handle-io.js'
import { writeAll } from '../../server/protocol/output.js'
import { markReused } from '../../server/protocol/reused-memory.js'

const [listenPort, pgPort] = process.argv.slice(2, 4).map(Number)
const how = process.argv[4] ?? 'pipe'
if (!listenPort || !pgPort || (how !== 'pipe' && how !== 'onread')) {
  process.stderr.write('usage: node node-pipe.js <listen port> <PostgreSQL port> [pipe|onread]\n')
  process.exit(2)
}

function piped(client: net.Socket): void {
  const server = net.connect({ host: '127.0.0.1', port: pgPort, noDelay: true })
  client.pipe(server).pipe(client)
  client.on('error', () => server.destroy())
  server.on('error', () => client.destroy())
  client.on('close', () => server.destroy())
  server.on('close', () => client.destroy())
}

const clientReads = markReused(Buffer.allocUnsafeSlow(64 * 1024))
const serverReads = markReused(Buffer.allocUnsafeSlow(64 * 1024))

function direct(accepted: net.Socket): void {
  let server: net.Socket | null = null
  const early: Buffer[] = []
  const client =
    adoptAcceptedHandle(accepted, {
      buffer: clientReads,
      callback: (n: number, buf: Uint8Array): boolean => {
        const view = (buf as Buffer).subarray(0, n)
        if (server && !server.connecting) writeAll(server, [view])
        else early.push(Buffer.from(view))
        return true
      },
    }) ?? accepted
  if (client === accepted) {
    process.stderr.write('node-pipe: onread adoption unavailable\n')
    process.exit(1)
  }
  client.setNoDelay(true)
  server = net.connect({
    host: '127.0.0.1',
    port: pgPort,
    noDelay: true,
    onread: {
      buffer: serverReads,
      callback: (n: number, buf: Uint8Array): boolean => {
        writeAll(client, [(buf as Buffer).subarray(0, n)])
        return true
      },
    },
  })
  server.on('connect', () => {
    if (early.length) writeAll(server!, early.splice(0))
  })
  client.on('error', () => server!.destroy())
  server.on('error', () => client.destroy())
  client.on('close', () => server!.destroy())
  server.on('close', () => client.destroy())
}

if (how === 'pipe') net.createServer({ noDelay: true }, piped).listen(listenPort, '127.0.0.1')
else net.createServer({ noDelay: true, pauseOnConnect: true }, direct).listen(listenPort, '127.0.0.1')

process.on('SIGTERM', () => process.exit(0))
