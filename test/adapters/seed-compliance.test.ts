/**
 * The read-side cases of the `PieceStore` compliance suite (`test/compliance/piece-store.ts`) run
 * against `CodexSeedStore` over the local Codex node, through `StorageFacade`, on every layout of
 * `test/helpers/layouts.ts` (single file, v1 multi-file with an empty file, v1 with BEP47 pad files,
 * hybrid, v2 with virtual gaps). The suite itself cannot run as is: every case of it writes blocks
 * first, and this store is read-only, so here the files are uploaded to Codex instead.
 *
 * Ported (same assertions): block / cross-file / whole-piece / odd-range reads; `hashPiece` equals
 * independently computed hashes (incl. v1 hashes of a v2-only torrent, `UNSUPPORTED` v2 hashes of
 * a v1 torrent); padding reads as zeros; close is a fence and later calls are `CLOSED`; aborted
 * signals reject with `AbortError` and leave the storage usable; bounds violations are typed;
 * completion survives close + reopen (resume).
 * Not applicable (read-only): "block writes read back", "a hash covers every earlier write",
 * "commit shows in completion; discard un-completes", the dirty-padding write half of the padding
 * case, and write backpressure (`needsDrain` is always false; `onDrain` resolves at once). Writes,
 * commits and discards reject with `GW_ERR_STORAGE_UNSUPPORTED`, asserted below.
 */

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { CodexFileReader } from '../../adapters/codex/codex-file-reader.ts'
import { CodexSeedStore } from '../../adapters/codex/seed-store.ts'
import { SegmentCache } from '../../adapters/codex/segment-cache.ts'
import { defaultHashWant, type PieceHashes, StorageError } from '../../gateway/engine/storage.ts'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import { equalBytes } from '../../gateway/protocol/hex.ts'
import type { TorrentInfo } from '../../gateway/protocol/types.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'
import { assertStorageError, slice } from '../compliance/piece-store.ts'
import {
  allBlocks,
  expectedSha1,
  expectedV2Leaves,
  LAYOUTS,
  linearData,
  paddingRanges,
  pieceSize,
} from '../helpers/layouts.ts'
import { type TempDir, tempDir } from '../helpers/payload.ts'
import { type NodeEnv, startNodeEnv } from './seed-fixtures.ts'

const WANT_ALL = { v1: true, v2: true }

/** True if `hashes` match the layout's independently computed hashes for the torrent's version. */
function matches(info: TorrentInfo, piece: number, hashes: PieceHashes, linear: Uint8Array): boolean {
  const want = defaultHashWant(info)
  if (want.v1 && (!hashes.sha1 || !equalBytes(hashes.sha1, expectedSha1(info, piece, linear)))) return false
  if (want.v2) {
    const expected = expectedV2Leaves(info, piece, linear)
    const got = hashes.v2Leaves ?? []
    if (got.length !== expected.length || got.some((h, i) => !equalBytes(h, expected[i]!))) return false
  }
  return true
}

