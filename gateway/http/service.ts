/**
 * `GatewayService`: the narrow facade the HTTP layer calls, and its data transfer objects.
 *
 * The composition root (`gateway/app.ts`) implements it on top of the engine, the Codex
 * adapters and the record store; the HTTP layer knows nothing else. Methods throw
 * `GatewayError(code, message)` for expected failures (unknown torrent → `GW_ERR_NOT_FOUND`,
 * unparsable .torrent → `GW_ERR_BAD_TORRENT`, Codex down → `GW_ERR_CODEX_UNAVAILABLE`, …);
 * anything else becomes a 500 `GW_ERR_INTERNAL`.
 *
 * Identifiers: a torrent `id` is its info hash in lower-case hex, 40 characters (v1) or 64
 * characters (v2). Hybrid torrents answer to both; `id` in DTOs is the v1 hash when there is one.
 * Rates are bytes per second; sizes are bytes; times are ISO 8601 strings.
 */
import type { HostPort } from '../config.ts'

export type { HostPort } from '../config.ts'
export type { GatewayErrorCode } from './errors.ts'
export { GatewayError } from './errors.ts'

/** Cancellation, as everywhere in the gateway (STYLE §7.4). */
export interface AbortOptions {
  readonly signal?: AbortSignal
}

/** Torrent lifecycle states shown by the API (and used as the `state` metric label). */
export const TORRENT_STATES = [
  'metadata',
  'checking',
  'downloading',
  'archiving',
  'seeding',
  'paused',
  'error',
] as const
export type TorrentState = (typeof TORRENT_STATES)[number]

export type TorrentVersion = 'v1' | 'v2' | 'hybrid'

export interface TorrentSummary {
  /** v1 info hash (40 hex) when the torrent has one, else the v2 info hash (64 hex). */
  readonly id: string
  /** `null` until the metadata is known (magnet links). */
  readonly name: string | null
  readonly infoHashV1?: string
  readonly infoHashV2?: string
  /** `null` until the metadata is known. */
  readonly version: TorrentVersion | null
  readonly state: TorrentState
  /** 0…1, verified pieces over all pieces (0 while the metadata is unknown). */
  readonly progress: number
  /** Total payload size; `null` until the metadata is known. */
  readonly sizeBytes: number | null
  readonly downloadedBytes: number
  readonly uploadedBytes: number
  readonly downloadRate: number
  readonly uploadRate: number
  /** Connected peers. */
  readonly peers: number
  /** ISO 8601. */
  readonly addedAt: string
}

export interface TorrentFileInfo {
  /** Path inside the torrent, `/`-separated, without the torrent name for multi-file torrents. */
  readonly path: string
  readonly sizeBytes: number
  /** 0…1 */
  readonly progress: number
  /** Codex manifest CID of this file once archived, else `null`. */
  readonly codexCid: string | null
}

export interface TrackerInfo {
  readonly url: string
  readonly status: 'idle' | 'announcing' | 'working' | 'error'
  /** ISO 8601 of the last successful announce, or `null`. */
  readonly lastAnnounceAt: string | null
  readonly seeders: number | null
  readonly leechers: number | null
  readonly lastError: string | null
}

export interface PeerInfo {
  /** `host:port` (IPv6 as `[addr]:port`). */
  readonly address: string
  /** Client name from the BEP10 handshake or the peer id, `null` if unknown. */
  readonly client: string | null
  readonly downloadRate: number
  readonly uploadRate: number
  /** 0…1, from the peer's bitfield. */
  readonly progress: number
  /** How the peer was found / connected. */
  readonly source: 'tracker' | 'dht' | 'pex' | 'manual' | 'incoming'
}

export interface TorrentErrorInfo {
  /** ISO 8601. */
  readonly at: string
  readonly code: string
  readonly message: string
}

/** `GET /torrents/:id`: the summary plus files, trackers, the peer list and recent errors. */
export interface TorrentDetails extends Omit<TorrentSummary, 'peers'> {
  readonly pieceLength: number | null
  readonly pieceCount: number | null
  readonly files: readonly TorrentFileInfo[]
  /** CID of the gateway record (torrent ↔ Codex mapping) once archived, else `null`. */
  readonly recordCid: string | null
  readonly trackers: readonly TrackerInfo[]
  /** Connected peers (the summary's `peers` count is `peers.length`). */
  readonly peers: readonly PeerInfo[]
  readonly errors: readonly TorrentErrorInfo[]
}

