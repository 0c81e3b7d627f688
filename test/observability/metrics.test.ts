/**
 * Metrics: every METRIC_NAMES entry is exposed, values are read from the sources at scrape time,
 * the Codex observer and the archive-job/HTTP observers feed their histograms, and registries
 * are independent (no global default registry).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { register as globalRegistry } from 'prom-client'
import {
  createMetrics,
  MAX_CLIENT_LABELS,
  METRIC_NAMES,
  METRIC_PREFIX,
  type MetricsSources,
  type TorrentMetricsSnapshot,
} from '../../gateway/observability/metrics.ts'

/** Parses the text exposition into `name{labels}` → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

function value(text: string, series: string): number | undefined {
  return samples(text).get(series)
}

/** Mutable stats standing in for the engine's. */
function fakeStats() {
  const s = {
    downloaded: { peers: 1000, codex: 200 },
    uploaded: { peers: 300, codex: 4000 },
    torrents: [] as TorrentMetricsSnapshot[],
    verified: 10,
    failed: 1,
    clients: { 'qBittorrent/4.6.2': 3, 'Transmission 4.0': 1 } as Record<string, number>,
    announces: { success: 5, error: 2 } as Record<string, number>,
    dhtNodes: 42,
    codexUp: true,
    cache: { hits: 7, misses: 3, bytes: 1 << 20, limitBytes: 2 << 30 },
    staging: { usedBytes: 5 << 20, limitBytes: 1 << 30 },
    jobs: { active: 2, queued: 4, oldestActiveAgeSeconds: 90 },
    seedVerifyFailures: 1,
  }
  const sources: MetricsSources = {
    transfer: () => ({ downloadedBytes: s.downloaded, uploadedBytes: s.uploaded }),
    torrents: () => s.torrents,
    pieces: () => ({ verified: s.verified, failed: s.failed }),
    peersByClient: () => s.clients,
    trackerAnnounces: () => s.announces,
    dht: () => ({ nodes: s.dhtNodes }),
    codex: () => ({ reachable: s.codexUp }),
    cache: () => s.cache,
    staging: () => s.staging,
    archiveJobs: () => s.jobs,
    seedVerifyFailures: () => s.seedVerifyFailures,
  }
  return { s, sources }
}

