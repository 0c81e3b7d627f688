/**
 * Further behaviour of the Codex ingest store on a local Codex node: BEP52 `pieces root` dedup
 * across torrents, a committed piece found bad after its file was uploaded (the Codex copy is
 * invalidated and rebuilt), `needsDrain` not deadlocking when nothing can drain, and the upload
 * metadata helpers (Codex filename rules, mimetypes).
 */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { codexFilename, guessMimetype } from '../../adapters/codex/naming.ts'
import { StagingBudget } from '../../adapters/codex/staging.ts'
import { isValidCodexFilename } from '../../codex-client/filename.ts'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import {
  backendOf,
  codexForFile,
  downloadAll,
  ingestPiece,
  linearFromFiles,
  makeStore,
  makeTorrent,
  payload,
  waitUntil,
} from './codex-env.ts'

const KIB = 1024

const codex = codexForFile()

describe('CodexPieceStore behaviour', () => {
  test('a file another torrent already archived (same pieces root) is reused, not fetched again', async () => {
    const shared = { path: ['shared.iso'], data: payload(100_000, 91) }
    const own = { path: ['own.txt'], data: payload(30_000, 92) }
    const a = await makeTorrent('first', [shared], { version: 'v2', pieceLength: 32 * KIB })
    const b = await makeTorrent('second', [own, shared], { version: 'hybrid', pieceLength: 32 * KIB })
    const env = await makeStore(codex)
    try {
      const sa = await StorageFacade.open(env.store, a.metainfo.info)
      const la = linearFromFiles(a.metainfo, [shared])
      for (let p = 0; p < a.metainfo.info.pieceCount; p++) {
        await ingestPiece(sa, a.metainfo, p, (at, n) => la.slice(at, at + n))
      }
      const cidsA = await backendOf(env.store, a.metainfo).whenAllUploaded({
        signal: AbortSignal.timeout(20_000),
      })
      await sa.close()
      codex.node.faults.resetCounters()

      const sb = await StorageFacade.open(env.store, b.metainfo.info)
      const backend = backendOf(env.store, b.metainfo)
      const sharedIndex = b.metainfo.info.files.findIndex((f) => f.path[0] === 'shared.iso')
      const sharedEntry = b.metainfo.info.files[sharedIndex]
      assert.ok(sharedEntry)
      assert.equal(backend.fileStates()[sharedIndex]?.cid, [...cidsA.values()][0], 'reused CID')
      const have = await sb.completionBitfield()
      for (let k = 0; k < sharedEntry.pieceCount; k++) assert.ok(have?.has(sharedEntry.firstPiece + k))
      const lb = linearFromFiles(b.metainfo, [own, shared])
      for (let p = 0; p < b.metainfo.info.pieceCount; p++) {
        if (!have?.has(p)) await ingestPiece(sb, b.metainfo, p, (at, n) => lb.slice(at, at + n))
      }
      const cidsB = await backend.whenAllUploaded({ signal: AbortSignal.timeout(20_000) })
      assert.equal(cidsB.size, 2)
      assert.equal(
        codex.node.faults.requestCount({ method: 'POST', route: '/data' }),
        1,
        'only own.txt uploaded',
      )
      // The shared piece (aligned: only shared.iso data) reads back from Codex.
      const p = sharedEntry.firstPiece
      const size = sb.geometry.pieceSize(p)
      assert.deepEqual(await sb.readBlock(p, 0, size), lb.subarray(p * 32 * KIB, p * 32 * KIB + size))
      await sb.close()
    } finally {
      await env.close()
    }
  })

  test('discarding a committed piece of an uploaded file invalidates its Codex copy until re-verified', async () => {
    const files = [
      { path: ['x.bin'], data: payload(80_000, 93) },
      { path: ['y.bin'], data: payload(20_000, 94) },
    ]
    const { metainfo } = await makeTorrent('bad-later', files, { version: 'v1', pieceLength: 32 * KIB })
    const info = metainfo.info
    const linear = linearFromFiles(metainfo, files)
    const bytesAt = (at: number, n: number): Uint8Array => linear.slice(at, at + n)
    const env = await makeStore(codex)
    try {
      const storage = await StorageFacade.open(env.store, info)
      const backend = backendOf(env.store, metainfo)
      for (let p = 0; p < info.pieceCount; p++) await ingestPiece(storage, metainfo, p, bytesAt)
      const before = await backend.whenAllUploaded({ signal: AbortSignal.timeout(20_000) })
      const x = info.files.findIndex((f) => f.path[0] === 'x.bin')
      // v1 layout: pieces 0-1 hold x.bin, piece 2 the end of x.bin and the start of y.bin, piece 3 y.bin.
      await storage.discardPiece(0)
      const states = backend.fileStates()
      assert.equal(states[x]?.state, 'pending', 'x.bin must be fetched and uploaded again')
      assert.equal(env.catalog.getFiles(backend.torrentId)[x]?.cid, undefined)
      const have = await storage.completionBitfield()
      assert.deepEqual([...(have?.setIndices() ?? [])], [3], 'every piece touching x.bin is missing')
      assert.equal(states[1 - x]?.state, 'uploaded', 'y.bin stays in Codex')
      for (let p = 0; p < info.pieceCount; p++)
        if (!have?.has(p)) await ingestPiece(storage, metainfo, p, bytesAt)
      const after = await backend.whenAllUploaded({ signal: AbortSignal.timeout(20_000) })
      assert.equal(
        after.get(x),
        before.get(x),
        'identical bytes and metadata give the identical CID (NOTES.md §1.3)',
      )
      assert.deepEqual(await downloadAll(codex.client, after.get(x) ?? ''), files[0]?.data)
      await storage.close()
    } finally {
      await env.close()
    }
  })

  test('needsDrain stays false when staging is full but nothing can drain (no deadlock)', async () => {
    const files = [{ path: ['one.bin'], data: payload(200_000, 95) }]
    const { metainfo } = await makeTorrent('nodrain', files, { version: 'v2', pieceLength: 32 * KIB })
    const linear = linearFromFiles(metainfo, files)
    const env = await makeStore(codex, { stagingMaxBytes: 64 * KIB, uploadStartBytes: 1024 * KIB })
    try {
      const storage = await StorageFacade.open(env.store, metainfo.info)
      // Pieces out of order: the file is not complete until the last one, so nothing can drain.
      const order = [3, 4, 5, 6, 1, 2, 0]
      for (const p of order.slice(0, -1)) {
        await ingestPiece(storage, metainfo, p, (at, n) => linear.slice(at, at + n))
        assert.equal(storage.needsDrain, false, `after piece ${p}`)
      }
      assert.ok(env.store.stats().stagingUsedBytes > 64 * KIB, 'the soft limit is exceeded instead')
      await ingestPiece(storage, metainfo, 0, (at, n) => linear.slice(at, at + n))
      await backendOf(env.store, metainfo).whenAllUploaded({ signal: AbortSignal.timeout(20_000) })
      await waitUntil(() => env.store.stats().stagingUsedBytes === 0, 'staging released')
      await storage.close()
    } finally {
      await env.close()
    }
  })
})

