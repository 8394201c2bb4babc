// The quick soak (bench/soak.ts --quick, about 60 s, 500 clients in 2 processes): mixed tenant
// traffic with server connections killed at random, clients hanging up mid-query and config
// reloads. The full 10-minute run is `npm run soak` (see README, Benchmarks).
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { SoakSummary } from '../bench/soak.js'

const here = dirname(fileURLToPath(import.meta.url))

t.test('quick soak: no proxy exit, no hung client, pools kept, every acknowledged commit present', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-soak-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const json = join(dir, 'summary.json')
  const out = await new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, [join(here, '..', 'bench', 'soak.js'), '--quick', '--json', json], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    child.on('close', (code) => resolve({ code, output }))
  })
  t.comment(out.output.trim().split('\n').join('\n# '))
  t.equal(out.code, 0, 'the soak ran to its end')
  const s = JSON.parse(readFileSync(json, 'utf8')) as SoakSummary
  t.equal(s.proxyExits, 0, 'the proxy never exited')
  t.equal(s.hung, 0, 'no client hung')
  t.ok(
    s.serverConnections.max.main <= s.serverConnections.poolSizes.main,
    `main: at most its pool size on the server (${s.serverConnections.max.main}/${s.serverConnections.poolSizes.main})`,
  )
  t.ok(
    s.serverConnections.max.other <= s.serverConnections.poolSizes.other,
    `other: at most its pool size on the server (${s.serverConnections.max.other}/${s.serverConnections.poolSizes.other})`,
  )
  t.ok(s.ledger.acknowledged > 100, `commits were made (${s.ledger.acknowledged})`)
  t.equal(s.ledger.missing, 0, `every acknowledged commit is present (${s.ledger.present}/${s.ledger.acknowledged})`)
  t.ok(s.killed > 5 && s.hangups > 5 && s.reloads >= 3, `faults happened: ${s.killed} server connections killed, ${s.hangups} hang-ups, ${s.reloads} reloads`)
  t.ok(s.ops > 1000, `traffic flowed (${s.ops} operations)`)
  // Catalog reads at the cap (issue 15): new tenant tables named while the pools are full; each is found
  // (or its client waited like any other, 53300), and the server never sees more than the cap.
  const cap = s.serverConnections.poolSizes.main + s.serverConnections.poolSizes.other
  t.ok(s.catalogProbes.length >= 2, `catalog reads were triggered (${s.catalogProbes.length} new tables)`)
  const failed = s.catalogProbes.filter((p) => p.outcome !== 'rows' && !p.outcome.startsWith('53300') && !p.outcome.startsWith('login:'))
  t.same(failed, [], 'every new tenant table was found by the catalog read and filtered to the tenant')
  t.ok(
    s.catalogProbes.some((p) => p.outcome === 'rows'),
    'at least one new table answered with rows',
  )
  t.ok(s.serverConnections.maxTotal <= cap, `the server never saw more than the cap, catalog reads included (${s.serverConnections.maxTotal}/${cap})`)
  // Known open (issue 15, 2026-12-08): 1 socket fd with no TCP state left open after a quick run at load 4
  // (6 after the full run, beside 5 login-timeout cut-offs). Reported as a todo until it is found and fixed.
  t.equal(s.flat.fds, 'pass', `fds back to where they were at ready, less the idle pool (${s.flat.fdsSettled} settled, ${s.flat.fdsReady} ready)`, {
    todo: 'a dead client socket whose fd stays open (issue 15)',
  })
})
