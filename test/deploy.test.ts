// Static checks of the deployment files (no Docker engine here): everything parses, compose
// and kustomize reference only files that exist, the image starts the documented command,
// the sample configs are valid pgtenant configs, and dashboards/alerts use only metrics the
// running proxy really exports.
import t, { type Test } from 'tap'
import YAML from 'yaml'
import { readFileSync, readdirSync, statSync, existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join, dirname, resolve, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseConfig, POOL_DEFAULTS } from '../server/config.js'
import { startPostgres, freePort } from './helpers/pg-server.js'
import { startProxy, basicYaml } from './helpers/proxy.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const DEPLOY = join(ROOT, 'deploy')

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)]))
}
const files = walk(DEPLOY)
const yamlFiles = files.filter((f) => /\.ya?ml$/.test(f))
const ENV = { APP_PASSWORD: 'a', ADMIN_PASSWORD: 'b', DB_PASSWORD: 'c' }

/** Runs a tool if it is installed; undefined (and a printed reason) when it is not. */
function runIfInstalled(t: Test, cmd: string, args: string[]): { status: number | null; output: string } | undefined {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    t.comment(`${cmd} is not installed: skipping "${cmd} ${args.join(' ')}"`)
    t.skip(`${cmd} ${args.join(' ')}: ${cmd} is not installed`, () => {})
    return undefined
  }
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

t.test('every YAML and JSON file parses', async (t) => {
  t.ok(yamlFiles.length >= 15, `${yamlFiles.length} YAML files`)
  for (const f of yamlFiles) {
    const docs = YAML.parseAllDocuments(readFileSync(f, 'utf8'))
    t.same(
      docs.flatMap((d) => d.errors.map((e) => e.message)),
      [],
      relative(ROOT, f),
    )
  }
  for (const f of files.filter((f) => f.endsWith('.json'))) t.doesNotThrow(() => JSON.parse(readFileSync(f, 'utf8')), relative(ROOT, f))
})

t.test('compose files reference only images, files and services that exist', async (t) => {
  const composes = yamlFiles.filter((f) => f.endsWith('docker-compose.yml'))
  t.equal(composes.length, 2, 'the Citus stack and the per-tenant stack')
  for (const file of composes) {
    const dir = dirname(file)
    const doc = YAML.parse(readFileSync(file, 'utf8'), { merge: true }) as { services: Record<string, any> }
    const names = new Set(Object.keys(doc.services))
    const published: string[] = []
    for (const [name, svc] of Object.entries(doc.services)) {
      const where = `${relative(ROOT, file)} ${name}`
      t.ok(svc.image || svc.build, `${where}: has an image or a build`)
      if (svc.image) t.match(svc.image, /^[a-z0-9./-]+:[A-Za-z0-9._-]+$/, `${where}: image has a tag`)
      if (svc.build) {
        const ctx = resolve(dir, svc.build.context ?? svc.build)
        t.ok(existsSync(join(ctx, svc.build.dockerfile ?? 'Dockerfile')), `${where}: Dockerfile exists`)
      }
      for (const v of svc.volumes ?? []) {
        const src = String(v).split(':')[0]
        if (src.startsWith('.') || src.startsWith('/')) t.ok(existsSync(resolve(dir, src)), `${where}: mounted ${src} exists`)
      }
      for (const dep of Object.keys(svc.depends_on ?? {})) t.ok(names.has(dep), `${where}: depends on existing service ${dep}`)
      for (const p of svc.ports ?? []) published.push(String(p).split(':')[0])
    }
    t.equal(new Set(published).size, published.length, `${relative(ROOT, file)}: published ports do not collide`)
  }
})

