/**
 * Token-bucket rate limiter for upload/download bandwidth, usable globally and per torrent
 * (chain them with `takeAll`). Waiters are served strictly first-in first-out, so a large request
 * cannot be starved by a stream of small ones. Rate 0 means unlimited. The rate can change at
 * runtime. A request larger than the bucket is allowed once the bucket is full and drives the
 * balance negative (debt), so any size eventually passes at the configured average rate.
 *
 * The only timer is the one waking the head of the queue; `close()` clears it and rejects waiters.
 * The clock and timer functions are injectable so tests need no real time.
 */

import type { AbortOptions } from '../protocol/types.ts'

/** Thrown by `take` after `close()`. */
export class RateLimiterError extends Error {
  readonly code = 'GW_ERR_RATE_LIMITER_CLOSED'

  constructor(message: string) {
    super(message)
    this.name = 'RateLimiterError'
  }
}

/** Timer functions (defaults: the global ones). */
export interface RateLimiterTimers {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

/** Options of `RateLimiter`. */
export interface RateLimiterInit {
  /** Bytes per second; 0 = unlimited. */
  readonly rateBytesPerSecond: number
  /** Bucket size. @default max(rate, 64 KiB): one second of traffic */
  readonly burstBytes?: number
  /** Monotonic clock in ms. @default performance.now */
  readonly now?: () => number
  /** @default globalThis setTimeout/clearTimeout */
  readonly timers?: RateLimiterTimers
}

interface Waiter {
  readonly bytes: number
  readonly resolve: () => void
  readonly reject: (error: unknown) => void
  readonly cleanup: () => void
}

const MIN_BURST = 64 * 1024
const defaultTimers: RateLimiterTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/** A FIFO token bucket. */
export class RateLimiter {
  readonly #now: () => number
  readonly #timers: RateLimiterTimers
  readonly #fixedBurst: number | undefined
  #rate = 0
  #burst = MIN_BURST
  #tokens = 0
  #updatedAt: number
  #queue: Waiter[] = []
  #timer: unknown
  #closed = false

  constructor(init: RateLimiterInit) {
    this.#now = init.now ?? (() => performance.now())
    this.#timers = init.timers ?? defaultTimers
    if (init.burstBytes !== undefined && !(Number.isFinite(init.burstBytes) && init.burstBytes > 0)) {
      throw new RangeError('burstBytes must be a positive number')
    }
    this.#fixedBurst = init.burstBytes
    this.#updatedAt = this.#now()
    this.setRate(init.rateBytesPerSecond)
    this.#tokens = this.#burst
  }

  /** Current rate in bytes/s (0 = unlimited). */
  get rate(): number {
    return this.#rate
  }

  /** Number of waiting `take` calls. */
  get waiting(): number {
    return this.#queue.length
  }

  /** Changes the rate; takes effect immediately for queued waiters too. */
  setRate(rateBytesPerSecond: number): void {
    if (!Number.isFinite(rateBytesPerSecond) || rateBytesPerSecond < 0) {
      throw new RangeError('rate must be a non-negative number of bytes per second')
    }
    this.#refill()
    this.#rate = rateBytesPerSecond
    this.#burst = this.#fixedBurst ?? Math.max(rateBytesPerSecond, MIN_BURST)
    this.#tokens = Math.min(this.#tokens, this.#burst)
    this.#drain()
  }

  /**
   * Resolves when `bytes` may be transferred, after everyone queued before. Rejects with the
   * signal's reason on abort (the waiter leaves the queue) or `RateLimiterError` after `close()`.
   */
  take(bytes: number, options: AbortOptions = {}): Promise<void> {
    if (this.#closed) return Promise.reject(new RateLimiterError('rate limiter closed'))
    if (!Number.isFinite(bytes) || bytes < 0) return Promise.reject(new RangeError('bytes must be >= 0'))
    const signal = options.signal
    if (signal?.aborted) return Promise.reject(signal.reason)
    if (this.#queue.length === 0 && this.#tryConsume(bytes)) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#queue.indexOf(waiter)
        if (index >= 0) this.#queue.splice(index, 1)
        reject(signal?.reason)
        this.#drain() // the next waiter may now be at the head
      }
      const waiter: Waiter = {
        bytes,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#queue.push(waiter)
      this.#drain()
    })
  }

  /** Takes `bytes` now if possible without waiting (and nobody is queued); returns whether it did. */
  tryTake(bytes: number): boolean {
    if (this.#closed || this.#queue.length > 0) return false
    return this.#tryConsume(bytes)
  }

  /** Clears the timer and rejects all waiters. Later `take` calls reject. Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#clearTimer()
    const queue = this.#queue
    this.#queue = []
    for (const w of queue) {
      w.cleanup()
      w.reject(new RateLimiterError('rate limiter closed'))
    }
  }

  #tryConsume(bytes: number): boolean {
    if (this.#rate === 0) return true
    this.#refill()
    // A request larger than the bucket passes once the bucket is full, leaving a debt.
    if (this.#tokens < Math.min(bytes, this.#burst)) return false
    this.#tokens -= bytes
    return true
  }

  #refill(): void {
    const now = this.#now()
    const elapsed = Math.max(0, now - this.#updatedAt)
    this.#updatedAt = now
    if (this.#rate > 0) this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000)
  }

  /** Serves waiters from the head while tokens allow; otherwise arms one timer for the head. */
  #drain(): void {
    this.#clearTimer()
    // Bounded by the queue length: each iteration removes one waiter or stops.
    while (this.#queue.length > 0) {
      const head = this.#queue[0] as Waiter
      if (!this.#tryConsume(head.bytes)) break
      this.#queue.shift()
      head.cleanup()
      head.resolve()
    }
    const head = this.#queue[0]
    if (head === undefined || this.#closed) return
    const needed = Math.min(head.bytes, this.#burst) - this.#tokens
    const waitMs = Math.max(1, Math.ceil((needed * 1000) / this.#rate))
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined
      this.#drain()
    }, waitMs)
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      this.#timers.clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }
}

/** Takes `bytes` from each limiter in order (e.g. `[global, perTorrent]`). */
export async function takeAll(
  limiters: readonly RateLimiter[],
  bytes: number,
  options: AbortOptions = {},
): Promise<void> {
  for (const limiter of limiters) await limiter.take(bytes, options)
}
