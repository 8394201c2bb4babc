// The statement registry (server/session/statements.ts) without a server: registration and its
// undo, re-rewriting under another tenant, stale server names, and when a Parse must be sent first.
import t from 'tap'
import { StatementRegistry, clientStatement, needsParse, NO_TOKEN, type ClientStatement } from '../../server/session/statements.js'

const stmt = (tenant: string | null, serverName = 'pgt_1', sql = 'SELECT 1'): ClientStatement =>
  clientStatement(sql, Buffer.alloc(2), tenant, sql, serverName, null, undefined)

t.test('a failed Parse unregisters its statement, not one that replaced it', async (t) => {
  const r = new StatementRegistry()
  const first = stmt('a')
  r.register('s', first)
  const undoFirst = r.unregisterer('s', first)
  const second = stmt('a', 'pgt_2')
  r.register('s', second)
  undoFirst()
  t.ok(r.has('s'), 'the newer registration stays')
  r.unregisterer('s', second)()
  t.notOk(r.has('s'))
})

t.test('resolve: unknown names are 26000; another tenant means a fresh rewrite', async (t) => {
  const r = new StatementRegistry()
  const none = r.resolve('nope', 'a', () => stmt('a'))
  t.match(none, { kind: 'refuse', sqlstate: '26000', message: 'prepared statement "nope" does not exist' })
  t.match(
    r.resolve('', 'a', () => stmt('a')),
    { message: 'unnamed prepared statement does not exist' },
  )
  r.register('s', stmt('a'))
  let rewrites = 0
  const again = (old: ClientStatement): ClientStatement => {
    rewrites++
    return stmt('b', 'pgt_b', old.originalSql)
  }
  t.equal((r.resolve('s', 'a', again) as ClientStatement).tenant, 'a', 'same tenant: as prepared')
  t.equal(rewrites, 0)
  t.equal((r.resolve('s', 'b', again) as ClientStatement).serverName, 'pgt_b', 'tenant b: rewritten for b')
  t.equal((r.resolve('s', 'b', again) as ClientStatement).serverName, 'pgt_b', 'and kept')
  t.equal(rewrites, 1)
  const refused = r.resolve('s', 'c', () => ({ kind: 'refuse', sqlstate: '42501', message: 'no' }))
  t.match(refused, { kind: 'refuse', sqlstate: '42501' }, 'a refusal under the new tenant is the answer')
})

t.test('a stale server statement gets new names for every client statement on it', async (t) => {
  const r = new StatementRegistry()
  r.register('x', stmt('a', 'old'))
  r.register('y', stmt('a', 'other'))
  r.renameServerStatement('old', (name) => `new_${name}`)
  t.equal((r.resolve('x', 'a', () => stmt('a')) as ClientStatement).serverName, 'new_x')
  t.equal((r.resolve('y', 'a', () => stmt('a')) as ClientStatement).serverName, 'other')
})

t.test('needsParse: named by the connection, unnamed by the Parse that owns it', async (t) => {
  const conn = { prepared: new Set(['pgt_1']), unnamedOwner: null as object | null }
  t.notOk(needsParse(stmt('a', 'pgt_1'), conn))
  t.ok(needsParse(stmt('a', 'pgt_9'), conn))
  const unnamed = stmt('a', '')
  t.ok(needsParse(unnamed, conn), 'never parsed')
  t.equal(unnamed.token, NO_TOKEN)
  const token = {}
  unnamed.token = token
  conn.unnamedOwner = token
  t.notOk(needsParse(unnamed, conn), 'this Parse is the one on the connection')
  conn.unnamedOwner = {}
  t.ok(needsParse(unnamed, conn), 'another Parse replaced it')
})
