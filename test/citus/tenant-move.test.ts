// MOVE TENANT on a Citus backend (issue 19 section 3), on a real cluster: `MOVE TENANT '7' TO
// WORKER 'host:port'` pauses tenant 7, isolates it to a shard of its own in its colocation group
// (isolate_tenant_to_new_shard … 'CASCADE': two colocated tables), moves that shard to the other
// worker (citus_move_shard_placement), refreshes pgtenant's Citus metadata and resumes — while
// clients of tenant 7 and of tenant 8 write through pgtenant (worker routing on, the periodic
// metadata refresh far away, so only the move's refresh can change the route). Required: every
// acknowledged write is there, no client error, the shard is isolated and on the named worker,
// and pgtenant routes tenant 7 to that worker afterwards (EXPLAIN REWRITE's route, and its
// server connections). Also: a worker that does not exist fails before the pause; a failure
// after the pause (a colocated table without a primary key, which Citus will not split online)
// leaves the tenant resumed with the reason in SHOW MOVES. PGTENANT_CITUS_URL names
// the coordinator database; without it the file reports a visible skip.
import t from 'tap'
import pg from 'pg'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../helpers/pg-server.js'
import { startProxy, type RunningProxy } from '../helpers/proxy.js'
import { connectCitus } from './oracle-on-citus.js'

const URL_VARIABLE = 'PGTENANT_CITUS_URL'
const citusUrl = process.env[URL_VARIABLE]
const TENANT = 7
const OTHER = 8

if (!citusUrl) {
  t.comment(
    `SKIPPED: no real Citus cluster (${URL_VARIABLE} is not set). Start one with test/citus/cluster.sh start and set ${URL_VARIABLE} to the URL it prints.`,
  )
  t.skip(`MOVE TENANT on a real Citus cluster: ${URL_VARIABLE} not set`, () => undefined)
} else {
  citusMove(citusUrl)
}

function citusMove(url: string): void {
  let proxy: RunningProxy
  let admin: pg.Client
  let metricsPort = 0

  async function placement(tenant: number): Promise<{ shard: string; isolated: boolean; port: number }> {
    const r = await admin.query(
      `SELECT s.shardid::text AS shard, s.shardminvalue = s.shardmaxvalue AS isolated, n.nodeport AS port
         FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
        WHERE s.shardid = get_shard_id_for_distribution_column('tm_orders', $1::int) AND n.noderole = 'primary'`,
      [tenant],
    )
    return { shard: r.rows[0].shard, isolated: r.rows[0].isolated, port: Number(r.rows[0].port) }
  }

  async function console_(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: proxy.url('admin', 'admin_pw', 'pgtenant') })
    await c.connect()
    return c
  }

  t.before(async () => {
    admin = await connectCitus(url)
    await admin.query(`DROP TABLE IF EXISTS tm_items, tm_orders`)
    await admin.query(`CREATE TABLE tm_orders (tenant_id int NOT NULL, id bigint NOT NULL, writer int NOT NULL, payload text, PRIMARY KEY (tenant_id, id))`)
    await admin.query(`CREATE TABLE tm_items (tenant_id int NOT NULL, id bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id))`)
    await admin.query(`SELECT create_distributed_table('tm_orders', 'tenant_id', shard_count => 8)`)
    await admin.query(`SELECT create_distributed_table('tm_items', 'tenant_id', colocate_with => 'tm_orders')`)
    await admin.query(`INSERT INTO tm_orders SELECT t, g, 0, 'seed' FROM generate_series(1, 2000) g, (VALUES (${TENANT}), (${OTHER}), (9), (10)) v(t)`)
    await admin.query(`INSERT INTO tm_items SELECT t, g, 'seed' FROM generate_series(1, 500) g, (VALUES (${TENANT}), (${OTHER})) v(t)`)
    metricsPort = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'pgtenant-citus-move-'))
    proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
metrics: 127.0.0.1:${metricsPort}
users:
  app: { password: app_pw }
  admin: { password: admin_pw, admin: true }
tenant: { setting: app.tenant, column: tenant_id, unknown: reject }
backends:
  citus: { url: ${JSON.stringify(url)}, citus: true, pool: 8 }
