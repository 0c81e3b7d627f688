/**
 * deploy/: the Dockerfile, compose file, Grafana provisioning and Kubernetes manifests parse and
 * agree with the code: env var names are CONFIG_TABLE's and their values pass `loadConfig`,
 * ports match the configured/default ports, probe and scrape paths are real routes of
 * `buildServer`, mounted files exist, and the image installs with the same `npm ci` as CI.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { CONFIG_TABLE, type GatewayConfig, loadConfig } from '../../gateway/config.ts'
import { buildServer } from '../../gateway/http/server.ts'
import { createSilentLogger } from '../../gateway/observability/logger.ts'
import { MemoryService } from '../http/memory-service.ts'
import { DEPLOY, dashboardExpressions, REPO, readText, readYaml, readYamlDocuments } from './helpers.ts'

const ENV_NAMES = new Set(CONFIG_TABLE.map((r) => r.env))
const DEFAULTS = loadConfig({ env: {} })

/** Asserts env names are documented settings and the values load; returns the config. */
function checkEnv(env: Record<string, string>, where: string): GatewayConfig {
  for (const name of Object.keys(env))
    assert.ok(ENV_NAMES.has(name), `${where}: ${name} is not in CONFIG_TABLE`)
  return loadConfig({ env })
}

let app: FastifyInstance
before(async () => {
  app = buildServer({
    service: new MemoryService(),
    metrics: { contentType: 'text/plain', metricsText: async () => '' },
    logger: createSilentLogger(),
    config: { apiToken: undefined, bodyLimitBytes: 1024 },
  })
  await app.ready()
})
after(() => app.close())

function assertRoute(path: string, where: string): void {
  assert.ok(app.hasRoute({ method: 'GET', url: path }), `${where}: GET ${path} is a route of the API`)
}

// ---------------------------------------------------------------------------------------------
interface DockerInstruction {
  readonly op: string
  readonly args: string
}

