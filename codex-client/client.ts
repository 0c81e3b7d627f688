/**
 * `CodexClient`: a typed client for every route of the Codex REST API (`openapi.yaml`), following
 * what the node really does where it differs from the spec (NOTES.md §1.7). It knows nothing of
 * BitTorrent.
 *
 * - Uploads and downloads stream; nothing buffers a dataset.
 * - Every method takes `CID | string`; strings are parsed client-side (`parseCid`) and sent in
 *   Codex's own text form (z-base58btc, NOTES.md §1.1); a bad CID fails without a request.
 * - Every method takes `{ signal?, timeoutMs? }`. Small answers have a whole-request deadline;
 *   downloads have a headers deadline plus an idle-body deadline (a real node can hang ~100 min
 *   on an unknown CID, NOTES.md §1.4); uploads have an idle deadline refreshed by progress.
 * - Idempotent calls are retried on transient failures (see `transport.ts`, `retry.ts`).
 * - Errors are `CodexError`s (`errors.ts`).
 */

import type { Readable } from 'node:stream'
import {
  closeIterator,
  emptyBody,
  peekFirstChunk,
  readErrorText,
  readSmallBody,
  type UploadInput,
  uploadStream,
  windowedBody,
} from './body.ts'
import { CID, formatCid, parseCid } from './cid.ts'
import {
  CodexAbortError,
  CodexEmptyUploadError,
  type CodexErrorInit,
  CodexInvalidCidError,
  CodexResponseError,
  CodexTimeoutError,
  CodexValidationError,
} from './errors.ts'
import { isValidCodexFilename } from './filename.ts'
import { isValidCodexMimetype } from './mimetypes.ts'
import { normalizeRetryPolicy, type RetryPolicy } from './retry.ts'
import {
  type Attempt,
  type CallSpec,
  type CodexAuth,
  type CodexObserver,
  CodexTransport,
  type Exchange,
  type HttpMethod,
  type TimeoutMode,
} from './transport.ts'
import {
  type DataItem,
  type DataList,
  type DebugInfo,
  type DebugPeer,
  type Manifest,
  type NodeInfoFormat,
  type PeerId,
  type Purchase,
  parseArray,
  parseDataItem,
  parseDataList,
  parseDebugInfo,
  parseExists,
  parseObject,
  parsePeerId,
  parseSpace,
  parseSpr,
  parseStringArray,
  type Reservation,
  type SalesAvailability,
  type SalesAvailabilityPatch,
  type SalesAvailabilityRead,
  type Slot,
  type SlotAgent,
  type Space,
  type Spr,
  type StorageRequestCreation,
} from './types.ts'

export type { Manifest }

export interface CodexClientInit {
  /** Node origin (`http://127.0.0.1:8080`); `/api/codex/v1` is appended when it has no path. */
  readonly url: string
  readonly auth?: CodexAuth
  /** Default per-request deadline: whole request (JSON), headers (downloads), idle (uploads). 60 s. */
  readonly timeoutMs?: number
  /** Default idle deadline of download bodies (no byte from the node for that long). 60 s. */
  readonly idleTimeoutMs?: number
  /** Connections of the undici pool. 8. */
  readonly connections?: number
  readonly retry?: Partial<RetryPolicy>
  readonly observer?: CodexObserver
  /** Largest JSON/text answer accepted (`GET /data` lists every manifest). 64 MiB. */
  readonly maxResponseBytes?: number
}

export interface CallOptions {
  readonly signal?: AbortSignal
  /** Overrides the client's `timeoutMs` for this call. */
  readonly timeoutMs?: number
}

export interface UploadOptions extends CallOptions {
  /** Sent as `Content-Disposition: attachment; filename="<name>"`; validated like Codex does. */
  readonly filename?: string
  /** Sent as `Content-Type` (default `application/octet-stream`); validated like Codex does. */
  readonly mimetype?: string
}

/** `local`: `GET /data/{cid}`; `network-stream`: `GET /data/{cid}/network/stream`. */
export type DownloadMode = 'local' | 'network-stream'

