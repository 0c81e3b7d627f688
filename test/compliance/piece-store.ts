/**
 * The `PieceStore` compliance suite (libp2p `interface-compliance-tests`, torrust repository
 * tests): every storage backend runs the same tests, through `StorageFacade` as the engine does.
 *
 * Usage, in a `*.test.ts` file:
 *   runPieceStoreCompliance('memory', async () => ({ store, teardown: async () => {}, reopen }))
 *
 * `setup` is called once per test and must return a fresh, empty store; `reopen` (optional)
 * returns a store over the same persisted state, as after a process restart.
 */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type PieceStore, StorageError, type StorageErrorCode } from '../../gateway/engine/storage.ts'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import type { TorrentInfo } from '../../gateway/protocol/types.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'
import {
  allBlocks,
  expectedSha1,
  expectedV2Leaves,
  LAYOUTS,
  linearData,
  paddingRanges,
  pieceSize,
} from '../helpers/layouts.ts'

/** What `setup` returns. */
export interface PieceStoreTestEnv {
  readonly store: PieceStore
  teardown(): Promise<void>
  /** A store over the same persisted state (a "restart"); omit if the backend does not persist. */
  reopen?(): Promise<PieceStore>
}

const WANT_ALL = { v1: true, v2: true }

/** Runs the whole suite under `describe(name)`. */
export function runPieceStoreCompliance(name: string, setup: () => Promise<PieceStoreTestEnv>): void {
  /** Runs `fn` with a fresh env, always tearing down. */
  const withEnv = async (fn: (env: PieceStoreTestEnv) => Promise<void>): Promise<void> => {
    const env = await setup()
    try {
      await fn(env)
    } finally {
      await env.teardown()
    }
  }

  describe(`PieceStore compliance: ${name}`, () => {
    for (const [layoutName, info] of Object.entries(LAYOUTS)) {
      describe(`layout ${layoutName} (${info.version})`, () => {
        test('block writes read back at block and cross-file granularity', () =>
          withEnv(async ({ store }) => {
            const storage = await StorageFacade.open(store, info)
            const linear = linearData(info)
            await writeAll(storage, info, linear)
            for (const b of allBlocks(info)) {
              const got = await readPlain(storage, b.piece, b.offset, b.length)
              assert.deepEqual(
                got,
                slice(linear, info, b.piece, b.offset, b.length),
                `block ${b.piece}/${b.offset}`,
              )
            }
            // Whole pieces and odd ranges that cross file and padding boundaries.
            for (let piece = 0; piece < info.pieceCount; piece++) {
              const size = pieceSize(info, piece)
              assert.deepEqual(await readPlain(storage, piece, 0, size), slice(linear, info, piece, 0, size))
              const offset = Math.min(1_001, size - 1)
              const length = Math.min(40_000, size - offset)
              assert.deepEqual(
                await readPlain(storage, piece, offset, length),
                slice(linear, info, piece, offset, length),
              )
            }
            await storage.close()
          }))

        test('hashPiece equals independently computed hashes', () =>
          withEnv(async ({ store }) => {
            const storage = await StorageFacade.open(store, info)
            const linear = linearData(info)
            await writeAll(storage, info, linear)
            for (let piece = 0; piece < info.pieceCount; piece++) {
              if (info.version === 'v1') {
                const hashes = await storage.hashPiece(piece, { v1: true, v2: false })
                assert.deepEqual(plain(hashes.sha1), expectedSha1(info, piece, linear))
                assert.equal(hashes.v2Leaves, undefined)
                await assertStorageError(storage.hashPiece(piece, WANT_ALL), 'GW_ERR_STORAGE_UNSUPPORTED')
              } else {
                const hashes = await storage.hashPiece(piece, { v1: info.version === 'hybrid', v2: true })
                assert.deepEqual(
                  plainList(hashes.v2Leaves),
                  expectedV2Leaves(info, piece, linear),
                  `leaves of piece ${piece}`,
                )
                if (info.version === 'hybrid')
                  assert.deepEqual(plain(hashes.sha1), expectedSha1(info, piece, linear))
                // v2-only: the v1 hash over the linear space (virtual gaps as zeros) is still defined.
                const v1 = await storage.hashPiece(piece, { v1: true, v2: false })
                assert.deepEqual(plain(v1.sha1), expectedSha1(info, piece, linear))
              }
            }
            await storage.close()
          }))

        if (paddingRanges(info).length > 0) {
          test('padding reads as zeros and is never stored', () =>
            withEnv(async ({ store }) => {
              const storage = await StorageFacade.open(store, info)
              for (const r of paddingRanges(info)) {
                assert.deepEqual(
                  await readPlain(storage, r.piece, r.offset, r.length),
                  new Uint8Array(r.length),
                )
              }
              // Blocks whose padding bytes are garbage: the padding must still read (and hash) as zeros.
              const linear = linearData(info)
              const dirty = linear.slice()
              for (const r of paddingRanges(info)) {
                const at = r.piece * info.pieceLength + r.offset
                dirty.fill(0xee, at, at + r.length)
              }
              await writeAll(storage, info, dirty)
              for (const r of paddingRanges(info)) {
                assert.deepEqual(
                  await readPlain(storage, r.piece, r.offset, r.length),
                  new Uint8Array(r.length),
                )
              }
              for (let piece = 0; piece < info.pieceCount; piece++) {
                const hashes = await storage.hashPiece(piece, { v1: true, v2: false })
                assert.deepEqual(plain(hashes.sha1), expectedSha1(info, piece, linear))
              }
              await storage.close()
            }))
        }
      })
    }

    const info = LAYOUTS.hybrid as TorrentInfo

    test('a hash covers every earlier write, and no later one', () =>
      withEnv(async ({ store }) => {
        const storage = await StorageFacade.open(store, info)
        const linear = linearData(info)
        const piece = 3
        const size = pieceSize(info, piece)
        const writes: Promise<void>[] = []
        for (let offset = 0; offset < size; offset += BLOCK_SIZE) {
          const length = Math.min(BLOCK_SIZE, size - offset)
          writes.push(storage.writeBlock(piece, offset, slice(linear, info, piece, offset, length)))
        }
        const first = storage.hashPiece(piece, WANT_ALL) // not awaiting the writes
        const garbage = new Uint8Array(BLOCK_SIZE).fill(0x5a)
        const later = storage.writeBlock(piece, 0, garbage) // issued after the hash
        const second = storage.hashPiece(piece, WANT_ALL)
        await Promise.all([...writes, later])
        assert.deepEqual(plain((await first).sha1), expectedSha1(info, piece, linear))
        assert.deepEqual(plainList((await first).v2Leaves), expectedV2Leaves(info, piece, linear))
        const changed = linear.slice()
        changed.set(garbage, piece * info.pieceLength)
        assert.deepEqual(plain((await second).sha1), expectedSha1(info, piece, changed))
        await storage.close()
      }))

    test('commit shows in completion; discard un-completes', () =>
      withEnv(async ({ store }) => {
        const storage = await StorageFacade.open(store, info)
        const linear = linearData(info)
        await writeAll(storage, info, linear)
        const initial = await storage.completionBitfield()
        if (initial) assert.equal(initial.count, 0)
        await storage.commitPiece(0)
        await storage.commitPiece(2)
        await storage.discardPiece(1) // written, never committed
        await storage.commitPiece(3)
        await storage.discardPiece(3) // committed, then discarded (e.g. found bad later)
        const have = await storage.completionBitfield()
        assert.ok(have, 'completion must be known after commits in a fresh store')
        assert.deepEqual([...have.setIndices()], [0, 2])
        // A discarded piece can be written and committed again.
        await writePiece(storage, info, linear, 1)
        assert.deepEqual(plain((await storage.hashPiece(1, WANT_ALL)).sha1), expectedSha1(info, 1, linear))
        await storage.commitPiece(1)
        assert.deepEqual([...((await storage.completionBitfield())?.setIndices() ?? [])], [0, 1, 2])
        // Committed data reads back.
        assert.deepEqual(await readPlain(storage, 2, 0, 100), slice(linear, info, 2, 0, 100))
        await storage.close()
      }))

    test('completion and data persist across close and reopen', async (t) => {
      const env = await setup()
      try {
        if (env.reopen === undefined) {
          t.skip('backend does not persist')
          return
        }
        const linear = linearData(info)
        const first = await StorageFacade.open(env.store, info)
        await writeAll(first, info, linear)
        await first.commitPiece(0)
        await first.commitPiece(4)
        await first.close()
        const second = await StorageFacade.open(await env.reopen(), info)
        const have = await second.completionBitfield()
        assert.ok(have, 'completion must be known after reopen')
        assert.deepEqual([...have.setIndices()], [0, 4])
        assert.deepEqual(
          await readPlain(second, 4, 0, pieceSize(info, 4)),
          slice(linear, info, 4, 0, pieceSize(info, 4)),
        )
        await second.close()
      } finally {
        await env.teardown()
      }
    })

    test('close is a fence: in-flight work finishes first, later calls are rejected', () =>
      withEnv(async ({ store }) => {
        const storage = await StorageFacade.open(store, info)
        const linear = linearData(info)
        const settled: string[] = []
        const work = allBlocks(info).map((b) =>
          storage.writeBlock(b.piece, b.offset, slice(linear, info, b.piece, b.offset, b.length)).then(() => {
            settled.push('write')
          }),
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
        await storage.close() // idempotent
      }))

    test('aborted signals reject with AbortError and leave the storage usable', () =>
      withEnv(async ({ store }) => {
        const aborted = AbortSignal.abort()
        await assert.rejects(StorageFacade.open(store, info, { signal: aborted }), { name: 'AbortError' })
        const storage = await StorageFacade.open(store, info)
        const opts = { signal: aborted }
        const data = new Uint8Array(BLOCK_SIZE)
        await assert.rejects(storage.writeBlock(0, 0, data, opts), { name: 'AbortError' })
        await assert.rejects(storage.readBlock(0, 0, 10, opts), { name: 'AbortError' })
        await assert.rejects(storage.hashPiece(0, WANT_ALL, opts), { name: 'AbortError' })
        await assert.rejects(storage.commitPiece(0, opts), { name: 'AbortError' })
        await assert.rejects(storage.discardPiece(0, opts), { name: 'AbortError' })
        await assert.rejects(storage.completion(opts), { name: 'AbortError' })
        await assert.rejects(storage.onDrain(opts), { name: 'AbortError' })
        // Abort while queued behind other work on the piece.
        const controller = new AbortController()
        const linear = linearData(info)
        const write = writePiece(storage, info, linear, 0)
        const queued = storage.hashPiece(0, WANT_ALL, { signal: controller.signal })
        controller.abort()
        await assert.rejects(queued, { name: 'AbortError' })
        await write
        assert.deepEqual(plain((await storage.hashPiece(0, WANT_ALL)).sha1), expectedSha1(info, 0, linear))
        await storage.close()
      }))

    test('bounds violations are typed StorageErrors', () =>
      withEnv(async ({ store }) => {
        const storage = await StorageFacade.open(store, info)
        const last = info.pieceCount - 1
        const lastSize = pieceSize(info, last)
        const cases: [string, Promise<unknown>, number | undefined][] = [
          ['negative piece', storage.readBlock(-1, 0, 1), undefined],
          ['piece past the end', storage.writeBlock(info.pieceCount, 0, new Uint8Array(1)), undefined],
          ['fractional piece', storage.hashPiece(0.5, WANT_ALL), undefined],
          ['negative offset', storage.readBlock(0, -1, 1), 0],
          ['read past the piece', storage.readBlock(last, lastSize - 1, 2), last],
          ['write past the piece', storage.writeBlock(last, lastSize - 1, new Uint8Array(2)), last],
          ['block over 16 KiB', storage.writeBlock(0, 0, new Uint8Array(BLOCK_SIZE + 1)), 0],
          ['empty write', storage.writeBlock(0, 0, new Uint8Array(0)), 0],
          ['zero-length read', storage.readBlock(0, 0, 0), 0],
          ['commit out of range', storage.commitPiece(info.pieceCount), undefined],
          ['discard out of range', storage.discardPiece(-2), undefined],
        ]
        for (const [label, promise, piece] of cases) {
          await assert.rejects(promise, (error: unknown) => {
            assert.ok(error instanceof StorageError, `${label}: ${String(error)}`)
            assert.equal(error.code, 'GW_ERR_STORAGE_BOUNDS', label)
            assert.equal(error.piece, piece, label)
            assert.ok(error.operation.length > 0)
            return true
          })
        }
        await storage.close()
      }))

    test('backpressure: onDrain resolves once needsDrain clears; writes are never refused', () =>
      withEnv(async ({ store }) => {
        const storage = await StorageFacade.open(store, info, { highWaterMarkBytes: 2 * BLOCK_SIZE })
        if (!storage.needsDrain) await storage.onDrain() // resolves at once
        const linear = linearData(info)
        const writes = allBlocks(info).map((b) =>
          storage.writeBlock(b.piece, b.offset, slice(linear, info, b.piece, b.offset, b.length)),
        )
        assert.equal(storage.needsDrain, true, 'many in-flight writes exceed the high water mark')
        const drained = storage.onDrain()
        await Promise.all(writes)
        await drained
        for (let piece = 0; piece < info.pieceCount; piece++) await storage.commitPiece(piece)
        // After everything is committed the backend must not hold the engine back forever.
        const controller = new AbortController()
        await storage.onDrain({ signal: controller.signal })
        assert.equal(storage.needsDrain, false)
        await storage.close()
        await assertStorageError(storage.onDrain(), 'GW_ERR_STORAGE_CLOSED')
      }))
  })
}

/** Writes every block of the torrent (16 KiB granularity, padding bytes taken from `linear`). */
async function writeAll(storage: StorageFacade, info: TorrentInfo, linear: Uint8Array): Promise<void> {
  await Promise.all(
    allBlocks(info).map((b) =>
      storage.writeBlock(b.piece, b.offset, slice(linear, info, b.piece, b.offset, b.length)),
    ),
  )
}

async function writePiece(
  storage: StorageFacade,
  info: TorrentInfo,
  linear: Uint8Array,
  piece: number,
): Promise<void> {
  const size = pieceSize(info, piece)
  const writes: Promise<void>[] = []
  for (let offset = 0; offset < size; offset += BLOCK_SIZE) {
    const length = Math.min(BLOCK_SIZE, size - offset)
    writes.push(storage.writeBlock(piece, offset, slice(linear, info, piece, offset, length)))
  }
  await Promise.all(writes)
}

/** The bytes of `piece` at `offset` (`length` of them) in the torrent's linear data. */
export function slice(
  linear: Uint8Array,
  info: TorrentInfo,
  piece: number,
  offset: number,
  length: number,
): Uint8Array {
  const at = piece * info.pieceLength + offset
  return linear.slice(at, at + length)
}

/** `readBlock` as a plain Uint8Array (backends may return Buffers, a subclass). */
async function readPlain(
  storage: StorageFacade,
  piece: number,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  return new Uint8Array(await storage.readBlock(piece, offset, length))
}

/** Hash bytes as a plain Uint8Array (backends may return Buffers, a subclass). */
function plain(bytes: Uint8Array | undefined): Uint8Array | undefined {
  return bytes === undefined ? undefined : new Uint8Array(bytes)
}

function plainList(list: Uint8Array[] | undefined): Uint8Array[] | undefined {
  return list?.map((b) => new Uint8Array(b))
}

/** Asserts that `promise` rejects with a `StorageError` of `code`. */
export async function assertStorageError(promise: Promise<unknown>, code: StorageErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => error instanceof StorageError && error.code === code)
}
