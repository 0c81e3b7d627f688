/**
 * The torrent's list of known peer addresses (from trackers, the DHT, PEX, the user, and the
 * peers we dialled), with libtorrent-style connection policy:
 *
 * - every address is dialled at most once per backoff period: after an attempt (or a disconnect)
 *   it waits `minReconnectMs` (libtorrent `min_reconnect_time`, 60 s), doubled for each
 *   consecutive failure up to `maxBackoffMs`;
 * - an attempt counts as a failure until the connection is attached (`onConnected` resets it), so
 *   the list needs no callback from the dialler;
 * - an address that failed `maxFailures` times in a row is forgotten (libtorrent
 *   `max_failcount`);
 * - the list keeps learning while full: a new address replaces the entry with the most failures,
 *   else the oldest idle one (never a connected one); if every entry is connected it is dropped.
 *
 * Pure: time is passed in. Memory: at most `maxEntries` entries.
 *
 * Also `BanList`: the banned connection addresses and peer ids, bounded (oldest forgotten first).
 */

export interface PeerAddr {
  readonly host: string
  readonly port: number
}

export interface KnownPeersInit {
  /** @default 2000 */
  readonly maxEntries?: number
  /** Wait after an attempt or a disconnect before dialling the address again. @default 60 000 */
  readonly minReconnectMs?: number
  /** Upper bound of the exponential backoff. @default 30 min */
  readonly maxBackoffMs?: number
  /** Consecutive failed attempts after which the address is forgotten. @default 5 */
  readonly maxFailures?: number
}

interface Entry {
  readonly addr: PeerAddr
  /** Consecutive attempts that did not lead to an attached connection. */
  failures: number
  /** Not dialled before this time. */
  nextAttemptAt: number
  connected: boolean
}

export const addrKey = (a: PeerAddr): string => `${a.host}:${a.port}`

export class KnownPeers {
  readonly #max: number
  readonly #minReconnect: number
  readonly #maxBackoff: number
  readonly #maxFailures: number
  readonly #entries = new Map<string, Entry>()

  constructor(init: KnownPeersInit = {}) {
    this.#max = positive(init.maxEntries ?? 2000, 'maxEntries')
    this.#minReconnect = nonNegative(init.minReconnectMs ?? 60_000, 'minReconnectMs')
    this.#maxBackoff = Math.max(
      this.#minReconnect,
      nonNegative(init.maxBackoffMs ?? 30 * 60_000, 'maxBackoffMs'),
    )
    this.#maxFailures = positive(init.maxFailures ?? 5, 'maxFailures')
  }

  get size(): number {
    return this.#entries.size
  }

  has(key: string): boolean {
    return this.#entries.has(key)
  }

  addresses(): PeerAddr[] {
    return [...this.#entries.values()].map((e) => e.addr)
  }

  /** Failed attempts in a row for `key` (diagnostics and tests). */
  failures(key: string): number | undefined {
    return this.#entries.get(key)?.failures
  }

  /**
   * Learns an address. Returns true if it is new (the caller may dial it at once: call
   * `onAttempt` then). A full list makes room (see the module comment) or drops the address.
   */
  add(addr: PeerAddr, now: number): boolean {
    const key = addrKey(addr)
    if (this.#entries.has(key)) return false
    if (this.#entries.size >= this.#max && !this.#evictOne()) return false
    this.#entries.set(key, { addr, failures: 0, nextAttemptAt: now, connected: false })
    return true
  }

  remove(key: string): void {
    this.#entries.delete(key)
  }

  /**
   * Up to `limit` idle addresses due for a dial at `now`, fewest failures first; each one is marked
   * attempted (counted as a failure until `onConnected`). Addresses past `maxFailures` are dropped.
   */
  takeDue(now: number, limit: number): PeerAddr[] {
    const due: Entry[] = []
    for (const [key, e] of this.#entries) {
      if (e.connected || e.nextAttemptAt > now) continue
      if (e.failures >= this.#maxFailures) {
        this.#entries.delete(key)
        continue
      }
      due.push(e)
    }
    due.sort((a, b) => a.failures - b.failures)
    const out = due.slice(0, Math.max(0, limit))
    for (const e of out) this.onAttempt(addrKey(e.addr), now)
    return out.map((e) => e.addr)
  }

  /** A dial of `key` starts now (already counted as failed until it connects). */
  onAttempt(key: string, now: number): void {
    const e = this.#entries.get(key)
    if (!e) return
    e.failures++
    e.nextAttemptAt = now + Math.min(this.#maxBackoff, this.#minReconnect * 2 ** Math.min(e.failures - 1, 20))
  }

  /** A connection to `key` was attached: its failures are forgiven. */
  onConnected(addr: PeerAddr): void {
    const key = addrKey(addr)
    let e = this.#entries.get(key)
    if (!e) {
      if (this.#entries.size >= this.#max && !this.#evictOne()) return
      e = { addr, failures: 0, nextAttemptAt: 0, connected: true }
      this.#entries.set(key, e)
    }
    e.failures = 0
    e.connected = true
  }

  /** The connection to `key` closed: dial it again after `minReconnectMs`. */
  onDisconnected(key: string, now: number): void {
    const e = this.#entries.get(key)
    if (!e) return
    e.connected = false
    e.nextAttemptAt = Math.max(e.nextAttemptAt, now + this.#minReconnect)
  }

  /** Makes every idle address due now (e.g. on resume after a pause closed every connection). */
  resetBackoff(now: number): void {
    for (const e of this.#entries.values()) if (!e.connected) e.nextAttemptAt = Math.min(e.nextAttemptAt, now)
  }

  /** Removes the idle entry with the most failures (oldest first among equals). */
  #evictOne(): boolean {
    let victim: string | undefined
    let worst = -1
    for (const [key, e] of this.#entries) {
      if (e.connected) continue
      if (e.failures > worst) {
        worst = e.failures
        victim = key
      }
    }
    if (victim === undefined) return false
    this.#entries.delete(victim)
    return true
  }
}

/** Banned keys (host:port as connected, hex peer ids); at most `max`, the oldest forgotten first. */
export class BanList {
  readonly #keys = new Set<string>()
  readonly #max: number

  constructor(max = 10_000) {
    this.#max = positive(max, 'max')
  }

  has(key: string): boolean {
    return this.#keys.has(key)
  }

  add(...keys: string[]): void {
    for (const k of keys) {
      this.#keys.delete(k)
      this.#keys.add(k)
    }
    for (const k of this.#keys) {
      if (this.#keys.size <= this.#max) break
      this.#keys.delete(k)
    }
  }
}

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`)
  return value
}

function nonNegative(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a non-negative number`)
  return value
}
