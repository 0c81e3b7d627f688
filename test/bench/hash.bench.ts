/**
 * Hashing throughput benchmark (`npm run bench:hash`): 1 GiB of data, produced by reusing one
 * 64 MiB buffer (never 1 GiB in memory), through
 * - raw node:crypto SHA-1 / SHA-256 (streaming, and SHA-256 one-shot per 16 KiB block),
 * - V1PieceHasher (piece length 256 KiB and 4 MiB, fed 16 KiB blocks like the engine does),
 * - V2FileHasher (16 KiB leaves + pieces root + piece layer),
 * and compares with `openssl speed -evp sha1|sha256 -bytes 16384 -seconds 2` (single core).
 * MB/s = 10^6 bytes per second. Set HASH_BENCH_GIB to change the amount (default 1).
 */

import { execFileSync } from 'node:child_process'
import { createHash, hash as oneShotHash, randomBytes } from 'node:crypto'
import { V1PieceHasher, V2FileHasher } from '../../gateway/protocol/hashers.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'

const MiB = 1024 * 1024
const CHUNK = 64 * MiB
const TOTAL = Math.round(Number(process.env.HASH_BENCH_GIB ?? '1') * 1024) * MiB
const chunk = randomBytes(CHUNK)

/** Calls `fn` once per 64 MiB chunk until TOTAL bytes were produced (the tail chunk may be short). */
function forEachChunk(fn: (data: Buffer, offset: number) => void): void {
  for (let off = 0; off < TOTAL; off += CHUNK) {
    chunk.writeUInt32BE(off / CHUNK, 0) // vary content a little per chunk
    fn(chunk.subarray(0, Math.min(CHUNK, TOTAL - off)), off)
  }
}

const RUNS = Math.max(1, Number(process.env.HASH_BENCH_RUNS ?? '2'))

/** Best of RUNS (the machine is shared; the best run is the least disturbed one). */
function timed(run: () => void): number {
  let best = 0
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now()
    run()
    const seconds = (performance.now() - t0) / 1000
    best = Math.max(best, TOTAL / seconds / 1e6)
  }
  return best
}

/** Same amount of hashing, but of one cache-hot 16 KiB block: what `openssl speed` measures. */
function rawHotBlock(algorithm: 'sha1' | 'sha256'): number {
  const block = chunk.subarray(0, BLOCK_SIZE)
  return timed(() => {
    for (let o = 0; o < TOTAL; o += BLOCK_SIZE) oneShotHash(algorithm, block, 'buffer')
  })
}

function rawStreaming(algorithm: 'sha1' | 'sha256'): number {
  return timed(() => {
    const h = createHash(algorithm)
    forEachChunk((data) => {
      h.update(data)
    })
    h.digest()
  })
}

function rawPerBlock(algorithm: 'sha1' | 'sha256'): number {
  return timed(() => {
    forEachChunk((data) => {
      for (let o = 0; o < data.byteLength; o += BLOCK_SIZE)
        oneShotHash(algorithm, data.subarray(o, o + BLOCK_SIZE), 'buffer')
    })
  })
}

function v1(pieceLength: number): number {
  return timed(() => {
    const h = new V1PieceHasher(pieceLength, TOTAL)
    forEachChunk((data) => {
      for (let o = 0; o < data.byteLength; o += BLOCK_SIZE) h.update(data.subarray(o, o + BLOCK_SIZE))
    })
    h.digest()
  })
}

function v2(): { mbps: number; treeMs: number } {
  let treeMs = 0
  const mbps = timed(() => {
    const h = new V2FileHasher(TOTAL)
    forEachChunk((data, off) => {
      const first = off / BLOCK_SIZE
      for (let o = 0; o < data.byteLength; o += BLOCK_SIZE)
        h.addBlock(first + o / BLOCK_SIZE, data.subarray(o, o + BLOCK_SIZE))
    })
    const t0 = performance.now()
    h.pieceLayer(4 * MiB) // the creator's order: piece layer, then the root from it
    h.piecesRoot()
    treeMs = performance.now() - t0
  })
  return { mbps, treeMs }
}

