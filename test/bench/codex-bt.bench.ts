/**
 * Gateway ↔ Codex throughput benchmark (`npm run bench:codex-bt [-- --size-mib 1024]`), all on
 * 127.0.0.1, ONE torrent (hybrid, 4 MiB pieces, `--files` files) in ONE run, with real processes:
 *   0. libtorrent seeder → libtorrent leecher: the yardstick;
 *   1. ingest: libtorrent seeder → the gateway process → a local Codex node (run in this process),
 *      from `POST /torrents` until the torrent record exists (every file is in Codex);
 *   2. serve cold: the seeder gone, the gateway restarted (its segment cache is wiped at open), a
 *      fresh libtorrent leecher that knows only the gateway: every byte comes from Codex;
 *   3. serve warm: a second fresh leecher, right after (segments cached on the gateway's disk).
 * Prints MB/s (10^6 payload bytes per second of wall time, from adding the torrent to its
 * completion), each ratio to the yardstick, the CPU seconds of the gateway process (from
 * /proc/<pid>/stat) and its peak RSS (`VmHWM` of /proc/<pid>/status) in each run.
 */
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startLocalCodexNode } from '../../codex-client/local-node/index.ts'
import { api, type GatewayProcess, startGatewayProcess, waitUntil } from '../helpers/gateway-process.ts'
import { HOST, ltSeed, makeLtTorrent } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { hashTree, sortedEntries, tempDir } from '../helpers/payload.ts'

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    'piece-kib': { type: 'string', default: '4096' },
    files: { type: 'string', default: '1' },
    'timeout-s': { type: 'string', default: '900' },
    keep: { type: 'boolean', default: false },
    /** Write V8 CPU profiles of the gateway processes (written when each one stops) here. */
    'profile-dir': { type: 'string' },
  },
})
const MIB = 1024 * 1024
const SIZE = Math.floor(Number(values['size-mib']) * MIB)
const PIECE = Number(values['piece-kib']) * 1024
const FILES = Number(values.files)
const TIMEOUT_MS = Number(values['timeout-s']) * 1000
if (!(SIZE > 0) || !(PIECE >= 16384) || (PIECE & (PIECE - 1)) !== 0 || !(FILES >= 1 && FILES <= 64)) {
  throw new Error('--size-mib must be > 0, --piece-kib a power of two >= 16, --files 1..64')
}

