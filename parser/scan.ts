// Two hand-written SQL scanners over JavaScript strings (char indices, not bytes):
//  - normalizeLiterals(): the hot-path scanner. It finds every literal (strings, numbers,
//    dollar-quoted strings) and builds a cache key in which each literal is replaced by one
//    marker char that encodes its kind. Two texts with the same key differ only inside literals.
//  - tokenize(): the cold-path tokenizer with paren depth, used to find clause boundaries that
//    the parse tree has no locations for (end of a FROM list, of a WHERE/ON expression, …).
//
// Both agree with PostgreSQL's lexer (scan.l, standard_conforming_strings = on) on every token
// boundary and every literal's extent, as compiled into libpg-query 18 (the parser the analyzer
// uses): test/parser/scan-agreement.test.ts and bench/scan-agreement.ts compare them with its
// scanner on generated inputs. The rules that matter (scan.l):
//  - whitespace is space \t \n \r \f \v; a `--` comment ends at \n or \r; `/* */` nests;
//  - a multi-char operator is cut at an embedded `--` or `/*`, and loses its trailing `+`/`-`
//    unless it contains one of ~ ! @ # ^ & | ` ? % (`=+1` is `=`, `+`, `1`);
//  - '…' ('' doubles), E'…' (backslash escapes, '' too), U&'…' ('' doubles), B'…'/X'…' (no
//    doubling: B'1''0' is B'1' then '0'), N'…' (the keyword NCHAR, then a plain '…'), $tag$…$tag$
//    (tag: [A-Za-z\x80-…_][A-Za-z\x80-…_0-9]*; `$1` is a parameter); quoted strings followed by
//    whitespace containing a newline and another quote are ONE literal ('a'\n'b' is 'ab');
//  - "…" ("" doubles, "" alone is an error), U&"…"; identifiers [A-Za-z_\x80-…][…0-9$]*;
//  - numbers: 1 1.5 1. .5 1e5 1.e5, 1..2 is 1 .. 2, 0x1F 0o7 0b1 1_000 (PostgreSQL 16+), a
//    number directly followed by an identifier char is an error ("trailing junk").
//
// Where PostgreSQL itself and libpg-query disagree, or PostgreSQL versions disagree, the scanners
// fail closed: normalizeLiterals returns key null (the text is never shared) and tokenize throws
// ScanUnsure (the analyzer then refuses the statement):
//  - a string continuation across a `--` comment ('a' -- c\n'b'): PostgreSQL joins the two
//    strings, libpg-query 18 does not;
//  - hex/octal/binary numbers and numbers with `_` (PostgreSQL 15 rejects them, 14 reads `0x1F`
//    as `0 AS x1F`);
//  - lone UTF-16 surrogates (the backend gets U+FFFD, libpg-query's encoder gets other bytes).
// normalizeLiterals also returns key null for U&'…' / U&"…", E'…' with \u \U \x or octal escapes,
// a NUL or a marker char (\x01-\x05) outside a literal, and every text PostgreSQL's lexer rejects
// (unterminated literal, identifier or comment, "" identifier, trailing junk after a number).

/** Literal kinds, also the marker char that replaces the literal in a normalised key. */
export const LIT_STRING = 1 // '…' (also the '…' of N'…')
export const LIT_ESTRING = 2 // E'…'
export const LIT_BITSTRING = 3 // B'…' X'…'
export const LIT_NUMBER = 4 // 12 1.5 1e3
export const LIT_DOLLAR = 5 // $tag$…$tag$
export const LIT_USTRING = 6 // U&'…' (never in a shared key)

export interface Normalized {
  /** The text with every literal replaced by a marker char; null when the text cannot be shared (unusual lexemes). */
  key: string | null
  /** Literal spans: [start0, end0, start1, end1, …] in char indices. */
  spans: number[]
  /** Kind of each literal (LIT_*). */
  kinds: number[]
}

