// SessionState (server/session/state.ts) without a server: the tenant, SET LOCAL, settings that
// count at COMMIT, the batch undo, the state key and the replay SQL.
import t from 'tap'
import { SessionState } from '../../server/session/state.js'

t.test('the tenant, SET LOCAL over it, and the state key follow every change', async (t) => {
  const s = new SessionState()
  const empty = s.key
  s.setTenant('a', false)
  t.equal(s.effectiveTenant, 'a')
  t.not(s.key, empty, 'the key changes with the tenant')
  s.setTenant('b', true)
  t.equal(s.effectiveTenant, 'b', 'SET LOCAL overrides')
  t.equal(s.tenant, 'a')
  s.endLocal()
  t.equal(s.effectiveTenant, 'a', 'the transaction ended: back to the session tenant')
  s.setTenant('c', true)
  s.setTenant('d', false)
  t.equal(s.effectiveTenant, 'd', 'a session SET ends a SET LOCAL')
  t.equal(s.clearTenant(), true)
  t.equal(s.clearTenant(), false, 'nothing to clear')
  t.equal(s.key, empty)
})

t.test('settings count at COMMIT and are dropped by a lost transaction', async (t) => {
  const s = new SessionState()
  s.pendingEffects.push({ kind: 'set', name: 'DateStyle', valueSql: "'ISO'" } as never)
  const before = s.key
  t.equal(s.key, before, 'not yet committed')
  t.equal(s.commitPending(), true)
  t.same([...s.settings], [['datestyle', "'ISO'"]])
  t.not(s.key, before)
  s.pendingEffects.push({ kind: 'reset_all' } as never)
  s.transactionLost()
  t.same([...s.settings], [['datestyle', "'ISO'"]], 'a lost transaction changes nothing')
  t.equal(s.applySettingEffect({ kind: 'reset', name: 'datestyle' } as never), true)
  t.equal(s.settings.size, 0)
  t.equal(s.applySettingEffect({ kind: 'listen', name: 'x' } as never), false, 'not a setting')
})

t.test('a failed batch gives the tenant back; a committed one keeps it', async (t) => {
  const s = new SessionState()
  s.setTenant('a', false)
  s.rememberBatchTenant()
  s.setTenant('b', false)
  s.rememberBatchTenant() // a second change in the same batch keeps the first value to restore
  s.setTenant('c', false)
  t.ok(s.batchChangedTenant)
  t.equal(s.settleBatch(true), true)
  t.equal(s.effectiveTenant, 'a', 'rolled back to the tenant before the batch')
  t.notOk(s.batchChangedTenant)
  s.rememberBatchTenant()
  s.setTenant('b', false)
  t.equal(s.settleBatch(false), false)
  t.equal(s.effectiveTenant, 'b', 'committed')
  t.equal(s.revertBatchTenant(), false, 'nothing left to undo')
})

t.test('replay SQL quotes names and the tenant', async (t) => {
  const s = new SessionState()
  s.setStartupSetting('Application_Name', "it's")
  s.setTenant("o'brien", false)
  t.equal(s.replaySql('app.tenant'), `RESET ALL; SET "application_name" TO 'it''s'; SELECT set_config('app.tenant', 'o''brien', false)`)
  t.equal(s.replaySql(null), `RESET ALL; SET "application_name" TO 'it''s'`, 'no tenant setting outside tenant mode')
})
