/**
 * Body plumbing of the Codex client: bounded reads of small answers (JSON, text, error bodies),
 * the length-checked and sliced download streams, and the upload source adapter.
 *
 * Nothing here buffers a dataset: downloads are async generators wrapped in a byte-mode
 * `Readable`, so the consumer's backpressure reaches the socket; uploads pull one chunk at a time.
 * Every exit path consumes or destroys the undici body (undici README, "Garbage Collection").
 */

import { Readable } from 'node:stream'
import type { CodexErrorInit } from './errors.ts'
import { CodexError, CodexShortBodyError, CodexUploadSourceError } from './errors.ts'

/** What the body helpers need from the request attempt that produced the body. */
export interface BodyHooks {
  /** Error context (operation, route, cid, status). */
  readonly errorInit: CodexErrorInit
  /** Counts bytes read from the wire. */
  bytesIn(bytes: number): void
  /** Starts the idle timer while waiting for the next chunk. */
  armIdle(): void
  disarmIdle(): void
  /** The attempt is over: report it and release its timers and listeners. */
  finish(outcome: 'ok' | 'error'): void
}

/**
 * Destroys a body nobody reads. undici's body emits `RequestAbortedError` when destroyed before
 * its end: without a listener that would be an uncaught exception.
 */
export function discardBody(body: Readable): void {
  if (body.destroyed) return
  body.on('error', () => {})
  body.destroy()
}

/** Reads a small body completely; rejects with `tooLarge()` past `limitBytes` (body destroyed). */
export async function readSmallBody(
  body: Readable,
  limitBytes: number,
  hooks: Pick<BodyHooks, 'bytesIn'>,
  tooLarge: () => Error,
): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length
    hooks.bytesIn(chunk.length)
    if (total > limitBytes) {
      body.destroy()
      throw tooLarge()
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, total)
}

/** Reads at most `limitBytes` of an error body as text, then destroys the rest. Never throws. */
export async function readErrorText(
  body: Readable,
  limitBytes: number,
  hooks: Pick<BodyHooks, 'bytesIn'>,
): Promise<string> {
  const chunks: Buffer[] = []
  let total = 0
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      hooks.bytesIn(chunk.length)
      chunks.push(chunk)
      total += chunk.length
      if (total >= limitBytes) break
    }
  } catch {
    // The error body is best effort: the HTTP status already tells what failed.
  } finally {
    if (!body.destroyed) body.destroy()
  }
  return Buffer.concat(chunks, total).subarray(0, limitBytes).toString('utf8').trim()
}

/** Which part of a body of `totalBytes` (its `Content-Length`) the consumer gets. */
export interface BodyWindow {
  /** Bytes of the body to drop first. */
  readonly skip: number
  /** Bytes to deliver after `skip` (already clamped to the body; `Infinity` with an unknown length). */
  readonly take: number
  /**
   * Length of the response body: its `Content-Length`, else the caller's expected length;
   * undefined when neither is known (then, with `whole`, the body is delivered up to EOF unchecked).
   */
  readonly totalBytes: number | undefined
  /**
   * true: deliver the whole body and check it ends exactly at `totalBytes`.
   * false: stop after `skip + take` bytes and destroy the rest of the body.
   */
  readonly whole: boolean
  /** Where `totalBytes` comes from, for messages. Default `Content-Length`. */
  readonly lengthSource?: string
}

/**
 * Wraps an undici body into a backpressured byte stream delivering `window`, failing with
 * `CodexShortBodyError` when the body ends early or runs past `totalBytes`, and with the attempt's
 * abort/timeout reason (a `CodexError`) when it is aborted. Destroying the returned stream
 * destroys the undici body at once, even while a read is pending.
 */
export function windowedBody(source: Readable, window: BodyWindow, hooks: BodyHooks): Readable {
  let pulling = false
  const isDestroyed = (): boolean => out.destroyed
  const chunks = generate(source, window, hooks, isDestroyed)
  const out: Readable = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      if (pulling) return
      pulling = true
      chunks.next().then(
        (step) => {
          pulling = false
          if (step.done) out.push(null)
          else out.push(step.value)
        },
        (err: unknown) => {
          pulling = false
          out.destroy(err instanceof Error ? err : new Error(String(err)))
        },
      )
    },
    destroy(err, callback) {
      // Unblocks a pending read: the generator then sees the body fail and finishes.
      discardBody(source)
      chunks.return(undefined).then(
        () => callback(err),
        () => callback(err),
      )
    },
  })
  out.once('close', () => hooks.finish(out.errored ? 'error' : 'ok'))
  return out
}

