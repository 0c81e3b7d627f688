/**
 * `CodexTorrentStorage`: one open torrent of a `CodexPieceStore` (`codex-store.ts`, whose module
 * comment describes the design). It keeps the torrent's verified-pieces bitfield (persisted in
 * the catalog), maps pieces to file spans (staging or Codex), maintains each file's contiguous
 * verified prefix for its uploader (`uploader.ts`), and releases staged segments no live piece
 * needs. Ordering between operations on one piece is guaranteed by `StorageFacade`.
 */

import type { CodexClient } from '../../codex-client/index.ts'
import { raceAbort } from '../../gateway/engine/abort.ts'
import { Bitfield } from '../../gateway/engine/bitfield.ts'
import { PieceGeometry } from '../../gateway/engine/piece-geometry.ts'
import {
  type CompletionState,
  type HashWant,
  hashPieceData,
  type PieceHashes,
  StorageError,
  type StorageOperation,
  type TorrentStorage,
} from '../../gateway/engine/storage.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import type { AbortOptions, TorrentInfo } from '../../gateway/protocol/types.ts'
import type { Catalog } from '../catalog.ts'
import type { CodexPieceStoreInit } from './codex-store.ts'
import { CodexReadCache } from './read-cache.ts'
import { type StagingBudget, TorrentStaging } from './staging.ts'
import {
  type FileStateView,
  type UploadCounters,
  UploadManager,
  type UploadPolicy,
  type UploadState,
} from './uploader.ts'

/** What a torrent storage needs from its store. */
export interface StoreContext {
  readonly budget: StagingBudget
  readonly counters: UploadCounters
  needsDrain(): boolean
  notify(): void
  subscribe(listener: () => void): () => void
  released(id: string): void
}

export interface CreateArgs {
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
    try {
      await staging.init()
      return new CodexTorrentStorage(args, geometry, staging, cids)
    } catch (error) {
      await staging.close() // gives its bytes back to the shared budget
      throw error
    }
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
      onStateChange: (event) => guard(ctx.counters, () => init.onUploadStateChange?.(event)),
      onFileUploaded: (fileIndex, cid) => {
        guard(ctx.counters, () => init.onFileUploaded?.({ torrentId: id, fileIndex, cid }))
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
      // Marked before writing, so a concurrent discard of a neighbour keeps the shared segments.
      if (!this.#committed.has(piece)) this.#written.add(piece)
      for (const span of this.geometry.spans(piece, offset, data.byteLength)) {
        if (span.padding || this.#uploads.isUploaded(span.fileIndex)) continue
        const start = span.pieceOffset - offset
        await this.#staging.write(span.fileIndex, span.fileOffset, data.subarray(start, start + span.length))
      }
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

/** Runs a user callback; its exceptions are counted (`internalErrors`) and never break the store. */
function guard(counters: UploadCounters, fn: () => void): void {
  try {
    fn()
  } catch {
    counters.internalErrors++
  }
}
