// Process helpers for the end-to-end benchmark: CPU time and RSS of a process tree read
// from /proc, waiting for a TCP port, running a command with a hard time limit.
import { readFileSync, readdirSync } from 'node:fs'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'

let clkTck = 100
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
} catch {
  /* Linux default */
}

interface Stat {
  pid: number
  ppid: number
  comm: string
  /** utime + stime, in clock ticks */
  own: number
  /** cutime + cstime: children that exited and were reaped */
  reaped: number
}

function readStat(pid: number): Stat | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // comm is in parentheses and may contain spaces: split after the last ')'.
  const close = text.lastIndexOf(')')
  const comm = text.slice(text.indexOf('(') + 1, close)
  const f = text.slice(close + 2).split(' ')
  // f[0] is field 3 (state); utime is field 14 → f[11].
  return { pid, ppid: Number(f[1]), comm, own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) }
}

function allStats(): Stat[] {
  const out: Stat[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const s = readStat(Number(name))
    if (s) out.push(s)
  }
  return out
}

/** The pids of root and all its live descendants. */
export function processTree(root: number): Stat[] {
  const stats = allStats()
  const byParent = new Map<number, Stat[]>()
  for (const s of stats) {
    const list = byParent.get(s.ppid)
    if (list) list.push(s)
    else byParent.set(s.ppid, [s])
  }
  const rootStat = stats.find((s) => s.pid === root)
  if (!rootStat) return []
  const out = [rootStat]
  for (let i = 0; i < out.length; i++) out.push(...(byParent.get(out[i].pid) ?? []))
  return out
}

/**
 * CPU seconds (user + system) used so far by a process and all its descendants, including
 * descendants that already exited and were reaped (cutime/cstime), so that per-connection
 * children (PostgreSQL backends) are counted whether or not they are still alive.
 */
export function treeCpuSeconds(root: number): number {
  let ticks = 0
  for (const s of processTree(root)) ticks += s.own + s.reaped
  return ticks / clkTck
}

/** The first descendant of root (or root itself) whose command name is comm. */
export function findInTree(root: number, comm: string): number | null {
  return processTree(root).find((s) => s.comm === comm)?.pid ?? null
}

/** Resident set size of a process tree, in bytes (sum of VmRSS). */
export function treeRssBytes(root: number): number {
  let kb = 0
  for (const s of processTree(root)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${s.pid}/status`, 'utf8'))
      if (m) kb += Number(m[1])
    } catch {
      /* exited */
    }
  }
  return kb * 1024
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    s.setTimeout(1000)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
    s.once('timeout', () => {
      s.destroy()
      resolve(false)
    })
  })
}

/** Wait until 127.0.0.1:port accepts connections; false if the child exits first or time runs out. */
export async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false
    if (await tryConnect(port)) return true
    await sleep(100)
  }
  return false
}

export interface CmdResult {
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
  timedOut: boolean
}

/** Run a command without blocking the event loop; killed (SIGKILL, by its pid) after timeoutMs. */
export function runCmd(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number }): Promise<CmdResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => {
      if (stderr.length < 1_000_000) stderr += d
    })
    const timer = setTimeout(() => {
      timedOut = true
      if (child.pid) {
        try {
          process.kill(child.pid, 'SIGKILL')
        } catch {
          /* gone */
        }
      }
    }, opts.timeoutMs)
    child.on('error', (err) => {
      stderr += String(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })
}

/** Send a signal to one pid, ignoring "no such process". */
export function killPid(pid: number | undefined | null, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (!pid) return
  try {
    process.kill(pid, signal)
  } catch {
    /* already gone */
  }
}

/** Shell prefix that raises the open-files limit as far as allowed, then execs the command. */
export function withRaisedNofile(cmd: string, args: string[]): [string, string[]] {
  return ['bash', ['-c', 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'bash', cmd, ...args]]
}

/** The soft open-files limit of a running process. */
export function nofileLimit(pid: number): number | null {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}
