/** PiecePicker: rarest first, random first pieces, partial first, priorities, endgame, events. */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Bitfield } from '../../gateway/engine/bitfield.ts'
import { PieceGeometry } from '../../gateway/engine/piece-geometry.ts'
import { type BlockRequest, PiecePicker, type PiecePickerInit } from '../../gateway/engine/piece-picker.ts'
import type { TorrentInfo } from '../../gateway/protocol/types.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'
import { buildInfo, LAYOUTS } from '../helpers/layouts.ts'

/** A v2 single-file torrent (no piece hashes computed) with `pieces` pieces of `blocks` blocks. */
function torrent(pieces: number, blocks = 2): TorrentInfo {
  return buildInfo({
    name: `t${pieces}x${blocks}`,
    version: 'v2',
    pieceLength: blocks * BLOCK_SIZE,
    files: [{ path: ['f'], length: pieces * blocks * BLOCK_SIZE }],
  })
}

/** Deterministic pseudo-random source. */
function seeded(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0
    return s / 0x1_0000_0000
  }
}

function picker(info: TorrentInfo, init: Partial<PiecePickerInit> = {}): PiecePicker<string> {
  return new PiecePicker<string>({
    geometry: new PieceGeometry(info),
    randomFirstPieces: 0,
    random: seeded(1),
    ...init,
  })
}

function bitfield(size: number, pieces: number[]): Bitfield {
  const b = new Bitfield(size)
  for (const p of pieces) b.set(p)
  return b
}

const pieceOf = (rs: BlockRequest[]): number[] => [...new Set(rs.map((r) => r.piece))]

describe('PiecePicker selection', () => {
  test('rarest first', () => {
    const p = picker(torrent(6))
    p.onPeerHaveAll()
    p.onPeerBitfield(bitfield(6, [0, 1, 2, 3, 5]))
    p.onPeerBitfield(bitfield(6, [0, 1, 3, 5]))
    // availability: 0:3 1:3 2:2 3:3 4:1 5:3
    const got = p.pick('a', 'all', 4)
    assert.deepEqual(pieceOf(got), [4, 2])
    assert.deepEqual(
      got.map((r) => [r.piece, r.offset, r.length]),
      [
        [4, 0, BLOCK_SIZE],
        [4, BLOCK_SIZE, BLOCK_SIZE],
        [2, 0, BLOCK_SIZE],
        [2, BLOCK_SIZE, BLOCK_SIZE],
      ],
    )
  })

  test('ties are broken randomly', () => {
    const first = new Set<number>()
    for (let seed = 0; seed < 40; seed++) {
      const p = picker(torrent(50), { random: seeded(seed) })
      first.add(p.pick('a', 'all', 1)[0]?.piece ?? -1)
    }
    assert.ok(first.size > 10, `expected varied picks, got ${[...first].join(',')}`)
  })

  test('the first pieces are random, then rarest first', () => {
    const info = torrent(40)
    const rarestChosen = (seed: number, haveCount: number): boolean => {
      const have = bitfield(
        40,
        [...Array(haveCount).keys()].map((i) => 39 - i),
      )
      const p = picker(info, { randomFirstPieces: 4, random: seeded(seed), have })
      p.onPeerHaveAll()
      p.onPeerBitfield(Bitfield.full(40))
      p.onPeerLeft(bitfield(40, [7])) // piece 7 is the single rarest
      return p.pick('a', 'all', 1)[0]?.piece === 7
    }
    const early = [...Array(30).keys()].filter((s) => rarestChosen(s, 0)).length
    const later = [...Array(30).keys()].filter((s) => rarestChosen(s, 4)).length
    assert.ok(early < 10, `random phase picked the rarest piece ${early}/30 times`)
    assert.equal(later, 30)
  })

  test('only pieces the peer has; never pieces we have', () => {
    const p = picker(torrent(8), { have: bitfield(8, [1]) })
    const got = p.pick('a', bitfield(8, [1, 3]), 10)
    assert.deepEqual(pieceOf(got), [3])
  })

  test('partially downloaded pieces are completed first', () => {
    const p = picker(torrent(10, 4))
    const a = p.pick('a', 'all', 1)
    const piece = a[0]?.piece
    const b = p.pick('b', 'all', 3)
    assert.deepEqual(pieceOf(b), [piece])
    assert.deepEqual(
      b.map((r) => r.offset),
      [1, 2, 3].map((i) => i * BLOCK_SIZE),
    )
  })

  test('sequential mode picks in index order (per call or picker-wide)', () => {
    const p = picker(torrent(10))
    assert.deepEqual(pieceOf(p.pick('a', 'all', 6, { sequential: true })), [0, 1, 2])
    p.setSequential(true)
    assert.deepEqual(pieceOf(p.pick('b', 'all', 2)), [3])
  })

  test('priorities: 0 skips, higher first', () => {
    const p = picker(torrent(5))
    for (const i of [0, 1, 2, 3]) p.setPriority(i, 0)
    p.setPriority(2, 7)
    p.setPriority(4, 1)
    assert.deepEqual(pieceOf(p.pick('a', 'all', 10)), [2, 4])
    assert.throws(() => p.setPriority(0, 8), { code: 'GW_ERR_PIECE_PICKER' })
    assert.equal(p.isFinished(), false)
  })

  test('blocks entirely inside padding are never requested (BEP47)', () => {
    const info = LAYOUTS.v1PadFiles as TorrentInfo
    const p = picker(info)
    const got = p.pick('a', 'all', 100, { sequential: true })
    const piece0 = got.filter((r) => r.piece === 0).map((r) => r.offset / BLOCK_SIZE)
    assert.deepEqual(piece0, [0, 1, 2], 'block 3 of piece 0 is all padding')
    assert.equal(p.blockState(0, 3 * BLOCK_SIZE), 'padding')
    for (const r of got.filter((r) => r.piece === 0)) p.onBlockReceived('a', r)
    assert.equal(
      p.onBlockReceived('a', { piece: 0, offset: 3 * BLOCK_SIZE, length: BLOCK_SIZE }).status,
      'duplicate',
    )
  })
})

