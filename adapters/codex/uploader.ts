/**
 * Per-torrent upload manager of the Codex piece store: streams each torrent file, in order, from
 * staging into Codex as its verified prefix grows, one `POST /data` per file (one Codex dataset
 * and manifest CID per file; Codex cannot append or resume, NOTES.md §1.3), and records the CID.
 *
 * - Scheduling: at most `maxConcurrentUploads` files at a time; complete files first. A file
 *   starts once `uploadStartBytes` (or all) of it are verified. A stream waiting for more
 *   verified bytes longer than `stallMs` is abandoned (not a Codex fault) and restarts later.
 * - Faults (5xx, timeouts, cut bodies, quota, refused connections): the file is retried from its
 *   staged data with exponential backoff; after `failuresBeforePause` consecutive failures the
 *   torrent's uploads enter `paused-codex-unavailable` and a probe (`GET /space`) resumes them
 *   when Codex answers again (and has room when the last error looked like a full quota).
 * - Staged data is released only after the CID is recorded, so nothing is lost on failure or
 *   restart; a partial upload is simply started again from the beginning.
 * Pad files are never uploaded; zero-length files need no upload (Codex refuses empty bodies,
 * NOTES.md §1.2).
 */

import { setTimeout as delay } from 'node:timers/promises'
import type { CodexClient } from '../../codex-client/index.ts'
import { CodexHttpError, CodexValidationError, formatCid } from '../../codex-client/index.ts'
import { raceAbort } from '../../gateway/engine/abort.ts'
import type { FileEntry } from '../../gateway/protocol/types.ts'
import type { Catalog } from '../catalog.ts'
import { codexFilename, DEFAULT_MIMETYPE, guessMimetype } from './naming.ts'
import { StagingMissingError, type TorrentStaging } from './staging.ts'

/** Upload health of one torrent. */
export type UploadState = 'ok' | 'retrying' | 'paused-codex-unavailable'

/** Per-file state as exposed by `fileStates()`. */
export type FileUploadState = 'pending' | 'uploading' | 'uploaded' | 'empty' | 'padding'

/** One entry of `fileStates()`. */
export interface FileStateView {
  readonly index: number
  /** Path inside the torrent, `/`-separated. */
  readonly path: string
  readonly length: number
  readonly state: FileUploadState
  readonly cid?: string
  /** `length` once uploaded; bytes streamed by the current attempt while uploading; else 0. */
  readonly uploadedBytes: number
}

/** Counters for metrics (shared by all torrents of a store). */
export interface UploadCounters {
  /** Bytes streamed to Codex (retries included). */
  bytesUploaded: number
  uploadsStarted: number
  uploadsCompleted: number
  /** Failed attempts that were (or will be) retried. */
  uploadRetries: number
  /** Entries into `paused-codex-unavailable`. */
  pauses: number
  /** Exceptions of event callbacks or of bookkeeping after an upload (counted; never break uploads). */
  internalErrors: number
}

/** Tuning of uploads and fault handling. */
export interface UploadPolicy {
  readonly maxConcurrentUploads: number
  readonly uploadStartBytes: number
  readonly stallMs: number
  /** Client idle timeout of one upload (no progress for that long → timeout). */
  readonly uploadIdleTimeoutMs: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  readonly failuresBeforePause: number
  readonly probeIntervalMs: number
  readonly probeTimeoutMs: number
}

/** Event of an upload state change. */
export interface UploadStateEvent {
  readonly torrentId: string
  readonly state: UploadState
  readonly previous: UploadState
  /** The failure that caused `retrying` / `paused-codex-unavailable`. */
  readonly error?: unknown
}

export interface UploadManagerInit {
  readonly torrentId: string
  readonly files: readonly FileEntry[]
  readonly client: CodexClient
  readonly catalog: Catalog
  readonly staging: TorrentStaging
  readonly policy: UploadPolicy
  readonly counters: UploadCounters
  /** Known CIDs by file index (from the catalog). */
  readonly cids: ReadonlyMap<number, string>
  readonly onStateChange: (event: UploadStateEvent) => void
  readonly onFileUploaded: (fileIndex: number, cid: string) => void
  /** Staged bytes of a file are gone (should not happen): the owner un-completes its pieces. */
  readonly onDataLost: (fileIndex: number) => void
  /** Anything that changes what can drain (start/end of uploads). */
  readonly onActivity: () => void
}

