// Two hand-written SQL scanners over JavaScript strings (char indices, not bytes):
//  - normalizeLiterals(): the hot-path scanner. It finds every literal (strings, numbers,
//    dollar-quoted strings) and builds a cache key in which each literal is replaced by one
//    marker char that encodes its kind. Two texts with the same key differ only inside literals.
//  - tokenize(): the cold-path tokenizer with paren depth, used to find clause boundaries that
//    the parse tree has no locations for (end of a FROM list, of a WHERE/ON expression, …).
// Both follow PostgreSQL's lexer with standard_conforming_strings = on.

/** Literal kinds, also the marker char that replaces the literal in a normalised key. */
export const LIT_STRING = 1 // '…'
export const LIT_ESTRING = 2 // E'…'
export const LIT_BITSTRING = 3 // B'…' X'…' N'…'
export const LIT_NUMBER = 4 // 12 1.5 1e3
export const LIT_DOLLAR = 5 // $tag$…$tag$

export interface Normalized {
  /** The text with every literal replaced by a marker char; null when the text cannot be shared (unusual lexemes). */
  key: string | null
  /** Literal spans: [start0, end0, start1, end1, …] in char indices. */
  spans: number[]
  /** Kind of each literal (LIT_*). */
  kinds: number[]
}

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128
}
function isIdentChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128 || (c >= 48 && c <= 57) || c === 36
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57
}

/** End index of a quoted string starting at `i` (the opening quote); backslash escapes when `esc`. -1 if unterminated. */
function stringEnd(s: string, i: number, esc: boolean): number {
  const n = s.length
  if (!esc) {
    let j = i + 1
    for (;;) {
      const q = s.indexOf("'", j)
      if (q < 0) return -1
      if (s.charCodeAt(q + 1) === 39) {
        j = q + 2
        continue
      }
      return q + 1
    }
  }
  for (let j = i + 1; j < n; j++) {
    const c = s.charCodeAt(j)
    if (c === 92) j++
    else if (c === 39) {
      if (s.charCodeAt(j + 1) === 39) j++
      else return j + 1
    }
  }
  return -1
}

/** End of a dollar tag ($tag$ or $$) starting at i, or -1 when it is not a tag. */
function dollarTagEnd(s: string, i: number): number {
  const n = s.length
  let j = i + 1
  if (j < n && s.charCodeAt(j) === 36) return j + 1
  if (j >= n || !isIdentStart(s.charCodeAt(j))) return -1
  j++
  while (j < n) {
    const c = s.charCodeAt(j)
    if (c === 36) return j + 1
    if (!(isIdentChar(c) && c !== 36)) return -1
    j++
  }
  return -1
}

function commentEnd(s: string, i: number): number {
  // i at "/*"; nested
  const n = s.length
  let depth = 1
  let j = i + 2
  while (j < n) {
    const c = s.charCodeAt(j)
    if (c === 42 && s.charCodeAt(j + 1) === 47) {
      depth--
      j += 2
      if (depth === 0) return j
    } else if (c === 47 && s.charCodeAt(j + 1) === 42) {
      depth++
      j += 2
    } else j++
  }
  return n
}

