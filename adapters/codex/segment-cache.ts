/**
 * On-disk read-through cache of fixed-size *segments* of Codex datasets, keyed by
 * (dataset CID, segment index). Used by `CodexFileReader` (the seed read path): Codex master has
 * no HTTP Range support and a download streams the whole dataset (NOTES.md §1.4), so bytes that
 * were fetched once are kept here instead of being downloaded again for every BitTorrent request.
 *
 * - Segment `i` of a dataset of `L` bytes covers `[i·S, min((i+1)·S, L))`, `S` = `segmentBytes`
 *   (default 4 MiB). Only the last segment of a dataset may be shorter.
 * - Bounded: the bytes of all segment files never exceed `maxBytes`. Space is reserved (evicting
 *   least recently used segments) *before* a file is written, so the bound also holds while writes
 *   are in flight. A segment larger than the bound is simply not cached.
 * - Files live flat in `dir` as `<sha256(cid) prefix>-<index>.seg`, written to a `.tmp` name and
 *   renamed, so a crash never leaves a half-written segment under a final name. `open()` wipes
 *   every `.seg`/`.tmp` file found in `dir` (the index is in memory only; a cache that survives a
 *   restart is not worth trusting unverified bytes for). Other files in `dir` are left alone.
 * - Memory bounded: `read` returns only the requested slice (one `pread`), never a whole segment.
 * - A segment evicted while it is being read reads as a miss (ENOENT is not an error).
 * - Counters (`stats`) for metrics: hits, misses, bytes served, bytes written, evictions.
 *
 * The cache trusts its own files; integrity is the business of the layer above (the seed store
 * verifies every piece against the torrent's hashes and `evict`s segments on mismatch).
 */

