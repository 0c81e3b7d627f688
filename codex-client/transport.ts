/**
 * HTTP transport of the Codex client: one undici `Pool` (keep-alive) per client, the API prefix
 * (explicit, or detected once: see `CodexTransport`), auth headers, per-attempt timeouts and abort
 * wiring, bounded retries with backoff for idempotent calls, mapping of HTTP statuses and socket
 * errors to typed `CodexError`s, and the observer callbacks (one `onRequest` per HTTP request,
 * `onBytes` for every body byte).
 *
 * Each HTTP request is an `Attempt`: it owns an `AbortController` linked to the caller's signal,
 * and one timer whose meaning depends on the call (`total` deadline for small answers, `headers`
 * deadline for downloads, `idle` deadline refreshed by upload progress, which becomes a response
 * deadline scaled by the upload size once the whole body is sent: Codex builds the tree and
 * stores the manifest before answering), plus an idle timer armed while a download waits for body
 * data. undici's own timeouts are disabled so these are the only clocks. An attempt ends
 * (`finish`) when its body is consumed or destroyed.
 *
 * Timeouts are not retried when repeating cannot help or costs too much: on routes that search
 * the network (`retryTimeouts: false`; a real node searches ~100 min for an absent CID,
 * NOTES.md §1.4), and for an upload whose body was fully sent (the node may still be finalizing).
 */

import type { IncomingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import { Pool } from 'undici'
import { discardBody, readErrorText } from './body.ts'
import {
  CodexAbortError,
  CodexBadRequestError,
  CodexEmptyUploadError,
  CodexError,
  type CodexErrorInit,
  CodexHttpError,
  CodexMarketplaceUnavailableError,
  CodexNotFoundError,
  CodexResponseError,
  CodexRouteNotFoundError,
  CodexTimeoutError,
  CodexUnavailableError,
  CodexValidationError,
  isTransientCodexError,
} from './errors.ts'
import { backoffDelayMs, type RetryPolicy, sleep } from './retry.ts'

/** One finished HTTP request, for metrics. */
export interface CodexRequestEvent {
  /** Client operation, e.g. `'upload'`, `'download'`, `'exists'`. */
  readonly operation: string
  /** Templated route below the API prefix, e.g. `/data/{cid}`. */
  readonly route: string
  readonly method: string
  /** HTTP status, or `'error'` when there was no complete answer (socket error, timeout, abort). */
  readonly status: number | 'error'
  readonly durationSeconds: number
}

/** Observer of the client's traffic (the metrics module turns it into Prometheus metrics). */
export interface CodexObserver {
  onRequest(event: CodexRequestEvent): void
  onBytes(direction: 'in' | 'out', bytes: number): void
}

export type CodexAuth =
  | { readonly basic: { readonly username: string; readonly password: string } }
  | { readonly bearer: string }

export type HttpMethod = 'GET' | 'POST' | 'DELETE' | 'PATCH'

/** What runs the timer of an attempt. */
export type TimeoutMode = 'total' | 'headers' | 'idle'

/** One logical call (possibly several attempts). */
export interface CallSpec {
  readonly operation: string
  readonly route: string
  readonly method: HttpMethod
  /** Path below the API prefix, already URL-encoded, query included. */
  readonly path: string
  readonly headers?: Readonly<Record<string, string>>
  /** Builds the request body for one attempt (retries need a fresh body). */
  readonly body?: (attempt: Attempt) => Uint8Array | Readable
  /** Retry on transient failures (only idempotent calls). */
  readonly retry: boolean
  /**
   * false: a timeout ends the call at once, even when `retry` is true (routes that search the
   * network for a CID: a retry only repeats the same long wait). Default true.
   */
  readonly retryTimeouts?: boolean
  readonly cid?: string
  readonly signal?: AbortSignal
  readonly timeoutMs: number
  readonly timeoutMode: TimeoutMode
  /** Idle timeout while a streamed body waits for data (downloads). */
  readonly bodyIdleTimeoutMs?: number
  /**
   * `idle` calls (uploads): deadline for the answer once the request body is fully sent. Default
   * `uploadResponseDeadlineMs(timeoutMs, bytes)`.
   */
  readonly responseTimeoutMs?: number
  /** Marketplace route: a 503 `Persistence is not enabled` is `CodexMarketplaceUnavailableError`. */
  readonly marketplace?: boolean
  /** Extra non-2xx statuses handed to `consume` instead of being errors (e.g. 416). */
  readonly acceptStatus?: readonly number[]
}

/** An answer whose headers arrived; `consume` must read or destroy `body`. */
export interface Exchange {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Readable
  readonly attempt: Attempt
}

/** Largest error body kept for the message (Codex error texts are one line). */
const ERROR_BODY_LIMIT = 64 * 1024

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_INFO',
  'UND_ERR_ABORTED',
])
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

