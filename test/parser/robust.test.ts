// Robustness: truncated and mangled statements never throw, and whatever is forwarded in tenant
// mode still parses and, when it touches a tenant table, carries the tenant restriction.
import t from 'tap'
import { parseSync } from 'libpg-query'
import { initParser, rewriteQuery, RewriteCache } from '../../parser/index.js'
import { loadGolden } from './golden-cases.js'
import { goldenCtx } from './fixtures.js'
import { mulberry32 as rng } from '../helpers/rng.js'

const PIECES = [
  ' (',
  ') ',
  ' WHERE ',
  ' JOIN ads x ON true ',
  ' LEFT JOIN campaigns c USING (id) ',
  "'",
  '"',
  '$$',
  '/*',
  '*/',
  '--\n',
  ';',
  ' UNION SELECT * FROM ads ',
  ' é ',
  ',',
  ' AS ',
  ' FROM ',
  ' ORDER BY 1 ',
]

t.test('mangled statements', async (t) => {
  await initParser()
  const rand = rng(Number(process.env.PARSER_FUZZ_SEED ?? 12345))
  const inputs = loadGolden().map((c) => c.input)
  const cache = new RewriteCache({ maxBytes: 1 << 20 })
  let forwarded = 0
  let refused = 0
  for (let n = 0; n < 3000; n++) {
    let s = inputs[Math.floor(rand() * inputs.length)]
    const op = Math.floor(rand() * 3)
    const at = Math.floor(rand() * (s.length + 1))
    if (op === 0) s = s.slice(0, at)
    else if (op === 1) s = s.slice(0, at) + PIECES[Math.floor(rand() * PIECES.length)] + s.slice(at)
    else s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rand() * 5))
    let r
    try {
      r = rewriteQuery(s, goldenCtx(), cache)
    } catch (e) {
      t.fail(`threw on ${JSON.stringify(s)}: ${(e as Error).message}`)
      continue
    }
    if (r.refusal) {
      refused++
      continue
    }
    for (const st of r.statements) {
      if (st.kind !== 'forward') continue
      forwarded++
      if (st.sql.trim() === '') continue
      let ok = true
      try {
        parseSync(st.sql)
      } catch {
        ok = false
      }
      if (!ok) t.fail(`forwarded text does not parse: ${JSON.stringify(s)} → ${JSON.stringify(st.sql)}`)
      const tenantCmd = r.statements.some((x) => x.kind === 'tenant')
      // COPY … FROM STDIN into a tenant table carries the tenant in its rows (copyIn), not in its text
      if (st.touchesTenant && !tenantCmd && !st.copyIn && !st.sql.includes("'acme'"))
        t.fail(`tenant statement without the tenant: ${JSON.stringify(s)} → ${st.sql}`)
    }
  }
  t.pass(`${forwarded} forwarded, ${refused} refused`)
})
