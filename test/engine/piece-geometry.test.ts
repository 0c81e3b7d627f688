/** PieceGeometry: piece sizes, spans over files and padding, v2 locations, validation. */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { GeometryError, PieceGeometry } from '../../gateway/engine/piece-geometry.ts'
import type { TorrentInfo } from '../../gateway/protocol/types.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'
import { buildInfo, LAYOUTS, pieceSize } from '../helpers/layouts.ts'

function layout(name: string): TorrentInfo {
  const info = LAYOUTS[name]
  if (info === undefined) throw new Error(`no layout ${name}`)
  return info
}

describe('PieceGeometry', () => {
  for (const [name, info] of Object.entries(LAYOUTS)) {
    test(`${name}: spans tile every piece and map to the right file bytes`, () => {
      const g = new PieceGeometry(info)
      let linear = 0
      for (let piece = 0; piece < info.pieceCount; piece++) {
        const size = g.pieceSize(piece)
        assert.equal(size, pieceSize(info, piece))
        assert.equal(g.blockCount(piece), Math.ceil(size / BLOCK_SIZE))
        let inPiece = 0
        for (const span of g.spans(piece)) {
          assert.equal(span.pieceOffset, inPiece)
          assert.equal(span.file.offset + span.fileOffset, linear, 'span starts where the previous ended')
          assert.ok(span.length > 0 && span.fileOffset + span.length <= span.file.length)
          assert.equal(span.padding, span.file.padding)
          inPiece += span.length
          linear += span.length
        }
        assert.equal(inPiece, size)
        const data = g.dataRanges(piece).reduce((sum, r) => sum + r.length, 0)
        assert.equal(data, g.dataLength(piece))
      }
      assert.equal(linear, info.totalLength)
    })
  }

  test('sub-ranges of a piece', () => {
    const g = new PieceGeometry(layout('v1MultiFile'))
    // piece 1 = linear [32768, 65536): a.txt [32768,40000), dir/b.bin [40000, 65536)
    const spans = g.spans(1, 7_000, 1_000)
    assert.deepEqual(
      spans.map((s) => [s.file.path.join('/'), s.fileOffset, s.pieceOffset, s.length]),
      [
        ['a.txt', 39_768, 7_000, 232],
        ['dir/b.bin', 0, 7_232, 768],
      ],
    )
    assert.deepEqual(
      g.dataRanges(1, 7_000, 1_000),
      [{ pieceOffset: 7_000, length: 1_000 }],
      'adjacent files merge',
    )
    assert.throws(() => g.spans(1, 32_000, 1_000), GeometryError)
    assert.throws(() => g.pieceSize(4), GeometryError)
  })

  test('padding blocks (BEP47) are recognised', () => {
    const g = new PieceGeometry(layout('v1PadFiles'))
    // piece 0: a [0,10000) pad [10000,16384) b [16384,46384) pad [46384,65536)
    assert.deepEqual(
      [0, 1, 2, 3].map((b) => g.isPaddingBlock(0, b)),
      [false, false, false, true],
    )
    assert.equal(g.dataLength(0), 40_000)
    const v2 = new PieceGeometry(layout('v2Only'))
    // piece 2 = b (5000 bytes) then a virtual gap
    assert.equal(v2.isPaddingBlock(2, 0), false)
    assert.equal(v2.isPaddingBlock(2, 1), true)
  })

  test('v2 locations: file and piece-in-file; a v1 layout is not aligned', () => {
    const g = new PieceGeometry(layout('v2Only'))
    const where = [0, 1, 2, 3, 4, 5].map((p) => {
      const loc = g.v2Location(p)
      return loc && [loc.file.path.join('/'), loc.pieceInFile, loc.dataLength]
    })
    assert.deepEqual(where, [
      ['a', 0, 32_768],
      ['a', 1, 7_232],
      ['b', 0, 5_000],
      ['c/d', 0, 32_768],
      ['c/d', 1, 32_768],
      ['c/d', 2, 4_464],
    ])
    assert.throws(() => new PieceGeometry(layout('v1MultiFile')).v2Location(1), GeometryError)
    const h = new PieceGeometry(layout('hybrid'))
    assert.equal(h.v2Location(2)?.file.path.join('/'), 'b')
  })

  test('filePieces', () => {
    const info = layout('v1MultiFile')
    const g = new PieceGeometry(info)
    assert.deepEqual(g.filePieces(0), { first: 0, count: 2 })
    assert.deepEqual(g.filePieces(1).count, 0)
    assert.deepEqual(g.filePieces(2), { first: 1, count: 2 })
  })

  test('rejects inconsistent layouts', () => {
    const info = layout('v1MultiFile')
    assert.throws(() => new PieceGeometry({ ...info, pieceCount: 5 }), GeometryError)
    // (a piece length that does not match the piece count; any positive v1 length is allowed)
    assert.throws(() => new PieceGeometry({ ...info, pieceLength: 1000 }), GeometryError)
    assert.throws(() => new PieceGeometry({ ...info, pieceLength: 0, pieceCount: 0 }), GeometryError)
    const shifted = info.files.map((f, i) => (i === 2 ? { ...f, offset: f.offset + 1 } : f))
    assert.throws(() => new PieceGeometry({ ...info, files: shifted }), GeometryError)
    assert.throws(() => new PieceGeometry({ ...info, totalLength: info.totalLength + 1 }), GeometryError)
  })

  // BEP3 allows any positive piece length; libtorrent loads v1 torrents with 8 KiB or 20000-byte
  // pieces. Blocks start every 16 KiB from each piece's start and never cross its end.
  for (const pieceLength of [8192, 20_000, 49_152, 1]) {
    test(`v1 piece length ${pieceLength}: blocks are min(16 KiB, rest of the piece)`, () => {
      const info = buildInfo({
        name: `odd${pieceLength}`,
        version: 'v1',
        pieceLength,
        files: [
          { path: ['a'], length: 30_001 },
          { path: ['b'], length: pieceLength === 1 ? 5 : 70_000 },
        ],
      })
      const g = new PieceGeometry(info)
      assert.equal(g.blocksPerPiece, Math.ceil(pieceLength / BLOCK_SIZE))
      let total = 0
      for (let piece = 0; piece < g.pieceCount; piece++) {
        const size = g.pieceSize(piece)
        let inPiece = 0
        for (let b = 0; b < g.blockCount(piece); b++) {
          const len = g.blockLength(piece, b)
          assert.equal(len, Math.min(BLOCK_SIZE, size - b * BLOCK_SIZE))
          assert.ok(len > 0 && len <= BLOCK_SIZE)
          assert.equal(
            g.dataRanges(piece, b * BLOCK_SIZE, len).reduce((n, r) => n + r.length, 0),
            len,
          )
          inPiece += len
        }
        assert.equal(inPiece, size, 'blocks tile the piece exactly')
        assert.throws(() => g.blockLength(piece, g.blockCount(piece)), GeometryError)
        total += size
      }
      assert.equal(total, info.totalLength)
    })
  }

  test('20000-byte pieces: two blocks of 16384 + 3616; 8 KiB pieces: one block', () => {
    const g20 = new PieceGeometry(
      buildInfo({ name: 'x', version: 'v1', pieceLength: 20_000, files: [{ path: ['x'], length: 50_000 }] }),
    )
    assert.deepEqual([g20.blockCount(0), g20.blockLength(0, 0), g20.blockLength(0, 1)], [2, 16_384, 3_616])
    assert.deepEqual([g20.pieceSize(2), g20.blockCount(2), g20.blockLength(2, 0)], [10_000, 1, 10_000])
    const g8 = new PieceGeometry(
      buildInfo({ name: 'y', version: 'v1', pieceLength: 8192, files: [{ path: ['y'], length: 20_000 }] }),
    )
    assert.deepEqual(
      [g8.pieceCount, g8.blockCount(0), g8.blockLength(0, 0), g8.blockLength(2, 0)],
      [3, 1, 8192, 3616],
    )
  })

  test('v2 and hybrid still need a power of two >= 16 KiB (BEP52)', () => {
    for (const version of ['v2', 'hybrid'] as const) {
      for (const pieceLength of [8192, 3 * BLOCK_SIZE, 20_000]) {
        const info = buildInfo({ name: 'v', version, pieceLength, files: [{ path: ['f'], length: 100_000 }] })
        assert.throws(() => new PieceGeometry(info), GeometryError, `${version} ${pieceLength}`)
      }
    }
  })
})
