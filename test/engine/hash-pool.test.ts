/**
 * HashPool (worker-thread hashing) and `hashPieceData` on it: same hashes as inline hashing for
 * every layout (v1 with pad files, v2 with virtual gaps, hybrid), from shared memory, copied
 * memory and async readers; bounded queues, staging exhaustion, aborts, close, dead workers, the
 * shared pool's lease counting, the session's lease, and idle workers not keeping a process alive.
 * The storage compliance suite also runs through the pool (memory and fs backends).
 */

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { FsPieceStore } from '../../adapters/fs-store.ts'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import {
  acquireSharedHashPool,
  HashPool,
  HashPoolError,
  type HashPoolLease,
  sharedHashPool,
} from '../../gateway/engine/hash-pool.ts'
import { PieceGeometry } from '../../gateway/engine/piece-geometry.ts'
import { Session } from '../../gateway/engine/session.ts'
import { hashPieceData, type PieceHashes, type PieceRangeReader } from '../../gateway/engine/storage.ts'
import type { TorrentInfo } from '../../gateway/protocol/types.ts'
import { runPieceStoreCompliance } from '../compliance/piece-store.ts'
import { buildInfo, expectedSha1, expectedV2Leaves, LAYOUTS, linearData } from '../helpers/layouts.ts'

const WANT_ALL = { v1: true, v2: true }

function plain(hashes: PieceHashes): { sha1?: number[]; v2Leaves?: number[][] } {
  const out: { sha1?: number[]; v2Leaves?: number[][] } = {}
  if (hashes.sha1) out.sha1 = [...hashes.sha1]
  if (hashes.v2Leaves) out.v2Leaves = hashes.v2Leaves.map((l) => [...l])
  return out
}

/** Expected hashes from the independent helpers (padding as zeros for v1, leaves per file range for v2). */
function expected(info: TorrentInfo, piece: number, linear: Uint8Array, want: { v1: boolean; v2: boolean }) {
  const out: { sha1?: number[]; v2Leaves?: number[][] } = {}
  if (want.v1) out.sha1 = [...expectedSha1(info, piece, linear)]
  if (want.v2) out.v2Leaves = expectedV2Leaves(info, piece, linear).map((l) => [...l])
  return out
}

type ReaderKind = 'shared' | 'copied' | 'async'

/** A reader over the linear space; `shared` data lives in a SharedArrayBuffer (posted without a copy). */
function reader(info: TorrentInfo, piece: number, linear: Uint8Array, kind: ReaderKind): PieceRangeReader {
  let source = linear
  if (kind === 'shared') {
    source = new Uint8Array(new SharedArrayBuffer(linear.byteLength))
    source.set(linear)
  }
  const base = piece * info.pieceLength
  return (at, length) => {
    const view = source.subarray(base + at, base + at + length)
    return kind === 'async' ? Promise.resolve(view.slice()) : view
  }
}

function wantsFor(info: TorrentInfo): { v1: boolean; v2: boolean }[] {
  if (info.version === 'v1') return [{ v1: true, v2: false }]
  return [WANT_ALL, { v1: false, v2: true }, { v1: true, v2: false }]
}

/** A big single-file hybrid torrent (1 MiB pieces, short last piece with a partial last block). */
const BIG = buildInfo({
  name: 'hash-pool-big',
  version: 'hybrid',
  pieceLength: 1024 * 1024,
  files: [{ path: ['big.bin'], length: 2 * 1024 * 1024 + 5000 }],
  single: true,
})