export interface DownloadOptions extends CallOptions {
  readonly mode?: DownloadMode
  /** Overrides the client's `idleTimeoutMs` for this body. */
  readonly idleTimeoutMs?: number
}

export interface CodexDownload {
  /** Backpressured byte stream; consume it or destroy it. Fails with `CodexShortBodyError`. */
  readonly body: Readable
  /** Bytes `body` delivers (`Content-Length`). */
  readonly length: number
  readonly filename?: string
  readonly mimetype?: string
  /** The node advertised `Accept-Ranges: bytes`. */
  readonly rangeSupported: boolean
}

export interface CodexRangeDownload extends CodexDownload {
  /** true: the node served the range (206); false: the client sliced a full-body stream. */
  readonly ranged: boolean
  readonly offset: number
}

export type RangeSupport = 'unknown' | 'yes' | 'no'

export type CidInput = CID | string

const DEFAULT_TIMEOUT_MS = 60_000
const DEFAULT_CONNECTIONS = 8
const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
const CID_TEXT_LIMIT = 4096

interface SpecInput {
  readonly operation: string
  readonly route: string
  readonly method: HttpMethod
  readonly path: string
  readonly options: CallOptions | undefined
  readonly retry: boolean
  readonly cid?: string
  readonly headers?: Record<string, string>
  readonly json?: unknown
  readonly marketplace?: boolean
  readonly timeoutMode?: TimeoutMode
}

export class CodexClient {
  readonly #transport: CodexTransport
  readonly #timeoutMs: number
  readonly #idleTimeoutMs: number
  readonly #maxResponseBytes: number
  #rangeSupport: RangeSupport = 'unknown'

