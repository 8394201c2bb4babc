// Holds N idle PostgreSQL client connections open against a server or proxy: raw sockets,
// startup message, authentication (SCRAM-SHA-256, md5 or cleartext), then nothing until
// told to close. Run as its own process (with a raised open-files limit) by bench/e2e.ts:
//   node dist/bench/e2e/idle-clients.js '{"port":6432,"user":"app","password":"pw","database":"bench","count":10000}'
// It prints one JSON line when every connection is open (or failed), then waits for a line
// "check" (run SELECT 1 on a sample of connections) or "close" on stdin.
import { connect, type Socket } from 'node:net'
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'

interface Options {
  port: number
  user: string
  password: string
  database: string
  count: number
  /** connections being opened at the same time */
  concurrency?: number
  /** tenants to cycle through with options=-c app.tenant=… (none: no options) */
  tenants?: string[]
  timeoutMs?: number
}

const opts: Options = JSON.parse(process.argv[2] ?? '{}')
const concurrency = opts.concurrency ?? 64
const deadline = Date.now() + (opts.timeoutMs ?? 300_000)

function msg(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5)
  head.write(type, 0, 'latin1')
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

function cstr(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf8')
}

function startup(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [Buffer.alloc(4)]
  parts[0].writeInt32BE(196608, 0)
  for (const [k, v] of Object.entries(params)) parts.push(cstr(k), cstr(v))
  parts.push(Buffer.from([0]))
  const body = Buffer.concat(parts)
  const len = Buffer.alloc(4)
  len.writeInt32BE(body.length + 4, 0)
  return Buffer.concat([len, body])
}

// Every connection of a run logs in with the same password; a server (or proxy) with a
// stored verifier sends the same salt every time, so the costly PBKDF2 runs once.
const saltedCache = new Map<string, Buffer>()
function saltedPassword(password: string, salt: string, iterations: number): Buffer {
  const key = `${salt}:${iterations}`
  let v = saltedCache.get(key)
  if (!v) {
    v = pbkdf2Sync(password.normalize('NFKC'), Buffer.from(salt, 'base64'), iterations, 32, 'sha256')
    saltedCache.set(key, v)
  }
  return v
}

interface Conn {
  socket: Socket
  ready: boolean
}

