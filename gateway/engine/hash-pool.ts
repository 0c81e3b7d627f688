/**
 * `HashPool`: piece hashing (v1 SHA-1, v2 leaf SHA-256) on worker threads, so the engine's event
 * loop keeps reading sockets while pieces are verified (libtorrent hashes on its disk/hasher
 * threads the same way). `hashPieceData` (`./storage.ts`) uses it when one is available and falls
 * back to hashing inline otherwise, so backends benefit without changes.
 *
 * - Workers (`./hash-worker.ts`): `size` of them, default `max(1, availableParallelism() - 1)`,
 *   spawned lazily on the first job. An idle worker is unref'd and never keeps the process
 *   alive; a worker with jobs in progress is ref'd like any pending I/O. `close()` terminates them.
 * - Data is shared, not copied: views on a `SharedArrayBuffer` (e.g. `MemoryPieceStore` piece
 *   buffers) are posted as they are. Other data is copied once into a reusable 256 KiB
 *   SharedArrayBuffer staging buffer (a bounded set, recycled when the worker is done with it).
 *   Buffers are never transferred: the caller may share them with others.
 * - Bounded: at most `maxActiveJobs` pieces in progress, `maxQueuedJobs` waiting for a slot
 *   (beyond that `open` rejects with `GW_ERR_HASH_POOL_BUSY`), `stagingBuffers` staging buffers.
 * - Every wait is cancellable (`signal`); a cancelled job is dropped by its worker.
 * - Failures are `HashPoolError`s: closed pool, full queue, or a worker that failed or died (its
 *   jobs fail, the next job spawns a replacement; after repeated deaths the pool stops spawning and
 *   every `open` fails, so callers hash inline).
 *
 * Data posted to a job must not change until the job settles (the facade's per-piece exclusive
 * hash lock guarantees it for storage backends).
 *
 * The process-wide shared pool (`acquireSharedHashPool`) is reference counted: each `Session`
 * holds a lease from construction to `stop()`, and the pool (and its workers) is closed when the
 * last lease is released.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import type { AbortOptions } from '../protocol/types.ts'
import type { HashWant, PieceHashes } from './storage.ts'

// ---- worker protocol (shared with ./hash-worker.ts) ------------------------------------------

/** File data (SharedArrayBuffer-backed) or a count of zero bytes (v1 padding). */
export type HashPart = Uint8Array | number

/** Main thread → worker. */
export type ToWorker =
  | {
      readonly kind: 'hash'
      readonly job: number
      readonly v1: boolean
      readonly v2: boolean
      readonly parts: readonly HashPart[]
      /** Staging buffer ids to hand back once the parts are hashed. */
      readonly staging: readonly number[]
      readonly end: boolean
    }
  | { readonly kind: 'cancel'; readonly job: number }

/** Worker → main thread. */
export type FromWorker =
  | { readonly kind: 'released'; readonly staging: readonly number[] }
  | {
      readonly kind: 'done'
      readonly job: number
      readonly staging: readonly number[]
      sha1?: Uint8Array
      /** Packed 32-byte leaf digests. */
      leaves?: Uint8Array
    }
  | {
      readonly kind: 'failed'
      readonly job: number
      readonly message: string
      readonly staging: readonly number[]
    }

// ---- errors -----------------------------------------------------------------------------------

export type HashPoolErrorCode =
  /** The pool is closed (or closing). */
  | 'GW_ERR_HASH_POOL_CLOSED'
  /** `maxQueuedJobs` jobs already wait for a slot. */
  | 'GW_ERR_HASH_POOL_BUSY'
  /** A worker failed or died (or could not be started). */
  | 'GW_ERR_HASH_POOL_WORKER'

/** Every failure of the pool itself; callers may hash inline instead. Aborts reject with the signal's reason. */
export class HashPoolError extends Error {
  readonly code: HashPoolErrorCode

  constructor(code: HashPoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'HashPoolError'
    this.code = code
  }
}

// ---- pool -------------------------------------------------------------------------------------

/** Default worker count: one core is left to the event loop. */
export function defaultHashPoolSize(): number {
  return Math.max(1, availableParallelism() - 1)
}