describe('PieceStore compliance, read side: CodexSeedStore', () => {
  let env: NodeEnv
  let cacheDir: TempDir
  let cache: SegmentCache
  let reader: CodexFileReader
  /** Per layout name: CIDs per file entry. */
  const cidsByLayout = new Map<string, (string | undefined)[]>()

  before(async () => {
    env = await startNodeEnv()
    cacheDir = await tempDir('seed-compliance-')
    cache = new SegmentCache({ dir: cacheDir.path, segmentBytes: 32 * 1024, maxBytes: 512 * 1024 })
    await cache.open()
    reader = new CodexFileReader({ client: env.client, cache })
    for (const [name, info] of Object.entries(LAYOUTS)) {
      const linear = linearData(info)
      const cids: (string | undefined)[] = []
      for (const f of info.files) {
        cids.push(
          f.padding || f.length === 0
            ? undefined
            : await env.upload(linear.slice(f.offset, f.offset + f.length)),
        )
      }
      cidsByLayout.set(name, cids)
    }
  })
  after(async () => {
    await reader.close()
    await cache.close()
    await cacheDir.cleanup()
    await env.close()
  })

  const storeFor = (name: string, info: TorrentInfo): CodexSeedStore => {
    const linear = linearData(info)
    return new CodexSeedStore({
      reader,
      pieceCacheBytes: 256 * 1024,
      resolve: async () => ({
        cids: cidsByLayout.get(name)!,
        want: () => defaultHashWant(info),
        verify: (piece, hashes) => matches(info, piece, hashes, linear),
      }),
    })
  }

  for (const [name, info] of Object.entries(LAYOUTS)) {
    describe(`layout ${name} (${info.version})`, () => {
      test('blocks read back at block and cross-file granularity', async () => {
        const storage = await StorageFacade.open(storeFor(name, info), info)
        const linear = linearData(info)
        for (const b of allBlocks(info)) {
          const got = new Uint8Array(await storage.readBlock(b.piece, b.offset, b.length))
          assert.deepEqual(
            got,
            slice(linear, info, b.piece, b.offset, b.length),
            `block ${b.piece}/${b.offset}`,
          )
        }
        for (let piece = 0; piece < info.pieceCount; piece++) {
          const size = pieceSize(info, piece)
          assert.deepEqual(
            new Uint8Array(await storage.readBlock(piece, 0, size)),
            slice(linear, info, piece, 0, size),
          )
          const offset = Math.min(1_001, size - 1)
          const length = Math.min(40_000, size - offset)
          assert.deepEqual(
            new Uint8Array(await storage.readBlock(piece, offset, length)),
            slice(linear, info, piece, offset, length),
          )
        }
        const have = await storage.completionBitfield()
        assert.ok(have?.complete)
        await storage.close()
      })

      test('hashPiece equals independently computed hashes', async () => {
        const storage = await StorageFacade.open(storeFor(name, info), info)
        const linear = linearData(info)
        for (let piece = 0; piece < info.pieceCount; piece++) {
          if (info.version === 'v1') {
            const hashes = await storage.hashPiece(piece, { v1: true, v2: false })
            assert.deepEqual(new Uint8Array(hashes.sha1!), expectedSha1(info, piece, linear))
            assert.equal(hashes.v2Leaves, undefined)
            await assertStorageError(storage.hashPiece(piece, WANT_ALL), 'GW_ERR_STORAGE_UNSUPPORTED')
          } else {
            const hashes = await storage.hashPiece(piece, { v1: info.version === 'hybrid', v2: true })
            assert.deepEqual(
              hashes.v2Leaves?.map((l) => new Uint8Array(l)),
              expectedV2Leaves(info, piece, linear),
            )
            if (info.version === 'hybrid')
              assert.deepEqual(new Uint8Array(hashes.sha1!), expectedSha1(info, piece, linear))
            const v1 = await storage.hashPiece(piece, { v1: true, v2: false })
            assert.deepEqual(new Uint8Array(v1.sha1!), expectedSha1(info, piece, linear))
          }
        }
        await storage.close()
      })

      if (paddingRanges(info).length > 0) {
        test('padding reads as zeros', async () => {
          const storage = await StorageFacade.open(storeFor(name, info), info)
          for (const r of paddingRanges(info)) {
            assert.deepEqual(
              new Uint8Array(await storage.readBlock(r.piece, r.offset, r.length)),
              new Uint8Array(r.length),
            )
          }
          await storage.close()
        })
      }
    })
  }

  const info = LAYOUTS.hybrid as TorrentInfo
  const name = 'hybrid'

  test('read-only: writes, commits and discards are UNSUPPORTED; no backpressure', async () => {
    const storage = await StorageFacade.open(storeFor(name, info), info)
    await assertStorageError(
      storage.writeBlock(0, 0, new Uint8Array(BLOCK_SIZE)),
      'GW_ERR_STORAGE_UNSUPPORTED',
    )
    await assertStorageError(storage.commitPiece(0), 'GW_ERR_STORAGE_UNSUPPORTED')
    await assertStorageError(storage.discardPiece(0), 'GW_ERR_STORAGE_UNSUPPORTED')
    assert.equal(storage.needsDrain, false)
    await storage.onDrain()
    await storage.close()
    await assertStorageError(storage.onDrain(), 'GW_ERR_STORAGE_CLOSED')
  })

  test('completion and data persist across close and reopen', async () => {
    const store = storeFor(name, info)
    const first = await StorageFacade.open(store, info)
    await first.readBlock(4, 0, 10)
    await first.close()
    const second = await StorageFacade.open(storeFor(name, info), info)
    assert.ok((await second.completionBitfield())?.complete)
    const linear = linearData(info)
    assert.deepEqual(
      new Uint8Array(await second.readBlock(4, 0, pieceSize(info, 4))),
      slice(linear, info, 4, 0, pieceSize(info, 4)),
    )
    await second.close()
  })

  test('close is a fence: in-flight work finishes first, later calls are rejected', async () => {
    const storage = await StorageFacade.open(storeFor(name, info), info)
    const settled: string[] = []
    const work = allBlocks(info).map((b) =>
      storage.readBlock(b.piece, b.offset, b.length).then(() => settled.push('read')),
    )
    const hash = storage.hashPiece(0, WANT_ALL).then(() => settled.push('hash'))
    const closed = storage.close().then(() => settled.push('close'))
    await Promise.all([...work, hash, closed])
    assert.equal(settled.at(-1), 'close')
    assert.equal(settled.length, work.length + 2)
    await assertStorageError(storage.readBlock(0, 0, 10), 'GW_ERR_STORAGE_CLOSED')
    await assertStorageError(storage.writeBlock(0, 0, new Uint8Array(10)), 'GW_ERR_STORAGE_CLOSED')
    await assertStorageError(storage.commitPiece(0), 'GW_ERR_STORAGE_CLOSED')
    await assertStorageError(storage.completion(), 'GW_ERR_STORAGE_CLOSED')
    await storage.close()
  })

  test('aborted signals reject with AbortError and leave the storage usable', async () => {
    const store = storeFor(name, info)
    const aborted = AbortSignal.abort()
    await assert.rejects(StorageFacade.open(store, info, { signal: aborted }), { name: 'AbortError' })
    const storage = await StorageFacade.open(store, info)
    const opts = { signal: aborted }
    await assert.rejects(storage.readBlock(0, 0, 10, opts), { name: 'AbortError' })
    await assert.rejects(storage.hashPiece(0, WANT_ALL, opts), { name: 'AbortError' })
    await assert.rejects(storage.completion(opts), { name: 'AbortError' })
    await assert.rejects(storage.onDrain(opts), { name: 'AbortError' })
    const controller = new AbortController()
    const queued = storage.readBlock(3, 0, 10, { signal: controller.signal })
    controller.abort()
    await assert.rejects(queued, { name: 'AbortError' })
    const linear = linearData(info)
    assert.deepEqual(new Uint8Array(await storage.readBlock(3, 0, 10)), slice(linear, info, 3, 0, 10))
    await storage.close()
  })

  test('bounds violations are typed StorageErrors', async () => {
    const storage = await StorageFacade.open(storeFor(name, info), info)
    const last = info.pieceCount - 1
    const lastSize = pieceSize(info, last)
    const cases: [string, Promise<unknown>, number | undefined][] = [
      ['negative piece', storage.readBlock(-1, 0, 1), undefined],
      ['fractional piece', storage.hashPiece(0.5, WANT_ALL), undefined],
      ['negative offset', storage.readBlock(0, -1, 1), 0],
      ['read past the piece', storage.readBlock(last, lastSize - 1, 2), last],
      ['zero-length read', storage.readBlock(0, 0, 0), 0],
    ]
    for (const [label, promise, piece] of cases) {
      await assert.rejects(promise, (error: unknown) => {
        assert.ok(error instanceof StorageError, `${label}: ${String(error)}`)
        assert.equal(error.code, 'GW_ERR_STORAGE_BOUNDS', label)
        assert.equal(error.piece, piece, label)
        return true
      })
    }
    await storage.close()
  })
})
