/**
 * What the HTTP (BEP3/BEP23/BEP48) and UDP (BEP15) tracker clients share: the announce and
 * scrape request/response types, the {@link TrackerClient} interface the announcer drives, the
 * typed tracker errors, and a factory picking the client for a URL scheme.
 */

import type { PeerAddress } from './peer-source.ts'
import { DiscoveryError } from './peer-source.ts'

/** BEP3 `event`; `undefined` means a regular (periodic) announce. */
export type AnnounceEvent = 'started' | 'completed' | 'stopped'

/** One announce (BEP3 tracker GET parameters; BEP15 announce packet). */
export interface AnnounceRequest {
  /** 20 bytes: the v1 info hash or the truncated v2 info hash (BEP52). */
  readonly infoHash: Uint8Array
  /** 20 bytes. */
  readonly peerId: Uint8Array
  /** TCP port we accept peer connections on. */
  readonly port: number
  readonly uploaded: number
  readonly downloaded: number
  /** Bytes still missing. */
  readonly left: number
  readonly event?: AnnounceEvent
  /** Peers wanted; omitted means the tracker's default. */
  readonly numwant?: number
  /** 32-bit random key identifying this client across IP changes (BEP3 `key`, BEP15 `key`). */
  readonly key?: number
  /** BEP3 `trackerid` echoed from the previous response of this tracker (HTTP only). */
  readonly trackerId?: Uint8Array
}

/** A successful announce. */
export interface AnnounceResponse {
  /** Seconds until the next regular announce (BEP3 `interval`); undefined if the tracker omitted it. */
  readonly intervalS?: number
  /** Seconds: never re-announce sooner (BEP3 `min interval`). */
  readonly minIntervalS?: number
  /** Seeders (BEP3 `complete`, BEP15 `seeders`). */
  readonly complete?: number
  /** Leechers (BEP3 `incomplete`, BEP15 `leechers`). */
  readonly incomplete?: number
  /** BEP3 `tracker id`, to echo as `trackerid` next time. */
  readonly trackerId?: Uint8Array
  /** BEP3 `warning message`. */
  readonly warning?: string
  /** IPv4 and IPv6 peers, validated (IP literal, port 1–65535). */
  readonly peers: readonly PeerAddress[]
}

/** Per-swarm scrape numbers (BEP48; BEP15 scrape). */
export interface ScrapeEntry {
  readonly complete: number
  readonly incomplete: number
  readonly downloaded: number
}

/** Scrape results keyed by lowercase hex info hash; swarms the tracker did not report are absent. */
export type ScrapeResult = ReadonlyMap<string, ScrapeEntry>

export interface TrackerRequestOptions {
  readonly signal?: AbortSignal
}

/** A client for one tracker URL. */
export interface TrackerClient {
  readonly url: string
  announce(request: AnnounceRequest, options?: TrackerRequestOptions): Promise<AnnounceResponse>
  scrape(infoHashes: readonly Uint8Array[], options?: TrackerRequestOptions): Promise<ScrapeResult>
  /** Releases sockets; pending requests reject. Idempotent. */
  close(): Promise<void>
}

/**
 * The tracker answered with a BEP3 `failure reason` (HTTP) or a BEP15 error packet (UDP). The
 * tracker was reachable; the request was refused.
 */
export class TrackerError extends DiscoveryError {
  readonly url: string
  readonly reason: string

  constructor(url: string, reason: string) {
    super('GW_ERR_TRACKER_FAILURE', `tracker ${url} failed: ${reason}`)
    this.name = 'TrackerError'
    this.url = url
    this.reason = reason
  }
}

/** No (complete) answer within the deadline / retransmission budget. */
export class TrackerTimeoutError extends DiscoveryError {
  readonly url: string

  constructor(url: string, message = 'timed out') {
    super('GW_ERR_TRACKER_TIMEOUT', `tracker ${url}: ${message}`)
    this.name = 'TrackerTimeoutError'
    this.url = url
  }
}

/** The answer is not a valid tracker response (bad bencode, wrong types, bad packet, HTTP status). */
export class TrackerProtocolError extends DiscoveryError {
  readonly url: string

  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super('GW_ERR_TRACKER_PROTOCOL', `tracker ${url}: ${message}`, options)
    this.name = 'TrackerProtocolError'
    this.url = url
  }
}

/** The response body exceeded the configured size limit. */
export class TrackerResponseTooLargeError extends DiscoveryError {
  readonly url: string
  readonly limitBytes: number

  constructor(url: string, limitBytes: number) {
    super('GW_ERR_TRACKER_RESPONSE_TOO_LARGE', `tracker ${url}: response larger than ${limitBytes} bytes`)
    this.name = 'TrackerResponseTooLargeError'
    this.url = url
    this.limitBytes = limitBytes
  }
}

/** Connection-level failure (DNS, refused, reset, socket error). */
export class TrackerNetworkError extends DiscoveryError {
  readonly url: string

  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super('GW_ERR_TRACKER_NETWORK', `tracker ${url}: ${message}`, options)
    this.name = 'TrackerNetworkError'
    this.url = url
  }
}

/** The URL cannot be used (bad syntax, unsupported scheme, no scrape convention). */
export class TrackerUrlError extends DiscoveryError {
  readonly url: string

  constructor(url: string, message: string) {
    super('GW_ERR_TRACKER_URL', `tracker ${url}: ${message}`)
    this.name = 'TrackerUrlError'
    this.url = url
  }
}

/** Thrown by clients for invalid request arguments (caller bug). */
export class TrackerArgumentError extends DiscoveryError {
  constructor(message: string) {
    super('GW_ERR_TRACKER_ARGUMENT', message)
    this.name = 'TrackerArgumentError'
  }
}

/** Checks the parts of an announce every client relies on. */
export function validateAnnounceRequest(req: AnnounceRequest): void {
  if (req.infoHash.byteLength !== 20) throw new TrackerArgumentError('infoHash must be 20 bytes')
  if (req.peerId.byteLength !== 20) throw new TrackerArgumentError('peerId must be 20 bytes')
  if (!Number.isInteger(req.port) || req.port < 0 || req.port > 65535) {
    throw new TrackerArgumentError(`invalid port ${req.port}`)
  }
  for (const [name, v] of [
    ['uploaded', req.uploaded],
    ['downloaded', req.downloaded],
    ['left', req.left],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new TrackerArgumentError(`${name} must be a non-negative integer`)
  }
  if (req.key !== undefined && (!Number.isInteger(req.key) || req.key < 0 || req.key > 0xffffffff)) {
    throw new TrackerArgumentError('key must be an unsigned 32-bit integer')
  }
  if (req.numwant !== undefined && (!Number.isInteger(req.numwant) || req.numwant < 0)) {
    throw new TrackerArgumentError('numwant must be a non-negative integer')
  }
}

/** True for errors meaning "the tracker said no" (vs. could not be reached / spoke garbage). */
export function isTrackerFailure(err: unknown): err is TrackerError {
  return err instanceof TrackerError
}
