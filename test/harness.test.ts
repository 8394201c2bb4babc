// The harness itself: a real server starts and every auth method it sets up works directly.
import t from 'tap'
import pg from 'pg'
import { startPostgres, ROLES } from './helpers/pg-server.js'

t.test('test PostgreSQL accepts each role with its auth method', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  for (const role of Object.values(ROLES)) {
    const client = new pg.Client({ connectionString: server.url(role.user, role.password) })
    await client.connect()
    const { rows } = await client.query('SELECT current_user AS u')
    t.equal(rows[0].u, role.user)
    await client.end()
  }
  const bad = new pg.Client({ connectionString: server.url(ROLES.scram.user, 'wrong') })
  await t.rejects(bad.connect(), /password authentication failed/)
})
