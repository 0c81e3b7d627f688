/**
 * Ingest into Codex through `CodexPieceStore`, on a local Codex node over real HTTP: pieces in
 * random order for v1, v2 and hybrid torrents; one dataset per file with filename and mimetype;
 * pad files never uploaded, empty files recorded without upload; the staging bound
 * (needsDrain / onDrain) and memory that does not grow with the data size.
 */

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { codexFilename } from '../../adapters/codex/naming.ts'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import { createTorrent } from '../../gateway/protocol/create-torrent.ts'
import type { TorrentVersion } from '../../gateway/protocol/types.ts'
import {
  backendOf,
  codexForFile,
  downloadAll,
  ingestPiece,
  linearFromFiles,
  makeStore,
  makeTorrent,
  payload,
  rng,
  type SourceFile,
  shuffle,
  waitUntil,
} from './codex-env.ts'

const KIB = 1024

const codex = codexForFile()

const FILES: SourceFile[] = [
  { path: ['docs', 'readme.txt'], data: payload(70_001, 1) },
  { path: ['empty.dat'], data: new Uint8Array(0) },
  { path: ['media', 'clip.mkv'], data: payload(200_000, 2) },
  { path: ['we:ird?.txt'], data: payload(5, 3) },
  { path: ['z.bin'], data: payload(33_000, 4) },
]

const EXPECTED_MIME: Record<string, string> = {
  'docs/readme.txt': 'text/plain',
  'media/clip.mkv': 'video/x-matroska',
  'we:ird?.txt': 'text/plain',
  'z.bin': 'application/octet-stream',
}

describe('ingest of a multi-file torrent, pieces in random order', () => {
  for (const version of ['v1', 'v2', 'hybrid'] as TorrentVersion[]) {
    test(`${version}: every file lands in its own Codex dataset, byte for byte`, async () => {
      const { metainfo } = await makeTorrent('multi', FILES, { version, pieceLength: 32 * KIB })
      const info = metainfo.info
      const linear = linearFromFiles(metainfo, FILES)
      const env = await makeStore(codex)
      try {
        codex.node.faults.resetCounters()
        const storage = await StorageFacade.open(env.store, info)
        const backend = backendOf(env.store, metainfo)
        const random = rng(version.length * 7 + 1)
        const pieces = shuffle(
          Array.from({ length: info.pieceCount }, (_, i) => i),
          random,
        )
        for (const piece of pieces) {
          await ingestPiece(storage, metainfo, piece, (at, n) => linear.slice(at, at + n), random)
        }
        const cids = await backend.whenAllUploaded({ signal: AbortSignal.timeout(30_000) })

        const dataFiles = info.files.filter((f) => !f.padding && f.length > 0)
        assert.equal(cids.size, dataFiles.length, 'one CID per non-empty data file')
        assert.equal(
          codex.node.faults.requestCount({ method: 'POST', route: '/data' }),
          dataFiles.length,
          'exactly one upload per data file (no pad file, no empty file)',
        )
        const rows = env.catalog.getFiles(backend.torrentId)
        const states = backend.fileStates()
        for (const [index, entry] of info.files.entries()) {
          const state = states[index]
          assert.ok(state)
          if (entry.padding) {
            assert.equal(state.state, 'padding')
            assert.equal(state.cid, undefined)
            continue
          }
          const key = entry.path.join('/')
          const row = rows.find((r) => r.index === index)
          if (entry.length === 0) {
            assert.equal(state.state, 'empty')
            assert.equal(row?.state, 'empty', 'the empty file is recorded')
            assert.equal(row?.cid, undefined)
            continue
          }
          const cid = cids.get(index)
          assert.ok(cid, `${key} has a CID`)
          assert.equal(state.state, 'uploaded')
          assert.equal(state.uploadedBytes, entry.length)
          assert.equal(row?.cid, cid, 'the catalog has the CID')
          const source = FILES.find((f) => f.path.join('/') === key)
          assert.ok(source)
          assert.deepEqual(await downloadAll(codex.client, cid), source.data, `${key} bytes in Codex`)
          const item = await codex.client.fetchManifest(cid)
          assert.equal(item.manifest.datasetSize, entry.length)
          assert.equal(item.manifest.filename, codexFilename(entry.path, `file-${index}.bin`))
          assert.equal(item.manifest.mimetype, EXPECTED_MIME[key])
        }
        const weird = await codex.client.fetchManifest(
          cids.get(info.files.findIndex((f) => f.path[0] === 'we:ird?.txt')) ?? '',
        )
        assert.equal(weird.manifest.filename, 'we_ird_.txt', 'an invalid name is sanitised')

        const have = await storage.completionBitfield()
        assert.equal(have?.count, info.pieceCount)
        await waitUntil(() => backend.stagedBytes === 0, 'staging released after the uploads')
        // Reads are now served from Codex.
        for (let piece = 0; piece < info.pieceCount; piece++) {
          const size = storage.geometry.pieceSize(piece)
          const got = await storage.readBlock(piece, 0, size)
          assert.deepEqual(got, linear.subarray(piece * info.pieceLength, piece * info.pieceLength + size))
        }
        await storage.close()
      } finally {
        await env.close()
      }
    })
  }
})

