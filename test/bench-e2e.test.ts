// The end-to-end benchmark's short variant runs here so it cannot rot: every target must
// produce numbers for every case it can run, and the results file must hold the ratios.
// No timing is asserted (timing goals live in bench/); only that the suite works.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

interface Row {
  workload: string
  mode: string
  clients: string
  target: string
  tps: string
  vsBouncer: string
  vsDirect: string
}

function resultRows(md: string): Row[] {
  const lines = md.split('\n').filter((l) => /^\| (pgbench|tenant|connect)/.test(l))
  return lines.map((l) => {
    const c = l
      .split('|')
      .slice(1, -1)
      .map((s) => s.trim())
    return { workload: c[0], mode: c[1], clients: c[2], target: c[3], tps: c[4], vsBouncer: c[10], vsDirect: c[11] }
  })
}

t.test('npm run bench:e2e -- --quick: every case on every target, ratios written', { timeout: 290_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-bench-test-'))
  const out = join(dir, 'RESULTS.md')
  const started = Date.now()
  const run = spawnSync(process.execPath, [join(ROOT, 'dist', 'bench', 'e2e.js'), '--quick', '--idle', '300', '--out', out], {
    encoding: 'utf8',
    timeout: 270_000,
  })
  const seconds = (Date.now() - started) / 1000
  t.equal(run.status, 0, `the quick run exits 0 (${seconds.toFixed(0)} s)${run.status === 0 ? '' : `: ${run.stderr.slice(-2000)}`}`)
  t.comment(`quick run: ${seconds.toFixed(0)} s (its 2-minute budget is a bench goal, not asserted here)`)
  const md = readFileSync(out, 'utf8')
  t.notOk(/## Failures/.test(md), 'no case failed')
  t.match(md, /- pgbouncer: PgBouncer \d/, 'PgBouncer ran (installed when missing)')
  const rows = resultRows(md)
  const targets = new Set(rows.map((r) => r.target))
  t.same([...targets].sort(), ['Node pipe', 'PgBouncer', 'direct', 'pgtenant'], 'three targets and the Node pipe reference')
  t.ok(
    rows.filter((r) => r.target === 'Node pipe').every((r) => r.workload === 'pgbench -S'),
    'the Node pipe runs pgbench -S only',
  )
  t.ok(
    rows.some((r) => r.workload.startsWith('tenant')),
    'the tenant workload ran',
  )
  t.ok(
    rows.some((r) => r.workload.startsWith('connect')),
    'the connection storm ran',
  )
  for (const r of rows) {
    const label = `${r.workload} -M ${r.mode} c=${r.clients} ${r.target}`
    if (r.target === 'PgBouncer' && r.mode === 'prepared') {
      t.match(r.tps, /^n\/a/, `${label}: not applicable`)
      continue
    }
    t.ok(Number(r.tps.replace(/,/g, '')) > 0, `${label}: ${r.tps} tps`)
    if (r.target === 'pgtenant' || r.target === 'Node pipe') {
      t.match(r.vsDirect, /^\d+\.\d\d×$/, `${label}: ratio to direct ${r.vsDirect}`)
      if (r.mode !== 'prepared') t.match(r.vsBouncer, /^\d+\.\d\d×$/, `${label}: ratio to PgBouncer ${r.vsBouncer}`)
    }
  }
  t.match(md, /\| pgtenant \| 300 of 300 \|/, 'pgtenant held every idle client')
  rmSync(dir, { recursive: true, force: true })
})