/** Number end starting at i (a digit, or '.' followed by a digit); -1 if followed by identifier chars (PG16 hex/underscore forms and junk are not shared). */
function numberEnd(s: string, i: number): number {
  const n = s.length
  let j = i
  while (j < n && isDigit(s.charCodeAt(j))) j++
  if (j < n && s.charCodeAt(j) === 46 && s.charCodeAt(j + 1) !== 46) {
    j++
    while (j < n && isDigit(s.charCodeAt(j))) j++
  }
  if (j < n && (s.charCodeAt(j) | 32) === 101) {
    let k = j + 1
    const c = s.charCodeAt(k)
    if (c === 43 || c === 45) k++
    if (k < n && isDigit(s.charCodeAt(k))) {
      j = k
      while (j < n && isDigit(s.charCodeAt(j))) j++
    }
  }
  if (j < n && isIdentChar(s.charCodeAt(j))) return -1
  return j
}

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
const C_CTRL = 9 // chars 0..5: NUL and our marker chars
const CLASS = new Uint8Array(128)
for (let c = 0; c < 128; c++) {
  CLASS[c] =
    c < 6
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
const MARK = ['', '\u0001', '\u0002', '\u0003', '\u0004', '\u0005']

/** Hot-path scanner: literal spans plus a key in which each literal becomes one marker char. */
export function normalizeLiterals(s: string): Normalized {
  const n = s.length
  const spans: number[] = []
  const kinds: number[] = []
  let key = ''
  let last = 0
  let ok = true
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
          if (nx === 39) {
            const lc = c | 32
            if (lc === 101) {
              const e = stringEnd(s, i, true)
              if (e < 0) return { key: null, spans, kinds }
              litStart = start
              litEnd = e
              kind = LIT_ESTRING
            } else if (lc === 98 || lc === 120 || lc === 110) {
              const e = stringEnd(s, i, false)
              if (e < 0) return { key: null, spans, kinds }
              litStart = start
              litEnd = e
              kind = LIT_BITSTRING
            }
          } else if (nx === 38 && (c | 32) === 117) ok = false // U&'…' / U&"…": not shared
        }
        break
      }
      case C_QUOTE: {
        const e = stringEnd(s, i, false)
        if (e < 0) return { key: null, spans, kinds }
        litStart = i
        litEnd = e
        kind = LIT_STRING
        break
      }
      case C_DQUOTE: {
        let q = s.indexOf('"', i + 1)
        if (q < 0) return { key: null, spans, kinds }
        while (s.charCodeAt(q + 1) === 34) {
          q = s.indexOf('"', q + 2)
          if (q < 0) return { key: null, spans, kinds }
        }
        i = q + 1
        break
      }
      case C_DASH:
        if (s.charCodeAt(i + 1) === 45) {
          const e = s.indexOf('\n', i)
          i = e < 0 ? n : e + 1
        } else i++
        break
      case C_SLASH:
        if (s.charCodeAt(i + 1) === 42) i = commentEnd(s, i)
        else i++
        break
      case C_DOT:
      case C_DIGIT: {
        if (cls === C_DOT && !isDigit(s.charCodeAt(i + 1))) {
          i++
          break
        }
        const e = numberEnd(s, i)
        if (e < 0) {
          ok = false
          i++
          while (i < n && isIdentChar(s.charCodeAt(i))) i++
        } else {
          litStart = i
          litEnd = e
          kind = LIT_NUMBER
        }
        break
      }
      case C_DOLLAR: {
        const nx = s.charCodeAt(i + 1)
        if (isDigit(nx)) {
          i += 2
          while (i < n && isDigit(s.charCodeAt(i))) i++
        } else {
          const te = dollarTagEnd(s, i)
          if (te < 0) i++
          else {
            const tag = s.slice(i, te)
            const close = s.indexOf(tag, te)
            if (close < 0) return { key: null, spans, kinds }
            litStart = i
            litEnd = close + tag.length
            kind = LIT_DOLLAR
          }
        }
        break
      }
      default: // C_CTRL: NUL and our marker chars never go into a shared key
        ok = false
        i++
    }
    if (kind !== 0) {
      key += s.slice(last, litStart) + MARK[kind]
      last = litEnd
      spans.push(litStart, litEnd)
      kinds.push(kind)
      i = litEnd
    }
  }
  if (!ok) return { key: null, spans, kinds }
  key += s.slice(last)
  return { key, spans, kinds }
}

// ---------------------------------------------------------------------------------------------
// Cold-path tokenizer

export const T_WORD = 1 // unquoted identifier or keyword (w = lower-cased text)
export const T_QIDENT = 2 // "quoted"
export const T_STRING = 3
export const T_NUMBER = 4
export const T_PARAM = 5
export const T_OP = 6
export const T_PUNCT = 7 // ( ) [ ] , ; . :

export interface Token {
  /** start, end: char indices */
  s: number
  e: number
  k: number
  /** paren/bracket depth at this token; "(" has the outer depth, its ")" too */
  d: number
  /** lower-cased text for T_WORD, the char for T_PUNCT/T_OP, '' otherwise */
  w: string
}

const OPCHARS = '+-*/<>=~!@#%^&|`?'

