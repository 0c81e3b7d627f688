/**
 * The gateway's use cases behind the HTTP API (`GatewayService`):
 * - archive: a .torrent, magnet or info hash → the engine fetches and verifies the data from the
 *   swarm into the Codex ingest storage → every file lands in Codex → a torrent record is stored
 *   in Codex and catalogued → the torrent keeps seeding;
 * - seed: Codex CIDs (or an imported record) → a torrent → served to peers from Codex;
 * - recovery: at start, every catalogued torrent is resumed (archives in progress continue where
 *   they stopped; archived torrents seed from Codex).
 *
 * It owns the job table; the engine owns the transfers; the catalog owns persistence.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Catalog, TorrentRow } from '../../adapters/catalog.ts'
import { sleep } from '../engine/abort.ts'
import type { EngineLogger } from '../engine/logger.ts'
import { PieceGeometry } from '../engine/piece-geometry.ts'
import type { Session } from '../engine/session.ts'
import type { Torrent } from '../engine/torrent/torrent.ts'
import { PieceVerifier } from '../engine/torrent/verifier.ts'
import { GatewayError } from '../http/errors.ts'
import type {
  AddTorrentInput,
  AddTorrentResult,
  CreateSeedInput,
  DeleteTorrentOptions,
  GatewayService,
  HealthReport,
  ReadinessReport,
  SeedResult,
  TorrentDetails,
  TorrentErrorInfo,
  TorrentFile,
  TorrentState,
  TorrentSummary,
} from '../http/service.ts'
import { fromHex, toHex } from '../protocol/hex.ts'
import { magnetFromMetainfo } from '../protocol/magnet.ts'
import { parseInfoDict, parseTorrent } from '../protocol/metainfo.ts'
import type { Metainfo } from '../protocol/types.ts'
import { type ParsedInput, parseAddInput } from './inputs.ts'
import type { CreateFromCodexPort, IngestStore, RecordPort, SeedStore, UploadStateChange } from './ports.ts'

export interface GatewayServiceInit {
  readonly session: Session
  readonly catalog: Catalog
  readonly ingest: IngestStore
  readonly seed: SeedStore
  readonly records: RecordPort
  readonly creator: CreateFromCodexPort
  /** Cheap Codex liveness probe for /readyz (e.g. `client.space()`). */
  readonly codexProbe: (signal: AbortSignal) => Promise<void>
  /** Removes a dataset from Codex (for DELETE ?removeData=true). */
  readonly codexDelete: (cid: string, signal: AbortSignal) => Promise<void>
  /** The Codex tree CID and size of a dataset (its manifest), to tell which datasets share blocks. */
  readonly codexTreeOf: (cid: string, signal: AbortSignal) => Promise<{ tree: string; size: number }>
  readonly dataDir: string
  readonly logger: EngineLogger
  readonly version: string
  readonly observeArchiveJob?: (seconds: number, result: string) => void
}

type JobKind = 'archive' | 'seed'

interface Job {
  readonly kind: JobKind
  readonly torrent: Torrent
  readonly addedAt: Date
  readonly errors: TorrentErrorInfo[]
  readonly abort: AbortController
  /** The .torrent bytes as given (archive from a .torrent), kept for bit-exact export. */
  originalTorrent: Uint8Array | undefined
  recordCid: string | null
  fileCids: ReadonlyMap<number, string>
  phase: 'transfer' | 'archiving' | 'archived' | 'failed'
  startedAt: number
  finishedAt: number | undefined
  trackers: string[]
}

interface PendingMagnet {
  readonly v1?: string
  readonly v2?: string
  readonly name?: string
  readonly trackers: readonly string[]
  readonly peers: readonly { host: string; port: number }[]
}

const MAX_ERRORS = 20
const MAX_RESUME_ATTEMPTS = 1000
const DELETE_TIMEOUT_MS = 10 * 60_000

/** A failure that may go away when Codex comes back (connection refused, timeouts, 502–504). */
function isTransient(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code
  if (code === 'CODEX_ERR_UNAVAILABLE' || code === 'CODEX_ERR_TIMEOUT' || code === 'GW_ERR_CODEX_UNAVAILABLE')
    return true
  if (code === 'GW_ERR_RECORD_CODEX') return true
  const status = (e as { status?: unknown } | null)?.status
  if (status === 502 || status === 503 || status === 504) return true
  const cause = (e as { cause?: unknown } | null)?.cause
  return cause !== undefined && cause !== e && isTransient(cause)
}
const RECORD_RETRY_BASE_MS = 500
const RECORD_RETRY_MAX_MS = 30_000