/** API prefixes tried, in order, when the URL has none: Codex master, then Logos Storage builds. */
export const API_PREFIX_CANDIDATES = ['/api/codex/v1', '/api/storage/v1'] as const
/** The prefix `baseUrl` names before detection (Codex master, NOTES.md §1.1). */
export const DEFAULT_API_PREFIX = API_PREFIX_CANDIDATES[0]

/**
 * Idle keep-alive of pooled connections. Below chronos' 10 s header timeout (the server closes an
 * idle connection then), so the client never sends a request on a socket the node is closing.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 4_000

/** Growth of the upload response deadline: Codex stores one tree entry per 64 KiB block. */
const FINALIZE_MS_PER_64_MIB = 1_000
const MAX_DEADLINE_MS = 24 * 3600 * 1000

/**
 * Deadline for the node's answer once an upload body of `bytes` is fully sent: the caller's
 * `timeoutMs` plus 1 s per 64 MiB (Codex builds the Merkle tree, stores a proof per block and the
 * manifest before it answers, NOTES.md §1.3). There is no fixed floor beyond `timeoutMs` (60 s by
 * default), so a caller's short deadline still bounds small uploads.
 */
export function uploadResponseDeadlineMs(timeoutMs: number, bytes: number): number {
  const growth = Math.ceil((Math.max(0, bytes) / (64 * 1024 * 1024)) * FINALIZE_MS_PER_64_MIB)
  return Math.min(MAX_DEADLINE_MS, timeoutMs + growth)
}

/** Timeouts that must not be retried (the upload body had been fully sent). */
const finalTimeouts = new WeakSet<CodexError>()

interface Sink {
  request(event: CodexRequestEvent): void
  bytes(direction: 'in' | 'out', bytes: number): void
}

/** State of one HTTP request. */
export class Attempt {
  readonly controller = new AbortController()
  readonly errorInit: { operation: string; route: string; cid?: string; status?: number }
  readonly #spec: CallSpec
  readonly #sink: Sink
  readonly #startedAt = performance.now()
  #timer: NodeJS.Timeout | undefined
  #idleTimer: NodeJS.Timeout | undefined
  #finished = false
  #bodySent = false
  #onUserAbort: (() => void) | undefined

  constructor(spec: CallSpec, sink: Sink) {
    this.#spec = spec
    this.#sink = sink
    this.errorInit = { operation: spec.operation, route: spec.route }
    if (spec.cid !== undefined) this.errorInit.cid = spec.cid
    const user = spec.signal
    if (user) {
      this.#onUserAbort = () =>
        this.controller.abort(
          new CodexAbortError('aborted by caller', { ...this.errorInit, cause: user.reason }),
        )
      if (user.aborted) this.#onUserAbort()
      else user.addEventListener('abort', this.#onUserAbort, { once: true })
    }
    const what = spec.timeoutMode === 'idle' ? 'no progress' : 'no answer'
    this.#timer = setTimeout(
      () => this.#timeout(spec.timeoutMs, `${what} within ${spec.timeoutMs} ms`),
      spec.timeoutMs,
    )
  }

