/**
 * The torrent coordinator's view of one connected peer: BEP3 choke/interest flags, what the peer
 * has, our outstanding requests to it (a `RequestQueue`: adaptive depth, snub rule), its requests
 * to us, rates, and misbehaviour counters.
 *
 * It owns no socket: it talks through a `PeerWire` (implemented over `PeerConnection` by the
 * session), so the coordinator can be driven by tests with any duplex.
 */

import type { AbortOptions } from '../../protocol/types.ts'
import type { WireMessage } from '../../protocol/wire/messages.ts'
import { Bitfield } from '../bitfield.ts'
import type { BlockRequest, PeerHave } from '../piece-picker.ts'
import { DEFAULT_REQQ, RequestQueue } from '../request-queue.ts'

/** What the coordinator needs from a peer connection. */
export interface PeerWire {
  /** Queues a message; false means "wait for onDrain before sending more" (like stream.write). */
  send(msg: WireMessage): boolean
  onDrain(options?: AbortOptions): Promise<void>
  /** Closes the connection with a reason; never throws; idempotent. */
  close(reason: string): void
}

/** Facts about a peer learned from its handshake. */
export interface PeerInfo {
  readonly host: string
  readonly port: number
  readonly incoming: boolean
  readonly peerId: Uint8Array
  /** BEP6 Fast extension supported by both sides. */
  readonly fast: boolean
  /** BEP10 extension protocol supported by both sides. */
  readonly extended: boolean
  /** BEP5 DHT bit set by the peer. */
  readonly dht: boolean
  /** The swarm the connection joined: v1 info hash or truncated v2 info hash (BEP52). */
  readonly swarm: 'v1' | 'v2'
  /** Both sides set the BEP52 v2 upgrade bit. */
  readonly v2: boolean
}

/** An exponentially weighted byte rate, updated once per tick. */
export class RateMeter {
  #pending = 0
  #rate = 0
  total = 0

  add(bytes: number): void {
    this.#pending += bytes
    this.total += bytes
  }

  /** Call once per `seconds`; smooths over ~5 ticks. */
  tick(seconds: number): void {
    const instant = this.#pending / seconds
    this.#pending = 0
    this.#rate = this.#rate === 0 ? instant : this.#rate * 0.8 + instant * 0.2
    if (this.#rate < 1) this.#rate = 0
  }

  get rate(): number {
    return this.#rate
  }
}

export const blockKey = (piece: number, offset: number): string => `${piece}:${offset}`

/** Requests we cancelled or timed out that the peer may still answer (remembered this long). */
export const RECENT_REQUEST_MS = 120_000
/** At most this many such requests are remembered per peer (oldest forgotten first). */
export const MAX_RECENT_REQUESTS = 512

/** Per-peer download pipeline settings (from the torrent's init). */
export interface PeerQueueInit {
  /** No block for this long with requests outstanding: the peer is snubbed (BEP3). @default 60 000 */
  readonly snubTimeoutMs?: number
}

export class Peer {
  readonly info: PeerInfo
  readonly wire: PeerWire
  readonly key: string
  readonly connectedAt: number

  amChoking = true
  amInterested = false
  peerChoking = true
  peerInterested = false
  /** `undefined` until the first bitfield / have-all / have-none / have. */
  have: Bitfield | 'all' | undefined
  /** Raw bitfield received before the torrent's metadata was known (magnet start). */
  pendingBitfield: Uint8Array | undefined
  /** Any message other than the handshake-time ones seen (bitfield must come first, BEP3). */
  sawFirstMessage = false

  /** BEP10: the peer's extension name → its message id. */
  readonly extensions = new Map<string, number>()
  client = ''
  listenPort: number | undefined
  metadataSize: number | undefined

  /** Our outstanding requests to the peer, oldest first; sized from the measured rate. */
  readonly outstanding: RequestQueue
  /**
   * Last download progress: a block arrived, the queue went from empty to non-empty, or a request
   * was timed out. The peer times out when this is older than the request timeout (libtorrent: a
   * peer is timed out as a whole, not request by request, since it serves its queue in order).
   */
  lastProgressAt: number
  /** A request was timed out and no block came since: send no new requests to the peer. */
  timedOut = false
  /** No new requests before this time (the peer rejected a request while not choking us). */
  holdRequestsUntil = 0
  /** Requests we cancelled (BEP3/BEP6 endgame) or timed out: block key → when. Bounded. */
  readonly #recent = new Map<string, number>()
  /** The peer's requests to us, in arrival order. */
  readonly incoming: BlockRequest[] = []
  uploading = false
  readonly allowedFast = new Set<number>()

