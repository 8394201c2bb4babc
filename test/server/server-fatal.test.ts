// Issue 14 item 2: a server FATAL (pg_terminate_backend, idle_in_transaction_session_timeout)
// reaches the client as FATAL and its connection closes, as PostgreSQL does: under session
// pooling always, under transaction pooling whenever the client was inside a transaction, had
// session state or waited for a reply. An idle client between transactions under transaction
// pooling notices nothing. Each case is run directly against PostgreSQL and through pgtenant.
import t from 'tap'
import pg from 'pg'
import postgres from 'postgres'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml, run, type RunningProxy } from '../helpers/proxy.js'
import { waitFor } from '../helpers/wait.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const tx = await startProxy(basicYaml(server, { pool: 2 }))
t.teardown(() => tx.stop())
const session = await startProxy(basicYaml(server, { pool: 4, mode: 'session' }))
t.teardown(() => session.stop())

const direct = server.url(ROLES.scram.user, ROLES.scram.password)
const through = (p: RunningProxy): string => p.url('app', 'app_pw', 'postgres')
const targets: [string, string][] = [
  ['direct', direct],
  ['transaction pooling', through(tx)],
  ['session pooling', through(session)],
]

interface Watched {
  client: pg.Client
  errors: (Error & { code?: string; severity?: string })[]
  ended: boolean
}

async function connect(url: string): Promise<Watched> {
  const client = new pg.Client({ connectionString: url })
  const w: Watched = { client, errors: [], ended: false }
  client.on('error', (e) => w.errors.push(e))
  client.on('end', () => (w.ended = true))
  await client.connect()
  return w
}

/** The server pid running this client's statements right now (a transaction keeps it). */
async function serverPid(c: pg.Client): Promise<number> {
  return (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid
}

function terminate(pid: number): void {
  server.sql(`SELECT pg_terminate_backend(${pid})`)
}

for (const [name, url] of targets) {
  t.test(`${name}: psql whose server is terminated mid-statement gets FATAL and exits 2`, async (t) => {
    const r = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', url, '-c', 'SELECT pg_terminate_backend(pg_backend_pid())', '-c', 'SELECT 1'])
    t.equal(r.code, 2, `exit code (stderr: ${r.stderr.trim()})`)
    t.match(r.stderr, /FATAL:\s+terminating connection due to administrator command/)
    t.notMatch(r.stderr, /ERROR:\s+terminating/)
  })

  t.test(`${name}: terminated inside a transaction: FATAL 57P01, connection closed`, async (t) => {
    const w = await connect(url)
    await w.client.query('BEGIN')
    await w.client.query('SELECT 1')
    terminate(await serverPid(w.client))
    await waitFor('the client to hear of it', () => w.errors.length > 0 || w.ended)
    const next = await w.client.query('SELECT 1').then(
      () => null,
      (e: Error) => e,
    )
    t.ok(next, 'the next statement fails: the connection is gone')
    await waitFor('the connection to end', () => w.ended)
    const fatal = w.errors[0]
    t.equal(fatal?.code, '57P01', `SQLSTATE (${fatal?.message})`)
    t.equal(fatal?.severity, 'FATAL')
  })

  t.test(`${name}: idle_in_transaction_session_timeout: FATAL 25P03, connection closed`, async (t) => {
    const w = await connect(url)
    await w.client.query("SET idle_in_transaction_session_timeout = '300ms'")
    await w.client.query('BEGIN')
    await w.client.query('SELECT 1')
    await waitFor('the timeout to end the session', () => w.ended)
    t.equal(w.errors[0]?.code, '25P03', `SQLSTATE (${w.errors[0]?.message})`)
    t.equal(w.errors[0]?.severity, 'FATAL')
  })

  t.test(`${name}: a temporary table's server terminated while the client is idle`, async (t) => {
    const w = await connect(url)
    if (name === 'transaction pooling') {
      // Under transaction pooling a temporary table lives only inside its transaction: the
      // idle client holds nothing, and the next transaction simply runs elsewhere, unseen.
      const pid = await serverPid(w.client)
      terminate(pid)
      await waitFor('the server connection to go', () => server.sql(`SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid}`) === '0')
      t.equal((await w.client.query('SELECT 2 AS v')).rows[0].v, 2, 'the next statement runs')
      t.same(w.errors, [], 'no error, no FATAL text')
      t.notOk(w.ended)
      await w.client.end()
      return
    }
    await w.client.query('CREATE TEMP TABLE scratch (x int)')
    terminate(await serverPid(w.client))
    await waitFor('the client to hear of it', () => w.ended)
    t.equal(w.errors[0]?.code, '57P01', `SQLSTATE (${w.errors[0]?.message})`)
    t.equal(w.errors[0]?.severity, 'FATAL')
  })

  t.test(`${name}: postgres.js, statement terminated: the caller is never told ERROR`, async (t) => {
    const sql = postgres(url, { max: 1, onnotice: () => undefined })
    const [{ pid }] = await sql`SELECT pg_backend_pid() AS pid`
    const sleeping = sql`SELECT pg_sleep(20)`.then(
      () => null,
      (e: Error & { code?: string; severity?: string }) => e,
    )
    await waitFor('the statement to run', () => server.sql(`SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid} AND query LIKE '%pg_sleep(20)%'`) === '1')
    terminate(pid)
    const err = await sleeping
    // postgres.js reports a server that closes right after its FATAL as CONNECTION_CLOSED (directly too)
    t.match(err?.code, /^(57P01|CONNECTION_CLOSED)$/, `SQLSTATE (${err?.message})`)
    t.not(err?.severity, 'ERROR', 'never told ERROR')
    await sql.end({ timeout: 5 }).catch(() => undefined)
  })
}

t.test('transaction pooling: idle clients notice nothing when the pooled server connections are terminated', async (t) => {
  const clients = await Promise.all([connect(through(tx)), connect(through(tx)), connect(through(tx))])
  for (const w of clients) await w.client.query('SELECT 1')
  server.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${ROLES.scram.user}' AND pid <> pg_backend_pid()`)
  await waitFor('the server connections to go', () => server.sql(`SELECT count(*) FROM pg_stat_activity WHERE usename = '${ROLES.scram.user}'`) === '0')
  for (const w of clients) t.equal((await w.client.query('SELECT 3 AS v')).rows[0].v, 3)
  for (const w of clients) t.same(w.errors, [], 'no error, no FATAL text')
  await Promise.all(clients.map((w) => w.client.end()))
})
