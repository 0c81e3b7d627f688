/**
 * Sequential Codex downloads for `CodexFileReader` (the seed read path), plus the reader's typed
 * errors and small async helpers.
 *
 * Codex master has no HTTP Range support: a download streams the whole dataset from byte 0
 * (NOTES.md §1.4). `SequentialStreams` keeps ONE such stream per dataset, reads it forward
 * segment by segment and hands every segment it passes to the caller (which caches it), so
 * random reads over a file do not restart the download each time. Jobs on one stream run one
 * after the other; a job for a segment behind the stream position restarts the stream from 0
 * (only when the caller could not serve it from its cache). A stream unused for `idleMs` is
 * closed; beyond `maxStreams`, idle streams are closed first. Every segment has a deadline
 * (`timeoutMs`) that destroys the body, so a stalled node never hangs a read.
 */

import type { Readable } from 'node:stream'
import type { EngineLogger } from '../../gateway/engine/logger.ts'
import type { AbortOptions } from '../../gateway/protocol/types.ts'

/** Options of a sequential dataset stream (`CodexClient.download`'s). */
export interface CodexStreamOptions extends AbortOptions {
  /** `network-stream`: `GET /data/{cid}/network/stream`, which also serves local data. */
  readonly mode?: 'local' | 'network-stream'
  /** The file length, checked when the node streams without `Content-Length`. */
  readonly expectedLength?: number
}

/**
 * Opens a dataset stream: local first; a 404 (the manifest is not in this node, e.g. a dataset
 * archived by another gateway's Codex node) falls back to `…/network/stream`, which serves local
 * data too and fetches the rest from the network. The local route stays first because a real
 * node streams it as well once the manifest is local (missing blocks come from the network).
 */
async function openDataset(
  client: Pick<CodexReadClient, 'download'>,
  cid: string,
  signal: AbortSignal,
  length: number,
): Promise<{ readonly body: Readable; readonly length: number }> {
  const options = { signal, expectedLength: length }
  try {
    return await client.download(cid, options)
  } catch (error) {
    if (signal.aborted || (error as { code?: unknown } | null)?.code !== 'CODEX_ERR_NOT_FOUND') throw error
    return await client.download(cid, { ...options, mode: 'network-stream' })
  }
}

/** What the reader needs of `CodexClient` (which satisfies it). */
export interface CodexReadClient {
  readonly rangeSupport: 'unknown' | 'yes' | 'no'
  download(
    cid: string,
    options: CodexStreamOptions,
  ): Promise<{ readonly body: Readable; readonly length: number }>
  downloadRange(
    cid: string,
    offset: number,
    length: number,
    options: AbortOptions,
  ): Promise<{ readonly body: Readable; readonly length: number; readonly ranged: boolean }>
}

export type CodexReadErrorCode =
  /** Bad arguments (CID, offset, length). */
  | 'GW_ERR_CODEX_READ_ARGUMENT'
  /** The reader is closed. */
  | 'GW_ERR_CODEX_READ_CLOSED'
  /** The dataset's size differs from the expected file length (wrong CID for the file). */
  | 'GW_ERR_CODEX_READ_LENGTH'
  /** The node does not have the dataset (404) or refuses the CID (400). */
  | 'GW_ERR_CODEX_READ_NOT_FOUND'
  /** A segment was not delivered within `segmentTimeoutMs` (after retries). */
  | 'GW_ERR_CODEX_READ_TIMEOUT'
  /** Any other Codex failure, after retries; see `cause`. */
  | 'GW_ERR_CODEX_READ_FAILED'

/** Every failure of `CodexFileReader` (aborts reject with the caller's signal reason instead). */
export class CodexReadError extends Error {
  readonly code: CodexReadErrorCode
  readonly cid: string | undefined

