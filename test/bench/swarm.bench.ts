/**
 * Swarm throughput benchmark (`npm run bench:swarm [-- --size-mib 1024] [--piece-kib 1024]`), all
 * on 127.0.0.1, one torrent (hybrid, single file, 1 MiB pieces by default) in ONE run:
 *   1. libtorrent seeder → our engine (MemoryPieceStore)
 *   2. libtorrent seeder → libtorrent leecher (the baseline; it writes to files, in page cache)
 *   3. our engine seeding from the MemoryPieceStore filled by (1) → libtorrent leecher, the
 *      libtorrent seeder gone
 * and prints MB/s (10^6 bytes per second, payload bytes over wall time from adding the torrent to
 * completion), the ratio to libtorrent → libtorrent, CPU time of this process, and our peak RSS
 * (sampled every 50 ms). Each libtorrent runs in its own process (lt_driver.py).
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import type { Torrent } from '../../gateway/engine/torrent/torrent.ts'
import { HOST, ltSeed, makeLtTorrent, startSession } from '../helpers/interop.ts'
import { startLibtorrent } from '../helpers/libtorrent.ts'
import { tempDir } from '../helpers/payload.ts'

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    'piece-kib': { type: 'string', default: '1024' },
    'timeout-s': { type: 'string', default: '600' },
  },
})
const SIZE = Number(values['size-mib']) * 1024 * 1024
const PIECE = Number(values['piece-kib']) * 1024
const TIMEOUT_MS = Number(values['timeout-s']) * 1000
if (!(SIZE > 0) || !(PIECE >= 16384) || (PIECE & (PIECE - 1)) !== 0) {
  throw new Error('--size-mib must be > 0 and --piece-kib a power of two >= 16')
}

let peakRss = 0
const rssTimer = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
}, 50)

interface Row {
  readonly name: string
  readonly seconds: number
  readonly mbps: number
  readonly cpuS: number
  readonly peakRssMiB: number
}

async function measure(name: string, run: () => Promise<void>): Promise<Row> {
  peakRss = process.memoryUsage().rss
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await run()
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
  const row = {
    name,
    seconds,
    mbps: SIZE / seconds / 1e6,
    cpuS: (cpu.user + cpu.system) / 1e6,
    peakRssMiB: peakRss / 1024 / 1024,
  }
  process.stderr.write(`${name}: ${row.seconds.toFixed(2)} s, ${row.mbps.toFixed(1)} MB/s\n`)
  return row
}

function whenComplete(t: Torrent): Promise<void> {
  return t.whenComplete({ signal: AbortSignal.timeout(TIMEOUT_MS) })
}

const tmp = await tempDir('codex-bt-bench-swarm-')
const seeder = await startLibtorrent()
const leecher = await startLibtorrent()
const session = await startSession('bench')
try {
  process.stderr.write(
    `writing ${SIZE / 1024 / 1024} MiB and creating the torrent (libtorrent, hybrid, ${PIECE / 1024} KiB pieces)…\n`,
  )
  const made = await makeLtTorrent(
    seeder,
    tmp.path,
    { name: 'bench.bin', seed: 'bench', size: SIZE },
    'hybrid',
    PIECE,
  )
  const hs = await ltSeed(seeder, made, { timeoutMs: TIMEOUT_MS })
  const rows: Row[] = []

  let ours: Torrent | undefined
  rows.push(
    await measure('libtorrent → codex-bt (MemoryPieceStore)', async () => {
      ours = await session.addTorrent({
        metainfo: made.metainfo,
        store: new MemoryPieceStore(),
        peers: [{ host: HOST, port: seeder.port }],
      })
      await whenComplete(ours)
    }),
  )

  // Our torrent sits out the baseline (no connections, so it cannot serve the leecher).
  ours!.pause()
  const ltDir1 = join(tmp.path, 'lt1')
  await mkdir(ltDir1)
  let h1 = 0
  rows.push(
    await measure('libtorrent → libtorrent', async () => {
      h1 = await leecher.add({
        torrent: made.torrentPath,
        savePath: ltDir1,
        peers: [`${HOST}:${seeder.port}`],
      })
      await leecher.waitFor(h1, (s) => s.is_seeding, { timeoutMs: TIMEOUT_MS, intervalMs: 20 })
    }),
  )
  await leecher.remove(h1)
  await seeder.remove(hs) // from now on we are the only seeder

  ours!.resume()
  const ltDir2 = join(tmp.path, 'lt2')
  await mkdir(ltDir2)
  rows.push(
    await measure('codex-bt (MemoryPieceStore) → libtorrent', async () => {
      const h2 = await leecher.add({
        torrent: made.torrentPath,
        savePath: ltDir2,
        peers: [`${HOST}:${session.port}`],
      })
      await leecher.waitFor(h2, (s) => s.is_seeding, { timeoutMs: TIMEOUT_MS, intervalMs: 20 })
    }),
  )

  const base = rows[1]!.mbps
  const lines = [
    '',
    `swarm benchmark: ${SIZE / 1024 / 1024} MiB, hybrid, ${PIECE / 1024} KiB pieces, 127.0.0.1, node ${process.version}`,
    '',
    '| transfer | MB/s | vs lt→lt | seconds | our CPU s | our peak RSS MiB |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.mbps.toFixed(1)} | ${(r.mbps / base).toFixed(2)} | ${r.seconds.toFixed(2)} | ${r.cpuS.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} |`,
    ),
    '',
  ]
  process.stdout.write(lines.join('\n'))
} finally {
  clearInterval(rssTimer)
  await session.stop()
  await Promise.all([seeder.close(), leecher.close()])
  await tmp.cleanup()
}
