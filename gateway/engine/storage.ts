/**
 * The engine's storage contract: what a storage backend (`adapters/*-store.ts`) implements and
 * what the engine may rely on. The engine always talks to a backend through `StorageFacade`
 * (`storage-facade.ts`), which does every bounds check and enforces the ordering rules below, so
 * backends stay small. Shape after anacrolix `storage/interface.go` (three levels, "unknown"
 * completion, optional capabilities) and libtorrent `disk_interface.hpp` (async, hashing next to
 * the data, backpressure, fences).
 *
 * ## Model
 * A torrent is a *linear piece space* (BEP3): files back to back, including BEP47 pad files and,
 * for v2-only torrents, virtual alignment gaps (BEP52), see `FileEntry` in
 * `gateway/protocol/types.ts` and `PieceGeometry`. Padding is never stored and always reads as
 * zeros. Blocks are addressed as (piece, offset inside the piece).
 *
 * ## Ordering rules (guaranteed by `StorageFacade`; backends may rely on them)
 * 1. `writeBlock`/`readBlock` calls on the same piece may run concurrently with each other.
 * 2. `hashPiece(p)` observes every `writeBlock(p)` issued before it (it waits for them), and no
 *    write issued after it (those wait for the hash). The same holds for `commitPiece(p)` and
 *    `discardPiece(p)`: per piece, hash/commit/discard are *exclusive* and run in call order.
 * 3. `commitPiece(p)` is called only after the engine verified `p`'s hashes (v1 and/or v2). Only
 *    committed pieces appear in `completion()`, and only committed data may be served to peers.
 * 4. `discardPiece(p)` is a fence after a hash failure: it waits for all in-flight work on `p`;
 *    afterwards the piece is not complete and its old bytes are irrelevant (they are rewritten).
 * 5. `close()` is a fence for the whole torrent: it waits for all in-flight operations, then no
 *    other call is made. Calls after close reject with `GW_ERR_STORAGE_CLOSED`.
 * 6. Backends only see in-bounds arguments: a valid piece index; write/read ranges inside one
 *    contiguous run of file data (never padding); writes of at most 16 KiB. Reads of ranges never
 *    written return unspecified bytes (zeros for the bundled backends).
 * 7. Every operation accepts `{ signal }`. An aborted operation rejects with the signal's reason
 *    (an `AbortError` DOMException for `controller.abort()`); an aborted write may or may not have
 *    been applied, which is harmless because the piece is hash-checked before commit.
 * 8. Backpressure (libtorrent `async_write` "queue full" / `disk_observer`): while `needsDrain` is
 *    true the engine stops *requesting* new blocks (it keeps reading sockets and keeps writing
 *    blocks that arrive); `onDrain()` resolves when `needsDrain` was observed false. Writes are
 *    never refused because of backpressure.
 *
 * Errors are `StorageError { code, operation, piece }`; backend failures are wrapped with `cause`.
 */

import { blockHash, V1PieceHasher } from '../protocol/hashers.ts'
import type { AbortOptions, TorrentInfo } from '../protocol/types.ts'
import { BLOCK_SIZE } from '../protocol/types.ts'
import { type HashPool, HashPoolError, sharedHashPool } from './hash-pool.ts'
import type { PieceGeometry } from './piece-geometry.ts'

export type { AbortOptions } from '../protocol/types.ts'

/** Which hashes `hashPiece` should compute. */
export interface HashWant {
  /** BEP3 SHA-1 piece hash (v1 and hybrid torrents). */
  readonly v1: boolean
  /** BEP52 leaf hashes (v2 and hybrid torrents). */
  readonly v2: boolean
}

