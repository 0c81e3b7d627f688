/**
 * BEP52 SHA-256 Merkle trees over 16 KiB leaves: pad hashes, roots, piece layers, and the
 * `hash request` / `hashes` proof format (build a response, verify one).
 *
 * Conventions (BEP52 "pieces root", "piece layers", "hash request"):
 * - Layer 0 is the leaf layer (one SHA-256 per 16 KiB block; the last block is hashed over its
 *   actual, possibly short, bytes). Layer `h` is the root, where `2^h` = leaf count rounded up to a
 *   power of two ("numLeavesPow2").
 * - Leaves past the end of the file are 32 zero bytes; a padding node at layer `l` is therefore
 *   `padHash(l)`, the root of 2^l zero leaves.
 * - A list of hashes is either a `Uint8Array` of concatenated 32-byte hashes or an array of 32-byte
 *   `Uint8Array`s ({@link HashList}); results are always concatenated `Uint8Array`s.
 *
 * Pure: no I/O, no timers, no logging, no module-level mutable state.
 */

import { hash as oneShotHash } from 'node:crypto'
import { equalBytes } from './hex.ts'
import { BLOCK_SIZE } from './types.ts'

/** Size of a SHA-256 digest, i.e. of every Merkle node. */
export const HASH_SIZE = 32

/** Concatenated 32-byte hashes, or one `Uint8Array` per hash. */
export type HashList = Uint8Array | readonly Uint8Array[]

/** Outcome of checking hashes received from a peer (STYLE §7.3: results, not exceptions). */
export type VerifyResult = 'ok' | 'failed'

export type MerkleErrorCode = 'GW_ERR_MERKLE_ARGUMENT'

/** Programming errors (bad arguments from our own code); peer input yields results instead. */
export class MerkleError extends Error {
  readonly code: MerkleErrorCode

  constructor(code: MerkleErrorCode, message: string) {
    super(message)
    this.name = 'MerkleError'
    this.code = code
  }
}

function argError(message: string): MerkleError {
  return new MerkleError('GW_ERR_MERKLE_ARGUMENT', message)
}

// ---------------------------------------------------------------------------------------------
// Small integer helpers (values stay far below 2^53; no 32-bit bit tricks on counts).

/** True for 1, 2, 4, ... (safe integers). */
export function isPowerOfTwo(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 1) return false
  let v = n
  while (v > 1) {
    if (v % 2 !== 0) return false
    v /= 2
  }
  return true
}

/** Smallest power of two ≥ n (n ≥ 1). */
export function nextPowerOfTwo(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}

/** log2 of a power of two. */
function log2Exact(n: number): number {
  let l = 0
  let v = n
  while (v > 1) {
    v /= 2
    l++
  }
  return l
}

/** Number of 16 KiB leaves of a file of `fileLength` bytes (0 for an empty file). */
export function leafCount(fileLength: number): number {
  return Math.ceil(fileLength / BLOCK_SIZE)
}

/** BEP52 `piece length`: a power of two, at least 16 KiB. Returns blocks per piece. */
function blocksPerPieceOf(pieceLength: number): number {
  if (!isPowerOfTwo(pieceLength) || pieceLength < BLOCK_SIZE) {
    throw argError(`piece length must be a power of two >= ${BLOCK_SIZE}, got ${pieceLength}`)
  }
  return pieceLength / BLOCK_SIZE
}

// ---------------------------------------------------------------------------------------------
// Hash primitives.

/**
 * Copies bytes [start, end) of `src` into a fresh plain `Uint8Array`. (Never `.slice()` a value
 * that may be a `Buffer`: `Buffer#slice` returns a view, not a copy.)
 */
export function copyBytes(src: Uint8Array, start = 0, end = src.byteLength): Uint8Array {
  return new Uint8Array(src.subarray(start, end))
}

/** SHA-256 of `data` (one-shot), as a plain `Uint8Array` over the fresh digest (no copy). */
export function sha256(data: Uint8Array): Uint8Array {
  const d = oneShotHash('sha256', data, 'buffer')
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
}

