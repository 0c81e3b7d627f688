/**
 * Every PromQL expression of the Grafana dashboard and the alert rules runs against a REAL
 * Prometheus that scrapes the real `createMetrics()` output (sources returning non-zero values)
 * every second, on 127.0.0.1 only. Each expression must parse and evaluate; dashboard queries
 * must return data (so their metric and label names exist); every metric name used must be in
 * METRIC_NAMES (histogram series included), `up`, or a default process metric the registry
 * really exposes; the alert rules must evaluate with health "ok".
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createMetrics, type GatewayMetrics, METRIC_NAMES } from '../../gateway/observability/metrics.ts'
import {
  alertRules,
  DEPLOY,
  dashboardExpressions,
  expandGrafanaVariables,
  findBinary,
  metricNamesIn,
  readText,
} from './helpers.ts'

const JOB = 'codex-bt-gateway'
const WAIT_LIMIT_MS = 45_000

interface PromResponse {
  status: 'success' | 'error'
  error?: string
  data?: { resultType: string; result: unknown[] }
}

async function freePort(): Promise<number> {
  const srv = createNetServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address() as { port: number }
  srv.close()
  await once(srv, 'close')
  return port
}

/** Non-zero stats that move between scrapes, so rates are non-zero too. */
function liveMetrics(): GatewayMetrics {
  const started = Date.now()
  const t = () => Math.floor((Date.now() - started) / 100) + 1
  const m = createMetrics({
    transfer: () => ({
      downloadedBytes: { peers: 1000 * t(), codex: 500 * t() },
      uploadedBytes: { peers: 700 * t(), codex: 900 * t() },
    }),
    torrents: () => [
      {
        infoHash: 'ab'.repeat(20),
        state: 'seeding',
        downloadedBytes: 10 * t(),
        uploadedBytes: 20 * t(),
        peers: 0,
      },
      {
        infoHash: 'cd'.repeat(32),
        state: 'downloading',
        downloadedBytes: 30 * t(),
        uploadedBytes: 5 * t(),
        peers: 4,
      },
    ],
    pieces: () => ({ verified: 10 * t(), failed: t() }),
    peersByClient: () => ({ 'qBittorrent 4.6.2': 3, 'libtorrent 2.0': 1 }),
    trackerAnnounces: () => ({ success: 3 * t(), error: t() }),
    dht: () => ({ nodes: 120 }),
    codex: () => ({ reachable: true }),
    cache: () => ({ hits: 9 * t(), misses: t(), bytes: 64 << 20, limitBytes: 2 << 30 }),
    staging: () => ({ usedBytes: 128 << 20, limitBytes: 1 << 30 }),
    archiveJobs: () => ({ active: 1, queued: 2, oldestActiveAgeSeconds: 30 }),
    seedVerifyFailures: () => t(),
  })
  return m
}

/** Feeds the push-style histograms a little on every scrape. */
function observeSome(m: GatewayMetrics, n: number): void {
  const route = '/api/codex/v1/data/{cid}'
  m.codexObserver.onRequest({
    operation: 'download',
    route,
    method: 'GET',
    status: 200,
    durationSeconds: 0.02 * n,
  })
  m.codexObserver.onRequest({
    operation: 'upload',
    route: '/api/codex/v1/data',
    method: 'POST',
    status: 500,
    durationSeconds: 0.3,
  })
  m.codexObserver.onBytes('in', 65536)
  m.codexObserver.onBytes('out', 4096)
  m.observeArchiveJob(40 + n, 'success')
  m.observeHttpRequest({ method: 'GET', route: '/torrents', status: 200, durationSeconds: 0.003 })
}

