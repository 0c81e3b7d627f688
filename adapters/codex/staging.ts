/**
 * Bounded on-disk staging for the Codex piece store: piece data waits here (verified or not)
 * until the file it belongs to is uploaded to Codex, which cannot append to a dataset or accept
 * ranges (NOTES.md §1.3: one `POST /data` per dataset, in order).
 *
 * Layout: `<stagingDir>/<torrentId>/<fileIndex>-<segment>.seg`. Each torrent file is cut into
 * fixed-size segments (the last one shorter); a segment file is created on the first write into
 * it and deleted when the store releases it (after the file's upload succeeded, or when no live
 * piece uses it). All I/O is positioned (`FileHandle.read`/`write` at an offset); at most
 * `maxOpenFiles` handles are open per torrent. Nothing is buffered in memory.
 *
 * `StagingBudget` is shared by all torrents of a store: it counts the logical size of every
 * existing segment (`usedBytes`) against `limitBytes`, with high/low watermarks (hysteresis) that
 * drive the store's backpressure. The budget is soft: writes are never refused (storage contract
 * rule 8), the store stops *requesting* data instead.
 */

import { constants as fsConstants } from 'node:fs'
import { type FileHandle, mkdir, open, readdir, rm, unlink } from 'node:fs/promises'
import { join } from 'node:path'

/** Options of `StagingBudget`. */
export interface StagingBudgetInit {
  /** Staging byte budget shared by all torrents (the high watermark unless given). */
  readonly limitBytes: number
  /** `overHighWater` turns true at this many bytes. @default limitBytes */
  readonly highWaterBytes?: number
  /** `overHighWater` turns false again below this. @default half the high watermark */
  readonly lowWaterBytes?: number
}

/** Byte accounting of all staged segments of one store, with watermark hysteresis. */
export class StagingBudget {
  readonly limitBytes: number
  readonly highWaterBytes: number
  readonly lowWaterBytes: number
  #used = 0
  #over = false
  readonly #listeners = new Set<() => void>()

  constructor(init: StagingBudgetInit) {
    const limit = init.limitBytes
    const high = init.highWaterBytes ?? limit
    const low = init.lowWaterBytes ?? Math.floor(high / 2)
    if (!Number.isSafeInteger(limit) || limit <= 0) throw new RangeError('staging limitBytes must be > 0')
    if (!Number.isSafeInteger(high) || high <= 0 || high > limit)
      throw new RangeError('staging high watermark must be in 1..limitBytes')
    if (!Number.isSafeInteger(low) || low < 0 || low > high)
      throw new RangeError('staging low watermark must be in 0..high watermark')
    this.limitBytes = limit
    this.highWaterBytes = high
    this.lowWaterBytes = low
  }

  /** Bytes of staged segments (logical size) across all torrents. */
  get usedBytes(): number {
    return this.#used
  }

  /** True from reaching the high watermark until falling below the low watermark. */
  get overHighWater(): boolean {
    return this.#over
  }

  /** Calls `listener` after every change of `usedBytes`; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  add(bytes: number): void {
    this.#used += bytes
    if (!this.#over && this.#used >= this.highWaterBytes) this.#over = true
    this.#emit()
  }

  remove(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes)
    if (this.#over && this.#used < this.lowWaterBytes) this.#over = false
    this.#emit()
  }

  #emit(): void {
    for (const listener of this.#listeners) listener()
  }
}

/** Thrown by `readExact` when staged bytes needed for an upload are gone. */
export class StagingMissingError extends Error {
  readonly code = 'GW_ERR_STAGING_MISSING'
  readonly fileIndex: number
  readonly segment: number

  constructor(fileIndex: number, segment: number) {
    super(`staged segment ${segment} of file ${fileIndex} is missing`)
    this.name = 'StagingMissingError'
    this.fileIndex = fileIndex
    this.segment = segment
  }
}

/** Options of `TorrentStaging`. */
export interface TorrentStagingInit {
  /** `<stagingDir>/<torrentId>`. */
  readonly directory: string
  /** Length of every file entry of the torrent (padding entries are never written). */
  readonly fileLengths: readonly number[]
  /** Segment size; a positive multiple of 16 KiB. */
  readonly segmentBytes: number
  readonly budget: StagingBudget
  /** @default 32 */
  readonly maxOpenFiles?: number
}

interface Handle {
  readonly handle: Promise<FileHandle | undefined>
  users: number
  retired: boolean
}

const SEGMENT_NAME = /^(\d{1,9})-(\d{1,12})\.seg$/

/** The staged segments of one torrent. Call `init()` once before use. */
export class TorrentStaging {
  readonly directory: string
  readonly segmentBytes: number
  readonly #fileLengths: readonly number[]
  readonly #budget: StagingBudget
  readonly #maxOpen: number
  /** Existing segments per file index. */
  readonly #segments = new Map<number, Set<number>>()
  /** Open handles, least recently used first. */
  readonly #handles = new Map<string, Handle>()
  #stagedBytes = 0
  #closed = false

