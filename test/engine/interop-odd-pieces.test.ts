/**
 * Interop with libtorrent 2.0.8 on 127.0.0.1 for torrents our parser used to refuse or our engine
 * could not run:
 * - v1 torrents whose piece length is not a multiple of 16 KiB (8192 and 20000 bytes; BEP3 allows
 *   any positive length, libtorrent loads them): libtorrent seeds, our engine downloads; and our
 *   engine seeds, libtorrent downloads. libtorrent cannot *create* such torrents, so the test
 *   writes them itself (plain BEP3 SHA-1 pieces).
 * - a v2 .torrent without `piece layers` (libtorrent loads it): our engine gets the layers from
 *   the libtorrent seeder (BEP52 hash requests) and verifies every piece.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { FsPieceStore } from '../../adapters/fs-store.ts'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import { type BDict, decodeBencode, encodeBencode } from '../../gateway/protocol/bencode.ts'
import { parseTorrent } from '../../gateway/protocol/metainfo.ts'
import {
  complete,
  HOST,
  hashFromStorage,
  type LtMadeTorrent,
  ltSeed,
  makeLtTorrent,
  startSession,
} from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import {
  hashTree,
  type PayloadSpec,
  sortedEntries,
  type TempDir,
  tempDir,
  writePayload,
} from '../helpers/payload.ts'

/** Writes `spec` below `<dir>/src` and a v1 .torrent of it with `pieceLength`-byte pieces. */
async function makeOddTorrent(dir: string, spec: PayloadSpec, pieceLength: number): Promise<LtMadeTorrent> {
  const payload = await writePayload(join(dir, 'src'), spec)
  const files = spec.files ?? [{ path: [spec.name], size: spec.size ?? 0 }]
  const data = Buffer.concat(
    await Promise.all(files.map((f) => readFile(spec.files ? join(payload.path, ...f.path) : payload.path))),
  )
  const hashes: Buffer[] = []
  for (let at = 0; at < data.length; at += pieceLength)
    hashes.push(
      createHash('sha1')
        .update(data.subarray(at, at + pieceLength))
        .digest(),
    )
  const info = {
    name: spec.name,
    'piece length': pieceLength,
    pieces: Buffer.concat(hashes),
    ...(spec.files
      ? { files: spec.files.map((f) => ({ length: f.size, path: [...f.path] })) }
      : { length: spec.size ?? 0 }),
  }
  const bytes = encodeBencode({ 'created by': 'interop-odd-pieces', info })
  const torrentPath = join(dir, `${spec.name}.torrent`)
  await writeFile(torrentPath, bytes)
  return { payload, torrentPath, bytes, metainfo: parseTorrent(bytes) }
}

const CASES: readonly { pieceLength: number; spec: PayloadSpec }[] = [
  { pieceLength: 8192, spec: { name: 'odd-8k.bin', size: 1_000_003, seed: 'odd8k' } },
  {
    pieceLength: 20_000,
    spec: {
      name: 'odd-20000',
      seed: 'odd20000',
      files: [
        { path: ['a.bin'], size: 700_001 },
        { path: ['dir', 'b.bin'], size: 333_333 },
        { path: ['tiny.txt'], size: 7 },
      ],
    },
  },
]

