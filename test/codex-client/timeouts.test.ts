/**
 * Deadlines and retries that must match what a real Codex node does:
 * - after an upload body is fully sent, the node builds the tree and stores the manifest before
 *   answering: the idle deadline becomes a response deadline scaled by the upload size, and a
 *   timeout then is never retried (node:http servers on 127.0.0.1 that answer late or never);
 * - timeouts on the routes that search the network (`…/network/manifest`, `…/network/stream`)
 *   and on `exists` are not retried, and `networkDownload` (which starts a background fetch on
 *   each call) is not retried at all (request counters of the local node);
 * - a dataset cut after the headers is a `CodexShortBodyError` on the body, not a retried
 *   "unavailable" (the local node cuts a dataset whose blocks are gone).
 */

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import {
  CodexClient,
  CodexHttpError,
  CodexShortBodyError,
  CodexTimeoutError,
  formatCid,
} from '../../codex-client/index.ts'
import { type LocalCodexNode, startLocalCodexNode } from '../../codex-client/local-node/index.ts'
import { uploadResponseDeadlineMs } from '../../codex-client/transport.ts'

const MIB = 1024 * 1024
const CID_TEXT = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'
const ABSENT = 'zDvZRwzkvp6mfmsaJ6ZBg4Kbx1ooyJGZ8B1kNLbw2rKA6WMzyFmN'

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** `count` chunks of 1 MiB, produced lazily. */
function* mebibytes(count: number): Generator<Buffer> {
  const chunk = Buffer.alloc(MIB, 7)
  for (let i = 0; i < count; i++) yield chunk
}

