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

import { join } from 'node:path'
import type { CodexClient } from '../../codex-client/index.ts'
import { Bitfield } from '../../gateway/engine/bitfield.ts'
import { PieceGeometry } from '../../gateway/engine/piece-geometry.ts'
import {
  type CompletionState,
  type HashWant,
  hashPieceData,
  type PieceHashes,
  type PieceStore,
  StorageError,
  type StorageOperation,
  type TorrentStorage,
} from '../../gateway/engine/storage.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import type { AbortOptions, TorrentInfo } from '../../gateway/protocol/types.ts'
import type { Catalog } from '../catalog.ts'
import { CodexReadCache, raceAbort } from './read-cache.ts'
import { StagingBudget, TorrentStaging } from './staging.ts'
import {
  type FileStateView,
  type UploadCounters,
  UploadManager,
  type UploadPolicy,
  type UploadState,
  type UploadStateEvent,
} from './uploader.ts'

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

/** What a torrent storage needs from its store. */
interface StoreContext {
  readonly budget: StagingBudget
  readonly counters: UploadCounters
  needsDrain(): boolean
  notify(): void
  subscribe(listener: () => void): () => void
  released(id: string): void
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
      uploadIdleTimeoutMs: stallMs + 30_000,
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

  /** Closes every open torrent (a checkpoint: staged data stays for the next run). */
  async close(): Promise<void> {
    this.#closed = true
    await Promise.allSettled([...this.#open.values()].map((s) => s.close()))
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener()
  }
}

interface CreateArgs {
  readonly id: string
  readonly info: TorrentInfo
  readonly init: CodexPieceStoreInit
  readonly policy: UploadPolicy
  readonly ctx: StoreContext
  readonly stagingDir: string
  readonly segmentBytes: number
  readonly signal: AbortSignal | undefined
}

type Waiter = { resolve: () => void; reject: (error: unknown) => void }

/** One open torrent of a `CodexPieceStore`. */
export class CodexTorrentStorage implements TorrentStorage {
  readonly torrentId: string
  readonly infoHashV2: string | undefined
  readonly geometry: PieceGeometry
  readonly #ctx: StoreContext
  readonly #catalog: Catalog
  readonly #staging: TorrentStaging
  readonly #uploads: UploadManager
  readonly #readCache: CodexReadCache
  readonly #lifetime = new AbortController()
  readonly #committed: Bitfield
  /** Pieces with staged writes that are neither committed nor discarded. */
  readonly #written = new Set<number>()
  /** Per file: number of leading pieces committed (its verified prefix, in pieces). */
  readonly #prefixPieces: number[]
  readonly #unsubscribe: () => void
  #drainWaiters = new Set<Waiter>()
  #inflight = 0
  #idleWaiters: (() => void)[] = []
  #closing: Promise<void> | undefined

  /** Opens the staging, restores completion (see `CodexPieceStore.openTorrent`). */
  static async create(args: CreateArgs): Promise<CodexTorrentStorage> {
    const { id, info, init } = args
    const geometry = new PieceGeometry(info)
    const catalog = init.catalog
    if (catalog.getTorrent(id) === undefined) catalog.upsertTorrent({ info, state: 'downloading' })
    else catalog.upsertTorrent({ info })
    const cids = new Map<number, string>()
    for (const row of catalog.getFiles(id)) if (row.cid !== undefined) cids.set(row.index, row.cid)
    if (init.dedup !== false && info.version !== 'v1') {
      await dedupFiles(id, info, cids, init.client, catalog, args.signal)
    }
    args.signal?.throwIfAborted()
    const staging = new TorrentStaging({
      directory: args.stagingDir,
      fileLengths: info.files.map((f) => (f.padding ? 0 : f.length)),
      segmentBytes: args.segmentBytes,
      budget: args.ctx.budget,
    })
    await staging.init()
    return new CodexTorrentStorage(args, geometry, staging, cids)
  }

  private constructor(
    args: CreateArgs,
    geometry: PieceGeometry,
    staging: TorrentStaging,
    cids: ReadonlyMap<number, string>,
  ) {
    const { id, info, init, ctx } = args
    this.torrentId = id
    this.infoHashV2 = info.infoHashV2 ? toHex(info.infoHashV2) : undefined
    this.geometry = geometry
    this.#ctx = ctx
    this.#catalog = init.catalog
    this.#staging = staging
    this.#readCache = new CodexReadCache({
      client: init.client,
      ...(init.readWindowBytes !== undefined ? { windowBytes: init.readWindowBytes } : {}),
      ...(init.readWindows !== undefined ? { maxWindows: init.readWindows } : {}),
      signal: this.#lifetime.signal,
    })
    this.#uploads = new UploadManager({
      torrentId: id,
      files: info.files,
      client: init.client,
      catalog: init.catalog,
      staging,
      policy: args.policy,
      counters: ctx.counters,
      cids,
      onStateChange: (event) => init.onUploadStateChange?.(event),
      onFileUploaded: (fileIndex, cid) => {
        init.onFileUploaded?.({ torrentId: id, fileIndex, cid })
        ctx.notify()
      },
      onDataLost: (fileIndex) => this.#dataLost(fileIndex),
      onActivity: () => ctx.notify(),
    })
    this.#committed = this.#restoreCompletion()
    this.#prefixPieces = info.files.map(() => 0)
    this.#releaseDeadSegments()
    this.#saveResume()
    for (let i = 0; i < info.files.length; i++) this.#updatePrefix(i)
    this.#unsubscribe = ctx.subscribe(() => this.#checkDrain())
  }

  // ---- TorrentStorage ------------------------------------------------------------------------

  get needsDrain(): boolean {
    return this.#ctx.needsDrain()
  }

  /** Stages the data spans of the block; spans in files already in Codex are dropped. */
  async writeBlock(
    piece: number,
    offset: number,
    data: Uint8Array,
    options: AbortOptions = {},
  ): Promise<void> {
    return this.#op('write', piece, options, async () => {
      for (const span of this.geometry.spans(piece, offset, data.byteLength)) {
        if (span.padding || this.#uploads.isUploaded(span.fileIndex)) continue
        const start = span.pieceOffset - offset
        await this.#staging.write(span.fileIndex, span.fileOffset, data.subarray(start, start + span.length))
      }
      if (!this.#committed.has(piece)) this.#written.add(piece)
    })
  }

  /** Reads from staging, or from Codex for files already uploaded; never-written bytes are zeros. */
  async readBlock(
    piece: number,
    offset: number,
    length: number,
    options: AbortOptions = {},
  ): Promise<Uint8Array> {
    return this.#op('read', piece, options, () => this.#readRange(piece, offset, length, options.signal))
  }

  async hashPiece(piece: number, want: HashWant, options: AbortOptions = {}): Promise<PieceHashes> {
    return this.#op('hash', piece, options, () =>
      hashPieceData(
        this.geometry,
        piece,
        want,
        (at, length) => this.#readRange(piece, at, length, options.signal),
        options,
      ),
    )
  }

  /** Records the piece as verified (persisted) and extends the verified prefix of its files. */
  async commitPiece(piece: number, options: AbortOptions = {}): Promise<void> {
    return this.#op('commit', piece, options, async () => {
      if (this.#committed.has(piece)) return
      await this.#fillUnwritten(piece)
      this.#committed.set(piece)
      this.#written.delete(piece)
      this.#saveResume()
      for (const fileIndex of this.#dataFiles(piece)) this.#updatePrefix(fileIndex)
      this.#ctx.notify()
    })
  }

  /**
   * Forgets the piece. A committed piece found bad later also invalidates the Codex copy of the
   * files it touches (their pieces must be fetched and uploaded again).
   */
  async discardPiece(piece: number, options: AbortOptions = {}): Promise<void> {
    return this.#op('discard', piece, options, async () => {
      const wasCommitted = this.#committed.has(piece)
      this.#written.delete(piece)
      if (wasCommitted) {
        for (const fileIndex of this.#dataFiles(piece)) {
          const cid = this.#uploads.cidOf(fileIndex)
          if (cid === undefined) continue
          this.#uploads.invalidateUploaded(fileIndex)
          this.#readCache.forget(cid)
          const { first, count } = this.geometry.filePieces(fileIndex)
          for (let p = first; p < first + count; p++) this.#uncommit(p)
        }
      }
      this.#uncommit(piece)
      await this.#releaseSegmentsOf(piece)
      this.#saveResume()
      this.#ctx.notify()
    })
  }

  /** The verified pieces that are still available (staged or in Codex). */
  async completion(options: AbortOptions = {}): Promise<CompletionState> {
    return this.#op('completion', undefined, options, async () => ({
      known: true,
      have: this.#committed.toBytes(),
    }))
  }

  /** Resolves once `needsDrain` is false (staging below the low watermark, or nothing can drain). */
  onDrain(options: AbortOptions = {}): Promise<void> {
    try {
      this.#checkOpen('drain', undefined)
      options.signal?.throwIfAborted()
    } catch (error) {
      return Promise.reject(error)
    }
    if (!this.needsDrain) return Promise.resolve()
    let waiter: Waiter | undefined
    const wait = new Promise<void>((resolve, reject) => {
      waiter = { resolve, reject }
      this.#drainWaiters.add(waiter)
    })
    return raceAbort(wait, options.signal).finally(() => {
      if (waiter) this.#drainWaiters.delete(waiter)
    })
  }

  /**
   * Fence: waits for in-flight operations, checkpoints uploads (a partial Codex upload cannot be
   * resumed, so it restarts from staging next time), persists completion, closes staging.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new StorageError('GW_ERR_STORAGE_CLOSED', 'close', 'storage closed')
      for (const w of this.#drainWaiters) w.reject(closed)
      this.#drainWaiters.clear()
      await this.#whenIdle()
      this.#unsubscribe()
      await this.#uploads.close(closed)
      this.#lifetime.abort(closed)
      this.#readCache.clear()
      this.#saveResume()
      await this.#staging.close()
      this.#ctx.released(this.torrentId)
    })()
    return this.#closing
  }

  // ---- Codex-specific accessors --------------------------------------------------------------

  /** Upload state of every file entry (padding entries included), by index. */
  fileStates(): FileStateView[] {
    return this.#uploads.fileStates()
  }

  /** Resolves with every data file's Codex CID (by file index) once all are uploaded. */
  whenAllUploaded(options: AbortOptions = {}): Promise<Map<number, string>> {
    try {
      this.#checkOpen('drain', undefined)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.#uploads.whenAllUploaded(options.signal)
  }

  /** `ok`, `retrying` (some upload failed, retry scheduled) or `paused-codex-unavailable`. */
  uploadState(): UploadState {
    return this.#uploads.state
  }

  /** Bytes staged for this torrent. */
  get stagedBytes(): number {
    return this.#staging.stagedBytes
  }

  /** @internal Used by the store's backpressure decision. */
  hasDrainableWork(): boolean {
    return this.#closing === undefined && this.#uploads.hasDrainableWork()
  }

  /** @internal Called by the store once the storage is registered. */
  startUploads(): void {
    this.#uploads.start()
  }

  // ---- internals -----------------------------------------------------------------------------

  async #readRange(piece: number, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const out = new Uint8Array(length)
    for (const span of this.geometry.spans(piece, offset, length)) {
      if (span.padding) continue
      const at = span.pieceOffset - offset
      const file = span.file
      let cid = this.#uploads.cidOf(span.fileIndex)
      if (cid === undefined) {
        const complete = await this.#staging.read(span.fileIndex, span.fileOffset, span.length, out, at)
        cid = complete ? undefined : this.#uploads.cidOf(span.fileIndex) // released meanwhile?
        if (cid === undefined) continue
      }
      await this.#readCache.read(cid, file.length, span.fileOffset, span.length, out, at, signal)
    }
    return out
  }

  /**
   * Makes sure every data byte of a piece about to be committed is staged: ranges never written
   * (their hash covered zeros) are staged as zeros, so the upload finds them.
   */
  async #fillUnwritten(piece: number): Promise<void> {
    const chunk = 256 * 1024
    for (const span of this.geometry.spans(piece)) {
      if (span.padding || this.#uploads.isUploaded(span.fileIndex)) continue
      if (this.#staging.hasRange(span.fileIndex, span.fileOffset, span.length)) continue
      for (let done = 0; done < span.length; done += chunk) {
        const length = Math.min(chunk, span.length - done)
        const bytes = new Uint8Array(length) // missing parts read as zeros, existing ones are kept
        await this.#staging.read(span.fileIndex, span.fileOffset + done, length, bytes)
        await this.#staging.write(span.fileIndex, span.fileOffset + done, bytes)
      }
    }
  }

  /** Distinct non-padding file indices touched by a piece. */
  #dataFiles(piece: number): number[] {
    const files: number[] = []
    for (const span of this.geometry.spans(piece)) if (!span.padding) files.push(span.fileIndex)
    return files
  }

  #uncommit(piece: number): void {
    if (!this.#committed.clear(piece)) return
    for (const fileIndex of this.#dataFiles(piece)) {
      const file = this.geometry.info.files[fileIndex]
      if (file === undefined) continue
      const k = piece - file.firstPiece
      if (k < (this.#prefixPieces[fileIndex] ?? 0)) {
        this.#prefixPieces[fileIndex] = k
        this.#uploads.setVerified(fileIndex, this.#prefixBytes(fileIndex, k))
      }
    }
  }

  #updatePrefix(fileIndex: number): void {
    const file = this.geometry.info.files[fileIndex]
    if (file === undefined || file.padding || file.length === 0) return
    let k = this.#prefixPieces[fileIndex] ?? 0
    // Bounded by the file's piece count; amortised O(1) per commit.
    while (k < file.pieceCount && this.#committed.has(file.firstPiece + k)) k++
    this.#prefixPieces[fileIndex] = k
    this.#uploads.setVerified(fileIndex, this.#prefixBytes(fileIndex, k))
  }

  /** Bytes of the file covered by its first `k` pieces. */
  #prefixBytes(fileIndex: number, k: number): number {
    const file = this.geometry.info.files[fileIndex]
    if (file === undefined) return 0
    if (k >= file.pieceCount) return file.length
    const end = (file.firstPiece + k) * this.geometry.pieceLength - file.offset
    return Math.max(0, Math.min(file.length, end))
  }

  /**
   * Completion at open: the persisted bitfield, plus pieces entirely in files already in Codex,
   * minus pieces whose staged bytes are gone.
   */
  #restoreCompletion(): Bitfield {
    const count = this.geometry.pieceCount
    let have = new Bitfield(count)
    const saved = this.#catalog.loadResume(this.torrentId)
    if (saved !== undefined) {
      try {
        have = Bitfield.fromBytes(saved, count)
      } catch {
        have = new Bitfield(count) // malformed resume data: start over (the data gets re-fetched)
      }
    }
    for (let piece = 0; piece < count; piece++) {
      const spans = this.geometry.spans(piece).filter((s) => !s.padding)
      const inCodex = spans.every((s) => this.#uploads.isUploaded(s.fileIndex))
      const staged = spans.every(
        (s) =>
          this.#uploads.isUploaded(s.fileIndex) ||
          this.#staging.hasRange(s.fileIndex, s.fileOffset, s.length),
      )
      if (inCodex) have.set(piece)
      else if (have.has(piece) && !staged) have.clear(piece)
    }
    return have
  }

  /** At open: deletes segments no committed piece needs (uploaded files, stale writes). */
  #releaseDeadSegments(): void {
    for (let fileIndex = 0; fileIndex < this.geometry.info.files.length; fileIndex++) {
      for (const seg of this.#staging.segmentsOf(fileIndex)) {
        if (this.#uploads.isUploaded(fileIndex) || !this.#segmentLive(fileIndex, seg)) {
          void this.#staging.releaseSegment(fileIndex, seg).catch(() => {}) // retried at the next open
        }
      }
    }
  }

  /** A segment is live while a piece overlapping it is committed or has staged writes. */
  #segmentLive(fileIndex: number, seg: number): boolean {
    const file = this.geometry.info.files[fileIndex]
    if (file === undefined) return false
    const size = this.#staging.segmentBytes
    const start = file.offset + seg * size
    const end = file.offset + Math.min(file.length, (seg + 1) * size)
    const pl = this.geometry.pieceLength
    for (let p = Math.floor(start / pl); p <= Math.floor((end - 1) / pl); p++) {
      if (this.#committed.has(p) || this.#written.has(p)) return true
    }
    return false
  }

  async #releaseSegmentsOf(piece: number): Promise<void> {
    for (const span of this.geometry.spans(piece)) {
      if (span.padding) continue
      const { first, last } = this.#staging.segmentRange(span.fileOffset, span.length)
      for (let seg = first; seg <= last; seg++) {
        if (!this.#segmentLive(span.fileIndex, seg)) await this.#staging.releaseSegment(span.fileIndex, seg)
      }
    }
  }

  /** Staged bytes of a file vanished: its committed pieces are no longer available. */
  #dataLost(fileIndex: number): void {
    const { first, count } = this.geometry.filePieces(fileIndex)
    for (let p = first; p < first + count; p++) {
      const spans = this.geometry.spans(p).filter((s) => s.fileIndex === fileIndex)
      if (spans.some((s) => !this.#staging.hasRange(s.fileIndex, s.fileOffset, s.length))) this.#uncommit(p)
    }
    this.#saveResume()
    this.#ctx.notify()
  }

  #saveResume(): void {
    if (this.#catalog.closed) return
    this.#catalog.saveResume(this.torrentId, this.#committed.toBytes())
  }

  #checkDrain(): void {
    if (this.#drainWaiters.size === 0 || this.needsDrain) return
    const waiters = [...this.#drainWaiters]
    this.#drainWaiters.clear()
    for (const w of waiters) w.resolve()
  }

  async #op<T>(
    operation: StorageOperation,
    piece: number | undefined,
    options: AbortOptions,
    fn: () => Promise<T>,
  ): Promise<T> {
    this.#checkOpen(operation, piece)
    options.signal?.throwIfAborted()
    this.#inflight++
    try {
      return await fn()
    } finally {
      if (--this.#inflight === 0) {
        const waiters = this.#idleWaiters
        this.#idleWaiters = []
        for (const w of waiters) w()
      }
    }
  }

  #whenIdle(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idleWaiters.push(resolve))
  }

  #checkOpen(operation: StorageOperation, piece: number | undefined): void {
    if (this.#closing !== undefined)
      throw new StorageError('GW_ERR_STORAGE_CLOSED', operation, 'storage is closed', { piece })
  }
}

/**
 * BEP52 dedup: a pending file whose `pieces root` another torrent already archived reuses that
 * Codex dataset, when Codex still has it (`exists`, NOTES.md §1.2). Failures just skip dedup.
 */
async function dedupFiles(
  id: string,
  info: TorrentInfo,
  cids: Map<number, string>,
  client: CodexClient,
  catalog: Catalog,
  signal: AbortSignal | undefined,
): Promise<void> {
  for (const [index, file] of info.files.entries()) {
    if (file.padding || file.length === 0 || file.piecesRoot === undefined || cids.has(index)) continue
    signal?.throwIfAborted()
    const cid = catalog.findCidByPiecesRoot(toHex(file.piecesRoot), file.length)
    if (cid === undefined) continue
    try {
      if (!(await client.exists(cid, { timeoutMs: 5_000, ...(signal ? { signal } : {}) }))) continue
    } catch {
      signal?.throwIfAborted()
      continue // Codex unreachable: no dedup now; the file is simply downloaded and uploaded
    }
    catalog.setFileCid(id, index, cid)
    cids.set(index, cid)
  }
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer`)
  return value
}
