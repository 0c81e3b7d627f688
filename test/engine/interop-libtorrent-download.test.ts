/**
 * Interop: our engine downloads from a real libtorrent seeder on 127.0.0.1, for v1, v2 and hybrid
 * torrents (made by libtorrent), single- and multi-file, ~100 MiB in all (one 64 MiB hybrid
 * multi-file case). The result must be byte-identical: file hashes of what `FsPieceStore` wrote,
 * or of what `MemoryPieceStore` holds, read back through the storage facade.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { FsPieceStore } from '../../adapters/fs-store.ts'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import { complete, HOST, hashFromStorage, ltSeed, makeLtTorrent, startSession } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { hashTree, type PayloadSpec, sortedEntries, type TempDir, tempDir } from '../helpers/payload.ts'

const MIB = 1024 * 1024

interface Case {
  readonly title: string
  readonly version: 'v1' | 'v2' | 'hybrid'
  readonly spec: PayloadSpec
  readonly pieceLength: number
  readonly store: 'fs' | 'memory'
}

const CASES: readonly Case[] = [
  {
    title: 'v1 single file (6 MiB, fs)',
    version: 'v1',
    spec: { name: 'v1-single.bin', size: 6 * MIB + 4321 },
    pieceLength: 256 * 1024,
    store: 'fs',
  },
  {
    title: 'v1 multi-file with an empty and a tiny file (8 MiB, memory)',
    version: 'v1',
    spec: {
      name: 'v1-multi',
      files: [
        { path: ['a.bin'], size: 5 * MIB + 17 },
        { path: ['empty.txt'], size: 0 },
        { path: ['dir', 'b.bin'], size: 3 * MIB - 1000 },
        { path: ['dir', 'sub', 'c.txt'], size: 9 },
      ],
    },
    pieceLength: 128 * 1024,
    store: 'memory',
  },
  {
    title: 'v2 single file (6 MiB, memory)',
    version: 'v2',
    spec: { name: 'v2-single.bin', size: 6 * MIB + 999 },
    pieceLength: 256 * 1024,
    store: 'memory',
  },
  {
    title: 'v2 multi-file (12 MiB, fs)',
    version: 'v2',
    spec: {
      name: 'v2-multi',
      files: [
        { path: ['a.bin'], size: 7 * MIB + 12345 },
        { path: ['small.txt'], size: 100 },
        { path: ['z', 'b.bin'], size: 5 * MIB - 777 },
      ],
    },
    pieceLength: 256 * 1024,
    store: 'fs',
  },
  {
    title: 'hybrid single file (6 MiB, memory)',
    version: 'hybrid',
    spec: { name: 'hybrid-single.bin', size: 6 * MIB - 1 },
    pieceLength: 256 * 1024,
    store: 'memory',
  },
  {
    title: 'hybrid multi-file (64 MiB, fs)',
    version: 'hybrid',
    spec: {
      name: 'hybrid-big',
      files: [
        { path: ['one.bin'], size: 30 * MIB + 511 },
        { path: ['two', 'two.bin'], size: 20 * MIB - 4097 },
        { path: ['three.bin'], size: 14 * MIB + 3586 },
        { path: ['note.txt'], size: 42 },
      ],
    },
    pieceLength: 512 * 1024,
    store: 'fs',
  },
]

describe('interop: libtorrent seeds, our engine downloads', { timeout: 85_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-interop-dl-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  for (const c of CASES) {
    test(c.title, async () => {
      const dir = join(tmp.path, `${c.version}-${c.spec.name}`)
      const made = await makeLtTorrent(lt, dir, c.spec, c.version, c.pieceLength)
      assert.equal(made.metainfo.info.version, c.version)
      await ltSeed(lt, made)
      const session = await startSession(`dl-${c.spec.name}`)
      try {
        const dest = join(dir, 'dest')
        const store = c.store === 'fs' ? new FsPieceStore({ directory: dest }) : new MemoryPieceStore()
        const t = await session.addTorrent({
          metainfo: made.metainfo,
          store,
          peers: [{ host: HOST, port: lt.port }],
        })
        await complete(t, 45_000)
        const status = t.status()
        assert.equal(status.progress, 1)
        assert.equal(status.piecesHave, made.metainfo.info.pieceCount)
        assert.equal(t.stats.piecesFailed, 0, 'no piece failed its hash check')
        const got = c.store === 'fs' ? undefined : await hashFromStorage(t)
        await session.removeTorrent(t.id)
        assert.deepEqual(
          sortedEntries(got ?? (await hashTree(dest, c.spec.name))),
          sortedEntries(made.payload.hashes),
        )
      } finally {
        await session.stop()
      }
    })
  }
})
