/**
 * Interop: a small swarm on 127.0.0.1: one libtorrent seeder with its upload capped at 2 MB/s,
 * our engine, and two libtorrent leechers (each its own libtorrent process). Everybody starts
 * empty but the seeder; the leechers know the seeder and us. Our engine must both download and
 * upload: the leechers receive bytes from us before we have everything.
 */
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import type { Session } from '../../gateway/engine/session.ts'
import { CLIENT_VERSION } from '../../gateway/engine/torrent/extensions.ts'
import { complete, HOST, hashFromStorage, ltSeed, makeLtTorrent, startSession } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { hashTree, sortedEntries, type TempDir, tempDir } from '../helpers/payload.ts'

const MIB = 1024 * 1024
const SEEDER_UPLOAD_LIMIT = 2_000_000

describe('interop: swarm of a capped libtorrent seeder, our engine and two libtorrent leechers', {
  timeout: 85_000,
}, () => {
  let seeder: LtSession
  let leechers: LtSession[]
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-interop-swarm-')
    seeder = await startLibtorrent()
    leechers = await Promise.all([startLibtorrent(), startLibtorrent()])
  })

  after(async () => {
    await Promise.all([seeder?.close(), ...(leechers ?? []).map((l) => l.close())])
    await tmp?.cleanup()
  })

  test('our engine uploads to the leechers while it is still downloading; everyone completes', async () => {
    const dir = join(tmp.path, 'swarm')
    const made = await makeLtTorrent(
      seeder,
      dir,
      {
        name: 'swarm',
        seed: 'swarm',
        files: [
          { path: ['a.bin'], size: 10 * MIB + 5 },
          { path: ['b.bin'], size: 6 * MIB - 5 },
        ],
      },
      'hybrid',
      64 * 1024,
    )
    await ltSeed(seeder, made, { uploadLimit: SEEDER_UPLOAD_LIMIT })
    let session: Session | undefined
    try {
      session = await startSession('swarm')
      const t = await session.addTorrent({
        metainfo: made.metainfo,
        store: new MemoryPieceStore(),
        peers: [{ host: HOST, port: seeder.port }],
      })
      const handles: number[] = []
      for (const [i, l] of leechers.entries()) {
        const save = join(dir, `leecher${i}`)
        await mkdir(save, { recursive: true })
        handles.push(
          await l.add({
            torrent: made.torrentPath,
            savePath: save,
            peers: [`${HOST}:${seeder.port}`, `${HOST}:${session.port}`],
          }),
        )
      }
      // Watch, while our engine is incomplete, what it uploaded and what the leechers got from it.
      let uploadedWhileIncomplete = 0
      let leechersGotFromUsWhileIncomplete = 0
      const deadline = Date.now() + 60_000
      for (let done = false; !done && Date.now() < deadline; ) {
        const st = t.status()
        if (st.progress < 1) {
          uploadedWhileIncomplete = Math.max(uploadedWhileIncomplete, st.uploaded)
          let fromUs = 0
          for (const [i, l] of leechers.entries()) {
            for (const p of await l.peers(handles[i]!))
              if (p.client.startsWith('codex-bt/')) fromUs += p.total_download
          }
          if (t.status().progress < 1)
            leechersGotFromUsWhileIncomplete = Math.max(leechersGotFromUsWhileIncomplete, fromUs)
        } else {
          done = true
        }
        await new Promise((r) => setTimeout(r, 200))
      }
      await complete(t, 30_000)
      assert.ok(uploadedWhileIncomplete > 0, 'our engine uploaded before it had everything')
      assert.ok(
        leechersGotFromUsWhileIncomplete > 0,
        'libtorrent leechers received bytes from us before we completed',
      )
      for (const [i, l] of leechers.entries()) {
        await l.waitFor(handles[i]!, (s) => s.is_seeding, { timeoutMs: 40_000, intervalMs: 200 })
      }
      assert.deepEqual(sortedEntries(await hashFromStorage(t)), sortedEntries(made.payload.hashes))
      for (const i of leechers.keys()) {
        assert.deepEqual(
          sortedEntries(await hashTree(join(dir, `leecher${i}`), 'swarm')),
          sortedEntries(made.payload.hashes),
        )
      }
      assert.ok(CLIENT_VERSION.startsWith('codex-bt/'))
    } finally {
      await session?.stop()
    }
  })
})
