/**
 * Plain engine statistics: counters the engine bumps and `observability/metrics.ts` reads at
 * scrape time via `snapshot()` (libtorrent `update_stats_counters`, libp2p calculated metrics).
 * The engine never imports prom-client (STYLE §4, §7.7). Also `RateMeter`, a windowed byte-rate
 * estimator with time passed in, for the choker and the request queue.
 *
 * Memory is bounded: client names come from remote peers (BEP10 `v`, peer-id prefixes), so they
 * are truncated and at most `maxClientNames` distinct names are tracked (the rest count as
 * `other`); per-torrent counters exist only between `addTorrent`/first use and `removeTorrent`.
 */

/** Where bytes came from or went to: BitTorrent peers, or the Codex node. */
export type ByteSource = 'peers' | 'codex'

/** Bytes down/up by source. */
export interface ByteCounters {
  readonly downloaded: Readonly<Record<ByteSource, number>>
  readonly uploaded: Readonly<Record<ByteSource, number>>
}

/** What `snapshot()` returns: plain data, safe to keep. */
export interface StatsSnapshot {
  readonly bytes: ByteCounters
  readonly piecesVerified: number
  readonly piecesFailed: number
  /** Hash mismatches by kind: v1 piece SHA-1, v2 piece-layer/Merkle check. */
  readonly hashFailures: Readonly<Record<'v1' | 'v2', number>>
  /** Currently connected peers by client name. */
  readonly peersByClient: Readonly<Record<string, number>>
  readonly peersConnected: number
  /** Per torrent (key: info hash hex, as passed by the caller). */
  readonly torrents: Readonly<Record<string, ByteCounters>>
}

/** Options of `EngineStats`. */
export interface EngineStatsInit {
  /** Distinct client names tracked before falling back to `other`. @default 64 */
  readonly maxClientNames?: number
}

/** Name used for clients beyond `maxClientNames` and for empty names. */
export const OTHER_CLIENT = 'other'
const MAX_CLIENT_NAME_LENGTH = 64

interface MutableBytes {
  downloaded: Record<ByteSource, number>
  uploaded: Record<ByteSource, number>
}

/** Engine-wide counters. One instance per session, injected where needed. */
export class EngineStats {
  readonly #maxClients: number
  readonly #bytes: MutableBytes = emptyBytes()
  readonly #torrents = new Map<string, MutableBytes>()
  readonly #clients = new Map<string, number>()
  #piecesVerified = 0
  #piecesFailed = 0
  #hashFailures = { v1: 0, v2: 0 }

  constructor(init: EngineStatsInit = {}) {
    this.#maxClients = init.maxClientNames ?? 64
  }

  /** Counts bytes received (`peers`: BitTorrent payload; `codex`: fetched from Codex). */
  addDownloaded(source: ByteSource, bytes: number, infoHash?: string): void {
    this.#add('downloaded', source, bytes, infoHash)
  }

  /** Counts bytes sent (`peers`: BitTorrent payload; `codex`: uploaded to Codex). */
  addUploaded(source: ByteSource, bytes: number, infoHash?: string): void {
    this.#add('uploaded', source, bytes, infoHash)
  }

  /** A piece passed verification. */
  pieceVerified(): void {
    this.#piecesVerified++
  }

  /** A piece failed verification; `kinds` says which hash checks failed. */
  pieceFailed(kinds: readonly ('v1' | 'v2')[] = []): void {
    this.#piecesFailed++
    for (const kind of kinds) this.#hashFailures[kind]++
  }

  /**
   * A peer connected; `client` is its (remote-provided) client name. Returns the key it was
   * counted under (truncated, or `other`): pass that key to `peerDisconnected`.
   */
  peerConnected(client: string): string {
    const name = this.#clientKey(client)
    this.#clients.set(name, (this.#clients.get(name) ?? 0) + 1)
    return name
  }

  /** A peer disconnected; `key` is what `peerConnected` returned for it. */
  peerDisconnected(key: string): void {
    const name = key
    const n = this.#clients.get(name) ?? 0
    if (n <= 1) this.#clients.delete(name)
    else this.#clients.set(name, n - 1)
  }

