// COPY: to or from a file or program is refused; COPY (query) TO is rewritten as a query; COPY of a
// tenant table TO the client becomes COPY (SELECT cols FROM t WHERE col = 'tenant') TO.
// COPY t [(cols)] FROM STDIN into a tenant table (issue 19) is forwarded with an explicit column list
// that names the tenant column, and returns a CopyInPlan (types.ts) that tells server/ what to do with
// every row the client streams:
//  - the client's list lacks the tenant column: the server is sent `COPY t (cols…, col) FROM STDIN` and
//    server/ appends the tenant's value to each row ('append');
//  - it names it (or there is no list: then the list is the table's columns minus generated ones, as
//    PostgreSQL's own, and it is spelled out so the server checks the names): server/ checks that field
//    of each row and aborts the COPY on the first row of another tenant ('check').
// Only options whose effect on the rows the proxy reproduces are accepted; anything else is refused.
import { quoteIdent } from '../quote.js'
import type { CopyInPlan } from '../types.js'
import { Refuse, unsupported } from './refuse.js'
import type { RewriteState } from './state.js'
import { TENANT } from './template.js'
import { resolve } from './names.js'
import { field, type CopyStmt, type Node } from './nodes.js'

export function walkCopy(cx: RewriteState, cp: CopyStmt): CopyInPlan | null {
  if (cp.is_program || cp.filename) throw new Refuse('statement_policy', '42501', 'COPY to or from a server file or program is not allowed for tenant sessions')
  if (cp.query) {
    if (cp.is_from) throw unsupported('COPY (query) FROM is not valid')
    cx.walk.body(cp.query, null)
    return null
  }
  const rv = cp.relation!
  const r = resolve(cx, rv, null, !!cp.is_from)
  if (r.kind !== 'tenant') return null
  if (cp.is_from) return copyFrom(cx, cp, r.key, r.col!)
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
  return null
}

/** COPY tenant table FROM STDIN: the explicit column list the server gets, and the plan for the rows. */
function copyFrom(cx: RewriteState, cp: CopyStmt, table: string, col: string): CopyInPlan {
  // the options (delimiter, quote, …) are literals the plan depends on: never share it by the literal-normalised key
  cx.normalizable = false
  const o = copyOptions(cp.options ?? [], table, col)
  if (cp.whereClause) cx.walk.expr(cp.whereClause, null) // the function policy; it only sees rows already checked or appended
  const t = cx.toks
  const i = cx.tokAt(cx.c(cp.relation!.location!))
  const nameEnd = cx.nameEnd(i)
  let names: string[]
  let index: number
  if (cp.attlist) {
    names = cp.attlist.map((n) => field(n, 'String')?.sval ?? '')
    index = names.indexOf(col)
    if (index >= 0 && names.lastIndexOf(col) !== index) throw unsupported(`column "${col}" specified more than once`)
    if (index < 0) {
      const { close } = cx.parenList(nameEnd + 1)
      cx.insert(t[close].s, [`, ${quoteIdent(col)}`])
    }
  } else {
    const all = cx.ctx.facts.columns?.get(table)
    if (!all)
      throw unsupported(
        `COPY ${table} FROM STDIN without a column list: pgtenant does not know the columns of tenant table "${table}"`,
        'name the columns: COPY t (a, b, …) FROM STDIN',
      )
    const generated = cx.ctx.facts.generatedColumns?.get(table)
    // PostgreSQL's default list: every column but the generated ones, in attnum order
    names = generated ? all.filter((c) => !generated.has(c)) : [...all]
    index = names.indexOf(col)
    const list = index < 0 ? [...names, col] : names // a generated tenant column: the server refuses to write it
    cx.insert(t[nameEnd].e, [` (${list.map(quoteIdent).join(', ')})`])
  }
  return {
    table,
    column: col,
    mode: index < 0 ? 'append' : 'check',
    index: Math.max(index, 0),
    fields: names.length,
    ...o,
    columnType: cx.ctx.facts.tenantColumnTypes?.get(table) ?? null,
  }
}

type CopyOptions = Pick<CopyInPlan, 'format' | 'delimiter' | 'null' | 'quote' | 'escape' | 'header'>

/** A DefElem's argument as defGetString reads it; undefined when it has none, null when it is not a scalar. */
function argString(arg: Node | undefined): string | null | undefined {
  if (!arg) return undefined
  const s = field(arg, 'String')
  if (s) return s.sval ?? ''
  const i = field(arg, 'Integer')
  if (i) return String(i.ival ?? 0)
  const f = field(arg, 'Float')
  if (f) return f.fval ?? '0'
  const b = field(arg, 'Boolean')
  if (b) return b.boolval ? 'true' : 'false'
  if (field(arg, 'A_Star')) return '*'
  return null
}