  constructor(code: CodexReadErrorCode, message: string, details: { cid?: string; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'CodexReadError'
    this.code = code
    this.cid = details.cid
  }
}

export function timeoutError(cid: string, segment: number, ms: number, cause: unknown): CodexReadError {
  return new CodexReadError('GW_ERR_CODEX_READ_TIMEOUT', `segment ${segment} not delivered within ${ms} ms`, {
    cid,
    cause,
  })
}

/** Counters shared with the reader (mutated here). */
export interface StreamCounters {
  streamOpens: number
  streamRestarts: number
  bytesFromCodex: number
  segmentsFetched: number
}

/** What one stream job needs from the reader. */
export interface StreamJob {
  /** False when the segment was delivered meanwhile (e.g. by an earlier job passing it). */
  wanted(): boolean
  /** The whole segment from the cache, if it is there. */
  cached(): Promise<Uint8Array | undefined>
  /** A segment passed on the way to the target: hand it to its waiters and cache it. */
  passBy(index: number, data: Uint8Array): Promise<void>
  /** The target segment: cache it and hand it to its waiters. */
  deliver(data: Uint8Array): Promise<void>
}

export interface SequentialStreamsInit {
  readonly client: Pick<CodexReadClient, 'download'>
  readonly segmentBytes: number
  readonly idleMs: number
  readonly maxStreams: number
  readonly timeoutMs: number
  /** The reader's lifetime: aborting it destroys every stream. */
  readonly signal: AbortSignal
  readonly counters: StreamCounters
  readonly log: EngineLogger
}

interface Stream {
  readonly cid: string
  readonly length: number
  controller: AbortController
  body: Readable | undefined
  iterator: AsyncIterator<unknown> | undefined
  leftover: Uint8Array | undefined
  /** Bytes consumed from the body; always a segment boundary between jobs. */
  position: number
  tail: Promise<void>
  pending: number
  idleTimer: NodeJS.Timeout | undefined
}

const noop = (): void => {}

/** One forward-reading download per dataset. */
export class SequentialStreams {
  readonly #init: SequentialStreamsInit
  readonly #streams = new Map<string, Stream>()

  constructor(init: SequentialStreamsInit) {
    this.#init = init
  }

  /** Streams with an open download body. */
  get openCount(): number {
    let n = 0
    for (const s of this.#streams.values()) if (s.body !== undefined) n++
    return n
  }

  /**
   * Produces segment `s` of `cid` (a dataset of `fileLength` bytes) from the dataset's stream,
   * after the stream's earlier jobs. Resolves `undefined` when `job.wanted()` turned false.
   */
  fetch(cid: string, fileLength: number, s: number, job: StreamJob): Promise<Uint8Array | undefined> {
    const stream = this.#streamFor(cid, fileLength)
    return this.#enqueue(stream, async () => {
      if (!job.wanted()) return undefined
      const cached = await job.cached()
      if (cached !== undefined) return cached
      const S = this.#init.segmentBytes
      const { counters, log } = this.#init
      if (stream.body !== undefined && stream.position > s * S) {
        counters.streamRestarts++
        log.debug({ cid, segment: s, position: stream.position }, 'codex stream restarts from 0')
        this.#closeBody(stream)
      }
      try {
        if (stream.body === undefined) await this.#openBody(stream)
        // Bounded: each iteration consumes one segment and the loop stops at segment s.
        for (;;) {
          const index = stream.position / S
          const length = Math.min(S, stream.length - stream.position)
          const data = await this.#readSegment(stream, index, length)
          stream.position += length
          counters.bytesFromCodex += length
          counters.segmentsFetched++
          if (index === s) {
            await job.deliver(data)
            return data
          }
          await job.passBy(index, data)
        }
      } catch (error) {
        this.#closeBody(stream)
        throw error
      }
    })
  }

  /** Closes the dataset's stream if no job uses it (its bytes became suspect). */
  dropIfIdle(cid: string): void {
    const stream = this.#streams.get(cid)
    if (stream !== undefined && stream.pending === 0) this.#drop(stream)
  }

