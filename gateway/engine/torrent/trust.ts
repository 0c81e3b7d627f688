/**
 * Who to blame for pieces that fail their hash check. Pure bookkeeping; the coordinator computes
 * block hashes and does the banning.
 *
 * - **Trust** (libtorrent `torrent_peer::trust_points`): +1 for every good piece a peer contributed
 *   to (capped at +8), −2 for every failed one; a peer that alone supplied a failed piece loses
 *   2 more ("distrusted faster": the failure can only be its own). A peer is banned at ≤ −7, but
 *   only once it alone supplied at least one failed piece: failures shared with other peers never
 *   ban anyone by themselves (an honest seeder next to a poisoner would otherwise be banned with it).
 * - **Smart ban** (libtorrent `smart_ban` plugin): for a failed piece, the hash of every block as it
 *   was received and the peer that sent it are remembered. When the re-downloaded piece passes, the
 *   blocks whose hash differs from the good data name exactly the peers that sent bad data. Block
 *   hashes are SHA-1 of the block read back from storage (v1) or the BEP52 leaf hashes (SHA-256)
 *   the storage computed anyway for v2 and hybrid pieces — both are keyed by `kind`.
 *
 * Memory: at most `maxPieces` failed pieces are remembered (the oldest is forgotten first), each
 * with at most `maxAttempts` failed attempts; trust scores for at most `maxPeers` peers.
 */

/** The hash function a remembered block hash was made with. */
export type BlockHashKind = 'sha1' | 'leaf'

export interface BlockRecord<P> {
  readonly block: number
  readonly peer: P
  readonly kind: BlockHashKind
  /** Hex digest. */
  readonly hash: string
}

export interface TrustInit {
  /** @default 64 */
  readonly maxPieces?: number
  /** @default 4 */
  readonly maxAttempts?: number
  /** @default 4096 */
  readonly maxPeers?: number
}

export const TRUST_MAX = 8
export const TRUST_GOOD_PIECE = 1
export const TRUST_FAILED_PIECE = -2
/** Extra penalty when the peer was the only contributor of the failed piece. */
export const TRUST_SOLE_FAILURE = -2
export const TRUST_BAN_AT = -7

interface Score {
  trust: number
  soleFailures: number
}

export class PieceTrust<P> {
  readonly #maxPieces: number
  readonly #maxAttempts: number
  readonly #maxPeers: number
  /** piece → records of its failed attempts (insertion order = age). */
  readonly #failed = new Map<number, BlockRecord<P>[][]>()
  readonly #scores = new Map<P, Score>()

  constructor(init: TrustInit = {}) {
    this.#maxPieces = init.maxPieces ?? 64
    this.#maxAttempts = init.maxAttempts ?? 4
    this.#maxPeers = init.maxPeers ?? 4096
  }

  trust(peer: P): number {
    return this.#scores.get(peer)?.trust ?? 0
  }

  /** A piece passed: every distinct contributor gains trust. */
  onGoodPiece(contributors: Iterable<P>): void {
    for (const p of new Set(contributors)) {
      const s = this.#score(p)
      s.trust = Math.min(TRUST_MAX, s.trust + TRUST_GOOD_PIECE)
    }
  }

  /**
   * A piece failed: every distinct contributor loses trust. Returns the peers to ban now (see the
   * module comment: only peers that alone supplied some failed piece).
   */
  onFailedPiece(contributors: Iterable<P>): P[] {
    const unique = [...new Set(contributors)]
    const sole = unique.length === 1
    const ban: P[] = []
    for (const p of unique) {
      const s = this.#score(p)
      s.trust += TRUST_FAILED_PIECE + (sole ? TRUST_SOLE_FAILURE : 0)
      if (sole) s.soleFailures++
      if (s.trust <= TRUST_BAN_AT && s.soleFailures > 0) ban.push(p)
    }
    return ban
  }

  /** Forgets a peer's score (it was banned). */
  forget(peer: P): void {
    this.#scores.delete(peer)
  }

  /** Remembers the block hashes of one failed attempt of `piece`. */
  recordFailure(piece: number, blocks: readonly BlockRecord<P>[]): void {
    if (blocks.length === 0) return
    let attempts = this.#failed.get(piece)
    if (!attempts) {
      while (this.#failed.size >= this.#maxPieces) {
        const oldest = this.#failed.keys().next()
        if (oldest.done) break
        this.#failed.delete(oldest.value)
      }
      attempts = []
      this.#failed.set(piece, attempts)
    }
    attempts.push([...blocks])
    if (attempts.length > this.#maxAttempts) attempts.shift()
  }

  /** Whether failed attempts of `piece` are remembered (the caller then hashes the good blocks). */
  hasFailures(piece: number): boolean {
    return this.#failed.has(piece)
  }

  /** The (block, kind) pairs whose good hash `onPiecePassed` needs. */
  needed(piece: number): { block: number; kind: BlockHashKind }[] {
    const seen = new Set<string>()
    const out: { block: number; kind: BlockHashKind }[] = []
    for (const attempt of this.#failed.get(piece) ?? []) {
      for (const r of attempt) {
        const k = `${r.kind}:${r.block}`
        if (seen.has(k)) continue
        seen.add(k)
        out.push({ block: r.block, kind: r.kind })
      }
    }
    return out
  }

  /**
   * The re-downloaded piece passed: `good(block, kind)` gives the hash of the verified block.
   * Returns the peers that sent a block differing from it in an earlier, failed attempt, and
   * forgets the piece.
   */
  onPiecePassed(piece: number, good: (block: number, kind: BlockHashKind) => string | undefined): P[] {
    const attempts = this.#failed.get(piece)
    this.#failed.delete(piece)
    if (!attempts) return []
    const culprits = new Set<P>()
    for (const attempt of attempts) {
      for (const r of attempt) {
        const h = good(r.block, r.kind)
        if (h !== undefined && h !== r.hash) culprits.add(r.peer)
      }
    }
    return [...culprits]
  }

  #score(peer: P): Score {
    let s = this.#scores.get(peer)
    if (!s) {
      if (this.#scores.size >= this.#maxPeers) {
        const oldest = this.#scores.keys().next()
        if (!oldest.done) this.#scores.delete(oldest.value)
      }
      s = { trust: 0, soleFailures: 0 }
      this.#scores.set(peer, s)
    }
    return s
  }
}
