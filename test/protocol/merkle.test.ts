/**
 * BEP52 Merkle trees: pad hashes, roots, piece layers, hash request answers and proofs, against the
 * naive reference in merkle-reference.ts, plus an interop check of pieces roots and piece layers
 * against libtorrent (python3-libtorrent, no session, no network).
 */

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { V2FileHasher } from '../../gateway/protocol/hashers.ts'
import { fromHex, toHex } from '../../gateway/protocol/hex.ts'
import {
  checkHashRequest,
  MerkleError,
  MerkleTree,
  merkleRoot,
  padHash,
  pieceLayer,
  piecesRootFromLayer,
  proofTop,
  uncleCount,
  verifyBlock,
  verifyHashes,
  verifyPieceLayer,
} from '../../gateway/protocol/merkle.ts'
import {
  RefTree,
  refBytes,
  refLeaves,
  refPieceLayer,
  refPow2,
  refRandomLeaves,
  refSha256,
  ZERO32,
} from './merkle-reference.ts'

const KiB = 1024
const MiB = 1024 * KiB
const BLOCK = 16 * KiB

function cat(list: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(list)
}

function flipBit(buf: Uint8Array, bit: number): Uint8Array {
  const out = buf.slice()
  out[bit >> 3]! ^= 1 << (bit & 7)
  return out
}

describe('padHash (BEP52: leaves past the end are zero)', () => {
  test('layer 0 is 32 zero bytes, layer l is the root of 2^l zero leaves', () => {
    assert.deepEqual(padHash(0), new Uint8Array(32))
    for (let l = 0; l <= 12; l++) {
      assert.deepEqual(padHash(l), new Uint8Array(new RefTree([], 2 ** l).root), `layer ${l}`)
    }
  })

  test('returns a copy: mutating it does not poison later results', () => {
    const a = padHash(3)
    a.fill(7)
    assert.deepEqual(padHash(3), new Uint8Array(new RefTree([], 8).root))
  })

  test('rejects negative and fractional layers', () => {
    assert.throws(() => padHash(-1), MerkleError)
    assert.throws(() => padHash(1.5), { code: 'GW_ERR_MERKLE_ARGUMENT' })
  })
})

describe('merkleRoot', () => {
  test('equals the reference for 1..70 leaves and some larger counts, as list or concatenated', () => {
    for (const n of [...Array.from({ length: 70 }, (_, i) => i + 1), 127, 128, 129, 255, 300, 513]) {
      const leaves = refRandomLeaves(n, n)
      const want = new RefTree(leaves).root
      assert.deepEqual(Buffer.from(merkleRoot(leaves)), want, `n=${n} (list)`)
      assert.deepEqual(Buffer.from(merkleRoot(cat(leaves))), want, `n=${n} (concatenated)`)
    }
  })

  test('a single leaf is its own root (file of one block)', () => {
    const [leaf] = refRandomLeaves(1, 1)
    assert.deepEqual(Buffer.from(merkleRoot([leaf!])), leaf)
  })

  test('explicit leafCountPow2 pads with zero leaves', () => {
    const leaves = refRandomLeaves(3, 9)
    for (const w of [4, 8, 16, 64]) {
      assert.deepEqual(Buffer.from(merkleRoot(leaves, w)), new RefTree(leaves, w).root, `width ${w}`)
    }
    assert.deepEqual(merkleRoot([], 8), padHash(3))
  })

  test('does not modify its input', () => {
    const leaves = cat(refRandomLeaves(9, 2))
    const copy = leaves.slice()
    merkleRoot(leaves)
    assert.deepEqual(leaves, copy)
  })

  test('rejects bad widths, bad hash sizes and empty input', () => {
    const leaves = refRandomLeaves(5, 3)
    assert.throws(() => merkleRoot(leaves, 4), { code: 'GW_ERR_MERKLE_ARGUMENT' })
    assert.throws(() => merkleRoot(leaves, 12), { code: 'GW_ERR_MERKLE_ARGUMENT' })
    assert.throws(() => merkleRoot([]), { code: 'GW_ERR_MERKLE_ARGUMENT' })
    assert.throws(() => merkleRoot(new Uint8Array(33)), { code: 'GW_ERR_MERKLE_ARGUMENT' })
    assert.throws(() => merkleRoot([new Uint8Array(31)]), { code: 'GW_ERR_MERKLE_ARGUMENT' })
  })

  test('pieces root of real data: short last block hashed over its actual bytes', () => {
    for (const len of [1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5, 8 * BLOCK]) {
      const data = refBytes(len, len)
      const leaves = refLeaves(data)
      assert.equal(leaves.length, Math.ceil(len / BLOCK))
      assert.deepEqual(Buffer.from(merkleRoot(leaves)), new RefTree(leaves).root, `len ${len}`)
    }
    // A 1-byte file's root is SHA-256 of that byte, not of a zero-padded 16 KiB block.
    assert.deepEqual(Buffer.from(merkleRoot(refLeaves(Buffer.from([42])))), refSha256(Buffer.from([42])))
  })
})

