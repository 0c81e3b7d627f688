/**
 * The torrent coordinator: one torrent's state machine, its peers, and the download/upload flow.
 *
 * It delegates policy to pure modules (piece picker, choker, verifier) and I/O to the storage
 * facade and to `PeerWire`s handed over by the session after the handshake. Extension protocols
 * (ut_metadata, ut_pex, BEP52 hash requests) live in sibling modules and are called from here.
 *
 * Every `await` may interleave with peer events: after each one, state is re-checked (is the torrent
 * still running, is the peer still open, is the piece still wanted) — STYLE.md §7.9 (10).
 */
import { toHex } from '../../protocol/hex.ts'
import type { Metainfo, TorrentInfo } from '../../protocol/types.ts'
import { BLOCK_SIZE } from '../../protocol/types.ts'
import type { WireMessage } from '../../protocol/wire/messages.ts'
import { Bitfield } from '../bitfield.ts'
import type { EngineLogger } from '../logger.ts'
import { PieceGeometry } from '../piece-geometry.ts'
import { PiecePicker } from '../piece-picker.ts'
import type { PieceStore } from '../storage.ts'
import { StorageFacade } from '../storage-facade.ts'
import { createExtensions, type TorrentExtensions } from './extensions.ts'
import { blockKey, ensureBitfield, Peer, type PeerInfo, type PeerWire } from './peer.ts'
import { TorrentStats } from './torrent-stats.ts'
import { PieceVerifier } from './verifier.ts'

export type TorrentState =
  | 'metadata'
  | 'checking'
  | 'downloading'
  | 'seeding'
  | 'paused'
  | 'stopped'
  | 'error'

/** What the session provides to each torrent. */
export interface TorrentHost {
  readonly peerId: Uint8Array
  /** Our TCP listen port (advertised in the extension handshake and to trackers). */
  readonly listenPort: number
  readonly logger: EngineLogger
  /** Global upload/download token buckets (0 = unlimited). */
  takeUpload(bytes: number, signal: AbortSignal): Promise<void>
  takeDownload(bytes: number, signal: AbortSignal): Promise<void>
  /** Ask the session to dial these peers for this torrent (it applies limits and dedup). */
  dial(torrent: Torrent, peers: readonly { host: string; port: number }[]): void
  /** Called when the torrent learns its metadata (magnet start) so the session can index it. */
  onMetadata(torrent: Torrent): void
  /** A DHT node learned from a peer's BEP5 `port` message. */
  addDhtNode?(host: string, port: number): void
  now(): number
}

export interface TorrentInit {
  /** Known metainfo (.torrent), or undefined for a magnet start. */
  readonly metainfo?: Metainfo
  /** For a magnet start: the expected info hashes. */
  readonly infoHashV1?: Uint8Array
  readonly infoHashV2?: Uint8Array
  readonly name?: string
  readonly store: PieceStore
  readonly host: TorrentHost
  /** Upload slots for the choker. @default 4 */
  readonly uploadSlots?: number
  readonly maxPeers?: number
  readonly sequential?: boolean
  /** Start paused. */
  readonly paused?: boolean
  /** Max queued incoming requests per peer before we reject (BEP6) or drop. @default 500 */
  readonly maxIncomingRequests?: number
  /** Hash failures a peer may contribute to before it is banned. @default 2 */
  readonly banAfterHashFailures?: number
  readonly requestTimeoutMs?: number
}

export interface TorrentStatusSnapshot {
  readonly id: string
  readonly name: string
  readonly state: TorrentState
  readonly infoHashV1?: string
  readonly infoHashV2?: string
  readonly progress: number
  readonly piecesHave: number
  readonly pieceCount: number
  readonly downloadRate: number
  readonly uploadRate: number
  readonly downloaded: number
  readonly uploaded: number
  readonly peers: number
  readonly seeds: number
  readonly error?: string
}

interface Waiter {
  resolve(): void
  reject(e: Error): void
}

const TICK_MS = 1000
const CHOKE_EVERY_TICKS = 10

export class TorrentError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'TorrentError'
    this.code = code
  }
}

export class Torrent {
  readonly host: TorrentHost
  readonly log: EngineLogger
  readonly stats = new TorrentStats()
  readonly infoHashV1: Uint8Array | undefined
  readonly infoHashV2: Uint8Array | undefined
  readonly #init: TorrentInit
  readonly #abort = new AbortController()
  readonly peers = new Map<string, Peer>()
  readonly #banned = new Set<string>()
  readonly #knownPeers = new Map<string, { host: string; port: number }>()
  readonly #completeWaiters: Waiter[] = []
  readonly #metadataWaiters: Waiter[] = []
  readonly ext: TorrentExtensions

