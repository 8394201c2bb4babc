// SQL tokens for the oracle fuzzers (mutate.ts, test/attack/mutation-fuzz.test.ts): a small tokenizer,
// a seeded random generator, and the clause and table lookups mutations use.
import { TENANT_TABLES } from './facts.js'
import type { Rng } from '../helpers/rng.js'

export { mulberry32, type Rng } from '../helpers/rng.js'

export interface Tok {
  type: 'word' | 'qident' | 'string' | 'number' | 'param' | 'punct' | 'dollar'
  text: string
  start: number
  end: number
  /** Parenthesis depth at the token (a '(' has the outer depth). */
  depth: number
}

export function tokenize(sql: string): Tok[] {
  const out: Tok[] = []
  let i = 0
  let depth = 0
  const n = sql.length
  while (i < n) {
    const c = sql[i]
    if (/\s/.test(c)) {
      i++
      continue
    }
    if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++
      continue
    }
    if (c === '/' && sql[i + 1] === '*') {
      let level = 0
      while (i < n) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          level++
          i += 2
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          level--
          i += 2
          if (level === 0) break
        } else i++
      }
      continue
    }
    const start = i
    if ((c === 'E' || c === 'e') && sql[i + 1] === "'") {
      i += 2
      while (i < n && sql[i] !== "'") i += sql[i] === '\\' ? 2 : 1
      i++
      out.push({ type: 'string', text: sql.slice(start, i), start, end: i, depth })
      continue
    }
    if (c === "'") {
      i++
      while (i < n) {
        if (sql[i] === "'" && sql[i + 1] === "'") i += 2
        else if (sql[i] === "'") break
        else i++
      }
      i++
      out.push({ type: 'string', text: sql.slice(start, i), start, end: i, depth })
      continue
    }
    if (c === '"') {
      i++
      while (i < n) {
        if (sql[i] === '"' && sql[i + 1] === '"') i += 2
        else if (sql[i] === '"') break
        else i++
      }
      i++
      out.push({ type: 'qident', text: sql.slice(start, i), start, end: i, depth })
      continue
    }
    if (c === '$') {
      const m = /^\$(\d+)/.exec(sql.slice(i))
      if (m) {
        i += m[0].length
        out.push({ type: 'param', text: m[0], start, end: i, depth })
        continue
      }
      const d = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i))
      if (d) {
        const close = sql.indexOf(d[0], i + d[0].length)
        i = close < 0 ? n : close + d[0].length
        out.push({ type: 'dollar', text: sql.slice(start, i), start, end: i, depth })
        continue
      }
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
      while (i < n && /[0-9.eE]/.test(sql[i])) i++
      out.push({ type: 'number', text: sql.slice(start, i), start, end: i, depth })
      continue
    }
    if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      while (i < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[i])) i++
      out.push({ type: 'word', text: sql.slice(start, i), start, end: i, depth })
      continue
    }
    if (c === '(') {
      out.push({ type: 'punct', text: c, start, end: i + 1, depth })
      depth++
      i++
      continue
    }
    if (c === ')') {
      depth--
      out.push({ type: 'punct', text: c, start, end: i + 1, depth })
      i++
      continue
    }
    out.push({ type: 'punct', text: c, start, end: i + 1, depth })
    i++
  }
  return out
}

export const up = (t: Tok | undefined) => (t && t.type === 'word' ? t.text.toUpperCase() : '')

export const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]

export function splice(sql: string, start: number, end: number, text: string): string {
  return sql.slice(0, start) + text + sql.slice(end)
}

export const CLAUSE_END = new Set(['GROUP', 'ORDER', 'LIMIT', 'OFFSET', 'HAVING', 'WINDOW', 'RETURNING', 'FOR', 'UNION', 'INTERSECT', 'EXCEPT', 'FETCH'])

