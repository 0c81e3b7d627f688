/**
 * Per-peer exponential backoff for the extension protocols' requests: a peer that answered a
 * BEP9 `ut_metadata` request or a BEP52 `hash request` with a reject, or let it time out, is not
 * asked again for a while (doubling up to a cap), so the fetch moves on to other peers instead of
 * asking the same one forever. Success resets the delay. Time is passed in (no timers).
 */

export interface BackoffOptions {
  /** First delay after a failure. @default 5 000 ms */
  readonly baseMs?: number
  /** Largest delay. @default 60 000 ms */
  readonly maxMs?: number
}

interface State {
  until: number
  delay: number
  failures: number
}

export class PeerBackoff<K extends object> {
  readonly #baseMs: number
  readonly #maxMs: number
  /** Weak: a closed peer's state goes with it. */
  readonly #state = new WeakMap<K, State>()

  constructor(options: BackoffOptions = {}) {
    this.#baseMs = options.baseMs ?? 5000
    this.#maxMs = options.maxMs ?? 60_000
    if (!(this.#baseMs > 0) || !(this.#maxMs >= this.#baseMs)) throw new RangeError('invalid backoff delays')
  }

  /** Records a failure (reject or timeout) at `now`; returns the delay applied. */
  penalize(peer: K, now: number): number {
    const s = this.#state.get(peer)
    const delay = s ? Math.min(this.#maxMs, s.delay * 2) : this.#baseMs
    this.#state.set(peer, { until: now + delay, delay, failures: (s?.failures ?? 0) + 1 })
    return delay
  }

  /** Records a success: the next failure starts from the base delay again. */
  reset(peer: K): void {
    this.#state.delete(peer)
  }

  /** True while `peer` must not be asked. */
  blocked(peer: K, now: number): boolean {
    const s = this.#state.get(peer)
    return s !== undefined && now < s.until
  }

  /** Consecutive failures since the last success. */
  failures(peer: K): number {
    return this.#state.get(peer)?.failures ?? 0
  }
}

/**
 * The candidates in a rotating order: each call starts one further along, so the first request of
 * a round does not always go to the same peer. `key` gives a stable order (the peers map's
 * insertion order would favour whoever connected first).
 */
export class Rotation {
  #cursor = 0

  order<T>(items: readonly T[], key: (item: T) => string): T[] {
    if (items.length === 0) return []
    const sorted = [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
    const start = this.#cursor++ % sorted.length
    if (this.#cursor > 1_000_000_000) this.#cursor = 0
    return [...sorted.slice(start), ...sorted.slice(0, start)]
  }
}