const PROFILE_DIR = values['profile-dir']
const GATEWAY_ENV: Record<string, string> = {
  CODEX_BT_LOG_LEVEL: 'info',
  ...(PROFILE_DIR ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${PROFILE_DIR}` } : {}),
}

interface Row {
  readonly name: string
  readonly seconds: number
  readonly mbps: number
  readonly gatewayCpuS: number | undefined
  readonly gatewayPeakRssMiB: number | undefined
}

const CLK_TCK = 100

/** utime + stime of a process in seconds (/proc/<pid>/stat fields 14 and 15). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

/** Peak resident set size (VmHWM) of a process in MiB. */
async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)
  return m ? Number(m[1]) / 1024 : Number.NaN
}

async function timed(name: string, gw: GatewayProcess | undefined, run: () => Promise<void>): Promise<Row> {
  const cpu0 = gw ? await cpuSeconds(gw.pid) : 0
  const t0 = performance.now()
  await run()
  const seconds = (performance.now() - t0) / 1000
  const row: Row = {
    name,
    seconds,
    mbps: SIZE / seconds / 1e6,
    gatewayCpuS: gw ? (await cpuSeconds(gw.pid)) - cpu0 : undefined,
    gatewayPeakRssMiB: gw ? await peakRssMiB(gw.pid) : undefined,
  }
  process.stderr.write(`${name}: ${seconds.toFixed(1)} s, ${row.mbps.toFixed(1)} MB/s\n`)
  return row
}

async function leech(lt: LtSession, torrentPath: string, savePath: string, peer: string): Promise<void> {
  const h = await lt.add({ torrent: torrentPath, savePath, peers: [peer] })
  await lt.waitFor(h, (s) => s.is_seeding, { timeoutMs: TIMEOUT_MS, intervalMs: 100 })
}

const tmp = await tempDir('codex-bt-bench-')
const stops: (() => Promise<unknown>)[] = []
const rows: Row[] = []
try {
  process.stderr.write(`writing ${SIZE / MIB} MiB in ${FILES} file(s) and hashing it with libtorrent…\n`)
  const codex = await startLocalCodexNode({ dataDir: join(tmp.path, 'codex'), port: 0 })
  stops.push(() => codex.close())
  const seeder = await startLibtorrent()
  stops.push(() => seeder.close())
  const per = Math.floor(SIZE / FILES)
  const made = await makeLtTorrent(
    seeder,
    tmp.path,
    {
      name: 'bench',
      seed: 'codex-bt-bench',
      ...(FILES === 1
        ? { size: SIZE }
        : {
            files: Array.from({ length: FILES }, (_, i) => ({
              path: [`part-${i}.bin`],
              size: i === FILES - 1 ? SIZE - per * (FILES - 1) : per,
            })),
          }),
    },
    'hybrid',
    PIECE,
  )
  await ltSeed(seeder, made, { timeoutMs: TIMEOUT_MS })
  const name = made.metainfo.info.name

  async function checkAndDrop(dir: string): Promise<void> {
    const got = await hashTree(dir, name)
    if (JSON.stringify(sortedEntries(got)) !== JSON.stringify(sortedEntries(made.payload.hashes)))
      throw new Error(`download in ${dir} differs from the source`)
    await rm(dir, { recursive: true, force: true })
  }

  // 0. the yardstick
  {
    const lt = await startLibtorrent()
    try {
      rows.push(
        await timed('libtorrent → libtorrent', undefined, () =>
          leech(lt, made.torrentPath, join(tmp.path, 'yard'), `${HOST}:${seeder.port}`),
        ),
      )
    } finally {
      await lt.close()
    }
    await checkAndDrop(join(tmp.path, 'yard'))
  }

  // 1. ingest
  const dataDir = join(tmp.path, 'gw')
  let gw = await startGatewayProcess({ dataDir, codexUrl: codex.url, env: GATEWAY_ENV })
  stops.push(() => gw.stop())
  let id = ''
  let verifiedAt: number | undefined
  const ingestStart = performance.now()
  rows.push(
    await timed('ingest: libtorrent → gateway → Codex', gw, async () => {
      const r = await api<{ torrent: { id: string } }>(
        gw.apiUrl,
        'POST',
        `/torrents?peers=${HOST}:${seeder.port}`,
        made.bytes,
      )
      if (r.status !== 201) throw new Error(`POST /torrents → ${r.status} ${JSON.stringify(r.body)}`)
      id = r.body.torrent.id
      await waitUntil(
        async () => {
          const d = await api<{ recordCid: string | null; state: string; progress: number }>(
            gw.apiUrl,
            'GET',
            `/torrents/${id}`,
          )
          if (d.body.state === 'error') throw new Error(`ingest failed: ${JSON.stringify(d.body)}`)
          if (d.body.progress >= 1 && verifiedAt === undefined) verifiedAt = performance.now()
          return d.body.recordCid ?? undefined
        },
        { timeoutMs: TIMEOUT_MS, intervalMs: 100, what: 'the record' },
      )
    }),
  )
  const ingestDone = performance.now()
  await seeder.close()

  // 2. serve cold (restart: the segment cache is wiped at open)
  await gw.stop()
  gw = await startGatewayProcess({ dataDir, codexUrl: codex.url, env: GATEWAY_ENV })
  stops.push(() => gw.stop())
  await waitUntil(
    async () => {
      const d = await api<{ state: string }>(gw.apiUrl, 'GET', `/torrents/${id}`)
      return d.status === 200 && d.body.state === 'seeding' ? true : undefined
    },
    { timeoutMs: 60_000, what: 'seeding after the restart' },
  )
  for (const phase of ['cold', 'warm'] as const) {
    const lt = await startLibtorrent()
    try {
      rows.push(
        await timed(`serve ${phase}: Codex → gateway → libtorrent`, gw, () =>
          leech(lt, made.torrentPath, join(tmp.path, phase), `${HOST}:${gw.peerPort}`),
        ),
      )
    } finally {
      await lt.close()
    }
    await checkAndDrop(join(tmp.path, phase))
  }

  const base = rows[0]!.mbps
  const pad = (s: string, n: number) => s.padEnd(n)
  const num = (v: number | undefined, d = 1) => (v === undefined ? '-' : v.toFixed(d))
  const lines = [
    `codex-bt benchmark: ${SIZE / MIB} MiB, ${FILES} file(s), hybrid, ${PIECE / 1024} KiB pieces, 127.0.0.1`,
    '',
    `| ${pad('run', 40)} | time s | MB/s   | × lt→lt | gateway CPU s | gateway peak RSS MiB |`,
    `|${'-'.repeat(42)}|--------|--------|---------|---------------|----------------------|`,
    ...rows.map(
      (r) =>
        `| ${pad(r.name, 40)} | ${pad(num(r.seconds), 6)} | ${pad(num(r.mbps), 6)} | ${pad(num(r.mbps / base, 2), 7)} | ${pad(num(r.gatewayCpuS), 13)} | ${pad(num(r.gatewayPeakRssMiB, 0), 20)} |`,
    ),
    '',
    `ingest breakdown: every piece verified after ${num(((verifiedAt ?? ingestDone) - ingestStart) / 1000)} s, ` +
      `then ${num((ingestDone - (verifiedAt ?? ingestDone)) / 1000)} s until every file and the record were in Codex.`,
    'gateway peak RSS: VmHWM of the ingest process (ingest row) and of the restarted process (serve rows).',
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => undefined)
  if (!values.keep) await tmp.cleanup()
}