describe('upload metadata and staging budget', () => {
  test('filenames Codex accepts, with a fallback', () => {
    assert.equal(codexFilename(['dir', 'movie.mkv'], 'f.bin'), 'movie.mkv')
    assert.equal(codexFilename(['a:b*c?.txt'], 'f.bin'), 'a_b_c_.txt')
    assert.equal(codexFilename([' lead.txt'], 'f.bin'), 'lead.txt')
    assert.equal(codexFilename(['dots...'], 'f.bin'), 'dots')
    assert.equal(codexFilename(['CON'], 'f.bin'), 'f.bin', 'Windows reserved names are refused by Codex')
    assert.equal(codexFilename(['line\nbreak'], 'f.bin'), 'line_break')
    const long = `${'é'.repeat(300)}.flac`
    const name = codexFilename([long], 'f.bin')
    assert.ok(name.endsWith('.flac') && Buffer.byteLength(name) <= 200 && isValidCodexFilename(name))
  })

  test('mimetypes from extensions, only values Codex accepts', () => {
    assert.equal(guessMimetype('a.TXT'), 'text/plain')
    assert.equal(guessMimetype('b.flac'), 'audio/x-flac')
    assert.equal(guessMimetype('c.unknownext'), 'application/octet-stream')
    assert.equal(guessMimetype('noext'), 'application/octet-stream')
    assert.equal(guessMimetype('.hidden'), 'application/octet-stream')
  })

  test('the staging budget has watermark hysteresis', () => {
    const budget = new StagingBudget({ limitBytes: 100, lowWaterBytes: 40 })
    budget.add(99)
    assert.equal(budget.overHighWater, false)
    budget.add(1)
    assert.equal(budget.overHighWater, true)
    budget.remove(50)
    assert.equal(budget.overHighWater, true, 'still above the low watermark')
    budget.remove(11)
    assert.equal(budget.overHighWater, false)
    assert.throws(() => new StagingBudget({ limitBytes: 10, lowWaterBytes: 20 }), RangeError)
  })
})
