/**
 * `CodexFileReader`: random access over Codex datasets for the seed read path.
 *
 *   const bytes = await reader.read(cid, fileLength, offset, length, { signal })
 *
 * Reads go through a `SegmentCache` (fixed-size segments on disk). On a miss the segment is
 * fetched from Codex:
 * - **Ranged** (`Range: bytes=a-b` → 206) when the node offers it: `client.rangeSupport === 'yes'`,
 *   or, while it is `'unknown'`, one probe with `downloadRange`. Codex master has no Range support
 *   (NOTES.md §1.4); the unmerged PR #1218 adds it. A dataset answered without 206 falls back to
 *   the stream below.
 * - **Sequential stream** otherwise: a download streams the whole dataset (NOTES.md §1.4), so the
 *   reader keeps ONE stream per CID open (`seed-read-stream.ts`; closed after `streamIdleMs`), reads it
 *   forward and caches every segment it passes. Random requests therefore do not restart the
 *   download each time; the stream restarts from byte 0 only when a segment behind its position is
 *   needed and is no longer cached.
 * - Read-ahead: after a read of segment `s`, segments `s+1 … s+readAheadSegments` are fetched in
 *   the background (at most `maxBackgroundFetches` at once).
 * - One fetch per segment at a time (in-flight de-duplication); waiters share it.
 * - Transient failures (5xx, cut bodies, timeouts, connection errors) are retried `attempts`
 *   times with backoff; each segment has a deadline (`segmentTimeoutMs`), so nothing hangs even
 *   on a node that stalls (NOTES.md §1.4: a real node may wait ~100 min for a missing block).
 *
 * Callers cancel with `{ signal }`: the call rejects with the signal's reason at once. A shared
 * fetch keeps running for its other waiters and the cache (bounded by its deadline); `close()`
 * aborts everything and destroys every stream. The reader does not verify bytes: the seed store
 * checks each piece against the torrent's hashes and calls `invalidate` on a mismatch (helia
 * `storage.ts`: never trust fetched bytes unverified). The cache is injected and not closed here.
 */

import type { Readable } from 'node:stream'
import { formatCid, parseCid } from '../../codex-client/cid.ts'
import {
  CodexAbortError,
  CodexBadRequestError,
  CodexError,
  CodexNotFoundError,
  CodexValidationError,
} from '../../codex-client/errors.ts'
import { raceAbort, sleep } from '../../gateway/engine/abort.ts'
import { type EngineLogger, silentLogger } from '../../gateway/engine/logger.ts'
import type { AbortOptions } from '../../gateway/protocol/types.ts'
import { type CodexReadClient, CodexReadError, SequentialStreams, timeoutError } from './seed-read-stream.ts'
import type { SegmentCache, SegmentCacheStats } from './segment-cache.ts'

export type { CodexReadClient, CodexReadErrorCode } from './seed-read-stream.ts'
export { CodexReadError } from './seed-read-stream.ts'

export interface CodexFileReaderInit {
  readonly client: CodexReadClient
  /** Opened segment cache; its `segmentBytes` is the fetch unit. */
  readonly cache: SegmentCache
  /** Segments fetched ahead of a read, in the background. @default 1 */
  readonly readAheadSegments?: number
  /** Background (read-ahead) fetches at once, over all datasets. @default 2 */
  readonly maxBackgroundFetches?: number
  /** A sequential stream unused this long is closed. @default 30 s */
  readonly streamIdleMs?: number
  /** Sequential streams kept open; idle ones beyond this are closed first. @default 8 */
  readonly maxStreams?: number
  /** Deadline to deliver one segment (headers + body). @default 60 s */
  readonly segmentTimeoutMs?: number
  /** Tries per segment, first included. @default 3 */
  readonly attempts?: number
  /** Backoff scale between tries. @default 100 ms */
  readonly retryDelayMs?: number
  readonly logger?: EngineLogger
}

/** Counters for metrics (monotonic). */
export interface CodexFileReaderStats {
  readonly reads: number
  /** Bytes returned by `read`. */
  readonly bytesRead: number
  /** Bytes received from Codex (segment bodies). */
  readonly bytesFromCodex: number
  readonly segmentsFetched: number
  readonly rangedRequests: number
  /** Sequential downloads opened (first opens and restarts). */
  readonly streamOpens: number
  /** Opens that restarted a stream from 0 because a segment behind it was needed. */
  readonly streamRestarts: number
  readonly readAheads: number
  readonly retries: number
  /** Segment fetches that failed after every try. */
  readonly failures: number
  readonly invalidations: number
  readonly cache: SegmentCacheStats
}

