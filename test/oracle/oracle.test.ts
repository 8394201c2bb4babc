// The differential oracle over the whole corpus (test/oracle/corpus/*.yaml) and the negative
// corpus (test/oracle/negative.yaml): every entry, every tenant, simple and extended protocol,
// rewritten by parser/ on all_tenants vs. the original on only_<tenant>.
//
// Output: one tap subtest per corpus file; each failing entry is one failure whose message
// has the statement, tenant(s), protocol, rewritten SQL and a row diff. Entries marked
// known_gap are run too and listed as TODO (never skipped silently). A plain-text summary of
// every mismatch is written to tmp/oracle-report.txt.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { oracleFacts } from './facts.js'
import {
  startOracle,
  loadCorpus,
  loadNegative,
  loadRewriter,
  rewriterTarget,
  clientTarget,
  runCorpusEntry,
  runNegativeEntry,
  runStatement,
  protocolsFor,
  tenantsFor,
  formatResult,
  formatNegative,
  repoRoot,
  type OracleEnv,
  type RewriterApi,
  type RunResult,
  type CorpusEntry,
  type NegativeResult,
} from './harness.js'

const corpus = loadCorpus()
const negative = loadNegative()
const report: string[] = []

let env: OracleEnv
let rewriter: RewriterApi | undefined
let rewriterError = ''

t.before(async () => {
  env = await startOracle()
  try {
    rewriter = await loadRewriter(env.facts)
  } catch (e) {
    rewriterError = (e as Error).message
  }
})
t.teardown(async () => {
  mkdirSync(join(repoRoot(), 'tmp'), { recursive: true })
  writeFileSync(join(repoRoot(), 'tmp', 'oracle-report.txt'), report.join('\n\n') + '\n')
  await env?.close()
})

// The corpus itself must be valid: each entry runs directly on only_<tenant> (errors only where
// expect_error says so), and the oracle must be sensitive: with NO rewriting, most entries that
// touch tenant tables must show a difference (overlapping ids make forgotten filters visible).
t.test('corpus is valid and the oracle detects a missing rewrite', async (t) => {
  const byFile = new Map<string, number>()
  for (const e of corpus) byFile.set(e.file, (byFile.get(e.file) ?? 0) + 1)
  t.comment(`corpus: ${corpus.length} entries (${[...byFile].map(([f, n]) => `${f} ${n}`).join(', ')}), negative: ${negative.length}`)
  t.ok(corpus.length >= 300, 'at least 300 positive entries')
  const invalid: string[] = []
  for (const entry of corpus) {
    for (const tenant of tenantsFor(entry)) {
      for (const protocol of protocolsFor(entry)) {
        const direct = clientTarget(env.onlyClients.get(tenant)!, { setTenant: tenant })
        await direct.begin()
        const out = await direct.exec(entry.sql, entry.params, protocol)
        await direct.rollback()
        if (!out.ok && !entry.expect_error) invalid.push(`${entry.id} tenant=${tenant} ${protocol}: ${out.code} ${out.message}`)
      }
    }
  }
  t.same(invalid, [], 'every entry runs on only_<tenant> unless expect_error')

  // Sensitivity: identity "rewriter" on all_tenants for acme.
  const identity = clientTarget(env.allClient, { setTenant: 'acme', label: 'identity' })
  let caught = 0
  let leaks = 0
  const blind: string[] = []
  for (const entry of corpus) {
    if (entry.tenants && !entry.tenants.includes('acme')) continue
    const r = await runStatement(env, entry.id, entry.sql, entry.params, 'acme', identity, protocolsFor(entry)[0], { ordered: entry.ordered })
    if (!r.pass) caught++
    else blind.push(entry.id)
    if (r.leak) leaks++
  }
  t.comment(
    `sensitivity: without rewriting, ${caught} entries differ for acme; ${blind.length} are tenant-blind (reference tables, catalogs, or results equal by construction)`,
  )
  t.comment(`tenant-blind entries: ${blind.join(', ')}`)
  t.ok(caught >= corpus.length * 0.7, 'the oracle detects a missing rewrite in at least 70% of the corpus')
  t.ok(leaks >= 50, `the LEAK detector fires without rewriting (${leaks} entries: foreign rows returned or other tenants' data changed)`)
})

