// Binding the proxy's ports: a port that cannot be bound becomes one line for the operator.
import type net from 'node:net'

/** A port that cannot be bound: one line for the operator (the CLI prints it and exits 2). */
export class ListenError extends Error {}

export function listenError(err: NodeJS.ErrnoException, key: string, host: string, port: number): ListenError {
  const why =
    err.code === 'EADDRINUSE'
      ? 'address already in use'
      : err.code === 'EACCES'
        ? 'permission denied'
        : err.code === 'EADDRNOTAVAIL'
          ? 'address not available on this machine'
          : err.message
  return new ListenError(`cannot listen on ${host}:${port} (${key}): ${why}`)
}

export function bind(server: net.Server, host: string, port: number, key: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, key, host, port)))
    server.listen(port, host, () => resolve())
  })
}
