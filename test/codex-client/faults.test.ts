/**
 * Streaming, faults, retries, timeouts and aborts of the Codex client against the local Codex
 * node over real HTTP on 127.0.0.1 (faults injected with `node.faults`), plus a stalling raw
 * node:http server for the idle-body timeout.
 */

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import {
  type CID,
  CodexAbortError,
  CodexClient,
  CodexHttpError,
  type CodexRequestEvent,
  CodexShortBodyError,
  CodexTimeoutError,
  CodexUnavailableError,
  CodexUploadSourceError,
} from '../../codex-client/index.ts'
import { type LocalCodexNode, startLocalCodexNode } from '../../codex-client/local-node/index.ts'

const MiB = 1024 * 1024

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Splits `data` into random-sized chunks (1 B .. 200 KiB). */
function* randomChunks(data: Buffer): Generator<Buffer> {
  for (let at = 0; at < data.length; ) {
    const size = 1 + Math.floor(Math.random() * 200 * 1024)
    yield data.subarray(at, at + size)
    at += size
  }
}

describe('CodexClient against the local node: streaming and faults', () => {
  let dir: string
  let node: LocalCodexNode
  let client: CodexClient
  const events: CodexRequestEvent[] = []
  const data = randomBytes(3 * MiB + 12345)
  let cid: CID

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'codex-client-faults-'))
    node = await startLocalCodexNode({ dataDir: dir, port: 0 })
    client = new CodexClient({
      url: node.url,
      retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
      observer: { onRequest: (e) => events.push(e), onBytes: () => {} },
    })
    cid = await client.upload(data)
  })

  after(async () => {
    node.faults.clear()
    await client.close()
    await node.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('streaming upload from a Readable and from an async iterable', async () => {
    const fromReadable = await client.upload(Readable.from(randomChunks(data)), { filename: 'r.bin' })
    async function* iterable(): AsyncGenerator<Uint8Array> {
      for (const chunk of randomChunks(data)) yield new Uint8Array(chunk)
    }
    const fromIterable = await client.upload(iterable(), { filename: 'r.bin' })
    assert.equal(fromIterable.toString(), fromReadable.toString(), 'same bytes and metadata → same CID')
    const download = await client.download(fromReadable)
    assert.equal(download.length, data.length)
    assert.equal(sha256(await collect(download.body)), sha256(data))
  })

  test('an upload source that fails → CodexUploadSourceError', async () => {
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(70_000)
      throw new Error('disk on fire')
    }
    await assert.rejects(client.upload(failing()), (err: unknown) => {
      assert.ok(err instanceof CodexUploadSourceError)
      assert.match(String((err.cause as Error).message), /disk on fire/)
      return true
    })
  })

  test('a download cut short by the node → CodexShortBodyError', async () => {
    node.faults.cutBodiesAfter(200_000)
    try {
      const download = await client.download(cid)
      assert.equal(download.length, data.length)
      await assert.rejects(collect(download.body), (err: unknown) => {
        assert.ok(err instanceof CodexShortBodyError)
        assert.equal(err.code, 'CODEX_ERR_SHORT_BODY')
        assert.equal(err.expectedBytes, data.length)
        assert.ok(err.receivedBytes <= 200_000)
        return true
      })
      // A range inside the delivered prefix is fine, one past it fails.
      const inside = await client.downloadRange(cid, 1000, 5000)
      assert.deepEqual(await collect(inside.body), data.subarray(1000, 6000))
      const past = await client.downloadRange(cid, 150_000, 100_000)
      await assert.rejects(collect(past.body), CodexShortBodyError)
    } finally {
      node.faults.cutBodiesAfter(undefined)
    }
  })

  test('downloadRange falls back to slicing on Codex master (random offsets)', async () => {
    for (let i = 0; i < 20; i++) {
      const offset = Math.floor(Math.random() * (data.length + 100))
      const length = 1 + Math.floor(Math.random() * 400_000)
      const result = await client.downloadRange(cid, offset, length)
      const expected = data.subarray(Math.min(offset, data.length), Math.min(data.length, offset + length))
      assert.equal(result.ranged, false)
      assert.equal(result.length, expected.length)
      assert.deepEqual(await collect(result.body), expected)
    }
    assert.equal(client.rangeSupport, 'no')
  })

  test('GET is retried on 502/503/504, gives up after `attempts`', async () => {
    for (const status of [502, 503, 504]) {
      node.faults.failNext(2, { status, route: '/data/:cid/exists', method: 'GET' })
      const start = events.length
      assert.equal(await client.exists(cid), true)
      assert.deepEqual(
        events.slice(start).map((e) => e.status),
        [status, status, 200],
      )
    }
    node.faults.failNext(3, { status: 503, route: '/data/:cid', method: 'GET' })
    const before = node.faults.requestCount({ method: 'GET', route: '/data/:cid' })
    await assert.rejects(client.download(cid), (err: unknown) => {
      assert.ok(err instanceof CodexHttpError)
      assert.equal(err.status, 503)
      assert.match(err.message, /Injected fault/)
      return true
    })
    assert.equal(node.faults.requestCount({ method: 'GET', route: '/data/:cid' }) - before, 3)
  })

  test('500 is not retried, even for GET', async () => {
    node.faults.failNext(1, { status: 500, route: '/space', method: 'GET' })
    const before = node.faults.requestCount({ route: '/space' })
    await assert.rejects(client.space(), CodexHttpError)
    assert.equal(node.faults.requestCount({ route: '/space' }) - before, 1)
  })

  test('POST with a stream body is not retried; a Uint8Array upload is', async () => {
    const count = (): number => node.faults.requestCount({ method: 'POST', route: '/data' })
    node.faults.failNext(1, { status: 503, route: '/data', method: 'POST' })
    let before = count()
    await assert.rejects(client.upload(Readable.from([Buffer.from('one chunk')])), (err: unknown) => {
      assert.ok(err instanceof CodexHttpError)
      assert.equal(err.status, 503)
      return true
    })
    assert.equal(count() - before, 1)

    node.faults.failNext(1, { status: 503, route: '/data', method: 'POST' })
    before = count()
    const retried = await client.upload(Buffer.from('bytes are retried'))
    assert.equal(count() - before, 2)
    assert.equal(await client.exists(retried), true)
  })

  test('quota exhausted → 500 with the node text, not retried', async () => {
    node.faults.setQuota(0)
    try {
      await assert.rejects(client.upload(randomBytes(1000)), (err: unknown) => {
        assert.ok(err instanceof CodexHttpError)
        assert.equal(err.status, 500)
        assert.match(err.message, /Unable to store block/)
        return true
      })
    } finally {
      node.faults.clear()
    }
  })

  test('an upload cut by the node fails once (stream bodies are not retried)', async () => {
    node.faults.cutUploadsAfter(100_000)
    const before = node.faults.requestCount({ method: 'POST', route: '/data' })
    try {
      await assert.rejects(
        client.upload(Readable.from(randomChunks(randomBytes(MiB)))),
        CodexUnavailableError,
      )
      assert.equal(node.faults.requestCount({ method: 'POST', route: '/data' }) - before, 1)
    } finally {
      node.faults.cutUploadsAfter(undefined)
    }
  })

  test('headers timeout → CodexTimeoutError (retried, then given up)', async () => {
    node.faults.setLatency(1500)
    const start = events.length
    try {
      await assert.rejects(client.space({ timeoutMs: 100 }), (err: unknown) => {
        assert.ok(err instanceof CodexTimeoutError)
        assert.ok(err instanceof CodexUnavailableError)
        assert.equal(err.timeoutMs, 100)
        return true
      })
      const statuses = events.slice(start).map((e) => e.status)
      assert.deepEqual(statuses, ['error', 'error', 'error'])
      await assert.rejects(client.download(cid, { timeoutMs: 100 }), CodexTimeoutError)
    } finally {
      node.faults.setLatency(0)
    }
  })

  test('upload idle timeout when the source stalls; the source is closed', async () => {
    let finalized = false
    let release: () => void = () => {}
    const stalled = new Promise<void>((resolve) => {
      release = resolve
    })
    async function* stalls(): AsyncGenerator<Uint8Array> {
      try {
        yield new Uint8Array(1000)
        await stalled
        yield new Uint8Array(1000)
      } finally {
        finalized = true
      }
    }
    await assert.rejects(client.upload(stalls(), { timeoutMs: 150 }), (err: unknown) => {
      assert.ok(err instanceof CodexTimeoutError)
      assert.match(err.message, /no progress/)
      return true
    })
    release()
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(finalized, true, 'the pending return() ran once the source woke up')
  })

  test('aborts: before sending, while waiting for headers, mid-body, mid-upload', async () => {
    const seen = node.faults.requestCount()
    await assert.rejects(client.exists(cid, { signal: AbortSignal.abort() }), CodexAbortError)
    assert.equal(node.faults.requestCount(), seen, 'nothing sent')

    node.faults.setLatency(2000)
    try {
      const controller = new AbortController()
      const pending = client.space({ signal: controller.signal })
      setTimeout(() => controller.abort(), 50)
      await assert.rejects(pending, CodexAbortError)
    } finally {
      node.faults.setLatency(0)
    }

    const controller = new AbortController()
    const download = await client.download(cid, { signal: controller.signal })
    const iterator = download.body[Symbol.asyncIterator]()
    assert.ok(((await iterator.next()).value as Buffer).length > 0)
    controller.abort()
    await assert.rejects(iterator.next(), CodexAbortError)
    assert.equal(download.body.destroyed, true)

    const uploadController = new AbortController()
    let produced = 0
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 100_000; i++) {
        produced++
        if (produced === 20) uploadController.abort()
        yield new Uint8Array(64 * 1024)
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    await assert.rejects(client.upload(endless(), { signal: uploadController.signal }), CodexAbortError)
    assert.ok(produced < 1000, `source stopped (${produced} chunks)`)
  })
})

