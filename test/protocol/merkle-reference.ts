/**
 * A deliberately naive, independent BEP52 Merkle reference for the protocol tests: recursive node
 * definition straight from the BEP text (leaves past the end are 32 zero bytes; a node is the
 * SHA-256 of its two children), arrays of Buffers, no shared code with `gateway/protocol/`.
 */

import { createHash } from 'node:crypto'

export const ZERO32 = Buffer.alloc(32)
const BLOCK = 16384

export function refSha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}

/** Leaf hashes of `data` split in 16 KiB blocks, the last one over its actual bytes. */
export function refLeaves(data: Uint8Array): Buffer[] {
  const out: Buffer[] = []
  for (let off = 0; off < data.byteLength; off += BLOCK) {
    out.push(refSha256(data.subarray(off, Math.min(off + BLOCK, data.byteLength))))
  }
  return out
}

export function refPow2(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}

export function refLog2(n: number): number {
  return Math.round(Math.log2(n))
}

/** A tree over `leaves`, `width` (power of two) leaves wide; nodes memoised per instance. */
export class RefTree {
  readonly leaves: readonly Buffer[]
  readonly width: number
  readonly height: number
  readonly #memo = new Map<string, Buffer>()

  constructor(leaves: readonly Buffer[], width = refPow2(leaves.length)) {
    this.leaves = leaves
    this.width = width
    this.height = refLog2(width)
  }

  node(layer: number, index: number): Buffer {
    if (layer === 0) return this.leaves[index] ?? ZERO32
    const key = `${layer}:${index}`
    let v = this.#memo.get(key)
    if (v === undefined) {
      v = refSha256(this.node(layer - 1, 2 * index), this.node(layer - 1, 2 * index + 1))
      this.#memo.set(key, v)
    }
    return v
  }

  get root(): Buffer {
    return this.node(this.height, 0)
  }

  /**
   * BEP52 `hashes` payload, written from the BEP text: the `length` base hashes, then for proof
   * layer j = 1..proofLayers the sibling of the base range's ancestor at layer base + j, where the
   * first log2(length) - 1 proof layers are omitted.
   */
  hashesFor(base: number, index: number, length: number, proofLayers: number): Buffer[] {
    const out: Buffer[] = []
    for (let i = 0; i < length; i++) out.push(this.node(base, index + i))
    const omitted = refLog2(length) - 1
    for (let j = 1; j <= proofLayers; j++) {
      if (j <= omitted) continue
      const ancestor = Math.floor(index / 2 ** j)
      out.push(this.node(base + j, ancestor % 2 === 0 ? ancestor + 1 : ancestor - 1))
    }
    return out
  }
}

/** Piece layer the naive way: per piece, the root of its bpp leaves (zero-padded); none if ≤ 1 piece. */
export function refPieceLayer(leaves: readonly Buffer[], pieceLength: number): Buffer[] {
  const bpp = pieceLength / BLOCK
  if (leaves.length <= bpp) return []
  const out: Buffer[] = []
  for (let p = 0; p * bpp < leaves.length; p++) {
    out.push(new RefTree(leaves.slice(p * bpp, (p + 1) * bpp), bpp).root)
  }
  return out
}

/** Deterministic pseudo-random bytes (SHA-256 in counter mode over a seed). */
export function refBytes(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length)
  const s = Buffer.alloc(8)
  for (let off = 0, ctr = 0; off < length; off += 32, ctr++) {
    s.writeUInt32BE(seed >>> 0, 0)
    s.writeUInt32BE(ctr, 4)
    refSha256(s).copy(out, off)
  }
  return out
}

/** Random-looking distinct leaves. */
export function refRandomLeaves(count: number, seed: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < count; i++) out.push(refSha256(Buffer.from(`leaf:${seed}:${i}`)))
  return out
}
