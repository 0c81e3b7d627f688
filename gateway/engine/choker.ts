/**
 * The choker: which peers we upload to. Pure functions, called once per choke round (every 10 s,
 * BEP3) with a snapshot of the peers; time and randomness are arguments.
 *
 * BEP3 "Choking and optimism": unchoke the (default four) interested peers with the best rates
 * ("tit-for-tat"), recomputed every ten seconds; in addition one *optimistic unchoke* rotates every
 * 30 seconds (every third round) regardless of rate, so new peers get a chance to prove
 * themselves. Following the BEP3 reference implementation and libtorrent, newly connected peers
 * are three times as likely as others to be picked as the optimistic unchoke.
 *
 * - Leeching: rank by download rate *from* the peer (what it gives us). Snubbed peers (BEP3
 *   "anti-snubbing": no data for a minute) lose their regular slot.
 * - Seeding: rank by upload rate *to* the peer (libtorrent "fastest upload" seeding choker: serve
 *   peers that can take data fastest).
 * - Not-interested peers are never unchoked (they would not request anything).
 */

/** One peer's state, as the coordinator sees it at the start of a round. */
export interface ChokerPeer<P> {
  /** The caller's handle for this peer; returned in the decision. */
  readonly peer: P
  /** The peer is interested in our pieces. */
  readonly interested: boolean
  /** We currently choke the peer. */
  readonly choked: boolean
  /** Bytes/s we receive from the peer. */
  readonly downloadRate: number
  /** Bytes/s we send to the peer. */
  readonly uploadRate: number
  /** No block from this peer for the snub timeout (see `request-queue.ts`). */
  readonly snubbed: boolean
  /** When the connection was established (ms, same clock as `now`). */
  readonly connectedAt: number
  /** The peer is the current optimistic unchoke. */
  readonly optimistic: boolean
}

/** Inputs of one choke round besides the peers. */
export interface ChokeRoundOptions {
  /** Current time (ms). */
  readonly now: number
  /** Round counter, incremented by the caller every 10 s; the optimistic unchoke rotates when `round % optimisticEveryRounds === 0`. */
  readonly round: number
  /** True when we have every wanted piece (seeding). */
  readonly seeding: boolean
  /** Regular (rate-ranked) upload slots. @default 4 (BEP3) */
  readonly slots?: number
  /** Optimistic unchoke slots, in addition to `slots`. @default 1 (BEP3) */
  readonly optimisticSlots?: number
  /** Rounds between optimistic rotations. @default 3 (30 s with 10 s rounds, BEP3) */
  readonly optimisticEveryRounds?: number
  /** Peers connected for less than this are "new" and weighted 3× for the optimistic pick. @default 60 000 */
  readonly newPeerMs?: number
  /** Random source in [0, 1). @default Math.random */
  readonly random?: () => number
}

/** Result of a choke round. */
export interface ChokeDecision<P> {
  /** Every peer that should be unchoked after this round (regular + optimistic). */
  readonly unchoked: readonly P[]
  /** Peers to send `unchoke` to now (currently choked, in `unchoked`). */
  readonly unchoke: readonly P[]
  /** Peers to send `choke` to now (currently unchoked, not in `unchoked`). */
  readonly choke: readonly P[]
  /** The optimistic unchoke(s) after this round. */
  readonly optimistic: readonly P[]
}

/** Weight of a newly connected peer in the optimistic draw (BEP3 reference implementation). */
export const NEW_PEER_OPTIMISTIC_WEIGHT = 3

/** Runs one choke round. Pure: the same inputs (and random values) give the same decision. */
export function chokeRound<P>(peers: readonly ChokerPeer<P>[], options: ChokeRoundOptions): ChokeDecision<P> {
  const slots = options.slots ?? 4
  const optimisticSlots = options.optimisticSlots ?? 1
  const every = options.optimisticEveryRounds ?? 3
  const newPeerMs = options.newPeerMs ?? 60_000
  const random = options.random ?? Math.random
  if (!Number.isInteger(slots) || slots < 0 || !Number.isInteger(optimisticSlots) || optimisticSlots < 0) {
    throw new RangeError('slots and optimisticSlots must be non-negative integers')
  }
  if (!Number.isInteger(every) || every < 1) throw new RangeError('optimisticEveryRounds must be >= 1')

  const regular = rankForUnchoke(peers, options.seeding, random).slice(0, slots)
  const regularSet = new Set(regular.map((p) => p.peer))

  // Optimistic unchoke: keep the current one(s) between rotations while still eligible.
  const eligible = peers.filter((p) => p.interested && !regularSet.has(p.peer))
  const rotate = options.round % every === 0
  const optimistic: ChokerPeer<P>[] = rotate
    ? []
    : eligible.filter((p) => p.optimistic).slice(0, optimisticSlots)
  const weight = (p: ChokerPeer<P>): number =>
    options.now - p.connectedAt < newPeerMs ? NEW_PEER_OPTIMISTIC_WEIGHT : 1
  // On rotation, prefer peers that were not the optimistic unchoke; fall back to them if needed.
  const fresh = eligible.filter((p) => !optimistic.includes(p) && !(rotate && p.optimistic))
  const previous = rotate ? eligible.filter((p) => p.optimistic) : []
  for (const pool of [fresh, previous]) {
    while (optimistic.length < optimisticSlots && pool.length > 0) {
      optimistic.push(...pool.splice(weightedPick(pool, weight, random), 1))
    }
  }

  const unchoked = [...regular, ...optimistic].map((p) => p.peer)
  const unchokedSet = new Set(unchoked)
  return {
    unchoked,
    unchoke: peers.filter((p) => p.choked && unchokedSet.has(p.peer)).map((p) => p.peer),
    choke: peers.filter((p) => !p.choked && !unchokedSet.has(p.peer)).map((p) => p.peer),
    optimistic: optimistic.map((p) => p.peer),
  }
}

/**
 * Interested peers in rate order, best first: by download rate from them when leeching (snubbed
 * peers excluded), by upload rate to them when seeding. Ties are broken randomly.
 */
export function rankForUnchoke<P>(
  peers: readonly ChokerPeer<P>[],
  seeding: boolean,
  random: () => number = Math.random,
): ChokerPeer<P>[] {
  const candidates = peers.filter((p) => p.interested && (seeding || !p.snubbed))
  const tie = new Map(candidates.map((p) => [p, random()]))
  const rate = (p: ChokerPeer<P>): number => (seeding ? p.uploadRate : p.downloadRate)
  return candidates.sort((a, b) => rate(b) - rate(a) || (tie.get(a) ?? 0) - (tie.get(b) ?? 0))
}

/** Index of an element drawn with probability proportional to `weight`. `items` must be non-empty. */
function weightedPick<T>(items: readonly T[], weight: (item: T) => number, random: () => number): number {
  let total = 0
  for (const item of items) total += weight(item)
  let r = random() * total
  for (let i = 0; i < items.length; i++) {
    r -= weight(items[i] as T)
    if (r < 0) return i
  }
  return items.length - 1
}
