// COPY … FROM STDIN into tenant tables through pgtenant (issue 19), with real clients: psql \copy (text
// and CSV), node-postgres with pg-copy-streams, postgres.js `copy … from stdin`.writable(), and raw
// protocol messages (every byte its own CopyData; the extended protocol as libpq sends it).
//
// The oracle: for tenant acme, the table afterwards holds, for acme, exactly what the same COPY gives
// directly on a database holding only acme's rows (whose tenant column defaults to acme), and every
// other tenant's rows are untouched. A row of another tenant aborts the COPY with 42501 and nothing is
// written; the session stays usable.
import t, { type Test } from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import pg from 'pg'
import postgres from 'postgres'
import { from as copyFrom } from 'pg-copy-streams'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, run, psqlArgs } from '../helpers/proxy.js'
import { rawConnection, P, B, E, S, Q } from '../helpers/raw-client.js'
import { binaryCopy, int4, int8 } from '../helpers/copy-binary.js'

const server = await startPostgres()
t.teardown(() => server.stop())

const schema = (items: string, counters: string): string => `
  CREATE TABLE items (tenant_id text NOT NULL ${items}, id int NOT NULL, name text, note text,
    name_len int GENERATED ALWAYS AS (length(name)) STORED, PRIMARY KEY (tenant_id, id));
  CREATE TABLE counters (org int NOT NULL ${counters}, k int NOT NULL, v bigint, PRIMARY KEY (org, k));`
const SEED_ACME = `INSERT INTO items (tenant_id, id, name) VALUES ('acme', 1, 'a1'); INSERT INTO counters VALUES (42, 1, 10);`
const SEED_OTHERS = `INSERT INTO items (tenant_id, id, name) VALUES ('globex', 1, 'g1'), ('globex', 100, 'g100'); INSERT INTO counters VALUES (7, 1, 70);`
server.sql('CREATE DATABASE shared')
server.sql('CREATE DATABASE solo')
server.script(schema('', ''), 'shared')
server.script(schema("DEFAULT 'acme'", 'DEFAULT 42'), 'solo')

function reset(): void {
  server.script(`TRUNCATE items, counters; ${SEED_ACME} ${SEED_OTHERS}`, 'shared')
  server.script(`TRUNCATE items, counters; ${SEED_ACME}`, 'solo')
}

const proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
users:
  app: { password: app_pw }
  ops: { password: ops_pw, bypass: true }
tenant:
  column: tenant_id
  tables: { counters: org }
backends:
  main: { url: "postgres://${ROLES.scram.user}:${encodeURIComponent(ROLES.scram.password)}@127.0.0.1:${server.port}/shared", pool: 1 }
