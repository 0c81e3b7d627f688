/**
 * Retry policy of the Codex client: bounded attempts, exponential backoff with full jitter.
 *
 * Only idempotent calls are retried (the client decides which); this module only computes delays
 * and sleeps abortably. Attempts are bounded by `attempts`, each delay by `maxDelayMs`, so the
 * total time spent sleeping is at most `(attempts - 1) * maxDelayMs`.
 */

import { setTimeout as delay } from 'node:timers/promises'

export interface RetryPolicy {
  /** Total number of tries, first one included (1 = no retry). 1..20. */
  readonly attempts: number
  /** Delay scale: the cap before jitter is `baseDelayMs * 2^(retry - 1)`. */
  readonly baseDelayMs: number
  /** Upper bound of one delay. */
  readonly maxDelayMs: number
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  attempts: 4,
  baseDelayMs: 100,
  maxDelayMs: 2_000,
})

/** Hard bounds, so a misconfiguration cannot make a call loop for hours. */
const MAX_ATTEMPTS = 20
const MAX_DELAY_MS = 60_000

/** Validates and freezes a policy; throws `RangeError` on nonsense values. */
export function normalizeRetryPolicy(policy: Partial<RetryPolicy> | undefined): RetryPolicy {
  const merged = { ...DEFAULT_RETRY_POLICY, ...policy }
  const { attempts, baseDelayMs, maxDelayMs } = merged
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > MAX_ATTEMPTS) {
    throw new RangeError(`retry.attempts must be an integer in 1..${MAX_ATTEMPTS}, got ${attempts}`)
  }
  if (!Number.isFinite(baseDelayMs) || baseDelayMs < 0 || baseDelayMs > MAX_DELAY_MS) {
    throw new RangeError(`retry.baseDelayMs must be in 0..${MAX_DELAY_MS}, got ${baseDelayMs}`)
  }
  if (!Number.isFinite(maxDelayMs) || maxDelayMs < baseDelayMs || maxDelayMs > MAX_DELAY_MS) {
    throw new RangeError(`retry.maxDelayMs must be in baseDelayMs..${MAX_DELAY_MS}, got ${maxDelayMs}`)
  }
  return Object.freeze({ attempts, baseDelayMs, maxDelayMs })
}

/**
 * Delay before retry number `retry` (1 = first retry): full jitter,
 * `random() * min(maxDelayMs, baseDelayMs * 2^(retry-1))`.
 */
export function backoffDelayMs(
  retry: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(retry - 1, 0), 30)
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** exponent)
  return Math.floor(random() * cap)
}

/** Sleeps `ms`, rejecting with `signal.reason` as soon as the signal aborts. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  if (ms <= 0) return
  try {
    await delay(ms, undefined, signal === undefined ? undefined : { signal })
  } catch (error) {
    if (signal?.aborted) throw signal.reason
    throw error
  }
}

/** HTTP statuses worth retrying for idempotent calls (gateway / overload answers). */
export function isRetryableStatus(status: number): boolean {
  return status === 502 || status === 503 || status === 504
}
