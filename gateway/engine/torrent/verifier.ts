/**
 * Piece verification: decides whether a piece's stored bytes are right, from the hashes the
 * storage computed (`PieceHashes`) and what the torrent promises.
 *
 * - v1 (BEP3): SHA-1 of the piece over the linear space, pad bytes as zeros (BEP47).
 * - v2 (BEP52): the piece-layer hash of the piece's file, built from its 16 KiB leaf hashes; a file
 *   not larger than one piece has no piece layer and is checked against its `pieces root` directly.
 *   Piece layers come from the .torrent or, after a magnet start, from peers (`hash request`); until
 *   a file's layer is known its pieces verify as `unknown` (v2-only) or by v1 alone (hybrid).
 * - hybrid: every half that can be checked must pass.
 */
import { hashPieceV2 } from '../../protocol/hashers.ts'
import { equalBytes, toHex } from '../../protocol/hex.ts'
import { leafCount, merkleRoot, nextPowerOfTwo, piecesRootFromLayer } from '../../protocol/merkle.ts'
import type { TorrentInfo } from '../../protocol/types.ts'
import type { PieceGeometry } from '../piece-geometry.ts'
import type { HashWant, PieceHashes } from '../storage.ts'

export type VerifyOutcome = 'ok' | 'failed' | 'unknown'

const HASH = 32

export class PieceVerifier {
  readonly #info: TorrentInfo
  readonly #geometry: PieceGeometry
  /** hex pieces root → concatenated piece-layer hashes (verified against the root). */
  readonly #layers: Map<string, Uint8Array>

  constructor(info: TorrentInfo, geometry: PieceGeometry, pieceLayers: ReadonlyMap<string, Uint8Array>) {
    this.#info = info
    this.#geometry = geometry
    this.#layers = new Map(pieceLayers)
  }

  get hasV1(): boolean {
    return this.#info.pieces !== undefined
  }

  get hasV2(): boolean {
    return this.#info.version !== 'v1'
  }

  /** The hashes storage must compute for `piece`. */
  want(piece: number): HashWant {
    return { v1: this.hasV1, v2: this.hasV2 && this.#canCheckV2(piece) }
  }

  /** The piece layer of a file, if known (for serving BEP52 hash requests). */
  layer(piecesRootHex: string): Uint8Array | undefined {
    return this.#layers.get(piecesRootHex)
  }

  /** Layers known so far (hex root → layer). */
  layers(): ReadonlyMap<string, Uint8Array> {
    return this.#layers
  }

  /** Files (by index) larger than one piece whose piece layer is still unknown. */
  missingLayers(): number[] {
    const out: number[] = []
    this.#info.files.forEach((f, i) => {
      if (f.padding || !f.piecesRoot || f.length <= this.#info.pieceLength) return
      if (!this.#layers.has(toHex(f.piecesRoot))) out.push(i)
    })
    return out
  }

  /**
   * Adds a piece layer received from a peer. It is accepted only if it hashes up to the file's
   * `pieces root` (BEP52). Returns whether it was accepted.
   */
  addLayer(fileIndex: number, layer: Uint8Array): boolean {
    const f = this.#info.files[fileIndex]
    if (!f?.piecesRoot || f.padding) return false
    const pieces = Math.ceil(f.length / this.#info.pieceLength)
    if (layer.byteLength !== pieces * HASH) return false
    const root = piecesRootFromLayer(layer, f.length, this.#info.pieceLength)
    if (!equalBytes(root, f.piecesRoot)) return false
    this.#layers.set(toHex(f.piecesRoot), layer)
    return true
  }

  #canCheckV2(piece: number): boolean {
    const loc = this.#geometry.v2Location(piece)
    if (!loc) return false
    const f = loc.file
    if (!f.piecesRoot) return false
    if (f.length <= this.#info.pieceLength) return true
    return this.#layers.has(toHex(f.piecesRoot))
  }

  /** Verifies one piece. `unknown` means no hash is available yet to check it. */
  verify(piece: number, hashes: PieceHashes): VerifyOutcome {
    let checked = false
    if (this.hasV1) {
      const expected = this.#info.pieces!.subarray(piece * 20, piece * 20 + 20)
      if (!hashes.sha1 || !equalBytes(hashes.sha1, expected)) return 'failed'
      checked = true
    }
    // Leaves may be absent when they were not asked for (a hybrid recheck checks v1 only, or the
    // piece layer arrived while the piece was being hashed): then the v2 half is not checked.
    if (this.hasV2 && hashes.v2Leaves !== undefined && this.#canCheckV2(piece)) {
      const r = this.#verifyV2(piece, hashes.v2Leaves)
      if (r === 'failed') return 'failed'
      if (r === 'ok') checked = true
    }
    return checked ? 'ok' : 'unknown'
  }

  #verifyV2(piece: number, leaves: Uint8Array[] | undefined): VerifyOutcome {
    const loc = this.#geometry.v2Location(piece)
    const root = loc?.file.piecesRoot
    if (!loc || !root) return 'unknown'
    if (!leaves) return 'failed'
    const f = loc.file
    const pieceLength = this.#info.pieceLength
    if (f.length <= pieceLength) {
      // BEP52: no piece layer; the root covers the file's leaves padded to a power of two.
      const n = leafCount(f.length)
      if (leaves.length !== n) return 'failed'
      const merkle = merkleRoot(leaves, nextPowerOfTwo(n))
      return equalBytes(merkle, root) ? 'ok' : 'failed'
    }
    const layer = this.#layers.get(toHex(root))
    if (!layer) return 'unknown'
    const expected = layer.subarray(loc.pieceInFile * HASH, loc.pieceInFile * HASH + HASH)
    if (expected.byteLength !== HASH) return 'failed'
    const expectedLeaves = Math.min(pieceLength, loc.dataLength) / (16 * 1024)
    if (leaves.length !== Math.ceil(expectedLeaves)) return 'failed'
    return equalBytes(hashPieceV2(leaves, pieceLength), expected) ? 'ok' : 'failed'
  }
}
