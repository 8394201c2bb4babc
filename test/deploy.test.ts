// Static checks of the deployment files (no Docker engine here): everything parses, compose
// and kustomize reference only files that exist, the image starts the documented command,
// the sample configs are valid pgtenant configs, and dashboards/alerts use only metrics the
// running proxy really exports.
import t from 'tap'
import YAML from 'yaml'
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs'
import { join, dirname, resolve, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseConfig } from '../server/config.js'
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

t.test('every YAML and JSON file parses', async (t) => {
  t.ok(yamlFiles.length >= 15, `${yamlFiles.length} YAML files`)
  for (const f of yamlFiles) {
    const docs = YAML.parseAllDocuments(readFileSync(f, 'utf8'))
    t.same(docs.flatMap((d) => d.errors.map((e) => e.message)), [], relative(ROOT, f))
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
    for (const r of [...(doc.resources ?? []), ...(doc.patches ?? []).map((p: { path: string }) => p.path)]) t.ok(existsSync(resolve(dirname(file), r)), `${relative(ROOT, file)}: ${r}`)
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
  t.same([...used].filter((n) => !known(n)), [], 'every metric used is exported')
  const panels = JSON.parse(dashboard).panels.map((p: { title: string }) => p.title).join(' | ')
  for (const want of [/Transactions per second/, /Latency/, /Refused/, /Pool saturation/, /cache hit ratio/, /Routing decisions/]) t.match(panels, want)
})
