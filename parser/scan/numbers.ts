// Numeric literals as scan.l's number rules cut them (flex's longest match: integer, numeric, real,
// the PostgreSQL 16+ radix and `_` forms, and the error rules for trailing junk). Reports through
// the shared `flags` of lexer-rules.ts.
import { F_ERROR, F_EXOTIC, F_NUMX, addFlags, identRun, isDigit, isIdentStart } from './lexer-rules.js'

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
export function numberEnd(s: string, i: number): number {
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
      addFlags(F_EXOTIC | F_NUMX)
      const junk = identRun(s, i + 1)
      if (end < 0 || junk > end) {
        addFlags(F_ERROR)
        return junk
      }
      return end
    }
  }
  let junk = -1 // end of the longest {number}{identifier} (error) match
  let anyUnder: boolean
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
        if (anyUnder) addFlags(F_EXOTIC | F_NUMX)
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
      addFlags(F_ERROR)
      return k
    }
  }
  if (anyUnder) addFlags(F_EXOTIC | F_NUMX)
  if (junk > valid) {
    addFlags(F_ERROR)
    return junk
  }
  return valid
}
