/**
 * Per-peer request pipeline policy: how many block requests to keep outstanding with one peer,
 * when a request has timed out, and when the peer counts as snubbed. Pure: the current time (ms)
 * and the measured download rate are arguments; no timers.
 *
 * - Queue depth (libtorrent `desired_queue_size`): enough requests to cover the peer's bandwidth
 *   for `targetLatencyMs`: `rate × latency / 16 KiB`, clamped to `[minDepth, maxDepth]`, where
 *   `maxDepth` is the peer's BEP10 `reqq` ("the number of outstanding request messages this client
 *   supports without dropping any", default 250 as in libtorrent). A snubbed peer gets 1.
 * - Timeouts: a request unanswered for `requestTimeoutMs` is expired (the piece picker frees it).
 * - Snubbing (BEP3 "anti-snubbing"): a peer with outstanding requests that has sent no block for
 *   `snubTimeoutMs` (60 s) is snubbed until its next block.
 *
 * Memory: at most `maxDepth` entries, ordered by send time (a `Map`'s insertion order).
 */

import { BLOCK_SIZE } from '../protocol/types.ts'
import type { BlockRequest } from './piece-picker.ts'

/** Default BEP10 `reqq` when the peer does not send one (libtorrent's default). */
export const DEFAULT_REQQ = 250

/** Options of `RequestQueue`. */
export interface RequestQueueInit {
  /** The peer's BEP10 `reqq`. @default 250 */
  readonly maxDepth?: number
  /** Lower bound of the adaptive depth. @default 2 */
  readonly minDepth?: number
  /** Time the queue should cover at the current rate. @default 3000 */
  readonly targetLatencyMs?: number
  /** A request unanswered for this long is expired. @default 60 000 */
  readonly requestTimeoutMs?: number
  /** No block for this long with requests outstanding → snubbed. @default 60 000 */
  readonly snubTimeoutMs?: number
}

interface Outstanding {
  readonly request: BlockRequest
  readonly sentAt: number
}

/** Outstanding requests to one peer plus the depth/timeout/snub rules. */
export class RequestQueue {
  #maxDepth: number
  readonly #minDepth: number
  readonly #latencyMs: number
  readonly #timeoutMs: number
  readonly #snubMs: number
  readonly #outstanding = new Map<string, Outstanding>()
  /** Last time the peer made progress: a block arrived, or the queue went from empty to non-empty. */
  #lastProgressAt = 0
  /** Snubbed stays set until the next block, even if the requests expire meanwhile. */
  #snubbed = false

  constructor(init: RequestQueueInit = {}) {
    this.#minDepth = positiveInt(init.minDepth ?? 2, 'minDepth')
    this.#maxDepth = Math.max(this.#minDepth, positiveInt(init.maxDepth ?? DEFAULT_REQQ, 'maxDepth'))
    this.#latencyMs = positiveNumber(init.targetLatencyMs ?? 3000, 'targetLatencyMs')
    this.#timeoutMs = positiveNumber(init.requestTimeoutMs ?? 60_000, 'requestTimeoutMs')
    this.#snubMs = positiveNumber(init.snubTimeoutMs ?? 60_000, 'snubTimeoutMs')
  }

  /** Applies the `reqq` from the peer's BEP10 extended handshake (ignored unless a positive integer). */
  setMaxDepth(reqq: number): void {
    if (Number.isInteger(reqq) && reqq > 0) this.#maxDepth = Math.max(this.#minDepth, reqq)
  }

  /** Current upper bound (the peer's `reqq`). */
  get maxDepth(): number {
    return this.#maxDepth
  }

  /** Number of outstanding requests. */
  get size(): number {
    return this.#outstanding.size
  }

  /** Outstanding requests, oldest first. */
  requests(): BlockRequest[] {
    return [...this.#outstanding.values()].map((o) => o.request)
  }

  /** Whether `request` (piece, offset) is outstanding. */
  has(request: BlockRequest): boolean {
    return this.#outstanding.has(key(request))
  }

  /** Target number of outstanding requests for a peer sending `downloadRate` bytes/s. */
  targetDepth(downloadRate: number, now: number): number {
    if (this.isSnubbed(now)) return 1
    const rate = Number.isFinite(downloadRate) && downloadRate > 0 ? downloadRate : 0
    const depth = Math.ceil((rate * this.#latencyMs) / 1000 / BLOCK_SIZE)
    return Math.min(this.#maxDepth, Math.max(this.#minDepth, depth))
  }

  /** How many more requests to send now (`targetDepth − size`, at least 0). */
  wanted(downloadRate: number, now: number): number {
    return Math.max(0, this.targetDepth(downloadRate, now) - this.#outstanding.size)
  }

  /** Records a request sent at `now`. Returns false (and records nothing) if already outstanding. */
  add(request: BlockRequest, now: number): boolean {
    const k = key(request)
    if (this.#outstanding.has(k)) return false
    this.#updateSnub(now)
    if (this.#outstanding.size === 0) this.#lastProgressAt = now
    this.#outstanding.set(k, { request, sentAt: now })
    return true
  }

  /**
   * A block arrived at `now`. Returns true if it answered an outstanding request (which is
   * removed); false for unrequested blocks (the caller decides whether that is a protocol error).
   * Any block counts as progress for the snub rule.
   */
  onBlock(request: BlockRequest, now: number): boolean {
    this.#lastProgressAt = now
    this.#snubbed = false
    return this.#outstanding.delete(key(request))
  }

  /** Removes a request (cancelled by us, or rejected by the peer). Returns true if it was outstanding. */
  remove(request: BlockRequest): boolean {
    return this.#outstanding.delete(key(request))
  }

  /** Removes and returns the requests older than the request timeout at `now`. O(expired). */
  expire(now: number): BlockRequest[] {
    const expired: BlockRequest[] = []
    this.#updateSnub(now)
    for (const [k, o] of this.#outstanding) {
      if (now - o.sentAt < this.#timeoutMs) break // insertion order is send order
      this.#outstanding.delete(k)
      expired.push(o.request)
    }
    return expired
  }

  /**
   * Anti-snubbing (BEP3): requests were outstanding and no block came for `snubTimeoutMs`. Stays
   * true until the next block arrives.
   */
  isSnubbed(now: number): boolean {
    this.#updateSnub(now)
    return this.#snubbed
  }

  /** Removes and returns every outstanding request (peer choked us without BEP6, or disconnected). */
  clear(): BlockRequest[] {
    const all = this.requests()
    this.#outstanding.clear()
    return all
  }

  #updateSnub(now: number): void {
    if (this.#outstanding.size > 0 && now - this.#lastProgressAt >= this.#snubMs) this.#snubbed = true
  }
}

function key(request: BlockRequest): string {
  return `${request.piece}:${request.offset}`
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`)
  return value
}

function positiveNumber(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number`)
  return value
}
