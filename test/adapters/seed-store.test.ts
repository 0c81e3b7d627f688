/**
 * `CodexSeedStore` end to end on the local Codex node (real HTTP on 127.0.0.1, real temp dirs):
 * torrents made from Codex CIDs with `createTorrentFromCodex` (v1, v2, hybrid; multi-file with an
 * empty file, BEP47 pad files / v2 alignment gaps), random block reads through `StorageFacade`
 * (as the engine reads), cold and warm; verification failures (wrong CID mapped, a proxy flipping
 * bytes always or once) → `GW_ERR_STORAGE_CORRUPT` after retries or healed by the refetch;
 * Codex faults → typed errors, never hangs; read-only operations; the close fence.
 */

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CodexFileReader } from '../../adapters/codex/codex-file-reader.ts'
import { createTorrentFromCodex } from '../../adapters/codex/create-from-codex.ts'
import { CodexSeedStore, type CodexSeedStoreInit, seedResolution } from '../../adapters/codex/seed-store.ts'
import { SegmentCache } from '../../adapters/codex/segment-cache.ts'
import { CodexClient } from '../../codex-client/client.ts'
import { StorageError, type StorageErrorCode } from '../../gateway/engine/storage.ts'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import { PieceVerifier } from '../../gateway/engine/torrent/verifier.ts'
import type { Metainfo, TorrentVersion } from '../../gateway/protocol/types.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'
import { tempDir } from '../helpers/payload.ts'
import {
  bytesOf,
  type CorruptingProxy,
  type NodeEnv,
  prng,
  startCorruptingProxy,
  startNodeEnv,
} from './seed-fixtures.ts'

const KIB = 1024
const PIECE = 64 * KIB

/** Files of the multi-file payload (an empty one included; sizes cross piece boundaries). */
const FILES: { path: string[]; size: number }[] = [
  { path: ['a.bin'], size: 300_000 },
  { path: ['empty.txt'], size: 0 },
  { path: ['dir', 'b.bin'], size: 70_000 },
  { path: ['dir', 'c.bin'], size: 5 },
  { path: ['d.bin'], size: 1_000_000 },
]

interface Built {
  readonly metainfo: Metainfo
  readonly fileCids: readonly (string | undefined)[]
  /** Expected linear piece space (padding as zeros). */
  readonly linear: Uint8Array
}

function expectedLinear(metainfo: Metainfo, contents: Map<string, Uint8Array>): Uint8Array {
  const out = new Uint8Array(metainfo.info.totalLength)
  for (const f of metainfo.info.files) {
    if (f.padding || f.length === 0) continue
    const bytes = contents.get(f.path.join('/'))
    assert.ok(bytes, `content of ${f.path.join('/')}`)
    out.set(bytes, f.offset)
  }
  return out
}

async function assertStorageError(promise: Promise<unknown>, code: StorageErrorCode): Promise<StorageError> {
  let caught: StorageError | undefined
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof StorageError, String(e))
    assert.equal(e.code, code, e.message)
    caught = e
    return true
  })
  return caught!
}

