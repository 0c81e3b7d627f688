/**
 * Codex faults during ingest, injected into the local Codex node (real HTTP on 127.0.0.1): 5xx
 * answers, uploads cut mid-body, a full quota, timeouts, and the node going away and coming back.
 * In every case no data is lost, uploads are retried from staging, repeated failures pause the
 * torrent's uploads (`paused-codex-unavailable`, with backpressure while staging is full), and
 * uploads resume by themselves once Codex answers again; the bytes in Codex are the source bytes.
 */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type {
  CodexPieceStoreInit,
  CodexTorrentStorage,
  UploadStateEvent,
} from '../../adapters/codex/codex-store.ts'
import type { CodexClient } from '../../codex-client/index.ts'
import { startLocalCodexNode } from '../../codex-client/local-node/index.ts'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import type { Metainfo } from '../../gateway/protocol/types.ts'
import {
  backendOf,
  type CodexNodeEnv,
  codexForFile,
  downloadAll,
  ingestPiece,
  linearFromFiles,
  makeStore,
  makeTorrent,
  payload,
  type SourceFile,
  type StoreEnv,
  startCodex,
  waitUntil,
} from './codex-env.ts'

const KIB = 1024

const codex = codexForFile()

interface Ingest {
  readonly env: StoreEnv
  readonly storage: StorageFacade
  readonly backend: CodexTorrentStorage
  readonly metainfo: Metainfo
  readonly files: SourceFile[]
  readonly events: UploadStateEvent[]
  writeAll(): Promise<void>
  /** Checks every file in Codex against its source bytes (through `client`). */
  verify(client?: CodexClient): Promise<void>
}

/** A fresh store on `node` with three files of `fileBytes` (unique content per `seed`). */
async function setup(
  seed: number,
  fileBytes: number,
  init: Partial<CodexPieceStoreInit> = {},
  node: CodexNodeEnv = codex,
): Promise<Ingest> {
  const files = [0, 1, 2].map((i) => ({ path: [`file-${i}.bin`], data: payload(fileBytes, seed * 10 + i) }))
  const { metainfo } = await makeTorrent(`faults-${seed}`, files, {
    version: 'hybrid',
    pieceLength: 32 * KIB,
  })
  const linear = linearFromFiles(metainfo, files)
  const events: UploadStateEvent[] = []
  const env = await makeStore(node, {
    failuresBeforePause: 3,
    onUploadStateChange: (e) => events.push(e),
    ...init,
  })
  const storage = await StorageFacade.open(env.store, metainfo.info)
  const backend = backendOf(env.store, metainfo)
  return {
    env,
    storage,
    backend,
    metainfo,
    files,
    events,
    async writeAll() {
      for (let piece = 0; piece < metainfo.info.pieceCount; piece++) {
        await ingestPiece(storage, metainfo, piece, (at, n) => linear.slice(at, at + n))
      }
    },
    async verify(client = node.client) {
      const cids = await backend.whenAllUploaded({ signal: AbortSignal.timeout(30_000) })
      assert.equal(cids.size, files.length)
      for (const [index, cid] of cids) {
        const entry = metainfo.info.files[index]
        const src = files.find((f) => f.path[0] === entry?.path[0])
        assert.deepEqual(await downloadAll(client, cid), src?.data, `bytes of ${entry?.path.join('/')}`)
      }
    },
  }
}

function states(events: readonly UploadStateEvent[]): string[] {
  return events.map((e) => e.state)
}

