// Loads test/parser/golden/*.txt (format described in golden.test.ts).
import { readFileSync, readdirSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
// sources live next to the compiled file's source: dist/test/parser → test/parser/golden
const dir = join(here, '..', '..', '..', 'test', 'parser', 'golden')

export interface GoldenCase {
  file: string
  name: string
  tenant: string | null
  mode: 'tenant' | 'bypass'
  unknown: 'reject' | 'allow'
  input: string
  expect: string
}

export function loadGolden(): GoldenCase[] {
  const out: GoldenCase[] = []
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.txt'))
    .sort()) {
    const text = readFileSync(join(dir, f), 'utf8')
    const blocks = text.split(/^=== /m).slice(1)
    for (const b of blocks) {
      const lines = b.split('\n')
      const name = lines.shift()!.trim()
      let tenant: string | null = 'acme'
      let mode: 'tenant' | 'bypass' = 'tenant'
      let unknown: 'reject' | 'allow' = 'reject'
      for (;;) {
        const m = /^-- (tenant|mode|unknown): (.*)$/.exec(lines[0] ?? '')
        if (!m) break
        lines.shift()
        if (m[1] === 'tenant') tenant = m[2] === 'null' ? null : m[2]
        else if (m[1] === 'mode') mode = m[2] as 'bypass'
        else unknown = m[2] as 'allow'
      }
      const sep = lines.indexOf('---')
      if (sep < 0) throw new Error(`${f}: case ${name} has no ---`)
      const input = lines.slice(0, sep).join('\n')
      const expect = lines
        .slice(sep + 1)
        .join('\n')
        .replace(/\n+$/, '')
      out.push({ file: f, name, tenant, mode, unknown, input, expect })
    }
  }
  return out
}