describe('pieceLayer / piecesRootFromLayer / verifyPieceLayer (BEP52 piece layers)', () => {
  const pieceLengths = [16 * KiB, 32 * KiB, 64 * KiB, 256 * KiB]

  test('edge cases: 1 block, one piece, piece + 1 block, non-powers of two, exact multiples', () => {
    for (const pl of pieceLengths) {
      const bpp = pl / BLOCK
      const counts = [
        1,
        2,
        3,
        bpp - 1,
        bpp,
        bpp + 1,
        2 * bpp,
        2 * bpp + 1,
        3 * bpp,
        3 * bpp + Math.floor(bpp / 2),
        7 * bpp + 3,
      ]
      for (const n of counts.filter((c) => c >= 1 && Number.isInteger(c))) {
        const leaves = refRandomLeaves(n, n * 31 + bpp)
        const got = pieceLayer(leaves, pl)
        const want = refPieceLayer(leaves, pl)
        assert.deepEqual(Buffer.from(got), Buffer.concat(want), `pl=${pl} n=${n}`)
        const root = new RefTree(leaves).root
        if (n <= bpp) {
          assert.equal(got.byteLength, 0, 'files not larger than one piece have no piece layer')
          continue
        }
        const fileLength = (n - 1) * BLOCK + 123
        assert.equal(got.byteLength, Math.ceil(fileLength / pl) * 32)
        assert.deepEqual(Buffer.from(piecesRootFromLayer(got, fileLength, pl)), root)
        assert.equal(verifyPieceLayer(root, got, fileLength, pl), 'ok')
        assert.equal(verifyPieceLayer(root, flipBit(got, 5), fileLength, pl), 'failed')
        assert.equal(verifyPieceLayer(flipBit(root, 200), got, fileLength, pl), 'failed')
        assert.equal(verifyPieceLayer(root, got.subarray(32), fileLength, pl), 'failed')
        assert.equal(verifyPieceLayer(root, got, fileLength, pl * 2), 'failed', 'wrong layer')
      }
    }
  })

  test('the root is independent of the piece length (identical files, identical roots)', () => {
    const leaves = refRandomLeaves(37, 5)
    const fileLength = 37 * BLOCK
    const roots = pieceLengths
      .filter((pl) => fileLength > pl)
      .map((pl) => toHex(piecesRootFromLayer(pieceLayer(leaves, pl), fileLength, pl)))
    assert.ok(roots.length >= 3)
    assert.equal(new Set(roots).size, 1)
    assert.equal(roots[0], toHex(merkleRoot(leaves)))
  })

  test('rejects bad piece lengths and files without a piece layer', () => {
    const leaves = refRandomLeaves(4, 1)
    assert.throws(() => pieceLayer(leaves, 8 * KiB), { code: 'GW_ERR_MERKLE_ARGUMENT' })
    assert.throws(() => pieceLayer(leaves, 48 * KiB), { code: 'GW_ERR_MERKLE_ARGUMENT' })
    assert.throws(() => piecesRootFromLayer(new Uint8Array(32), BLOCK, BLOCK), MerkleError)
    assert.throws(() => piecesRootFromLayer(new Uint8Array(32), 2 * BLOCK, BLOCK), MerkleError)
    assert.equal(verifyPieceLayer(ZERO32, new Uint8Array(32), BLOCK, BLOCK), 'failed')
  })
})