/** [start, end) of the condition after each WHERE keyword. */
export function whereClauses(_sql: string, toks: Tok[]): { kw: Tok; start: number; end: number }[] {
  const out: { kw: Tok; start: number; end: number }[] = []
  toks.forEach((t, i) => {
    if (up(t) !== 'WHERE') return
    let j = i + 1
    while (j < toks.length) {
      const u = toks[j]
      if (u.depth < t.depth) break
      if (u.depth === t.depth && (CLAUSE_END.has(up(u)) || u.text === ';' || (u.text === ')' && u.depth < t.depth))) break
      if (u.depth === t.depth && up(u) === 'DO' && up(toks[j + 1]) !== '') break
      j++
    }
    if (j === i + 1) return
    const end = toks[j - 1].end
    out.push({ kw: t, start: toks[i + 1].start, end })
  })
  return out
}

export function isReadOnly(toks: Tok[]): boolean {
  const first = up(toks[0]) || toks[0]?.text
  if (!['SELECT', 'WITH', 'TABLE', 'VALUES', '('].includes(first)) return false
  return !toks.some(
    (t) =>
      ['INSERT', 'UPDATE', 'DELETE', 'MERGE'].includes(up(t)) && !(up(t) === 'UPDATE' && ['FOR', 'NO', 'KEY', 'DO'].includes(up(toks[toks.indexOf(t) - 1]))),
  )
}

export function hasReturning(toks: Tok[]): boolean {
  return toks.some((t) => up(t) === 'RETURNING' && t.depth === 0)
}

/** Could the result be order- or plan-dependent once rows change (LIMIT etc.)? Then a non-leak mismatch is inconclusive. */
export function mayBeNondeterministic(sql: string): boolean {
  return /\b(LIMIT|OFFSET|FETCH|DISTINCT\s+ON|row_number|rank|lag|lead|first_value|ntile|percent_rank|SKIP\s+LOCKED|string_agg|array_agg|jsonb_agg)\b/i.test(
    sql,
  )
}

/** The first table in FROM / UPDATE / DELETE FROM / INSERT INTO and the name to qualify its columns with. */
export function firstTenantTable(toks: Tok[]): { qualifier: string; column: string } | null {
  for (let i = 0; i < toks.length; i++) {
    const k = up(toks[i])
    if (!['FROM', 'UPDATE', 'INTO', 'JOIN'].includes(k)) continue
    let j = i + 1
    if (up(toks[j]) === 'ONLY') j++
    const parts: string[] = []
    while (toks[j] && (toks[j].type === 'word' || toks[j].type === 'qident')) {
      parts.push(toks[j].type === 'qident' ? toks[j].text.slice(1, -1) : toks[j].text.toLowerCase())
      if (toks[j + 1]?.text === '.') j += 2
      else {
        j++
        break
      }
    }
    if (parts.length === 0) continue
    const key = parts.length === 1 ? `public.${parts[0]}` : parts.join('.')
    const column = TENANT_TABLES.get(key)
    if (!column) continue
    let alias: string | undefined
    if (up(toks[j]) === 'AS') j++
    const a = toks[j]
    if (
      a &&
      (a.type === 'qident' ||
        (a.type === 'word' &&
          ![
            'WHERE',
            'SET',
            'JOIN',
            'LEFT',
            'RIGHT',
            'FULL',
            'INNER',
            'CROSS',
            'NATURAL',
            'ON',
            'USING',
            'GROUP',
            'ORDER',
            'LIMIT',
            'VALUES',
            'SELECT',
            'DEFAULT',
            'FOR',
            'WINDOW',
            'HAVING',
            'OFFSET',
            'UNION',
            'EXCEPT',
            'INTERSECT',
            'RETURNING',
            'FETCH',
          ].includes(up(a))))
    )
      alias = a.text
    if (k === 'INTO') return null // INSERT: no WHERE over the target
    return { qualifier: alias ?? (parts.length === 1 ? toks[i + 1 + (up(toks[i + 1]) === 'ONLY' ? 1 : 0)].text : parts.map((p) => `"${p}"`).join('.')), column }
  }
  return null
}