describe('staging bound', () => {
  test('needsDrain turns true when staging fills and onDrain resolves once uploads release it', async (t) => {
    const files = Array.from({ length: 8 }, (_, i) => ({
      path: [`f${i}.bin`],
      data: payload(256 * KIB, 100 + i),
    }))
    const { metainfo } = await makeTorrent('bounded', files, { version: 'v2', pieceLength: 64 * KIB })
    const linear = linearFromFiles(metainfo, files)
    const limit = 512 * KIB
    const low = 256 * KIB
    const env = await makeStore(codex, { stagingMaxBytes: limit, stagingLowWaterBytes: low })
    codex.node.faults.setLatency(100) // slow uploads: staging fills before they finish
    try {
      const storage = await StorageFacade.open(env.store, metainfo.info)
      const backend = backendOf(env.store, metainfo)
      let drains = 0
      let maxUsed = 0
      for (let piece = 0; piece < metainfo.info.pieceCount; piece++) {
        await ingestPiece(storage, metainfo, piece, (at, n) => linear.slice(at, at + n))
        maxUsed = Math.max(maxUsed, env.store.stats().stagingUsedBytes)
        if (storage.needsDrain) {
          drains++
          assert.equal(backend.needsDrain, true)
          await storage.onDrain({ signal: AbortSignal.timeout(20_000) })
          assert.equal(storage.needsDrain, false)
          assert.ok(env.store.stats().stagingUsedBytes < low, 'drained below the low watermark')
        }
      }
      t.diagnostic(`drains: ${drains}, max staged: ${maxUsed} bytes (limit ${limit})`)
      assert.ok(drains > 0, 'backpressure was applied')
      assert.ok(maxUsed <= limit + metainfo.info.pieceLength, `staging stayed bounded (max ${maxUsed})`)
      const cids = await backend.whenAllUploaded({ signal: AbortSignal.timeout(30_000) })
      for (const [index, cid] of cids) {
        const entry = metainfo.info.files[index]
        assert.ok(entry)
        const src = files.find((f) => f.path[0] === entry.path[0])
        assert.deepEqual(await downloadAll(codex.client, cid), src?.data)
      }
      await storage.close()
    } finally {
      codex.node.faults.clear()
      await env.close()
    }
  })

  test('memory does not grow with the data size (64 MiB through 12 MiB of staging)', async (t) => {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const fileCount = 16
    const fileBytes = 4 * 1024 * KIB
    const block = (f: number, offset: number, length: number): Uint8Array => {
      // 16 KiB-aligned deterministic content; `offset` is a multiple of 16 KiB here.
      return payload(length, f * 100_000 + offset / (16 * KIB) + 1)
    }
    const files = Array.from({ length: fileCount }, (_, f) => ({
      path: [`big-${String(f).padStart(2, '0')}.bin`],
      length: fileBytes,
      open: () =>
        (async function* () {
          for (let o = 0; o < fileBytes; o += 16 * KIB) yield block(f, o, 16 * KIB)
        })(),
    }))
    const { metainfo } = await createTorrent({ name: 'big', files, version: 'v2', pieceLength: 256 * KIB })
    const info = metainfo.info
    const bytesAt = (linear: number, length: number): Uint8Array => {
      const entry = info.files.find((e) => !e.padding && linear >= e.offset && linear < e.offset + e.length)
      assert.ok(entry)
      const f = Number(entry.path[0]?.slice(4, 6))
      return block(f, linear - entry.offset, length)
    }
    const env = await makeStore(codex, { stagingMaxBytes: 12 * 1024 * KIB, segmentBytes: 1024 * KIB })
    try {
      gc()
      const base = process.memoryUsage().rss
      let peak = base
      const storage = await StorageFacade.open(env.store, info)
      const backend = backendOf(env.store, metainfo)
      for (let piece = 0; piece < info.pieceCount; piece++) {
        await ingestPiece(storage, metainfo, piece, bytesAt)
        if (storage.needsDrain) await storage.onDrain({ signal: AbortSignal.timeout(30_000) })
        if (piece % 16 === 0) {
          gc()
          peak = Math.max(peak, process.memoryUsage().rss)
        }
      }
      const cids = await backend.whenAllUploaded({ signal: AbortSignal.timeout(60_000) })
      gc()
      peak = Math.max(peak, process.memoryUsage().rss)
      const total = fileCount * fileBytes
      const growth = peak - base
      t.diagnostic(`RSS growth ${(growth / 2 ** 20).toFixed(1)} MiB for ${total / 2 ** 20} MiB ingested`)
      assert.ok(
        growth < total / 2,
        `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB for ${total / 2 ** 20} MiB`,
      )
      assert.ok(env.store.stats().bytesUploaded >= total)
      // Every dataset matches, checked by streaming hashes (no whole-file buffers).
      for (const [index, cid] of cids) {
        const entry = info.files[index]
        assert.ok(entry)
        const f = Number(entry.path[0]?.slice(4, 6))
        const want = createHash('sha256')
        for (let o = 0; o < fileBytes; o += 16 * KIB) want.update(block(f, o, 16 * KIB))
        const got = createHash('sha256')
        const dl = await codex.client.download(cid)
        for await (const chunk of dl.body as AsyncIterable<Uint8Array>) got.update(chunk)
        assert.equal(got.digest('hex'), want.digest('hex'), `file ${f}`)
      }
      await storage.close()
    } finally {
      await env.close()
    }
  })
})
