// Rewrite hot-path benchmark: `npm run bench:rewrite`.
// For short / medium (~300 chars) / long (~2,500 chars) ORM-shaped statements it measures
//   exact      the same text again (exact-text cache hit: quote the tenant, join the template)
//   literal    texts that differ only in literal values (normalised-key hit: scan + splice)
//   cold       no cache (parseSync + analysis + template + verify-after-rewrite, as on the proxy's cold path)
//   parseSync  bare libpg-query parseSync on the same input, for reference
// and prints a Markdown table of µs p50 / p99 and ops/s. Fast operations are timed in batches
// (p50/p99 are over per-batch means), slow ones one by one.
import { parseSync } from 'libpg-query'
import { initParser, rewriteQuery, RewriteCache } from '../parser/index.js'
import type { RewriteContext, SchemaFacts } from '../parser/types.js'
import { verifyRewrite } from '../parser/verify.js'

const facts: SchemaFacts = {
  tenantTables: new Map([
    ['public.ads', 'company_id'],
    ['public.campaigns', 'company_id'],
    ['public.clicks', 'company_id'],
    ['public.users', 'company_id'],
  ]),
  referenceTables: new Set(['public.countries']),
  knownRelations: new Set(['public.ads', 'public.campaigns', 'public.clicks', 'public.users', 'public.countries']),
  unknown: 'reject',
  tenantColumnTypes: new Map([
    ['public.ads', 'integer'],
    ['public.campaigns', 'integer'],
    ['public.clicks', 'integer'],
    ['public.users', 'integer'],
  ]),
}
const ctx: RewriteContext = { mode: 'tenant', tenant: '4711', setting: 'app.tenant', searchPath: ['public'], facts }

function shortSql(i: number): string {
  return `SELECT "ads".* FROM "ads" WHERE "ads"."id" = ${i} LIMIT 1`
}

function mediumSql(i: number): string {
  return (
    `SELECT "ads"."id", "ads"."title", "ads"."status", "ads"."created_at", "campaigns"."name" AS campaign_name ` +
    `FROM "ads" INNER JOIN "campaigns" ON "campaigns"."id" = "ads"."campaign_id" ` +
    `WHERE "ads"."status" = 'active-${i % 7}' AND "campaigns"."budget" > ${100 + i} AND "ads"."created_at" > '2024-01-${String((i % 28) + 1).padStart(2, '0')}' ` +
    `ORDER BY "ads"."created_at" DESC LIMIT 25 OFFSET ${i % 100}`
  )
}

function longSql(i: number): string {
  const cols = Array.from({ length: 40 }, (_, k) => `"ads"."col_${k}" AS "ads_col_${k}"`).join(', ')
  const ids = Array.from({ length: 60 }, (_, k) => String(i * 100 + k)).join(', ')
  return (
    `SELECT ${cols}, "campaigns"."name", (SELECT count(*) FROM "clicks" WHERE "clicks"."ad_id" = "ads"."id" AND "clicks"."kind" = 'view') AS "views" ` +
    `FROM "ads" INNER JOIN "campaigns" ON "campaigns"."id" = "ads"."campaign_id" ` +
    `LEFT OUTER JOIN "users" ON "users"."id" = "ads"."owner_id" AND "users"."active" = true ` +
    `LEFT OUTER JOIN "countries" ON "countries"."code" = "ads"."country" ` +
    `WHERE "ads"."id" IN (${ids}) AND "ads"."status" IN ('active', 'paused', 'review-${i % 5}') ` +
    `AND EXISTS (SELECT 1 FROM "clicks" c2 WHERE c2."ad_id" = "ads"."id" AND c2."created_at" > '2024-02-01') ` +
    `AND ("campaigns"."budget" BETWEEN ${i} AND ${i + 1000} OR "campaigns"."name" ILIKE '%promo%') ` +
    `ORDER BY "ads"."created_at" DESC, "ads"."id" LIMIT 50 OFFSET ${i % 10}`
  )
}

interface Row {
  size: string
  chars: number
  case: string
  p50: number
  p99: number
  ops: number
}

function measure(fn: (i: number) => void, opts: { ms: number; batch: number }): { p50: number; p99: number; ops: number } {
  const samples: number[] = []
  // warm-up
  for (let i = 0; i < 200; i++) fn(i)
  const deadline = performance.now() + opts.ms
  let i = 0
  let total = 0
  let n = 0
  while (performance.now() < deadline) {
    const t0 = process.hrtime.bigint()
    for (let k = 0; k < opts.batch; k++) fn(i++)
    const dt = Number(process.hrtime.bigint() - t0) / 1000 / opts.batch
    samples.push(dt)
    total += dt * opts.batch
    n += opts.batch
  }
  samples.sort((a, b) => a - b)
  const q = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]
  return { p50: q(0.5), p99: q(0.99), ops: Math.round((n / total) * 1e6) }
}

