// A reference point for the end-to-end benchmark, not part of the product: the least a
// Node.js proxy can do. It accepts a client, connects it to PostgreSQL and copies bytes both
// ways with socket.pipe(), parsing nothing and pooling nothing (one server connection per
// client). In the same run as pgtenant, its TPS and CPU show how much of pgtenant's distance
// to PgBouncer is Node's own cost per socket event rather than pgtenant's work.
// Usage: node node-pipe.js <listen port> <PostgreSQL port>
import net from 'node:net'

const [listenPort, pgPort] = process.argv.slice(2).map(Number)
if (!listenPort || !pgPort) {
  process.stderr.write('usage: node node-pipe.js <listen port> <PostgreSQL port>\n')
  process.exit(2)
}

net
  .createServer({ noDelay: true }, (client) => {
    const server = net.connect({ host: '127.0.0.1', port: pgPort, noDelay: true })
    client.pipe(server).pipe(client)
    client.on('error', () => server.destroy())
    server.on('error', () => client.destroy())
    client.on('close', () => server.destroy())
    server.on('close', () => client.destroy())
  })
  .listen(listenPort, '127.0.0.1')

process.on('SIGTERM', () => process.exit(0))