pool: { mode: transaction, wait_timeout_ms: 20000 }
`)
t.teardown(() => proxy.stop())

const viaProxy = proxy.url('app', 'app_pw', 'shared')
const direct = server.url(ROLES.scram.user, ROLES.scram.password, 'solo')
const dir = mkdtempSync(join(tmpdir(), 'pgtenant-copy-'))

const ITEMS = 'SELECT tenant_id, id, name, note, name_len FROM items'
const COUNTERS = 'SELECT org, k, v FROM counters'
const rowsOf = (db: string, q: string, where = ''): string => server.sql(`${q} ${where} ORDER BY 1, 2`, db)

/** Run `copy` through pgtenant (tenant acme, or 42 for counters) and directly on the one-tenant database, and compare. */
async function oracle(t: Test, copy: (url: string) => Promise<unknown>, tenant = 'acme'): Promise<void> {
  reset()
  const others = [rowsOf('shared', ITEMS, "WHERE tenant_id <> 'acme'"), rowsOf('shared', COUNTERS, 'WHERE org <> 42')]
  await copy(direct)
  await copy(viaProxy)
  t.equal(rowsOf('shared', ITEMS, `WHERE tenant_id = 'acme'`), rowsOf('solo', ITEMS), `items of acme as on the one-tenant database (tenant ${tenant})`)
  t.equal(rowsOf('shared', COUNTERS, 'WHERE org = 42'), rowsOf('solo', COUNTERS), 'counters of 42 as on the one-tenant database')
  t.same([rowsOf('shared', ITEMS, "WHERE tenant_id <> 'acme'"), rowsOf('shared', COUNTERS, 'WHERE org <> 42')], others, "other tenants' rows untouched")
}

function file(name: string, text: string | Buffer): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

async function psql(url: string, tenant: string, command: string): Promise<{ code: number | null; stderr: string }> {
  const r = await run('psql', [...psqlArgs(url), '-c', `SET app.tenant = '${tenant}'`, '-c', command])
  return { code: r.code, stderr: r.stderr }
}

const copyData = (bytes: Buffer | string): Buffer => {
  const body = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8')
  const out = Buffer.alloc(5 + body.length)
  out[0] = 0x64
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}
const COPY_DONE = Buffer.from([0x63, 0, 0, 0, 4])
const bytewise = (data: Buffer | string): Buffer[] => [...(Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8'))].map((b) => copyData(Buffer.from([b])))

t.test('psql \\copy, text: the tenant column left out is filled in', async (t) => {
  const f = file('a.txt', '2\tb2\n3\tb\\tx\n4\t\\N\n')
  await oracle(t, async (url) => t.equal((await psql(url, 'acme', `\\copy items (id, name) from '${f}'`)).code, 0))
})

t.test('psql \\copy, CSV with a header and the tenant column listed: checked', async (t) => {
  const f = file('b.csv', 'tenant_id,id,name,note\nacme,4,"q,\n""x""",\nacme,5,x,"n"\n')
  await oracle(t, async (url) => t.equal((await psql(url, 'acme', `\\copy items (tenant_id, id, name, note) from '${f}' with (format csv, header)`)).code, 0))
})

t.test('psql \\copy without a column list: every column but the generated one', async (t) => {
  const f = file('c.txt', 'acme\t6\tn6\tnote6\nacme\t7\t\\N\t\\N\n')
  await oracle(t, async (url) => t.equal((await psql(url, 'acme', `\\copy items from '${f}'`)).code, 0))
})

t.test('psql \\copy with a row of another tenant: 42501, nothing written, as no row of acme could be', async (t) => {
  reset()
  const before = rowsOf('shared', ITEMS)
  const f = file('d.csv', 'acme,8,ok\nglobex,9,stolen\nacme,10,ok\n')
  const r = await psql(viaProxy, 'acme', `\\copy items (tenant_id, id, name) from '${f}' with (format csv)`)
  t.not(r.code, 0)
  t.match(r.stderr, /tenant violation: COPY into "public.items", row 2: column "tenant_id" is not the session tenant's value 'acme'/)
  t.equal(rowsOf('shared', ITEMS), before, 'nothing written')
})

t.test('node-postgres with pg-copy-streams: 5,000 rows in odd-sized chunks, append and check', async (t) => {
  const text = Array.from({ length: 5000 }, (_, i) => `${i + 11}\tname ${i}\tnote, "quoted"\n`).join('')
  const chunks = (s: string): Buffer[] => {
    const b = Buffer.from(s)
    const out: Buffer[] = []
    for (let k = 0, n = 1; k < b.length; k += n, n = (n * 7 + 3) % 5000) out.push(b.subarray(k, k + n))
    return out
  }
  const copy = (sql: string, data: string) => async (url: string) => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    await c.query("SET app.tenant = 'acme'")
    await pipeline(Readable.from(chunks(data)), c.query(copyFrom(sql)))
    t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the session goes on')
    await c.end()
  }
  await oracle(t, copy('COPY items (id, name, note) FROM STDIN', text))
  const csv = Array.from({ length: 5000 }, (_, i) => `${i + 11},acme,"name ${i}, ""quoted"""\n`).join('')
  await oracle(t, copy('COPY items (id, tenant_id, name) FROM STDIN WITH (FORMAT csv)', csv))
})

t.test('pg-copy-streams: a row of another tenant fails the stream with 42501', async (t) => {
  reset()
  const before = rowsOf('shared', ITEMS)
  const c = new pg.Client({ connectionString: viaProxy })
  await c.connect()
  await c.query("SET app.tenant = 'acme'")
  const rows = Array.from({ length: 2000 }, (_, i) => `acme\t${i + 20}\n`)
  rows[1500] = 'globex\t999\n'
  const err = await pipeline(Readable.from(rows), c.query(copyFrom('COPY items (tenant_id, id) FROM STDIN'))).then(
    () => null,
    (e: { code?: string; message: string }) => e,
  )
  t.equal(err?.code, '42501')
  t.match(err?.message, /row 1501/)
  t.equal(rowsOf('shared', ITEMS), before, 'nothing written')
  t.equal((await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 1, 'the session goes on, restricted to acme')
  await c.end()
})

t.test('postgres.js copy … from stdin writable: CSV appended, then checked', async (t) => {
  const copy = (query: string, lines: string[]) => async (url: string) => {
    const sql = postgres(url, { max: 1, onnotice: () => undefined })
    await sql`SET app.tenant = 'acme'`
    const writable = await sql.unsafe(query).writable()
    await pipeline(Readable.from(lines), writable)
    t.same(await sql`SELECT 1 AS one`, [{ one: 1 }])
    await sql.end()
  }
  await oracle(t, copy('copy items (id, name) from stdin with (format csv)', ['30,"a\nb"\n', '31,', 'c\n32,\n']))
  await oracle(t, copy("copy items (name, tenant_id, id) from stdin with (format csv, quote '|')", ['|x,y|,acme,33\n', 'z,|acme|,34\n']))
})

t.test('raw protocol: every byte its own CopyData (text, CSV, binary)', async (t) => {
  const cases: [string, Buffer | string][] = [
    ['COPY items (id, name) FROM STDIN', '40\tx\\ty\r\n41\t\\N\r\n'],
    ['COPY items (tenant_id, id, note) FROM STDIN', 'acme\t42\t\\\\\nacme\t43\t\\101\n\\.\n'],
    ["COPY items (id, note) FROM STDIN WITH (FORMAT csv, NULL 'NULL', ESCAPE '\\')", '44,"a\\"\r"\n45,NULL\n46,"NULL"\n'],
    [
      'COPY items (id, name) FROM STDIN WITH (FORMAT binary)',
      binaryCopy([
        [int4(47), Buffer.from('bin')],
        [int4(48), null],
      ]),
    ],
    ['COPY items (id, tenant_id, name) FROM STDIN WITH (FORMAT binary)', binaryCopy([[int4(49), Buffer.from('acme'), Buffer.from('b')]])],
  ]
  for (const [sql, data] of cases)
    await oracle(t, async (url) => {
      const c = await rawConnection(url)
      await c.exchange([Q("SET app.tenant = 'acme'")], 1)
      const out = await c.exchange([Q(sql), ...bytewise(data), COPY_DONE], 1)
      t.match(out.slice(-2), [/^C:COPY [1-9]$/, 'Z:I'], `${sql}: ${out.join(' ')}`)
      await c.close()
    })
})

t.test('binary with an integer tenant column (tenant 42)', async (t) => {
  const run42 = (sql: string, data: Buffer) => async (url: string) => {
    const c = await rawConnection(url)
    await c.exchange([Q("SET app.tenant = '42'")], 1)
    const out = await c.exchange([Q(sql), copyData(data.subarray(0, 7)), copyData(data.subarray(7)), COPY_DONE], 1)
    t.notOk(
      out.some((m) => m.startsWith('E:')),
      out.join(' '),
    )
    await c.close()
  }
  await oracle(
    t,
    run42(
      'COPY counters (k, v) FROM STDIN (FORMAT binary)',
      binaryCopy([
        [int4(2), int8(20)],
        [int4(3), null],
      ]),
    ),
    '42',
  )
  await oracle(t, run42('COPY counters FROM STDIN (FORMAT binary)', binaryCopy([[int4(42), int4(4), int8(40)]])), '42')
  reset()
  const c = await rawConnection(viaProxy)
  await c.exchange([Q("SET app.tenant = '42'")], 1)
  const out = await c.exchange([Q('COPY counters FROM STDIN (FORMAT binary)'), copyData(binaryCopy([[int4(7), int4(5), int8(1)]])), COPY_DONE], 1)
  t.same(out.slice(-2), ['E:42501', 'Z:I'])
  t.equal(rowsOf('shared', COUNTERS, 'WHERE org = 7'), '7|1|70', "the other tenant's counters untouched")
  await c.close()
})

t.test('raw protocol: an aborted COPY, then the session goes on (also in a transaction block)', async (t) => {
  reset()
  const before = rowsOf('shared', ITEMS)
  const c = await rawConnection(viaProxy)
  await c.exchange([Q("SET app.tenant = 'acme'")], 1)
  // the client keeps sending after the violation: dropped; its CopyDone ends it
  let out = await c.exchange(
    [Q('COPY items (tenant_id, id) FROM STDIN'), copyData('acme\t50\n'), copyData('glo'), copyData('bex\t51\nacme\t52\n'), copyData('acme\t53\n'), COPY_DONE],
    1,
  )
  t.same(out, ['G', 'E:42501', 'Z:I'])
  out = await c.exchange([Q('SELECT count(*) FROM items')], 1)
  t.same(out, ['T', 'D:1', 'C:SELECT 1', 'Z:I'])
  out = await c.exchange(
    [
      Q('BEGIN'),
      Q('COPY items (id) FROM STDIN WITH (FORMAT csv)'),
      copyData('54\n'),
      COPY_DONE,
      Q('COPY items (tenant_id, id) FROM STDIN'),
      copyData('other\t55\n'),
      COPY_DONE,
    ],
    3,
  )
  t.same(out, ['C:BEGIN', 'Z:T', 'G', 'C:COPY 1', 'Z:T', 'G', 'E:42501', 'Z:E'])
  out = await c.exchange([Q('ROLLBACK'), Q('COPY items (id) FROM STDIN'), copyData('56\n'), COPY_DONE], 2)
  t.same(out, ['C:ROLLBACK', 'Z:I', 'G', 'C:COPY 1', 'Z:I'])
  t.equal(rowsOf('shared', ITEMS, 'WHERE id <> 56'), before, 'nothing of the aborted COPYs written')
  await c.close()
})

t.test('extended protocol as libpq sends it (Sync before the data, Sync after CopyDone): same replies as PostgreSQL', async (t) => {
  const D = (): Buffer => Buffer.from([0x44, 0, 0, 0, 6, 0x50, 0]) // Describe portal ''
  const replies: Record<string, string[]> = {}
  await oracle(t, async (url) => {
    const c = await rawConnection(url)
    await c.exchange([Q("SET app.tenant = 'acme'")], 1)
    const first = await c.exchange([P('COPY items (id, name) FROM STDIN'), B(), D(), E(), S], 0, 'G')
    const rest = await c.exchange([copyData('60\tp\n61\t'), copyData('q\n'), COPY_DONE, S], 1)
    replies[url] = [...first, ...rest]
    const again = await c.exchange([P('COPY items (tenant_id, id) FROM STDIN'), B(), E(), S, copyData('acme\t62\n'), COPY_DONE, S], 1)
    replies[url].push(...again)
    await c.close()
  })
  t.same(replies[viaProxy], replies[direct], replies[direct]?.join(' '))
  t.same(replies[direct], ['1', '2', 'n', 'G', 'C:COPY 2', 'Z:I', '1', '2', 'G', 'C:COPY 1', 'Z:I'])
  // the proxy's one server connection was released: another client gets it at once
  const other = new pg.Client({ connectionString: viaProxy })
  await other.connect()
  await other.query("SET app.tenant = 'globex'")
  t.equal((await other.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 2)
  await other.end()
  // an aborted extended COPY: the error, then the Sync's ReadyForQuery
  const c = await rawConnection(viaProxy)
  await c.exchange([Q("SET app.tenant = 'acme'")], 1)
  const out = await c.exchange([P('COPY items (tenant_id, id) FROM STDIN'), B(), E(), S, copyData('globex\t63\n'), COPY_DONE, S], 1)
  t.same(out, ['1', '2', 'G', 'E:42501', 'Z:I'])
  await c.close()
})

t.test('transaction pooling: the server connection stays with the COPY until it ends', async (t) => {
  reset()
  const a = await rawConnection(viaProxy)
  await a.exchange([Q("SET app.tenant = 'acme'")], 1)
  await a.exchange([Q('COPY items (id) FROM STDIN'), copyData('70\n')], 0, 'G')
  const b = new pg.Client({ connectionString: viaProxy })
  await b.connect()
  await b.query("SET app.tenant = 'acme'")
  let done = false
  const waiting = b.query('SELECT count(*)::int AS n FROM items').then((r) => {
    done = true
    return r.rows[0].n as number
  })
  await new Promise((r) => setTimeout(r, 300))
  t.notOk(done, 'the other client waits for the pool of one')
  const out = await a.exchange([copyData('71\n'), COPY_DONE], 1)
  t.same(out, ['C:COPY 2', 'Z:I'])
  t.equal(await waiting, 3, 'then it runs, and sees the COPY')
  await b.end()
  await a.close()
})

t.test('refused before anything is sent', async (t) => {
  const c = await rawConnection(viaProxy)
  let out = await c.exchange([Q('COPY items (id) FROM STDIN')], 1)
  t.same(out, ['E:42501', 'Z:I'], 'no tenant set')
  await c.exchange([Q("SET app.tenant = 'acme'")], 1)
  out = await c.exchange([Q('SELECT 1; COPY items (id) FROM STDIN')], 1)
  t.same(out, ['E:0A000', 'Z:I'], 'not alone in its Query')
  out = await c.exchange([Q('COPY counters (k) FROM STDIN (FORMAT binary)')], 1)
  t.same(out, ['E:0A000', 'Z:I'], 'binary with a tenant that is not of the column type')
  out = await c.exchange([Q("COPY items (id) FROM STDIN (ENCODING 'LATIN1')")], 1)
  t.same(out, ['E:0A000', 'Z:I'])
  out = await c.exchange([Q('SELECT 1')], 1)
  t.same(out, ['T', 'D:1', 'C:SELECT 1', 'Z:I'], 'the session goes on')
  await c.close()
})

t.test('data the server refuses stays refused: an extra field in append mode is not a way in', async (t) => {
  reset()
  const before = rowsOf('shared', ITEMS)
  const c = await rawConnection(viaProxy)
  await c.exchange([Q("SET app.tenant = 'acme'")], 1)
  let out = await c.exchange([Q('COPY items (id, name) FROM STDIN'), copyData('80\tx\tglobex\n'), COPY_DONE], 1)
  t.same(out, ['G', 'E:22P04', 'Z:I'], 'extra data after last expected column')
  out = await c.exchange([Q('COPY items (id, name) FROM STDIN WITH (FORMAT csv)'), copyData('81,"x\n'), COPY_DONE], 1)
  t.same(out, ['G', 'E:22P04', 'Z:I'], 'an unterminated quote swallows the appended value')
  t.equal(rowsOf('shared', ITEMS), before)
  await c.close()
})

t.test('a client that goes away inside a COPY: nothing written, the pool of one serves the next client at once', async (t) => {
  reset()
  const before = rowsOf('shared', ITEMS)
  const a = await rawConnection(viaProxy)
  await a.exchange([Q("SET app.tenant = 'acme'")], 1)
  await a.exchange([Q('COPY items (id) FROM STDIN'), copyData('90\n')], 0, 'G')
  await a.close()
  const start = Date.now()
  const b = new pg.Client({ connectionString: viaProxy })
  await b.connect()
  await b.query("SET app.tenant = 'acme'")
  t.equal((await b.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 1)
  t.ok(Date.now() - start < 10_000, `served after ${Date.now() - start} ms`)
  await b.end()
  t.equal(rowsOf('shared', ITEMS), before, 'nothing written')
})

t.test("a bypass user's COPY (passed as it is) through the extended protocol: its Syncs settle, the connection is released", async (t) => {
  reset()
  const c = await rawConnection(proxy.url('ops', 'ops_pw', 'shared'))
  const out = await c.exchange([P('COPY items (tenant_id, id) FROM STDIN'), B(), E(), S, copyData('globex\t91\n'), COPY_DONE, S], 1)
  t.same(out, ['1', '2', 'G', 'C:COPY 1', 'Z:I'])
  const other = new pg.Client({ connectionString: viaProxy })
  await other.connect()
  await other.query("SET app.tenant = 'globex'")
  const start = Date.now()
  t.equal((await other.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 3)
  t.ok(Date.now() - start < 5_000, 'the pool of one was free while the bypass client stays connected')
  await other.end()
  await c.close()
})
