/**
 * Shared plumbing of the end-to-end tests (test/e2e/*.test.ts): the real gateway process
 * (`gateway-process.ts`), real libtorrent sessions (`libtorrent.ts`) and a local Codex node run IN
 * the test process (so tests can inject faults and count requests), all on 127.0.0.1.
 *
 * Every wait has a deadline; `Cleanup` undoes what a test started, in reverse order.
 */
import assert from 'node:assert/strict'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { type LocalCodexNode, startLocalCodexNode } from '../../codex-client/local-node/index.ts'
import { api, type GatewayProcess, startGatewayProcess, waitUntil } from '../helpers/gateway-process.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { type TempDir, tempDir } from '../helpers/payload.ts'

export const MIB = 1024 * 1024
export const HOST = '127.0.0.1'
/** Codex REST API prefix. */
export const CODEX_API = '/api/codex/v1'

/** Runs registered undo steps in reverse order; errors are reported, never thrown. */
export class Cleanup {
  readonly #steps: { what: string; fn: () => Promise<unknown> }[] = []

  add(what: string, fn: () => Promise<unknown>): void {
    this.#steps.push({ what, fn })
  }

  async run(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step.fn()
      } catch (e) {
        process.stderr.write(`cleanup ${step.what} failed: ${String(e)}\n`)
      }
    }
  }
}

/** A local Codex node in this process, closed by `cleanup`. */
export async function startCodex(
  cleanup: Cleanup,
  dataDir: string,
  quotaBytes?: number,
): Promise<LocalCodexNode> {
  const node = await startLocalCodexNode({
    dataDir,
    port: 0,
    ...(quotaBytes !== undefined ? { quotaBytes } : {}),
  })
  cleanup.add('codex node', () => node.close())
  return node
}

/** What most suites start first: a temp dir, a Codex node in `tmp/codex` and a libtorrent seeder. */
export interface SuiteEnv {
  readonly tmp: TempDir
  readonly codex: LocalCodexNode
  readonly seeder: LtSession
}

/** Starts a {@link SuiteEnv}; `cleanup` removes the temp dir and stops the node and the seeder. */
export async function startSuite(cleanup: Cleanup, tmpPrefix: string): Promise<SuiteEnv> {
  const tmp = await tempDir(tmpPrefix)
  cleanup.add('temp dir', () => tmp.cleanup())
  const codex = await startCodex(cleanup, join(tmp.path, 'codex'))
  const seeder = await startLibtorrent()
  cleanup.add('seeder', () => seeder.close())
  return { tmp, codex, seeder }
}

/** A gateway process on `dataDir` and `codexUrl`, killed by `cleanup` if still running. */
export async function startGateway(
  cleanup: Cleanup,
  dataDir: string,
  codexUrl: string,
  env: Record<string, string> = {},
): Promise<GatewayProcess> {
  const gw = await startGatewayProcess({ dataDir, codexUrl, env: { CODEX_BT_LOG_LEVEL: 'info', ...env } })
  cleanup.add(`gateway ${gw.pid}`, () => gw.kill())
  return gw
}

/** Narrow views of the API's JSON (only what the tests read). */
export interface FileView {
  path: string
  sizeBytes: number
  progress: number
  codexCid: string | null
}
export interface ErrorView {
  at: string
  code: string
  message: string
}
export interface DetailsView {
  id: string
  name: string | null
  state: string
  progress: number
  sizeBytes: number | null
  recordCid: string | null
  files: FileView[]
  errors: ErrorView[]
}
export interface AddView {
  created: boolean
  torrent: { id: string; state: string }
}

/** POST /torrents with raw .torrent bytes (and peers to dial); returns the torrent id. */
export async function addTorrent(
  gw: GatewayProcess,
  torrent: Uint8Array,
  peers: string[] = [],
): Promise<string> {
  const q = peers.length > 0 ? `?peers=${encodeURIComponent(peers.join(','))}` : ''
  const r = await api<AddView>(gw.apiUrl, 'POST', `/torrents${q}`, torrent)
  assert.ok(r.status === 201 || r.status === 200, `POST /torrents → ${r.status} ${JSON.stringify(r.body)}`)
  return r.body.torrent.id
}

