/**
 * In-memory storage backend: the reference implementation of the engine's storage contract
 * (`gateway/engine/storage.ts`). Used by tests and as documentation of what a backend must do.
 *
 * - Data lives in one `Uint8Array` per written piece (the whole torrent may end up in memory: use
 *   it for tests and small torrents only), allocated once on the piece's first write, and backed
 *   by a `SharedArrayBuffer`: hash workers (`gateway/engine/hash-pool.ts`) read it without a copy,
 *   and such memory does not count as V8 external memory, so a large store does not trigger
 *   repeated full garbage collections while it fills.
 * - State is kept per torrent (keyed by info hash) inside the store object, so closing and
 *   re-opening a torrent on the same `MemoryPieceStore` behaves like a restart with resume data.
 * - Backpressure: "staged" bytes (pieces written but neither committed nor discarded) above
 *   `stagingHighWaterBytes` set `needsDrain`; it clears below `stagingLowWaterBytes`, the way a
 *   staging area in front of slow storage (e.g. Codex) behaves.
 *
 * Like every backend it relies on `StorageFacade` for bounds checks, padding and ordering; the
 * per-method comments say what the contract asks of a backend.
 */

import { Bitfield } from '../gateway/engine/bitfield.ts'
import { PieceGeometry } from '../gateway/engine/piece-geometry.ts'
import {
  type CompletionState,
  type HashWant,
  hashPieceData,
  type PieceHashes,
  type PieceStore,
  StorageError,
  type StorageOperation,
  type TorrentStorage,
} from '../gateway/engine/storage.ts'
import { toHex } from '../gateway/protocol/hex.ts'
import type { AbortOptions, TorrentInfo } from '../gateway/protocol/types.ts'

/** Options of `MemoryPieceStore`. */
export interface MemoryPieceStoreInit {
  /** `needsDrain` turns true when uncommitted piece bytes reach this. @default Infinity (never) */
  readonly stagingHighWaterBytes?: number
  /** `needsDrain` clears when uncommitted piece bytes fall below this. @default half the high water mark */
  readonly stagingLowWaterBytes?: number
}

/** What survives a close/re-open of one torrent: its piece buffers and committed bitfield. */
interface TorrentData {
  readonly pieces: Map<number, Uint8Array>
  readonly committed: Bitfield
}

/** A `PieceStore` keeping everything in memory. */
export class MemoryPieceStore implements PieceStore {
  readonly #torrents = new Map<string, TorrentData>()
  readonly #highWater: number
  readonly #lowWater: number

