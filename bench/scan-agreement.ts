// Differential check of parser/scan.ts against PostgreSQL's own lexer: `npm run bench:scan`.
// Generates N (default 1,000,000; SCAN_INPUTS=…, SCAN_SEED=…) statements that mix every lexical
// form scan.l knows (comments ended by \n, \r, \r\n or EOF; nested /* */; '…' E'…' U&'…' B'…' X'…'
// N'…' with continuations; "…" U&"…"; dollar quotes; operators of op chars; numbers; params;
// casts; multibyte text and lone surrogates; every whitespace char; control chars) and compares,
// for each, tokenize()'s token boundaries and kinds and normalizeLiterals()'s literal spans with
// those of libpg-query's scanner (scan.l compiled to WASM, the parser the analyzer uses). Prints
// inputs, disagreements (must be 0) and time.
//
// This file also exports the generator and the comparison for test/parser/scan-agreement.test.ts.
//
// The oracle is libpg-query's scan, the C function that scanSync wraps, called on our own UTF-8
// bytes (Buffer.from: a lone surrogate becomes U+FFFD, which is what the backend gets), because
// scanSync's own JSON breaks on control chars in token text, and its encoder sends other bytes
// for lone surrogates. Offsets come back in bytes and are mapped to char indices.
import { pathToFileURL } from 'node:url'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { loadModule, scanSync } from 'libpg-query'
import { generate } from './scan-agreement/generate.js'
import { mulberry32 } from '../test/helpers/rng.js'

export { generate } from './scan-agreement/generate.js'
export { mulberry32 } from '../test/helpers/rng.js'
import {
  tokenize,
  normalizeLiterals,
  ScanUnsure,
  T_WORD,
  T_QIDENT,
  T_STRING,
  T_NUMBER,
  T_PARAM,
  T_OP,
  T_PUNCT,
  LIT_STRING,
  LIT_ESTRING,
  LIT_BITSTRING,
  LIT_NUMBER,
  LIT_DOLLAR,
  LIT_USTRING,
  type Token,
} from '../parser/scan.js'

// ---- oracle -----------------------------------------------------------------------------------

interface PgTok {
  s: number // char index
  e: number
  type: number
  name: string
  text: string
  kw: number
}
export interface PgScan {
  ok: boolean
  error?: string
  tokens: PgTok[]
}

let mod: any = null
const TY: Record<string, number> = {}

/** Loads libpg-query (the package's own module, and a raw instance of its WASM for the oracle). */
export async function loadOracle(): Promise<void> {
  if (mod) return
  await loadModule()
  const require = createRequire(import.meta.url)
  const dir = dirname(require.resolve('libpg-query'))
  const spec = pathToFileURL(join(dir, 'libpg-query.js')).href
  const factory = (await import(spec)).default
  mod = await factory()
  // token type numbers, read from the scanner itself
  for (const [name, text] of [
    ['SCONST', "'a'"],
    ['USCONST', "U&'a'"],
    ['BCONST', "B'1'"],
    ['XCONST', "X'1'"],
    ['ICONST', '1'],
    ['FCONST', '1.5'],
    ['PARAM', '$1'],
    ['IDENT', 'abc'],
    ['UIDENT', 'U&"a"'],
    ['TYPECAST', '::'],
    ['DOT_DOT', '..'],
    ['COLON_EQUALS', ':='],
    ['SQL_COMMENT', '-- x'],
    ['C_COMMENT', '/* x */'],
    ['Op', '~~'],
  ]) {
    const r = scanSync(text)
    TY[name] = r.tokens[0].tokenType
  }
}