describe('PiecePicker events', () => {
  test('received blocks complete a piece; verification marks it had', () => {
    const p = picker(torrent(3))
    const got = p.pick('a', 'all', 2)
    const piece = got[0]?.piece as number
    assert.equal(p.onBlockReceived('a', got[0] as BlockRequest).pieceComplete, false)
    const last = p.onBlockReceived('a', got[1] as BlockRequest)
    assert.deepEqual(last, { status: 'accepted', cancel: [], pieceComplete: true })
    p.onPieceVerified(piece)
    assert.equal(p.hasPiece(piece), true)
    assert.equal(p.haveCount, 1)
    assert.equal(p.onBlockReceived('a', got[0] as BlockRequest).status, 'unwanted')
    assert.ok(!pieceOf(p.pick('b', 'all', 10)).includes(piece))
  })

  test('bad offsets and lengths are unwanted', () => {
    const p = picker(torrent(3))
    assert.equal(p.onBlockReceived('a', { piece: 0, offset: 100, length: BLOCK_SIZE }).status, 'unwanted')
    assert.equal(p.onBlockReceived('a', { piece: 0, offset: 0, length: 5 }).status, 'unwanted')
    assert.equal(p.onBlockReceived('a', { piece: 9, offset: 0, length: BLOCK_SIZE }).status, 'unwanted')
  })

  test('a timed-out or rejected request frees the block for another peer', () => {
    const p = picker(torrent(1, 1))
    const [r] = p.pick('a', 'all', 1)
    assert.ok(r)
    assert.deepEqual(p.pick('b', 'all', 1, { endgame: false }), [])
    p.onRequestTimedOut('a', r)
    assert.deepEqual(p.pick('b', 'all', 1), [r])
    p.onRequestRejected('b', r)
    assert.equal(p.blockState(0, 0), 'free')
    // A late block from the timed-out peer is still accepted.
    assert.equal(p.onBlockReceived('a', r).status, 'accepted')
  })

  test('a failed piece resets its blocks and names the contributing peers', () => {
    const p = picker(torrent(1, 2))
    const [r0, r1] = p.pick('a', 'all', 2)
    assert.ok(r0 && r1)
    p.onRequestTimedOut('a', r1)
    const [again] = p.pick('b', 'all', 1)
    assert.deepEqual(again, r1)
    p.onBlockReceived('a', r0)
    p.onBlockReceived('b', r1)
    assert.deepEqual(p.onPieceFailed(0).sort(), ['a', 'b'])
    assert.equal(p.blockState(0, 0), 'free')
    assert.equal(p.pick('c', 'all', 5).length, 2)
  })

  test('a disconnecting peer releases its requests and its availability', () => {
    const p = picker(torrent(4))
    const have = bitfield(4, [0, 1])
    p.onPeerBitfield(have)
    const requests = p.pick('a', have, 4)
    assert.equal(p.availability(0), 1)
    p.onPeerDisconnected('a', have, requests)
    assert.equal(p.availability(0), 0)
    assert.equal(p.inProgressCount, 0)
    assert.equal(p.pick('b', 'all', 8).length, 8)
    p.onPeerHaveAll()
    assert.equal(p.availability(3), 1)
    p.onPeerLeft('all')
    assert.equal(p.availability(3), 0)
  })
})

