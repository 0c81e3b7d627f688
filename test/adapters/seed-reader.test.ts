/**
 * `SegmentCache` + `CodexFileReader` against the local Codex node over real HTTP (127.0.0.1) and
 * real temp dirs: exact bytes cold and warm, the disk bound, counters, one sequential stream per
 * dataset on a node without ranges (Codex master, NOTES.md §1.4), ranged fetches on a node with
 * them, retries and typed errors on Codex faults, deadlines, cancellation, invalidation, close.
 */

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  CodexFileReader,
  type CodexFileReaderInit,
  CodexReadError,
} from '../../adapters/codex/codex-file-reader.ts'
import { SegmentCache } from '../../adapters/codex/segment-cache.ts'
import { formatCid, manifestCidFromBytes } from '../../codex-client/cid.ts'
import { CodexClient } from '../../codex-client/client.ts'
import { tempDir } from '../helpers/payload.ts'
import { bytesOf, dirBytes, type NodeEnv, prng, startNodeEnv, startRangeServer } from './seed-fixtures.ts'

const KIB = 1024
const MIB = 1024 * KIB
const SEGMENT = 256 * KIB

describe('CodexFileReader on the local Codex node (no Range support)', () => {
  let env: NodeEnv
  const fileLength = 3 * MIB + 12_345
  const data = bytesOf('reader-file', fileLength)
  let cid = ''

  before(async () => {
    env = await startNodeEnv()
    cid = await env.upload(data, 'reader.bin')
  })
  after(async () => {
    await env.close()
  })

  /** A fresh cache + reader in their own temp dir; `close` cleans up. */
  async function setup(cacheMaxBytes: number, init: Partial<CodexFileReaderInit> = {}) {
    const dir = await tempDir('seed-cache-')
    const cache = new SegmentCache({
      dir: join(dir.path, 'segments'),
      segmentBytes: SEGMENT,
      maxBytes: cacheMaxBytes,
    })
    await cache.open()
    const client = new CodexClient({ url: env.node.url, retry: { attempts: 1 } })
    const reader = new CodexFileReader({ client, cache, retryDelayMs: 5, ...init })
    return {
      cache,
      client,
      reader,
      cacheDir: cache.dir,
      async close() {
        await reader.close()
        await cache.close()
        await client.destroy()
        await dir.cleanup()
      },
    }
  }

  test('random reads return the exact bytes, cold and warm; the disk bound holds; counters move', async (t) => {
    const s = await setup(4 * SEGMENT)
    try {
      const random = prng(7)
      const ranges: [number, number][] = []
      for (let i = 0; i < 40; i++) {
        const offset = Math.floor(random() * fileLength)
        const length = Math.min(1 + Math.floor(random() * 300 * KIB), fileLength - offset)
        ranges.push([offset, length])
      }
      ranges.push([fileLength - 1, 1], [0, 1], [SEGMENT - 10, 20])
      for (const [offset, length] of ranges) {
        const got = await s.reader.read(cid, fileLength, offset, length)
        assert.deepEqual(got, data.subarray(offset, offset + length), `read ${offset}+${length}`)
        assert.ok((await dirBytes(s.cacheDir)) <= 4 * SEGMENT, 'segment files stay under the bound')
      }
      for (const [offset, length] of ranges.slice(0, 10)) {
        assert.deepEqual(
          await s.reader.read(cid, fileLength, offset, length),
          data.subarray(offset, offset + length),
        )
      }
      const stats = s.reader.stats
      assert.ok(stats.cache.hits > 0 && stats.cache.misses > 0, JSON.stringify(stats.cache))
      assert.ok(stats.cache.evictions > 0, 'a 1 MiB cache over a 3 MiB file evicts')
      assert.ok(stats.cache.bytesStored <= 4 * SEGMENT)
      assert.ok(stats.bytesFromCodex >= fileLength / 2)
      assert.equal(stats.reads, ranges.length + 10)
      t.diagnostic(`stats ${JSON.stringify({ ...stats, cache: undefined })}`)
    } finally {
      await s.close()
    }
  })

  test('cold vs warm sequential read throughput (reported, not asserted)', async (t) => {
    const s = await setup(64 * MIB)
    try {
      const block = 64 * KIB
      const pass = async (): Promise<number> => {
        const started = performance.now()
        for (let offset = 0; offset < fileLength; offset += block) {
          const length = Math.min(block, fileLength - offset)
          const got = await s.reader.read(cid, fileLength, offset, length)
          assert.equal(got[0], data[offset])
        }
        return fileLength / MIB / ((performance.now() - started) / 1000)
      }
      const cold = await pass()
      const warm = await pass()
      t.diagnostic(
        `sequential 64 KiB reads of 3 MiB: cold ${cold.toFixed(1)} MB/s, warm ${warm.toFixed(1)} MB/s`,
      )
      assert.equal(s.reader.stats.streamOpens, 1)
    } finally {
      await s.close()
    }
  })

  test('no-range node: random reads share ONE sequential stream (no restart per read)', async () => {
    const s = await setup(64 * MIB)
    try {
      const before = env.downloads()
      const random = prng(11)
      for (let i = 0; i < 50; i++) {
        const offset = Math.floor(random() * fileLength)
        const length = Math.min(16 * KIB, fileLength - offset)
        assert.deepEqual(
          await s.reader.read(cid, fileLength, offset, length),
          data.subarray(offset, offset + length),
        )
      }
      const requests = env.downloads() - before
      assert.equal(s.client.rangeSupport, 'no')
      assert.equal(s.reader.stats.streamOpens, 1, 'one download serves every read')
      assert.equal(s.reader.stats.streamRestarts, 0)
      assert.ok(requests <= 2, `1 range probe + 1 stream, got ${requests} downloads for 50 reads`)
      assert.equal(s.reader.stats.rangedRequests, 0)
    } finally {
      await s.close()
    }
  })

  test('the stream restarts from 0 only when an evicted segment behind it is needed', async () => {
    const s = await setup(2 * SEGMENT, { readAheadSegments: 0 })
    try {
      const at = (seg: number): number => seg * SEGMENT + 5
      const read = async (seg: number): Promise<void> => {
        assert.deepEqual(
          await s.reader.read(cid, fileLength, at(seg), 100),
          data.subarray(at(seg), at(seg) + 100),
        )
      }
      await read(8) // stream passes segments 0..7, caches them (only the last 2 stay)
      await read(9) // forward: same stream
      assert.equal(s.reader.stats.streamOpens, 1)
      await read(8) // behind, but still cached: no restart
      assert.equal(s.reader.stats.streamRestarts, 0)
      await read(1) // behind and evicted: restart
      assert.equal(s.reader.stats.streamRestarts, 1)
      assert.equal(s.reader.stats.streamOpens, 2)
    } finally {
      await s.close()
    }
  })

  test('read-ahead fetches the next segment in the background', async () => {
    const s = await setup(64 * MIB, { readAheadSegments: 2 })
    try {
      await s.reader.read(cid, fileLength, 0, 10)
      // Bounded wait for the background fetches (they ride the open stream).
      for (let i = 0; i < 200 && !(s.cache.has(cid, 1) && s.cache.has(cid, 2)); i++) {
        await new Promise((r) => setTimeout(r, 10))
      }
      assert.ok(s.cache.has(cid, 1) && s.cache.has(cid, 2), 'segments 1 and 2 were read ahead')
      assert.ok(s.reader.stats.readAheads >= 2)
      const misses = s.reader.stats.cache.misses
      await s.reader.read(cid, fileLength, SEGMENT + 1, 10)
      assert.equal(s.reader.stats.cache.misses, misses, 'served from the cache')
    } finally {
      await s.close()
    }
  })

  test('concurrent reads of one segment share one fetch', async () => {
    const s = await setup(64 * MIB, { readAheadSegments: 0 })
    try {
      const reads = Array.from({ length: 8 }, (_, i) =>
        s.reader.read(cid, fileLength, 5 * SEGMENT + i * 1000, 500),
      )
      const got = await Promise.all(reads)
      got.forEach((g, i) => {
        assert.deepEqual(g, data.subarray(5 * SEGMENT + i * 1000, 5 * SEGMENT + i * 1000 + 500))
      })
      assert.equal(s.reader.stats.segmentsFetched, 6, 'segments 0..5 once each')
    } finally {
      await s.close()
    }
  })

  test('invalidate evicts the covering segments and the next read fetches them again', async () => {
    const s = await setup(64 * MIB, { readAheadSegments: 0 })
    try {
      await s.reader.read(cid, fileLength, 0, SEGMENT * 2)
      assert.ok(s.cache.has(cid, 0) && s.cache.has(cid, 1))
      assert.equal(s.reader.invalidate(cid, SEGMENT - 1, 2), 2)
      assert.ok(!s.cache.has(cid, 0) && !s.cache.has(cid, 1))
      const fetched = s.reader.stats.segmentsFetched
      assert.deepEqual(await s.reader.read(cid, fileLength, 10, 10), data.subarray(10, 20))
      assert.equal(s.reader.stats.segmentsFetched, fetched + 1)
    } finally {
      await s.close()
    }
  })

  test('transient 5xx answers are retried; persistent ones fail typed', async () => {
    const s = await setup(64 * MIB, { attempts: 3, readAheadSegments: 0 })
    try {
      await s.client.downloadRange(cid, 0, 1).then((r) => r.body.destroy()) // learn: no ranges
      env.node.faults.failNext(2, { status: 500, route: '/data/:cid', method: 'GET' })
      assert.deepEqual(await s.reader.read(cid, fileLength, 1000, 10), data.subarray(1000, 1010))
      assert.ok(s.reader.stats.retries >= 2)
      s.reader.invalidate(cid, 0, fileLength) // drops the cached segments and the open stream
      env.node.faults.failNext(50, { status: 500, route: '/data/:cid', method: 'GET' })
      await assert.rejects(s.reader.read(cid, fileLength, 1000, 10), (e: unknown) => {
        assert.ok(e instanceof CodexReadError)
        assert.equal(e.code, 'GW_ERR_CODEX_READ_FAILED')
        return true
      })
      assert.ok(s.reader.stats.failures >= 1)
    } finally {
      env.node.faults.clear()
      await s.close()
    }
  })

  test('a dataset not in the local node (local 404) streams through …/network/stream', async () => {
    const s = await setup(64 * MIB, { attempts: 1, readAheadSegments: 0 })
    try {
      await s.client.downloadRange(cid, 0, 1).then((r) => r.body.destroy()) // learn: no ranges
      const count = (route: string): number => env.node.faults.requestCount({ method: 'GET', route })
      const local = count('/data/:cid')
      const network = count('/data/:cid/network/stream')
      // As a real node answers for a manifest it does not hold (a record imported from another
      // gateway): the local route 404s, the network route serves it.
      env.node.faults.failNext(1, { status: 404, route: '/data/:cid', method: 'GET' })
      assert.deepEqual(await s.reader.read(cid, fileLength, 2000, 10), data.subarray(2000, 2010))
      assert.equal(count('/data/:cid') - local, 1, 'local first')
      assert.equal(count('/data/:cid/network/stream') - network, 1, 'then network-stream')
      assert.equal(s.reader.stats.retries, 0, 'the fallback is not a retry')
    } finally {
      env.node.faults.clear()
      await s.close()
    }
  })

  test('cut bodies fail typed after bounded retries (no hang), then reads recover', async () => {
    const s = await setup(64 * MIB, { attempts: 2, readAheadSegments: 0 })
    try {
      env.node.faults.cutBodiesAfter(100 * KIB)
      await assert.rejects(s.reader.read(cid, fileLength, MIB, 10), (e: unknown) => {
        assert.ok(e instanceof CodexReadError, String(e))
        assert.equal(e.code, 'GW_ERR_CODEX_READ_FAILED')
        return true
      })
      env.node.faults.clear()
      assert.deepEqual(await s.reader.read(cid, fileLength, MIB, 10), data.subarray(MIB, MIB + 10))
    } finally {
      env.node.faults.clear()
      await s.close()
    }
  })

  test('a stalled node hits the segment deadline (typed timeout), an abort rejects at once', async () => {
    const s = await setup(64 * MIB, { attempts: 2, segmentTimeoutMs: 200, readAheadSegments: 0 })
    try {
      env.node.faults.setLatency(1_000)
      await assert.rejects(s.reader.read(cid, fileLength, 0, 10), (e: unknown) => {
        assert.ok(e instanceof CodexReadError, String(e))
        assert.equal(e.code, 'GW_ERR_CODEX_READ_TIMEOUT')
        return true
      })
      const controller = new AbortController()
      const pending = s.reader.read(cid, fileLength, 0, 10, { signal: controller.signal })
      setTimeout(() => controller.abort(), 20)
      await assert.rejects(pending, { name: 'AbortError' })
      await assert.rejects(s.reader.read(cid, fileLength, 0, 10, { signal: AbortSignal.abort() }), {
        name: 'AbortError',
      })
    } finally {
      env.node.faults.clear()
      await s.close()
    }
  })

  test('missing datasets and wrong lengths fail typed without retries; bad arguments are refused', async () => {
    const s = await setup(64 * MIB, { attempts: 3 })
    try {
      const absent = formatCid(manifestCidFromBytes(bytesOf('absent', 56)))
      await assert.rejects(s.reader.read(absent, 1000, 0, 10), { code: 'GW_ERR_CODEX_READ_NOT_FOUND' })
      await assert.rejects(s.reader.read(cid, fileLength + 1, 0, 10), { code: 'GW_ERR_CODEX_READ_LENGTH' })
      assert.equal(s.reader.stats.retries, 0)
      await assert.rejects(s.reader.read('not-a-cid', 10, 0, 1), { code: 'GW_ERR_CODEX_READ_ARGUMENT' })
      await assert.rejects(s.reader.read(cid, fileLength, fileLength - 1, 2), {
        code: 'GW_ERR_CODEX_READ_ARGUMENT',
      })
      await assert.rejects(s.reader.read(cid, fileLength, -1, 2), { code: 'GW_ERR_CODEX_READ_ARGUMENT' })
    } finally {
      await s.close()
    }
  })

  test('close rejects reads in flight and destroys the streams', async () => {
    const s = await setup(64 * MIB)
    try {
      await s.reader.read(cid, fileLength, 0, 10)
      assert.equal(s.reader.openStreams, 1)
      env.node.faults.setLatency(300)
      const pending = s.reader.read(cid, fileLength, 3 * MIB, 10)
      await s.reader.close()
      await assert.rejects(pending, { code: 'GW_ERR_CODEX_READ_CLOSED' })
      assert.equal(s.reader.openStreams, 0)
      await assert.rejects(s.reader.read(cid, fileLength, 0, 1), { code: 'GW_ERR_CODEX_READ_CLOSED' })
    } finally {
      env.node.faults.clear()
      await s.close()
    }
  })
})