/** libpg-query's scanner on the UTF-8 bytes of s (as the backend gets them), offsets as char indices. */
export function pgScan(s: string): PgScan {
  if (s === '') return { ok: true, tokens: [] } // libpg-query refuses an empty query before lexing
  const buf = Buffer.from(s, 'utf8')
  const p = mod._malloc(buf.length + 1)
  mod.HEAPU8.set(buf, p)
  mod.HEAPU8[p + buf.length] = 0
  let str: string
  try {
    const r = mod._wasm_scan(p)
    str = mod.UTF8ToString(r)
    mod._wasm_free_string(r)
  } finally {
    mod._free(p)
  }
  if (!str.startsWith('{')) return { ok: false, error: str, tokens: [] }
  // the JSON holds token text with raw control chars: escape them

  const j = JSON.parse(str.replace(/[\u0000-\u001f]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')))
  let b2c: Int32Array | null = null
  if (buf.length !== s.length) {
    b2c = new Int32Array(buf.length + 1)
    let bi = 0
    for (let ci = 0; ci < s.length; ci++) {
      const c = s.charCodeAt(ci)
      b2c[bi] = ci
      if (c < 0x80) bi += 1
      else if (c < 0x800) bi += 2
      else if (c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(ci + 1) & 0xfc00) === 0xdc00) {
        bi += 4
        ci++
      } else bi += 3 // BMP char or a lone surrogate (U+FFFD)
    }
    b2c[bi] = s.length
  }
  const tokens: PgTok[] = (j.tokens ?? []).map((t: any) => ({
    s: b2c ? b2c[t.start] : t.start,
    e: b2c ? b2c[t.end] : t.end,
    type: t.tokenType,
    name: t.tokenName,
    text: t.text,
    kw: t.keywordKind,
  }))
  return { ok: true, tokens }
}

// ---- comparison -------------------------------------------------------------------------------

export interface Verdict {
  /** '' when scan.ts agrees (or fails closed where it may), else what disagrees */
  problem: string
  pgOk: boolean
  /** tokenize threw ScanUnsure / normalizeLiterals gave key null */
  unsure: boolean
  keyNull: boolean
}

function expectedKind(t: PgTok): number {
  const y = t.type
  if (y === TY.SCONST || y === TY.USCONST || y === TY.BCONST || y === TY.XCONST) return T_STRING
  if (y === TY.ICONST || y === TY.FCONST) return T_NUMBER
  if (y === TY.PARAM) return T_PARAM
  if (y === TY.UIDENT) return T_QIDENT
  if (y === TY.IDENT) return t.text.startsWith('"') ? T_QIDENT : T_WORD
  if (t.kw > 0) return T_WORD
  if (y === TY.TYPECAST || y === TY.COLON_EQUALS) return T_OP
  if (y === TY.DOT_DOT) return T_PUNCT
  if (y < 256 && '()[],;.:'.includes(String.fromCharCode(y))) return T_PUNCT
  return T_OP
}
function litKindOk(t: PgTok, k: number, s: string): boolean {
  const y = t.type
  if (y === TY.ICONST || y === TY.FCONST) return k === LIT_NUMBER
  if (y === TY.USCONST) return k === LIT_USTRING
  if (y === TY.BCONST || y === TY.XCONST) return k === LIT_BITSTRING
  if (y === TY.SCONST) {
    const c = s[t.s]
    return c === '$' ? k === LIT_DOLLAR : c === "'" ? k === LIT_STRING : k === LIT_ESTRING
  }
  return false
}
function isLiteral(y: number): boolean {
  return y === TY.SCONST || y === TY.USCONST || y === TY.BCONST || y === TY.XCONST || y === TY.ICONST || y === TY.FCONST
}

const show = (s: string, a: number, b: number) => JSON.stringify(s.slice(a, b))

/** Compares scan.ts with the oracle on s. */
export function compare(s: string): Verdict {
  const pg = pgScan(s)
  const nz = normalizeLiterals(s)
  let toks: Token[] | null = null
  let unsure = false
  try {
    toks = tokenize(s)
  } catch (e) {
    if (!(e instanceof ScanUnsure)) return { problem: `tokenize threw ${(e as Error).message}`, pgOk: pg.ok, unsure: true, keyNull: nz.key === null }
    unsure = true
  }
  const v: Verdict = { problem: '', pgOk: pg.ok, unsure, keyNull: nz.key === null }
  if (s.includes('\0')) {
    // PostgreSQL never sees past a NUL (the protocol's strings end there): never shared
    if (nz.key !== null) v.problem = 'a text with NUL got a shared key'
    return v
  }
  if (!pg.ok) {
    // PostgreSQL rejects the text: it must never share a plan with a text PostgreSQL accepts
    if (nz.key !== null) v.problem = `PostgreSQL rejects it (${pg.error}) but normalizeLiterals shares it`
    return v
  }
  if (unsure && nz.key !== null) v.problem = 'tokenize is unsure but normalizeLiterals shares it'
  const pt = pg.tokens.filter((t) => t.type !== TY.SQL_COMMENT && t.type !== TY.C_COMMENT)
  if (toks) {
    const n = Math.max(toks.length, pt.length)
    for (let i = 0; i < n; i++) {
      const a = toks[i]
      const b = pt[i]
      if (!a || !b || a.s !== b.s || a.e !== b.e) {
        v.problem = `token ${i}: scan.ts ${a ? `${a.s}-${a.e} ${show(s, a.s, a.e)}` : 'none'}, PostgreSQL ${b ? `${b.s}-${b.e} ${show(s, b.s, b.e)} ${b.name}` : 'none'}`
        return v
      }
      if (a.k !== expectedKind(b)) {
        v.problem = `token ${i} ${show(s, a.s, a.e)}: kind ${a.k}, PostgreSQL ${b.name} (${b.type}) wants ${expectedKind(b)}`
        return v
      }
    }
  }
  const pl = pt.filter((t) => isLiteral(t.type))
  const nl = nz.kinds.length
  for (let i = 0; i < Math.max(nl, pl.length); i++) {
    const b = pl[i]
    const a0 = nz.spans[2 * i]
    const a1 = nz.spans[2 * i + 1]
    if (i >= nl || !b || a0 !== b.s || a1 !== b.e) {
      v.problem = `literal ${i}: normalizeLiterals ${i < nl ? `${a0}-${a1} ${show(s, a0, a1)}` : 'none'}, PostgreSQL ${b ? `${b.s}-${b.e} ${show(s, b.s, b.e)} ${b.name}` : 'none'}`
      return v
    }
    if (!litKindOk(b, nz.kinds[i], s)) {
      v.problem = `literal ${i} ${show(s, a0, a1)}: kind ${nz.kinds[i]} for PostgreSQL ${b.name}`
      return v
    }
  }
  if (nz.key !== null) {
    let k = ''
    let last = 0
    for (let i = 0; i < nl; i++) {
      k += s.slice(last, nz.spans[2 * i]) + String.fromCharCode(nz.kinds[i])
      last = nz.spans[2 * i + 1]
    }
    k += s.slice(last)
    if (k !== nz.key) v.problem = 'the key is not the text with each literal replaced by its marker'
  }
  return v
}

// ---- the run ----------------------------------------------------------------------------------

export interface RunResult {
  inputs: number
  disagreements: number
  pgRejected: number
  failedClosed: number
  shared: number
  examples: string[]
  ms: number
}

export function run(seed: number, inputs: number, maxExamples = 10): RunResult {
  const r = mulberry32(seed)
  const res: RunResult = { inputs, disagreements: 0, pgRejected: 0, failedClosed: 0, shared: 0, examples: [], ms: 0 }
  const t0 = performance.now()
  for (let i = 0; i < inputs; i++) {
    const s = generate(r)
    const v = compare(s)
    if (!v.pgOk) res.pgRejected++
    else if (v.unsure || v.keyNull) res.failedClosed++
    if (!v.keyNull) res.shared++
    if (v.problem) {
      res.disagreements++
      if (res.examples.length < maxExamples) res.examples.push(`${JSON.stringify(s)}: ${v.problem}`)
    }
  }
  res.ms = performance.now() - t0
  return res
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await loadOracle()
  const seed = Number(process.env.SCAN_SEED ?? Date.now() % 2 ** 31)
  const inputs = Number(process.env.SCAN_INPUTS ?? 1_000_000)
  console.log(`scan agreement: seed ${seed} (SCAN_SEED=${seed} reproduces), ${inputs.toLocaleString('en-US')} inputs`)
  const res = run(seed, inputs, 20)
  console.log(
    `inputs ${res.inputs.toLocaleString('en-US')}, disagreements ${res.disagreements}, ` +
      `rejected by PostgreSQL's lexer ${res.pgRejected.toLocaleString('en-US')}, accepted but not shared (fail closed) ${res.failedClosed.toLocaleString('en-US')}, ` +
      `shared keys ${res.shared.toLocaleString('en-US')}, time ${(res.ms / 1000).toFixed(1)} s (${((res.ms * 1000) / res.inputs).toFixed(1)} µs per input)`,
  )
  for (const e of res.examples) console.log('  ' + e)
  process.exitCode = res.disagreements === 0 ? 0 : 1
}
