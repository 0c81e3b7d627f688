/**
 * BEP52 `hash request` / `hashes` / `hash reject`: fetching the piece layers a magnet start lacks,
 * and answering peers' requests.
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
 * Serving: requests at or above the piece layer come from the layer; requests below it (BEP52:
 * "Clients MUST NOT reject a hash request with a base layer of zero if it immediately follows a
 * request for one of the chunks in the requested range and the client services the chunk request"),
 * and any request for a file not larger than one piece, are answered from the stored data: the
 * piece's 16 KiB leaf hashes are computed on demand (at most {@link MAX_LEAF_PIECES} pieces per
 * request, {@link MAX_LEAF_JOBS} at once, cached briefly), checked against the piece layer, and the
 * proof continues from the layer above. Hash messages are answered (or rejected) on any connection
 * of a torrent with a v2 half and never close it; a v1-only torrent rejects them. Only a flood
 * closes the connection.
 */
import { equalBytes, toHex } from '../../protocol/hex.ts'
import {
  checkHashRequest,
  HASH_SIZE,
  hashPair,
  leafCount,
  MerkleTree,
  nextPowerOfTwo,
  padHash,
  uncleCount,
  verifyHashes,
} from '../../protocol/merkle.ts'
import type { FileEntry } from '../../protocol/types.ts'
import { BLOCK_SIZE } from '../../protocol/types.ts'
import { type HashRequest, MAX_HASH_REQUEST_LENGTH } from '../../protocol/wire/hash-messages.ts'
import type { WireMessage } from '../../protocol/wire/messages.ts'
import type { Peer } from './peer.ts'
import { PeerBackoff, Rotation } from './peer-backoff.ts'
import type { Torrent } from './torrent.ts'

export type HashMessage = Extract<WireMessage, { type: 'hash-request' | 'hashes' | 'hash-reject' }>

/** What the hash exchange uses of the coordinator. */
export type HashTorrent = Pick<
  Torrent,
  | 'info'
  | 'infoHashV2'
  | 'verifier'
  | 'storage'
  | 'haveBitfield'
  | 'peers'
  | 'host'
  | 'log'
  | 'ban'
  | 'closePeer'
  | 'signal'
  | 'running'
  | 'track'
  | 'recheckAwaitingLayer'
>

export const HASH_REQUEST_TIMEOUT_MS = 15_000
/** Our outstanding hash requests per peer (libtorrent keeps 2). */
export const MAX_HASH_REQUESTS_PER_PEER = 2
/** Hash messages (all three kinds) a peer may send per minute before we close it as a flood. */
export const MAX_HASH_MESSAGES_PER_MINUTE = 2000
/** Pieces whose data one below-the-piece-layer request may make us hash. */
export const MAX_LEAF_PIECES = 4
/** Below-the-piece-layer requests a peer may make per minute (each may read up to 4 pieces). */
export const MAX_LEAF_REQUESTS_PER_MINUTE = 120
/** Concurrent leaf computations (storage reads) for all peers. */
export const MAX_LEAF_JOBS = 2
const LEAF_CACHE_ENTRIES = 8
const LEAF_CACHE_TTL_MS = 30_000
const MAX_TREES = 64
/** `hashes` we did not ask that peer for, before we close it. */
const MAX_UNREQUESTED_HASHES = 64
const MINUTE = 60_000

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

interface Window {
  start: number
  count: number
}

const sameRequest = (a: HashRequest, b: HashRequest): boolean =>
  a.baseLayer === b.baseLayer &&
  a.index === b.index &&
  a.length === b.length &&
  a.proofLayers === b.proofLayers &&
  equalBytes(a.piecesRoot, b.piecesRoot)

/** Layers 0..log2(blocksPerPiece) of one piece's subtree, the leaves padded with zero hashes (BEP52). */
function pieceSubtree(leaves: readonly Uint8Array[], blocksPerPiece: number): Uint8Array[] {
  const base = new Uint8Array(blocksPerPiece * HASH_SIZE)
  leaves.forEach((h, i) => {
    base.set(h, i * HASH_SIZE)
  })
  const layers = [base]
  let cur = base
  for (let width = blocksPerPiece / 2; width >= 1; width /= 2) {
    const next = new Uint8Array(width * HASH_SIZE)
    for (let i = 0; i < width; i++) {
      const l = cur.subarray(2 * i * HASH_SIZE, (2 * i + 1) * HASH_SIZE)
      const r = cur.subarray((2 * i + 1) * HASH_SIZE, (2 * i + 2) * HASH_SIZE)
      next.set(hashPair(l, r), i * HASH_SIZE)
    }
    layers.push(next)
    cur = next
  }
  return layers
}

