/** EngineStats counters/snapshots and the RateMeter. */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { EngineStats, OTHER_CLIENT, RateMeter } from '../../gateway/engine/stats.ts'

describe('EngineStats', () => {
  test('bytes by direction and source, totals and per torrent', () => {
    const stats = new EngineStats()
    stats.addDownloaded('peers', 100, 'aa')
    stats.addDownloaded('codex', 7)
    stats.addUploaded('peers', 40, 'aa')
    stats.addUploaded('codex', 1_000, 'bb')
    const snap = stats.snapshot()
    assert.deepEqual(snap.bytes, {
      downloaded: { peers: 100, codex: 7 },
      uploaded: { peers: 40, codex: 1_000 },
    })
    assert.deepEqual(snap.torrents.aa, {
      downloaded: { peers: 100, codex: 0 },
      uploaded: { peers: 40, codex: 0 },
    })
    assert.deepEqual(snap.torrents.bb?.uploaded, { peers: 0, codex: 1_000 })
    stats.removeTorrent('aa')
    assert.equal(stats.snapshot().torrents.aa, undefined)
    assert.equal(stats.snapshot().bytes.downloaded.peers, 100, 'totals keep removed torrents’ bytes')
    assert.throws(() => stats.addDownloaded('peers', -1), RangeError)
  })

  test('pieces and hash failures', () => {
    const stats = new EngineStats()
    stats.pieceVerified()
    stats.pieceVerified()
    stats.pieceFailed(['v1', 'v2'])
    stats.pieceFailed(['v2'])
    const snap = stats.snapshot()
    assert.equal(snap.piecesVerified, 2)
    assert.equal(snap.piecesFailed, 2)
    assert.deepEqual(snap.hashFailures, { v1: 1, v2: 2 })
  })

  test('peers by client name, bounded', () => {
    const stats = new EngineStats({ maxClientNames: 2 })
    const a = stats.peerConnected('libtorrent/2.0')
    stats.peerConnected('libtorrent/2.0')
    stats.peerConnected('WebTorrent')
    const c = stats.peerConnected('qBittorrent')
    assert.equal(c, OTHER_CLIENT)
    assert.deepEqual(stats.snapshot().peersByClient, { 'libtorrent/2.0': 2, WebTorrent: 1, other: 1 })
    assert.equal(stats.snapshot().peersConnected, 4)
    stats.peerDisconnected(a)
    stats.peerDisconnected(c)
    assert.deepEqual(stats.snapshot().peersByClient, { 'libtorrent/2.0': 1, WebTorrent: 1 })
    assert.equal(new EngineStats().peerConnected('x'.repeat(500)).length, 64, 'names are truncated')
  })

  test('snapshots are copies', () => {
    const stats = new EngineStats()
    const before = stats.snapshot()
    stats.addDownloaded('peers', 5)
    assert.equal(before.bytes.downloaded.peers, 0)
  })
})

describe('RateMeter', () => {
  test('average over the window, sliding', () => {
    const m = new RateMeter({ windowMs: 10_000, bucketMs: 1_000 })
    assert.equal(m.rate(0), 0)
    for (let s = 0; s < 10; s++) m.add(1_000, s * 1_000 + 500)
    assert.equal(m.rate(9_999), 1_000)
    assert.equal(m.rate(14_999), 500, 'five of ten buckets slid out')
    assert.equal(m.rate(100_000), 0)
  })

  test('a young meter averages over the elapsed time', () => {
    const m = new RateMeter()
    m.add(4_000, 0)
    assert.equal(m.rate(0), 4_000, 'one bucket so far')
    assert.equal(m.rate(1_999), 2_000, 'two buckets so far')
  })
})
