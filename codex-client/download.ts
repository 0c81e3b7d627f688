/**
 * Dataset downloads: `GET /data/{cid}` (local) and `GET /data/{cid}/network/stream`
 * (NOTES.md §1.2, §1.4), whole or as a byte range.
 *
 * The body is a backpressured stream checked against `Content-Length` (`CodexShortBodyError`).
 * Older builds stream chunked without `Content-Length`: the body is then delivered up to EOF and
 * checked against the caller's `expectedLength` when given. A connection cut after the headers
 * (Codex does that when a dataset fails mid-stream, NOTES.md §1.4) is a `CodexShortBodyError`
 * on the body, never retried as "node unavailable".
 * `network-stream` downloads search the network for missing blocks: their timeouts are not
 * retried (a real node can search ~100 min for an absent CID).
 * Ranges use `Range: bytes=a-b` while the node may support it (206, as in the unmerged Codex PR
 * #1218); Codex master ignores `Range` and answers 200 with the whole dataset, so the client then
 * skips `offset` bytes, stops after `length` and destroys the rest, and remembers that the node
 * has no range support (`RangeState`).
 */

import type { Readable } from 'node:stream'
import { type BodyWindow, discardBody, emptyBody, readErrorText, windowedBody } from './body.ts'
import type { CallOptions, Calls, CidInput } from './calls.ts'
import { CodexResponseError, CodexValidationError } from './errors.ts'
import type { CallSpec, Exchange } from './transport.ts'

/** `local`: `GET /data/{cid}`; `network-stream`: `GET /data/{cid}/network/stream`. */
export type DownloadMode = 'local' | 'network-stream'

export interface DownloadOptions extends CallOptions {
  readonly mode?: DownloadMode
  /** Overrides the client's `idleTimeoutMs` for this body (no byte from the node for that long). */
  readonly idleTimeoutMs?: number
  /**
   * Size of the dataset the caller expects (e.g. the manifest's `datasetSize`). Used when the node
   * sends no `Content-Length` (older builds stream chunked): `length` is then this value and the
   * body must end exactly there, else `CodexShortBodyError`. A `Content-Length` is authoritative
   * (compare `length` yourself). `downloadRange` needs one of the two to slice a full answer.
   */
  readonly expectedLength?: number
}

export interface CodexDownload {
  /** Backpressured byte stream; consume it or destroy it. Fails with `CodexShortBodyError`. */
  readonly body: Readable
  /**
   * Bytes `body` delivers: the node's `Content-Length`, else `expectedLength`; `NaN` when the node
   * sent no `Content-Length` and no `expectedLength` was given (the body then runs to EOF).
   */
  readonly length: number
  readonly filename?: string
  readonly mimetype?: string
  /** The node advertised `Accept-Ranges: bytes`. */
  readonly rangeSupported: boolean
}

export interface CodexRangeDownload extends CodexDownload {
  /** true: the node served the range; false: the client sliced a full-body stream. */
  readonly ranged: boolean
  readonly offset: number
}

export type RangeSupport = 'unknown' | 'yes' | 'no'

/** What the client learnt about `Range` support (one per client). */
export interface RangeState {
  value: RangeSupport
}

interface Target {
  readonly route: string
  readonly spec: CallSpec
}

function target(calls: Calls, cid: CidInput, options: DownloadOptions, operation: string): Target {
  const mode = options.mode ?? 'local'
  if (mode !== 'local' && mode !== 'network-stream') {
    throw new CodexValidationError(`unknown download mode ${String(mode)}`, {
      operation,
      route: '/data/{cid}',
    })
  }
  const route = mode === 'local' ? '/data/{cid}' : '/data/{cid}/network/stream'
  const expected = options.expectedLength
  if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 0)) {
    throw new CodexValidationError(`bad expectedLength ${expected}`, { operation, route })
  }
  const text = calls.cidText(cid, operation, route)
  const path = route.replace('{cid}', text)
  const input = { operation, route, method: 'GET', path, options, retry: true, cid: text } as const
  const spec = calls.spec({
    ...input,
    // A network stream for an absent CID hangs until the deadline: retrying repeats the hang.
    retryTimeouts: mode === 'local',
    timeoutMode: 'headers',
    headers: { accept: '*/*' },
  })
  return { route, spec: { ...spec, bodyIdleTimeoutMs: options.idleTimeoutMs ?? calls.idleTimeoutMs } }
}

export async function download(
  calls: Calls,
  ranges: RangeState,
  cid: CidInput,
  options: DownloadOptions,
): Promise<CodexDownload> {
  const { spec } = target(calls, cid, options, 'download')
  return calls.transport.call(spec, async (x) => {
    const announced = contentLength(x)
    const length = announced ?? options.expectedLength
    const rangeSupported = acceptsRanges(x)
    if (rangeSupported) ranges.value = 'yes'
    const body = streamBody(x, {
      skip: 0,
      take: length ?? Number.POSITIVE_INFINITY,
      totalBytes: length,
      whole: true,
      ...(announced === undefined ? { lengthSource: 'expectedLength' } : {}),
    })
    return { body, length: length ?? Number.NaN, ...contentMeta(x), rangeSupported }
  })
}