/** Exactly one of `torrent`, `magnet`, `infoHash` is set (the HTTP layer guarantees it). */
export interface AddTorrentInput {
  /** Raw .torrent bytes (not yet parsed: the service throws GW_ERR_BAD_TORRENT if invalid). */
  readonly torrent?: Uint8Array
  /** A `magnet:?` URI (the service throws GW_ERR_BAD_MAGNET if invalid). */
  readonly magnet?: string
  /** 40 or 64 lower-case hex characters. */
  readonly infoHash?: string
  /** Extra tracker URLs (validated: http, https, udp, ws, wss). */
  readonly trackers?: readonly string[]
  /** Extra peers to dial. */
  readonly peers?: readonly HostPort[]
}

export interface AddTorrentResult {
  /** `false` when the torrent was already present (the extra trackers/peers were merged). */
  readonly created: boolean
  readonly torrent: TorrentSummary
}

export interface DeleteTorrentOptions extends AbortOptions {
  /** Also delete the archived data from Codex and the local staging/cache. */
  readonly removeData: boolean
}

export interface TorrentFile {
  /** Suggested file name without extension (usually the torrent name). */
  readonly name: string
  readonly bytes: Uint8Array
}

export interface SeedFileInput {
  /** Codex manifest CID of the file's content. */
  readonly cid: string
  /** Path inside the torrent, `/`-separated. */
  readonly path: string
}

/** Exactly one of `cid` (a single-file torrent) or `files` (multi-file) is set. */
export interface CreateSeedInput {
  readonly cid?: string
  readonly files?: readonly SeedFileInput[]
  readonly name?: string
  readonly trackers?: readonly string[]
  /** BEP19 web seed URLs. */
  readonly webseeds?: readonly string[]
  /** Default `hybrid`. */
  readonly version?: TorrentVersion
}

export interface SeedResult {
  readonly id: string
  readonly name: string
  readonly version: TorrentVersion
  readonly infoHashV1?: string
  readonly infoHashV2?: string
  readonly magnet: string
  /** The .torrent file (base64 in JSON responses). */
  readonly torrent: Uint8Array
  /** CID of the gateway record, once written. */
  readonly recordCid: string | null
}

export interface HealthReport {
  readonly status: 'ok'
  readonly uptimeSeconds: number
  readonly version: string
}

export interface ReadinessCheck {
  readonly name: string
  readonly ok: boolean
  readonly detail?: string
}

export interface ReadinessReport {
  readonly ready: boolean
  /** Human-readable reasons when not ready (empty when ready). */
  readonly reasons: readonly string[]
  readonly checks: readonly ReadinessCheck[]
}

/** The facade behind the HTTP API. All methods may throw `GatewayError`. */
export interface GatewayService {
  addTorrent(input: AddTorrentInput, options?: AbortOptions): Promise<AddTorrentResult>
  listTorrents(options?: AbortOptions): Promise<readonly TorrentSummary[]>
  /** @throws GatewayError GW_ERR_NOT_FOUND */
  getTorrent(id: string, options?: AbortOptions): Promise<TorrentDetails>
  /** @throws GatewayError GW_ERR_NOT_FOUND */
  deleteTorrent(id: string, options: DeleteTorrentOptions): Promise<void>
  pauseTorrent(id: string, options?: AbortOptions): Promise<TorrentSummary>
  resumeTorrent(id: string, options?: AbortOptions): Promise<TorrentSummary>
  /** @throws GatewayError GW_ERR_NOT_FOUND, GW_ERR_CONFLICT (metadata not known yet) */
  getTorrentFile(id: string, options?: AbortOptions): Promise<TorrentFile>
  createSeed(input: CreateSeedInput, options?: AbortOptions): Promise<SeedResult>
  /** Adds the torrent described by a gateway record stored in Codex. */
  importRecord(cid: string, options?: AbortOptions): Promise<AddTorrentResult>
  /** Liveness: the process works. Should not depend on Codex. */
  health(): Promise<HealthReport>
  /** Readiness: able to serve (Codex reachable, engine started, not stopping). */
  ready(): Promise<ReadinessReport>
}
