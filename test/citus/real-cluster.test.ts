// pgtenant in front of a real Citus cluster, when one is available: PGTENANT_CITUS_URL names the
// coordinator database (test/citus/cluster.sh start prints one). Without it the file reports a
// visible skip and runs nothing; the tests on the Citus-shaped catalog (test/routing/) run in
// `npm test` regardless.
//
// With it: the oracle's all-tenant database is loaded into the cluster, its tenant tables distributed
// by their tenant column (test/citus/oracle-on-citus.ts), pgtenant starts with `citus: true` on the
// coordinator, and
//  1. the INSERT tenant guard is checked on Citus through pgtenant: parameters and expressions of the
//     session tenant are written, another tenant's value writes nothing (issue 20);
//  2. the oracle corpus runs through pgtenant's worker routing, every entry × tenant × protocol,
//     compared with the tenant's own database on plain PostgreSQL: 0 valid statements refused and 0
//     differences are required; the routing decisions are counted from pgtenant's metrics.
// PGTENANT_CITUS_CORPUS=edge,writes limits the corpus files (default: all); the full report of
// differences goes to tmp/citus-oracle-report.txt.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  startOracle,
  loadCorpus,
  loadNegative,
  runCorpusEntry,
  runNegativeEntry,
  runOnClient,
  protocolsFor,
  tenantsFor,
  formatResult,
  formatNegative,
  repoRoot,
  proxyClient,
  proxyTarget,
  type ProxyClient,
  type OracleEnv,
} from '../oracle/harness.js'
import { ORACLE_TENANT_YAML, TENANTS } from '../oracle/facts.js'
import { freePort } from '../helpers/pg-server.js'
import { startProxy, type RunningProxy } from '../helpers/proxy.js'
import { citusOracleEnv, loadOracleOnCitus, type CitusOracleInfo } from './oracle-on-citus.js'

const URL_VARIABLE = 'PGTENANT_CITUS_URL'
const citusUrl = process.env[URL_VARIABLE]

if (!citusUrl) {
  t.comment(
    `SKIPPED: no real Citus cluster (${URL_VARIABLE} is not set). Start one with test/citus/cluster.sh start and set ${URL_VARIABLE} to the URL it prints.`,
  )
  t.skip(`real Citus cluster: ${URL_VARIABLE} not set`, () => undefined)
} else {
  realCluster(citusUrl)
}

/**
 * Corpus entries that pgtenant's rewrite makes Citus refuse although Citus runs the statement as the
 * application wrote it (found by this test; reported as TODO with the reason, never skipped).
 */
// (none left: the guard of `SET tenant_id = tenant_id` (62fc230), the evaluation-order guard around
// row-independent values such as current_setting() and now(), and MERGE INSERT of the source's tenant
// column were each found here and fixed)
const CITUS_KNOWN_GAPS: Record<string, string> = {}

