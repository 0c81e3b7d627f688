/**
 * `POST /data` (NOTES.md §1.2, §1.3): streams a Uint8Array, a Readable or an async iterable to
 * the node and returns the manifest CID.
 *
 * Before any byte is sent: the mimetype and filename are checked with Codex's own rules, and the
 * first non-empty chunk is awaited so an empty input is refused without a request (the node would
 * answer 500 `Empty leaves`). `Content-Type` is always explicit (`application/octet-stream` by
 * default): the node stores it verbatim and rejects parameters such as `; charset=…`.
 * A stream body is owned by the client (destroyed on failure) and never retried; a Uint8Array body
 * is retried (same bytes + metadata = same CID, NOTES.md §1.3), except after a timeout once its
 * body was fully sent.
 *
 * Deadlines: while the body is sent, `timeoutMs` is an idle deadline refreshed by every chunk.
 * Once the whole body is sent, the node builds the Merkle tree and stores the manifest before it
 * answers, which takes time proportional to the number of blocks: the deadline then becomes
 * `responseTimeoutMs` (default `timeoutMs` + 1 s per 64 MiB, `uploadResponseDeadlineMs`).
 * A Uint8Array is sent as a stream of 64 KiB slices with an explicit `Content-Length`, so its
 * progress and end are observed too.
 */

import { Readable } from 'node:stream'
import { closeIterator, peekFirstChunk, type UploadInput, uploadStream } from './body.ts'
import type { CallOptions, Calls } from './calls.ts'
import { type CID, parseCid } from './cid.ts'
import {
  CodexAbortError,
  CodexEmptyUploadError,
  type CodexErrorInit,
  CodexResponseError,
  CodexTimeoutError,
  CodexValidationError,
} from './errors.ts'
import { isValidCodexFilename } from './filename.ts'
import { isValidCodexMimetype } from './mimetypes.ts'
import type { Attempt } from './transport.ts'

export interface UploadOptions extends CallOptions {
  /** Sent as `Content-Disposition: attachment; filename="<name>"`; validated like Codex does. */
  readonly filename?: string
  /** Sent as `Content-Type` (default `application/octet-stream`); validated like Codex does. */
  readonly mimetype?: string
  /**
   * Deadline for the node's answer once the body is fully sent (the node finalizes the dataset
   * first). Default `timeoutMs` + 1 s per 64 MiB uploaded. A timeout then is never retried.
   */
  readonly responseTimeoutMs?: number
}

/** The node answers the CID as plain text (no newline). */
const CID_TEXT_LIMIT = 4096
/** Slices of a Uint8Array body (Codex's block size). */
const UPLOAD_SLICE = 64 * 1024
const MAX_RESPONSE_TIMEOUT_MS = 24 * 3600 * 1000

export async function upload(calls: Calls, body: UploadInput, options: UploadOptions): Promise<CID> {
  const init = { operation: 'upload', route: '/data' }
  const iterator = body instanceof Uint8Array ? undefined : toIterator(body, init)
  try {
    const headers = uploadHeaders(options, init)
    const rt = options.responseTimeoutMs
    if (rt !== undefined && (!Number.isSafeInteger(rt) || rt <= 0 || rt > MAX_RESPONSE_TIMEOUT_MS)) {
      throw new CodexValidationError(`responseTimeoutMs must be in 1..${MAX_RESPONSE_TIMEOUT_MS}`, init)
    }
    if (iterator === undefined) {
      const bytes = body as Uint8Array
      if (bytes.length === 0) {
        throw new CodexEmptyUploadError('empty upload: Codex cannot store 0 bytes', init)
      }
      const sized = { ...headers, 'content-length': String(bytes.length) }
      return await send(calls, options, sized, true, (attempt) => bytesBody(bytes, attempt))
    }
    const first = await peek(calls, iterator, options, init)
    if (first === undefined) {
      throw new CodexEmptyUploadError('empty upload stream: Codex cannot store 0 bytes', init)
    }
    return await send(calls, options, headers, false, (attempt) => {
      let sent = 0
      const progress = (bytes: number): void => {
        sent += bytes
        attempt.bytesOut(bytes)
        attempt.touch()
      }
      const stream = uploadStream(first, iterator, progress, attempt.errorInit)
      stream.once('end', () => attempt.bodySent(sent))
      return stream
    })
  } catch (err) {
    // Not awaited: a source stalled in next() would otherwise delay the error.
    if (iterator !== undefined) void closeIterator(iterator)
    // An iterator that never started does not destroy its Readable on return().
    if (isReadable(body) && !body.destroyed) body.destroy()
    throw err
  }
}