// The facts the rewriter gets are discovered (routing/schema-facts.ts, as the proxy does); they must
// agree with the hand-written classification in facts.ts.
t.test('discovered schema facts agree with the hand-written ones', async (t) => {
  const hand = oracleFacts()
  const user = (k: string) => !k.startsWith('pg_catalog.') && !k.startsWith('information_schema.')
  t.same([...env.facts.tenantTables].filter(([k]) => user(k)).sort(), [...hand.tenantTables].sort(), 'tenant relations and their columns')
  t.same([...env.facts.referenceTables].sort(), [...hand.referenceTables].sort(), 'reference tables')
  t.same([...env.facts.knownRelations].filter(user).sort(), [...hand.knownRelations].sort(), 'known relations')
  t.equal(env.facts.unknown, 'reject')
  t.ok(env.facts.columns?.get('public.categories')?.[0] === 'tenant_id', 'column order discovered')
})

function describeFailures(_entry: CorpusEntry, failures: RunResult[]): string {
  const where = failures.map((f) => `${f.tenant}/${f.protocol}`).join(', ')
  const first = failures[0]
  return `${formatResult(first)}\n  failing runs (${failures.length}): ${where}`
}

const files = [...new Set(corpus.map((e) => e.file))]
for (const file of files) {
  t.test(`oracle: ${file}`, async (t) => {
    if (!rewriter) {
      t.fail(`parser/index.js could not be loaded: ${rewriterError}`)
      return
    }
    const entries = corpus.filter((e) => e.file === file)
    let runs = 0
    let refusedRuns = 0
    let passedEntries = 0
    for (const entry of entries) {
      const failures: RunResult[] = []
      for (const tenant of tenantsFor(entry)) {
        for (const protocol of protocolsFor(entry)) {
          const target = rewriterTarget(env.allClient, rewriter, tenant)
          const r = await runCorpusEntry(env, entry, tenant, target, protocol)
          runs++
          if (r.refused) refusedRuns++
          if (!r.pass) failures.push(r)
          else if (entry.isolation_only && r.problems.length && tenant === tenantsFor(entry)[0] && protocol === 'simple')
            t.comment(`isolation holds for ${entry.id} (${tenant}); inherent differences: ${r.problems.map((p) => p.split('\n')[0]).join('; ')}`)
        }
      }
      if (failures.length === 0) {
        passedEntries++
        if (entry.known_gap) t.comment(`known_gap entry now passes: ${entry.id} (${entry.known_gap})`)
        continue
      }
      const msg = describeFailures(entry, failures)
      const leak = failures.some((f) => f.leak)
      report.push((entry.known_gap ? `[known gap: ${entry.known_gap}] ` : '') + msg)
      t.comment(msg)
      if (entry.known_gap) t.fail(`${entry.id}${leak ? ' [LEAK]' : ''}`, { todo: `known gap: ${entry.known_gap}` })
      else t.fail(`${entry.id}${leak ? ' [LEAK]' : ''}`, { diagnostic: false })
    }
    t.comment(`${file}: ${passedEntries}/${entries.length} entries pass (${runs} runs, ${refusedRuns} refused by the rewriter)`)
    t.pass(`${file}: ${runs} runs done`)
  })
}

