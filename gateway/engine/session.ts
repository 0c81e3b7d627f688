/**
 * The session: one BitTorrent peer process. It owns the TCP listener (incoming peers), dials
 * outgoing peers within global and per-torrent limits, runs the handshakes (v1, v2 and hybrid
 * swarms: a hybrid torrent answers under both its v1 hash and its truncated v2 hash, BEP52), hands
 * connections to their torrents, and runs discovery (trackers per torrent, one shared DHT node).
 *
 * The session imports nothing from Codex: torrents read and write through the `PieceStore` given
 * to `addTorrent`.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net'
import { toHex } from '../protocol/hex.ts'
import type { Metainfo } from '../protocol/types.ts'
import { frameLimits } from '../protocol/wire/frame-decoder.ts'
import { makePeerId, makeReserved } from '../protocol/wire/handshake.ts'
import type { WireMessage } from '../protocol/wire/messages.ts'
import type { DhtNode } from './discovery/dht.ts'
import { DhtPeerSource } from './discovery/dht-source.ts'
import type { PeerAddress, PeerSource } from './discovery/peer-source.ts'
import { TrackerPeerSource } from './discovery/tracker-source.ts'
import { acquireSharedHashPool, type HashPoolLease } from './hash-pool.ts'
import { type EngineLogger, silentLogger } from './logger.ts'
import { PeerConnection } from './peer/connection.ts'
import { type HandshakeOutcome, performHandshake } from './peer/handshake.ts'
import { RateLimiter } from './rate-limiter.ts'
import type { PieceStore } from './storage.ts'
import type { PeerInfo, PeerWire } from './torrent/peer.ts'
import { Torrent, type TorrentHost } from './torrent/torrent.ts'

export interface SessionInit {
  /** Our peer id (BEP20). @default random `-CB0001-…` */
  readonly peerId?: Uint8Array
  /** Where to accept incoming peers; `false` = no listener. @default 127.0.0.1:0 */
  readonly listen?: { readonly host: string; readonly port: number } | false
  /** Port to advertise when not listening (or behind a mapping). */
  readonly announcePort?: number
  /** @default 200 */
  readonly maxConnections?: number
  /** @default 50 */
  readonly maxConnectionsPerTorrent?: number
  /** @default 4 */
  readonly uploadSlots?: number
  /** bytes/s, 0 = unlimited */
  readonly downloadRateLimit?: number
  readonly uploadRateLimit?: number
  /** A started DHT node shared by all torrents, or undefined for no DHT. */
  readonly dht?: DhtNode
  /** Default trackers added to every torrent (one tier each). */
  readonly defaultTrackers?: readonly string[]
  readonly logger?: EngineLogger
  /** Dial timeout per peer. @default 10 s */
  readonly connectTimeoutMs?: number
  /** Concurrent outgoing dials. @default 16 */
  readonly maxPendingDials?: number
  /** Tracker announce options for tests (e.g. short intervals). */
  readonly trackerOptions?: { readonly defaultIntervalS?: number; readonly minIntervalFloorS?: number }
}

export interface AddTorrentOptions {
  /** A parsed .torrent, or undefined for a magnet / info-hash start. */
  readonly metainfo?: Metainfo
  readonly infoHashV1?: Uint8Array
  /** Full 32-byte v2 info hash (btmh). */
  readonly infoHashV2?: Uint8Array
  readonly name?: string
  readonly store: PieceStore
  /** Extra tracker tiers (BEP12) besides the metainfo's. */
  readonly trackers?: readonly (readonly string[])[]
  /** Peers to dial right away (host:port). */
  readonly peers?: readonly PeerAddress[]
  readonly sequential?: boolean
  readonly paused?: boolean
  /** Use the DHT for this torrent (ignored for private torrents, BEP27). @default true */
  readonly dht?: boolean
}

export class SessionError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'SessionError'
    this.code = code
  }
}

interface TorrentEntry {
  readonly torrent: Torrent
  readonly opts: AddTorrentOptions
  readonly sources: PeerSource[]
  tracker?: TrackerPeerSource
}

export class Session {
  readonly peerId: Uint8Array
  readonly log: EngineLogger
  readonly #init: SessionInit
  readonly #entries = new Map<string, TorrentEntry>()
  /** 20-byte swarm id hex → torrent (v1 hash and truncated v2 hash both map here). */
  readonly #swarms = new Map<string, Torrent>()
  readonly #sockets = new Set<Socket>()
  readonly #dialing = new Set<string>()
  readonly #dialQueue: { torrent: Torrent; peer: PeerAddress }[] = []
  readonly #abort = new AbortController()
  readonly #up: RateLimiter
  readonly #down: RateLimiter
  /** Our hold on the process-wide hash worker pool (`hashPieceData` uses it); released by `stop()`. */
  readonly #hashPool: HashPoolLease
  #server: Server | undefined
  #port = 0
  #connections = 0
  #stopping = false

