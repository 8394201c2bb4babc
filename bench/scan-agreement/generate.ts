// The scanner-agreement benchmark (../scan-agreement.ts): the generator of statements that mix comments
// of both kinds with every line terminator, strings in every form, quoted identifiers, numbers, operators
// and odd bytes, seeded so a disagreement can be replayed.

// ---- generator --------------------------------------------------------------------------------

const WS = [' ', ' ', ' ', '\t', '\n', '\r', '\r\n', '\f', '\v', '  \n ', '']
const NL = ['\n', '\r', '\r\n']
const OPC = '~!@#^&|`?+-*/%<>='
const WORDS = [
  'select',
  'SELECT',
  'from',
  'where',
  'WHERE',
  'or',
  'and',
  'true',
  'e',
  'E',
  'b',
  'B',
  'x',
  'X',
  'n',
  'N',
  'u',
  'U',
  'uescape',
  'UESCAPE',
  'abc',
  '_x',
  'a1',
  'x$y',
  'é',
  'ñame',
  '日本',
  'ǅ',
  'K',
  'İd',
  'tenant_id',
  'nchar',
  'int',
  'text',
]
const CHUNK = [
  "'",
  "''",
  '"',
  '""',
  '\\',
  '\\\\',
  "\\'",
  '$',
  '$$',
  '$a$',
  '--',
  '/*',
  '*/',
  '\n',
  '\r',
  ' ',
  'a',
  'é',
  '😀',
  '\t',
  'x',
  '0',
  'u',
  '\u000b',
  '&',
]

