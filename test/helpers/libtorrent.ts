/**
 * A real libtorrent session for tests, driven through `lt_driver.py` (JSON lines over stdio).
 *
 * Debian's python3-libtorrent loads only under /usr/bin/python3. The session listens on 127.0.0.1
 * only, with DHT, LSD, UPnP and NAT-PMP off (see lt_driver.py).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const DRIVER = fileURLToPath(new URL('./lt_driver.py', import.meta.url))
export const SYSTEM_PYTHON = '/usr/bin/python3'

export interface LtFile {
  path: string
  size: number
  offset: number
  pad: boolean
  root: string | null
}

export interface LtTorrentInfo {
  name: string
  info_hash_v1: string | null
  info_hash_v2: string | null
  piece_length: number
  num_pieces: number
  total_size: number
  files: LtFile[]
  /** hex pieces root → hex concatenated layer (from `info` only) */
  piece_layers: Record<string, string>
}

export interface LtStatus {
  state: string
  progress: number
  is_seeding: boolean
  is_finished: boolean
  has_metadata: boolean
  num_peers: number
  num_seeds: number
  total_download: number
  total_upload: number
  total_payload_download: number
  total_payload_upload: number
  download_rate: number
  upload_rate: number
  total_wanted_done: number
  total_wanted: number
  num_pieces: number
  errc: string | null
  error: string | null
  /** Bytes of pieces that failed the hash check (data a peer sent that was wrong). */
  total_failed_bytes?: number
  /** Bytes received more than once. */
  total_redundant_bytes?: number
}

export interface LtPeer {
  ip: string
  client: string
  total_download: number
  total_upload: number
  flags: number
}

export interface LtAddOptions {
  torrent?: string
  magnet?: string
  savePath: string
  seedMode?: boolean
  uploadLimit?: number
  downloadLimit?: number
  /** host:port peers to connect to right away */
  peers?: string[]
}

export interface LtCreateOptions {
  /** a file or a directory */
  path: string
  out: string
  version?: 'v1' | 'v2' | 'hybrid'
  pieceLength?: number
  trackers?: string[]
  webseeds?: string[]
  private?: boolean
}

interface Pending {
  resolve(v: unknown): void
  reject(e: Error): void
}

export class LtSession {
  readonly port: number
  readonly #proc: ChildProcessWithoutNullStreams
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  #closed = false
  #stderr = ''

  constructor(proc: ChildProcessWithoutNullStreams, port: number, lines: AsyncIterable<string>) {
    this.#proc = proc
    this.port = port
    proc.stderr.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000)
    })
    proc.on('exit', () => {
      this.#closed = true
      for (const p of this.#pending.values()) p.reject(new Error(`libtorrent driver exited: ${this.#stderr}`))
      this.#pending.clear()
    })
    void this.#readLoop(lines)
  }

  async #readLoop(lines: AsyncIterable<string>): Promise<void> {
    try {
      for await (const line of lines) {
        if (!line.trim()) continue
        const msg = JSON.parse(line) as { id?: number; ok?: boolean; result?: unknown; error?: string }
        if (msg.id === undefined) continue
        const p = this.#pending.get(msg.id)
        if (!p) continue
        this.#pending.delete(msg.id)
        if (msg.ok) p.resolve(msg.result)
        else p.reject(new Error(`libtorrent: ${msg.error ?? 'unknown error'}`))
      }
    } catch {
      // the process ended; pending calls are rejected by the exit handler
    }
  }

  call<T>(op: string, params: Record<string, unknown> = {}): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('libtorrent driver is closed'))
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.#proc.stdin.write(`${JSON.stringify({ id, op, ...params })}\n`)
    })
  }

  createTorrent(o: LtCreateOptions): Promise<LtTorrentInfo> {
    return this.call('create_torrent', {
      path: o.path,
      out: o.out,
      version: o.version ?? 'hybrid',
      piece_length: o.pieceLength ?? 0,
      trackers: o.trackers ?? [],
      webseeds: o.webseeds ?? [],
      private: o.private ?? false,
    })
  }

  info(torrentPath: string): Promise<LtTorrentInfo> {
    return this.call('info', { torrent: torrentPath })
  }

  async add(o: LtAddOptions): Promise<number> {
    const r = await this.call<{ handle: number }>('add', {
      ...(o.torrent !== undefined ? { torrent: o.torrent } : {}),
      ...(o.magnet !== undefined ? { magnet: o.magnet } : {}),
      save_path: o.savePath,
      seed_mode: o.seedMode ?? false,
      upload_limit: o.uploadLimit ?? 0,
      download_limit: o.downloadLimit ?? 0,
      peers: o.peers ?? [],
    })
    return r.handle
  }

  status(handle: number): Promise<LtStatus> {
    return this.call('status', { handle })
  }

  peers(handle: number): Promise<LtPeer[]> {
    return this.call('peers', { handle })
  }

  connect(handle: number, host: string, port: number): Promise<boolean> {
    return this.call('connect', { handle, host, port })
  }

  recheck(handle: number): Promise<boolean> {
    return this.call('recheck', { handle })
  }

  remove(handle: number): Promise<boolean> {
    return this.call('remove', { handle })
  }

  setUploadLimit(handle: number, limit: number): Promise<boolean> {
    return this.call('set_upload_limit', { handle, limit })
  }

  /** Polls `status` until `pred` holds; rejects after `timeoutMs` with the last status. */
  async waitFor(
    handle: number,
    pred: (s: LtStatus) => boolean,
    {
      timeoutMs = 60_000,
      intervalMs = 100,
      signal,
    }: { timeoutMs?: number; intervalMs?: number; signal?: AbortSignal } = {},
  ): Promise<LtStatus> {
    const deadline = Date.now() + timeoutMs
    let last: LtStatus | undefined
    while (Date.now() < deadline) {
      signal?.throwIfAborted()
      last = await this.status(handle)
      if (pred(last)) return last
      await new Promise((r) => setTimeout(r, intervalMs))
    }
    throw new Error(
      `libtorrent: condition not met within ${timeoutMs} ms; last status ${JSON.stringify(last)}`,
    )
  }

  async close(): Promise<void> {
    if (this.#closed) return
    const exited = new Promise<void>((r) => this.#proc.once('exit', () => r()))
    try {
      await Promise.race([this.call('quit'), new Promise((r) => setTimeout(r, 2000))])
    } catch {
      // already gone
    }
    this.#proc.stdin.end()
    const timer = setTimeout(() => this.#proc.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}

/** Starts a libtorrent session on 127.0.0.1 (port 0 = ephemeral). */
export async function startLibtorrent(
  opts: { port?: number; settings?: Record<string, string | number | boolean> } = {},
): Promise<LtSession> {
  const proc = spawn(SYSTEM_PYTHON, [DRIVER, String(opts.port ?? 0), JSON.stringify(opts.settings ?? {})], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const rl = createInterface({ input: proc.stdout })
  const it = rl[Symbol.asyncIterator]()
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
  try {
    const first = await it.next()
    if (first.done) throw new Error('libtorrent driver exited before it was ready')
    const ready = JSON.parse(first.value) as { event?: string; port?: number }
    if (ready.event !== 'ready' || !ready.port)
      throw new Error(`libtorrent driver: unexpected ${first.value}`)
    const rest: AsyncIterable<string> = { [Symbol.asyncIterator]: () => it }
    return new LtSession(proc, ready.port, rest)
  } finally {
    clearTimeout(timer)
  }
}
