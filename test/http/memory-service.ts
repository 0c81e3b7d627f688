/**
 * A small in-memory `GatewayService` for the HTTP-layer tests (schemas, statuses, auth, error
 * mapping). It parses .torrent files with `bencode` and computes real v1 info hashes, so the
 * tests can check that bytes travel through the API unchanged. It is not the engine.
 */
import { createHash } from 'node:crypto'
import bencode from 'bencode'
import {
  type AddTorrentInput,
  type AddTorrentResult,
  type CreateSeedInput,
  GatewayError,
  type GatewayService,
  type HealthReport,
  type ReadinessReport,
  type SeedResult,
  type TorrentDetails,
  type TorrentFile,
  type TorrentState,
  type TorrentSummary,
} from '../../gateway/http/service.ts'

interface Entry {
  summary: TorrentSummary
  bytes: Uint8Array | undefined
  trackers: string[]
}

/** Builds a small single-file v1 .torrent (piece hashes are fake but well-formed). */
export function makeTorrent(name: string, length = 1000, extra: Record<string, string> = {}): Uint8Array {
  const pieceLength = 16384
  const pieces = Math.max(1, Math.ceil(length / pieceLength))
  return bencode.encode({
    announce: 'http://127.0.0.1:1/announce',
    info: {
      length,
      name,
      'piece length': pieceLength,
      pieces: new Uint8Array(20 * pieces).fill(7),
      ...extra,
    },
  })
}

export function infoHashOf(torrent: Uint8Array): string {
  const decoded = bencode.decode(torrent) as { info?: unknown }
  return createHash('sha1')
    .update(bencode.encode(decoded.info as Record<string, never>))
    .digest('hex')
}

export class MemoryService implements GatewayService {
  readonly torrents = new Map<string, Entry>()
  readonly calls: { method: string; args: unknown[] }[] = []
  readonly records = new Map<string, Uint8Array>()
  readyState: ReadinessReport = { ready: true, reasons: [], checks: [{ name: 'codex', ok: true }] }
  codexDown = false
  /** When set, `listTorrents` throws this (to test the 500 mapping). */
  failList: Error | undefined

