// COPY … FROM STDIN into a tenant table (issue 19), the session's part: a layer between the server
// connection (backend-link.ts) and the extended protocol (extended.ts).
//
// When a Query or an Execute whose statement is such a COPY goes to the server, every CopyData the
// client sends after it goes through the row transformer of copy-in-rows.ts (the tenant's value
// appended to each row, or each row's tenant field checked) until the client's CopyDone or CopyFail,
// or until the next Query or Execute goes to the server (which ends any COPY there: the server
// refuses other messages inside COPY). A Query or Execute the proxy answers itself does not reach the
// server and changes nothing here. A row of another tenant aborts the COPY: the server gets a
// CopyFail (it rolls the COPY back, nothing is written), the client's further copy messages are
// dropped up to its CopyDone/CopyFail, and the client gets a 42501 ErrorResponse in place of the
// server's answer to the CopyFail. Backpressure is the session's own: the client is not read while
// the server connection's socket is full (backend-link.ts flushBackend).
import { type Frame } from '../protocol/frame-reader.js'
import * as be from '../protocol/backend.js'
import type { ScannerSink } from '../protocol/backend-scanner.js'
import type { CopyInPlan, Refusal, RewriteResult, StatementPlan } from '../../parser/types.js'
import { SessionBackendLink } from './backend-link.js'
import { CopyRowsError, copyInRows, type CopyInRows } from './copy-in-rows.js'

const COPY_DATA = 0x64
const COPY_DONE = 0x63

export abstract class SessionCopyIn extends SessionBackendLink {
  /** The rows of the tenant COPY the server may be reading now (null: the client's copy data goes as it is). */
  protected copyRows: CopyInRows | null = null
  /** The proxy aborted the COPY: the client's copy messages are dropped until its CopyDone/CopyFail. */
  private copyDropping = false
  /** The error the client gets in place of the server's answer to the proxy's CopyFail. */
  private copyAbortError: Buffer | null = null
  /** An append-mode COPY was sent: the client's CopyInResponse names its own columns, not the tenant column the server counts. */
  private copyClientColumns = -1
  private copyBinary = false
  /** Portals bound to a COPY … FROM STDIN into a tenant table: the plan their Execute starts. Made at first use (memory per idle client). */
  private copyPortalsInstance: Map<string, CopyInPlan> | null = null
  protected get copyPortals(): Map<string, CopyInPlan> {
    return (this.copyPortalsInstance ??= new Map<string, CopyInPlan>())
  }

  /** Before a simple Query goes to the server: the rows of its tenant COPY, null for none, undefined when refused (answered). */
  protected copyForQuery(plan: RewriteResult | null): CopyInRows | null | undefined {
    if (plan === null) return null
    const st = plan.statements.find((s): s is Extract<StatementPlan, { kind: 'forward' }> => s.kind === 'forward' && s.copyIn !== undefined)
    if (!st) return null
    if (plan.statements.length > 1) {
      this.refuse(
        { kind: 'refuse', sqlstate: '0A000', message: `COPY … FROM STDIN into tenant table "${st.copyIn!.table}" must be sent as a statement of its own` },
        false,
      )
      return undefined
    }
    const rows = this.copyRowsFor(st.copyIn!)
    if (rows instanceof CopyRowsError) {
      this.refuse(refusalOf(rows), false)
      return undefined
    }
    return rows
  }

  /** Before an Execute goes to the server: the rows of its portal's tenant COPY, null for none, undefined when refused (answered). */
  protected copyForPortal(portal: string): CopyInRows | null | undefined {
    const plan = this.copyPortals.get(portal)
    if (!plan) return null
    const rows = this.copyRowsFor(plan)
    if (rows instanceof CopyRowsError) {
      this.extendedError(refusalOf(rows))
      return undefined
    }
    return rows
  }

  private copyRowsFor(plan: CopyInPlan): CopyInRows | CopyRowsError {
    const tenant = this.effectiveTenant
    if (tenant === null) return new CopyRowsError('42501', `table "${plan.table}" is a tenant table and no tenant is set`)
    return copyInRows(plan, tenant, 5)
  }

  /** A Query or Execute went to the server: the client's copy data from now on belongs to its COPY (rows), or goes as it is. */
  protected copyBegin(rows: CopyInRows | null): void {
    this.copyRows = rows
    this.copyDropping = false
    this.copyAbortError = null
    this.copyClientColumns = rows !== null && rows.plan.mode === 'append' ? rows.plan.fields : -1
    this.copyBinary = rows !== null && rows.plan.format === 'binary'
  }

