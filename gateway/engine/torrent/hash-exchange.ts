/**
 * BEP52 `hash request` / `hashes` / `hash reject`: fetching the piece layers a magnet start lacks
 * (here), and answering peers' requests (`hash-serve.ts`).
 *
 * Fetching: every file larger than one piece needs its piece layer before its pieces can be
 * checked (v2-only) — one chunk of at most 512 hashes per request ("Length SHOULD NOT be greater
 * than 512"), with the proof up to the `pieces root`, so each chunk is verified on arrival. Requests
 * rotate over the peers that accept BEP52 messages on their connection (seeds first), at most
 * {@link MAX_HASH_REQUESTS_PER_PEER} each; a peer that rejects or times out is backed off and the
 * chunk goes to another peer. Hashes that do not verify against the root prove the sender wrong:
 * banned. Every accepted layer goes through `verifier.addLayer` (so `verifier.layers()` holds all
 * the layers we know, for the metainfo).
 *
 * Hash messages are answered (or rejected) on any connection of a torrent with a v2 half and never
 * close it; a v1-only torrent rejects them. Only a flood ({@link MAX_HASH_MESSAGES_PER_MINUTE}) or
 * too many unrequested `hashes` close the connection.
 */
import { equalBytes } from '../../protocol/hex.ts'
import { HASH_SIZE, leafCount, nextPowerOfTwo, verifyHashes } from '../../protocol/merkle.ts'
import { BLOCK_SIZE } from '../../protocol/types.ts'
import { type HashRequest, MAX_HASH_REQUEST_LENGTH } from '../../protocol/wire/hash-messages.ts'
import type { WireMessage } from '../../protocol/wire/messages.ts'
import { FileRoots, HashServer, type HashTorrent, PerMinute } from './hash-serve.ts'
import type { Peer } from './peer.ts'
import { PeerBackoff, Rotation } from './peer-backoff.ts'

export type { HashTorrent } from './hash-serve.ts'
export type HashMessage = Extract<WireMessage, { type: 'hash-request' | 'hashes' | 'hash-reject' }>

export const HASH_REQUEST_TIMEOUT_MS = 15_000
/** Our outstanding hash requests per peer (libtorrent keeps 2). */
export const MAX_HASH_REQUESTS_PER_PEER = 2
/** Hash messages (all three kinds) a peer may send per minute before we close it as a flood. */
export const MAX_HASH_MESSAGES_PER_MINUTE = 2000
/** `hashes` we did not ask that peer for, before we close it. */
const MAX_UNREQUESTED_HASHES = 64

interface PendingRequest {
  readonly peer: Peer
  readonly at: number
  readonly req: HashRequest
}

interface LayerFetch {
  readonly fileIndex: number
  readonly pieces: number
  readonly chunk: number
  readonly chunks: Map<number, Uint8Array>
  readonly requested: Map<number, PendingRequest>
}

const sameRequest = (a: HashRequest, b: HashRequest): boolean =>
  a.baseLayer === b.baseLayer &&
  a.index === b.index &&
  a.length === b.length &&
  a.proofLayers === b.proofLayers &&
  equalBytes(a.piecesRoot, b.piecesRoot)

export class HashExchange {
  readonly #t: HashTorrent
  readonly #roots = new FileRoots()
  readonly #server: HashServer
  readonly #fetches = new Map<number, LayerFetch>()
  readonly #backoff = new PeerBackoff<Peer>()
  readonly #seeds = new Rotation()
  readonly #others = new Rotation()
  readonly #messages = new PerMinute(MAX_HASH_MESSAGES_PER_MINUTE)
  readonly #unrequested = new WeakMap<Peer, number>()

  constructor(t: HashTorrent) {
    this.#t = t
    this.#server = new HashServer(t, this.#roots)
  }

  // ---------------------------------------------------------------------------- fetching layers