/** Thrown by tokenize() for a text whose token boundaries PostgreSQL and libpg-query may not agree on. */
export class ScanUnsure extends Error {
  constructor(what: string) {
    super(`the statement has ${what}, which PostgreSQL and pgtenant's parser (or PostgreSQL versions) may read differently`)
    this.name = 'ScanUnsure'
  }
}

// ---- character classes (scan.l) --------------------------------------------------------------

/** ident_start: [A-Za-z\200-\377_] (every non-ASCII char is UTF-8 bytes >= 0x80) */
function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128
}
/** ident_cont: [A-Za-z\200-\377_0-9\$] */
function isIdentChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128 || (c >= 48 && c <= 57) || c === 36
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57
}
/** space: [ \t\n\r\f\v] */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13)
}

/** Lone surrogates: the backend gets U+FFFD for them, libpg-query's UTF-8 encoder other bytes. */
const wellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !/\p{Cs}/u.test(s)

// Side results of the helpers below (no allocation on the hot path).
const F_EXOTIC = 1 // valid, but not shared: E'' with \u \U \x \octal, 0x/0o/0b/_ numbers
const F_UNSURE = 2 // PostgreSQL and libpg-query (or PostgreSQL versions) may lex it differently
const F_ERROR = 4 // PostgreSQL's lexer rejects it
const F_NUMX = 8 // a 0x/0o/0b number or one with `_` (PostgreSQL 16+; 15 rejects them, 14 reads 0x1F as 0 AS x1F)
let flags = 0

/** End of the `--` comment starting at i: the index of the next \n or \r, or n. */
function lineEnd(s: string, i: number): number {
  const n = s.length
  let j = i + 2
  while (j < n) {
    const c = s.charCodeAt(j)
    if (c === 10 || c === 13) return j
    j++
  }
  return n
}

/**
 * p just after a closing quote: the index of the quote that continues the literal (whitespace with
 * a newline between two quoted strings), or -1. A continuation that only PostgreSQL sees (across a
 * `--` comment, which libpg-query 18 does not allow there) sets F_UNSURE and returns -1.
 */
function continuation(s: string, p: number): number {
  const n = s.length
  let j = p
  let comment = false
  for (;;) {
    const c = s.charCodeAt(j)
    if (c === 32 || c === 9 || c === 12 || c === 11) j++
    else if (c === 45 && s.charCodeAt(j + 1) === 45) {
      j = lineEnd(s, j)
      comment = true
    } else break
  }
  if (j >= n) return -1
  let c = s.charCodeAt(j)
  if (c !== 10 && c !== 13) return -1
  j++
  for (;;) {
    c = s.charCodeAt(j)
    if (isSpace(c)) j++
    else if (c === 45 && s.charCodeAt(j + 1) === 45) {
      j = lineEnd(s, j)
      if (j >= n) return -1
      j++
      comment = true
    } else break
  }
  if (c !== 39) return -1
  if (comment) {
    flags |= F_UNSURE
    return -1
  }
  return j
}

/**
 * End index of a quoted string whose opening quote is at i (with continuations); -1 if unterminated.
 * `esc`: E'…' (backslash escapes; \u \U \x and octal escapes set F_EXOTIC). `dbl`: '' is a quote
 * (not in B'…' / X'…').
 */
function stringEnd(s: string, i: number, esc: boolean, dbl: boolean): number {
  const n = s.length
  let j = i + 1
  for (;;) {
    let q: number
    if (!esc) {
      q = s.indexOf("'", j)
      if (q < 0) return -1
      if (dbl && s.charCodeAt(q + 1) === 39) {
        j = q + 2
        continue
      }
    } else {
      q = -1
      for (; j < n; j++) {
        const c = s.charCodeAt(j)
        if (c === 92) {
          const d = s.charCodeAt(++j)
          if (d === 117 || d === 85 || d === 120 || (d >= 48 && d <= 55)) flags |= F_EXOTIC
        } else if (c === 39) {
          if (s.charCodeAt(j + 1) === 39) j++
          else {
            q = j
            break
          }
        }
      }
      if (q < 0) return -1
    }
    const c1 = s.charCodeAt(q + 1)
    if (!isSpace(c1) && c1 !== 45) return q + 1
    const k = continuation(s, q + 1)
    if (k < 0) return q + 1
    j = k + 1
  }
}