  #state: TorrentState
  #error: string | undefined
  #metainfo: Metainfo | undefined
  #info: TorrentInfo | undefined
  #geometry: PieceGeometry | undefined
  #storage: StorageFacade | undefined
  #picker: PiecePicker<Peer> | undefined
  #verifier: PieceVerifier | undefined
  #have: Bitfield | undefined
  #timer: NodeJS.Timeout | undefined
  #ticks = 0
  #verifying = new Set<number>()
  /** Pieces fully received whose v2 layer is not known yet (v2-only magnet start). */
  readonly #awaitingLayer = new Set<number>()
  #inFlight = new Set<Promise<unknown>>()
  #optimistic: Peer | undefined
  #started = false

  constructor(init: TorrentInit) {
    this.#init = init
    this.host = init.host
    this.#metainfo = init.metainfo
    this.infoHashV1 = init.metainfo?.info.infoHashV1 ?? init.infoHashV1
    this.infoHashV2 = init.metainfo?.info.infoHashV2 ?? init.infoHashV2
    if (!this.infoHashV1 && !this.infoHashV2)
      throw new TorrentError('GW_ERR_TORRENT_ARGUMENT', 'no info hash')
    this.log = init.host.logger.child({ torrent: this.id })
    this.#state = init.metainfo ? 'checking' : 'metadata'
    this.ext = createExtensions(this)
  }

  // ------------------------------------------------------------------ identity and status

  /** The torrent's id: hex v1 info hash, else hex v2 info hash. */
  get id(): string {
    return toHex(this.infoHashV1 ?? this.infoHashV2!)
  }

  /** The 20-byte swarm ids this torrent answers to (v1 hash, truncated v2 hash). */
  swarmIds(): { protocol: 'v1' | 'v2'; infoHash: Uint8Array }[] {
    const out: { protocol: 'v1' | 'v2'; infoHash: Uint8Array }[] = []
    if (this.infoHashV1) out.push({ protocol: 'v1', infoHash: this.infoHashV1 })
    if (this.infoHashV2) out.push({ protocol: 'v2', infoHash: this.infoHashV2.subarray(0, 20) })
    return out
  }

  get state(): TorrentState {
    return this.#state
  }

  get info(): TorrentInfo | undefined {
    return this.#info ?? this.#metainfo?.info
  }

  get metainfo(): Metainfo | undefined {
    return this.#metainfo
  }

  get name(): string {
    return this.info?.name ?? this.#init.name ?? this.id
  }

  get signal(): AbortSignal {
    return this.#abort.signal
  }

  get verifier(): PieceVerifier | undefined {
    return this.#verifier
  }

  get storage(): StorageFacade | undefined {
    return this.#storage
  }

  get haveBitfield(): Bitfield | undefined {
    return this.#have
  }

  get isComplete(): boolean {
    return this.#have?.complete === true
  }

  get running(): boolean {
    return (
      this.#started && this.#state !== 'stopped' && this.#state !== 'error' && !this.#abort.signal.aborted
    )
  }

  /** Whether this torrent accepts new peers now. */
  acceptsPeers(): boolean {
    return this.running && this.#state !== 'paused' && this.#state !== 'checking'
  }

  isBanned(host: string, port: number, peerId?: Uint8Array): boolean {
    return this.#banned.has(`${host}:${port}`) || (peerId !== undefined && this.#banned.has(toHex(peerId)))
  }

  status(): TorrentStatusSnapshot {
    const info = this.info
    let down = 0
    let up = 0
    let seeds = 0
    for (const p of this.peers.values()) {
      down += p.down.rate
      up += p.up.rate
      if (info && p.isSeed(info.pieceCount)) seeds++
    }
    const pieceCount = info?.pieceCount ?? 0
    const have = this.#have?.count ?? 0
    return {
      id: this.id,
      name: this.name,
      state: this.#state,
      ...(this.infoHashV1 ? { infoHashV1: toHex(this.infoHashV1) } : {}),
      ...(this.infoHashV2 ? { infoHashV2: toHex(this.infoHashV2) } : {}),
      progress: pieceCount === 0 ? (info ? 1 : 0) : have / pieceCount,
      piecesHave: have,
      pieceCount,
      downloadRate: down,
      uploadRate: up,
      downloaded: this.stats.downloadedBytes,
      uploaded: this.stats.uploadedBytes,
      peers: this.peers.size,
      seeds,
      ...(this.#error ? { error: this.#error } : {}),
    }
  }

  // ------------------------------------------------------------------ lifecycle

  /** Opens storage (resuming what it has) and starts the peer machinery. */
  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    this.#timer = setInterval(() => this.#tick(), TICK_MS)
    this.#timer.unref?.()
    if (this.#metainfo) {
      await this.#setup(this.#metainfo.info, this.#metainfo.pieceLayers)
    }
  }

