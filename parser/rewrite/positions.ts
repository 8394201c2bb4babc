// Positions in the client's text: libpg-query gives byte offsets (`location`), edits need char
// indices, and the tree has no positions for clause ends or keywords, so those come from the token
// list (scan.ts tokenize(): each token has its char range, nesting depth and folded word).
import { tokenize, T_WORD, T_PUNCT, type Token } from '../scan.js'
import { unlocatable } from './refuse.js'
import type { Json } from './nodes.js'

/** Visits every `location` in a subtree. */
function eachLocation(n: Json, f: (loc: number) => void): void {
  if (n === null || typeof n !== 'object') return
  if (Array.isArray(n)) {
    for (const y of n) eachLocation(y, f)
    return
  }
  for (const k in n) {
    const v = n[k]
    if (k === 'location' && typeof v === 'number') f(v)
    else if (typeof v === 'object') eachLocation(v, f)
  }
}

/** The client's text with its tokens, and the position lookups every rewrite module uses. */
export class SourceText {
  readonly toks: Token[]
  readonly ascii: boolean
  private b2cMap: Int32Array | null = null

  constructor(readonly text: string) {
    this.toks = tokenize(text)
    this.ascii = Buffer.byteLength(text, 'utf8') === text.length
  }

  /** Byte offset (libpg-query location) → char index. */
  c(b: number): number {
    if (this.ascii) return b
    if (!this.b2cMap) this.b2cMap = byteToChar(this.text)
    return this.b2cMap[b] ?? this.text.length
  }

  /** Index of the token starting at (or containing) char position p. */
  tokAt(p: number): number {
    const t = this.toks
    let lo = 0
    let hi = t.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (t[mid].s <= p) lo = mid + 1
      else hi = mid - 1
    }
    if (hi < 0 || t[hi].e <= p) throw unlocatable('locate a token in the statement')
    return hi
  }

  /** Smallest location (char index) in a subtree. */
  minLoc(n: Json): number {
    let best = Infinity
    eachLocation(n, (v) => {
      if (v >= 0 && v < best) best = v
    })
    if (best === Infinity) throw unlocatable('locate an expression in the statement')
    return this.c(best)
  }

  /** Largest location (char index) in a subtree. */
  maxLoc(n: Json): number {
    let best = -1
    eachLocation(n, (v) => {
      if (v > best) best = v
    })
    if (best < 0) throw unlocatable('locate an expression in the statement')
    return this.c(best)
  }

  isWord(i: number, w: string): boolean {
    const t = this.toks[i]
    return t !== undefined && t.k === T_WORD && t.w === w
  }

  /** A keyword at i (not a column label after "." or AS). */
  kw(i: number): string {
    const t = this.toks[i]
    if (!t || t.k !== T_WORD) return ''
    const p = this.toks[i - 1]
    if (p && (p.w === '.' || (p.k === T_WORD && p.w === 'as'))) return ''
    return t.w
  }

  /** Last token of a possibly qualified name starting at token i. */
  nameEnd(i: number): number {
    const t = this.toks
    let j = i
    while (t[j + 1]?.w === '.' && t[j + 1].k === T_PUNCT) j += 2
    return j
  }

  /** The token before the first token of `n`, skipping opening parentheses (where ON / WHERE stands). */
  keywordBefore(n: Json): number {
    const t = this.toks
    let k = this.tokAt(this.minLoc(n)) - 1
    while (k >= 0 && t[k].w === '(' && t[k].k === T_PUNCT) k--
    return k
  }

  /** Items of a parenthesised, comma-separated list whose "(" is token `open`: [first, last] token pairs, and the ")" index. */
  parenList(open: number): { items: [number, number][]; close: number } {
    const t = this.toks
    const d = t[open].d
    const items: [number, number][] = []
    let start = open + 1
    let i = open + 1
    for (; i < t.length; i++) {
      const x = t[i]
      if (x.d === d && x.w === ')') break
      if (x.d === d + 1 && x.k === T_PUNCT && x.w === ',') {
        items.push([start, i - 1])
        start = i + 1
      }
    }
    if (i >= t.length) throw unlocatable('match a parenthesised list')
    if (i > start || items.length) items.push([start, i - 1])
    return { items, close: i }
  }

  /** Expression range starting at token a: up to a "," at the same depth or a stop keyword. */
  exprRange(a: number, stops: Set<string>): number {
    const t = this.toks
    const d = t[a].d
    let i = a
    for (; i < t.length; i++) {
      const x = t[i]
      if (x.d < d) break
      if (x.d > d) continue
      if (x.k === T_PUNCT && (x.w === ',' || x.w === ';')) break
      const w = this.kw(i)
      if (w && stops.has(w) && i > a) break
    }
    return i - 1
  }
}

function byteToChar(t: string): Int32Array {
  const map = new Int32Array(Buffer.byteLength(t, 'utf8') + 1)
  let bi = 0
  for (let ci = 0; ci < t.length; ci++) {
    const cp = t.charCodeAt(ci)
    map[bi] = ci
    if (cp < 0x80) bi += 1
    else if (cp < 0x800) bi += 2
    else if (cp >= 0xd800 && cp <= 0xdbff && ci + 1 < t.length && (t.charCodeAt(ci + 1) & 0xfc00) === 0xdc00) {
      map[bi] = ci
      bi += 4
      ci++
    } else bi += 3
  }
  map[bi] = t.length
  return map
}