// The literal-normalised plan cache must never carry a tenant decision from one literal to
// another: each pair is rewritten through ONE cache, in both orders; the foreign variant must
// always be refused (or fail at execution) and the own-tenant variant never refused.
const CACHE_PAIRS: { tenant: string; own: string; foreign: string }[] = [
  {
    tenant: 'acme',
    own: "INSERT INTO tags (tenant_id, id, name) VALUES ('acme', 7000, 'x')",
    foreign: "INSERT INTO tags (tenant_id, id, name) VALUES ('globex', 7000, 'x')",
  },
  {
    tenant: 'acme',
    own: "INSERT INTO tags (tenant_id, id, name) VALUES ('acme', 7001, 'a'), ('acme', 7002, 'b')",
    foreign: "INSERT INTO tags (tenant_id, id, name) VALUES ('acme', 7001, 'a'), ('globex', 7002, 'b')",
  },
  {
    tenant: "o'hare",
    own: "INSERT INTO tags (tenant_id, id, name) VALUES ('o''hare', 7003, 'x')",
    foreign: "INSERT INTO tags (tenant_id, id, name) VALUES ('acme', 7003, 'x')",
  },
  { tenant: 'globex', own: "UPDATE tags SET tenant_id = 'globex' WHERE id = 1", foreign: "UPDATE tags SET tenant_id = 'initech' WHERE id = 1" },
  {
    tenant: 'acme',
    own: "INSERT INTO accounts (org, id, name) VALUES ('acme', 7004, 'x')",
    foreign: "INSERT INTO accounts (org, id, name) VALUES ('initech', 7004, 'x')",
  },
  {
    tenant: 'acme',
    own: "INSERT INTO tags (id, name) VALUES (7005, 'x') ON CONFLICT (tenant_id, id) DO UPDATE SET tenant_id = 'acme'",
    foreign: "INSERT INTO tags (id, name) VALUES (7005, 'x') ON CONFLICT (tenant_id, id) DO UPDATE SET tenant_id = 'globex'",
  },
  {
    tenant: 'initech',
    own: "WITH x AS (INSERT INTO tags (tenant_id, id, name) VALUES ('initech', 7006, 'x') RETURNING id) SELECT * FROM x",
    foreign: "WITH x AS (INSERT INTO tags (tenant_id, id, name) VALUES ('globex', 7006, 'x') RETURNING id) SELECT * FROM x",
  },
]

t.test('plan cache: a tenant decision never travels between literals', async (t) => {
  if (!rewriter) {
    t.fail(`parser/index.js could not be loaded: ${rewriterError}`)
    return
  }
  for (const pair of CACHE_PAIRS) {
    for (const order of [
      ['own', 'foreign'],
      ['foreign', 'own'],
      ['own', 'foreign', 'own', 'foreign'],
    ] as const) {
      const fresh = await loadRewriter(env.facts) // one fresh cache per sequence
      for (const which of order) {
        const sql = pair[which]
        for (const protocol of ['simple', 'extended'] as const) {
          const target = rewriterTarget(env.allClient, fresh, pair.tenant)
          if (which === 'own') {
            const r = await runStatement(env, `cache:${order.join('>')}`, sql, undefined, pair.tenant, target, protocol)
            if (!r.pass) {
              t.comment(formatResult(r))
              t.fail(`own-tenant statement not oracle-equal after [${order.join(' > ')}]: ${sql}`)
            }
          } else {
            const r = await runNegativeEntry(env, { id: 'cache', name: 'cache', sql, tenant: pair.tenant, sqlstate: [], expect: 'error' }, target, protocol)
            if (!r.pass) {
              t.comment(formatNegative(r))
              t.fail(`foreign-tenant statement not refused after [${order.join(' > ')}]: ${sql}`)
            }
          }
        }
      }
    }
  }
  t.pass(`${CACHE_PAIRS.length} pairs × 3 orders × 2 protocols`)
})

t.test('negative corpus: refused, nothing changed', async (t) => {
  if (!rewriter) {
    t.fail(`parser/index.js could not be loaded: ${rewriterError}`)
    return
  }
  let ok = 0
  for (const entry of negative) {
    const failures: NegativeResult[] = []
    const protocols = entry.params ? (['extended'] as const) : (['simple', 'extended'] as const)
    for (const protocol of protocols) {
      const target = rewriterTarget(env.allClient, rewriter, entry.tenant ?? null)
      const r = await runNegativeEntry(env, entry, target, protocol)
      if (!r.pass) failures.push(r)
    }
    if (failures.length === 0) {
      ok++
      continue
    }
    const msg = formatNegative(failures[0]) + `\n  failing protocols: ${failures.map((f) => f.protocol).join(', ')}`
    report.push((entry.known_gap ? `[known gap: ${entry.known_gap}] ` : '') + msg)
    const leak = failures.some((f) => f.leak)
    t.comment(msg)
    if (entry.known_gap) t.fail(`${entry.id}${leak ? ' [LEAK]' : ''}`, { todo: `known gap: ${entry.known_gap}` })
    else t.fail(`${entry.id}${leak ? ' [LEAK]' : ''}`, { diagnostic: false })
  }
  t.comment(`negative: ${ok}/${negative.length} entries behave`)
  t.pass('negative corpus done')
})
