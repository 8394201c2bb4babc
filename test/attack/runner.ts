// Runs attack attempts (single statements and multi-client scenarios) against the proxy and
// judges them: refused / oracle-equal / no-leak, with the generic no-leak scan and the
// other-tenants checksum applied to every attempt. Used by attack.test.ts (and its self-test,
// which points the same code at the all-tenant database directly to show that every check can fail).
import pg from 'pg'
import type { OracleEnv } from '../oracle/harness.js'
import type { RunningProxy } from '../helpers/proxy.js'
import {
  type Attempt,
  type CapClient,
  type Outcome,
  type Protocol,
  exec,
  scanLeaks,
  foreignTenantColumns,
  compareOutcomes,
  proxyClient,
  directClient,
  closeQuietly,
  committedSnapshot,
  foreignChanges,
  killProxyBackends,
  rebuildAllTenants,
  oneLine,
  USERS,
  capture,
} from './lib.js'

export type Status = 'PASS' | 'LEAK' | 'WRONG'
export interface RunReport {
  attempt: Attempt
  label: string
  status: Status
  evidence: string[]
}

export interface Ctx {
  env: OracleEnv
  proxy: RunningProxy
  inspect: pg.Client
  keepPids: number[]
  admin?: CapClient
  healthBaseline?: string
  directs?: Map<string, CapClient>
  /** Opens the attacker's connection (default: the proxy). The self-test replaces it with a direct connection to all_tenants. */
  openAttacker?: (tenant: string, login: 'app' | 'pinned' | 'startup', options?: string) => Promise<CapClient>
}

const HEALTH_SQL = `SELECT current_setting('client_encoding') AS enc, current_setting('standard_conforming_strings') AS scs,
  current_setting('search_path') AS sp, current_setting('backslash_quote') AS bq, current_setting('escape_string_warning') AS esw,
  current_setting('enable_indexscan') AS ix, current_setting('enable_bitmapscan') AS bm, current_setting('enable_seqscan') AS sq,
  current_setting('session_replication_role') AS srr, nullif(current_setting('x.k', true), '') AS xk, nullif(current_setting('myapp.user', true), '') AS mu,
  current_setting('app.tenant', true) AS tenant, current_user AS usr,
  (SELECT count(*) FROM pg_cursors) AS cursors,
  (SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM pg_prepared_statements WHERE name !~ '^pgt(enant)?_') AS foreign_prepared,
  (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory') AS advisory, pg_catalog.txid_current_if_assigned() AS xid`

/** What the pooled server connection carries, seen by the bypass user (one-connection pool: the same connection). */
export async function health(ctx: Ctx): Promise<string> {
  if (!ctx.admin || ctx.admin.dead) {
    await closeQuietly(ctx.admin)
    const client = new pg.Client({ connectionString: ctx.proxy.url(USERS.admin.user, USERS.admin.password) })
    ctx.admin = capture(client, 'admin', '')
    await client.connect()
  }
  const o = await exec(ctx.admin, HEALTH_SQL, undefined, 'simple')
  if (!o.ok) return `health query failed: ${o.code} ${o.message}`
  const r = o.results[0]
  return r.fields.map((f, i) => `${f}=${r.rows[0]?.[i]}`).join(' ')
}

/** Committed data of all_tenants equal to the baseline? (Also run once per class by the test.) */
export async function committedCheck(ctx: Ctx, own: string | null, ev: string[], leakFlag: { leak: boolean }): Promise<void> {
  const snap = await committedSnapshot(ctx.inspect)
  const changed = foreignChanges(snap, ctx.env.baseline, null)
  if (changed.length) {
    const foreign = changed.filter((k) => k.slice(k.lastIndexOf('|') + 1) !== own)
    if (foreign.length) leakFlag.leak = true
    ev.push(`COMMITTED change in all_tenants: ${changed.join(', ')} (database rebuilt)`)
    ctx.inspect = await rebuildAllTenants(ctx.env, ctx.inspect)
    ctx.keepPids = [...ctx.keepPids, (await ctx.inspect.query('SELECT pg_backend_pid() AS p')).rows[0].p as number]
    await closeQuietly(ctx.admin)
    ctx.admin = undefined
  }
}