const TEXT_DELIMITER_FORBIDDEN = '\\.abcdefghijklmnopqrstuvwxyz0123456789'

/** The options of COPY … FROM STDIN into a tenant table: those whose effect on the rows pgtenant reproduces, or a refusal. */
function copyOptions(options: Node[], table: string, col: string): CopyOptions {
  const strings = new Map<string, string>()
  let header: CopyOptions['header'] = 'none'
  const refuse = (what: string): never => {
    throw unsupported(`COPY ${table} FROM STDIN: ${what}`)
  }
  const single = (name: string, v: string | null | undefined): string => {
    if (typeof v !== 'string' || Buffer.byteLength(v) !== 1) refuse(`${name.toUpperCase()} must be a single one-byte character`)
    return v as string
  }
  for (const n of options) {
    const d = field(n, 'DefElem')
    if (!d) refuse('an option pgtenant cannot read')
    const name = d!.defname ?? ''
    const v = argString(d!.arg)
    switch (name) {
      case 'format':
      case 'delimiter':
      case 'null':
      case 'quote':
      case 'escape':
      case 'encoding':
        if (typeof v !== 'string') refuse(`${name.toUpperCase()} needs a value`)
        strings.set(name, v as string)
        break
      case 'header': {
        const h = v === undefined ? 'true' : typeof v === 'string' ? v.toLowerCase() : ''
        if (h === 'true' || h === 'on' || h === '1') header = 'skip'
        else if (h === 'false' || h === 'off' || h === '0') header = 'none'
        else if (h === 'match') header = 'match'
        else refuse(`HEADER ${v ?? ''} is not supported for tenant tables`)
        break
      }
      case 'force_null': {
        // a quoted value equal to the NULL string becomes NULL: not the tenant's value
        const star = v === '*'
        const list = field(d!.arg, 'List')?.items?.map((x) => field(x, 'String')?.sval) ?? []
        if (star || list.includes(col)) refuse(`FORCE_NULL of the tenant column "${col}" is not allowed`)
        break
      }
      case 'freeze':
      case 'force_not_null': // a NULL tenant field is refused before it could become the NULL string
      case 'on_error': // skipping a malformed row never moves a value to another column
      case 'log_verbosity':
      case 'reject_limit':
        break
      case 'default':
        refuse('the DEFAULT option is not supported for tenant tables (a field equal to it would take the column default)')
        break
      default:
        refuse(`option "${name}" is not supported for tenant tables`)
    }
  }
  const fmt = strings.get('format') ?? 'text'
  if (fmt !== 'text' && fmt !== 'csv' && fmt !== 'binary') refuse(`COPY format "${fmt}" not recognized`)
  const format = fmt as CopyOptions['format']
  const enc = strings.get('encoding')
  if (enc !== undefined && !['utf8', 'unicode'].includes(enc.toLowerCase().replace(/[^a-z0-9]/g, '')))
    refuse(`ENCODING '${enc}' is not supported for tenant tables: tenant sessions speak UTF8 (client_encoding), send the data in UTF8`)
  const csv = format === 'csv'
  if (format === 'binary') {
    for (const k of ['delimiter', 'null', 'quote', 'escape']) if (strings.has(k)) refuse(`cannot specify ${k.toUpperCase()} in BINARY mode`)
    if (header !== 'none') refuse('cannot specify HEADER in BINARY mode')
    return { format, delimiter: '', null: '', quote: '', escape: '', header }
  }
  if (!csv && (strings.has('quote') || strings.has('escape'))) refuse('QUOTE and ESCAPE are available only in CSV mode')
  const delimiter = single('delimiter', strings.get('delimiter') ?? (csv ? ',' : '\t'))
  const nul = strings.get('null') ?? (csv ? '' : '\\N')
  const quote = csv ? single('quote', strings.get('quote') ?? '"') : ''
  const escape = csv ? single('escape', strings.get('escape') ?? quote) : ''
  if (delimiter === '\r' || delimiter === '\n') refuse('the delimiter cannot be newline or carriage return')
  if (/[\r\n]/.test(nul)) refuse('the NULL string cannot contain newline or carriage return')
  if (nul.includes(delimiter)) refuse('the delimiter must not appear in the NULL specification')
  if (!csv && TEXT_DELIMITER_FORBIDDEN.includes(delimiter)) refuse(`the delimiter cannot be "${delimiter}"`)
  if (csv) {
    if (delimiter === quote) refuse('the delimiter and quote must be different')
    if (quote === '\\') refuse('QUOTE backslash is not supported for tenant tables')
    if (nul.includes(quote)) refuse('the quote character must not appear in the NULL specification')
    if (quote === '\r' || quote === '\n' || escape === '\r' || escape === '\n') refuse('quote and escape cannot be newline or carriage return')
  }
  return { format, delimiter, null: nul, quote, escape, header }
}
