/**
 * Benchmark of the Codex client (`npm run bench:codex [-- --size-mib N]`, default 1024 MiB).
 *
 * Starts the local Codex node in a temp dir (127.0.0.1, same process), then on N MiB generated on
 * the fly (AES-256-CTR keystream, deterministic, never held in memory):
 *  1. raw `node:crypto` SHA-256 over the stream, and the Codex Merkle tree (SHA-256 of each
 *     zero-padded 64 KiB block + `CodexTreeBuilder`), timing only the hashing;
 *  2. streamed upload through `CodexClient.upload` (MB/s);
 *  3. streamed download back (`CodexClient.download`), SHA-256 compared with step 1 (MB/s);
 * sampling the process RSS every 25 ms (baseline before the transfers, peak during each).
 * Prints a table. The node runs in this process, so its CPU and memory are included.
 */

import { createCipheriv, createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { parseArgs } from 'node:util'
import { treeCidFromRoot } from '../../codex-client/cid.ts'
import { CodexClient, formatCid } from '../../codex-client/index.ts'
import { startLocalCodexNode } from '../../codex-client/local-node/index.ts'
import { CodexTreeBuilder } from '../../codex-client/tree.ts'

const MiB = 1024 * 1024
const BLOCK = 64 * 1024
const CHUNK = MiB

const { values } = parseArgs({ options: { 'size-mib': { type: 'string', default: '1024' } } })
const sizeMiB = Number(values['size-mib'])
if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || sizeMiB > 64 * 1024) {
  throw new RangeError(`--size-mib must be an integer in 1..65536, got ${values['size-mib']}`)
}
const totalBytes = sizeMiB * MiB

/** Deterministic pseudo-random bytes, CHUNK at a time (same key/iv → same data). */
function* generate(): Generator<Buffer> {
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16, 9))
  const zeros = Buffer.alloc(CHUNK)
  for (let done = 0; done < totalBytes; done += CHUNK) {
    yield cipher.update(zeros.subarray(0, Math.min(CHUNK, totalBytes - done)))
  }
}

function mbps(bytes: number, seconds: number): string {
  return (bytes / 1e6 / seconds).toFixed(1)
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1)
}

/** Samples RSS; `phase()` returns the peak since the previous call. */
class RssSampler {
  #peak = process.memoryUsage.rss()
  readonly #timer = setInterval(() => {
    this.#peak = Math.max(this.#peak, process.memoryUsage.rss())
  }, 25)

  phase(): number {
    const peak = Math.max(this.#peak, process.memoryUsage.rss())
    this.#peak = process.memoryUsage.rss()
    return peak
  }

  stop(): void {
    clearInterval(this.#timer)
  }
}

// 1. hashing: raw SHA-256 and the Codex tree, timing the hash calls only.
let rawNs = 0n
let treeNs = 0n
const raw = createHash('sha256')
const tree = new CodexTreeBuilder()
const pad = Buffer.alloc(BLOCK)
for (const chunk of generate()) {
  let t = process.hrtime.bigint()
  raw.update(chunk)
  rawNs += process.hrtime.bigint() - t
  t = process.hrtime.bigint()
  for (let at = 0; at < chunk.length; at += BLOCK) {
    let block = chunk.subarray(at, at + BLOCK)
    if (block.length < BLOCK) {
      pad.fill(0)
      block.copy(pad)
      block = pad
    }
    tree.addLeaf(createHash('sha256').update(block).digest())
  }
  treeNs += process.hrtime.bigint() - t
}
let t0 = process.hrtime.bigint()
const root = tree.root()
treeNs += process.hrtime.bigint() - t0
const expectedSha = raw.digest('hex')
const expectedTreeCid = formatCid(treeCidFromRoot(root))

// 2-3. transfers through the local node.
const dataDir = await mkdtemp(join(tmpdir(), 'codex-bench-'))
const node = await startLocalCodexNode({
  dataDir,
  host: '127.0.0.1',
  port: 0,
  quotaBytes: totalBytes * 2 + 64 * MiB,
})
const client = new CodexClient({ url: node.url, timeoutMs: 120_000 })
const rss = new RssSampler()
try {
  const baseline = process.memoryUsage.rss()
  rss.phase()

  t0 = process.hrtime.bigint()
  const cid = await client.upload(Readable.from(generate()), { filename: 'bench.bin' })
  const uploadS = Number(process.hrtime.bigint() - t0) / 1e9
  const uploadPeak = rss.phase()

  const manifest = await client.fetchManifest(cid)
  t0 = process.hrtime.bigint()
  const download = await client.download(cid)
  const sha = createHash('sha256')
  let received = 0
  for await (const chunk of download.body) {
    sha.update(chunk as Buffer)
    received += (chunk as Buffer).length
  }
  const downloadS = Number(process.hrtime.bigint() - t0) / 1e9
  const downloadPeak = rss.phase()
  const gotSha = sha.digest('hex')

  const rows: [string, string, string][] = [
    ['size', `${sizeMiB} MiB`, ''],
    ['raw node:crypto SHA-256', `${mbps(totalBytes, Number(rawNs) / 1e9)} MB/s`, 'hash time only'],
    [
      'Codex tree (64 KiB SHA-256 + CodexTreeBuilder)',
      `${mbps(totalBytes, Number(treeNs) / 1e9)} MB/s`,
      'hash time only',
    ],
    [
      'upload (client → local node, streamed)',
      `${mbps(totalBytes, uploadS)} MB/s`,
      `${uploadS.toFixed(2)} s`,
    ],
    [
      'download (local node → client, + SHA-256)',
      `${mbps(received, downloadS)} MB/s`,
      `${downloadS.toFixed(2)} s`,
    ],
    ['RSS baseline', `${mib(baseline)} MiB`, ''],
    ['RSS peak growth during upload', `${mib(uploadPeak - baseline)} MiB`, `peak ${mib(uploadPeak)} MiB`],
    [
      'RSS peak growth during download',
      `${mib(downloadPeak - baseline)} MiB`,
      `peak ${mib(downloadPeak)} MiB`,
    ],
    [
      'download SHA-256 matches',
      String(gotSha === expectedSha && received === totalBytes),
      `${received} bytes`,
    ],
    [
      'node treeCid == local tree',
      String(manifest.manifest.treeCid === expectedTreeCid),
      manifest.manifest.treeCid,
    ],
  ]
  const width = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)))
  const line = (r: readonly string[]): string => `| ${r.map((c, i) => c.padEnd(width[i]!)).join(' | ')} |`
  console.log(line(['metric', 'value', 'note']))
  console.log(`|${width.map((w) => '-'.repeat(w + 2)).join('|')}|`)
  for (const r of rows) console.log(line(r))
  if (gotSha !== expectedSha || received !== totalBytes) process.exitCode = 1
} finally {
  rss.stop()
  await client.close()
  await node.close()
  await rm(dataDir, { recursive: true, force: true })
}
