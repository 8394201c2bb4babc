// The placement state file (`placement.state_file`): the tenants MOVE TENANT placed, so that a
// move survives RELOAD and a restart. JSON, `{ "version": 1, "tenants": { "acme": "dedicated" } }`,
// written atomically (a temporary file in the same directory, fsync, rename over the old one):
// a crash leaves the old file or the new one, never half of one. Its entries win over
// `placement.tenants` (routing/placement.ts applyPlacementOverrides).
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

/** The file's entries; a file that does not exist yet is empty. Throws for a file that is not one of ours. */
export function readPlacementState(file: string): Record<string, string> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Object.create(null) as Record<string, string>
    throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
  const tenants = (doc as { tenants?: unknown } | null)?.tenants
  if (typeof doc !== 'object' || doc === null || typeof tenants !== 'object' || tenants === null || Array.isArray(tenants))
    throw new Error(`${file}: expected {"version": 1, "tenants": {"<tenant>": "<backend>", …}}`)
  const out: Record<string, string> = Object.create(null)
  for (const [tenant, backend] of Object.entries(tenants)) {
    if (typeof backend !== 'string') throw new Error(`${file}: tenants.${tenant} must be a backend name`)
    out[tenant] = backend
  }
  return out
}

/** Replace the file's contents with `tenants`, atomically. Throws when it cannot. */
export function writePlacementState(file: string, tenants: Readonly<Record<string, string>>): void {
  const sorted: Record<string, string> = {}
  for (const k of Object.keys(tenants).sort()) sorted[k] = tenants[k]
  const text = `${JSON.stringify({ version: 1, tenants: sorted }, null, 2)}\n`
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`)
  try {
    const fd = openSync(tmp, 'w', 0o640)
    try {
      writeSync(fd, text)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, file)
  } catch (err) {
    try {
      unlinkSync(tmp)
    } catch {
      /* not there */
    }
    throw new Error(`cannot write the placement state file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      cause: err,
    })
  }
  try {
    const dir = openSync(dirname(file), 'r')
    try {
      fsyncSync(dir) // the rename itself survives a crash
    } finally {
      closeSync(dir)
    }
  } catch {
    /* some filesystems do not fsync directories */
  }
}