export class Gateway implements GatewayService {
  readonly #init: GatewayServiceInit
  readonly #jobs = new Map<string, Job>()
  /** Torrents being added to the session (by every info hash hex): their job, once created. */
  readonly #starting = new Map<string, Promise<Job>>()
  readonly #started = Date.now()
  #stopping = false
  #resumed = false
  readonly #resumeTimers = new Set<NodeJS.Timeout>()
  #codexOk: { ok: boolean; at: number; detail?: string } = { ok: false, at: 0 }

  constructor(init: GatewayServiceInit) {
    this.#init = init
    init.ingest.onUploadState((e) => this.#uploadStateChanged(e))
  }

  /** Codex upload trouble of an archive job shows in its `errors` (GET /torrents/:id). */
  #uploadStateChanged(e: UploadStateChange): void {
    const job = this.#jobs.get(e.torrentId)
    if (!job) return
    const cause = e.error instanceof Error ? e.error.message : e.error !== undefined ? String(e.error) : ''
    if (e.state === 'paused-codex-unavailable') {
      this.#recordError(
        job,
        'GW_ERR_CODEX_UNAVAILABLE',
        `Codex uploads paused until Codex answers again (and has room)${cause ? `: ${cause}` : ''}`,
      )
    } else if (e.state === 'retrying') {
      this.#recordError(
        job,
        'GW_ERR_CODEX_UPLOAD_RETRY',
        `a Codex upload failed, retrying${cause ? `: ${cause}` : ''}`,
      )
    }
    this.log.warn(
      { torrent: e.torrentId, state: e.state, err: e.error },
      'Codex upload state of a torrent changed',
    )
  }

  get log(): EngineLogger {
    return this.#init.logger
  }

  /** Number of archive jobs not finished yet, and the age of the oldest (for metrics/alerts). */
  archiveJobs(): { active: number; queued: number; oldestActiveAgeSeconds: number } {
    let active = 0
    let oldest = 0
    const now = Date.now()
    for (const j of this.#jobs.values()) {
      if (j.kind !== 'archive' || j.phase === 'archived' || j.phase === 'failed') continue
      active++
      oldest = Math.max(oldest, (now - j.startedAt) / 1000)
    }
    return { active, queued: 0, oldestActiveAgeSeconds: oldest }
  }

  jobsByState(): Map<string, number> {
    const m = new Map<string, number>()
    for (const j of this.#jobs.values()) {
      const s = this.#state(j)
      m.set(s, (m.get(s) ?? 0) + 1)
    }
    return m
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Resumes every catalogued torrent and pending magnet (after a restart). A torrent that cannot
   * be resumed because Codex is unreachable right now keeps its catalog state and is retried with
   * backoff; only a permanent failure (e.g. a record that no longer validates) marks it `error`.
   * `/readyz` reports not ready until this has run.
   */
  async start(): Promise<void> {
    for (const row of this.#init.catalog.listTorrents()) {
      await this.#resumeRow(row.id, 0)
    }
    for (const p of await this.#loadPendingMagnets()) {
      try {
        await this.#startMagnet(
          {
            kind: 'magnet',
            ...(p.v1 ? { infoHashV1: fromHex(p.v1, 20) } : {}),
            ...(p.v2 ? { infoHashV2: fromHex(p.v2, 32) } : {}),
            ...(p.name ? { name: p.name } : {}),
            trackers: p.trackers,
            peers: p.peers,
          },
          [],
          [],
        )
      } catch (e) {
        this.log.warn({ err: e }, 'could not resume a pending magnet')
      }
    }
    this.#resumed = true
  }

  async #resumeRow(id: string, attempt: number): Promise<void> {
    const row = this.#init.catalog.getTorrent(id)
    if (!row || this.#stopping || this.#jobs.has(row.id)) return
    try {
      if (row.recordCid && (row.state === 'seeding' || row.state === 'archived' || row.state === 'paused')) {
        await this.#seedFromRecord(row.recordCid, row.state === 'paused')
      } else {
        const bytes = row.torrentBytes
        const metainfo = bytes ? parseTorrent(bytes) : this.#metainfoFromRow(row)
        await this.#startArchive(metainfo, bytes, row.trackers.flat(), [], row.state === 'paused')
      }
    } catch (e) {
      if (isTransient(e) && attempt < MAX_RESUME_ATTEMPTS) {
        const delay = Math.min(60_000, 1000 * 2 ** Math.min(attempt, 6))
        this.log.warn(
          { err: e, torrent: row.id, attempt, retryInMs: delay },
          'Codex unavailable while resuming; will retry',
        )
        const timer = setTimeout(() => void this.#resumeRow(id, attempt + 1), delay)
        timer.unref()
        this.#resumeTimers.add(timer)
        return
      }
      this.log.error({ err: e, torrent: row.id }, 'could not resume a catalogued torrent')
      this.#init.catalog.setState(row.id, 'error', e instanceof Error ? e.message : String(e))
    }
  }

  /** Stops accepting work and aborts job waits; the session stop (by the app) stops transfers. */
  stop(): void {
    this.#stopping = true
    for (const t of this.#resumeTimers) clearTimeout(t)
    this.#resumeTimers.clear()
    for (const j of this.#jobs.values())
      j.abort.abort(new GatewayError('GW_ERR_SHUTTING_DOWN', 'shutting down'))
  }

  /** Metainfo of a catalogued torrent without original .torrent bytes (magnet start). */
  #metainfoFromRow(row: TorrentRow): Metainfo {
    return { info: parseInfoDict(row.infoBytes), announce: row.trackers, urlList: [], pieceLayers: new Map() }
  }

  // ------------------------------------------------------------------ archive

  async addTorrent(input: AddTorrentInput): Promise<AddTorrentResult> {
    this.#checkRunning()
    const parsed = parseAddInput(input)
    const extraTrackers = [...(input.trackers ?? [])]
    const extraPeers = [...(input.peers ?? [])]
    const existing = (await this.#startingJob(idsOf(parsed))) ?? this.#findExisting(parsed)
    if (existing) {
      existing.torrent.addPeers(extraPeers)
      return { created: false, torrent: this.#summary(existing) }
    }
    if (parsed.kind === 'torrent') {
      const job = await this.#startArchive(parsed.metainfo, parsed.bytes, extraTrackers, extraPeers, false)
      return { created: true, torrent: this.#summary(job) }
    }
    const job = await this.#startMagnet(parsed, extraTrackers, extraPeers)
    return { created: true, torrent: this.#summary(job) }
  }

  /** The job of a torrent being started right now (e.g. resumed at start), once it exists. */
  async #startingJob(ids: readonly string[]): Promise<Job | undefined> {
    for (const id of ids) {
      const pending = this.#starting.get(id)
      if (pending) return pending.catch(() => undefined)
    }
    return undefined
  }

  /**
   * Runs `start` (which adds the torrent to the session and creates its job) unless a start of
   * the same torrent is in flight: then that one's job. Two concurrent adds of one torrent (an API
   * call while `start()` resumes it, or two API calls) would otherwise both reach the session,
   * and the second would fail with "already in the session".
   */
  #startOnce(ids: readonly string[], start: () => Promise<Job>): Promise<Job> {
    for (const id of ids) {
      const pending = this.#starting.get(id)
      if (pending) return pending
    }
    const job = start()
    for (const id of ids) this.#starting.set(id, job)
    const clear = (): void => {
      for (const id of ids) if (this.#starting.get(id) === job) this.#starting.delete(id)
    }
    job.then(clear, clear)
    return job
  }

  #findExisting(parsed: ParsedInput): Job | undefined {
    const ids: Uint8Array[] = []
    if (parsed.kind === 'torrent') {
      if (parsed.metainfo.info.infoHashV1) ids.push(parsed.metainfo.info.infoHashV1)
      if (parsed.metainfo.info.infoHashV2) ids.push(parsed.metainfo.info.infoHashV2)
    } else {
      if (parsed.infoHashV1) ids.push(parsed.infoHashV1)
      if (parsed.infoHashV2) ids.push(parsed.infoHashV2)
    }
    for (const id of ids) {
      const t = this.#init.session.getTorrent(toHex(id))
      if (t) return this.#jobs.get(t.id)
    }
    return undefined
  }

  #startArchive(
    metainfo: Metainfo,
    original: Uint8Array | undefined,
    trackers: string[],
    peers: readonly { host: string; port: number }[],
    paused: boolean,
  ): Promise<Job> {
    return this.#startOnce(idsOfInfo(metainfo), () =>
      this.#doStartArchive(metainfo, original, trackers, peers, paused),
    )
  }

  async #doStartArchive(
    metainfo: Metainfo,
    original: Uint8Array | undefined,
    trackers: string[],
    peers: readonly { host: string; port: number }[],
    paused: boolean,
  ): Promise<Job> {
    const { catalog, session, ingest } = this.#init
    catalog.upsertTorrent({
      info: metainfo.info,
      ...(original ? { torrentBytes: original } : {}),
      trackers: [...metainfo.announce.map((t) => [...t]), ...trackers.map((t) => [t])],
      state: paused ? 'paused' : 'downloading',
      origin: 'ingest',
    })
    // Codex cannot append, so a file is uploaded as its verified prefix grows and stays staged
    // until its CID is known. When the torrent is large next to the staging budget, rarest-first
    // order would complete prefixes late and push staging past its bound: pick pieces in file
    // order instead (the archive only needs every piece; swarm-friendliness matters less here).
    const sequential = metainfo.info.payloadLength > ingest.staging().limitBytes / 2
    const torrent = await session.addTorrent({
      metainfo,
      store: ingest.store,
      trackers: trackers.map((t) => [t]),
      peers,
      paused,
      sequential,
    })
    if (sequential)
      this.log.info(
        { torrent: torrent.id },
        'large torrent for the staging budget: fetching pieces in file order',
      )
    const job = this.#newJob('archive', torrent, original, trackers)
    void this.#runArchive(job)
    return job
  }

  #startMagnet(
    parsed: ParsedInput & { kind: 'magnet' | 'infohash' },
    trackers: string[],
    peers: readonly { host: string; port: number }[],
  ): Promise<Job> {
    return this.#startOnce(idsOf(parsed), () => this.#doStartMagnet(parsed, trackers, peers))
  }

  async #doStartMagnet(
    parsed: ParsedInput & { kind: 'magnet' | 'infohash' },
    trackers: string[],
    peers: readonly { host: string; port: number }[],
  ): Promise<Job> {
    const allTrackers = [...parsed.trackers, ...trackers]
    const torrent = await this.#init.session.addTorrent({
      ...(parsed.infoHashV1 ? { infoHashV1: parsed.infoHashV1 } : {}),
      ...(parsed.infoHashV2 ? { infoHashV2: parsed.infoHashV2 } : {}),
      ...(parsed.name ? { name: parsed.name } : {}),
      store: this.#init.ingest.store,
      trackers: allTrackers.map((t) => [t]),
      peers: [...parsed.peers, ...peers],
    })
    const job = this.#newJob('archive', torrent, undefined, allTrackers)
    await this.#savePendingMagnets()
    void this.#runArchive(job)
    return job
  }

  #newJob(kind: JobKind, torrent: Torrent, original: Uint8Array | undefined, trackers: string[]): Job {
    const job: Job = {
      kind,
      torrent,
      addedAt: new Date(),
      errors: [],
      abort: new AbortController(),
      originalTorrent: original,
      recordCid: null,
      fileCids: new Map(),
      phase: 'transfer',
      startedAt: Date.now(),
      finishedAt: undefined,
      trackers,
    }
    this.#jobs.set(torrent.id, job)
    return job
  }

  #recordError(job: Job, code: string, e: unknown): void {
    const message = e instanceof Error ? e.message : String(e)
    job.errors.push({ at: new Date().toISOString(), code, message })
    if (job.errors.length > MAX_ERRORS) job.errors.shift()
  }

  async #runArchive(job: Job): Promise<void> {
    const { catalog, ingest } = this.#init
    const t = job.torrent
    const signal = AbortSignal.any([job.abort.signal, t.signal])
    try {
      await t.whenMetadata({ signal })
      const metainfo = t.metainfo!
      if (!catalog.getTorrent(t.id)) {
        catalog.upsertTorrent({
          info: metainfo.info,
          trackers: job.trackers.map((u) => [u]),
          state: 'downloading',
          origin: 'ingest',
        })
        await this.#savePendingMagnets()
      }
      await t.whenComplete({ signal })
      job.phase = 'archiving'
      catalog.setState(t.id, 'archiving')
      const progress = ingest.progress(t.id)
      if (!progress)
        throw new GatewayError('GW_ERR_INTERNAL', 'the ingest storage of the torrent is not open')
      job.fileCids = await progress.whenAllUploaded({ signal })
      const recordCid = await this.#uploadRecord(job, t.metainfo!, signal)
      job.recordCid = recordCid
      catalog.setRecordCid(t.id, recordCid)
      catalog.setState(t.id, 'seeding')
      job.phase = 'archived'
      job.finishedAt = Date.now()
      this.#init.observeArchiveJob?.((job.finishedAt - job.startedAt) / 1000, 'success')
      this.log.info({ torrent: t.id, record: recordCid }, 'torrent archived in Codex')
    } catch (e) {
      if (signal.aborted && (this.#stopping || t.state === 'stopped')) return
      job.phase = 'failed'
      this.#recordError(job, (e as { code?: string }).code ?? 'GW_ERR_ARCHIVE_FAILED', e)
      this.log.error({ err: e, torrent: t.id }, 'archive job failed')
      if (catalog.getTorrent(t.id))
        catalog.setState(t.id, 'error', e instanceof Error ? e.message : String(e))
      this.#init.observeArchiveJob?.((Date.now() - job.startedAt) / 1000, 'failure')
    }
  }

  /**
   * Stores the torrent record of an archive job, retrying with backoff while Codex fails (each
   * failure shows in the job's errors): every file is in Codex by now, so a Codex hiccup must not
   * turn the job into a failure. Bounded by the job's signal (deletion, shutdown).
   */
  async #uploadRecord(job: Job, metainfo: Metainfo, signal: AbortSignal): Promise<string> {
    // Bounded by `signal`; the delay grows to RECORD_RETRY_MAX_MS.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#init.records.upload(metainfo, job.fileCids, job.originalTorrent, { signal })
      } catch (e) {
        signal.throwIfAborted()
        const delay = Math.min(RECORD_RETRY_MAX_MS, RECORD_RETRY_BASE_MS * 2 ** Math.min(attempt - 1, 16))
        this.#recordError(
          job,
          'GW_ERR_RECORD_UPLOAD_RETRY',
          `storing the torrent record in Codex failed (attempt ${attempt}), retrying in ${delay} ms: ${
            e instanceof Error ? e.message : String(e)
          }`,
        )
        this.log.warn({ err: e, torrent: job.torrent.id, attempt }, 'record upload failed; retrying')
        await sleep(delay, signal)
      }
    }
  }

  // ------------------------------------------------------------------ seed

  async createSeed(input: CreateSeedInput): Promise<SeedResult> {
    this.#checkRunning()
    const files = input.cid
      ? [{ cid: input.cid, path: [input.name ?? input.cid] }]
      : (input.files ?? []).map((f) => ({ cid: f.cid, path: f.path.split('/').filter((c) => c.length > 0) }))
    if (files.length === 0) throw new GatewayError('GW_ERR_BAD_REQUEST', 'cid or files is required')
    const created = await this.#init.creator.create({
      files,
      ...(input.name ? { name: input.name } : {}),
      version: input.version ?? 'hybrid',
      trackers: input.trackers ?? [],
      webseeds: input.webseeds ?? [],
    })
    const { metainfo, torrent } = created
    const id = toHex(metainfo.info.infoHashV1 ?? metainfo.info.infoHashV2!)
    const existing = this.#jobs.get(id)
    if (!existing) {
      const { catalog, records } = this.#init
      catalog.upsertTorrent({
        info: metainfo.info,
        torrentBytes: torrent,
        trackers: metainfo.announce,
        state: 'seeding',
        origin: 'ingest',
      })
      for (const [i, cid] of created.fileCids) catalog.setFileCid(id, i, cid)
      const recordCid = await records.upload(metainfo, created.fileCids, torrent)
      catalog.setRecordCid(id, recordCid)
      const job = await this.#startSeeding(metainfo, created.fileCids, torrent, false)
      job.recordCid = recordCid
    }
    const job = this.#jobs.get(id)!
    return {
      id,
      name: metainfo.info.name,
      version: metainfo.info.version,
      ...(metainfo.info.infoHashV1 ? { infoHashV1: toHex(metainfo.info.infoHashV1) } : {}),
      ...(metainfo.info.infoHashV2 ? { infoHashV2: toHex(metainfo.info.infoHashV2) } : {}),
      magnet: magnetFromMetainfo(metainfo),
      torrent,
      recordCid: job.recordCid,
    }
  }

  async importRecord(cid: string): Promise<AddTorrentResult> {
    this.#checkRunning()
    const job = await this.#seedFromRecord(cid, false)
    return { created: job.created, torrent: this.#summary(job.job) }
  }

  async #seedFromRecord(recordCid: string, paused: boolean): Promise<{ job: Job; created: boolean }> {
    const { torrent, fileCids } = await this.#init.records.fetch(recordCid, { verifyFiles: true })
    let metainfo: Metainfo
    try {
      metainfo = parseTorrent(torrent)
    } catch (e) {
      throw new GatewayError(
        'GW_ERR_BAD_REQUEST',
        `the record's torrent does not parse: ${e instanceof Error ? e.message : String(e)}`,
      )
    }
    const id = toHex(metainfo.info.infoHashV1 ?? metainfo.info.infoHashV2!)
    const existing = this.#jobs.get(id)
    if (existing) return { job: existing, created: false }
    const { catalog } = this.#init
    catalog.upsertTorrent({
      info: metainfo.info,
      torrentBytes: torrent,
      trackers: metainfo.announce,
      state: paused ? 'paused' : 'seeding',
      origin: catalog.getTorrent(id)?.origin ?? 'import',
      recordCid,
    })
    for (const [i, cid] of fileCids) catalog.setFileCid(id, i, cid)
    const job = await this.#startSeeding(metainfo, fileCids, torrent, paused)
    job.recordCid = recordCid
    return { job, created: true }
  }

  #startSeeding(
    metainfo: Metainfo,
    fileCids: ReadonlyMap<number, string>,
    original: Uint8Array,
    paused: boolean,
  ): Promise<Job> {
    return this.#startOnce(idsOfInfo(metainfo), () =>
      this.#doStartSeeding(metainfo, fileCids, original, paused),
    )
  }

  async #doStartSeeding(
    metainfo: Metainfo,
    fileCids: ReadonlyMap<number, string>,
    original: Uint8Array,
    paused: boolean,
  ): Promise<Job> {
    const { seed, session } = this.#init
    const id = toHex(metainfo.info.infoHashV1 ?? metainfo.info.infoHashV2!)
    seed.register(id, (info) => {
      const verifier = new PieceVerifier(info, new PieceGeometry(info), metainfo.pieceLayers)
      return {
        cids: info.files.map((_, i) => fileCids.get(i)),
        verify: (piece, hashes) => verifier.verify(piece, hashes) === 'ok',
        want: (piece) => verifier.want(piece),
      }
    })
    const torrent = await session.addTorrent({ metainfo, store: seed.store, paused })
    const job = this.#newJob('seed', torrent, original, [])
    job.fileCids = fileCids
    job.phase = 'archived'
    return job
  }

  // ------------------------------------------------------------------ queries and control

  #job(id: string): Job {
    const t = this.#init.session.getTorrent(id.toLowerCase())
    const job = t ? this.#jobs.get(t.id) : undefined
    if (!job) throw new GatewayError('GW_ERR_NOT_FOUND', `no torrent ${id}`)
    return job
  }

  #state(job: Job): TorrentState {
    const s = job.torrent.state
    if (job.phase === 'failed' || s === 'error') return 'error'
    if (s === 'paused') return 'paused'
    if (job.phase === 'archiving') return 'archiving'
    if (s === 'stopped') return 'paused'
    if (s === 'seeding') return job.kind === 'archive' && job.phase !== 'archived' ? 'archiving' : 'seeding'
    return s
  }

  #summary(job: Job): TorrentSummary {
    const st = job.torrent.status()
    const info = job.torrent.info
    return {
      id: job.torrent.id,
      name: info?.name ?? null,
      ...(st.infoHashV1 ? { infoHashV1: st.infoHashV1 } : {}),
      ...(st.infoHashV2 ? { infoHashV2: st.infoHashV2 } : {}),
      version: info?.version ?? null,
      state: this.#state(job),
      progress: st.progress,
      sizeBytes: info?.payloadLength ?? null,
      downloadedBytes: st.downloaded,
      uploadedBytes: st.uploaded,
      downloadRate: st.downloadRate,
      uploadRate: st.uploadRate,
      peers: st.peers,
      addedAt: job.addedAt.toISOString(),
    }
  }

  async listTorrents(): Promise<readonly TorrentSummary[]> {
    return [...this.#jobs.values()].map((j) => this.#summary(j))
  }

  async getTorrent(id: string): Promise<TorrentDetails> {
    const job = this.#job(id)
    const { peers: _peers, ...summary } = this.#summary(job)
    const t = job.torrent
    const info = t.info
    const have = t.haveBitfield
    const fileCids = this.#fileCids(job)
    const files =
      info?.files
        .map((f, i) => ({ f, i }))
        .filter(({ f }) => !f.padding)
        .map(({ f, i }) => {
          let done = 0
          let total = 0
          for (let p = f.firstPiece; p < f.firstPiece + f.pieceCount; p++) {
            total++
            if (have?.has(p)) done++
          }
          return {
            path: f.path.join('/'),
            sizeBytes: f.length,
            progress: f.length === 0 ? 1 : total === 0 ? 0 : done / total,
            codexCid: fileCids.get(i) ?? null,
          }
        }) ?? []
    const tracker = this.#init.session.trackerStats(t.id)
    return {
      ...summary,
      pieceLength: info?.pieceLength ?? null,
      pieceCount: info?.pieceCount ?? null,
      files,
      recordCid: job.recordCid,
      trackers: (tracker?.swarms[0]?.trackers ?? []).map((tr) => ({
        url: tr.url,
        status: tr.lastResult === 'success' ? 'working' : tr.lastResult === 'none' ? 'idle' : 'error',
        lastAnnounceAt: tr.lastSuccessAt ? new Date(tr.lastSuccessAt).toISOString() : null,
        seeders: tr.seeders ?? null,
        leechers: tr.leechers ?? null,
        lastError: tr.lastError ?? null,
      })),
      peers: [...t.peers.values()].map((p) => ({
        address: p.info.host.includes(':')
          ? `[${p.info.host}]:${p.info.port}`
          : `${p.info.host}:${p.info.port}`,
        client: p.client || null,
        downloadRate: p.down.rate,
        uploadRate: p.up.rate,
        progress: info ? (p.have === 'all' ? 1 : (p.have?.count ?? 0) / Math.max(1, info.pieceCount)) : 0,
        source: p.info.incoming ? ('incoming' as const) : ('manual' as const),
      })),
      errors: [...job.errors],
    }
  }

  /** The files' CIDs: final once archived; during an ingest, those of the files already in Codex. */
  #fileCids(job: Job): ReadonlyMap<number, string> {
    if (job.kind !== 'archive' || job.phase === 'archived') return job.fileCids
    const live = new Map<number, string>()
    for (const f of this.#init.ingest.progress(job.torrent.id)?.fileStates() ?? []) {
      if (f.cid !== undefined) live.set(f.index, f.cid)
    }
    return live
  }

  async deleteTorrent(id: string, options: DeleteTorrentOptions): Promise<void> {
    const job = this.#job(id)
    const tid = job.torrent.id
    job.abort.abort(new GatewayError('GW_ERR_CONFLICT', 'deleted'))
    await this.#init.session.removeTorrent(tid)
    this.#jobs.delete(tid)
    this.#init.seed.unregister(tid)
    await this.#savePendingMagnets()
    if (options.removeData) {
      await this.#init.ingest.removeStaged(tid)
      const candidates = [...new Set([...job.fileCids.values(), ...(job.recordCid ? [job.recordCid] : [])])]
      const keep = await this.#datasetsStillUsed(tid, candidates, options.signal)
      for (const cid of candidates) {
        if (keep.has(cid)) continue
        // Deleting a dataset is O(blocks) on Codex: one deadline per dataset, not one for all.
        const perCall = AbortSignal.timeout(DELETE_TIMEOUT_MS)
        const signal = options.signal ? AbortSignal.any([options.signal, perCall]) : perCall
        await this.#init
          .codexDelete(cid, signal)
          .catch((e: unknown) => this.log.warn({ err: e, cid }, 'could not delete from Codex'))
      }
    }
    this.#init.catalog.deleteTorrent(tid)
  }

  /**
   * Which of `candidates` must survive deleting torrent `tid`: those another torrent references,
   * directly or through the same Codex tree. Codex deletes a dataset by its tree (every block
   * `(treeCid, i)`), and identical bytes uploaded with another filename or mimetype have another
   * manifest CID but the same tree (NOTES §1.3, §1.5) — so sharing is decided by tree CID. Only
   * files of equal length can share a tree, which bounds the manifest look-ups.
   */
  async #datasetsStillUsed(
    tid: string,
    candidates: readonly string[],
    signal?: AbortSignal,
  ): Promise<Set<string>> {
    const keep = new Set<string>()
    const others = new Map<string, number>() // cid → length, files of the other torrents
    // The catalog keys a torrent by its v1 hash when it has one; the engine id may be the v2 hash.
    const own = this.#init.catalog.getTorrent(tid)?.id ?? tid
    for (const row of this.#init.catalog.listTorrents()) {
      if (row.id === own) continue
      if (row.recordCid) others.set(row.recordCid, -1)
      for (const f of this.#init.catalog.getFiles(row.id)) if (f.cid) others.set(f.cid, f.length)
    }
    const treeOf = async (cid: string): Promise<{ tree: string; size: number } | undefined> => {
      try {
        return await this.#init.codexTreeOf(cid, signal ?? AbortSignal.timeout(30_000))
      } catch {
        return undefined
      }
    }
    for (const cid of candidates) {
      if (others.has(cid)) {
        keep.add(cid)
        continue
      }
      const mine = await treeOf(cid)
      if (!mine) {
        keep.add(cid) // cannot tell: never delete what might be shared
        continue
      }
      for (const [other, length] of others) {
        if (length !== mine.size) continue
        const theirs = await treeOf(other)
        if (!theirs || theirs.tree === mine.tree) {
          keep.add(cid)
          break
        }
      }
    }
    return keep
  }

  async pauseTorrent(id: string): Promise<TorrentSummary> {
    const job = this.#job(id)
    job.torrent.pause()
    if (this.#init.catalog.getTorrent(job.torrent.id)) this.#init.catalog.setState(job.torrent.id, 'paused')
    return this.#summary(job)
  }

  async resumeTorrent(id: string): Promise<TorrentSummary> {
    const job = this.#job(id)
    job.torrent.resume()
    if (this.#init.catalog.getTorrent(job.torrent.id)) {
      this.#init.catalog.setState(job.torrent.id, job.phase === 'archived' ? 'seeding' : 'downloading')
    }
    return this.#summary(job)
  }

  async getTorrentFile(id: string): Promise<TorrentFile> {
    const job = this.#job(id)
    const m = job.torrent.metainfo
    if (!m) throw new GatewayError('GW_ERR_CONFLICT', 'the metadata of this torrent is not known yet')
    const bytes = job.originalTorrent ?? this.#init.records.torrentBytes(m)
    return { name: m.info.name, bytes }
  }

  // ------------------------------------------------------------------ health

  async health(): Promise<HealthReport> {
    return {
      status: 'ok',
      uptimeSeconds: Math.round((Date.now() - this.#started) / 1000),
      version: this.#init.version,
    }
  }

  async ready(): Promise<ReadinessReport> {
    const now = Date.now()
    if (now - this.#codexOk.at > 5000) {
      try {
        await this.#init.codexProbe(AbortSignal.timeout(3000))
        this.#codexOk = { ok: true, at: now }
      } catch (e) {
        this.#codexOk = { ok: false, at: now, detail: e instanceof Error ? e.message : String(e) }
      }
    }
    const checks = [
      {
        name: 'codex',
        ok: this.#codexOk.ok,
        ...(this.#codexOk.detail ? { detail: this.#codexOk.detail } : {}),
      },
      { name: 'peer-listener', ok: this.#init.session.listening },
      { name: 'accepting', ok: !this.#stopping },
      { name: 'resumed', ok: this.#resumed },
    ]
    const reasons = checks
      .filter((c) => !c.ok)
      .map((c) => `${c.name}${'detail' in c && c.detail ? `: ${c.detail}` : ' not ready'}`)
    return { ready: reasons.length === 0, reasons, checks }
  }

  /** The API state of a torrent (for the `state` metric label). */
  stateOf(id: string): TorrentState | undefined {
    const job = this.#jobs.get(id)
    return job ? this.#state(job) : undefined
  }

  codexReachable(): boolean {
    return this.#codexOk.ok
  }

  #checkRunning(): void {
    if (this.#stopping) throw new GatewayError('GW_ERR_SHUTTING_DOWN', 'the gateway is shutting down')
  }

  // ------------------------------------------------------------------ pending magnets

  get #pendingPath(): string {
    return join(this.#init.dataDir, 'pending-magnets.json')
  }

  async #loadPendingMagnets(): Promise<PendingMagnet[]> {
    try {
      const raw = JSON.parse(await readFile(this.#pendingPath, 'utf8')) as unknown
      return Array.isArray(raw) ? (raw as PendingMagnet[]).slice(0, 10_000) : []
    } catch {
      return []
    }
  }

  /** Magnet jobs whose metadata is not known yet live only here (the catalog needs the info dict). */
  async #savePendingMagnets(): Promise<void> {
    const pending: PendingMagnet[] = []
    for (const j of this.#jobs.values()) {
      if (j.torrent.info) continue
      pending.push({
        ...(j.torrent.infoHashV1 ? { v1: toHex(j.torrent.infoHashV1) } : {}),
        ...(j.torrent.infoHashV2 ? { v2: toHex(j.torrent.infoHashV2) } : {}),
        name: j.torrent.name,
        trackers: j.trackers,
        peers: j.torrent.knownPeers(),
      })
    }
    await mkdir(this.#init.dataDir, { recursive: true })
    const tmp = `${this.#pendingPath}.tmp`
    await writeFile(tmp, JSON.stringify(pending))
    await rename(tmp, this.#pendingPath)
  }
}

/** Every info hash (lower-case hex) a parsed add input names. */
function idsOf(parsed: ParsedInput): string[] {
  if (parsed.kind === 'torrent') return idsOfInfo(parsed.metainfo)
  return [parsed.infoHashV1, parsed.infoHashV2].filter((h) => h !== undefined).map((h) => toHex(h))
}

function idsOfInfo(metainfo: Metainfo): string[] {
  const { infoHashV1, infoHashV2 } = metainfo.info
  return [infoHashV1, infoHashV2].filter((h) => h !== undefined).map((h) => toHex(h))
}
