/**
 * The seed path plugged into the engine: our `Session` seeds v1, v2 and hybrid torrents made with
 * `createTorrentFromCodex`, reading ONLY from the local Codex node through `openCodexSeedBackend`
 * (segment cache → reader → verifying store); a real libtorrent leecher on 127.0.0.1 downloads
 * everything and the files it wrote equal the source. Also checks that the no-range node is not
 * asked for a full download per block (one stream per file, plus the range probe).
 */

import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createTorrentFromCodex } from '../../adapters/codex/create-from-codex.ts'
import { openCodexSeedBackend } from '../../adapters/codex/seed-backend.ts'
import { seedResolution } from '../../adapters/codex/seed-store.ts'
import { equalBytes } from '../../gateway/protocol/hex.ts'
import type { Metainfo } from '../../gateway/protocol/types.ts'
import { complete, HOST, startSession } from '../helpers/interop.ts'
import { startLibtorrent } from '../helpers/libtorrent.ts'
import { hashTree, sortedEntries, type TempDir, tempDir, writePayload } from '../helpers/payload.ts'
import { type NodeEnv, startNodeEnv } from './seed-fixtures.ts'

const MIB = 1024 * 1024
const FILES = [
  { path: ['big.bin'], size: 3 * MIB + 333 },
  { path: ['d', 'mid.bin'], size: MIB + 77 },
  { path: ['tiny.txt'], size: 5 },
]

describe('engine seeds from Codex only; libtorrent downloads', { timeout: 60_000 }, () => {
  let env: NodeEnv
  let tmp: TempDir

  before(async () => {
    env = await startNodeEnv()
    tmp = await tempDir('seed-session-')
  })
  after(async () => {
    await env.close()
    await tmp.cleanup()
  })

  test('v1, v2 and hybrid torrents made from CIDs are served from Codex and downloaded intact', async (t) => {
    const payload = await writePayload(join(tmp.path, 'src'), {
      name: 'codex-seed',
      seed: 'session',
      files: FILES,
    })
    const cids = new Map<string, string>()
    for (const f of FILES) {
      const bytes = await readFile(join(payload.path, ...f.path))
      cids.set(f.path.join('/'), await env.upload(bytes, f.path.at(-1)))
    }
    const made: { metainfo: Metainfo; fileCids: readonly (string | undefined)[]; file: string }[] = []
    for (const version of ['v1', 'v2', 'hybrid'] as const) {
      const created = await createTorrentFromCodex({
        client: env.client,
        name: 'codex-seed',
        version,
        pieceLength: 256 * 1024,
        files: FILES.map((f) => ({ cid: cids.get(f.path.join('/'))!, path: f.path })),
      })
      const file = join(tmp.path, `${version}.torrent`)
      await writeFile(file, created.torrentBytes)
      made.push({ metainfo: created.metainfo, fileCids: created.fileCids, file })
    }
    const seed = await openCodexSeedBackend({
      client: env.client,
      cacheDir: join(tmp.path, 'cache'),
      cacheMaxBytes: 32 * MIB,
      segmentBytes: MIB,
      resolve: async (info) => {
        const m = made.find((x) => equalBytes(x.metainfo.info.infoBytes, info.infoBytes))
        if (m === undefined) throw new Error('unknown torrent')
        return seedResolution(m.metainfo, m.fileCids)
      },
    })
    const session = await startSession('codex-seed')
    const lt = await startLibtorrent()
    const downloadsBefore = env.downloads()
    try {
      for (const [i, m] of made.entries()) {
        const torrent = await session.addTorrent({ metainfo: m.metainfo, store: seed.store })
        await complete(torrent, 10_000)
        assert.equal(torrent.state, 'seeding', 'completion from the store: every piece is in Codex')
        const dest = join(tmp.path, `dest-${i}`)
        const h = await lt.add({ torrent: m.file, savePath: dest, peers: [`${HOST}:${session.port}`] })
        const st = await lt.waitFor(h, (s) => s.is_seeding, { timeoutMs: 40_000, intervalMs: 100 })
        assert.equal(st.progress, 1)
        const got = await hashTree(dest, 'codex-seed')
        assert.deepEqual(sortedEntries(got), sortedEntries(payload.hashes))
        assert.ok(torrent.status().uploaded >= payload.totalBytes, 'the payload came from our engine')
        await lt.remove(h)
      }
      const stats = seed.stats()
      assert.equal(stats.store.verifyFailures, 0)
      assert.ok(stats.store.piecesVerified > 0)
      // 3 torrents × 2 multi-MiB files; the first torrent fills the cache, the others hit it.
      const downloads = env.downloads() - downloadsBefore
      t.diagnostic(`Codex downloads: ${downloads}; store ${JSON.stringify(stats.store)}`)
      assert.ok(downloads <= 4, `Codex downloads for 3 torrents: ${downloads} (1 probe + 1 stream per file)`)
      assert.ok(stats.reader.cache.hits > 0)
    } finally {
      await session.stop()
      await lt.close()
      await seed.close()
    }
  })
})
