/**
 * End to end: a torrent archived by one gateway is imported by another from its record CID alone.
 *
 * Gateway A ingests torrents from a libtorrent seeder into a local Codex node (run in this
 * process); then the seeder and gateway A stop. Gateway B starts with an EMPTY data dir on the same
 * Codex node, gets `POST /records/:cid/import` with A's record CIDs, and seeds: a libtorrent
 * leecher that knows only gateway B downloads everything, byte-identical. B exports the exact
 * .torrent; importing again is idempotent; a CID that is not a record is refused.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { LocalCodexNode } from '../../codex-client/local-node/index.ts'
import { api, type GatewayProcess } from '../helpers/gateway-process.ts'
import { type LtMadeTorrent, ltSeed, makeLtTorrent } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { hashTree, sortedEntries, type TempDir } from '../helpers/payload.ts'
import {
  type AddView,
  addTorrent,
  Cleanup,
  codexUpload,
  exportTorrent,
  HOST,
  listFiles,
  ltComplete,
  MIB,
  metric,
  metricsText,
  startGateway,
  startSuite,
  waitArchived,
  waitSeeding,
} from './kit.ts'

const VERSIONS = ['hybrid', 'v2'] as const

describe('e2e: import a record into a second gateway with an empty data dir', { timeout: 85_000 }, () => {
  const cleanup = new Cleanup()
  let tmp: TempDir
  let codex: LocalCodexNode
  let seeder: LtSession
  let gwA: GatewayProcess
  let gwB: GatewayProcess
  const archived: { made: LtMadeTorrent; id: string; recordCid: string }[] = []

  before(async () => {
    ;({ tmp, codex, seeder } = await startSuite(cleanup, 'codex-bt-e2e-import-'))
    gwA = await startGateway(cleanup, join(tmp.path, 'gw-a'), codex.url)
  })

  after(() => cleanup.run())

  test('gateway A archives the torrents', async () => {
    for (const version of VERSIONS) {
      const name = `import-${version}`
      const made = await makeLtTorrent(
        seeder,
        join(tmp.path, name),
        {
          name,
          seed: name,
          files: [
            { path: ['one.bin'], size: 2 * MIB + 999 },
            { path: ['sub', 'two.bin'], size: 500_001 },
            { path: ['empty'], size: 0 },
          ],
        },
        version,
        128 * 1024,
      )
      await ltSeed(seeder, made)
      const id = await addTorrent(gwA, made.bytes, [`${HOST}:${seeder.port}`])
      const d = await waitArchived(gwA, id, 40_000)
      assert.ok(d.recordCid)
      archived.push({ made, id, recordCid: d.recordCid })
    }
    await seeder.close()
    assert.equal(await gwA.stop(), 0)
  })

  test('gateway B (empty data dir) imports the records and a leecher downloads everything from B', async () => {
    assert.equal(archived.length, VERSIONS.length)
    const dirB = join(tmp.path, 'gw-b')
    assert.deepEqual(await listFiles(dirB), [], 'B starts with an empty data dir')
    gwB = await startGateway(cleanup, dirB, codex.url)

    for (const a of archived) {
      const r = await api<AddView>(gwB.apiUrl, 'POST', `/records/${a.recordCid}/import`)
      assert.equal(r.status, 201, JSON.stringify(r.body))
      assert.equal(r.body.created, true)
      assert.equal(r.body.torrent.id, a.id)
      const d = await waitSeeding(gwB, a.id)
      assert.equal(d.recordCid, a.recordCid)
      assert.ok(
        (await exportTorrent(gwB, a.id)).equals(Buffer.from(a.made.bytes)),
        'B exports the exact .torrent',
      )
      const again = await api<AddView>(gwB.apiUrl, 'POST', `/records/${a.recordCid}/import`)
      assert.equal(again.status, 200, 'importing again is idempotent')
      assert.equal(again.body.created, false)
    }

    const leecher = await startLibtorrent()
    try {
      const handles = []
      for (const a of archived) {
        handles.push(
          await leecher.add({
            torrent: a.made.torrentPath,
            savePath: join(tmp.path, `leech-${a.id}`),
            peers: [`${HOST}:${gwB.peerPort}`],
          }),
        )
      }
      for (const [i, a] of archived.entries()) {
        const st = await ltComplete(leecher, handles[i]!, 45_000)
        assert.equal(st.total_failed_bytes, 0)
        const got = await hashTree(join(tmp.path, `leech-${a.id}`), a.made.metainfo.info.name)
        assert.deepEqual(sortedEntries(got), sortedEntries(a.made.payload.hashes))
      }
    } finally {
      await leecher.close()
    }
    const m = await metricsText(gwB)
    const payload = archived.reduce((n, a) => n + a.made.payload.totalBytes, 0)
    assert.ok(
      metric(m, 'codex_bt_downloaded_bytes_total', { source: 'codex' }) >= payload,
      'B served from Codex',
    )
    assert.equal(metric(m, 'codex_bt_downloaded_bytes_total', { source: 'peers' }), 0, 'B downloaded nothing')
  })

  test('a CID that is not a record is refused', async () => {
    const cid = await codexUpload(codex.url, new TextEncoder().encode('not a record'), 'x.txt')
    const r = await api<{ error: { code: string } }>(gwB.apiUrl, 'POST', `/records/${cid}/import`)
    assert.ok(r.status >= 400 && r.status < 500, `status ${r.status} ${JSON.stringify(r.body)}`)
    const list = await api<{ torrents: unknown[] }>(gwB.apiUrl, 'GET', '/torrents')
    assert.equal(list.body.torrents.length, archived.length, 'nothing was added')
  })
})