describe('createMetrics', () => {
  test('exposes every METRIC_NAMES entry with HELP and TYPE, all prefixed codex_bt_', async () => {
    const m = createMetrics(fakeStats().sources)
    const text = await m.metricsText()
    for (const name of METRIC_NAMES) {
      assert.ok(name.startsWith(METRIC_PREFIX), name)
      assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), `${name} HELP`)
      assert.match(text, new RegExp(`^# TYPE ${name} (counter|gauge|histogram)$`, 'm'), `${name} TYPE`)
      if (text.includes(`# TYPE ${name} counter`))
        assert.ok(name.endsWith('_total'), `${name} counter ends in _total`)
    }
    const declared = [...text.matchAll(/^# TYPE (\S+) /gm)].map((x) => x[1]!)
    for (const name of declared) assert.ok(name.startsWith(METRIC_PREFIX), `${name} has the prefix`)
    assert.ok(
      declared.some((n) => n.startsWith('codex_bt_process_')),
      'default process metrics are registered',
    )
    assert.equal(m.contentType, m.registry.contentType)
    assert.match(m.contentType, /^text\/plain; version=0\.0\.4/)
  })

  test('values come from the sources at scrape time', async () => {
    const { s, sources } = fakeStats()
    const m = createMetrics(sources, { defaultMetrics: false })
    const hash = 'ab'.repeat(20)
    s.torrents = [
      { infoHash: hash, state: 'seeding', downloadedBytes: 111, uploadedBytes: 222, peers: 0 },
      { infoHash: 'cd'.repeat(32), state: 'downloading', downloadedBytes: 5, uploadedBytes: 0, peers: 3 },
    ]
    let text = await m.metricsText()
    assert.equal(value(text, 'codex_bt_downloaded_bytes_total{source="peers"}'), 1000)
    assert.equal(value(text, 'codex_bt_uploaded_bytes_total{source="codex"}'), 4000)
    assert.equal(value(text, `codex_bt_torrent_downloaded_bytes_total{info_hash="${hash}"}`), 111)
    assert.equal(value(text, `codex_bt_torrent_uploaded_bytes_total{info_hash="${hash}"}`), 222)
    assert.equal(value(text, `codex_bt_torrent_peers{info_hash="${hash}",state="seeding"}`), 0)
    assert.equal(value(text, 'codex_bt_torrents{state="seeding"}'), 1)
    assert.equal(value(text, 'codex_bt_torrents{state="downloading"}'), 1)
    assert.equal(value(text, 'codex_bt_torrents{state="paused"}'), 0)
    assert.equal(value(text, 'codex_bt_pieces_verified_total'), 10)
    assert.equal(value(text, 'codex_bt_pieces_failed_total'), 1)
    assert.equal(value(text, 'codex_bt_peers_connected{client="qBittorrent/4.6.2"}'), 3)
    assert.equal(value(text, 'codex_bt_tracker_announces_total{result="error"}'), 2)
    assert.equal(value(text, 'codex_bt_dht_nodes'), 42)
    assert.equal(value(text, 'codex_bt_codex_up'), 1)
    assert.equal(value(text, 'codex_bt_cache_hits_total'), 7)
    assert.equal(value(text, 'codex_bt_cache_misses_total'), 3)
    assert.equal(value(text, 'codex_bt_cache_bytes'), 1 << 20)
    assert.equal(value(text, 'codex_bt_staging_bytes'), 5 << 20)
    assert.equal(value(text, 'codex_bt_staging_limit_bytes'), 1 << 30)
    assert.equal(value(text, 'codex_bt_archive_jobs_active'), 2)
    assert.equal(value(text, 'codex_bt_archive_job_oldest_age_seconds'), 90)
    assert.equal(value(text, 'codex_bt_seed_verify_failures_total'), 1)

    // The engine's stats move on; the next scrape shows the new values, removed torrents vanish.
    s.downloaded = { peers: 5000, codex: 200 }
    s.verified = 25
    s.codexUp = false
    s.dhtNodes = 0
    s.torrents = s.torrents.slice(1)
    s.seedVerifyFailures = 4
    text = await m.metricsText()
    assert.equal(value(text, 'codex_bt_downloaded_bytes_total{source="peers"}'), 5000)
    assert.equal(value(text, 'codex_bt_pieces_verified_total'), 25)
    assert.equal(value(text, 'codex_bt_codex_up'), 0)
    assert.equal(value(text, 'codex_bt_dht_nodes'), 0)
    assert.equal(value(text, `codex_bt_torrent_downloaded_bytes_total{info_hash="${hash}"}`), undefined)
    assert.equal(value(text, 'codex_bt_torrents{state="seeding"}'), 0)
    assert.equal(value(text, 'codex_bt_seed_verify_failures_total'), 4)
  })

  test('each source is read once per scrape, and a throwing source is counted, not fatal', async () => {
    const calls = { torrents: 0, cache: 0 }
    const errors: string[] = []
    const m = createMetrics(
      {
        torrents: () => {
          calls.torrents++
          return [
            { infoHash: 'ef'.repeat(20), state: 'archiving', downloadedBytes: 1, uploadedBytes: 1, peers: 1 },
          ]
        },
        cache: () => {
          calls.cache++
          return { hits: 1, misses: 1, bytes: 1, limitBytes: 1 }
        },
        pieces: () => {
          throw new Error('engine bug')
        },
      },
      { defaultMetrics: false, onSourceError: (source) => errors.push(source) },
    )
    const text = await m.metricsText()
    assert.equal(calls.torrents, 1)
    assert.equal(calls.cache, 1)
    assert.deepEqual(errors, ['pieces'])
    assert.equal(value(text, 'codex_bt_metrics_source_errors_total{source="pieces"}'), 1)
    assert.equal(value(text, 'codex_bt_pieces_verified_total'), 0)
    await m.metricsText()
    assert.equal(calls.torrents, 2)
  })

  test('missing sources read as zero', async () => {
    const text = await createMetrics({}, { defaultMetrics: false }).metricsText()
    assert.equal(value(text, 'codex_bt_downloaded_bytes_total{source="codex"}'), 0)
    assert.equal(value(text, 'codex_bt_staging_bytes'), 0)
    assert.equal(value(text, 'codex_bt_codex_up'), 0)
  })

  test('peer client labels are sanitised and capped', async () => {
    const clients: Record<string, number> = { 'evil\n{label="x"}': 1, '': 2 }
    for (let i = 0; i < MAX_CLIENT_LABELS * 3; i++) clients[`client-${i}`] = i + 10
    const m = createMetrics({ peersByClient: () => clients }, { defaultMetrics: false })
    const text = await m.metricsText()
    const series = [...samples(text).keys()].filter((k) => k.startsWith('codex_bt_peers_connected{'))
    assert.equal(series.length, MAX_CLIENT_LABELS)
    const total = [...samples(text).entries()]
      .filter(([k]) => k.startsWith('codex_bt_peers_connected{'))
      .reduce((sum, [, v]) => sum + v, 0)
    assert.equal(
      total,
      Object.values(clients).reduce((a, b) => a + b, 0),
      'no peer is lost in the cap',
    )
    assert.ok(series.includes('codex_bt_peers_connected{client="other"}'))
    assert.ok(!text.includes('evil\n'))
  })

  test('the Codex observer feeds the request histogram and the byte counters', async () => {
    const m = createMetrics({}, { defaultMetrics: false })
    const route = '/api/codex/v1/data/{cid}'
    m.codexObserver.onRequest({
      operation: 'download',
      route,
      method: 'get',
      status: 200,
      durationSeconds: 0.03,
    })
    m.codexObserver.onRequest({
      operation: 'download',
      route,
      method: 'GET',
      status: 200,
      durationSeconds: 0.4,
    })
    m.codexObserver.onRequest({
      operation: 'upload',
      route: '/api/codex/v1/data',
      method: 'POST',
      status: 'timeout',
      durationSeconds: 30,
    })
    // A concrete CID in a route is templated away (label cardinality).
    m.codexObserver.onRequest({
      operation: 'exists',
      route: '/api/codex/v1/data/zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy/exists',
      method: 'GET',
      status: 404,
      durationSeconds: 0.01,
    })
    m.codexObserver.onBytes('in', 65536)
    m.codexObserver.onBytes('in', 100)
    m.codexObserver.onBytes('out', 7)
    const text = await m.metricsText()
    const lbl = `operation="download",route="${route}",method="GET",status="200"`
    assert.equal(value(text, `codex_bt_codex_request_duration_seconds_count{${lbl}}`), 2)
    assert.ok(Math.abs(value(text, `codex_bt_codex_request_duration_seconds_sum{${lbl}}`)! - 0.43) < 1e-9)
    assert.equal(value(text, `codex_bt_codex_request_duration_seconds_bucket{le="0.05",${lbl}}`), 1)
    assert.equal(value(text, `codex_bt_codex_request_duration_seconds_bucket{le="0.5",${lbl}}`), 2)
    assert.equal(
      value(
        text,
        'codex_bt_codex_request_duration_seconds_count{operation="upload",route="/api/codex/v1/data",method="POST",status="timeout"}',
      ),
      1,
    )
    assert.equal(
      value(
        text,
        'codex_bt_codex_request_duration_seconds_count{operation="exists",route="/api/codex/v1/data/{id}/exists",method="GET",status="404"}',
      ),
      1,
    )
    assert.equal(value(text, 'codex_bt_codex_bytes_total{direction="in"}'), 65636)
    assert.equal(value(text, 'codex_bt_codex_bytes_total{direction="out"}'), 7)
  })

  test('archive jobs and HTTP requests are observed into their histograms', async () => {
    const m = createMetrics({}, { defaultMetrics: false })
    m.observeArchiveJob(42, 'success')
    m.observeArchiveJob(4000, 'failure')
    m.observeHttpRequest({ method: 'POST', route: '/torrents', status: 201, durationSeconds: 0.002 })
    const text = await m.metricsText()
    assert.equal(value(text, 'codex_bt_archive_job_duration_seconds_count{result="success"}'), 1)
    assert.equal(value(text, 'codex_bt_archive_job_duration_seconds_bucket{le="60",result="success"}'), 1)
    assert.equal(value(text, 'codex_bt_archive_job_duration_seconds_bucket{le="3600",result="failure"}'), 0)
    assert.equal(value(text, 'codex_bt_archive_job_duration_seconds_sum{result="failure"}'), 4000)
    assert.equal(
      value(
        text,
        'codex_bt_http_request_duration_seconds_count{method="POST",route="/torrents",status="201"}',
      ),
      1,
    )
  })

  test('registries are independent and the global default registry stays empty', async () => {
    const a = createMetrics({ dht: () => ({ nodes: 1 }) }, { defaultMetrics: false })
    const b = createMetrics({ dht: () => ({ nodes: 2 }) }, { defaultMetrics: false })
    assert.notEqual(a.registry, b.registry)
    assert.equal(value(await a.metricsText(), 'codex_bt_dht_nodes'), 1)
    assert.equal(value(await b.metricsText(), 'codex_bt_dht_nodes'), 2)
    assert.equal(globalRegistry.getMetricsAsArray().length, 0)
  })
})
