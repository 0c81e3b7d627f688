/**
 * Interop robustness against a real libtorrent 2.0 peer on 127.0.0.1 (review findings):
 *
 * - a slow seeder (libtorrent upload limit 6 KB/s) serves its queue in order: the engine must not
 *   time out its requests one by one (each would wait longer than the timeout), count the late
 *   blocks as unrequested, and eventually close the honest peer;
 * - a download rate limit (200 KiB/s) against a fast seeder limits the network (requests are sent
 *   only with budget), so the bytes in flight stay bounded instead of the whole torrent arriving
 *   and waiting for tokens in memory;
 * - a magnet start with connections coming and going leaves no per-connection metadata waits.
 *
 * No timing assertions: the bounds below hold by construction (bytes requested ≤ budget taken).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import type { Session } from '../../gateway/engine/session.ts'
import { runFakePeer } from '../helpers/fake-peer.ts'
import { HOST, ltSeed, makeLtTorrent, startSession, waitUntil } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { type TempDir, tempDir } from '../helpers/payload.ts'

const KIB = 1024
const MIB = 1024 * KIB
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('interop robustness with libtorrent', { timeout: 88_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-interop-robust-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  test('a slow seeder (6 KB/s) keeps its connection: no per-request timeouts, no "unrequested" blocks', async () => {
    const made = await makeLtTorrent(
      lt,
      join(tmp.path, 'slow'),
      { name: 'slow.bin', seed: 'slow', size: 2 * MIB },
      'v1',
      64 * KIB,
    )
    await ltSeed(lt, made, { uploadLimit: 6000 })
    let session: Session | undefined
    try {
      session = await startSession('slow')
      const t = await session.addTorrent({
        metainfo: made.metainfo,
        store: new MemoryPieceStore(),
        peers: [{ host: HOST, port: lt.port }],
      })
      await waitUntil(() => t.peers.size === 1, 'the seeder connected', 10_000)
      const peer = [...t.peers.values()][0]!
      // 36 s: with a queue of 16 blocks at 6 KB/s, the last one would wait ~44 s — past the 30 s
      // request timeout — if timeouts were counted per request from the time it was sent.
      for (let s = 0; s < 36; s++) {
        await sleep(1000)
        assert.ok(!peer.closed, `the honest slow peer is still connected after ${s + 1} s`)
        assert.ok(peer.outstanding.size <= peer.outstanding.targetDepth(peer.down.rate, Date.now()) + 1)
      }
      assert.equal(t.stats.requestTimeouts, 0, 'no request timed out: blocks kept coming')
      assert.equal(peer.unrequested, 0, 'no block was taken for unrequested')
      assert.equal(t.stats.wasted, 0, 'nothing downloaded was thrown away')
      assert.equal(t.stats.protocolViolations, 0)
      assert.ok(t.stats.downloadedBytes >= 64 * KIB, `data arrived (${t.stats.downloadedBytes} B)`)
    } finally {
      await session?.stop()
    }
  })

  test('a 200 KiB/s download limit against a fast seeder bounds the bytes in flight and the network', async () => {
    const made = await makeLtTorrent(
      lt,
      join(tmp.path, 'limit'),
      { name: 'limit.bin', seed: 'limit', size: 48 * MIB },
      'v1',
      256 * KIB,
    )
    await ltSeed(lt, made)
    const limit = 200 * KIB
    let session: Session | undefined
    try {
      session = await startSession('limit', { downloadRateLimit: limit })
      const t = await session.addTorrent({
        metainfo: made.metainfo,
        store: new MemoryPieceStore(),
        peers: [{ host: HOST, port: lt.port }],
      })
      const start = Date.now()
      const baseBuffers = process.memoryUsage().arrayBuffers
      let maxInFlight = 0
      let maxBuffers = 0
      for (let i = 0; i < 24; i++) {
        await sleep(250)
        let inFlight = 0
        for (const p of t.peers.values()) for (const r of p.outstanding.requests()) inFlight += r.length
        maxInFlight = Math.max(maxInFlight, inFlight)
        maxBuffers = Math.max(maxBuffers, process.memoryUsage().arrayBuffers - baseBuffers)
      }
      const elapsed = (Date.now() - start) / 1000
      const received = t.stats.downloadedBytes
      // Requests need budget: received ≤ burst (one second) + rate × time + one budget chunk.
      const bound = limit + limit * elapsed + 256 * KIB
      assert.ok(received <= bound, `received ${received} B in ${elapsed.toFixed(1)} s, bound ${bound}`)
      assert.ok(received > 0, 'the download progresses')
      assert.ok(maxInFlight <= 2 * MIB, `bytes requested and not received stay bounded (${maxInFlight})`)
      assert.ok(maxBuffers < 32 * MIB, `buffers stay bounded (${maxBuffers} B above the start)`)
      t.log.info({ rate: received / elapsed }, 'observed rate')
    } finally {
      await session?.stop()
    }
  })

  test('magnet start: connections that come and go leave no metadata waits behind', async () => {
    const made = await makeLtTorrent(
      lt,
      join(tmp.path, 'waits'),
      { name: 'waits.bin', seed: 'waits', size: 100_000 },
      'v1',
      16 * KIB,
    )
    let session: Session | undefined
    try {
      session = await startSession('waits')
      // Nobody has the metadata: the torrent stays in the `metadata` state.
      const t = await session.addTorrent({
        infoHashV1: made.metainfo.info.infoHashV1!,
        store: new MemoryPieceStore(),
      })
      const reports = await runFakePeer(
        { host: HOST, port: session.port, infoHash: made.metainfo.info.infoHashV1!, phaseTimeoutMs: 150 },
        Array.from({ length: 20 }, () => 'probe' as const),
      )
      assert.ok(reports.every((r) => r.handshake))
      await waitUntil(() => t.peers.size === 0, 'the probes are gone', 5000)
      await sleep(50)
      assert.equal(t.state, 'metadata')
      assert.equal(t.pendingWaiters, 0, 'no per-connection waiter left')
    } finally {
      await session?.stop()
    }
  })
})