type InterruptKind = 'closing' | 'starved' | 'invalidated' | 'paused'

/** Abort reason of an upload we stopped on purpose (never a Codex failure). */
class UploadInterrupt extends Error {
  readonly kind: InterruptKind
  constructor(kind: InterruptKind) {
    super(`upload interrupted: ${kind}`)
    this.name = 'UploadInterrupt'
    this.kind = kind
  }
}

interface FileSlot {
  readonly index: number
  readonly entry: FileEntry
  readonly length: number
  state: FileUploadState
  cid: string | undefined
  verifiedBytes: number
  streamedBytes: number
  failures: number
  retryAt: number
  /** Verified bytes when the last attempt starved: wait for more before starting again. */
  starvedAt: number | undefined
  filename: string
  mimetype: string
  controller: AbortController | undefined
  readonly prefixWaiters: Set<() => void>
}

/** Chunk read from staging per upload step (bounded memory per upload). */
const UPLOAD_CHUNK = 256 * 1024

export class UploadManager {
  readonly #init: UploadManagerInit
  readonly #slots: FileSlot[]
  readonly #running = new Map<number, Promise<void>>()
  readonly #lifetime = new AbortController()
  readonly #allUploadedWaiters = new Set<{ resolve: () => void; reject: (e: unknown) => void }>()
  #state: UploadState = 'ok'
  #consecutiveFailures = 0
  #lastError: unknown
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #retryTimerAt = 0
  #probe: Promise<void> | undefined
  #started = false
  #closed = false

