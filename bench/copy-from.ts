// COPY … FROM STDIN into a tenant table through pgtenant vs directly (issue 19): rows per second for
// 1,000,000 rows (ROWS=…), node-postgres + pg-copy-streams sending 64 KiB chunks of a pre-built stream.
//
//   npm run bench:copy            # text append, text check, CSV check, binary append; 3 rounds each
//   ROUNDS=5 ROWS=200000 MODES=append npm run bench:copy    # MODES: a substring of the workload names
//
// pgtenant runs as its own process (node dist/server/cli.js) with a tenant section, tenant acme set by
// the client. "append": the client's rows lack tenant_id, pgtenant appends acme to each; directly, the
// same COPY fills tenant_id from its column default (a database holding only acme's rows). "check":
// the rows carry tenant_id, pgtenant checks every one. Direct and through-pgtenant runs alternate;
// the table is truncated before each run (no index: the data path, not index maintenance, is measured).
import { loadavg, cpus } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { startPostgres, ROLES } from '../test/helpers/pg-server.js'
import { startPgtenant } from './e2e/targets.js'
import { treeCpuSeconds } from './e2e/proc.js'

const ROWS = Number(process.env.ROWS ?? 1_000_000)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const CHUNK = 64 * 1024
const here = dirname(fileURLToPath(import.meta.url))

interface Mode {
  name: string
  sql: string
  data: Buffer
}

function textRows(withTenant: boolean, sep: string, csv: boolean): Buffer {
  const parts: string[] = []
  for (let i = 0; i < ROWS; i++) {
    const name = csv ? `"name ${i}, quoted"` : `name ${i}`
    parts.push(`${withTenant ? `acme${sep}` : ''}${i}${sep}${name}${sep}${i % 7 === 0 ? (csv ? '' : '\\N') : `note ${i % 1000}`}\n`)
  }
  return Buffer.from(parts.join(''))
}

function binaryRows(): Buffer {
  const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]
  for (let i = 0; i < ROWS; i++) {
    const name = Buffer.from(`name ${i}`)
    const note = Buffer.from(`note ${i % 1000}`)
    const b = Buffer.alloc(2 + 8 + 4 + name.length + 4 + note.length)
    let p = b.writeInt16BE(3, 0)
    p = b.writeInt32BE(4, p)
    p = b.writeInt32BE(i, p)
    p = b.writeInt32BE(name.length, p)
    p += name.copy(b, p)
    p = b.writeInt32BE(note.length, p)
    note.copy(b, p)
    parts.push(b)
  }
  parts.push(Buffer.from([0xff, 0xff]))
  return Buffer.concat(parts)
}

async function copyOnce(url: string, mode: Mode): Promise<number> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  await c.query("SET app.tenant = 'acme'")
  const chunks = function* (): Generator<Buffer> {
    for (let k = 0; k < mode.data.length; k += CHUNK) yield mode.data.subarray(k, k + CHUNK)
  }
  const start = process.hrtime.bigint()
  await pipeline(Readable.from(chunks()), c.query(copyFrom(mode.sql)))
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  await c.end()
  return seconds
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main(): Promise<void> {
  console.log(
    `COPY FROM STDIN benchmark: ${ROWS.toLocaleString('en')} rows, ${ROUNDS} rounds, ${cpus().length} cores, load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  )
  const server = await startPostgres({ conf: ['log_min_messages = fatal', 'synchronous_commit = off', 'max_wal_size = 4GB', 'checkpoint_timeout = 30min'] })
  try {
    server.sql(`CREATE TABLE items (tenant_id text NOT NULL DEFAULT 'acme', id int NOT NULL, name text, note text)`)
    const proxy = await startPgtenant({
      cli: join(here, '..', 'server', 'cli.js'),
      pgPort: server.port,
      database: 'postgres',
      user: ROLES.scram.user,
      secret: ROLES.scram.password,
      backendPassword: ROLES.scram.password,
      poolSize: 2,
      maxClients: 10,
      tenant: true,
      workers: 1,
    })
    if (!proxy.ok) throw new Error(proxy.reason)
    try {
      const direct = server.url(ROLES.scram.user, ROLES.scram.password, 'postgres')
      const through = `postgres://${encodeURIComponent(ROLES.scram.user)}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${proxy.port}/postgres`
      const modes: Mode[] = [
        { name: 'text, append tenant', sql: 'COPY items (id, name, note) FROM STDIN', data: textRows(false, '\t', false) },
        { name: 'text, check tenant', sql: 'COPY items (tenant_id, id, name, note) FROM STDIN', data: textRows(true, '\t', false) },
        { name: 'CSV, check tenant', sql: 'COPY items (tenant_id, id, name, note) FROM STDIN WITH (FORMAT csv)', data: textRows(true, ',', true) },
        { name: 'binary, append tenant', sql: 'COPY items (id, name, note) FROM STDIN WITH (FORMAT binary)', data: binaryRows() },
      ]
      const lines: string[] = []
      for (const mode of modes.filter((m) => !process.env.MODES || m.name.includes(process.env.MODES))) {
        const times: Record<'direct' | 'pgtenant', number[]> = { direct: [], pgtenant: [] }
        let proxyCpu = 0
        for (let r = 0; r < ROUNDS; r++) {
          for (const target of r % 2 === 0 ? (['direct', 'pgtenant'] as const) : (['pgtenant', 'direct'] as const)) {
            server.sql('TRUNCATE items')
            const cpu0 = target === 'pgtenant' && proxy.pid ? treeCpuSeconds(proxy.pid) : 0
            times[target].push(await copyOnce(target === 'direct' ? direct : through, mode))
            if (target === 'pgtenant' && proxy.pid) proxyCpu += treeCpuSeconds(proxy.pid) - cpu0
            const n = Number(server.sql("SELECT count(*) FROM items WHERE tenant_id = 'acme'"))
            if (n !== ROWS) throw new Error(`${mode.name} via ${target}: ${n} rows of acme, expected ${ROWS}`)
          }
        }
        const d = ROWS / median(times.direct)
        const p = ROWS / median(times.pgtenant)
        const line = `| ${mode.name} | ${(mode.data.length / 1048576).toFixed(0)} MiB | ${Math.round(d).toLocaleString('en')} | ${Math.round(p).toLocaleString('en')} | ${(p / d).toFixed(2)}× | ${((proxyCpu / ROUNDS / ROWS) * 1e6).toFixed(2)} µs |`
        console.log(line, `(direct ${times.direct.map((x) => x.toFixed(2)).join('/')} s, pgtenant ${times.pgtenant.map((x) => x.toFixed(2)).join('/')} s)`)
        lines.push(line)
      }
      console.log('\n| workload | stream | direct rows/s | pgtenant rows/s | ratio | pgtenant CPU per row |\n|---|---:|---:|---:|---:|---:|')
      for (const l of lines) console.log(l)
      console.log(
        `load average at the end: ${loadavg()
          .map((x) => x.toFixed(1))
          .join(' ')}`,
      )
    } finally {
      await proxy.stop()
    }
  } finally {
    server.stop()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