async function afterwards(ctx: Ctx, own: string | null, ev: string[], leakFlag: { leak: boolean }, forceKill: boolean, committed: boolean): Promise<void> {
  // Committed data of all_tenants: another tenant's (or anyone's) committed change is damage.
  if (committed) await committedCheck(ctx, own, ev, leakFlag)
  // State left on the pooled server connection.
  const h = await health(ctx)
  if (ctx.healthBaseline !== undefined && h !== ctx.healthBaseline) {
    const diff = h.split(' ').filter((x) => !ctx.healthBaseline!.split(' ').includes(x))
    ev.push(`server connection state survived the client: ${diff.join(' ')}`)
    const l = own ? scanLeaks(h, own) : []
    if (l.length) {
      leakFlag.leak = true
      ev.push(`  … and it holds another tenant's value: ${l[0].context}`)
    }
    forceKill = true
  }
  if (forceKill) {
    await killProxyBackends(ctx.inspect, ctx.keepPids)
    await closeQuietly(ctx.admin)
    ctx.admin = undefined
  }
}

function describe(o: Outcome): string {
  return o.ok
    ? o.results.map((r) => `${r.command} ${r.rowCount ?? ''}`.trim()).join('; ') || 'ok'
    : `error ${o.code} ${oneLine(o.message ?? '', 120)}${o.fromServer === false ? ' [proxy]' : ''}`
}

/** A direct connection to only_<tenant>, reused across attempts without startup options. */
async function directFor(ctx: Ctx, a: Attempt): Promise<CapClient | undefined> {
  if (a.options) return directClient(ctx.env, a.tenant, a.options).catch(() => undefined)
  ctx.directs ??= new Map()
  const have = ctx.directs.get(a.tenant)
  if (have && !have.dead) return have
  const c = await directClient(ctx.env, a.tenant).catch(() => undefined)
  if (c) ctx.directs.set(a.tenant, c)
  return c
}