interface Flight {
  readonly promise: Promise<Uint8Array>
  resolve(data: Uint8Array): void
  reject(error: unknown): void
  settled: boolean
}

const noop = (): void => {}
const MAX_ATTEMPTS = 10
const MAX_PROBE_WAITS = 8
const MAX_NO_RANGE = 10_000

/** Random access reads over Codex datasets; one instance per Codex client. */
export class CodexFileReader {
  readonly #client: CodexReadClient
  readonly #cache: SegmentCache
  readonly #segment: number
  readonly #readAhead: number
  readonly #maxBackground: number
  readonly #timeoutMs: number
  readonly #attempts: number
  readonly #retryDelayMs: number
  readonly #log: EngineLogger
  readonly #lifetime = new AbortController()
  readonly #flights = new Map<string, Flight>()
  readonly #streams: SequentialStreams
  /** Datasets answered without 206 although ranges were asked for. */
  readonly #noRange = new Set<string>()
  #probe: Promise<void> | undefined
  #endProbe: () => void = noop
  #probedWithoutAnswer = false
  #background = 0
  #closed = false
  readonly #c = {
    reads: 0,
    bytesRead: 0,
    bytesFromCodex: 0,
    segmentsFetched: 0,
    rangedRequests: 0,
    streamOpens: 0,
    streamRestarts: 0,
    readAheads: 0,
    retries: 0,
    failures: 0,
    invalidations: 0,
  }

  constructor(init: CodexFileReaderInit) {
    this.#client = init.client
    this.#cache = init.cache
    this.#segment = init.cache.segmentBytes
    this.#readAhead = nonNegative(init.readAheadSegments ?? 1, 'readAheadSegments')
    this.#maxBackground = nonNegative(init.maxBackgroundFetches ?? 2, 'maxBackgroundFetches')
    this.#timeoutMs = positive(init.segmentTimeoutMs ?? 60_000, 'segmentTimeoutMs')
    this.#attempts = positive(init.attempts ?? 3, 'attempts')
    if (this.#attempts > MAX_ATTEMPTS) argument(`attempts must be ≤ ${MAX_ATTEMPTS}`)
    this.#retryDelayMs = nonNegative(init.retryDelayMs ?? 100, 'retryDelayMs')
    this.#log = init.logger ?? silentLogger
    this.#streams = new SequentialStreams({
      client: init.client,
      segmentBytes: this.#segment,
      idleMs: positive(init.streamIdleMs ?? 30_000, 'streamIdleMs'),
      maxStreams: positive(init.maxStreams ?? 8, 'maxStreams'),
      timeoutMs: this.#timeoutMs,
      signal: this.#lifetime.signal,
      counters: this.#c,
      log: this.#log,
    })
  }

  get stats(): CodexFileReaderStats {
    return { ...this.#c, cache: this.#cache.stats }
  }

  /** Open sequential streams (for tests and metrics). */
  get openStreams(): number {
    return this.#streams.openCount
  }

  /**
   * Reads `length` bytes at `offset` of the dataset `cid`, whose size must be `fileLength`.
   * Rejects with `CodexReadError`, or with the signal's reason when aborted.
   */
  async read(
    cid: string,
    fileLength: number,
    offset: number,
    length: number,
    options: AbortOptions = {},
  ): Promise<Uint8Array> {
    const signal = options.signal
    signal?.throwIfAborted()
    this.#checkOpen()
    const key = normalizeCid(cid)
    if (!Number.isSafeInteger(fileLength) || fileLength < 1) argument(`bad file length ${fileLength}`, key)
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      argument(`bad range [${offset}, +${length})`, key)
    }
    if (offset + length > fileLength) argument(`range [${offset}, +${length}) past ${fileLength} bytes`, key)
    this.#c.reads++
    if (length === 0) return new Uint8Array(0)
    const S = this.#segment
    const first = Math.floor(offset / S)
    const last = Math.floor((offset + length - 1) / S)
    let out: Uint8Array
    if (first === last) {
      out = await this.#readInSegment(key, fileLength, first, offset - first * S, length, signal)
    } else {
      out = new Uint8Array(length)
      const parts: Promise<void>[] = []
      for (let s = first; s <= last; s++) {
        const from = Math.max(offset, s * S)
        const to = Math.min(offset + length, (s + 1) * S)
        parts.push(
          this.#readInSegment(key, fileLength, s, from - s * S, to - from, signal).then((bytes) => {
            out.set(bytes, from - offset)
          }),
        )
      }
      await Promise.all(parts)
    }
    this.#c.bytesRead += length
    return out
  }

  /** Evicts the cached segments covering `[offset, offset + length)` of `cid` and closes its idle stream. */
  invalidate(cid: string, offset: number, length: number): number {
    const key = normalizeCid(cid)
    this.#c.invalidations++
    let n = 0
    if (length > 0 && offset >= 0) {
      const S = this.#segment
      const last = Math.floor((offset + length - 1) / S)
      for (let s = Math.floor(offset / S); s <= last; s++) if (this.#cache.evict(key, s)) n++
    }
    // Bytes of that response are suspect: a later fetch opens a fresh download.
    this.#streams.dropIfIdle(key)
    return n
  }

  /** Aborts every fetch, destroys every stream, rejects waiters with `GW_ERR_CODEX_READ_CLOSED`. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const reason = new CodexReadError('GW_ERR_CODEX_READ_CLOSED', 'reader closed')
    this.#lifetime.abort(reason)
    for (const flight of [...this.#flights.values()]) settle(flight, undefined, reason)
    this.#flights.clear()
    await this.#streams.closeAll()
  }

  // ---- segments ------------------------------------------------------------------------------

  async #readInSegment(
    cid: string,
    fileLength: number,
    s: number,
    from: number,
    length: number,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    const segLength = this.#cache.segmentLength(fileLength, s)
    let bytes = await this.#cache.read(cid, s, from, length, { signal })
    if (bytes === undefined) {
      const flight = this.#flights.get(flightKey(cid, s)) ?? this.#startFlight(cid, fileLength, s)
      const whole = await raceAbort(flight.promise, signal)
      if (whole.byteLength !== segLength) {
        throw new CodexReadError('GW_ERR_CODEX_READ_LENGTH', `segment ${s} has ${whole.byteLength} bytes`, {
          cid,
        })
      }
      bytes = whole.slice(from, from + length)
    }
    this.#scheduleReadAhead(cid, fileLength, s)
    return bytes
  }

  #startFlight(cid: string, fileLength: number, s: number): Flight {
    let resolve: (data: Uint8Array) => void = noop
    let reject: (error: unknown) => void = noop
    const promise = new Promise<Uint8Array>((res, rej) => {
      resolve = res
      reject = rej
    })
    promise.catch(noop) // waiters observe it through raceAbort; background flights may have none
    const flight: Flight = { promise, resolve, reject, settled: false }
    const key = flightKey(cid, s)
    this.#flights.set(key, flight)
    void this.#fetchWithRetry(cid, fileLength, s).then(
      (data) => {
        if (data !== undefined) settle(flight, data, undefined)
        else if (!flight.settled) {
          settle(flight, undefined, new CodexReadError('GW_ERR_CODEX_READ_FAILED', 'segment lost', { cid }))
        }
        if (this.#flights.get(key) === flight) this.#flights.delete(key)
      },
      (error: unknown) => {
        this.#c.failures++
        settle(flight, undefined, error)
        if (this.#flights.get(key) === flight) this.#flights.delete(key)
      },
    )
    return flight
  }

  /** Resolves the waiters of a segment produced as a side effect (a stream passing by). */
  #fulfill(cid: string, s: number, data: Uint8Array): void {
    const key = flightKey(cid, s)
    const flight = this.#flights.get(key)
    if (flight === undefined) return
    settle(flight, data, undefined)
    this.#flights.delete(key)
  }

  #scheduleReadAhead(cid: string, fileLength: number, s: number): void {
    const count = this.#cache.segmentCount(fileLength)
    for (let k = s + 1; k <= s + this.#readAhead && k < count; k++) {
      if (this.#closed || this.#background >= this.#maxBackground) return
      if (this.#cache.has(cid, k) || this.#flights.has(flightKey(cid, k))) continue
      this.#background++
      this.#c.readAheads++
      const flight = this.#startFlight(cid, fileLength, k)
      flight.promise.then(
        () => {
          this.#background--
        },
        (error: unknown) => {
          this.#background--
          this.#log.debug({ err: error, cid, segment: k }, 'codex read-ahead failed')
        },
      )
    }
  }

  /** Fetches one segment with bounded retries; `undefined` when another path already delivered it. */
  async #fetchWithRetry(cid: string, fileLength: number, s: number): Promise<Uint8Array | undefined> {
    for (let attempt = 1; ; attempt++) {
      this.#checkOpen()
      try {
        return await this.#fetchOnce(cid, fileLength, s)
      } catch (error) {
        if (this.#closed) throw new CodexReadError('GW_ERR_CODEX_READ_CLOSED', 'reader closed', { cid })
        const typed = toReadError(error, cid, s)
        if (!isRetryable(typed) || attempt >= this.#attempts) {
          this.#log.warn({ err: typed, cid, segment: s, attempt }, 'codex segment fetch failed')
          throw typed
        }
        this.#c.retries++
        this.#log.debug({ err: typed, cid, segment: s, attempt }, 'codex segment fetch retried')
        const delay = Math.floor(Math.random() * this.#retryDelayMs * 2 ** (attempt - 1))
        await sleep(delay, this.#lifetime.signal)
      }
    }
  }

  async #fetchOnce(cid: string, fileLength: number, s: number): Promise<Uint8Array | undefined> {
    const mode = await this.#mode(cid)
    if (mode !== 'stream') {
      const data = await this.#fetchRanged(cid, fileLength, s, mode === 'probe')
      if (data !== undefined) return data
    }
    return this.#fetchViaStream(cid, fileLength, s)
  }

  /**
   * Decides how to fetch: ranged, a range probe (the first request while support is unknown; the
   * caller must then call `#endProbe`), or stream.
   */
  async #mode(cid: string): Promise<'range' | 'probe' | 'stream'> {
    // Bounded: each wait is for a probe that ends (answer, failure or deadline); a failed probe is
    // retried by the next fetch, so at most `MAX_PROBE_WAITS` probes are awaited here.
    for (let i = 0; i < MAX_PROBE_WAITS; i++) {
      if (this.#noRange.has(cid)) return 'stream'
      const support = this.#client.rangeSupport
      if (support === 'yes') return 'range'
      if (support === 'no' || this.#probedWithoutAnswer) return 'stream'
      if (this.#probe === undefined) {
        this.#probe = new Promise<void>((resolve) => {
          this.#endProbe = resolve
        })
        return 'probe'
      }
      await this.#probe
    }
    return 'stream'
  }

  /** One ranged request for segment `s`; `undefined` when the node answered without 206. */
  async #fetchRanged(
    cid: string,
    fileLength: number,
    s: number,
    probe: boolean,
  ): Promise<Uint8Array | undefined> {
    const offset = s * this.#segment
    const segLength = this.#cache.segmentLength(fileLength, s)
    const deadline = AbortSignal.timeout(this.#timeoutMs)
    const signal = AbortSignal.any([this.#lifetime.signal, deadline])
    try {
      let answer: Awaited<ReturnType<CodexReadClient['downloadRange']>>
      try {
        answer = await this.#client.downloadRange(cid, offset, segLength, { signal })
        // Answered, yet support still unknown (200 with Accept-Ranges): do not probe again.
        if (probe && this.#client.rangeSupport === 'unknown') this.#probedWithoutAnswer = true
      } catch (error) {
        if (probe) this.#probe = undefined // no answer: the next fetch probes again
        throw error
      } finally {
        if (probe) this.#endProbe()
      }
      if (!answer.ranged) {
        answer.body.destroy()
        if (this.#noRange.size >= MAX_NO_RANGE) this.#noRange.clear() // bounded; re-learnt per dataset
        this.#noRange.add(cid)
        this.#log.debug({ cid }, 'codex node answered without 206: sequential stream')
        return undefined
      }
      this.#c.rangedRequests++
      if (answer.length !== segLength) {
        answer.body.destroy()
        throw new CodexReadError(
          'GW_ERR_CODEX_READ_LENGTH',
          `ranged answer of ${answer.length} bytes for segment ${s} (${segLength} expected): dataset shorter than ${fileLength}`,
          { cid },
        )
      }
      const data = await readBody(answer.body, segLength, signal)
      this.#c.bytesFromCodex += segLength
      this.#c.segmentsFetched++
      await this.#store(cid, s, data)
      return data
    } catch (error) {
      if (deadline.aborted && !this.#closed) throw timeoutError(cid, s, this.#timeoutMs, error)
      throw error
    }
  }

  // ---- sequential streams ----------------------------------------------------------------------

  #fetchViaStream(cid: string, fileLength: number, s: number): Promise<Uint8Array | undefined> {
    const key = flightKey(cid, s)
    const segLength = this.#cache.segmentLength(fileLength, s)
    return this.#streams.fetch(cid, fileLength, s, {
      wanted: () => this.#flights.get(key)?.settled === false,
      cached: async () => (this.#cache.has(cid, s) ? this.#cache.read(cid, s, 0, segLength) : undefined),
      passBy: async (index, data) => {
        this.#fulfill(cid, index, data)
        if (!this.#cache.has(cid, index)) await this.#store(cid, index, data)
      },
      deliver: async (data) => {
        await this.#store(cid, s, data)
        this.#fulfill(cid, s, data)
      },
    })
  }

  /** Caches a fetched segment; cache failures only cost a later refetch. */
  async #store(cid: string, s: number, data: Uint8Array): Promise<void> {
    try {
      await this.#cache.put(cid, s, data)
    } catch (error) {
      this.#log.warn({ err: error, cid, segment: s }, 'segment cache write failed')
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new CodexReadError('GW_ERR_CODEX_READ_CLOSED', 'reader closed')
  }
}

// ---- helpers -------------------------------------------------------------------------------------

function flightKey(cid: string, s: number): string {
  return `${cid}\0${s}`
}

function settle(flight: Flight, data: Uint8Array | undefined, error: unknown): void {
  if (flight.settled) return
  flight.settled = true
  if (data !== undefined) flight.resolve(data)
  else flight.reject(error)
}

/** Codex's own text form of a CID, so every spelling shares one cache key (NOTES.md §1.1). */
function normalizeCid(cid: string): string {
  try {
    return formatCid(parseCid(cid))
  } catch (cause) {
    throw new CodexReadError('GW_ERR_CODEX_READ_ARGUMENT', `invalid CID ${JSON.stringify(String(cid))}`, {
      cause,
    })
  }
}

function toReadError(error: unknown, cid: string, s: number): CodexReadError {
  if (error instanceof CodexReadError) return error
  if (error instanceof CodexNotFoundError || error instanceof CodexBadRequestError) {
    return new CodexReadError('GW_ERR_CODEX_READ_NOT_FOUND', `segment ${s}: ${error.message}`, {
      cid,
      cause: error,
    })
  }
  const message = error instanceof Error ? error.message : String(error)
  return new CodexReadError('GW_ERR_CODEX_READ_FAILED', `segment ${s}: ${message}`, { cid, cause: error })
}

/** Worth another try: anything but a missing dataset, bad input, a length mismatch or an abort. */
function isRetryable(error: CodexReadError): boolean {
  if (error.code === 'GW_ERR_CODEX_READ_TIMEOUT') return true
  if (error.code !== 'GW_ERR_CODEX_READ_FAILED') return false
  const cause = error.cause
  if (cause instanceof CodexValidationError || cause instanceof CodexAbortError) return false
  return cause instanceof CodexError || cause instanceof CodexReadError || cause instanceof Error
}

/** Reads a body of exactly `length` bytes (the client checks `Content-Length`). */
async function readBody(body: Readable, length: number, signal: AbortSignal): Promise<Uint8Array> {
  const out = new Uint8Array(length)
  let filled = 0
  const onAbort = (): void => {
    body.destroy()
  }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      if (filled + chunk.byteLength > length) throw new Error(`body longer than ${length} bytes`)
      out.set(chunk, filled)
      filled += chunk.byteLength
    }
  } finally {
    signal.removeEventListener('abort', onAbort)
    if (!body.destroyed) body.destroy()
  }
  signal.throwIfAborted()
  if (filled !== length) throw new Error(`body of ${filled} of ${length} bytes`)
  return out
}

function argument(message: string, cid?: string): never {
  throw new CodexReadError('GW_ERR_CODEX_READ_ARGUMENT', message, cid === undefined ? {} : { cid })
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) argument(`${name} must be a positive integer`)
  return value
}

function nonNegative(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 0) argument(`${name} must be a non-negative integer`)
  return value
}
