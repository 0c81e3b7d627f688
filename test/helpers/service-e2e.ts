/**
 * Plumbing of the gateway-service end-to-end tests (test/service/*.test.ts): everything talks to
 * real processes on 127.0.0.1 only.
 *
 * - `freePort()`: a port free for TCP and UDP on 127.0.0.1 (the DHT uses the peer port over UDP);
 * - `seedWithLibtorrent()`: a deterministic payload, a libtorrent-made .torrent, seeded by libtorrent;
 * - typed JSON views of the HTTP API, `waitArchived()`, and small Codex REST helpers;
 * - `runCli()`: runs `node gateway/cli/bin.ts …` with a clean environment and a deadline;
 * - `startPrometheus()`: a real Prometheus server (`/usr/bin/prometheus`) scraping given targets
 *   every second, queried through its HTTP API, stopped by PID.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { SeedResult, TorrentDetails, TorrentSummary } from '../../gateway/http/service.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { api, type GatewayProcess, startGatewayProcess, waitUntil } from './gateway-process.ts'
import { type LtMadeTorrent, ltSeed, makeLtTorrent } from './interop.ts'
import { type LtSession, type LtStatus, startLibtorrent } from './libtorrent.ts'
import { type PayloadSpec, type TempDir, tempDir } from './payload.ts'

export const LOOPBACK = '127.0.0.1'
export const CLI_BIN = fileURLToPath(new URL('../../gateway/cli/bin.ts', import.meta.url))
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const PROMETHEUS_BIN = '/usr/bin/prometheus'

// ------------------------------------------------------------------------------------- ports

async function udpFree(port: number): Promise<boolean> {
  const sock = createSocket('udp4')
  try {
    sock.bind(port, LOOPBACK)
    await once(sock, 'listening')
    return true
  } catch {
    return false
  } finally {
    try {
      sock.close()
    } catch {
      // not bound
    }
  }
}

/** A port that is free for TCP and for UDP on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const srv = createServer()
    srv.listen(0, LOOPBACK)
    await once(srv, 'listening')
    const { port } = srv.address() as { port: number }
    srv.close()
    await once(srv, 'close')
    if (await udpFree(port)) return port
  }
  throw new Error('no port free for both TCP and UDP on 127.0.0.1')
}

// ---------------------------------------------------------------------------------- suites

/** What most service suites start: a temp dir, a libtorrent session and a gateway on `tmp/gw`. */
export interface ServiceSuite {
  readonly tmp: TempDir
  readonly lt: LtSession
  readonly gw: GatewayProcess
}

/** Starts a {@link ServiceSuite} (gateway environment `env`); on failure, stops what it started. */
export async function startServiceSuite(
  tmpPrefix: string,
  env: Record<string, string> = {},
): Promise<ServiceSuite> {
  const tmp = await tempDir(tmpPrefix)
  let lt: LtSession | undefined
  try {
    lt = await startLibtorrent()
    const gw = await startGatewayProcess({ dataDir: join(tmp.path, 'gw'), env })
    return { tmp, lt, gw }
  } catch (e) {
    await lt?.close()
    await tmp.cleanup()
    throw e
  }
}

/** Stops what {@link startServiceSuite} started (parts may be missing); the gateway must exit 0. */
export async function stopServiceSuite({ tmp, lt, gw }: Partial<ServiceSuite>): Promise<void> {
  const code = await gw?.stop()
  await lt?.close()
  await tmp?.cleanup()
  assert.equal(code, 0, 'the gateway stops cleanly on SIGTERM')
}

/**
 * A fresh libtorrent session downloads `source` (a .torrent file or a magnet) into `savePath` from
 * the peer on 127.0.0.1:`peerPort` until it seeds; the session is closed either way.
 */
export async function leechWithLibtorrent(
  source: { readonly torrent: string } | { readonly magnet: string },
  savePath: string,
  peerPort: number,
  timeoutMs: number,
): Promise<LtStatus> {
  const leecher = await startLibtorrent()
  try {
    const h = await leecher.add({ ...source, savePath, peers: [`${LOOPBACK}:${peerPort}`] })
    return await leecher.waitFor(h, (s) => s.is_seeding, { timeoutMs })
  } finally {
    await leecher.close()
  }
}

// ---------------------------------------------------------------------------- torrents, API

