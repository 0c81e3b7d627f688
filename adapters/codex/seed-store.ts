/**
 * `CodexSeedStore`: a read-only `PieceStore` (`gateway/engine/storage.ts`) serving torrents whose
 * files are datasets in Codex. This is the SEED side: Codex datasets in, BitTorrent pieces out.
 *
 *   const store = new CodexSeedStore({ reader, resolve })
 *   await session.addTorrent({ metainfo, store })
 *
 * - `resolve(info)` (injected; the catalog knows the mapping) gives one Codex manifest CID per
 *   `info.files` entry (undefined for BEP47 pad files, v2 alignment gaps and empty files) and the
 *   torrent's verification (`seedResolution()` builds it from a `Metainfo`).
 * - `readBlock` first makes sure the WHOLE piece was read from Codex (through `CodexFileReader`:
 *   segment cache, ranged or sequential fetches) across its files (`PieceGeometry` spans; padding
 *   is zeros, BEP47 / BEP52) and VERIFIED against the torrent's hashes (v1 SHA-1, v2 Merkle). Bytes
 *   that fail are never returned: the covering cached segments are evicted and the piece fetched
 *   again (`verifyAttempts` in all); after that the read fails with `GW_ERR_STORAGE_CORRUPT`.
 *   Codex data is untrusted until verified (STYLE.md §4, helia `storage.ts`).
 * - Verified pieces live in a bounded in-memory LRU shared by all torrents of the store
 *   (`pieceCacheBytes`); concurrent reads of one piece share one fetch-and-verify.
 * - `completion()`: every piece whose file data all has a CID (all of them when every non-empty
 *   file is in Codex). `hashPiece` hashes what Codex holds (unverified, as the contract asks).
 * - Read-only: `writeBlock`, `commitPiece` and `discardPiece` reject with
 *   `GW_ERR_STORAGE_UNSUPPORTED` (a seed never downloads). `needsDrain` is always false.
 * - `close()` is a fence: it waits for the operations in flight, then cancels fetches that only
 *   aborted callers were waiting for.
 *
 * Memory: one piece buffer per piece being assembled, plus the LRU bound.
 */

import { raceAbort } from '../../gateway/engine/abort.ts'
import { Bitfield } from '../../gateway/engine/bitfield.ts'
import { type EngineLogger, silentLogger } from '../../gateway/engine/logger.ts'
import { PieceGeometry } from '../../gateway/engine/piece-geometry.ts'
import {
  type CompletionState,
  type HashWant,
  hashPieceData,
  isAbortError,
  type PieceHashes,
  type PieceStore,
  StorageError,
  type StorageOperation,
  type TorrentStorage,
} from '../../gateway/engine/storage.ts'
import { PieceVerifier } from '../../gateway/engine/torrent/verifier.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import type { AbortOptions, Metainfo, TorrentInfo } from '../../gateway/protocol/types.ts'
import { CodexReadError } from './seed-read-stream.ts'

/** What the store needs of `CodexFileReader`. */
export interface SeedReader {
  read(
    cid: string,
    fileLength: number,
    offset: number,
    length: number,
    options?: AbortOptions,
  ): Promise<Uint8Array>
  invalidate(cid: string, offset: number, length: number): unknown
}

/** Where a torrent's files are in Codex and how to check its pieces. */
export interface SeedResolution {
  /** One entry per `info.files` index: the Codex manifest CID, undefined for padding / empty files. */
  readonly cids: readonly (string | undefined)[]
  /** True if the hashes match the torrent (v1 SHA-1 and/or v2 piece layer / pieces root). */
  verify(piece: number, hashes: PieceHashes): boolean
  /** The hashes `verify` needs for `piece`. */
  want(piece: number): HashWant
}

export type SeedResolver = (info: TorrentInfo, options: AbortOptions) => Promise<SeedResolution>

/** A verification failure (one attempt of one piece). */
export interface VerifyFailureEvent {
  readonly piece: number
  /** 1-based attempt that failed. */
  readonly attempt: number
  /** v1 info hash hex, else v2. */
  readonly torrent: string
}

