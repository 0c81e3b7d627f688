/**
 * Prometheus binding of the gateway's stats (the only module that imports prom-client).
 *
 * `createMetrics(sources)` builds an explicit `Registry` (never prom-client's global default),
 * registers Node's default process metrics on it with the `codex_bt_` prefix, and defines every
 * gateway metric. Most metrics are *computed at scrape time*: their `collect()` reads the plain
 * snapshots of `MetricsSources` (see `metrics-sources.ts`). Only three kinds of events are pushed:
 * Codex requests (through `codexObserver`), archive job durations (`observeArchiveJob`) and HTTP
 * API requests (`observeHttpRequest`).
 *
 * Names follow Prometheus conventions: snake_case, `codex_bt_` prefix, `_total` on counters,
 * base units (`_bytes`, `_seconds`). Remote-controlled label values (peer client names) are
 * sanitised and capped so a peer cannot explode the series count.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { TORRENT_STATES } from '../http/service.ts'
import type {
  CodexRequestEvent,
  CodexTrafficObserver,
  HttpRequestEvent,
  MetricsSources,
  TransferSource,
} from './metrics-sources.ts'

export type * from './metrics-sources.ts'

/** Prefix of every metric, including the default process metrics. */
export const METRIC_PREFIX = 'codex_bt_'

/** Every gateway metric name defined here (default process metrics not included). */
export const METRIC_NAMES = Object.freeze([
  'codex_bt_downloaded_bytes_total',
  'codex_bt_uploaded_bytes_total',
  'codex_bt_torrent_downloaded_bytes_total',
  'codex_bt_torrent_uploaded_bytes_total',
  'codex_bt_torrent_peers',
  'codex_bt_torrents',
  'codex_bt_pieces_verified_total',
  'codex_bt_pieces_failed_total',
  'codex_bt_peers_connected',
  'codex_bt_tracker_announces_total',
  'codex_bt_dht_nodes',
  'codex_bt_codex_up',
  'codex_bt_codex_request_duration_seconds',
  'codex_bt_codex_bytes_total',
  'codex_bt_cache_hits_total',
  'codex_bt_cache_misses_total',
  'codex_bt_cache_bytes',
  'codex_bt_cache_limit_bytes',
  'codex_bt_staging_bytes',
  'codex_bt_staging_limit_bytes',
  'codex_bt_archive_jobs_active',
  'codex_bt_archive_jobs_queued',
  'codex_bt_archive_job_oldest_age_seconds',
  'codex_bt_archive_job_duration_seconds',
  'codex_bt_seed_verify_failures_total',
  'codex_bt_http_request_duration_seconds',
  'codex_bt_metrics_source_errors_total',
] as const)

export type MetricName = (typeof METRIC_NAMES)[number]

/** Torrent states always exported (as 0 when empty) so dashboards show stable series. */
export const DEFAULT_TORRENT_STATES: readonly string[] = Object.freeze([...TORRENT_STATES])

/** At most this many distinct `client` label values; the rest are summed into `other`. */
export const MAX_CLIENT_LABELS = 20

const CODEX_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
const ARCHIVE_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400]
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export interface CreateMetricsInit {
  /** States exported as 0 when no torrent is in them (default `DEFAULT_TORRENT_STATES`). */
  readonly torrentStates?: readonly string[]
  /** Called when a source throws at scrape time (the scrape still succeeds). */
  readonly onSourceError?: (source: keyof MetricsSources, error: unknown) => void
  /** Register Node's default process metrics (default true). */
  readonly defaultMetrics?: boolean
}

export interface GatewayMetrics {
  readonly registry: Registry
  /** Give this to the Codex client. */
  readonly codexObserver: CodexTrafficObserver
  /** Records one finished archive job (torrent → Codex). */
  observeArchiveJob(seconds: number, result: string): void
  /** Records one finished HTTP API request (used by `buildServer`). */
  observeHttpRequest(event: HttpRequestEvent): void
  /** The text exposition format of every metric. */
  metricsText(): Promise<string>
  /** `Content-Type` of `metricsText()`. */
  readonly contentType: string
}

/** Counters must be finite and ≥ 0; anything else (a source bug) reads as 0. */
function nonNegative(value: number): number {
  return Number.isFinite(value) && value > 0 ? value : 0
}