export interface HashPoolInit {
  /** Worker threads. @default max(1, availableParallelism() - 1) */
  readonly size?: number
  /** Jobs (pieces) in progress at once over all workers. @default 8 × size */
  readonly maxActiveJobs?: number
  /** Jobs waiting for a slot; one more rejects with `GW_ERR_HASH_POOL_BUSY`. @default 1024 */
  readonly maxQueuedJobs?: number
  /** 256 KiB staging buffers for data not in a SharedArrayBuffer. @default 2 × maxActiveJobs */
  readonly stagingBuffers?: number
  /** Pieces smaller than this are hashed inline by `hashPieceData` (a round trip costs more). @default 64 KiB */
  readonly minJobBytes?: number
  /** A job posts its buffered parts once this many bytes are pending. @default 1 MiB */
  readonly flushBytes?: number
  /** Worker deaths after which the pool stops spawning workers. @default 3 */
  readonly maxWorkerDeaths?: number
  /** Worker module (tests). @default ./hash-worker.ts */
  readonly workerUrl?: URL
}

/** Size of one staging buffer (a multiple of 16 KiB, so v2 leaves never straddle two). */
export const STAGING_BUFFER_SIZE = 256 * 1024
const LEAF = 32

interface Waiter<T> {
  resolve(value: T): void
  reject(error: unknown): void
}

interface WorkerSlot {
  readonly worker: Worker
  readonly jobs: Map<number, HashJob>
  /** Staging ids posted to this worker and not yet released. */
  readonly staging: Set<number>
  alive: boolean
}

/** A pool of hashing workers; see the module comment. */
export class HashPool {
  readonly size: number
  readonly minJobBytes: number
  readonly #maxActive: number
  readonly #maxQueued: number
  readonly #maxStaging: number
  readonly #flushBytes: number
  readonly #maxDeaths: number
  readonly #workerUrl: URL
  readonly #slots: WorkerSlot[] = []
  readonly #slotWaiters: Waiter<void>[] = []
  readonly #staging: Uint8Array[] = []
  readonly #freeStaging: number[] = []
  readonly #stagingWaiters: Waiter<number>[] = []
  #active = 0
  #completed = 0
  #nextJob = 1
  #deaths = 0
  #closePromise: Promise<void> | undefined