export interface CodexSeedStoreInit {
  readonly reader: SeedReader
  readonly resolve: SeedResolver
  /** Verified pieces kept in memory, over all torrents. @default 64 MiB */
  readonly pieceCacheBytes?: number
  /** Fetch-and-verify tries per piece before `GW_ERR_STORAGE_CORRUPT`. 1..10. @default 3 */
  readonly verifyAttempts?: number
  /** File spans of one piece read from Codex at once. @default 4 */
  readonly readConcurrency?: number
  readonly onVerifyFailure?: (event: VerifyFailureEvent) => void
  readonly logger?: EngineLogger
}

/** Monotonic counters for metrics, except `pieceCacheBytes` and `openTorrents`. */
export interface CodexSeedStoreStats {
  /** File bytes read through the reader (segment cache or Codex) to assemble pieces. */
  readonly bytesRead: number
  readonly piecesVerified: number
  readonly verifyFailures: number
  /** Pieces that failed every attempt (reads answered `GW_ERR_STORAGE_CORRUPT`). */
  readonly corruptPieces: number
  readonly pieceCacheHits: number
  readonly pieceCacheMisses: number
  readonly pieceCacheBytes: number
  readonly openTorrents: number
}

/**
 * A `SeedResolution` from a parsed .torrent (its piece layers included) and the file CIDs, using
 * the engine's `PieceVerifier`: a piece passes when every half that can be checked passes.
 */
export function seedResolution(metainfo: Metainfo, cids: readonly (string | undefined)[]): SeedResolution {
  const info = metainfo.info
  const verifier = new PieceVerifier(info, new PieceGeometry(info), metainfo.pieceLayers)
  return {
    cids,
    verify: (piece, hashes) => verifier.verify(piece, hashes) === 'ok',
    want: (piece) => verifier.want(piece),
  }
}

interface Counters {
  bytesRead: number
  piecesVerified: number
  verifyFailures: number
  corruptPieces: number
  pieceCacheHits: number
  pieceCacheMisses: number
}

/** Byte-bounded LRU of verified pieces (Map insertion order = recency). */
class PieceLru {
  readonly #max: number
  readonly #map = new Map<string, Uint8Array>()
  #bytes = 0

  constructor(maxBytes: number) {
    this.#max = maxBytes
  }

  get bytes(): number {
    return this.#bytes
  }

  get(key: string): Uint8Array | undefined {
    const value = this.#map.get(key)
    if (value !== undefined) {
      this.#map.delete(key)
      this.#map.set(key, value)
    }
    return value
  }

