/**
 * Memory stays bounded: 256 MiB generated on the fly is uploaded to the local node and streamed
 * back over real HTTP. The node runs in its own process (`codex-bt codex-node`), so its peak RSS
 * (Linux `VmHWM`) measures the node alone; it must grow by less than 64 MiB over the idle node.
 * The 1 GiB round trip is in test/bench/codex.bench.ts.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import { request } from 'undici'
import { makeDataDir, space } from './helpers.ts'

const MIB = 1024 * 1024
const TOTAL = 256 * MIB
const CHUNK = MIB
const RSS_BOUND = 64 * MIB
const BIN = new URL('../../gateway/cli/bin.ts', import.meta.url).pathname

/** VmRSS / VmHWM (peak RSS) of a process, in bytes. */
async function memory(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)
    assert.ok(m, `${name} in /proc/${pid}/status`)
    return Number(m[1]) * 1024
  }
  return { rss: field('VmRSS'), peak: field('VmHWM') }
}

test('256 MiB upload and download: the node process stays under +64 MiB RSS', {
  timeout: 300_000,
  skip: existsSync('/proc/self/status') ? false : 'needs Linux /proc to read the peak RSS',
}, async () => {
  const dir = await makeDataDir('codex-node-stream-')
  const child = spawn(process.execPath, [BIN, 'codex-node', '--port', '0', '--data-dir', dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  try {
    child.stdout.setEncoding('utf8')
    const [line] = (await once(child.stdout, 'data')) as [string]
    const api = line.trim()
    assert.match(api, /^http:\/\/127\.0\.0\.1:\d+\/api\/codex\/v1$/)
    // warm up (JIT, first block files), then take the baseline
    const warm = await request(`${api}/data`, { method: 'POST', body: randomBytes(3 * 65536) })
    assert.equal(warm.statusCode, 200)
    await warm.body.dump()
    const baseline = (await memory(child.pid!)).rss

    const sent = createHash('sha256')
    async function* generate(): AsyncGenerator<Buffer> {
      for (let offset = 0; offset < TOTAL; offset += CHUNK) {
        const chunk = randomBytes(CHUNK)
        sent.update(chunk)
        yield chunk
      }
    }
    const up = await request(`${api}/data`, {
      method: 'POST',
      body: Readable.from(generate()),
      headers: { 'content-type': 'application/octet-stream' },
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    })
    const cid = await up.body.text()
    assert.equal(up.statusCode, 200, cid)
    const afterUpload = (await memory(child.pid!)).peak
    assert.equal((await space(api)).totalBlocks, 3 + 1 + TOTAL / 65536 + 1)

    const down = await request(`${api}/data/${cid}`, { bodyTimeout: 120_000 })
    assert.equal(down.statusCode, 200)
    assert.equal(down.headers['content-length'], String(TOTAL))
    const received = createHash('sha256')
    let bytes = 0
    for await (const chunk of down.body) {
      received.update(chunk as Buffer)
      bytes += (chunk as Buffer).length
    }
    assert.equal(bytes, TOTAL)
    assert.equal(received.digest('hex'), sent.digest('hex'))

    const peak = (await memory(child.pid!)).peak
    const growth = peak - baseline
    assert.ok(
      growth < RSS_BOUND,
      `node RSS grew by ${(growth / MIB).toFixed(1)} MiB (after upload: +${((afterUpload - baseline) / MIB).toFixed(1)} MiB)`,
    )
  } finally {
    child.kill('SIGTERM')
    if (child.exitCode === null) await once(child, 'exit')
    await rm(dir, { recursive: true, force: true })
  }
})
