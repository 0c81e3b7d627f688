/**
 * Interop: a scripted hostile peer (test/helpers/fake-peer.ts) next to an honest libtorrent
 * seeder (upload capped so the hostile peer gets requests). The hostile peer connects to our
 * engine again and again with the same peer id:
 *   1. floods requests → the engine closes the connection (request flood);
 *   2. sends a 64 MiB `piece` frame → closed (frame limit);
 *   3. answers requests with corrupt blocks → the piece fails its hash check, the peer is banned
 *      and its connection closed;
 *   4. comes back → refused right after the handshake.
 * The download still completes byte-identical. Also checked here with raw handshakes: our
 * incoming handshake sets the BEP52 upgrade bit only for swarms of torrents with a v2 half.
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import type { Session } from '../../gateway/engine/session.ts'
import { fakePeerId, runFakePeer } from '../helpers/fake-peer.ts'
import { complete, HOST, hashFromStorage, ltSeed, makeLtTorrent, startSession } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { sortedEntries, type TempDir, tempDir } from '../helpers/payload.ts'

const MIB = 1024 * 1024

/** Sends a BEP3 handshake for `infoHash` and returns the 8 reserved bytes of the answer. */
function reservedOfAnswer(port: number, infoHash: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port })
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('no handshake answer within 5 s'))
    }, 5000)
    socket.on('connect', () => {
      const hs = Buffer.alloc(68)
      hs[0] = 19
      hs.write('BitTorrent protocol', 1, 'latin1')
      hs[27] = 0x10 | 0x04 // we ask for the BEP52 upgrade and BEP6
      hs.set(infoHash, 28)
      hs.set(fakePeerId(), 48)
      socket.write(hs)
    })
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c])
      if (buf.length < 68) return
      clearTimeout(timer)
      socket.destroy()
      resolve(new Uint8Array(buf.subarray(20, 28)))
    })
    socket.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
}

describe('interop: hostile peer next to an honest seeder', { timeout: 85_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-interop-hostile-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  test('flood, oversized frame and corrupt blocks: closed, banned, refused; the download completes intact', async () => {
    const dir = join(tmp.path, 'hostile')
    const made = await makeLtTorrent(
      lt,
      dir,
      { name: 'hostile.bin', seed: 'hostile', size: 8 * MIB },
      'hybrid',
      64 * 1024,
    )
    await ltSeed(lt, made, { uploadLimit: 2_000_000 })
    let session: Session | undefined
    try {
      session = await startSession('hostile')
      const t = await session.addTorrent({
        metainfo: made.metainfo,
        store: new MemoryPieceStore(),
        peers: [{ host: HOST, port: lt.port }],
      })
      const peerId = fakePeerId()
      const reports = await runFakePeer(
        {
          host: HOST,
          port: session.port,
          infoHash: made.metainfo.info.infoHashV1!,
          peerId,
          phaseTimeoutMs: 10_000,
        },
        ['flood', 'oversized', 'corrupt', 'probe'],
      )
      const [flood, oversized, corrupt, probe] = reports
      for (const r of reports) assert.ok(r.handshake, `${r.phase}: the engine answered the handshake`)
      assert.ok(flood!.closedByRemote, 'flood: closed by the engine')
      assert.ok(
        oversized!.closedByRemote && oversized!.requestsReceived >= 1,
        'oversized: closed after its frame',
      )
      assert.ok(corrupt!.closedByRemote && corrupt!.blocksSent >= 1, 'corrupt: closed after corrupt blocks')
      assert.ok(probe!.closedByRemote && probe!.requestsReceived === 0, 'probe: refused after the ban')
      assert.ok(probe!.durationMs < 5000, 'probe: refused at once')
      assert.ok(t.isBanned(HOST, 0, peerId), 'the hostile peer id is banned')
      assert.ok(t.stats.peersBanned >= 1)
      assert.ok(t.stats.piecesFailed >= 1, 'corrupt pieces failed their hash check')
      assert.ok(t.stats.protocolViolations >= 1, 'the flood counted as a protocol violation')
      assert.ok(
        ![...t.peers.values()].some((p) => Buffer.from(p.info.peerId).equals(Buffer.from(peerId))),
        'no connection left',
      )
      await complete(t, 40_000)
      assert.deepEqual(sortedEntries(await hashFromStorage(t)), sortedEntries(made.payload.hashes))
      assert.equal(t.stats.peersBanned, 1, 'the honest seeder was never banned')
    } finally {
      await session?.stop()
    }
  })

  test('incoming handshakes: the BEP52 upgrade bit only for torrents with a v2 half', async () => {
    const dir = join(tmp.path, 'bits')
    let session: Session | undefined
    try {
      session = await startSession('bits')
      const made = await Promise.all(
        (['v1', 'hybrid', 'v2'] as const).map((v) =>
          makeLtTorrent(lt, join(dir, v), { name: `bits-${v}.bin`, seed: v, size: 100_000 }, v, 16 * 1024),
        ),
      )
      for (const m of made) await session.addTorrent({ metainfo: m.metainfo, store: new MemoryPieceStore() })
      const [v1, hybrid, v2] = made.map((m) => m.metainfo.info)
      const bit = (r: Uint8Array): boolean => (r[7]! & 0x10) !== 0
      assert.equal(
        bit(await reservedOfAnswer(session.port, v1!.infoHashV1!)),
        false,
        'v1-only: no upgrade bit',
      )
      assert.equal(
        bit(await reservedOfAnswer(session.port, hybrid!.infoHashV1!)),
        true,
        'hybrid (v1 hash): upgrade bit',
      )
      assert.equal(
        bit(await reservedOfAnswer(session.port, v2!.infoHashV2!.subarray(0, 20))),
        true,
        'v2: upgrade bit',
      )
    } finally {
      await session?.stop()
    }
  })
})
