/**
 * The torrent coordinator's view of one connected peer: BEP3 choke/interest flags, what the peer
 * has, our outstanding requests to it, its requests to us, rates, and misbehaviour counters.
 *
 * It owns no socket: it talks through a `PeerWire` (implemented over `PeerConnection` by the
 * session), so the coordinator can be driven by tests with any duplex.
 */

import type { AbortOptions } from '../../protocol/types.ts'
import type { WireMessage } from '../../protocol/wire/messages.ts'
import { Bitfield } from '../bitfield.ts'
import type { BlockRequest, PeerHave } from '../piece-picker.ts'

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

export interface OutstandingRequest {
  readonly block: BlockRequest
  readonly sentAt: number
}

export const blockKey = (piece: number, offset: number): string => `${piece}:${offset}`

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
  reqq = 250
  listenPort: number | undefined
  metadataSize: number | undefined

  readonly outstanding = new Map<string, OutstandingRequest>()
  /** The peer's requests to us, in arrival order. */
  readonly incoming: BlockRequest[] = []
  uploading = false
  readonly allowedFast = new Set<number>()

  readonly down = new RateMeter()
  readonly up = new RateMeter()
  lastBlockAt: number
  snubbed = false
  optimistic = false
  hashFailures = 0
  closed = false

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

  constructor(info: PeerInfo, wire: PeerWire, now: number) {
    this.info = info
    this.wire = wire
    this.key = `${info.host}:${info.port}`
    this.connectedAt = now
    this.lastBlockAt = now
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

  /** The address other peers can dial (listen port from BEP10 `p`, else the socket's). */
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
