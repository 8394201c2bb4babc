// The lexical rules of PostgreSQL's scan.l (standard_conforming_strings = on, as compiled into
// libpg-query 18) that both scanners share: character classes, and where a comment, a quoted
// string (with continuations), a quoted identifier, a dollar tag and an operator end. Numbers are
// in numbers.ts. The helpers report what they saw through `flags` (no allocation on the hot path);
// a scanner resets them before a text and reads them after.
//
// The rules that matter (scan.l):
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

// ---- character classes (scan.l) --------------------------------------------------------------

/** ident_start: [A-Za-z\200-\377_] (every non-ASCII char is UTF-8 bytes >= 0x80) */
export function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128
}
/** ident_cont: [A-Za-z\200-\377_0-9\$] */
export function isIdentChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128 || (c >= 48 && c <= 57) || c === 36
}
export function isDigit(c: number): boolean {
  return c >= 48 && c <= 57
}
/** space: [ \t\n\r\f\v] */
export function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13)
}

/** Lone surrogates: the backend gets U+FFFD for them, libpg-query's UTF-8 encoder other bytes. */
export const wellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !/\p{Cs}/u.test(s)

// Side results of the helpers below (no allocation on the hot path).
export const F_EXOTIC = 1 // valid, but not shared: E'' with \u \U \x \octal, 0x/0o/0b/_ numbers
export const F_UNSURE = 2 // PostgreSQL and libpg-query (or PostgreSQL versions) may lex it differently
export const F_ERROR = 4 // PostgreSQL's lexer rejects it
export const F_NUMX = 8 // a 0x/0o/0b number or one with `_` (PostgreSQL 16+; 15 rejects them, 14 reads 0x1F as 0 AS x1F)
export let flags = 0

/** Clears the side results before a scan. */
export function resetFlags(): void {
  flags = 0
}

/** Adds side results (for the scanners, which cannot assign an imported binding). */
export function addFlags(f: number): void {
  flags |= f
}

/** End of the `--` comment starting at i: the index of the next \n or \r, or n. */
export function lineEnd(s: string, i: number): number {
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
export function continuation(s: string, p: number): number {
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
export function stringEnd(s: string, i: number, esc: boolean, dbl: boolean): number {
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
export function qidentEnd(s: string, i: number): number {
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
export function dollarTagEnd(s: string, i: number): number {
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
export function commentEnd(s: string, i: number): number {
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
export function identRun(s: string, p: number): number {
  const n = s.length
  while (p < n && isIdentChar(s.charCodeAt(p))) p++
  return p
}

/** End of the $tag$…$tag$ string whose tag (ending at te) starts at i; -1 if unterminated. */
export function dollarQuoteEnd(s: string, i: number, te: number): number {
  const tag = s.slice(i, te)
  const close = s.indexOf(tag, te)
  return close < 0 ? -1 : close + tag.length
}

/** End of the parameter `$n` starting at i (a `$` followed by a digit). */
export function paramEnd(s: string, i: number): number {
  const n = s.length
  i += 2
  while (i < n && isDigit(s.charCodeAt(i))) i++
  return i
}

// ---- operators --------------------------------------------------------------------------------

/** op_chars: ~ ! @ # ^ & | ` ? + - * / % < > = */
export function isOpChar(c: number): boolean {
  // prettier-ignore
  switch (c) {
    case 126: case 33: case 64: case 35: case 94: case 38: case 124: case 96: case 63:
    case 43: case 45: case 42: case 47: case 37: case 60: case 62: case 61:
      return true
  }
  return false
}
/** the chars that let a multi-char operator end in + or -: ~ ! @ # ^ & | ` ? % */
export function isOpQualifier(c: number): boolean {
  return c === 126 || c === 33 || c === 64 || c === 35 || c === 94 || c === 38 || c === 124 || c === 96 || c === 63 || c === 37
}

/** End of the operator starting at i (an op char that does not start a comment), as scan.l's {operator} rule cuts it. */
export function operatorEnd(s: string, i: number): number {
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