describe('hashPieceData on a HashPool', () => {
  let pool: HashPool
  before(() => {
    pool = new HashPool({ size: 2, minJobBytes: 0 })
  })
  after(() => pool.close())

  for (const [name, info] of Object.entries({ ...LAYOUTS, big: BIG })) {
    test(`layout ${name} (${info.version}): same hashes as inline, for every reader kind`, async () => {
      const geometry = new PieceGeometry(info)
      const linear = linearData(info)
      const before = pool.stats().completedJobs
      for (let piece = 0; piece < info.pieceCount; piece++) {
        for (const want of wantsFor(info)) {
          const inline = await hashPieceData(geometry, piece, want, reader(info, piece, linear, 'copied'), {
            hashPool: null,
          })
          assert.deepEqual(plain(inline), expected(info, piece, linear, want), `inline ${piece}`)
          for (const kind of ['shared', 'copied', 'async'] as const) {
            const got = await hashPieceData(geometry, piece, want, reader(info, piece, linear, kind), {
              hashPool: pool,
            })
            assert.deepEqual(plain(got), plain(inline), `piece ${piece} ${JSON.stringify(want)} ${kind}`)
          }
        }
      }
      assert.equal(pool.stats().activeJobs, 0)
      const jobs = info.pieceCount * wantsFor(info).length * 3
      assert.equal(pool.stats().completedJobs - before, jobs, 'every piece was hashed by a worker')
    })
  }

  test('many pieces at once (more than the active-job limit) all come out right', async () => {
    const small = new HashPool({ size: 1, maxActiveJobs: 2, stagingBuffers: 1, minJobBytes: 0 })
    try {
      const geometry = new PieceGeometry(BIG)
      const linear = linearData(BIG)
      const runs = []
      for (let round = 0; round < 4; round++) {
        for (let piece = 0; piece < BIG.pieceCount; piece++) {
          const kind = (['shared', 'copied', 'async'] as const)[(round + piece) % 3] ?? 'copied'
          runs.push(
            hashPieceData(geometry, piece, WANT_ALL, reader(BIG, piece, linear, kind), {
              hashPool: small,
            }).then((h) => assert.deepEqual(plain(h), expected(BIG, piece, linear, WANT_ALL))),
          )
        }
      }
      await Promise.all(runs)
      assert.deepEqual(small.stats(), {
        workers: 1,
        activeJobs: 0,
        queuedJobs: 0,
        stagingBuffers: 1,
        completedJobs: runs.length,
      })
    } finally {
      await small.close()
    }
  })

  test('pieces below minJobBytes are hashed inline (no worker is started)', async () => {
    const lazy = new HashPool({ size: 1, minJobBytes: 1024 * 1024 })
    try {
      const info = LAYOUTS.v1PadFiles as TorrentInfo
      const linear = linearData(info)
      const got = await hashPieceData(
        new PieceGeometry(info),
        0,
        { v1: true, v2: false },
        reader(info, 0, linear, 'copied'),
        {
          hashPool: lazy,
        },
      )
      assert.deepEqual(plain(got), expected(info, 0, linear, { v1: true, v2: false }))
      assert.equal(lazy.stats().workers, 0)
    } finally {
      await lazy.close()
    }
  })
})

describe('HashPool limits, aborts and failures', () => {
  test('a full wait queue rejects with GW_ERR_HASH_POOL_BUSY; hashPieceData then hashes inline', async () => {
    const pool = new HashPool({ size: 1, maxActiveJobs: 1, maxQueuedJobs: 1, minJobBytes: 0 })
    try {
      const first = await pool.open(WANT_ALL)
      const queued = pool.open(WANT_ALL)
      await assert.rejects(
        pool.open(WANT_ALL),
        (e: unknown) => e instanceof HashPoolError && e.code === 'GW_ERR_HASH_POOL_BUSY',
      )
      assert.equal(pool.stats().queuedJobs, 1)
      // hashPieceData is not blocked by the full pool
      const geometry = new PieceGeometry(BIG)
      const linear = linearData(BIG)
      const got = await hashPieceData(geometry, 0, WANT_ALL, reader(BIG, 0, linear, 'shared'), {
        hashPool: pool,
      })
      assert.deepEqual(plain(got), expected(BIG, 0, linear, WANT_ALL))
      first.cancel()
      const second = await queued
      second.update(new Uint8Array(16384))
      const hashes = await second.finish()
      assert.equal(hashes.v2Leaves?.length, 1)
      assert.equal(hashes.sha1?.byteLength, 20)
    } finally {
      await pool.close()
    }
  })

  test('an abort while waiting for a slot or for the result rejects with the reason; the pool stays usable', async () => {
    const pool = new HashPool({ size: 1, maxActiveJobs: 1, minJobBytes: 0 })
    try {
      const holder = await pool.open(WANT_ALL)
      const waiting = new AbortController()
      const queued = pool.open(WANT_ALL, { signal: waiting.signal })
      waiting.abort()
      await assert.rejects(queued, { name: 'AbortError' })
      assert.equal(pool.stats().queuedJobs, 0)
      holder.cancel()

      const running = new AbortController()
      const job = await pool.open(WANT_ALL, { signal: running.signal })
      job.update(new Uint8Array(new SharedArrayBuffer(4 * 1024 * 1024)))
      const result = job.finish()
      running.abort()
      await assert.rejects(result, { name: 'AbortError' })
      assert.equal(pool.stats().activeJobs, 0)

      await assert.rejects(
        hashPieceData(new PieceGeometry(BIG), 0, WANT_ALL, () => new Uint8Array(0), {
          hashPool: pool,
          signal: AbortSignal.abort(),
        }),
        { name: 'AbortError' },
      )
      const linear = linearData(BIG)
      const got = await hashPieceData(new PieceGeometry(BIG), 1, WANT_ALL, reader(BIG, 1, linear, 'copied'), {
        hashPool: pool,
      })
      assert.deepEqual(plain(got), expected(BIG, 1, linear, WANT_ALL))
    } finally {
      await pool.close()
    }
  })

  test('close rejects queued and running jobs, terminates workers, and hashPieceData falls back inline', async () => {
    const pool = new HashPool({ size: 1, maxActiveJobs: 1, minJobBytes: 0 })
    const running = await pool.open(WANT_ALL)
    running.update(new Uint8Array(1024))
    const result = running.finish()
    const queued = pool.open(WANT_ALL)
    const closing = pool.close()
    const isClosed = (e: unknown): boolean =>
      e instanceof HashPoolError && e.code === 'GW_ERR_HASH_POOL_CLOSED'
    await assert.rejects(queued, isClosed)
    await assert.rejects(result, isClosed)
    await closing
    await pool.close() // idempotent
    assert.equal(pool.usable, false)
    assert.equal(pool.stats().workers, 0)
    await assert.rejects(pool.open(WANT_ALL), isClosed)
    const linear = linearData(BIG)
    const got = await hashPieceData(new PieceGeometry(BIG), 2, WANT_ALL, reader(BIG, 2, linear, 'shared'), {
      hashPool: pool,
    })
    assert.deepEqual(plain(got), expected(BIG, 2, linear, WANT_ALL))
  })

  test('dead workers fail their jobs (hashPieceData hashes inline) and the pool gives up after maxWorkerDeaths', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'codex-bt-hash-pool-'))
    const crashing = join(dir, 'crash.mjs')
    await writeFile(
      crashing,
      "import { parentPort } from 'node:worker_threads'\nparentPort.on('message', () => process.exit(3))\n",
    )
    const pool = new HashPool({
      size: 1,
      minJobBytes: 0,
      maxWorkerDeaths: 2,
      workerUrl: pathToFileURL(crashing),
    })
    try {
      const linear = linearData(BIG)
      const geometry = new PieceGeometry(BIG)
      for (let piece = 0; piece < 3; piece++) {
        const got = await hashPieceData(geometry, piece, WANT_ALL, reader(BIG, piece, linear, 'copied'), {
          hashPool: pool,
        })
        assert.deepEqual(plain(got), expected(BIG, piece, linear, WANT_ALL), `piece ${piece}`)
      }
      assert.equal(pool.usable, false)
      await assert.rejects(
        pool.open(WANT_ALL),
        (e: unknown) => e instanceof HashPoolError && e.code === 'GW_ERR_HASH_POOL_WORKER',
      )
    } finally {
      await pool.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('invalid options throw RangeError', () => {
    assert.throws(() => new HashPool({ size: 0 }), RangeError)
    assert.throws(() => new HashPool({ maxActiveJobs: 1.5 }), RangeError)
    assert.throws(() => new HashPool({ minJobBytes: -1 }), RangeError)
  })
})