t.test('kustomizations reference files that exist', async (t) => {
  for (const file of yamlFiles.filter((f) => f.endsWith('kustomization.yaml'))) {
    const doc = YAML.parse(readFileSync(file, 'utf8'))
    for (const r of [...(doc.resources ?? []), ...(doc.patches ?? []).map((p: { path: string }) => p.path)])
      t.ok(existsSync(resolve(dirname(file), r)), `${relative(ROOT, file)}: ${r}`)
  }
  // base must apply on a cluster without the Prometheus operator's CRDs; the ServiceMonitor
  // lives in an overlay that adds it to the base.
  const base = YAML.parse(readFileSync(join(DEPLOY, 'k8s/base/kustomization.yaml'), 'utf8'))
  const kinds = (base.resources as string[]).map((r) => YAML.parse(readFileSync(join(DEPLOY, 'k8s/base', r), 'utf8')).apiVersion as string)
  t.same(
    kinds.filter((v) => !/^(v1|apps\/v1|policy\/v1)$/.test(v)),
    [],
    'base uses only core Kubernetes APIs',
  )
  const op = YAML.parse(readFileSync(join(DEPLOY, 'k8s/overlays/prometheus-operator/kustomization.yaml'), 'utf8'))
  t.same(op.resources, ['../../base', 'servicemonitor.yaml'], 'the prometheus-operator overlay is the base plus the ServiceMonitor')
  t.equal(YAML.parse(readFileSync(join(DEPLOY, 'k8s/overlays/prometheus-operator/servicemonitor.yaml'), 'utf8')).kind, 'ServiceMonitor')
  for (const dir of ['base', 'overlays/production', 'overlays/prometheus-operator']) {
    const r = runIfInstalled(t, 'kubectl', ['kustomize', join('deploy/k8s', dir)])
    if (r) t.equal(r.status, 0, `kubectl kustomize deploy/k8s/${dir}${r.status === 0 ? '' : `: ${r.output}`}`)
    if (r && dir === 'base') t.notMatch(r.output, /ServiceMonitor/, 'base renders no ServiceMonitor')
  }
  const deployment = YAML.parse(readFileSync(join(DEPLOY, 'k8s/base/deployment.yaml'), 'utf8'))
  const c = deployment.spec.template.spec.containers[0]
  t.equal(deployment.spec.replicas, 2)
  t.same([c.readinessProbe.httpGet.path, c.livenessProbe.httpGet.path], ['/readyz', '/healthz'])
  t.same(c.args, ['--config', '/etc/pgtenant/pgtenant.yaml'])
})

t.test('the image runs the documented start command with the documented ports', async (t) => {
  const docker = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  const start = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.start as string
  const entry = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(docker)![1]) as string[]
  const cmd = JSON.parse(/^CMD (.+)$/m.exec(docker)![1]) as string[]
  t.ok(entry.join(' ').endsWith(start), `ENTRYPOINT runs "${start}" (npm start)`)
  t.same(cmd, ['--config', '/etc/pgtenant/pgtenant.yaml'])
  t.match(readFileSync(join(ROOT, 'README.md'), 'utf8'), /npm start -- --config/, 'the README documents --config')
  t.match(docker, /^EXPOSE 6432 9187$/m)
  t.match(docker, /HEALTHCHECK[\s\S]*127\.0\.0\.1:9187\/healthz/)
  t.match(docker, /^USER node$/m, 'runs as non-root')
  for (const f of [join(DEPLOY, 'compose/citus/pgtenant.yaml'), join(DEPLOY, 'compose/per-tenant/pgtenant.yaml')]) {
    const config = parseConfig(readFileSync(f, 'utf8'), ENV, dirname(f))
    t.same([config.listen.port, config.metrics?.port], [6432, 9187], `${relative(ROOT, f)} is valid and listens where the image exposes`)
  }
  // The image's default config: metrics on 0.0.0.0:9187, which the HEALTHCHECK needs.
  t.match(docker, /^COPY deploy\/docker\/pgtenant\.yaml \/etc\/pgtenant\/pgtenant\.yaml$/m, 'the image ships a default config')
  t.match(
    readFileSync(join(ROOT, '.dockerignore'), 'utf8'),
    /^!deploy\/docker\/pgtenant\.yaml$/m,
    '.dockerignore lets the default config into the build context',
  )
  const imageConfig = parseConfig(
    readFileSync(join(DEPLOY, 'docker/pgtenant.yaml'), 'utf8'),
    { ...ENV, DATABASE_URL: 'postgres://app:pw@db:5432/saas' },
    join(DEPLOY, 'docker'),
  )
  t.same(
    [imageConfig.listen, imageConfig.metrics],
    [
      { host: '0.0.0.0', port: 6432 },
      { host: '0.0.0.0', port: 9187 },
    ],
    'the default config listens on 0.0.0.0 and enables metrics for the HEALTHCHECK',
  )
  t.match(
    readFileSync(join(DEPLOY, 'README.md'), 'utf8'),
    /default config[\s\S]{0,300}metrics: 0\.0\.0\.0:9187/,
    'deploy/README.md says the default config enables metrics',
  )
  const cm = YAML.parse(readFileSync(join(DEPLOY, 'k8s/base/configmap.yaml'), 'utf8'))
  t.equal(parseConfig(cm.data['pgtenant.yaml'], ENV, DEPLOY).metrics?.port, 9187, 'the ConfigMap holds a valid config')
})

