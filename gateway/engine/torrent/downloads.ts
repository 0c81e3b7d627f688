/**
 * The download side of one torrent: interest, block requests, received blocks, piece
 * verification, and who to blame for bad data.
 *
 * - Requests (BEP3): each peer's queue (`RequestQueue`) is sized from its measured rate
 *   (rate × 3 s ÷ 16 KiB, at least 2, at most the peer's BEP10 `reqq`; 1 while snubbed). A peer
 *   serves its queue in order, so timeouts are per peer, not per request (libtorrent
 *   `snub_peer`): when no block came from a peer with requests outstanding for `requestTimeoutMs`,
 *   only its newest request is released for other peers, and it gets no new requests until a
 *   block arrives. A late answer to a timed-out or cancelled request (BEP3 endgame `cancel`) is
 *   accepted when the block is still wanted; only blocks never requested count as unrequested.
 * - Download rate limit: BEP3 has no flow control, so the limit is applied to requests: a block is
 *   requested only with download budget (taken from the limiter before the request is sent).
 *   Bytes in flight are then bounded by the queues, and the network rate follows the limit.
 * - Verification: v1 SHA-1 / v2 Merkle through `PieceVerifier`; pieces of a v2-only magnet wait
 *   for their piece layer (`awaitingLayer`).
 * - Blame (see `trust.ts`): trust points per peer and smart ban. For a failed piece, each block's
 *   hash (its v2 leaf, else the SHA-1 of the block read back from storage) and its sender are
 *   remembered; when the piece later passes, exactly the peers whose block differed are banned.
 *
 * Every `await` re-checks that the torrent still runs (STYLE.md §7.9 (10)).
 */
import { sha1 } from '../../protocol/hashers.ts'
import { toHex } from '../../protocol/hex.ts'
import { BLOCK_SIZE } from '../../protocol/types.ts'
import { Bitfield } from '../bitfield.ts'
import type { BlockRequest } from '../piece-picker.ts'
import type { PieceHashes } from '../storage.ts'
import { ensureBitfield, type Peer } from './peer.ts'
import type { Torrent } from './torrent.ts'
import { type BlockRecord, PieceTrust } from './trust.ts'

export interface DownloadsInit {
  /** No block from a peer with requests outstanding for this long: time out its newest request. @default 30 000 */
  readonly requestTimeoutMs?: number
}

/** Unrequested blocks a peer may send before it is closed (BEP3 gives no reason to send any). */
export const MAX_UNREQUESTED_BLOCKS = 50
/**
 * A peer that rejects a request while not choking us (BEP6: it does not have the piece, or its
 * queue is full) gets no new request for this long, so a reject is not answered by the same
 * request at once, again and again.
 */
export const REJECT_HOLD_MS = 1000
/** Download budget taken from the rate limiter at once (bytes). */
const BUDGET_CHUNK = 256 * 1024

export class Downloads {
  readonly #t: Torrent
  readonly #timeoutMs: number
  /** Trust points and smart-ban records. */
  readonly trust = new PieceTrust<Peer>()
  /** Pieces in progress → the peer each received block came from. */
  readonly #from = new Map<number, (Peer | undefined)[]>()
  readonly #verifying = new Set<number>()
  /** Pieces fully received whose v2 layer is not known yet (v2-only magnet start). */
  readonly #awaitingLayer = new Set<number>()
  /** Download budget (bytes) taken from the rate limiter and not yet spent on requests. */
  #credit = 0
  #acquiring = false
  #drainWaiting = false

  constructor(t: Torrent, init: DownloadsInit = {}) {
    this.#t = t
    this.#timeoutMs = init.requestTimeoutMs ?? 30_000
  }

  // ------------------------------------------------------------------ interest (BEP3)

  /** Re-evaluates interest in `peer` from its whole bitfield (O(pieces)); fills its queue. */
  updateInterest(peer: Peer): undefined {
    const { info, picker } = this.#t
    if (!info || !picker || peer.have === undefined) return
    let interested = false
    if (!this.#t.isComplete) {
      if (peer.have === 'all') interested = true
      else {
        for (const i of peer.have.setIndices()) {
          if (!picker.hasPiece(i) && picker.priority(i) > 0) {
            interested = true
            break
          }
        }
      }
    }
    this.#setInterest(peer, interested)
    if (interested) this.fill(peer)
  }

