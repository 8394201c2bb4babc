// Shard moves under a write workload through pgtenant, on a real Citus cluster (issue 20): while
// clients of one tenant write through pgtenant (worker routing on), the tenant's shard is moved to
// the other worker with citus_move_shard_placement, then the tenant is isolated to a shard of its
// own with isolate_tenant_to_new_shard. Required: every acknowledged write is there afterwards, no
// read returns fewer rows than were acknowledged before it started, no row of another tenant comes
// back; errors during the moves are counted and printed (they are allowed: a client whose write
// failed was told so). PGTENANT_CITUS_URL names the coordinator database; without it the file
// reports a visible skip.
import t from 'tap'
import pg from 'pg'
import { freePort } from '../helpers/pg-server.js'
import { startProxy, type RunningProxy } from '../helpers/proxy.js'
import { connectCitus } from './oracle-on-citus.js'

const URL_VARIABLE = 'PGTENANT_CITUS_URL'
const citusUrl = process.env[URL_VARIABLE]

if (!citusUrl) {
  t.comment(
    `SKIPPED: no real Citus cluster (${URL_VARIABLE} is not set). Start one with test/citus/cluster.sh start and set ${URL_VARIABLE} to the URL it prints.`,
  )
  t.skip(`shard moves on a real Citus cluster: ${URL_VARIABLE} not set`, () => undefined)
} else {
  shardMoves(citusUrl)
}

const TENANT = 7
const OTHER = 8
const WRITERS = 4

interface Placement {
  shardId: string
  host: string
  port: number
}

