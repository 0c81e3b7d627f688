/**
 * The torrent coordinator: one torrent's lifecycle and state machine, its peers in and out, and
 * the dispatch of their messages.
 *
 * Policy and flows live in sibling modules: `downloads.ts` (interest, requests, verification,
 * trust and smart ban), `uploads.ts` (serving requests, choking via `chokeRound`),
 * `peer-messages.ts` (message dispatch), `known-peers.ts` (addresses and reconnect backoff),
 * `extensions.ts` (BEP9/10/11/52), `piece-layers.ts` (a complete metainfo after the download). I/O goes through the storage
 * facade and the `PeerWire`s handed over by the session after the handshake.
 *
 * Every `await` may interleave with peer events: after each one, state is re-checked (is the torrent
 * still running, is the peer still open, is the piece still wanted) — STYLE.md §7.9 (10).
 */
import { toHex } from '../../protocol/hex.ts'
import type { Metainfo, TorrentInfo } from '../../protocol/types.ts'
import { Bitfield } from '../bitfield.ts'
import type { EngineLogger } from '../logger.ts'
import { PieceGeometry } from '../piece-geometry.ts'
import { PiecePicker } from '../piece-picker.ts'
import { StorageFacade } from '../storage-facade.ts'
import { Downloads } from './downloads.ts'
import { createExtensions, type TorrentExtensions } from './extensions.ts'
import { addrKey, BanList, KnownPeers } from './known-peers.ts'
import { Peer, type PeerInfo, type PeerWire } from './peer.ts'
import { PeerMessages } from './peer-messages.ts'
import { computeMissingLayers, withPieceLayers } from './piece-layers.ts'
import { statusOf, TorrentStats } from './torrent-stats.ts'
import {
  type PeerHandlers,
  TorrentError,
  type TorrentHost,
  type TorrentInit,
  type TorrentState,
  type TorrentStatusSnapshot,
} from './torrent-types.ts'
import { Uploads } from './uploads.ts'
import { PieceVerifier } from './verifier.ts'
import { Waiters } from './waiters.ts'

export {
  type PeerHandlers,
  TorrentError,
  type TorrentHost,
  type TorrentInit,
  type TorrentState,
  type TorrentStatusSnapshot,
} from './torrent-types.ts'

const TICK_MS = 1000
const CHOKE_EVERY_TICKS = 10
const DIAL_EVERY_TICKS = 5

export class Torrent {
  readonly host: TorrentHost
  readonly log: EngineLogger
  readonly stats = new TorrentStats()
  readonly peers = new Map<string, Peer>()
  readonly ext: TorrentExtensions
  /** Hooks run once when the download completes (e.g. the announcer's `completed` event). */
  readonly onCompleteHooks: (() => void)[] = []
  readonly #init: TorrentInit
  readonly #id: string
  readonly #abort = new AbortController()
  readonly #banned = new BanList()
  readonly #known: KnownPeers
  readonly #completeWaiters = new Waiters()
  readonly #metadataWaiters = new Waiters()
  readonly #downloads: Downloads
  readonly #uploads: Uploads
  readonly #messages: PeerMessages
  readonly #inFlight = new Set<Promise<unknown>>()

  #infoHashV1: Uint8Array | undefined
  #infoHashV2: Uint8Array | undefined
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
  #started = false
  /** The download finished and the metainfo is complete (`whenComplete` resolved). */
  #finished = false
  #finishing: Promise<void> | undefined