async function main(): Promise<void> {
  await initParser()
  const ms = Number(process.env.BENCH_MS ?? 1500)
  const rows: Row[] = []
  const sizes: [string, (i: number) => string][] = [
    ['short', shortSql],
    ['medium', mediumSql],
    ['long', longSql],
  ]
  for (const [size, gen] of sizes) {
    // flat strings, as server/ gets them from decoding a socket buffer
    const variants = Array.from({ length: 2000 }, (_, i) => Buffer.from(gen(i + 1), 'utf8').toString('utf8'))
    const chars = variants[0].length
    // sanity: the rewrite works and hits the caches we expect
    const cache = new RewriteCache()
    const first = rewriteQuery(variants[0], ctx, cache)
    if (first.refusal || !first.sql) throw new Error(`${size}: ${first.refusal?.message}`)
    if (rewriteQuery(variants[0], ctx, cache).cache !== 'exact') throw new Error('expected an exact hit')
    if (rewriteQuery(variants[1], ctx, cache).cache !== 'normalized') throw new Error('expected a normalised hit')

    const exact = measure(() => rewriteQuery(variants[0], ctx, cache), { ms, batch: 200 })
    rows.push({ size, chars, case: 'exact hit', ...exact })
    const lit = measure((i) => rewriteQuery(variants[i % variants.length], ctx, cache), { ms, batch: 100 })
    rows.push({ size, chars, case: 'literal-varying (normalised hit)', ...lit })
    const cold = measure((i) => rewriteQuery(variants[i % variants.length], ctx), { ms, batch: size === 'long' ? 1 : 5 })
    rows.push({ size, chars, case: 'cold (parse + rewrite + verify)', ...cold })
    const bare = measure((i) => parseSync(variants[i % variants.length]), { ms, batch: size === 'long' ? 1 : 5 })
    rows.push({ size, chars, case: 'bare parseSync', ...bare })
    // verify-after-rewrite (parser/verify.ts): one more parse, of the rewritten text, and the tree check
    const outs = variants.slice(0, 200).map((v) => rewriteQuery(v, ctx).sql!)
    if (!outs.every((o) => verifyRewrite(o, ctx.tenant!, ctx).ok)) throw new Error(`${size}: verify rejects the rewrite`)
    const ver = measure((i) => verifyRewrite(outs[i % outs.length], ctx.tenant!, ctx), { ms, batch: size === 'long' ? 1 : 5 })
    rows.push({ size, chars, case: 'verify (parse output + check)', ...ver })
    // the verifier's own parse: the rewritten text is longer than the input (restrictions, guards)
    const outParse = measure((i) => parseSync(outs[i % outs.length]), { ms, batch: size === 'long' ? 1 : 5 })
    rows.push({ size, chars: outs[0].length, case: 'bare parseSync of the rewritten text', ...outParse })
  }
  const f = (x: number) => (x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0))
  console.log(`\nRewrite benchmark (node ${process.version}, ${ms} ms per case)\n`)
  console.log('| statement | chars | case | µs p50 | µs p99 | ops/s |')
  console.log('|---|---:|---|---:|---:|---:|')
  for (const r of rows) console.log(`| ${r.size} | ${r.chars} | ${r.case} | ${f(r.p50)} | ${f(r.p99)} | ${r.ops.toLocaleString('en-US')} |`)
  for (const size of ['short', 'medium', 'long']) {
    const c = rows.find((r) => r.size === size && r.case.startsWith('cold'))!
    const p = rows.find((r) => r.size === size && r.case === 'bare parseSync')!
    const v = rows.find((r) => r.size === size && r.case.startsWith('verify'))!
    const o = rows.find((r) => r.size === size && r.case.startsWith('bare parseSync of the rewritten'))!
    console.log(
      `\n${size}: cold (parse + rewrite + verify) / bare parseSync = ${(c.p50 / p.p50).toFixed(2)}× (of which verify alone ${(v.p50 / p.p50).toFixed(2)}×; ` +
        `the two parses alone, input and rewritten text, ${((p.p50 + o.p50) / p.p50).toFixed(2)}×)`,
    )
  }
}

await main()