/** Single-core `openssl speed` figure for 16 KiB inputs, in MB/s, or undefined if unavailable. */
function opensslSpeed(algorithm: 'sha1' | 'sha256'): number | undefined {
  try {
    const out = execFileSync('openssl', ['speed', '-evp', algorithm, '-bytes', '16384', '-seconds', '2'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 60_000,
    })
    // Last table line: "<algorithm>   123456789.01k" (units of 1000 bytes per second).
    const line = out
      .split('\n')
      .reverse()
      .find((l) => l.trim().toLowerCase().startsWith(algorithm))
    const m = line?.match(/([\d.]+)k\s*$/)
    return m?.[1] === undefined ? undefined : (Number(m[1]) * 1000) / 1e6
  } catch {
    return undefined
  }
}

function fmt(n: number | undefined, digits = 0): string {
  return n === undefined ? 'n/a' : n.toFixed(digits)
}

function main(): void {
  console.log(
    `hash bench: ${TOTAL / MiB} MiB per row (best of ${RUNS}), 64 MiB reused chunk, node ${process.version}`,
  )
  // Warm up the JIT and OpenSSL contexts on a small slice.
  createHash('sha256').update(chunk.subarray(0, MiB)).digest()

  const sslSha1 = opensslSpeed('sha1')
  const sslSha256 = opensslSpeed('sha256')
  const rawSha1 = rawStreaming('sha1')
  const rawSha256 = rawStreaming('sha256')
  const blkSha1 = rawPerBlock('sha1')
  const blkSha256 = rawPerBlock('sha256')
  const hotSha1 = rawHotBlock('sha1')
  const hotSha256 = rawHotBlock('sha256')
  const v1Small = v1(256 * 1024)
  const v1Large = v1(4 * MiB)
  const { mbps: v2Mbps, treeMs } = v2()

  const rows: [string, number | undefined, string][] = [
    ['openssl speed -evp sha1 -bytes 16384', sslSha1, ''],
    ['openssl speed -evp sha256 -bytes 16384', sslSha256, ''],
    ['node:crypto sha1, streaming 64 MiB', rawSha1, ratio(rawSha1, sslSha1, 'openssl sha1')],
    ['node:crypto sha256, streaming 64 MiB', rawSha256, ratio(rawSha256, sslSha256, 'openssl sha256')],
    ['node:crypto sha1, one-shot per 16 KiB', blkSha1, ratio(blkSha1, sslSha1, 'openssl sha1')],
    ['node:crypto sha256, one-shot per 16 KiB', blkSha256, ratio(blkSha256, sslSha256, 'openssl sha256')],
    ['node:crypto sha1, one-shot, same 16 KiB block', hotSha1, ratio(hotSha1, sslSha1, 'openssl sha1')],
    [
      'node:crypto sha256, one-shot, same 16 KiB block',
      hotSha256,
      ratio(hotSha256, sslSha256, 'openssl sha256'),
    ],
    ['V1PieceHasher, piece 256 KiB', v1Small, ratio(v1Small, rawSha1, 'raw sha1 streaming')],
    ['V1PieceHasher, piece 4 MiB', v1Large, ratio(v1Large, rawSha1, 'raw sha1 streaming')],
    ['V2FileHasher leaves + root + layer', v2Mbps, ratio(v2Mbps, blkSha256, 'raw sha256 per 16 KiB')],
    ['  (v2 vs streaming sha256)', undefined, ratio(v2Mbps, rawSha256, 'raw sha256 streaming')],
    ['  (v2 vs openssl sha256)', undefined, ratio(v2Mbps, sslSha256, 'openssl sha256')],
  ]
  const w = Math.max(...rows.map((r) => r[0].length))
  console.log(`\n| ${'measurement'.padEnd(w)} | MB/s   | ratio`)
  console.log(`|${'-'.repeat(w + 2)}|--------|------`)
  for (const [name, mbps, r] of rows) console.log(`| ${name.padEnd(w)} | ${fmt(mbps).padStart(6)} | ${r}`)
  console.log(
    `\nv2 tree (pieces root + 4 MiB piece layer over ${TOTAL / BLOCK_SIZE} leaves): ${treeMs.toFixed(1)} ms`,
  )
}

function ratio(a: number, b: number | undefined, label: string): string {
  return b === undefined ? '' : `${fmt(a / b, 2)} × ${label}`
}

main()