  constructor(init: CodexClientInit) {
    const ctor = { operation: 'constructor', route: '' }
    this.#timeoutMs = checkPositive(init.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'timeoutMs', ctor)
    this.#idleTimeoutMs = checkPositive(init.idleTimeoutMs ?? DEFAULT_TIMEOUT_MS, 'idleTimeoutMs', ctor)
    this.#maxResponseBytes = checkPositive(
      init.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      'maxResponseBytes',
      ctor,
    )
    const connections = checkPositive(init.connections ?? DEFAULT_CONNECTIONS, 'connections', ctor)
    let retry: RetryPolicy
    try {
      retry = normalizeRetryPolicy(init.retry)
    } catch (cause) {
      throw new CodexValidationError((cause as Error).message, { ...ctor, cause })
    }
    this.#transport = new CodexTransport({
      url: init.url,
      connections,
      retry,
      ...(init.auth ? { auth: init.auth } : {}),
      ...(init.observer ? { observer: init.observer } : {}),
    })
  }

  /** API base URL, e.g. `http://127.0.0.1:8080/api/codex/v1`. */
  get baseUrl(): string {
    return this.#transport.baseUrl
  }

  /** Whether the node serves `Range` requests; learnt from answers (Codex master: no, NOTES.md §1.4). */
  get rangeSupport(): RangeSupport {
    return this.#rangeSupport
  }

  /** Exceptions thrown by the observer (swallowed so they never break I/O). */
  get observerErrors(): number {
    return this.#transport.observerErrors
  }

  /** Graceful close: waits for requests in flight (consume or destroy open download bodies first). */
  close(): Promise<void> {
    return this.#transport.close()
  }

  /** Abrupt close: fails every request in flight. */
  destroy(): Promise<void> {
    return this.#transport.destroy()
  }

  // ------------------------------------------------------------------------------------- data

  /**
   * `POST /data`: streams `body` to the node and returns the manifest CID. Filename and mimetype
   * are checked first (NOTES.md §1.3); empty input is refused without a request. A Readable or
   * async-iterable body is owned by the client (destroyed on failure) and never retried; a
   * Uint8Array body is retried (same bytes + metadata = same CID, NOTES.md §1.3).
   */
  async upload(body: UploadInput, options: UploadOptions = {}): Promise<CID> {
    const init = { operation: 'upload', route: '/data' }
    const iterator = body instanceof Uint8Array ? undefined : toIterator(body)
    try {
      const headers = uploadHeaders(options, init)
      if (iterator === undefined) {
        const bytes = body as Uint8Array
        if (bytes.length === 0)
          throw new CodexEmptyUploadError('empty upload: Codex cannot store 0 bytes', init)
        return await this.#upload(options, headers, true, (attempt) => {
          attempt.bytesOut(bytes.length)
          return bytes
        })
      }
      const first = await this.#peek(iterator, options, init)
      if (first === undefined)
        throw new CodexEmptyUploadError('empty upload stream: Codex cannot store 0 bytes', init)
      return await this.#upload(options, headers, false, (attempt) =>
        uploadStream(
          first,
          iterator,
          (bytes) => {
            attempt.bytesOut(bytes)
            attempt.touch()
          },
          attempt.errorInit,
        ),
      )
    } catch (err) {
      // Not awaited: a source stalled in next() would otherwise delay the error.
      if (iterator !== undefined) void closeIterator(iterator)
      // An iterator that never started does not destroy its Readable on return().
      if (isReadable(body) && !body.destroyed) body.destroy()
      throw err
    }
  }

  #upload(
    options: UploadOptions,
    headers: Record<string, string>,
    retry: boolean,
    body: (attempt: Attempt) => Uint8Array | Readable,
  ): Promise<CID> {
    const spec = {
      ...this.#spec({
        operation: 'upload',
        route: '/data',
        method: 'POST',
        path: '/data',
        options,
        retry,
        headers,
        timeoutMode: 'idle',
      }),
      body,
    }
    return this.#transport.call(spec, async (x) => {
      const text = await this.#readText(x, CID_TEXT_LIMIT)
      try {
        return parseCid(text.trim())
      } catch (cause) {
        throw new CodexResponseError(`node answered a non-CID ${JSON.stringify(text.slice(0, 100))}`, {
          ...x.attempt.errorInit,
          cause,
        })
      }
    })
  }

  /** Waits for the first non-empty chunk under the call's signal and idle deadline. */
  async #peek(
    iterator: AsyncIterator<unknown>,
    options: UploadOptions,
    init: CodexErrorInit,
  ): Promise<Uint8Array | undefined> {
    const controller = new AbortController()
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs
    const timer = setTimeout(
      () =>
        controller.abort(
          new CodexTimeoutError(`upload source idle for ${timeoutMs} ms`, { ...init, timeoutMs }),
        ),
      timeoutMs,
    )
    const user = options.signal
    const onAbort = (): void =>
      controller.abort(new CodexAbortError('aborted by caller', { ...init, cause: user?.reason }))
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
   * Streams a dataset (`GET /data/{cid}` or `/data/{cid}/network/stream`). Only manifest CIDs
   * download (NOTES.md §1.2, §1.7.4). The body is checked against `Content-Length`.
   */
  async download(cid: CidInput, options: DownloadOptions = {}): Promise<CodexDownload> {
    const { route, path, text } = this.#downloadTarget(cid, options, 'download')
    return this.#transport.call(this.#downloadSpec('download', route, path, text, options), async (x) => {
      const length = contentLength(x)
      if (acceptsRanges(x)) this.#rangeSupport = 'yes'
      const body = streamBody(x, { skip: 0, take: length, totalBytes: length, whole: true })
      return { body, length, ...contentMeta(x), rangeSupported: acceptsRanges(x) }
    })
  }

  /**
   * Reads `length` bytes at `offset`. Uses `Range` when the node supports it (206); otherwise
   * (Codex master) streams from the start, skips `offset` bytes, stops after `length` and
   * destroys the rest. The result is clamped to the dataset (`length` may be smaller, even 0).
   */
  async downloadRange(
    cid: CidInput,
    offset: number,
    length: number,
    options: DownloadOptions = {},
  ): Promise<CodexRangeDownload> {
    const { route, path, text } = this.#downloadTarget(cid, options, 'downloadRange')
    const init = { operation: 'downloadRange', route, cid: text }
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw new CodexValidationError(`bad offset ${offset}`, init)
    if (!Number.isSafeInteger(length) || length < 1)
      throw new CodexValidationError(`bad length ${length}`, init)
    const useRange = this.#rangeSupport !== 'no'
    const base = this.#downloadSpec('downloadRange', route, path, text, options)
    const spec: CallSpec = {
      ...base,
      headers: useRange ? { range: `bytes=${offset}-${offset + length - 1}` } : {},
      acceptStatus: [416],
    }
    return this.#transport.call(spec, async (x) => {
      const rangeSupported = acceptsRanges(x)
      if (x.status === 416) {
        // Unsatisfiable range: `offset` is past the end of the dataset.
        this.#rangeSupport = 'yes'
        await readErrorText(x.body, 4096, x.attempt)
        x.attempt.finish('ok')
        return { body: emptyBody(), length: 0, ...contentMeta(x), rangeSupported, ranged: true, offset }
      }
      if (x.status === 206) {
        this.#rangeSupport = 'yes'
        const served = checkContentRange(x, offset, length)
        const body = streamBody(x, { skip: 0, take: served, totalBytes: served, whole: true })
        return { body, length: served, ...contentMeta(x), rangeSupported: true, ranged: true, offset }
      }
      if (useRange && !rangeSupported) this.#rangeSupport = 'no'
      const total = contentLength(x)
      const take = Math.max(0, Math.min(length, total - offset))
      if (take === 0) {
        x.body.destroy()
        x.attempt.finish('ok')
        return { body: emptyBody(), length: 0, ...contentMeta(x), rangeSupported, ranged: false, offset }
      }
      const body = streamBody(x, { skip: offset, take, totalBytes: total, whole: false })
      return { body, length: take, ...contentMeta(x), rangeSupported, ranged: false, offset }
    })
  }

  /** `POST /data/{cid}/network`: fetches the manifest and starts a background download. */
  async networkDownload(cid: CidInput, options?: CallOptions): Promise<DataItem> {
    return this.#cidJson('networkDownload', 'POST', '/data/{cid}/network', cid, options, parseDataItem)
  }

  /** `GET /data/{cid}/network/manifest`: the manifest only. */
  async fetchManifest(cid: CidInput, options?: CallOptions): Promise<DataItem> {
    return this.#cidJson('fetchManifest', 'GET', '/data/{cid}/network/manifest', cid, options, parseDataItem)
  }

  /** `GET /data/{cid}/exists`: reads the single value of `{"<z-cid>": bool}` (NOTES.md §1.7.1). */
  async exists(cid: CidInput, options?: CallOptions): Promise<boolean> {
    return this.#cidJson('exists', 'GET', '/data/{cid}/exists', cid, options, parseExists)
  }

  /** `DELETE /data/{cid}`: 204 even when nothing was stored (NOTES.md §1.5). */
  async delete(cid: CidInput, options?: CallOptions): Promise<void> {
    const text = this.#cidText(cid, 'delete', '/data/{cid}')
    const spec = this.#spec({
      operation: 'delete',
      route: '/data/{cid}',
      method: 'DELETE',
      path: `/data/${text}`,
      options,
      retry: true,
      cid: text,
    })
    await this.#transport.call(spec, (x) => this.#readEmpty(x))
  }

  /** `GET /data`: every manifest in the local store. */
  async list(options?: CallOptions): Promise<DataList> {
    return this.#json(
      { operation: 'list', route: '/data', method: 'GET', path: '/data', options, retry: true },
      parseDataList,
    )
  }

  /** `GET /space`. */
  async space(options?: CallOptions): Promise<Space> {
    return this.#json(
      { operation: 'space', route: '/space', method: 'GET', path: '/space', options, retry: true },
      parseSpace,
    )
  }

  // ------------------------------------------------------------------------- node and debug

  /** `GET /debug/info`. */
  async debugInfo(options?: CallOptions): Promise<DebugInfo> {
    const spec = {
      operation: 'debugInfo',
      route: '/debug/info',
      method: 'GET',
      path: '/debug/info',
      options,
      retry: true,
    } as const
    return this.#json(spec, parseDebugInfo)
  }

  /** `GET /debug/peer/{peerId}` (only on nodes built with `codex_enable_api_debug_peers`). */
  async debugPeer(peerId: string, options?: CallOptions): Promise<DebugPeer> {
    const path = `/debug/peer/${this.#segment(peerId, 'debugPeer', '/debug/peer/{peerId}')}`
    const spec = {
      operation: 'debugPeer',
      route: '/debug/peer/{peerId}',
      method: 'GET',
      path,
      options,
      retry: true,
    } as const
    return this.#json(spec, (v) => parseObject<DebugPeer>(v, 'debugPeer'))
  }

  /** `POST /debug/chronicles/loglevel?level=<L>` (idempotent, so retried). */
  async setLogLevel(level: string, options?: CallOptions): Promise<void> {
    const route = '/debug/chronicles/loglevel'
    if (level.trim() === '')
      throw new CodexValidationError('empty log level', { operation: 'setLogLevel', route })
    const path = `${route}?level=${encodeURIComponent(level)}`
    await this.#transport.call(
      this.#spec({ operation: 'setLogLevel', route, method: 'POST', path, options, retry: true }),
      (x) => this.#readEmpty(x),
    )
  }

  /** `GET /spr`; the format is chosen by the `Accept` header (NOTES.md §1.7.5). */
  spr(format?: 'text', options?: CallOptions): Promise<string>
  spr(format: 'json', options?: CallOptions): Promise<Spr>
  async spr(format: NodeInfoFormat = 'text', options?: CallOptions): Promise<string | Spr> {
    return this.#nodeInfo('spr', '/spr', format, options, parseSpr)
  }

  /** `GET /peerid`; the format is chosen by the `Accept` header (NOTES.md §1.7.5). */
  peerId(format?: 'text', options?: CallOptions): Promise<string>
  peerId(format: 'json', options?: CallOptions): Promise<PeerId>
  async peerId(format: NodeInfoFormat = 'text', options?: CallOptions): Promise<string | PeerId> {
    return this.#nodeInfo('peerId', '/peerid', format, options, parsePeerId)
  }

  /** `GET /connect/{peerId}?addrs=…`: dials a peer; answers the node's text. */
  async connect(peerId: string, addrs: readonly string[] = [], options?: CallOptions): Promise<string> {
    const route = '/connect/{peerId}'
    const query = addrs.map((a) => `addrs=${encodeURIComponent(a)}`).join('&')
    const path = `/connect/${this.#segment(peerId, 'connect', route)}${query ? `?${query}` : ''}`
    const spec = this.#spec({ operation: 'connect', route, method: 'GET', path, options, retry: true })
    return this.#transport.call(spec, (x) => this.#readText(x, this.#maxResponseBytes))
  }

  // ------------------------------------------------------------------------------ marketplace
  // Without persistence the node answers 503 `Persistence is not enabled` to all of these
  // (NOTES.md §1.2) → `CodexMarketplaceUnavailableError`, never retried.

  /** `GET /sales/slots`. */
  async salesSlots(options?: CallOptions): Promise<Slot[]> {
    return this.#market('salesSlots', 'GET', '/sales/slots', '/sales/slots', options, (v) =>
      parseArray<Slot>(v, 'slots'),
    )
  }

  /** `GET /sales/slots/{slotId}`. */
  async salesSlot(slotId: string, options?: CallOptions): Promise<SlotAgent> {
    const route = '/sales/slots/{slotId}'
    const path = `/sales/slots/${this.#segment(slotId, 'salesSlot', route)}`
    return this.#market('salesSlot', 'GET', route, path, options, (v) => parseObject<SlotAgent>(v, 'slot'))
  }

  /** `GET /sales/availability`. */
  async availabilities(options?: CallOptions): Promise<SalesAvailabilityRead[]> {
    const parse = (v: unknown): SalesAvailabilityRead[] =>
      parseArray<SalesAvailabilityRead>(v, 'availabilities')
    return this.#market('availabilities', 'GET', '/sales/availability', '/sales/availability', options, parse)
  }

  /** `POST /sales/availability` (201). Not retried. */
  async createAvailability(
    availability: SalesAvailability,
    options?: CallOptions,
  ): Promise<SalesAvailabilityRead> {
    const parse = (v: unknown): SalesAvailabilityRead => parseObject<SalesAvailabilityRead>(v, 'availability')
    return this.#market(
      'createAvailability',
      'POST',
      '/sales/availability',
      '/sales/availability',
      options,
      parse,
      availability,
    )
  }

  /** `PATCH /sales/availability/{id}` (204). Not retried. */
  async updateAvailability(id: string, patch: SalesAvailabilityPatch, options?: CallOptions): Promise<void> {
    const route = '/sales/availability/{id}'
    const path = `/sales/availability/${this.#segment(id, 'updateAvailability', route)}`
    const spec = this.#spec({
      operation: 'updateAvailability',
      route,
      method: 'PATCH',
      path,
      options,
      retry: false,
      json: patch,
      marketplace: true,
    })
    await this.#transport.call(spec, (x) => this.#readEmpty(x))
  }

  /** `GET /sales/availability/{id}/reservations`. */
  async reservations(id: string, options?: CallOptions): Promise<Reservation[]> {
    const route = '/sales/availability/{id}/reservations'
    const path = `/sales/availability/${this.#segment(id, 'reservations', route)}/reservations`
    return this.#market('reservations', 'GET', route, path, options, (v) =>
      parseArray<Reservation>(v, 'reservations'),
    )
  }

  /** `POST /storage/request/{cid}`: returns the purchase id as the node prints it (hex, NOTES.md §1.7.2). */
  async createStorageRequest(
    cid: CidInput,
    request: StorageRequestCreation,
    options?: CallOptions,
  ): Promise<string> {
    const route = '/storage/request/{cid}'
    const text = this.#cidText(cid, 'createStorageRequest', route)
    const path = `/storage/request/${text}`
    const spec = this.#spec({
      operation: 'createStorageRequest',
      route,
      method: 'POST',
      path,
      options,
      retry: false,
      cid: text,
      json: request,
      marketplace: true,
    })
    return this.#transport.call(spec, async (x) => (await this.#readText(x, CID_TEXT_LIMIT)).trim())
  }

  /** `GET /storage/purchases`. */
  async purchaseIds(options?: CallOptions): Promise<string[]> {
    const parse = (v: unknown): string[] => parseStringArray(v, 'purchases')
    return this.#market('purchaseIds', 'GET', '/storage/purchases', '/storage/purchases', options, parse)
  }

  /** `GET /storage/purchases/{id}`. */
  async purchase(id: string, options?: CallOptions): Promise<Purchase> {
    const route = '/storage/purchases/{id}'
    const path = `/storage/purchases/${this.#segment(id, 'purchase', route)}`
    return this.#market('purchase', 'GET', route, path, options, (v) => parseObject<Purchase>(v, 'purchase'))
  }

  // -------------------------------------------------------------------------------- internals

  #spec(input: SpecInput): CallSpec {
    const headers: Record<string, string> = {
      accept: 'application/json, text/plain;q=0.9, */*;q=0.8',
      ...input.headers,
    }
    let body: CallSpec['body']
    if (input.json !== undefined) {
      const bytes = Buffer.from(JSON.stringify(input.json), 'utf8')
      headers['content-type'] = 'application/json'
      body = (attempt) => {
        attempt.bytesOut(bytes.length)
        return bytes
      }
    }
    return {
      operation: input.operation,
      route: input.route,
      method: input.method,
      path: input.path,
      headers,
      retry: input.retry,
      timeoutMs: input.options?.timeoutMs ?? this.#timeoutMs,
      timeoutMode: input.timeoutMode ?? 'total',
      ...(body ? { body } : {}),
      ...(input.cid !== undefined ? { cid: input.cid } : {}),
      ...(input.options?.signal ? { signal: input.options.signal } : {}),
      ...(input.marketplace ? { marketplace: true } : {}),
    }
  }

  #json<T>(input: SpecInput, parse: (value: unknown) => T): Promise<T> {
    return this.#transport.call(this.#spec(input), async (x) => {
      const text = await this.#readText(x, this.#maxResponseBytes)
      let value: unknown
      try {
        value = JSON.parse(text)
        return parse(value)
      } catch (cause) {
        throw new CodexResponseError(`unexpected answer: ${(cause as Error).message}`, {
          ...x.attempt.errorInit,
          cause,
        })
      }
    })
  }

  #cidJson<T>(
    operation: string,
    method: HttpMethod,
    route: string,
    cid: CidInput,
    options: CallOptions | undefined,
    parse: (v: unknown) => T,
  ): Promise<T> {
    const text = this.#cidText(cid, operation, route)
    const path = route.replace('{cid}', text)
    // POST /data/{cid}/network only (re)starts a fetch: idempotent, so it is retried like a GET.
    return this.#json({ operation, route, method, path, options, retry: true, cid: text }, parse)
  }

  #market<T>(
    operation: string,
    method: HttpMethod,
    route: string,
    path: string,
    options: CallOptions | undefined,
    parse: (v: unknown) => T,
    json?: unknown,
  ): Promise<T> {
    const retry = method === 'GET'
    return this.#json({ operation, route, method, path, options, retry, marketplace: true, json }, parse)
  }

  #nodeInfo<T>(
    operation: string,
    route: string,
    format: NodeInfoFormat,
    options: CallOptions | undefined,
    parse: (v: unknown) => T,
  ): Promise<string | T> {
    if (format === 'json') {
      return this.#json(
        {
          operation,
          route,
          method: 'GET',
          path: route,
          options,
          retry: true,
          headers: { accept: 'application/json' },
        },
        parse,
      )
    }
    const spec = this.#spec({
      operation,
      route,
      method: 'GET',
      path: route,
      options,
      retry: true,
      headers: { accept: 'text/plain' },
    })
    return this.#transport.call(spec, async (x) => (await this.#readText(x, this.#maxResponseBytes)).trim())
  }

  #downloadTarget(
    cid: CidInput,
    options: DownloadOptions,
    operation: string,
  ): { route: string; path: string; text: string } {
    const mode = options.mode ?? 'local'
    if (mode !== 'local' && mode !== 'network-stream') {
      throw new CodexValidationError(`unknown download mode ${String(mode)}`, {
        operation,
        route: '/data/{cid}',
      })
    }
    const route = mode === 'local' ? '/data/{cid}' : '/data/{cid}/network/stream'
    const text = this.#cidText(cid, operation, route)
    return { route, path: route.replace('{cid}', text), text }
  }

  #downloadSpec(
    operation: string,
    route: string,
    path: string,
    cid: string,
    options: DownloadOptions,
  ): CallSpec {
    return {
      ...this.#spec({
        operation,
        route,
        method: 'GET',
        path,
        options,
        retry: true,
        cid,
        timeoutMode: 'headers',
        headers: { accept: '*/*' },
      }),
      bodyIdleTimeoutMs: options.idleTimeoutMs ?? this.#idleTimeoutMs,
    }
  }

  async #readText(x: Exchange, limit: number): Promise<string> {
    const bytes = await readSmallBody(x.body, limit, x.attempt, () => {
      return new CodexResponseError(`answer larger than ${limit} bytes`, x.attempt.errorInit)
    })
    x.attempt.finish('ok')
    return bytes.toString('utf8')
  }

  async #readEmpty(x: Exchange): Promise<void> {
    await this.#readText(x, this.#maxResponseBytes)
  }

  /** CID → Codex's text form; strings must parse (`parseCid`), else no request is sent. */
  #cidText(cid: CidInput, operation: string, route: string): string {
    if (typeof cid === 'string') {
      try {
        return formatCid(parseCid(cid))
      } catch (cause) {
        throw new CodexInvalidCidError(`invalid CID ${JSON.stringify(cid.slice(0, 120))}`, {
          operation,
          route,
          cid,
          cause,
        })
      }
    }
    const parsed = CID.asCID(cid)
    if (parsed === null) throw new CodexInvalidCidError('not a CID', { operation, route })
    return formatCid(parsed)
  }

  /** A non-empty path segment, percent-encoded. */
  #segment(value: string, operation: string, route: string): string {
    if (typeof value !== 'string' || value === '')
      throw new CodexValidationError('empty path parameter', { operation, route })
    return encodeURIComponent(value)
  }
}