citus: { refresh_interval_ms: 600000 }
placement: { default: citus, state_file: ${JSON.stringify(join(dir, 'placement.json'))}, move_wait_ms: 60000 }
pool: { mode: transaction, wait_timeout_ms: 60000 }
`)
  })
  t.teardown(async () => {
    await proxy?.stop()
    await admin?.query(`DROP TABLE IF EXISTS tm_items, tm_orders`).catch(() => undefined)
    await admin?.end()
  })

  t.test('refusals: an unknown worker (before any pause), TO <db> on Citus', async (t) => {
    const a = await console_()
    const err = await a.query(`MOVE TENANT '${TENANT}' TO WORKER '127.0.0.1:1'`).catch((e: pg.DatabaseError) => e)
    t.equal((err as pg.DatabaseError).code, '42704', `unknown worker: 42704 (${(err as Error).message})`)
    const row = (await a.query('SHOW MOVES')).rows.at(-1)
    t.match(row, { tenant: String(TENANT), state: 'failed', error: /no worker 127\.0\.0\.1:1/ }, 'SHOW MOVES: failed, and why')
    t.equal(row.pause_ms, null, 'the tenant was never paused')
    t.notOk(proxy.proxy.paused.has(String(TENANT)), 'not paused')
    const db = await a.query(`MOVE TENANT '${TENANT}' TO citus`).catch((e: pg.DatabaseError) => e)
    t.equal((db as pg.DatabaseError).code, '55000', 'TO the backend it is on: 55000')
    await a.end()
  })

  t.test('a failure after the pause (Citus refuses to isolate) leaves the tenant resumed, the reason in SHOW MOVES', async (t) => {
    // A colocated table without a primary key: Citus cannot split its shard online (shard_transfer_mode auto).
    await admin.query(`CREATE TABLE tm_nopk (tenant_id int NOT NULL, note text)`)
    await admin.query(`SELECT create_distributed_table('tm_nopk', 'tenant_id', colocate_with => 'tm_orders')`)
    await admin.query(`INSERT INTO tm_nopk VALUES (9, 'x')`)
    const a = await console_()
    const err = await a.query(`MOVE TENANT '9' ISOLATE`).catch((e: pg.DatabaseError) => e)
    await admin.query(`DROP TABLE tm_nopk`)
    t.ok(err instanceof Error, `the move failed: ${(err as pg.DatabaseError).code} ${(err as Error).message}`)
    const row = (await a.query('SHOW MOVES')).rows.at(-1)
    t.match(row, { tenant: '9', to: 'citus (isolated)', state: 'failed' }, 'SHOW MOVES: failed')
    t.ok(row.error && row.pause_ms !== null, `with the reason, after a pause of ${row.pause_ms} ms (${row.error})`)
    t.notOk(proxy.proxy.paused.has('9'), 'tenant 9 is resumed')
    const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw'), options: '-c app.tenant=9' })
    await c.connect()
    t.equal((await c.query('SELECT count(*)::int AS n FROM tm_orders')).rows[0].n, 2000, 'tenant 9 is served')
    await c.end()
    await a.end()
  })

  t.test(`MOVE TENANT '${TENANT}' TO WORKER (isolate + move) while tenants ${TENANT} and ${OTHER} write`, async (t) => {
    const before = await placement(TENANT)
    const workers = (await admin.query(`SELECT nodename, nodeport FROM pg_dist_node WHERE groupid > 0 AND noderole = 'primary' ORDER BY nodeport`)).rows
    const target = workers.find((w) => Number(w.nodeport) !== before.port)
    t.ok(target, `a worker other than the shard's (:${before.port})`)
    const a = await console_()
    const route = async (): Promise<string> =>
      (await a.query(`EXPLAIN REWRITE FOR TENANT '${TENANT}' SELECT * FROM tm_orders WHERE id = 1`)).rows.find((r) => r.item === 'route')?.value ?? ''
    const routeBefore = await route()
    t.match(routeBefore, new RegExp(`^citus-worker citus .*:${before.port}/`), `before: routed to the worker holding the shard (${routeBefore})`)

    const stop = { now: false }
    const acked = new Map<number, number[]>([
      [TENANT, []],
      [OTHER, []],
    ])
    const errors: string[] = []
    const writer = async (tenant: number, w: number): Promise<void> => {
      const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw'), options: `-c app.tenant=${tenant}` })
      await c.connect()
      for (let i = 0; !stop.now; i++) {
        const id = 100000 + w * 100000 + i
        try {
          if (i % 3 === 0) {
            await c.query('BEGIN')
            await c.query('INSERT INTO tm_orders (id, writer, payload) VALUES ($1, $2, $3)', [id, w, `w${w}`])
            await c.query(`INSERT INTO tm_items (id, note) VALUES ($1, 'x')`, [id])
            await c.query('COMMIT')
          } else await c.query('INSERT INTO tm_orders (id, writer, payload) VALUES ($1, $2, $3)', [id, w, `w${w}`])
          acked.get(tenant)?.push(id)
        } catch (e) {
          errors.push(`tenant ${tenant} writer ${w}: ${(e as pg.DatabaseError).code} ${(e as Error).message}`)
          await c.query('ROLLBACK').catch(() => undefined)
        }
      }
      await c.end()
    }
    const running = [writer(TENANT, 0), writer(TENANT, 1), writer(TENANT, 2), writer(OTHER, 3), writer(OTHER, 4)]
    await new Promise((r) => setTimeout(r, 1500))
    const started = Date.now()
    const res = await a.query(`MOVE TENANT '${TENANT}' TO WORKER '${target.nodename}:${target.nodeport}'`).catch((e: Error) => e)
    const took = Date.now() - started
    const ackedAtMove = acked.get(TENANT)?.length ?? 0
    await new Promise((r) => setTimeout(r, 1500))
    stop.now = true
    await Promise.all(running)

    const row = (await a.query('SHOW MOVES')).rows.at(-1)
    t.notOk(res instanceof Error, `the move succeeded in ${took} ms (${res instanceof Error ? res.message : `${res.command} ${res.rowCount}`})`)
    t.match(
      row,
      { tenant: String(TENANT), from: 'citus', to: `citus worker ${target.nodename}:${target.nodeport}`, state: 'done', error: null },
      'SHOW MOVES: done',
    )
    t.comment(`pause ${row.pause_ms} ms; ${row.rows_copied} rows of tenant ${TENANT}; acked ${acked.get(TENANT)?.length} / ${acked.get(OTHER)?.length} writes`)
    const after = await placement(TENANT)
    t.not(after.shard, before.shard, `tenant ${TENANT} has a new shard (${before.shard} -> ${after.shard})`)
    t.ok(after.isolated, 'the shard holds only its hash value (isolated)')
    t.equal(after.port, Number(target.nodeport), `the shard is on the named worker (:${target.nodeport})`)
    const items = await admin.query(
      `SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) WHERE p.shardid = get_shard_id_for_distribution_column('tm_items', $1::int) AND n.noderole = 'primary'`,
      [TENANT],
    )
    t.equal(Number(items.rows[0].nodeport), Number(target.nodeport), 'the colocated table’s shard moved with it (CASCADE)')
    t.same(errors, [], 'no client error')
    t.ok((acked.get(TENANT)?.length ?? 0) > ackedAtMove, `tenant ${TENANT} wrote after the move (${ackedAtMove} -> ${acked.get(TENANT)?.length})`)
    for (const tenant of [TENANT, OTHER]) {
      const ids = acked.get(tenant) ?? []
      const have = await admin.query(`SELECT id FROM tm_orders WHERE tenant_id = $1 AND id = ANY ($2::bigint[])`, [tenant, ids])
      const set = new Set(have.rows.map((r) => Number(r.id)))
      t.same(
        ids.filter((id) => !set.has(id)),
        [],
        `every acknowledged write of tenant ${tenant} is there (${ids.length})`,
      )
    }
    const routeAfter = await route()
    t.match(routeAfter, new RegExp(`^citus-worker citus .*:${target.nodeport}/`), `after: routed straight to the named worker (${routeAfter})`)
    // The tenant's transactions after the move ran on server connections to that worker.
    const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw'), options: `-c app.tenant=${TENANT}` })
    await c.connect()
    t.equal((await c.query('SELECT count(*)::int AS n FROM tm_orders')).rows[0].n, 2000 + (acked.get(TENANT)?.length ?? 0), 'the tenant reads all its rows')
    await c.end()
    const servers = (await a.query('SHOW SERVERS')).rows
    t.ok(
      servers.some((s) => String(s.address).endsWith(`:${target.nodeport}`)),
      `pgtenant holds server connections to the named worker (${servers.map((s) => s.address).join(', ')})`,
    )
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    t.match(metrics, /pgtenant_routing_decisions_total\{kind="citus-worker",backend="citus"\} [1-9]/, 'routing decisions to workers counted')
    await a.end()
  })

  t.test(`MOVE TENANT '${OTHER}' ISOLATE: a shard of its own, on the worker it was on; again: nothing to do`, async (t) => {
    const before = await placement(OTHER)
    const a = await console_()
    const res = await a.query(`MOVE TENANT '${OTHER}' ISOLATE`)
    const after = await placement(OTHER)
    t.equal(res.command, 'MOVE', `MOVE ${res.rowCount}`)
    t.ok(after.isolated && after.shard !== before.shard, `isolated (${before.shard} -> ${after.shard})`)
    t.equal(after.port, before.port, 'on the same worker')
    t.match((await a.query('SHOW MOVES')).rows.at(-1), { tenant: String(OTHER), to: 'citus (isolated)', state: 'done' }, 'SHOW MOVES: done')
    await a.query(`MOVE TENANT '${OTHER}' ISOLATE`)
    t.equal((await placement(OTHER)).shard, after.shard, 'a second ISOLATE keeps the shard (already isolated)')
    await a.end()
  })
}