  constructor(init: MemoryPieceStoreInit = {}) {
    this.#highWater = init.stagingHighWaterBytes ?? Number.POSITIVE_INFINITY
    this.#lowWater = init.stagingLowWaterBytes ?? this.#highWater / 2
    if (!(this.#highWater > 0) || !(this.#lowWater >= 0) || this.#lowWater > this.#highWater) {
      throw new RangeError('invalid staging water marks')
    }
  }

  /** Opens a torrent; data committed by an earlier, closed instance is still there. */
  async openTorrent(info: TorrentInfo, options: AbortOptions = {}): Promise<MemoryTorrentStorage> {
    options.signal?.throwIfAborted()
    const geometry = new PieceGeometry(info)
    const key = torrentKey(info)
    let data = this.#torrents.get(key)
    if (data === undefined || data.committed.size !== geometry.pieceCount) {
      data = { pieces: new Map(), committed: new Bitfield(geometry.pieceCount) }
      this.#torrents.set(key, data)
    }
    return new MemoryTorrentStorage(geometry, data, this.#highWater, this.#lowWater)
  }

  /** Forgets everything stored for `info` (like deleting the files). */
  delete(info: TorrentInfo): void {
    this.#torrents.delete(torrentKey(info))
  }
}

/** One open torrent of a `MemoryPieceStore`. */
export class MemoryTorrentStorage implements TorrentStorage {
  readonly #geometry: PieceGeometry
  readonly #data: TorrentData
  readonly #highWater: number
  readonly #lowWater: number
  #stagedBytes = 0
  #needsDrain = false
  #drainWaiters: { resolve: () => void; reject: (error: unknown) => void }[] = []
  #closed = false

  constructor(geometry: PieceGeometry, data: TorrentData, highWater: number, lowWater: number) {
    this.#geometry = geometry
    this.#data = data
    this.#highWater = highWater
    this.#lowWater = lowWater
    for (const piece of data.pieces.keys()) {
      if (!data.committed.has(piece)) this.#stagedBytes += geometry.pieceSize(piece)
    }
    this.#updateDrain()
  }

  /** Uncommitted bytes held (pieces written but not yet committed or discarded). */
  get stagedBytes(): number {
    return this.#stagedBytes
  }

  get needsDrain(): boolean {
    return this.#needsDrain
  }

  /** Copies `data` into the piece buffer (allocated on first write). Completes synchronously. */
  writeBlock(piece: number, offset: number, data: Uint8Array, options: AbortOptions = {}): Promise<void> {
    try {
      this.#check('write', piece, options)
      let buffer = this.#data.pieces.get(piece)
      if (buffer === undefined) {
        buffer = pieceBuffer(this.#geometry.pieceSize(piece))
        this.#data.pieces.set(piece, buffer)
        if (!this.#data.committed.has(piece)) this.#stagedBytes += buffer.byteLength
        this.#updateDrain()
      }
      buffer.set(data, offset)
      return RESOLVED
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** A copy of the requested range; never-written ranges read as zeros. */
  async readBlock(
    piece: number,
    offset: number,
    length: number,
    options: AbortOptions = {},
  ): Promise<Uint8Array> {
    this.#check('read', piece, options)
    const buffer = this.#data.pieces.get(piece)
    if (buffer === undefined) return new Uint8Array(length)
    return buffer.slice(offset, offset + length)
  }

  /** Hashes the data ranges of the piece (padding as zeros for v1, skipped for v2). */
  async hashPiece(piece: number, want: HashWant, options: AbortOptions = {}): Promise<PieceHashes> {
    this.#check('hash', piece, options)
    const buffer = this.#data.pieces.get(piece) ?? pieceBuffer(this.#geometry.pieceSize(piece))
    return hashPieceData(
      this.#geometry,
      piece,
      want,
      (at, length) => buffer.subarray(at, at + length),
      options,
    )
  }

  /** Marks the piece committed; its bytes stop counting as staged. */
  async commitPiece(piece: number, options: AbortOptions = {}): Promise<void> {
    this.#check('commit', piece, options)
    if (!this.#data.committed.set(piece)) return
    if (this.#data.pieces.has(piece)) this.#stagedBytes -= this.#geometry.pieceSize(piece)
    else this.#data.pieces.set(piece, pieceBuffer(this.#geometry.pieceSize(piece)))
    this.#updateDrain()
  }

  /** Drops the piece's bytes and its committed mark. */
  async discardPiece(piece: number, options: AbortOptions = {}): Promise<void> {
    this.#check('discard', piece, options)
    const had = this.#data.pieces.delete(piece)
    const wasCommitted = this.#data.committed.clear(piece)
    if (had && !wasCommitted) this.#stagedBytes -= this.#geometry.pieceSize(piece)
    this.#updateDrain()
  }

  /** Always known: the committed bitfield. */
  async completion(options: AbortOptions = {}): Promise<CompletionState> {
    this.#check('completion', undefined, options)
    return { known: true, have: this.#data.committed.toBytes() }
  }

  /** Resolves once staged bytes fell below the low water mark. */
  onDrain(options: AbortOptions = {}): Promise<void> {
    try {
      this.#check('drain', undefined, options)
    } catch (error) {
      return Promise.reject(error)
    }
    if (!this.#needsDrain) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const signal = options.signal
      const onAbort = (): void => {
        this.#drainWaiters = this.#drainWaiters.filter((w) => w !== waiter)
        reject(signal?.reason)
      }
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        reject: (error: unknown) => {
          signal?.removeEventListener('abort', onAbort)
          reject(error)
        },
      }
      this.#drainWaiters.push(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Rejects pending `onDrain` waiters; data stays in the store for a later `openTorrent`. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const waiters = this.#drainWaiters
    this.#drainWaiters = []
    for (const w of waiters) w.reject(new StorageError('GW_ERR_STORAGE_CLOSED', 'drain', 'storage closed'))
  }

  #updateDrain(): void {
    if (!this.#needsDrain && this.#stagedBytes >= this.#highWater) this.#needsDrain = true
    else if (this.#needsDrain && this.#stagedBytes < this.#lowWater) {
      this.#needsDrain = false
      const waiters = this.#drainWaiters
      this.#drainWaiters = []
      for (const w of waiters) w.resolve()
    }
  }

  #check(operation: StorageOperation, piece: number | undefined, options: AbortOptions): void {
    options.signal?.throwIfAborted()
    if (this.#closed)
      throw new StorageError('GW_ERR_STORAGE_CLOSED', operation, 'storage is closed', { piece })
  }
}

const RESOLVED: Promise<void> = Promise.resolve()

/** A zeroed piece buffer in shared memory (see the module comment). */
function pieceBuffer(size: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(size))
}

function torrentKey(info: TorrentInfo): string {
  const hash = info.infoHashV1 ?? info.infoHashV2
  if (hash === undefined)
    throw new StorageError('GW_ERR_STORAGE_UNSUPPORTED', 'open', 'torrent has no info hash')
  return toHex(hash)
}
