// Where and as whom the proxy connects to a backend (pools, catalog reads, the CLI's --check).
import type { BackendConfig, UserConfig } from '../config-types.js'
import type { BackendTarget } from './connection.js'

/** Where and as whom to connect: the URL's user, else the client's own user and configured password. */
export function targetFor(backend: BackendConfig, clientUser: string, user: UserConfig | undefined): BackendTarget {
  const url = backend.url
  const password = url.user !== undefined ? url.password : user && !isHashed(user.password) ? user.password : undefined
  return {
    host: url.host,
    port: url.port,
    database: url.database,
    user: url.user ?? clientUser,
    password,
    sslmode: url.sslmode,
  }
}

/** A SCRAM or md5 verifier, not a password the proxy could log in with. */
export function isHashed(password: string): boolean {
  return password.startsWith('SCRAM-SHA-256$') || (password.startsWith('md5') && password.length === 35)
}