describe('PiecePicker endgame', () => {
  test('duplicates only once every block is requested, capped, and cancels the others on arrival', () => {
    const p = picker(torrent(2), { endgameMaxRequestsPerBlock: 2 })
    p.onPeerHaveAll()
    const a = p.pick('a', 'all', 3)
    assert.equal(a.length, 3)
    assert.equal(p.inEndgame(), false, 'one block is still free')
    const b = p.pick('b', 'all', 10)
    assert.equal(b.length, 4, 'the free block plus three duplicates of a’s blocks')
    assert.equal(p.inEndgame(), true)
    const dup = b.find((r) => a.some((x) => x.piece === r.piece && x.offset === r.offset))
    assert.ok(dup)
    const fresh = b.filter((r) => !a.some((x) => x.piece === r.piece && x.offset === r.offset))
    assert.deepEqual(
      p.pick('c', 'all', 10),
      fresh,
      'cap of two requesters: only b’s fresh block is left to duplicate',
    )
    assert.deepEqual(p.pick('d', 'all', 10), [], 'every block has two requesters now')
    assert.deepEqual(p.pick('a', 'all', 10), [], 'never the same block twice to one peer')
    const got = p.onBlockReceived('b', dup)
    assert.deepEqual(got.cancel, ['a'])
    assert.equal(p.onBlockReceived('a', dup).status, 'duplicate')
  })

  test('no endgame while a free block is available from some peer', () => {
    const p = picker(torrent(2))
    p.onPeerBitfield(bitfield(2, [0, 1]))
    p.pick('a', bitfield(2, [0]), 2)
    assert.deepEqual(p.pick('b', bitfield(2, [0]), 2), [], 'piece 1 is still free at another peer')
    assert.equal(p.inEndgame(), false)
  })

  test('endgame can be disabled per call', () => {
    const p = picker(torrent(1, 1))
    p.onPeerHaveAll()
    p.pick('a', 'all', 1)
    assert.deepEqual(p.pick('b', 'all', 1, { endgame: false }), [])
    assert.equal(p.pick('b', 'all', 1).length, 1)
  })
})

describe('PiecePicker scale', () => {
  test('100k pieces: repeated picks stay correct (one pass per call, not per block)', () => {
    const info = torrent(100_000, 1)
    const p = picker(info)
    const peerHave = new Bitfield(100_000)
    for (let i = 0; i < 100_000; i += 3) peerHave.set(i)
    p.onPeerBitfield(peerHave)
    p.onPeerHaveAll()
    const seen = new Set<number>()
    for (let round = 0; round < 20; round++) {
      const got = p.pick(`peer${round}`, peerHave, 250)
      assert.equal(got.length, 250)
      for (const r of got) {
        assert.ok(peerHave.has(r.piece))
        assert.ok(!seen.has(r.piece), 'no block handed out twice before endgame')
        seen.add(r.piece)
      }
    }
  })
})

describe('PiecePicker: v1 piece lengths that are not a multiple of 16 KiB', () => {
  for (const pieceLength of [8192, 20_000, 49_152]) {
    test(`${pieceLength}-byte pieces: every block requested once, sized to stay inside its piece`, () => {
      const info = buildInfo({
        name: `odd${pieceLength}`,
        version: 'v1',
        pieceLength,
        files: [
          { path: ['a'], length: 100_003 },
          { path: ['b'], length: 33_333 },
        ],
      })
      const p = picker(info)
      p.onPeerHaveAll()
      const got: BlockRequest[] = []
      // Bounded: each round hands out at least one new block until none is left.
      for (let round = 0; round < 1000; round++) {
        const r = p.pick('a', 'all', 7, { endgame: false })
        if (r.length === 0) break
        got.push(...r)
      }
      const geometry = new PieceGeometry(info)
      const expected: string[] = []
      for (let piece = 0; piece < info.pieceCount; piece++)
        for (let b = 0; b < geometry.blockCount(piece); b++)
          expected.push(`${piece}/${b * BLOCK_SIZE}/${geometry.blockLength(piece, b)}`)
      assert.deepEqual(got.map((r) => `${r.piece}/${r.offset}/${r.length}`).sort(), expected.sort())
      for (const r of got) {
        assert.ok(r.length <= BLOCK_SIZE && r.offset + r.length <= geometry.pieceSize(r.piece))
      }
      // Every piece completes with exactly its blocks.
      const complete = new Set<number>()
      for (const r of got) if (p.onBlockReceived('a', r).pieceComplete) complete.add(r.piece)
      assert.equal(complete.size, info.pieceCount)
      // A block that would cross the piece end is not a block of this torrent.
      if (pieceLength === 20_000) {
        assert.equal(
          p.onBlockReceived('a', { piece: 0, offset: BLOCK_SIZE, length: BLOCK_SIZE }).status,
          'unwanted',
        )
      }
    })
  }
})