/** Open one connection and finish authentication; resolves when ReadyForQuery arrives. */
function open(i: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: opts.port })
    socket.setNoDelay(true)
    const params: Record<string, string> = { user: opts.user, database: opts.database, application_name: 'pgtenant-bench-idle' }
    if (opts.tenants?.length) params.options = `-c app.tenant=${opts.tenants[i % opts.tenants.length]}`
    let buf: Buffer = Buffer.alloc(0)
    let clientFirstBare = ''
    let clientNonce = ''
    let settled = false
    const fail = (err: Error): void => {
      if (settled) return
      settled = true
      socket.destroy()
      reject(err)
    }
    socket.setTimeout(60_000, () => fail(new Error('timeout during startup')))
    socket.on('error', fail)
    socket.on('close', () => fail(new Error('closed during startup')))
    socket.on('connect', () => socket.write(startup(params)))
    socket.on('data', (chunk: Buffer) => {
      if (settled) return
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
      while (buf.length >= 5) {
        const len = buf.readInt32BE(1)
        if (buf.length < len + 1) break
        const type = String.fromCharCode(buf[0])
        const body = buf.subarray(5, len + 1)
        buf = buf.subarray(len + 1)
        if (type === 'E') {
          const fields = body.toString('utf8').split('\0')
          return fail(
            new Error(
              fields
                .filter((f) => f[0] === 'C' || f[0] === 'M')
                .map((f) => f.slice(1))
                .join(' '),
            ),
          )
        }
        if (type === 'R') {
          const code = body.readInt32BE(0)
          if (code === 0) continue
          if (code === 3) socket.write(msg('p', cstr(opts.password)))
          else if (code === 5) {
            const inner = createHash('md5')
              .update(opts.password + opts.user)
              .digest('hex')
            const outer = createHash('md5').update(inner).update(body.subarray(4, 8)).digest('hex')
            socket.write(msg('p', cstr('md5' + outer)))
          } else if (code === 10) {
            const mechs = body.subarray(4).toString('utf8').split('\0')
            if (!mechs.includes('SCRAM-SHA-256')) return fail(new Error(`no SCRAM-SHA-256 in ${mechs.join(',')}`))
            clientNonce = randomBytes(18).toString('base64')
            clientFirstBare = `n=,r=${clientNonce}`
            const first = Buffer.from('n,,' + clientFirstBare, 'utf8')
            const len4 = Buffer.alloc(4)
            len4.writeInt32BE(first.length, 0)
            socket.write(msg('p', Buffer.concat([cstr('SCRAM-SHA-256'), len4, first])))
          } else if (code === 11) {
            const serverFirst = body.subarray(4).toString('utf8')
            const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]))
            if (!attrs.r?.startsWith(clientNonce)) return fail(new Error('bad SCRAM server nonce'))
            const salted = saltedPassword(opts.password, attrs.s, Number(attrs.i))
            const clientKey = createHmac('sha256', salted).update('Client Key').digest()
            const storedKey = createHash('sha256').update(clientKey).digest()
            const withoutProof = `c=biws,r=${attrs.r}`
            const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`
            const signature = createHmac('sha256', storedKey).update(authMessage).digest()
            const proof = Buffer.alloc(32)
            for (let k = 0; k < 32; k++) proof[k] = clientKey[k] ^ signature[k]
            socket.write(msg('p', Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8')))
          } else if (code === 12) {
            /* server signature: not verified, loopback benchmark */
          } else return fail(new Error(`unsupported authentication request ${code}`))
        } else if (type === 'Z') {
          settled = true
          socket.setTimeout(0)
          socket.removeAllListeners('data')
          socket.removeAllListeners('close')
          socket.removeAllListeners('error')
          const conn: Conn = { socket, ready: true }
          socket.on('error', () => (conn.ready = false))
          socket.on('close', () => (conn.ready = false))
          return resolve(conn)
        }
        // S (ParameterStatus), K (BackendKeyData), N (notice): nothing to do.
      }
    })
  })
}

/** SELECT 1 on one open connection; resolves true on ReadyForQuery after a row. */
function check(conn: Conn): Promise<boolean> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0)
    let sawRow = false
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      conn.socket.removeListener('data', onData)
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), 20_000)
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk])
      while (buf.length >= 5) {
        const len = buf.readInt32BE(1)
        if (buf.length < len + 1) return
        const type = String.fromCharCode(buf[0])
        buf = buf.subarray(len + 1)
        if (type === 'D') sawRow = true
        if (type === 'E') sawRow = false
        if (type === 'Z') return done(sawRow)
      }
    }
    conn.socket.on('data', onData)
    conn.socket.write(msg('Q', cstr('SELECT 1')))
  })
}

async function main(): Promise<void> {
  const started = Date.now()
  const conns: Conn[] = []
  const errors = new Map<string, number>()
  let next = 0
  let failed = 0
  const worker = async (): Promise<void> => {
    while (next < opts.count && Date.now() < deadline) {
      const i = next++
      try {
        conns.push(await open(i))
      } catch (err) {
        failed++
        const m = (err as Error).message
        errors.set(m, (errors.get(m) ?? 0) + 1)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, opts.count) }, worker))
  const report = (event: string, extra: object = {}): void =>
    void process.stdout.write(
      JSON.stringify({
        event,
        open: conns.filter((c) => c.ready).length,
        failed,
        errors: Object.fromEntries([...errors].slice(0, 3)),
        ms: Date.now() - started,
        ...extra,
      }) + '\n',
    )
  report('ready')
  const rl = createInterface({ input: process.stdin })
  rl.on('line', async (line) => {
    if (line.trim() === 'check') {
      const live = conns.filter((c) => c.ready)
      const step = Math.max(1, Math.floor(live.length / 20))
      const sample = live.filter((_, i) => i % step === 0).slice(0, 20)
      const results = await Promise.all(sample.map(check))
      report('checked', { checked: sample.length, answered: results.filter(Boolean).length })
    } else if (line.trim() === 'close') {
      for (const c of conns) c.socket.destroy()
      report('closed')
      process.exit(0)
    }
  })
  rl.on('close', () => process.exit(0))
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ event: 'error', error: String(err) }) + '\n')
  process.exit(1)
})