  constructor(init: TorrentInit) {
    this.#init = init
    this.host = init.host
    this.#metainfo = init.metainfo
    this.#infoHashV1 = init.metainfo?.info.infoHashV1 ?? init.infoHashV1
    this.#infoHashV2 = init.metainfo?.info.infoHashV2 ?? init.infoHashV2
    const first = this.#infoHashV1 ?? this.#infoHashV2
    if (!first) throw new TorrentError('GW_ERR_TORRENT_ARGUMENT', 'no info hash')
    this.#id = toHex(first)
    this.log = init.host.logger.child({ torrent: this.id })
    this.#state = init.metainfo ? 'checking' : 'metadata'
    this.#known = new KnownPeers({
      ...(init.minReconnectMs !== undefined ? { minReconnectMs: init.minReconnectMs } : {}),
      ...(init.maxKnownPeers !== undefined ? { maxEntries: init.maxKnownPeers } : {}),
    })
    this.#downloads = new Downloads(
      this,
      init.requestTimeoutMs !== undefined ? { requestTimeoutMs: init.requestTimeoutMs } : {},
    )
    this.#uploads = new Uploads(this, {
      ...(init.uploadSlots !== undefined ? { uploadSlots: init.uploadSlots } : {}),
      ...(init.maxIncomingRequests !== undefined ? { maxIncomingRequests: init.maxIncomingRequests } : {}),
      ...(init.random !== undefined ? { random: init.random } : {}),
    })
    this.#messages = new PeerMessages(this, this.#downloads, this.#uploads)
    this.ext = createExtensions(this)
  }

  // ------------------------------------------------------------------ identity and state

  /** The torrent's id, fixed at creation: hex v1 info hash, else hex v2 info hash. */
  get id(): string {
    return this.#id
  }

  /** The v1 info hash (known at start, or adopted from the metadata of a hybrid torrent). */
  get infoHashV1(): Uint8Array | undefined {
    return this.#infoHashV1
  }

  /** The full v2 info hash (known at start, or adopted from the metadata of a hybrid torrent). */
  get infoHashV2(): Uint8Array | undefined {
    return this.#infoHashV2
  }

  /** The 20-byte swarm ids this torrent answers to (v1 hash, truncated v2 hash; BEP52). */
  swarmIds(): { protocol: 'v1' | 'v2'; infoHash: Uint8Array }[] {
    const out: { protocol: 'v1' | 'v2'; infoHash: Uint8Array }[] = []
    if (this.#infoHashV1) out.push({ protocol: 'v1', infoHash: this.#infoHashV1 })
    if (this.#infoHashV2) out.push({ protocol: 'v2', infoHash: this.#infoHashV2.subarray(0, 20) })
    return out
  }

  get state(): TorrentState {
    return this.#state
  }
  get info(): TorrentInfo | undefined {
    return this.#info ?? this.#metainfo?.info
  }
  /** The metainfo; complete (every BEP52 piece layer) once `whenComplete` resolved. */
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
  /** For the torrent's modules. */
  get picker(): PiecePicker<Peer> | undefined {
    return this.#picker
  }
  get geometry(): PieceGeometry | undefined {
    return this.#geometry
  }
  /** Every piece is verified (the metainfo may still be being completed: see `whenComplete`). */
  get isComplete(): boolean {
    return this.#have?.complete === true
  }
  get running(): boolean {
    return (
      this.#started && this.#state !== 'stopped' && this.#state !== 'error' && !this.#abort.signal.aborted
    )
  }
  get maxPeers(): number {
    return this.#init.maxPeers ?? 50
  }
  /** Pending `whenMetadata` + `whenComplete` waiters (diagnostics and tests). */
  get pendingWaiters(): number {
    return this.#metadataWaiters.size + this.#completeWaiters.size
  }

  /** Whether this torrent accepts new peers now. */
  acceptsPeers(): boolean {
    return this.running && this.#state !== 'paused' && this.#state !== 'checking'
  }

  status(): TorrentStatusSnapshot {
    return statusOf(this)
  }

  /** Why the torrent failed (state `error`). */
  get error(): string | undefined {
    return this.#error
  }

  // ------------------------------------------------------------------ lifecycle

  /** Opens storage (resuming what it has) and starts the peer machinery. */
  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    if (!this.#init.manualTicks) {
      this.#timer = setInterval(() => this.tick(), TICK_MS)
      this.#timer.unref?.()
    }
    if (this.#metainfo) await this.#setup(this.#metainfo.info, this.#metainfo.pieceLayers)
  }

  /** Resolves when every piece is verified and the metainfo is complete; rejects if the torrent stops first. */
  whenComplete(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#finished) return Promise.resolve()
    return this.#wait(this.#completeWaiters, options.signal)
  }

  /** Resolves when the metadata is known (immediately for .torrent starts). */
  whenMetadata(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#info) return Promise.resolve()
    return this.#wait(this.#metadataWaiters, options.signal)
  }

  #wait(waiters: Waiters, signal: AbortSignal | undefined): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'error') {
      return Promise.reject(new TorrentError('GW_ERR_TORRENT_STOPPED', this.#error ?? 'torrent stopped'))
    }
    return waiters.wait(signal)
  }

  pause(): void {
    if (!this.running || this.#state === 'paused') return
    this.#state = 'paused'
    for (const p of [...this.peers.values()]) p.wire.close('torrent paused')
  }

  resume(): void {
    if (this.#state !== 'paused') return
    this.#state = this.#info ? (this.isComplete ? 'seeding' : 'downloading') : 'metadata'
    const now = this.host.now()
    this.#known.resetBackoff(now)
    this.host.dial(this, this.#known.takeDue(now, this.maxPeers))
  }

  /** Graceful stop: disconnects peers, waits for storage work in flight, closes storage. */
  async stop(reason = 'stopped'): Promise<void> {
    if (this.#state === 'stopped') return
    if (this.#state !== 'error') this.#state = 'stopped'
    if (this.#timer) clearInterval(this.#timer)
    this.#abort.abort(new TorrentError('GW_ERR_TORRENT_STOPPED', reason))
    for (const p of [...this.peers.values()]) p.wire.close(reason)
    await Promise.allSettled([...this.#inFlight])
    await this.#storage?.close().catch((e: unknown) => this.log.warn({ err: e }, 'storage close failed'))
    const err = new TorrentError('GW_ERR_TORRENT_STOPPED', this.#error ?? reason)
    this.#completeWaiters.rejectAll(err)
    this.#metadataWaiters.rejectAll(err)
  }

  #fail(error: unknown): void {
    if (this.#state === 'stopped') return
    this.log.error({ err: error }, 'torrent failed')
    this.#error = error instanceof Error ? error.message : String(error)
    this.#state = 'error'
    void this.stop(this.#error)
  }

  /** Runs a tracked async task: stop() waits for it. */
  track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p)
    p.finally(() => this.#inFlight.delete(p)).catch(() => {})
    return p
  }

  /** One second of time: rates, request timeouts, choking, extensions, dialling. */
  tick(): void {
    if (!this.running) return
    this.#ticks++
    const now = this.host.now()
    for (const p of this.peers.values()) {
      p.down.tick(TICK_MS / 1000)
      p.up.tick(TICK_MS / 1000)
    }
    this.#downloads.tick(now)
    if (this.#ticks % CHOKE_EVERY_TICKS === 1) this.#uploads.chokeRound(now)
    this.ext.tick(now)
    const dialling = this.#state === 'downloading' || this.#state === 'metadata'
    if (dialling && this.#ticks % DIAL_EVERY_TICKS === 0) {
      const room = Math.min(this.maxPeers, 30) - this.peers.size
      if (room > 0) this.host.dial(this, this.#known.takeDue(now, room))
    }
  }

  // ------------------------------------------------------------------ metadata

  /**
   * Called by the metadata extension with a verified info dict (magnet start). A hybrid found
   * from a magnet naming only one of its hashes adopts the other one and joins that swarm too
   * (the host indexes and announces it, BEP52).
   */
  async onMetadata(info: TorrentInfo): Promise<void> {
    if (this.#info || !this.running) return
    this.#infoHashV1 ??= info.infoHashV1
    this.#infoHashV2 ??= info.infoHashV2
    this.#metainfo = { info, announce: [], urlList: [], pieceLayers: new Map() }
    await this.#setup(info, new Map(), true)
    if (!this.running) return
    // BEP52: ask for the piece layers now, while the peers that sent the metadata are connected.
    this.ext.requestMissingLayers()
  }

  /** Replaces the metainfo's outer parts (e.g. trackers from a magnet) once the info is known. */
  setMetainfo(m: Metainfo): void {
    this.#metainfo = m
  }

  async #setup(info: TorrentInfo, layers: ReadonlyMap<string, Uint8Array>, magnet = false): Promise<void> {
    try {
      this.#state = 'checking'
      const geometry = new PieceGeometry(info)
      this.#geometry = geometry
      const verifier = new PieceVerifier(info, geometry, layers)
      this.#verifier = verifier
      const inner = await this.#init.store.openTorrent(info, { signal: this.signal })
      const storage = new StorageFacade(inner, geometry)
      this.#storage = storage
      let have = await storage.completionBitfield({ signal: this.signal })
      if (!have && storage.canRecheck) {
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
      if (magnet) this.host.onMetadata(this) // indexed (and announced) before anyone hears of it
      this.#metadataWaiters.resolveAll()
      if (this.#have.complete) this.track(this.#finish())
      // Peers that connected while we had no metadata (magnet) or were checking.
      for (const p of this.peers.values()) this.#messages.afterMetadata(p)
    } catch (e) {
      if (this.running) this.#fail(e)
    }
  }

  /** Called by the downloads when the last piece is verified. */
  onPiecesComplete(): void {
    if (this.#state === 'downloading') this.#state = 'seeding'
    this.log.info({ pieces: this.#info!.pieceCount }, 'download complete')
    this.#downloads.notInterestedInAll()
    for (const p of [...this.peers.values()]) {
      if (p.isSeed(this.#info!.pieceCount)) this.closePeer(p, 'both seeds') // nothing to exchange
    }
    this.track(this.#finish())
  }

  /** Completes the metainfo (BEP52 piece layers), then resolves `whenComplete` and runs the hooks. */
  #finish(): Promise<void> {
    this.#finishing ??= this.#completeMetainfo()
    return this.#finishing
  }

  async #completeMetainfo(): Promise<void> {
    const metainfo = this.#metainfo
    const verifier = this.#verifier
    const storage = this.#storage
    if (!metainfo || !verifier || !storage) return
    try {
      const missing = await computeMissingLayers(metainfo, verifier, storage, { signal: this.signal })
      if (missing.length > 0) this.log.warn({ files: missing }, 'piece layers computed locally do not match')
      this.#metainfo = withPieceLayers(this.#metainfo ?? metainfo, verifier)
    } catch (e) {
      if (!this.running) return
      this.log.warn({ err: e }, 'could not complete the piece layers')
    }
    if (!this.running || this.#finished) return
    this.#finished = true
    this.#completeWaiters.resolveAll()
    for (const h of this.onCompleteHooks) h()
  }

  /** Re-verifies pieces that were waiting for a v2 piece layer (called when a layer arrives). */
  recheckAwaitingLayer(): void {
    this.#downloads.recheckAwaitingLayer()
  }

  // ------------------------------------------------------------------ peers

  /** Remembers peer addresses (trackers, DHT, PEX, the user) and asks the session to dial new ones. */
  addPeers(peers: readonly { host: string; port: number }[]): void {
    const now = this.host.now()
    const fresh: { host: string; port: number }[] = []
    for (const p of peers) {
      const k = addrKey(p)
      if (this.#banned.has(k) || !this.#known.add(p, now)) continue
      if (this.acceptsPeers() || this.#state === 'metadata') {
        this.#known.onAttempt(k, now)
        fresh.push(p)
      }
    }
    if (fresh.length > 0) this.host.dial(this, fresh)
  }

  knownPeers(): { host: string; port: number }[] {
    return this.#known.addresses()
  }

  /**
   * Hands a connection (after the handshake) to the torrent. Returns the handlers the session
   * must call for each message and on close, or undefined if the torrent refused the peer.
   */
  attachPeer(info: PeerInfo, wire: PeerWire): PeerHandlers | undefined {
    if (!this.acceptsPeers() && this.#state !== 'metadata') return undefined
    if (this.isBanned(info.host, info.port, info.peerId)) return undefined
    if (this.peers.size >= this.maxPeers) return undefined
    const peer = new Peer(info, wire, this.host.now(), {
      ...(this.#init.snubTimeoutMs !== undefined ? { snubTimeoutMs: this.#init.snubTimeoutMs } : {}),
    })
    if (this.peers.has(peer.key)) return undefined
    this.peers.set(peer.key, peer)
    this.stats.peerConnected()
    if (!info.incoming) this.#known.onConnected({ host: info.host, port: info.port })
    this.log.debug({ peer: peer.key, incoming: info.incoming, swarm: info.swarm }, 'peer attached')
    if (info.extended) this.ext.sendHandshake(peer)
    if (this.#info) this.#messages.sendHaveState(peer)
    else if (info.fast) peer.send({ type: 'have-none' })
    const lifetime = new AbortController()
    peer.lifetime = lifetime
    return {
      onMessage: (msg) => {
        try {
          this.#messages.onMessage(peer, msg)
        } catch (e) {
          this.log.debug({ err: e, peer: peer.key }, 'peer message handling failed')
          this.closePeer(peer, `internal error: ${e instanceof Error ? e.message : String(e)}`)
        }
      },
      onClose: (reason) => this.#onPeerClosed(peer, reason),
      signal: AbortSignal.any([lifetime.signal, this.signal]),
    }
  }

  closePeer(peer: Peer, reason: string): void {
    peer.wire.close(reason)
  }

  /** Closes a peer for breaking the protocol. */
  violation(peer: Peer, reason: string): undefined {
    this.stats.protocolViolation()
    this.closePeer(peer, `protocol violation: ${reason}`)
  }

  isBanned(host: string, port: number, peerId?: Uint8Array): boolean {
    return this.#banned.has(`${host}:${port}`) || (peerId !== undefined && this.#banned.has(toHex(peerId)))
  }

  isBannedPeer(peer: Peer): boolean {
    return this.#banned.has(peer.key) || this.#banned.has(toHex(peer.info.peerId))
  }

  /**
   * Bans a peer: its connection's own address (host:port as connected; for a peer we dialled, the
   * address we dialled, which also leaves the known-peer list) and its peer id. Never the BEP10
   * `p` port: it is unchecked, and naming it would let a peer get another one banned. A peer that
   * comes back with a fresh peer id from a new port is not recognised (accepted limitation).
   */
  ban(peer: Peer, reason: string): void {
    if (!this.isBannedPeer(peer)) {
      this.log.info({ peer: peer.key, reason }, 'peer banned')
      this.stats.peerBanned()
      this.#banned.add(peer.key, toHex(peer.info.peerId))
      if (!peer.info.incoming) this.#known.remove(peer.key)
    }
    this.closePeer(peer, `banned: ${reason}`)
  }

  #onPeerClosed(peer: Peer, reason: string): void {
    if (peer.closed) return
    peer.closed = true
    peer.lifetime?.abort(new TorrentError('GW_ERR_PEER_CLOSED', reason))
    this.peers.delete(peer.key)
    this.stats.peerDisconnected()
    this.log.debug({ peer: peer.key, reason }, 'peer closed')
    this.#downloads.onPeerClosed(peer)
    peer.incoming.length = 0
    if (!peer.info.incoming) this.#known.onDisconnected(peer.key, this.host.now())
    this.ext.onPeerClosed(peer)
    if (this.running) this.#downloads.fillAll()
  }
}