/** Interior node: SHA-256(left ‖ right). */
export function hashPair(left: Uint8Array, right: Uint8Array): Uint8Array {
  const buf = new Uint8Array(2 * HASH_SIZE)
  buf.set(left, 0)
  buf.set(right, HASH_SIZE)
  return sha256(buf)
}

/** Highest layer we precompute: 2^63 leaves is far beyond any file (2^53 bytes = 2^39 leaves). */
const MAX_LAYER = 63

/** Frozen table of pad hashes: [0] = 32 zero bytes (BEP52 "set to zero"), [l] = H([l-1] ‖ [l-1]). */
const PAD_HASHES: readonly Uint8Array[] = Object.freeze(
  (() => {
    const table: Uint8Array[] = [new Uint8Array(HASH_SIZE)]
    for (let l = 1; l <= MAX_LAYER; l++) {
      const prev = table[l - 1]!
      table.push(hashPair(prev, prev))
    }
    return table
  })(),
)

function padRef(layer: number): Uint8Array {
  const h = PAD_HASHES[layer]
  if (h === undefined) throw argError(`pad layer out of range: ${layer}`)
  return h
}

/**
 * Root of an all-zero subtree of 2^`layer` leaves (BEP52: leaves beyond the end of the file are
 * zero). `padHash(0)` is 32 zero bytes. Returns a copy; the memo table is never exposed.
 */
export function padHash(layer: number): Uint8Array {
  if (!Number.isInteger(layer) || layer < 0) throw argError(`pad layer must be a non-negative integer`)
  return copyBytes(padRef(layer))
}

// ---------------------------------------------------------------------------------------------
// Hash lists.

/** Concatenates a {@link HashList} into a fresh buffer, checking sizes. */
export function concatHashes(list: HashList): Uint8Array {
  if (list instanceof Uint8Array) {
    if (list.byteLength % HASH_SIZE !== 0) throw argError('hash list length is not a multiple of 32')
    return copyBytes(list)
  }
  const out = new Uint8Array(list.length * HASH_SIZE)
  for (let i = 0; i < list.length; i++) {
    const h = list[i]!
    if (h.byteLength !== HASH_SIZE) throw argError(`hash ${i} is ${h.byteLength} bytes, expected 32`)
    out.set(h, i * HASH_SIZE)
  }
  return out
}

function hashCount(list: HashList): number {
  return list instanceof Uint8Array ? list.byteLength / HASH_SIZE : list.length
}

/** The i-th hash of a concatenated buffer, as a view (no copy). */
function at(buf: Uint8Array, i: number): Uint8Array {
  return buf.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE)
}

/**
 * Reduces `count` hashes at layer `fromLayer`, stored at the start of `buf`, by one layer, in
 * place: node i of the parent layer is written over bytes [32i, 32i+32). An odd last node is
 * paired with `padHash(fromLayer)`. Returns the parent count.
 */
function reduceInPlace(buf: Uint8Array, count: number, fromLayer: number): number {
  const pairs = Math.floor(count / 2)
  for (let i = 0; i < pairs; i++) {
    // Reading [64i, 64i+64) before writing [32i, 32i+32) is safe: the write never overtakes.
    buf.set(
      oneShotHash('sha256', buf.subarray(2 * i * HASH_SIZE, (2 * i + 2) * HASH_SIZE), 'buffer'),
      i * HASH_SIZE,
    )
  }
  if (count % 2 === 1) {
    buf.set(hashPair(at(buf, count - 1), padRef(fromLayer)), pairs * HASH_SIZE)
    return pairs + 1
  }
  return pairs
}

/** A fresh parent layer (real nodes only) of `count` hashes at `fromLayer`. */
function parentLayer(layer: Uint8Array, count: number, fromLayer: number): Uint8Array {
  const out = copyBytes(layer, 0, count * HASH_SIZE)
  const n = reduceInPlace(out, count, fromLayer)
  return out.subarray(0, n * HASH_SIZE)
}

/**
 * Root of `count` hashes at `fromLayer` (concatenated in `owned`, which is overwritten), padded up
 * to `width` (a power of two ≥ count) with pad nodes of that layer.
 */
function rootInPlace(owned: Uint8Array, count: number, width: number, fromLayer: number): Uint8Array {
  const levels = log2Exact(width)
  if (count === 0) return copyBytes(padRef(fromLayer + levels))
  let n = count
  for (let l = 0; l < levels; l++) n = reduceInPlace(owned, n, fromLayer + l)
  return copyBytes(owned, 0, HASH_SIZE)
}