describe('CodexFileReader on a node with Range support (PR #1218 emulation)', () => {
  test('segments are fetched with ranged requests, never a full stream', async () => {
    const fileLength = 2 * MIB + 777
    const data = bytesOf('ranged', fileLength)
    const server = await startRangeServer(data)
    const dir = await tempDir('seed-range-')
    const cache = new SegmentCache({ dir: dir.path, segmentBytes: SEGMENT, maxBytes: 4 * MIB })
    await cache.open()
    const client = new CodexClient({ url: server.url, retry: { attempts: 1 } })
    const reader = new CodexFileReader({ client, cache })
    try {
      const random = prng(3)
      for (let i = 0; i < 20; i++) {
        const offset = Math.floor(random() * fileLength)
        const length = Math.min(40 * KIB, fileLength - offset)
        assert.deepEqual(
          await reader.read(server.cid, fileLength, offset, length),
          data.subarray(offset, offset + length),
        )
      }
      assert.deepEqual(
        await reader.read(server.cid, fileLength, fileLength - 5, 5),
        data.subarray(fileLength - 5),
      )
      assert.equal(client.rangeSupport, 'yes')
      assert.equal(server.counts.full, 0, 'no full downloads')
      assert.ok(server.counts.ranged > 0)
      assert.equal(reader.stats.streamOpens, 0)
      assert.equal(reader.stats.rangedRequests, server.counts.ranged)
      assert.ok(reader.stats.bytesFromCodex <= server.counts.ranged * SEGMENT)
    } finally {
      await reader.close()
      await cache.close()
      await client.destroy()
      await server.close()
      await dir.cleanup()
    }
  })
})