export class HashExchange {
  readonly #t: HashTorrent
  readonly #fetches = new Map<number, LayerFetch>()
  readonly #backoff = new PeerBackoff<Peer>()
  readonly #seeds = new Rotation()
  readonly #others = new Rotation()
  readonly #trees = new Map<string, MerkleTree>()
  readonly #messages = new WeakMap<Peer, Window>()
  readonly #leafRequests = new WeakMap<Peer, Window>()
  readonly #unrequested = new WeakMap<Peer, number>()
  readonly #leafCache = new Map<number, { readonly leaves: Uint8Array[]; readonly at: number }>()
  #leafJobs = 0

  constructor(t: HashTorrent) {
    this.#t = t
  }

  /** Whether the torrent has a v2 half (hash messages make sense for it). */
  #hasV2(): boolean {
    const info = this.#t.info
    return info ? info.version !== 'v1' : this.#t.infoHashV2 !== undefined
  }

  #fileByRoot(root: Uint8Array): { index: number; file: FileEntry } | undefined {
    const info = this.#t.info
    if (!info || root.byteLength !== 32) return undefined
    const index = info.files.findIndex((f) => !f.padding && f.piecesRoot && equalBytes(f.piecesRoot, root))
    const file = info.files[index]
    return file ? { index, file } : undefined
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
    const found = this.#fileByRoot(msg.piecesRoot)
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

  // ---------------------------------------------------------------------------- serving

  #reject(peer: Peer, msg: HashRequest): undefined {
    peer.send({
      type: 'hash-reject',
      piecesRoot: msg.piecesRoot,
      baseLayer: msg.baseLayer,
      index: msg.index,
      length: msg.length,
      proofLayers: msg.proofLayers,
    })
  }

  #answer(peer: Peer, msg: HashRequest, hashes: Uint8Array): void {
    peer.send({
      type: 'hashes',
      piecesRoot: msg.piecesRoot,
      baseLayer: msg.baseLayer,
      index: msg.index,
      length: msg.length,
      proofLayers: msg.proofLayers,
      hashes,
    })
  }

  /** The tree above the piece layer of a file larger than one piece, when its layer is known. */
  #treeFor(file: FileEntry): MerkleTree | undefined {
    const info = this.#t.info
    const v = this.#t.verifier
    if (!info || !v || !file.piecesRoot || file.length <= info.pieceLength) return undefined
    const hex = toHex(file.piecesRoot)
    const cached = this.#trees.get(hex)
    if (cached) return cached
    const layer = v.layer(hex)
    if (!layer) return undefined
    const tree = MerkleTree.fromPieceLayer(layer, file.length, info.pieceLength)
    if (this.#trees.size >= MAX_TREES) this.#trees.clear()
    this.#trees.set(hex, tree)
    return tree
  }

  #onHashRequest(peer: Peer, msg: HashRequest): undefined {
    const t = this.#t
    const info = t.info
    if (!info || !this.#hasV2()) return this.#reject(peer, msg)
    const found = this.#fileByRoot(msg.piecesRoot)
    if (!found) return this.#reject(peer, msg)
    const { file } = found
    const numLeavesPow2 = nextPowerOfTwo(leafCount(file.length))
    if (checkHashRequest(msg, numLeavesPow2, MAX_HASH_REQUEST_LENGTH) !== undefined)
      return this.#reject(peer, msg)
    const pieceLayer = Math.log2(info.pieceLength / BLOCK_SIZE)
    if (file.length > info.pieceLength && msg.baseLayer >= pieceLayer) {
      const res = this.#treeFor(file)?.hashes(msg, MAX_HASH_REQUEST_LENGTH)
      if (!res?.ok) return this.#reject(peer, msg)
      this.#answer(peer, msg, res.hashes)
      return
    }
    // Below the piece layer (or a single-piece file): from the stored data, bounded.
    if (!this.#within(this.#leafRequests, peer, MAX_LEAF_REQUESTS_PER_MINUTE)) return this.#reject(peer, msg)
    t.track(
      this.#answerFromData(msg, file)
        .then((hashes) => {
          if (peer.closed) return
          if (hashes) this.#answer(peer, msg, hashes)
          else this.#reject(peer, msg)
        })
        .catch((e: unknown) => {
          if (!t.running) return
          t.log.debug({ err: e, peer: peer.key }, 'could not compute leaf hashes')
          this.#reject(peer, msg)
        }),
    )
  }

  /** The answer to a request below the piece layer, or undefined to reject it. */
  async #answerFromData(req: HashRequest, file: FileEntry): Promise<Uint8Array | undefined> {
    const info = this.#t.info!
    const pieceLength = info.pieceLength
    const firstPiece = file.offset / pieceLength // BEP52: every file starts on a piece boundary
    if (!Number.isInteger(firstPiece)) return undefined
    if (file.length <= pieceLength) {
      // No piece layer: the root covers the file's leaves directly.
      const leaves = await this.#leaves(firstPiece)
      if (!leaves || leaves.length === 0) return undefined
      const tree = MerkleTree.fromLeaves(leaves)
      if (!file.piecesRoot || !equalBytes(tree.root, file.piecesRoot)) return undefined
      const res = tree.hashes(req, MAX_HASH_REQUEST_LENGTH)
      return res.ok ? res.hashes : undefined
    }
    const tree = this.#treeFor(file)
    if (!tree) return undefined
    const bpp = pieceLength / BLOCK_SIZE
    const top = Math.log2(bpp) // the piece layer
    const filePieces = Math.ceil(file.length / pieceLength)
    const perPiece = bpp / 2 ** req.baseLayer
    const first = Math.floor(req.index / perPiece)
    const last = Math.floor((req.index + req.length - 1) / perPiece)
    if (last - first + 1 > MAX_LEAF_PIECES) return undefined
    const subtrees = new Map<number, Uint8Array[]>()
    for (let p = first; p <= last && p < filePieces; p++) {
      const leaves = await this.#leaves(firstPiece + p)
      if (!leaves) return undefined
      const layers = pieceSubtree(leaves, bpp)
      const expected = tree.node(top, p)
      // The stored piece must still hash to its piece-layer node.
      if (!expected || !equalBytes(layers[top]!, expected)) return undefined
      subtrees.set(p, layers)
    }
    const node = (layer: number, index: number): Uint8Array | undefined => {
      if (layer >= top) return tree.node(layer, index)
      const per = bpp / 2 ** layer
      const p = Math.floor(index / per)
      const layers = subtrees.get(p)
      if (!layers) return p >= filePieces ? padHash(layer) : undefined
      const at = (index - p * per) * HASH_SIZE
      return layers[layer]!.subarray(at, at + HASH_SIZE)
    }
    const uncles = uncleCount(req.length, req.proofLayers)
    const out = new Uint8Array((req.length + uncles) * HASH_SIZE)
    for (let i = 0; i < req.length; i++) {
      const h = node(req.baseLayer, req.index + i)
      if (!h) return undefined
      out.set(h, i * HASH_SIZE)
    }
    // The range's subtree root sits at base + log2(length); its uncles come from there up.
    let pos = req.index / req.length
    const k = Math.log2(req.length)
    for (let u = 0; u < uncles; u++) {
      const h = node(req.baseLayer + k + u, pos % 2 === 0 ? pos + 1 : pos - 1)
      if (!h) return undefined
      out.set(h, (req.length + u) * HASH_SIZE)
      pos = Math.floor(pos / 2)
    }
    return out
  }

  /** The v2 leaf hashes of a piece we have (committed data only), cached briefly; bounded jobs. */
  async #leaves(piece: number): Promise<Uint8Array[] | undefined> {
    const t = this.#t
    if (!t.haveBitfield?.has(piece)) return undefined
    const now = t.host.now()
    const cached = this.#leafCache.get(piece)
    if (cached && now - cached.at < LEAF_CACHE_TTL_MS) return cached.leaves
    const storage = t.storage
    if (!storage || this.#leafJobs >= MAX_LEAF_JOBS) return undefined
    this.#leafJobs++
    let leaves: Uint8Array[] | undefined
    try {
      leaves = (await storage.hashPiece(piece, { v1: false, v2: true }, { signal: t.signal })).v2Leaves
    } finally {
      this.#leafJobs--
    }
    if (!leaves) return undefined
    this.#leafCache.delete(piece)
    this.#leafCache.set(piece, { leaves, at: t.host.now() })
    while (this.#leafCache.size > LEAF_CACHE_ENTRIES) {
      const oldest = this.#leafCache.keys().next().value
      if (oldest === undefined) break
      this.#leafCache.delete(oldest)
    }
    return leaves
  }

  /** Counts one event in the peer's one-minute window; false past `max`. */
  #within(map: WeakMap<Peer, Window>, peer: Peer, max: number): boolean {
    const now = this.#t.host.now()
    let w = map.get(peer)
    if (!w || now - w.start >= MINUTE) {
      w = { start: now, count: 0 }
      map.set(peer, w)
    }
    return ++w.count <= max
  }

  // ---------------------------------------------------------------------------- dispatch

  onHashMessage(peer: Peer, msg: HashMessage): void {
    if (!this.#within(this.#messages, peer, MAX_HASH_MESSAGES_PER_MINUTE)) {
      this.#t.closePeer(peer, 'BEP52 hash message flood')
      return
    }
    if (msg.type === 'hash-request') this.#onHashRequest(peer, msg)
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