/** A short, printable label value; `fallback` when nothing is left. */
export function sanitizeLabel(value: string, fallback = 'unknown', maxLength = 64): string {
  let printable = ''
  for (const ch of value) {
    const code = ch.codePointAt(0)!
    if (code >= 0x20 && code !== 0x7f) printable += ch
  }
  const cleaned = printable.trim().slice(0, maxLength)
  return cleaned === '' ? fallback : cleaned
}

/** Replaces path segments that look like identifiers (CIDs, hashes) by `{id}`. */
function templateRoute(route: string): string {
  return sanitizeLabel(
    route
      .split('/')
      .map((seg) => (seg.length >= 32 && !seg.startsWith('{') ? '{id}' : seg))
      .join('/'),
    'unknown',
    128,
  )
}

function statusLabel(status: number | string): string {
  if (typeof status === 'number') return Number.isInteger(status) && status > 0 ? String(status) : 'error'
  const word = status.toLowerCase().replace(/[^a-z0-9_]/g, '')
  return word === '' ? 'error' : word.slice(0, 24)
}

/** Keeps the `max - 1` largest client counts and sums the rest into `other`. */
function capClients(byClient: Readonly<Record<string, number>>, max: number): Map<string, number> {
  const merged = new Map<string, number>()
  for (const [name, count] of Object.entries(byClient)) {
    const label = sanitizeLabel(name)
    merged.set(label, (merged.get(label) ?? 0) + nonNegative(count))
  }
  if (merged.size <= max) return merged
  const sorted = [...merged.entries()].sort((a, b) => b[1] - a[1])
  const out = new Map(sorted.slice(0, max - 1))
  out.set(
    'other',
    sorted.slice(max - 1).reduce((sum, [, n]) => sum + n, 0),
  )
  return out
}

