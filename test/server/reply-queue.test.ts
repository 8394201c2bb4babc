// The expected-reply state machine on its own, without PostgreSQL: which reply belongs to
// which request, skip-to-Sync after an error, and when a server connection is settled
// (nothing owed, no extended batch open) and so may go back to a pool.
import t from 'tap'
import { ReplyQueue, entry } from '../../server/session/reply-queue.js'
import type { SessionEffect } from '../../parser/types.js'

function queue(): { q: ReplyQueue; emitted: string[] } {
  const emitted: string[] = []
  const q = new ReplyQueue((b) => emitted.push(b.toString()))
  return { q, emitted }
}

t.test('a simple query: settled only after its ReadyForQuery', async (t) => {
  const { q } = queue()
  t.ok(q.settled, 'fresh queue is settled')
  q.expect('query')
  t.notOk(q.settled)
  t.ok(q.owesReplies)
  t.equal(q.commandComplete('SELECT 1').entry?.kind, 'query')
  t.notOk(q.settled, 'CommandComplete alone does not end a query')
  t.equal(q.readyForQuery()?.kind, 'query')
  t.ok(q.settled)
})

t.test('Parse/Bind/Execute/Flush: every reply received, still not settled without a Sync', async (t) => {
  const { q } = queue()
  q.expect('parse')
  q.expect('bind')
  q.expect('execute')
  t.equal(q.parseComplete()?.kind, 'parse')
  t.equal(q.bindOrCloseComplete()?.kind, 'bind')
  t.equal(q.commandComplete('INSERT 0 1').entry?.kind, 'execute')
  t.equal(q.length, 0, 'nothing owed')
  t.notOk(q.owesReplies)
  t.ok(q.unsynced, 'the implicit transaction is still open on the server')
  t.notOk(q.settled, 'so the connection is not free')
  q.expect('sync')
  t.notOk(q.unsynced)
  t.notOk(q.settled, 'the Sync is owed its ReadyForQuery')
  t.equal(q.readyForQuery()?.kind, 'sync')
  t.ok(q.settled)
})

t.test('a simple Query after unsynced extended messages ends the batch (its end commits it)', async (t) => {
  const { q } = queue()
  q.expect('parse')
  q.parseComplete()
  t.ok(q.unsynced)
  q.expect('query')
  q.readyForQuery()
  t.ok(q.settled)
})

t.test('proxy-made answers wait behind what the server owes, in order', async (t) => {
  const { q, emitted } = queue()
  t.equal(q.answer([Buffer.from('now')]), false, 'nothing owed: the caller sends it at once')
  q.expect('parse')
  t.equal(q.answer([Buffer.from('A')]), true)
  q.expect('bind')
  q.answer([Buffer.from('B')])
  q.parseComplete()
  t.same(emitted, ['A'], 'emitted when it reaches the head')
  q.bindOrCloseComplete()
  t.same(emitted, ['A', 'B'])
})

t.test('an error in an extended message: the queue skips to Sync like the server', async (t) => {
  const { q, emitted } = queue()
  const failed: string[] = []
  q.expect('parse', { onFail: () => failed.push('p1') })
  q.expect('bind')
  q.expect('execute')
  q.answer([Buffer.from('synthetic ParseComplete')], () => failed.push('p2'))
  q.expect('bind')
  q.expect('execute')
  q.expect('sync')
  q.expect('query')
  q.parseComplete()
  q.bindOrCloseComplete()
  t.equal(q.error()?.kind, 'execute', 'the error answers the Execute')
  t.same(failed, ['p2'], 'the proxy answer behind it is dropped and undone; the completed Parse is not')
  t.same(emitted, [], 'nothing the server skipped is answered')
  t.ok(q.skipping)
  t.equal(q.head?.kind, 'sync')
  t.equal(q.readyForQuery()?.kind, 'sync')
  t.notOk(q.skipping)
  t.equal(q.head?.kind, 'query', 'the query after the Sync is still owed')
})

