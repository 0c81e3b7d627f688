/**
 * The Codex dataset Merkle tree (NOTES §3.5; nim-codex `codex/merkletree/merkletree.nim`
 * `merkleTreeWorker`, `codex/merkletree/codex/codex.nim` `compress`).
 *
 *   leaf_i         = sha256(paddedBlock_i)
 *   compress(x,y,k) = sha256(x || y || [k])
 *   keys: BOTTOM=1 (pair on the leaf layer), NONE=0 (pair above),
 *         ODD_BOTTOM=3 (lone last leaf), ODD=2 (lone last node above); ZERO = 32 zero bytes.
 *   A layer of odd length compresses its last node with ZERO. The root is the single node of the
 *   first layer above the leaves that has length 1, so even one leaf gets one compression.
 *
 * `CodexTreeBuilder` computes the same root while leaves stream in, keeping one pending node per
 * level (O(log n) state). A full pair at any level is compressed the same way whatever the final
 * size, so pairs are reduced as soon as both halves exist; only the lone last node of each
 * odd-length layer depends on the final size, and `root()` resolves those bottom-up at the end.
 */
import { createHash } from 'node:crypto'

export const DIGEST_BYTES = 32

export const CodexTreeKey = Object.freeze({ None: 0, Bottom: 1, Odd: 2, OddBottom: 3 } as const)
export type CodexTreeKey = (typeof CodexTreeKey)[keyof typeof CodexTreeKey]

const ZERO = new Uint8Array(DIGEST_BYTES)

/** Thrown when a tree is requested over zero leaves (Codex: `Empty leaves`). */
export class EmptyTreeError extends Error {
  override readonly name = 'EmptyTreeError'
  readonly code = 'CODEX_ERR_EMPTY_LEAVES'
  constructor() {
    super('Empty leaves')
  }
}

export function compress(x: Uint8Array, y: Uint8Array, key: CodexTreeKey): Uint8Array {
  return createHash('sha256')
    .update(x)
    .update(y)
    .update(new Uint8Array([key]))
    .digest()
}

function checkDigest(d: Uint8Array): void {
  if (d.length !== DIGEST_BYTES)
    throw new RangeError(`tree node must be ${DIGEST_BYTES} bytes, got ${d.length}`)
}

/** Reference implementation: the algorithm of NOTES §3.5 written layer by layer. */
export function codexTreeRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) throw new EmptyTreeError()
  let layer: readonly Uint8Array[] = leaves
  let bottom = true
  for (;;) {
    if (!bottom && layer.length === 1) return layer[0]!
    const next: Uint8Array[] = []
    const pairKey = bottom ? CodexTreeKey.Bottom : CodexTreeKey.None
    for (let i = 0; i + 1 < layer.length; i += 2) next.push(compress(layer[i]!, layer[i + 1]!, pairKey))
    if (layer.length % 2 === 1) {
      next.push(compress(layer[layer.length - 1]!, ZERO, bottom ? CodexTreeKey.OddBottom : CodexTreeKey.Odd))
    }
    layer = next
    bottom = false
  }
}

/** Streaming builder: `addLeaf` per block digest, then `root()`. */
export class CodexTreeBuilder {
  /** pending[k]: the first node of an incomplete pair on level k, if any. */
  readonly #pending: (Uint8Array | undefined)[] = []
  /** counts[k]: number of nodes pushed on level k so far. */
  readonly #counts: number[] = []
  #root: Uint8Array | undefined

  get leafCount(): number {
    return this.#counts[0] ?? 0
  }

  addLeaf(digest: Uint8Array): void {
    if (this.#root !== undefined) throw new Error('CodexTreeBuilder: root() already computed')
    checkDigest(digest)
    this.#push(0, Uint8Array.from(digest))
  }

  #push(level: number, node: Uint8Array): void {
    let k = level
    let n = node
    for (;;) {
      this.#counts[k] = (this.#counts[k] ?? 0) + 1
      const waiting = this.#pending[k]
      if (waiting === undefined) {
        this.#pending[k] = n
        return
      }
      this.#pending[k] = undefined
      n = compress(waiting, n, k === 0 ? CodexTreeKey.Bottom : CodexTreeKey.None)
      k++
    }
  }

  /** The root digest (32 bytes). Further leaves are refused afterwards. */
  root(): Uint8Array {
    if (this.#root !== undefined) return this.#root
    if (this.leafCount === 0) throw new EmptyTreeError()
    for (let k = 0; ; k++) {
      // every level below k is complete, so level k is complete too
      const count = this.#counts[k] ?? 0
      if (k > 0 && count === 1) {
        this.#root = this.#pending[k]!
        return this.#root
      }
      if (count % 2 === 1) {
        const last = this.#pending[k]!
        this.#pending[k] = undefined
        this.#push(k + 1, compress(last, ZERO, k === 0 ? CodexTreeKey.OddBottom : CodexTreeKey.Odd))
      }
    }
  }
}