  /** CopyData, CopyDone or CopyFail from the client. */
  protected handleCopyMessage(frame: Frame): boolean {
    const ends = frame.type !== COPY_DATA
    if (this.copyDropping) {
      if (ends) this.copyDropping = false
      return true
    }
    const rows = this.copyRows
    if (!this.backend) {
      // no server connection: no COPY runs (the server ignores these outside COPY too)
      if (ends) this.copyRows = null
      return true
    }
    if (rows === null) {
      this.send(frame.raw)
      if (ends) this.queue.copyEnd()
      return true
    }
    if (!ends) {
      const out = rows.push(frame.raw.subarray(frame.bodyStart))
      if (out === null) this.send(frame.raw)
      else if (out instanceof CopyRowsError) this.abortCopy(rows, out, false)
      else if (out.length > 5) this.send(framed(out))
      return true
    }
    if (frame.type === COPY_DONE) {
      const out = rows.end()
      if (out instanceof CopyRowsError) {
        this.abortCopy(rows, out, true)
        return true
      }
      if (out !== null && out.length > 5) this.send(framed(out))
    }
    this.send(frame.raw)
    this.queue.copyEnd()
    this.copyRows = null
    return true
  }

  /** A row the proxy must not let through: the server rolls the COPY back (CopyFail), the client hears why. */
  private abortCopy(rows: CopyInRows, err: CopyRowsError, clientEnded: boolean): void {
    this.log.warn({ table: rows.plan.table, sqlstate: err.sqlstate, rows: rows.rows, user: this.user }, `COPY FROM STDIN aborted: ${err.message}`)
    this.send(copyFail(`pgtenant: ${err.message}`))
    this.queue.copyEnd()
    this.copyRows = null
    this.copyDropping = !clientEnded
    this.copyAbortError = be.errorResponse({ severity: 'ERROR', code: err.sqlstate, message: err.message, ...(err.hint ? { hint: err.hint } : {}) })
  }

  /**
   * A client that goes away inside a COPY: the server gets a CopyFail first, so that it stops waiting
   * for data and answers (the connection is then cleaned up or closed at once, not after a timeout).
   */
  protected override onClientClose(): void {
    if (this.state !== 'closed' && this.backend && (this.copyRows !== null || this.queue.inCopy)) {
      this.send(copyFail('pgtenant: the client disconnected during COPY'))
      this.queue.copyEnd()
      this.copyRows = null
    }
    super.onClientClose()
  }

  protected override createSink(): ScannerSink {
    const sink = super.createSink()
    const pass = sink.onPassThrough
    sink.onPassThrough = (type) => (type === 0x47 /* CopyInResponse */ ? this.onCopyInResponse(pass(type)) : pass(type))
    return sink
  }

  /** The server reads copy data now (the reply queue knows it ignores Syncs meanwhile); the client learns its own column count. */
  private onCopyInResponse(forward: boolean): boolean {
    this.queue.copyIn()
    if (!forward || this.copyClientColumns < 0) return forward
    this.scanner.inject(copyInResponse(this.copyBinary ? 1 : 0, this.copyClientColumns))
    this.copyClientColumns = -1
    return false
  }

  protected override onErrorResponse(raw: Buffer): boolean {
    const forward = super.onErrorResponse(raw)
    const replacement = this.copyAbortError
    if (replacement === null) return forward
    // after the proxy's CopyFail the COPY's end is the next error: the server's answer to it (57014), or its own earlier one
    this.copyAbortError = null
    if (!forward || be.decodeFields(raw).C !== '57014') return forward
    this.scanner.inject(replacement)
    return false
  }
}

function refusalOf(e: CopyRowsError): Refusal {
  return { kind: 'refuse', sqlstate: e.sqlstate as Refusal['sqlstate'], message: e.message, ...(e.hint ? { hint: e.hint } : {}) }
}

/** A CopyData message over `out`, whose first 5 bytes were left free for its header. */
function framed(out: Buffer): Buffer {
  out[0] = COPY_DATA
  out.writeInt32BE(out.length - 1, 1)
  return out
}

function copyFail(message: string): Buffer {
  const body = Buffer.from(message.replaceAll('\0', '') + '\0', 'utf8')
  const out = Buffer.allocUnsafe(5 + body.length)
  out[0] = 0x66
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}

function copyInResponse(format: number, columns: number): Buffer {
  const out = Buffer.allocUnsafe(8 + 2 * columns)
  out[0] = 0x47
  out.writeInt32BE(7 + 2 * columns, 1)
  out[5] = format
  out.writeInt16BE(columns, 6)
  for (let i = 0; i < columns; i++) out.writeInt16BE(format, 8 + 2 * i)
  return out
}