  set(key: string, value: Uint8Array): void {
    if (value.byteLength > this.#max) return
    this.delete(key)
    // Bounded: each iteration removes one entry.
    for (const [k, v] of this.#map) {
      if (this.#bytes + value.byteLength <= this.#max) break
      this.#map.delete(k)
      this.#bytes -= v.byteLength
    }
    this.#map.set(key, value)
    this.#bytes += value.byteLength
  }

  delete(key: string): void {
    const old = this.#map.get(key)
    if (old === undefined) return
    this.#map.delete(key)
    this.#bytes -= old.byteLength
  }

  deletePrefix(prefix: string): void {
    for (const key of [...this.#map.keys()]) if (key.startsWith(prefix)) this.delete(key)
  }
}

/** The store; one instance serves every seeded torrent. */
export class CodexSeedStore implements PieceStore {
  readonly #reader: SeedReader
  readonly #resolve: SeedResolver
  readonly #attempts: number
  readonly #concurrency: number
  readonly #onVerifyFailure: ((event: VerifyFailureEvent) => void) | undefined
  readonly #log: EngineLogger
  readonly #lru: PieceLru
  readonly #counters: Counters = {
    bytesRead: 0,
    piecesVerified: 0,
    verifyFailures: 0,
    corruptPieces: 0,
    pieceCacheHits: 0,
    pieceCacheMisses: 0,
  }
  readonly #open = new Set<CodexSeedTorrentStorage>()

  constructor(init: CodexSeedStoreInit) {
    const pieceCacheBytes = init.pieceCacheBytes ?? 64 * 1024 * 1024
    const attempts = init.verifyAttempts ?? 3
    const concurrency = init.readConcurrency ?? 4
    if (!Number.isSafeInteger(pieceCacheBytes) || pieceCacheBytes < 0) {
      throw new RangeError('pieceCacheBytes must be a non-negative integer')
    }
    if (!Number.isSafeInteger(attempts) || attempts < 1 || attempts > 10) {
      throw new RangeError('verifyAttempts must be an integer in 1..10')
    }
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 64) {
      throw new RangeError('readConcurrency must be an integer in 1..64')
    }
    this.#reader = init.reader
    this.#resolve = init.resolve
    this.#attempts = attempts
    this.#concurrency = concurrency
    this.#onVerifyFailure = init.onVerifyFailure
    this.#log = init.logger ?? silentLogger
    this.#lru = new PieceLru(pieceCacheBytes)
  }

  get stats(): CodexSeedStoreStats {
    return { ...this.#counters, pieceCacheBytes: this.#lru.bytes, openTorrents: this.#open.size }
  }

  /** Resolves the torrent's CIDs and opens a read-only storage for it. */
  async openTorrent(info: TorrentInfo, options: AbortOptions = {}): Promise<CodexSeedTorrentStorage> {
    options.signal?.throwIfAborted()
    const geometry = new PieceGeometry(info)
    const hash = info.infoHashV1 ?? info.infoHashV2
    if (hash === undefined)
      throw new StorageError('GW_ERR_STORAGE_UNSUPPORTED', 'open', 'torrent has no info hash')
    const id = toHex(hash)
    let resolution: SeedResolution
    try {
      resolution = await this.#resolve(info, options)
    } catch (error) {
      if (isAbortError(error) || error instanceof StorageError) throw error
      throw new StorageError('GW_ERR_STORAGE_IO', 'open', `cannot resolve the Codex CIDs of ${id}`, {
        cause: error,
      })
    }
    options.signal?.throwIfAborted()
    if (resolution.cids.length !== info.files.length) {
      throw new StorageError(
        'GW_ERR_STORAGE_UNSUPPORTED',
        'open',
        `${resolution.cids.length} CIDs for ${info.files.length} file entries`,
      )
    }
    const storage = new CodexSeedTorrentStorage({
      id,
      geometry,
      resolution,
      reader: this.#reader,
      lru: this.#lru,
      counters: this.#counters,
      attempts: this.#attempts,
      concurrency: this.#concurrency,
      log: this.#log.child({ component: 'codex-seed', torrent: id }),
      onVerifyFailure: this.#onVerifyFailure,
      onClose: (s) => this.#open.delete(s),
    })
    this.#open.add(storage)
    return storage
  }
}

interface TorrentInit {
  readonly id: string
  readonly geometry: PieceGeometry
  readonly resolution: SeedResolution
  readonly reader: SeedReader
  readonly lru: PieceLru
  readonly counters: Counters
  readonly attempts: number
  readonly concurrency: number
  readonly log: EngineLogger
  readonly onVerifyFailure: ((event: VerifyFailureEvent) => void) | undefined
  readonly onClose: (storage: CodexSeedTorrentStorage) => void
}

/** One seeded torrent. Use it through `StorageFacade` (the engine does). */
export class CodexSeedTorrentStorage implements TorrentStorage {
  readonly #t: TorrentInit
  readonly #have: Bitfield
  /** Fetch-and-verify in flight per piece (shared by concurrent reads). */
  readonly #verifying = new Map<number, Promise<Uint8Array>>()
  /** Operations in flight (the close fence waits for them). */
  readonly #ops = new Set<Promise<unknown>>()
  /** Shared fetch-and-verify work (may outlive an aborted caller; cancelled by close). */
  readonly #detached = new Set<Promise<unknown>>()
  readonly #lifetime = new AbortController()
  #closing: Promise<void> | undefined

  constructor(init: TorrentInit) {
    this.#t = init
    const { geometry, resolution } = init
    const have = Bitfield.full(geometry.pieceCount)
    geometry.info.files.forEach((file, index) => {
      if (file.padding || file.length === 0 || resolution.cids[index] !== undefined) return
      const { first, count } = geometry.filePieces(index)
      for (let p = first; p < first + count; p++) have.clear(p)
    })
    this.#have = have
  }

  get needsDrain(): boolean {
    return false
  }

  /** Read-only store: rejects with `GW_ERR_STORAGE_UNSUPPORTED`. */
  async writeBlock(
    piece: number,
    _offset: number,
    _data: Uint8Array,
    options: AbortOptions = {},
  ): Promise<void> {
    this.#check('write', piece, options)
    throw readOnly('write', piece)
  }

  /** A verified copy of the requested range; fails with `GW_ERR_STORAGE_CORRUPT` after failed retries. */
  readBlock(piece: number, offset: number, length: number, options: AbortOptions = {}): Promise<Uint8Array> {
    return this.#op('read', piece, options, async () => {
      const data = await raceAbort(this.#verifiedPiece(piece), options.signal)
      return data.slice(offset, offset + length)
    })
  }

  /** Hashes the piece as Codex holds it (the verified copy when cached). */
  hashPiece(piece: number, want: HashWant, options: AbortOptions = {}): Promise<PieceHashes> {
    return this.#op('hash', piece, options, async () => {
      const key = this.#key(piece)
      const data = this.#t.lru.get(key) ?? (await this.#assemble(piece, options.signal))
      return hashPieceData(this.#t.geometry, piece, want, (at, n) => data.subarray(at, at + n), options)
    })
  }

  /** Read-only store: rejects with `GW_ERR_STORAGE_UNSUPPORTED`. */
  async commitPiece(piece: number, options: AbortOptions = {}): Promise<void> {
    this.#check('commit', piece, options)
    throw readOnly('commit', piece)
  }

  /** Read-only store: rejects with `GW_ERR_STORAGE_UNSUPPORTED` (nothing can be un-completed). */
  async discardPiece(piece: number, options: AbortOptions = {}): Promise<void> {
    this.#check('discard', piece, options)
    throw readOnly('discard', piece)
  }

  /** Pieces whose file data all lives in Codex (all of them when every non-empty file has a CID). */
  async completion(options: AbortOptions = {}): Promise<CompletionState> {
    this.#check('completion', undefined, options)
    return { known: true, have: this.#have.toBytes() }
  }

  /** Never needed (nothing is written); resolves unless closed or aborted. */
  async onDrain(options: AbortOptions = {}): Promise<void> {
    this.#check('drain', undefined, options)
  }

  /** Fence: waits for operations in flight, cancels orphaned fetches, drops cached pieces. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      // Bounded: operations end on their own (reader deadlines) and new ones are refused.
      while (this.#ops.size > 0) await Promise.allSettled([...this.#ops])
      // Work nobody waits for any more (its callers aborted) is cancelled, not awaited to the end.
      this.#lifetime.abort(new StorageError('GW_ERR_STORAGE_CLOSED', 'close', 'storage closed'))
      await Promise.allSettled([...this.#detached])
      this.#t.lru.deletePrefix(`${this.#t.id}:`)
      this.#t.onClose(this)
    })()
    return this.#closing
  }

  // ---- internals -------------------------------------------------------------------------------

  #key(piece: number): string {
    return `${this.#t.id}:${piece}`
  }

  /** The piece's verified bytes: from the LRU, a fetch in flight, or a new fetch-and-verify. */
  #verifiedPiece(piece: number): Promise<Uint8Array> {
    const cached = this.#t.lru.get(this.#key(piece))
    if (cached !== undefined) {
      this.#t.counters.pieceCacheHits++
      return Promise.resolve(cached)
    }
    let pending = this.#verifying.get(piece)
    if (pending === undefined) {
      this.#t.counters.pieceCacheMisses++
      pending = this.#fetchAndVerify(piece)
      const shared = pending
      this.#verifying.set(piece, shared)
      const done = shared.then(
        () => undefined,
        () => undefined,
      )
      this.#detached.add(done)
      void done.then(() => {
        this.#detached.delete(done)
        if (this.#verifying.get(piece) === shared) this.#verifying.delete(piece)
      })
    }
    return pending
  }

  async #fetchAndVerify(piece: number): Promise<Uint8Array> {
    const { geometry, resolution, counters, attempts, log } = this.#t
    const signal = this.#lifetime.signal
    const want = resolution.want(piece)
    // Bounded: `attempts` ≤ 10.
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const data = await this.#assemble(piece, signal)
      const hashes = await hashPieceData(geometry, piece, want, (at, n) => data.subarray(at, at + n), {
        signal,
      })
      if (resolution.verify(piece, hashes)) {
        counters.piecesVerified++
        this.#t.lru.set(this.#key(piece), data)
        return data
      }
      counters.verifyFailures++
      log.warn({ piece, attempt, attempts }, 'piece read from Codex failed verification')
      try {
        this.#t.onVerifyFailure?.({ piece, attempt, torrent: this.#t.id })
      } catch (error) {
        log.debug({ err: error }, 'onVerifyFailure threw')
      }
      for (const span of geometry.spans(piece)) {
        const cid = resolution.cids[span.fileIndex]
        if (!span.padding && cid !== undefined) this.#t.reader.invalidate(cid, span.fileOffset, span.length)
      }
    }
    counters.corruptPieces++
    log.error({ piece, attempts }, 'piece data in Codex does not match the torrent')
    throw new StorageError(
      'GW_ERR_STORAGE_CORRUPT',
      'read',
      `piece ${piece} of ${this.#t.id}: Codex data failed verification ${attempts} times`,
      { piece },
    )
  }

