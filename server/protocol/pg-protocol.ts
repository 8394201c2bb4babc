// pg-protocol is CommonJS: import it whole (always works from ES modules, whatever loader
// runs us) and re-export the client-side codec pieces we use.
import pgProtocol from 'pg-protocol'

export const serialize: typeof pgProtocol.serialize = pgProtocol.serialize
export const parseBackend: typeof pgProtocol.parse = pgProtocol.parse
