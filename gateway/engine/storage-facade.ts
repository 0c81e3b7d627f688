/**
 * `StorageFacade`: the engine's only entry point to a storage backend (anacrolix
 * `storage/wrappers.go`). It wraps any `TorrentStorage` and
 * - checks bounds (piece index, offset + length inside the piece, writes of 1..16 KiB),
 * - strips padding: reads of BEP47 pad files / v2 alignment gaps return zeros without touching
 *   the backend, writes never store padding bytes,
 * - enforces the ordering rules of `storage.ts` with a per-piece lock: reads and writes are shared,
 *   hash/commit/discard are exclusive in call order; `close()` and `recheck()` wait for all
 *   in-flight work,
 * - adds write backpressure on top of the backend's (`highWaterMarkBytes` of in-flight writes),
 * - turns backend failures into `StorageError { code, operation, piece }` and fails loudly when a
 *   backend breaks the contract (short reads, wrong hash sizes, malformed completion).
 */

import type { AbortOptions, TorrentInfo } from '../protocol/types.ts'
import { BLOCK_SIZE } from '../protocol/types.ts'
import { raceAbort } from './abort.ts'
import { Bitfield, BitfieldError } from './bitfield.ts'
import { PieceGeometry } from './piece-geometry.ts'
import {
  type CompletionState,
  type HashWant,
  isAbortError,
  isRecheckable,
  type PieceHashes,
  type PieceStore,
  type RecheckOptions,
  StorageError,
  type StorageOperation,
  type TorrentStorage,
  type VerifyPiece,
} from './storage.ts'

/** Options of `StorageFacade`. */
export interface StorageFacadeInit {
  /** `needsDrain` turns true while this many bytes of writes are in flight. @default 32 MiB */
  readonly highWaterMarkBytes?: number
}

/**
 * Per-piece ordering state, a FIFO readers-writer lock: `shared` ops run together, an `exclusive`
 * one runs alone, and nothing overtakes a queued op (so every op waits for all exclusive ops
 * called before it, and an exclusive op for everything called before it).
 */
interface PieceLock {
  /** Running shared ops. */
  shared: number
  /** An exclusive op is running. */
  exclusive: boolean
  /** Ops waiting their turn, in call order. */
  readonly queue: { readonly kind: LockKind; readonly start: () => void }[]
}

type LockKind = 'shared' | 'exclusive'

type Settle = { resolve: () => void; reject: (error: unknown) => void }

const RESOLVED: Promise<void> = Promise.resolve()
const noop = (): void => {}

/**
 * Abort callbacks per signal, behind ONE listener per signal: the engine passes the same torrent
 * signal to every block operation, and adding/removing an event listener per block is costly.
 */
const abortHooks = new WeakMap<AbortSignal, Set<() => void>>()

/** Calls `fn` once when `signal` aborts; returns the unregister function. */
function onAbort(signal: AbortSignal, fn: () => void): () => void {
  let hooks = abortHooks.get(signal)
  if (hooks === undefined) {
    const set = new Set<() => void>()
    hooks = set
    abortHooks.set(signal, set)
    signal.addEventListener(
      'abort',
      () => {
        const pending = [...set]
        set.clear()
        for (const hook of pending) hook()
      },
      { once: true },
    )
  }
  const registered = hooks
  registered.add(fn)
  return () => {
    registered.delete(fn)
  }
}

/** Wraps a backend `TorrentStorage`; see the module comment. Implements `TorrentStorage` itself. */
export class StorageFacade implements TorrentStorage {
  /** Piece/file mapping of this torrent. */
  readonly geometry: PieceGeometry
  readonly #inner: TorrentStorage
  readonly #highWater: number
  /** No padding in the torrent (no BEP47 pad files, no v2 gaps): every range is one data range. */
  readonly #noPadding: boolean
  readonly #locks = new Map<number, PieceLock>()
  #inflight = 0
  #idleWaiters: (() => void)[] = []
  #pendingWriteBytes = 0
  #drainWaiters: Settle[] = []
  #closePromise: Promise<void> | undefined
  #rechecking = false

