// Loads the Citus-shaped test catalog (citus-catalog.sql, optionally the tenant-isolation
// variant) into a database of a test server.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { PgServer } from '../helpers/pg-server.js'

/** The SQL files live next to this file's source (dist/test/routing → test/routing). */
function sqlFile(name: string): string {
  return readFileSync(fileURLToPath(new URL(`../../../test/routing/${name}`, import.meta.url)), 'utf8')
}

export const CITUS_CATALOG_SQL = sqlFile('citus-catalog.sql')
export const CITUS_ISOLATED_SQL = sqlFile('citus-catalog-isolated.sql')

/** Creates `database` and loads the catalog into it (the isolation variant on top when `isolated`). */
export function loadCitusCatalog(server: PgServer, database: string, opts: { isolated?: boolean } = {}): void {
  server.sql(`CREATE DATABASE ${database}`)
  server.sql(CITUS_CATALOG_SQL, database)
  if (opts.isolated) server.sql(CITUS_ISOLATED_SQL, database)
}