export async function details(gw: GatewayProcess, id: string): Promise<DetailsView> {
  const r = await api<DetailsView>(gw.apiUrl, 'GET', `/torrents/${id}`)
  assert.equal(r.status, 200, `GET /torrents/${id} → ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

/** Waits until the torrent has a record CID (archived); returns its details. */
export function waitArchived(
  gw: GatewayProcess,
  id: string,
  timeoutMs = 60_000,
  onPoll?: (d: DetailsView) => void,
): Promise<DetailsView> {
  return waitUntil(
    async () => {
      const d = await details(gw, id)
      onPoll?.(d)
      return d.recordCid && d.state === 'seeding' ? d : undefined
    },
    { timeoutMs, intervalMs: 200, what: `torrent ${id} archived` },
  )
}

/** Waits until the torrent is known to the gateway and seeding (e.g. after a restart). */
export function waitSeeding(gw: GatewayProcess, id: string, timeoutMs = 30_000): Promise<DetailsView> {
  return waitUntil(
    async () => {
      const r = await api<DetailsView>(gw.apiUrl, 'GET', `/torrents/${id}`)
      return r.status === 200 && r.body.state === 'seeding' ? r.body : undefined
    },
    { timeoutMs, intervalMs: 200, what: `torrent ${id} seeding` },
  )
}

/** GET /torrents/:id/torrent as bytes. */
export async function exportTorrent(gw: GatewayProcess, id: string): Promise<Buffer> {
  const r = await fetch(`${gw.apiUrl}/torrents/${id}/torrent`, { signal: AbortSignal.timeout(30_000) })
  assert.equal(r.status, 200)
  return Buffer.from(await r.arrayBuffer())
}

/** A dataset's bytes through the Codex REST API (local data route). */
export async function codexData(codexUrl: string, cid: string): Promise<Buffer> {
  const r = await fetch(`${codexUrl}${CODEX_API}/data/${cid}`, { signal: AbortSignal.timeout(60_000) })
  assert.equal(r.status, 200, `GET data/${cid} → ${r.status}`)
  return Buffer.from(await r.arrayBuffer())
}

/** POST /data to the Codex node; returns the CID. */
export async function codexUpload(codexUrl: string, bytes: Uint8Array, filename: string): Promise<string> {
  const r = await fetch(`${codexUrl}${CODEX_API}/data`, {
    method: 'POST',
    body: bytes,
    headers: {
      'content-type': 'application/octet-stream',
      'content-disposition': `attachment; filename="${filename}"`,
    },
    signal: AbortSignal.timeout(60_000),
  })
  const text = await r.text()
  assert.equal(r.status, 200, `POST data → ${r.status} ${text}`)
  return text.trim()
}

/** The Prometheus text of GET /metrics. */
export async function metricsText(gw: GatewayProcess): Promise<string> {
  const r = await fetch(`${gw.apiUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })
  assert.equal(r.status, 200)
  return r.text()
}

/** Sum of a metric's samples whose labels include `labels` (0 when absent). */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line)
    if (!m || m[1] !== name) continue
    const got = new Map<string, string>()
    for (const kv of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) got.set(kv[1]!, kv[2]!)
    if (Object.entries(labels).every(([k, v]) => got.get(k) === v)) sum += Number(m[4])
  }
  return sum
}

/** Files (not directories) below `dir`, recursively; [] when it does not exist. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  const stack = [dir]
  for (let guard = 0; stack.length > 0 && guard < 100_000; guard++) {
    const d = stack.pop()!
    let entries: import('node:fs').Dirent[]
    try {
      entries = await readdir(d, { withFileTypes: true })
    } catch {
      continue
    }
    for (const e of entries) {
      const p = join(d, e.name)
      if (e.isDirectory()) stack.push(p)
      else out.push(p)
    }
  }
  return out
}

/** Total bytes of the files below `dir`. */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0
  for (const f of await listFiles(dir)) total += (await stat(f)).size
  return total
}

/** The record JSON (codex-bt-record v1) stored at `cid`. */
export interface RecordFileView {
  path: string[]
  length: number
  padding?: boolean
  piecesRoot?: string
  cid?: string
}
export interface RecordView {
  format: string
  version: number
  name: string
  infoHashV1?: string
  infoHashV2?: string
  info: string
  torrent?: string
  files: RecordFileView[]
}

export async function fetchRecord(codexUrl: string, cid: string): Promise<RecordView> {
  return JSON.parse((await codexData(codexUrl, cid)).toString('utf8')) as RecordView
}

/** Waits until a libtorrent handle is seeding (downloaded everything), returns its status. */
export function ltComplete(lt: LtSession, h: number, timeoutMs = 60_000) {
  return lt.waitFor(h, (s) => s.is_seeding, { timeoutMs, intervalMs: 200 })
}

/** Reads a .torrent file as bytes. */
export async function readBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(path))
}

/** Log lines of a gateway process whose `msg` matches. */
export function logsMatching(gw: GatewayProcess, msg: RegExp): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  for (const line of gw.logs) {
    try {
      const j = JSON.parse(line) as Record<string, unknown>
      if (typeof j.msg === 'string' && msg.test(j.msg)) out.push(j)
    } catch {
      // not JSON
    }
  }
  return out
}