export async function downloadRange(
  calls: Calls,
  ranges: RangeState,
  cid: CidInput,
  offset: number,
  length: number,
  options: DownloadOptions,
): Promise<CodexRangeDownload> {
  const { route, spec: base } = target(calls, cid, options, 'downloadRange')
  const init = { operation: 'downloadRange', route, ...(base.cid ? { cid: base.cid } : {}) }
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw new CodexValidationError(`bad offset ${offset}`, init)
  if (!Number.isSafeInteger(length) || length < 1)
    throw new CodexValidationError(`bad length ${length}`, init)
  const useRange = ranges.value !== 'no'
  const headers = useRange
    ? { ...base.headers, range: `bytes=${offset}-${offset + length - 1}` }
    : base.headers
  const spec: CallSpec = { ...base, ...(headers ? { headers } : {}), acceptStatus: [416] }
  return calls.transport.call(spec, async (x) => {
    const rangeSupported = acceptsRanges(x)
    const meta = { ...contentMeta(x), rangeSupported, offset }
    if (x.status === 416) {
      // Unsatisfiable: `offset` is past the end of the dataset.
      ranges.value = 'yes'
      await readErrorText(x.body, 4096, x.attempt)
      x.attempt.finish('ok')
      return { ...meta, body: emptyBody(), length: 0, ranged: true }
    }
    if (x.status === 206) {
      ranges.value = 'yes'
      const served = checkContentRange(x, offset, length)
      const body = streamBody(x, { skip: 0, take: served, totalBytes: served, whole: true })
      return { ...meta, body, length: served, ranged: true, rangeSupported: true }
    }
    if (useRange && !rangeSupported) ranges.value = 'no'
    const total = contentLength(x) ?? options.expectedLength
    if (total === undefined) {
      discardBody(x.body)
      const message = 'full-body answer without Content-Length: pass expectedLength to slice it'
      throw new CodexResponseError(message, x.attempt.errorInit)
    }
    const take = Math.max(0, Math.min(length, total - offset))
    if (take === 0) {
      discardBody(x.body)
      x.attempt.finish('ok')
      return { ...meta, body: emptyBody(), length: 0, ranged: false }
    }
    const body = streamBody(x, { skip: offset, take, totalBytes: total, whole: false })
    return { ...meta, body, length: take, ranged: false }
  })
}

function header(x: Exchange, name: string): string | undefined {
  const value = x.headers[name]
  return Array.isArray(value) ? value[0] : value
}

function acceptsRanges(x: Exchange): boolean {
  return header(x, 'accept-ranges')?.trim().toLowerCase() === 'bytes'
}

/** The `Content-Length` of the answer; undefined when absent (chunked), an error when malformed. */
function contentLength(x: Exchange): number | undefined {
  const text = header(x, 'content-length')?.trim()
  if (text === undefined) return undefined
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new CodexResponseError(
      `download without a valid Content-Length (${String(text)})`,
      x.attempt.errorInit,
    )
  }
  return Number(text)
}

function latin1AsUtf8(text: string): string {
  const bytes = Buffer.from(text, 'latin1')
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return text
  }
}

/** Filename and mimetype as the node sends them (NOTES.md §1.4). */
function contentMeta(x: Exchange): { filename?: string; mimetype?: string } {
  const meta: { filename?: string; mimetype?: string } = {}
  const type = header(x, 'content-type')
  if (type !== undefined && type !== '') meta.mimetype = type
  const disposition = header(x, 'content-disposition')
  const marker = 'filename="'
  const at = disposition?.indexOf(marker) ?? -1
  if (disposition !== undefined && at >= 0) {
    const raw = disposition.slice(at + marker.length).trim()
    const name = raw.endsWith('"') ? raw.slice(0, -1) : raw
    // The node writes the UTF-8 bytes of the name; undici reads header bytes as latin1.
    if (name !== '') meta.filename = latin1AsUtf8(name)
  }
  return meta
}

/** Validates `Content-Range: bytes a-b/total` of a 206 against the request; returns b-a+1. */
function checkContentRange(x: Exchange, offset: number, length: number): number {
  const value = header(x, 'content-range') ?? ''
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim())
  const start = Number(match?.[1])
  const end = Number(match?.[2])
  const served = end - start + 1
  const announced = contentLength(x) ?? served
  if (!match || start !== offset || end < start || served > length || announced !== served) {
    const message = `206 with Content-Range ${JSON.stringify(value)} for bytes=${offset}+${length}`
    throw new CodexResponseError(message, x.attempt.errorInit)
  }
  return served
}

/** Wraps the undici body; aborting or timing out the attempt destroys the returned stream. */
function streamBody(x: Exchange, window: BodyWindow): Readable {
  const attempt = x.attempt
  const body = windowedBody(x.body, window, {
    errorInit: attempt.errorInit,
    bytesIn: (bytes) => attempt.bytesIn(bytes),
    armIdle: () => attempt.armIdle(),
    disarmIdle: () => attempt.disarmIdle(),
    finish: (outcome) => attempt.finish(outcome),
  })
  const signal = attempt.signal
  const onAbort = (): void => {
    body.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)))
  }
  if (signal.aborted) onAbort()
  else {
    signal.addEventListener('abort', onAbort, { once: true })
    body.once('close', () => signal.removeEventListener('abort', onAbort))
  }
  return body
}