  constructor(init: TorrentStagingInit) {
    if (!Number.isSafeInteger(init.segmentBytes) || init.segmentBytes <= 0 || init.segmentBytes % 16384 !== 0)
      throw new RangeError('segmentBytes must be a positive multiple of 16 KiB')
    this.directory = init.directory
    this.segmentBytes = init.segmentBytes
    this.#fileLengths = init.fileLengths
    this.#budget = init.budget
    this.#maxOpen = init.maxOpenFiles ?? 32
  }

  /** Creates the directory and accounts the segments a previous run left behind. */
  async init(): Promise<void> {
    await mkdir(this.directory, { recursive: true })
    for (const name of await readdir(this.directory)) {
      const match = SEGMENT_NAME.exec(name)
      const file = Number(match?.[1])
      const seg = Number(match?.[2])
      const length = match ? this.#segmentLength(file, seg) : 0
      if (length <= 0) {
        await rm(join(this.directory, name), { force: true, recursive: true }) // stray or stale entry
        continue
      }
      this.#addSegment(file, seg)
    }
  }

  /** Bytes of this torrent's segments (logical size). */
  get stagedBytes(): number {
    return this.#stagedBytes
  }

  /** Segment indices that exist for a file. */
  segmentsOf(fileIndex: number): number[] {
    return [...(this.#segments.get(fileIndex) ?? [])].sort((a, b) => a - b)
  }

  /** Segment indices covering `[offset, offset + length)` of a file. */
  segmentRange(offset: number, length: number): { first: number; last: number } {
    return {
      first: Math.floor(offset / this.segmentBytes),
      last: Math.floor((offset + Math.max(length, 1) - 1) / this.segmentBytes),
    }
  }

  /** True when every segment covering the range exists. */
  hasRange(fileIndex: number, offset: number, length: number): boolean {
    const set = this.#segments.get(fileIndex)
    const { first, last } = this.segmentRange(offset, length)
    for (let s = first; s <= last; s++) if (!set?.has(s)) return false
    return true
  }

  /** Writes `data` at `offset` of a file, creating (and accounting) segments as needed. */
  async write(fileIndex: number, offset: number, data: Uint8Array): Promise<void> {
    this.#checkOpen()
    let done = 0
    // Bounded: each round writes the part of `data` inside one segment.
    while (done < data.byteLength) {
      const at = offset + done
      const seg = Math.floor(at / this.segmentBytes)
      const inSeg = at - seg * this.segmentBytes
      const take = Math.min(data.byteLength - done, this.segmentBytes - inSeg)
      const part = data.subarray(done, done + take)
      await this.#withHandle(fileIndex, seg, true, async (fh) => {
        let written = 0
        while (written < part.byteLength) {
          const r = await fh.write(part, written, part.byteLength - written, inSeg + written)
          if (r.bytesWritten <= 0) throw new Error('staging write made no progress')
          written += r.bytesWritten
        }
      })
      done += take
    }
  }