  /** Starts per-torrent counters (optional: the first `add*` with that key does it too). */
  addTorrent(infoHash: string): void {
    if (!this.#torrents.has(infoHash)) this.#torrents.set(infoHash, emptyBytes())
  }

  /** Forgets a torrent's counters (engine-wide totals keep its bytes). */
  removeTorrent(infoHash: string): void {
    this.#torrents.delete(infoHash)
  }

  /** A deep copy of every counter. */
  snapshot(): StatsSnapshot {
    let peers = 0
    for (const n of this.#clients.values()) peers += n
    return {
      bytes: copyBytes(this.#bytes),
      piecesVerified: this.#piecesVerified,
      piecesFailed: this.#piecesFailed,
      hashFailures: { ...this.#hashFailures },
      peersByClient: Object.fromEntries(this.#clients),
      peersConnected: peers,
      torrents: Object.fromEntries([...this.#torrents].map(([k, v]) => [k, copyBytes(v)])),
    }
  }

  #add(
    direction: 'downloaded' | 'uploaded',
    source: ByteSource,
    bytes: number,
    infoHash: string | undefined,
  ): void {
    if (!Number.isFinite(bytes) || bytes < 0) throw new RangeError('bytes must be a non-negative number')
    this.#bytes[direction][source] += bytes
    if (infoHash === undefined) return
    let t = this.#torrents.get(infoHash)
    if (t === undefined) {
      t = emptyBytes()
      this.#torrents.set(infoHash, t)
    }
    t[direction][source] += bytes
  }

  #clientKey(client: string): string {
    const name = client.slice(0, MAX_CLIENT_NAME_LENGTH) || OTHER_CLIENT
    if (this.#clients.has(name) || this.#clients.size < this.#maxClients) return name
    return OTHER_CLIENT
  }
}

function emptyBytes(): MutableBytes {
  return { downloaded: { peers: 0, codex: 0 }, uploaded: { peers: 0, codex: 0 } }
}

function copyBytes(b: MutableBytes): ByteCounters {
  return { downloaded: { ...b.downloaded }, uploaded: { ...b.uploaded } }
}

/** Options of `RateMeter`. */
export interface RateMeterInit {
  /** Averaging window. @default 10 000 (ms) */
  readonly windowMs?: number
  /** Bucket width. @default 1 000 (ms) */
  readonly bucketMs?: number
}

/**
 * Bytes per second over a sliding window of fixed buckets (a ring buffer; O(1) memory). Time is
 * passed in (ms, monotonic). Until the window is full, the rate is averaged over the buckets since
 * the first sample (at least one), so new connections are not underestimated.
 */
export class RateMeter {
  readonly #bucketMs: number
  readonly #buckets: Float64Array
  #head = -1 // absolute bucket number of the newest bucket
  #startBucket: number | undefined

  constructor(init: RateMeterInit = {}) {
    const windowMs = init.windowMs ?? 10_000
    this.#bucketMs = init.bucketMs ?? 1_000
    if (!(this.#bucketMs > 0) || !(windowMs >= this.#bucketMs))
      throw new RangeError('need windowMs >= bucketMs > 0')
    this.#buckets = new Float64Array(Math.floor(windowMs / this.#bucketMs))
  }

  /** Records `bytes` transferred at `now`. */
  add(bytes: number, now: number): void {
    this.#advance(now)
    const n = this.#buckets.length
    const i = ((this.#head % n) + n) % n
    this.#buckets[i] = (this.#buckets[i] ?? 0) + bytes
  }

  /** Average bytes per second over the window ending at `now`. */
  rate(now: number): number {
    if (this.#startBucket === undefined) return 0
    this.#advance(now)
    let sum = 0
    for (const b of this.#buckets) sum += b
    const buckets = Math.min(this.#buckets.length, this.#head - this.#startBucket + 1)
    return (sum * 1000) / (buckets * this.#bucketMs)
  }

  #advance(now: number): void {
    const bucket = Math.floor(now / this.#bucketMs)
    if (this.#startBucket === undefined) this.#startBucket = bucket
    if (this.#head < 0) {
      this.#head = bucket
      return
    }
    if (bucket <= this.#head) return
    const n = this.#buckets.length
    const steps = Math.min(n, bucket - this.#head)
    for (let s = 1; s <= steps; s++) this.#buckets[(((this.#head + s) % n) + n) % n] = 0
    this.#head = bucket
  }
}