  constructor(init: UploadManagerInit) {
    this.#init = init
    this.#slots = init.files.map((entry, index) => {
      const cid = init.cids.get(index)
      const state: FileUploadState = entry.padding
        ? 'padding'
        : entry.length === 0
          ? 'empty'
          : cid !== undefined
            ? 'uploaded'
            : 'pending'
      const filename = codexFilename(entry.path, `file-${index}.bin`)
      return {
        index,
        entry,
        length: entry.length,
        state,
        cid: state === 'uploaded' ? cid : undefined,
        verifiedBytes: state === 'uploaded' ? entry.length : 0,
        streamedBytes: 0,
        failures: 0,
        retryAt: 0,
        starvedAt: undefined,
        filename,
        mimetype: guessMimetype(filename),
        controller: undefined,
        prefixWaiters: new Set(),
      }
    })
  }

  get state(): UploadState {
    return this.#state
  }

  /** True for a data file whose CID is known. */
  isUploaded(fileIndex: number): boolean {
    return this.#slots[fileIndex]?.state === 'uploaded'
  }

  cidOf(fileIndex: number): string | undefined {
    return this.#slots[fileIndex]?.cid
  }

  /** True when some file is fully verified but not yet in Codex: its upload will free staging. */
  hasDrainableWork(): boolean {
    return this.#slots.some(
      (s) => (s.state === 'pending' || s.state === 'uploading') && s.verifiedBytes >= s.length,
    )
  }

  /** True when every data file has a CID. */
  allUploaded(): boolean {
    return this.#slots.every((s) => s.state === 'uploaded' || s.state === 'empty' || s.state === 'padding')
  }

  fileStates(): FileStateView[] {
    return this.#slots.map((s) => ({
      index: s.index,
      path: s.entry.path.join('/'),
      length: s.length,
      state: s.state,
      ...(s.cid !== undefined ? { cid: s.cid } : {}),
      uploadedBytes: s.state === 'uploaded' ? s.length : s.state === 'uploading' ? s.streamedBytes : 0,
    }))
  }

  /** CIDs of every data file (by file index). */
  cids(): Map<number, string> {
    const map = new Map<number, string>()
    for (const s of this.#slots) if (s.cid !== undefined) map.set(s.index, s.cid)
    return map
  }

  /**
   * Sets a file's verified prefix. Growth wakes its upload stream (or schedules an upload);
   * shrinking below what the current attempt already streamed aborts that attempt.
   */
  setVerified(fileIndex: number, verifiedBytes: number): void {
    const slot = this.#slots[fileIndex]
    if (slot === undefined || slot.state === 'uploaded' || slot.state === 'empty' || slot.state === 'padding')
      return
    const before = slot.verifiedBytes
    slot.verifiedBytes = verifiedBytes
    if (verifiedBytes < before && slot.state === 'uploading' && slot.streamedBytes > verifiedBytes) {
      slot.controller?.abort(new UploadInterrupt('invalidated'))
    }
    if (verifiedBytes > before) {
      const waiters = [...slot.prefixWaiters]
      slot.prefixWaiters.clear()
      for (const wake of waiters) wake()
      this.#kick()
    }
  }

  /**
   * Forgets the CID of an uploaded file (its data was found bad): the caller un-completes the
   * file's pieces so they are fetched, verified and uploaded again.
   */
  invalidateUploaded(fileIndex: number): void {
    const slot = this.#slots[fileIndex]
    if (slot === undefined || slot.state !== 'uploaded') return
    this.#init.catalog.setFileCid(this.#init.torrentId, fileIndex, undefined)
    slot.state = 'pending'
    slot.cid = undefined
    slot.verifiedBytes = 0
    slot.streamedBytes = 0
  }

  /** Starts whatever can start (after `init`, and after every change). */
  start(): void {
    this.#started = true
    this.#kick()
  }

  /** Resolves with every data file's CID once all are uploaded. */
  async whenAllUploaded(signal?: AbortSignal): Promise<Map<number, string>> {
    signal?.throwIfAborted()
    if (this.#closed) throw new Error('upload manager closed')
    if (!this.allUploaded()) {
      let waiter: { resolve: () => void; reject: (e: unknown) => void } | undefined
      const wait = new Promise<void>((resolve, reject) => {
        waiter = { resolve, reject }
        this.#allUploadedWaiters.add(waiter)
      })
      try {
        await raceAbort(wait, signal)
      } finally {
        if (waiter) this.#allUploadedWaiters.delete(waiter)
      }
    }
    return this.cids()
  }

  /** Checkpoint: aborts running uploads (they restart from staging next time) and stops timers. */
  async close(reason: unknown): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#lifetime.abort(new UploadInterrupt('closing'))
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer)
    for (const slot of this.#slots) slot.controller?.abort(new UploadInterrupt('closing'))
    await Promise.allSettled([...this.#running.values(), this.#probe ?? Promise.resolve()])
    for (const w of [...this.#allUploadedWaiters]) w.reject(reason)
    this.#allUploadedWaiters.clear()
  }

  // ---- scheduling ----------------------------------------------------------------------------

  #kick(): void {
    if (!this.#started || this.#closed || this.#state === 'paused-codex-unavailable') return
    const { maxConcurrentUploads, uploadStartBytes } = this.#init.policy
    const now = Date.now()
    let nextRetry = Number.POSITIVE_INFINITY
    const ready = this.#slots.filter((s) => {
      if (s.state !== 'pending' || s.verifiedBytes <= 0) return false
      if (s.verifiedBytes < Math.min(s.length, uploadStartBytes)) return false
      if (s.starvedAt !== undefined && s.verifiedBytes <= s.starvedAt) return false
      if (s.retryAt > now) {
        nextRetry = Math.min(nextRetry, s.retryAt)
        return false
      }
      return true
    })
    ready.sort((a, b) => Number(b.verifiedBytes >= b.length) - Number(a.verifiedBytes >= a.length))
    for (const slot of ready) {
      if (this.#running.size >= maxConcurrentUploads) break
      this.#startUpload(slot)
    }
    if (Number.isFinite(nextRetry) && (this.#retryTimer === undefined || nextRetry < this.#retryTimerAt)) {
      if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer)
      this.#retryTimerAt = nextRetry
      this.#retryTimer = setTimeout(
        () => {
          this.#retryTimer = undefined
          this.#kick()
        },
        Math.max(1, nextRetry - now),
      )
    }
  }

  #startUpload(slot: FileSlot): void {
    const controller = new AbortController()
    slot.controller = controller
    slot.state = 'uploading'
    slot.streamedBytes = 0
    slot.starvedAt = undefined
    this.#init.counters.uploadsStarted++
    const run = this.#upload(slot, controller)
      .catch(() => {
        this.#init.counters.internalErrors++ // e.g. the catalog closed under us; the file stays pending
        slot.state = slot.state === 'uploading' ? 'pending' : slot.state
      })
      .finally(() => {
        this.#running.delete(slot.index)
        if (slot.controller === controller) slot.controller = undefined
        this.#init.onActivity()
        this.#kick()
      })
    this.#running.set(slot.index, run)
    this.#init.onActivity()
  }

  async #upload(slot: FileSlot, controller: AbortController): Promise<void> {
    const { client, policy } = this.#init
    const signal = AbortSignal.any([controller.signal, this.#lifetime.signal])
    try {
      const cid = await client.upload(this.#source(slot, controller, signal), {
        filename: slot.filename,
        mimetype: slot.mimetype,
        signal,
        timeoutMs: policy.uploadIdleTimeoutMs,
      })
      if (signal.aborted) throw signal.reason // invalidated at the very end: do not trust the CID
      this.#succeeded(slot, formatCid(cid))
    } catch (error) {
      slot.state = 'pending'
      slot.streamedBytes = 0
      const reason = signal.aborted ? signal.reason : undefined
      if (reason instanceof UploadInterrupt) {
        if (reason.kind === 'starved') slot.starvedAt = slot.verifiedBytes
        return // closing, starved, invalidated or paused: not a Codex fault
      }
      if (findCause(error, StagingMissingError) !== undefined) {
        this.#init.onDataLost(slot.index)
        return
      }
      if (error instanceof CodexValidationError && error.status === 422 && slot.filename !== 'data.bin') {
        slot.filename = 'data.bin' // the node refused our name or type: retry with neutral metadata
        slot.mimetype = DEFAULT_MIMETYPE
        return
      }
      this.#failed(slot, error)
    }
  }

  /** The upload body: the file's verified prefix, read from staging, waiting for more as needed. */
  async *#source(
    slot: FileSlot,
    controller: AbortController,
    signal: AbortSignal,
  ): AsyncGenerator<Uint8Array> {
    const { staging, counters, policy } = this.#init
    const segment = staging.segmentBytes
    let pos = 0
    // Bounded: every round advances `pos` by at least one byte, or waits (bounded by stallMs).
    while (pos < slot.length) {
      signal.throwIfAborted()
      if (slot.verifiedBytes <= pos) {
        await this.#waitForPrefix(slot, pos, controller, signal, policy.stallMs)
        continue
      }
      const segEnd = (Math.floor(pos / segment) + 1) * segment
      const end = Math.min(slot.verifiedBytes, pos + UPLOAD_CHUNK, segEnd)
      const bytes = await staging.readExact(slot.index, pos, end - pos)
      signal.throwIfAborted()
      pos = end
      slot.streamedBytes = pos
      counters.bytesUploaded += bytes.byteLength
      yield bytes
    }
  }

  #waitForPrefix(
    slot: FileSlot,
    pos: number,
    controller: AbortController,
    signal: AbortSignal,
    stallMs: number,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        slot.prefixWaiters.delete(wake)
      }
      const wake = (): void => {
        done()
        resolve()
      }
      const onAbort = (): void => {
        done()
        reject(signal.reason)
      }
      const timer = setTimeout(() => {
        if (slot.verifiedBytes > pos) wake()
        else controller.abort(new UploadInterrupt('starved')) // → onAbort
      }, stallMs)
      signal.addEventListener('abort', onAbort, { once: true })
      slot.prefixWaiters.add(wake)
    })
  }

  #succeeded(slot: FileSlot, cid: string): void {
    const { catalog, torrentId, staging, counters } = this.#init
    catalog.setFileCid(torrentId, slot.index, cid)
    slot.cid = cid // from now on reads of this file go to Codex
    // Released only now that the CID is recorded (never lose data, see module comment). The
    // budget drops synchronously while the file still counts as drainable, so a drain waiter
    // sees the freed space, not an "uploaded, nothing left to drain" intermediate state.
    const unlinked = staging.releaseFile(slot.index)
    slot.state = 'uploaded'
    slot.failures = 0
    slot.retryAt = 0
    counters.uploadsCompleted++
    this.#consecutiveFailures = 0
    if (this.#state === 'retrying' && !this.#slots.some((s) => s.failures > 0)) this.#setState('ok')
    void unlinked.then(
      () => this.#init.onActivity(),
      () => this.#init.onActivity(), // a segment file left behind is deleted at the next open
    )
    this.#init.onFileUploaded(slot.index, cid)
    if (this.allUploaded()) {
      for (const w of [...this.#allUploadedWaiters]) w.resolve()
      this.#allUploadedWaiters.clear()
    }
  }

  #failed(slot: FileSlot, error: unknown): void {
    const { policy, counters } = this.#init
    slot.failures++
    counters.uploadRetries++
    this.#consecutiveFailures++
    this.#lastError = error
    if (this.#consecutiveFailures >= policy.failuresBeforePause) {
      this.#pause(error)
      return
    }
    const exp = Math.min(slot.failures - 1, 20)
    const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** exp)
    slot.retryAt = Date.now() + Math.floor(cap / 2 + (Math.random() * cap) / 2)
    if (this.#state === 'ok') this.#setState('retrying', error)
  }

  // ---- pause and probe -----------------------------------------------------------------------

  #pause(error: unknown): void {
    if (this.#state === 'paused-codex-unavailable') return
    this.#init.counters.pauses++
    this.#setState('paused-codex-unavailable', error)
    for (const s of this.#slots) s.controller?.abort(new UploadInterrupt('paused'))
    this.#probe = this.#probeLoop().finally(() => {
      this.#probe = undefined
    })
  }

  /** Polls Codex until it answers (bounded by close); then resumes uploads. */
  async #probeLoop(): Promise<void> {
    const { client, policy } = this.#init
    const signal = this.#lifetime.signal
    while (!this.#closed && this.#state === 'paused-codex-unavailable') {
      try {
        await delay(policy.probeIntervalMs, undefined, { signal })
        const space = await client.space({ signal, timeoutMs: policy.probeTimeoutMs })
        if (looksLikeQuota(this.#lastError)) {
          const free = space.quotaMaxBytes - space.quotaUsedBytes - space.quotaReservedBytes
          const need = Math.min(...this.#slots.filter((s) => s.state === 'pending').map((s) => s.length))
          if (Number.isFinite(need) && free < need) continue
        }
        this.#resume()
      } catch {
        if (signal.aborted) return
        // Codex still unreachable: probe again after the interval.
      }
    }
  }

  #resume(): void {
    this.#consecutiveFailures = 0
    for (const s of this.#slots) {
      s.failures = 0
      s.retryAt = 0
    }
    this.#setState('ok')
    this.#kick()
  }

  #setState(state: UploadState, error?: unknown): void {
    const previous = this.#state
    if (previous === state) return
    this.#state = state
    this.#init.onStateChange({
      torrentId: this.#init.torrentId,
      state,
      previous,
      ...(error !== undefined ? { error } : {}),
    })
  }
}

/** Codex answers a full quota with 500 `Unable to store block …` (NOTES.md §1.2, §1.3). */
function looksLikeQuota(error: unknown): boolean {
  return (
    error instanceof CodexHttpError &&
    error.status === 500 &&
    /unable to store block|quota/i.test(error.body ?? error.message)
  )
}

function findCause<T>(error: unknown, type: abstract new (...args: never[]) => T): T | undefined {
  let current: unknown = error
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    if (current instanceof type) return current
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}
