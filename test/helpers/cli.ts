// Runs the pgtenant CLI (dist/server/cli.js) as a child process, as users run it, and
// collects its output; the process is killed when the test file ends.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'server', 'cli.js')

export interface RunningCli {
  child: ChildProcess
  output(): string
  /** Resolves when the output matches `re`; rejects on timeout or exit. */
  waitFor(re: RegExp, ms?: number): Promise<void>
}

export function startCli(args: string[]): RunningCli {
  const child = spawn('node', [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (out += d))
  t.teardown(() => void child.kill('SIGKILL'))
  return {
    child,
    output: () => out,
    waitFor: (re, ms = 30000) =>
      new Promise((resolve, reject) => {
        const started = Date.now()
        const check = (): void => {
          if (re.test(out)) resolve()
          else if (Date.now() - started > ms || child.exitCode !== null) reject(new Error(`timed out waiting for ${re}: ${out}`))
          else setTimeout(check, 50)
        }
        check()
      }),
  }
}