  private record(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args })
  }

  lastCall(method: string): unknown[] | undefined {
    return this.calls.findLast((c) => c.method === method)?.args
  }

  private summary(id: string, name: string | null, sizeBytes: number | null, v2 = false): TorrentSummary {
    return {
      id,
      name,
      ...(v2 ? { infoHashV2: id } : { infoHashV1: id }),
      version: name === null ? null : v2 ? 'v2' : 'v1',
      state: name === null ? 'metadata' : 'downloading',
      progress: 0,
      sizeBytes,
      downloadedBytes: 0,
      uploadedBytes: 0,
      downloadRate: 0,
      uploadRate: 0,
      peers: 0,
      addedAt: new Date().toISOString(),
    }
  }

  private get(id: string): Entry {
    const entry = this.torrents.get(id)
    if (entry === undefined) throw new GatewayError('GW_ERR_NOT_FOUND', `No torrent ${id}.`)
    return entry
  }

  private put(
    summary: TorrentSummary,
    bytes: Uint8Array | undefined,
    trackers: readonly string[],
  ): AddTorrentResult {
    const existing = this.torrents.get(summary.id)
    if (existing) {
      existing.trackers.push(...trackers)
      return { created: false, torrent: existing.summary }
    }
    this.torrents.set(summary.id, { summary, bytes, trackers: [...trackers] })
    return { created: true, torrent: summary }
  }

  async addTorrent(input: AddTorrentInput): Promise<AddTorrentResult> {
    this.record('addTorrent', input)
    const trackers = input.trackers ?? []
    if (input.torrent) {
      let decoded: { info?: { name?: Uint8Array; length?: number } }
      try {
        decoded = bencode.decode(input.torrent) as typeof decoded
      } catch {
        throw new GatewayError('GW_ERR_BAD_TORRENT', 'bencode decoding failed')
      }
      if (decoded.info === undefined || decoded.info.name === undefined) {
        throw new GatewayError('GW_ERR_BAD_TORRENT', 'no info dictionary')
      }
      const name = new TextDecoder().decode(decoded.info.name)
      return this.put(
        this.summary(infoHashOf(input.torrent), name, decoded.info.length ?? 0),
        input.torrent,
        trackers,
      )
    }
    if (input.magnet) {
      const params = new URLSearchParams(input.magnet.slice('magnet:?'.length))
      const m = /^urn:btih:([0-9a-fA-F]{40})$/.exec(params.get('xt') ?? '')
      if (!m) throw new GatewayError('GW_ERR_BAD_MAGNET', 'only hex btih magnets are supported here')
      return this.put(this.summary(m[1]!.toLowerCase(), null, null), undefined, [
        ...params.getAll('tr'),
        ...trackers,
      ])
    }
    const id = input.infoHash!
    return this.put(this.summary(id, null, null, id.length === 64), undefined, trackers)
  }

  async listTorrents(): Promise<readonly TorrentSummary[]> {
    if (this.failList) throw this.failList
    return [...this.torrents.values()].map((e) => e.summary)
  }

  async getTorrent(id: string): Promise<TorrentDetails> {
    const { summary, trackers } = this.get(id)
    const { peers: _count, ...rest } = summary
    return {
      ...rest,
      pieceLength: summary.name === null ? null : 16384,
      pieceCount: summary.name === null ? null : 1,
      files:
        summary.name === null
          ? []
          : [{ path: summary.name, sizeBytes: summary.sizeBytes ?? 0, progress: 0, codexCid: null }],
      recordCid: null,
      trackers: trackers.map((url) => ({
        url,
        status: 'idle',
        lastAnnounceAt: null,
        seeders: null,
        leechers: null,
        lastError: null,
      })),
      peers: [
        {
          address: '127.0.0.1:6881',
          client: 'test 1.0',
          downloadRate: 0,
          uploadRate: 0,
          progress: 1,
          source: 'manual',
        },
      ],
      errors: [],
    }
  }

  async deleteTorrent(id: string, options: { removeData: boolean }): Promise<void> {
    this.record('deleteTorrent', id, options)
    this.get(id)
    this.torrents.delete(id)
  }

  private setState(id: string, state: TorrentState): TorrentSummary {
    const entry = this.get(id)
    entry.summary = { ...entry.summary, state }
    return entry.summary
  }

  async pauseTorrent(id: string): Promise<TorrentSummary> {
    if (this.get(id).summary.state === 'paused') throw new GatewayError('GW_ERR_CONFLICT', 'already paused')
    return this.setState(id, 'paused')
  }

  async resumeTorrent(id: string): Promise<TorrentSummary> {
    return this.setState(id, 'downloading')
  }

  async getTorrentFile(id: string): Promise<TorrentFile> {
    const entry = this.get(id)
    if (entry.bytes === undefined) throw new GatewayError('GW_ERR_CONFLICT', 'metadata not known yet')
    return { name: entry.summary.name ?? id, bytes: entry.bytes }
  }

  async createSeed(input: CreateSeedInput): Promise<SeedResult> {
    this.record('createSeed', input)
    if (this.codexDown) throw new GatewayError('GW_ERR_CODEX_UNAVAILABLE', 'codex is down')
    const name = input.name ?? input.cid ?? 'seed'
    const torrent = makeTorrent(name, 12345)
    const id = infoHashOf(torrent)
    this.put(this.summary(id, name, 12345), torrent, input.trackers ?? [])
    return {
      id,
      name,
      version: 'v1',
      infoHashV1: id,
      magnet: `magnet:?xt=urn:btih:${id}&dn=${encodeURIComponent(name)}`,
      torrent,
      recordCid: null,
    }
  }

  async importRecord(cid: string): Promise<AddTorrentResult> {
    const torrent = this.records.get(cid)
    if (torrent === undefined) throw new GatewayError('GW_ERR_NOT_FOUND', `No record ${cid}.`)
    return this.addTorrent({ torrent })
  }

  async health(): Promise<HealthReport> {
    return { status: 'ok', uptimeSeconds: process.uptime(), version: '0.1.0-test' }
  }

  async ready(): Promise<ReadinessReport> {
    return this.readyState
  }
}