  /** Sends hash requests for the missing piece layers (idempotent; call on every event or tick). */
  requestMissingLayers(): void {
    const t = this.#t
    const info = t.info
    const v = t.verifier
    if (!info || !v || !t.running) return
    const missing = v.missingLayers()
    if (missing.length === 0) {
      this.#fetches.clear()
      return
    }
    const now = t.host.now()
    const inFlight = new Map<Peer, number>()
    for (const fetch of this.#fetches.values()) {
      for (const [index, r] of fetch.requested) {
        if (r.peer.closed) fetch.requested.delete(index)
        else if (now - r.at > HASH_REQUEST_TIMEOUT_MS) {
          fetch.requested.delete(index)
          this.#backoff.penalize(r.peer, now)
          t.log.debug({ peer: r.peer.key, file: fetch.fileIndex, index }, 'hash request timed out')
        } else inFlight.set(r.peer, (inFlight.get(r.peer) ?? 0) + 1)
      }
    }
    // Peers that accept BEP52 messages on this connection (PeerInfo.v2), not backed off.
    const usable = [...t.peers.values()].filter(
      (p) => p.info.v2 && !p.closed && !this.#backoff.blocked(p, now),
    )
    const seeds = usable.filter((p) => p.isSeed(info.pieceCount))
    const others = usable.filter((p) => !p.isSeed(info.pieceCount))
    const order = [...this.#seeds.order(seeds, (p) => p.key), ...this.#others.order(others, (p) => p.key)]
    if (order.length === 0) return
    let k = 0
    const next = (): Peer | undefined => {
      for (let i = 0; i < order.length; i++) {
        const p = order[(k + i) % order.length]!
        if ((inFlight.get(p) ?? 0) < MAX_HASH_REQUESTS_PER_PEER) {
          k += i + 1
          return p
        }
      }
      return undefined
    }
    const baseLayer = Math.log2(info.pieceLength / BLOCK_SIZE)
    for (const fileIndex of missing) {
      const f = info.files[fileIndex]!
      let fetch = this.#fetches.get(fileIndex)
      if (!fetch) {
        const pieces = Math.ceil(f.length / info.pieceLength)
        const chunk = Math.min(MAX_HASH_REQUEST_LENGTH, nextPowerOfTwo(Math.max(2, pieces)))
        fetch = { fileIndex, pieces, chunk, chunks: new Map(), requested: new Map() }
        this.#fetches.set(fileIndex, fetch)
      }
      // The proof reaches the root: height − base − 1 proof layers (BEP52 `hashes`).
      const proofLayers = Math.max(0, Math.log2(nextPowerOfTwo(leafCount(f.length))) - baseLayer - 1)
      for (let index = 0; index < fetch.pieces; index += fetch.chunk) {
        if (fetch.chunks.has(index) || fetch.requested.has(index)) continue
        const peer = next()
        if (!peer) return
        const req: HashRequest = {
          piecesRoot: f.piecesRoot!,
          baseLayer,
          index,
          length: fetch.chunk,
          proofLayers,
        }
        fetch.requested.set(index, { peer, at: now, req })
        inFlight.set(peer, (inFlight.get(peer) ?? 0) + 1)
        peer.send({ type: 'hash-request', ...req })
      }
    }
  }

  #pending(peer: Peer, msg: HashRequest): { fetch: LayerFetch; fileIndex: number } | undefined {
    const found = this.#roots.find(this.#t.info, msg.piecesRoot)
    const fetch = found && this.#fetches.get(found.index)
    const r = fetch?.requested.get(msg.index)
    if (!fetch || !r || r.peer !== peer || !sameRequest(r.req, msg)) return undefined
    fetch.requested.delete(msg.index)
    return { fetch, fileIndex: found.index }
  }

  #onHashes(peer: Peer, msg: Extract<HashMessage, { type: 'hashes' }>): void {
    const t = this.#t
    const info = t.info
    const v = t.verifier
    if (!info || !v) return
    const pending = this.#pending(peer, msg)
    if (!pending) {
      const n = (this.#unrequested.get(peer) ?? 0) + 1
      this.#unrequested.set(peer, n)
      if (n > MAX_UNREQUESTED_HASHES) t.closePeer(peer, 'BEP52: too many unrequested hashes')
      return
    }
    const { fetch, fileIndex } = pending
    const f = info.files[fileIndex]!
    const ok = verifyHashes(
      f.piecesRoot!,
      msg.baseLayer,
      msg.index,
      msg.length,
      msg.proofLayers,
      msg.hashes,
      nextPowerOfTwo(leafCount(f.length)),
    )
    if (ok !== 'ok') {
      t.ban(peer, 'sent piece-layer hashes that do not verify against the pieces root (BEP52)')
      this.requestMissingLayers()
      return
    }
    this.#backoff.reset(peer)
    fetch.chunks.set(msg.index, msg.hashes.slice(0, msg.length * HASH_SIZE))
    let complete = true
    for (let index = 0; index < fetch.pieces; index += fetch.chunk)
      if (!fetch.chunks.has(index)) complete = false
    if (complete) {
      const layer = new Uint8Array(fetch.pieces * HASH_SIZE)
      for (const [index, hashes] of fetch.chunks) {
        const n = Math.min(fetch.chunk, fetch.pieces - index)
        layer.set(hashes.subarray(0, n * HASH_SIZE), index * HASH_SIZE)
      }
      this.#fetches.delete(fileIndex)
      if (v.addLayer(fileIndex, layer)) {
        t.log.info({ file: fileIndex }, 'piece layer received from peers')
        t.recheckAwaitingLayer()
      } else t.log.warn({ file: fileIndex }, 'a piece layer assembled from verified chunks was refused')
    }
    this.requestMissingLayers()
  }

  #onHashReject(peer: Peer, msg: Extract<HashMessage, { type: 'hash-reject' }>): void {
    if (!this.#pending(peer, msg)) return // a reject of nothing we asked it: ignore
    this.#backoff.penalize(peer, this.#t.host.now())
    this.requestMissingLayers()
  }

  // ---------------------------------------------------------------------------- dispatch

  onHashMessage(peer: Peer, msg: HashMessage): void {
    if (!this.#messages.take(peer, this.#t.host.now())) {
      this.#t.closePeer(peer, 'BEP52 hash message flood')
      return
    }
    if (msg.type === 'hash-request') this.#server.onHashRequest(peer, msg)
    else if (msg.type === 'hashes') this.#onHashes(peer, msg)
    else this.#onHashReject(peer, msg)
  }

  onPeerClosed(peer: Peer): void {
    let had = false
    for (const fetch of this.#fetches.values()) {
      for (const [index, r] of fetch.requested) {
        if (r.peer !== peer) continue
        fetch.requested.delete(index)
        had = true
      }
    }
    if (had) this.requestMissingLayers()
  }

  tick(): void {
    const v = this.#t.verifier
    if (v && v.missingLayers().length > 0) this.requestMissingLayers()
  }
}