describe('Codex faults during ingest', () => {
  test('5xx answers to uploads are retried from staging', async () => {
    const run = await setup(1, 70_000, { failuresBeforePause: 10 })
    try {
      const before = run.env.store.stats().uploadRetries
      codex.node.faults.failNext(4, { route: '/data', method: 'POST', status: 500 })
      await run.writeAll()
      await run.verify()
      assert.ok(run.env.store.stats().uploadRetries - before >= 4, 'the failed uploads were retried')
      assert.ok(states(run.events).includes('retrying'))
      assert.equal(run.backend.uploadState(), 'ok')
      await run.storage.close()
    } finally {
      codex.node.faults.clear()
      await run.env.close()
    }
  })

  test('cut uploads: paused-codex-unavailable with backpressure, nothing lost, recovery after clear()', async () => {
    const run = await setup(2, 100_000, { stagingMaxBytes: 128 * KIB, stagingLowWaterBytes: 64 * KIB })
    try {
      codex.node.faults.cutUploadsAfter(40_000)
      await run.writeAll()
      await waitUntil(() => run.backend.uploadState() === 'paused-codex-unavailable', 'the pause')
      assert.ok(states(run.events).includes('paused-codex-unavailable'))
      assert.equal(run.storage.needsDrain, true, 'staging is full and cannot drain: the engine must stop')
      assert.ok(run.backend.stagedBytes >= 3 * 100_000, 'every staged byte is kept while paused')
      assert.ok(run.backend.fileStates().every((f) => f.state !== 'uploaded'))
      assert.ok(run.env.catalog.getFiles(run.backend.torrentId).every((f) => f.cid === undefined))
      assert.equal((await run.storage.completionBitfield())?.count, run.metainfo.info.pieceCount)
      codex.node.faults.clear()
      await run.verify()
      await waitUntil(() => run.backend.uploadState() === 'ok', 'recovery')
      await run.storage.onDrain({ signal: AbortSignal.timeout(10_000) })
      await run.storage.close()
    } finally {
      codex.node.faults.clear()
      await run.env.close()
    }
  })

  test('quota exhausted: stays paused while Codex has no room, resumes when it has', async () => {
    const space = await codex.client.space()
    const run = await setup(3, 150_000)
    try {
      codex.node.faults.setQuota(space.quotaUsedBytes + 100 * KIB)
      await run.writeAll()
      await waitUntil(() => run.backend.uploadState() === 'paused-codex-unavailable', 'the pause')
      // Uploads already in flight when the pause began may still reach the node: let the pause
      // settle (two probes) before counting, then no NEW upload may start while paused.
      const settle = codex.node.faults.requestCount({ method: 'GET', route: '/space' })
      await waitUntil(
        () => codex.node.faults.requestCount({ method: 'GET', route: '/space' }) >= settle + 2,
        'the pause settles',
      )
      assert.equal(run.backend.uploadState(), 'paused-codex-unavailable', 'still paused')
      const posts = codex.node.faults.requestCount({ method: 'POST', route: '/data' })
      const probes = codex.node.faults.requestCount({ method: 'GET', route: '/space' })
      await waitUntil(
        () => codex.node.faults.requestCount({ method: 'GET', route: '/space' }) >= probes + 4,
        'probes while paused',
      )
      assert.equal(run.backend.uploadState(), 'paused-codex-unavailable', 'no room yet: still paused')
      assert.equal(
        codex.node.faults.requestCount({ method: 'POST', route: '/data' }),
        posts,
        'no upload attempts while the quota is full',
      )
      codex.node.faults.clear()
      await run.verify()
      assert.equal(run.backend.uploadState(), 'ok')
      await run.storage.close()
    } finally {
      codex.node.faults.clear()
      await run.env.close()
    }
  })

  test('timeouts: an upload the node does not answer in time is retried', async () => {
    const run = await setup(4, 40_000, {
      uploadStartBytes: 1024 * KIB, // whole files only: a stall is then always Codex's
      uploadIdleTimeoutMs: 300,
      failuresBeforePause: 50,
    })
    try {
      codex.node.faults.setLatency(1_000)
      await run.writeAll()
      await waitUntil(() => run.env.store.stats().uploadRetries >= 2, 'timed-out uploads')
      codex.node.faults.setLatency(0)
      await run.verify()
      await run.storage.close()
    } finally {
      codex.node.faults.clear()
      await run.env.close()
    }
  })

  test('connection refused: the node goes away, uploads pause, and resume when it is back', async () => {
    const node = await startCodex()
    const dataDir = node.node.dataDir
    const port = Number(new URL(node.node.url).port)
    let restarted: Awaited<ReturnType<typeof startLocalCodexNode>> | undefined
    const run = await setup(5, 60_000, {}, node)
    try {
      await node.node.close()
      await run.writeAll()
      await waitUntil(() => run.backend.uploadState() === 'paused-codex-unavailable', 'the pause')
      assert.ok(run.backend.stagedBytes >= 3 * 60_000)
      restarted = await startLocalCodexNode({ dataDir, port })
      await run.verify()
      assert.equal(run.backend.uploadState(), 'ok')
      await run.storage.close()
    } finally {
      await run.env.close()
      await restarted?.close()
      await node.close()
    }
  })
})