function dockerInstructions(text: string): DockerInstruction[] {
  const logical = text
    .replace(/\\\r?\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  return logical.map((l) => {
    const i = l.search(/\s/)
    return { op: l.slice(0, i).toUpperCase(), args: l.slice(i + 1).trim() }
  })
}

describe('deploy/Dockerfile', () => {
  const text = readText('deploy/Dockerfile')
  const ins = dockerInstructions(text)
  const of = (op: string) => ins.filter((i) => i.op === op).map((i) => i.args)

  test('multi-stage on node:24-slim, running as a non-root user', () => {
    assert.ok(of('FROM').length >= 2, 'multi-stage')
    assert.ok(
      of('ARG').some((a) => a === 'NODE_IMAGE=node:24-slim'),
      'base image node:24-slim',
    )
    assert.ok(of('FROM').every((f) => /^\$\{NODE_IMAGE\} AS \w+$/.test(f)))
    const users = of('USER')
    assert.ok(users.length > 0 && !['root', '0'].includes(users.at(-1)!), 'final USER is not root')
  })

  test('the only install step is `npm ci --omit=dev`, the same `npm ci` CI runs', () => {
    const installs = of('RUN').filter((r) => /\b(npm|yarn|pnpm|npx)\b/.test(r))
    assert.equal(installs.length, 1, 'exactly one RUN touches the package manager')
    assert.match(installs[0]!, /^npm ci --omit=dev\b/)
    assert.ok(!/\bnpm (install|i|add|update)\b|\byarn\b|\bpnpm\b/.test(text), 'no other install path')
    assert.match(readText('.ci/run'), /^npm ci\b/m, 'CI installs with npm ci from the same lockfile')
    assert.ok(
      of('COPY').some((c) => /package-lock\.json/.test(c)),
      'the lockfile is copied',
    )
  })

  test('env, volume, ports, healthcheck and command agree with the config and the code', () => {
    const env: Record<string, string> = {}
    for (const line of of('ENV')) {
      for (const m of line.matchAll(/(\w+)=(\S+)/g)) if (m[1]!.startsWith('CODEX_BT_')) env[m[1]!] = m[2]!
    }
    const config = checkEnv(env, 'Dockerfile ENV')
    assert.equal(config.dataDir, '/data')
    assert.equal(config.apiHost, '0.0.0.0')
    assert.deepEqual(of('VOLUME'), ['/data'])
    const exposed = of('EXPOSE').flatMap((e) => e.split(/\s+/))
    assert.deepEqual(
      exposed.sort(),
      [`${config.apiPort}/tcp`, `${config.peerPort}/tcp`, `${config.peerPort}/udp`].sort(),
    )
    assert.equal(config.apiPort, DEFAULTS.apiPort)
    assert.equal(config.peerPort, DEFAULTS.peerPort)

    const health = of('HEALTHCHECK')[0]!
    assert.match(health, /CMD \["node", "-e", ".*fetch\(/)
    const path = /'\/(\w+)'\)/.exec(health)?.[1]
    assert.equal(path, 'healthz')
    assertRoute(`/${path}`, 'HEALTHCHECK')

    const cmd = JSON.parse(of('CMD').at(-1)!) as string[]
    assert.deepEqual(cmd, ['node', 'gateway/cli/bin.ts', 'serve'])
    assert.ok(existsSync(REPO + cmd[1]!), `${cmd[1]} exists`)
  })

  test('every COPY source exists and is let through the Dockerfile-specific .dockerignore', () => {
    const ignore = readText('deploy/Dockerfile.dockerignore')
    for (const c of of('COPY')) {
      if (c.startsWith('--from=')) continue
      const parts = c.split(/\s+/)
      for (const src of parts.slice(0, -1)) {
        assert.ok(existsSync(REPO + src), `${src} exists`)
        const allowed = ignore.includes(`!${src}\n`) || ignore.includes(`!${src}/**`)
        assert.ok(allowed, `${src} is not excluded from the build context`)
      }
    }
  })
})

// ---------------------------------------------------------------------------------------------
interface ComposeService {
  image?: string
  build?: { context: string; dockerfile: string }
  command?: string[]
  environment?: Record<string, string>
  ports?: string[]
  volumes?: string[]
  depends_on?: unknown
}

describe('deploy/compose.yaml', () => {
  const compose = readYaml<{ services: Record<string, ComposeService>; volumes: Record<string, unknown> }>(
    'deploy/compose.yaml',
  )
  const { codex, gateway, prometheus, grafana } = compose.services

  test('has a real Codex node, the gateway, Prometheus and Grafana', () => {
    assert.ok(codex && gateway && prometheus && grafana)
    assert.equal(codex.image, 'codexstorage/nim-codex:latest')
    assert.ok(existsSync(`${DEPLOY}${gateway.build!.context}/${gateway.build!.dockerfile}`))
  })

  test('the Codex node: API on all interfaces, long block TTL (seconds), metrics on 8008, data volume', () => {
    const args = codex!.command!
    const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1]
    assert.equal(flag('api-bindaddr'), '0.0.0.0')
    const ttlSeconds = Number(flag('block-ttl'))
    assert.ok(Number.isInteger(ttlSeconds) && ttlSeconds >= 365 * 86400, 'block TTL ≥ one year, in seconds')
    assert.ok(args.includes('--metrics'))
    assert.equal(flag('metrics-address'), '0.0.0.0')
    assert.equal(flag('metrics-port'), '8008')
    const dataDir = flag('data-dir')!
    assert.ok(codex!.volumes!.some((v) => v.endsWith(`:${dataDir}`)))
  })

  test('gateway env names are CONFIG_TABLE settings; values load; ports and volume match them', () => {
    const env = Object.fromEntries(
      Object.entries(gateway!.environment!).map(([k, v]) => [k, String(v).replace(/\$\{[^}]*\}/g, '')]),
    )
    const config = checkEnv(env, 'compose gateway')
    assert.equal(config.codexUrl, 'http://codex:8080')
    const codexApiPort = codex!.command!.find((a) => a.startsWith('--api-port='))?.split('=')[1]
    assert.equal(new URL(config.codexUrl!).port, codexApiPort, 'CODEX_URL points at the Codex API port')
    assert.equal(config.apiPort, DEFAULTS.apiPort)
    assert.equal(config.peerPort, DEFAULTS.peerPort)
    const ports = gateway!.ports!
    assert.ok(
      ports.some((p) => p.endsWith(`:${config.apiPort}:${config.apiPort}/tcp`)),
      'API port published',
    )
    assert.ok(ports.includes(`${config.peerPort}:${config.peerPort}/tcp`), 'peer port tcp')
    assert.ok(ports.includes(`${config.peerPort}:${config.peerPort}/udp`), 'peer port udp (DHT/uTP)')
    assert.ok(
      gateway!.volumes!.some((v) => v.endsWith(`:${config.dataDir}`)),
      'data volume at DATA_DIR',
    )
  })

  test('Prometheus mounts the repo config and rules and scrapes the gateway and Codex ports', () => {
    for (const v of prometheus!.volumes!) {
      if (v.startsWith('./')) assert.ok(existsSync(DEPLOY + v.split(':')[0]!), `${v} exists`)
    }
    const prom = readYaml<{
      rule_files: string[]
      scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[]
    }>('deploy/prometheus/prometheus.yml')
    const jobs = Object.fromEntries(prom.scrape_configs.map((s) => [s.job_name, s]))
    const gw = jobs['codex-bt-gateway']!
    assert.deepEqual(gw.static_configs[0]!.targets, [`gateway:${DEFAULTS.apiPort}`])
    assertRoute(gw.metrics_path, 'prometheus.yml')
    const codexPort = codex!.command!.find((a) => a.startsWith('--metrics-port='))?.split('=')[1]
    assert.deepEqual(jobs.codex!.static_configs[0]!.targets, [`codex:${codexPort}`])
    for (const f of prom.rule_files) assert.ok(existsSync(`${DEPLOY}prometheus/${f}`))
  })

  test('Grafana: provisioned datasource points at the Prometheus service; the dashboard uses it', () => {
    const mounts = Object.fromEntries(
      grafana!.volumes!.filter((v) => v.startsWith('./')).map((v) => v.split(':')),
    )
    for (const src of Object.keys(mounts)) assert.ok(existsSync(DEPLOY + src), `${src} exists`)
    const ds = readYaml<{ datasources: { uid: string; type: string; url: string }[] }>(
      'deploy/grafana/provisioning/datasources/prometheus.yaml',
    ).datasources[0]!
    assert.equal(ds.type, 'prometheus')
    assert.equal(ds.url, 'http://prometheus:9090')
    const provider = readYaml<{ providers: { options: { path: string } }[] }>(
      'deploy/grafana/provisioning/dashboards/codex-bt.yaml',
    ).providers[0]!
    assert.equal(
      mounts['./grafana/dashboards'],
      provider.options.path,
      'dashboards mounted where the provider looks',
    )
    assert.equal(mounts['./grafana/provisioning'], '/etc/grafana/provisioning')
    const dashboard = JSON.parse(readText('deploy/grafana/dashboards/gateway.json')) as {
      uid: string
      panels: { datasource?: { uid?: string }; type: string; targets?: { datasource?: { uid?: string } }[] }[]
    }
    assert.ok(dashboard.uid)
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      assert.equal(p.datasource?.uid, ds.uid)
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, ds.uid)
    }
    assert.ok(dashboardExpressions(dashboard as never).length >= 20)
  })
})

