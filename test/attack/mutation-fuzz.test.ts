// Lexer mutation fuzz through the real proxy: statements of the oracle corpus
// (test/oracle/corpus/*.yaml) with comments (both kinds, nested, every line terminator),
// whitespace forms and string/identifier spellings inserted at token boundaries. Every mutated
// statement runs through pgtenant as a tenant and directly on only_<tenant>: the proxy's answer
// must be a refusal or oracle-equal, and must never leak (the same checks as attack.test.ts).
//
// ATTACK_FUZZ_SEED=<n> reproduces a run (the seed is printed first and in every failure);
// ATTACK_FUZZ_SECONDS (default 60) and ATTACK_FUZZ_N (default 5000) bound it.
import t from 'tap'
import pg from 'pg'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startOracle, loadCorpus, repoRoot, tenantsFor, protocolsFor, type OracleEnv, type CorpusEntry } from '../oracle/harness.js'
import { ALL_DB, TENANTS, onlyDb, TENANT_TABLES } from '../oracle/facts.js'
import { tokenize, mulberry32, pick, mayBeNondeterministic, type Rng, type Tok } from '../oracle/mutate.js'
import { ROLES } from '../helpers/pg-server.js'
import type { RunningProxy } from '../helpers/proxy.js'
import { AUDIT_SQL, startAttackProxy, closeQuietly, oneLine, type Attempt } from './lib.js'
import { runOnce, health, type Ctx } from './runner.js'

// CI runs a fixed seed (a red build must be reproducible); elsewhere each run explores a new one
const SEED = Number(process.env.ATTACK_FUZZ_SEED ?? (process.env.CI ? 20261207 : Date.now() % 2147483647))
const SECONDS = Number(process.env.ATTACK_FUZZ_SECONDS ?? 60)
const N = Number(process.env.ATTACK_FUZZ_N ?? 5000)

/** Text PostgreSQL reads as whitespace or nothing between two tokens. */
const NEUTRAL = [
  ' /* c */ ',
  '/**/',
  ' /* a /* nested */ b */ ',
  ' /* ü — 🚀 */ ',
  ' --c\n',
  ' --c\r',
  ' --c\r\n',
  ' -- x\r\n ',
  ' --\n',
  '\f',
  '\t',
  '\r',
  '\r\n',
  '\n\n',
  ' \f\t ',
  ' --ß\r',
  ' /* -- */ ',
  " /* ' */ ",
  ' /* " */ ',
  ' /* $$ */ ',
  ' -- /*\n',
]
/** Not neutral (the statement changes), still comparable with only_T: a scanner that ends comments elsewhere goes wrong. */
const HOSTILE = [' --\r OR true\n', ' --\f OR true\n', ' /* /* */ OR true */ ', ' --c\r\n OR 1 = 1\n', " -- '\r ", ' /* */* ', ' --\r--\n']

interface Mutated {
  sql: string
  what: string[]
}

function boundaries(toks: Tok[], sql: string): number[] {
  const b = toks.slice(1).map((x) => x.start)
  b.push(sql.length)
  return b
}

function stringForms(text: string, rng: Rng): string | null {
  if (!text.startsWith("'") || !text.endsWith("'") || text.length < 2) return null
  const body = text.slice(1, -1)
  const value = body.replace(/''/g, "'")
  if (value.includes('\\')) return null
  const forms: string[] = [`E'${body}'`, `e'${body}'`]
  if (!value.includes('$')) forms.push(`$$${value}$$`, `$q$${value}$q$`, `$_a1$${value}$_a1$`)
  if (!/[^\x20-\x7e]/.test(value)) forms.push(`U&'${body.replace(/a/g, '\\0061')}'`, `U&'${body.replace(/e/g, '!0065')}' UESCAPE '!'`)
  if (body.length >= 2) {
    const k = 1 + Math.floor(rng() * (body.length - 1))
    if (body[k - 1] !== "'" && body[k] !== "'")
      forms.push(`'${body.slice(0, k)}'\n'${body.slice(k)}'`, `'${body.slice(0, k)}' \r\n '${body.slice(k)}'`, `'${body.slice(0, k)}' -- c\n'${body.slice(k)}'`)
  }
  return pick(rng, forms)
}

function identForms(word: string, rng: Rng): string | null {
  if (!TENANT_TABLES.has(`public.${word.toLowerCase()}`) || word !== word.toLowerCase()) return null
  return pick(rng, [`"${word}"`, `U&"${word.replace(/s/g, '\\0073')}"`, `U&"${word.replace(/t/g, '!0074')}" UESCAPE '!'`, `public."${word}"`])
}