describe('shared pool and process lifetime', () => {
  test('leases are counted; the pool closes with the last one; a Session holds one until stop()', async () => {
    assert.equal(sharedHashPool(), undefined)
    const a = acquireSharedHashPool()
    const b = acquireSharedHashPool()
    assert.equal(a.pool, b.pool)
    assert.equal(sharedHashPool(), a.pool)
    await a.release()
    await a.release() // idempotent: does not release b's hold
    assert.equal(sharedHashPool(), b.pool)
    await b.release()
    assert.equal(sharedHashPool(), undefined)
    assert.equal(b.pool.closed, true)

    const session = new Session({ listen: false })
    const pool = sharedHashPool()
    assert.ok(pool)
    await session.start()
    await session.stop()
    assert.equal(sharedHashPool(), undefined)
    assert.equal(pool.closed, true)
  })

  test('idle workers never keep the process alive', () => {
    const url = new URL('../../gateway/engine/hash-pool.ts', import.meta.url).href
    const script = [
      `import { HashPool } from ${JSON.stringify(url)}`,
      'const pool = new HashPool({ size: 2, minJobBytes: 0 })',
      'const job = await pool.open({ v1: true, v2: true })',
      'job.update(new Uint8Array(100000))',
      'const h = await job.finish()',
      "process.stdout.write(String(h.v2Leaves.length) + ' ' + pool.stats().workers)",
      '// no close(): the process must still exit',
    ].join('\n')
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    assert.equal(r.error, undefined, 'the child exited on its own')
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, '7 1')
  })
})

// The storage compliance suite with every piece hashed on the shared pool (through the facade and
// the backends' `hashPieceData`, no options passed): memory backend (shared memory, no copy) and
// fs backend (reads copied into staging buffers).
describe('storage compliance through hash workers', () => {
  let lease: HashPoolLease | undefined
  before(() => {
    lease = acquireSharedHashPool({ size: 1, minJobBytes: 0 })
  })
  after(async () => {
    assert.ok((lease?.pool.stats().completedJobs ?? 0) > 100, 'the suites hashed on the workers')
    await lease?.release()
  })

  runPieceStoreCompliance('memory (hash workers)', async () => ({
    store: new MemoryPieceStore(),
    teardown: async () => {
      assert.ok(sharedHashPool(), 'the shared pool is in use')
    },
  }))

  runPieceStoreCompliance('fs (hash workers)', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'codex-bt-hash-pool-fs-'))
    return {
      store: new FsPieceStore({ directory, maxOpenFiles: 2 }),
      teardown: () => rm(directory, { recursive: true, force: true }),
      reopen: async () => new FsPieceStore({ directory, maxOpenFiles: 2 }),
    }
  })
})
