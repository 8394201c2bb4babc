// COPY: to or from a file or program is refused; COPY (query) TO is rewritten as a query; COPY of a
// tenant table TO the client becomes COPY (SELECT cols FROM t WHERE col = 'tenant') TO; COPY FROM
// into a tenant table is refused (no per-row check is possible on the COPY data stream).
import { quoteIdent } from '../quote.js'
import { Refuse, unsupported } from './refuse.js'
import type { RewriteState } from './state.js'
import { TENANT } from './template.js'
import { resolve } from './names.js'
import type { CopyStmt } from './nodes.js'

export function walkCopy(cx: RewriteState, cp: CopyStmt): void {
  if (cp.is_program || cp.filename) throw new Refuse('statement_policy', '42501', 'COPY to or from a server file or program is not allowed for tenant sessions')
  if (cp.query) {
    if (cp.is_from) throw unsupported('COPY (query) FROM is not valid')
    cx.walk.body(cp.query, null)
    return
  }
  const rv = cp.relation!
  const r = resolve(cx, rv, null, !!cp.is_from)
  if (r.kind !== 'tenant') return
  if (cp.is_from) throw unsupported(`COPY FROM into tenant table "${r.key}" is not supported: use INSERT, or a bypass user for bulk loads`)
  const t = cx.toks
  const i = cx.tokAt(cx.c(rv.location!))
  let j = cx.nameEnd(i)
  let cols = '*'
  if (cp.attlist) {
    const open = j + 1
    const { close } = cx.parenList(open)
    cols = cx.text.slice(t[open + 1].s, t[close - 1].e)
    j = close
  }
  const name = cx.text.slice(t[i].s, t[cx.nameEnd(i)].e)
  cx.edit(t[i].s, t[j].e, [`(SELECT ${cols} FROM ${name} WHERE ${quoteIdent(r.col!)} = `, TENANT, ')'])
}
