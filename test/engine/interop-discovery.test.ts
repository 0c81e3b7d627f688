/**
 * Interop: peer discovery as the ONLY peer source (no peer is handed to our engine), on 127.0.0.1.
 * 1. An HTTP tracker (`bittorrent-tracker`, http only) in the .torrent; a libtorrent seeder
 *    announces to it, our engine finds the seeder through it.
 * 2. The same with a UDP tracker (hybrid torrent: both swarm ids are announced).
 * 3. A private DHT: 4 `bittorrent-dht` nodes bootstrapped only to each other; the seeder is a
 *    second session of ours with its own `DhtNode` (libtorrent's DHT stays off: it cannot be shown
 *    to stay on loopback).
 * 4. PEX (BEP11): our engine (not listening, so nobody can dial it) is given only peer A, a
 *    libtorrent leecher throttled to a trickle that is connected to seeder B (another libtorrent);
 *    A's `ut_pex` message tells us about B, we dial B and get the data from it.
 */
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type DHT from 'bittorrent-dht'
import type { Server as TrackerServer } from 'bittorrent-tracker'
import { FsPieceStore } from '../../adapters/fs-store.ts'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import { DhtNode } from '../../gateway/engine/discovery/dht.ts'
import type { Session } from '../../gateway/engine/session.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import {
  complete,
  HOST,
  hashFromStorage,
  ltSeed,
  makeLtTorrent,
  startSession,
  waitUntil,
} from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { closeTracker, destroyDht, startPrivateDht, startTracker } from '../helpers/local-discovery.ts'
import { sortedEntries, type TempDir, tempDir } from '../helpers/payload.ts'

const MIB = 1024 * 1024

/** Peers the tracker knows in the swarm `hexHash` (seeders + leechers). */
function swarmSize(server: TrackerServer, hexHash: string): Promise<number> {
  return new Promise((resolve) =>
    server.getSwarm(hexHash, (_err, swarm) => resolve(swarm ? swarm.complete + swarm.incomplete : 0)),
  )
}

