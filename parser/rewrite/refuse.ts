// The one way a rewrite module gives up on a statement: throw a Refuse. analyze() turns it into a
// Refusal (types.ts) for that statement, and the whole message is refused; nothing is forwarded.
import type { RefusalReason, Sqlstate } from '../types.js'

export class Refuse extends Error {
  constructor(
    public reason: RefusalReason,
    public sqlstate: Sqlstate,
    message: string,
    public hint?: string,
  ) {
    super(message)
  }
}

/** The refusal for a position the analysis could not find (never forward what could not be placed). */
export function unlocatable(what: string): Refuse {
  return new Refuse('unlocatable', '0A000', `pgtenant could not ${what}`)
}

/** A statement shape the rewriter does not support (0A000). */
export function unsupported(message: string, hint?: string): Refuse {
  return new Refuse('unsupported', '0A000', message, hint)
}