/** Every valid (baseLayer, index, length, proofLayers) of a tree of `width` leaves. */
function* allRequests(width: number) {
  const height = Math.log2(width)
  for (let baseLayer = 0; baseLayer < height; baseLayer++) {
    const layerWidth = width / 2 ** baseLayer
    for (let length = 2; length <= layerWidth; length *= 2) {
      for (let index = 0; index < layerWidth; index += length) {
        for (let proofLayers = 0; proofLayers < height - baseLayer; proofLayers++) {
          yield { baseLayer, index, length, proofLayers }
        }
      }
    }
  }
}

describe('MerkleTree hash requests (BEP52 hash request / hashes)', () => {
  const sizes = [2, 3, 5, 8, 13, 33, 64]

  test('answers every valid request exactly like the reference, and the answers verify', () => {
    let checked = 0
    for (const n of sizes) {
      const leaves = refRandomLeaves(n, 100 + n)
      const ref = new RefTree(leaves)
      const tree = MerkleTree.fromLeaves(leaves)
      assert.equal(tree.numLeaves, n)
      assert.equal(tree.numLeavesPow2, refPow2(n))
      assert.deepEqual(Buffer.from(tree.root), ref.root)
      for (const req of allRequests(tree.numLeavesPow2)) {
        const res = tree.hashes(req)
        assert.ok(res.ok, `n=${n} ${JSON.stringify(req)}`)
        const want = ref.hashesFor(req.baseLayer, req.index, req.length, req.proofLayers)
        assert.deepEqual(Buffer.from(res.hashes), Buffer.concat(want), `n=${n} ${JSON.stringify(req)}`)
        assert.equal(want.length, req.length + uncleCount(req.length, req.proofLayers))
        const { baseLayer, index, length, proofLayers } = req
        const top = proofTop(baseLayer, index, length, proofLayers, res.hashes, tree.numLeavesPow2)
        assert.ok(top)
        const topLayer = baseLayer + Math.max(Math.log2(length), proofLayers + 1)
        assert.equal(top.layer, topLayer)
        assert.equal(top.index, Math.floor(index / 2 ** (topLayer - baseLayer)))
        assert.deepEqual(Buffer.from(top.hash), ref.node(top.layer, top.index))
        // The top is the root when the proof climbs all the way, or when the whole layer was asked for.
        const full = topLayer === tree.height
        assert.equal(
          full,
          proofLayers === tree.height - baseLayer - 1 || length === tree.layerWidth(baseLayer),
        )
        const verdict = verifyHashes(
          ref.root,
          baseLayer,
          index,
          length,
          proofLayers,
          res.hashes,
          tree.numLeavesPow2,
        )
        assert.equal(verdict, full ? 'ok' : 'failed', 'only proofs reaching the root verify against it')
        assert.equal(
          verifyHashes(ref.root, baseLayer, index, length, proofLayers, want, tree.numLeavesPow2),
          verdict,
          'list form',
        )
        checked++
      }
    }
    assert.ok(checked > 1000, `checked ${checked}`)
  })

  test('tampered hashes, proofs or request fields fail verification', () => {
    for (const n of [3, 13, 64]) {
      const leaves = refRandomLeaves(n, 7 * n)
      const tree = MerkleTree.fromLeaves(leaves)
      const root = tree.root
      const w = tree.numLeavesPow2
      for (const req of allRequests(w)) {
        const { baseLayer, index, length, proofLayers } = req
        if (proofLayers !== tree.height - baseLayer - 1) continue
        const res = tree.hashes(req)
        assert.ok(res.ok)
        const h = res.hashes
        const total = h.byteLength / 32
        for (let i = 0; i < total; i++) {
          const bad = flipBit(h, i * 256 + ((i * 37) % 256))
          assert.equal(
            verifyHashes(root, baseLayer, index, length, proofLayers, bad, w),
            'failed',
            `hash ${i}`,
          )
        }
        assert.equal(verifyHashes(root, baseLayer, index, length, proofLayers, h.subarray(32), w), 'failed')
        assert.equal(verifyHashes(root, baseLayer, index, length, proofLayers, cat([h, ZERO32]), w), 'failed')
        assert.equal(
          verifyHashes(root, baseLayer, index, length, proofLayers, h.subarray(0, 40), w),
          'failed',
        )
        assert.equal(verifyHashes(flipBit(root, 9), baseLayer, index, length, proofLayers, h, w), 'failed')
        assert.equal(verifyHashes(root, baseLayer, index, length, proofLayers, h, w * 2), 'failed')
        if (index + 2 * length <= w / 2 ** baseLayer) {
          assert.equal(verifyHashes(root, baseLayer, index + length, length, proofLayers, h, w), 'failed')
        }
        if (total >= 2) {
          // Swapping two hashes (e.g. uncle order) must fail.
          const swapped = h.slice()
          swapped.set(h.subarray(0, 32), (total - 1) * 32)
          swapped.set(h.subarray((total - 1) * 32), 0)
          assert.equal(verifyHashes(root, baseLayer, index, length, proofLayers, swapped, w), 'failed')
        }
      }
    }
  })

  test('malformed requests are rejected with a reason (answer: hash reject)', () => {
    const tree = MerkleTree.fromLeaves(refRandomLeaves(13, 1)) // 16 leaves, height 4
    const bad: [object, string][] = [
      [{ baseLayer: 4, index: 0, length: 2, proofLayers: 0 }, 'bad-base-layer'],
      [{ baseLayer: -1, index: 0, length: 2, proofLayers: 0 }, 'bad-base-layer'],
      [{ baseLayer: 0, index: 0, length: 1, proofLayers: 0 }, 'bad-length'],
      [{ baseLayer: 0, index: 0, length: 3, proofLayers: 0 }, 'bad-length'],
      [{ baseLayer: 0, index: 2, length: 4, proofLayers: 0 }, 'bad-index'],
      [{ baseLayer: 0, index: 16, length: 2, proofLayers: 0 }, 'bad-index'],
      [{ baseLayer: 1, index: 0, length: 16, proofLayers: 0 }, 'bad-index'],
      [{ baseLayer: 0, index: 0, length: 2, proofLayers: 4 }, 'bad-proof-layers'],
      [{ baseLayer: 2, index: 0, length: 2, proofLayers: 2 }, 'bad-proof-layers'],
      [{ baseLayer: 0, index: 0, length: 2, proofLayers: -1 }, 'bad-proof-layers'],
    ]
    for (const [req, reason] of bad) {
      const r = req as { baseLayer: number; index: number; length: number; proofLayers: number }
      assert.deepEqual(tree.hashes(r), { ok: false, reason }, JSON.stringify(req))
      assert.equal(checkHashRequest(r, 16), reason)
      assert.equal(verifyHashes(tree.root, r.baseLayer, r.index, r.length, r.proofLayers, [], 16), 'failed')
    }
    assert.deepEqual(tree.hashes({ baseLayer: 0, index: 0, length: 16, proofLayers: 0 }, 8), {
      ok: false,
      reason: 'length-too-large',
    })
    // A one-block file has a tree of height 0: nothing can be requested.
    const single = MerkleTree.fromLeaves(refRandomLeaves(1, 1))
    assert.equal(single.height, 0)
    assert.deepEqual(single.hashes({ baseLayer: 0, index: 0, length: 2, proofLayers: 0 }), {
      ok: false,
      reason: 'bad-base-layer',
    })
  })

  test('pad hashes are served beyond the end of the file', () => {
    const tree = MerkleTree.fromLeaves(refRandomLeaves(5, 3)) // 8 leaves: 5..7 are zero
    const res = tree.hashes({ baseLayer: 0, index: 4, length: 4, proofLayers: 2 })
    assert.ok(res.ok)
    assert.deepEqual(res.hashes.subarray(32, 128), new Uint8Array(96))
    const upper = tree.hashes({ baseLayer: 1, index: 2, length: 2, proofLayers: 1 })
    assert.ok(upper.ok)
    assert.deepEqual(upper.hashes.subarray(32, 64), padHash(1))
    assert.deepEqual(tree.node(2, 1), new Uint8Array(new RefTree(refRandomLeaves(5, 3)).node(2, 1)))
    assert.equal(tree.node(0, 8), undefined)
  })

  test('a tree built from the piece layer answers requests at or above it, rejects lower ones', () => {
    const pl = 64 * KiB // 4 blocks per piece → piece layer is layer 2
    const n = 45
    const fileLength = (n - 1) * BLOCK + 999
    const leaves = refRandomLeaves(n, 77)
    const full = MerkleTree.fromLeaves(leaves)
    const upper = MerkleTree.fromPieceLayer(pieceLayer(leaves, pl), fileLength, pl)
    assert.equal(upper.lowestLayer, 2)
    assert.deepEqual(upper.root, full.root)
    assert.equal(upper.layer(1), undefined)
    assert.deepEqual(upper.layer(2), pieceLayer(leaves, pl))
    for (const req of allRequests(full.numLeavesPow2)) {
      const got = upper.hashes(req)
      if (req.baseLayer < 2) assert.deepEqual(got, { ok: false, reason: 'unavailable' })
      else assert.deepEqual(got, full.hashes(req))
    }
    assert.throws(() => MerkleTree.fromPieceLayer(new Uint8Array(64), fileLength, pl), MerkleError)
    assert.throws(() => MerkleTree.fromPieceLayer(new Uint8Array(32), pl, pl), MerkleError)
    assert.throws(() => MerkleTree.fromLeaves([]), MerkleError)
  })
})