// ------------------------------------------------------------------------------ helpers

function checkPositive(value: number, name: string, init: CodexErrorInit): number {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new CodexValidationError(`${name} must be a positive integer, got ${value}`, init)
  return value
}

function isReadable(body: UploadInput): body is Readable {
  return typeof (body as Partial<Readable>).destroy === 'function' && 'destroyed' in body
}

function toIterator(body: UploadInput): AsyncIterator<unknown> {
  const iterable = body as Partial<AsyncIterable<unknown>>
  if (typeof iterable[Symbol.asyncIterator] !== 'function') {
    throw new CodexValidationError(
      'upload body must be a Uint8Array, a Readable or an AsyncIterable<Uint8Array>',
      {
        operation: 'upload',
        route: '/data',
      },
    )
  }
  return (body as AsyncIterable<unknown>)[Symbol.asyncIterator]()
}

/** Header bytes: UTF-8 sent as latin1 code units, so the node sees the UTF-8 bytes. */
function utf8AsLatin1(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1')
}

function latin1AsUtf8(text: string): string {
  const bytes = Buffer.from(text, 'latin1')
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return text
  }
}

/** `Content-Type` is always explicit (NOTES.md §1.3: no parameters, exact Nim table lookup). */
function uploadHeaders(options: UploadOptions, init: CodexErrorInit): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
  if (options.mimetype !== undefined && options.mimetype !== '') {
    if (!isValidCodexMimetype(options.mimetype)) {
      throw new CodexValidationError(`The MIME type '${options.mimetype}' is not valid.`, init)
    }
    headers['content-type'] = options.mimetype
  }
  if (options.filename !== undefined) {
    const name = options.filename
    // Control characters cannot travel in an HTTP header even where Nim's rules allow them.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point of the check
    if (!isValidCodexFilename(name) || /[\u0000-\u0008\u000a-\u001f\u007f]/.test(name)) {
      throw new CodexValidationError(`The filename is not valid: ${JSON.stringify(name)}`, init)
    }
    headers['content-disposition'] = `attachment; filename="${utf8AsLatin1(name)}"`
  }
  return headers
}

function header(x: Exchange, name: string): string | undefined {
  const value = x.headers[name]
  return Array.isArray(value) ? value[0] : value
}

function acceptsRanges(x: Exchange): boolean {
  return header(x, 'accept-ranges')?.trim().toLowerCase() === 'bytes'
}

function contentLength(x: Exchange): number {
  const text = header(x, 'content-length')
  const value = text === undefined ? Number.NaN : Number(text)
  if (text === undefined || !/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value)) {
    throw new CodexResponseError(
      `download without a valid Content-Length (${String(text)})`,
      x.attempt.errorInit,
    )
  }
  return value
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
  if (!match || start !== offset || end < start || served > length || contentLength(x) !== served) {
    throw new CodexResponseError(
      `206 with Content-Range ${JSON.stringify(value)} for bytes=${offset}+${length}`,
      x.attempt.errorInit,
    )
  }
  return served
}

/** Wraps the undici body; aborting or timing out the attempt destroys the returned stream. */
function streamBody(x: Exchange, window: Parameters<typeof windowedBody>[1]): Readable {
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