function realCluster(url: string): void {
  let env: OracleEnv
  let proxy: RunningProxy
  let metricsPort = 0
  let info: CitusOracleInfo
  const clients = new Map<string, ProxyClient>()
  const direct = new Map<string, string | null>()

  /**
   * The statement as the application wrote it, run directly on the coordinator (rolled back; app.tenant
   * set): null if Citus runs it, else its error. A statement Citus itself refuses is a Citus
   * limitation, not a pgtenant difference.
   */
  async function directOnCitus(sql: string, params: unknown[] | undefined, protocol: 'simple' | 'extended', tenant: string): Promise<string | null> {
    const k = JSON.stringify([sql, params, protocol, tenant])
    if (direct.has(k)) return direct.get(k)!
    const c = env.allClient
    await c.query('BEGIN')
    await c.query(`SELECT set_config('app.tenant', $1, true)`, [tenant])
    const out = await runOnClient(c, sql, params, protocol)
    await c.query('ROLLBACK').catch(() => undefined)
    if (/\bPREPARE\b/i.test(sql)) await c.query('DEALLOCATE ALL').catch(() => undefined)
    const v = out.ok ? null : `${out.code} ${out.message}`
    direct.set(k, v)
    return v
  }

  /** pgtenant's routing decisions so far, by kind (pgtenant_routing_decisions_total). */
  async function routingDecisions(): Promise<Record<string, number>> {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const out: Record<string, number> = {}
    for (const m of text.matchAll(/^pgtenant_routing_decisions_total\{([^}]*)\} (\d+)/gm)) {
      const kind = /kind="([^"]*)"/.exec(m[1])?.[1] ?? '?'
      out[kind] = (out[kind] ?? 0) + Number(m[2])
    }
    return out
  }

  t.before(async () => {
    info = await loadOracleOnCitus(url, TENANTS)
    t.comment(
      `Citus: ${info.tables} tenant tables distributed by their tenant column, ${info.referenceTables} reference tables, loaded in ${info.seconds.toFixed(1)} s; ` +
        `shards: ${[...info.placements].map(([k, v]) => `${k} → ${v}`).join(', ')}`,
    )
    env = await citusOracleEnv(await startOracle(), url)
    metricsPort = await freePort()
    proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
metrics: 127.0.0.1:${metricsPort}
users:
  app: { password: app_pw }
${ORACLE_TENANT_YAML}
backends:
  citus: { url: ${JSON.stringify(url)}, citus: true, pool: 4 }
pool: { mode: transaction, wait_timeout_ms: 20000 }
`)
    for (const tenant of TENANTS) clients.set(tenant, await proxyClient(proxy.url('app', 'app_pw'), tenant))
  })
  t.teardown(async () => {
    for (const c of clients.values()) await c.client.end().catch(() => undefined)
    await proxy?.stop()
    await env?.close()
  })

  t.test('the INSERT tenant guard on Citus, through pgtenant (issue 20)', async (t) => {
    const { client } = clients.get('acme')!
    const count = async () => Number((await client.query(`SELECT count(*) AS n FROM tags`)).rows[0].n)
    const attempt = async (sql: string, params?: unknown[], name?: string) => {
      try {
        const r = await client.query({ text: sql, values: params, name })
        return `${r.command} ${r.rowCount}`
      } catch (e) {
        return `ERROR ${(e as { code?: string }).code}`
      }
    }
    await client.query('BEGIN')
    try {
      const before = await count()
      const ins = `INSERT INTO tags (tenant_id, id, name) VALUES ($1, $2, $3)`
      // seven runs of one named statement: past PostgreSQL's switch to a generic plan
      for (let i = 0; i < 7; i++)
        t.equal(await attempt(ins, ['acme', 9000 + i, `g${i}`], 'guard_ins'), 'INSERT 1', `parameter $1 = 'acme' (run ${i + 1} of a named statement)`)
      t.equal(await attempt(`INSERT INTO tags (tenant_id, id, name) VALUES (lower('ACME'), 9100, 'expr')`), 'INSERT 1', `expression lower('ACME')`)
      t.equal(
        await attempt(`INSERT INTO tags (tenant_id, id, name) VALUES ($1, 9101, 'a'), ('ac' || 'me', 9102, 'b')`, ['acme']),
        'INSERT 2',
        'two rows: a parameter and an expression',
      )
      t.equal(
        await attempt(
          `INSERT INTO tags (tenant_id, id, name) VALUES ($1, 9100, 'upd') ON CONFLICT (tenant_id, id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, name = EXCLUDED.name`,
          ['acme'],
        ),
        'INSERT 1',
        'ON CONFLICT … DO UPDATE SET tenant_id = EXCLUDED.tenant_id (no guard)',
      )
      t.equal(await count(), before + 10, 'every valid row is there')
      await client.query('SAVEPOINT s')
      t.equal(await attempt(ins, ['globex', 9200, 'evil'], 'guard_ins'), 'ERROR 42501', `parameter $1 = 'globex': tenant violation`)
      await client.query('ROLLBACK TO SAVEPOINT s')
      t.equal(
        await attempt(`INSERT INTO tags (tenant_id, id, name) VALUES (upper('globex'), 9201, 'evil')`),
        'ERROR 42501',
        'expression of another tenant: tenant violation',
      )
      await client.query('ROLLBACK TO SAVEPOINT s')
      t.equal(await count(), before + 10, 'nothing written for another tenant')
    } finally {
      await client.query('ROLLBACK')
    }
    const other = await env.inspectClient.query(`SELECT count(*) AS n FROM tags WHERE id >= 9000`)
    t.equal(Number(other.rows[0].n), 0, 'no row of the test remains on the cluster, for any tenant')
  })

  t.test('the oracle corpus through worker routing', async (t) => {
    const only = (process.env.PGTENANT_CITUS_CORPUS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
    const corpus = loadCorpus().filter((e) => only.length === 0 || only.includes(e.file))
    const decisionsBefore = await routingDecisions()
    const report: string[] = []
    let runs = 0
    let passedRuns = 0
    let refusedValid = 0
    let differences = 0
    let leaks = 0
    let knownGapRuns = 0
    let entriesPassed = 0
    const limitations = new Map<string, string>()
    const gaps = new Map<string, number>()
    const started = Date.now()
    for (const entry of corpus) {
      let entryOk = true
      for (const tenant of tenantsFor(entry))
        for (const protocol of protocolsFor(entry)) {
          const c = clients.get(tenant)!
          const r = await runCorpusEntry(env, entry, tenant, proxyTarget(c, 'pgtenant on Citus'), protocol)
          runs++
          if (r.pass) {
            passedRuns++
            continue
          }
          entryOk = false
          if (r.leak) leaks++
          const gap = entry.known_gap ?? CITUS_KNOWN_GAPS[entry.id]
          if (gap && !r.leak) {
            knownGapRuns++
            gaps.set(entry.id, (gaps.get(entry.id) ?? 0) + 1)
            report.push(`[known gap: ${gap}]\n${formatResult(r)}`)
            continue
          }
          // the rewritten statement failed on the server: does Citus run the original at all?
          if (!r.leak && !r.got.ok && !r.got.refused) {
            const why = await directOnCitus(entry.sql, entry.params, protocol, tenant)
            if (why !== null) {
              limitations.set(entry.id, why)
              report.push(`[Citus limitation: the statement as written fails on Citus too: ${why}]\n${formatResult(r)}`)
              continue
            }
          }
          if (r.refused && r.expected.ok && !entry.allow_refusal) refusedValid++
          else differences++
          report.push(formatResult(r))
        }
      if (entryOk) entriesPassed++
    }
    const after = await routingDecisions()
    const decisions = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (decisionsBefore[k] ?? 0)]))
    const summary =
      `corpus${only.length ? ` (${only.join(', ')})` : ''}: ${corpus.length} entries, ${entriesPassed} oracle-equal in every run; ` +
      `${runs} runs: ${passedRuns} equal, ${refusedValid} valid statements refused, ${differences} other differences, ${leaks} leaks, ` +
      `${knownGapRuns} runs of known gaps (${gaps.size} entries), ${limitations.size} entries Citus itself does not run as written (${[...limitations.keys()].join(', ')}); ` +
      `routing decisions: ${JSON.stringify(decisions)}; ${((Date.now() - started) / 1000).toFixed(0)} s`
    t.comment(summary)
    const dir = join(repoRoot(), 'tmp')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'citus-oracle-report.txt'), `${summary}\n\n${report.join('\n\n')}\n`)
    t.ok(runs > 0, `${runs} runs`)
    t.equal(leaks, 0, 'no leak')
    t.equal(refusedValid, 0, 'no valid statement refused')
    t.equal(differences, 0, 'no difference from the tenant’s own database (tmp/citus-oracle-report.txt lists them)')
    t.ok((decisions['citus-worker'] ?? 0) > 0, 'transactions went straight to the workers')
    for (const [id, n] of gaps) t.fail(`${id} (${n} runs)`, { todo: `known gap: ${CITUS_KNOWN_GAPS[id] ?? corpus.find((e) => e.id === id)?.known_gap}` })
  })

  const negativeSkip = process.env.PGTENANT_CITUS_CORPUS ? 'PGTENANT_CITUS_CORPUS limits the run to part of the corpus' : false
  t.test('the negative corpus through pgtenant on Citus: refused or failed, nothing changed', { skip: negativeSkip }, async (t) => {
    let passed = 0
    const negative = loadNegative().filter((e) => e.tenant !== null)
    for (const entry of negative) {
      const target = proxyTarget(clients.get(entry.tenant ?? 'acme')!, 'pgtenant on Citus')
      for (const protocol of entry.params ? (['extended'] as const) : (['simple', 'extended'] as const)) {
        const r = await runNegativeEntry(env, entry, target, protocol)
        if (r.pass) passed++
        else if (entry.known_gap) t.fail(entry.id, { todo: `known gap: ${entry.known_gap}` })
        else t.fail(formatNegative(r), { diagnostic: false })
      }
    }
    t.comment(`negative corpus (tenant set): ${passed} runs refused or failed with nothing changed`)
  })
}