describe('CodexSeedStore on the local Codex node', () => {
  let env: NodeEnv
  const contents = new Map<string, Uint8Array>()
  const cids = new Map<string, string>()
  const built = new Map<TorrentVersion, Built>()

  before(async () => {
    env = await startNodeEnv()
    for (const f of FILES) {
      const bytes = bytesOf(`seed-${f.path.join('/')}`, f.size)
      contents.set(f.path.join('/'), bytes)
      if (f.size > 0) cids.set(f.path.join('/'), await env.upload(bytes, f.path.at(-1)))
    }
    for (const version of ['v1', 'v2', 'hybrid'] as const) {
      const made = await createTorrentFromCodex({
        client: env.client,
        name: `multi-${version}`,
        version,
        pieceLength: PIECE,
        files: FILES.map((f) => {
          const cid = cids.get(f.path.join('/'))
          return cid === undefined ? { path: f.path } : { cid, path: f.path }
        }),
      })
      built.set(version, {
        metainfo: made.metainfo,
        fileCids: made.fileCids,
        linear: expectedLinear(made.metainfo, contents),
      })
    }
  })
  after(async () => {
    await env.close()
  })

  /** Reader + store over `url` (the node, or a proxy in front of it). */
  async function setup(
    opts: { url?: string; cacheBytes?: number; store?: Partial<CodexSeedStoreInit> } = {},
  ) {
    const dir = await tempDir('seed-store-')
    const cache = new SegmentCache({
      dir: join(dir.path, 'cache'),
      segmentBytes: 128 * KIB,
      maxBytes: opts.cacheBytes ?? 8 * 1024 * KIB,
    })
    await cache.open()
    const client = new CodexClient({ url: opts.url ?? env.node.url, retry: { attempts: 1 } })
    const reader = new CodexFileReader({ client, cache, retryDelayMs: 5, attempts: 2 })
    const failures: { piece: number; attempt: number }[] = []
    const mapping = new Map<string, readonly (string | undefined)[]>()
    const store = new CodexSeedStore({
      reader,
      resolve: async (info) => {
        for (const b of built.values()) {
          if (b.metainfo.info.infoBytes === info.infoBytes) {
            return seedResolution(b.metainfo, mapping.get(b.metainfo.info.name) ?? b.fileCids)
          }
        }
        throw new Error('unknown torrent')
      },
      onVerifyFailure: (e) => failures.push({ piece: e.piece, attempt: e.attempt }),
      ...opts.store,
    })
    return {
      cache,
      client,
      reader,
      store,
      failures,
      /** Overrides the CIDs a torrent resolves to (by torrent name). */
      mapping,
      async close() {
        await reader.close()
        await cache.close()
        await client.destroy()
        await dir.cleanup()
      },
    }
  }

  for (const version of ['v1', 'v2', 'hybrid'] as const) {
    test(`${version}: random block reads return the source bytes, cold and warm`, async (t) => {
      const b = built.get(version)!
      const info = b.metainfo.info
      if (version === 'hybrid')
        assert.ok(
          info.files.some((f) => f.padding && !f.virtual),
          'hybrid has pad files',
        )
      if (version === 'v2')
        assert.ok(
          info.files.some((f) => f.virtual),
          'v2 has alignment gaps',
        )
      const s = await setup()
      const storage = await StorageFacade.open(s.store, info)
      try {
        const have = await storage.completionBitfield()
        assert.ok(have?.complete, 'every piece is available')
        const blocks: { piece: number; offset: number; length: number }[] = []
        for (let piece = 0; piece < info.pieceCount; piece++) {
          const size = storage.geometry.pieceSize(piece)
          for (let offset = 0; offset < size; offset += BLOCK_SIZE) {
            blocks.push({ piece, offset, length: Math.min(BLOCK_SIZE, size - offset) })
          }
        }
        const random = prng(version.length * 97)
        const order = blocks.map((blk) => ({ blk, key: random() })).sort((x, y) => x.key - y.key)
        const pass = async (): Promise<number> => {
          const started = performance.now()
          for (const { blk } of order) {
            const got = await storage.readBlock(blk.piece, blk.offset, blk.length)
            const at = blk.piece * info.pieceLength + blk.offset
            assert.deepEqual(
              new Uint8Array(got),
              b.linear.subarray(at, at + blk.length),
              `block ${blk.piece}/${blk.offset}`,
            )
          }
          return info.totalLength / (1024 * KIB) / ((performance.now() - started) / 1000)
        }
        const cold = await pass()
        const warm = await pass()
        t.diagnostic(
          `${version}: ${blocks.length} random blocks, cold ${cold.toFixed(1)} MB/s, warm ${warm.toFixed(1)} MB/s`,
        )
        const stats = s.store.stats
        assert.equal(stats.piecesVerified, info.pieceCount)
        assert.equal(stats.verifyFailures, 0)
        assert.ok(stats.pieceCacheHits > 0)
        assert.equal(stats.bytesRead, info.payloadLength)
        // hashPiece works from Codex data and passes the torrent's verification.
        const verifier = new PieceVerifier(info, storage.geometry, b.metainfo.pieceLayers)
        for (const piece of [0, info.pieceCount - 1]) {
          const hashes = await storage.hashPiece(piece, verifier.want(piece))
          assert.equal(verifier.verify(piece, hashes), 'ok')
        }
        // Read-only.
        await assertStorageError(storage.writeBlock(0, 0, new Uint8Array(16)), 'GW_ERR_STORAGE_UNSUPPORTED')
        await assertStorageError(storage.commitPiece(0), 'GW_ERR_STORAGE_UNSUPPORTED')
        await assertStorageError(storage.discardPiece(0), 'GW_ERR_STORAGE_UNSUPPORTED')
        assert.equal(storage.needsDrain, false)
      } finally {
        await storage.close()
        await s.close()
      }
    })
  }

  test('a CID mapped to other bytes of the same size: CORRUPT after retries, nothing returned', async () => {
    const b = built.get('hybrid')!
    const info = b.metainfo.info
    const other = await env.upload(bytesOf('other-a', 300_000), 'other.bin')
    const s = await setup({ store: { verifyAttempts: 3 } })
    const wrong = b.fileCids.map((cid) => (cid === cids.get('a.bin') ? other : cid))
    s.mapping.set(info.name, wrong)
    const storage = await StorageFacade.open(s.store, info)
    try {
      const error = await assertStorageError(storage.readBlock(0, 0, BLOCK_SIZE), 'GW_ERR_STORAGE_CORRUPT')
      assert.equal(error.piece, 0)
      assert.deepEqual(s.failures, [
        { piece: 0, attempt: 1 },
        { piece: 0, attempt: 2 },
        { piece: 0, attempt: 3 },
      ])
      assert.equal(s.store.stats.verifyFailures, 3)
      assert.equal(s.store.stats.corruptPieces, 1)
      assert.ok(s.reader.stats.invalidations >= 3, 'segments were evicted after each failure')
      // Pieces of the other files still verify and read.
      const dPiece = info.files.find((f) => f.path.join('/') === 'd.bin')!.firstPiece
      const at = dPiece * info.pieceLength
      assert.deepEqual(
        new Uint8Array(await storage.readBlock(dPiece, 0, 100)),
        b.linear.subarray(at, at + 100),
      )
    } finally {
      await storage.close()
      await s.close()
    }
  })

  test('a dataset of the wrong size fails CORRUPT at once', async () => {
    const b = built.get('v1')!
    const s = await setup()
    s.mapping.set(
      b.metainfo.info.name,
      b.fileCids.map((cid) => (cid === cids.get('a.bin') ? cids.get('d.bin') : cid)),
    )
    const storage = await StorageFacade.open(s.store, b.metainfo.info)
    try {
      await assertStorageError(storage.readBlock(0, 0, 10), 'GW_ERR_STORAGE_CORRUPT')
    } finally {
      await storage.close()
      await s.close()
    }
  })

  describe('through a byte-flipping proxy', () => {
    let proxy: CorruptingProxy
    before(async () => {
      proxy = await startCorruptingProxy(env.node.url)
    })
    after(async () => {
      await proxy.close()
    })

    test('transient corruption (first download flipped) is healed by the refetch', async () => {
      const b = built.get('v2')!
      const info = b.metainfo.info
      const s = await setup({ url: proxy.url })
      // Learn "no ranges" first so the probe does not consume the corrupted answer.
      await s.client.downloadRange(cids.get('dir/b.bin')!, 0, 1).then((r) => r.body.destroy())
      proxy.corruptNext(1)
      const storage = await StorageFacade.open(s.store, info)
      try {
        const before = proxy.corrupted.count
        for (let piece = 0; piece < info.pieceCount; piece++) {
          const size = storage.geometry.pieceSize(piece)
          const at = piece * info.pieceLength
          assert.deepEqual(
            new Uint8Array(await storage.readBlock(piece, 0, size)),
            b.linear.subarray(at, at + size),
          )
        }
        assert.equal(proxy.corrupted.count - before, 1, 'one corrupted download happened')
        assert.ok(s.store.stats.verifyFailures >= 1, 'the corruption was detected')
        assert.equal(s.store.stats.corruptPieces, 0, 'and healed')
        assert.equal(s.failures[0]?.attempt, 1)
      } finally {
        await storage.close()
        await s.close()
      }
    })

    test('persistent corruption: CORRUPT after the retries, failure counter moves', async () => {
      const b = built.get('v1')!
      const info = b.metainfo.info
      const s = await setup({ url: proxy.url, store: { verifyAttempts: 2 } })
      proxy.corruptAlways(cids.get('d.bin'))
      const storage = await StorageFacade.open(s.store, info)
      try {
        const dFile = info.files.find((f) => f.path.join('/') === 'd.bin')!
        const piece = dFile.firstPiece + 2
        await assertStorageError(storage.readBlock(piece, 0, BLOCK_SIZE), 'GW_ERR_STORAGE_CORRUPT')
        assert.equal(s.store.stats.verifyFailures, 2)
        assert.deepEqual(
          s.failures.map((f) => f.attempt),
          [1, 2],
        )
      } finally {
        proxy.corruptAlways(undefined)
        await storage.close()
        await s.close()
      }
    })
  })

  test('Codex faults: 5xx, cut bodies and stalls end in typed errors, never hangs', async () => {
    const b = built.get('hybrid')!
    const info = b.metainfo.info
    const s = await setup()
    const storage = await StorageFacade.open(s.store, info)
    try {
      env.node.faults.failNext(100, { status: 500, route: '/data/:cid', method: 'GET' })
      const e1 = await assertStorageError(storage.readBlock(0, 0, 10), 'GW_ERR_STORAGE_IO')
      assert.equal((e1.cause as { code?: string }).code, 'GW_ERR_CODEX_READ_FAILED')
      env.node.faults.clear()
      env.node.faults.cutBodiesAfter(10 * KIB)
      await assertStorageError(storage.readBlock(1, 0, 10), 'GW_ERR_STORAGE_IO')
      env.node.faults.clear()
      // After the faults, the same pieces read fine.
      assert.deepEqual(
        new Uint8Array(await storage.readBlock(1, 0, 10)),
        b.linear.subarray(PIECE, PIECE + 10),
      )
      assert.equal(s.store.stats.verifyFailures, 0, 'faults are not verification failures')
    } finally {
      env.node.faults.clear()
      await storage.close()
      await s.close()
    }
  })

  test('a stalled node: the reader deadline ends the read; an abort rejects at once', async () => {
    const b = built.get('v2')!
    const dir = await tempDir('seed-stall-')
    const cache = new SegmentCache({ dir: dir.path, segmentBytes: 128 * KIB, maxBytes: 1024 * KIB })
    await cache.open()
    const client = new CodexClient({ url: env.node.url, retry: { attempts: 1 } })
    const reader = new CodexFileReader({ client, cache, segmentTimeoutMs: 150, attempts: 2, retryDelayMs: 1 })
    const store = new CodexSeedStore({ reader, resolve: async () => seedResolution(b.metainfo, b.fileCids) })
    const storage = await StorageFacade.open(store, b.metainfo.info)
    try {
      env.node.faults.setLatency(800)
      const e = await assertStorageError(storage.readBlock(0, 0, 10), 'GW_ERR_STORAGE_IO')
      assert.equal((e.cause as { code?: string }).code, 'GW_ERR_CODEX_READ_TIMEOUT')
      const controller = new AbortController()
      const pending = storage.readBlock(1, 0, 10, { signal: controller.signal })
      controller.abort()
      await assert.rejects(pending, { name: 'AbortError' })
    } finally {
      env.node.faults.clear()
      await storage.close()
      await reader.close()
      await cache.close()
      await client.destroy()
      await dir.cleanup()
    }
  })

  test('files without a CID are missing from completion; close is a fence', async () => {
    const b = built.get('hybrid')!
    const info = b.metainfo.info
    const s = await setup()
    const dIndex = info.files.findIndex((f) => f.path.join('/') === 'd.bin')
    s.mapping.set(
      info.name,
      b.fileCids.map((cid, i) => (i === dIndex ? undefined : cid)),
    )
    const storage = await StorageFacade.open(s.store, info)
    const have = await storage.completionBitfield()
    assert.ok(have)
    const d = info.files[dIndex]!
    for (let p = 0; p < info.pieceCount; p++) {
      const inD = p >= d.firstPiece && p < d.firstPiece + d.pieceCount
      assert.equal(have.has(p), !inD, `piece ${p}`)
    }
    const inflight = storage.readBlock(0, 0, BLOCK_SIZE)
    const closed = storage.close()
    const got = await inflight // the fence lets it finish
    assert.deepEqual(new Uint8Array(got), b.linear.subarray(0, BLOCK_SIZE))
    await closed
    await assertStorageError(storage.readBlock(0, 0, 10), 'GW_ERR_STORAGE_CLOSED')
    assert.equal(s.store.stats.openTorrents, 0)
    await s.close()
  })
})
