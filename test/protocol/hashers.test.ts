/**
 * Incremental hashers: V1PieceHasher (BEP3 SHA-1 pieces, BEP47 zero padding), V2FileHasher (BEP52
 * leaves in any order), blockHash, hashPieceV2, checked against naive whole-buffer computations and
 * against libtorrent's v1 and hybrid `pieces`.
 */

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import {
  blockHash,
  HasherError,
  hashPieceV2,
  SHA1_SIZE,
  sha1,
  V1PieceHasher,
  V2FileHasher,
} from '../../gateway/protocol/hashers.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { merkleRoot, pieceLayer } from '../../gateway/protocol/merkle.ts'
import { mulberry32 as prng } from '../helpers/prng.ts'
import { RefTree, refBytes, refLeaves, refPieceLayer, refSha256 } from './merkle-reference.ts'

const KiB = 1024
const BLOCK = 16 * KiB

function refSha1(data: Uint8Array): Buffer {
  return createHash('sha1').update(data).digest()
}

/** Naive v1 pieces: hash every piece of the whole linear space, last piece short. */
function refPieces(space: Uint8Array, pieceLength: number): Buffer {
  const out: Buffer[] = []
  for (let off = 0; off < space.byteLength; off += pieceLength) {
    out.push(refSha1(space.subarray(off, Math.min(off + pieceLength, space.byteLength))))
  }
  return Buffer.concat(out)
}

function shuffled(n: number, seed: number): number[] {
  const rnd = prng(seed)
  const a = [...Array(n).keys()]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}

describe('sha1', () => {
  test('hashes the concatenation of its arguments', () => {
    const a = refBytes(1000, 1)
    const b = refBytes(77, 2)
    assert.deepEqual(Buffer.from(sha1(a, b)), refSha1(Buffer.concat([a, b])))
    assert.deepEqual(Buffer.from(sha1()), refSha1(new Uint8Array(0)))
    assert.equal(sha1(a).byteLength, SHA1_SIZE)
  })
})

describe('V1PieceHasher (BEP3 pieces, BEP47 zero padding)', () => {
  test('random chunking and zero runs across piece boundaries equal the naive result', () => {
    for (const pl of [16 * KiB, 32 * KiB, 64 * KiB]) {
      for (const total of [0, 1, pl - 1, pl, pl + 1, 3 * pl, Math.floor(5.5 * pl) + 7]) {
        const rnd = prng(total + pl)
        const space = refBytes(total, total ^ pl)
        const hasher = new V1PieceHasher(pl, total)
        let off = 0
        while (off < total) {
          const n = Math.min(total - off, 1 + Math.floor(rnd() * pl * 1.7))
          const zero = rnd() < 0.3
          if (zero) {
            space.fill(0, off, off + n)
            hasher.updateZeros(n)
          } else {
            hasher.update(space.subarray(off, off + n))
          }
          off += n
        }
        assert.equal(hasher.bytesHashed, total)
        assert.equal(hasher.completedPieces, Math.floor(total / pl))
        assert.deepEqual(Buffer.from(hasher.digest()), refPieces(space, pl), `pl=${pl} total=${total}`)
      }
    }
  })

  test('one hasher per piece gives that piece hash; zero bytes give no hash', () => {
    const data = refBytes(100_000, 5)
    assert.deepEqual(Buffer.from(new V1PieceHasher(256 * KiB).update(data).digest()), refSha1(data))
    assert.equal(new V1PieceHasher(16 * KiB).digest().byteLength, 0)
  })

  test('enforces the total length and single use', () => {
    const h = new V1PieceHasher(16 * KiB, 10)
    assert.throws(() => h.update(new Uint8Array(11)), { code: 'GW_ERR_HASH_INPUT' })
    h.update(new Uint8Array(4))
    assert.throws(() => h.digest(), { code: 'GW_ERR_HASH_INCOMPLETE' })
    h.updateZeros(6)
    assert.equal(h.digest().byteLength, SHA1_SIZE)
    assert.throws(() => h.digest(), HasherError)
    assert.throws(() => h.update(new Uint8Array(1)), HasherError)
    assert.throws(() => new V1PieceHasher(0), HasherError)
    assert.throws(() => new V1PieceHasher(16, -1), HasherError)
    assert.throws(() => new V1PieceHasher(16).updateZeros(-1), HasherError)
  })

  test('does not keep references to caller buffers (input reuse is safe)', () => {
    const pl = 16 * KiB
    const space = refBytes(3 * pl + 100, 9)
    const h = new V1PieceHasher(pl)
    const scratch = new Uint8Array(5000)
    for (let off = 0; off < space.byteLength; off += scratch.byteLength) {
      const n = Math.min(scratch.byteLength, space.byteLength - off)
      scratch.set(space.subarray(off, off + n))
      h.update(scratch.subarray(0, n))
      scratch.fill(0xff)
    }
    assert.deepEqual(Buffer.from(h.digest()), refPieces(space, pl))
  })
})