/**
 * BEP52 Merkle root of `leaves` (layer-0 hashes), padded with zero leaves up to `leafCountPow2`
 * (default: the leaf count rounded up to a power of two, which is what `pieces root` uses for
 * every file, whatever the piece length). A single leaf is its own root.
 */
export function merkleRoot(leaves: HashList, leafCountPow2?: number): Uint8Array {
  const count = hashCount(leaves)
  const width = leafCountPow2 ?? nextPowerOfTwo(count)
  if (!isPowerOfTwo(width) || width < count) {
    throw argError(`leafCountPow2 must be a power of two >= ${count}, got ${width}`)
  }
  if (count === 0 && leafCountPow2 === undefined) throw argError('merkleRoot of zero leaves')
  return rootInPlace(concatHashes(leaves), count, width, 0)
}

/**
 * BEP52 `piece layers` entry for one file: the layer log2(pieceLength / 16 KiB) above the leaves,
 * one hash per piece; the last piece is completed with zero leaves, and nodes covering only data
 * beyond the end of the file are omitted. Files not larger than one piece have no piece layer
 * (their root covers their leaves directly): the result is then empty.
 */
export function pieceLayer(fileLeaves: HashList, pieceLength: number): Uint8Array {
  const bpp = blocksPerPieceOf(pieceLength)
  const count = hashCount(fileLeaves)
  if (count <= bpp) return new Uint8Array(0)
  const buf = concatHashes(fileLeaves)
  const levels = log2Exact(bpp)
  let n = count
  for (let l = 0; l < levels; l++) n = reduceInPlace(buf, n, l)
  return copyBytes(buf, 0, n * HASH_SIZE)
}

/** Number of pieces of a file, i.e. of hashes in its piece layer (files > one piece). */
export function piecesInFile(fileLength: number, pieceLength: number): number {
  return Math.ceil(fileLength / pieceLength)
}

function checkFileLength(fileLength: number): void {
  if (!Number.isSafeInteger(fileLength) || fileLength < 0) throw argError(`bad file length ${fileLength}`)
}

/**
 * The `pieces root` implied by a piece layer. Only files larger than one piece have a piece layer
 * (BEP52 `piece layers`); the layer must hold exactly ceil(fileLength / pieceLength) hashes.
 */
export function piecesRootFromLayer(layer: HashList, fileLength: number, pieceLength: number): Uint8Array {
  const bpp = blocksPerPieceOf(pieceLength)
  checkFileLength(fileLength)
  if (fileLength <= pieceLength) {
    throw argError('files not larger than one piece have no piece layer (BEP52 piece layers)')
  }
  const pieces = piecesInFile(fileLength, pieceLength)
  if (hashCount(layer) !== pieces) {
    throw argError(`piece layer has ${hashCount(layer)} hashes, file has ${pieces} pieces`)
  }
  const width = nextPowerOfTwo(leafCount(fileLength)) / bpp
  return rootInPlace(concatHashes(layer), pieces, width, log2Exact(bpp))
}

/**
 * Checks a `piece layers` value against its `pieces root` (BEP52: "A torrent is not valid if ...
 * the contained hashes do not match the merkle roots or are not from the correct layer").
 */
export function verifyPieceLayer(
  root: Uint8Array,
  layer: Uint8Array,
  fileLength: number,
  pieceLength: number,
): VerifyResult {
  blocksPerPieceOf(pieceLength)
  checkFileLength(fileLength)
  if (fileLength <= pieceLength) return 'failed'
  if (layer.byteLength !== piecesInFile(fileLength, pieceLength) * HASH_SIZE) return 'failed'
  return equalBytes(piecesRootFromLayer(layer, fileLength, pieceLength), root) ? 'ok' : 'failed'
}

// ---------------------------------------------------------------------------------------------
// BEP52 hash request / hashes.