export function tokenize(s: string): Token[] {
  const n = s.length
  const out: Token[] = []
  let depth = 0
  let i = 0
  while (i < n) {
    const c = s.charCodeAt(i)
    if (c === 32 || c === 10 || c === 9 || c === 13 || c === 12 || c === 11) {
      i++
      continue
    }
    if (c === 45 && s.charCodeAt(i + 1) === 45) {
      const e = s.indexOf('\n', i)
      i = e < 0 ? n : e + 1
      continue
    }
    if (c === 47 && s.charCodeAt(i + 1) === 42) {
      i = commentEnd(s, i)
      continue
    }
    const start = i
    if (c === 39) {
      const e = stringEnd(s, i, false)
      i = e < 0 ? n : e
      out.push({ s: start, e: i, k: T_STRING, d: depth, w: '' })
    } else if (c === 34) {
      let j = i + 1
      for (;;) {
        const q = s.indexOf('"', j)
        if (q < 0) {
          j = n
          break
        }
        if (s.charCodeAt(q + 1) === 34) {
          j = q + 2
          continue
        }
        j = q + 1
        break
      }
      i = j
      out.push({ s: start, e: i, k: T_QIDENT, d: depth, w: '' })
    } else if (isIdentStart(c)) {
      i++
      while (i < n && isIdentChar(s.charCodeAt(i))) i++
      const nx = s.charCodeAt(i)
      if (i - start === 1 && nx === 39) {
        const e = stringEnd(s, i, (c | 32) === 101)
        i = e < 0 ? n : e
        out.push({ s: start, e: i, k: T_STRING, d: depth, w: '' })
      } else if (i - start === 1 && (c | 32) === 117 && nx === 38 && (s.charCodeAt(i + 1) === 39 || s.charCodeAt(i + 1) === 34)) {
        // U&'…' or U&"…"
        const q = s.charCodeAt(i + 1)
        if (q === 39) {
          const e = stringEnd(s, i + 1, false)
          i = e < 0 ? n : e
          out.push({ s: start, e: i, k: T_STRING, d: depth, w: '' })
        } else {
          let j = i + 2
          for (;;) {
            const qq = s.indexOf('"', j)
            if (qq < 0) {
              j = n
              break
            }
            if (s.charCodeAt(qq + 1) === 34) {
              j = qq + 2
              continue
            }
            j = qq + 1
            break
          }
          i = j
          out.push({ s: start, e: i, k: T_QIDENT, d: depth, w: '' })
        }
      } else {
        out.push({ s: start, e: i, k: T_WORD, d: depth, w: s.slice(start, i).toLowerCase() })
      }
    } else if (isDigit(c) || (c === 46 && isDigit(s.charCodeAt(i + 1)))) {
      const e = numberEnd(s, i)
      if (e < 0) {
        i++
        while (i < n && (isIdentChar(s.charCodeAt(i)) || s.charCodeAt(i) === 46)) i++
      } else i = e
      out.push({ s: start, e: i, k: T_NUMBER, d: depth, w: '' })
    } else if (c === 36) {
      if (isDigit(s.charCodeAt(i + 1))) {
        i += 2
        while (i < n && isDigit(s.charCodeAt(i))) i++
        out.push({ s: start, e: i, k: T_PARAM, d: depth, w: '' })
      } else {
        const te = dollarTagEnd(s, i)
        if (te < 0) {
          i++
          out.push({ s: start, e: i, k: T_OP, d: depth, w: '$' })
        } else {
          const tag = s.slice(i, te)
          const close = s.indexOf(tag, te)
          i = close < 0 ? n : close + tag.length
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
    } else if (c === 44 || c === 59 || c === 46) {
      i++
      out.push({ s: start, e: i, k: T_PUNCT, d: depth, w: s[start] })
    } else if (c === 58) {
      if (s.charCodeAt(i + 1) === 58) {
        i += 2
        out.push({ s: start, e: i, k: T_OP, d: depth, w: '::' })
      } else {
        i++
        out.push({ s: start, e: i, k: T_PUNCT, d: depth, w: ':' })
      }
    } else if (OPCHARS.includes(s[i])) {
      while (i < n && OPCHARS.includes(s[i]) && !(s[i] === '-' && s[i + 1] === '-') && !(s[i] === '/' && s[i + 1] === '*')) i++
      out.push({ s: start, e: i, k: T_OP, d: depth, w: s.slice(start, i) })
    } else {
      i++
      out.push({ s: start, e: i, k: T_OP, d: depth, w: s[start] })
    }
  }
  return out
}

/** Decode a plain '…' literal (standard_conforming_strings on) or a number token; null for other forms. */
export function decodeSimpleLiteral(text: string, kind: number): string | null {
  if (kind === LIT_NUMBER) return text
  if (kind === LIT_STRING) return text.slice(1, -1).replaceAll("''", "'")
  return null
}
