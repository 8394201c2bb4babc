// Names of the server-side prepared statements the proxy shares between clients. They carry
// a random part made once per process, so that no client can name another client's shared
// statement in SQL (EXECUTE, DEALLOCATE, EXPLAIN EXECUTE) by guessing: `pgt_<16 hex>_<n>`.
import { randomBytes } from 'node:crypto'

const PROCESS_PART = randomBytes(8).toString('hex')

/** The n-th shared statement name of this process (n from 1). */
export function sharedStatementName(n: number): string {
  return `pgt_${PROCESS_PART}_${n}`
}
