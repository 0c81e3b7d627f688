/**
 * The plain-data contract between the gateway's components and the Prometheus binding.
 *
 * Components (engine, adapters, codex-client) never import prom-client (STYLE §7.1, §7.7): they
 * expose functions returning plain snapshots, which `metrics.ts` reads at scrape time, and the
 * Codex client reports each request to a `CodexTrafficObserver`. Every source is optional, so
 * the composition root can wire what exists; a missing source leaves its metrics at zero.
 *
 * All counters here are cumulative since process start (monotonic); gauges are current values.
 */

/** Which network bytes moved over: the BitTorrent wire (`peers`) or the Codex REST API (`codex`). */
export type TransferSource = 'peers' | 'codex'

/** Session-wide cumulative transfer totals (they survive torrent removal). */
export interface TransferSnapshot {
  /** Bytes received, by where they came from. */
  readonly downloadedBytes: Readonly<Record<TransferSource, number>>
  /** Bytes sent, by where they went. */
  readonly uploadedBytes: Readonly<Record<TransferSource, number>>
}

/** One torrent, as seen by metrics. */
export interface TorrentMetricsSnapshot {
  /** Lower-case hex: the v1 info hash when there is one, else the v2 one. */
  readonly infoHash: string
  /** State name (e.g. `downloading`, `seeding`); also the `state` label. */
  readonly state: string
  /** Payload bytes received for this torrent (peers and Codex), cumulative. */
  readonly downloadedBytes: number
  /** Payload bytes sent to peers for this torrent, cumulative. */
  readonly uploadedBytes: number
  /** Currently connected peers. */
  readonly peers: number
}

export interface PieceSnapshot {
  /** Pieces whose hash matched (BEP3 SHA-1 / BEP52 Merkle). */
  readonly verified: number
  /** Pieces whose hash did not match. */
  readonly failed: number
}

export interface DhtSnapshot {
  /** Nodes in the DHT routing table (0 when the DHT is off). */
  readonly nodes: number
}

export interface CodexSnapshot {
  /** Whether the last health probe of the Codex node succeeded. */
  readonly reachable: boolean
}

export interface CacheSnapshot {
  readonly hits: number
  readonly misses: number
  /** Bytes currently held. */
  readonly bytes: number
  readonly limitBytes: number
}

export interface StagingSnapshot {
  /** Verified piece bytes waiting for upload to Codex. */
  readonly usedBytes: number
  readonly limitBytes: number
}

export interface ArchiveJobsSnapshot {
  /** Jobs running now. */
  readonly active: number
  /** Jobs waiting to start. */
  readonly queued: number
  /** Age of the oldest running job in seconds (0 when none run). */
  readonly oldestActiveAgeSeconds: number
}

/** Functions read at scrape time. Each must be cheap, synchronous and side-effect free. */
export interface MetricsSources {
  transfer?(): TransferSnapshot
  torrents?(): readonly TorrentMetricsSnapshot[]
  pieces?(): PieceSnapshot
  /** Connected peers by client name (BEP10 extension handshake `v`, or the peer-id prefix). */
  peersByClient?(): Readonly<Record<string, number>>
  /** Tracker announces by result (`success`, `error`, `timeout`, …), cumulative. */
  trackerAnnounces?(): Readonly<Record<string, number>>
  dht?(): DhtSnapshot
  codex?(): CodexSnapshot
  cache?(): CacheSnapshot
  staging?(): StagingSnapshot
  archiveJobs?(): ArchiveJobsSnapshot
  /** Seeds whose Codex data did not match the torrent's hashes, cumulative. */
  seedVerifyFailures?(): number
}

/** One finished request of the Codex client. */
export interface CodexRequestEvent {
  /** Client operation, e.g. `upload`, `download`, `exists`. */
  readonly operation: string
  /** Templated route (`/api/codex/v1/data/{cid}`), never a concrete CID. */
  readonly route: string
  readonly method: string
  /** HTTP status, or a word (`error`, `timeout`, `aborted`) when no response arrived. */
  readonly status: number | string
  readonly durationSeconds: number
}

/** Fed by the Codex client; bound to a registry by `createMetrics`. */
export interface CodexTrafficObserver {
  onRequest(event: CodexRequestEvent): void
  /** `in` = bytes read from Codex, `out` = bytes sent to Codex. */
  onBytes(direction: 'in' | 'out', bytes: number): void
}

/** One finished HTTP API request (observed by the fastify server). */
export interface HttpRequestEvent {
  readonly method: string
  /** The route pattern (`/torrents/:id`), never the raw URL. */
  readonly route: string
  readonly status: number
  readonly durationSeconds: number
}
