/**
 * Incremental piece hashing that never holds a whole file:
 * - v1 (BEP3 `pieces`): SHA-1 of each piece of the linear piece space, fed in order; BEP47 pad
 *   files and v2 alignment gaps hash as zeros ({@link V1PieceHasher.updateZeros}).
 * - v2 (BEP52 `pieces root` / `piece layers`): SHA-256 of each 16 KiB block, accepted in any order,
 *   keeping only the 32-byte leaf digests ({@link V2FileHasher}); the tree math is in `merkle.ts`.
 *
 * Pure: no I/O, no timers, no logging.
 */

import { createHash, type Hash } from 'node:crypto'
import {
  copyBytes,
  HASH_SIZE,
  isPowerOfTwo,
  leafCount,
  MerkleTree,
  merkleRoot,
  pieceLayer,
  piecesRootFromLayer,
  sha256,
} from './merkle.ts'
import { BLOCK_SIZE } from './types.ts'

/** Size of a SHA-1 digest (one v1 piece hash). */
export const SHA1_SIZE = 20

export type HasherErrorCode = 'GW_ERR_HASH_INPUT' | 'GW_ERR_HASH_INCOMPLETE'

/** Misuse of a hasher by our own code (wrong sizes, out-of-range block, hashing too early). */
export class HasherError extends Error {
  readonly code: HasherErrorCode

  constructor(code: HasherErrorCode, message: string) {
    super(message)
    this.name = 'HasherError'
    this.code = code
  }
}

function inputError(message: string): HasherError {
  return new HasherError('GW_ERR_HASH_INPUT', message)
}

