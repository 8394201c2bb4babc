// parser/: pure functions from (SQL text, tenant, schema facts) to a rewritten statement or a refusal.
//
//   await initParser()                       // once per process: loads libpg-query's WASM
//   const cache = new RewriteCache({ maxBytes: 32 << 20 })   // owned by the caller (server/)
//   const r = rewriteQuery(sql, ctx, cache)  // RewriteResult (see types.ts)
//
// Hot path: a plan is cached per (text, context). The context key holds everything a plan depends
// on except the tenant value: mode, tenant setting name, search_path, the identity of the facts
// object (pass a NEW SchemaFacts object whenever the schema changes; facts are treated as immutable).
// Plans are templates with tenant slots, so an exact hit only quotes the tenant and joins strings.
// Texts that differ only in literal values share one plan through a literal-normalised key (see
// scan.ts): the new text's literals are spliced into the template. Literals whose value decides
// something (a tenant column value in INSERT/UPDATE) are re-checked against the tenant on every
// use; statements where a literal changes the decision itself (SET, SHOW, set_config) are never
// shared by the normalised key.
import { loadModule, parseSync } from 'libpg-query'
import type { RewriteContext, RewriteResult, StatementPlan, Refusal, SchemaFacts } from './types.js'
import { analyze, TENANT, type Plan, type Part, type CompiledStmt } from './analyze.js'
import { normalizeLiterals, decodeSimpleLiteral, type Normalized } from './scan.js'
import { quoteLiteral } from './quote.js'
import { verifyRewrite, fillForVerify } from './verify.js'

export type * from './types.js'
export { quoteLiteral, quoteIdent } from './quote.js'
export { guardViolationColumn } from './rewrite/tenant-value.js'

let loaded: Promise<void> | null = null
const WARM_UP =
  "SELECT a.b, count(*) FROM c JOIN d ON c.e = d.f WHERE g = $1 AND h IN (SELECT 1) GROUP BY 1 ORDER BY 1 LIMIT 2; BEGIN; SET x = 'y'; " +
  "INSERT INTO t (a, b) VALUES (1, 'x') ON CONFLICT (a) DO UPDATE SET b = EXCLUDED.b RETURNING *; UPDATE t SET a = a + 1 FROM u WHERE t.b = u.b; " +
  'DELETE FROM t WHERE a = 1; WITH w AS (SELECT 1) SELECT * FROM w; COMMIT'
/** Loads libpg-query's WASM module once; call (and await) before rewriteQuery. */
export function initParser(): Promise<void> {
  if (!loaded)
    loaded = loadModule()
      // the first parse after loading pays for compiling the parser (~200 ms here): here, not in a client's first statement
      .then(() => void parseSync(WARM_UP))
      .catch((e) => {
        loaded = null // let a later call retry
        throw e
      })
  return loaded
}

interface ExactEntry {
  ctx: string
  plan: Plan
  /** whole text split at tenant slots (literals resolved) */
  whole: string[] | null
  stmts: (string[] | null)[]
  /** decoded literal values for plan.checks, in order */
  checkVals: (string | null)[]
  bytes: number
  used: boolean
  next: ExactEntry | null
}

interface NormEntry {
  ctx: string
  plan: Plan
  bytes: number
  used: boolean
  next: NormEntry | null
}

/** LRU-ish plan cache bounded in (estimated) bytes. One instance per proxy; not shared state of this module. */
export class RewriteCache {
  readonly maxBytes: number
  bytes = 0
  readonly exact = new Map<string, ExactEntry>()
  readonly norm = new Map<string, NormEntry>()
  private factsIds = new WeakMap<SchemaFacts, number>()
  private ctxKeys = new WeakMap<readonly string[], { facts: SchemaFacts; mode: RewriteContext['mode']; setting: string; key: string }>()
  private nextFactsId = 1
  private lastTenant: string | null = null
  private lastQuoted = ''

  constructor(opts: { maxBytes?: number } = {}) {
    this.maxBytes = opts.maxBytes ?? 32 * 1024 * 1024
  }

  get size(): number {
    return this.exact.size + this.norm.size
  }

  clear(): void {
    this.exact.clear()
    this.norm.clear()
    this.bytes = 0
  }

  ctxKey(ctx: RewriteContext): string {
    // Callers that keep their search_path array get its key back without rebuilding it.
    const memo = this.ctxKeys.get(ctx.searchPath)
    if (memo !== undefined && memo.facts === ctx.facts && memo.mode === ctx.mode && memo.setting === ctx.setting) return memo.key
    let id = this.factsIds.get(ctx.facts)
    if (id === undefined) {
      id = this.nextFactsId++
      this.factsIds.set(ctx.facts, id)
    }
    const key = ctx.mode + '\u0001' + ctx.setting + '\u0001' + ctx.searchPath.join('\u0002') + '\u0001' + id
    this.ctxKeys.set(ctx.searchPath, { facts: ctx.facts, mode: ctx.mode, setting: ctx.setting, key })
    return key
  }