describe('interop: peer discovery as the only peer source', { timeout: 85_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-interop-disc-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  for (const kind of ['http', 'udp'] as const) {
    const version = kind === 'http' ? 'v1' : 'hybrid'
    test(`${kind} tracker (${version}): the seeder is found only through the tracker`, async () => {
      const tracker = await startTracker(kind)
      let session: Session | undefined
      try {
        const dir = join(tmp.path, kind)
        const made = await makeLtTorrent(
          lt,
          dir,
          { name: `trk-${kind}.bin`, seed: kind, size: 4 * MIB + 3 },
          version,
          64 * 1024,
          [tracker.url],
        )
        assert.deepEqual(made.metainfo.announce, [[tracker.url]])
        await ltSeed(lt, made)
        const v1 = made.metainfo.info.infoHashV1
        const swarm = toHex(v1 ?? made.metainfo.info.infoHashV2!.subarray(0, 20))
        await waitUntil(
          async () => (await swarmSize(tracker.server, swarm)) >= 1,
          'libtorrent to announce',
          20_000,
        )
        session = await startSession(`trk-${kind}`, { trackerOptions: { minIntervalFloorS: 1 } })
        const t = await session.addTorrent({ metainfo: made.metainfo, store: new MemoryPieceStore() })
        await complete(t, 30_000)
        assert.deepEqual(sortedEntries(await hashFromStorage(t)), sortedEntries(made.payload.hashes))
        const stats = session.trackerStats(t.id)
        assert.ok(stats, 'tracker stats')
        const answered = stats.swarms
          .flatMap((s) => s.trackers)
          .filter((s) => s.url === tracker.url && s.lastResult === 'success')
        assert.ok(
          answered.some((s) => s.peers >= 1),
          `the tracker gave us the seeder: ${JSON.stringify(stats.swarms)}`,
        )
        assert.ok((await swarmSize(tracker.server, swarm)) >= 2, 'the tracker saw us too')
      } finally {
        await session?.stop()
        await closeTracker(tracker.server)
      }
    })
  }

  test('private DHT of 4 loopback nodes: a second session of ours seeds, we find it by DHT lookup', async () => {
    const network: DHT[] = []
    const nodes: DhtNode[] = []
    const sessions: Session[] = []
    try {
      network.push(...(await startPrivateDht(4)))
      const bootstrap = network.map((d) => `${HOST}:${d.address().port}`)
      const startNode = async (): Promise<DhtNode> => {
        const n = new DhtNode({ bootstrap, host: HOST, port: 0, queryTimeoutMs: 500 })
        nodes.push(n)
        await n.start()
        assert.equal(n.address.host, HOST)
        return n
      }

      const dir = join(tmp.path, 'dht')
      const made = await makeLtTorrent(
        lt,
        dir,
        {
          name: 'dht-v2',
          seed: 'dht',
          files: [
            { path: ['x.bin'], size: 3 * MIB },
            { path: ['y.bin'], size: MIB + 9 },
          ],
        },
        'v2',
        64 * 1024,
      )
      const seeder = await startSession('dht-seeder', { dht: await startNode() })
      sessions.push(seeder)
      const st = await seeder.addTorrent({
        metainfo: made.metainfo,
        store: new FsPieceStore({ directory: made.payload.root }),
      })
      await complete(st, 20_000)
      // Wait until the seeder's announce is visible in the DHT (a third node looks it up).
      const probe = await startNode()
      const swarmId = made.metainfo.info.infoHashV2!.subarray(0, 20)
      await waitUntil(
        async () => (await probe.lookup(swarmId)).some((p) => p.host === HOST && p.port === seeder.port),
        'the seeder to be announced in the DHT',
        20_000,
        200,
      )
      const leecher = await startSession('dht-leecher', { dht: await startNode() })
      sessions.push(leecher)
      const t = await leecher.addTorrent({ metainfo: made.metainfo, store: new MemoryPieceStore() })
      await complete(t, 30_000)
      assert.deepEqual(sortedEntries(await hashFromStorage(t)), sortedEntries(made.payload.hashes))
      assert.ok(st.status().uploaded >= made.payload.totalBytes, 'the DHT-found seeder sent it')
    } finally {
      for (const s of sessions) await s.stop()
      for (const n of nodes) await n.stop()
      await destroyDht(network)
    }
  })

  test('PEX: given only peer A, we learn seeder B from A over ut_pex and download from B', async () => {
    const ltB = await startLibtorrent()
    let session: Session | undefined
    try {
      const dir = join(tmp.path, 'pex')
      const made = await makeLtTorrent(
        ltB,
        dir,
        { name: 'pex.bin', seed: 'pex', size: 4 * MIB },
        'v1',
        64 * 1024,
      )
      await ltSeed(ltB, made)
      await mkdir(join(dir, 'a'), { recursive: true })
      // A: a leecher on a trickle, connected to B (so A's PEX lists B as connectable).
      const hA = await lt.add({
        torrent: made.torrentPath,
        savePath: join(dir, 'a'),
        downloadLimit: 20_000,
        peers: [`${HOST}:${ltB.port}`],
      })
      await lt.waitFor(hA, (s) => s.num_peers >= 1, { timeoutMs: 15_000 })
      // Not listening: B cannot learn about us and dial in; only our own dial can reach B.
      session = await startSession('pex', { listen: false })
      const t = await session.addTorrent({
        metainfo: made.metainfo,
        store: new MemoryPieceStore(),
        peers: [{ host: HOST, port: lt.port }],
      })
      // Keep the connection object to B (it leaves `t.peers` when closed) to read its byte count.
      let toB: { down: { total: number } } | undefined
      const watch = setInterval(() => {
        for (const p of t.peers.values()) if (!p.info.incoming && p.info.port === ltB.port) toB = p
      }, 10)
      try {
        await complete(t, 40_000)
      } finally {
        clearInterval(watch)
      }
      const fromB = toB?.down.total ?? 0
      assert.ok(t.stats.pexPeers >= 1, 'peers arrived through PEX')
      assert.ok(
        t.knownPeers().some((p) => p.port === ltB.port),
        'B became known',
      )
      assert.ok(fromB > made.payload.totalBytes / 2, `most data came from B (${fromB} bytes)`)
      assert.deepEqual(sortedEntries(await hashFromStorage(t)), sortedEntries(made.payload.hashes))
      await lt.remove(hA)
    } finally {
      await session?.stop()
      await ltB.close()
    }
  })
})