/** One attempt, one protocol, one login. */
export async function runOnce(ctx: Ctx, a: Attempt, protocol: Protocol, login: 'app' | 'pinned'): Promise<RunReport> {
  const ev: string[] = []
  const flag = { leak: false }
  const wrong: string[] = []
  const blobs: string[] = []
  const echo = [a.sql, ...a.setup, ...a.probes]
  let attacker: CapClient | undefined
  let direct: CapClient | undefined
  let got: Outcome = { ok: false, code: 'XXXXX', message: 'not run', results: [], copy: [], audit: [], blob: '' }
  let exp: Outcome = { ok: false, code: 'XXXXX', message: 'not run', results: [], copy: [], audit: [], blob: '' }
  let judged: Outcome | undefined
  try {
    try {
      attacker = ctx.openAttacker ? await ctx.openAttacker(a.tenant, login, a.options) : await proxyClient(ctx.proxy, a.tenant, login, a.options)
    } catch (e) {
      const err = e as { code?: string; message?: string }
      got = { ok: false, code: err.code ?? 'CONN', message: `connect: ${err.message}`, results: [], copy: [], audit: [], blob: '' }
    }
    direct = await directFor(ctx, a)
    if (attacker) {
      let setupRefusal: Outcome | undefined
      const both = async (sql: string) => {
        const [g, d] = await Promise.all([exec(attacker!, sql, undefined, 'simple'), direct ? exec(direct, sql, undefined, 'simple') : undefined])
        blobs.push(g.blob)
        if (!g.ok && d?.ok && !setupRefusal) setupRefusal = g
        return g
      }
      if (a.txn) {
        await both('BEGIN')
        if (direct) await exec(direct, `SELECT set_config('app.tenant', '${a.tenant.replace(/'/g, "''")}', true)`, undefined, 'simple')
      }
      await ctx.inspect.query('SELECT oracle_reset()')
      if (direct) await exec(direct, 'SELECT oracle_reset()', undefined, 'simple')
      let setupFailed = false
      for (const s of a.setup) {
        const g = await both(s)
        if (!g.ok) setupFailed = true
      }
      const name = a.named && protocol === 'extended' ? `atk_${a.id.replace(/[^a-z0-9_]/gi, '_')}` : undefined
      ;[got, exp] = await Promise.all([
        exec(attacker, a.sql, a.params, protocol, name),
        direct ? exec(direct, a.sql, a.params, protocol, name) : Promise.resolve(exp),
      ])
      blobs.push(got.blob, ...got.copy)
      if (setupFailed) ev.push('(a setup statement failed)')
      // A setup statement (SET …) the proxy refused while only_T accepted it: the attempt was refused there.
      if (setupRefusal) {
        ev.push(`(setup refused by the proxy: ${setupRefusal.code} ${oneLine(setupRefusal.message ?? '', 80)}; the statement still ran: ${describe(got)})`)
        judged = setupRefusal
      }
      // Row changes (audit trigger): another tenant's row touched by a statement that succeeded is damage;
      // for oracle-equal the tenant's own changes must be the ones only_T makes.
      if (got.ok) {
        const foreign = got.audit.filter((r) => r.tenants.some((x) => x !== a.tenant))
        if (foreign.length) {
          flag.leak = true
          ev.push(
            `changed ${foreign.length} row(s) of other tenants: ${foreign
              .slice(0, 2)
              .map((r) => oneLine(r.line, 200))
              .join(' ; ')}`,
          )
        }
        if (a.check === 'oracle-equal' && exp.ok && !setupRefusal) {
          const norm = (xs: { line: string }[]) => xs.map((x) => x.line.replace(/"id": 1000\d\d/g, '"id": <seq>')).sort()
          const g = norm(got.audit)
          const e = norm(exp.audit)
          if (JSON.stringify(g) !== JSON.stringify(e))
            wrong.push(
              `row changes differ from only_T: ${g.length} vs ${e.length}${g
                .filter((x) => !e.includes(x))
                .slice(0, 1)
                .map((x) => ' extra ' + oneLine(x, 160))
                .join('')}${e
                .filter((x) => !g.includes(x))
                .slice(0, 1)
                .map((x) => ' missing ' + oneLine(x, 160))
                .join('')}`,
            )
        }
      }
      // In-transaction probes and data check.
      if (a.txn && got.ok) {
        for (const p of a.probes) blobs.push((await exec(attacker, p, undefined, 'simple')).blob)
        const s = await exec(attacker, 'SELECT oracle_snapshot()', undefined, 'simple')
        const d = direct && exp.ok ? await exec(direct, 'SELECT oracle_snapshot()', undefined, 'simple') : undefined
        if (s.ok && s.results.length) {
          const snap = JSON.parse(String(s.results[0].rows[0][0])) as Record<string, string>
          const fc = foreignChanges(snap, ctx.env.baseline, a.tenant)
          if (fc.length) {
            flag.leak = true
            ev.push(`another tenant's rows changed (in the transaction): ${fc.join(', ')}`)
          }
          if (a.check === 'oracle-equal' && d?.ok && d.results.length && !ev.some((x) => x.startsWith('changed'))) {
            const dsnap = JSON.parse(String(d.results[0].rows[0][0])) as Record<string, string>
            const own = [...new Set([...Object.keys(snap), ...Object.keys(dsnap)])].filter((k) => {
              const grp = k.slice(k.lastIndexOf('|') + 1)
              return (grp === a.tenant || grp === '*') && snap[k] !== dsnap[k]
            })
            if (own.length) wrong.push(`the tenant's own data differs from only_T: ${own.join(', ')}`)
          }
        }
      }
      if (a.txn) {
        await both('ROLLBACK')
      }
      for (const p of a.probes) blobs.push((await exec(attacker, p, undefined, 'simple')).blob)
    }
    blobs.push(...(attacker?.all ?? []))
    // The generic no-leak check.
    const leaks = scanLeaks(blobs.join('\n'), a.tenant, echo)
    for (const l of leaks) {
      flag.leak = true
      ev.push(`saw ${l.tenant}'s data (${JSON.stringify(l.marker)}): …${l.context}…`)
    }
    const allowed = new Set(foreignTenantColumns(exp.results, '\u0000', new Set()))
    const cols = got.ok ? foreignTenantColumns(got.results, a.tenant, allowed) : []
    if (cols.length) {
      flag.leak = true
      ev.push(`rows of tenant(s) ${cols.join(', ')} returned`)
    }
    // The per-attempt check.
    const j = judged ?? got
    if (a.check === 'refused') {
      if (j.ok) wrong.push(`NOT REFUSED: executed (${describe(got)})`)
      else if (a.sqlstate.length && !a.sqlstate.includes(j.code ?? ''))
        wrong.push(`failed with ${j.code} (${oneLine(j.message ?? '', 100)}), expected ${a.sqlstate.join('/')}`)
    } else if (a.check === 'oracle-equal') {
      if (!direct) wrong.push('direct connection to only_T failed')
      else wrong.push(...compareOutcomes(j, exp, a.allow_refusal))
    }
  } catch (e) {
    wrong.push(`harness error: ${(e as Error).stack ?? e}`)
  } finally {
    await closeQuietly(attacker)
    if (direct && (a.options || !a.txn || direct.dead || a.named)) {
      ctx.directs?.delete(a.tenant)
      await closeQuietly(direct)
    }
  }
  const mayCommit = !a.txn || /\b(COMMIT|END|BEGIN|START|ROLLBACK|PREPARE\s+TRANSACTION)\b/i.test(a.sql + a.setup.join(' ')) || !!attacker?.dead
  await afterwards(ctx, a.tenant, ev, flag, false, mayCommit).catch((e) => ev.push(`afterwards failed: ${(e as Error).message}`))
  const status: Status = flag.leak
    ? 'LEAK'
    : wrong.length || ev.some((x) => x.startsWith('server connection state') || x.startsWith('COMMITTED'))
      ? 'WRONG'
      : 'PASS'
  const evidence = [...ev.filter((x) => status !== 'PASS' || !x.startsWith('(')), ...wrong]
  evidence.push(`proxy: ${describe(got)} | only_T: ${describe(exp)}`)
  return { attempt: a, label: `${protocol}/${login}`, status, evidence }
}