export interface SeededTorrent extends LtMadeTorrent {
  /** The gateway's id of the torrent: the v1 info hash when there is one, else the v2 one. */
  readonly id: string
  readonly infoHashV1: string | undefined
  readonly infoHashV2: string | undefined
  readonly pieceCount: number
  /** `host:port` of the libtorrent seeder. */
  readonly peer: string
}

/**
 * Writes `spec` under `dir`, has libtorrent make a `version` torrent of it and seed it (at most
 * `uploadLimit` bytes/s when set, so a test can watch the transfer progress).
 */
export async function seedWithLibtorrent(
  lt: LtSession,
  dir: string,
  spec: PayloadSpec,
  version: 'v1' | 'v2' | 'hybrid',
  { pieceLength = 64 * 1024, uploadLimit }: { pieceLength?: number; uploadLimit?: number } = {},
): Promise<SeededTorrent> {
  const made = await makeLtTorrent(lt, dir, spec, version, pieceLength)
  await ltSeed(lt, made, uploadLimit ? { uploadLimit } : {})
  const { infoHashV1, infoHashV2, pieceCount } = made.metainfo.info
  const v1 = infoHashV1 ? toHex(infoHashV1) : undefined
  const v2 = infoHashV2 ? toHex(infoHashV2) : undefined
  return {
    ...made,
    id: (v1 ?? v2)!,
    infoHashV1: v1,
    infoHashV2: v2,
    pieceCount,
    peer: `${LOOPBACK}:${lt.port}`,
  }
}

/** The JSON of every error response. */
export interface ErrorJson {
  readonly error: { readonly code: string; readonly message: string; readonly details?: unknown[] }
}

export interface AddJson {
  readonly created: boolean
  readonly torrent: TorrentSummary
}

/** `POST /seeds` answers the .torrent as base64. */
export type SeedJson = Omit<SeedResult, 'torrent'> & { readonly torrent: string }

/** `GET /torrents/:id` until it has a record CID (state `seeding`); fails fast on `error`. */
export async function waitArchived(apiUrl: string, id: string, timeoutMs = 45_000): Promise<TorrentDetails> {
  let last: TorrentDetails | undefined
  try {
    return await waitUntil(
      async () => {
        const r = await api<TorrentDetails>(apiUrl, 'GET', `/torrents/${id}`)
        if (r.status !== 200) throw new Error(`GET /torrents/${id}: ${r.status} ${JSON.stringify(r.body)}`)
        last = r.body
        if (r.body.state === 'error') throw new Error(`archive failed: ${JSON.stringify(r.body.errors)}`)
        return r.body.recordCid && r.body.state === 'seeding' ? r.body : undefined
      },
      { timeoutMs, intervalMs: 200, what: `torrent ${id} archived` },
    )
  } catch (e) {
    throw new Error(`${(e as Error).message}; last details ${JSON.stringify(last)}`)
  }
}

