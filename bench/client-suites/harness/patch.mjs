// Applies the harness patches to the suites' work trees (idempotent). Each patch
// names the exact upstream text it replaces and fails loudly when it is not found,
// so a newer upstream commit cannot be patched silently wrong.
//   node patch.mjs <node-postgres dir> <postgres.js dir>
import { readFileSync, writeFileSync, copyFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const [np, pjs] = process.argv.slice(2)
if (!np || !pjs) throw new Error('usage: node patch.mjs <node-postgres dir> <postgres.js dir>')

function patch(file, replacements) {
  const marker = '// patched by pgtenant bench/client-suites\n'
  let text = readFileSync(file, 'utf8')
  if (text.endsWith(marker)) return
  for (const [from, to] of replacements) {
    if (!text.includes(from)) throw new Error(`${file}: expected text not found:\n${from}`)
    text = text.split(from).join(to)
  }
  writeFileSync(file, text + marker)
}

// node-postgres: per-test results instead of exit at the first failure.
copyFileSync(join(here, 'pg-suite.js'), join(np, 'packages/pg/test/suite.js'))

// postgres.js: (1) upstream skips every test after the first failure ("ignored");
// run them all. (2) write each test's result to $CS_RESULTS, also when the process ends
// early; an unhandled rejection is logged instead of ending the run (through pgtenant,
// sql.subscribe's refused replication connection rejects outside any test). (3) three
// tests hard-code port 5432; use PGPORT (the same value upstream CI has there).
const csWrite = `
let csWritten = false
function csWrite() {
  if (csWritten || !process.env.CS_RESULTS) return
  csWritten = true
  fs.writeFileSync(process.env.CS_RESULTS, Object.values(tests).map(x => JSON.stringify({
    file: 'tests/index.js', test: x.name + ' (line ' + x.line + ')',
    status: x.succeeded ? 'pass' : x.failed ? 'fail' : 'unfinished',
    error: x.error ? String(x.error.stack || x.error).split('\\n').slice(0, 3).join(' | ') : undefined
  })).join('\\n') + '\\n')
}
process.on('exit', csWrite)
process.on('unhandledRejection', (e) => console.error('\\n(harness) unhandled rejection:', e))
`
patch(join(pjs, 'tests/test.js'), [
  ["import util from 'util'\n", "import util from 'util'\nimport fs from 'fs'\n"],
  ['    failed\n      ? (ignored++, ignore)\n      : fn()\n', '    fn()\n'],
  [
    'function exit() {\n',
    csWrite +
      'function exit() {\n' +
      '  setTimeout(() => process.exit(), 5000).unref() // a test that failed may leave a connection open\n' +
      '  csWrite()\n',
  ],
])
patch(join(pjs, 'tests/index.js'), [
  ["'@localhost:5432/'", "'@localhost:' + (process.env.PGPORT || 5432) + '/'"],
  ['socket.connect(5432)', 'socket.connect(+(process.env.PGPORT || 5432))'],
])
console.log('patched', np, pjs)
