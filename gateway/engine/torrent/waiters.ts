/**
 * A list of promises waiting for a one-shot event (metadata known, download complete), each
 * removable by its own abort signal so that waiters tied to short-lived things (a connection) do
 * not pile up. Memory: one entry per pending waiter; aborting removes it.
 */

interface Waiter {
  resolve(): void
  reject(e: Error): void
}

export class Waiters {
  readonly #list: Waiter[] = []

  /** Pending waiters (diagnostics and tests). */
  get size(): number {
    return this.#list.length
  }

  /** A promise settled by `resolveAll`/`rejectAll`, or rejected (and removed) when `signal` aborts. */
  wait(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#list.indexOf(w)
        if (i >= 0) this.#list.splice(i, 1)
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'))
      }
      const w: Waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort)
          reject(e)
        },
      }
      if (signal?.aborted) return onAbort()
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#list.push(w)
    })
  }

  resolveAll(): void {
    for (const w of this.#list.splice(0)) w.resolve()
  }

  rejectAll(error: Error): void {
    for (const w of this.#list.splice(0)) w.reject(error)
  }
}