/** Ids and states of `GET /torrents`, sorted by id (for "nothing changed" comparisons). */
export async function listSnapshot(apiUrl: string): Promise<{ id: string; state: string }[]> {
  const r = await api<{ torrents: TorrentSummary[] }>(apiUrl, 'GET', '/torrents')
  if (r.status !== 200) throw new Error(`GET /torrents: ${r.status}`)
  return r.body.torrents.map((t) => ({ id: t.id, state: t.state })).sort((a, b) => (a.id < b.id ? -1 : 1))
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

// ------------------------------------------------------------------------------------- Codex

/** Uploads bytes to a Codex node (REST API) and returns the dataset's manifest CID. */
export async function codexUpload(codexUrl: string, bytes: Uint8Array, filename?: string): Promise<string> {
  const res = await fetch(`${codexUrl}/api/codex/v1/data`, {
    method: 'POST',
    body: bytes,
    headers: {
      'content-type': 'application/octet-stream',
      ...(filename ? { 'content-disposition': `attachment; filename="${filename}"` } : {}),
    },
    signal: AbortSignal.timeout(30_000),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`Codex upload: ${res.status} ${text}`)
  return text.trim()
}

/** The bytes of a dataset stored on the node, or `undefined` when the node answers 404. */
export async function codexDownload(codexUrl: string, cid: string): Promise<Uint8Array | undefined> {
  const res = await fetch(`${codexUrl}/api/codex/v1/data/${cid}`, { signal: AbortSignal.timeout(30_000) })
  if (res.status === 404) {
    await res.body?.cancel()
    return undefined
  }
  if (!res.ok) throw new Error(`Codex download ${cid}: ${res.status} ${await res.text()}`)
  return new Uint8Array(await res.arrayBuffer())
}

/** Manifest CIDs of every dataset stored on the node (`GET /data`). */
export async function codexDatasets(codexUrl: string): Promise<Set<string>> {
  const res = await fetch(`${codexUrl}/api/codex/v1/data`, { signal: AbortSignal.timeout(30_000) })
  if (!res.ok) throw new Error(`Codex list: ${res.status}`)
  const body = (await res.json()) as { content: { cid: string }[] }
  return new Set(body.content.map((c) => c.cid))
}

// --------------------------------------------------------------------------------------- CLI

export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: Buffer
  readonly stderr: string
}

const cliProcesses = new Set<ChildProcess>()

/**
 * Runs `codex-bt <args>` (`node gateway/cli/bin.ts`) with only PATH, HOME and `env` in its
 * environment (no CODEX_BT_* leaks in from the test runner); SIGKILL after `timeoutMs`.
 */
export async function runCli(
  args: readonly string[],
  { env = {}, timeoutMs = 60_000 }: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CliResult> {
  const proc = spawn(process.execPath, [CLI_BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  cliProcesses.add(proc)
  const out: Buffer[] = []
  let err = ''
  proc.stdout!.on('data', (d: Buffer) => out.push(d))
  proc.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-50_000)
  })
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
  try {
    const [code, signal] = (await once(proc, 'close')) as [number | null, NodeJS.Signals | null]
    return { code, signal, stdout: Buffer.concat(out), stderr: err }
  } finally {
    clearTimeout(timer)
    cliProcesses.delete(proc)
  }
}

/** SIGKILLs (by PID) every CLI process still running (for `after` hooks). */
export function killCliProcesses(): void {
  for (const p of cliProcesses) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
}

// -------------------------------------------------------------------------------- Prometheus

export interface PromSample {
  readonly metric: Record<string, string>
  readonly value: number
}

export interface PrometheusServer {
  /** e.g. http://127.0.0.1:9090 */
  readonly url: string
  readonly pid: number
  /** An instant query (`/api/v1/query`); throws when Prometheus answers an error. */
  query(expr: string): Promise<PromSample[]>
  /** SIGTERM by PID, SIGKILL after 10 s; resolves with the exit code. */
  stop(): Promise<number | null>
}

/**
 * Starts `/usr/bin/prometheus` on 127.0.0.1 with a 1 s scrape interval, one job scraping
 * `targets` (host:port) at `/metrics`, its config and TSDB under `dir`; waits for `/-/ready`.
 */
export async function startPrometheus(opts: {
  readonly dir: string
  readonly job: string
  readonly targets: readonly string[]
}): Promise<PrometheusServer> {
  if (!existsSync(PROMETHEUS_BIN)) throw new Error(`${PROMETHEUS_BIN} is missing (Debian package prometheus)`)
  const port = await freePort()
  await mkdir(opts.dir, { recursive: true })
  const config = join(opts.dir, 'prometheus.yml')
  await writeFile(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      `  - job_name: ${JSON.stringify(opts.job)}`,
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: [${opts.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
      '',
    ].join('\n'),
  )
  const proc = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(opts.dir, 'tsdb')}`,
      `--web.listen-address=${LOOPBACK}:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  proc.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8000)
  })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  const url = `http://${LOOPBACK}:${port}`
  const stop = async (): Promise<number | null> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
    try {
      return await exited
    } finally {
      clearTimeout(timer)
    }
  }
  try {
    await waitUntil(
      async () => {
        if (proc.exitCode !== null) throw new Error(`prometheus exited with ${proc.exitCode}: ${stderr}`)
        const r = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) })
        await r.body?.cancel()
        return r.ok ? true : undefined
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'prometheus ready' },
    )
  } catch (e) {
    await stop()
    throw e
  }
  return {
    url,
    pid: proc.pid!,
    stop,
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`, {
        signal: AbortSignal.timeout(10_000),
      })
      const body = (await res.json()) as {
        status: string
        error?: string
        data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }
      }
      if (body.status !== 'success' || !body.data)
        throw new Error(`query ${expr}: ${body.error ?? res.status}`)
      if (body.data.resultType !== 'vector')
        throw new Error(`query ${expr}: ${body.data.resultType}, not a vector`)
      return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }))
    },
  }
}

// ----------------------------------------------------------------------------------- processes

/** Whether a process with this PID exists (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}
