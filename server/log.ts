// Structured logs (pino). Passwords, secrets and bind values are never logged.
// log_format json (default): one JSON object a line, for machines. pretty: a readable
// line for a terminal — local time, level, message, then the other fields as key=value.
import { pino, type Logger } from 'pino'

export type LogFormat = 'json' | 'pretty'

export function createLogger(
  level: string,
  fields?: Record<string, unknown>,
  format: LogFormat = 'json',
  out: { write(s: string): unknown } = process.stdout,
): Logger {
  const options = {
    level,
    base: { service: 'pgtenant', ...fields },
    redact: { paths: ['password', '*.password', 'secret', '*.secret', 'params', '*.params', 'target.password', 'route.target.password'], censor: '[redacted]' },
  }
  if (format === 'pretty') return pino(options, { write: (line: string) => void out.write(prettyLine(line)) })
  return out === process.stdout ? pino(options) : pino(options, { write: (line: string) => void out.write(line) })
}

/**
 * A reload's log_level, applied live to a root logger made by createLogger. Every child
 * logger follows it (sessions', and anything else made with .child()): a pino child made
 * without a `level` option reads its level and log methods from its parent, so the parent's
 * new level reaches children that already exist. Never give a child a level of its own (it
 * would stop following); test/server/admin-wait-enable-loglevel.test.ts checks a session
 * connected before a reload logs at the new level. Returns whether the level changed.
 */
export function setLogLevel(log: Logger, level: string): boolean {
  const from = log.level
  if (from === level) return false
  const line = { from, to: level }
  const wasInfo = log.isLevelEnabled('info')
  if (wasInfo) log.info(line, 'log level changed') // said at the old level or the new one, whichever shows it
  log.level = level
  if (!wasInfo && log.isLevelEnabled('info')) log.info(line, 'log level changed')
  return true
}

export function sessionLogger(parent: Logger, fields: { session: number; user?: string; client?: string }): Logger {
  return parent.child(fields)
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' }

/** One pino JSON line as `2025-01-31 14:03:07.123 WARN  message  key=value …`. */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>
  try {
    o = JSON.parse(json)
  } catch {
    return json
  }
  const { time, level, msg, service: _service, hostname: _hostname, pid: _pid, ...rest } = o
  const d = new Date(typeof time === 'number' ? time : Date.now())
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0')
  const when = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/[\s"=]/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ')
  return `${when} ${LEVELS[level as number] ?? String(level)} ${String(msg ?? '')}${extra ? `  ${extra}` : ''}\n`
}