/** The range part of a BEP52 `hash request` / `hashes` / `hash reject` (the pieces root aside). */
export interface HashRequestRange {
  /** Layers above the leaves; 0 = leaf hashes (BEP52 "base layer"). */
  readonly baseLayer: number
  /** Offset, in hashes, of the first requested hash in the base layer; a multiple of `length`. */
  readonly index: number
  /** Number of base-layer hashes; a power of two ≥ 2. */
  readonly length: number
  /** Number of ancestor layers whose uncle hashes are requested (omitted ones included). */
  readonly proofLayers: number
}

export type HashRequestProblem =
  | 'bad-base-layer'
  | 'bad-length'
  | 'length-too-large'
  | 'bad-index'
  | 'bad-proof-layers'
  | 'unavailable'

export type HashesResult =
  | { readonly ok: true; readonly hashes: Uint8Array }
  | { readonly ok: false; readonly reason: HashRequestProblem }

/** libtorrent serves up to 8192 hashes; BEP52 says requests SHOULD NOT exceed 512. */
export const DEFAULT_MAX_HASH_REQUEST_LENGTH = 8192

/**
 * Checks a hash request against a tree of `numLeavesPow2` leaves (BEP52 `hash request`):
 * base layer below the root; length a power of two ≥ 2 (and ≤ `maxLength`); index a multiple of
 * length with [index, index + length) inside the (padded) base layer; proof layers at most the
 * number of layers between the base layer and the root, minus one (the root has no uncle).
 * Returns `undefined` when valid.
 */
export function checkHashRequest(
  req: HashRequestRange,
  numLeavesPow2: number,
  maxLength: number = DEFAULT_MAX_HASH_REQUEST_LENGTH,
): HashRequestProblem | undefined {
  if (!isPowerOfTwo(numLeavesPow2)) return 'bad-base-layer'
  const height = log2Exact(numLeavesPow2)
  const { baseLayer, index, length, proofLayers } = req
  if (!Number.isSafeInteger(baseLayer) || baseLayer < 0 || baseLayer >= height) return 'bad-base-layer'
  if (!isPowerOfTwo(length) || length < 2) return 'bad-length'
  if (length > maxLength) return 'length-too-large'
  const layerSize = numLeavesPow2 / 2 ** baseLayer
  if (!Number.isSafeInteger(index) || index < 0 || index % length !== 0 || index + length > layerSize) {
    return 'bad-index'
  }
  if (!Number.isSafeInteger(proofLayers) || proofLayers < 0 || proofLayers >= height - baseLayer) {
    return 'bad-proof-layers'
  }
  return undefined
}

/**
 * Number of uncle hashes in a `hashes` message: proof layer j (1-based) carries the sibling of the
 * base range's ancestor at layer base + j; BEP52 omits the first log2(length) - 1 of them (they
 * are computable from the base hashes) but still counts them.
 */
export function uncleCount(length: number, proofLayers: number): number {
  return Math.max(0, proofLayers - (log2Exact(length) - 1))
}

/** Where a `hashes` proof ends: the node it proves (compare it with the root or a known node). */
export interface ProofTop {
  readonly layer: number
  readonly index: number
  readonly hash: Uint8Array
}

/**
 * Folds a `hashes` payload (base hashes, then uncles from the lowest layer up, BEP52 `hashes`) into
 * the highest node it determines. Returns `undefined` for a malformed request or a payload of the
 * wrong size. The proof reaches the root iff `proofLayers` = height − baseLayer − 1.
 */
export function proofTop(
  baseLayer: number,
  index: number,
  length: number,
  proofLayers: number,
  hashes: HashList,
  numLeavesPow2: number,
): ProofTop | undefined {
  const req = { baseLayer, index, length, proofLayers }
  if (checkHashRequest(req, numLeavesPow2, Number.MAX_SAFE_INTEGER) !== undefined) return undefined
  const uncles = uncleCount(length, proofLayers)
  if (hashCount(hashes) !== length + uncles) return undefined
  let buf: Uint8Array
  try {
    buf = concatHashes(hashes)
  } catch {
    return undefined // an array entry that is not 32 bytes: malformed payload
  }
  const k = log2Exact(length)
  let node = rootInPlace(copyBytes(buf, 0, length * HASH_SIZE), length, length, baseLayer)
  let layer = baseLayer + k
  let pos = index / length
  for (let u = 0; u < uncles; u++) {
    const uncle = at(buf, length + u)
    node = pos % 2 === 0 ? hashPair(node, uncle) : hashPair(uncle, node)
    pos = Math.floor(pos / 2)
    layer++
  }
  return { layer, index: pos, hash: node }
}