  /**
   * Reads `length` bytes at `offset` of a file into `out` at `outOffset`. Missing segments leave
   * zeros; the result says whether every byte came from an existing segment.
   */
  async read(
    fileIndex: number,
    offset: number,
    length: number,
    out: Uint8Array,
    outOffset = 0,
  ): Promise<boolean> {
    this.#checkOpen()
    let complete = true
    let done = 0
    while (done < length) {
      const at = offset + done
      const seg = Math.floor(at / this.segmentBytes)
      const inSeg = at - seg * this.segmentBytes
      const take = Math.min(length - done, this.segmentBytes - inSeg)
      const target = outOffset + done
      const found = await this.#withHandle(fileIndex, seg, false, async (fh) => {
        let got = 0
        while (got < take) {
          const r = await fh.read(out, target + got, take - got, inSeg + got)
          if (r.bytesRead <= 0) break // sparse tail never written: stays zero
          got += r.bytesRead
        }
        return true
      })
      if (found !== true) complete = false
      done += take
    }
    return complete
  }

  /** Like `read`, but fails with `StagingMissingError` when a segment is missing. */
  async readExact(fileIndex: number, offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length)
    if (!(await this.read(fileIndex, offset, length, out))) {
      const { first, last } = this.segmentRange(offset, length)
      let missing = first
      for (let s = first; s <= last; s++) {
        if (!this.#segments.get(fileIndex)?.has(s)) {
          missing = s
          break
        }
      }
      throw new StagingMissingError(fileIndex, missing)
    }
    return out
  }

  /**
   * Deletes one segment (idempotent). Its bytes go back to the budget at once (synchronously);
   * the returned promise settles when the file is unlinked.
   */
  releaseSegment(fileIndex: number, seg: number): Promise<void> {
    const path = this.#forget(fileIndex, seg)
    return path === undefined ? Promise.resolve() : unlinkIfPresent(path)
  }

  /** Deletes every segment of a file; all its bytes go back to the budget synchronously. */
  releaseFile(fileIndex: number): Promise<void> {
    const paths = this.segmentsOf(fileIndex).map((seg) => this.#forget(fileIndex, seg))
    return Promise.all(paths.map((p) => (p === undefined ? undefined : unlinkIfPresent(p)))).then(() => {})
  }

  /** Closes every handle; segments stay on disk (and in the budget) for the next run. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const entries = [...this.#handles.values()]
    this.#handles.clear()
    await Promise.allSettled(entries.map(async (e) => (await e.handle.catch(() => undefined))?.close()))
    this.#budget.remove(this.#stagedBytes) // the budget only counts open torrents
    this.#stagedBytes = 0
  }

  /** Closes and deletes the torrent's whole staging directory. */
  async destroy(): Promise<void> {
    await this.close()
    this.#segments.clear()
    await rm(this.directory, { recursive: true, force: true })
  }

  // ---- internals -----------------------------------------------------------------------------

  /** Drops a segment from the bookkeeping and the budget; returns its path, or undefined if absent. */
  #forget(fileIndex: number, seg: number): string | undefined {
    const set = this.#segments.get(fileIndex)
    if (!set?.delete(seg)) return undefined
    if (set.size === 0) this.#segments.delete(fileIndex)
    const key = segKey(fileIndex, seg)
    const entry = this.#handles.get(key)
    if (entry !== undefined) {
      this.#handles.delete(key)
      this.#retire(entry)
    }
    const length = this.#segmentLength(fileIndex, seg)
    this.#stagedBytes -= length
    this.#budget.remove(length)
    return this.#path(fileIndex, seg)
  }

  #segmentLength(fileIndex: number, seg: number): number {
    const length = this.#fileLengths[fileIndex]
    if (length === undefined || !Number.isSafeInteger(seg) || seg < 0) return 0
    return Math.max(0, Math.min(this.segmentBytes, length - seg * this.segmentBytes))
  }

  #addSegment(fileIndex: number, seg: number): void {
    let set = this.#segments.get(fileIndex)
    if (set === undefined) {
      set = new Set()
      this.#segments.set(fileIndex, set)
    }
    if (set.has(seg)) return
    set.add(seg)
    const length = this.#segmentLength(fileIndex, seg)
    this.#stagedBytes += length
    this.#budget.add(length)
  }

  #path(fileIndex: number, seg: number): string {
    return join(this.directory, `${fileIndex}-${seg}.seg`)
  }

  /** Runs `fn` with the segment's handle; `undefined` (fn not run) when reading a missing segment. */
  async #withHandle<T>(
    fileIndex: number,
    seg: number,
    create: boolean,
    fn: (fh: FileHandle) => Promise<T>,
  ): Promise<T | undefined> {
    const exists = this.#segments.get(fileIndex)?.has(seg) === true
    if (!exists && !create) return undefined
    if (!exists) {
      if (this.#segmentLength(fileIndex, seg) <= 0) throw new RangeError(`write outside file ${fileIndex}`)
      this.#addSegment(fileIndex, seg)
    }
    const key = segKey(fileIndex, seg)
    let entry = this.#handles.get(key)
    if (entry === undefined) {
      const flags = fsConstants.O_RDWR | (create ? fsConstants.O_CREAT : 0) | (fsConstants.O_NOFOLLOW ?? 0)
      const handle = open(this.#path(fileIndex, seg), flags, 0o600).catch((error: unknown) => {
        if (errnoCode(error) === 'ENOENT') return undefined
        throw error
      })
      entry = { handle, users: 0, retired: false }
    } else {
      this.#handles.delete(key) // re-inserted below as most recently used
    }
    this.#handles.set(key, entry)
    entry.users++
    try {
      const fh = await entry.handle
      if (fh === undefined) {
        if (this.#handles.get(key) === entry) this.#handles.delete(key)
        entry.retired = true
        return undefined
      }
      return await fn(fh)
    } catch (error) {
      if (this.#handles.get(key) === entry) this.#handles.delete(key)
      entry.retired = true
      throw error
    } finally {
      entry.users--
      if (entry.retired) this.#retire(entry)
      this.#evict()
    }
  }

  #retire(entry: Handle): void {
    entry.retired = true
    if (entry.users > 0) return
    // An idle handle has no pending I/O; a failing close of a staging file has no remedy.
    void entry.handle.then((h) => h?.close()).catch(() => {})
  }

  #evict(): void {
    if (this.#handles.size <= this.#maxOpen) return
    for (const [key, entry] of this.#handles) {
      if (this.#handles.size <= this.#maxOpen) break
      if (entry.users > 0) continue
      this.#handles.delete(key)
      this.#retire(entry)
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error('staging is closed')
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path)
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error
  }
}

function segKey(fileIndex: number, seg: number): string {
  return `${fileIndex}-${seg}`
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined
}