  /** BEP3 `have`: acts only when the bit is new, and looks at that piece only. */
  onHave(peer: Peer, index: number): undefined {
    const { info, picker } = this.#t
    if (!info || !picker) return
    const have = ensureBitfield(peer, info.pieceCount)
    if (have === 'all' || !have.set(index)) return
    picker.onPeerHave(index)
    if (this.#t.isComplete || picker.hasPiece(index) || picker.priority(index) === 0) return
    this.#setInterest(peer, true)
    this.fill(peer)
  }

  #setInterest(peer: Peer, interested: boolean): void {
    if (interested === peer.amInterested) return
    peer.amInterested = interested
    peer.send({ type: interested ? 'interested' : 'not-interested' })
  }

  /** Download complete: we want nothing from anyone. */
  notInterestedInAll(): void {
    for (const p of this.#t.peers.values()) this.#setInterest(p, false)
  }

  // ------------------------------------------------------------------ requests

  fillAll(): void {
    for (const p of this.#t.peers.values()) this.fill(p)
  }

  /** Tops up the peer's request queue (in batches of a quarter of its depth). */
  fill(peer: Peer): undefined {
    const t = this.#t
    const { picker, storage, info } = t
    if (!picker || !storage || !info || peer.closed || !t.acceptsPeers() || t.isComplete) return
    if (!peer.amInterested || peer.have === undefined || peer.timedOut) return
    if (storage.needsDrain) {
      this.#waitDrain()
      return
    }
    const now = t.host.now()
    if (now < peer.holdRequestsUntil) return
    const depth = peer.outstanding.targetDepth(peer.down.rate, now)
    const want = depth - peer.outstanding.size
    if (want <= 0 || (want < depth / 4 && peer.outstanding.size > 0)) return
    let have = peer.pickerHave()!
    if (peer.peerChoking) {
      // BEP6: allowed-fast pieces may be requested while choked.
      if (peer.allowedFast.size === 0) return
      const bf = new Bitfield(info.pieceCount)
      for (const i of peer.allowedFast) if (i < bf.size && peer.hasPiece(i)) bf.set(i)
      have = bf
    }
    const affordable = Math.min(want, Math.floor(this.#credit / BLOCK_SIZE))
    if (affordable < want) this.#acquireBudget((want - affordable) * BLOCK_SIZE)
    if (affordable <= 0) return
    const reqs = picker.pick(peer, have, affordable)
    for (const r of reqs) {
      if (peer.outstanding.size === 0) peer.lastProgressAt = now
      peer.outstanding.add(r, now)
      this.#credit -= r.length
      peer.send({ type: 'request', index: r.piece, begin: r.offset, length: r.length })
    }
  }

  /** Takes download budget from the session's limiter (one acquisition at a time). */
  #acquireBudget(bytes: number): void {
    if (this.#acquiring) return
    this.#acquiring = true
    const n = Math.min(Math.max(bytes, BLOCK_SIZE), BUDGET_CHUNK)
    const t = this.#t
    t.track(
      t.host
        .takeDownload(n, t.signal)
        .then(
          () => {
            this.#credit += n
          },
          () => {},
        )
        .finally(() => {
          this.#acquiring = false
          if (t.running) this.fillAll()
        }),
    )
  }

  #waitDrain(): void {
    const t = this.#t
    if (this.#drainWaiting || !t.storage) return
    this.#drainWaiting = true
    t.stats.backpressure()
    t.track(
      t.storage
        .onDrain({ signal: t.signal })
        .then(() => {
          this.#drainWaiting = false
          if (t.running) this.fillAll()
        })
        .catch(() => {
          this.#drainWaiting = false
        }),
    )
  }

  /** BEP3 `choke`: without BEP6 our pending requests are discarded by the peer. */
  onChoke(peer: Peer): undefined {
    peer.peerChoking = true
    if (peer.info.fast) return
    const now = this.#t.host.now()
    for (const r of peer.outstanding.clear()) {
      this.#t.picker?.onRequestRejected(peer, r)
      peer.rememberRequest(r, now) // blocks already on the wire may still come
    }
  }

  /** BEP6 `reject request`. */
  onReject(peer: Peer, request: BlockRequest): undefined {
    if (!peer.outstanding.remove(request)) return // stale (we cancelled it): tolerated
    this.#t.picker?.onRequestRejected(peer, request)
    if (!peer.peerChoking) peer.holdRequestsUntil = this.#t.host.now() + REJECT_HOLD_MS
    this.fill(peer)
  }

  /** Releases a closed peer's requests and availability. */
  onPeerClosed(peer: Peer): void {
    this.#t.picker?.onPeerDisconnected(peer, peer.have, peer.outstanding.clear())
    this.trust.forget(peer)
  }

  /** Once a second: per-peer timeouts (see the module comment), interest of idle peers, refill. */
  tick(now: number): void {
    const t = this.#t
    const picker = t.picker
    if (!picker) return
    for (const p of t.peers.values()) {
      if (p.outstanding.size > 0 && now - p.lastProgressAt >= this.#timeoutMs) {
        const newest = p.outstanding.requests().at(-1)!
        p.outstanding.remove(newest)
        picker.onRequestTimedOut(p, newest)
        p.rememberRequest(newest, now)
        p.timedOut = true
        p.lastProgressAt = now
        t.stats.requestTimeout()
        t.log.debug({ peer: p.key, piece: newest.piece, offset: newest.offset }, 'peer timed out')
      } else if (p.amInterested && p.outstanding.size === 0 && !p.peerChoking) {
        this.updateInterest(p)
      }
    }
    if (t.state === 'downloading') this.fillAll()
  }

  // ------------------------------------------------------------------ blocks

  onPiece(peer: Peer, index: number, begin: number, block: Uint8Array): undefined {
    const t = this.#t
    const { picker, storage, info } = t
    if (!picker || !storage || !info) return t.violation(peer, 'piece before metadata')
    const now = t.host.now()
    const req: BlockRequest = { piece: index, offset: begin, length: block.byteLength }
    if (peer.outstanding.has(req)) {
      if (blockLengthAt(t, index, begin) !== block.byteLength)
        return t.violation(peer, 'piece does not match its request')
      peer.outstanding.onBlock(req, now)
    } else if (!peer.recentlyRequested(req, now)) {
      peer.unrequested++
      t.stats.wastedBytes(block.byteLength)
      if (peer.unrequested > MAX_UNREQUESTED_BLOCKS) t.violation(peer, 'too many unrequested blocks')
      return
    }
    // Any block we asked for is progress: the peer is alive (even if the block came late).
    peer.lastProgressAt = now
    peer.timedOut = false
    peer.down.add(block.byteLength)
    t.stats.downloaded(block.byteLength)
    const r = picker.onBlockReceived(peer, req)
    for (const other of r.cancel) {
      if (other === peer || !other.outstanding.remove(req)) continue
      other.rememberRequest(req, now) // BEP6: the cancelled request may still be answered
      other.send({ type: 'cancel', index, begin, length: block.byteLength })
    }
    if (r.status !== 'accepted') {
      t.stats.wastedBytes(block.byteLength)
      this.fill(peer)
      return
    }
    this.#sender(index)[begin / BLOCK_SIZE] = peer
    const data = block // PeerConnection hands ownership of the frame to us
    t.track(
      (async () => {
        await storage.writeBlock(index, begin, data, { signal: t.signal })
        if (r.pieceComplete) await this.#verifyPiece(index)
      })().catch((e: unknown) => {
        if (!t.running) return
        t.log.warn({ err: e, piece: index }, 'storing a block failed')
        t.stats.storageError()
        this.#from.delete(index)
        picker.onPieceFailed(index)
        void storage.discardPiece(index).catch(() => {})
      }),
    )
    this.fill(peer)
  }

  #sender(piece: number): (Peer | undefined)[] {
    let from = this.#from.get(piece)
    if (!from) {
      from = []
      this.#from.set(piece, from)
    }
    return from
  }

  // ------------------------------------------------------------------ verification

  async #verifyPiece(piece: number): Promise<void> {
    const t = this.#t
    const storage = t.storage!
    const verifier = t.verifier!
    if (this.#verifying.has(piece)) return
    this.#verifying.add(piece)
    try {
      const want = verifier.want(piece)
      let hashes = await storage.hashPiece(piece, want, { signal: t.signal })
      if (!t.running) return
      if (verifier.want(piece).v2 && !want.v2) {
        // The piece layer arrived while we hashed (magnet start of a v2 torrent): hash again with leaves.
        hashes = await storage.hashPiece(piece, verifier.want(piece), { signal: t.signal })
        if (!t.running) return
      }
      const outcome = verifier.verify(piece, hashes)
      if (outcome === 'unknown') {
        this.#awaitingLayer.add(piece)
        t.ext.requestMissingLayers()
        return
      }
      if (outcome === 'ok') {
        await storage.commitPiece(piece, { signal: t.signal })
        if (!t.running) return
        this.#onPieceVerified(piece, hashes)
      } else {
        await this.#onPieceFailed(piece, hashes)
      }
    } finally {
      this.#verifying.delete(piece)
    }
  }

  /** Re-verifies pieces that were waiting for a v2 piece layer (called when a layer arrives). */
  recheckAwaitingLayer(): void {
    const t = this.#t
    for (const piece of [...this.#awaitingLayer]) {
      this.#awaitingLayer.delete(piece)
      t.track(this.#verifyPiece(piece).catch((e: unknown) => t.log.warn({ err: e, piece }, 'verify failed')))
    }
  }

  #onPieceVerified(piece: number, hashes: PieceHashes): void {
    const t = this.#t
    const from = this.#from.get(piece) ?? []
    this.#from.delete(piece)
    t.picker!.onPieceVerified(piece)
    t.haveBitfield!.set(piece)
    t.stats.pieceVerified()
    for (const p of t.peers.values()) if (!p.hasPiece(piece)) p.send({ type: 'have', index: piece })
    this.trust.onGoodPiece(from.filter((p): p is Peer => p !== undefined))
    if (this.trust.hasFailures(piece)) {
      t.track(
        this.#smartBan(piece, hashes).catch((e: unknown) => t.log.debug({ err: e, piece }, 'smart ban')),
      )
    }
    if (t.haveBitfield!.complete) t.onPiecesComplete()
  }

  /** Smart ban: the piece passed after failing; ban the senders of blocks that differ from it. */
  async #smartBan(piece: number, good: PieceHashes): Promise<void> {
    const t = this.#t
    const sha1s = new Map<number, string>()
    for (const { block, kind } of this.trust.needed(piece)) {
      if (kind !== 'sha1') continue
      const length = blockLengthAt(t, piece, block * BLOCK_SIZE)
      if (length === undefined) continue
      const data = await t.storage!.readBlock(piece, block * BLOCK_SIZE, length, { signal: t.signal })
      sha1s.set(block, toHex(sha1(data)))
    }
    if (!t.running) return
    const culprits = this.trust.onPiecePassed(piece, (block, kind) => {
      if (kind === 'sha1') return sha1s.get(block)
      const leaf = good.v2Leaves?.[block]
      return leaf ? toHex(leaf) : undefined
    })
    for (const p of culprits) t.ban(p, `sent a bad block of piece ${piece} (smart ban)`)
  }

  async #onPieceFailed(piece: number, hashes: PieceHashes): Promise<void> {
    const t = this.#t
    const storage = t.storage!
    const from = this.#from.get(piece) ?? []
    // Smart ban: remember what each peer sent before the data is discarded. v2/hybrid pieces have
    // their leaf hashes already; v1 blocks are read back (only on failure, libtorrent smart_ban).
    const records: BlockRecord<Peer>[] = []
    for (let b = 0; b < from.length; b++) {
      const peer = from[b]
      if (!peer) continue
      const leaf = hashes.v2Leaves?.[b]
      if (leaf) {
        records.push({ block: b, peer, kind: 'leaf', hash: toHex(leaf) })
        continue
      }
      const length = blockLengthAt(t, piece, b * BLOCK_SIZE)
      if (length === undefined) continue
      const data = await storage
        .readBlock(piece, b * BLOCK_SIZE, length, { signal: t.signal })
        .catch(() => undefined)
      if (data) records.push({ block: b, peer, kind: 'sha1', hash: toHex(sha1(data)) })
    }
    if (!t.running) return
    this.trust.recordFailure(piece, records)
    await storage.discardPiece(piece, { signal: t.signal })
    if (!t.running) return
    this.#from.delete(piece)
    const contributors = t.picker!.onPieceFailed(piece)
    t.stats.pieceFailed()
    t.log.info({ piece, contributors: contributors.map((p) => p.key) }, 'piece failed its hash check')
    if (!contributors.some((p) => t.isBannedPeer(p))) {
      // A peer banned meanwhile poisoned this piece (blocks it sent before the ban): blame nobody else.
      for (const p of this.trust.onFailedPiece(contributors)) {
        t.ban(p, `sent data failing the hash check (trust ${this.trust.trust(p)})`)
      }
    }
    this.fillAll()
  }
}

function blockLengthAt(t: Torrent, piece: number, offset: number): number | undefined {
  const g = t.geometry
  if (!g?.isValidPiece(piece) || offset % BLOCK_SIZE !== 0) return undefined
  const b = offset / BLOCK_SIZE
  if (b < 0 || b >= g.blockCount(piece)) return undefined
  return g.blockLength(piece, b)
}