describe('blockHash (BEP52 leaves)', () => {
  test('hashes the actual bytes; a short last block is not zero-padded', () => {
    const short = refBytes(1000, 3)
    assert.deepEqual(Buffer.from(blockHash(short)), refSha256(short))
    const padded = Buffer.concat([short, Buffer.alloc(BLOCK - 1000)])
    assert.notDeepEqual(Buffer.from(blockHash(short)), refSha256(padded))
    assert.throws(() => blockHash(new Uint8Array(0)), { code: 'GW_ERR_HASH_INPUT' })
    assert.throws(() => blockHash(new Uint8Array(BLOCK + 1)), { code: 'GW_ERR_HASH_INPUT' })
  })
})

describe('V2FileHasher', () => {
  const lengths = [
    1,
    100,
    BLOCK - 1,
    BLOCK,
    BLOCK + 1,
    4 * BLOCK,
    4 * BLOCK + 1,
    13 * BLOCK + 5000,
    64 * BLOCK,
  ]

  test('forward, reverse and shuffled block orders all give the reference root, leaves and layers', () => {
    for (const len of lengths) {
      const data = refBytes(len, len)
      const ref = refLeaves(data)
      const refRoot = new RefTree(ref).root
      const n = Math.ceil(len / BLOCK)
      const orders = [[...Array(n).keys()], [...Array(n).keys()].reverse(), shuffled(n, len)]
      for (const order of orders) {
        const h = new V2FileHasher(len)
        assert.equal(h.blockCount, n)
        for (const i of order) {
          assert.equal(h.complete, false)
          h.addBlock(i, data.subarray(i * BLOCK, Math.min((i + 1) * BLOCK, len)))
          assert.ok(h.hasBlock(i))
        }
        assert.ok(h.complete)
        assert.equal(h.blocksHashed, n)
        assert.deepEqual(Buffer.from(h.leaves()), Buffer.concat(ref))
        assert.deepEqual(Buffer.from(h.piecesRoot()), refRoot, `len=${len}`)
        assert.deepEqual(Buffer.from(h.tree().root), refRoot)
        for (const pl of [16 * KiB, 64 * KiB, 256 * KiB]) {
          assert.deepEqual(Buffer.from(h.pieceLayer(pl)), Buffer.concat(refPieceLayer(ref, pl)), `pl=${pl}`)
        }
      }
    }
  })

  test('setBlockHash and re-adding a block', () => {
    const len = 5 * BLOCK + 3
    const data = refBytes(len, 42)
    const ref = refLeaves(data)
    const h = new V2FileHasher(len)
    ref.forEach((leaf, i) => {
      h.setBlockHash(i, leaf)
    })
    assert.deepEqual(Buffer.from(h.piecesRoot()), new RefTree(ref).root)
    // Replacing a block with corrupt data, then with the good data again, counts it once.
    h.addBlock(2, new Uint8Array(BLOCK))
    assert.notDeepEqual(Buffer.from(h.piecesRoot()), new RefTree(ref).root)
    h.addBlock(2, data.subarray(2 * BLOCK, 3 * BLOCK))
    assert.equal(h.blocksHashed, 6)
    assert.deepEqual(Buffer.from(h.piecesRoot()), new RefTree(ref).root)
  })

  test('rejects wrong block sizes and indexes; refuses to hash before complete', () => {
    const h = new V2FileHasher(2 * BLOCK + 10)
    assert.equal(h.blockLength(2), 10)
    assert.throws(() => h.addBlock(0, new Uint8Array(BLOCK - 1)), { code: 'GW_ERR_HASH_INPUT' })
    assert.throws(() => h.addBlock(2, new Uint8Array(BLOCK)), { code: 'GW_ERR_HASH_INPUT' })
    assert.throws(() => h.addBlock(3, new Uint8Array(10)), { code: 'GW_ERR_HASH_INPUT' })
    assert.throws(() => h.addBlock(-1, new Uint8Array(BLOCK)), { code: 'GW_ERR_HASH_INPUT' })
    assert.throws(() => h.setBlockHash(0, new Uint8Array(20)), { code: 'GW_ERR_HASH_INPUT' })
    h.addBlock(0, new Uint8Array(BLOCK))
    assert.throws(() => h.piecesRoot(), { code: 'GW_ERR_HASH_INCOMPLETE' })
    assert.throws(() => h.pieceLayer(BLOCK), { code: 'GW_ERR_HASH_INCOMPLETE' })
    assert.throws(() => new V2FileHasher(-1), HasherError)
  })

  test('an empty file has no pieces root and no piece layer', () => {
    const h = new V2FileHasher(0)
    assert.equal(h.blockCount, 0)
    assert.ok(h.complete)
    assert.throws(() => h.piecesRoot(), { code: 'GW_ERR_HASH_INPUT' })
    assert.equal(h.pieceLayer(BLOCK).byteLength, 0)
  })
})