describe('upload: the response deadline after the body is sent', () => {
  let server: Server
  let origin: string
  /** How long the "node" waits after the end of the body before answering (Infinity: never). */
  let finalizeMs = 0
  let requests = 0
  let bodyBytes = 0
  before(async () => {
    server = createServer((req, res) => {
      requests++
      req.on('data', (chunk: Buffer) => {
        bodyBytes += chunk.length
      })
      req.on('end', () => {
        if (!Number.isFinite(finalizeMs)) return
        setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(CID_TEXT), finalizeMs)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/codex/v1`
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  test('the default deadline: timeoutMs + 1 s per 64 MiB', () => {
    assert.equal(uploadResponseDeadlineMs(60_000, 0), 60_000)
    assert.equal(uploadResponseDeadlineMs(60_000, 64 * MIB), 61_000)
    assert.equal(uploadResponseDeadlineMs(300, 40_000), 301)
    assert.equal(uploadResponseDeadlineMs(60_000, 10 * 1024 * MIB), 220_000)
  })

  test('a node that finalizes longer than the idle deadline still answers in time', async () => {
    finalizeMs = 700
    requests = 0
    bodyBytes = 0
    const client = new CodexClient({ url: origin, timeoutMs: 200, retry: { attempts: 1 } })
    try {
      const started = Date.now()
      // 64 MiB: the response deadline is 200 ms + 1 s, the node answers 700 ms after the body.
      const cid = await client.upload(Readable.from(mebibytes(64)))
      assert.equal(formatCid(cid), CID_TEXT)
      assert.equal(bodyBytes, 64 * MIB)
      assert.ok(Date.now() - started >= 700)
    } finally {
      await client.close()
    }
  })

  test('a Uint8Array upload too (sent as slices with Content-Length)', async () => {
    finalizeMs = 500
    requests = 0
    const client = new CodexClient({ url: origin, timeoutMs: 150, retry: { attempts: 3, baseDelayMs: 1 } })
    try {
      const cid = await client.upload(new Uint8Array(2 * MIB), { responseTimeoutMs: 2_000 })
      assert.equal(formatCid(cid), CID_TEXT)
      assert.equal(requests, 1)
    } finally {
      await client.close()
    }
  })

  test('a timeout after the body was sent is final: never retried', async () => {
    finalizeMs = Number.POSITIVE_INFINITY
    requests = 0
    const client = new CodexClient({ url: origin, timeoutMs: 300, retry: { attempts: 3, baseDelayMs: 1 } })
    try {
      await assert.rejects(
        client.upload(new Uint8Array(100_000), { responseTimeoutMs: 300 }),
        (err: unknown) => {
          assert.ok(err instanceof CodexTimeoutError)
          assert.match(err.message, /after the 100000-byte body was sent/)
          return true
        },
      )
      assert.equal(requests, 1, 'a Uint8Array upload is retryable, but not after its body was sent')
    } finally {
      await client.destroy()
    }
  })
})

describe('timeouts on network routes and exists are not retried', () => {
  let dir: string
  let node: LocalCodexNode
  let client: CodexClient
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'codex-client-timeouts-'))
    // A real node searches peers ~100 min for an absent CID; this one waits 10 s.
    node = await startLocalCodexNode({ dataDir: dir, port: 0, networkMissingTimeoutMs: 10_000 })
    client = new CodexClient({
      url: node.apiUrl,
      timeoutMs: 150,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
    })
  })
  after(async () => {
    node.faults.clear()
    await client.destroy()
    await node.close()
    await rm(dir, { recursive: true, force: true })
  })

  const count = (method: string, route: string): number => node.faults.requestCount({ method, route })

  test('fetchManifest of an absent CID: one request, CodexTimeoutError', async () => {
    const before = count('GET', '/data/:cid/network/manifest')
    await assert.rejects(client.fetchManifest(ABSENT), CodexTimeoutError)
    assert.equal(count('GET', '/data/:cid/network/manifest') - before, 1)
  })

  test('a network-stream download of an absent CID: one request', async () => {
    const before = count('GET', '/data/:cid/network/stream')
    await assert.rejects(client.download(ABSENT, { mode: 'network-stream' }), CodexTimeoutError)
    assert.equal(count('GET', '/data/:cid/network/stream') - before, 1)
  })

  test('exists on a slow node: one request', async () => {
    node.faults.setLatency(1_000)
    try {
      const before = count('GET', '/data/:cid/exists')
      await assert.rejects(client.exists(ABSENT), CodexTimeoutError)
      assert.equal(count('GET', '/data/:cid/exists') - before, 1)
    } finally {
      node.faults.setLatency(0)
    }
  })

  test('networkDownload is never retried, not even on 503', async () => {
    node.faults.failNext(2, { status: 503, route: '/data/:cid/network', method: 'POST' })
    const before = count('POST', '/data/:cid/network')
    await assert.rejects(client.networkDownload(ABSENT), (err: unknown) => {
      assert.ok(err instanceof CodexHttpError)
      assert.equal(err.status, 503)
      return true
    })
    assert.equal(count('POST', '/data/:cid/network') - before, 1)
    node.faults.clear()
  })

  test('local routes still retry transient failures', async () => {
    node.faults.failNext(2, { status: 503, route: '/data/:cid/exists', method: 'GET' })
    const before = count('GET', '/data/:cid/exists')
    assert.equal(await client.exists(ABSENT), false)
    assert.equal(count('GET', '/data/:cid/exists') - before, 3)
  })
})

describe('a dataset cut after the headers', () => {
  test('CodexShortBodyError on the body, one request (not a retried "unavailable")', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'codex-client-cut-'))
    const node = await startLocalCodexNode({ dataDir: dir, port: 0 })
    const client = new CodexClient({ url: node.url, retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 } })
    try {
      const data = new Uint8Array(200_000).map((_, i) => i % 251)
      const a = await client.upload(data, { filename: 'a.bin' })
      const b = await client.upload(data, { filename: 'b.bin' })
      await client.delete(a) // deletes the tree both manifests share: b's blocks are gone
      const before = node.faults.requestCount({ method: 'GET', route: '/data/:cid' })
      const download = await client.download(b)
      assert.equal(download.length, data.length, 'the headers arrived')
      await assert.rejects(collect(download.body), (err: unknown) => {
        assert.ok(err instanceof CodexShortBodyError)
        assert.equal(err.expectedBytes, data.length)
        return true
      })
      assert.equal(node.faults.requestCount({ method: 'GET', route: '/data/:cid' }) - before, 1)
    } finally {
      await client.destroy()
      await node.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
