// What session.ts reads from statement text and plans without any session state: startup
// options, the BEGIN forms the proxy may defer and their messages, search_path values,
// routing hints. Pure functions.
import { serialize } from '../protocol/pg-protocol.js'
import { firstKeyword } from '../planner.js'
import type { RewriteResult, SessionEffect } from '../../parser/types.js'

/** No tenant data touched, no relations named. */
export const NO_HINT = { touchesTenant: false, relations: [] as readonly string[] }

/** Parse libpq's `options` startup parameter: `-c name=value` and `--name=value`, backslash escapes spaces. */
export function parseOptions(options: string): [string, string][] {
  const words: string[] = []
  let cur = ''
  let escaped = false
  for (const ch of options) {
    if (escaped) {
      cur += ch
      escaped = false
    } else if (ch === '\\') escaped = true
    else if (/\s/.test(ch)) {
      if (cur) words.push(cur)
      cur = ''
    } else cur += ch
  }
  if (cur) words.push(cur)
  const out: [string, string][] = []
  for (let i = 0; i < words.length; i++) {
    let w = words[i]
    if (w === '-c') w = words[++i] ?? ''
    else if (w.startsWith('-c')) w = w.slice(2)
    else if (w.startsWith('--')) w = w.slice(2)
    else continue
    const eq = w.indexOf('=')
    if (eq > 0) out.push([w.slice(0, eq).replace(/-/g, '_'), w.slice(eq + 1)])
  }
  return out
}

/** Routing input from a plan: does it touch tenant data, and which relations. */
export function hintOf(plan: RewriteResult): { touchesTenant: boolean; relations: readonly string[] } {
  let touches = false
  const relations: string[] = []
  for (const st of plan.statements) {
    if (st.kind !== 'forward') continue
    touches ||= st.touchesTenant
    relations.push(...st.relations)
  }
  return touches || relations.length > 0 ? { touchesTenant: touches, relations } : NO_HINT
}

/**
 * A BEGIN the proxy may answer itself: only the plain forms, which the server cannot reject
 * when the session is idle. With options (isolation level, READ WRITE on a standby, a typo)
 * the server may refuse it, and that error must reach the client at the BEGIN, so those go
 * to the server as they are.
 */
export function isPlainBegin(sql: string): boolean {
  return /^\s*(begin(\s+(work|transaction))?|start\s+transaction)\s*;?\s*$/i.test(sql)
}

/** Parse/Bind/Execute of a deferred BEGIN, made once per spelling (isPlainBegin admits only a few). */
const beginMessages = new Map<string, readonly Buffer[]>()
export function deferredBeginMessages(sql: string): readonly Buffer[] {
  let messages = beginMessages.get(sql)
  if (messages === undefined) {
    messages = [serialize.parse({ text: sql }), serialize.bind({}), serialize.execute({})]
    if (beginMessages.size < 64) beginMessages.set(sql, messages)
  }
  return messages
}

/** The tag PostgreSQL answers a plain BEGIN with: START TRANSACTION has its own. */
export function beginTag(sql: string): string {
  return /^\s*start\b/i.test(sql) ? 'START TRANSACTION' : 'BEGIN'
}

/** The command of a single-statement text (BEGIN, START, COMMIT, END, ROLLBACK, ABORT…), or '' when it is more than one statement. */
export function loneCommand(sql: string, plan: RewriteResult | null): string {
  if (plan) {
    const only = plan.statements.length === 1 ? plan.statements[0] : null
    return only?.kind === 'forward' ? only.command : ''
  }
  const semicolon = sql.indexOf(';')
  if (semicolon >= 0 && sql.slice(semicolon + 1).trim() !== '') return ''
  return firstKeyword(sql)
}

/** A search_path setting as the planner needs it: unquoted names, "$user" resolved. Empty: PostgreSQL's default. */
export function parseSearchPath(raw: string, user: string): readonly string[] {
  if (!raw) return [user, 'public'] // PostgreSQL's default: "$user", public
  return raw
    .split(',')
    .map((s) => s.trim().replace(/^'+|'+$/g, ''))
    .map((s) => (s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s.toLowerCase()))
    .map((s) => (s === '$user' ? user : s))
    .filter((s) => s.length > 0)
}

export function isSearchPathEffect(e: SessionEffect | undefined): e is Extract<SessionEffect, { kind: 'set' | 'reset' }> {
  return (e?.kind === 'set' || e?.kind === 'reset') && e.name.toLowerCase() === 'search_path'
}