function pick<T>(r: () => number, a: readonly T[]): T {
  return a[Math.floor(r() * a.length)]
}
function chunkText(r: () => number, max: number): string {
  let t = ''
  const n = Math.floor(r() * max)
  for (let i = 0; i < n; i++) t += pick(r, CHUNK)
  return t
}
function ws(r: () => number): string {
  return pick(r, WS)
}
/** whitespace that may or may not hold a newline, and sometimes a -- comment (string continuations) */
function contWs(r: () => number): string {
  const x = r()
  if (x < 0.35) return pick(r, [' \n ', '\n', '\r\n', '\r', '\t\n\f', '\n\v', ' \n\n  '])
  if (x < 0.5) return pick(r, [' ', '', '\t'])
  if (x < 0.7) return ' --' + chunkText(r, 3).replace(/[\n\r]/g, '') + pick(r, NL) + pick(r, ['', ' '])
  if (x < 0.85) return '\n--' + chunkText(r, 3).replace(/[\n\r]/g, '') + pick(r, NL)
  return pick(r, [' /* c */\n', '\n/* c */ ', ' - \n', '\n-', ' --'])
}
function strBody(r: () => number, esc: boolean): string {
  let t = ''
  const n = Math.floor(r() * 5)
  for (let i = 0; i < n; i++) {
    const x = r()
    if (x < 0.3) t += pick(r, ['a', 'b c', 'é', '日', '😀', '"', '$$', '--', '/*', '*/', '\n', '\r', '-', '\u000b', ' OR true '])
    else if (x < 0.45) t += "''"
    else if (esc && x < 0.8)
      t += pick(r, ["\\'", '\\\\', '\\n', '\\x41', '\\x4', '\\xg', '\\101', '\\1', '\\0', '\\u0041', '\\U00000041', '\\u00', '\\uD800', '\\'])
    else if (!esc && x < 0.55) t += '\\'
    else t += pick(r, ['x', '0', '1', 'F', ' '])
  }
  return t
}
function quoted(r: () => number): string {
  const x = r()
  let pre: string
  let esc = false
  if (x < 0.4) pre = ''
  else if (x < 0.6) {
    pre = pick(r, ['E', 'e'])
    esc = true
  } else if (x < 0.7) pre = pick(r, ['U&', 'u&'])
  else if (x < 0.8) pre = pick(r, ['B', 'b', 'X', 'x'])
  else pre = pick(r, ['N', 'n'])
  let t = pre + "'" + strBody(r, esc) + "'"
  while (r() < 0.3) t += contWs(r) + "'" + strBody(r, esc) + "'"
  if (pre.startsWith('U') || pre.startsWith('u')) if (r() < 0.3) t += ws(r) + 'UESCAPE' + ws(r) + pick(r, ["'!'", "'\\'", "'+'", "''", "'ab'"])
  return t
}
function number(r: () => number): string {
  const x = r()
  if (x < 0.1)
    return (
      pick(r, ['0x', '0X', '0o', '0b', '0B']) +
      pick(r, ['1F', '_1', '', '1_2', 'g', '12', '7', '1__0', 'FF$', '0']) +
      (r() < 0.2 ? pick(r, ['x', '_', '.5', 'e1']) : '')
    )
  const dig = () => {
    let d = String(Math.floor(r() * 10))
    while (r() < 0.4) d += (r() < 0.1 ? '_' : '') + String(Math.floor(r() * 10))
    if (r() < 0.03) d += '_'
    return d
  }
  let t = ''
  if (r() < 0.85) t += dig()
  if (r() < 0.35) {
    t += '.'
    if (r() < 0.6) t += dig()
    if (r() < 0.08) t += '.'
  }
  if (t === '' || t === '.') t = dig()
  if (r() < 0.2) {
    t += pick(r, ['e', 'E'])
    if (r() < 0.4) t += pick(r, ['+', '-'])
    if (r() < 0.85) t += dig()
  }
  if (r() < 0.12) t += pick(r, ['x', 'e', '_', '$', 'é', 'a1', '.', '..', '::int'])
  return t
}
function operator(r: () => number): string {
  const x = r()
  if (x < 0.3) return pick(r, ['::', ':=', '=>', ':', '..', '...', '=+', '=-', '<=', '>=', '<>', '!=', '=+1', '*/', '/-*', '+/*c*/', '-/**/-', '*--c\n'])
  let t = ''
  const n = 1 + Math.floor(r() * 4)
  for (let i = 0; i < n; i++) t += OPC[Math.floor(r() * OPC.length)]
  return t
}
function comment(r: () => number, atEnd: boolean): string {
  if (r() < 0.5) {
    const body = chunkText(r, 4).replace(/[\n\r]/g, ' ')
    return '--' + body + (atEnd && r() < 0.5 ? '' : pick(r, NL))
  }
  const x = r()
  if (x < 0.5) return '/*' + chunkText(r, 4).replace(/\*\//g, '') + '*/'
  if (x < 0.75) return '/* a /* b' + pick(r, ['', '*', '/']) + ' */ c */'
  if (x < 0.9) return pick(r, ['/**/', '/*/ */', '/***/', '/*/**/*/', '/* */*/', '/*-- */'])
  return '/*' + chunkText(r, 3) // often unterminated
}
function dollar(r: () => number): string {
  const x = r()
  if (x < 0.4) {
    const tag = pick(r, ['', 'a', 'tag', 'é', '_', 'a1', 'Q_9'])
    const d = '$' + tag + '$'
    return d + pick(r, ['', 'x', "'", '$', '$$', '$a$', '$b$', '$ab$', '--', '/*', '\n', 'é']) + (r() < 0.92 ? d : '')
  }
  if (x < 0.7) return '$' + String(1 + Math.floor(r() * 12)) + pick(r, ['', '', 'x', '$', '_0', '::int', 'e5', '.5'])
  return pick(r, ['$', '$a', '$1a$', '$1$', '$a b$', '$é', 'x$a$y$a$', '$$$', '$0'])
}
function qident(r: () => number): string {
  const x = r()
  if (x < 0.55) return '"' + pick(r, ['a', 'A b', 'a""b', "'", '--', '/*', '\n', 'é', '$1', '']) + '"'
  if (x < 0.8) return pick(r, ['U&', 'u&']) + '"' + pick(r, ['a', 'd\\0061t', '""', '', "'"]) + '"' + (r() < 0.3 ? ' UESCAPE ' + pick(r, ["'!'", "'a'"]) : '')
  return pick(r, ['"', '"x', 'U&"', 'U&x', 'u&1', 'U&&'])
}
function oddChar(r: () => number): string {
  return pick(r, [
    '\u0000',
    '\u0001',
    '\u0002',
    '\u0005',
    '\u0006',
    '\u007f',
    '\ud800',
    '\udc00',
    '\ud83d',
    '\ude00x',
    '{',
    '}',
    '\\',
    '\u00a0',
    '\u2028',
    '\ufeff',
    '\u212a',
  ])
}
const PUNCT = ['(', ')', '[', ']', ',', ';', '.', ':', '(', ')', ',', '*']

/** ORM-shaped statements that generate() mutates (a fragment spliced in anywhere, a range cut out). */
const BASE = [
  'SELECT "ads".* FROM "ads" WHERE "ads"."id" = 1 LIMIT 1',
  "SELECT ads.id, ads.title FROM ads WHERE ads.status = 'active' AND ads.created_at > '2024-01-01' ORDER BY 1 DESC LIMIT 25 OFFSET 50",
  'INSERT INTO "ads" ("title", "company_id") VALUES ($1, $2) RETURNING "id"',
  "UPDATE ads SET title = E'it\\'s', price = 1.5e3 WHERE id = $1 AND tags @> ARRAY['x']::text[]",
  'DELETE FROM ads USING campaigns c WHERE ads.campaign_id = c.id AND c.budget <= -1 -- cleanup\n',
  "SELECT count(*) FILTER (WHERE a.x >= .5) FROM ads a JOIN campaigns c ON c.id = a.campaign_id /* report */ WHERE a.title ILIKE '%é%'",
  "SELECT $$body$$, $f$ x $f$, U&'d\\0061t', B'101', X'1F', N'nat', 'a'\n'b' FROM ads",
  'SELECT f(a := 1, b => 2), x::int, y[1:2], "q""x" FROM t WHERE a !~~* b OR a =+1',
]

/** One generated statement. */
export function generate(r: () => number): string {
  if (r() < 0.3) {
    let s = pick(r, BASE)
    const edits = 1 + Math.floor(r() * 3)
    for (let k = 0; k < edits; k++) {
      const at = Math.floor(r() * (s.length + 1))
      if (r() < 0.25) s = s.slice(0, at) + s.slice(at + 1 + Math.floor(r() * 4))
      else s = s.slice(0, at) + fragment(r, false) + s.slice(at)
    }
    return s
  }
  let s = ''
  const parts = 1 + Math.floor(r() * 12)
  for (let i = 0; i < parts; i++) {
    s += fragment(r, i === parts - 1)
    if (r() < 0.6) s += ws(r)
  }
  return s
}

function fragment(r: () => number, last: boolean): string {
  const x = r()
  if (x < 0.16) return pick(r, WORDS)
  if (x < 0.3) return quoted(r)
  if (x < 0.4) return number(r)
  if (x < 0.52) return operator(r)
  if (x < 0.62) return comment(r, last)
  if (x < 0.69) return dollar(r)
  if (x < 0.76) return qident(r)
  if (x < 0.88) return pick(r, PUNCT)
  if (x < 0.9) return oddChar(r)
  return ws(r)
}