/** Result of `hashPiece`: the requested hashes of one piece as currently stored. */
export interface PieceHashes {
  /** v1 piece hash: SHA-1 over the piece's linear-space bytes, padding hashed as zeros (BEP3, BEP47). */
  readonly sha1?: Uint8Array
  /**
   * v2: SHA-256 of each 16 KiB block of *file data* in this piece, in order (the last block of a
   * file is hashed over its real bytes only, BEP52); no leaves for padding. Combine with
   * `hashPieceV2(leaves, pieceLength)` (piece layer) or `merkleRoot(leaves)` (single-piece files).
   */
  readonly v2Leaves?: Uint8Array[]
}

/** What a backend knows about committed pieces, for resume. */
export type CompletionState =
  | { readonly known: true /** BEP3-ordered bitfield of committed pieces. */; readonly have: Uint8Array }
  | { readonly known: false }

/** A storage backend: opens per-torrent storage. One instance serves many torrents. */
export interface PieceStore {
  /**
   * Opens (creating if needed) storage for one torrent. Opening the same torrent again after
   * `close()` must see the data and completion committed before (that is what resume means).
   */
  openTorrent(info: TorrentInfo, options?: AbortOptions): Promise<TorrentStorage>
}

/**
 * Per-torrent storage. See the module comment for the ordering rules every implementation may
 * rely on (when called through `StorageFacade`) and must honour.
 */
export interface TorrentStorage {
  /**
   * Stores `data` at `offset` in `piece`. Ownership of `data` passes to the storage: the caller
   * must not modify it afterwards. Resolves when the bytes are visible to later `readBlock` and
   * `hashPiece` calls (not necessarily durable).
   */
  writeBlock(piece: number, offset: number, data: Uint8Array, options?: AbortOptions): Promise<void>
  /** Reads `length` bytes at `offset` in `piece`; resolves with exactly `length` bytes. */
  readBlock(piece: number, offset: number, length: number, options?: AbortOptions): Promise<Uint8Array>
  /** Hashes the piece as stored; covers every earlier write to it (rule 2). */
  hashPiece(piece: number, want: HashWant, options?: AbortOptions): Promise<PieceHashes>
  /** Marks a verified piece complete (rule 3); durable for resume as far as the backend supports. */
  commitPiece(piece: number, options?: AbortOptions): Promise<void>
  /** Forgets a piece after a hash failure (rule 4); also un-completes a committed piece. */
  discardPiece(piece: number, options?: AbortOptions): Promise<void>
  /** Committed pieces, for resume; `{ known: false }` if the backend cannot tell (e.g. needs recheck). */
  completion(options?: AbortOptions): Promise<CompletionState>
  /** True while the backend wants the engine to stop requesting blocks (rule 8). */
  readonly needsDrain: boolean
  /** Resolves when `needsDrain` was observed false; rejects on abort or close. */
  onDrain(options?: AbortOptions): Promise<void>
  /** Flushes and releases resources (rule 5). Idempotent. */
  close(options?: AbortOptions): Promise<void>
}

/** Decides whether a piece's stored data is correct, given its hashes (the engine knows the expected values). */
export type VerifyPiece = (piece: number, hashes: PieceHashes) => boolean

/** Options for `RecheckableStorage.recheck`. */
export interface RecheckOptions extends AbortOptions {
  /** Which hashes to compute. @default from the torrent version (v1 → v1, v2 → v2, hybrid → both) */
  readonly want?: HashWant
  /** Called after each checked piece. */
  readonly onProgress?: (checkedPieces: number, totalPieces: number) => void
}

/**
 * Optional capability (detect with `isRecheckable`): verify data already present (e.g. files
 * placed by the user, or data without a resume file) instead of downloading it again. Every piece
 * for which `verify` returns true becomes committed; the others become not complete. Resolves with
 * the resulting completion. Must not run concurrently with other operations (the facade enforces it).
 */
export interface RecheckableStorage extends TorrentStorage {
  recheck(verify: VerifyPiece, options?: RecheckOptions): Promise<CompletionState & { known: true }>
}

/** Type guard for the `recheck` capability. */
export function isRecheckable(storage: TorrentStorage): storage is RecheckableStorage {
  return typeof (storage as Partial<RecheckableStorage>).recheck === 'function'
}

