/**
 * The DHT as a {@link PeerSource} for one torrent: periodically (default every 15 min) looks up
 * and announces each of the torrent's 20-byte swarm ids (v1 hash and/or truncated v2 hash,
 * BEP52) on a shared {@link DhtNode}. Rounds never overlap; every lookup and announce has a
 * deadline; all timers are cancelled on stop. Private torrents (BEP27) must not use this source;
 * that decision belongs to the caller.
 */

import { toHex } from '../../protocol/hex.ts'
import type { DhtNode } from './dht.ts'
import {
  type DiscoveryClock,
  type DiscoveryLogger,
  deliverPeers,
  type OnPeers,
  type PeerSource,
  silentLogger,
  systemClock,
  type TimerHandle,
  toSwarmInfoHash,
  withDeadline,
} from './peer-source.ts'

export interface DhtPeerSourceInit {
  /** A started node shared by all torrents. The source never starts or stops it. */
  readonly dht: DhtNode
  /** 20-byte swarm ids; 32-byte v2 hashes are truncated (BEP52). */
  readonly infoHashes: readonly Uint8Array[]
  /** Our TCP port for `announce_peer` (0 = implied: the DHT's UDP port). */
  readonly port: number
  readonly onPeers: OnPeers
  /** Announce ourselves, not only look up. @default true */
  readonly announce?: boolean
  /** Time between rounds. Clamped to ≥ 1 s. @default 900_000 (15 min) */
  readonly intervalMs?: number
  /** Retry delay while the routing table is empty. @default 60_000 */
  readonly emptyTableRetryMs?: number
  /** Deadline for one lookup or announce. @default 60_000 */
  readonly operationTimeoutMs?: number
  readonly clock?: DiscoveryClock
  readonly logger?: DiscoveryLogger
}

export interface DhtSourceStats {
  readonly rounds: number
  readonly lastRoundAt?: number
  readonly nextRoundAt?: number
  /** Peers delivered in the last round (all hashes). */
  readonly lastRoundPeers: number
  readonly announcesOk: number
  readonly announcesFailed: number
  readonly lastError?: string
}

/** DHT lookups and announces for one torrent; peers are delivered with source `dht`. */
export class DhtPeerSource implements PeerSource {
  readonly name = 'dht'
  readonly #init: DhtPeerSourceInit
  readonly #hashes: readonly Uint8Array[]
  readonly #clock: DiscoveryClock
  readonly #log: DiscoveryLogger
  readonly #abort = new AbortController()
  #state: 'idle' | 'running' | 'stopped' = 'idle'
  #timer: TimerHandle | undefined
  #inFlight: Promise<void> | undefined
  #stats: {
    rounds: number
    lastRoundAt?: number
    nextRoundAt?: number
    lastRoundPeers: number
    announcesOk: number
    announcesFailed: number
    lastError?: string
  } = { rounds: 0, lastRoundPeers: 0, announcesOk: 0, announcesFailed: 0 }

  constructor(init: DhtPeerSourceInit) {
    this.#init = init
    const seen = new Set<string>()
    this.#hashes = init.infoHashes.map(toSwarmInfoHash).filter((h) => {
      const hex = toHex(h)
      if (seen.has(hex)) return false
      seen.add(hex)
      return true
    })
    this.#clock = init.clock ?? systemClock
    this.#log = init.logger ?? silentLogger
  }

  /** Runs a first round now, then one every `intervalMs`. Idempotent; no-op after stop. */
  start(): void {
    if (this.#state !== 'idle') return
    this.#state = 'running'
    this.#scheduleIn(0)
  }

  /** Runs a round as soon as the current one (if any) ends, e.g. when peers are scarce. */
  refresh(): void {
    if (this.#state !== 'running' || this.#inFlight) return
    this.#scheduleIn(0)
  }

  /** Cancels the timer and the running round (the DHT node itself stays up). */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return
    this.#state = 'stopped'
    this.#timer?.cancel()
    this.#timer = undefined
    this.#stats.nextRoundAt = undefined
    this.#abort.abort()
    await this.#inFlight
  }

  stats(): DhtSourceStats {
    return { ...this.#stats }
  }

  #scheduleIn(delayMs: number): void {
    if (this.#state !== 'running') return
    this.#timer?.cancel()
    this.#stats.nextRoundAt = this.#clock.now() + delayMs
    this.#timer = this.#clock.schedule(() => {
      this.#timer = undefined
      this.#inFlight = this.#round().finally(() => {
        this.#inFlight = undefined
      })
    }, delayMs)
  }

  async #round(): Promise<void> {
    let peers = 0
    const timeoutMs = this.#init.operationTimeoutMs ?? 60_000
    for (const hash of this.#hashes) {
      if (this.#state !== 'running') return
      try {
        const found = await withDeadline(this.#abort.signal, timeoutMs, (signal) =>
          this.#init.dht.lookup(hash, {
            signal,
            onPeers: (batch) => {
              peers += batch.length
              deliverPeers(this.#init.onPeers, batch, 'dht')
            },
          }),
        )
        this.#log.debug({ infoHash: toHex(hash), peers: found.length }, 'dht lookup done')
      } catch (err) {
        if (this.#state !== 'running') return
        this.#stats.lastError = (err as Error)?.message ?? String(err)
      }
      if (this.#init.announce === false || this.#state !== 'running') continue
      try {
        await withDeadline(this.#abort.signal, timeoutMs, (signal) =>
          this.#init.dht.announce(hash, this.#init.port, { signal }),
        )
        this.#stats.announcesOk++
      } catch (err) {
        if (this.#state !== 'running') return
        this.#stats.announcesFailed++
        this.#stats.lastError = (err as Error)?.message ?? String(err)
      }
    }
    this.#stats.rounds++
    this.#stats.lastRoundAt = this.#clock.now()
    this.#stats.lastRoundPeers = peers
    const interval = Math.max(1000, this.#init.intervalMs ?? 900_000)
    const empty = this.#init.dht.routingTableSize() === 0
    this.#scheduleIn(empty ? Math.min(interval, this.#init.emptyTableRetryMs ?? 60_000) : interval)
  }
}
