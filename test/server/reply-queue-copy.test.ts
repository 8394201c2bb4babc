// The reply queue during COPY … FROM STDIN (issue 19): the server ignores Sync (and Flush) while it
// reads copy data, so a Sync the client sends between the COPY's Execute and its CopyDone gets no
// ReadyForQuery; outside COPY it ignores CopyDone/CopyFail. The queue must settle exactly when the
// server is done, or a pooled connection is never released (or released too early).
import t from 'tap'
import { ReplyQueue } from '../../server/session/reply-queue.js'

const fresh = (): ReplyQueue => new ReplyQueue(() => undefined)

t.test('extended COPY as libpq sends it: the Sync right after Execute gets no reply', async (t) => {
  const q = fresh()
  q.expect('parse')
  q.expect('bind')
  q.expect('execute')
  q.expect('sync')
  q.parseComplete()
  q.bindOrCloseComplete()
  q.copyIn() // CopyInResponse
  t.equal(q.length, 1, 'only the Execute is owed')
  q.copyEnd() // the client's CopyDone
  q.expect('sync')
  t.equal(q.commandComplete('COPY 2').entry?.kind, 'execute')
  t.notOk(q.settled, 'the Sync after CopyDone is owed')
  t.equal(q.readyForQuery()?.kind, 'sync')
  t.ok(q.settled)
})

t.test('everything pipelined before the CopyInResponse arrives', async (t) => {
  const q = fresh()
  for (const k of ['parse', 'bind', 'execute', 'sync'] as const) q.expect(k)
  q.copyEnd() // the COPY has not started yet: remembered in order
  q.expect('sync')
  t.equal(q.length, 6)
  t.notOk(q.owesReplies && q.length === 0)
  q.parseComplete()
  q.bindOrCloseComplete()
  q.copyIn()
  t.equal(q.length, 2, 'the Sync before CopyDone and the CopyDone itself are gone; the Sync after it stays')
  q.commandComplete('COPY 1')
  t.equal(q.readyForQuery()?.kind, 'sync')
  t.ok(q.settled)
})

t.test('a Sync sent while the server copies is not expected (simple protocol COPY)', async (t) => {
  const q = fresh()
  q.expect('query')
  q.copyIn()
  q.expect('sync')
  t.equal(q.length, 1)
  q.copyEnd()
  q.commandComplete('COPY 3')
  t.equal(q.readyForQuery()?.kind, 'query')
  t.ok(q.settled)
})

t.test('a COPY that fails before it starts: the CopyDone marker leaves with the reply', async (t) => {
  const q = fresh()
  q.expect('query')
  q.copyEnd()
  t.ok(q.owesReplies)
  q.error()
  t.equal(q.readyForQuery()?.kind, 'query')
  t.ok(q.settled, 'nothing left for the ignored CopyDone')
  const x = fresh()
  for (const k of ['parse', 'bind', 'execute', 'sync'] as const) x.expect(k)
  x.copyEnd()
  x.expect('sync')
  x.parseComplete()
  x.bindOrCloseComplete()
  x.error() // the Execute failed: no CopyInResponse, the server skips to the first Sync
  t.equal(x.readyForQuery()?.kind, 'sync')
  t.notOk(x.settled, 'the second Sync is still owed')
  t.equal(x.readyForQuery()?.kind, 'sync')
  t.ok(x.settled)
})

t.test('an error during COPY ends it: a Sync after that is answered', async (t) => {
  const q = fresh()
  for (const k of ['parse', 'bind', 'execute', 'sync'] as const) q.expect(k)
  q.parseComplete()
  q.bindOrCloseComplete()
  q.copyIn()
  q.error() // a bad row, or the proxy's CopyFail
  q.copyEnd() // the client's CopyDone after it: ignored by the server
  t.equal(q.length, 0)
  q.expect('sync')
  t.equal(q.readyForQuery()?.kind, 'sync')
  t.ok(q.settled)
})