/** A multi-client scenario: steps in order; every client's received data is scanned for other tenants' values. */
export async function runScenario(ctx: Ctx, a: Attempt): Promise<RunReport> {
  const ev: string[] = []
  const wrong: string[] = []
  const flag = { leak: false }
  const clients = new Map<string, CapClient>()
  const sent = new Map<string, string[]>()
  const vars = new Map<string, string>()
  try {
    for (const [i, s] of (a.steps ?? []).entries()) {
      let c = clients.get(s.client)
      if (!c || c.dead) {
        try {
          c = await proxyClient(ctx.proxy, s.tenant, s.login ?? 'app', s.options, s.client)
          clients.set(s.client, c)
        } catch (e) {
          ev.push(`step ${i + 1} (${s.client}): connect failed: ${(e as Error).message}`)
          continue
        }
      }
      const sql = s.sql.replace(/\$\{(\w+)\}/g, (_, v: string) => vars.get(v) ?? `<${v} not captured>`)
      const mine = [...(sent.get(s.client) ?? []), sql]
      sent.set(s.client, mine)
      const protocol: Protocol = s.protocol ?? 'simple'
      const o = await exec(c, sql, s.params, protocol, s.name)
      const text = [o.blob, ...o.copy, ...c.all.splice(0)].join('\n')
      if (s.capture) {
        const m = new RegExp(s.capture).exec(text)
        if (m) vars.set(s.capture_as ?? 'v', m[1])
        else ev.push(`step ${i + 1}: nothing captured by /${s.capture}/ (${describe(o)})`)
      }
      for (const l of scanLeaks(text, s.tenant, mine)) {
        flag.leak = true
        ev.push(`step ${i + 1} (${s.client}, tenant ${s.tenant}) saw ${l.tenant}'s data (${JSON.stringify(l.marker)}): …${l.context}…`)
      }
      if (s.oracle) {
        const d = await directClient(ctx.env, s.tenant, s.options)
        const e = await exec(d, sql, s.params, protocol, s.name)
        await closeQuietly(d)
        const diff = compareOutcomes(o, e, false)
        if (diff.length) wrong.push(`step ${i + 1} (${s.client}) not as on only_${s.tenant}: ${diff.join('; ')} [proxy: ${describe(o)}]`)
      }
      if (s.close) {
        await closeQuietly(c)
        clients.delete(s.client)
      }
    }
  } catch (e) {
    wrong.push(`harness error: ${(e as Error).stack ?? e}`)
  } finally {
    for (const c of clients.values()) await closeQuietly(c)
  }
  await afterwards(ctx, null, ev, flag, true, true).catch((e) => ev.push(`afterwards failed: ${(e as Error).message}`))
  // A scenario's leftover server state is expected (it is the attack); only leaks and wrong results count.
  const evidence = ev
  const status: Status = flag.leak ? 'LEAK' : wrong.length ? 'WRONG' : 'PASS'
  return { attempt: a, label: 'scenario', status, evidence: status === 'PASS' ? [] : [...evidence, ...wrong] }
}

export async function runAttempt(ctx: Ctx, a: Attempt): Promise<RunReport[]> {
  if (a.steps) return [await runScenario(ctx, a)]
  const out: RunReport[] = []
  for (const protocol of a.protocols)
    for (const login of (a.pinned ? ['app', 'pinned'] : ['app']) as ('app' | 'pinned')[]) out.push(await runOnce(ctx, a, protocol, login))
  return out
}
