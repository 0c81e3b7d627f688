/**
 * Tracker announcer for one torrent: BEP12 tiers, BEP3 events and intervals, backoff, stats.
 *
 * For every 20-byte swarm id of the torrent (v1 hash, truncated v2 hash, or both for a hybrid,
 * BEP52) the announcer keeps its own copy of the tiers and runs announce rounds:
 * - BEP12: each tier is shuffled once; tiers are tried in order and, within a tier, trackers in
 *   order; the first tracker that answers ends the round and is moved to the front of its tier.
 * - BEP3 events: `started` on the first successful contact with a tracker, `completed` once when
 *   the download completes ({@link Announcer.markCompleted}), `stopped` on {@link Announcer.stop}
 *   (short deadline, only to trackers that saw `started`).
 * - BEP3 `interval` schedules the next round; `min interval` is the earliest an early announce
 *   (more peers wanted, completion) may happen. A round where every tracker failed is retried
 *   with exponential backoff.
 * Timers come from an injectable {@link DiscoveryClock}; every timer is cancelled on stop.
 */

import { randomInt } from 'node:crypto'
import { toHex } from '../../protocol/hex.ts'
import type { AnnounceOutcome, AnnouncerInit, AnnouncerStats } from './announcer-types.ts'
import {
  type DiscoveryClock,
  type DiscoveryLogger,
  deliverPeers,
  silentLogger,
  systemClock,
  type TimerHandle,
  toSwarmInfoHash,
} from './peer-source.ts'
import {
  type AnnounceEvent,
  type AnnounceResponse,
  isTrackerFailure,
  TrackerArgumentError,
  type TrackerClient,
  TrackerUrlError,
} from './tracker-common.ts'
import { HttpTrackerClient, type HttpTrackerInit } from './tracker-http.ts'
import { UdpTrackerClient, type UdpTrackerInit } from './tracker-udp.ts'

export type {
  AnnounceOutcome,
  AnnouncerInit,
  AnnouncerStats,
  SwarmAnnounceStats,
  TrackerStats,
  TransferTotals,
} from './announcer-types.ts'

interface TrackerState {
  readonly url: string
  readonly tier: number
  started: boolean
  completed: boolean
  trackerId?: Uint8Array
  lastResult: AnnounceOutcome | 'none'
  lastError?: string
  lastAnnounceAt?: number
  lastSuccessAt?: number
  peers: number
  seeders?: number
  leechers?: number
  intervalS?: number
  minIntervalS?: number
  warning?: string
  consecutiveFailures: number
}

interface Swarm {
  readonly infoHash: Uint8Array
  readonly hex: string
  /** Per-swarm copy of the tiers, shuffled once (BEP12). */
  readonly tiers: TrackerState[][]
  timer?: TimerHandle
  nextAt?: number
  earliestAt: number
  failedRounds: number
  inFlight?: Promise<void>
  /** An early announce was requested while a round was running. */
  rerun: boolean
  completedPending: boolean
  current?: TrackerState
}

/** Picks the HTTP or UDP client for a tracker URL; throws {@link TrackerUrlError} for other schemes. */
export function createTrackerClient(
  url: string,
  init: { http?: HttpTrackerInit; udp?: UdpTrackerInit } = {},
): TrackerClient {
  const scheme = url.slice(0, url.indexOf(':') + 1).toLowerCase()
  if (scheme === 'http:' || scheme === 'https:') return new HttpTrackerClient(url, init.http)
  if (scheme === 'udp:') return new UdpTrackerClient(url, init.udp)
  throw new TrackerUrlError(url, `unsupported scheme ${scheme || '(none)'}`)
}

/** Tracker announcer for one torrent (all of its swarm ids). */
export class Announcer {
  readonly #init: AnnouncerInit
  readonly #clock: DiscoveryClock
  readonly #random: () => number
  readonly #log: DiscoveryLogger
  readonly #key: number
  readonly #clients = new Map<string, TrackerClient>()
  readonly #swarms: Swarm[]
  readonly #counters: Record<AnnounceOutcome, number> = { success: 0, failure: 0, error: 0 }
  readonly #abort = new AbortController()
  #state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle'
  #completed = false

