/**
 * Ranged reads: `downloadRange` against a tiny node:http server on 127.0.0.1 that DOES support
 * `Range` (206, `Accept-Ranges: bytes`), emulating the unmerged Codex PR #1218 (NOTES.md §1.4),
 * and against one that ignores `Range` like Codex master does (fallback path).
 */

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { CodexClient, CodexNotFoundError } from '../../codex-client/index.ts'

const CID = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'
const DATA = randomBytes(1_000_003)

interface Seen {
  readonly range: string | undefined
}

/** Serves DATA at /api/codex/v1/data/<CID>; `ranges` decides whether `Range` is honoured. */
function startServer(ranges: boolean, seen: Seen[]): Promise<Server> {
  const server = createServer((req: IncomingMessage, res) => {
    seen.push({ range: req.headers.range })
    if (req.url !== `/api/codex/v1/data/${CID}`) {
      res.writeHead(404, { 'content-type': 'text/html' }).end('The requested CID could not be retrieved')
      return
    }
    const common = {
      'content-type': 'application/octet-stream',
      'content-disposition': 'attachment; filename="r.bin"',
    }
    const match = ranges ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '') : null
    if (!match) {
      const headers = ranges ? { ...common, 'accept-ranges': 'bytes' } : common
      res.writeHead(200, { ...headers, 'content-length': DATA.length }).end(DATA)
      return
    }
    const start = Number(match[1])
    const end = Math.min(match[2] === '' ? DATA.length - 1 : Number(match[2]), DATA.length - 1)
    if (start >= DATA.length) {
      res.writeHead(416, { 'content-range': `bytes */${DATA.length}` }).end()
      return
    }
    res
      .writeHead(206, {
        ...common,
        'accept-ranges': 'bytes',
        'content-range': `bytes ${start}-${end}/${DATA.length}`,
        'content-length': end - start + 1,
      })
      .end(DATA.subarray(start, end + 1))
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function randomInt(max: number): number {
  return Math.floor(Math.random() * max)
}

describe('downloadRange against a node that supports Range (PR #1218 emulation)', () => {
  const seen: Seen[] = []
  let server: Server
  let client: CodexClient
  before(async () => {
    server = await startServer(true, seen)
    client = new CodexClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
  })
  after(async () => {
    await client.close()
    await new Promise((resolve) => server.close(resolve))
  })

  test('uses 206 and learns rangeSupport = yes', async () => {
    assert.equal(client.rangeSupport, 'unknown')
    const result = await client.downloadRange(CID, 10, 100)
    assert.equal(result.ranged, true)
    assert.equal(result.length, 100)
    assert.equal(result.filename, 'r.bin')
    assert.deepEqual(await collect(result.body), DATA.subarray(10, 110))
    assert.equal(client.rangeSupport, 'yes')
    assert.equal(seen.at(-1)?.range, 'bytes=10-109')
  })

  test('random offsets match the data, clamped at the end', async () => {
    for (let i = 0; i < 25; i++) {
      const offset = randomInt(DATA.length)
      const length = 1 + randomInt(200_000)
      const result = await client.downloadRange(CID, offset, length)
      const expected = DATA.subarray(offset, Math.min(DATA.length, offset + length))
      assert.equal(result.ranged, true)
      assert.equal(result.length, expected.length)
      assert.deepEqual(await collect(result.body), expected)
    }
  })

  test('an offset past the end gives an empty result (416)', async () => {
    const result = await client.downloadRange(CID, DATA.length + 5, 10)
    assert.equal(result.length, 0)
    assert.equal((await collect(result.body)).length, 0)
  })

  test('plain download reports rangeSupported', async () => {
    const result = await client.download(CID)
    assert.equal(result.rangeSupported, true)
    assert.deepEqual(await collect(result.body), DATA)
  })

  test('404 is still typed', async () => {
    await assert.rejects(
      client.downloadRange('zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXz', 0, 1),
      CodexNotFoundError,
    )
  })
})

describe('downloadRange against a node without Range (Codex master)', () => {
  const seen: Seen[] = []
  let server: Server
  let client: CodexClient
  before(async () => {
    server = await startServer(false, seen)
    client = new CodexClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
  })
  after(async () => {
    await client.close()
    await new Promise((resolve) => server.close(resolve))
  })

  test('falls back to slicing the full stream and stops asking for ranges', async () => {
    const first = await client.downloadRange(CID, 500_000, 1000)
    assert.equal(first.ranged, false)
    assert.deepEqual(await collect(first.body), DATA.subarray(500_000, 501_000))
    assert.equal(client.rangeSupport, 'no')
    assert.equal(seen.at(-1)?.range, 'bytes=500000-500999')
    const second = await client.downloadRange(CID, 0, 10)
    assert.deepEqual(await collect(second.body), DATA.subarray(0, 10))
    assert.equal(seen.at(-1)?.range, undefined)
  })

  test('random offsets match the data, clamped at the end', async () => {
    for (let i = 0; i < 25; i++) {
      const offset = randomInt(DATA.length + 10)
      const length = 1 + randomInt(300_000)
      const result = await client.downloadRange(CID, offset, length)
      const expected = DATA.subarray(Math.min(offset, DATA.length), Math.min(DATA.length, offset + length))
      assert.equal(result.ranged, false)
      assert.equal(result.length, expected.length)
      assert.deepEqual(await collect(result.body), expected)
    }
  })
})
