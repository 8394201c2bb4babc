// Runs every case in test/parser/golden/*.txt through rewriteQuery and compares.
//
// File format: cases start with a line "=== name". Optional header lines right after it:
//   -- tenant: <value>     (default acme; "null" = no tenant set; the value is taken verbatim)
//   -- mode: bypass
//   -- unknown: allow
// then the input SQL, a line "---", and the expectation:
//   the exact rewritten SQL (the whole message), optionally followed by a line "EFFECT <json>";
//   or "ERROR <sqlstate> [message substring]";  or "TENANT <json of the TenantCommand>".
import t from 'tap'
import { parseSync } from 'libpg-query'
import { initParser, rewriteQuery, RewriteCache } from '../../parser/index.js'
import { normalizeLiterals, LIT_NUMBER, LIT_STRING, LIT_ESTRING, LIT_DOLLAR } from '../../parser/scan.js'
import { goldenCtx } from './fixtures.js'
import { loadGolden, type GoldenCase } from './golden-cases.js'

export function actual(c: GoldenCase, cache?: RewriteCache): string {
  const ctx = goldenCtx({ tenant: c.tenant, mode: c.mode })
  if (c.unknown === 'allow') ctx.facts = { ...ctx.facts, unknown: 'allow' }
  const r = rewriteQuery(c.input, ctx, cache)
  if (r.refusal) return `ERROR ${r.refusal.sqlstate} ${r.refusal.message}`
  if (r.statements.length === 1 && r.statements[0].kind === 'tenant') return `TENANT ${JSON.stringify(r.statements[0].command)}`
  let s = r.sql ?? `NO SQL ${JSON.stringify(r.statements)}`
  const effects = r.statements.flatMap((x) => (x.kind === 'forward' && x.effect ? [x.effect] : []))
  if (effects.length) s += '\nEFFECT ' + effects.map((e) => JSON.stringify(e)).join(' ')
  return s
}

function matches(c: GoldenCase, got: string): boolean {
  const m = /^ERROR (\w{5})(?: (.*))?$/s.exec(c.expect)
  if (m) return got.startsWith(`ERROR ${m[1]}`) && (!m[2] || got.includes(m[2]))
  return got === c.expect
}

if (process.argv[2] === '--print') {
  // developer aid: node dist/test/parser/golden.test.js --print  → shows every case's actual output
  await initParser()
  for (const c of loadGolden()) console.log(`=== ${c.name}\n${c.input}\n---\n${actual(c)}\n`)
} else {
  t.test('literal-normalised sharing equals a cold rewrite', async (t) => {
    await initParser()
    // For every golden input, a variant with other literal values must get, from a cache primed
    // with the original, exactly what a cold rewrite of the variant gives.
    let shared = 0
    for (const c of loadGolden()) {
      const nz = normalizeLiterals(c.input)
      if (nz.key === null || nz.kinds.length === 0) continue
      let variant = ''
      let last = 0
      nz.kinds.forEach((k, i) => {
        const [a, b] = [nz.spans[2 * i], nz.spans[2 * i + 1]]
        const rep =
          k === LIT_NUMBER
            ? String(7 + i)
            : k === LIT_STRING
              ? `'v${i}''x'`
              : k === LIT_ESTRING
                ? `E'v${i}\\'`
                : k === LIT_DOLLAR
                  ? `$$v${i}$$`
                  : c.input.slice(a, b)
        variant += c.input.slice(last, a) + rep
        last = b
      })
      variant += c.input.slice(last)
      for (const v of [variant, c.input.replace("'acme'", "'other'")]) {
        const cache = new RewriteCache()
        actual(c, cache)
        const hit = actual({ ...c, input: v }, cache)
        const cold = actual({ ...c, input: v })
        t.equal(hit, cold, `${c.name}: ${v}`)
        shared++
      }
    }
    t.ok(shared > 100, `${shared} variants compared`)
  })

  t.test('golden rewrites', async (t) => {
    await initParser()
    const cases = loadGolden()
    t.ok(cases.length > 50, `${cases.length} golden cases`)
    const cache = new RewriteCache()
    for (const c of cases) {
      const got = actual(c)
      t.ok(matches(c, got), `${c.file}: ${c.name}`, { got, expected: c.expect })
      if (!/^(ERROR|TENANT|NO SQL) /.test(got) && c.mode === 'tenant') {
        // every rewritten text still parses
        const sql = got.replace(/\nEFFECT .*$/s, '')
        t.doesNotThrow(() => parseSync(sql), `${c.name}: rewritten text parses`)
      }
      // the cache gives the same answer cold, exact-hit and (where shared) normalised
      t.equal(actual(c, cache), got, `${c.name}: cached cold`)
      t.equal(actual(c, cache), got, `${c.name}: cached exact`)
    }
  })
}
