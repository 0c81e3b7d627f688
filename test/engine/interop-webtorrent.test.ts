/**
 * Interop with webtorrent (v3, in Node, TCP only; webtorrent has no BitTorrent v2) as a second
 * real client, v1 torrents, both directions, on 127.0.0.1:
 * - webtorrent seeds, our engine downloads (we dial webtorrent);
 * - our engine seeds, webtorrent downloads (webtorrent dials us with `torrent.addPeer`).
 *
 * webtorrent runs with `secure: 0` (no MSE/PE): our engine speaks plaintext BitTorrent only, and
 * webtorrent's default (PE first) outgoing handshake is not understood by it.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { FsPieceStore } from '../../adapters/fs-store.ts'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import { createTorrentFromPath } from '../../gateway/protocol/create-torrent.ts'
import { complete, HOST, hashFromStorage, startSession } from '../helpers/interop.ts'
import { hashTree, sortedEntries, type TempDir, tempDir, writePayload } from '../helpers/payload.ts'
import { startWebTorrent, type WtClient } from '../helpers/webtorrent.ts'

const MIB = 1024 * 1024

describe('interop: webtorrent (v1, TCP)', { timeout: 85_000 }, () => {
  let wt: WtClient
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-interop-wt-')
    wt = await startWebTorrent({ secure: 0 })
  })

  after(async () => {
    await wt?.close()
    await tmp?.cleanup()
  })

  test('webtorrent seeds, our engine downloads (multi-file, MemoryPieceStore)', async () => {
    const dir = join(tmp.path, 'wt-seeds')
    const payload = await writePayload(join(dir, 'src'), {
      name: 'from-wt',
      seed: 'wt1',
      files: [
        { path: ['a.bin'], size: 6 * MIB + 1 },
        { path: ['b', 'c.bin'], size: 3 * MIB - 5 },
      ],
    })
    const created = await createTorrentFromPath(payload.path, { version: 'v1', pieceLength: 256 * 1024 })
    const seeded = await wt.add(created.bytes, { path: payload.root })
    assert.equal(seeded.done, true, 'webtorrent verified the pre-placed data')
    const session = await startSession('wt-download')
    try {
      const t = await session.addTorrent({
        metainfo: created.metainfo,
        store: new MemoryPieceStore(),
        peers: [{ host: HOST, port: wt.port }],
      })
      await complete(t, 40_000)
      assert.deepEqual(sortedEntries(await hashFromStorage(t)), sortedEntries(payload.hashes))
      assert.ok(seeded.uploaded >= payload.totalBytes, 'webtorrent uploaded the payload')
    } finally {
      await session.stop()
      await new Promise<void>((r) => seeded.destroy({}, () => r()))
    }
  })

  test('our engine seeds (FsPieceStore recheck), webtorrent downloads (single file)', async () => {
    const dir = join(tmp.path, 'we-seed')
    const payload = await writePayload(join(dir, 'src'), {
      name: 'to-wt.bin',
      seed: 'wt2',
      size: 9 * MIB + 12345,
    })
    const created = await createTorrentFromPath(payload.path, { version: 'v1', pieceLength: 128 * 1024 })
    const session = await startSession('wt-seed')
    try {
      const t = await session.addTorrent({
        metainfo: created.metainfo,
        store: new FsPieceStore({ directory: payload.root }),
      })
      await complete(t, 20_000)
      const dest = join(dir, 'dest')
      const leech = await wt.add(created.bytes, { path: dest })
      assert.equal(leech.done, false)
      assert.equal(leech.addPeer(`${HOST}:${session.port}`), true)
      await wt.whenDone(leech, 40_000)
      assert.ok(t.status().uploaded >= payload.totalBytes, 'we uploaded the payload')
      await new Promise<void>((r) => leech.destroy({}, () => r()))
      assert.deepEqual(sortedEntries(await hashTree(dest, 'to-wt.bin')), sortedEntries(payload.hashes))
    } finally {
      await session.stop()
    }
  })
})
