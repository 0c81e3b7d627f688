/**
 * The contract between peer discovery and the engine.
 *
 * A {@link PeerSource} (trackers, DHT, later PEX/LSD) finds peers for one torrent and hands them
 * to the engine through the {@link OnPeers} callback given at construction. Sources never open
 * peer connections themselves; the engine dedupes, filters (own address, bans) and dials.
 *
 * Also here: the small shared vocabulary of the discovery folder: the base error class, an
 * injectable {@link DiscoveryClock} (tests drive time by hand), and {@link toSwarmInfoHash}
 * (BEP52: trackers and the DHT use the v2 info hash truncated to 20 bytes).
 */

import { isIP } from 'node:net'

/** A peer's transport address: an IPv4 or IPv6 literal (no brackets) and a TCP port 1–65535. */
export interface PeerAddress {
  readonly host: string
  readonly port: number
}

/**
 * Receives peers found by a source. Called synchronously from the source's I/O callbacks; the
 * array belongs to the callee. `source` is a short label for logs and metrics (`tracker`, `dht`).
 * Must not throw (a throwing callback is caught and ignored by the sources).
 */
export type OnPeers = (peers: readonly PeerAddress[], source: string) => void

/** A discovery mechanism for one torrent. `start` is idempotent; `stop` clears every timer and socket. */
export interface PeerSource {
  /** Stable label, e.g. `tracker` or `dht`. */
  readonly name: string
  start(): void
  stop(options?: { signal?: AbortSignal }): Promise<void>
}

/** Base class of all discovery errors; `code` is stable and machine-readable. */
export class DiscoveryError extends Error {
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DiscoveryError'
    this.code = code
  }
}

/** Thrown when an info hash has the wrong length for swarm use. */
export class InvalidInfoHashError extends DiscoveryError {
  constructor(length: number) {
    super('GW_ERR_INVALID_INFO_HASH', `info hash must be 20 bytes (or a 32-byte v2 hash), got ${length}`)
    this.name = 'InvalidInfoHashError'
  }
}

/**
 * The 20-byte identifier of a swarm: a v1 info hash as is, or a v2 (SHA-256) info hash truncated
 * to its first 20 bytes (BEP52 "For some uses as torrent identifier it is truncated to 20 bytes",
 * used by trackers and the DHT).
 */
export function toSwarmInfoHash(infoHash: Uint8Array): Uint8Array {
  if (infoHash.byteLength === 20) return infoHash
  if (infoHash.byteLength === 32) return infoHash.subarray(0, 20)
  throw new InvalidInfoHashError(infoHash.byteLength)
}

/** True when `peer` has an IP-literal host and a port in 1–65535. */
export function isValidPeerAddress(peer: PeerAddress): boolean {
  return isIP(peer.host) !== 0 && Number.isInteger(peer.port) && peer.port > 0 && peer.port <= 65535
}

/** A scheduled callback; `cancel` is idempotent. */
export interface TimerHandle {
  cancel(): void
}

/**
 * Time source and timer factory. Production uses {@link systemClock}; tests inject a manual clock
 * to check intervals without sleeping.
 */
export interface DiscoveryClock {
  /** Milliseconds, same epoch as `Date.now()`. */
  now(): number
  schedule(callback: () => void, delayMs: number): TimerHandle
}

/** Wall clock with `setTimeout` timers. */
export const systemClock: DiscoveryClock = Object.freeze({
  now: () => Date.now(),
  schedule(callback: () => void, delayMs: number): TimerHandle {
    // setTimeout overflows above 2^31-1 ms (~24.8 days); clamp to stay correct.
    const timer = setTimeout(callback, Math.min(Math.max(0, delayMs), 2_147_483_647))
    return { cancel: () => clearTimeout(timer) }
  },
})

/**
 * Runs `fn` with a signal that aborts when `parent` aborts or after `timeoutMs` (reason: a
 * `TimeoutError` DOMException). The timer is always cleared.
 */
export async function withDeadline<T>(
  parent: AbortSignal | undefined,
  timeoutMs: number,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const deadline = new AbortController()
  const timer = setTimeout(
    () => deadline.abort(new DOMException(`deadline of ${timeoutMs} ms exceeded`, 'TimeoutError')),
    timeoutMs,
  )
  try {
    return await fn(parent ? AbortSignal.any([parent, deadline.signal]) : deadline.signal)
  } finally {
    clearTimeout(timer)
  }
}

/** Calls `onPeers`, shielding the caller from a throwing callback. */
export function deliverPeers(onPeers: OnPeers, peers: readonly PeerAddress[], source: string): void {
  if (peers.length === 0) return
  try {
    onPeers(peers, source)
  } catch {
    // The callback contract says it must not throw; a buggy consumer must not break discovery.
  }
}

/** Minimal structured logger the discovery modules accept (pino-compatible subset). */
export interface DiscoveryLogger {
  debug(obj: Record<string, unknown>, msg?: string): void
  warn(obj: Record<string, unknown>, msg?: string): void
}

/** A logger that drops everything (default). */
export const silentLogger: DiscoveryLogger = Object.freeze({
  debug: () => {},
  warn: () => {},
})