  constructor(init: SessionInit = {}) {
    this.#init = init
    this.peerId = init.peerId ?? makePeerId()
    this.log = init.logger ?? silentLogger
    this.#up = new RateLimiter({ rateBytesPerSecond: init.uploadRateLimit ?? 0 })
    this.#down = new RateLimiter({ rateBytesPerSecond: init.downloadRateLimit ?? 0 })
    this.#hashPool = acquireSharedHashPool()
  }

  /** The TCP port peers can reach us on. */
  get port(): number {
    return this.#init.announcePort ?? this.#port
  }

  get listening(): boolean {
    return this.#server?.listening ?? false
  }

  get connectionCount(): number {
    return this.#connections
  }

  get dht(): DhtNode | undefined {
    return this.#init.dht
  }

  setRateLimits(limits: { upload?: number; download?: number }): void {
    if (limits.upload !== undefined) this.#up.setRate(limits.upload)
    if (limits.download !== undefined) this.#down.setRate(limits.download)
  }

  async start(): Promise<void> {
    const listen = this.#init.listen ?? { host: '127.0.0.1', port: 0 }
    if (listen === false) return
    const server = createServer({ pauseOnConnect: true }, (socket) => this.#onIncoming(socket))
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(listen.port, listen.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    server.on('error', (e) => this.log.error({ err: e }, 'peer listener error'))
    const addr = server.address()
    this.#port = typeof addr === 'object' && addr ? addr.port : listen.port
    this.log.info({ host: listen.host, port: this.#port }, 'listening for peers')
  }

  /**
   * Graceful stop: stop accepting, stop torrents (waiting for their storage work), close sockets,
   * then release the hash worker pool (terminated when no other session holds it).
   */
  async stop(): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    this.#abort.abort(new SessionError('GW_ERR_SESSION_STOPPED', 'session stopped'))
    const closed = this.#server ? new Promise<void>((r) => this.#server!.close(() => r())) : Promise.resolve()
    await Promise.allSettled([...this.#entries.keys()].map((id) => this.removeTorrent(id)))
    for (const s of this.#sockets) s.destroy()
    this.#up.close()
    this.#down.close()
    await Promise.all([closed, this.#hashPool.release()])
  }

  // ---------------------------------------------------------------- torrents

  torrents(): Torrent[] {
    return [...this.#entries.values()].map((e) => e.torrent)
  }

  /** Finds a torrent by hex v1 info hash, hex v2 info hash (64) or truncated v2 hash (40). */
  getTorrent(id: string): Torrent | undefined {
    const key = id.toLowerCase()
    const e = this.#entries.get(key)
    if (e) return e.torrent
    if (key.length === 64) return this.#swarms.get(key.slice(0, 40))
    return this.#swarms.get(key)
  }

  trackerStats(id: string): ReturnType<TrackerPeerSource['stats']> | undefined {
    const t = this.getTorrent(id)
    return t ? this.#entries.get(t.id)?.tracker?.stats() : undefined
  }

  async addTorrent(opts: AddTorrentOptions): Promise<Torrent> {
    if (this.#stopping) throw new SessionError('GW_ERR_SESSION_STOPPED', 'session is stopping')
    const host = this.#torrentHost()
    const torrent = new Torrent({
      ...(opts.metainfo ? { metainfo: opts.metainfo } : {}),
      ...(opts.infoHashV1 ? { infoHashV1: opts.infoHashV1 } : {}),
      ...(opts.infoHashV2 ? { infoHashV2: opts.infoHashV2 } : {}),
      ...(opts.name ? { name: opts.name } : {}),
      store: opts.store,
      host,
      uploadSlots: this.#init.uploadSlots ?? 4,
      maxPeers: this.#init.maxConnectionsPerTorrent ?? 50,
      ...(opts.sequential !== undefined ? { sequential: opts.sequential } : {}),
      ...(opts.paused !== undefined ? { paused: opts.paused } : {}),
    })
    if (
      this.#entries.has(torrent.id) ||
      torrent.swarmIds().some((s) => this.#swarms.has(toHex(s.infoHash)))
    ) {
      throw new SessionError('GW_ERR_TORRENT_EXISTS', `torrent ${torrent.id} is already in the session`)
    }
    const entry: TorrentEntry = { torrent, opts, sources: [] }
    this.#entries.set(torrent.id, entry)
    this.#indexSwarms(torrent)
    await torrent.start()
    this.#startDiscovery(entry, opts)
    if (opts.peers && opts.peers.length > 0) torrent.addPeers(opts.peers)
    return torrent
  }

  async removeTorrent(id: string): Promise<void> {
    const torrent = this.getTorrent(id)
    if (!torrent) return
    const entry = this.#entries.get(torrent.id)
    this.#entries.delete(torrent.id)
    for (const s of torrent.swarmIds()) this.#swarms.delete(toHex(s.infoHash))
    await Promise.allSettled((entry?.sources ?? []).map((s) => s.stop()))
    await torrent.stop('removed')
  }

  #indexSwarms(torrent: Torrent): void {
    for (const s of torrent.swarmIds()) this.#swarms.set(toHex(s.infoHash), torrent)
  }

  /** Starts trackers and DHT for `hashes` (default: every swarm id of the torrent). */
  #startDiscovery(entry: TorrentEntry, opts: AddTorrentOptions, only?: readonly Uint8Array[]): void {
    const t = entry.torrent
    const onPeers = (peers: readonly PeerAddress[], source: string): void => {
      t.log.debug({ count: peers.length, source }, 'peers discovered')
      t.addPeers(peers)
    }
    const hashes = only ?? t.swarmIds().map((s) => s.infoHash)
    const tiers: string[][] = []
    for (const tier of t.metainfo?.announce ?? []) tiers.push([...tier])
    for (const tier of opts.trackers ?? []) tiers.push([...tier])
    for (const url of this.#init.defaultTrackers ?? []) tiers.push([url])
    if (tiers.length > 0) {
      const tracker = new TrackerPeerSource({
        tiers,
        infoHashes: hashes,
        peerId: this.peerId,
        port: this.port,
        onPeers,
        getTransferTotals: () => {
          const s = t.status()
          const info = t.info
          const left = info
            ? Math.max(0, info.payloadLength - Math.round(s.progress * info.payloadLength))
            : 1
          return { uploaded: s.uploaded, downloaded: s.downloaded, left }
        },
        logger: this.log.child({ component: 'tracker', torrent: t.id }),
        ...(this.#init.trackerOptions ?? {}),
      })
      entry.tracker ??= tracker
      entry.sources.push(tracker)
      t.onCompleteHooks.push(() => tracker.markCompleted())
      tracker.start()
    }
    const isPrivate = t.info?.private ?? false
    if (this.#init.dht && opts.dht !== false && !isPrivate) {
      const dht = new DhtPeerSource({
        dht: this.#init.dht,
        infoHashes: hashes,
        port: this.port,
        onPeers,
        logger: this.log.child({ component: 'dht', torrent: t.id }),
      })
      entry.sources.push(dht)
      dht.start()
    }
  }

  #torrentHost(): TorrentHost {
    const session = this
    return {
      get peerId() {
        return session.peerId
      },
      get listenPort() {
        return session.port
      },
      logger: this.log,
      takeUpload: (n, signal) => this.#up.take(n, { signal }),
      takeDownload: (n, signal) => this.#down.take(n, { signal }),
      dial: (torrent, peers) => this.#enqueueDials(torrent, peers),
      onMetadata: (torrent) => {
        // A hybrid found from a one-hash magnet also joins (and announces) its other swarm (BEP52).
        const fresh = torrent.swarmIds().filter((s) => this.#swarms.get(toHex(s.infoHash)) !== torrent)
        this.#indexSwarms(torrent)
        if (torrent.info?.private) this.#stopDht(torrent)
        const entry = this.#entries.get(torrent.id)
        if (entry && fresh.length > 0)
          this.#startDiscovery(
            entry,
            entry.opts,
            fresh.map((s) => s.infoHash),
          )
      },
      // BEP5 `port` from a peer: a DHT node to ping (bounded in DhtNode.addNode).
      addDhtNode: (host, port) => {
        this.#init.dht?.addNode(host, port)
      },
      now: () => Date.now(),
    }
  }

  /** Our DHT's UDP port, if the session runs a DHT. */
  #dhtPort(): number | undefined {
    try {
      return this.#init.dht?.address.port
    } catch {
      return undefined // not running
    }
  }

  /** BEP27: a magnet start found a private torrent: it must not use the DHT. */
  #stopDht(torrent: Torrent): void {
    const entry = this.#entries.get(torrent.id)
    if (!entry) return
    for (const s of entry.sources.filter((x) => x instanceof DhtPeerSource)) {
      entry.sources.splice(entry.sources.indexOf(s), 1)
      void s.stop()
      torrent.log.info({}, 'private torrent (BEP27): DHT stopped')
    }
  }

  // ---------------------------------------------------------------- connections

  /**
   * Our reserved bits. The BEP52 upgrade bit is set only for torrents with a v2 half: libtorrent
   * drops connections to v1-only torrents that carry it.
   */
  #reserved(v2: boolean): Uint8Array {
    return makeReserved({
      extensionProtocol: true,
      fast: true,
      dht: this.#init.dht !== undefined,
      v2Upgrade: v2,
    })
  }

  #connectionAllowed(): boolean {
    return !this.#stopping && this.#connections < (this.#init.maxConnections ?? 200)
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket)
    this.#connections++
    socket.once('close', () => {
      this.#sockets.delete(socket)
      this.#connections--
      this.#pumpDials()
    })
  }

  #onIncoming(socket: Socket): void {
    if (!this.#connectionAllowed()) {
      socket.destroy()
      return
    }
    this.#track(socket)
    socket.setNoDelay(true)
    const expect = new Set(this.#swarms.keys())
    const upgrade = new Map<string, Uint8Array>()
    for (const t of new Set(this.#swarms.values())) {
      if (t.infoHashV1 && t.infoHashV2) upgrade.set(toHex(t.infoHashV1), t.infoHashV2.subarray(0, 20))
    }
    socket.resume()
    void performHandshake(socket, {
      peerId: this.peerId,
      reserved: this.#reserved(false),
      // The BEP52 upgrade bit only for the swarms of torrents with a v2 half.
      reservedFor: (hex) => this.#reserved(this.#swarms.get(hex)?.infoHashV2 !== undefined),
      expectInfoHashes: expect,
      upgrade,
      signal: this.#abort.signal,
    }).then((r) => {
      if (!r.ok) {
        this.log.debug({ err: r.error.message }, 'incoming handshake failed')
        socket.destroy()
        return
      }
      const torrent = this.#swarms.get(r.value.infoHashHex)
      if (!torrent) return socket.destroy()
      this.#attach(torrent, socket, r.value, true)
    })
  }

  #enqueueDials(torrent: Torrent, peers: readonly PeerAddress[]): void {
    for (const peer of peers) {
      if (this.#dialQueue.length >= 5000) break
      this.#dialQueue.push({ torrent, peer })
    }
    this.#pumpDials()
  }

  #pumpDials(): void {
    const maxPending = this.#init.maxPendingDials ?? 16
    let guard = this.#dialQueue.length
    while (this.#dialQueue.length > 0 && this.#dialing.size < maxPending && guard-- > 0) {
      if (!this.#connectionAllowed()) return
      const { torrent, peer } = this.#dialQueue.shift()!
      const key = `${peer.host}:${peer.port}`
      if (!torrent.acceptsPeers() && torrent.state !== 'metadata') continue
      if (torrent.peers.has(key) || this.#dialing.has(`${torrent.id}/${key}`)) continue
      if (torrent.peers.size >= torrent.maxPeers || torrent.isBanned(peer.host, peer.port)) continue
      if (peer.port === this.port && (peer.host === '127.0.0.1' || peer.host === '::1') && this.listening)
        continue
      this.#dial(torrent, peer)
    }
  }

  #dial(torrent: Torrent, peer: PeerAddress): void {
    const dialKey = `${torrent.id}/${peer.host}:${peer.port}`
    this.#dialing.add(dialKey)
    const socket = tcpConnect({ host: peer.host, port: peer.port })
    this.#track(socket)
    socket.setNoDelay(true)
    const timeoutMs = this.#init.connectTimeoutMs ?? 10_000
    const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), timeoutMs)
    const done = (): void => {
      clearTimeout(timer)
      this.#dialing.delete(dialKey)
      this.#pumpDials()
    }
    socket.once('error', (e) => {
      this.log.trace({ peer: `${peer.host}:${peer.port}`, err: e.message }, 'dial failed')
      done()
    })
    socket.once('connect', () => {
      clearTimeout(timer)
      const ids = torrent.swarmIds()
      const primary = ids[0]!
      const upgradeTo = ids.find((s) => s.protocol === 'v2' && primary.protocol === 'v1')
      void performHandshake(socket, {
        peerId: this.peerId,
        reserved: this.#reserved(torrent.infoHashV2 !== undefined),
        infoHash: primary.infoHash,
        ...(upgradeTo ? { upgradeInfoHash: upgradeTo.infoHash } : {}),
        signal: this.#abort.signal,
      }).then((r) => {
        done()
        if (!r.ok) {
          this.log.debug(
            { peer: `${peer.host}:${peer.port}`, err: r.error.message },
            'outgoing handshake failed',
          )
          socket.destroy()
          return
        }
        if (this.#equalPeerId(r.value.remote.peerId)) {
          socket.destroy() // we dialled ourselves
          return
        }
        this.#attach(torrent, socket, r.value, false, peer)
      })
    })
  }

  #equalPeerId(id: Uint8Array): boolean {
    return id.length === this.peerId.length && id.every((b, i) => b === this.peerId[i])
  }

  #attach(
    torrent: Torrent,
    socket: Socket,
    hs: HandshakeOutcome,
    incoming: boolean,
    dialled?: PeerAddress,
  ): void {
    if (this.#equalPeerId(hs.remote.peerId)) return void socket.destroy()
    const host = (dialled?.host ?? socket.remoteAddress ?? '').replace(/^::ffff:/, '')
    const port = dialled?.port ?? socket.remotePort ?? 0
    const v2Swarm =
      torrent.infoHashV2 !== undefined && toHex(torrent.infoHashV2.subarray(0, 20)) === hs.infoHashHex
    const info: PeerInfo = {
      host,
      port,
      incoming,
      peerId: hs.remote.peerId,
      fast: hs.flags.fast,
      extended: hs.flags.extensionProtocol,
      dht: hs.remoteFlags.dht,
      swarm: v2Swarm ? 'v2' : 'v1',
      // BEP52 hash messages may be sent on this connection: the v2 swarm, or a torrent with a v2
      // half where the peer set the v2 bit or we dialled with ours (libtorrent then takes the
      // connection as v2 even when it answers with the v1 hash it knows from a btih magnet).
      v2: v2Swarm || (torrent.infoHashV2 !== undefined && (hs.remoteFlags.v2Upgrade || !incoming)),
    }
    const early: WireMessage[] = []
    let handlers: ReturnType<Torrent['attachPeer']>
    let closedEarly: string | undefined
    const pieceCount = torrent.info?.pieceCount
    const conn = new PeerConnection({
      socket,
      leftover: hs.leftover,
      fast: hs.flags.fast,
      limits: frameLimits(pieceCount !== undefined ? { pieceCount } : {}),
      ...(pieceCount !== undefined ? { decodeContext: { pieceCount } } : {}),
      onMessage: (m) => {
        if (handlers) handlers.onMessage(m)
        else if (early.length < 1000) early.push(m)
      },
      onClose: (reason) => {
        if (handlers) handlers.onClose(reason.message)
        else closedEarly = reason.message
      },
      logger: this.log,
      signal: this.#abort.signal,
    })
    // Messages sent in one tick (a burst of requests, several blocks) leave in one write: the
    // socket is corked at the first send and uncorked on the next tick (one syscall, not one per
    // 17-byte request).
    let corked = false
    const uncork = (): void => {
      corked = false
      socket.uncork()
    }
    const wire: PeerWire = {
      send: (m) => {
        if (!corked && !conn.closed) {
          corked = true
          socket.cork()
          process.nextTick(uncork)
        }
        return conn.send(m)
      },
      onDrain: (o) => conn.onDrain(o),
      close: (reason) => conn.close(reason),
    }
    handlers = torrent.attachPeer(info, wire)
    if (!handlers) {
      conn.close('peer refused by torrent')
      return
    }
    for (const m of early.splice(0)) handlers.onMessage(m)
    if (closedEarly !== undefined) handlers.onClose(closedEarly)
    // BEP5: "Upon receiving a handshake indicating the remote peer supports the DHT, the local peer
    // SHOULD send a PORT message" (after our bitfield, which attachPeer sent).
    const dhtPort = info.dht && !conn.closed ? this.#dhtPort() : undefined
    if (dhtPort !== undefined) wire.send({ type: 'port', port: dhtPort })
    if (!torrent.info) {
      void torrent.whenMetadata({ signal: handlers.signal }).then(
        () => {
          const n = torrent.info?.pieceCount
          if (n !== undefined && !conn.closed)
            conn.setLimits(frameLimits({ pieceCount: n }), { pieceCount: n })
        },
        () => {},
      )
    }
  }
}