async function* generate(
  source: Readable,
  window: BodyWindow,
  hooks: BodyHooks,
  isDestroyed: () => boolean,
): AsyncGenerator<Uint8Array, void, undefined> {
  const end = window.skip + window.take
  const limit = window.whole ? window.totalBytes : end
  const lengthSource = window.lengthSource ?? 'Content-Length'
  const iterator = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
  let seen = 0
  try {
    while (limit === undefined || seen < limit || window.whole) {
      hooks.armIdle()
      let step: IteratorResult<Buffer>
      try {
        step = await iterator.next()
      } finally {
        hooks.disarmIdle()
      }
      if (step.done) break
      const chunk = step.value
      hooks.bytesIn(chunk.length)
      const start = seen
      seen += chunk.length
      if (window.whole && window.totalBytes !== undefined && seen > window.totalBytes) {
        throw new CodexShortBodyError(`body longer than ${lengthSource} ${window.totalBytes}`, {
          ...hooks.errorInit,
          expectedBytes: window.totalBytes,
          receivedBytes: seen,
        })
      }
      const from = Math.max(window.skip, start)
      const to = Math.min(end, seen)
      if (to > from) yield chunk.subarray(from - start, to - start)
    }
    if (limit !== undefined && seen < limit) {
      throw new CodexShortBodyError(`body ended after ${seen} of ${limit} bytes (${lengthSource})`, {
        ...hooks.errorInit,
        expectedBytes: limit,
        receivedBytes: seen,
      })
    }
  } catch (err) {
    if (err instanceof CodexError || isDestroyed()) throw err
    // The connection was cut after the headers: Codex does that when a dataset fails mid-stream.
    throw new CodexShortBodyError(`body failed after ${seen} of ${limit ?? 'unknown'} bytes`, {
      ...hooks.errorInit,
      expectedBytes: limit ?? Number.NaN,
      receivedBytes: seen,
      cause: err,
    })
  } finally {
    if (!source.destroyed && !source.readableEnded) source.destroy()
  }
}

/** An already-ended empty byte stream (for empty ranges). */
export function emptyBody(): Readable {
  return Readable.from([], { objectMode: false })
}

/** Upload input accepted by the client. */
export type UploadInput = Uint8Array | Readable | AsyncIterable<Uint8Array>

/**
 * Pulls chunks until the first non-empty one, so an empty stream is refused before any request
 * (Codex answers 500 `Empty leaves` to an empty body, NOTES.md §1.2). Returns `undefined` when the
 * source is empty (it is then finished). `signal` aborts the wait (rejects with its reason).
 */
export async function peekFirstChunk(
  iterator: AsyncIterator<unknown>,
  signal: AbortSignal,
  errorInit: CodexErrorInit,
): Promise<Uint8Array | undefined> {
  signal.throwIfAborted()
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  aborted.catch(() => {})
  try {
    for (;;) {
      let step: IteratorResult<unknown>
      try {
        step = await Promise.race([iterator.next(), aborted])
      } catch (err) {
        if (err instanceof CodexError) throw err
        throw new CodexUploadSourceError('upload source failed', { ...errorInit, cause: err })
      }
      if (step.done) return undefined
      const chunk = toBytes(step.value, errorInit)
      if (chunk.length > 0) return chunk
    }
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort)
  }
}

/**
 * The upload body: `first` then the rest of `iterator`, pulled one chunk per `read()` (undici's
 * backpressure reaches the source), reporting every chunk to `onChunk` (byte counting and the idle
 * timer). Source errors become `CodexUploadSourceError`. Destroying the stream returns at once
 * and closes the source in the background (a stalled source cannot delay an abort or timeout).
 */
export function uploadStream(
  first: Uint8Array,
  iterator: AsyncIterator<unknown>,
  onChunk: (bytes: number) => void,
  errorInit: CodexErrorInit,
): Readable {
  let sentFirst = false
  let pulling = false
  let finished = false
  const pull = async (): Promise<void> => {
    try {
      for (;;) {
        let step: IteratorResult<unknown>
        try {
          step = await iterator.next()
        } catch (err) {
          throw new CodexUploadSourceError('upload source failed', { ...errorInit, cause: err })
        }
        if (out.destroyed) return
        if (step.done) {
          finished = true
          out.push(null)
          return
        }
        const chunk = toBytes(step.value, errorInit)
        if (chunk.length === 0) continue
        onChunk(chunk.length)
        pulling = false
        out.push(chunk)
        return
      }
    } catch (err) {
      pulling = false
      out.destroy(err instanceof Error ? err : new Error(String(err)))
    }
  }
  const out: Readable = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      if (!sentFirst) {
        sentFirst = true
        onChunk(first.length)
        out.push(first)
        return
      }
      if (pulling) return
      pulling = true
      void pull()
    },
    destroy(err, callback) {
      if (!finished) {
        finished = true
        void closeIterator(iterator)
      }
      callback(err)
    },
  })
  return out
}

/** Ends an iterator early (destroys a Readable source). Never throws. */
export async function closeIterator(iterator: AsyncIterator<unknown>): Promise<void> {
  try {
    await iterator.return?.()
  } catch {
    // The source is being abandoned; its own error is irrelevant to the caller's outcome.
  }
}

function toBytes(value: unknown, errorInit: CodexErrorInit): Uint8Array {
  if (value instanceof Uint8Array) return value
  throw new CodexUploadSourceError(
    'upload source yielded a non-Uint8Array chunk (string or object mode?)',
    errorInit,
  )
}
