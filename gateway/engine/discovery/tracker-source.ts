/**
 * Trackers as a {@link PeerSource}: a thin adapter over {@link Announcer} so the engine treats
 * trackers like any other discovery mechanism, plus the tracker-specific controls the torrent
 * needs (completion, early announce, stats).
 */

import { Announcer, type AnnouncerInit, type AnnouncerStats } from './announcer.ts'
import type { PeerSource } from './peer-source.ts'

/** Options of {@link TrackerPeerSource}: exactly those of the announcer. */
export type TrackerPeerSourceInit = AnnouncerInit

/** Announces one torrent to its trackers; peers arrive through `init.onPeers` with source `tracker`. */
export class TrackerPeerSource implements PeerSource {
  readonly name = 'tracker'
  readonly #announcer: Announcer

  constructor(init: TrackerPeerSourceInit) {
    this.#announcer = new Announcer(init)
  }

  /** Sends `started` and keeps announcing at the trackers' intervals. Idempotent. */
  start(): void {
    this.#announcer.start()
  }

  /** Sends `stopped` (short deadline), clears timers, closes tracker sockets. */
  stop(options?: { signal?: AbortSignal }): Promise<void> {
    return this.#announcer.stop(options)
  }

  /** The download finished: `completed` is sent once (BEP3). */
  markCompleted(): void {
    this.#announcer.markCompleted()
  }

  /** Announce again as soon as `min interval` allows (e.g. too few peers). */
  requestPeers(): void {
    this.#announcer.announceNow()
  }

  stats(): AnnouncerStats {
    return this.#announcer.stats()
  }
}