describe('verifyBlock', () => {
  test('each block checks against its piece-layer hash with the in-piece uncles', () => {
    for (const [len, pl] of [
      [10 * BLOCK + 77, 64 * KiB],
      [3 * BLOCK, 16 * KiB],
      [9 * BLOCK, 128 * KiB],
    ] as const) {
      const data = refBytes(len, len)
      const leaves = refLeaves(data)
      const tree = MerkleTree.fromLeaves(leaves)
      const layer = pieceLayer(leaves, pl)
      const bpp = pl / BLOCK
      const levels = Math.log2(bpp)
      for (let b = 0; b < leaves.length; b++) {
        const piece = Math.floor(b / bpp)
        const inPiece = b % bpp
        const uncles: Uint8Array[] = []
        for (let l = 0; l < levels; l++) {
          const pos = Math.floor(b / 2 ** l)
          uncles.push(tree.node(l, pos % 2 === 0 ? pos + 1 : pos - 1)!)
        }
        const block = data.subarray(b * BLOCK, Math.min((b + 1) * BLOCK, len))
        const pieceHash = layer.subarray(piece * 32, piece * 32 + 32)
        assert.equal(verifyBlock(block, inPiece, uncles, pieceHash), 'ok', `len=${len} block ${b}`)
        assert.equal(verifyBlock(block, inPiece, cat(uncles), pieceHash), 'ok')
        assert.equal(verifyBlock(flipBit(block, 3), inPiece, uncles, pieceHash), 'failed')
        if (bpp > 1) {
          assert.equal(verifyBlock(block, inPiece ^ 1, uncles, pieceHash), 'failed', 'wrong position')
          assert.equal(
            verifyBlock(block, inPiece, [flipBit(uncles[0]!, 1), ...uncles.slice(1)], pieceHash),
            'failed',
          )
        }
        assert.equal(verifyBlock(block, bpp, uncles, pieceHash), 'failed', 'index out of range')
      }
    }
    assert.equal(verifyBlock(new Uint8Array(BLOCK + 1), 0, [], ZERO32), 'failed')
    assert.equal(verifyBlock(new Uint8Array(0), 0, [], ZERO32), 'failed')
  })
})