describe('CodexClient: unreachable node and stalled bodies', () => {
  let server: Server
  let origin: string
  before(async () => {
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1000000' })
      res.write(Buffer.alloc(1000, 1)) // then stall
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  test('a body that stalls fails with CodexTimeoutError (idle timeout)', async () => {
    const client = new CodexClient({ url: origin, idleTimeoutMs: 150 })
    try {
      const download = await client.download('zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy')
      await assert.rejects(collect(download.body), (err: unknown) => {
        assert.ok(err instanceof CodexTimeoutError)
        assert.match(err.message, /idle/)
        return true
      })
    } finally {
      await client.close()
    }
  })

  test('connection refused → CodexUnavailableError after bounded retries', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const events: CodexRequestEvent[] = []
    const client = new CodexClient({
      url: `http://127.0.0.1:${port}`,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
      observer: { onRequest: (e) => events.push(e), onBytes: () => {} },
    })
    try {
      await assert.rejects(client.space(), (err: unknown) => {
        assert.ok(err instanceof CodexUnavailableError)
        assert.equal(err.code, 'CODEX_ERR_UNAVAILABLE')
        return true
      })
      assert.deepEqual(
        events.map((e) => e.status),
        ['error', 'error', 'error'],
      )
    } finally {
      await client.close()
    }
  })
})