/**
 * Verifies a `hashes` message received from a peer against the file's `pieces root`. The proof
 * must reach the root (proofLayers = log2(numLeavesPow2) − baseLayer − 1, or the whole base layer
 * requested); a shorter proof cannot be checked against the root alone and is `'failed'` (use
 * {@link proofTop} to compare its top with a known interior node instead).
 */
export function verifyHashes(
  root: Uint8Array,
  baseLayer: number,
  index: number,
  length: number,
  proofLayers: number,
  hashes: HashList,
  numLeavesPow2: number,
): VerifyResult {
  const top = proofTop(baseLayer, index, length, proofLayers, hashes, numLeavesPow2)
  if (top === undefined) return 'failed'
  if (top.layer !== log2Exact(numLeavesPow2) || top.index !== 0) return 'failed'
  return equalBytes(top.hash, root) ? 'ok' : 'failed'
}

/**
 * Checks one block (16 KiB, or the file's short last block, hashed over its actual bytes) against a
 * known piece-layer hash: `uncles` are the sibling hashes from the leaf layer up to just below the
 * piece layer (log2(pieceLength / 16 KiB) of them, lowest first), `blockIndexInPiece` the block's
 * position inside its piece. For a piece of one block, `uncles` is empty and the leaf must equal
 * `pieceHash`.
 */
export function verifyBlock(
  data: Uint8Array,
  blockIndexInPiece: number,
  uncles: HashList,
  pieceHash: Uint8Array,
): VerifyResult {
  if (data.byteLength === 0 || data.byteLength > BLOCK_SIZE) return 'failed'
  const n = hashCount(uncles)
  if (!Number.isSafeInteger(blockIndexInPiece) || blockIndexInPiece < 0 || blockIndexInPiece >= 2 ** n) {
    return 'failed'
  }
  let node = sha256(data)
  let pos = blockIndexInPiece
  for (let i = 0; i < n; i++) {
    const uncle = uncles instanceof Uint8Array ? at(uncles, i) : uncles[i]!
    if (uncle.byteLength !== HASH_SIZE) return 'failed'
    node = pos % 2 === 0 ? hashPair(node, uncle) : hashPair(uncle, node)
    pos = Math.floor(pos / 2)
  }
  return equalBytes(node, pieceHash) ? 'ok' : 'failed'
}

// ---------------------------------------------------------------------------------------------
// A file's tree, for answering hash requests.

/**
 * The layers of one file's Merkle tree from some lowest layer up to the root, enough to answer
 * BEP52 `hash request`s whose base layer is at or above that lowest layer. Each layer stores only
 * its real nodes (those covering file data); the rest are pad hashes.
 *
 * Invariant: every stored node is the hash of its two children (or is a leaf / the lowest layer).
 */
export class MerkleTree {
  /** Real leaves (blocks) of the file. */
  readonly numLeaves: number
  /** Leaves rounded up to a power of two: the tree's width. */
  readonly numLeavesPow2: number
  /** Layer of the root: log2(numLeavesPow2). */
  readonly height: number
  /** Lowest layer held (0 when built from leaves). */
  readonly lowestLayer: number
  readonly #layers: readonly Uint8Array[]

  private constructor(numLeaves: number, lowestLayer: number, base: Uint8Array) {
    this.numLeaves = numLeaves
    this.numLeavesPow2 = nextPowerOfTwo(numLeaves)
    this.height = log2Exact(this.numLeavesPow2)
    this.lowestLayer = lowestLayer
    const layers: Uint8Array[] = [base]
    let cur = base
    for (let l = lowestLayer; l < this.height; l++) {
      cur = parentLayer(cur, cur.byteLength / HASH_SIZE, l)
      layers.push(cur)
    }
    this.#layers = layers
  }

  /** The full tree of a file from its leaf hashes (one per 16 KiB block, at least one). */
  static fromLeaves(leaves: HashList): MerkleTree {
    const count = hashCount(leaves)
    if (count === 0) throw argError('a Merkle tree needs at least one leaf (empty files have none)')
    return new MerkleTree(count, 0, concatHashes(leaves))
  }

