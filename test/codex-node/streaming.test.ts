/**
 * Memory stays bounded: 256 MiB generated on the fly is uploaded to the local node and streamed
 * back over real HTTP, and the process RSS (client and node share it) grows by less than 64 MiB.
 * The 1 GiB round trip is in test/bench/codex.bench.ts.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import { request } from 'undici'
import { space, startTestNode } from './helpers.ts'

const MIB = 1024 * 1024
const TOTAL = 256 * MIB
const CHUNK = MIB
const RSS_BOUND = 64 * MIB

test('256 MiB upload and download with bounded memory', { timeout: 300_000 }, async () => {
  const t = await startTestNode()
  try {
    global.gc?.()
    const baseline = process.memoryUsage().rss
    let peak = baseline
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss)
    }, 20)

    const sent = createHash('sha256')
    async function* generate(): AsyncGenerator<Buffer> {
      for (let offset = 0; offset < TOTAL; offset += CHUNK) {
        const chunk = randomBytes(CHUNK)
        sent.update(chunk)
        yield chunk
      }
    }
    const up = await request(`${t.api}/data`, {
      method: 'POST',
      body: Readable.from(generate()),
      headers: { 'content-type': 'application/octet-stream' },
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    })
    const cid = await up.body.text()
    assert.equal(up.statusCode, 200, cid)
    const afterUpload = peak
    assert.equal((await space(t.api)).totalBlocks, TOTAL / 65536 + 1)

    const down = await request(`${t.api}/data/${cid}`, { bodyTimeout: 120_000 })
    assert.equal(down.statusCode, 200)
    assert.equal(down.headers['content-length'], String(TOTAL))
    const received = createHash('sha256')
    let bytes = 0
    for await (const chunk of down.body) {
      received.update(chunk as Buffer)
      bytes += (chunk as Buffer).length
    }
    clearInterval(sampler)
    peak = Math.max(peak, process.memoryUsage().rss)

    assert.equal(bytes, TOTAL)
    assert.equal(received.digest('hex'), sent.digest('hex'))
    const growth = peak - baseline
    assert.ok(
      growth < RSS_BOUND,
      `RSS grew by ${(growth / MIB).toFixed(1)} MiB (upload peak +${((afterUpload - baseline) / MIB).toFixed(1)} MiB)`,
    )
  } finally {
    await t.stop()
  }
})
