/**
 * Abortable waiting shared by the engine, the service and the adapters. Both helpers reject with
 * the signal's own reason (not a generic AbortError), so callers can tell why they were stopped.
 */

import { setTimeout as delay } from 'node:timers/promises'

/** Resolves after `ms`, or rejects with `signal.reason` as soon as the signal aborts. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  try {
    await delay(ms, undefined, signal === undefined ? undefined : { signal })
  } catch (error) {
    if (signal?.aborted) throw signal.reason
    throw error
  }
}

/** Resolves/rejects like `promise`, or rejects with the signal's reason as soon as it aborts. */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  if (signal.aborted) {
    promise.catch(() => {}) // the shared work goes on; its outcome is observed elsewhere
    return Promise.reject(signal.reason)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}