  /** Resolves when every piece is verified; rejects if the torrent stops or fails first. */
  whenComplete(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.isComplete) return Promise.resolve()
    return this.#wait(this.#completeWaiters, options.signal)
  }

  /** Resolves when the metadata is known (immediately for .torrent starts). */
  whenMetadata(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#info) return Promise.resolve()
    return this.#wait(this.#metadataWaiters, options.signal)
  }

  #wait(list: Waiter[], signal: AbortSignal | undefined): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'error') {
      return Promise.reject(new TorrentError('GW_ERR_TORRENT_STOPPED', this.#error ?? 'torrent stopped'))
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = list.indexOf(w)
        if (i >= 0) list.splice(i, 1)
        reject(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'))
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
      list.push(w)
    })
  }

  #settle(list: Waiter[], error?: Error): void {
    const ws = list.splice(0)
    for (const w of ws) error ? w.reject(error) : w.resolve()
  }

  pause(): void {
    if (!this.running || this.#state === 'paused') return
    this.#stateBeforePause = this.#state
    this.#state = 'paused'
    for (const p of [...this.peers.values()]) p.wire.close('torrent paused')
  }

  #stateBeforePause: TorrentState = 'downloading'

  resume(): void {
    if (this.#state !== 'paused') return
    this.#state = this.#info ? (this.isComplete ? 'seeding' : 'downloading') : 'metadata'
    void this.#stateBeforePause
    this.host.dial(this, [...this.#knownPeers.values()])
  }

  /** Graceful stop: disconnects peers, waits for storage work in flight, closes storage. */
  async stop(reason = 'stopped'): Promise<void> {
    if (this.#state === 'stopped') return
    const wasError = this.#state === 'error'
    if (!wasError) this.#state = 'stopped'
    if (this.#timer) clearInterval(this.#timer)
    this.#abort.abort(new TorrentError('GW_ERR_TORRENT_STOPPED', reason))
    for (const p of [...this.peers.values()]) p.wire.close(reason)
    await Promise.allSettled([...this.#inFlight])
    await this.#storage?.close().catch((e: unknown) => this.log.warn({ err: e }, 'storage close failed'))
    const err = new TorrentError('GW_ERR_TORRENT_STOPPED', this.#error ?? reason)
    this.#settle(this.#completeWaiters, err)
    this.#settle(this.#metadataWaiters, err)
  }

  #fail(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error)
    if (this.#state === 'stopped') return
    this.log.error({ err: error }, 'torrent failed')
    this.#error = message
    this.#state = 'error'
    void this.stop(message)
  }

  /** Runs a tracked async task: stop() waits for it; its failure fails the torrent. */
  track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p)
    p.finally(() => this.#inFlight.delete(p)).catch(() => {})
    return p
  }

  // ------------------------------------------------------------------ metadata

  /** Called by the metadata extension with a verified info dict (magnet start). */
  async onMetadata(info: TorrentInfo): Promise<void> {
    if (this.#info || !this.running) return
    this.#metainfo = { info, announce: [], urlList: [], pieceLayers: new Map() }
    await this.#setup(info, new Map())
    this.host.onMetadata(this)
    // BEP52: ask for the piece layers now, while the peers that sent the metadata are connected
    // (a hybrid download may otherwise finish on v1 hashes alone and never learn them).
    if (this.running) this.ext.requestMissingLayers()
  }

  /** Replaces the metainfo's outer parts (e.g. trackers from a magnet) once the info is known. */
  setMetainfo(m: Metainfo): void {
    this.#metainfo = m
  }

  async #setup(info: TorrentInfo, layers: ReadonlyMap<string, Uint8Array>): Promise<void> {
    try {
      this.#state = 'checking'
      const geometry = new PieceGeometry(info)
      this.#geometry = geometry
      this.#verifier = new PieceVerifier(info, geometry, layers)
      const inner = await this.#init.store.openTorrent(info, { signal: this.signal })
      const storage = new StorageFacade(inner, geometry)
      this.#storage = storage
      let have = await storage.completionBitfield({ signal: this.signal })
      if (!have && storage.canRecheck) {
        const verifier = this.#verifier
        have = await storage.recheck((piece, hashes) => verifier.verify(piece, hashes) === 'ok', {
          signal: this.signal,
          want: { v1: verifier.hasV1, v2: verifier.hasV2 && !verifier.hasV1 },
        })
      }
      if (!this.running) return
      this.#have = have ?? new Bitfield(info.pieceCount)
      this.#picker = new PiecePicker<Peer>({
        geometry,
        have: this.#have,
        ...(this.#init.sequential !== undefined ? { sequential: this.#init.sequential } : {}),
      })
      this.#info = info
      this.#state = this.#init.paused ? 'paused' : this.#have.complete ? 'seeding' : 'downloading'
      this.log.info({ have: this.#have.count, pieces: info.pieceCount, state: this.#state }, 'torrent ready')
      this.#settle(this.#metadataWaiters)
      if (this.#have.complete) this.#settle(this.#completeWaiters)
      // Peers that connected while we had no metadata (magnet) or were checking.
      for (const p of this.peers.values()) this.#afterMetadataForPeer(p)
    } catch (e) {
      if (this.running) this.#fail(e)
    }
  }

  // ------------------------------------------------------------------ peers

  /** Remembers peer addresses (from trackers, DHT, PEX, the user) and asks the session to dial. */
  addPeers(peers: readonly { host: string; port: number }[]): void {
    const fresh: { host: string; port: number }[] = []
    for (const p of peers) {
      const k = `${p.host}:${p.port}`
      if (this.#banned.has(k) || this.#knownPeers.has(k)) continue
      if (this.#knownPeers.size >= 2000) break
      this.#knownPeers.set(k, p)
      fresh.push(p)
    }
    if (fresh.length > 0 && this.acceptsPeers()) this.host.dial(this, fresh)
  }

  knownPeers(): { host: string; port: number }[] {
    return [...this.#knownPeers.values()]
  }

  get maxPeers(): number {
    return this.#init.maxPeers ?? 50
  }

  /**
   * Hands a connection (after the handshake) to the torrent. Returns the handlers the session
   * must call for each message and on close, or undefined if the torrent refused the peer.
   */
  attachPeer(
    info: PeerInfo,
    wire: PeerWire,
  ): { onMessage(msg: WireMessage): void; onClose(reason: string): void } | undefined {
    if (!this.acceptsPeers() && this.#state !== 'metadata') return undefined
    if (this.isBanned(info.host, info.port, info.peerId)) return undefined
    if (this.peers.size >= this.maxPeers) return undefined
    const peer = new Peer(info, wire, this.host.now())
    if (this.peers.has(peer.key)) return undefined
    this.peers.set(peer.key, peer)
    this.stats.peerConnected()
    if (!info.incoming) this.#knownPeers.set(peer.key, { host: info.host, port: info.port })
    this.log.debug({ peer: peer.key, incoming: info.incoming, swarm: info.swarm }, 'peer attached')
    if (info.extended) this.ext.sendHandshake(peer)
    if (this.#info) this.#sendHaveState(peer)
    else if (info.fast) peer.send({ type: 'have-none' })
    return {
      onMessage: (msg) => {
        try {
          this.#onMessage(peer, msg)
        } catch (e) {
          this.log.debug({ err: e, peer: peer.key }, 'peer message handling failed')
          this.closePeer(peer, `internal error: ${e instanceof Error ? e.message : String(e)}`)
        }
      },
      onClose: (reason) => this.#onPeerClosed(peer, reason),
    }
  }

  #sendHaveState(peer: Peer): void {
    const have = this.#have!
    if (peer.info.fast && have.complete) peer.send({ type: 'have-all' })
    else if (peer.info.fast && have.empty) peer.send({ type: 'have-none' })
    else if (!have.empty) peer.send({ type: 'bitfield', bitfield: have.toBytes() })
  }

  #afterMetadataForPeer(peer: Peer): void {
    const info = this.#info!
    if (peer.pendingBitfield) {
      try {
        peer.have = Bitfield.fromBytes(peer.pendingBitfield, info.pieceCount)
      } catch {
        this.closePeer(peer, 'bad bitfield')
        return
      }
      peer.pendingBitfield = undefined
    }
    if (peer.have instanceof Bitfield && peer.have.size !== info.pieceCount) {
      // `have` messages received before metadata were recorded against a guessed size.
      peer.have = undefined
    }
    const picker = this.#picker!
    if (peer.have === 'all') picker.onPeerHaveAll()
    else if (peer.have) picker.onPeerBitfield(peer.have)
    // Our own state: a magnet start told the peer have-none; updates come as `have` messages.
    this.#updateInterest(peer)
  }

  closePeer(peer: Peer, reason: string): void {
    peer.wire.close(reason)
  }

  ban(peer: Peer, reason: string): void {
    if (this.#banned.has(peer.key)) {
      this.closePeer(peer, `banned: ${reason}`)
      return
    }
    this.log.info({ peer: peer.key, reason }, 'peer banned')
    this.stats.peerBanned()
    this.#banned.add(peer.key)
    this.#banned.add(toHex(peer.info.peerId))
    const dial = peer.dialAddress()
    if (dial) {
      this.#banned.add(`${dial.host}:${dial.port}`)
      this.#knownPeers.delete(`${dial.host}:${dial.port}`)
    }
    this.closePeer(peer, `banned: ${reason}`)
  }

  #onPeerClosed(peer: Peer, reason: string): void {
    if (peer.closed) return
    peer.closed = true
    this.peers.delete(peer.key)
    this.stats.peerDisconnected()
    this.log.debug({ peer: peer.key, reason }, 'peer closed')
    if (this.#picker) {
      this.#picker.onPeerDisconnected(
        peer,
        peer.have,
        [...peer.outstanding.values()].map((o) => o.block),
      )
    }
    peer.outstanding.clear()
    peer.incoming.length = 0
    if (this.#optimistic === peer) this.#optimistic = undefined
    this.ext.onPeerClosed(peer)
    if (this.running) this.#fillAll()
  }

  // ------------------------------------------------------------------ messages

  #violation(peer: Peer, reason: string): undefined {
    this.stats.protocolViolation()
    this.closePeer(peer, `protocol violation: ${reason}`)
  }

  #onMessage(peer: Peer, msg: WireMessage): undefined {
    if (peer.closed) return
    const first = !peer.sawFirstMessage
    if (msg.type !== 'keep-alive' && msg.type !== 'extended' && msg.type !== 'port')
      peer.sawFirstMessage = true
    const info = this.#info
    switch (msg.type) {
      case 'keep-alive':
        return
      case 'choke':
        peer.peerChoking = true
        if (!peer.info.fast) this.#dropOutstanding(peer) // BEP3: pending requests are discarded
        return
      case 'unchoke':
        peer.peerChoking = false
        this.#fill(peer)
        return
      case 'interested':
        peer.peerInterested = true
        this.#maybeQuickUnchoke(peer)
        return
      case 'not-interested':
        peer.peerInterested = false
        return
      case 'have': {
        if (info) {
          if (msg.index >= info.pieceCount)
            return this.#violation(peer, `have index ${msg.index} out of range`)
          const have = ensureBitfield(peer, info.pieceCount)
          if (have !== 'all' && have.set(msg.index)) this.#picker?.onPeerHave(msg.index)
          this.#updateInterest(peer)
        } else {
          // Magnet start: remember until we know the piece count.
          if (msg.index > 10_000_000) return this.#violation(peer, 'have index out of range')
          if (!peer.pendingHaves) peer.pendingHaves = []
          if (peer.pendingHaves.length < 100_000) peer.pendingHaves.push(msg.index)
        }
        return
      }
      case 'bitfield': {
        if (!first) return this.#violation(peer, 'bitfield after other messages (BEP3)')
        if (!info) {
          if (msg.bitfield.byteLength > 4 * 1024 * 1024) return this.#violation(peer, 'bitfield too large')
          peer.pendingBitfield = new Uint8Array(msg.bitfield)
          return
        }
        try {
          peer.have = Bitfield.fromBytes(msg.bitfield, info.pieceCount)
        } catch (e) {
          return this.#violation(peer, e instanceof Error ? e.message : 'bad bitfield')
        }
        this.#picker?.onPeerBitfield(peer.have)
        this.#updateInterest(peer)
        return
      }
      case 'have-all':
      case 'have-none':
        if (!peer.info.fast) return this.#violation(peer, `${msg.type} without the Fast extension (BEP6)`)
        if (!first) return this.#violation(peer, `${msg.type} after other messages (BEP6)`)
        if (msg.type === 'have-all') {
          peer.have = 'all'
          this.#picker?.onPeerHaveAll()
        } else if (info) {
          peer.have = new Bitfield(info.pieceCount)
        }
        if (info) this.#updateInterest(peer)
        return
      case 'request':
        this.#onRequest(peer, msg.index, msg.begin, msg.length)
        return
      case 'cancel': {
        const i = peer.incoming.findIndex(
          (r) => r.piece === msg.index && r.offset === msg.begin && r.length === msg.length,
        )
        if (i >= 0) peer.incoming.splice(i, 1)
        return
      }
      case 'piece':
        this.#onPiece(peer, msg.index, msg.begin, msg.block)
        return
      case 'reject': {
        if (!peer.info.fast) return this.#violation(peer, 'reject without the Fast extension (BEP6)')
        const k = blockKey(msg.index, msg.begin)
        const o = peer.outstanding.get(k)
        if (!o) return // BEP6: a reject for a request we did not send is an error, but tolerate stale ones
        peer.outstanding.delete(k)
        this.#picker?.onRequestRejected(peer, o.block)
        this.#fill(peer)
        return
      }
      case 'allowed-fast':
        if (!peer.info.fast) return this.#violation(peer, 'allowed fast without the Fast extension (BEP6)')
        if (peer.allowedFast.size < 64) peer.allowedFast.add(msg.index)
        if (info) this.#fill(peer)
        return
      case 'suggest':
        return // BEP6: advisory only
      case 'port':
        if (msg.port > 0) this.host.addDhtNode?.(peer.info.host, msg.port)
        return
      case 'extended':
        this.ext.onExtended(peer, msg.id, msg.payload)
        return
      case 'hash-request':
      case 'hashes':
      case 'hash-reject':
        this.ext.onHashMessage(peer, msg)
        return
      case 'unknown':
        return
    }
  }

  // ------------------------------------------------------------------ downloading

  #updateInterest(peer: Peer): void {
    const info = this.#info
    const picker = this.#picker
    if (!info || !picker || peer.have === undefined) return
    let interested = false
    if (!this.isComplete) {
      if (peer.have === 'all') interested = true
      else {
        for (const i of peer.have.setIndices()) {
          if (!picker.hasPiece(i) && picker.priority(i) > 0) {
            interested = true
            break
          }
        }
      }
    }
    if (interested !== peer.amInterested) {
      peer.amInterested = interested
      peer.send({ type: interested ? 'interested' : 'not-interested' })
    }
    if (interested) this.#fill(peer)
  }

  #dropOutstanding(peer: Peer): void {
    for (const o of peer.outstanding.values()) this.#picker?.onRequestRejected(peer, o.block)
    peer.outstanding.clear()
  }

  /** Target request queue depth for a peer (libtorrent-style: rate × latency target / block). */
  #queueDepth(peer: Peer): number {
    const target = Math.ceil((peer.down.rate * 3) / BLOCK_SIZE)
    return Math.max(4, Math.min(peer.reqq, 500, Math.max(target, 16)))
  }

  #fillAll(): void {
    for (const p of this.peers.values()) this.#fill(p)
  }

  #fill(peer: Peer): void {
    const picker = this.#picker
    const storage = this.#storage
    if (!picker || !storage || peer.closed || !this.acceptsPeers() || this.isComplete) return
    if (!peer.amInterested || peer.have === undefined) return
    if (storage.needsDrain) {
      this.#waitDrain()
      return
    }
    const depth = this.#queueDepth(peer)
    const want = depth - peer.outstanding.size
    // Top the queue up in batches (a quarter of its depth) rather than one request per block
    // received: fewer, larger writes.
    if (want <= 0 || (want < depth / 4 && peer.outstanding.size > 0)) return
    let have = peer.pickerHave()!
    if (peer.peerChoking) {
      // BEP6: allowed-fast pieces may be requested while choked.
      if (peer.allowedFast.size === 0) return
      const bf = new Bitfield(this.#info!.pieceCount)
      for (const i of peer.allowedFast) if (peer.hasPiece(i) && i < bf.size) bf.set(i)
      have = bf
    }
    const reqs = picker.pick(peer, have, want)
    const now = this.host.now()
    for (const r of reqs) {
      peer.outstanding.set(blockKey(r.piece, r.offset), { block: r, sentAt: now })
      peer.send({ type: 'request', index: r.piece, begin: r.offset, length: r.length })
    }
  }

  #drainWaiting = false
  #waitDrain(): void {
    if (this.#drainWaiting || !this.#storage) return
    this.#drainWaiting = true
    this.stats.backpressure()
    this.track(
      this.#storage
        .onDrain({ signal: this.signal })
        .then(() => {
          this.#drainWaiting = false
          if (this.running) this.#fillAll()
        })
        .catch(() => {
          this.#drainWaiting = false
        }),
    )
  }

  #onPiece(peer: Peer, index: number, begin: number, block: Uint8Array): undefined {
    const picker = this.#picker
    const storage = this.#storage
    const info = this.#info
    if (!picker || !storage || !info) return this.#violation(peer, 'piece before metadata')
    const k = blockKey(index, begin)
    const o = peer.outstanding.get(k)
    if (!o || o.block.length !== block.byteLength) {
      // Unrequested data (or a late answer after a timeout). Count it; too much is hostile.
      peer.unrequested++
      this.stats.wastedBytes(block.byteLength)
      if (peer.unrequested > 50) this.#violation(peer, 'too many unrequested blocks')
      return
    }
    peer.outstanding.delete(k)
    peer.down.add(block.byteLength)
    peer.lastBlockAt = this.host.now()
    peer.snubbed = false
    this.stats.downloaded(block.byteLength)
    const r = picker.onBlockReceived(peer, o.block)
    for (const other of r.cancel) {
      if (other === peer) continue
      if (other.outstanding.delete(k)) other.send({ type: 'cancel', index, begin, length: block.byteLength })
    }
    if (r.status !== 'accepted') {
      this.stats.wastedBytes(block.byteLength)
      this.#fill(peer)
      return
    }
    const data = block // PeerConnection hands ownership of the frame to us
    this.track(
      (async () => {
        await this.host.takeDownload(data.byteLength, this.signal)
        await storage.writeBlock(index, begin, data, { signal: this.signal })
        if (r.pieceComplete) await this.#verifyPiece(index)
      })().catch((e: unknown) => {
        if (!this.running) return
        this.log.warn({ err: e, piece: index }, 'storing a block failed')
        this.stats.storageError()
        picker.onPieceFailed(index)
        void storage.discardPiece(index).catch(() => {})
      }),
    )
    this.#fill(peer)
  }

  async #verifyPiece(piece: number): Promise<void> {
    const storage = this.#storage!
    const verifier = this.#verifier!
    if (this.#verifying.has(piece)) return
    this.#verifying.add(piece)
    try {
      const want = verifier.want(piece)
      let hashes = await storage.hashPiece(piece, want, { signal: this.signal })
      if (!this.running) return
      if (verifier.want(piece).v2 && !want.v2) {
        // The piece layer arrived while we hashed (magnet start of a v2 torrent): hash again with leaves.
        hashes = await storage.hashPiece(piece, verifier.want(piece), { signal: this.signal })
        if (!this.running) return
      }
      const outcome = verifier.verify(piece, hashes)
      if (outcome === 'unknown') {
        this.#awaitingLayer.add(piece)
        this.ext.requestMissingLayers()
        return
      }
      if (outcome === 'ok') {
        await storage.commitPiece(piece, { signal: this.signal })
        if (!this.running) return
        this.#onPieceVerified(piece)
      } else {
        await storage.discardPiece(piece, { signal: this.signal })
        this.#onPieceFailed(piece)
      }
    } finally {
      this.#verifying.delete(piece)
    }
  }

  /** Re-verifies pieces that were waiting for a v2 piece layer (called when a layer arrives). */
  recheckAwaitingLayer(): void {
    for (const piece of [...this.#awaitingLayer]) {
      this.#awaitingLayer.delete(piece)
      this.track(
        this.#verifyPiece(piece).catch((e: unknown) => this.log.warn({ err: e, piece }, 'verify failed')),
      )
    }
  }

  #onPieceVerified(piece: number): void {
    const picker = this.#picker!
    picker.onPieceVerified(piece)
    this.#have!.set(piece)
    this.stats.pieceVerified()
    for (const p of this.peers.values()) {
      if (!p.hasPiece(piece)) p.send({ type: 'have', index: piece })
      else if (p.have === 'all' || (p.have instanceof Bitfield && p.have.count === p.have.size)) {
        // nothing
      }
    }
    if (this.#have!.complete) this.#onComplete()
  }

  #onPieceFailed(piece: number): void {
    const picker = this.#picker!
    const contributors = picker.onPieceFailed(piece)
    this.stats.pieceFailed()
    this.log.info({ piece, contributors: contributors.map((p) => p.key) }, 'piece failed its hash check')
    const unique = new Set(contributors)
    if ([...unique].some((p) => this.#banned.has(p.key))) {
      // A peer banned meanwhile poisoned this piece (blocks it sent before the ban): blame nobody else.
      this.#fillAll()
      return
    }
    const limit = this.#init.banAfterHashFailures ?? 2
    for (const p of unique) {
      p.hashFailures++
      // A peer that alone supplied a bad piece, or keeps contributing to bad pieces, is banned.
      if (unique.size === 1 || p.hashFailures >= limit)
        this.ban(p, `sent data failing the hash check (${p.hashFailures})`)
    }
    this.#fillAll()
  }

  #onComplete(): void {
    if (this.#state === 'downloading') this.#state = 'seeding'
    this.log.info({ pieces: this.#info!.pieceCount }, 'download complete')
    for (const p of this.peers.values()) {
      if (p.amInterested) {
        p.amInterested = false
        p.send({ type: 'not-interested' })
      }
      // Two seeds have nothing to exchange.
      if (p.isSeed(this.#info!.pieceCount)) this.closePeer(p, 'both seeds')
    }
    this.#settle(this.#completeWaiters)
    for (const h of this.onCompleteHooks) h()
  }

  /** Hooks run once when the download completes (e.g. the announcer's `completed` event). */
  readonly onCompleteHooks: (() => void)[] = []

  // ------------------------------------------------------------------ uploading

  #onRequest(peer: Peer, piece: number, begin: number, length: number): undefined {
    const info = this.#info
    if (!info || !this.#have) return this.#violation(peer, 'request before metadata')
    if (piece >= info.pieceCount || length === 0 || length > BLOCK_SIZE || begin < 0) {
      return this.#violation(peer, `invalid request ${piece}/${begin}/${length}`)
    }
    const size = this.#geometry!.pieceSize(piece)
    if (begin + length > size) return this.#violation(peer, 'request past the end of the piece')
    const max = this.#init.maxIncomingRequests ?? 500
    const reject = (): undefined => {
      // A peer that keeps asking for what we refuse (choked, missing piece, full queue) floods us:
      // close it past `max` refusals since our last unchoke (libtorrent: too many requests when choked).
      if (++peer.requestFlood > max) return this.#violation(peer, 'request flood')
      if (peer.info.fast) peer.send({ type: 'reject', index: piece, begin, length })
    }
    if (!this.#have.has(piece)) {
      // BEP6: reject requests for pieces we do not have; without Fast, close (BEP3 gives no way).
      if (peer.info.fast) return reject()
      return this.#violation(peer, 'request for a piece we do not have')
    }
    if (peer.amChoking && !peer.allowedFastSent.has(piece)) return reject() // BEP6: rejected while choked
    if (peer.incoming.length >= max) return reject()
    peer.incoming.push({ piece, offset: begin, length })
    this.#pumpUploads(peer)
  }

  #pumpUploads(peer: Peer): void {
    if (peer.uploading) return
    peer.uploading = true
    this.track(
      (async () => {
        try {
          while (!peer.closed && this.running && peer.incoming.length > 0) {
            if (peer.amChoking && !peer.info.fast) {
              peer.incoming.length = 0 // BEP3: choking discards their requests
              break
            }
            const r = peer.incoming.shift()!
            await this.host.takeUpload(r.length, this.signal)
            const data = await this.#storage!.readBlock(r.piece, r.offset, r.length, { signal: this.signal })
            if (peer.closed) break
            this.stats.uploaded(r.length)
            peer.up.add(r.length)
            if (!peer.send({ type: 'piece', index: r.piece, begin: r.offset, block: data })) {
              await peer.wire.onDrain({ signal: this.signal })
            }
          }
        } catch (e) {
          if (this.running && !peer.closed) {
            this.log.warn({ err: e, peer: peer.key }, 'serving a request failed')
            this.stats.storageError()
            this.closePeer(peer, 'could not serve a request')
          }
        } finally {
          peer.uploading = false
        }
      })(),
    )
  }

  #unchoke(peer: Peer): void {
    if (!peer.amChoking) return
    peer.amChoking = false
    peer.requestFlood = 0
    peer.send({ type: 'unchoke' })
  }

  #choke(peer: Peer): void {
    if (peer.amChoking) return
    peer.amChoking = true
    peer.send({ type: 'choke' })
    if (peer.info.fast) {
      // BEP6: with Fast, choking does not discard requests silently: reject them.
      for (const r of peer.incoming.splice(0))
        peer.send({ type: 'reject', index: r.piece, begin: r.offset, length: r.length })
    } else peer.incoming.length = 0
  }

  #uploadSlots(): number {
    return this.#init.uploadSlots ?? 4
  }

  #maybeQuickUnchoke(peer: Peer): void {
    if (!this.#info || !peer.amChoking) return
    let unchoked = 0
    for (const p of this.peers.values()) if (!p.amChoking) unchoked++
    if (unchoked < this.#uploadSlots() + 1) this.#unchoke(peer)
  }

  /**
   * BEP3 choking: every 10 s unchoke the best `slots` interested peers by rate (download rate
   * from them while leeching, upload rate to them while seeding), plus one optimistic unchoke
   * rotated every 30 s, preferring newly connected peers.
   */
  #chokeRound(): void {
    if (!this.#info) return
    const seeding = this.isComplete
    const interested = [...this.peers.values()].filter((p) => p.peerInterested && !p.closed)
    const rank = (p: Peer): number => (seeding ? p.up.rate : p.down.rate) - (p.snubbed ? 1e12 : 0)
    interested.sort((a, b) => rank(b) - rank(a))
    const slots = this.#uploadSlots()
    const unchoke = new Set(interested.slice(0, slots))
    const round = Math.floor(this.#ticks / CHOKE_EVERY_TICKS)
    if (round % 3 === 0 || !this.#optimistic || this.#optimistic.closed) {
      const candidates = interested.filter((p) => !unchoke.has(p))
      if (candidates.length > 0) {
        const now = this.host.now()
        const weights = candidates.map((p) => (now - p.connectedAt < 60_000 ? 3 : 1))
        let pick = Math.random() * weights.reduce((a, b) => a + b, 0)
        let chosen = candidates[0]!
        for (let i = 0; i < candidates.length; i++) {
          pick -= weights[i]!
          if (pick <= 0) {
            chosen = candidates[i]!
            break
          }
        }
        this.#optimistic = chosen
      }
    }
    if (this.#optimistic && !this.#optimistic.closed && this.#optimistic.peerInterested)
      unchoke.add(this.#optimistic)
    for (const p of this.peers.values()) {
      if (unchoke.has(p)) this.#unchoke(p)
      else this.#choke(p)
    }
  }

  // ------------------------------------------------------------------ timers

  #tick(): void {
    if (!this.running) return
    this.#ticks++
    const now = this.host.now()
    const timeout = this.#init.requestTimeoutMs ?? 30_000
    for (const p of this.peers.values()) {
      p.down.tick(TICK_MS / 1000)
      p.up.tick(TICK_MS / 1000)
      if (this.#picker) {
        for (const [k, o] of p.outstanding) {
          if (now - o.sentAt > timeout) {
            p.outstanding.delete(k)
            this.#picker.onRequestTimedOut(p, o.block)
            this.stats.requestTimeout()
          }
        }
        if (p.outstanding.size > 0 && now - p.lastBlockAt > 60_000) p.snubbed = true
      }
    }
    if (this.#ticks % CHOKE_EVERY_TICKS === 1) this.#chokeRound()
    this.ext.tick(now)
    if (this.#state === 'downloading' || this.#state === 'metadata') {
      this.#fillAll()
      if (this.peers.size < Math.min(this.maxPeers, 30) && this.#ticks % 5 === 0) {
        this.host.dial(this, [...this.#knownPeers.values()])
      }
    }
  }
}
