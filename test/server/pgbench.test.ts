// pgbench through pgtenant in every query mode and both pool modes: every transaction
// completes, none fails, and the data pgbench wrote is all there.
import t from 'tap'
import { join } from 'node:path'
import { startPostgres, ROLES } from '../helpers/pg-server.js'
import { startProxy, basicYaml, run } from '../helpers/proxy.js'

const server = await startPostgres()
t.teardown(() => server.stop())
const pgbench = join(server.bin, 'pgbench')
const direct = server.url(ROLES.scram.user, ROLES.scram.password)
const init = await run(pgbench, ['-i', '-q', '-s', '1', direct])
if (init.code !== 0) throw new Error(init.stderr)

for (const mode of ['transaction', 'session']) {
  t.test(`pool mode ${mode}`, async (t) => {
    // Session pooling holds a server connection per client: give it one per pgbench client.
    const proxy = await startProxy(basicYaml(server, { pool: mode === 'session' ? 8 : 4, mode }))
    t.teardown(() => proxy.stop())
    for (const protocol of ['simple', 'extended', 'prepared']) {
      const before = Number(server.sql('SELECT count(*) FROM pgbench_history'))
      // One thread per client: in -M prepared, pgbench prepares with a blocking call, so a thread whose
      // other client holds a pooled connection mid-transaction would wait on itself (as with PgBouncer).
      const r = await run(pgbench, ['-n', '-c', '8', '-j', '8', '-t', '60', '-M', protocol, proxy.url('app', 'app_pw')])
      t.equal(r.code, 0, `${protocol}: exit 0 ${r.stderr.slice(0, 500)}`)
      t.match(r.stdout, /number of transactions actually processed: 480\/480/, `${protocol}: all 480 transactions`)
      t.match(r.stdout, /number of failed transactions: 0 /, `${protocol}: none failed`)
      t.equal(Number(server.sql('SELECT count(*) FROM pgbench_history')) - before, 480, `${protocol}: 480 history rows written`)
    }
    const selectOnly = await run(pgbench, ['-n', '-S', '-c', '10', '-j', '10', '-T', '2', '-M', 'prepared', proxy.url('app', 'app_pw')])
    t.equal(selectOnly.code, 0, selectOnly.stderr.slice(0, 500))
  })
}