  /** Opens `info` on `store` and wraps the result. */
  static async open(
    store: PieceStore,
    info: TorrentInfo,
    options: AbortOptions & StorageFacadeInit = {},
  ): Promise<StorageFacade> {
    const geometry = new PieceGeometry(info)
    options.signal?.throwIfAborted()
    let inner: TorrentStorage
    try {
      inner = await store.openTorrent(info, { signal: options.signal })
    } catch (error) {
      throw wrap(error, 'open', undefined)
    }
    return new StorageFacade(inner, geometry, options)
  }

  /** Wraps an already opened backend. `info` may be given as a prebuilt `PieceGeometry`. */
  constructor(inner: TorrentStorage, info: TorrentInfo | PieceGeometry, init: StorageFacadeInit = {}) {
    this.#inner = inner
    this.geometry = info instanceof PieceGeometry ? info : new PieceGeometry(info)
    this.#noPadding = !this.geometry.info.files.some((f) => f.padding)
    const hwm = init.highWaterMarkBytes ?? 32 * 1024 * 1024
    if (!Number.isSafeInteger(hwm) || hwm <= 0)
      throw new RangeError('highWaterMarkBytes must be a positive integer')
    this.#highWater = hwm
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closePromise !== undefined
  }

  /** Whether the backend offers `recheck` (verifying existing data instead of downloading it). */
  get canRecheck(): boolean {
    return isRecheckable(this.#inner)
  }

  /** True while the backend or the in-flight write volume asks the engine to stop requesting blocks. */
  get needsDrain(): boolean {
    return this.#pendingWriteBytes >= this.#highWater || this.#inner.needsDrain
  }

  /** Writes one block (1..16 KiB, inside the piece); padding bytes in it are dropped. */
  writeBlock(piece: number, offset: number, data: Uint8Array, options: AbortOptions = {}): Promise<void> {
    const length = data.byteLength
    try {
      this.#checkRange('write', piece, offset, length)
      if (length > BLOCK_SIZE) throw bounds('write', piece, `block of ${length} bytes exceeds ${BLOCK_SIZE}`)
    } catch (error) {
      return Promise.reject(error)
    }
    const inner = this.#inner
    let run: () => Promise<void>
    if (this.#noPadding) {
      run = () => inner.writeBlock(piece, offset, data, options)
    } else {
      const ranges = this.geometry.dataRanges(piece, offset, length)
      run = async () => {
        for (const r of ranges) {
          const start = r.pieceOffset - offset
          const part = start === 0 && r.length === length ? data : data.subarray(start, start + r.length)
          await inner.writeBlock(piece, r.pieceOffset, part, options)
        }
      }
    }
    this.#pendingWriteBytes += length
    return this.#run('write', piece, 'shared', options, run, length)
  }

  /** Reads `length` bytes of `piece` at `offset`; padding reads as zeros. */
  async readBlock(
    piece: number,
    offset: number,
    length: number,
    options: AbortOptions = {},
  ): Promise<Uint8Array> {
    this.#checkRange('read', piece, offset, length)
    if (this.#noPadding) {
      return this.#run('read', piece, 'shared', options, () =>
        this.#checkedRead(piece, offset, length, options),
      )
    }
    const ranges = this.geometry.dataRanges(piece, offset, length)
    if (ranges.length === 0) {
      this.#checkUsable('read', piece)
      options.signal?.throwIfAborted()
      return new Uint8Array(length)
    }
    const run = async (): Promise<Uint8Array> => {
      const first = ranges[0]
      if (ranges.length === 1 && first && first.pieceOffset === offset && first.length === length) {
        return this.#checkedRead(piece, offset, length, options)
      }
      const out = new Uint8Array(length)
      for (const r of ranges)
        out.set(await this.#checkedRead(piece, r.pieceOffset, r.length, options), r.pieceOffset - offset)
      return out
    }
    return this.#run('read', piece, 'shared', options, run)
  }

  /**
   * Hashes the piece as stored, after every earlier write to it. `want.v2` requires a v2 or hybrid
   * torrent (piece-aligned files, BEP52).
   */
  async hashPiece(piece: number, want: HashWant, options: AbortOptions = {}): Promise<PieceHashes> {
    this.#checkPiece('hash', piece)
    if (want.v2 && this.geometry.info.version === 'v1') {
      throw new StorageError('GW_ERR_STORAGE_UNSUPPORTED', 'hash', 'v2 hashes of a v1-only torrent', {
        piece,
      })
    }
    const run = async (): Promise<PieceHashes> => {
      const hashes = await this.#inner.hashPiece(piece, want, options)
      this.#checkHashes(piece, want, hashes)
      return hashes
    }
    return this.#run('hash', piece, 'exclusive', options, run)
  }

  /** Marks `piece` complete; call only after its hashes were verified. */
  async commitPiece(piece: number, options: AbortOptions = {}): Promise<void> {
    this.#checkPiece('commit', piece)
    return this.#run('commit', piece, 'exclusive', options, () => this.#inner.commitPiece(piece, options))
  }

  /** Fence after a hash failure: waits for in-flight work on `piece`, then forgets it. */
  async discardPiece(piece: number, options: AbortOptions = {}): Promise<void> {
    this.#checkPiece('discard', piece)
    return this.#run('discard', piece, 'exclusive', options, () => this.#inner.discardPiece(piece, options))
  }

  /** The backend's completion state, validated (bitfield length and spare bits, BEP3). */
  completion(options: AbortOptions = {}): Promise<CompletionState> {
    return this.#run('completion', -1, 'none', options, async () => {
      const state = await this.#inner.completion(options)
      if (state.known) this.#toBitfield(state.have)
      return state
    })
  }

  /** Like `completion()`, as a `Bitfield`, or undefined when the backend does not know. */
  async completionBitfield(options: AbortOptions = {}): Promise<Bitfield | undefined> {
    const state = await this.completion(options)
    return state.known ? this.#toBitfield(state.have) : undefined
  }

  /**
   * Verifies existing data (backend capability, see `RecheckableStorage`). Waits for in-flight work;
   * other calls made while it runs reject with `GW_ERR_STORAGE_BUSY`.
   */
  async recheck(verify: VerifyPiece, options: RecheckOptions = {}): Promise<Bitfield> {
    const inner = this.#inner
    if (!isRecheckable(inner)) {
      throw new StorageError('GW_ERR_STORAGE_UNSUPPORTED', 'recheck', 'this backend cannot recheck')
    }
    this.#checkUsable('recheck', undefined)
    options.signal?.throwIfAborted()
    this.#rechecking = true
    try {
      await raceAbort(this.#whenIdle(), options.signal)
      const state = await inner.recheck(verify, options)
      return this.#toBitfield(state.have)
    } catch (error) {
      throw wrap(error, 'recheck', undefined)
    } finally {
      this.#rechecking = false
    }
  }

  /**
   * Resolves when `needsDrain` is observed false (immediately if it already is). Rejects with the
   * signal's reason on abort and with `GW_ERR_STORAGE_CLOSED` when the storage closes.
   */
  async onDrain(options: AbortOptions = {}): Promise<void> {
    this.#checkUsable('drain', undefined)
    options.signal?.throwIfAborted()
    if (this.#pendingWriteBytes >= this.#highWater) {
      const wait = new Promise<void>((resolve, reject) => {
        this.#drainWaiters.push({ resolve, reject })
      })
      await raceAbort(wait, options.signal)
    }
    if (this.#inner.needsDrain) {
      try {
        await this.#inner.onDrain(options)
      } catch (error) {
        throw wrap(error, 'drain', undefined)
      }
    }
  }

  /** Fence: rejects new calls, waits for in-flight work, then closes the backend. Idempotent. */
  close(options: AbortOptions = {}): Promise<void> {
    if (this.#closePromise === undefined) {
      const waiters = this.#drainWaiters
      this.#drainWaiters = []
      for (const w of waiters) w.reject(new StorageError('GW_ERR_STORAGE_CLOSED', 'drain', 'storage closed'))
      this.#closePromise = this.#whenIdle().then(async () => {
        try {
          await this.#inner.close()
        } catch (error) {
          throw wrap(error, 'close', undefined)
        }
      })
      this.#closePromise.catch(noop)
    }
    return raceAbort(this.#closePromise, options.signal)
  }

  // ---- internals -----------------------------------------------------------------------------

  /**
   * Runs `fn` under the ordering rules. `shared` ops wait for the exclusive ops called before
   * them; `exclusive` ops wait for everything called before them; `none` only counts as
   * in-flight. An op whose turn comes at once starts synchronously. The returned promise rejects
   * with the signal's reason as soon as it aborts (`fn` may still be running; it stays in flight
   * until it settles). `writeBytes` are released from the write backpressure count when it ends.
   */
  #run<T>(
    operation: StorageOperation,
    piece: number,
    kind: LockKind | 'none',
    options: AbortOptions,
    fn: () => Promise<T>,
    writeBytes = 0,
  ): Promise<T> {
    const signal = options.signal
    try {
      this.#checkUsable(operation, piece < 0 ? undefined : piece)
      signal?.throwIfAborted()
    } catch (error) {
      if (writeBytes > 0) this.#releaseWriteBytes(writeBytes)
      return Promise.reject(error)
    }
    this.#inflight++
    const lock = kind === 'none' ? undefined : this.#lockFor(piece)
    return new Promise<T>((resolve, reject) => {
      let settled = false
      let unhook: (() => void) | undefined
      const settle = (ok: boolean, value: unknown): void => {
        if (settled) return
        settled = true
        unhook?.()
        if (ok) resolve(value as T)
        else reject(value)
      }
      if (signal !== undefined) unhook = onAbort(signal, () => settle(false, signal.reason))
      const finish = (): void => {
        if (lock !== undefined) this.#release(piece, lock, kind as LockKind)
        if (writeBytes > 0) this.#releaseWriteBytes(writeBytes)
        if (--this.#inflight === 0) this.#wakeIdle()
      }
      const start = (): void => {
        if (signal?.aborted) {
          finish()
          settle(false, signal.reason)
          return
        }
        let task: Promise<T>
        try {
          task = fn()
        } catch (error) {
          task = Promise.reject(error)
        }
        task.then(
          (value) => {
            finish()
            settle(true, value)
          },
          (error: unknown) => {
            finish()
            settle(false, wrap(error, operation, piece < 0 ? undefined : piece))
          },
        )
      }
      if (lock === undefined) start()
      else this.#acquire(lock, kind as LockKind, start)
    })
  }

  #lockFor(piece: number): PieceLock {
    let lock = this.#locks.get(piece)
    if (lock === undefined) {
      lock = { shared: 0, exclusive: false, queue: [] }
      this.#locks.set(piece, lock)
    }
    return lock
  }

  /** Starts `start` now if `kind` may run (nothing queued, no conflict), else queues it. */
  #acquire(lock: PieceLock, kind: LockKind, start: () => void): void {
    if (lock.queue.length === 0 && !lock.exclusive && (kind === 'shared' || lock.shared === 0)) {
      if (kind === 'shared') lock.shared++
      else lock.exclusive = true
      start()
    } else {
      lock.queue.push({ kind, start })
    }
  }

  /** Ends one op of `kind` on `piece` and starts the ops whose turn it now is, in call order. */
  #release(piece: number, lock: PieceLock, kind: LockKind): void {
    if (kind === 'shared') lock.shared--
    else lock.exclusive = false
    // Bounded by the queue length; a started op never finishes synchronously unless aborted,
    // and then its release finds the lock state already updated.
    while (lock.queue.length > 0 && !lock.exclusive) {
      const next = lock.queue[0]!
      if (next.kind === 'exclusive' && lock.shared > 0) break
      lock.queue.shift()
      if (next.kind === 'shared') lock.shared++
      else lock.exclusive = true
      next.start()
    }
    if (lock.shared === 0 && !lock.exclusive && lock.queue.length === 0 && this.#locks.get(piece) === lock) {
      this.#locks.delete(piece)
    }
  }

  #releaseWriteBytes(bytes: number): void {
    this.#pendingWriteBytes -= bytes
    this.#wakeDrain()
  }

  #whenIdle(): Promise<void> {
    if (this.#inflight === 0) return RESOLVED
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve)
    })
  }

  #wakeIdle(): void {
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const w of waiters) w()
  }

  #wakeDrain(): void {
    if (this.#pendingWriteBytes >= this.#highWater) return
    const waiters = this.#drainWaiters
    this.#drainWaiters = []
    for (const w of waiters) w.resolve()
  }

  async #checkedRead(
    piece: number,
    offset: number,
    length: number,
    options: AbortOptions,
  ): Promise<Uint8Array> {
    const data = await this.#inner.readBlock(piece, offset, length, options)
    if (data.byteLength !== length) {
      throw new StorageError(
        'GW_ERR_STORAGE_IO',
        'read',
        `backend returned ${data.byteLength} of ${length} bytes`,
        {
          piece,
        },
      )
    }
    return data
  }

  #checkHashes(piece: number, want: HashWant, hashes: PieceHashes): void {
    const fail = (why: string): never => {
      throw new StorageError('GW_ERR_STORAGE_IO', 'hash', `backend broke the hash contract: ${why}`, {
        piece,
      })
    }
    if (want.v1 && hashes.sha1?.byteLength !== 20) fail('missing or malformed SHA-1')
    if (want.v2) {
      const expected = Math.ceil(this.geometry.dataLength(piece) / BLOCK_SIZE)
      const leaves = hashes.v2Leaves
      if (leaves === undefined || leaves.length !== expected || leaves.some((l) => l.byteLength !== 32)) {
        fail(`expected ${expected} v2 leaves`)
      }
    }
  }

  #toBitfield(have: Uint8Array): Bitfield {
    try {
      return Bitfield.fromBytes(have, this.geometry.pieceCount)
    } catch (error) {
      if (!(error instanceof BitfieldError)) throw error
      throw new StorageError(
        'GW_ERR_STORAGE_IO',
        'completion',
        `backend returned a bad bitfield: ${error.message}`,
        {
          cause: error,
        },
      )
    }
  }

  #checkUsable(operation: StorageOperation, piece: number | undefined): void {
    if (this.#closePromise !== undefined) {
      throw new StorageError('GW_ERR_STORAGE_CLOSED', operation, 'storage is closed', { piece })
    }
    if (this.#rechecking)
      throw new StorageError('GW_ERR_STORAGE_BUSY', operation, 'a recheck is running', { piece })
  }

  #checkPiece(operation: StorageOperation, piece: number): void {
    if (!this.geometry.isValidPiece(piece)) {
      throw bounds(operation, undefined, `piece index ${piece} out of range [0, ${this.geometry.pieceCount})`)
    }
  }

  #checkRange(operation: StorageOperation, piece: number, offset: number, length: number): void {
    this.#checkPiece(operation, piece)
    const size = this.geometry.pieceSize(piece)
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length <= 0 ||
      offset + length > size
    ) {
      throw bounds(operation, piece, `range [${offset}, +${length}) outside piece ${piece} of ${size} bytes`)
    }
  }
}

function bounds(operation: StorageOperation, piece: number | undefined, message: string): StorageError {
  return new StorageError('GW_ERR_STORAGE_BOUNDS', operation, message, { piece })
}

/** Leaves `StorageError`s and abort errors alone; wraps anything else as `GW_ERR_STORAGE_IO`. */
function wrap(error: unknown, operation: StorageOperation, piece: number | undefined): unknown {
  if (error instanceof StorageError || isAbortError(error)) return error
  const message = error instanceof Error ? error.message : String(error)
  return new StorageError('GW_ERR_STORAGE_IO', operation, `${operation} failed: ${message}`, {
    piece,
    cause: error,
  })
}