function shardMoves(url: string): void {
  let proxy: RunningProxy
  let admin: pg.Client

  async function placement(tenant: number): Promise<Placement> {
    const r = await admin.query(
      `SELECT p.shardid::text AS shard, n.nodename AS host, n.nodeport AS port FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
        WHERE p.shardid = get_shard_id_for_distribution_column('move_events', $1::int) AND n.noderole = 'primary'`,
      [tenant],
    )
    return { shardId: r.rows[0].shard, host: r.rows[0].host, port: Number(r.rows[0].port) }
  }

  async function client(tenant: number): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: proxy.url('app', 'app_pw'), options: `-c app.tenant=${tenant}` })
    c.on('error', () => undefined)
    await c.connect()
    return c
  }

  t.before(async () => {
    admin = await connectCitus(url)
    await admin.query(`DROP TABLE IF EXISTS move_events`)
    await admin.query(`CREATE TABLE move_events (tenant_id int NOT NULL, id bigint NOT NULL, writer int NOT NULL, payload text, PRIMARY KEY (tenant_id, id))`)
    await admin.query(`SELECT create_distributed_table('move_events', 'tenant_id')`)
    await admin.query(`INSERT INTO move_events SELECT ${OTHER}, g, 0, 'other tenant' FROM generate_series(1, 100) g`)
    proxy = await startProxy(`
listen: 127.0.0.1:$PROXY_PORT
metrics: 127.0.0.1:${await freePort()}
users:
  app: { password: app_pw }
tenant: { setting: app.tenant, column: tenant_id, unknown: reject }
backends:
  citus: { url: ${JSON.stringify(url)}, citus: true, pool: 8 }
citus: { refresh_interval_ms: 1000 }
pool: { mode: transaction, wait_timeout_ms: 20000 }
`)
  })
  t.teardown(async () => {
    await proxy?.stop()
    await admin?.query(`DROP TABLE IF EXISTS move_events`).catch(() => undefined)
    await admin?.end()
  })

  /** Writers and a reader of TENANT (and a reader of OTHER) through pgtenant while `move` runs; what they saw. */
  async function underLoad(
    move: () => Promise<string>,
  ): Promise<{ acked: number[]; errors: Map<string, number>; wrong: string[]; moveResult: string; reads: number }> {
    const acked: number[] = []
    const errors = new Map<string, number>()
    const wrong: string[] = []
    let stop = false
    let reads = 0
    const start = (await admin.query(`SELECT coalesce(max(id), 0)::int AS m, count(*)::int AS n FROM move_events WHERE tenant_id = $1`, [TENANT])).rows[0]
    let nextId = start.m + 1
    const base: number = start.n
    const countErr = (e: unknown) => {
      const err = e as { code?: string; message?: string }
      const k = `${err.code ?? '?'} ${String(err.message ?? e).replace(/\d+/g, 'N')}`
      errors.set(k, (errors.get(k) ?? 0) + 1)
    }
    const writer = async (w: number) => {
      let c = await client(TENANT)
      while (!stop) {
        const id = nextId++
        try {
          await c.query(`INSERT INTO move_events (id, writer, payload) VALUES ($1, $2, $3)`, [id, w, `w${w}`])
          acked.push(id)
        } catch (e) {
          countErr(e)
          // a connection the error ended is replaced
          if (
            !(await c.query('SELECT 1').then(
              () => true,
              () => false,
            ))
          ) {
            await c.end().catch(() => undefined)
            c = await client(TENANT)
          }
        }
      }
      await c.end()
    }
    const reader = async () => {
      const c = await client(TENANT)
      const o = await client(OTHER)
      while (!stop) {
        const before = acked.length
        try {
          const r = await c.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE tenant_id <> ${TENANT})::int AS foreign FROM move_events`)
          reads++
          if (r.rows[0].foreign > 0) wrong.push(`tenant ${TENANT} saw ${r.rows[0].foreign} rows of another tenant`)
          if (r.rows[0].n < before + base) wrong.push(`tenant ${TENANT} read ${r.rows[0].n} rows after ${before} acknowledged writes`)
          const x = await o.query(`SELECT count(*)::int AS n FROM move_events`)
          if (x.rows[0].n !== 100) wrong.push(`tenant ${OTHER} read ${x.rows[0].n} rows, not its 100`)
        } catch (e) {
          countErr(e)
        }
      }
      await c.end()
      await o.end()
    }
    const running = [...Array.from({ length: WRITERS }, (_, w) => writer(w)), reader()]
    await new Promise((r) => setTimeout(r, 1000))
    let moveResult: string
    try {
      moveResult = await move()
    } catch (e) {
      moveResult = `failed: ${(e as Error).message}`
    }
    await new Promise((r) => setTimeout(r, 2500)) // past the proxy's metadata refresh
    stop = true
    await Promise.all(running)
    return { acked, errors, wrong, moveResult, reads }
  }

  async function missing(acked: number[]): Promise<number[]> {
    const r = await admin.query(`SELECT id FROM move_events WHERE tenant_id = $1 AND id = ANY ($2::bigint[])`, [TENANT, acked])
    const have = new Set(r.rows.map((x) => Number(x.id)))
    return acked.filter((id) => !have.has(id))
  }

  function describe(r: { acked: number[]; errors: Map<string, number>; reads: number; moveResult: string }): string {
    const errs = [...r.errors].map(([k, n]) => `${n} × ${k}`).join('; ') || 'none'
    return `${r.acked.length} writes acknowledged, ${r.reads} checked reads; errors seen by clients: ${errs}; move: ${r.moveResult}`
  }

  t.test('citus_move_shard_placement of the tenant’s shard during writes', async (t) => {
    const from = await placement(TENANT)
    const other = (
      await admin.query(`SELECT nodename, nodeport FROM pg_dist_node WHERE groupid > 0 AND nodeport <> $1 AND noderole = 'primary' LIMIT 1`, [from.port])
    ).rows[0]
    const r = await underLoad(async () => {
      const started = Date.now()
      await admin.query(`SELECT citus_move_shard_placement($1::bigint, $2, $3, $4, $5, shard_transfer_mode => 'force_logical')`, [
        from.shardId,
        from.host,
        from.port,
        other.nodename,
        other.nodeport,
      ])
      return `shard ${from.shardId} from :${from.port} to :${other.nodeport} in ${((Date.now() - started) / 1000).toFixed(1)} s`
    })
    const to = await placement(TENANT)
    t.comment(describe(r))
    t.equal(to.port, Number(other.nodeport), 'the shard is on the other worker now')
    t.ok(r.acked.length > 0, 'writes were acknowledged')
    t.same(await missing(r.acked), [], 'every acknowledged write is there')
    t.same(r.wrong, [], 'no wrong answer')
  })

  t.test('isolate_tenant_to_new_shard for the tenant during writes', async (t) => {
    const before = await placement(TENANT)
    const r = await underLoad(async () => {
      const started = Date.now()
      const x = await admin.query(`SELECT isolate_tenant_to_new_shard('move_events', $1::int, shard_transfer_mode => 'force_logical') AS s`, [TENANT])
      return `tenant ${TENANT} isolated to shard ${x.rows[0].s} in ${((Date.now() - started) / 1000).toFixed(1)} s`
    })
    const after = await placement(TENANT)
    t.comment(describe(r))
    t.not(after.shardId, before.shardId, 'the tenant has a shard of its own')
    t.ok(r.acked.length > 0, 'writes were acknowledged')
    t.same(await missing(r.acked), [], 'every acknowledged write is there')
    t.same(r.wrong, [], 'no wrong answer')
  })
}