  quote(tenant: string): string {
    if (tenant !== this.lastTenant) {
      this.lastTenant = tenant
      this.lastQuoted = quoteLiteral(tenant)
    }
    return this.lastQuoted
  }

  getExact(text: string, ctx: string): ExactEntry | null {
    for (let e = this.exact.get(text) ?? null; e; e = e.next)
      if (e.ctx === ctx) {
        e.used = true
        return e
      }
    return null
  }

  getNorm(key: string, ctx: string): NormEntry | null {
    for (let e = this.norm.get(key) ?? null; e; e = e.next)
      if (e.ctx === ctx) {
        e.used = true
        return e
      }
    return null
  }

  putExact(text: string, e: ExactEntry): void {
    if (e.bytes > this.maxBytes / 4) return
    const head = this.exact.get(text)
    if (head) {
      e.next = head
      let n = 0
      for (let x: ExactEntry | null = e; x; x = x.next)
        if (++n > 4 && x.next) {
          this.bytes -= x.next.bytes
          x.next = x.next.next
        }
    }
    this.exact.set(text, e)
    this.bytes += e.bytes
    this.evict()
  }

  putNorm(key: string, e: NormEntry): void {
    if (e.bytes > this.maxBytes / 4) return
    const head = this.norm.get(key)
    if (head) {
      e.next = head
      let n = 0
      for (let x: NormEntry | null = e; x; x = x.next)
        if (++n > 4 && x.next) {
          this.bytes -= x.next.bytes
          x.next = x.next.next
        }
    }
    this.norm.set(key, e)
    this.bytes += e.bytes
    this.evict()
  }

  private evict(): void {
    let guard = 0
    while (this.bytes > this.maxBytes && guard++ < 100000) {
      const m: Map<string, ExactEntry | NormEntry> = this.exact.size >= this.norm.size ? this.exact : this.norm
      const it = m.entries().next()
      if (it.done) break
      const [k, head] = it.value
      m.delete(k)
      if (head.used) {
        // second chance: move to the young end
        for (let x: ExactEntry | NormEntry | null = head; x; x = x.next) x.used = false
        m.set(k, head)
      } else for (let x: ExactEntry | NormEntry | null = head; x; x = x.next) this.bytes -= x.bytes
    }
  }
}

function splitTenant(tpl: Part[], text: string, spans: number[]): string[] {
  const chunks: string[] = []
  let cur = ''
  for (const p of tpl) {
    if (typeof p === 'string') cur += p
    else if (p === TENANT) {
      chunks.push(cur)
      cur = ''
    } else cur += text.slice(spans[2 * p], spans[2 * p + 1])
  }
  chunks.push(cur)
  return chunks
}

function fill(tpl: Part[], text: string, spans: number[], q: string): string {
  let out = ''
  for (let i = 0; i < tpl.length; i++) {
    const p = tpl[i]
    if (typeof p === 'string') out += p
    else if (p === TENANT) out += q
    else out += text.slice(spans[2 * p], spans[2 * p + 1])
  }
  return out
}

function joinChunks(ch: string[], q: string): string {
  if (ch.length === 1) return ch[0]
  let out = ch[0]
  for (let i = 1; i < ch.length; i++) out += q + ch[i]
  return out
}

function tplBytes(t: Part[] | null): number {
  if (!t) return 0
  let n = 16
  for (const p of t) n += typeof p === 'string' ? 2 * p.length + 16 : 8
  return n
}

function noTenantRefusal(table: string, ctx: RewriteContext): Refusal {
  return {
    kind: 'refuse',
    sqlstate: '42501',
    message: `table "${table}" is a tenant table and no tenant is set`,
    hint: `SET ${ctx.setting} = '<tenant>' first`,
  }
}

/**
 * Turn a plan into a result for this text and tenant; `sqlOf(i, q)` / `wholeSql(q)` give the spliced SQL.
 * Statements are taken in order with an "effective tenant": it starts as ctx.tenant, a tenant command
 * (SET/RESET/set_config of the setting) earlier in the same message changes it for the statements after
 * it, and RESET ALL / DISCARD ALL clear it. (server/ applies the tenant command; if it refuses the
 * command it must refuse the whole message.)
 */
