// Plan check for issue #22: does the evaluation-order rewriting (client conditions that are not
// leakproof go behind the tenant restriction as `CASE WHEN <restriction> THEN (<cond>) END`, and
// sub-selects that read tenant rows are fenced with `OFFSET 0`) cost index usage?
//
//   npm run bench:plans          (= npm run build && node dist/test/oracle/plan-check.js)
//
// A measurement, not a test (not *.test.ts, so `npm test` does not run it). For every read
// statement of the oracle corpus (a single SELECT / WITH … SELECT without data-modifying CTEs or
// INTO; entries with params go through `PREPARE …; EXPLAIN EXECUTE …(<params as literals>)` with
// plan_cache_mode = force_custom_plan, like the oracle's unnamed extended-protocol statement), for
// one tenant (acme, or the entry's first tenant if it excludes acme):
//
//   - EXPLAIN (FORMAT JSON) of the original statement on only_<tenant>, and of rewriteQuery's output
//     (the harness's discovered facts, as oracle.test.ts) on all_tenants, both after ANALYZE, both
//     with enable_seqscan = off (the data is tiny: otherwise every plan is a sequential scan) and
//     bitmap scans allowed, in a rolled-back transaction with app.tenant set as the harness does.
//   - Per relation (by table name) of each plan: index reads (Index Scan, Index Only Scan, Bitmap
//     Heap Scan over Bitmap Index Scans), sequential reads, the indexes used and the index key
//     columns constrained by an Index Cond.
//
// Findings per statement:
//   REGRESSION (the issue's criterion): a relation read through an index on only_<tenant> is read
//     only sequentially through pgtenant.
//   fewer index reads: a relation has fewer index reads and more sequential reads (e.g. one side
//     of a self join).
//   lost index condition: a non-tenant index column constrained by an Index Cond clause with
//     constants / parameters on only_<tenant> is constrained by none through pgtenant (the
//     condition became a Filter over all of the tenant's rows: still an index scan, on the tenant
//     column only).
//   lost join index condition: the same for a parameterized Index Cond (a nested-loop inner side
//     on only_<tenant> became a tenant-column scan + hash/merge join or a hashed SubPlan).
// Each finding gets a cause: "CASE guard" (the variant of the rewritten text without the guards
// gets the index condition back, or the lost column's condition sits inside a guard, where no
// index can use it), "OFFSET 0 fence" (the variant without the fences gets it back), "guard +
// fence together", else "schema" when the index used on only_<tenant> does not lead with the
// tenant column (the schema's matter, not the rewriter's), else "other" (the tenant restriction
// itself / the planner's cost choice on tiny tables).
//
// Two passes: the oracle schema as it is (all tenant-table indexes lead with the tenant column,
// btree only), then with indexes a real schema for these ORMs would have (GIN on jsonb / arrays,
// tenant-led FK indexes, pattern / expression indexes, pg_trgm when available), created the same
// on every database: the wrapped operators (@>, ?, &&, LIKE …) only lose something when an index
// could serve them.
//
// Output: both passes' summaries on stdout and the full report in tmp/plan-check-report.txt.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseSync } from 'libpg-query'
import type pg from 'pg'
import { startOracle, loadCorpus, loadRewriter, rewrittenText, repoRoot, type CorpusEntry, type OracleEnv, type RewriterApi } from './harness.js'
import { quoteLiteral } from '../../parser/quote.js'
import {
  ScanNode,
  TENANT_COL,
  identRefs,
  scanNodes,
  summarize,
  formatNode,
  Kind,
  Finding,
  compare,
  findingKey,
  Guard,
  findGuards,
  stripGuards,
  stripFences,
  countFences,
  shapeOf,
  useIndexes,
  indexInfo,
} from './plan-check/plans.js'

type N = any

const PREFERRED_TENANT = process.env.PLAN_CHECK_TENANT ?? 'acme'
const SETTINGS = ['SET enable_seqscan = off', 'SET enable_bitmapscan = on', 'SET enable_indexscan = on', 'SET plan_cache_mode = force_custom_plan']

// ------------------------------------------------------------------ running EXPLAIN

function paramText(v: unknown): string | null {
  if (v === null || v === undefined) return null
  if (v instanceof Date) return v.toISOString()
  if (Array.isArray(v))
    return (
      '{' +
      v
        .map((x) => {
          const t = paramText(x)
          return t === null ? 'NULL' : Array.isArray(x) ? t : '"' + t.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"'
        })
        .join(',') +
      '}'
    )
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}