t.test('dashboards and alerts use only metrics the running proxy exports', async (t) => {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  const mport = await freePort()
  const proxy = await startProxy(basicYaml(server, { extra: `metrics: 127.0.0.1:${mport}\ntenant: { column: tenant_id }` }))
  t.teardown(() => proxy.stop())
  const text = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text()
  const exported = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]))
  const known = (name: string): boolean => {
    if (exported.has(name)) return true
    const base = name.replace(/_(bucket|sum|count)$/, '')
    return base !== name && exported.get(base) === 'histogram'
  }
  const used = new Set<string>()
  const dashboard = readFileSync(join(DEPLOY, 'grafana/pgtenant.json'), 'utf8')
  const alerts = readFileSync(join(DEPLOY, 'prometheus/alerts.yml'), 'utf8')
  for (const m of `${dashboard}\n${alerts}`.matchAll(/\bpgtenant_[a-z_]+/g)) used.add(m[0])
  t.ok(used.size >= 10, `${used.size} metric names used`)
  t.same(
    [...used].filter((n) => !known(n)),
    [],
    'every metric used is exported',
  )
  const panels = JSON.parse(dashboard)
    .panels.map((p: { title: string }) => p.title)
    .join(' | ')
  for (const want of [/Transactions per second/, /Latency/, /Refused/, /Pool saturation/, /cache hit ratio/, /Routing decisions/]) t.match(panels, want)
})

t.test('prometheus.yml passes promtool as shipped (rule files relative to it)', async (t) => {
  const file = join(DEPLOY, 'prometheus/prometheus.yml')
  const doc = YAML.parse(readFileSync(file, 'utf8'))
  for (const r of doc.rule_files as string[]) {
    t.notOk(r.startsWith('/'), `rule file ${r} is relative to prometheus.yml, as promtool resolves it`)
    t.ok(existsSync(resolve(dirname(file), r)), `rule file ${r} exists beside prometheus.yml`)
  }
  const config = runIfInstalled(t, 'promtool', ['check', 'config', 'deploy/prometheus/prometheus.yml'])
  if (config) t.equal(config.status, 0, `promtool check config: ${config.output.trim()}`)
  const rules = runIfInstalled(t, 'promtool', ['check', 'rules', 'deploy/prometheus/alerts.yml'])
  if (rules) t.equal(rules.status, 0, `promtool check rules: ${rules.output.trim()}`)
})