/** Default `HashWant` for a torrent version: v1 → SHA-1, v2 → leaves, hybrid → both (BEP52 upgrade path). */
export function defaultHashWant(info: Pick<TorrentInfo, 'version'>): HashWant {
  return { v1: info.version !== 'v2', v2: info.version !== 'v1' }
}

// ---- errors ------------------------------------------------------------------------------------

/** Stable storage error codes. */
export type StorageErrorCode =
  /** Piece index, offset or length out of range, or a block larger than 16 KiB. */
  | 'GW_ERR_STORAGE_BOUNDS'
  /** The storage (or the store) is closed or closing. */
  | 'GW_ERR_STORAGE_CLOSED'
  /** Another exclusive whole-torrent operation (recheck) is running. */
  | 'GW_ERR_STORAGE_BUSY'
  /** The backend failed (I/O error, broken contract); see `cause`. */
  | 'GW_ERR_STORAGE_IO'
  /** A file path would leave the storage directory. */
  | 'GW_ERR_STORAGE_PATH'
  /** The request cannot be served for this torrent (e.g. v2 hashes of a v1-only torrent). */
  | 'GW_ERR_STORAGE_UNSUPPORTED'
  /** Persisted state (e.g. a resume file) is malformed. */
  | 'GW_ERR_STORAGE_CORRUPT'

/** Storage operation names, carried by `StorageError` (libtorrent `storage_error::operation`). */
export type StorageOperation =
  | 'open'
  | 'write'
  | 'read'
  | 'hash'
  | 'commit'
  | 'discard'
  | 'completion'
  | 'drain'
  | 'close'
  | 'recheck'

/** Every failure of a storage operation (except aborts, which reject with the signal's reason). */
export class StorageError extends Error {
  readonly code: StorageErrorCode
  readonly operation: StorageOperation
  /** The piece concerned, if any. */
  readonly piece: number | undefined
  /** The file concerned (backend-specific path), if any. */
  readonly path: string | undefined

