/**
 * `CodexPieceStore`: the engine's storage contract (`gateway/engine/storage.ts`) on top of Codex,
 * through its REST API only. This is the INGEST side: BitTorrent pieces in, Codex datasets out.
 *
 * - Writes go to bounded on-disk staging (`staging.ts`); hashes are computed over staged bytes
 *   (padding as zeros for v1, v2 leaves per 16 KiB of file data, BEP52).
 * - `commitPiece` extends each touched file's contiguous verified prefix; the torrent's
 *   `UploadManager` (`uploader.ts`) streams every file, in order, into its own Codex dataset as
 *   that prefix grows (one manifest CID per file; Codex has no append or ranges, NOTES.md §1.3,
 *   §1.4), records the CID in the catalog and only then releases the file's staged segments.
 * - Reads come from staging, or from Codex once the file is uploaded (`read-cache.ts`).
 * - Completion (verified pieces) is persisted in the catalog on every commit, so a restart knows
 *   which pieces are done; pieces lying entirely in files already in Codex count as complete
 *   (imported records, BEP52 `pieces root` dedup across torrents). Committed pieces whose staged
 *   bytes vanished are reported missing so the engine fetches them again.
 * - Backpressure: the staging budget is shared by all torrents of the store; `needsDrain` is true
 *   while staging is above its high watermark *and* some upload can free space (a fully verified
 *   file not yet in Codex). If nothing can drain, asking the engine to wait would deadlock, so
 *   the budget is then exceeded (see the note below).
 *
 * Note on the budget: a file is uploaded in one piece of work, so its whole staged data stays
 * until its CID is known. Staging should therefore be larger than the largest file being
 * ingested plus the out-of-order window of the piece picker; otherwise the limit is exceeded
 * rather than deadlocking.
 */

import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { CodexClient } from '../../codex-client/index.ts'
import { type PieceStore, StorageError } from '../../gateway/engine/storage.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import type { AbortOptions, TorrentInfo } from '../../gateway/protocol/types.ts'
import type { Catalog } from '../catalog.ts'
import { StagingBudget } from './staging.ts'
import { CodexTorrentStorage, type StoreContext } from './torrent-storage.ts'
import type { UploadCounters, UploadPolicy, UploadStateEvent } from './uploader.ts'

export { CodexTorrentStorage } from './torrent-storage.ts'
export type { FileStateView, FileUploadState, UploadState, UploadStateEvent } from './uploader.ts'

/** Options of `CodexPieceStore`. */
export interface CodexPieceStoreInit {
  readonly client: CodexClient
  readonly catalog: Catalog
  /** Staging root; each torrent gets `<stagingDir>/<infohash>/`. */
  readonly stagingDir: string
  /** Staging budget shared by all torrents (soft, see module comment). @default 1 GiB */
  readonly stagingMaxBytes?: number
  /** `needsDrain` may turn true at this many staged bytes. @default stagingMaxBytes */
  readonly stagingHighWaterBytes?: number
  /** `onDrain` resolves once staged bytes fall below this. @default half the high watermark */
  readonly stagingLowWaterBytes?: number
  /** Staging segment size, a multiple of 16 KiB. @default 1 MiB */
  readonly segmentBytes?: number
  /** Parallel uploads per torrent. @default 2 */
  readonly maxConcurrentUploads?: number
  /** An upload starts once this much of the file (or all of it) is verified. @default 1 MiB */
  readonly uploadStartBytes?: number
  /** An upload stream waiting this long for verified bytes is abandoned, restarted later. @default 30 s */
  readonly uploadStallMs?: number
  /** Client idle timeout of an upload (no progress that long → retried). @default uploadStallMs + 30 s */
  readonly uploadIdleTimeoutMs?: number
  /** Retry backoff: first delay. @default 500 ms */
  readonly retryBaseDelayMs?: number
  /** Retry backoff: largest delay. @default 30 s */
  readonly retryMaxDelayMs?: number
  /** Consecutive failed uploads before `paused-codex-unavailable`. @default 5 */
  readonly failuresBeforePause?: number
  /** Probe interval while paused. @default 5 s */
  readonly probeIntervalMs?: number
  /** Window of the read-through cache for files in Codex. @default 1 MiB */
  readonly readWindowBytes?: number
  /** Windows kept by that cache, per torrent. @default 8 */
  readonly readWindows?: number
  /** Reuse a file already in Codex with the same BEP52 `pieces root` (checked with `exists`). @default true */
  readonly dedup?: boolean
  readonly onUploadStateChange?: (event: UploadStateEvent) => void
  readonly onFileUploaded?: (event: { torrentId: string; fileIndex: number; cid: string }) => void
}

/** Store-wide figures for metrics. */
export interface CodexStoreStats extends Readonly<UploadCounters> {
  readonly stagingUsedBytes: number
  readonly stagingLimitBytes: number
  readonly stagingHighWaterBytes: number
  readonly stagingLowWaterBytes: number
  readonly openTorrents: number
}

const MIB = 1024 * 1024

