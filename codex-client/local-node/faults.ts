/**
 * Fault injection for tests of components that talk to the local Codex node, plus request
 * counters. Faults are applied by the server (see `server.ts`):
 *
 * - `failNext(count, { status, route, method })`: the next `count` matching requests are answered
 *   with `status` (default 500) and the text body `Injected fault`, before any handler runs.
 * - `setLatency(ms)`: every request waits `ms` before it is handled.
 * - `cutBodiesAfter(bytes)`: downloads send at most `bytes` body bytes, then the socket is
 *   destroyed (the client sees a body shorter than `Content-Length` and an error).
 * - `cutUploadsAfter(bytes)`: an upload whose body passes `bytes` has its socket destroyed
 *   mid-body; the node stores nothing more for it (blocks already stored stay, as in Codex).
 * - `setQuota(bytes)`: changes the quota; uploads then fail with 500
 *   `Unable to store block <cid>` once it is exhausted.
 * - `clear()`: removes every fault and restores the quota given at start.
 *
 * Routes match a request when a string equals its path, its route pattern
 * (`/api/codex/v1/data/:cid`) or that pattern without the API prefix (`/data/:cid`); a RegExp is
 * tested against the path (without query string).
 */

export interface FailOptions {
  /** HTTP status to answer with (default 500). */
  readonly status?: number
  readonly route?: RegExp | string
  /** HTTP method, case-insensitive. */
  readonly method?: string
}

export interface RequestInfo {
  readonly method: string
  /** URL path without query string. */
  readonly path: string
  /** Route pattern, e.g. `/api/codex/v1/data/:cid`; undefined for unknown routes. */
  readonly route: string | undefined
}

interface FailRule {
  remaining: number
  readonly status: number
  readonly route: RegExp | string | undefined
  readonly method: string | undefined
}

export const API_PREFIX = '/api/codex/v1'

function routeMatches(matcher: RegExp | string | undefined, req: RequestInfo): boolean {
  if (matcher === undefined) return true
  if (typeof matcher === 'string') {
    if (matcher === req.path || matcher === req.route) return true
    const route = req.route ?? ''
    return route.startsWith(API_PREFIX) && route.slice(API_PREFIX.length) === matcher
  }
  matcher.lastIndex = 0
  return matcher.test(req.path)
}

export class FaultController {
  readonly #rules: FailRule[] = []
  readonly #counts = new Map<string, number>()
  readonly #initialQuota: number
  readonly #setStoreQuota: (bytes: number) => void
  #latencyMs = 0
  #cutBodiesAfter: number | undefined
  #cutUploadsAfter: number | undefined

  constructor(initialQuota: number, setStoreQuota: (bytes: number) => void) {
    this.#initialQuota = initialQuota
    this.#setStoreQuota = setStoreQuota
  }

  failNext(count: number, options: FailOptions = {}): void {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`failNext: bad count ${count}`)
    const status = options.status ?? 500
    if (!Number.isInteger(status) || status < 100 || status > 599)
      throw new RangeError(`failNext: bad status ${status}`)
    if (count === 0) return
    this.#rules.push({
      remaining: count,
      status,
      route: options.route,
      method: options.method?.toUpperCase(),
    })
  }

  setLatency(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`setLatency: bad delay ${ms}`)
    this.#latencyMs = ms
  }

  cutBodiesAfter(bytes: number | undefined): void {
    if (bytes !== undefined && !(bytes >= 0)) throw new RangeError(`cutBodiesAfter: bad byte count ${bytes}`)
    this.#cutBodiesAfter = bytes
  }

  cutUploadsAfter(bytes: number | undefined): void {
    if (bytes !== undefined && !(bytes >= 0)) throw new RangeError(`cutUploadsAfter: bad byte count ${bytes}`)
    this.#cutUploadsAfter = bytes
  }

  setQuota(bytes: number): void {
    if (!(bytes >= 0)) throw new RangeError(`setQuota: bad quota ${bytes}`)
    this.#setStoreQuota(bytes)
  }

  clear(): void {
    this.#rules.length = 0
    this.#latencyMs = 0
    this.#cutBodiesAfter = undefined
    this.#cutUploadsAfter = undefined
    this.#setStoreQuota(this.#initialQuota)
  }

  get latencyMs(): number {
    return this.#latencyMs
  }

  get bodyCutBytes(): number | undefined {
    return this.#cutBodiesAfter
  }

  get uploadCutBytes(): number | undefined {
    return this.#cutUploadsAfter
  }

  /**
   * Requests seen so far, keyed `METHOD route-pattern` (e.g. `POST /api/codex/v1/data`);
   * requests that matched no route are keyed `METHOD <unmatched>`.
   */
  get requests(): ReadonlyMap<string, number> {
    return new Map(this.#counts)
  }

  /** Number of requests seen that match the filter (all requests without one). */
  requestCount(filter: { readonly method?: string; readonly route?: RegExp | string } = {}): number {
    let total = 0
    for (const [key, n] of this.#counts) {
      const space = key.indexOf(' ')
      const method = key.slice(0, space)
      const route = key.slice(space + 1)
      if (filter.method !== undefined && filter.method.toUpperCase() !== method) continue
      if (filter.route !== undefined) {
        const info: RequestInfo = { method, path: route, route: route === '<unmatched>' ? undefined : route }
        if (!routeMatches(filter.route, info)) continue
      }
      total += n
    }
    return total
  }

  resetCounters(): void {
    this.#counts.clear()
  }

  /** @internal Called by the server for every request. */
  record(req: RequestInfo): void {
    const key = `${req.method} ${req.route ?? '<unmatched>'}`
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1)
  }

  /** @internal The status to fail `req` with, consuming one use of the first matching rule. */
  takeFailure(req: RequestInfo): number | undefined {
    for (let i = 0; i < this.#rules.length; i++) {
      const rule = this.#rules[i]!
      if (rule.method !== undefined && rule.method !== req.method) continue
      if (!routeMatches(rule.route, req)) continue
      rule.remaining--
      if (rule.remaining <= 0) this.#rules.splice(i, 1)
      return rule.status
    }
    return undefined
  }
}