  /** Destroys every stream and waits for their jobs to settle. */
  async closeAll(): Promise<void> {
    const tails: Promise<void>[] = []
    for (const stream of [...this.#streams.values()]) {
      tails.push(stream.tail)
      this.#drop(stream)
    }
    await Promise.all(tails)
  }

  #streamFor(cid: string, fileLength: number): Stream {
    const existing = this.#streams.get(cid)
    if (existing !== undefined) {
      // Another caller expects another length: one of them is wrong; the stream open checks it.
      if (existing.length === fileLength || existing.pending > 0) return existing
      this.#drop(existing)
    }
    if (this.#streams.size >= this.#init.maxStreams) {
      for (const other of this.#streams.values()) {
        if (this.#streams.size < this.#init.maxStreams) break
        if (other.pending === 0) this.#drop(other)
      }
    }
    const stream: Stream = {
      cid,
      length: fileLength,
      controller: new AbortController(),
      body: undefined,
      iterator: undefined,
      leftover: undefined,
      position: 0,
      tail: Promise.resolve(),
      pending: 0,
      idleTimer: undefined,
    }
    this.#streams.set(cid, stream)
    return stream
  }

  /** Runs `job` after the stream's earlier jobs; arms the idle timer when the queue empties. */
  #enqueue<T>(stream: Stream, job: () => Promise<T>): Promise<T> {
    stream.pending++
    if (stream.idleTimer !== undefined) clearTimeout(stream.idleTimer)
    stream.idleTimer = undefined
    const run = stream.tail.then(() => {
      this.#init.signal.throwIfAborted()
      return job()
    })
    stream.tail = run.then(noop, noop)
    void stream.tail.then(() => {
      stream.pending--
      if (stream.pending > 0 || this.#init.signal.aborted || this.#streams.get(stream.cid) !== stream) return
      stream.idleTimer = setTimeout(() => this.#drop(stream), this.#init.idleMs)
      stream.idleTimer.unref()
    })
    return run
  }

  async #openBody(stream: Stream): Promise<void> {
    const { client, timeoutMs, counters } = this.#init
    stream.controller = new AbortController()
    const controller = stream.controller
    const signal = AbortSignal.any([this.#init.signal, controller.signal])
    const timer = setTimeout(
      () => controller.abort(timeoutError(stream.cid, 0, timeoutMs, undefined)),
      timeoutMs,
    )
    let answer: Awaited<ReturnType<CodexReadClient['download']>>
    try {
      answer = await openDataset(client, stream.cid, signal, stream.length)
    } catch (error) {
      if (controller.signal.aborted && !this.#init.signal.aborted) throw controller.signal.reason
      throw error
    } finally {
      clearTimeout(timer)
    }
    counters.streamOpens++
    if (answer.length !== stream.length) {
      answer.body.destroy()
      throw new CodexReadError(
        'GW_ERR_CODEX_READ_LENGTH',
        `dataset has ${answer.length} bytes, the file ${stream.length}`,
        { cid: stream.cid },
      )
    }
    stream.body = answer.body
    stream.iterator = (answer.body as AsyncIterable<unknown>)[Symbol.asyncIterator]()
    stream.leftover = undefined
    stream.position = 0
  }

  /** Reads exactly `length` bytes from the stream under the segment deadline. */
  async #readSegment(stream: Stream, index: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length)
    let filled = 0
    if (stream.leftover !== undefined) {
      const take = Math.min(length, stream.leftover.byteLength)
      out.set(stream.leftover.subarray(0, take))
      filled = take
      stream.leftover = take < stream.leftover.byteLength ? stream.leftover.subarray(take) : undefined
    }
    if (filled === length) return out
    const iterator = stream.iterator
    const body = stream.body
    if (iterator === undefined || body === undefined) {
      throw new CodexReadError('GW_ERR_CODEX_READ_FAILED', 'stream is not open', { cid: stream.cid })
    }
    const timeoutMs = this.#init.timeoutMs
    let expired = false
    const timer = setTimeout(() => {
      expired = true
      body.destroy()
    }, timeoutMs)
    try {
      // Bounded: each step consumes ≥ 1 byte, ends the body, or fails (the deadline destroys it).
      while (filled < length) {
        const step = await iterator.next()
        if (step.done) {
          throw new CodexReadError(
            'GW_ERR_CODEX_READ_FAILED',
            `stream ended at ${stream.position + filled} of ${stream.length} bytes`,
            { cid: stream.cid },
          )
        }
        const chunk = step.value as Uint8Array
        const take = Math.min(length - filled, chunk.byteLength)
        out.set(chunk.subarray(0, take), filled)
        filled += take
        if (take < chunk.byteLength) stream.leftover = chunk.subarray(take)
      }
      return out
    } catch (error) {
      if (expired && !this.#init.signal.aborted) throw timeoutError(stream.cid, index, timeoutMs, error)
      throw error
    } finally {
      clearTimeout(timer)
    }
  }

  #closeBody(stream: Stream): void {
    stream.body?.destroy()
    stream.controller.abort()
    stream.body = undefined
    stream.iterator = undefined
    stream.leftover = undefined
    stream.position = 0
  }

  #drop(stream: Stream): void {
    if (stream.idleTimer !== undefined) clearTimeout(stream.idleTimer)
    stream.idleTimer = undefined
    this.#closeBody(stream)
    if (this.#streams.get(stream.cid) === stream) this.#streams.delete(stream.cid)
  }
}
