// The cold-path tokenizer: tokenize() with paren depth, used to find clause boundaries that the parse
// tree has no locations for (end of a FROM list, of a WHERE/ON expression, …). It throws ScanUnsure
// for a text whose token boundaries PostgreSQL and libpg-query (or PostgreSQL versions) may not agree on.
import {
  F_NUMX,
  F_UNSURE,
  commentEnd,
  dollarQuoteEnd,
  dollarTagEnd,
  flags,
  isDigit,
  isIdentChar,
  isIdentStart,
  isOpChar,
  isSpace,
  lineEnd,
  operatorEnd,
  paramEnd,
  qidentEnd,
  resetFlags,
  stringEnd,
  wellFormed,
} from './lexer-rules.js'
import { numberEnd } from './numbers.js'

/** Thrown by tokenize() for a text whose token boundaries PostgreSQL and libpg-query may not agree on. */
export class ScanUnsure extends Error {
  constructor(what: string) {
    super(`the statement has ${what}, which PostgreSQL and pgtenant's parser (or PostgreSQL versions) may read differently`)
    this.name = 'ScanUnsure'
  }
}

export const T_WORD = 1 // unquoted identifier or keyword (w = lower-cased text)
export const T_QIDENT = 2 // "quoted", U&"quoted"
export const T_STRING = 3 // every string form, dollar quotes included
export const T_NUMBER = 4
export const T_PARAM = 5
export const T_OP = 6
export const T_PUNCT = 7 // ( ) [ ] , ; . : ..

export interface Token {
  /** start, end: char indices */
  s: number
  e: number
  k: number
  /** paren/bracket depth at this token; "(" has the outer depth, its ")" too */
  d: number
  /** lower-cased text for T_WORD (ASCII letters only, as PostgreSQL does), the text for T_PUNCT/T_OP, '' otherwise */
  w: string
}

function asciiLower(w: string): string {
  for (let k = 0; k < w.length; k++) {
    const c = w.charCodeAt(k)
    if (c >= 65 && c <= 90) return w.replace(/[A-Z]+/g, (x) => x.toLowerCase())
  }
  return w
}

/**
 * Tokens of s (comments and whitespace dropped), with paren depth. Throws ScanUnsure for a text
 * whose token boundaries PostgreSQL and libpg-query may not agree on (see the file header); texts
 * PostgreSQL's lexer rejects get some tokenization (the parser refuses them first).
 */
export function tokenize(s: string): Token[] {
  const n = s.length
  const out: Token[] = []
  if (!wellFormed(s)) throw new ScanUnsure('a lone UTF-16 surrogate')
  let depth = 0
  let i = 0
  resetFlags()
  while (i < n) {
    const c = s.charCodeAt(i)
    if (isSpace(c)) {
      i++
      continue
    }
    if (c === 45 && s.charCodeAt(i + 1) === 45) {
      i = lineEnd(s, i)
      continue
    }
    if (c === 47 && s.charCodeAt(i + 1) === 42) {
      const e = commentEnd(s, i)
      i = e < 0 ? n : e
      continue
    }
    const start = i
    if (c === 39) {
      const e = stringEnd(s, i, false, true)
      i = e < 0 ? n : e
      out.push({ s: start, e: i, k: T_STRING, d: depth, w: '' })
    } else if (c === 34) {
      const e = qidentEnd(s, i)
      i = e < 0 ? n : e
      out.push({ s: start, e: i, k: T_QIDENT, d: depth, w: '' })
    } else if (isIdentStart(c)) {
      i++
      while (i < n && isIdentChar(s.charCodeAt(i))) i++
      const nx = s.charCodeAt(i)
      const lc = c | 32
      if (i - start === 1 && nx === 39 && (lc === 101 || lc === 98 || lc === 120)) {
        // E'…' B'…' X'…'
        const e = stringEnd(s, i, lc === 101, lc === 101)
        i = e < 0 ? n : e
        out.push({ s: start, e: i, k: T_STRING, d: depth, w: '' })
      } else if (i - start === 1 && lc === 117 && nx === 38 && (s.charCodeAt(i + 1) === 39 || s.charCodeAt(i + 1) === 34)) {
        // U&'…' or U&"…"
        const q = s.charCodeAt(i + 1)
        const e = q === 39 ? stringEnd(s, i + 1, false, true) : qidentEnd(s, i + 1)
        i = e < 0 ? n : e
        out.push({ s: start, e: i, k: q === 39 ? T_STRING : T_QIDENT, d: depth, w: '' })
      } else {
        // N'…' is the keyword NCHAR ("n") then a '…' string: the word ends here too
        out.push({ s: start, e: i, k: T_WORD, d: depth, w: asciiLower(s.slice(start, i)) })
      }
    } else if (isDigit(c) || (c === 46 && isDigit(s.charCodeAt(i + 1)))) {
      i = numberEnd(s, i)
      out.push({ s: start, e: i, k: T_NUMBER, d: depth, w: '' })
    } else if (c === 36) {
      if (isDigit(s.charCodeAt(i + 1))) {
        i = paramEnd(s, i)
        out.push({ s: start, e: i, k: T_PARAM, d: depth, w: '' })
      } else {
        const te = dollarTagEnd(s, i)
        if (te < 0) {
          i++
          out.push({ s: start, e: i, k: T_OP, d: depth, w: '$' })
        } else {
          const e = dollarQuoteEnd(s, i, te)
          i = e < 0 ? n : e
          out.push({ s: start, e: i, k: T_STRING, d: depth, w: '' })
        }
      }
    } else if (c === 40 || c === 91) {
      i++
      out.push({ s: start, e: i, k: T_PUNCT, d: depth, w: s[start] })
      depth++
    } else if (c === 41 || c === 93) {
      i++
      depth--
      out.push({ s: start, e: i, k: T_PUNCT, d: depth, w: s[start] })
    } else if (c === 44 || c === 59) {
      i++
      out.push({ s: start, e: i, k: T_PUNCT, d: depth, w: s[start] })
    } else if (c === 46) {
      // "." or ".." (DOT_DOT)
      i += s.charCodeAt(i + 1) === 46 ? 2 : 1
      out.push({ s: start, e: i, k: T_PUNCT, d: depth, w: s.slice(start, i) })
    } else if (c === 58) {
      const nx = s.charCodeAt(i + 1)
      if (nx === 58) {
        i += 2
        out.push({ s: start, e: i, k: T_OP, d: depth, w: '::' })
      } else if (nx === 61) {
        i += 2
        out.push({ s: start, e: i, k: T_OP, d: depth, w: ':=' })
      } else {
        i++
        out.push({ s: start, e: i, k: T_PUNCT, d: depth, w: ':' })
      }
    } else if (isOpChar(c)) {
      i = operatorEnd(s, i)
      out.push({ s: start, e: i, k: T_OP, d: depth, w: s.slice(start, i) })
    } else {
      i++
      out.push({ s: start, e: i, k: T_OP, d: depth, w: s[start] })
    }
  }
  if (flags & F_UNSURE) throw new ScanUnsure('a string continued across a -- comment')
  if (flags & F_NUMX) throw new ScanUnsure('a hexadecimal, octal, binary or underscored number (PostgreSQL 16+ syntax)')
  return out
}