  get signal(): AbortSignal {
    return this.controller.signal
  }

  /** Headers arrived. */
  onHeaders(status: number): void {
    this.errorInit.status = status
    if (this.#spec.timeoutMode === 'headers') this.#clearTimer()
  }

  /** Upload progress: restarts an `idle` deadline. */
  touch(): void {
    if (this.#spec.timeoutMode === 'idle' && !this.#bodySent) this.#timer?.refresh()
  }

  /**
   * The request body (`bytes` long) has been handed to the socket entirely: an `idle` deadline
   * becomes the response deadline (`responseTimeoutMs`, default `uploadResponseDeadlineMs`). A
   * timeout from then on is final: the node may still be finalizing, a retry would upload again.
   */
  bodySent(bytes: number): void {
    if (this.#spec.timeoutMode !== 'idle' || this.#bodySent || this.#finished) return
    this.#bodySent = true
    const ms = this.#spec.responseTimeoutMs ?? uploadResponseDeadlineMs(this.#spec.timeoutMs, bytes)
    this.#clearTimer()
    this.#timer = setTimeout(() => {
      const message = `no answer within ${ms} ms after the ${bytes}-byte body was sent`
      this.#timeout(ms, message, true)
    }, ms)
  }

  armIdle(): void {
    const ms = this.#spec.bodyIdleTimeoutMs
    if (ms === undefined || this.#finished) return
    if (this.#idleTimer) this.#idleTimer.refresh()
    else this.#idleTimer = setTimeout(() => this.#timeout(ms, `body idle for ${ms} ms`), ms)
  }

  disarmIdle(): void {
    if (this.#idleTimer) {
      clearTimeout(this.#idleTimer)
      this.#idleTimer = undefined
    }
  }

  bytesIn(bytes: number): void {
    this.#sink.bytes('in', bytes)
  }

  bytesOut(bytes: number): void {
    this.#sink.bytes('out', bytes)
  }

  /** Ends the attempt once: reports it, clears timers, unlinks the caller's signal. */
  finish(outcome: 'ok' | 'error'): void {
    if (this.#finished) return
    this.#finished = true
    this.#clearTimer()
    this.disarmIdle()
    if (this.#onUserAbort) this.#spec.signal?.removeEventListener('abort', this.#onUserAbort)
    const status = outcome === 'ok' && this.errorInit.status !== undefined ? this.errorInit.status : 'error'
    this.#sink.request({
      operation: this.#spec.operation,
      route: this.#spec.route,
      method: this.#spec.method,
      status,
      durationSeconds: (performance.now() - this.#startedAt) / 1000,
    })
  }

  /** Turns anything thrown during the attempt into a `CodexError`. */
  translate(err: unknown): CodexError {
    if (err instanceof CodexError) return err
    const reason: unknown = this.controller.signal.reason
    if (this.controller.signal.aborted && reason instanceof CodexError) return reason
    return classifyFailure(err, this.errorInit)
  }

  #timeout(ms: number, message: string, final = false): void {
    const error = new CodexTimeoutError(message, { ...this.errorInit, timeoutMs: ms })
    if (final) finalTimeouts.add(error)
    this.controller.abort(error)
  }

  #clearTimer(): void {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? code : undefined
}

/** Socket / undici failures → typed errors (NOTES.md §1.4: clients need their own timeouts). */
function classifyFailure(err: unknown, init: CodexErrorInit): CodexError {
  const code = errorCode(err)
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new CodexTimeoutError(`timed out (${code})`, { ...init, timeoutMs: 0, cause: err })
  }
  if (code !== undefined && UNAVAILABLE_CODES.has(code)) {
    return new CodexUnavailableError(`node unreachable (${code})`, { ...init, cause: err })
  }
  if (code === 'UND_ERR_INVALID_ARG') {
    return new CodexValidationError(`invalid request (${(err as Error).message})`, { ...init, cause: err })
  }
  if (code?.startsWith('HPE_')) {
    return new CodexResponseError(`malformed HTTP answer (${code})`, { ...init, cause: err })
  }
  const text = err instanceof Error ? err.message : String(err)
  return new CodexUnavailableError(`request failed: ${text}`, { ...init, cause: err })
}

/** Non-2xx answer → typed error (NOTES.md §1.2 for the statuses and texts Codex uses). */
export function httpError(spec: CallSpec, status: number, body: string): CodexError {
  const init = {
    operation: spec.operation,
    route: spec.route,
    status,
    body,
    ...(spec.cid ? { cid: spec.cid } : {}),
  }
  if (status === 400) return new CodexBadRequestError('bad request', init)
  // Codex's own 404s carry a message; chronos answers an unknown route with an empty body.
  if (status === 404 && body === '') {
    return new CodexRouteNotFoundError(
      'no such route on this node (wrong API prefix, or a build without this route)',
      init,
    )
  }
  if (status === 404) return new CodexNotFoundError('not found', init)
  if (status === 422) return new CodexValidationError('rejected by the node', init)
  if (status === 503 && spec.marketplace && /persistence is not enabled/i.test(body)) {
    return new CodexMarketplaceUnavailableError('marketplace not enabled on this node', init)
  }
  // Codex cannot store an empty dataset: `CodexTree.init` fails with `Empty leaves` (NOTES.md §1.2).
  if (status === 500 && spec.operation === 'upload' && /empty leaves/i.test(body)) {
    return new CodexEmptyUploadError('empty upload', init)
  }
  return new CodexHttpError('request failed', init)
}

export interface TransportInit {
  /** Node origin (the API prefix is then detected), or origin + API prefix (used as is). */
  readonly url: string
  readonly auth?: CodexAuth
  readonly connections: number
  readonly retry: RetryPolicy
  readonly observer?: CodexObserver
}

/** What starts a prefix detection: the call that needs it (signal and deadline). */
interface DetectionInput {
  readonly operation: string
  readonly timeoutMs: number
  readonly signal?: AbortSignal
}

/** Bounded: a detection aborted by ANOTHER caller's signal is started again at most this often. */
const MAX_DETECTION_JOINS = 3

/**
 * Owns the pool; runs calls with retries.
 *
 * API prefix: a URL with a path uses that path as the prefix. A URL without one
 * (`http://host:8080`) gets its prefix detected once, lazily, before the first call:
 * `GET <candidate>/space` for each of `API_PREFIX_CANDIDATES` (`/api/codex/v1`, Codex master;
 * `/api/storage/v1`, Logos Storage builds). A candidate is absent when it answers 404 with an
 * empty body (chronos' answer to an unknown route); the first other answer (200, or any status
 * from a handler) wins and is kept for the client's life. All candidates absent →
 * `CodexRouteNotFoundError`. A transient failure (node down, timeout) is not remembered: the next
 * call detects again. Concurrent first calls share one detection. (A reverse proxy that answers
 * unknown paths with a 404 page defeats detection: give such a URL its path.)
 */
export class CodexTransport {
  readonly origin: string
  /** Number of exceptions thrown by the observer (they never break a call). */
  observerErrors = 0
  readonly #pool: Pool
  #prefix: string | undefined
  #detecting: Promise<string> | undefined
  readonly #baseHeaders: Readonly<Record<string, string>>
  readonly #retry: RetryPolicy
  readonly #observer: CodexObserver | undefined
  readonly #sink: Sink
  #closed = false

  constructor(init: TransportInit) {
    const url = parseBaseUrl(init.url)
    this.origin = url.origin
    this.#prefix = url.prefix
    this.#baseHeaders = authHeaders(init.auth)
    this.#retry = init.retry
    this.#observer = init.observer
    this.#sink = {
      request: (event) => this.#emit((o) => o.onRequest(event)),
      bytes: (direction, bytes) => this.#emit((o) => o.onBytes(direction, bytes)),
    }
    this.#pool = new Pool(url.origin, {
      connections: init.connections,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_TIMEOUT_MS,
      headersTimeout: 0,
      bodyTimeout: 0,
    })
  }

