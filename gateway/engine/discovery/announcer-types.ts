/**
 * Public types of the tracker announcer (`announcer.ts`): its options and the stats
 * snapshot it exposes for the HTTP API and metrics.
 */

import type { DiscoveryClock, DiscoveryLogger, OnPeers } from './peer-source.ts'
import type { TrackerClient } from './tracker-common.ts'
import type { HttpTrackerInit } from './tracker-http.ts'
import type { UdpTrackerInit } from './tracker-udp.ts'

/** Transfer totals reported to trackers (bytes). */
export interface TransferTotals {
  readonly uploaded: number
  readonly downloaded: number
  readonly left: number
}

/** Outcome class of one announce: answered, refused (`failure reason`), or unreachable/garbled. */
export type AnnounceOutcome = 'success' | 'failure' | 'error'

export interface AnnouncerInit {
  /** BEP12 tiers (`announce-list`, or `[[announce]]`). Unsupported schemes are ignored. */
  readonly tiers: readonly (readonly string[])[]
  /** Swarm ids: 20-byte hashes; 32-byte v2 hashes are truncated (BEP52). */
  readonly infoHashes: readonly Uint8Array[]
  readonly peerId: Uint8Array
  /** Our TCP listen port. */
  readonly port: number
  /** Read at every announce. */
  readonly getTransferTotals: () => TransferTotals
  readonly onPeers: OnPeers
  /** @default 50 */
  readonly numwant?: number
  /** BEP3 `key`; random by default. */
  readonly key?: number
  /** Builds the client for a URL; by default HTTP(S) or UDP clients with `http`/`udp` options. */
  readonly createClient?: (url: string) => TrackerClient
  readonly http?: HttpTrackerInit
  readonly udp?: UdpTrackerInit
  readonly clock?: DiscoveryClock
  /** Used for the BEP12 shuffle and jitter. @default Math.random */
  readonly random?: () => number
  /** Interval when the tracker sends none. @default 1800 */
  readonly defaultIntervalS?: number
  /** Tracker intervals are raised to at least this. @default 60 */
  readonly minIntervalFloorS?: number
  /** Tracker intervals are lowered to at most this. @default 21600 (6 h) */
  readonly maxIntervalS?: number
  /** Deadline of one announce request. @default 30_000 */
  readonly requestTimeoutMs?: number
  /** First retry delay after a fully failed round; doubles up to `backoffMaxMs`. @default 15_000 */
  readonly backoffInitialMs?: number
  /** @default 1_800_000 (30 min) */
  readonly backoffMaxMs?: number
  /** Deadline for the `stopped` announces at stop. @default 3_000 */
  readonly stopTimeoutMs?: number
  readonly logger?: DiscoveryLogger
}

export interface TrackerStats {
  readonly url: string
  readonly tier: number
  /** Position inside its tier (0 = tried first). */
  readonly position: number
  readonly lastResult: AnnounceOutcome | 'none'
  readonly lastError?: string
  readonly lastAnnounceAt?: number
  readonly lastSuccessAt?: number
  /** Peers in the last successful response. */
  readonly peers: number
  readonly seeders?: number
  readonly leechers?: number
  readonly intervalS?: number
  readonly minIntervalS?: number
  readonly warning?: string
  readonly consecutiveFailures: number
  /** When the next regular announce to this tracker is due (only for the tracker in use). */
  readonly nextAnnounceAt?: number
}

export interface SwarmAnnounceStats {
  /** Lowercase hex of the 20-byte swarm id. */
  readonly infoHash: string
  readonly nextAnnounceAt?: number
  /** Early announces are not sent before this (BEP3 `min interval`). */
  readonly earliestAnnounceAt: number
  /** Consecutive rounds in which every tracker failed. */
  readonly failedRounds: number
  readonly trackers: readonly TrackerStats[]
}

export interface AnnouncerStats {
  readonly swarms: readonly SwarmAnnounceStats[]
  /** Announce attempts by outcome (all swarms, all trackers, `stopped` included). */
  readonly announces: Readonly<Record<AnnounceOutcome, number>>
}
