/**
 * Interop: a magnet-only start against a real libtorrent seeder on 127.0.0.1. The engine knows
 * only the info hash(es) from `parseMagnet`; it fetches the info dictionary over `ut_metadata`
 * (BEP9, verified against btih / btmh) and, for v2 and hybrid torrents, the piece layers over
 * BEP52 hash requests (v2-only: without them no piece can be verified).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { FsPieceStore } from '../../adapters/fs-store.ts'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { magnetFromMetainfo, parseMagnet } from '../../gateway/protocol/magnet.ts'
import type { TorrentInfo } from '../../gateway/protocol/types.ts'
import { complete, HOST, hashFromStorage, ltSeed, makeLtTorrent, startSession } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { hashTree, sortedEntries, type TempDir, tempDir } from '../helpers/payload.ts'

const MIB = 1024 * 1024

describe('interop: magnet start from a libtorrent seeder', { timeout: 85_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-interop-magnet-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  for (const version of ['v1', 'hybrid', 'v2'] as const) {
    test(`${version}: metadata over ut_metadata${version === 'v1' ? '' : ', piece layers over hash requests'}, then the data`, async () => {
      const dir = join(tmp.path, version)
      const spec = {
        name: `magnet-${version}`,
        seed: `magnet-${version}`,
        files: [
          { path: ['a.bin'], size: 3 * MIB + 4567 },
          { path: ['b', 'b.bin'], size: 2 * MIB + 1 },
          { path: ['c.txt'], size: 11 },
        ],
      }
      const made = await makeLtTorrent(lt, dir, spec, version, 64 * 1024)
      await ltSeed(lt, made)
      const link = parseMagnet(magnetFromMetainfo(made.metainfo))
      assert.equal(link.infoHashV1 !== undefined, version !== 'v2')
      assert.equal(link.infoHashV2 !== undefined, version !== 'v1')
      const session = await startSession(`magnet-${version}`)
      try {
        const fs = version === 'hybrid'
        const dest = join(dir, 'dest')
        const t = await session.addTorrent({
          ...(link.infoHashV1 ? { infoHashV1: link.infoHashV1 } : {}),
          ...(link.infoHashV2 ? { infoHashV2: link.infoHashV2 } : {}),
          ...(link.name ? { name: link.name } : {}),
          store: fs ? new FsPieceStore({ directory: dest }) : new MemoryPieceStore(),
          peers: [{ host: HOST, port: lt.port }],
        })
        const info = (): TorrentInfo | undefined => t.info
        assert.equal(t.state, 'metadata')
        assert.equal(info(), undefined)
        await t.whenMetadata({ signal: AbortSignal.timeout(20_000) })
        assert.equal(info()?.name, spec.name)
        assert.equal(toHex(info()!.infoBytes), toHex(made.metainfo.info.infoBytes), 'the exact info dict')
        await complete(t, 40_000)
        assert.equal(t.stats.piecesFailed, 0)
        if (version !== 'v1') {
          // Every file larger than a piece got its layer from libtorrent, equal to the .torrent's.
          const layers = t.verifier!.layers()
          for (const [root, layer] of made.metainfo.pieceLayers)
            assert.equal(toHex(layers.get(root)!), toHex(layer))
        }
        const got = fs ? undefined : await hashFromStorage(t)
        await session.removeTorrent(t.id)
        assert.deepEqual(
          sortedEntries(got ?? (await hashTree(dest, spec.name))),
          sortedEntries(made.payload.hashes),
        )
      } finally {
        await session.stop()
      }
    })
  }
})
