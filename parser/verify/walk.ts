// The verifier's walks over parts it does not check structurally: expressions (every sub-query in them
// is checked at its own level; a tenant table outside a FROM list fails) and any other statement
// (valid only if it references no tenant table at all).
import { Fail, type Level, type N, type Scope, type VerifyState } from './state.js'
import { LEAF, eachField } from './nodes.js'
import { resolve } from './names.js'

/** Any other statement: valid only if it references no tenant table at all. */
export function generic(vs: VerifyState, n: N): void {
  const tooDeep = 'statement nested too deeply'
  const field = (k: string, v: N, depth: number): void => {
    if (k === 'RangeVar') {
      const r = resolve(vs, v, null)
      if (r.col !== undefined) throw new Fail(r.key, `tenant table "${r.key}" in a statement the verifier does not check`)
    }
    eachField(v, depth + 1, tooDeep, field)
  }
  eachField(n, 0, tooDeep, field)
}

/** Expressions: check every sub-query in them (with `level` as their outer level). */
export function exprs(vs: VerifyState, n: N, scope: Scope | null, level: Level | null): void {
  const tooDeep = 'expression nested too deeply'
  const field = (k: string, v: N, depth: number): void => {
    if (LEAF.has(k)) return
    switch (k) {
      case 'SelectStmt':
        vs.walk.select(vs, v, scope, level)
        break
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        throw new Fail('?', `a ${k} inside an expression`)
      case 'RangeVar': {
        const r = resolve(vs, v, scope)
        if (r.col !== undefined) throw new Fail(r.key, `tenant table "${r.key}" referenced where the verifier cannot check it`)
        break
      }
      default:
        eachField(v, depth + 1, tooDeep, field)
    }
  }
  eachField(n, 0, tooDeep, field)
}
