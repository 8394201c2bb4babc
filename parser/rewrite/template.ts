// Templates: the client's text with the edits applied, and every client literal left as a slot so a
// plan can be shared by texts that differ only in literal values (index.ts fills the slots and the
// tenant in). A literal an edit overlaps cannot be a slot: the plan is then not shareable (state.ok).
import type { Edit } from './state.js'

/** Template part: a string, TENANT (the quoted session tenant) or k >= 0 (the client's k-th literal). */
export type Part = string | number
export const TENANT = -1

/** Merge edits (sorted) and literal slots over [from, to) into a template. */
export function buildTemplate(text: string, from: number, to: number, edits: Edit[], spans: number[], useLits: boolean, state: { ok: boolean }): Part[] {
  const out: Part[] = []
  let pos = from
  let li = 0
  const sp = spans
  const nl = sp.length / 2
  while (li < nl && sp[2 * li] < from) li++
  const emitText = (a: number, b: number) => {
    // text [a, b) with literal slots
    while (a < b) {
      if (useLits && li < nl && sp[2 * li] < b) {
        const ls = sp[2 * li]
        const le = sp[2 * li + 1]
        if (ls < a) {
          // a literal overlapping an edit boundary: cannot share this plan
          state.ok = false
          li++
          continue
        }
        if (ls > a) out.push(text.slice(a, ls))
        if (le > b) {
          state.ok = false
          out.push(text.slice(ls, b))
          break
        }
        out.push(li)
        li++
        a = le
      } else {
        out.push(text.slice(a, b))
        a = b
      }
    }
  }
  for (const ed of edits) {
    if (ed.s < from || ed.s > to) continue
    emitText(pos, ed.s)
    out.push(...ed.parts)
    pos = Math.max(pos, ed.e)
    if (ed.e > ed.s)
      while (li < nl && sp[2 * li] < ed.e) {
        state.ok = false
        li++
      }
  }
  emitText(pos, to)
  return mergeStrings(out)
}

function mergeStrings(parts: Part[]): Part[] {
  const merged: Part[] = []
  for (const p of parts) {
    if (typeof p === 'string' && typeof merged[merged.length - 1] === 'string') merged[merged.length - 1] += p
    else if (p !== '') merged.push(p)
  }
  return merged
}

/** Order edits by position; at one position by prio, then creation order. */
export function sortEdits(edits: Edit[]): void {
  edits.sort((a, b) => a.s - b.s || a.prio - b.prio || a.seq - b.seq)
}

/** Range [a, b) of a statement's text without its leading and trailing blanks. */
export function trimmed(text: string, [a, b]: [number, number]): [number, number] {
  while (a < b && isBlank(text.charCodeAt(a))) a++
  while (b > a && isBlank(text.charCodeAt(b - 1))) b--
  return [a, b]
}

function isBlank(c: number): boolean {
  return c === 32 || c === 10 || c === 9 || c === 13 || c === 12 || c === 11
}

/** The first word of a text (after blanks, comments and parentheses), upper-cased: the command of text that did not parse. */
export function firstWord(text: string): string {
  const m = /^[\s(]*([A-Za-z_]+)/.exec(text.replace(/^(\s*(--[^\n]*\n|\/\*[\s\S]*?\*\/))*/, ''))
  return m ? m[1].toUpperCase() : ''
}