export function mutateLexically(sql: string, rng: Rng): Mutated | null {
  let cur = sql
  const what: string[] = []
  const n = 1 + Math.floor(rng() * 3)
  for (let k = 0; k < n; k++) {
    const toks = tokenize(cur)
    if (toks.length < 2) return null
    const r = rng()
    if (r < 0.55) {
      const at = pick(rng, boundaries(toks, cur))
      const frag = pick(rng, NEUTRAL)
      cur = cur.slice(0, at) + frag + cur.slice(at)
      what.push(`insert ${JSON.stringify(frag)}@${at}`)
    } else if (r < 0.65) {
      const at = pick(rng, boundaries(toks, cur))
      const frag = pick(rng, HOSTILE)
      cur = cur.slice(0, at) + frag + cur.slice(at)
      what.push(`hostile ${JSON.stringify(frag)}@${at}`)
    } else if (r < 0.85) {
      const strs = toks.filter((x) => x.type === 'string' && x.text.startsWith("'"))
      if (!strs.length) continue
      const s = pick(rng, strs)
      const f = stringForms(s.text, rng)
      if (!f) continue
      cur = cur.slice(0, s.start) + f + cur.slice(s.end)
      what.push(`string ${JSON.stringify(s.text.slice(0, 20))}→${JSON.stringify(f.slice(0, 24))}`)
    } else {
      const ids = toks.filter((x) => x.type === 'word' && identForms(x.text, rng))
      if (!ids.length) continue
      const s = pick(rng, ids)
      const f = identForms(s.text, rng)!
      cur = cur.slice(0, s.start) + f + cur.slice(s.end)
      what.push(`ident ${s.text}→${f}`)
    }
  }
  return what.length ? { sql: cur, what } : null
}

let env: OracleEnv
let proxy: RunningProxy
let ctx: Ctx
t.before(async () => {
  env = await startOracle()
  for (const db of ['oracle_template', ALL_DB, ...TENANTS.map(onlyDb)]) env.server.sql(AUDIT_SQL, db)
  proxy = await startAttackProxy(env, 1)
  const inspect = new pg.Client({ connectionString: env.server.url(ROLES.scram.user, ROLES.scram.password, ALL_DB) })
  await inspect.connect()
  const pids: number[] = []
  for (const c of [inspect, env.allClient, env.inspectClient]) pids.push((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number)
  ctx = { env, proxy, inspect, keepPids: pids }
  ctx.healthBaseline = await health(ctx)
})
t.teardown(async () => {
  for (const c of ctx?.directs?.values() ?? []) await closeQuietly(c)
  await closeQuietly(ctx?.admin)
  await ctx?.inspect.end().catch(() => undefined)
  await proxy?.stop()
  await env?.close()
})

t.test(`lexical mutation fuzz through the proxy (seed ${SEED})`, async (t) => {
  t.comment(`attack fuzz seed: ${SEED} (rerun with ATTACK_FUZZ_SEED=${SEED}; enlarge with ATTACK_FUZZ_SECONDS / ATTACK_FUZZ_N)`)
  const corpus = loadCorpus().filter((e) => !/\b(pg_|information_schema)/i.test(e.sql) && !e.protocols && !e.ignore_rows && !/\bPREPARE\b/i.test(e.sql))
  const rng = mulberry32(SEED)
  const deadline = Date.now() + SECONDS * 1000
  const stats = { run: 0, pass: 0, refused: 0, leak: 0, wrong: 0, inconclusive: 0 }
  const failures: string[] = []
  for (let k = 0; k < N && Date.now() < deadline; k++) {
    const entry: CorpusEntry = pick(rng, corpus)
    const m = mutateLexically(entry.sql, rng)
    if (!m) continue
    const tenant = pick(rng, tenantsFor(entry))
    const protocol = pick(rng, protocolsFor(entry))
    const a: Attempt = {
      cls: 'fuzz',
      id: `fuzz#${k}`,
      sql: m.sql,
      params: entry.params,
      check: 'oracle-equal',
      sqlstate: [],
      allow_refusal: true,
      tenant,
      protocols: [protocol],
      pinned: false,
      setup: [],
      probes: [],
      txn: true,
      named: false,
    }
    stats.run++
    const r = await runOnce(ctx, a, protocol, 'app')
    if (r.evidence.some((e) => /^proxy: error/.test(e)) && r.status === 'PASS') stats.refused++
    if (r.status === 'PASS') {
      stats.pass++
      continue
    }
    if (r.status === 'WRONG' && (entry.isolation_only || (mayBeNondeterministic(m.sql) && r.evidence.every((e) => /rows differ|^proxy:|^\(/.test(e))))) {
      stats.inconclusive++
      continue
    }
    if (r.status === 'LEAK') stats.leak++
    else stats.wrong++
    const text = [
      `${r.status} fuzz#${k} seed=${SEED} ${entry.id} tenant=${JSON.stringify(tenant)} ${protocol}`,
      `  mutations: ${m.what.join('; ')}`,
      `  sql: ${JSON.stringify(m.sql)}`,
      ...r.evidence.map((e) => `  - ${oneLine(e, 400)}`),
    ].join('\n')
    failures.push(text)
    t.comment(text)
  }
  t.comment(`attack fuzz stats (seed ${SEED}): ${JSON.stringify(stats)}`)
  const dir = join(repoRoot(), 'tmp')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'attack-fuzz-report.txt'), `# attack mutation fuzz, seed ${SEED}: ${JSON.stringify(stats)}\n\n${failures.join('\n\n')}\n`)
  t.ok(stats.run >= 20, `ran ${stats.run} mutations`)
  t.equal(stats.leak, 0, "no mutation leaked another tenant's data")
  t.equal(stats.wrong, 0, 'every mutation was refused or oracle-equal')
})