/** End of a "…" identifier whose opening quote is at i; -1 if unterminated; F_ERROR when empty. */
function qidentEnd(s: string, i: number): number {
  let j = i + 1
  for (;;) {
    const q = s.indexOf('"', j)
    if (q < 0) return -1
    if (s.charCodeAt(q + 1) === 34) {
      j = q + 2
      continue
    }
    if (q === i + 1) flags |= F_ERROR // zero-length delimited identifier
    return q + 1
  }
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
    if (!isIdentChar(c)) return -1
    j++
  }
  return -1
}

/** End of the nested /* comment starting at i; -1 if unterminated. */
function commentEnd(s: string, i: number): number {
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
  return -1
}

/** End of the run of ident_cont chars from p. */
function identRun(s: string, p: number): number {
  const n = s.length
  while (p < n && isIdentChar(s.charCodeAt(p))) p++
  return p
}

/** decinteger {decdigit}(_?{decdigit})* from k (a digit): its end; sets `under` when it has a `_`. */
let under = false
function decEnd(s: string, k: number): number {
  k++
  for (;;) {
    const c = s.charCodeAt(k)
    if (isDigit(c)) k++
    else if (c === 95 && isDigit(s.charCodeAt(k + 1))) {
      under = true
      k += 2
    } else return k
  }
}

function isRadixDigit(c: number, radix: number): boolean {
  if (radix === 120) return isDigit(c) || ((c | 32) >= 97 && (c | 32) <= 102)
  if (radix === 111) return c >= 48 && c <= 55
  return c === 48 || c === 49
}

/**
 * A number starting at i (a digit, or "." and a digit), as flex's longest match over scan.l's
 * number rules (ties go to the valid rule, listed first): its end. Sets F_EXOTIC for radix and `_`
 * forms, F_ERROR for the junk/fail rules (`1e`, `1x`, `0x`, `1.5_`, `1e+`).
 */
function numberEnd(s: string, i: number): number {
  const c0 = s.charCodeAt(i)
  if (c0 === 48) {
    const r = s.charCodeAt(i + 1) | 32
    if (r === 120 || r === 111 || r === 98) {
      // 0x… 0o… 0b…: valid only when no longer `0` + identifier match exists
      let k = i + 2
      let end = -1
      for (;;) {
        let m = k
        if (s.charCodeAt(m) === 95) m++
        if (isRadixDigit(s.charCodeAt(m), r)) {
          k = m + 1
          end = k
        } else break
      }
      flags |= F_EXOTIC | F_NUMX
      const junk = identRun(s, i + 1)
      if (end < 0 || junk > end) {
        flags |= F_ERROR
        return junk
      }
      return end
    }
  }
  let junk = -1 // end of the longest {number}{identifier} (error) match
  let anyUnder = false
  let m: number // mantissa end
  if (c0 === 46) {
    under = false
    m = decEnd(s, i + 1)
    if (under || isIdentStart(s.charCodeAt(m))) junk = identRun(s, i + 1)
    anyUnder = under
  } else {
    under = false
    const d = decEnd(s, i)
    if (under || isIdentStart(s.charCodeAt(d))) junk = identRun(s, i)
    anyUnder = under
    m = d
    if (s.charCodeAt(d) === 46) {
      if (s.charCodeAt(d + 1) === 46) {
        // numericfail "1..": the integer, then ".."
        if (anyUnder) flags |= F_EXOTIC | F_NUMX
        return d
      }
      m = d + 1
      under = false
      if (isDigit(s.charCodeAt(m))) m = decEnd(s, m)
      if (under || isIdentStart(s.charCodeAt(m))) junk = identRun(s, d + 1)
      anyUnder ||= under
    }
  }
  let valid = m
  const e = s.charCodeAt(m)
  if (e === 101 || e === 69) {
    let k = m + 1
    const sg = s.charCodeAt(k)
    const signed = sg === 43 || sg === 45
    if (signed) k++
    if (isDigit(s.charCodeAt(k))) {
      under = false
      valid = decEnd(s, k)
      if (under || isIdentStart(s.charCodeAt(valid))) junk = identRun(s, k)
      anyUnder ||= under
    } else if (signed) {
      // realfail "1e+": an error, and the longest match
      flags |= F_ERROR
      return k
    }
  }
  if (anyUnder) flags |= F_EXOTIC | F_NUMX
  if (junk > valid) {
    flags |= F_ERROR
    return junk
  }
  return valid
}