t.test('the sample config has every key, commented, and is valid', async (t) => {
  const file = join(DEPLOY, 'pgtenant.example.yaml')
  const text = readFileSync(file, 'utf8')
  const env = { ...ENV, ACME_PASSWORD: 'd' }
  // As shipped (optional keys commented out, tls needs files that are not there).
  const shipped = parseConfig(text, env, DEPLOY)
  t.same(shipped.pool, POOL_DEFAULTS, 'pool values are the defaults the comments state')
  t.same(
    [shipped.log_level, shipped.log_format, shipped.log, shipped.workers, shipped.auth],
    ['info', 'json', { slow_statement_ms: 0, stats_interval_ms: 60000 }, 1, 'scram-sha-256'],
  )
  // With every commented-out "# key:" line switched on, next to a certificate and a key.
  const full = text.replace(/^(\s*)# ( *[a-z_]+:(?: .*)?)$/gm, '$1$2')
  t.not(full, text, 'there are optional keys to switch on')
  const dir = mkdtempSync(join(tmpdir(), 'pgtenant-example-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'server.crt'), 'cert')
  writeFileSync(join(dir, 'server.key'), 'key')
  const all = parseConfig(full, env, dir)
  t.ok(all.tls && all.citus && all.placement.tenants.bigcorp === 'eu', 'tls, citus and placement.tenants are valid when switched on')
  // Every key of the README's configuration reference appears (NAME: any user or backend).
  const doc = YAML.parse(full)
  const readmeAll = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const from = readmeAll.indexOf('\n## Configuration')
  const readme = readmeAll.slice(from, readmeAll.indexOf('\n## ', from + 1))
  const keys = [...readme.matchAll(/^\| ((?:`[a-z_.A-Z]+`(?:, )?)+) \|/gm)].flatMap((m) => [...m[1].matchAll(/`([^`]+)`/g)].map((k) => k[1]))
  t.ok(keys.length >= 35, `${keys.length} keys in the README's table`)
  const has = (o: unknown, parts: string[]): boolean => {
    if (parts.length === 0) return o !== undefined
    if (typeof o !== 'object' || o === null) return false
    if (parts[0] === 'NAME') return Object.values(o).some((v) => has(v, parts.slice(1)))
    return has((o as Record<string, unknown>)[parts[0]], parts.slice(1))
  }
  t.same(
    keys.filter((k) => !has(doc, k.split('.'))),
    [],
    'every key in the README is in the sample',
  )
  // Every key line has a comment: on the line, or among the comment lines right above it
  // (user and backend names excepted).
  const lines = text.split('\n')
  const uncommented = lines.flatMap((line, i) => {
    if (!/^\s*[a-z_]+:/.test(line) || line.includes('#')) return []
    if (
      /^ {2}[a-z_]+:$/.test(line) &&
      /^(users|backends):/.test(
        lines
          .slice(0, i)
          .reverse()
          .find((l) => /^[a-z]/.test(l)) ?? '',
      )
    )
      return []
    return /^\s*#/.test(lines[i - 1] ?? '') ? [] : [line.trim()]
  })
  t.same(uncommented, [], 'every key is commented')
  t.match(readFileSync(join(DEPLOY, 'README.md'), 'utf8'), /pgtenant\.example\.yaml/, 'deploy/README.md points to it')
})

t.test('the systemd unit', async (t) => {
  const text = readFileSync(join(DEPLOY, 'systemd/pgtenant.service'), 'utf8')
  const v = (key: string): string | undefined => new RegExp(`^${key}=(.*)$`, 'm').exec(text)?.[1]
  t.equal(v('Type'), 'simple')
  t.match(v('ExecStart'), /pgtenant --config \/etc\/pgtenant\/pgtenant\.yaml$/)
  t.equal(v('ExecReload'), '/bin/kill -HUP $MAINPID', 'reload is SIGHUP')
  t.equal(v('KillSignal'), 'SIGTERM', 'stop is the safe shutdown')
  t.ok(Number(v('TimeoutStopSec')) * 1000 > POOL_DEFAULTS.shutdown_timeout_ms, 'systemd waits longer than pool.shutdown_timeout_ms before SIGKILL')
  t.ok(v('User') && v('User') !== 'root', 'runs as a non-root user')
  t.ok(Number(v('LimitNOFILE')) >= 65536, 'LimitNOFILE is high')
  for (const k of ['NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'RestrictAddressFamilies', 'CapabilityBoundingSet', 'SystemCallFilter'])
    t.ok(v(k) !== undefined, `hardening: ${k}`)
  t.notOk(/^MemoryDenyWriteExecute=true/m.test(text), 'no MemoryDenyWriteExecute (V8 JIT needs W+X memory)')
  t.match(readFileSync(join(DEPLOY, 'README.md'), 'utf8'), /systemd\/pgtenant\.service/, 'deploy/README.md points to it')
})