/** SHA-1 over the concatenation of `data` (without concatenating). */
export function sha1(...data: Uint8Array[]): Uint8Array {
  const h = createHash('sha1')
  for (const d of data) h.update(d)
  const out = h.digest()
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** Largest zero buffer a V1PieceHasher allocates for padding. */
const ZERO_CHUNK = 64 * 1024

/**
 * SHA-1 per piece over the linear piece space (BEP3 `pieces`). Bytes are fed strictly in order
 * and may cross piece boundaries; each completed piece's 20-byte digest is kept (20 bytes per
 * piece, never the data). Use one instance per piece, or one for a whole torrent.
 */
export class V1PieceHasher {
  readonly pieceLength: number
  /** When given, the hasher refuses to go past it and `digest()` requires exactly this many bytes. */
  readonly totalLength: number | undefined
  #current: Hash | undefined
  #inPiece = 0
  #total = 0
  #digests: Uint8Array[] = []
  #zeros: Uint8Array | undefined
  #finished = false

  constructor(pieceLength: number, totalLength?: number) {
    if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
      throw inputError(`piece length must be a positive integer, got ${pieceLength}`)
    }
    if (totalLength !== undefined && (!Number.isSafeInteger(totalLength) || totalLength < 0)) {
      throw inputError(`total length must be a non-negative integer, got ${totalLength}`)
    }
    this.pieceLength = pieceLength
    this.totalLength = totalLength
  }

  /** Bytes fed so far. */
  get bytesHashed(): number {
    return this.#total
  }

  /** Pieces whose digest is final. */
  get completedPieces(): number {
    return this.#digests.length
  }

  /** Feeds the next bytes of the linear piece space. */
  update(data: Uint8Array): this {
    this.#checkRoom(data.byteLength)
    let off = 0
    while (off < data.byteLength) {
      const take = Math.min(this.pieceLength - this.#inPiece, data.byteLength - off)
      this.#hashOf().update(off === 0 && take === data.byteLength ? data : data.subarray(off, off + take))
      this.#advance(take)
      off += take
    }
    return this
  }

  /** Feeds `length` zero bytes (BEP47 pad files, v2 alignment gaps in hybrid torrents). */
  updateZeros(length: number): this {
    if (!Number.isSafeInteger(length) || length < 0) throw inputError(`bad zero length ${length}`)
    this.#checkRoom(length)
    let left = length
    while (left > 0) {
      const take = Math.min(this.pieceLength - this.#inPiece, left, ZERO_CHUNK)
      if (this.#zeros === undefined || this.#zeros.byteLength < take) {
        this.#zeros = new Uint8Array(Math.min(ZERO_CHUNK, Math.max(take, length)))
      }
      this.#hashOf().update(this.#zeros.subarray(0, take))
      this.#advance(take)
      left -= take
    }
    return this
  }

  /**
   * Finishes: the last (possibly short, BEP3) piece is hashed over the bytes it has. Returns the
   * concatenated 20-byte digests of all pieces. Zero bytes fed → empty result.
   */
  digest(): Uint8Array {
    if (this.#finished) throw inputError('digest() already called')
    if (this.totalLength !== undefined && this.#total !== this.totalLength) {
      throw new HasherError(
        'GW_ERR_HASH_INCOMPLETE',
        `hashed ${this.#total} of ${this.totalLength} bytes of the piece space`,
      )
    }
    this.#finished = true
    if (this.#current !== undefined) {
      this.#digests.push(this.#current.digest())
      this.#current = undefined
    }
    const out = new Uint8Array(this.#digests.length * SHA1_SIZE)
    this.#digests.forEach((d, i) => {
      out.set(d, i * SHA1_SIZE)
    })
    this.#digests = []
    return out
  }

  #checkRoom(n: number): void {
    if (this.#finished) throw inputError('hasher already finished')
    if (this.totalLength !== undefined && this.#total + n > this.totalLength) {
      throw inputError(`feeding ${n} bytes would exceed the total length ${this.totalLength}`)
    }
  }

  #hashOf(): Hash {
    if (this.#current === undefined) this.#current = createHash('sha1')
    return this.#current
  }

  #advance(n: number): void {
    this.#inPiece += n
    this.#total += n
    if (this.#inPiece === this.pieceLength) {
      this.#digests.push(this.#hashOf().digest())
      this.#current = undefined
      this.#inPiece = 0
    }
  }
}

/**
 * BEP52 leaf hash of one block: SHA-256 over its actual bytes (16 KiB, or fewer for a file's last
 * block: "The last block may be shorter than 16KiB").
 */
export function blockHash(data: Uint8Array): Uint8Array {
  if (data.byteLength === 0 || data.byteLength > BLOCK_SIZE) {
    throw inputError(`a block is 1..${BLOCK_SIZE} bytes, got ${data.byteLength}`)
  }
  return sha256(data)
}

/**
 * Piece-layer hash of one piece from its leaf hashes, completed with zero leaves up to
 * pieceLength / 16 KiB (BEP52 `piece layers`: the last piece of a file is padded).
 *
 * NOTE: a file not larger than one piece has no piece layer; its single piece is checked against
 * the `pieces root`, which is `merkleRoot(blockHashes)` (padded only to the next power of two),
 * not this value.
 */
export function hashPieceV2(blockHashes: readonly Uint8Array[], pieceLength: number): Uint8Array {
  if (!isPowerOfTwo(pieceLength) || pieceLength < BLOCK_SIZE) {
    throw inputError(`piece length must be a power of two >= ${BLOCK_SIZE}, got ${pieceLength}`)
  }
  const bpp = pieceLength / BLOCK_SIZE
  if (blockHashes.length === 0 || blockHashes.length > bpp) {
    throw inputError(`a piece has 1..${bpp} blocks, got ${blockHashes.length}`)
  }
  return merkleRoot(blockHashes, bpp)
}

/**
 * Collects the leaf hashes of one file, blocks arriving in any order, storing 32 bytes per block.
 * Re-adding a block replaces its leaf (e.g. after a failed piece was downloaded again).
 */
export class V2FileHasher {
  readonly fileLength: number
  /** Number of blocks (leaves) of the file. */
  readonly blockCount: number
  readonly #leaves: Uint8Array
  readonly #have: Uint8Array
  #haveCount = 0
  /** Last piece layer computed (small: 1/blocksPerPiece of the leaves); cleared on any change. */
  #layerCache: { readonly pieceLength: number; readonly layer: Uint8Array } | undefined
  #rootCache: Uint8Array | undefined

  constructor(fileLength: number) {
    if (!Number.isSafeInteger(fileLength) || fileLength < 0) {
      throw inputError(`file length must be a non-negative integer, got ${fileLength}`)
    }
    this.fileLength = fileLength
    this.blockCount = leafCount(fileLength)
    this.#leaves = new Uint8Array(this.blockCount * HASH_SIZE)
    this.#have = new Uint8Array(this.blockCount)
  }

  /** Expected size of block `blockIndex` (the last one may be short). */
  blockLength(blockIndex: number): number {
    this.#checkIndex(blockIndex)
    return Math.min(BLOCK_SIZE, this.fileLength - blockIndex * BLOCK_SIZE)
  }

  /** Hashes and records block `blockIndex` (its full bytes: 16 KiB, or the short last block). */
  addBlock(blockIndex: number, data: Uint8Array): this {
    const expected = this.blockLength(blockIndex)
    if (data.byteLength !== expected) {
      throw inputError(`block ${blockIndex} must be ${expected} bytes, got ${data.byteLength}`)
    }
    return this.#store(blockIndex, sha256(data))
  }

  /** Records a leaf hash computed elsewhere (e.g. next to the data by the storage backend). */
  setBlockHash(blockIndex: number, leaf: Uint8Array): this {
    this.#checkIndex(blockIndex)
    if (leaf.byteLength !== HASH_SIZE) throw inputError(`a leaf hash is 32 bytes, got ${leaf.byteLength}`)
    return this.#store(blockIndex, leaf)
  }

  hasBlock(blockIndex: number): boolean {
    this.#checkIndex(blockIndex)
    return this.#have[blockIndex] === 1
  }

  /** Blocks recorded so far. */
  get blocksHashed(): number {
    return this.#haveCount
  }

  /** True once every block has a leaf (always true for an empty file). */
  get complete(): boolean {
    return this.#haveCount === this.blockCount
  }

  /** The leaf layer, concatenated (a copy). Requires every block. */
  leaves(): Uint8Array {
    this.#checkComplete()
    return copyBytes(this.#leaves)
  }

  /** BEP52 `pieces root`. Empty files have none (BEP52 `pieces root`: "for non-empty files"). */
  piecesRoot(): Uint8Array {
    this.#checkComplete()
    if (this.blockCount === 0) throw inputError('empty files have no pieces root (BEP52)')
    if (this.#rootCache === undefined) {
      // When a piece layer was computed already, finishing the tree from it halves the work.
      const cached = this.#layerCache
      this.#rootCache =
        cached !== undefined && cached.layer.byteLength > 0
          ? piecesRootFromLayer(cached.layer, this.fileLength, cached.pieceLength)
          : merkleRoot(this.#leaves)
    }
    return copyBytes(this.#rootCache)
  }

  /** BEP52 `piece layers` value; empty for files not larger than one piece. */
  pieceLayer(pieceLength: number): Uint8Array {
    this.#checkComplete()
    if (this.#layerCache?.pieceLength !== pieceLength) {
      this.#layerCache = { pieceLength, layer: pieceLayer(this.#leaves, pieceLength) }
    }
    return copyBytes(this.#layerCache.layer)
  }

  /** The whole tree, to answer `hash request`s. */
  tree(): MerkleTree {
    this.#checkComplete()
    return MerkleTree.fromLeaves(this.#leaves)
  }

  #store(blockIndex: number, leaf: Uint8Array): this {
    this.#layerCache = undefined
    this.#rootCache = undefined
    this.#leaves.set(leaf, blockIndex * HASH_SIZE)
    if (this.#have[blockIndex] !== 1) {
      this.#have[blockIndex] = 1
      this.#haveCount++
    }
    return this
  }

  #checkIndex(blockIndex: number): void {
    if (!Number.isSafeInteger(blockIndex) || blockIndex < 0 || blockIndex >= this.blockCount) {
      throw inputError(`block index ${blockIndex} out of range 0..${this.blockCount - 1}`)
    }
  }

  #checkComplete(): void {
    if (!this.complete) {
      throw new HasherError(
        'GW_ERR_HASH_INCOMPLETE',
        `${this.blockCount - this.#haveCount} of ${this.blockCount} blocks not hashed yet`,
      )
    }
  }
}
