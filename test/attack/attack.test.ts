// The attack suite: every attempt in test/attack/*.yaml (one file per class) is sent to the
// real pgtenant (oracle tenant config, all-tenant database, transaction pooling on ONE server
// connection so whatever a client leaves there reaches the next client) as a normal tenant
// (and, where marked, as a user pinned to the tenant), in the simple and the extended protocol.
// Checks per attempt: refused | oracle-equal (same as on only_<tenant>) | no-leak; the no-leak
// scan (every byte the client receives, probes read afterwards in the same session) and the
// other tenants' checksums apply to all of them.
//
// Output: a table (class, id, check, PASS/LEAK/WRONG, evidence) and counts per class; the
// failing list goes to tmp/attack-report.txt. ATTACK_ONLY=<substring> runs matching ids only.
import t from 'tap'
import pg from 'pg'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startOracle, repoRoot, type OracleEnv } from '../oracle/harness.js'
import { ALL_DB, TENANTS, onlyDb } from '../oracle/facts.js'
import { ROLES } from '../helpers/pg-server.js'
import type { RunningProxy } from '../helpers/proxy.js'
import {
  AUDIT_SQL,
  loadAttempts,
  startAttackProxy,
  capture,
  closeQuietly,
  scanLeaks,
  exec,
  compareOutcomes,
  directClient,
  type Attempt,
  type CapClient,
} from './lib.js'
import { runAttempt, runOnce, health, committedCheck, type Ctx, type RunReport, type Status } from './runner.js'

const ONLY = process.env.ATTACK_ONLY
const attempts = loadAttempts().filter((a) => !ONLY || `${a.cls}:${a.id}`.includes(ONLY))
let env: OracleEnv
let proxy: RunningProxy
let ctx: Ctx