import { createHash } from 'node:crypto'
import { mkdir, open, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { AbortOptions } from '../../gateway/protocol/types.ts'

/** Stable codes of `SegmentCacheError`. */
export type SegmentCacheErrorCode =
  /** Constructor or call arguments out of range. */
  | 'GW_ERR_SEGMENT_CACHE_ARGUMENT'
  /** The cache directory cannot be prepared or a segment file cannot be written. */
  | 'GW_ERR_SEGMENT_CACHE_IO'
  /** The cache is not open (never opened, or closed). */
  | 'GW_ERR_SEGMENT_CACHE_CLOSED'

export class SegmentCacheError extends Error {
  readonly code: SegmentCacheErrorCode

  constructor(code: SegmentCacheErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'SegmentCacheError'
    this.code = code
  }
}

/** 4 MiB: large enough to amortise one HTTP body, small enough to keep per-read memory low. */
export const DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024
/** 1 GiB. */
export const DEFAULT_CACHE_MAX_BYTES = 1024 * 1024 * 1024

export interface SegmentCacheInit {
  /** Directory of the segment files (created if missing; our own files in it are wiped at open). */
  readonly dir: string
  /** Segment size in bytes. @default 4 MiB */
  readonly segmentBytes?: number
  /** Upper bound of the bytes of all segment files. @default 1 GiB */
  readonly maxBytes?: number
}

/** Counters, monotonic except `bytesStored` and `segments`. */
export interface SegmentCacheStats {
  readonly hits: number
  readonly misses: number
  /** Bytes returned by `read` (hits only). */
  readonly bytesServed: number
  /** Bytes written into segment files. */
  readonly bytesWritten: number
  readonly evictions: number
  /** Bytes currently held (segment files plus reservations of writes in flight). */
  readonly bytesStored: number
  readonly segments: number
}

interface Entry {
  readonly key: string
  readonly cid: string
  readonly index: number
  readonly length: number
  readonly file: string
}

const SEGMENT_FILE = /^[0-9a-f]{32}-\d+(\.\d+)?\.(seg|tmp)$/

/** The cache; one instance may be shared by every reader of the process. */
export class SegmentCache {
  readonly dir: string
  readonly segmentBytes: number
  readonly maxBytes: number
  /** LRU order: the first entry is the least recently used (Map keeps insertion order). */
  readonly #entries = new Map<string, Entry>()
  /** Writes in flight, by key (a second `put` of the same segment waits for the first). */
  readonly #writing = new Map<string, Promise<void>>()
  /** Files of evicted segments being deleted. */
  readonly #unlinking = new Set<Promise<void>>()
  #bytes = 0
  #tmpSeq = 0
  #state: 'new' | 'open' | 'closed' = 'new'
  #hits = 0
  #misses = 0
  #bytesServed = 0
  #bytesWritten = 0
  #evictions = 0

  constructor(init: SegmentCacheInit) {
    const segmentBytes = init.segmentBytes ?? DEFAULT_SEGMENT_BYTES
    const maxBytes = init.maxBytes ?? DEFAULT_CACHE_MAX_BYTES
    if (typeof init.dir !== 'string' || init.dir === '') argument('dir is required')
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1) argument(`bad segmentBytes ${segmentBytes}`)
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) argument(`bad maxBytes ${maxBytes}`)
    this.dir = init.dir
    this.segmentBytes = segmentBytes
    this.maxBytes = maxBytes
  }

  /** Creates the directory and wipes segment files left by an earlier run. Idempotent. */
  async open(options: AbortOptions = {}): Promise<void> {
    options.signal?.throwIfAborted()
    if (this.#state === 'open') return
    if (this.#state === 'closed')
      throw new SegmentCacheError('GW_ERR_SEGMENT_CACHE_CLOSED', 'cache is closed')
    try {
      await mkdir(this.dir, { recursive: true })
      const names = await readdir(this.dir)
      for (const name of names) {
        if (SEGMENT_FILE.test(name)) await rm(join(this.dir, name), { force: true })
      }
    } catch (cause) {
      throw new SegmentCacheError('GW_ERR_SEGMENT_CACHE_IO', `cannot prepare ${this.dir}`, { cause })
    }
    this.#state = 'open'
  }

  /** Number of segments of a dataset of `datasetLength` bytes. */
  segmentCount(datasetLength: number): number {
    return Math.ceil(datasetLength / this.segmentBytes)
  }

  /** Length of segment `index` of a dataset of `datasetLength` bytes. */
  segmentLength(datasetLength: number, index: number): number {
    return Math.max(0, Math.min(this.segmentBytes, datasetLength - index * this.segmentBytes))
  }

  /** True if the segment is cached (no I/O; it may still be evicted before a `read`). */
  has(cid: string, index: number): boolean {
    return this.#entries.has(key(cid, index))
  }

  /**
   * Reads `length` bytes at `offset` inside segment `index` of `cid`; `undefined` on a miss (also
   * when the cached segment is shorter than `offset + length`: it was cached for another length).
   */
  async read(
    cid: string,
    index: number,
    offset: number,
    length: number,
    options: AbortOptions = {},
  ): Promise<Uint8Array | undefined> {
    options.signal?.throwIfAborted()
    this.#checkOpen()
    const k = key(cid, index)
    const entry = this.#entries.get(k)
    if (entry === undefined || offset < 0 || length < 0 || offset + length > entry.length) {
      this.#misses++
      return undefined
    }
    // LRU touch.
    this.#entries.delete(k)
    this.#entries.set(k, entry)
    const out = new Uint8Array(length)
    let handle: Awaited<ReturnType<typeof open>> | undefined
    try {
      handle = await open(entry.file, 'r')
      let done = 0
      // Bounded: every iteration reads ≥ 1 byte or stops.
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, offset + done)
        if (bytesRead === 0) break
        done += bytesRead
      }
      if (done !== length) throw new Error(`segment file ${entry.file} is short`)
    } catch {
      // Evicted meanwhile (ENOENT) or damaged: forget it, report a miss.
      if (this.#entries.get(k) === entry) this.#remove(entry, false)
      this.#misses++
      return undefined
    } finally {
      await handle?.close()
    }
    options.signal?.throwIfAborted()
    this.#hits++
    this.#bytesServed += length
    return out
  }

  /**
   * Stores a whole segment (`data.byteLength` must be its full length). Returns false when it was
   * not cached (larger than the bound, or the cache closed meanwhile). Evicts LRU segments first.
   */
  async put(cid: string, index: number, data: Uint8Array, options: AbortOptions = {}): Promise<boolean> {
    options.signal?.throwIfAborted()
    this.#checkOpen()
    if (!Number.isSafeInteger(index) || index < 0) argument(`bad segment index ${index}`)
    if (data.byteLength === 0 || data.byteLength > this.segmentBytes) {
      argument(`segment of ${data.byteLength} bytes (segment size ${this.segmentBytes})`)
    }
    const k = key(cid, index)
    const pending = this.#writing.get(k)
    if (pending !== undefined) await pending
    if (this.#entries.has(k)) return true
    if (this.#state !== 'open' || data.byteLength > this.maxBytes) return false
    const length = data.byteLength
    this.#makeRoom(length)
    // Reservations of other writes in flight may fill the bound: then this segment is not cached.
    if (this.#bytes + length > this.maxBytes) return false
    this.#bytes += length // reservation, turned into the entry's bytes on success
    const tag = cidTag(cid)
    const file = join(this.dir, `${tag}-${index}.seg`)
    const tmp = join(this.dir, `${tag}-${index}.${this.#tmpSeq++}.tmp`)
    const write = (async (): Promise<boolean> => {
      try {
        // Files of evicted segments are gone before a new one is written (strict disk bound).
        await Promise.all(this.#unlinking)
        await writeFile(tmp, data)
        await rename(tmp, file)
        return true
      } catch (cause) {
        await unlink(tmp).catch(() => undefined)
        this.#bytes -= length
        throw new SegmentCacheError('GW_ERR_SEGMENT_CACHE_IO', `cannot write segment ${index} of ${cid}`, {
          cause,
        })
      }
    })()
    this.#writing.set(
      k,
      write.then(
        () => undefined,
        () => undefined,
      ),
    )
    try {
      await write
    } finally {
      this.#writing.delete(k)
    }
    if (this.#state !== 'open') {
      this.#bytes -= length
      await unlink(file).catch(() => undefined)
      return false
    }
    this.#bytesWritten += length
    this.#entries.set(k, { key: k, cid, index, length, file })
    return true
  }

  /** Evicts one segment (no-op if absent). */
  evict(cid: string, index: number): boolean {
    const entry = this.#entries.get(key(cid, index))
    if (entry === undefined) return false
    this.#remove(entry, true)
    return true
  }

  /** Evicts every segment of `cid`; returns how many. */
  evictDataset(cid: string): number {
    let n = 0
    for (const entry of [...this.#entries.values()]) {
      if (entry.cid === cid) {
        this.#remove(entry, true)
        n++
      }
    }
    return n
  }

  get stats(): SegmentCacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      bytesServed: this.#bytesServed,
      bytesWritten: this.#bytesWritten,
      evictions: this.#evictions,
      bytesStored: this.#bytes,
      segments: this.#entries.size,
    }
  }

  /** Waits for writes in flight, then deletes the segment files and stops. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    // Bounded: each write settles on its own (fs calls), and no new write starts after closing.
    await Promise.all([...this.#writing.values()])
    for (const entry of [...this.#entries.values()]) this.#remove(entry, false)
    await Promise.all([...this.#unlinking])
    this.#bytes = 0
  }

  /** Evicts least recently used segments until `incoming` more bytes fit under the bound. */
  #makeRoom(incoming: number): void {
    // Bounded: each iteration removes one entry.
    for (const entry of this.#entries.values()) {
      if (this.#bytes + incoming <= this.maxBytes) return
      this.#remove(entry, true)
    }
  }

  #remove(entry: Entry, counted: boolean): void {
    this.#entries.delete(entry.key)
    this.#bytes -= entry.length
    if (counted) this.#evictions++
    // Unlinking an open file is fine on POSIX: readers holding it finish their pread.
    const done: Promise<void> = unlink(entry.file).then(
      () => {
        this.#unlinking.delete(done)
      },
      () => {
        this.#unlinking.delete(done)
      },
    )
    this.#unlinking.add(done)
  }

  #checkOpen(): void {
    if (this.#state !== 'open') {
      throw new SegmentCacheError(
        'GW_ERR_SEGMENT_CACHE_CLOSED',
        this.#state === 'new' ? 'cache is not open' : 'cache is closed',
      )
    }
  }
}

function key(cid: string, index: number): string {
  return `${cid}\0${index}`
}

/** A filesystem-safe, fixed-length tag of a CID (CIDs are case-sensitive; file systems may not be). */
function cidTag(cid: string): string {
  return createHash('sha256').update(cid).digest('hex').slice(0, 32)
}

function argument(message: string): never {
  throw new SegmentCacheError('GW_ERR_SEGMENT_CACHE_ARGUMENT', message)
}
