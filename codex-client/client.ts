/**
 * `CodexClient`: a typed client for every route of the Codex REST API (`openapi.yaml`), following
 * what the node really does where it differs from the spec (NOTES.md §1.7). It knows nothing of
 * BitTorrent.
 *
 * - Uploads and downloads stream (`upload.ts`, `download.ts`); nothing buffers a dataset.
 * - Every method takes `CID | string`; strings are parsed client-side (`parseCid`) and sent in
 *   Codex's own text form (z-base58btc, NOTES.md §1.1); a bad CID fails without a request.
 * - API prefix: a `url` with a path (`http://host:8080/api/codex/v1`) is used as is. A bare origin
 *   (`http://host:8080`) gets its prefix detected once, lazily, on the first call: a cheap
 *   `GET <prefix>/space` on `/api/codex/v1` (Codex master), then on `/api/storage/v1` (newer
 *   "Logos Storage" builds, which serve every route there and drop the marketplace); the first
 *   that does not answer 404 is kept (`apiPrefix`; `detectApiPrefix()` runs it up front). No
 *   candidate → `CodexRouteNotFoundError`. A 404 with an empty body on any route is that error
 *   too (chronos' answer to an unknown route), never `CodexNotFoundError`, which always means
 *   "this CID is not there" (a 404 with Codex's message).
 * - Manifest JSON is read leniently: `protected` may be missing (newer builds drop it; default
 *   false) and unknown fields (`manifestVersion`, …) are ignored; `treeCid`, `datasetSize` and
 *   `blockSize` are checked (`types.ts`).
 * - Every method takes `{ signal?, timeoutMs? }`. Small answers have a whole-request deadline;
 *   downloads a headers deadline plus an idle-body deadline (a real node can hang ~100 min on an
 *   unknown CID, NOTES.md §1.4); uploads an idle deadline refreshed by progress, then, once the
 *   body is sent, a response deadline scaled by the upload size (the node builds the tree first).
 * - Idempotent calls are retried on transient failures (`transport.ts`, `retry.ts`): every GET
 *   and DELETE, `setLogLevel`, and uploads of a Uint8Array. Timeouts are NOT retried on the
 *   routes that search the network (`…/network/stream`, `…/network/manifest`) nor on `exists`,
 *   nor once an upload body was fully sent. `networkDownload` (POST `…/network`, which starts a
 *   background fetch on every call), other POST/PATCH calls and stream uploads are never retried.
 * - Downloads accept answers without `Content-Length` (older builds stream chunked): pass
 *   `expectedLength` to have the body checked (`download.ts`).
 * - Errors are `CodexError`s (`errors.ts`).
 */