describe('hashPieceV2', () => {
  test('equals each piece-layer entry, including the zero-padded last piece', () => {
    for (const pl of [16 * KiB, 64 * KiB, 256 * KiB]) {
      const bpp = pl / BLOCK
      const leaves = refLeaves(refBytes(7 * pl + 3 * BLOCK + 1, pl))
      const layer = pieceLayer(leaves, pl)
      for (let p = 0; p * bpp < leaves.length; p++) {
        const got = hashPieceV2(leaves.slice(p * bpp, (p + 1) * bpp), pl)
        assert.deepEqual(got, layer.subarray(p * 32, p * 32 + 32), `pl=${pl} piece ${p}`)
      }
    }
  })

  test('a file of at most one piece is checked against its root, which pads only to a power of two', () => {
    const leaves = refLeaves(refBytes(3 * BLOCK, 1))
    const asPiece = hashPieceV2(leaves, 256 * KiB)
    assert.deepEqual(Buffer.from(asPiece), new RefTree(leaves, 16).root)
    assert.notDeepEqual(asPiece, merkleRoot(leaves))
    assert.deepEqual(hashPieceV2(leaves, 64 * KiB), merkleRoot(leaves))
  })

  test('rejects bad piece lengths and block counts', () => {
    const leaves = refLeaves(refBytes(3 * BLOCK, 1))
    assert.throws(() => hashPieceV2(leaves, 16 * KiB), { code: 'GW_ERR_HASH_INPUT' })
    assert.throws(() => hashPieceV2([], 16 * KiB), { code: 'GW_ERR_HASH_INPUT' })
    assert.throws(() => hashPieceV2(leaves, 48 * KiB), { code: 'GW_ERR_HASH_INPUT' })
  })
})

// ---------------------------------------------------------------------------------------------

const LT_SCRIPT = fileURLToPath(new URL('./lt-merkle.py', import.meta.url))
const ltAvailable =
  spawnSync('/usr/bin/python3', ['-c', 'import libtorrent'], { stdio: 'ignore' }).status === 0

function runLibtorrent<T>(jobs: object[]): T[] {
  const r = spawnSync('/usr/bin/python3', [LT_SCRIPT], {
    input: JSON.stringify(jobs),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  })
  assert.equal(r.status, 0, `lt-merkle.py failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as T[]
}

describe('interop with libtorrent (v1 pieces)', { skip: !ltAvailable }, () => {
  test('single-file v1 pieces equal libtorrent for several sizes and piece lengths', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hashers-lt-'))
    try {
      const jobs: { path: string; pieceLength: number; mode: 'v1' }[] = []
      for (const len of [1, BLOCK, BLOCK + 1, 256 * KiB, 900 * KiB + 3, 3 * 1024 * KiB]) {
        const p = join(dir, `f${len}.bin`)
        writeFileSync(p, randomBytes(len))
        for (const pl of [16 * KiB, 64 * KiB, 256 * KiB]) jobs.push({ path: p, pieceLength: pl, mode: 'v1' })
      }
      const res = runLibtorrent<{ pieces: string; pieceLength: number }>(jobs)
      jobs.forEach((job, i) => {
        const data = readFileSync(job.path)
        const h = new V1PieceHasher(job.pieceLength, data.byteLength)
        for (let off = 0; off < data.byteLength; off += BLOCK) h.update(data.subarray(off, off + BLOCK))
        assert.equal(res[i]!.pieceLength, job.pieceLength)
        assert.equal(toHex(h.digest()), res[i]!.pieces, `${job.path} pl=${job.pieceLength}`)
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('hybrid multi-file pieces (with BEP47 pad files hashed as zeros) equal libtorrent', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hashers-lt-'))
    try {
      const root = join(dir, 'multi')
      mkdirSync(join(root, 'sub'), { recursive: true })
      const sizes: [string, number][] = [
        ['a.bin', 30_000],
        ['b.bin', 3 * BLOCK],
        ['sub/c.bin', 70_001],
        ['sub/d.bin', 1],
      ]
      for (const [name, size] of sizes) writeFileSync(join(root, name), randomBytes(size))
      for (const pl of [16 * KiB, 64 * KiB]) {
        const [res] = runLibtorrent<{
          pieces: string
          files: { path: string[]; length: number; pad: boolean }[]
        }>([{ path: root, pieceLength: pl, mode: 'hybrid' }])
        assert.ok(res)
        assert.ok(
          res.files.some((f) => f.pad),
          'libtorrent inserted pad files',
        )
        const total = res.files.reduce((s, f) => s + f.length, 0)
        const h = new V1PieceHasher(pl, total)
        for (const f of res.files) {
          if (f.pad) h.updateZeros(f.length)
          else h.update(readFileSync(join(root, ...f.path)))
        }
        assert.equal(toHex(h.digest()), res.pieces, `pl=${pl}`)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