  constructor(init: AnnouncerInit) {
    if (init.peerId.byteLength !== 20) throw new TrackerArgumentError('peerId must be 20 bytes')
    this.#init = init
    this.#clock = init.clock ?? systemClock
    this.#random = init.random ?? Math.random
    this.#log = init.logger ?? silentLogger
    this.#key = init.key ?? randomInt(0, 0x1_0000_0000)
    const create = init.createClient ?? ((url: string) => createTrackerClient(url, init))
    const tiers: string[][] = []
    for (const tier of init.tiers) {
      const urls: string[] = []
      for (const url of tier) {
        if (this.#clients.has(url)) continue // BEP12 lists should not repeat URLs; keep the first.
        try {
          this.#clients.set(url, create(url))
          urls.push(url)
        } catch (err) {
          this.#log.debug({ url, err: (err as Error).message }, 'tracker ignored')
        }
      }
      if (urls.length > 0) tiers.push(urls)
    }
    const seen = new Set<string>()
    this.#swarms = []
    for (const h of init.infoHashes) {
      const infoHash = toSwarmInfoHash(h)
      const hex = toHex(infoHash)
      if (seen.has(hex)) continue
      seen.add(hex)
      this.#swarms.push({
        infoHash,
        hex,
        // BEP12: "the list will be shuffled when first read, and then parsed in order".
        tiers: tiers.map((urls, t) => this.#shuffle(urls.map((url) => newTrackerState(url, t)))),
        earliestAt: 0,
        failedRounds: 0,
        rerun: false,
        completedPending: false,
      })
    }
  }