describe('interop: v1 piece lengths that are not a multiple of 16 KiB', { timeout: 85_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-interop-odd-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  for (const { pieceLength, spec } of CASES) {
    test(`${pieceLength}-byte pieces: libtorrent seeds, we download (MemoryPieceStore)`, async () => {
      const made = await makeOddTorrent(join(tmp.path, `dl-${pieceLength}`), spec, pieceLength)
      assert.equal(made.metainfo.info.pieceLength, pieceLength)
      const lti = await lt.info(made.torrentPath)
      assert.equal(lti.piece_length, pieceLength, 'libtorrent loads it too')
      assert.equal(lti.info_hash_v1, Buffer.from(made.metainfo.info.infoHashV1!).toString('hex'))
      await ltSeed(lt, made)
      const session = await startSession(`odd-dl-${pieceLength}`)
      try {
        const t = await session.addTorrent({
          metainfo: made.metainfo,
          store: new MemoryPieceStore(),
          peers: [{ host: HOST, port: lt.port }],
        })
        await complete(t, 40_000)
        assert.equal(t.status().piecesHave, made.metainfo.info.pieceCount)
        assert.equal(t.stats.piecesFailed, 0, 'no piece failed its hash check')
        assert.deepEqual(sortedEntries(await hashFromStorage(t)), sortedEntries(made.payload.hashes))
      } finally {
        await session.stop()
      }
    })

    test(`${pieceLength}-byte pieces: we seed (FsPieceStore recheck), libtorrent downloads`, async () => {
      const dir = join(tmp.path, `seed-${pieceLength}`)
      const made = await makeOddTorrent(dir, { ...spec, seed: `${spec.seed}-up` }, pieceLength)
      const session = await startSession(`odd-seed-${pieceLength}`)
      try {
        const t = await session.addTorrent({
          metainfo: made.metainfo,
          store: new FsPieceStore({ directory: made.payload.root }),
        })
        await complete(t, 20_000)
        assert.equal(t.state, 'seeding', 'recheck found every piece')
        const dest = join(dir, 'dest')
        const h = await lt.add({
          torrent: made.torrentPath,
          savePath: dest,
          peers: [`${HOST}:${session.port}`],
        })
        const st = await lt.waitFor(h, (s) => s.is_seeding, { timeoutMs: 40_000, intervalMs: 100 })
        assert.equal(st.progress, 1)
        assert.equal(st.total_failed_bytes ?? 0, 0, 'libtorrent found no bad piece')
        assert.deepEqual(
          sortedEntries(await hashTree(dest, made.metainfo.info.name)),
          sortedEntries(made.payload.hashes),
        )
        await lt.remove(h)
      } finally {
        await session.stop()
      }
    })
  }
})

describe('interop: a v2 .torrent without piece layers', { timeout: 60_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-interop-nolayers-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  test('libtorrent seeds, we fetch the layers from it and download', async () => {
    const dir = join(tmp.path, 'v2')
    const spec: PayloadSpec = {
      name: 'nolayers',
      seed: 'nolayers',
      files: [
        { path: ['big.bin'], size: 3_000_001 },
        { path: ['mid.bin'], size: 400_000 },
        { path: ['small.txt'], size: 10 },
      ],
    }
    const made = await makeLtTorrent(lt, dir, spec, 'v2', 64 * 1024)
    assert.ok(made.metainfo.pieceLayers.size >= 2, 'the original carries layers')
    const top = decodeBencode(made.bytes).value as BDict
    top.delete('piece layers')
    const stripped = encodeBencode(top)
    const strippedPath = join(dir, 'stripped.torrent')
    await writeFile(strippedPath, stripped)
    const lti = await lt.info(strippedPath)
    assert.equal(
      lti.info_hash_v2,
      Buffer.from(made.metainfo.info.infoHashV2!).toString('hex'),
      'libtorrent loads it',
    )
    const metainfo = parseTorrent(stripped)
    assert.equal(metainfo.pieceLayers.size, 0)
    assert.deepEqual(metainfo.info.infoHashV2, made.metainfo.info.infoHashV2)

    await ltSeed(lt, made)
    const session = await startSession('nolayers')
    try {
      const t = await session.addTorrent({
        metainfo,
        store: new MemoryPieceStore(),
        peers: [{ host: HOST, port: lt.port }],
      })
      await complete(t, 40_000)
      assert.equal(t.status().piecesHave, metainfo.info.pieceCount)
      assert.equal(t.stats.piecesFailed, 0)
      // Every layer came from the peer and was checked against its pieces root (BEP52).
      assert.deepEqual(t.verifier?.missingLayers(), [])
      for (const [hex, layer] of made.metainfo.pieceLayers)
        assert.deepEqual(t.verifier?.layer(hex), layer, hex)
      assert.deepEqual(sortedEntries(await hashFromStorage(t)), sortedEntries(made.payload.hashes))
    } finally {
      await session.stop()
    }
  })
})
