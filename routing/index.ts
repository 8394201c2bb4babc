// routing/: pure routing decisions as plain data. See placement.ts (decideRoute),
// citus-metadata.ts (queries + metadata builder + findShard), citus-hash.ts (PostgreSQL hashes).
export * from './citus-hash.js'
export * from './citus-metadata.js'
export * from './placement.js'