t.test('an error inside a Flush-delimited batch: skipping with nothing queued, not settled until a Sync is answered', async (t) => {
  const { q } = queue()
  const failed: string[] = []
  q.expect('parse', { onFail: () => failed.push('parse') })
  q.expect('bind')
  q.expect('execute')
  t.equal(q.error()?.kind, 'parse')
  t.same(failed, ['parse'], 'a failed Parse is undone')
  t.equal(q.length, 0)
  t.notOk(q.owesReplies)
  t.ok(q.skipping)
  t.notOk(q.settled, 'the server discards everything until a Sync')
  // Messages the client sends before it sees the error are discarded by the server: no reply is owed.
  const late = q.expect('parse', { onFail: () => failed.push('late parse') })
  t.ok(late.failed)
  t.same(failed, ['parse', 'late parse'])
  t.equal(q.length, 0)
  t.equal(
    q.answer([Buffer.from('x')], () => failed.push('late answer')),
    true,
    'a proxy answer is dropped too',
  )
  t.same(failed, ['parse', 'late parse', 'late answer'])
  const ignoredQuery = q.expect('query')
  t.ok(ignoredQuery.failed, 'even a simple Query is ignored by a server skipping to Sync')
  t.equal(q.length, 0)
  q.expect('sync')
  t.notOk(q.settled)
  q.readyForQuery()
  t.ok(q.settled)
})

t.test('a simple query error: the query stays owed its ReadyForQuery, no skipping', async (t) => {
  const { q } = queue()
  q.expect('query')
  q.expect('query')
  t.equal(q.error()?.kind, 'query')
  t.notOk(q.skipping)
  t.equal(q.length, 2)
  q.readyForQuery()
  t.equal(q.head?.kind, 'query')
})

t.test('per-statement effects are confirmed one CommandComplete at a time', async (t) => {
  const { q } = queue()
  const prepare: SessionEffect = { kind: 'prepare', name: 'p' }
  const dealloc: SessionEffect = { kind: 'deallocate', name: 'p' }
  q.expect('query', { effects: [prepare, null, dealloc] })
  t.same(q.commandComplete('PREPARE').effect, prepare, 'PREPARE confirmed')
  const err = q.error()
  t.ok(err?.failed, 'SELECT 1/0 failed: the rest of the query never runs')
  q.readyForQuery()
  t.ok(q.settled, 'the DEALLOCATE was never confirmed')
})

t.test('Execute confirms its portal effect at CommandComplete; an internal entry sees its tag', async (t) => {
  const { q } = queue()
  const set: SessionEffect = { kind: 'set', name: 'x', valueSql: '1' }
  const tags: string[] = []
  q.expect('internal', { onTag: (tag) => tags.push(tag) })
  q.expect('execute', { effects: [set] })
  t.equal(q.commandComplete('SELECT 3').effect, null)
  t.same(tags, ['SELECT 3'])
  q.readyForQuery()
  t.same(q.commandComplete('SET').effect, set)
  t.equal(q.length, 0)
})

t.test('entries placed ahead (state replay, deferred BEGIN) keep a client batch open', async (t) => {
  const { q } = queue()
  q.expect('parse')
  q.expect('bind')
  q.expect('execute')
  q.expect('sync')
  q.expectFirst(entry('internal'))
  t.equal(q.head?.kind, 'internal')
  q.readyForQuery()
  t.equal(q.head?.kind, 'parse')
  q.parseComplete()
  q.bindOrCloseComplete()
  q.executeDone()
  q.readyForQuery()
  t.ok(q.settled)
})

t.test('a ReadyForQuery after skipped extended requests drops them (their onFail runs) and answers the Sync', async (t) => {
  const { q } = queue()
  const failed: string[] = []
  q.expect('bind', { onFail: () => failed.push('bind') })
  q.expect('execute', { onFail: () => failed.push('execute') })
  q.expect('sync')
  // e.g. the server connection's error came as FATAL and was handled elsewhere; a ReadyForQuery settles it
  t.equal(q.readyForQuery()?.kind, 'sync')
  t.same(failed, ['bind', 'execute'])
  t.ok(q.settled)
})

t.test('the Sync that ends a batch the server skipped after an error is answered as failed (its implicit transaction rolled back)', async (t) => {
  const { q } = queue()
  q.expect('execute')
  q.expect('execute')
  q.expect('sync')
  q.commandComplete('SELECT 1')
  q.error()
  t.equal(q.readyForQuery()?.failed, true, 'an error in the batch: rolled back')
  q.expect('execute')
  q.expect('sync')
  q.commandComplete('SELECT 1')
  t.equal(q.readyForQuery()?.failed, false, 'no error: committed')
})