function paramLiteral(v: unknown): string {
  const t = paramText(v)
  return t === null ? 'NULL' : quoteLiteral(t)
}

type Explained = { ok: true; plan: N } | { ok: false; message: string }

async function explain(client: pg.Client, sql: string, params: unknown[] | undefined, tenant: string): Promise<Explained> {
  await client.query('BEGIN')
  try {
    await client.query(`SELECT set_config('app.tenant', $1, true)`, [tenant])
    let r: pg.QueryResult
    if (params && params.length) {
      await client.query(`PREPARE plan_check_stmt AS ${sql}`)
      r = await client.query(`EXPLAIN (FORMAT JSON) EXECUTE plan_check_stmt(${params.map(paramLiteral).join(', ')})`)
    } else if (/\$\d/.test(sql) && hasParamRef(sql)) {
      return { ok: false, message: 'uses $n parameters but the entry has no params' }
    } else r = await client.query(`EXPLAIN (FORMAT JSON) ${sql}`)
    const row = r.rows[0]
    const json = row['QUERY PLAN']
    const doc = typeof json === 'string' ? JSON.parse(json) : json
    return { ok: true, plan: doc[0].Plan }
  } catch (e) {
    return { ok: false, message: (e as Error).message }
  } finally {
    await client.query('ROLLBACK').catch(() => {})
    await client.query('DEALLOCATE ALL').catch(() => {})
  }
}

function hasParamRef(sql: string): boolean {
  let found = false
  const walk = (x: N) => {
    if (found || x === null || typeof x !== 'object') return
    if (Array.isArray(x)) return x.forEach(walk)
    if ('ParamRef' in x) found = true
    for (const k in x) walk(x[k])
  }
  try {
    walk(parseSync(sql))
  } catch {
    return false
  }
  return found
}

// ------------------------------------------------------------------ classification of corpus entries

/** null = a read statement; otherwise why it is not one (or cannot be checked). */
function notRead(entry: CorpusEntry): { kind: 'not-read' | 'skip'; why: string } | null {
  let tree: N
  try {
    tree = parseSync(entry.sql)
  } catch (e) {
    return { kind: 'skip', why: 'does not parse (libpg-query)' }
  }
  const stmts: N[] = tree.stmts ?? []
  if (stmts.length !== 1) return { kind: 'skip', why: 'several statements in one entry (PREPARE/EXECUTE, DECLARE/FETCH, SET …; …)' }
  const stmt = stmts[0].stmt
  const k = Object.keys(stmt)[0]
  if (k !== 'SelectStmt') return { kind: 'not-read', why: k }
  const sel = stmt.SelectStmt
  if (sel.intoClause) return { kind: 'not-read', why: 'SELECT INTO' }
  let dml = false
  const walk = (x: N) => {
    if (dml || x === null || typeof x !== 'object') return
    if (Array.isArray(x)) return x.forEach(walk)
    if (x.CommonTableExpr && !('SelectStmt' in x.CommonTableExpr.ctequery)) dml = true
    for (const key in x) walk(x[key])
  }
  walk(sel)
  if (dml) return { kind: 'not-read', why: 'WITH … (INSERT|UPDATE|DELETE|MERGE) … SELECT' }
  if (entry.expect_error) return { kind: 'skip', why: 'expect_error (the original fails on only_<tenant>)' }
  return null
}

// ------------------------------------------------------------------ main

interface Checked {
  entry: CorpusEntry
  tenant: string
  rewritten: string
  onlyNodes: ScanNode[]
  rewNodes: ScanNode[]
  findings: Finding[]
  /** finding key → causes */
  causes: Map<string, string[]>
  guards: Guard[]
  fences: number
}

