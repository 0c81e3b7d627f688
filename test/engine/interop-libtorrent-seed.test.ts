/**
 * Interop: real libtorrent leechers download everything from our engine as the ONLY seeder, for v1,
 * v2 and hybrid torrents, on 127.0.0.1:
 * - seeding from `FsPieceStore` with the files pre-placed (its `recheck` path), one session
 *   serving all three torrents at once while libtorrent dials in (each incoming handshake must
 *   carry the BEP52 upgrade bit only for the torrents with a v2 half);
 * - our engine dialling the leecher instead;
 * - seeding from a `MemoryPieceStore` filled by a first download from libtorrent, after that
 *   seeder left.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { FsPieceStore } from '../../adapters/fs-store.ts'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import { CLIENT_VERSION } from '../../gateway/engine/torrent/extensions.ts'
import {
  complete,
  HOST,
  type LtMadeTorrent,
  ltSeed,
  makeLtTorrent,
  startSession,
} from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { hashTree, type PayloadSpec, sortedEntries, type TempDir, tempDir } from '../helpers/payload.ts'

const MIB = 1024 * 1024
const VERSIONS = ['v1', 'v2', 'hybrid'] as const

function multi(name: string, seed: string): PayloadSpec {
  return {
    name,
    seed,
    files: [
      { path: ['big.bin'], size: 5 * MIB + 333 },
      { path: ['d', 'mid.bin'], size: 2 * MIB + 77 },
      { path: ['tiny.txt'], size: 5 },
    ],
  }
}

/** Adds `made` to libtorrent as a leecher saving to `dest`, dialling `peers`. */
function ltLeech(lt: LtSession, made: LtMadeTorrent, dest: string, peers: string[]): Promise<number> {
  return lt.add({ torrent: made.torrentPath, savePath: dest, peers })
}

async function assertSameFiles(dest: string, made: LtMadeTorrent): Promise<void> {
  const got = await hashTree(dest, made.metainfo.info.name)
  assert.deepEqual(sortedEntries(got), sortedEntries(made.payload.hashes))
}

describe('interop: our engine seeds, libtorrent downloads', { timeout: 85_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-interop-seed-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  test('one session seeds v1, v2 and hybrid from pre-placed files (FsPieceStore recheck); libtorrent dials in', async () => {
    const session = await startSession('seed-fs')
    try {
      const made = await Promise.all(
        VERSIONS.map((v) =>
          makeLtTorrent(lt, join(tmp.path, `fs-${v}`), multi(`seed-${v}`, `fs-${v}`), v, 256 * 1024),
        ),
      )
      const torrents = []
      for (const m of made) {
        // The data is where libtorrent would keep it: <save path>/<name>/…
        const t = await session.addTorrent({
          metainfo: m.metainfo,
          store: new FsPieceStore({ directory: m.payload.root }),
        })
        await complete(t, 20_000)
        assert.equal(t.state, 'seeding', 'recheck found every piece')
        torrents.push(t)
      }
      const handles = await Promise.all(
        made.map((m, i) =>
          ltLeech(lt, m, join(tmp.path, `fs-${VERSIONS[i]}`, 'dest'), [`${HOST}:${session.port}`]),
        ),
      )
      for (const [i, h] of handles.entries()) {
        const st = await lt.waitFor(h, (s) => s.is_seeding, { timeoutMs: 40_000, intervalMs: 100 })
        assert.equal(st.progress, 1, `${VERSIONS[i]}: libtorrent finished`)
        assert.ok(
          st.total_payload_download >= made[i]!.payload.totalBytes,
          `${VERSIONS[i]}: payload came over the wire`,
        )
      }
      for (const [i, m] of made.entries()) {
        await assertSameFiles(join(tmp.path, `fs-${VERSIONS[i]}`, 'dest'), m)
        assert.ok(
          torrents[i]!.status().uploaded >= m.payload.totalBytes,
          `${VERSIONS[i]}: we uploaded it all`,
        )
        await lt.remove(handles[i]!)
      }
    } finally {
      await session.stop()
    }
  })

  test('our engine dials the libtorrent leecher (hybrid, FsPieceStore)', async () => {
    const session = await startSession('seed-dial')
    try {
      const dir = join(tmp.path, 'dial')
      const m = await makeLtTorrent(lt, dir, multi('dial-hybrid', 'dial'), 'hybrid', 128 * 1024)
      const t = await session.addTorrent({
        metainfo: m.metainfo,
        store: new FsPieceStore({ directory: m.payload.root }),
      })
      await complete(t, 20_000)
      const h = await ltLeech(lt, m, join(dir, 'dest'), [])
      t.addPeers([{ host: HOST, port: lt.port }])
      await lt.waitFor(h, (s) => s.is_seeding, { timeoutMs: 40_000, intervalMs: 100 })
      await assertSameFiles(join(dir, 'dest'), m)
      const peers = await lt.peers(h).catch(() => [])
      assert.ok(
        peers.every((p) => p.client.startsWith(CLIENT_VERSION.split('/')[0]!)),
        'libtorrent saw no other peer',
      )
      await lt.remove(h)
    } finally {
      await session.stop()
    }
  })

  test('v2 and hybrid: seeding from a MemoryPieceStore filled by a first download, after that seeder left', async () => {
    const seederLt = await startLibtorrent()
    const session = await startSession('seed-memory')
    try {
      for (const version of ['v2', 'hybrid'] as const) {
        const dir = join(tmp.path, `mem-${version}`)
        const m = await makeLtTorrent(
          seederLt,
          dir,
          multi(`mem-${version}`, `mem-${version}`),
          version,
          64 * 1024,
        )
        const hs = await ltSeed(seederLt, m)
        const t = await session.addTorrent({
          metainfo: m.metainfo,
          store: new MemoryPieceStore(),
          peers: [{ host: HOST, port: seederLt.port }],
        })
        await complete(t, 30_000)
        await seederLt.remove(hs) // the first seeder leaves: we are the only one
        const h = await ltLeech(lt, m, join(dir, 'dest'), [`${HOST}:${session.port}`])
        await lt.waitFor(h, (s) => s.is_seeding, { timeoutMs: 40_000, intervalMs: 100 })
        await assertSameFiles(join(dir, 'dest'), m)
        assert.ok(t.status().uploaded >= m.payload.totalBytes)
        await lt.remove(h)
      }
    } finally {
      await session.stop()
      await seederLt.close()
    }
  })
})