describe('PromQL of the dashboard and the alert rules against a real Prometheus', () => {
  let target: Server
  let prometheus: ChildProcess | undefined
  let promLog = ''
  let base = ''
  let dir = ''
  const metrics = liveMetrics()
  let exposedNames = new Set<string>()

  async function query(expr: string): Promise<PromResponse> {
    const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`)
    return (await res.json()) as PromResponse
  }

  async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + WAIT_LIMIT_MS
    while (Date.now() < deadline) {
      if (prometheus?.exitCode !== null)
        assert.fail(`prometheus exited while waiting for ${what}:\n${promLog}`)
      try {
        if (await check()) return
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 250))
    }
    assert.fail(`timed out waiting for ${what}:\n${promLog.slice(-3000)}`)
  }

  before(async () => {
    let scrapes = 0
    target = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end()
        return
      }
      observeSome(metrics, ++scrapes)
      metrics.metricsText().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      )
    })
    target.listen(0, '127.0.0.1')
    await once(target, 'listening')
    const targetPort = (target.address() as { port: number }).port
    exposedNames = new Set([...(await metrics.metricsText()).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!))

    dir = mkdtempSync(join(tmpdir(), 'codex-bt-prom-'))
    const config = join(dir, 'prometheus.yml')
    writeFileSync(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${JSON.stringify(`${DEPLOY}prometheus/alerts.yml`)}`,
        'scrape_configs:',
        `  - job_name: ${JOB}`,
        '    metrics_path: /metrics',
        '    static_configs:',
        `      - targets: ["127.0.0.1:${targetPort}"]`,
        '',
      ].join('\n'),
    )
    const promPort = await freePort()
    base = `http://127.0.0.1:${promPort}`
    prometheus = spawn(
      findBinary('prometheus', 'PROMETHEUS'),
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const keepLog = (d: Buffer) => {
      promLog = (promLog + d.toString('utf8')).slice(-20000)
    }
    prometheus.stdout?.on('data', keepLog)
    prometheus.stderr?.on('data', keepLog)

    await waitFor('Prometheus to be ready', async () => (await fetch(`${base}/-/ready`)).ok)
    // Enough samples for rate() over the dashboard's windows, and the target healthy.
    await waitFor('at least 4 successful scrapes', async () => {
      const r = await query(
        `sum(count_over_time(up{job="${JOB}"}[1m])) >= 4 and on() min(up{job="${JOB}"}) == 1`,
      )
      return r.status === 'success' && (r.data?.result.length ?? 0) > 0
    })
  })

  after(async () => {
    if (prometheus && prometheus.exitCode === null && prometheus.pid !== undefined) {
      const exited = once(prometheus, 'exit')
      process.kill(prometheus.pid, 'SIGTERM')
      await exited
    }
    target?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  function knownName(name: string): boolean {
    if (name === 'up') return true
    const base = name.replace(/_(bucket|sum|count)$/, '')
    if ((METRIC_NAMES as readonly string[]).includes(name)) return true
    if ((METRIC_NAMES as readonly string[]).includes(base) && name !== base) return true
    // Default process metrics: only names the registry really exposes.
    return /^codex_bt_(process|nodejs)_/.test(name) && (exposedNames.has(name) || exposedNames.has(base))
  }

  test('every dashboard query parses, returns data, and uses only exported metric names', async () => {
    const dashboard = JSON.parse(readText('deploy/grafana/dashboards/gateway.json')) as Parameters<
      typeof dashboardExpressions
    >[0]
    const exprs = dashboardExpressions(dashboard)
    assert.ok(exprs.length >= 20)
    for (const { title, expr } of exprs) {
      const names = metricNamesIn(expr)
      assert.ok(names.length > 0, `${title}: selects a metric`)
      for (const n of names) assert.ok(knownName(n), `${title}: unknown metric ${n} in ${expr}`)
      const r = await query(expandGrafanaVariables(expr))
      assert.equal(r.status, 'success', `${title}: ${expr}: ${r.error}`)
      assert.ok((r.data?.result.length ?? 0) > 0, `${title}: no data for ${expr}`)
    }
  })

  test('every alert expression parses and uses only exported metric names', async () => {
    const rules = alertRules()
    assert.ok(rules.length >= 6)
    for (const rule of rules) {
      for (const n of metricNamesIn(rule.expr)) assert.ok(knownName(n), `${rule.alert}: unknown metric ${n}`)
      const r = await query(rule.expr)
      assert.equal(r.status, 'success', `${rule.alert}: ${r.error}`)
    }
  })

  test('Prometheus loaded the rule file and evaluates every rule with health "ok"', async () => {
    const names = alertRules().map((r) => r.alert)
    type Rules = {
      data: {
        groups: { rules: { name: string; health: string; lastError?: string; lastEvaluation: string }[] }[]
      }
    }
    let loaded: Rules['data']['groups'][number]['rules'] = []
    await waitFor('every rule evaluated once', async () => {
      const body = (await (await fetch(`${base}/api/v1/rules`)).json()) as Rules
      loaded = body.data.groups.flatMap((g) => g.rules)
      return loaded.length === names.length && loaded.every((r) => !r.lastEvaluation.startsWith('0001'))
    })
    assert.deepEqual(loaded.map((r) => r.name).sort(), [...names].sort())
    for (const r of loaded) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError ?? ''}`)
  })

  test('the scraped data reflects the sources (alerts see real values)', async () => {
    const r = await query('codex_bt_codex_up')
    assert.equal(r.status, 'success')
    assert.equal((r.data!.result[0] as { value: [number, string] }).value[1], '1')
    const seeding = await query('codex_bt_torrent_peers{state="seeding"} == 0')
    assert.equal(seeding.data?.result.length, 1, 'the seeding torrent without peers is visible')
  })
})
