/**
 * Call building for the Codex client: turns a route description into a transport `CallSpec`
 * (defaults, `Accept`, JSON bodies, signal, timeout), reads small answers (JSON, text, empty)
 * with a size cap, and validates path parameters client-side: CIDs with `parseCid` and sent in
 * Codex's own text form (z-base58btc, NOTES.md §1.1), other segments percent-encoded.
 */

import { readSmallBody } from './body.ts'
import { CID, formatCid, parseCid } from './cid.ts'
import { CodexInvalidCidError, CodexResponseError, CodexValidationError } from './errors.ts'
import type { CallSpec, CodexTransport, Exchange, HttpMethod, TimeoutMode } from './transport.ts'

/** Options every client method accepts. */
export interface CallOptions {
  readonly signal?: AbortSignal
  /** Overrides the client's `timeoutMs` for this call. */
  readonly timeoutMs?: number
}

/** Every method takes a parsed CID or its text (any multibase Codex accepts). */
export type CidInput = CID | string

export interface SpecInput {
  readonly operation: string
  /** Templated route, e.g. `/data/{cid}`. */
  readonly route: string
  readonly method: HttpMethod
  /** Concrete path below the API prefix, encoded, query included. */
  readonly path: string
  readonly options: CallOptions | undefined
  /** Retry transient failures (idempotent calls only). */
  readonly retry: boolean
  /** false: timeouts are never retried (routes that search the network). Default true. */
  readonly retryTimeouts?: boolean
  readonly cid?: string
  readonly headers?: Record<string, string>
  /** Sent as an `application/json` body. */
  readonly json?: unknown
  readonly marketplace?: boolean
  readonly timeoutMode?: TimeoutMode
}

export interface CallsInit {
  readonly transport: CodexTransport
  readonly timeoutMs: number
  readonly idleTimeoutMs: number
  readonly maxResponseBytes: number
}

const DEFAULT_ACCEPT = 'application/json, text/plain;q=0.9, */*;q=0.8'

export class Calls {
  readonly transport: CodexTransport
  readonly timeoutMs: number
  readonly idleTimeoutMs: number
  readonly maxResponseBytes: number

  constructor(init: CallsInit) {
    this.transport = init.transport
    this.timeoutMs = init.timeoutMs
    this.idleTimeoutMs = init.idleTimeoutMs
    this.maxResponseBytes = init.maxResponseBytes
  }

  spec(input: SpecInput): CallSpec {
    const headers: Record<string, string> = { accept: DEFAULT_ACCEPT, ...input.headers }
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
      ...(input.retryTimeouts === false ? { retryTimeouts: false } : {}),
      timeoutMs: input.options?.timeoutMs ?? this.timeoutMs,
      timeoutMode: input.timeoutMode ?? 'total',
      ...(body ? { body } : {}),
      ...(input.cid !== undefined ? { cid: input.cid } : {}),
      ...(input.options?.signal ? { signal: input.options.signal } : {}),
      ...(input.marketplace ? { marketplace: true } : {}),
    }
  }

  /** A JSON answer, shape-checked by `parse` (mismatch → `CodexResponseError`). */
  json<T>(input: SpecInput, parse: (value: unknown) => T): Promise<T> {
    return this.transport.call(this.spec(input), async (x) => {
      const text = await this.readText(x, this.maxResponseBytes)
      try {
        return parse(JSON.parse(text))
      } catch (cause) {
        throw new CodexResponseError(`unexpected answer: ${(cause as Error).message}`, {
          ...x.attempt.errorInit,
          cause,
        })
      }
    })
  }

  /** A `text/plain` answer, whitespace-trimmed. */
  text(input: SpecInput, limitBytes = this.maxResponseBytes): Promise<string> {
    return this.transport.call(this.spec(input), async (x) => (await this.readText(x, limitBytes)).trim())
  }

  /** An answer whose body is ignored (204, or 200 with an empty body). */
  async empty(input: SpecInput): Promise<void> {
    await this.transport.call(this.spec(input), (x) => this.readText(x, this.maxResponseBytes))
  }

  /** Reads a capped body as UTF-8 and ends the attempt. */
  async readText(x: Exchange, limitBytes: number): Promise<string> {
    const bytes = await readSmallBody(x.body, limitBytes, x.attempt, () => {
      return new CodexResponseError(`answer larger than ${limitBytes} bytes`, x.attempt.errorInit)
    })
    x.attempt.finish('ok')
    return bytes.toString('utf8')
  }

  /** CID → Codex's text form; strings must parse (`parseCid`), else no request is sent. */
  cidText(cid: CidInput, operation: string, route: string): string {
    if (typeof cid === 'string') {
      try {
        return formatCid(parseCid(cid))
      } catch (cause) {
        const init = { operation, route, cid, cause }
        throw new CodexInvalidCidError(`invalid CID ${JSON.stringify(cid.slice(0, 120))}`, init)
      }
    }
    const parsed = CID.asCID(cid)
    if (parsed === null) throw new CodexInvalidCidError('not a CID', { operation, route })
    return formatCid(parsed)
  }

  /** A non-empty path segment, percent-encoded. */
  segment(value: string, operation: string, route: string): string {
    if (typeof value !== 'string' || value === '') {
      throw new CodexValidationError('empty path parameter', { operation, route })
    }
    return encodeURIComponent(value)
  }
}
