/**
 * End to end: the gateway process is stopped in the middle of an ingest (SIGTERM, and a crash with
 * SIGKILL) and started again on the same data dir and the same Codex node (run in this process).
 *
 * A libtorrent seeder with its upload capped serves a ~23 MiB hybrid torrent (three large files and
 * a dozen one-piece files, so some files are complete and in Codex by mid-way while the piece
 * picker's random order leaves the large ones partial). At 40–60 % the gateway is stopped; after
 * the restart the job resumes and completes, and:
 * - the seeder uploaded less than 1.1 × the payload in total (verified staged pieces are kept);
 * - files already in Codex are not uploaded again (POST /data counted on the Codex node), and keep
 *   their CIDs;
 * - every file in Codex equals its source.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Catalog } from '../../adapters/catalog.ts'
import type { LocalCodexNode } from '../../codex-client/local-node/index.ts'
import type { GatewayProcess } from '../helpers/gateway-process.ts'
import { api, waitUntil } from '../helpers/gateway-process.ts'
import { ltSeed, makeLtTorrent } from '../helpers/interop.ts'
import type { LtSession } from '../helpers/libtorrent.ts'
import type { PayloadSpec, TempDir } from '../helpers/payload.ts'
import {
  addTorrent,
  Cleanup,
  CODEX_API,
  codexData,
  type DetailsView,
  details,
  HOST,
  MIB,
  startGateway,
  startSuite,
  waitArchived,
} from './kit.ts'

const RATE = 2_000_000 // seeder upload cap, bytes/s

function spec(name: string): PayloadSpec {
  const small = Array.from({ length: 12 }, (_, i) => ({
    path: ['small', `s${i}.bin`],
    size: 100_000 + i * 9_001,
  }))
  return {
    name,
    seed: name,
    files: [
      { path: ['big-1.bin'], size: 7 * MIB + 1 },
      ...small.slice(0, 6),
      { path: ['big-2.bin'], size: 7 * MIB + 4_321 },
      ...small.slice(6),
      { path: ['big-3.bin'], size: 6 * MIB + 77 },
    ],
  }
}

describe('e2e: restart in the middle of an ingest', { timeout: 88_000 }, () => {
  const cleanup = new Cleanup()
  let tmp: TempDir
  let codex: LocalCodexNode
  let seeder: LtSession

  before(async () => {
    ;({ tmp, codex, seeder } = await startSuite(cleanup, 'codex-bt-e2e-restart-'))
  })

  after(() => cleanup.run())

  for (const how of ['SIGTERM', 'SIGKILL'] as const) {
    test(`${how} at 40–60 %: the job resumes, completes, and nothing is fetched or stored twice`, async (t) => {
      const dir = join(tmp.path, how)
      const made = await makeLtTorrent(seeder, dir, spec(`restart-${how}`), 'hybrid', 256 * 1024)
      const h = await ltSeed(seeder, made, { uploadLimit: RATE })
      const posts = () => codex.faults.requestCount({ method: 'POST', route: `${CODEX_API}/data` })
      const dataDir = join(dir, 'gw')

      let gw: GatewayProcess = await startGateway(cleanup, dataDir, codex.url)
      const id = await addTorrent(gw, made.bytes, [`${HOST}:${seeder.port}`])
      const mid = await waitUntil(
        async () => {
          const d = await details(gw, id)
          return d.progress >= 0.4 ? d : undefined
        },
        { timeoutMs: 30_000, intervalMs: 100, what: 'ingest at 40 %' },
      )
      const live = await details(gw, id)
      if (how === 'SIGTERM') assert.equal(await gw.stop(), 0, 'graceful stop exits 0')
      else await gw.kill()
      assert.ok(mid.progress <= 0.6, `stopped at ${mid.progress}`)
      // The files in Codex when the gateway stopped, from its catalog (exact, whatever the timing).
      const catalog = Catalog.open(join(dataDir, 'catalog.sqlite'))
      const rows = catalog.getFiles(id)
      catalog.close()
      const inCodex = new Map(rows.filter((r) => r.cid).map((r) => [r.path.join('/'), r.cid!]))
      const pending = rows.filter((r) => !r.cid && !r.padding && r.length > 0).length
      assert.ok(inCodex.size >= 1, 'some files were already in Codex when the gateway stopped')
      assert.ok(pending >= 1, 'some files were not')
      // The API showed the files already in Codex during the ingest.
      for (const f of live.files) if (f.codexCid) assert.equal(inCodex.get(f.path), f.codexCid)
      assert.ok(
        live.files.some((f) => f.codexCid),
        'GET /torrents/:id shows the CIDs of files already in Codex',
      )
      const postsAtStop = posts()

      gw = await startGateway(cleanup, dataDir, codex.url)
      // The gateway resumed the job from its catalog; tell it where the seeder is (peers given at
      // add time are not persisted): adding the same torrent again only merges peers.
      const again = await api<{ created: boolean }>(
        gw.apiUrl,
        'POST',
        `/torrents?peers=${HOST}:${seeder.port}`,
        made.bytes,
      )
      assert.equal(
        again.status,
        200,
        `the torrent was resumed from the catalog, not created again: ${JSON.stringify(again.body)}\n${gw.logs.slice(-40).join('\n')}`,
      )
      assert.equal(again.body.created, false)
      const resumed = await details(gw, id)
      assert.ok(
        resumed.progress >= live.progress * 0.9,
        `resumed at ${resumed.progress}, had ${live.progress}`,
      )

      const d: DetailsView = await waitArchived(gw, id, 45_000)
      const st = await seeder.status(h)
      const total = made.payload.totalBytes
      assert.ok(
        st.total_payload_upload < 1.1 * total,
        `the seeder uploaded ${st.total_payload_upload} bytes for ${total} (< 1.1×)`,
      )
      const after = posts() - postsAtStop
      t.diagnostic(
        `stopped at ${(mid.progress * 100).toFixed(0)} %; ${inCodex.size} files in Codex, ${pending} not; ` +
          `seeder uploaded ${(st.total_payload_upload / total).toFixed(3)} × the payload; ` +
          `${after} POST /data after the restart`,
      )
      assert.ok(
        after <= pending + 1,
        `after the restart ${after} POST /data for ${pending} files not yet in Codex + the record`,
      )
      for (const [path, cid] of inCodex) {
        assert.equal(d.files.find((f) => f.path === path)?.codexCid, cid, `${path} kept its CID`)
      }
      for (const f of d.files) {
        assert.ok(f.codexCid)
        const want = made.payload.hashes.get(`${made.metainfo.info.name}/${f.path}`)
        assert.equal(
          sha256(await codexData(codex.url, f.codexCid)),
          want,
          `${f.path} in Codex equals the source`,
        )
      }
      await seeder.remove(h)
      await gw.stop()
    })
  }
})

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}