// ---------------------------------------------------------------------------------------------

const LT_SCRIPT = fileURLToPath(new URL('./lt-merkle.py', import.meta.url))

interface LtResult {
  piecesRoot: string
  pieceLayer: string
  pieceLength: number
  length: number
}

function libtorrentAvailable(): boolean {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import libtorrent'], { stdio: 'ignore' })
  return r.status === 0
}

function runLibtorrent(jobs: { path: string; pieceLength: number }[]): LtResult[] {
  const r = spawnSync('/usr/bin/python3', [LT_SCRIPT], {
    input: JSON.stringify(jobs),
    encoding: 'utf8',
    maxBuffer: 64 * MiB,
    timeout: 120_000,
  })
  assert.equal(r.status, 0, `lt-merkle.py failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as LtResult[]
}

/** Streams a file block by block (odd blocks first, then even, to exercise any-order feeding). */
function hashFile(path: string, length: number): V2FileHasher {
  const hasher = new V2FileHasher(length)
  const fd = openSync(path, 'r')
  try {
    const buf = Buffer.alloc(BLOCK)
    const order = [...Array(hasher.blockCount).keys()].sort((a, b) => (a % 2) - (b % 2) || b - a)
    for (const i of order) {
      const len = hasher.blockLength(i)
      assert.equal(readSync(fd, buf, 0, len, i * BLOCK), len)
      hasher.addBlock(i, buf.subarray(0, len))
    }
  } finally {
    closeSync(fd)
  }
  return hasher
}

describe('interop with libtorrent (pieces root and piece layers)', { skip: !libtorrentAvailable() }, () => {
  test('our pieces root and piece layers equal libtorrent v2 create_torrent output', () => {
    const dir = mkdtempSync(join(tmpdir(), 'merkle-lt-'))
    try {
      const jobs: { path: string; pieceLength: number; length: number }[] = []
      const files = new Map<number, string>()
      const fileFor = (length: number): string => {
        let p = files.get(length)
        if (p === undefined) {
          p = join(dir, `f${length}.bin`)
          writeFileSync(p, randomBytes(length))
          files.set(length, p)
        }
        return p
      }
      for (const pl of [16 * KiB, 64 * KiB, 256 * KiB, 4 * MiB]) {
        for (const length of [1, 16 * KiB, 16 * KiB + 1, pl, pl * 3.5, 6 * MiB + 12345]) {
          jobs.push({ path: fileFor(length), pieceLength: pl, length })
        }
      }
      const results = runLibtorrent(jobs.map(({ path, pieceLength }) => ({ path, pieceLength })))
      assert.equal(results.length, jobs.length)
      const hashers = new Map<number, V2FileHasher>()
      jobs.forEach((job, i) => {
        const lt = results[i]!
        assert.equal(lt.pieceLength, job.pieceLength)
        assert.equal(lt.length, job.length)
        let h = hashers.get(job.length)
        if (h === undefined) {
          h = hashFile(job.path, job.length)
          hashers.set(job.length, h)
        }
        const what = `length=${job.length} pieceLength=${job.pieceLength}`
        assert.equal(toHex(h.piecesRoot()), lt.piecesRoot, `pieces root, ${what}`)
        const layer = h.pieceLayer(job.pieceLength)
        assert.equal(toHex(layer), lt.pieceLayer, `piece layer, ${what}`)
        if (job.length > job.pieceLength) {
          assert.ok(lt.pieceLayer.length > 0)
          const ltLayer = fromHex(lt.pieceLayer)
          assert.equal(
            verifyPieceLayer(fromHex(lt.piecesRoot, 32), ltLayer, job.length, job.pieceLength),
            'ok',
          )
          assert.equal(toHex(piecesRootFromLayer(ltLayer, job.length, job.pieceLength)), lt.piecesRoot)
        } else {
          assert.equal(
            lt.pieceLayer,
            '',
            `libtorrent omits the layer of a file of at most one piece, ${what}`,
          )
        }
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
