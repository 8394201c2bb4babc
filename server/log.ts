// Structured JSON logs (pino). Passwords, secrets and bind values are never logged.
import { pino, type Logger } from 'pino'

export function createLogger(level: string, fields?: Record<string, unknown>): Logger {
  return pino({
    level,
    base: { service: 'pgtenant', ...fields },
    redact: { paths: ['password', '*.password', 'secret', '*.secret', 'params', '*.params', 'target.password', 'route.target.password'], censor: '[redacted]' },
  })
}

export function sessionLogger(parent: Logger, fields: { session: number; user?: string; client?: string }): Logger {
  return parent.child(fields)
}