function send(
  calls: Calls,
  options: UploadOptions,
  headers: Record<string, string>,
  retry: boolean,
  body: (attempt: Attempt) => Uint8Array | Readable,
): Promise<CID> {
  const base = { operation: 'upload', route: '/data', method: 'POST', path: '/data' } as const
  const spec = {
    ...calls.spec({ ...base, options, retry, headers, timeoutMode: 'idle' }),
    body,
    ...(options.responseTimeoutMs !== undefined ? { responseTimeoutMs: options.responseTimeoutMs } : {}),
  }
  return calls.transport.call(spec, async (x) => {
    const text = (await calls.readText(x, CID_TEXT_LIMIT)).trim()
    try {
      return parseCid(text)
    } catch (cause) {
      const message = `node answered a non-CID ${JSON.stringify(text.slice(0, 100))}`
      throw new CodexResponseError(message, { ...x.attempt.errorInit, cause })
    }
  })
}

/** Waits for the first non-empty chunk under the call's signal and idle deadline. */
async function peek(
  calls: Calls,
  iterator: AsyncIterator<unknown>,
  options: UploadOptions,
  init: CodexErrorInit,
): Promise<Uint8Array | undefined> {
  const controller = new AbortController()
  const timeoutMs = options.timeoutMs ?? calls.timeoutMs
  const timer = setTimeout(() => {
    controller.abort(new CodexTimeoutError(`upload source idle for ${timeoutMs} ms`, { ...init, timeoutMs }))
  }, timeoutMs)
  const user = options.signal
  const onAbort = (): void => {
    controller.abort(new CodexAbortError('aborted by caller', { ...init, cause: user?.reason }))
  }
  if (user?.aborted) onAbort()
  else user?.addEventListener('abort', onAbort, { once: true })
  try {
    return await peekFirstChunk(iterator, controller.signal, init)
  } finally {
    clearTimeout(timer)
    user?.removeEventListener('abort', onAbort)
  }
}

/**
 * A Uint8Array body as 64 KiB slices (no copy): each slice counts as progress, and the end of the
 * stream (everything handed to the socket) starts the response deadline.
 */
function bytesBody(bytes: Uint8Array, attempt: Attempt): Readable {
  let at = 0
  const out = new Readable({
    highWaterMark: UPLOAD_SLICE,
    read() {
      if (at >= bytes.length) {
        out.push(null)
        return
      }
      const chunk = bytes.subarray(at, Math.min(bytes.length, at + UPLOAD_SLICE))
      at += chunk.length
      attempt.bytesOut(chunk.length)
      attempt.touch()
      out.push(chunk)
    },
  })
  out.once('end', () => attempt.bodySent(bytes.length))
  return out
}

function isReadable(body: UploadInput): body is Readable {
  return typeof (body as Partial<Readable>).destroy === 'function' && 'destroyed' in body
}

function toIterator(body: UploadInput, init: CodexErrorInit): AsyncIterator<unknown> {
  const iterable = body as Partial<AsyncIterable<unknown>>
  if (typeof iterable[Symbol.asyncIterator] !== 'function') {
    throw new CodexValidationError('upload body must be a Uint8Array, a Readable or an AsyncIterable', init)
  }
  return (body as AsyncIterable<unknown>)[Symbol.asyncIterator]()
}

/** Header bytes: UTF-8 sent as latin1 code units, so the node receives the UTF-8 bytes. */
function utf8AsLatin1(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1')
}

/** Control characters cannot travel in an HTTP header, even where Nim's rules allow them. */
function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) return true
  }
  return false
}

/** Validates like the node (NOTES.md §1.3) and builds `Content-Type` / `Content-Disposition`. */
export function uploadHeaders(options: UploadOptions, init: CodexErrorInit): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
  if (options.mimetype !== undefined && options.mimetype !== '') {
    if (!isValidCodexMimetype(options.mimetype)) {
      throw new CodexValidationError(`The MIME type '${options.mimetype}' is not valid.`, init)
    }
    headers['content-type'] = options.mimetype
  }
  if (options.filename !== undefined) {
    const name = options.filename
    if (!isValidCodexFilename(name) || hasControlCharacters(name)) {
      throw new CodexValidationError(`The filename is not valid: ${JSON.stringify(name)}`, init)
    }
    headers['content-disposition'] = `attachment; filename="${utf8AsLatin1(name)}"`
  }
  return headers
}
