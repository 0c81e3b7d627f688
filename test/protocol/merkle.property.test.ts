/**
 * Property tests (fast-check) for the BEP52 Merkle code: random leaf counts, file lengths, block
 * orders and hash requests against the naive reference; random single-bit mutations of `hashes`
 * payloads must fail verification. Thousands of cases, seeded per run, bounded in size.
 */

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { V2FileHasher } from '../../gateway/protocol/hashers.ts'
import {
  MerkleTree,
  merkleRoot,
  pieceLayer,
  piecesRootFromLayer,
  proofTop,
  verifyHashes,
  verifyPieceLayer,
} from '../../gateway/protocol/merkle.ts'
import { RefTree, refLeaves, refPieceLayer, refRandomLeaves } from './merkle-reference.ts'

const BLOCK = 16 * 1024
/** Source of file contents: files are windows into it (content does not need to be unique). */
const POOL = randomBytes(2 * 1024 * 1024)

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0
}

describe('Merkle properties', () => {
  test('merkleRoot, pieceLayer and piecesRootFromLayer agree with the reference', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 600 }),
        fc.integer({ min: 0, max: 6 }),
        fc.nat(),
        (n, plExp, seed) => {
          const pl = BLOCK * 2 ** plExp
          const leaves = refRandomLeaves(n, seed)
          const ref = new RefTree(leaves)
          assert.ok(same(merkleRoot(leaves), ref.root))
          const layer = pieceLayer(leaves, pl)
          assert.ok(same(layer, Buffer.concat(refPieceLayer(leaves, pl))))
          const fileLength = n * BLOCK - (seed % BLOCK)
          if (fileLength > pl) {
            assert.ok(same(piecesRootFromLayer(layer, fileLength, pl), ref.root))
            assert.equal(verifyPieceLayer(ref.root, layer, fileLength, pl), 'ok')
          } else {
            assert.equal(layer.byteLength, 0)
          }
        },
      ),
      { numRuns: 1500 },
    )
  })

  test('V2FileHasher: any file length, any block order → the reference pieces root', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 48 * BLOCK + 100 }),
        fc.integer({ min: 0, max: POOL.byteLength - (48 * BLOCK + 100) }),
        fc.array(fc.nat(), { minLength: 49, maxLength: 49 }),
        (len, offset, keys) => {
          const data = POOL.subarray(offset, offset + len)
          const h = new V2FileHasher(len)
          const order = [...Array(h.blockCount).keys()].sort((a, b) => keys[a]! - keys[b]! || a - b)
          for (const i of order) h.addBlock(i, data.subarray(i * BLOCK, Math.min((i + 1) * BLOCK, len)))
          const leaves = refLeaves(data)
          assert.ok(same(h.piecesRoot(), new RefTree(leaves).root))
          assert.ok(same(h.pieceLayer(64 * 1024), Buffer.concat(refPieceLayer(leaves, 64 * 1024))))
        },
      ),
      { numRuns: 1000 },
    )
  })

  test('random hash requests: answers equal the reference, verify, and any bit flip fails', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 512 }),
        fc.nat(),
        fc.record({
          base: fc.nat(),
          len: fc.nat(),
          idx: fc.nat(),
          proof: fc.nat(),
          flip: fc.nat(),
          shift: fc.nat(),
        }),
        (n, seed, r) => {
          const leaves = refRandomLeaves(n, seed)
          const tree = MerkleTree.fromLeaves(leaves)
          const ref = new RefTree(leaves)
          const h = tree.height
          const baseLayer = r.base % h
          const layerWidth = tree.numLeavesPow2 / 2 ** baseLayer
          const length = 2 ** (1 + (r.len % Math.log2(layerWidth)))
          const index = (r.idx % (layerWidth / length)) * length
          const proofLayers = r.proof % (h - baseLayer)
          const res = tree.hashes({ baseLayer, index, length, proofLayers })
          assert.ok(res.ok)
          const want = Buffer.concat(ref.hashesFor(baseLayer, index, length, proofLayers))
          assert.ok(same(res.hashes, want))

          const w = tree.numLeavesPow2
          const top = proofTop(baseLayer, index, length, proofLayers, res.hashes, w)
          assert.ok(top)
          assert.ok(same(top.hash, ref.node(top.layer, top.index)))
          const reachesRoot = top.layer === h
          assert.equal(
            verifyHashes(ref.root, baseLayer, index, length, proofLayers, res.hashes, w),
            reachesRoot ? 'ok' : 'failed',
          )

          // Flip one random bit anywhere in the payload: the proved node changes.
          const bit = r.flip % (res.hashes.byteLength * 8)
          const bad = res.hashes.slice()
          bad[bit >> 3]! ^= 1 << (bit & 7)
          const badTop = proofTop(baseLayer, index, length, proofLayers, bad, w)
          assert.ok(badTop)
          assert.ok(!same(badTop.hash, top.hash))
          assert.equal(verifyHashes(ref.root, baseLayer, index, length, proofLayers, bad, w), 'failed')

          // The same payload claimed for another index verifies only if it is also the right answer there.
          const slots = layerWidth / length
          if (reachesRoot && slots > 1) {
            const other = ((index / length + 1 + (r.shift % (slots - 1))) % slots) * length
            const otherWant = Buffer.concat(ref.hashesFor(baseLayer, other, length, proofLayers))
            const verdict = verifyHashes(ref.root, baseLayer, other, length, proofLayers, res.hashes, w)
            assert.equal(verdict, same(otherWant, res.hashes) ? 'ok' : 'failed')
          }
        },
      ),
      { numRuns: 2000 },
    )
  })
})
