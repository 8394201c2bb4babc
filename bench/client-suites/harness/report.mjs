// bench/client-suites result handling.
//   node report.mjs mocha <mocha.json> <suite>   → JSON lines (one per test) on stdout
//   node report.mjs summary <results dir>        → markdown summary on stdout
// A result line is {file, test, status: pass|fail|skip|unfinished, error?}.
import { readFileSync, existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const [cmd, ...args] = process.argv.slice(2)

if (cmd === 'mocha') {
  const [file] = args
  if (!existsSync(file)) process.exit(0)
  let doc
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'))
  } catch {
    process.exit(0)
  }
  const failed = new Set(doc.failures.map((t) => t.fullTitle))
  const passed = new Set(doc.passes.map((t) => t.fullTitle))
  const pending = new Set(doc.pending.map((t) => t.fullTitle))
  for (const t of doc.tests) {
    const status = failed.has(t.fullTitle) ? 'fail' : passed.has(t.fullTitle) ? 'pass' : pending.has(t.fullTitle) ? 'skip' : 'unfinished'
    const error = t.err && t.err.message ? String(t.err.message).split('\n').slice(0, 3).join(' | ') : undefined
    console.log(JSON.stringify({ file: t.file ? t.file.replace(/^.*\/packages\//, 'packages/') : '', test: t.fullTitle, status, error }))
  }
  // hooks that failed ("before all" hook …) are failures without a test entry
  for (const t of doc.failures) if (!doc.tests.some((x) => x.fullTitle === t.fullTitle))
    console.log(JSON.stringify({ file: t.file ? t.file.replace(/^.*\/packages\//, 'packages/') : '', test: t.fullTitle, status: 'fail', error: t.err && t.err.message }))
} else if (cmd === 'summary') {
  const [dir] = args
  const modes = ['direct', 'session', 'transaction'].filter((m) => existsSync(join(dir, m)))
  const suites = new Set()
  const data = {}
  for (const m of modes) {
    data[m] = {}
    for (const f of readdirSync(join(dir, m)).filter((f) => f.endsWith('.jsonl'))) {
      const suite = f.replace(/\.jsonl$/, '')
      suites.add(suite)
      const results = new Map()
      for (const line of readFileSync(join(dir, m, f), 'utf8').split('\n').filter(Boolean)) {
        const r = JSON.parse(line)
        let key = `${r.file} :: ${r.test}`
        for (let n = 2; results.has(key); n++) key = `${r.file} :: ${r.test} #${n}`
        results.set(key, r)
      }
      data[m][suite] = results
    }
  }
  const count = (results, exits) => {
    const c = { pass: 0, fail: 0, skip: 0, unfinished: 0 }
    for (const r of results.values()) if ((r.test === '(process exit)') === exits) c[r.status]++
    return c
  }
  const out = []
  if (existsSync(join(dir, 'meta.txt'))) out.push('```', readFileSync(join(dir, 'meta.txt'), 'utf8').trim(), '```', '')
  out.push('Tests: passed / failed (+ skipped, + never finished). Processes: files (pg) or runner processes that exited 0 / non-zero.', '')
  out.push(`| suite | ${modes.map((m) => `${m} tests | ${m} processes`).join(' | ')} |`)
  out.push(`|---|${modes.map(() => '---|---').join('|')}|`)
  const fmt = (c) => `${c.pass} / ${c.fail}${c.skip ? ` (+${c.skip} skipped)` : ''}${c.unfinished ? ` (+${c.unfinished} unfinished)` : ''}`
  for (const s of [...suites].sort()) {
    const cells = modes.map((m) => {
      const r = data[m][s]
      if (!r) return '– | –'
      const e = count(r, true)
      return `${fmt(count(r, false))} | ${e.pass} / ${e.fail}`
    })
    out.push(`| ${s} | ${cells.join(' | ')} |`)
  }
  for (const m of modes.filter((m) => m !== 'direct')) {
    out.push('', `## ${m}: pass directly, not through pgtenant`, '')
    for (const s of [...suites].sort()) {
      const d = data.direct?.[s]
      const p = data[m][s]
      if (!d || !p) continue
      const lost = [...d].filter(([k, r]) => r.status === 'pass' && p.get(k)?.status !== 'pass')
      const gained = [...p].filter(([k, r]) => r.status === 'pass' && d.get(k) && d.get(k).status !== 'pass')
      if (!lost.length && !gained.length) continue
      out.push(`### ${s} (${lost.length})`, '')
      for (const [k] of lost) {
        const r = p.get(k)
        out.push(`- ${k} — ${r ? r.status : 'not run'}${r?.error ? `: ${r.error.slice(0, 300).replace(/\s+/g, ' ')}` : ''}`)
      }
      for (const [k] of gained) out.push(`- (passes only through pgtenant) ${k}`)
      out.push('')
    }
  }
  console.log(out.join('\n'))
} else {
  console.error('usage: report.mjs mocha FILE SUITE | summary DIR')
  process.exit(2)
}