// ---------------------------------------------------------------------------------------------
interface K8sObject {
  kind: string
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }
  data?: Record<string, string>
  stringData?: Record<string, string>
  spec?: Record<string, unknown>
}

interface Container {
  name: string
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[]
  ports: { name: string; containerPort: number; protocol: string }[]
  volumeMounts: { name: string; mountPath: string }[]
  livenessProbe?: { httpGet?: { path: string; port: string } }
  readinessProbe?: { httpGet?: { path: string; port: string } }
  startupProbe?: { httpGet?: { path: string; port: string } }
}

describe('deploy/k8s', () => {
  const kustomization = readYaml<{ resources: string[] }>('deploy/k8s/kustomization.yaml')
  const objects = kustomization.resources.flatMap((f) => readYamlDocuments(`deploy/k8s/${f}`) as K8sObject[])
  const find = (kind: string, name: string) => {
    const o = objects.find((x) => x.kind === kind && x.metadata.name === name)
    assert.ok(o, `${kind}/${name}`)
    return o
  }
  const sts = find('StatefulSet', 'codex-bt-gateway')
  const podSpec = (
    sts.spec as { template: { metadata: K8sObject['metadata']; spec: { containers: Container[] } } }
  ).template
  const container = podSpec.spec.containers[0]!
  const cm = find('ConfigMap', 'codex-bt-gateway')
  const secret = find('Secret', 'codex-bt-gateway')

  test('every kustomization resource exists and parses into typed objects', () => {
    for (const f of kustomization.resources) assert.ok(existsSync(`${DEPLOY}k8s/${f}`), f)
    for (const o of objects) assert.ok(o.kind && o.metadata?.name, JSON.stringify(o).slice(0, 80))
  })

  test('ConfigMap + Secret: CONFIG_TABLE names, values that load, used through envFrom', () => {
    const env = { ...cm.data, ...secret.stringData }
    const config = checkEnv(env, 'k8s ConfigMap/Secret')
    assert.deepEqual(
      container.envFrom?.map((e) => e.configMapRef?.name ?? e.secretRef?.name),
      [cm.metadata.name, secret.metadata.name],
    )
    const port = (name: string) => container.ports.find((p) => p.name === name)
    assert.equal(port('api')?.containerPort, config.apiPort)
    assert.equal(port('peers')?.containerPort, config.peerPort)
    assert.equal(port('peers')?.protocol, 'TCP')
    assert.equal(port('dht')?.containerPort, config.dhtPort)
    assert.equal(port('dht')?.protocol, 'UDP')
    assert.equal(config.apiPort, DEFAULTS.apiPort)
    assert.ok(container.volumeMounts.some((m) => m.name === 'data' && m.mountPath === config.dataDir))
    const codexSvc = find('Service', new URL(config.codexUrl!).hostname)
    const codexPorts = (codexSvc.spec as { ports: { port: number }[] }).ports.map((p) => p.port)
    assert.ok(
      codexPorts.includes(Number(new URL(config.codexUrl!).port)),
      'CODEX_URL matches the codex Service',
    )
  })

  test('StatefulSet keeps /data on a volumeClaimTemplate; probes hit /healthz and /readyz', () => {
    const claims = (sts.spec as { volumeClaimTemplates: { metadata: { name: string } }[] })
      .volumeClaimTemplates
    assert.ok(claims.some((c) => c.metadata.name === 'data'))
    assert.equal(container.livenessProbe?.httpGet?.path, '/healthz')
    assert.equal(container.readinessProbe?.httpGet?.path, '/readyz')
    for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) {
      if (!probe?.httpGet) continue
      assertRoute(probe.httpGet.path, 'k8s probe')
      assert.ok(
        container.ports.some((p) => p.name === probe.httpGet!.port),
        `probe port ${probe.httpGet.port}`,
      )
    }
  })

  test('scrape annotations and the ServiceMonitor point at the metrics route on the API port', () => {
    const ann = podSpec.metadata.annotations ?? {}
    assert.equal(ann['prometheus.io/scrape'], 'true')
    assert.equal(
      Number(ann['prometheus.io/port']),
      container.ports.find((p) => p.name === 'api')?.containerPort,
    )
    assertRoute(ann['prometheus.io/path']!, 'scrape annotation')
    const sm = find('ServiceMonitor', 'codex-bt-gateway')
    const smSpec = sm.spec as {
      jobLabel: string
      selector: { matchLabels: Record<string, string> }
      endpoints: { port: string; path: string }[]
    }
    const selected = objects.filter(
      (o) =>
        o.kind === 'Service' &&
        Object.entries(smSpec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v),
    )
    assert.equal(selected.length, 1, 'the ServiceMonitor selects exactly the API Service')
    const svc = selected[0]!
    assert.equal(
      svc.metadata.labels?.[smSpec.jobLabel],
      'codex-bt-gateway',
      'job label as in the alert rules',
    )
    const svcPorts = (svc.spec as { ports: { name: string; targetPort: string }[] }).ports
    for (const ep of smSpec.endpoints) {
      assert.ok(
        svcPorts.some((p) => p.name === ep.port),
        `endpoint port ${ep.port}`,
      )
      assertRoute(ep.path, 'ServiceMonitor')
    }
  })

  test('Services select the gateway pods and target declared container ports (peers on TCP and UDP)', () => {
    const podLabels = podSpec.metadata.labels ?? {}
    const services = objects.filter(
      (o) => o.kind === 'Service' && o.metadata.name.startsWith('codex-bt-gateway'),
    )
    assert.ok(services.length >= 2)
    for (const svc of services) {
      const spec = svc.spec as {
        selector: Record<string, string>
        ports: { targetPort: string; protocol: string }[]
      }
      for (const [k, v] of Object.entries(spec.selector))
        assert.equal(podLabels[k], v, `${svc.metadata.name} selector`)
      for (const p of spec.ports) {
        const target = container.ports.find((c) => c.name === p.targetPort)
        assert.ok(target, `${svc.metadata.name} → ${p.targetPort}`)
        assert.equal(target.protocol, p.protocol)
      }
    }
    const peers = find('Service', 'codex-bt-gateway-peers').spec as {
      ports: { port: number; protocol: string }[]
    }
    assert.deepEqual(peers.ports.map((p) => `${p.port}/${p.protocol}`).sort(), [
      `${DEFAULTS.peerPort}/TCP`,
      `${DEFAULTS.peerPort}/UDP`,
    ])
  })
})
