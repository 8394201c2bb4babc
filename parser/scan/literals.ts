// Literal kinds (the marker chars of a normalised cache key), the Normalized result, and decoding
// of the plain literal forms whose value the rewriter compares with the tenant.
import { isSpace } from './lexer-rules.js'

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
