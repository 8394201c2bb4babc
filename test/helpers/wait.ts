// Waiting for a condition instead of sleeping a fixed time: a test then takes as long as the
// machine needs, no longer, and fails with the name of what never happened.

/** Polls `cond` until it holds; throws `timed out waiting for <what>` after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

/** Waits until a statement with exactly this text is running on the server (pg_stat_activity). */
export async function waitForRunning(server: { sql(sql: string, database?: string): string }, query: string, timeoutMs = 20_000): Promise<void> {
  const literal = `'${query.replace(/'/g, "''")}'`
  await waitFor(
    `"${query}" to run on the server`,
    () => server.sql(`SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = ${literal}`).trim() !== '0',
    timeoutMs,
  )
}