  /**
   * The tree above the piece layer of a file larger than one piece (e.g. from the metainfo's
   * `piece layers`): answers requests with base layer ≥ log2(pieceLength / 16 KiB).
   */
  static fromPieceLayer(layer: HashList, fileLength: number, pieceLength: number): MerkleTree {
    const bpp = blocksPerPieceOf(pieceLength)
    checkFileLength(fileLength)
    if (fileLength <= pieceLength) throw argError('files not larger than one piece have no piece layer')
    const pieces = piecesInFile(fileLength, pieceLength)
    if (hashCount(layer) !== pieces) {
      throw argError(`piece layer has ${hashCount(layer)} hashes, file has ${pieces} pieces`)
    }
    return new MerkleTree(leafCount(fileLength), log2Exact(bpp), concatHashes(layer))
  }

  /** The `pieces root`. */
  get root(): Uint8Array {
    return copyBytes(this.#layers[this.#layers.length - 1]!, 0, HASH_SIZE)
  }

  /** Positions in `layer` including padding: numLeavesPow2 / 2^layer. */
  layerWidth(layer: number): number {
    return this.numLeavesPow2 / 2 ** layer
  }

  /** Real (stored) nodes of `layer`, concatenated, or `undefined` if that layer is not held. */
  layer(layer: number): Uint8Array | undefined {
    const l = this.#layers[layer - this.lowestLayer]
    return l === undefined || layer < this.lowestLayer ? undefined : copyBytes(l)
  }

  /** One node (a pad hash beyond the real nodes), or `undefined` if not held / out of range. */
  node(layer: number, index: number): Uint8Array | undefined {
    const ref = this.#nodeRef(layer, index)
    return ref === undefined ? undefined : copyBytes(ref)
  }

  #nodeRef(layer: number, index: number): Uint8Array | undefined {
    if (layer < this.lowestLayer || layer > this.height) return undefined
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.layerWidth(layer)) return undefined
    const stored = this.#layers[layer - this.lowestLayer]!
    return index < stored.byteLength / HASH_SIZE ? at(stored, index) : padRef(layer)
  }

  /**
   * Answers a BEP52 `hash request`: `length` hashes of the base layer starting at `index`
   * (pad hashes past the end of the file), then one uncle per proof layer, lowest first, skipping
   * the first log2(length) − 1 proof layers (BEP52 `hashes`). Invalid or unanswerable requests
   * give a reason, to be answered with `hash reject`.
   */
  hashes(req: HashRequestRange, maxLength: number = DEFAULT_MAX_HASH_REQUEST_LENGTH): HashesResult {
    const problem = checkHashRequest(req, this.numLeavesPow2, maxLength)
    if (problem !== undefined) return { ok: false, reason: problem }
    if (req.baseLayer < this.lowestLayer) return { ok: false, reason: 'unavailable' }
    const uncles = uncleCount(req.length, req.proofLayers)
    const out = new Uint8Array((req.length + uncles) * HASH_SIZE)
    const stored = this.#layers[req.baseLayer - this.lowestLayer]!
    const storedCount = stored.byteLength / HASH_SIZE
    const realEnd = Math.min(req.index + req.length, storedCount)
    if (realEnd > req.index) out.set(stored.subarray(req.index * HASH_SIZE, realEnd * HASH_SIZE), 0)
    const pad = padRef(req.baseLayer)
    for (let i = Math.max(realEnd, req.index); i < req.index + req.length; i++) {
      out.set(pad, (i - req.index) * HASH_SIZE)
    }
    // The base range's subtree root sits at layer base + k; its uncles come from there up.
    const k = log2Exact(req.length)
    let pos = req.index / req.length
    for (let u = 0; u < uncles; u++) {
      const sibling = pos % 2 === 0 ? pos + 1 : pos - 1
      const uncle = this.#nodeRef(req.baseLayer + k + u, sibling)!
      out.set(uncle, (req.length + u) * HASH_SIZE)
      pos = Math.floor(pos / 2)
    }
    return { ok: true, hashes: out }
  }
}
