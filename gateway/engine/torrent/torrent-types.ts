/**
 * The torrent coordinator's public types: its state, what the session provides (`TorrentHost`),
 * its options (`TorrentInit`), its status snapshot and its error class. Re-exported by
 * `torrent.ts`.
 */
import type { Metainfo } from '../../protocol/types.ts'
import type { WireMessage } from '../../protocol/wire/messages.ts'
import type { EngineLogger } from '../logger.ts'
import type { PieceStore } from '../storage.ts'
import type { Torrent } from './torrent.ts'

export type TorrentState =
  | 'metadata'
  | 'checking'
  | 'downloading'
  | 'seeding'
  | 'paused'
  | 'stopped'
  | 'error'

/** What the session provides to each torrent. */
export interface TorrentHost {
  readonly peerId: Uint8Array
  /** Our TCP listen port (advertised in the extension handshake and to trackers). */
  readonly listenPort: number
  readonly logger: EngineLogger
  /** Global upload/download token buckets (0 = unlimited). */
  takeUpload(bytes: number, signal: AbortSignal): Promise<void>
  takeDownload(bytes: number, signal: AbortSignal): Promise<void>
  /** Ask the session to dial these peers for this torrent (it applies limits and dedup). */
  dial(torrent: Torrent, peers: readonly { host: string; port: number }[]): void
  /**
   * Called when the torrent learns its metadata (magnet start) so the session can index it, and
   * index and announce any swarm id the torrent did not start with (a hybrid found from a
   * btih-only or btmh-only magnet, BEP52).
   */
  onMetadata(torrent: Torrent): void
  /** A DHT node learned from a peer's BEP5 `port` message. */
  addDhtNode?(host: string, port: number): void
  now(): number
}

export interface TorrentInit {
  /** Known metainfo (.torrent), or undefined for a magnet start. */
  readonly metainfo?: Metainfo
  /** For a magnet start: the expected info hashes. */
  readonly infoHashV1?: Uint8Array
  readonly infoHashV2?: Uint8Array
  readonly name?: string
  readonly store: PieceStore
  readonly host: TorrentHost
  /** Upload slots for the choker. @default 4 */
  readonly uploadSlots?: number
  readonly maxPeers?: number
  readonly sequential?: boolean
  /** Start paused. */
  readonly paused?: boolean
  /** Max queued incoming requests per peer before we reject (BEP6) or drop. @default 500 */
  readonly maxIncomingRequests?: number
  /** No block from a peer with requests outstanding for this long: its newest request times out. @default 30 000 */
  readonly requestTimeoutMs?: number
  /** BEP3 anti-snubbing: no block for this long with requests outstanding. @default 60 000 */
  readonly snubTimeoutMs?: number
  /** Wait before dialling a known address again (doubles per failure). @default 60 000 */
  readonly minReconnectMs?: number
  /** Known addresses kept. @default 2000 */
  readonly maxKnownPeers?: number
  /** Drive time with `tick()` instead of a 1 s interval timer (tests). @default false */
  readonly manualTicks?: boolean
  /** Random source of the optimistic unchoke. @default Math.random */
  readonly random?: () => number
}

/** What the session calls for one attached connection (`Torrent.attachPeer`). */
export interface PeerHandlers {
  onMessage(msg: WireMessage): void
  onClose(reason: string): void
  /** Aborted when the connection closes or the torrent stops (tie per-connection waits to it). */
  readonly signal: AbortSignal
}

export interface TorrentStatusSnapshot {
  readonly id: string
  readonly name: string
  readonly state: TorrentState
  readonly infoHashV1?: string
  readonly infoHashV2?: string
  readonly progress: number
  readonly piecesHave: number
  readonly pieceCount: number
  readonly downloadRate: number
  readonly uploadRate: number
  readonly downloaded: number
  readonly uploaded: number
  readonly peers: number
  readonly seeds: number
  readonly error?: string
}

export class TorrentError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'TorrentError'
    this.code = code
  }
}
