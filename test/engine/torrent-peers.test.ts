/**
 * The coordinator's peer bookkeeping and metadata handling, deterministic (manual clock):
 *
 * - known peers (known-peers.ts): per-address failure counts, exponential reconnect backoff,
 *   eviction of addresses that keep failing, and learning past the size bound;
 * - per-connection metadata waits end with the connection (no pile-up on a magnet start);
 * - a hybrid found from a btih-only magnet adopts its v2 hash (and the host is told), and the
 *   completed torrent's metainfo carries every BEP52 piece layer (computed from the verified local
 *   data when no peer sent them), so its .torrent parses.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { torrentFromMetainfo } from '../../adapters/record.ts'
import { KnownPeers } from '../../gateway/engine/torrent/known-peers.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { parseTorrent } from '../../gateway/protocol/metainfo.ts'
import { makeTestTorrent, settle, startTestTorrent, WirePeer } from '../helpers/fake-peer.ts'

const KIB = 1024
const addr = (i: number): { host: string; port: number } => ({ host: '127.0.0.9', port: 1000 + i })

describe('KnownPeers (pure)', () => {
  test('backoff: an address is dialled again only after min reconnect × 2^(failures − 1)', () => {
    const k = new KnownPeers({ minReconnectMs: 60_000 })
    assert.ok(k.add(addr(1), 0))
    assert.deepEqual(k.takeDue(0, 10), [addr(1)])
    assert.deepEqual(k.takeDue(5_000, 10), [], 'not every 5 s')
    assert.deepEqual(k.takeDue(60_000, 10), [addr(1)], 'after 60 s')
    assert.deepEqual(k.takeDue(60_000 + 119_000, 10), [])
    assert.deepEqual(k.takeDue(60_000 + 120_000, 10), [addr(1)], 'then after 120 s')
    assert.equal(k.failures('127.0.0.9:1001'), 3)
  })

  test('a connection forgives failures; a disconnect waits min reconnect', () => {
    const k = new KnownPeers({ minReconnectMs: 1000 })
    k.add(addr(1), 0)
    k.takeDue(0, 1)
    k.onConnected(addr(1))
    assert.equal(k.failures('127.0.0.9:1001'), 0)
    assert.deepEqual(k.takeDue(10_000, 1), [], 'connected: not dialled')
    k.onDisconnected('127.0.0.9:1001', 10_000)
    assert.deepEqual(k.takeDue(10_500, 1), [])
    assert.deepEqual(k.takeDue(11_000, 1), [addr(1)])
  })

  test('addresses that keep failing are forgotten', () => {
    const k = new KnownPeers({ minReconnectMs: 1, maxFailures: 3 })
    k.add(addr(1), 0)
    let now = 0
    for (let i = 0; i < 3; i++) {
      assert.equal(k.takeDue(now, 1).length, 1)
      now += 1000
    }
    assert.deepEqual(k.takeDue(now, 1), [])
    assert.equal(k.size, 0, 'evicted after 3 failures')
  })

  test('bounded, and keeps learning when full: failing entries make room, connected ones stay', () => {
    const k = new KnownPeers({ maxEntries: 3, minReconnectMs: 1 })
    for (let i = 0; i < 3; i++) k.add(addr(i), 0)
    k.takeDue(0, 1) // one failed attempt for the first
    k.onConnected(addr(2))
    assert.ok(k.add(addr(9), 0), 'a new address is learned')
    assert.equal(k.size, 3)
    assert.ok(!k.has('127.0.0.9:1000'), 'the failing one made room')
    assert.ok(k.has('127.0.0.9:1002'), 'the connected one stays')
    k.onConnected(addr(1))
    k.onConnected(addr(9))
    assert.ok(!k.add(addr(10), 0), 'all connected: the new one is dropped')
    assert.equal(k.size, 3)
  })
})

describe('torrent peers and metadata (scripted peers, manual clock)', () => {
  test('known peers are not redialled every 5 s, and learning goes on past the bound', async () => {
    const { metainfo } = await makeTestTorrent(64 * KIB, 'v1', 16 * KIB)
    const h = await startTestTorrent({ metainfo, minReconnectMs: 60_000, maxKnownPeers: 20 })
    const t = h.torrent
    try {
      t.addPeers(Array.from({ length: 10 }, (_, i) => addr(i)))
      assert.equal(h.dials.length, 10, 'new addresses are dialled at once')
      h.advance(55_000)
      assert.equal(h.dials.length, 10, 'no redial within the reconnect time')
      h.advance(10_000)
      assert.equal(h.dials.length, 20, 'redialled once after 60 s')
      h.advance(60_000)
      assert.equal(h.dials.length, 20, 'the second retry waits 120 s')
      // More addresses than the bound: new ones are still learned (failing ones make room).
      t.addPeers(Array.from({ length: 30 }, (_, i) => addr(100 + i)))
      const known = t.knownPeers()
      assert.ok(known.length <= 20)
      assert.ok(
        known.some((a) => a.port === 1129),
        'the last new address was learned',
      )
    } finally {
      await t.stop()
    }
  })

  test('magnet start: metadata waits tied to a connection end with it', async () => {
    const { metainfo } = await makeTestTorrent(64 * KIB, 'v1', 16 * KIB)
    const h = await startTestTorrent({ infoHashV1: metainfo.info.infoHashV1! })
    const t = h.torrent
    try {
      const settled: Promise<unknown>[] = []
      for (let i = 0; i < 50; i++) {
        const p = new WirePeer()
        assert.ok(p.attach(t))
        // What the session does per connection (frame limits once the piece count is known).
        settled.push(t.whenMetadata({ signal: p.handlers!.signal }).catch(() => {}))
        p.close('gone')
        await settle(2)
      }
      await Promise.all(settled)
      assert.equal(t.pendingWaiters, 0, 'no waiter left behind by closed connections')
      assert.equal(t.peers.size, 0)
    } finally {
      await t.stop()
    }
  })

  test('hybrid from a btih-only magnet: adopts the v2 hash; the completed metainfo has every piece layer', async () => {
    const pieceLength = 32 * KIB
    const { metainfo, data } = await makeTestTorrent(5 * pieceLength + 1234, 'hybrid', pieceLength, 9)
    assert.equal(metainfo.pieceLayers.size, 1)
    const h = await startTestTorrent({ infoHashV1: metainfo.info.infoHashV1! })
    const t = h.torrent
    try {
      const id = t.id
      assert.equal(t.infoHashV2, undefined)
      await t.onMetadata(metainfo.info)
      assert.equal(toHex(t.infoHashV2!), toHex(metainfo.info.infoHashV2!), 'v2 hash adopted')
      assert.equal(t.swarmIds().length, 2, 'answers to both swarms')
      assert.equal(t.id, id, 'the id does not change')
      assert.equal(h.metadataEvents.length, 1, 'the host was told (it indexes and announces the new swarm)')
      assert.equal(t.verifier!.missingLayers().length, 1, 'no peer sent the layer')
      const p = new WirePeer()
      assert.ok(p.attach(t))
      p.deliver({ type: 'have-all' }, { type: 'unchoke' })
      for (let i = 0; i < 50 && !t.isComplete; i++) {
        await settle()
        p.answer(p.take('request'), data, pieceLength)
      }
      await t.whenComplete({ signal: AbortSignal.timeout(5000) })
      const m = t.metainfo!
      assert.equal(m.pieceLayers.size, 1)
      for (const [root, layer] of metainfo.pieceLayers)
        assert.equal(toHex(m.pieceLayers.get(root)!), toHex(layer))
      const reparsed = parseTorrent(torrentFromMetainfo(m))
      assert.equal(toHex(reparsed.info.infoHashV2!), toHex(metainfo.info.infoHashV2!))
      assert.equal(reparsed.pieceLayers.size, 1)
    } finally {
      await t.stop()
    }
  })
})