  /** The API prefix in use: explicit, or detected; undefined until the first call detects it. */
  get apiPrefix(): string | undefined {
    return this.#prefix
  }

  /** Base URL of the API, e.g. `http://127.0.0.1:8080/api/codex/v1` (default prefix until detected). */
  get baseUrl(): string {
    return this.origin + (this.#prefix ?? DEFAULT_API_PREFIX)
  }

  get closed(): boolean {
    return this.#closed
  }

  /** The API prefix, detected first when needed (see the class comment). */
  async resolvePrefix(input: DetectionInput): Promise<string> {
    for (let joins = 0; ; joins++) {
      if (this.#prefix !== undefined) return this.#prefix
      if (this.#closed) {
        throw new CodexUnavailableError('client is closed', { operation: input.operation, route: '' })
      }
      const detecting = this.#detecting ?? this.#startDetection(input)
      try {
        return await detecting
      } catch (err) {
        // Another caller's abort ended the shared detection: ours goes on, bounded.
        const foreignAbort = err instanceof CodexAbortError && !input.signal?.aborted
        if (!foreignAbort || joins >= MAX_DETECTION_JOINS) throw err
      }
    }
  }

  #startDetection(input: DetectionInput): Promise<string> {
    const detecting = this.#detect(input)
    this.#detecting = detecting
    const clear = (): void => {
      if (this.#detecting === detecting) this.#detecting = undefined
    }
    detecting.then(clear, clear)
    return detecting
  }

  async #detect(input: DetectionInput): Promise<string> {
    for (const candidate of API_PREFIX_CANDIDATES) {
      const probe: CallSpec = {
        operation: 'detectApiPrefix',
        route: '/space',
        method: 'GET',
        path: '/space',
        headers: { accept: 'application/json' },
        retry: false,
        timeoutMs: input.timeoutMs,
        timeoutMode: 'total',
        acceptStatus: [404],
        ...(input.signal ? { signal: input.signal } : {}),
      }
      const absent = await this.#once(probe, candidate, async (x) => {
        // Only the status matters, and for a 404 whether it has a body: never wait for a 2xx body.
        if (x.status !== 404) discardBody(x.body)
        const text = x.status === 404 ? await readErrorText(x.body, ERROR_BODY_LIMIT, x.attempt) : ''
        x.attempt.finish('ok')
        return x.status === 404 && text === ''
      })
      if (!absent) {
        this.#prefix = candidate
        return candidate
      }
    }
    const tried = API_PREFIX_CANDIDATES.map((p) => `${p}/space`).join(', ')
    throw new CodexRouteNotFoundError(`no Codex REST API at ${this.origin} (404 on ${tried})`, {
      operation: input.operation,
      route: '/space',
      status: 404,
    })
  }

  /** Runs `spec`; `consume` reads the 2xx answer (and must consume or destroy its body). */
  async call<T>(spec: CallSpec, consume: (exchange: Exchange) => Promise<T>): Promise<T> {
    const init = { operation: spec.operation, route: spec.route, ...(spec.cid ? { cid: spec.cid } : {}) }
    if (spec.signal?.aborted)
      throw new CodexAbortError('aborted before sending', { ...init, cause: spec.signal.reason })
    const attempts = spec.retry ? this.#retry.attempts : 1
    for (let n = 1; ; n++) {
      try {
        const prefix = await this.resolvePrefix(spec)
        return await this.#once(spec, prefix, consume)
      } catch (err) {
        if (n >= attempts || this.#closed || !isRetryable(spec, err)) throw err
      }
      try {
        await sleep(backoffDelayMs(n, this.#retry), spec.signal)
      } catch (reason) {
        throw new CodexAbortError('aborted while waiting to retry', { ...init, cause: reason })
      }
    }
  }

  async #once<T>(spec: CallSpec, prefix: string, consume: (exchange: Exchange) => Promise<T>): Promise<T> {
    if (this.#closed) {
      const init = { operation: spec.operation, route: spec.route, ...(spec.cid ? { cid: spec.cid } : {}) }
      throw new CodexUnavailableError('client is closed', init)
    }
    const attempt = new Attempt(spec, this.#sink)
    let body: Readable | undefined
    try {
      const requestBody = spec.body?.(attempt)
      const answer = await this.#pool.request({
        path: prefix + spec.path,
        method: spec.method,
        headers: { ...this.#baseHeaders, ...spec.headers },
        body: requestBody ?? null,
        signal: attempt.signal,
      })
      body = answer.body
      attempt.onHeaders(answer.statusCode)
      const ok = answer.statusCode >= 200 && answer.statusCode < 300
      if (!ok && !spec.acceptStatus?.includes(answer.statusCode)) {
        const text = await readErrorText(answer.body, ERROR_BODY_LIMIT, attempt)
        attempt.finish('ok')
        throw httpError(spec, answer.statusCode, text)
      }
      return await consume({ status: answer.statusCode, headers: answer.headers, body: answer.body, attempt })
    } catch (err) {
      const error = attempt.translate(err)
      if (body && !body.readableEnded) discardBody(body)
      attempt.finish('error')
      throw error
    }
  }

  /** Graceful: waits for requests in flight (including unconsumed download bodies). */
  async close(): Promise<void> {
    this.#closed = true
    await this.#pool.close()
  }

  /** Abrupt: fails every request in flight. */
  async destroy(): Promise<void> {
    this.#closed = true
    await this.#pool.destroy()
  }

  #emit(fn: (observer: CodexObserver) => void): void {
    if (!this.#observer) return
    try {
      fn(this.#observer)
    } catch {
      // An observer must never break I/O; failures are counted in `observerErrors`.
      this.observerErrors++
    }
  }
}

/** Whether a failed attempt of `spec` may be repeated. */
function isRetryable(spec: CallSpec, err: unknown): boolean {
  if (!isTransientCodexError(err)) return false
  if (err instanceof CodexTimeoutError) return spec.retryTimeouts !== false && !finalTimeouts.has(err)
  return true
}

/**
 * `url` is the node origin, or origin + API prefix. No path → `prefix: undefined` (detected on
 * the first call, NOTES.md §1.1); a path is used as the prefix as is.
 */
function parseBaseUrl(text: string): { origin: string; prefix: string | undefined } {
  const init = { operation: 'constructor', route: '' }
  let url: URL
  try {
    url = new URL(text)
  } catch (cause) {
    throw new CodexValidationError(`invalid url ${JSON.stringify(text)}`, { ...init, cause })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CodexValidationError(`url must be http(s), got ${url.protocol}`, init)
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new CodexValidationError('url must not carry credentials, query or fragment (use `auth`)', init)
  }
  const path = url.pathname.replace(/\/+$/, '')
  return { origin: url.origin, prefix: path === '' ? undefined : path }
}

function authHeaders(auth: CodexAuth | undefined): Record<string, string> {
  const init = { operation: 'constructor', route: '' }
  if (auth === undefined) return {}
  let value: string
  if ('bearer' in auth) {
    value = `Bearer ${auth.bearer}`
  } else {
    const { username, password } = auth.basic
    if (username.includes(':'))
      throw new CodexValidationError('basic auth username must not contain ":"', init)
    value = `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`
  }
  if (/[\r\n\0]/.test(value)) throw new CodexValidationError('auth must not contain CR, LF or NUL', init)
  return { authorization: value }
}