  /** Starts announcing (`started`) on every swarm. Idempotent; no-op after stop. */
  start(): void {
    if (this.#state !== 'idle') return
    this.#state = 'running'
    for (const swarm of this.#swarms) {
      if (swarm.tiers.length > 0) this.#schedule(swarm, this.#clock.now())
    }
  }

  /**
   * The download completed: send `completed` once (BEP3), as soon as `min interval` allows.
   * Later calls do nothing.
   */
  markCompleted(): void {
    if (this.#completed) return
    this.#completed = true
    for (const swarm of this.#swarms) {
      swarm.completedPending = true
      this.announceNow(swarm.hex)
    }
  }

  /**
   * Asks for an announce as early as `min interval` allows (e.g. the engine needs peers).
   * `infoHashHex` limits it to one swarm.
   */
  announceNow(infoHashHex?: string): void {
    if (this.#state !== 'running') return
    for (const swarm of this.#swarms) {
      if ((infoHashHex !== undefined && swarm.hex !== infoHashHex) || swarm.tiers.length === 0) continue
      if (swarm.inFlight) {
        swarm.rerun = true
        continue
      }
      const at = Math.max(this.#clock.now(), swarm.earliestAt)
      if (swarm.nextAt === undefined || at < swarm.nextAt) this.#schedule(swarm, at)
    }
  }

  /**
   * Stops: cancels timers and in-flight rounds, sends `stopped` (deadline `stopTimeoutMs`) to the
   * trackers that saw `started`, closes all clients. Idempotent.
   */
  async stop(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped') return
    const wasRunning = this.#state === 'running'
    this.#state = 'stopping'
    for (const swarm of this.#swarms) {
      swarm.timer?.cancel()
      swarm.timer = undefined
      swarm.nextAt = undefined
    }
    this.#abort.abort()
    await Promise.allSettled(this.#swarms.map((s) => s.inFlight))
    if (wasRunning) {
      const stopDeadline = new AbortController()
      const timer = setTimeout(() => stopDeadline.abort(), this.#init.stopTimeoutMs ?? 3_000)
      const deadline = options.signal
        ? AbortSignal.any([stopDeadline.signal, options.signal])
        : stopDeadline.signal
      const jobs: Promise<unknown>[] = []
      for (const swarm of this.#swarms) {
        for (const tracker of swarm.tiers.flat()) {
          // BEP3 `stopped`: only trackers that know us.
          if (tracker.started) jobs.push(this.#announceOne(swarm, tracker, 'stopped', deadline))
        }
      }
      await Promise.allSettled(jobs)
      clearTimeout(timer)
    }
    await Promise.allSettled([...this.#clients.values()].map((c) => c.close()))
    this.#state = 'stopped'
  }

  /** A snapshot for the API and metrics. */
  stats(): AnnouncerStats {
    return {
      announces: { ...this.#counters },
      swarms: this.#swarms.map((swarm) => ({
        infoHash: swarm.hex,
        ...(swarm.nextAt !== undefined ? { nextAnnounceAt: swarm.nextAt } : {}),
        earliestAnnounceAt: swarm.earliestAt,
        failedRounds: swarm.failedRounds,
        trackers: swarm.tiers.flatMap((tier) =>
          tier.map((t, position) => {
            const { started: _s, completed: _c, trackerId: _id, ...rest } = t
            return {
              ...rest,
              position,
              ...(swarm.current === t && swarm.nextAt !== undefined ? { nextAnnounceAt: swarm.nextAt } : {}),
            }
          }),
        ),
      })),
    }
  }

  #shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor(this.#random() * (i + 1)))
      const tmp = items[i]!
      items[i] = items[j]!
      items[j] = tmp
    }
    return items
  }

  #schedule(swarm: Swarm, at: number): void {
    if (this.#state !== 'running') return
    swarm.timer?.cancel()
    swarm.nextAt = at
    swarm.timer = this.#clock.schedule(
      () => {
        swarm.timer = undefined
        this.#startRound(swarm)
      },
      Math.max(0, at - this.#clock.now()),
    )
  }

  #startRound(swarm: Swarm): void {
    if (this.#state !== 'running' || swarm.inFlight) return
    const round = this.#round(swarm).catch((err: unknown) => {
      this.#log.warn({ infoHash: swarm.hex, err: (err as Error)?.message }, 'announce round crashed')
    })
    swarm.inFlight = round.finally(() => {
      swarm.inFlight = undefined
      if (swarm.rerun && this.#state === 'running') {
        swarm.rerun = false
        this.announceNow(swarm.hex)
      }
    })
  }

  /** One BEP12 round: tiers in order, trackers in order, stop at the first answer. */
  async #round(swarm: Swarm): Promise<void> {
    for (const tier of swarm.tiers) {
      for (let i = 0; i < tier.length; i++) {
        if (this.#state !== 'running') return
        const tracker = tier[i]!
        const event = this.#eventFor(swarm, tracker)
        const res = await this.#announceOne(swarm, tracker, event, this.#abort.signal)
        if (res === undefined) continue
        if (this.#state !== 'running') return
        // BEP12: "if a connection with a tracker is successful, it will be moved to the front of the tier".
        tier.splice(i, 1)
        tier.unshift(tracker)
        if (event === 'started' || event === undefined) tracker.started = true
        if (event === 'started' && this.#completed) swarm.completedPending = false // left=0 said it
        if (event === 'completed') {
          tracker.completed = true
          swarm.completedPending = false
        }
        swarm.current = tracker
        swarm.failedRounds = 0
        const now = this.#clock.now()
        const floor = this.#init.minIntervalFloorS ?? 60
        const intervalS = clamp(
          res.intervalS ?? this.#init.defaultIntervalS ?? 1800,
          floor,
          this.#init.maxIntervalS ?? 21_600,
        )
        const minS = Math.min(res.minIntervalS ?? Math.min(intervalS, floor), intervalS)
        swarm.earliestAt = now + minS * 1000
        deliverPeers(this.#init.onPeers, res.peers, 'tracker')
        this.#schedule(swarm, swarm.completedPending ? swarm.earliestAt : now + intervalS * 1000)
        return
      }
    }
    if (this.#state !== 'running') return
    // Every tracker of every tier failed: exponential backoff with ±10 % jitter.
    swarm.failedRounds++
    const base = this.#init.backoffInitialMs ?? 15_000
    const max = this.#init.backoffMaxMs ?? 1_800_000
    const delay = Math.min(max, base * 2 ** Math.min(swarm.failedRounds - 1, 20))
    const jitter = 1 + (this.#random() - 0.5) * 0.2
    this.#schedule(swarm, this.#clock.now() + Math.round(delay * jitter))
  }

  /** BEP3: `started` first; `completed` once to a started tracker; otherwise a regular announce. */
  #eventFor(swarm: Swarm, tracker: TrackerState): AnnounceEvent | undefined {
    if (!tracker.started) return 'started'
    if (swarm.completedPending && !tracker.completed) return 'completed'
    return undefined
  }

  /** Sends one announce with the request deadline; records stats; resolves undefined on failure. */
  async #announceOne(
    swarm: Swarm,
    tracker: TrackerState,
    event: AnnounceEvent | undefined,
    parent: AbortSignal,
  ): Promise<AnnounceResponse | undefined> {
    const client = this.#clients.get(tracker.url)
    if (client === undefined) return undefined
    const totals = this.#init.getTransferTotals()
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(), this.#init.requestTimeoutMs ?? 30_000)
    const signal = AbortSignal.any([parent, deadline.signal])
    tracker.lastAnnounceAt = this.#clock.now()
    try {
      const res = await client.announce(
        {
          infoHash: swarm.infoHash,
          peerId: this.#init.peerId,
          port: this.#init.port,
          uploaded: safeCount(totals.uploaded),
          downloaded: safeCount(totals.downloaded),
          left: safeCount(totals.left),
          ...(event !== undefined ? { event } : {}),
          numwant: event === 'stopped' ? 0 : (this.#init.numwant ?? 50),
          key: this.#key,
          ...(tracker.trackerId !== undefined ? { trackerId: tracker.trackerId } : {}),
        },
        { signal },
      )
      this.#counters.success++
      tracker.lastResult = 'success'
      tracker.lastError = undefined
      tracker.lastSuccessAt = this.#clock.now()
      tracker.consecutiveFailures = 0
      tracker.peers = res.peers.length
      tracker.seeders = res.complete
      tracker.leechers = res.incomplete
      tracker.intervalS = res.intervalS
      tracker.minIntervalS = res.minIntervalS
      tracker.warning = res.warning
      if (res.trackerId !== undefined) tracker.trackerId = res.trackerId
      if (event === 'stopped') tracker.started = false
      this.#log.debug(
        { url: tracker.url, infoHash: swarm.hex, event, peers: res.peers.length },
        'announce ok',
      )
      return res
    } catch (err) {
      // A round cancelled by stop() is not a tracker failure.
      if (parent === this.#abort.signal && parent.aborted) return undefined
      const outcome: AnnounceOutcome = isTrackerFailure(err) ? 'failure' : 'error'
      this.#counters[outcome]++
      tracker.lastResult = outcome
      tracker.lastError = (err as Error)?.message ?? String(err)
      tracker.consecutiveFailures++
      this.#log.debug(
        { url: tracker.url, infoHash: swarm.hex, event, err: tracker.lastError },
        'announce failed',
      )
      return undefined
    } finally {
      clearTimeout(timer)
    }
  }
}

function newTrackerState(url: string, tier: number): TrackerState {
  return { url, tier, started: false, completed: false, lastResult: 'none', peers: 0, consecutiveFailures: 0 }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(Math.max(v, lo), Math.max(lo, hi))
}

function safeCount(v: number): number {
  return Number.isSafeInteger(v) && v >= 0
    ? v
    : Math.max(0, Math.min(Number.MAX_SAFE_INTEGER, Math.floor(v) || 0))
}