/** Builds the registry and every metric. Each call is independent (tests build many). */
export function createMetrics(sources: MetricsSources, init: CreateMetricsInit = {}): GatewayMetrics {
  const registry = new Registry()
  const registers = [registry]
  if (init.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX })
  const states = init.torrentStates ?? DEFAULT_TORRENT_STATES

  /**
   * Reads one source, turning a throw into a counted, reported error and `undefined`. Results
   * are memoised for one scrape (`metricsText()` clears the memo; a direct `registry.metrics()`
   * call is covered by a `setImmediate` clear), so every metric of a scrape sees the same
   * snapshot and each source is called once per scrape.
   */
  const memo = new Map<keyof MetricsSources, unknown>()
  function read<K extends keyof MetricsSources>(
    key: K,
  ): ReturnType<NonNullable<MetricsSources[K]>> | undefined {
    type R = ReturnType<NonNullable<MetricsSources[K]>>
    if (memo.has(key)) return memo.get(key) as R | undefined
    const fn = sources[key] as (() => R) | undefined
    let value: R | undefined
    if (fn !== undefined) {
      try {
        value = fn.call(sources)
      } catch (err) {
        sourceErrors.inc({ source: key })
        init.onSourceError?.(key, err)
      }
    }
    if (memo.size === 0) setImmediate(() => memo.clear())
    memo.set(key, value)
    return value
  }

  // --- transfer -------------------------------------------------------------------------------
  const bySource: readonly TransferSource[] = ['peers', 'codex']
  new Counter({
    name: 'codex_bt_downloaded_bytes_total',
    help: 'Payload bytes received, by source (peers = BitTorrent wire, codex = Codex API).',
    labelNames: ['source'],
    registers,
    collect() {
      const t = read('transfer')
      this.reset()
      for (const s of bySource) this.inc({ source: s }, nonNegative(t?.downloadedBytes[s] ?? 0))
    },
  })
  new Counter({
    name: 'codex_bt_uploaded_bytes_total',
    help: 'Payload bytes sent, by destination (peers = BitTorrent wire, codex = Codex API).',
    labelNames: ['source'],
    registers,
    collect() {
      const t = read('transfer')
      this.reset()
      for (const s of bySource) this.inc({ source: s }, nonNegative(t?.uploadedBytes[s] ?? 0))
    },
  })

  // --- torrents --------------------------------------------------------------------------------
  new Gauge({
    name: 'codex_bt_torrents',
    help: 'Torrents by state.',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = new Map<string, number>(states.map((s) => [s, 0]))
      for (const t of read('torrents') ?? []) {
        const s = sanitizeLabel(t.state)
        counts.set(s, (counts.get(s) ?? 0) + 1)
      }
      this.reset()
      for (const [state, n] of counts) this.set({ state }, n)
    },
  })
  new Counter({
    name: 'codex_bt_torrent_downloaded_bytes_total',
    help: 'Payload bytes received per torrent.',
    labelNames: ['info_hash'],
    registers,
    collect() {
      this.reset()
      for (const t of read('torrents') ?? [])
        this.inc({ info_hash: sanitizeLabel(t.infoHash) }, nonNegative(t.downloadedBytes))
    },
  })
  new Counter({
    name: 'codex_bt_torrent_uploaded_bytes_total',
    help: 'Payload bytes sent to peers per torrent.',
    labelNames: ['info_hash'],
    registers,
    collect() {
      this.reset()
      for (const t of read('torrents') ?? [])
        this.inc({ info_hash: sanitizeLabel(t.infoHash) }, nonNegative(t.uploadedBytes))
    },
  })
  new Gauge({
    name: 'codex_bt_torrent_peers',
    help: 'Connected peers per torrent, with the torrent state.',
    labelNames: ['info_hash', 'state'],
    registers,
    collect() {
      this.reset()
      for (const t of read('torrents') ?? []) {
        this.set(
          { info_hash: sanitizeLabel(t.infoHash), state: sanitizeLabel(t.state) },
          nonNegative(t.peers),
        )
      }
    },
  })

  // --- pieces, peers, discovery ------------------------------------------------------------------
  new Counter({
    name: 'codex_bt_pieces_verified_total',
    help: 'Pieces whose hash matched.',
    registers,
    collect() {
      this.reset()
      this.inc(nonNegative(read('pieces')?.verified ?? 0))
    },
  })
  new Counter({
    name: 'codex_bt_pieces_failed_total',
    help: 'Pieces whose hash did not match (data discarded, contributing peers suspect).',
    registers,
    collect() {
      this.reset()
      this.inc(nonNegative(read('pieces')?.failed ?? 0))
    },
  })
  new Gauge({
    name: 'codex_bt_peers_connected',
    help: 'Connected peers by client name (BEP10 handshake `v`), top clients only.',
    labelNames: ['client'],
    registers,
    collect() {
      this.reset()
      for (const [client, n] of capClients(read('peersByClient') ?? {}, MAX_CLIENT_LABELS))
        this.set({ client }, n)
    },
  })
  new Counter({
    name: 'codex_bt_tracker_announces_total',
    help: 'Tracker announces by result.',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset()
      for (const [result, n] of Object.entries(read('trackerAnnounces') ?? {})) {
        this.inc({ result: statusLabel(result) }, nonNegative(n))
      }
    },
  })
  new Gauge({
    name: 'codex_bt_dht_nodes',
    help: 'Nodes in the DHT routing table.',
    registers,
    collect() {
      this.set(nonNegative(read('dht')?.nodes ?? 0))
    },
  })

  // --- Codex --------------------------------------------------------------------------------------
  new Gauge({
    name: 'codex_bt_codex_up',
    help: 'Whether the Codex node answered its last health probe (1) or not (0).',
    registers,
    collect() {
      const c = read('codex')
      this.set(c?.reachable === true ? 1 : 0)
    },
  })
  const codexDuration = new Histogram({
    name: 'codex_bt_codex_request_duration_seconds',
    help: 'Codex REST requests by operation, templated route, method and status.',
    labelNames: ['operation', 'route', 'method', 'status'],
    buckets: CODEX_BUCKETS,
    registers,
  })
  const codexBytes = new Counter({
    name: 'codex_bt_codex_bytes_total',
    help: 'Bytes exchanged with Codex (in = read from Codex, out = sent to Codex).',
    labelNames: ['direction'],
    registers,
  })
  codexBytes.inc({ direction: 'in' }, 0)
  codexBytes.inc({ direction: 'out' }, 0)

  // --- cache and staging --------------------------------------------------------------------------
  new Counter({
    name: 'codex_bt_cache_hits_total',
    help: 'Reads served from the local cache.',
    registers,
    collect() {
      this.reset()
      this.inc(nonNegative(read('cache')?.hits ?? 0))
    },
  })
  new Counter({
    name: 'codex_bt_cache_misses_total',
    help: 'Reads that had to go to Codex.',
    registers,
    collect() {
      this.reset()
      this.inc(nonNegative(read('cache')?.misses ?? 0))
    },
  })
  new Gauge({
    name: 'codex_bt_cache_bytes',
    help: 'Bytes held in the local cache.',
    registers,
    collect() {
      this.set(nonNegative(read('cache')?.bytes ?? 0))
    },
  })
  new Gauge({
    name: 'codex_bt_cache_limit_bytes',
    help: 'Configured cache size limit.',
    registers,
    collect() {
      this.set(nonNegative(read('cache')?.limitBytes ?? 0))
    },
  })
  new Gauge({
    name: 'codex_bt_staging_bytes',
    help: 'Verified piece bytes staged for upload to Codex.',
    registers,
    collect() {
      this.set(nonNegative(read('staging')?.usedBytes ?? 0))
    },
  })
  new Gauge({
    name: 'codex_bt_staging_limit_bytes',
    help: 'Configured staging size limit.',
    registers,
    collect() {
      this.set(nonNegative(read('staging')?.limitBytes ?? 0))
    },
  })

  // --- archive jobs and seeds ---------------------------------------------------------------------
  new Gauge({
    name: 'codex_bt_archive_jobs_active',
    help: 'Archive jobs (torrent to Codex) running now.',
    registers,
    collect() {
      this.set(nonNegative(read('archiveJobs')?.active ?? 0))
    },
  })
  new Gauge({
    name: 'codex_bt_archive_jobs_queued',
    help: 'Archive jobs waiting to start.',
    registers,
    collect() {
      this.set(nonNegative(read('archiveJobs')?.queued ?? 0))
    },
  })
  new Gauge({
    name: 'codex_bt_archive_job_oldest_age_seconds',
    help: 'Age of the oldest running archive job (0 when none run).',
    registers,
    collect() {
      this.set(nonNegative(read('archiveJobs')?.oldestActiveAgeSeconds ?? 0))
    },
  })
  const archiveDuration = new Histogram({
    name: 'codex_bt_archive_job_duration_seconds',
    help: 'Duration of finished archive jobs, by result.',
    labelNames: ['result'],
    buckets: ARCHIVE_BUCKETS,
    registers,
  })
  new Counter({
    name: 'codex_bt_seed_verify_failures_total',
    help: 'Seeds whose Codex data did not match the torrent hashes.',
    registers,
    collect() {
      this.reset()
      this.inc(nonNegative(read('seedVerifyFailures') ?? 0))
    },
  })

  // --- HTTP API -----------------------------------------------------------------------------------
  const httpDuration = new Histogram({
    name: 'codex_bt_http_request_duration_seconds',
    help: 'HTTP API requests by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'],
    buckets: HTTP_BUCKETS,
    registers,
  })

  // Registered last: scrape-time reads above run first, so a failing source shows in the same scrape.
  const sourceErrors = new Counter({
    name: 'codex_bt_metrics_source_errors_total',
    help: 'Metric sources that threw while being read at scrape time.',
    labelNames: ['source'],
    registers,
  })

  const codexObserver: CodexTrafficObserver = {
    onRequest(e: CodexRequestEvent): void {
      codexDuration.observe(
        {
          operation: sanitizeLabel(e.operation),
          route: templateRoute(e.route),
          method: sanitizeLabel(e.method.toUpperCase(), 'GET', 10),
          status: statusLabel(e.status),
        },
        nonNegative(e.durationSeconds),
      )
    },
    onBytes(direction: 'in' | 'out', bytes: number): void {
      if (direction !== 'in' && direction !== 'out') return
      codexBytes.inc({ direction }, nonNegative(bytes))
    },
  }

  return Object.freeze({
    registry,
    codexObserver,
    contentType: registry.contentType,
    observeArchiveJob(seconds: number, result: string): void {
      archiveDuration.observe({ result: statusLabel(result) }, nonNegative(seconds))
    },
    observeHttpRequest(e: HttpRequestEvent): void {
      httpDuration.observe(
        {
          method: sanitizeLabel(e.method, 'GET', 10),
          route: sanitizeLabel(e.route, 'unknown', 128),
          status: String(e.status),
        },
        nonNegative(e.durationSeconds),
      )
    },
    metricsText(): Promise<string> {
      // prom-client runs every collect() synchronously inside metrics(): clearing the memo
      // around the call gives each scrape one fresh, consistent snapshot per source.
      memo.clear()
      const text = registry.metrics()
      memo.clear()
      return text
    },
  })
}