  constructor(
    code: StorageErrorCode,
    operation: StorageOperation,
    message: string,
    details: { piece?: number; path?: string; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'StorageError'
    this.code = code
    this.operation = operation
    this.piece = details.piece
    this.path = details.path
  }
}

/** True for errors produced by an aborted signal (`AbortError`, `TimeoutError`). */
export function isAbortError(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError')
}

/** Throws the signal's reason (an `AbortError` by default) if it is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted()
}

// ---- hashing helper for backends -----------------------------------------------------------------

/** Reads `length` bytes at `pieceOffset` of the piece being hashed (always a data range, never padding). */
export type PieceRangeReader = (pieceOffset: number, length: number) => Promise<Uint8Array> | Uint8Array

/** Options of `hashPieceData`. */
export interface HashPieceOptions extends AbortOptions {
  /**
   * Where to hash: a `HashPool` (worker threads), `null` for inline on the calling thread.
   * @default the process-wide shared pool while a `Session` holds it (`sharedHashPool()`), else inline
   */
  readonly hashPool?: HashPool | null
}

/** Bytes read per call while hashing (a multiple of 16 KiB, so v2 leaves never straddle reads). */
const HASH_READ_CHUNK = 16 * BLOCK_SIZE

/**
 * Computes `PieceHashes` for `piece` by reading its data ranges through `read`, at most 256 KiB at a
 * time (memory stays bounded for large pieces). Padding is hashed as zeros for v1 (BEP47) and
 * skipped for v2. v2 leaves are computed per data range, 16 KiB blocks relative to the range start,
 * which is the file start in piece-aligned (v2, hybrid) layouts (BEP52). Backends call this from
 * `hashPiece`; the facade guarantees the ordering around it.
 *
 * The hashing itself runs on a `HashPool` worker when one is available (see `options.hashPool`)
 * and the piece is at least `pool.minJobBytes`; reads still happen here, on the calling thread.
 * Data in a `SharedArrayBuffer` reaches the worker without a copy. If the pool is closed, full or
 * broken, the piece is read again and hashed inline, so the result never depends on the pool.
 */
export async function hashPieceData(
  geometry: PieceGeometry,
  piece: number,
  want: HashWant,
  read: PieceRangeReader,
  options: HashPieceOptions = {},
): Promise<PieceHashes> {
  const pool = options.hashPool === undefined ? sharedHashPool() : (options.hashPool ?? undefined)
  if (pool?.usable && (want.v1 || want.v2) && geometry.pieceSize(piece) >= pool.minJobBytes) {
    try {
      return await hashOnPool(pool, geometry, piece, want, read, options.signal)
    } catch (error) {
      if (!(error instanceof HashPoolError)) throw error
      // the pool is closed, full or a worker died: hash inline instead
    }
  }
  return hashInline(geometry, piece, want, read, options.signal)
}

async function readChunk(
  read: PieceRangeReader,
  piece: number,
  at: number,
  length: number,
): Promise<Uint8Array> {
  const r = read(at, length)
  const chunk = r instanceof Uint8Array ? r : await r
  if (chunk.byteLength !== length) {
    throw new StorageError('GW_ERR_STORAGE_IO', 'hash', `short read while hashing piece ${piece}`, { piece })
  }
  return chunk
}

async function hashOnPool(
  pool: HashPool,
  geometry: PieceGeometry,
  piece: number,
  want: HashWant,
  read: PieceRangeReader,
  signal: AbortSignal | undefined,
): Promise<PieceHashes> {
  const job = await pool.open(want, { signal })
  try {
    let pos = 0
    for (const range of geometry.dataRanges(piece)) {
      if (range.pieceOffset > pos) job.zeros(range.pieceOffset - pos)
      for (let done = 0; done < range.length; done += HASH_READ_CHUNK) {
        signal?.throwIfAborted()
        const length = Math.min(HASH_READ_CHUNK, range.length - done)
        const chunk = await readChunk(read, piece, range.pieceOffset + done, length)
        const copying = job.update(chunk)
        if (copying !== undefined) await copying
      }
      pos = range.pieceOffset + range.length
    }
    const size = geometry.pieceSize(piece)
    if (size > pos) job.zeros(size - pos)
    return await job.finish()
  } finally {
    job.cancel() // no-op once finished
  }
}

async function hashInline(
  geometry: PieceGeometry,
  piece: number,
  want: HashWant,
  read: PieceRangeReader,
  signal: AbortSignal | undefined,
): Promise<PieceHashes> {
  const v1 = want.v1 ? new V1PieceHasher(geometry.pieceLength) : undefined
  const leaves: Uint8Array[] | undefined = want.v2 ? [] : undefined
  let pos = 0
  for (const range of geometry.dataRanges(piece)) {
    if (range.pieceOffset > pos) v1?.updateZeros(range.pieceOffset - pos)
    for (let done = 0; done < range.length; done += HASH_READ_CHUNK) {
      signal?.throwIfAborted()
      const length = Math.min(HASH_READ_CHUNK, range.length - done)
      const chunk = await readChunk(read, piece, range.pieceOffset + done, length)
      v1?.update(chunk)
      if (leaves) {
        for (let b = 0; b < length; b += BLOCK_SIZE) {
          leaves.push(blockHash(chunk.subarray(b, Math.min(b + BLOCK_SIZE, length))))
        }
      }
    }
    pos = range.pieceOffset + range.length
  }
  const size = geometry.pieceSize(piece)
  if (size > pos) v1?.updateZeros(size - pos)
  const result: { sha1?: Uint8Array; v2Leaves?: Uint8Array[] } = {}
  if (v1) result.sha1 = v1.digest()
  if (leaves) result.v2Leaves = leaves
  return result
}