  constructor(init: HashPoolInit = {}) {
    this.size = init.size ?? defaultHashPoolSize()
    this.#maxActive = init.maxActiveJobs ?? 8 * this.size
    this.#maxQueued = init.maxQueuedJobs ?? 1024
    this.#maxStaging = init.stagingBuffers ?? 2 * this.#maxActive
    this.minJobBytes = init.minJobBytes ?? 64 * 1024
    this.#flushBytes = init.flushBytes ?? 1024 * 1024
    this.#maxDeaths = init.maxWorkerDeaths ?? 3
    this.#workerUrl = init.workerUrl ?? new URL('./hash-worker.ts', import.meta.url)
    const counts: [string, number, number][] = [
      ['size', this.size, 1],
      ['maxActiveJobs', this.#maxActive, 1],
      ['maxQueuedJobs', this.#maxQueued, 0],
      ['stagingBuffers', this.#maxStaging, 1],
      ['minJobBytes', this.minJobBytes, 0],
      ['flushBytes', this.#flushBytes, 1],
      ['maxWorkerDeaths', this.#maxDeaths, 0],
    ]
    for (const [name, value, min] of counts) {
      if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`invalid ${name} ${value}`)
    }
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closePromise !== undefined
  }

  /** False when closed or when workers died too often: `open` would fail. */
  get usable(): boolean {
    return !this.closed && this.#deaths < this.#maxDeaths
  }

  /** Live counters (tests, metrics). */
  stats(): {
    workers: number
    activeJobs: number
    queuedJobs: number
    stagingBuffers: number
    completedJobs: number
  } {
    return {
      completedJobs: this.#completed,
      workers: this.#slots.length,
      activeJobs: this.#active,
      queuedJobs: this.#slotWaiters.length,
      stagingBuffers: this.#staging.length,
    }
  }

  /**
   * Starts hashing one piece: feed it with `update`/`zeros` in linear order, then `finish`. Waits
   * for a free slot (cancellable by `signal`); rejects with `HashPoolError` when closed, when
   * the wait queue is full, or when no worker can run.
   */
  async open(want: HashWant, options: AbortOptions = {}): Promise<HashJob> {
    const signal = options.signal
    signal?.throwIfAborted()
    this.#checkUsable()
    let slot: WorkerSlot
    if (this.#active >= this.#maxActive || this.#slotWaiters.length > 0) {
      if (this.#slotWaiters.length >= this.#maxQueued) {
        throw new HashPoolError('GW_ERR_HASH_POOL_BUSY', `${this.#maxQueued} hash jobs already queued`)
      }
      await this.#wait(this.#slotWaiters, signal) // resolves with a slot handed over (already counted)
      try {
        this.#checkUsable()
        slot = this.#pickSlot()
      } catch (error) {
        this.#releaseSlot()
        throw error
      }
    } else {
      slot = this.#pickSlot()
      this.#active++
    }
    const job = new HashJob(this, slot, this.#nextJob++, want, signal)
    if (slot.jobs.size === 0) slot.worker.ref()
    slot.jobs.set(job.id, job)
    return job
  }

  /** Rejects queued and running jobs with `GW_ERR_HASH_POOL_CLOSED` and terminates the workers. Idempotent. */
  close(): Promise<void> {
    if (this.#closePromise === undefined) {
      const error = new HashPoolError('GW_ERR_HASH_POOL_CLOSED', 'hash pool closed')
      for (const w of this.#slotWaiters.splice(0)) w.reject(error)
      for (const w of this.#stagingWaiters.splice(0)) w.reject(error)
      const slots = this.#slots.splice(0)
      const terminated: Promise<unknown>[] = []
      for (const slot of slots) {
        slot.alive = false
        for (const job of [...slot.jobs.values()]) job.fail(error)
        terminated.push(slot.worker.terminate().catch(() => undefined))
      }
      this.#staging.length = 0
      this.#freeStaging.length = 0
      this.#closePromise = Promise.all(terminated).then(() => undefined)
    }
    return this.#closePromise
  }

  // ---- used by HashJob (internal) ---------------------------------------------------------

  /** The number of bytes after which a job posts what it buffered. */
  get flushBytes(): number {
    return this.#flushBytes
  }

  /** A free staging buffer id, or undefined when all are in use (then use `waitStaging`). */
  takeStaging(): number | undefined {
    const id = this.#freeStaging.pop()
    if (id !== undefined) return id
    if (this.closed || this.#staging.length >= this.#maxStaging) return undefined
    this.#staging.push(new Uint8Array(new SharedArrayBuffer(STAGING_BUFFER_SIZE)))
    return this.#staging.length - 1
  }

  /** Waits for a staging buffer to be released (cancellable). */
  waitStaging(signal: AbortSignal | undefined): Promise<number> {
    if (this.closed) return Promise.reject(new HashPoolError('GW_ERR_HASH_POOL_CLOSED', 'hash pool closed'))
    return this.#wait(this.#stagingWaiters, signal)
  }

  stagingBuffer(id: number): Uint8Array {
    const buffer = this.#staging[id]
    if (buffer === undefined) throw new HashPoolError('GW_ERR_HASH_POOL_CLOSED', 'hash pool closed')
    return buffer
  }

  /** Gives staging buffers back (to a waiter first). */
  releaseStaging(ids: readonly number[]): void {
    for (const id of ids) {
      if (this.closed || id >= this.#staging.length) continue
      const waiter = this.#stagingWaiters.shift()
      if (waiter) waiter.resolve(id)
      else this.#freeStaging.push(id)
    }
  }

  /** Posts a message to the job's worker; staging ids travel with it. */
  post(slot: WorkerSlot, msg: ToWorker): void {
    if (!slot.alive) return
    if (msg.kind === 'hash') for (const id of msg.staging) slot.staging.add(id)
    slot.worker.postMessage(msg)
  }

  /** A job is over (done, failed or cancelled): frees its slot. */
  jobEnded(slot: WorkerSlot, job: HashJob): void {
    if (!slot.jobs.delete(job.id)) return
    if (slot.jobs.size === 0 && slot.alive) slot.worker.unref()
    this.#releaseSlot()
  }

  /** Frees one active-job slot, handing it straight to the first waiter (FIFO, never over the limit). */
  #releaseSlot(): void {
    const next = this.#slotWaiters.shift()
    if (next) next.resolve()
    else this.#active--
  }

  // ---- internals --------------------------------------------------------------------------

  #checkUsable(): void {
    if (this.closed) throw new HashPoolError('GW_ERR_HASH_POOL_CLOSED', 'hash pool closed')
    if (this.#deaths >= this.#maxDeaths) {
      throw new HashPoolError('GW_ERR_HASH_POOL_WORKER', `hash workers died ${this.#deaths} times`)
    }
  }

  #wait<T>(queue: Waiter<T>[], signal: AbortSignal | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        const i = queue.indexOf(waiter)
        if (i >= 0) queue.splice(i, 1)
        reject(signal?.reason)
      }
      const waiter: Waiter<T> = {
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(value)
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort)
          reject(error)
        },
      }
      queue.push(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** The least busy worker; spawns one while fewer than `size` run and all are busy. */
  #pickSlot(): WorkerSlot {
    let best: WorkerSlot | undefined
    for (const slot of this.#slots) if (best === undefined || slot.jobs.size < best.jobs.size) best = slot
    if (best !== undefined && (best.jobs.size === 0 || this.#slots.length >= this.size)) return best
    return this.#spawn()
  }

  #spawn(): WorkerSlot {
    let worker: Worker
    try {
      worker = startWorker(this.#workerUrl)
    } catch (cause) {
      this.#deaths++
      throw new HashPoolError('GW_ERR_HASH_POOL_WORKER', 'cannot start a hash worker', { cause })
    }
    worker.unref()
    const slot: WorkerSlot = { worker, jobs: new Map(), staging: new Set(), alive: true }
    this.#slots.push(slot)
    worker.on('message', (msg: FromWorker) => this.#onMessage(slot, msg))
    worker.on('error', (error) => this.#onDeath(slot, error))
    worker.on('messageerror', (error) => this.#onDeath(slot, error))
    worker.on('exit', (code) => this.#onDeath(slot, new Error(`hash worker exited with code ${code}`)))
    return slot
  }

  #onMessage(slot: WorkerSlot, msg: FromWorker): void {
    for (const id of msg.staging) slot.staging.delete(id)
    this.releaseStaging(msg.staging)
    if (msg.kind === 'released') return
    const job = slot.jobs.get(msg.job)
    if (job === undefined) return // cancelled meanwhile
    if (msg.kind === 'failed') {
      job.fail(new HashPoolError('GW_ERR_HASH_POOL_WORKER', `hash worker failed: ${msg.message}`))
      return
    }
    const result: { sha1?: Uint8Array; v2Leaves?: Uint8Array[] } = {}
    if (msg.sha1 !== undefined) result.sha1 = msg.sha1
    if (msg.leaves !== undefined) {
      const packed = msg.leaves
      const leaves = new Array<Uint8Array>(packed.byteLength / LEAF)
      for (let i = 0; i < leaves.length; i++) leaves[i] = packed.subarray(i * LEAF, i * LEAF + LEAF)
      result.v2Leaves = leaves
    }
    this.#completed++
    job.complete(result)
  }

  #onDeath(slot: WorkerSlot, cause: unknown): void {
    if (!slot.alive) return
    slot.alive = false
    if (!this.closed) this.#deaths++
    const i = this.#slots.indexOf(slot)
    if (i >= 0) this.#slots.splice(i, 1)
    const error = new HashPoolError('GW_ERR_HASH_POOL_WORKER', 'hash worker died', { cause })
    for (const job of [...slot.jobs.values()]) job.fail(error)
    // The dead worker holds no buffer any more.
    const staging = [...slot.staging]
    slot.staging.clear()
    this.releaseStaging(staging)
    void slot.worker.terminate().catch(() => undefined)
  }
}

/**
 * One piece being hashed by a `HashPool` worker. Feed the piece's linear space in order: `update`
 * for file data, `zeros` for padding (v1 only), then `finish`. `cancel` drops it (idempotent).
 */
export class HashJob {
  readonly id: number
  readonly #pool: HashPool
  readonly #slot: WorkerSlot
  readonly #v1: boolean
  readonly #v2: boolean
  readonly #signal: AbortSignal | undefined
  #parts: HashPart[] = []
  /** Staging ids used by `#parts` (not yet posted). */
  #stagingIds: number[] = []
  #pendingBytes = 0
  #ended = false
  #error: unknown
  #finish: Waiter<PieceHashes> | undefined

  constructor(pool: HashPool, slot: WorkerSlot, id: number, want: HashWant, signal: AbortSignal | undefined) {
    this.#pool = pool
    this.#slot = slot
    this.id = id
    this.#v1 = want.v1
    this.#v2 = want.v2
    this.#signal = signal
  }

  /**
   * Adds file data. SharedArrayBuffer views are shared as they are; other data is copied into
   * staging buffers (waiting for one if all are busy). Leaves are computed per call, in 16 KiB
   * blocks from the start of `data`.
   */
  update(data: Uint8Array): Promise<void> | undefined {
    this.#checkLive()
    if (data.byteLength === 0) return undefined
    if (data.buffer instanceof SharedArrayBuffer) {
      this.#push(data, data.byteLength)
      return undefined
    }
    const pool = this.#pool
    for (let off = 0; off < data.byteLength; off += STAGING_BUFFER_SIZE) {
      const id = pool.takeStaging()
      if (id === undefined) return this.#copyInSlow(data, off)
      this.#copyChunk(data, off, id)
    }
    return undefined
  }

  /** Adds `length` zero bytes (v1 padding, BEP47); ignored for v2 leaves. */
  zeros(length: number): void {
    this.#checkLive()
    if (length > 0 && this.#v1) this.#push(length, 0)
  }

  /** Posts the rest and resolves with the hashes; rejects on abort (cancelling the job) or pool failure. */
  finish(): Promise<PieceHashes> {
    try {
      this.#checkLive()
    } catch (error) {
      return Promise.reject(error)
    }
    const signal = this.#signal
    if (signal?.aborted) {
      this.cancel()
      return Promise.reject(signal.reason)
    }
    return new Promise<PieceHashes>((resolve, reject) => {
      const onAbort = (): void => {
        this.cancel()
        reject(signal?.reason)
      }
      this.#finish = {
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(value)
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort)
          reject(error)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#flush(true)
    })
  }

  /** Drops the job: the worker forgets it, its slot and unposted staging buffers are freed. */
  cancel(): void {
    if (this.#ended) return
    this.#ended = true
    this.#error ??= new HashPoolError('GW_ERR_HASH_POOL_CLOSED', 'hash job cancelled')
    this.#pool.post(this.#slot, { kind: 'cancel', job: this.id })
    this.#dropLocal()
    this.#pool.jobEnded(this.#slot, this)
  }

  // ---- called by the pool -----------------------------------------------------------------

  complete(hashes: PieceHashes): void {
    if (this.#ended) return
    this.#ended = true
    this.#pool.jobEnded(this.#slot, this)
    this.#finish?.resolve(hashes)
  }

  fail(error: HashPoolError): void {
    if (this.#ended) return
    this.#ended = true
    this.#error = error
    this.#dropLocal()
    this.#pool.jobEnded(this.#slot, this)
    this.#finish?.reject(error)
  }

  // ---- internals --------------------------------------------------------------------------

  #checkLive(): void {
    if (this.#error !== undefined) throw this.#error
    if (this.#ended || this.#finish !== undefined) {
      throw new HashPoolError('GW_ERR_HASH_POOL_CLOSED', 'hash job already finished')
    }
  }

  #push(part: HashPart, bytes: number): void {
    this.#parts.push(part)
    this.#pendingBytes += bytes
    if (this.#pendingBytes >= this.#pool.flushBytes) this.#flush(false)
  }

  /** Copies `data[from..]` into staging buffers, waiting for free ones when needed. */
  async #copyInSlow(data: Uint8Array, from: number): Promise<void> {
    const pool = this.#pool
    for (let off = from; off < data.byteLength; off += STAGING_BUFFER_SIZE) {
      let id = pool.takeStaging()
      if (id === undefined) {
        // Post what we hold first: every busy staging buffer is then with a worker and comes back.
        this.#flush(false)
        id = await pool.waitStaging(this.#signal)
        if (this.#ended) {
          pool.releaseStaging([id])
          this.#checkLive()
        }
      }
      this.#copyChunk(data, off, id)
    }
  }

  /** Copies up to one staging buffer of `data` from `off` into staging buffer `id` and queues it. */
  #copyChunk(data: Uint8Array, off: number, id: number): void {
    const n = Math.min(STAGING_BUFFER_SIZE, data.byteLength - off)
    const view = this.#pool.stagingBuffer(id).subarray(0, n)
    view.set(off === 0 && n === data.byteLength ? data : data.subarray(off, off + n))
    this.#stagingIds.push(id)
    this.#push(view, n)
  }

  #flush(end: boolean): void {
    if (!end && this.#parts.length === 0) return
    const parts = this.#parts
    const staging = this.#stagingIds
    this.#parts = []
    this.#stagingIds = []
    this.#pendingBytes = 0
    this.#pool.post(this.#slot, {
      kind: 'hash',
      job: this.id,
      v1: this.#v1,
      v2: this.#v2,
      parts,
      staging,
      end,
    })
  }

  #dropLocal(): void {
    const staging = this.#stagingIds
    this.#parts = []
    this.#stagingIds = []
    this.#pendingBytes = 0
    this.#pool.releaseStaging(staging)
  }
}

/**
 * Starts a worker. It inherits the process's Node options (loaders, conditions, profiling), except
 * those about the main script (`-e`, `-p`, `--input-type`): `--input-type` would make it refuse its
 * module file. An explicit option list is validated more strictly than the inherited one, so if
 * Node refuses it the worker starts with no options at all.
 */
function startWorker(url: URL): Worker {
  const argv = process.execArgv
  const kept: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? ''
    if (arg === '-e' || arg === '--eval' || arg === '-p' || arg === '--print' || arg === '--input-type') {
      i++ // and its value
      continue
    }
    if (arg.startsWith('--input-type=') || arg.startsWith('--eval=') || arg.startsWith('--print=')) continue
    kept.push(arg)
  }
  if (kept.length === argv.length) return new Worker(url, { name: 'codex-bt-hash' })
  try {
    return new Worker(url, { name: 'codex-bt-hash', execArgv: kept })
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw error
    return new Worker(url, { name: 'codex-bt-hash', execArgv: [] })
  }
}

// ---- the process-wide shared pool -------------------------------------------------------------

/** A hold on the shared pool; `release()` (idempotent) closes the pool when it was the last. */
export interface HashPoolLease {
  readonly pool: HashPool
  release(): Promise<void>
}

let shared: { pool: HashPool; leases: number } | undefined

/**
 * Takes a lease on the process-wide pool, creating it (workers start lazily) if no lease is held.
 * `Session` holds one from construction to `stop()`.
 */
export function acquireSharedHashPool(init?: HashPoolInit): HashPoolLease {
  if (shared === undefined || shared.pool.closed) shared = { pool: new HashPool(init), leases: 0 }
  const entry = shared
  entry.leases++
  let released = false
  return {
    pool: entry.pool,
    release: () => {
      if (released) return Promise.resolve()
      released = true
      if (--entry.leases > 0) return Promise.resolve()
      if (shared === entry) shared = undefined
      return entry.pool.close()
    },
  }
}

/** The shared pool while at least one lease is held, else undefined (hash inline). */
export function sharedHashPool(): HashPool | undefined {
  return shared !== undefined && !shared.pool.closed ? shared.pool : undefined
}