/** A `PieceStore` archiving torrents into Codex. One instance serves many torrents. */
export class CodexPieceStore implements PieceStore {
  readonly #init: CodexPieceStoreInit
  readonly #budget: StagingBudget
  readonly #policy: UploadPolicy
  readonly #counters: UploadCounters = {
    bytesUploaded: 0,
    uploadsStarted: 0,
    uploadsCompleted: 0,
    uploadRetries: 0,
    pauses: 0,
    internalErrors: 0,
  }
  readonly #open = new Map<string, CodexTorrentStorage>()
  readonly #opening = new Set<string>()
  readonly #listeners = new Set<() => void>()
  readonly #ctx: StoreContext
  #closed = false

  constructor(init: CodexPieceStoreInit) {
    this.#init = init
    const limit = init.stagingMaxBytes ?? 1024 * MIB
    this.#budget = new StagingBudget({
      limitBytes: limit,
      ...(init.stagingHighWaterBytes !== undefined ? { highWaterBytes: init.stagingHighWaterBytes } : {}),
      ...(init.stagingLowWaterBytes !== undefined ? { lowWaterBytes: init.stagingLowWaterBytes } : {}),
    })
    const stallMs = positive(init.uploadStallMs ?? 30_000, 'uploadStallMs')
    this.#policy = {
      maxConcurrentUploads: positive(init.maxConcurrentUploads ?? 2, 'maxConcurrentUploads'),
      uploadStartBytes: positive(init.uploadStartBytes ?? MIB, 'uploadStartBytes'),
      stallMs,
      uploadIdleTimeoutMs: positive(init.uploadIdleTimeoutMs ?? stallMs + 30_000, 'uploadIdleTimeoutMs'),
      baseDelayMs: positive(init.retryBaseDelayMs ?? 500, 'retryBaseDelayMs'),
      maxDelayMs: positive(init.retryMaxDelayMs ?? 30_000, 'retryMaxDelayMs'),
      failuresBeforePause: positive(init.failuresBeforePause ?? 5, 'failuresBeforePause'),
      probeIntervalMs: positive(init.probeIntervalMs ?? 5_000, 'probeIntervalMs'),
      probeTimeoutMs: 10_000,
    }
    const segment = init.segmentBytes ?? MIB
    if (!Number.isSafeInteger(segment) || segment <= 0 || segment % 16384 !== 0)
      throw new RangeError('segmentBytes must be a positive multiple of 16 KiB')
    this.#ctx = {
      budget: this.#budget,
      counters: this.#counters,
      needsDrain: () => this.needsDrain,
      notify: () => this.#notify(),
      subscribe: (listener) => {
        this.#listeners.add(listener)
        return () => this.#listeners.delete(listener)
      },
      released: (id) => {
        this.#open.delete(id)
        this.#notify()
      },
    }
    this.#budget.subscribe(() => this.#notify())
  }

  /** True while staging is above its high watermark and some upload can free space. */
  get needsDrain(): boolean {
    if (!this.#budget.overHighWater) return false
    for (const storage of this.#open.values()) if (storage.hasDrainableWork()) return true
    return false
  }

  /** Store-wide counters and staging figures (for metrics). */
  stats(): CodexStoreStats {
    return {
      ...this.#counters,
      stagingUsedBytes: this.#budget.usedBytes,
      stagingLimitBytes: this.#budget.limitBytes,
      stagingHighWaterBytes: this.#budget.highWaterBytes,
      stagingLowWaterBytes: this.#budget.lowWaterBytes,
      openTorrents: this.#open.size,
    }
  }

  /** The open storage of a torrent (by id or either info hash), if any. */
  get(idOrHash: string): CodexTorrentStorage | undefined {
    const key = idOrHash.toLowerCase()
    for (const storage of this.#open.values()) {
      if (storage.torrentId === key || storage.infoHashV2 === key) return storage
    }
    return undefined
  }

  /**
   * Opens a torrent: records it in the catalog (state `downloading` when new), rescans its
   * staging directory, restores completion and starts uploading what is verified.
   */
  async openTorrent(info: TorrentInfo, options: AbortOptions = {}): Promise<CodexTorrentStorage> {
    options.signal?.throwIfAborted()
    if (this.#closed) throw new StorageError('GW_ERR_STORAGE_CLOSED', 'open', 'store is closed')
    const hash = info.infoHashV1 ?? info.infoHashV2
    if (hash === undefined)
      throw new StorageError('GW_ERR_STORAGE_UNSUPPORTED', 'open', 'torrent has no info hash')
    const id = toHex(hash)
    if (this.#open.has(id) || this.#opening.has(id))
      throw new StorageError('GW_ERR_STORAGE_BUSY', 'open', `torrent ${id} is already open`)
    this.#opening.add(id)
    try {
      const storage = await CodexTorrentStorage.create({
        id,
        info,
        init: this.#init,
        policy: this.#policy,
        ctx: this.#ctx,
        stagingDir: join(this.#init.stagingDir, id),
        segmentBytes: this.#init.segmentBytes ?? MIB,
        signal: options.signal,
      })
      this.#open.set(id, storage)
      storage.startUploads()
      return storage
    } finally {
      this.#opening.delete(id)
    }
  }

  /**
   * Deletes the staged data of a torrent (e.g. after it was removed). An open storage of the
   * torrent is closed first.
   */
  async removeStaged(idOrHash: string, options: AbortOptions = {}): Promise<void> {
    options.signal?.throwIfAborted()
    const key = idOrHash.toLowerCase()
    if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(key)) throw new RangeError('not an info hash')
    const open = this.get(key)
    if (open !== undefined) await open.close()
    const id = open?.torrentId ?? this.#init.catalog.getTorrent(key)?.id ?? key
    await rm(join(this.#init.stagingDir, id), { recursive: true, force: true })
  }

  /** Closes every open torrent (a checkpoint: staged data stays for the next run). */
  async close(): Promise<void> {
    this.#closed = true
    await Promise.allSettled([...this.#open.values()].map((s) => s.close()))
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener()
  }
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer`)
  return value
}
