// The hot-path scanner: normalizeLiterals() finds every literal (strings, numbers, dollar-quoted
// strings) and builds a cache key in which each literal is replaced by one marker char that encodes
// its kind. Two texts with the same key differ only inside literals. Returns key null (never shared)
// for U&'…' / U&"…", E'…' with \u \U \x or octal escapes, a NUL or a marker char (\x01-\x05) outside a
// literal, what PostgreSQL and libpg-query may lex differently, and every text PostgreSQL's lexer
// rejects (unterminated literal, identifier or comment, "" identifier, trailing junk after a number).
import {
  F_EXOTIC,
  F_UNSURE,
  addFlags,
  commentEnd,
  dollarQuoteEnd,
  dollarTagEnd,
  flags,
  isDigit,
  isIdentChar,
  lineEnd,
  paramEnd,
  qidentEnd,
  resetFlags,
  stringEnd,
  wellFormed,
} from './lexer-rules.js'
import { numberEnd } from './numbers.js'
import { LIT_BITSTRING, LIT_DOLLAR, LIT_ESTRING, LIT_NUMBER, LIT_STRING, LIT_USTRING, type Normalized } from './literals.js'

// ASCII character classes for the hot-path scanner
const C_OTHER = 0
const C_IDSTART = 1 // letters, _
const C_DIGIT = 2
const C_QUOTE = 3 // '
const C_DQUOTE = 4 // "
const C_DASH = 5 // -
const C_SLASH = 6 // /
const C_DOLLAR = 7 // $
const C_DOT = 8 // .
const C_CTRL = 9 // chars 0..6: NUL and our marker chars
const CLASS = new Uint8Array(128)
for (let c = 0; c < 128; c++) {
  CLASS[c] =
    c < 7
      ? C_CTRL
      : (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95
        ? C_IDSTART
        : c >= 48 && c <= 57
          ? C_DIGIT
          : c === 39
            ? C_QUOTE
            : c === 34
              ? C_DQUOTE
              : c === 45
                ? C_DASH
                : c === 47
                  ? C_SLASH
                  : c === 36
                    ? C_DOLLAR
                    : c === 46
                      ? C_DOT
                      : C_OTHER
}
const MARK = ['', '\u0001', '\u0002', '\u0003', '\u0004', '\u0005', '\u0006']

/** Hot-path scanner: literal spans plus a key in which each literal becomes one marker char. */
export function normalizeLiterals(s: string): Normalized {
  const n = s.length
  const spans: number[] = []
  const kinds: number[] = []
  let key = ''
  let last = 0
  resetFlags()
  if (!wellFormed(s)) addFlags(F_UNSURE)
  let i = 0
  while (i < n) {
    const c = s.charCodeAt(i)
    const cls = c < 128 ? CLASS[c] : C_IDSTART
    if (cls === C_OTHER) {
      i++
      continue
    }
    let litStart = -1
    let litEnd = -1
    let kind = 0
    switch (cls) {
      case C_IDSTART: {
        const start = i
        i++
        while (i < n) {
          const d = s.charCodeAt(i)
          if (d < 128) {
            const k = CLASS[d]
            if (k !== C_IDSTART && k !== C_DIGIT && k !== C_DOLLAR) break
          }
          i++
        }
        if (i - start === 1 && i < n) {
          const nx = s.charCodeAt(i)
          const lc = c | 32
          if (nx === 39) {
            if (lc === 101) {
              const e = stringEnd(s, i, true, true)
              if (e < 0) return { key: null, spans, kinds }
              litStart = start
              litEnd = e
              kind = LIT_ESTRING
            } else if (lc === 98 || lc === 120) {
              const e = stringEnd(s, i, false, false)
              if (e < 0) return { key: null, spans, kinds }
              litStart = start
              litEnd = e
              kind = LIT_BITSTRING
            }
            // N'…': the keyword NCHAR, then a plain '…' (next round); any other letter: an identifier
          } else if (nx === 38 && lc === 117) {
            const q = s.charCodeAt(i + 1)
            if (q === 39) {
              // U&'…'
              const e = stringEnd(s, i + 1, false, true)
              if (e < 0) return { key: null, spans, kinds }
              addFlags(F_EXOTIC)
              litStart = start
              litEnd = e
              kind = LIT_USTRING
            } else if (q === 34) {
              // U&"…"
              const e = qidentEnd(s, i + 1)
              if (e < 0) return { key: null, spans, kinds }
              addFlags(F_EXOTIC)
              i = e
            }
          }
        }
        break
      }
      case C_QUOTE: {
        const e = stringEnd(s, i, false, true)
        if (e < 0) return { key: null, spans, kinds }
        litStart = i
        litEnd = e
        kind = LIT_STRING
        break
      }
      case C_DQUOTE: {
        const e = qidentEnd(s, i)
        if (e < 0) return { key: null, spans, kinds }
        i = e
        break
      }
      case C_DASH:
        if (s.charCodeAt(i + 1) === 45) i = lineEnd(s, i)
        else i++
        break
      case C_SLASH:
        if (s.charCodeAt(i + 1) === 42) {
          i = commentEnd(s, i)
          if (i < 0) return { key: null, spans, kinds }
        } else i++
        break
      case C_DOT:
      case C_DIGIT: {
        if (cls === C_DOT) {
          const nx = s.charCodeAt(i + 1)
          if (nx === 46) {
            i += 2 // ".." (a following digit starts a new number)
            break
          }
          if (!isDigit(nx)) {
            i++
            break
          }
        }
        let e = i + 1
        // fast path: digits (and a fraction) not followed by anything a number rule could take
        while (e < n && isDigit(s.charCodeAt(e))) e++
        let d = s.charCodeAt(e)
        if (d === 46 && isDigit(s.charCodeAt(e + 1)) && c !== 46) {
          e += 2
          while (e < n && isDigit(s.charCodeAt(e))) e++
          d = s.charCodeAt(e)
        }
        if (d === 46 || isIdentChar(d)) e = numberEnd(s, i)
        litStart = i
        litEnd = e
        kind = LIT_NUMBER
        break
      }
      case C_DOLLAR: {
        const nx = s.charCodeAt(i + 1)
        if (isDigit(nx)) i = paramEnd(s, i)
        else {
          const te = dollarTagEnd(s, i)
          if (te < 0) i++
          else {
            const e = dollarQuoteEnd(s, i, te)
            if (e < 0) return { key: null, spans, kinds }
            litStart = i
            litEnd = e
            kind = LIT_DOLLAR
          }
        }
        break
      }
      default: // C_CTRL: NUL and our marker chars never go into a shared key
        addFlags(F_UNSURE)
        i++
    }
    if (kind !== 0) {
      if (flags === 0) key += s.slice(last, litStart) + MARK[kind]
      last = litEnd
      spans.push(litStart, litEnd)
      kinds.push(kind)
      i = litEnd
    }
  }
  if (flags !== 0 || s.indexOf('\0') >= 0) return { key: null, spans, kinds }
  key += s.slice(last)
  return { key, spans, kinds }
}