function finish(
  plan: Plan,
  ctx: RewriteContext,
  cache: 'exact' | 'normalized' | 'cold' | 'none',
  checkVal: (i: number) => string | null,
  sqlOf: (i: number, q: string) => string,
  wholeSql: (q: string) => string,
  quote: (t: string) => string,
): RewriteResult {
  if (plan.refusal) {
    return { refusal: plan.refusal, statements: plan.stmts.map(toPublicNoSql), cache }
  }
  const tenantMode = ctx.mode === 'tenant'
  let eff = ctx.tenant
  let failing: Refusal | null = null
  const statements: StatementPlan[] = new Array(plan.stmts.length)
  for (let i = 0; i < plan.stmts.length; i++) {
    const s = plan.stmts[i]
    if (s.kind === 'tenant') {
      const c = s.tenantCommand!
      statements[i] = { kind: 'tenant', command: c }
      if (c.op !== 'show') {
        eff = c.value
      }
      continue
    }
    if (s.kind !== 'forward') {
      statements[i] = toPublicNoSql(s)
      continue
    }
    let refusal: Refusal | null = null
    if (tenantMode && s.touchesTenant) {
      if (eff === null) refusal = noTenantRefusal(s.firstTenantTable ?? '?', ctx)
      else if (eff.includes('\0')) refusal = { kind: 'refuse', sqlstate: '42501', message: 'the session tenant contains a NUL character and cannot be used' }
      else
        for (let k = 0; k < plan.checks.length; k++) {
          const c = plan.checks[k]
          if (c.stmt === i && checkVal(k) !== eff) {
            refusal = { kind: 'refuse', sqlstate: '42501', message: c.message }
            break
          }
        }
    }
    if (refusal) {
      if (!failing) failing = refusal
      statements[i] = refusal
    } else {
      const q = tenantMode && eff !== null ? (eff === ctx.tenant ? quote(eff) : quoteLiteral(eff)) : "''"
      const p: StatementPlan = { kind: 'forward', sql: sqlOf(i, q), command: s.command, touchesTenant: s.touchesTenant, relations: s.relations }
      if (s.effect) p.effect = s.effect
      if (s.copyIn) p.copyIn = s.copyIn
      statements[i] = p
    }
    if (s.effect && (s.effect.kind === 'reset_all' || s.effect.kind === 'discard_all')) {
      eff = null
    }
  }
  if (failing) {
    for (let i = 0; i < statements.length; i++) if (statements[i].kind === 'forward') (statements[i] as { sql: string }).sql = ''
    return { refusal: failing, statements, cache }
  }
  const res: RewriteResult = { statements, cache }
  if (plan.whole) {
    // all forwarded: no tenant command; a reset in the middle cannot matter here (a tenant
    // statement after it would have been refused above)
    res.sql =
      plan.stmts.length === 1 && plan.whole === plan.stmts[0].tpl
        ? (statements[0] as { sql: string }).sql
        : wholeSql(tenantMode && ctx.tenant !== null ? quote(ctx.tenant) : "''")
  }
  return res
}

/**
 * A value no client text contains (checked): the verifier sees it in every tenant slot and in every
 * literal the plan checks against the tenant before sending, so only the rewriter's own restrictions
 * count, never a tenant literal the client wrote.
 */
const VERIFY_SENTINEL = `pgtenant-verify-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`
const QUOTED_SENTINEL = quoteLiteral(VERIFY_SENTINEL)

/**
 * Defence in depth (issue #13): a newly rewritten plan is re-parsed and checked structurally
 * (parser/verify.ts) before it is cached or used; a plan that fails becomes a 42501 refusal that
 * carries the verifier's finding (server/ logs it). Cache hits reuse the verified plan.
 */
function verified(plan: Plan, sql: string, nz: Normalized, ctx: RewriteContext): Plan {
  if (ctx.mode !== 'tenant' || plan.refusal) return plan
  const checked = new Set(plan.checks.map((c) => c.lit))
  const texts: string[] = []
  if (plan.whole) texts.push(fillForVerify(plan.whole, sql, nz.spans, checked, QUOTED_SENTINEL))
  else for (const s of plan.stmts) if (s.kind === 'forward') texts.push(fillForVerify(s.tpl, sql, nz.spans, checked, QUOTED_SENTINEL))
  for (const text of texts) {
    const r = verifyRewrite(text, VERIFY_SENTINEL, ctx, { originalSql: sql })
    if (r.ok) continue
    const refusal: Refusal = {
      kind: 'refuse',
      sqlstate: '42501',
      message: `pgtenant refused the statement: its rewrite could not be verified to restrict table "${r.table}" to the tenant (${r.reason})`,
      verifyFailure: { table: r.table, reason: r.reason },
    }
    const command = plan.stmts.find((s) => s.kind === 'forward')?.command ?? ''
    return {
      stmts: [{ kind: 'refuse', refusal, tpl: [], command, touchesTenant: false, firstTenantTable: null, relations: [] }],
      whole: null,
      refusal,
      checks: [],
      normalizable: false,
      touchesTenant: false,
    }
  }
  return plan
}

