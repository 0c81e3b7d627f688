/**
 * The narrow views the service layer has of the Codex adapters. The composition root
 * (`gateway/app.ts`) passes the real adapters; keeping these small makes the use cases readable
 * and keeps the service independent of the adapters' internals.
 */
import type { HashWant, PieceHashes, PieceStore } from '../engine/storage.ts'
import type { Metainfo, TorrentInfo } from '../protocol/types.ts'

/** Per-torrent view of the ingest storage (Codex backend) once the torrent is open. */
export interface IngestProgress {
  /** Resolves with file index → Codex CID when every non-empty, non-pad file is in Codex. */
  whenAllUploaded(options?: { signal?: AbortSignal }): Promise<ReadonlyMap<number, string>>
  uploadState(): 'ok' | 'retrying' | 'paused-codex-unavailable'
  /** Per file entry (by index): its Codex CID once that file is in Codex (before the whole torrent is). */
  fileStates(): readonly { readonly index: number; readonly cid?: string }[]
}

export interface IngestStore {
  readonly store: PieceStore
  /** The open ingest storage of a torrent (by info hash hex), once the engine opened it. */
  progress(infoHashHex: string): IngestProgress | undefined
  /** Removes the torrent's staged data. */
  removeStaged(infoHashHex: string): Promise<void>
  staging(): { usedBytes: number; limitBytes: number }
  uploadedBytes(): number
  /** Calls `listener` when the Codex upload health of a torrent changes; returns the unsubscribe. */
  onUploadState(listener: (event: UploadStateChange) => void): () => void
}

/** The Codex upload health of a torrent changed (`error`: the failure behind a non-`ok` state). */
export interface UploadStateChange {
  readonly torrentId: string
  readonly state: 'ok' | 'retrying' | 'paused-codex-unavailable'
  readonly previous: 'ok' | 'retrying' | 'paused-codex-unavailable'
  readonly error?: unknown
}

export interface SeedSource {
  /** Files (per `info.files` index) in Codex, and the verifier for pieces read from Codex. */
  readonly cids: readonly (string | undefined)[]
  verify(piece: number, hashes: PieceHashes): boolean
  want(piece: number): HashWant
}

export interface SeedStore {
  readonly store: PieceStore
  /** Registers what `openTorrent(info)` will need for the torrent with this info hash hex. */
  register(infoHashHex: string, source: (info: TorrentInfo) => SeedSource): void
  unregister(infoHashHex: string): void
  cache(): { hits: number; misses: number; bytes: number; limitBytes: number }
  bytesFromCodex(): number
  verifyFailures(): number
}

/** The torrent record stored in Codex (its CID is the archive address). */
export interface RecordPort {
  /** Builds, uploads and returns the record CID of an archived torrent. */
  upload(
    metainfo: Metainfo,
    fileCids: ReadonlyMap<number, string>,
    originalTorrent: Uint8Array | undefined,
    options?: { signal?: AbortSignal },
  ): Promise<string>
  /** Fetches and validates a record; returns the rebuilt .torrent and the file CIDs. */
  fetch(
    cid: string,
    options?: { signal?: AbortSignal; verifyFiles?: boolean },
  ): Promise<{ torrent: Uint8Array; fileCids: ReadonlyMap<number, string> }>
  /** A .torrent for a metainfo without original bytes (e.g. a magnet start), built around the exact info bytes. */
  torrentBytes(metainfo: Metainfo): Uint8Array
}

export interface CreateFromCodexPort {
  create(
    input: {
      files: readonly { cid: string; path: readonly string[] }[]
      name?: string
      version: 'v1' | 'v2' | 'hybrid'
      trackers: readonly string[]
      webseeds: readonly string[]
    },
    options?: { signal?: AbortSignal },
  ): Promise<{ metainfo: Metainfo; torrent: Uint8Array; fileCids: ReadonlyMap<number, string> }>
}
