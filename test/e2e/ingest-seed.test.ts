/**
 * End to end, real processes on 127.0.0.1: a libtorrent seeder → `POST /torrents` → the gateway
 * process downloads, verifies and streams every file into a local Codex node (run in this test
 * process) → a torrent record in Codex. Then the seeder leaves, the gateway restarts (its segment
 * cache is wiped at open: cold) and fresh libtorrent leechers download everything from the gateway,
 * which can only read from Codex (staging is empty, the seeder is gone).
 *
 * - hybrid multi-file torrent with BEP47 pad files, a zero-length file and odd sizes: every file's
 *   bytes read back through the Codex REST API equal the source; pad files are never stored; the
 *   empty file has no CID; the record (fetched from Codex, parsed) carries the exact .torrent and
 *   `GET /torrents/:id/torrent` is bit-exact;
 * - the same for a v1-only and a v2-only torrent;
 * - after the restart: leechers get byte-identical files; the seed store's counters show cache
 *   misses and bytes downloaded from Codex.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { LocalCodexNode } from '../../codex-client/local-node/index.ts'
import type { GatewayProcess } from '../helpers/gateway-process.ts'
import { type LtMadeTorrent, ltSeed, makeLtTorrent } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { hashTree, type PayloadSpec, sortedEntries, type TempDir } from '../helpers/payload.ts'
import {
  addTorrent,
  Cleanup,
  CODEX_API,
  codexData,
  type DetailsView,
  exportTorrent,
  fetchRecord,
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

const VERSIONS = ['hybrid', 'v1', 'v2'] as const
type Version = (typeof VERSIONS)[number]

function spec(version: Version): PayloadSpec {
  return {
    name: `payload-${version}`,
    seed: `ingest-${version}`,
    files: [
      { path: ['a.bin'], size: 3 * MIB + 12_345 },
      { path: ['empty.txt'], size: 0 },
      { path: ['dir', 'b.bin'], size: 700_001 },
      { path: ['dir', 'c.txt'], size: 17 },
      { path: ['z.bin'], size: MIB + 1 },
    ],
  }
}

interface Ingested {
  made: LtMadeTorrent
  id: string
  details: DetailsView
}

describe('e2e: ingest from libtorrent into Codex, then seed from Codex only', { timeout: 85_000 }, () => {
  const cleanup = new Cleanup()
  let tmp: TempDir
  let codex: LocalCodexNode
  let seeder: LtSession
  let gw: GatewayProcess
  const ingested = new Map<Version, Ingested>()

  before(async () => {
    ;({ tmp, codex, seeder } = await startSuite(cleanup, 'codex-bt-e2e-ingest-'))
    gw = await startGateway(cleanup, join(tmp.path, 'gw'), codex.url)
  })

  after(() => cleanup.run())

  for (const version of VERSIONS) {
    test(`${version}: every file lands in Codex byte-exact; the record rebuilds the .torrent`, async () => {
      const made = await makeLtTorrent(seeder, join(tmp.path, version), spec(version), version, 64 * 1024)
      const pads = made.metainfo.info.files.filter((f) => f.padding)
      if (version === 'hybrid') assert.ok(pads.length >= 2, 'the hybrid torrent has pad files')
      await ltSeed(seeder, made)
      const postsBefore = codex.faults.requestCount({ method: 'POST', route: `${CODEX_API}/data` })

      const id = await addTorrent(gw, made.bytes, [`${HOST}:${seeder.port}`])
      const d = await waitArchived(gw, id, 45_000)
      ingested.set(version, { made, id, details: d })

      // Files: every non-empty file has a CID whose bytes equal the source; the empty one has none.
      const dataFiles = spec(version).files!
      assert.deepEqual(d.files.map((f) => f.path).sort(), dataFiles.map((f) => f.path.join('/')).sort())
      for (const f of d.files) {
        const src = dataFiles.find((s) => s.path.join('/') === f.path)!
        assert.equal(f.sizeBytes, src.size)
        if (src.size === 0) {
          assert.equal(f.codexCid, null, 'a zero-length file has no CID')
          continue
        }
        assert.ok(f.codexCid, `${f.path} has a CID`)
        const bytes = await codexData(codex.url, f.codexCid)
        const want = made.payload.hashes.get(`${made.metainfo.info.name}/${f.path}`)
        assert.equal(sha256(bytes), want, `${f.path}: Codex bytes equal the source`)
      }

      // Exactly one upload per non-empty data file plus the record: pad files are never stored.
      const nonEmpty = dataFiles.filter((f) => f.size > 0).length
      const posts = codex.faults.requestCount({ method: 'POST', route: `${CODEX_API}/data` }) - postsBefore
      assert.equal(posts, nonEmpty + 1, 'one POST /data per non-empty file + the record')

      // The record, fetched from Codex and parsed.
      assert.ok(d.recordCid)
      const record = await fetchRecord(codex.url, d.recordCid)
      assert.equal(record.format, 'codex-bt-record')
      assert.equal(record.version, 1)
      assert.equal(record.name, made.metainfo.info.name)
      assert.ok(record.torrent, 'the record keeps the original .torrent')
      assert.ok(
        Buffer.from(record.torrent, 'base64').equals(Buffer.from(made.bytes)),
        'record.torrent is bit-exact',
      )
      assert.equal(record.files.length, made.metainfo.info.files.filter((f) => !isVirtualGap(f)).length)
      for (const rf of record.files) {
        if (rf.padding || rf.length === 0) {
          assert.equal(rf.cid, undefined, `${rf.path.join('/')}: pad / empty entries have no CID`)
          continue
        }
        const api = d.files.find((f) => f.path === rf.path.join('/'))
        assert.equal(rf.cid, api?.codexCid, `${rf.path.join('/')}: the record's CID is the API's`)
      }
      assert.equal(record.files.filter((f) => f.padding).length, pads.filter((p) => !isVirtualGap(p)).length)
      if (made.metainfo.info.infoHashV1) assert.equal(record.infoHashV1, hex(made.metainfo.info.infoHashV1))
      if (made.metainfo.info.infoHashV2) assert.equal(record.infoHashV2, hex(made.metainfo.info.infoHashV2))

      // GET /torrents/:id/torrent is bit-exact.
      assert.ok(
        (await exportTorrent(gw, id)).equals(Buffer.from(made.bytes)),
        'exported .torrent is bit-exact',
      )
    })
  }

  test('after a restart with the seeder gone, leechers download everything from Codex (cold cache)', async () => {
    assert.equal(ingested.size, VERSIONS.length, 'the ingest tests ran')
    await seeder.close()
    assert.equal(await gw.stop(), 0, 'graceful stop exits 0')
    // Nothing is left in staging: whatever the gateway serves now comes from Codex.
    const staged = (await listFiles(join(tmp.path, 'gw', 'staging'))).filter((f) => !f.endsWith('.json'))
    assert.deepEqual(staged, [], 'staging is empty once everything is archived')

    gw = await startGateway(cleanup, join(tmp.path, 'gw'), codex.url)
    const before = await metricsText(gw)
    assert.equal(metric(before, 'codex_bt_downloaded_bytes_total', { source: 'codex' }), 0)
    assert.equal(
      metric(before, 'codex_bt_cache_hits_total') + metric(before, 'codex_bt_cache_misses_total'),
      0,
    )

    const leecher = await startLibtorrent()
    try {
      const handles = new Map<Version, number>()
      for (const version of VERSIONS) {
        const { made, id } = ingested.get(version)!
        await waitSeeding(gw, id)
        handles.set(
          version,
          await leecher.add({
            torrent: made.torrentPath,
            savePath: join(tmp.path, `leech-${version}`),
            peers: [`${HOST}:${gw.peerPort}`],
          }),
        )
      }
      let payloadBytes = 0
      for (const version of VERSIONS) {
        const { made } = ingested.get(version)!
        const st = await ltComplete(leecher, handles.get(version)!, 60_000)
        assert.equal(st.progress, 1)
        const got = await hashTree(join(tmp.path, `leech-${version}`), made.metainfo.info.name)
        assert.deepEqual(sortedEntries(got), sortedEntries(made.payload.hashes), `${version}: byte-identical`)
        payloadBytes += made.payload.totalBytes
      }
      const m = await metricsText(gw)
      assert.ok(metric(m, 'codex_bt_cache_misses_total') > 0, 'the cold cache missed')
      assert.ok(
        metric(m, 'codex_bt_downloaded_bytes_total', { source: 'codex' }) >= payloadBytes,
        'every served byte was read from Codex',
      )
      assert.equal(metric(m, 'codex_bt_seed_verify_failures_total'), 0)
    } finally {
      await leecher.close()
    }
  })
})

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex')
}

/** v2-only torrents get virtual alignment gaps from the parser that the record does not list. */
function isVirtualGap(f: { virtual: boolean }): boolean {
  return f.virtual
}