// ---- hot path ---------------------------------------------------------------------------------

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
  flags = 0
  if (!wellFormed(s)) flags |= F_UNSURE
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
              flags |= F_EXOTIC
              litStart = start
              litEnd = e
              kind = LIT_USTRING
            } else if (q === 34) {
              // U&"…"
              const e = qidentEnd(s, i + 1)
              if (e < 0) return { key: null, spans, kinds }
              flags |= F_EXOTIC
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
        flags |= F_UNSURE
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

// ---------------------------------------------------------------------------------------------
// Cold-path tokenizer

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

/** op_chars: ~ ! @ # ^ & | ` ? + - * / % < > = */
function isOpChar(c: number): boolean {
  switch (c) {
    case 126: case 33: case 64: case 35: case 94: case 38: case 124: case 96: case 63: // prettier-ignore
    case 43: case 45: case 42: case 47: case 37: case 60: case 62: case 61: // prettier-ignore
      return true
  }
  return false
}
/** the chars that let a multi-char operator end in + or -: ~ ! @ # ^ & | ` ? % */
function isOpQualifier(c: number): boolean {
  return c === 126 || c === 33 || c === 64 || c === 35 || c === 94 || c === 38 || c === 124 || c === 96 || c === 63 || c === 37
}

/** End of the operator starting at i (an op char that does not start a comment), as scan.l's {operator} rule cuts it. */
function operatorEnd(s: string, i: number): number {
  const n = s.length
  let j = i + 1
  // the run stops at an embedded comment start
  while (j < n) {
    const c = s.charCodeAt(j)
    if (!isOpChar(c)) break
    if ((c === 45 && s.charCodeAt(j + 1) === 45) || (c === 47 && s.charCodeAt(j + 1) === 42)) break
    j++
  }
  let len = j - i
  const lastc = s.charCodeAt(i + len - 1)
  if (len > 1 && (lastc === 43 || lastc === 45)) {
    let q = false
    for (let k = i; k < i + len - 1; k++)
      if (isOpQualifier(s.charCodeAt(k))) {
        q = true
        break
      }
    if (!q) {
      do len--
      while (len > 1 && (s.charCodeAt(i + len - 1) === 43 || s.charCodeAt(i + len - 1) === 45))
    }
  }
  return i + len
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
  flags = 0
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

/** Decode a plain '…' literal (standard_conforming_strings on; continuations joined) or a plain decimal number; null for other forms. */
export function decodeSimpleLiteral(text: string, kind: number): string | null {
  if (kind === LIT_NUMBER) return /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/.test(text) ? text : null
  if (kind !== LIT_STRING) return null
  const n = text.length
  if (n < 2 || text.charCodeAt(0) !== 39 || text.charCodeAt(n - 1) !== 39) return null
  let out = ''
  let j = 1
  for (;;) {
    const q = text.indexOf("'", j)
    if (q < 0) return null
    out += text.slice(j, q)
    if (q === n - 1) return out
    if (text.charCodeAt(q + 1) === 39) {
      out += "'"
      j = q + 2
      continue
    }
    // a continuation: whitespace (with a newline), then the next piece's opening quote
    let k = q + 1
    while (k < n && isSpace(text.charCodeAt(k))) k++
    if (k >= n - 1 || text.charCodeAt(k) !== 39) return null
    j = k + 1
  }
}