/** Indexes a real schema for these ORMs would typically have (second pass): GIN for jsonb / arrays, FK indexes. */
const EXTRA_INDEXES = [
  'CREATE INDEX x_events_payload_gin ON events USING gin (payload)',
  'CREATE INDEX x_tasks_tags_gin ON tasks USING gin (tags)',
  'CREATE INDEX x_projects_labels_gin ON projects USING gin (labels)',
  'CREATE INDEX x_tasks_tenant_project ON tasks (tenant_id, project_id)',
  'CREATE INDEX x_tasks_tenant_assignee ON tasks (tenant_id, assignee_id)',
  'CREATE INDEX x_comments_tenant_task ON comments (tenant_id, task_id)',
  'CREATE INDEX x_invoices_tenant_company ON invoices (tenant_id, company_id)',
  'CREATE INDEX x_projects_tenant_company ON projects (tenant_id, company_id)',
  'CREATE INDEX x_users_email_pattern ON users (tenant_id, email text_pattern_ops)',
  'CREATE INDEX x_users_lower_email ON users (tenant_id, lower(email))',
  // Django / Rails style: a foreign-key index without the tenant column (the schema's matter)
  'CREATE INDEX x_invoice_lines_invoice ON invoice_lines (invoice_id)',
]
const TRGM_INDEXES = [
  'CREATE INDEX x_tasks_title_trgm ON tasks USING gin (title gin_trgm_ops)',
  'CREATE INDEX x_comments_body_trgm ON comments USING gin (body gin_trgm_ops)',
  'CREATE INDEX x_projects_name_trgm ON projects USING gin (name gin_trgm_ops)',
]

