// Starts a throwaway PostgreSQL for a test: initdb into a temp dir (as the `postgres`
// OS user when we are root, since PostgreSQL refuses to run as root), loopback only,
// on a free port. Every test file that needs a server starts its own.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, existsSync, appendFileSync, rmSync, chownSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'

export interface PgServer {
  host: string
  port: number
  dataDir: string
  socketDir: string
  bin: string
  /** Run SQL as the superuser over the Unix socket; returns psql's unaligned output. */
  sql(sql: string, database?: string): string
  /** Run a script of statements, each in its own transaction (psql -f -: CREATE DATABASE may be among them), in one psql. */
  script(sql: string, database?: string): void
  url(user: string, password: string, database?: string): string
  stop(): void
}

export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres'))) : []
  if (versions.length === 0) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql (run .ci/run)')
  versions.sort((a, b) => Number(b) - Number(a))
  return join(root, versions[0], 'bin')
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0))
    })
  })
}

const isRoot = process.getuid?.() === 0

function asPostgres(cmd: string, args: string[]): void {
  const [file, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]
  const res = spawnSync(file, argv, { encoding: 'utf8' })
  if (res.status !== 0) throw new Error(`${cmd} failed: ${res.stderr || res.stdout}`)
}

export interface PgOptions {
  /** Extra postgresql.conf lines. */
  conf?: string[]
}

/** Roles every test server has: a SCRAM role, an md5 role, a cleartext-authenticated role and a trust role. */
export const ROLES = {
  scram: { user: 'scram_user', password: 'scram pw' },
  md5: { user: 'md5_user', password: 'md5_pw' },
  plain: { user: 'plain_user', password: 'plain_pw' },
  trust: { user: 'trust_user', password: '' },
}

export async function startPostgres(opts: PgOptions = {}): Promise<PgServer> {
  const bin = postgresBinDir()
  const dataDir = mkdtempSync(join(tmpdir(), 'pgtenant-pg-'))
  if (isRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    chownSync(dataDir, uid, gid)
  }
  const pgdata = join(dataDir, 'data')
  asPostgres(join(bin, 'initdb'), ['-D', pgdata, '--no-sync', '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C'])
  const port = await freePort()
  appendFileSync(
    join(pgdata, 'postgresql.conf'),
    [
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${dataDir}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 300',
      'shared_buffers = 64MB',
      ...(opts.conf ?? []),
    ].join('\n') + '\n',
  )
  const hba = [
    'local all all trust',
    `host all ${ROLES.md5.user} 127.0.0.1/32 md5`,
    `host all ${ROLES.plain.user} 127.0.0.1/32 password`,
    `host all ${ROLES.trust.user} 127.0.0.1/32 trust`,
    'host all all 127.0.0.1/32 scram-sha-256',
  ]
  execFileSync('sh', ['-c', `printf '%s\\n' "$@" > '${join(pgdata, 'pg_hba.conf')}'`, 'sh', ...hba])
  asPostgres(join(bin, 'pg_ctl'), ['-D', pgdata, '-l', join(dataDir, 'server.log'), '-w', '-t', '60', 'start'])

  const server: PgServer = {
    host: '127.0.0.1',
    port,
    dataDir,
    socketDir: dataDir,
    bin,
    sql(sql, database = 'postgres') {
      return execFileSync(
        join(bin, 'psql'),
        ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', dataDir, '-p', String(port), '-U', 'postgres', '-d', database, '-c', sql],
        {
          encoding: 'utf8',
        },
      ).trim()
    },
    script(sql, database = 'postgres') {
      execFileSync(join(bin, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', dataDir, '-p', String(port), '-U', 'postgres', '-d', database, '-f', '-'], {
        input: sql,
      })
    },
    url(user, password, database = 'postgres') {
      const auth = password ? `${encodeURIComponent(user)}:${encodeURIComponent(password)}` : encodeURIComponent(user)
      return `postgres://${auth}@127.0.0.1:${port}/${database}`
    },
    stop() {
      try {
        asPostgres(join(bin, 'pg_ctl'), ['-D', pgdata, '-m', 'immediate', '-w', 'stop'])
      } catch {
        /* already stopped */
      }
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
  server.sql(`SET password_encryption = 'scram-sha-256'; CREATE ROLE ${ROLES.scram.user} LOGIN SUPERUSER PASSWORD '${ROLES.scram.password}';
    SET password_encryption = 'md5'; CREATE ROLE ${ROLES.md5.user} LOGIN SUPERUSER PASSWORD '${ROLES.md5.password}';
    SET password_encryption = 'scram-sha-256'; CREATE ROLE ${ROLES.plain.user} LOGIN SUPERUSER PASSWORD '${ROLES.plain.password}';
    CREATE ROLE ${ROLES.trust.user} LOGIN SUPERUSER;`)
  process.once('exit', () => server.stop())
  return server
}