  /** Reads the piece's file spans from Codex into one buffer (padding stays zero). Unverified. */
  async #assemble(piece: number, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const { geometry, resolution, reader, counters, concurrency } = this.#t
    const out = new Uint8Array(geometry.pieceSize(piece))
    const spans = geometry.spans(piece).filter((s) => !s.padding)
    let next = 0
    const worker = async (): Promise<void> => {
      // Bounded: each iteration takes the next span.
      while (next < spans.length) {
        const span = spans[next++]!
        const cid = resolution.cids[span.fileIndex]
        if (cid === undefined) {
          throw new StorageError('GW_ERR_STORAGE_IO', 'read', `file ${span.fileIndex} has no Codex CID`, {
            piece,
            path: span.file.path.join('/'),
          })
        }
        let bytes: Uint8Array
        try {
          bytes = await reader.read(cid, span.file.length, span.fileOffset, span.length, { signal })
        } catch (error) {
          throw readFailure(error, piece, span.file.path.join('/'))
        }
        if (bytes.byteLength !== span.length) {
          throw new StorageError('GW_ERR_STORAGE_IO', 'read', `short read of ${cid}`, { piece })
        }
        out.set(bytes, span.pieceOffset)
        counters.bytesRead += span.length
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, spans.length) }, worker))
    return out
  }

  /** Runs an operation under the fence. */
  #op<T>(
    operation: StorageOperation,
    piece: number,
    options: AbortOptions,
    fn: () => Promise<T>,
  ): Promise<T> {
    try {
      this.#check(operation, piece, options)
    } catch (error) {
      return Promise.reject(error)
    }
    const run = fn()
    const done = run.then(
      () => undefined,
      () => undefined,
    )
    this.#ops.add(done)
    void done.then(() => this.#ops.delete(done))
    return run
  }

  #check(operation: StorageOperation, piece: number | undefined, options: AbortOptions): void {
    options.signal?.throwIfAborted()
    if (this.#closing !== undefined) {
      throw new StorageError('GW_ERR_STORAGE_CLOSED', operation, 'storage is closed', { piece })
    }
  }
}

function readOnly(operation: StorageOperation, piece: number): StorageError {
  return new StorageError('GW_ERR_STORAGE_UNSUPPORTED', operation, 'the Codex seed store is read-only', {
    piece,
  })
}

/** Reader failures as `StorageError`s; aborts pass through. A dataset of the wrong size is corrupt. */
function readFailure(error: unknown, piece: number, path: string): unknown {
  if (isAbortError(error) || error instanceof StorageError) return error
  if (error instanceof CodexReadError && error.code === 'GW_ERR_CODEX_READ_LENGTH') {
    return new StorageError('GW_ERR_STORAGE_CORRUPT', 'read', error.message, { piece, path, cause: error })
  }
  const message = error instanceof Error ? error.message : String(error)
  return new StorageError('GW_ERR_STORAGE_IO', 'read', `Codex read failed: ${message}`, {
    piece,
    path,
    cause: error,
  })
}