import type { UploadInput } from './body.ts'
import { type CallOptions, Calls, type CidInput, type SpecInput } from './calls.ts'
import type { CID } from './cid.ts'
import {
  type CodexDownload,
  type CodexRangeDownload,
  type DownloadOptions,
  download,
  downloadRange,
  type RangeState,
  type RangeSupport,
} from './download.ts'
import { type CodexErrorInit, CodexValidationError } from './errors.ts'
import { normalizeRetryPolicy, type RetryPolicy } from './retry.ts'
import { type CodexAuth, type CodexObserver, CodexTransport, type HttpMethod } from './transport.ts'
import {
  type DataItem,
  type DataList,
  type DebugInfo,
  type DebugPeer,
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
import { type UploadOptions, upload } from './upload.ts'

export interface CodexClientInit {
  /**
   * Node origin (`http://127.0.0.1:8080`): the API prefix is then detected on the first call
   * (`/api/codex/v1`, else `/api/storage/v1`). A URL with a path uses it as the prefix as is.
   */
  readonly url: string
  readonly auth?: CodexAuth
  /** Default per-request deadline: whole request (JSON), headers (downloads), idle (uploads). 60 s. */
  readonly timeoutMs?: number
  /** Default idle deadline of download bodies (no byte from the node for that long). 60 s. */
  readonly idleTimeoutMs?: number
  /** Connections of the undici pool (keep-alive). 8. */
  readonly connections?: number
  /** Backoff of idempotent calls. Default 4 attempts, 100 ms base, 2 s cap. */
  readonly retry?: Partial<RetryPolicy>
  readonly observer?: CodexObserver
  /** Largest JSON/text answer accepted (`GET /data` lists every manifest). 64 MiB. */
  readonly maxResponseBytes?: number
}

/** Retry behaviour of a CID call. */
interface RetryChoice {
  readonly retry: boolean
  readonly retryTimeouts: boolean
}
const NO_RETRY: RetryChoice = { retry: false, retryTimeouts: false }
/** Transient failures are retried, timeouts are not (the node may be searching the network). */
const NO_TIMEOUT_RETRY: RetryChoice = { retry: true, retryTimeouts: false }

const DEFAULT_TIMEOUT_MS = 60_000
const DEFAULT_CONNECTIONS = 8
const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
/** Upper bound of any configured deadline (24 h): keeps timers meaningful. */
const MAX_TIMEOUT_MS = 24 * 3600 * 1000

export class CodexClient {
  readonly #calls: Calls
  readonly #ranges: RangeState = { value: 'unknown' }

  constructor(init: CodexClientInit) {
    const ctor = { operation: 'constructor', route: '' }
    const timeoutMs = checkPositive(init.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'timeoutMs', MAX_TIMEOUT_MS, ctor)
    const idleTimeoutMs = checkPositive(
      init.idleTimeoutMs ?? DEFAULT_TIMEOUT_MS,
      'idleTimeoutMs',
      MAX_TIMEOUT_MS,
      ctor,
    )
    const maxResponseBytes = checkPositive(
      init.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      'maxResponseBytes',
      2 ** 31,
      ctor,
    )
    const connections = checkPositive(init.connections ?? DEFAULT_CONNECTIONS, 'connections', 1024, ctor)
    let retry: RetryPolicy
    try {
      retry = normalizeRetryPolicy(init.retry)
    } catch (cause) {
      throw new CodexValidationError((cause as Error).message, { ...ctor, cause })
    }
    const transport = new CodexTransport({
      url: init.url,
      connections,
      retry,
      ...(init.auth ? { auth: init.auth } : {}),
      ...(init.observer ? { observer: init.observer } : {}),
    })
    this.#calls = new Calls({ transport, timeoutMs, idleTimeoutMs, maxResponseBytes })
  }

  /**
   * API base URL, e.g. `http://127.0.0.1:8080/api/codex/v1`. Before the prefix is detected it
   * names the default prefix (`/api/codex/v1`); see `apiPrefix`.
   */
  get baseUrl(): string {
    return this.#calls.transport.baseUrl
  }

  /**
   * The API prefix in use (`/api/codex/v1`, `/api/storage/v1`, or the URL's own path); undefined
   * until the first call detected it (only for a URL without a path).
   */
  get apiPrefix(): string | undefined {
    return this.#calls.transport.apiPrefix
  }

  /** Detects the API prefix now if needed (one or two `GET …/space`) and returns it. */
  async detectApiPrefix(options: CallOptions = {}): Promise<string> {
    const checked = this.#checked(options, 'detectApiPrefix', '/space')
    return this.#calls.transport.resolvePrefix({
      operation: 'detectApiPrefix',
      timeoutMs: checked.timeoutMs ?? this.#calls.timeoutMs,
      ...(checked.signal ? { signal: checked.signal } : {}),
    })
  }

  /** Whether the node serves `Range` requests, learnt from its answers (Codex master: no). */
  get rangeSupport(): RangeSupport {
    return this.#ranges.value
  }

  /** Exceptions thrown by the observer (counted, never allowed to break I/O). */
  get observerErrors(): number {
    return this.#calls.transport.observerErrors
  }

  /** Graceful close: waits for requests in flight (consume or destroy open download bodies first). */
  close(): Promise<void> {
    return this.#calls.transport.close()
  }

  /** Abrupt close: fails every request in flight. */
  destroy(): Promise<void> {
    return this.#calls.transport.destroy()
  }

  // ------------------------------------------------------------------------------------- data

  /** `POST /data`: streams `body`, returns the manifest CID (see `upload.ts`). */
  async upload(body: UploadInput, options: UploadOptions = {}): Promise<CID> {
    return upload(this.#calls, body, this.#checked(options, 'upload', '/data'))
  }

  /** Streams a dataset; only manifest CIDs download (NOTES.md §1.2, §1.7.4). */
  async download(cid: CidInput, options: DownloadOptions = {}): Promise<CodexDownload> {
    return download(this.#calls, this.#ranges, cid, this.#checked(options, 'download', '/data/{cid}'))
  }

  /**
   * `length` bytes at `offset`, clamped to the dataset: a `Range` request when the node supports
   * it, otherwise a sliced full download (`ranged: false`). See `download.ts`.
   */
  async downloadRange(
    cid: CidInput,
    offset: number,
    length: number,
    options: DownloadOptions = {},
  ): Promise<CodexRangeDownload> {
    const checked = this.#checked(options, 'downloadRange', '/data/{cid}')
    return downloadRange(this.#calls, this.#ranges, cid, offset, length, checked)
  }

  /**
   * `POST /data/{cid}/network`: fetches the manifest and starts a background download. Never
   * retried: every call starts another background fetch on the node.
   */
  async networkDownload(cid: CidInput, options?: CallOptions): Promise<DataItem> {
    const route = '/data/{cid}/network'
    return this.#cidJson('networkDownload', 'POST', route, cid, options, parseDataItem, NO_RETRY)
  }

  /** `GET /data/{cid}/network/manifest`: the manifest only. Timeouts are not retried. */
  async fetchManifest(cid: CidInput, options?: CallOptions): Promise<DataItem> {
    const route = '/data/{cid}/network/manifest'
    return this.#cidJson('fetchManifest', 'GET', route, cid, options, parseDataItem, NO_TIMEOUT_RETRY)
  }

  /**
   * `GET /data/{cid}/exists`: reads the single value of `{"<z-cid>": bool}` (NOTES.md §1.7.1).
   * Timeouts are not retried.
   */
  async exists(cid: CidInput, options?: CallOptions): Promise<boolean> {
    return this.#cidJson('exists', 'GET', '/data/{cid}/exists', cid, options, parseExists, NO_TIMEOUT_RETRY)
  }

  /** `DELETE /data/{cid}`: 204 even when nothing was stored (NOTES.md §1.5). */
  async delete(cid: CidInput, options?: CallOptions): Promise<void> {
    const route = '/data/{cid}'
    const text = this.#calls.cidText(cid, 'delete', route)
    const input = { operation: 'delete', route, method: 'DELETE', path: `/data/${text}`, cid: text } as const
    await this.#calls.empty({ ...input, options: this.#checked(options, 'delete', route), retry: true })
  }

  /** `GET /data`: every manifest in the local store. */
  async list(options?: CallOptions): Promise<DataList> {
    return this.#calls.json(this.#get('list', '/data', '/data', options), parseDataList)
  }

  /** `GET /space`. */
  async space(options?: CallOptions): Promise<Space> {
    return this.#calls.json(this.#get('space', '/space', '/space', options), parseSpace)
  }

  // ------------------------------------------------------------------------- node and debug

  /** `GET /debug/info`. */
  async debugInfo(options?: CallOptions): Promise<DebugInfo> {
    return this.#calls.json(this.#get('debugInfo', '/debug/info', '/debug/info', options), parseDebugInfo)
  }

  /** `GET /debug/peer/{peerId}` (only on nodes built with `codex_enable_api_debug_peers`). */
  async debugPeer(peerId: string, options?: CallOptions): Promise<DebugPeer> {
    const route = '/debug/peer/{peerId}'
    const path = `/debug/peer/${this.#calls.segment(peerId, 'debugPeer', route)}`
    return this.#calls.json(this.#get('debugPeer', route, path, options), (v) =>
      parseObject<DebugPeer>(v, 'peer'),
    )
  }

  /** `POST /debug/chronicles/loglevel?level=<L>`, e.g. `DEBUG` or `DEBUG;TRACE:codex` (retried). */
  async setLogLevel(level: string, options?: CallOptions): Promise<void> {
    const route = '/debug/chronicles/loglevel'
    if (typeof level !== 'string' || level.trim() === '') {
      throw new CodexValidationError('empty log level', { operation: 'setLogLevel', route })
    }
    const path = `${route}?level=${encodeURIComponent(level)}`
    const checked = this.#checked(options, 'setLogLevel', route)
    await this.#calls.empty({
      operation: 'setLogLevel',
      route,
      method: 'POST',
      path,
      options: checked,
      retry: true,
    })
  }

  /** `GET /spr`; the format is chosen by the `Accept` header (NOTES.md §1.7.5). */
  async spr(format?: 'text', options?: CallOptions): Promise<string>
  async spr(format: 'json', options?: CallOptions): Promise<Spr>
  async spr(format: NodeInfoFormat = 'text', options?: CallOptions): Promise<string | Spr> {
    return this.#nodeInfo('spr', '/spr', format, options, parseSpr)
  }

  /** `GET /peerid`; the format is chosen by the `Accept` header (NOTES.md §1.7.5). */
  async peerId(format?: 'text', options?: CallOptions): Promise<string>
  async peerId(format: 'json', options?: CallOptions): Promise<PeerId>
  async peerId(format: NodeInfoFormat = 'text', options?: CallOptions): Promise<string | PeerId> {
    return this.#nodeInfo('peerId', '/peerid', format, options, parsePeerId)
  }

  /** `GET /connect/{peerId}?addrs=…`: dials a peer; resolves to the node's text answer. */
  async connect(peerId: string, addrs: readonly string[] = [], options?: CallOptions): Promise<string> {
    const route = '/connect/{peerId}'
    const query = addrs.map((a) => `addrs=${encodeURIComponent(a)}`).join('&')
    const path = `/connect/${this.#calls.segment(peerId, 'connect', route)}${query ? `?${query}` : ''}`
    return this.#calls.text(this.#get('connect', route, path, options))
  }

  // ------------------------------------------------------------------------------ marketplace
  // Without persistence the node answers 503 `Persistence is not enabled` to all of these
  // (NOTES.md §1.2) → `CodexMarketplaceUnavailableError`, never retried.

  /** `GET /sales/slots`. */
  async salesSlots(options?: CallOptions): Promise<Slot[]> {
    const parse = (v: unknown): Slot[] => parseArray<Slot>(v, 'slots')
    return this.#market('salesSlots', 'GET', '/sales/slots', '/sales/slots', options, parse)
  }

  /** `GET /sales/slots/{slotId}`. */
  async salesSlot(slotId: string, options?: CallOptions): Promise<SlotAgent> {
    const route = '/sales/slots/{slotId}'
    const path = `/sales/slots/${this.#calls.segment(slotId, 'salesSlot', route)}`
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
    const route = '/sales/availability'
    return this.#market('createAvailability', 'POST', route, route, options, parse, availability)
  }

  /** `PATCH /sales/availability/{id}` (204). Not retried. */
  async updateAvailability(id: string, patch: SalesAvailabilityPatch, options?: CallOptions): Promise<void> {
    const route = '/sales/availability/{id}'
    const path = `/sales/availability/${this.#calls.segment(id, 'updateAvailability', route)}`
    const checked = this.#checked(options, 'updateAvailability', route)
    const input = { operation: 'updateAvailability', route, method: 'PATCH', path, json: patch } as const
    await this.#calls.empty({ ...input, options: checked, retry: false, marketplace: true })
  }

  /** `GET /sales/availability/{id}/reservations`. */
  async reservations(id: string, options?: CallOptions): Promise<Reservation[]> {
    const route = '/sales/availability/{id}/reservations'
    const path = `/sales/availability/${this.#calls.segment(id, 'reservations', route)}/reservations`
    const parse = (v: unknown): Reservation[] => parseArray<Reservation>(v, 'reservations')
    return this.#market('reservations', 'GET', route, path, options, parse)
  }

  /** `POST /storage/request/{cid}`: the purchase id as the node prints it (hex, NOTES.md §1.7.2). */
  async createStorageRequest(
    cid: CidInput,
    request: StorageRequestCreation,
    options?: CallOptions,
  ): Promise<string> {
    const route = '/storage/request/{cid}'
    const text = this.#calls.cidText(cid, 'createStorageRequest', route)
    const checked = this.#checked(options, 'createStorageRequest', route)
    const input = {
      operation: 'createStorageRequest',
      route,
      method: 'POST',
      path: `/storage/request/${text}`,
    } as const
    return this.#calls.text({
      ...input,
      options: checked,
      retry: false,
      cid: text,
      json: request,
      marketplace: true,
    })
  }

  /** `GET /storage/purchases`. */
  async purchaseIds(options?: CallOptions): Promise<string[]> {
    const parse = (v: unknown): string[] => parseStringArray(v, 'purchases')
    return this.#market('purchaseIds', 'GET', '/storage/purchases', '/storage/purchases', options, parse)
  }

  /** `GET /storage/purchases/{id}`. */
  async purchase(id: string, options?: CallOptions): Promise<Purchase> {
    const route = '/storage/purchases/{id}'
    const path = `/storage/purchases/${this.#calls.segment(id, 'purchase', route)}`
    return this.#market('purchase', 'GET', route, path, options, (v) => parseObject<Purchase>(v, 'purchase'))
  }

  // -------------------------------------------------------------------------------- internals

  /** Validates the per-call timeouts (a bad value would fire a timer at once). */
  #checked<T extends (CallOptions & { readonly idleTimeoutMs?: number }) | undefined>(
    options: T,
    operation: string,
    route: string,
  ): T {
    const init = { operation, route }
    if (options?.timeoutMs !== undefined) checkPositive(options.timeoutMs, 'timeoutMs', MAX_TIMEOUT_MS, init)
    if (options?.idleTimeoutMs !== undefined) {
      checkPositive(options.idleTimeoutMs, 'idleTimeoutMs', MAX_TIMEOUT_MS, init)
    }
    return options
  }

  #get(operation: string, route: string, path: string, options: CallOptions | undefined): SpecInput {
    const checked = this.#checked(options, operation, route)
    return { operation, route, method: 'GET', path, options: checked, retry: true }
  }

  #cidJson<T>(
    operation: string,
    method: HttpMethod,
    route: string,
    cid: CidInput,
    options: CallOptions | undefined,
    parse: (v: unknown) => T,
    policy: RetryChoice,
  ): Promise<T> {
    const text = this.#calls.cidText(cid, operation, route)
    const path = route.replace('{cid}', text)
    const checked = this.#checked(options, operation, route)
    const input = { operation, route, method, path, options: checked, cid: text, ...policy }
    return this.#calls.json(input, parse)
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
    const checked = this.#checked(options, operation, route)
    const input = {
      operation,
      route,
      method,
      path,
      options: checked,
      retry: method === 'GET',
      marketplace: true,
    }
    return this.#calls.json(json === undefined ? input : { ...input, json }, parse)
  }

  #nodeInfo<T>(
    operation: string,
    route: string,
    format: NodeInfoFormat,
    options: CallOptions | undefined,
    parse: (v: unknown) => T,
  ): Promise<string | T> {
    if (format !== 'json' && format !== 'text') {
      throw new CodexValidationError(`unknown format ${String(format)}`, { operation, route })
    }
    const input = this.#get(operation, route, route, options)
    if (format === 'json')
      return this.#calls.json({ ...input, headers: { accept: 'application/json' } }, parse)
    return this.#calls.text({ ...input, headers: { accept: 'text/plain' } })
  }
}

function checkPositive(value: number, name: string, max: number, init: CodexErrorInit): number {
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw new CodexValidationError(`${name} must be an integer in 1..${max}, got ${value}`, init)
  }
  return value
}
