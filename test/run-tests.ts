// Runs every compiled test file under tap and ends with the plain summary line
// "N passed, N failed" that CI reads. Usage: node dist/test/run-tests.js [filter…]
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

function findTests(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return findTests(path)
    return name.endsWith('.test.js') ? [path] : []
  })
}

const filters = process.argv.slice(2)
const files = findTests(here)
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
const tap = spawn(
  'npx',
  ['tap', '--disable-coverage', '--allow-empty-coverage', '--plugin=!@tapjs/typescript', '-R', 'tap', '--timeout=600', '--jobs=2', ...files],
  { stdio: ['ignore', 'pipe', 'inherit'] },
)
let passed = 0
let failed = 0
let pending = ''
tap.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk)
  pending += chunk.toString('utf8')
  const lines = pending.split('\n')
  pending = lines.pop() ?? ''
  for (const line of lines) {
    // Depth-1 subtests are the t.test() blocks inside each file.
    if (/^ {4}ok \d+/.test(line)) passed++
    else if (/^ {4}not ok \d+/.test(line)) failed++
  }
})
tap.on('close', (code) => {
  console.log(`\n${passed} passed, ${failed} failed`)
  process.exit(code === 0 && failed === 0 ? 0 : 1)
})
