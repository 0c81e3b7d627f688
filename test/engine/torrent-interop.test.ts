/**
 * The coordinator against a real libtorrent 2.0 seeder on 127.0.0.1 (review findings):
 *
 * - blame: a hostile peer that corrupts every block it sends (and claims the honest seeder's
 *   listen port as its BEP10 `p`) shares pieces with the honest seeder. The hostile peer is banned
 *   (trust / smart ban), the honest one never — neither through shared failures nor through the
 *   lying `p` — and the download completes intact (v1: SHA-1 read-back; hybrid: leaf hashes);
 * - a hybrid torrent started from a btih-only magnet adopts its v2 hash once the metadata is known,
 *   answers on the v2 swarm, and its completed metainfo carries every piece layer (computed
 *   locally: the v1 connection cannot carry BEP52 hash requests), so the archive record and the
 *   exported .torrent round-trip; a v2 magnet's record round-trips too.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import { buildRecord, parseRecord, torrentFromMetainfo } from '../../adapters/record.ts'
import { encodeRecord } from '../../adapters/record-format.ts'
import type { Session } from '../../gateway/engine/session.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { magnetFromMetainfo, parseMagnet } from '../../gateway/protocol/magnet.ts'
import { parseTorrent } from '../../gateway/protocol/metainfo.ts'
import type { Metainfo } from '../../gateway/protocol/types.ts'
import { fakePeerId, runFakePeer } from '../helpers/fake-peer.ts'
import { complete, HOST, hashFromStorage, ltSeed, makeLtTorrent, startSession } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { sortedEntries, type TempDir, tempDir } from '../helpers/payload.ts'

const KIB = 1024
const MIB = 1024 * KIB
const CID = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'

/** The archive record and the exported .torrent of `m` round-trip. */
function assertRecordRoundTrips(m: Metainfo, expected: Metainfo): void {
  for (const [root, layer] of expected.pieceLayers) {
    assert.equal(toHex(m.pieceLayers.get(root) ?? new Uint8Array()), toHex(layer), `piece layer ${root}`)
  }
  const cids = new Map<number, string>()
  m.info.files.forEach((f, i) => {
    if (!f.padding && f.length > 0) cids.set(i, CID)
  })
  const record = buildRecord(m, cids)
  parseRecord(encodeRecord(record))
  const exported = parseTorrent(torrentFromMetainfo(m))
  assert.equal(toHex(exported.info.infoBytes), toHex(expected.info.infoBytes))
  assert.equal(exported.pieceLayers.size, expected.pieceLayers.size)
}

describe('torrent coordinator vs libtorrent: blame and complete metainfo', { timeout: 88_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-torrent-interop-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  for (const version of ['v1', 'hybrid'] as const) {
    test(`${version}: a corrupting peer lying about its listen port is banned; the honest seeder never is`, async () => {
      const made = await makeLtTorrent(
        lt,
        join(tmp.path, `blame-${version}`),
        { name: `blame-${version}.bin`, seed: `blame-${version}`, size: 8 * MIB },
        version,
        256 * KIB,
      )
      await ltSeed(lt, made, { uploadLimit: 2_000_000 })
      let session: Session | undefined
      try {
        session = await startSession(`blame-${version}`)
        const t = await session.addTorrent({
          metainfo: made.metainfo,
          store: new MemoryPieceStore(),
          peers: [{ host: HOST, port: lt.port }],
        })
        const peerId = fakePeerId()
        const [corrupt, probe] = await runFakePeer(
          {
            host: HOST,
            port: session.port,
            infoHash: made.metainfo.info.infoHashV1!,
            peerId,
            phaseTimeoutMs: 20_000,
            claimListenPort: lt.port, // BEP10 `p`: "my listen port is the honest seeder's"
          },
          ['corrupt', 'probe'],
        )
        assert.ok(corrupt!.closedByRemote && corrupt!.blocksSent >= 1, 'the corrupting peer was closed')
        assert.ok(probe!.closedByRemote && probe!.requestsReceived === 0, 'and refused when it came back')
        assert.ok(t.isBanned(HOST, 0, peerId), 'its peer id is banned')
        await complete(t, 40_000)
        assert.deepEqual(sortedEntries(await hashFromStorage(t)), sortedEntries(made.payload.hashes))
        assert.ok(t.stats.piecesFailed >= 1, 'its blocks failed the hash check')
        assert.ok(!t.isBanned(HOST, lt.port), 'the honest seeder is not banned (not via `p` either)')
        assert.equal(t.stats.peersBanned, 1, 'one ban: the hostile peer')
      } finally {
        await session?.stop()
      }
    })
  }

  test('hybrid from a btih-only magnet: joins the v2 swarm; the completed metainfo is a whole .torrent', async () => {
    const made = await makeLtTorrent(
      lt,
      join(tmp.path, 'btih'),
      {
        name: 'btih',
        seed: 'btih',
        files: [
          { path: ['big.bin'], size: 3 * MIB + 12_345 },
          { path: ['s.txt'], size: 100 },
        ],
      },
      'hybrid',
      64 * KIB,
    )
    await ltSeed(lt, made)
    const link = parseMagnet(magnetFromMetainfo(made.metainfo))
    let session: Session | undefined
    try {
      session = await startSession('btih')
      const t = await session.addTorrent({
        infoHashV1: link.infoHashV1!,
        store: new MemoryPieceStore(),
        peers: [{ host: HOST, port: lt.port }],
      })
      assert.equal(t.infoHashV2, undefined)
      await t.whenMetadata({ signal: AbortSignal.timeout(20_000) })
      const v2 = made.metainfo.info.infoHashV2!
      assert.equal(toHex(t.infoHashV2!), toHex(v2), 'the v2 hash is adopted from the metadata')
      assert.equal(session.getTorrent(toHex(v2)), t, 'the session indexes the v2 swarm')
      const [hello] = await runFakePeer(
        { host: HOST, port: session.port, infoHash: v2.subarray(0, 20), phaseTimeoutMs: 300 },
        ['probe'],
      )
      assert.ok(hello!.handshake, 'a peer of the v2 swarm is answered')
      await complete(t, 40_000)
      assert.deepEqual(sortedEntries(await hashFromStorage(t)), sortedEntries(made.payload.hashes))
      assertRecordRoundTrips(t.metainfo!, made.metainfo)
    } finally {
      await session?.stop()
    }
  })

  test('v2 magnet: the completed metainfo carries the piece layers (record and .torrent round-trip)', async () => {
    const made = await makeLtTorrent(
      lt,
      join(tmp.path, 'btmh'),
      {
        name: 'btmh',
        seed: 'btmh',
        files: [
          { path: ['big.bin'], size: 2 * MIB + 777 },
          { path: ['s.txt'], size: 100 },
        ],
      },
      'v2',
      32 * KIB,
    )
    await ltSeed(lt, made)
    const link = parseMagnet(magnetFromMetainfo(made.metainfo))
    let session: Session | undefined
    try {
      session = await startSession('btmh')
      const t = await session.addTorrent({
        infoHashV2: link.infoHashV2!,
        store: new MemoryPieceStore(),
        peers: [{ host: HOST, port: lt.port }],
      })
      await complete(t, 40_000)
      assertRecordRoundTrips(t.metainfo!, made.metainfo)
    } finally {
      await session?.stop()
    }
  })
})