async function main(): Promise<void> {
  const t0 = Date.now()
  const env: OracleEnv = await startOracle()
  const report: string[] = []
  const summaries: string[] = []
  try {
    const rewriter = await loadRewriter(env.facts)
    const clients = [env.allClient, ...env.onlyClients.values()]
    for (const c of clients) for (const s of SETTINGS) await c.query(s)

    const p1 = await runPass('PASS 1: the oracle schema as it is', env, rewriter, clients)
    // second pass: typical application indexes on every database (the same on both sides)
    const trgm = (await env.allClient.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'`)).rowCount! > 0
    for (const c of clients) {
      if (trgm) await c.query('CREATE EXTENSION IF NOT EXISTS pg_trgm')
      for (const q of [...EXTRA_INDEXES, ...(trgm ? TRGM_INDEXES : [])]) await c.query(q)
    }
    const p2 = await runPass(
      `PASS 2: the schema + typical application indexes (GIN on jsonb/arrays, tenant-led FK indexes, text_pattern_ops / lower() on email, one FK index without the tenant column${trgm ? ', pg_trgm on title/body/name' : '; pg_trgm not available'})`,
      env,
      rewriter,
      clients,
    )
    for (const p of [p1, p2]) {
      report.push(p.head, ...p.detail)
      summaries.push(p.head)
    }
    mkdirSync(join(repoRoot(), 'tmp'), { recursive: true })
    const path = join(repoRoot(), 'tmp', 'plan-check-report.txt')
    writeFileSync(path, report.join('\n') + '\n')
    console.log(summaries.join('\n\n' + '#'.repeat(100) + '\n\n'))
    console.log(`\nfull report: ${path} (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
  } finally {
    await env.close()
  }
}

async function runPass(title: string, env: OracleEnv, rewriter: RewriterApi, clients: pg.Client[]): Promise<{ head: string; detail: string[] }> {
  const report: string[] = []
  // ANALYZE both sides (the harness analyzed the template and the only_ databases; again after its changes and new indexes)
  for (const c of clients) await c.query('ANALYZE')
  const idx = await env.allClient.query(`
      SELECT c.relname AS index, t.relname AS "table", n.nspname AS schema,
             array(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped) AS tcols,
             array(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k) AS keys,
             pg_get_indexdef(i.indexrelid) AS def
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE n.nspname IN ('public', 'billing') ORDER BY n.nspname, t.relname, c.relname`)
  // key "columns": the table columns each key (column or expression) mentions, in key order
  useIndexes(
    new Map(
      idx.rows.map((r) => {
        const tcols = new Set(r.tcols as string[])
        const cols = (r.keys as string[]).flatMap((k) =>
          identRefs(k)
            .map((x) => x.name)
            .filter((x) => tcols.has(x))
            .slice(0, 1),
        )
        return [r.index as string, { table: r.table as string, cols }]
      }),
    ),
  )
  const schemaNotes: string[] = []
  for (const r of idx.rows) {
    const tcol = TENANT_COL.get(r.table)
    const cols = indexInfo(r.index)!.cols
    const lead =
      tcol === undefined
        ? 'reference table'
        : cols[0] === tcol
          ? `leads with ${tcol}`
          : cols.includes(tcol)
            ? `has ${tcol} but not first`
            : `WITHOUT the tenant column ${tcol}`
    schemaNotes.push(
      `  ${r.schema}.${r.table}: ${(r.def as string).replace(/^CREATE (UNIQUE )?INDEX \S+ ON \S+ USING /, (_m: string, u?: string) => (u ? 'unique ' : ''))} [${r.index}] — ${lead}`,
    )
  }

  const corpus = loadCorpus()
  const notReadCount = new Map<string, number>()
  const skipped = new Map<string, string[]>()
  const skip = (why: string, id: string) => skipped.set(why, [...(skipped.get(why) ?? []), id])
  const checked: Checked[] = []
  let withParams = 0

  for (const entry of corpus) {
    const nr = notRead(entry)
    if (nr?.kind === 'not-read') {
      notReadCount.set(nr.why, (notReadCount.get(nr.why) ?? 0) + 1)
      continue
    }
    if (nr) {
      skip(nr.why, entry.id)
      continue
    }
    const tenant = !entry.tenants || entry.tenants.includes(PREFERRED_TENANT) ? PREFERRED_TENANT : entry.tenants[0]
    const tenantLit = quoteLiteral(tenant)
    let text: ReturnType<typeof rewrittenText>
    try {
      text = rewrittenText(rewriter.rewrite(entry.sql, tenant))
    } catch (e) {
      skip('rewriteQuery threw', `${entry.id}: ${(e as Error).message}`)
      continue
    }
    if ('refusal' in text) {
      skip('refused by the rewriter', `${entry.id}: ${text.refusal.sqlstate} ${text.refusal.message}`)
      continue
    }
    const rewritten = text.sql
    const onlyClient = env.onlyClients.get(tenant)!
    const o = await explain(onlyClient, entry.sql, entry.params, tenant)
    if (!o.ok) {
      skip('EXPLAIN failed on only_<tenant>', `${entry.id}: ${o.message}`)
      continue
    }
    const r = await explain(env.allClient, rewritten, entry.params, tenant)
    if (!r.ok) {
      skip('EXPLAIN of the rewritten statement failed on all_tenants', `${entry.id}: ${r.message}`)
      continue
    }
    if (entry.params?.length) withParams++
    const onlyNodes = scanNodes(o.plan)
    const rewNodes = scanNodes(r.plan)
    const onlySum = summarize(onlyNodes)
    const findings = compare(onlySum, summarize(rewNodes))
    const guards = findGuards(rewritten, tenantLit)
    const fences = countFences(rewritten, entry.sql)
    const causes = new Map<string, string[]>()
    if (findings.length) {
      // re-plan variants of the rewritten text; a finding that disappears in a variant is caused by what it removed
      const variants: [string, string][] = []
      const noGuards = stripGuards(rewritten, tenantLit)
      const noFences = stripFences(rewritten, entry.sql)
      if (noGuards !== rewritten) variants.push(['CASE guard', noGuards])
      if (noFences !== rewritten) variants.push(['OFFSET 0 fence', noFences])
      if (noGuards !== rewritten && noFences !== rewritten) variants.push(['guard + fence together', stripFences(noGuards, entry.sql)])
      const gone = new Map<string, Set<string>>()
      for (const [label, sql] of variants) {
        const v = await explain(env.allClient, sql, entry.params, tenant)
        if (!v.ok) continue
        const still = new Set(compare(onlySum, summarize(scanNodes(v.plan))).map(findingKey))
        gone.set(label, new Set(findings.map(findingKey).filter((k) => !still.has(k))))
      }
      for (const f of findings) {
        const k = findingKey(f)
        const c: string[] = []
        // structural: the lost column's condition sits inside a CASE guard of this relation, where no index can use it
        const aliases = new Set(rewNodes.filter((n) => n.relation === f.relation).map((n) => n.alias))
        const wrapped = (f.cols ?? []).some((col) =>
          guards.some((g) => new RegExp(`\\b${col}\\b`).test(g.body) && [...aliases].some((a) => g.guard.includes(`${a}.`) || g.guard.includes(`"${a}".`))),
        )
        if (gone.get('CASE guard')?.has(k) || (f.kind === 'lost-index-cond' && wrapped)) c.push('CASE guard')
        if (gone.get('OFFSET 0 fence')?.has(k)) c.push('OFFSET 0 fence')
        if (!c.length && gone.get('guard + fence together')?.has(k)) c.push('guard + fence together')
        const onlyIdx = [...(onlySum.get(f.relation)?.indexes ?? [])]
        const tcol = TENANT_COL.get(f.relation)
        if (!c.length && tcol && onlyIdx.length && onlyIdx.every((i) => indexInfo(i)?.cols[0] !== tcol)) c.push('schema: index without leading tenant column')
        if (!c.length) c.push('other (the tenant restriction itself / plan shape)')
        causes.set(k, c)
      }
    }
    checked.push({ entry, tenant, rewritten, onlyNodes, rewNodes, findings, causes, guards, fences })
  }

  // ---------------------------------------------------------------- report
  const count = (kind: Kind) => checked.filter((c) => c.findings.some((f) => f.kind === kind))
  const regressions = count('regression')
  const fewer = count('fewer-index-reads')
  const lost = count('lost-index-cond')
  const lostJoin = count('lost-join-index-cond')
  const byWrapping = (kind: Kind) =>
    checked.filter((c) =>
      c.findings.some(
        (f) => f.kind === kind && c.causes.get(findingKey(f))!.some((x) => x === 'CASE guard' || x === 'OFFSET 0 fence' || x === 'guard + fence together'),
      ),
    )
  const withGuards = checked.filter((c) => c.guards.length)
  const withFences = checked.filter((c) => c.fences)
  const onlyIndexed = checked.filter((c) => c.onlyNodes.some((n) => n.usesIndex))
  const nSkipped = [...skipped.values()].reduce((a, b) => a + b.length, 0)
  const schemaRegressions = checked.filter((c) =>
    c.findings.some((f) => f.kind === 'regression' && c.causes.get(findingKey(f))!.some((x) => x.startsWith('schema'))),
  )

  const causeTally = new Map<string, { n: number; ids: string[] }>()
  const shapeTally = new Map<string, { n: number; example: string; id: string }>()
  for (const c of checked) {
    for (const f of c.findings) {
      for (const cause of c.causes.get(findingKey(f)) ?? []) {
        const key = `${f.kind}: ${cause}`
        const e = causeTally.get(key) ?? { n: 0, ids: [] }
        e.n++
        e.ids.push(`${c.entry.id} (${f.relation})`)
        causeTally.set(key, e)
      }
      // which wrapped condition held the lost column
      if (f.kind !== 'fewer-index-reads' && f.kind !== 'lost-join-index-cond' && c.causes.get(findingKey(f))!.includes('CASE guard')) {
        for (const g of c.guards) {
          const cols = f.cols ?? []
          if (cols.length && !cols.some((col) => new RegExp(`\\b${col}\\b`).test(g.body))) continue
          const shape = shapeOf(g.body)
          const s = shapeTally.get(shape) ?? { n: 0, example: `CASE WHEN ${g.guard} THEN (${g.body}) END`, id: c.entry.id }
          s.n++
          shapeTally.set(shape, s)
        }
      }
    }
  }
  const guardShapes = new Map<string, number>()
  for (const c of checked) for (const g of c.guards) guardShapes.set(shapeOf(g.body), (guardShapes.get(shapeOf(g.body)) ?? 0) + 1)

  const head: string[] = []
  head.push(`${'='.repeat(100)}\n${title}\npgtenant plan check (issue #22) — ${new Date().toISOString()}`)
  head.push(`settings on both sides: ${SETTINGS.join('; ')}; both databases ANALYZEd; tenant ${PREFERRED_TENANT} (or the entry's first tenant)`)
  head.push('')
  head.push(`corpus entries: ${corpus.length}`)
  head.push(`  not read statements: ${[...notReadCount.values()].reduce((a, b) => a + b, 0)} (${[...notReadCount].map(([k, v]) => `${k} ${v}`).join(', ')})`)
  head.push(`  read statements skipped: ${nSkipped}`)
  for (const [why, ids] of skipped) head.push(`    ${why}: ${ids.length}`)
  head.push(`  read statements checked: ${checked.length} (of which ${withParams} with params via PREPARE/EXPLAIN EXECUTE)`)
  head.push(`    with at least one index read on only_<tenant>: ${onlyIndexed.length}`)
  head.push(
    `    rewritten with CASE guards: ${withGuards.length} (${withGuards.reduce((a, c) => a + c.guards.length, 0)} guards); with OFFSET 0 fences: ${withFences.length} (${withFences.reduce((a, c) => a + c.fences, 0)} fences)`,
  )
  head.push('')
  head.push(`REGRESSIONS (a relation read by an index on only_<tenant> is read only sequentially through pgtenant): ${regressions.length} statements`)
  head.push(`  of which caused by an index without a leading tenant column (schema): ${schemaRegressions.length}`)
  head.push(`fewer index reads on a relation (index → sequential for some, not all, of its scans): ${fewer.length} statements`)
  head.push(
    `lost index condition (still an index scan, but a condition with constants/params on a non-tenant key column became a Filter): ${lost.length} statements, ${byWrapping('lost-index-cond').length} caused by the wrapping (CASE guard / OFFSET 0 fence)`,
  )
  head.push(
    `lost join index condition (a parameterized index scan of a nested loop became a scan on the tenant column + hash/merge join or hashed SubPlan): ${lostJoin.length} statements, ${byWrapping('lost-join-index-cond').length} caused by the wrapping`,
  )
  head.push('')
  head.push('causes (finding kind: cause — count; cause = what, removed from the rewritten text, brings the index use back):')
  for (const [k, v] of [...causeTally].sort((a, b) => b[1].n - a[1].n))
    head.push(`  ${k} — ${v.n}: ${v.ids.slice(0, 6).join(', ')}${v.ids.length > 6 ? ', …' : ''}`)
  head.push('')
  head.push('shapes of the wrapped conditions that held a lost index condition (count, example):')
  for (const [k, v] of [...shapeTally].sort((a, b) => b[1].n - a[1].n))
    head.push(`  ${k} — ${v.n}, e.g. ${v.id}: ${v.example.length > 300 ? v.example.slice(0, 300) + ' …' : v.example}`)
  head.push('')
  head.push('all CASE guards in the checked statements by shape (what made each conjunct not leakproof-safe):')
  for (const [k, v] of [...guardShapes].sort((a, b) => b[1] - a[1])) head.push(`  ${k}: ${v}`)
  head.push('')
  head.push('indexes of the schema (all_tenants):')
  head.push(...schemaNotes)
  report.push(head.join('\n'))

  const detail = (title: string, list: Checked[], kinds: Kind[]) => {
    report.push(`\n==================== ${title}: ${list.length}`)
    for (const c of list) {
      const lines: string[] = []
      lines.push(`--- ${c.entry.id} (tenant ${c.tenant}${c.entry.params ? ', params ' + JSON.stringify(c.entry.params) : ''})`)
      for (const f of c.findings.filter((x) => kinds.includes(x.kind)))
        lines.push(`  ${f.kind} on ${f.relation}: ${f.detail}  [cause: ${c.causes.get(findingKey(f))!.join('; ')}]`)
      lines.push(`  original:\n    ${c.entry.sql.replace(/\n/g, '\n    ')}`)
      lines.push(`  rewritten:\n    ${c.rewritten.replace(/\n/g, '\n    ')}`)
      lines.push(`  only_${c.tenant} scans:\n${c.onlyNodes.map((n) => '    ' + formatNode(n)).join('\n') || '    (none)'}`)
      lines.push(`  through pgtenant (all_tenants) scans:\n${c.rewNodes.map((n) => '    ' + formatNode(n)).join('\n') || '    (none)'}`)
      report.push(lines.join('\n'))
    }
  }
  detail('REGRESSING STATEMENTS (index → sequential only)', regressions, ['regression'])
  detail(
    'FEWER INDEX READS',
    fewer.filter((c) => !regressions.includes(c)),
    ['fewer-index-reads'],
  )
  detail('LOST INDEX CONDITIONS (constants / params)', lost, ['lost-index-cond'])
  detail('LOST JOIN INDEX CONDITIONS (parameterized scans)', lostJoin, ['lost-join-index-cond'])
  report.push(`\n==================== SKIPPED READ STATEMENTS: ${nSkipped}`)
  for (const [why, ids] of skipped) report.push(`${why}:\n  ${ids.join('\n  ')}`)

  return { head: report[0]!, detail: report.slice(1) }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
