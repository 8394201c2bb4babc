// Runs every compiled test file (`*.test.js` under dist/test) with plain `node`, two at a
// time, and ends with the summary line CI reads: "N passed, N failed" (one count per
// t.test block). Each file is its own process and prints TAP (the `tap` library's `t`);
// running files directly keeps tap's runner loaders out of the way.
// Usage: node dist/test/run-tests.js [filter…]
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, dirname, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const PARALLEL = 2
const FILE_TIMEOUT_MS = 15 * 60 * 1000

function findTests(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return findTests(path)
    return name.endsWith('.test.js') ? [path] : []
  })
}

interface FileResult {
  file: string
  code: number | null
  passed: number
  failed: number
  /** t.test blocks skipped (`# SKIP`, e.g. the real-Citus tests without PGTENANT_CITUS_URL): neither passed nor failed */
  skipped: number
  output: string
}

function runFile(file: string): Promise<FileResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--enable-source-maps', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TAP_TIMEOUT: '300' } })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const timer = setTimeout(() => {
      output += `\n# killed after ${FILE_TIMEOUT_MS / 1000} s\n`
      child.kill('SIGKILL')
    }, FILE_TIMEOUT_MS)
    child.on('close', (code) => {
      clearTimeout(timer)
      // Top-level lines are the file's t.test blocks.
      const skipped = (output.match(/^(not )?ok \d+.*# SKIP/gm) ?? []).length
      const passed = (output.match(/^ok \d+(?!.*# SKIP)/gm) ?? []).length
      const failed = (output.match(/^not ok \d+(?!.*# (TODO|SKIP))/gm) ?? []).length
      resolve({ file, code, passed, failed, skipped, output })
    })
  })
}

const filters = process.argv.slice(2)
const files = findTests(here)
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
const queue = [...files]
const results: FileResult[] = []
async function worker(): Promise<void> {
  for (let file = queue.shift(); file; file = queue.shift()) {
    const r = await runFile(file)
    const name = relative(process.cwd(), r.file)
    const ok = r.code === 0 && r.failed === 0 && r.passed + r.skipped > 0
    const skipped = r.skipped ? `, ${r.skipped} skipped` : ''
    process.stdout.write(
      `\n# ${name}\n${r.output.replace(/^/gm, '    ')}\n${ok ? 'ok' : 'not ok'} - ${name} (${r.passed} passed, ${r.failed} failed${skipped}, exit ${r.code})\n`,
    )
    results.push(r)
  }
}
await Promise.all(Array.from({ length: PARALLEL }, worker))
let passed = 0
let failed = 0
for (const r of results) {
  passed += r.passed
  failed += r.failed
  // A file that crashed or printed no test at all counts as a failure of its own.
  if ((r.code !== 0 && r.failed === 0) || r.passed + r.failed + r.skipped === 0) failed++
}
const bad = results.filter((r) => r.code !== 0 || r.failed > 0 || r.passed + r.skipped === 0).map((r) => relative(process.cwd(), r.file))
if (bad.length) console.log(`\nfailing files: ${bad.join(', ')}`)
const skippedFiles = results.filter((r) => r.skipped > 0).map((r) => `${relative(process.cwd(), r.file)} (${r.skipped})`)
if (skippedFiles.length) console.log(`\nskipped, not counted as passed: ${skippedFiles.join(', ')}`)
console.log(`\n${passed} passed, ${failed} failed`)
process.exit(bad.length === 0 && files.length > 0 ? 0 : 1)