t.before(async () => {
  env = await startOracle()
  for (const db of ['oracle_template', ALL_DB, ...TENANTS.map(onlyDb)]) env.server.sql(AUDIT_SQL, db)
  proxy = await startAttackProxy(env)
  const inspect = new pg.Client({ connectionString: env.server.url(ROLES.scram.user, ROLES.scram.password, ALL_DB) })
  await inspect.connect()
  const pids: number[] = []
  for (const c of [inspect, env.allClient, env.inspectClient]) pids.push((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number)
  ctx = { env, proxy, inspect, keepPids: pids }
  ctx.healthBaseline = await health(ctx)
  t.comment(`pooled server connection at start: ${ctx.healthBaseline}`)
})
t.teardown(async () => {
  for (const c of ctx?.directs?.values() ?? []) await closeQuietly(c)
  await closeQuietly(ctx?.admin)
  await ctx?.inspect.end().catch(() => undefined)
  await proxy?.stop()
  await env?.close()
})

t.test('self-test: each check can fail (attacks run directly on all_tenants, bypassing the proxy)', async (t) => {
  // A connection straight to the all-tenant database plays the "proxy": no rewriting at all.
  const directAll = async (tenant: string): Promise<CapClient> => {
    const client = new pg.Client({ connectionString: env.server.url(ROLES.scram.user, ROLES.scram.password, ALL_DB) })
    const c = capture(client, 'unprotected', tenant)
    await client.connect()
    return c
  }
  const selfCtx: Ctx = { ...ctx, openAttacker: (tenant) => directAll(tenant) }
  const mk = (o: Partial<Attempt>): Attempt => ({
    cls: 'self',
    id: 'x',
    sql: '',
    check: 'oracle-equal',
    sqlstate: [],
    allow_refusal: false,
    tenant: 'acme',
    protocols: ['simple'],
    pinned: false,
    setup: [],
    probes: [`SELECT current_setting('x.k', true)`],
    txn: true,
    named: false,
    ...o,
  })
  const rowLeak = await runOnce(selfCtx, mk({ sql: 'SELECT id, email FROM users WHERE id = 3' }), 'simple', 'app')
  t.equal(rowLeak.status, 'LEAK', `rows of other tenants are flagged: ${rowLeak.evidence[0] ?? ''}`)
  const errLeak = await runOnce(selfCtx, mk({ tenant: "o'hare", sql: 'SELECT id FROM users WHERE pg_size_bytes(email) IS NULL' }), 'simple', 'app')
  t.equal(errLeak.status, 'LEAK', `a value quoted in an error message is flagged: ${errLeak.evidence.join(' / ')}`)
  const sideLeak = await runOnce(
    selfCtx,
    mk({ check: 'no-leak', sql: `SELECT count(*) FROM users WHERE set_config('x.k', full_name, false) = '?'` }),
    'extended',
    'app',
  )
  t.equal(sideLeak.status, 'LEAK', `a value carried out in a setting and read afterwards is flagged: ${sideLeak.evidence[0] ?? ''}`)
  const write = await runOnce(selfCtx, mk({ check: 'no-leak', sql: `UPDATE tags SET color = 'pwned' WHERE id = 1` }), 'simple', 'app')
  t.equal(write.status, 'LEAK', `a change to another tenant's rows is flagged: ${write.evidence[0] ?? ''}`)
  const count = await runOnce(selfCtx, mk({ sql: 'SELECT count(*) FROM tasks' }), 'simple', 'app')
  t.equal(count.status, 'WRONG', `a result that differs from only_T is flagged (oracle-equal): ${count.evidence[0] ?? ''}`)
  const notRefused = await runOnce(selfCtx, mk({ check: 'refused', sqlstate: ['42501'], sql: 'SELECT count(*) FROM pg_stat_user_tables' }), 'simple', 'app')
  t.equal(notRefused.status, 'WRONG', `an executed statement fails the refused check: ${notRefused.evidence[0] ?? ''}`)
  // The scanner alone: markers, escapes, and the echo rule.
  t.ok(scanLeaks('<name>O&apos;Hare Company 1</name>', 'acme').length, 'XML-escaped value flagged')
  t.ok(scanLeaks('\\x757365723140676c6f6265782e6578616d706c65', 'acme').length, 'hex (bytea) value flagged')
  t.equal(scanLeaks('user1@acme.example Acme Company 1', 'acme').length, 0, 'own values are not flagged')
  t.equal(scanLeaks(`ERROR: tenant 'globex' refused`, 'acme', [`SELECT 'globex'`]).length, 0, 'a tenant name the attacker wrote is not evidence')
  const uniqueEcho = 'ERROR: duplicate key value violates unique constraint "api_keys_key_key" DETAIL: Key (key)=(key-acme-3) already exists.'
  t.ok(scanLeaks(uniqueEcho, 'globex').length, 'a value of another tenant in an error is flagged')
  for (const spelt of [`E'key\\x2dacme-3'`, `U&'key\\002dacme-3'`, `$q$key-acme-3$q$`, `'key-'\n'acme-3'`]) {
    const sql = `INSERT INTO api_keys (key) VALUES (${spelt})`
    t.equal(scanLeaks(uniqueEcho, 'globex', [sql]).length, 0, `a value the client spelt itself is not evidence: ${JSON.stringify(sql)}`)
  }
  // Comparison of outcomes.
  const d1 = await directClient(env, 'acme')
  const d2 = await directAll('acme')
  const diff = compareOutcomes(await exec(d2, 'SELECT id FROM tasks', undefined, 'simple'), await exec(d1, 'SELECT id FROM tasks', undefined, 'simple'), false)
  t.ok(diff.length > 0, `compareOutcomes sees extra rows: ${diff[0]}`)
  await closeQuietly(d1)
  await closeQuietly(d2)
})

const reports: RunReport[] = []
const classes = [...new Set(attempts.map((a) => a.cls))]
for (const cls of classes) {
  t.test(`attack class ${cls}`, async (t) => {
    const list = attempts.filter((a) => a.cls === cls)
    let bad = 0
    for (const a of list) {
      const runs = await runAttempt(ctx, a)
      reports.push(...runs)
      const worst = runs.find((r) => r.status === 'LEAK') ?? runs.find((r) => r.status === 'WRONG')
      if (worst) {
        bad++
        t.comment(`${worst.status} ${cls}:${a.id} [${worst.label}] ${worst.evidence.slice(0, 3).join(' | ')}`)
      }
    }
    // Once per class: the committed data (attempts inside BEGIN … ROLLBACK skip it per run).
    const ev: string[] = []
    const flag = { leak: false }
    await committedCheck(ctx, null, ev, flag)
    if (ev.length) {
      bad++
      t.comment(`${cls}: committed change found after the class: ${ev.join(' | ')}`)
      reports.push({ attempt: { ...list[0], id: '(class end: committed data)' }, label: 'committed', status: flag.leak ? 'LEAK' : 'WRONG', evidence: ev })
    }
    t.equal(bad, 0, `${cls}: ${list.length} attempts, ${bad} failing (LEAK or WRONG)`)
  })
}

t.test('report', async (t) => {
  const byAttempt = new Map<string, RunReport[]>()
  for (const r of reports) byAttempt.set(`${r.attempt.cls}:${r.attempt.id}`, [...(byAttempt.get(`${r.attempt.cls}:${r.attempt.id}`) ?? []), r])
  const rank: Record<Status, number> = { LEAK: 2, WRONG: 1, PASS: 0 }
  const lines: string[] = []
  const failing: string[] = []
  const counts = new Map<string, Record<Status, number>>()
  lines.push(`${'class'.padEnd(10)} ${'id'.padEnd(44)} ${'check'.padEnd(12)} ${'status'.padEnd(6)} runs  evidence`)
  for (const [key, runs] of byAttempt) {
    const a = runs[0].attempt
    const worst = runs.reduce((w, r) => (rank[r.status] > rank[w.status] ? r : w), runs[0])
    const c = counts.get(a.cls) ?? { PASS: 0, LEAK: 0, WRONG: 0 }
    c[worst.status]++
    counts.set(a.cls, c)
    const badRuns = runs.filter((r) => r.status !== 'PASS').map((r) => `${r.label}:${r.status}`)
    lines.push(
      `${a.cls.padEnd(10)} ${a.id.padEnd(44)} ${a.check.padEnd(12)} ${worst.status.padEnd(6)} ${`${runs.length - badRuns.length}/${runs.length}`.padEnd(5)} ${worst.status === 'PASS' ? '' : (worst.evidence[0] ?? '')}`.slice(
        0,
        400,
      ),
    )
    if (worst.status !== 'PASS') {
      failing.push(
        [
          `${worst.status} ${key}  (check ${a.check}; failing runs: ${badRuns.join(', ')})`,
          `  sql: ${JSON.stringify(a.sql || a.steps?.map((s) => `${s.client}/${s.tenant}: ${s.sql}`).join(' ⏵ '))}`,
          ...(a.setup.length ? [`  setup: ${JSON.stringify(a.setup)}`] : []),
          ...(a.note ? [`  note: ${a.note}`] : []),
          ...worst.evidence.map((e) => `  - ${e}`),
        ].join('\n'),
      )
    }
  }
  const summary = [...counts].map(
    ([cls, c]) =>
      `${cls.padEnd(10)} attempts ${String(c.PASS + c.LEAK + c.WRONG).padStart(4)}  PASS ${String(c.PASS).padStart(4)}  LEAK ${String(c.LEAK).padStart(4)}  WRONG ${String(c.WRONG).padStart(4)}`,
  )
  const total = [...counts.values()].reduce((s, c) => ({ PASS: s.PASS + c.PASS, LEAK: s.LEAK + c.LEAK, WRONG: s.WRONG + c.WRONG }), {
    PASS: 0,
    LEAK: 0,
    WRONG: 0,
  })
  summary.push(
    `${'total'.padEnd(10)} attempts ${String(total.PASS + total.LEAK + total.WRONG).padStart(4)}  PASS ${String(total.PASS).padStart(4)}  LEAK ${String(total.LEAK).padStart(4)}  WRONG ${String(total.WRONG).padStart(4)}  (${reports.length} runs)`,
  )
  const text = `# attack suite report ${new Date().toISOString()}\n\n${lines.join('\n')}\n\n${summary.join('\n')}\n\n# failing attempts\n\n${failing.join('\n\n')}\n`
  for (const l of text.split('\n')) t.comment(l)
  const dir = join(repoRoot(), 'tmp')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'attack-report.txt'), text)
  t.pass(`report written to tmp/attack-report.txt (${failing.length} failing attempts of ${byAttempt.size})`)
})