  readonly down = new RateMeter()
  readonly up = new RateMeter()
  /** The peer is the optimistic unchoke (BEP3). */
  optimistic = false
  closed = false
  /** Aborted when the connection closes (per-connection waits hang on it). */
  lifetime: AbortController | undefined

  /** `have` indices received before the metadata was known (magnet start). */
  pendingHaves: number[] | undefined
  /** Blocks received that we never requested (or after their request timed out). */
  unrequested = 0
  /** Requests we refused (choked, piece missing, queue full) since our last unchoke. */
  requestFlood = 0
  /** BEP6 allowed-fast pieces we granted this peer. */
  readonly allowedFastSent = new Set<number>()

  /** PEX: addresses already announced to this peer (host:port). */
  readonly pexSent = new Set<string>()
  lastPexAt = 0
  lastPexReceivedAt: number | undefined
  /** BEP9 rejects received from this peer. */
  metadataRejected = 0

  constructor(info: PeerInfo, wire: PeerWire, now: number, queue: PeerQueueInit = {}) {
    this.info = info
    this.wire = wire
    this.key = `${info.host}:${info.port}`
    this.connectedAt = now
    this.lastProgressAt = now
    this.outstanding = new RequestQueue({
      maxDepth: DEFAULT_REQQ,
      // Timeouts are per peer (see `lastProgressAt`): the queue never expires requests itself.
      requestTimeoutMs: Number.MAX_SAFE_INTEGER,
      ...(queue.snubTimeoutMs !== undefined ? { snubTimeoutMs: queue.snubTimeoutMs } : {}),
    })
  }

  /** BEP10 `reqq`: how many outstanding requests the peer accepts (our queue's upper bound). */
  get reqq(): number {
    return this.outstanding.maxDepth
  }

  set reqq(value: number) {
    this.outstanding.setMaxDepth(value)
  }

  /** Anti-snubbing (BEP3): requests outstanding and no block for the snub timeout. */
  snubbed(now: number): boolean {
    return this.outstanding.isSnubbed(now)
  }

  /** Remembers a request we cancelled or timed out, so its late answer is not "unrequested". */
  rememberRequest(request: BlockRequest, now: number): void {
    const k = blockKey(request.piece, request.offset)
    this.#recent.delete(k)
    this.#recent.set(k, now)
    // Bounded: drop the oldest (a Map iterates in insertion order).
    for (const [old, at] of this.#recent) {
      if (this.#recent.size <= MAX_RECENT_REQUESTS && now - at < RECENT_REQUEST_MS) break
      this.#recent.delete(old)
    }
  }

  /** Whether `request` was cancelled or timed out recently (the entry stays until it expires). */
  recentlyRequested(request: BlockRequest, now: number): boolean {
    const at = this.#recent.get(blockKey(request.piece, request.offset))
    return at !== undefined && now - at < RECENT_REQUEST_MS
  }

  /** What the picker should assume the peer has. */
  pickerHave(): PeerHave | undefined {
    return this.have
  }

  hasPiece(piece: number): boolean {
    if (this.have === 'all') return true
    return this.have?.has(piece) ?? false
  }

  isSeed(pieceCount: number): boolean {
    if (this.have === 'all') return true
    return this.have !== undefined && this.have.count === pieceCount
  }

  /**
   * The address other peers can dial (listen port from BEP10 `p`, else the socket's). For dialling
   * and PEX only: `p` is unchecked, so it never names the peer in a ban.
   */
  dialAddress(): { host: string; port: number } | undefined {
    if (this.info.incoming) {
      return this.listenPort ? { host: this.info.host, port: this.listenPort } : undefined
    }
    return { host: this.info.host, port: this.info.port }
  }

  send(msg: WireMessage): boolean {
    if (this.closed) return false
    return this.wire.send(msg)
  }
}

/** Ensures `peer.have` is a bitfield of `size` (turning `undefined` into an empty one). */
export function ensureBitfield(peer: Peer, size: number): Bitfield | 'all' {
  if (peer.have === undefined) peer.have = new Bitfield(size)
  return peer.have
}
