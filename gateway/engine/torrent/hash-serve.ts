/**
 * BEP52 `hash request` serving: requests at or above the piece layer come from the layer; requests
 * below it (BEP52: "Clients MUST NOT reject a hash request with a base layer of zero if it
 * immediately follows a request for one of the chunks in the requested range and the client
 * services the chunk request" — libtorrent sends these after a v2 piece failed), and any request
 * for a file not larger than one piece, are answered from the stored data: the piece's 16 KiB leaf
 * hashes are computed on demand (committed pieces only, at most {@link MAX_LEAF_PIECES} pieces per
 * request, {@link MAX_LEAF_JOBS} at once, cached briefly), checked against the piece layer, and the
 * proof continues from the layer above. Anything we cannot or will not answer gets `hash reject`.
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
} from '../../protocol/merkle.ts'
import type { FileEntry, TorrentInfo } from '../../protocol/types.ts'
import { BLOCK_SIZE } from '../../protocol/types.ts'
import { type HashRequest, MAX_HASH_REQUEST_LENGTH } from '../../protocol/wire/hash-messages.ts'
import type { Peer } from './peer.ts'
import type { Torrent } from './torrent.ts'

/** What hash serving and fetching use of the coordinator. */
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

/** Pieces whose data one below-the-piece-layer request may make us hash. */
export const MAX_LEAF_PIECES = 4
/** Below-the-piece-layer requests a peer may make per minute (each may read up to 4 pieces). */
export const MAX_LEAF_REQUESTS_PER_MINUTE = 120
/** Concurrent leaf computations (storage reads) for all peers. */
export const MAX_LEAF_JOBS = 2
const LEAF_CACHE_ENTRIES = 8
const LEAF_CACHE_TTL_MS = 30_000
const MAX_TREES = 64
const MINUTE = 60_000

/** Counts events per peer in one-minute windows (flood limits). */
export class PerMinute {
  readonly #max: number
  readonly #windows = new WeakMap<Peer, { start: number; count: number }>()

  constructor(max: number) {
    this.#max = max
  }

  /** Counts one event at `now`; false past the limit. */
  take(peer: Peer, now: number): boolean {
    let w = this.#windows.get(peer)
    if (!w || now - w.start >= MINUTE) {
      w = { start: now, count: 0 }
      this.#windows.set(peer, w)
    }
    return ++w.count <= this.#max
  }
}

/** The torrent's files by `pieces root` (built once per info dict). */
export class FileRoots {
  #info: TorrentInfo | undefined
  #byRoot = new Map<string, number>()

  find(info: TorrentInfo | undefined, root: Uint8Array): { index: number; file: FileEntry } | undefined {
    if (!info || root.byteLength !== 32) return undefined
    if (info !== this.#info) {
      this.#info = info
      this.#byRoot = new Map()
      info.files.forEach((f, i) => {
        if (!f.padding && f.piecesRoot && !this.#byRoot.has(toHex(f.piecesRoot)))
          this.#byRoot.set(toHex(f.piecesRoot), i)
      })
    }
    const index = this.#byRoot.get(toHex(root))
    const file = index === undefined ? undefined : info.files[index]
    return file && index !== undefined ? { index, file } : undefined
  }
}

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

export class HashServer {
  readonly #t: HashTorrent
  readonly #roots: FileRoots
  readonly #trees = new Map<string, MerkleTree>()
  readonly #leafRequests = new PerMinute(MAX_LEAF_REQUESTS_PER_MINUTE)
  readonly #leafCache = new Map<number, { readonly leaves: Uint8Array[]; readonly at: number }>()
  #leafJobs = 0

  constructor(t: HashTorrent, roots: FileRoots) {
    this.#t = t
    this.#roots = roots
  }

  /** Whether the torrent has a v2 half (hash requests make sense for it). */
  #hasV2(): boolean {
    const info = this.#t.info
    return info ? info.version !== 'v1' : this.#t.infoHashV2 !== undefined
  }

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

  /** Answers a `hash request` with `hashes` or `hash reject` (never closes the connection). */
  onHashRequest(peer: Peer, msg: HashRequest): undefined {
    const t = this.#t
    const info = t.info
    if (!info || !this.#hasV2()) return this.#reject(peer, msg)
    const found = this.#roots.find(info, msg.piecesRoot)
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
    if (!this.#leafRequests.take(peer, t.host.now())) return this.#reject(peer, msg)
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
}