function toPublicNoSql(s: CompiledStmt): StatementPlan {
  if (s.kind === 'refuse') return s.refusal!
  if (s.kind === 'tenant') return { kind: 'tenant', command: s.tenantCommand! }
  const p: StatementPlan = { kind: 'forward', sql: '', command: s.command, touchesTenant: s.touchesTenant, relations: s.relations }
  if (s.effect) p.effect = s.effect
  return p
}

function decodeCheck(text: string, spans: number[], kinds: number[], lit: number): string | null {
  return decodeSimpleLiteral(text.slice(spans[2 * lit], spans[2 * lit + 1]), kinds[lit])
}

/**
 * Rewrite one client message (one statement, or several for the simple protocol) for ctx.
 * Never throws for bad SQL: refusals come back in the result. Call initParser() first.
 */
export function rewriteQuery(sql: string, ctx: RewriteContext, cache?: RewriteCache): RewriteResult {
  try {
    return rewriteInner(sql, ctx, cache)
  } catch (e) {
    // an internal error must never crash the caller or let a statement through unrewritten
    if (ctx.mode !== 'tenant') return { statements: [{ kind: 'forward', sql, command: '', touchesTenant: false, relations: [] }], sql, cache: 'none' }
    const refusal: Refusal = { kind: 'refuse', sqlstate: '0A000', message: `pgtenant could not rewrite the statement: ${(e as Error)?.message ?? e}` }
    return { refusal, statements: [refusal], cache: 'none' }
  }
}

function rewriteInner(sql: string, ctx: RewriteContext, cache?: RewriteCache): RewriteResult {
  const quote = cache ? (t: string) => cache.quote(t) : quoteLiteral
  if (cache) {
    const ck = cache.ctxKey(ctx)
    const ex = cache.getExact(sql, ck)
    if (ex) {
      const plan = ex.plan
      return finish(
        plan,
        ctx,
        'exact',
        (i) => ex.checkVals[i],
        (i, q) => joinChunks(ex.stmts[i]!, q),
        (q) => joinChunks(ex.whole!, q),
        quote,
      )
    }
    const nz = normalizeLiterals(sql)
    if (nz.key !== null) {
      const ne = cache.getNorm(nz.key, ck)
      if (ne) {
        const plan = ne.plan
        return finish(
          plan,
          ctx,
          'normalized',
          (i) => decodeCheck(sql, nz.spans, nz.kinds, plan.checks[i].lit),
          (i, q) => fill(plan.stmts[i].tpl, sql, nz.spans, q),
          (q) => fill(plan.whole!, sql, nz.spans, q),
          quote,
        )
      }
    }
    const plan = verified(analyze(sql, ctx, nz), sql, nz, ctx)
    const spans = nz.spans
    const stmts = plan.stmts.map((s) => (s.kind === 'forward' ? splitTenant(s.tpl, sql, spans) : null))
    const whole = plan.whole ? splitTenant(plan.whole, sql, spans) : null
    const checkVals = plan.checks.map((c) => decodeCheck(sql, spans, nz.kinds, c.lit))
    let bytes = 256 + 2 * sql.length
    for (const s of stmts) if (s) for (const c of s) bytes += 2 * c.length + 16
    if (whole && !(plan.stmts.length === 1 && plan.whole === plan.stmts[0].tpl)) for (const c of whole) bytes += 2 * c.length + 16
    cache.putExact(sql, { ctx: ck, plan, whole, stmts, checkVals, bytes, used: false, next: null })
    if (plan.normalizable && nz.key !== null) {
      let nb = 256 + 2 * nz.key.length + tplBytes(plan.whole)
      for (const s of plan.stmts) nb += tplBytes(s.tpl)
      cache.putNorm(nz.key, { ctx: ck, plan, bytes: nb, used: false, next: null })
    }
    return finish(
      plan,
      ctx,
      'cold',
      (i) => checkVals[i],
      (i, q) => joinChunks(stmts[i]!, q),
      (q) => joinChunks(whole!, q),
      quote,
    )
  }
  const nz = normalizeLiterals(sql)
  const plan = verified(analyze(sql, ctx, nz), sql, nz, ctx)
  return finish(
    plan,
    ctx,
    'none',
    (i) => decodeCheck(sql, nz.spans, nz.kinds, plan.checks[i].lit),
    (i, q) => fill(plan.stmts[i].tpl, sql, nz.spans, q),
    (q) => fill(plan.whole!, sql, nz.spans, q),
    quote,
  )
}
