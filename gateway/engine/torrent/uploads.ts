/**
 * The upload side of one torrent: the peers' requests to us, the upload pump, and choking.
 *
 * - Requests (BEP3): checked (range, we have the piece, the peer is unchoked or the piece is
 *   allowed-fast, BEP6), queued per peer up to `maxIncomingRequests`, and served in order through
 *   the session's upload limiter. Refusals are BEP6 `reject`s with Fast, else dropped (BEP3);
 *   a peer that keeps asking for what we refuse is closed (request flood).
 * - BEP6 `cancel`: "Even when a request is cancelled, the peer receiving the cancel should respond
 *   with either the corresponding reject or the corresponding piece": a cancelled request still
 *   queued is answered with `reject`; one already being read is answered with its `piece`.
 * - Choking: `chokeRound` (choker.ts, BEP3 tit-for-tat + optimistic unchoke) every 10 s; a newly
 *   interested peer is unchoked at once while a slot is free. With BEP6, choking rejects the
 *   peer's queued requests; without it they are discarded (BEP3).
 */
import { BLOCK_SIZE } from '../../protocol/types.ts'
import { type ChokerPeer, chokeRound } from '../choker.ts'
import type { Peer } from './peer.ts'
import type { Torrent } from './torrent.ts'

export interface UploadsInit {
  /** Regular upload slots (BEP3). @default 4 */
  readonly uploadSlots?: number
  /** Max queued incoming requests per peer before we reject (BEP6) or drop. @default 500 */
  readonly maxIncomingRequests?: number
  /** Random source of the optimistic unchoke. @default Math.random */
  readonly random?: () => number
}

export class Uploads {
  readonly #t: Torrent
  readonly #slots: number
  readonly #maxIncoming: number
  readonly #random: () => number
  #round = 0

  constructor(t: Torrent, init: UploadsInit = {}) {
    this.#t = t
    this.#slots = init.uploadSlots ?? 4
    this.#maxIncoming = init.maxIncomingRequests ?? 500
    this.#random = init.random ?? Math.random
  }

  onRequest(peer: Peer, piece: number, begin: number, length: number): undefined {
    const t = this.#t
    const info = t.info
    const have = t.haveBitfield
    const geometry = t.geometry
    if (!info || !have || !geometry) return t.violation(peer, 'request before metadata')
    if (piece >= info.pieceCount || length === 0 || length > BLOCK_SIZE || begin < 0) {
      return t.violation(peer, `invalid request ${piece}/${begin}/${length}`)
    }
    if (begin + length > geometry.pieceSize(piece))
      return t.violation(peer, 'request past the end of the piece')
    const max = this.#maxIncoming
    const reject = (): undefined => {
      // A peer that keeps asking for what we refuse (choked, missing piece, full queue) floods us:
      // close it past `max` refusals since our last unchoke (libtorrent: too many requests when choked).
      if (++peer.requestFlood > max) return t.violation(peer, 'request flood')
      if (peer.info.fast) peer.send({ type: 'reject', index: piece, begin, length })
    }
    if (!have.has(piece)) {
      // BEP6: reject requests for pieces we do not have; without Fast, close (BEP3 gives no way).
      if (peer.info.fast) return reject()
      return t.violation(peer, 'request for a piece we do not have')
    }
    if (peer.amChoking && !peer.allowedFastSent.has(piece)) return reject() // BEP6: rejected while choked
    if (peer.incoming.length >= max) return reject()
    peer.incoming.push({ piece, offset: begin, length })
    this.#pump(peer)
  }

  /** BEP3 `cancel`; with BEP6 a cancelled queued request is answered with `reject`. */
  onCancel(peer: Peer, piece: number, begin: number, length: number): undefined {
    const i = peer.incoming.findIndex((r) => r.piece === piece && r.offset === begin && r.length === length)
    if (i < 0) return // served already, or being read: the `piece` answers it
    peer.incoming.splice(i, 1)
    if (peer.info.fast) peer.send({ type: 'reject', index: piece, begin, length })
  }

  #pump(peer: Peer): void {
    if (peer.uploading) return
    peer.uploading = true
    const t = this.#t
    t.track(
      (async () => {
        try {
          while (!peer.closed && t.running && peer.incoming.length > 0) {
            if (peer.amChoking && !peer.info.fast) {
              peer.incoming.length = 0 // BEP3: choking discards their requests
              break
            }
            const r = peer.incoming.shift()!
            await t.host.takeUpload(r.length, t.signal)
            const data = await t.storage!.readBlock(r.piece, r.offset, r.length, { signal: t.signal })
            if (peer.closed) break
            t.stats.uploaded(r.length)
            peer.up.add(r.length)
            if (!peer.send({ type: 'piece', index: r.piece, begin: r.offset, block: data })) {
              await peer.wire.onDrain({ signal: t.signal })
            }
          }
        } catch (e) {
          if (t.running && !peer.closed) {
            t.log.warn({ err: e, peer: peer.key }, 'serving a request failed')
            t.stats.storageError()
            t.closePeer(peer, 'could not serve a request')
          }
        } finally {
          peer.uploading = false
        }
      })(),
    )
  }

  unchoke(peer: Peer): void {
    if (!peer.amChoking) return
    peer.amChoking = false
    peer.requestFlood = 0
    peer.send({ type: 'unchoke' })
  }

  choke(peer: Peer): void {
    if (peer.amChoking) return
    peer.amChoking = true
    peer.send({ type: 'choke' })
    if (peer.info.fast) {
      // BEP6: with Fast, choking does not discard requests silently: reject them.
      for (const r of peer.incoming.splice(0))
        peer.send({ type: 'reject', index: r.piece, begin: r.offset, length: r.length })
    } else peer.incoming.length = 0
  }

  /** A peer became interested: unchoke it at once while a slot (regular or optimistic) is free. */
  onInterested(peer: Peer): undefined {
    if (!this.#t.info || !peer.amChoking) return
    let unchoked = 0
    for (const p of this.#t.peers.values()) if (!p.amChoking) unchoked++
    if (unchoked < this.#slots + 1) this.unchoke(peer)
  }

  /** One BEP3 choke round (every 10 s); the optimistic unchoke rotates every third round. */
  chokeRound(now: number): void {
    const t = this.#t
    if (!t.info) return
    const peers = [...t.peers.values()].filter((p) => !p.closed)
    const view: ChokerPeer<Peer>[] = peers.map((p) => ({
      peer: p,
      interested: p.peerInterested,
      choked: p.amChoking,
      downloadRate: p.down.rate,
      uploadRate: p.up.rate,
      snubbed: p.snubbed(now),
      connectedAt: p.connectedAt,
      optimistic: p.optimistic,
    }))
    const decision = chokeRound(view, {
      now,
      round: this.#round++,
      seeding: t.isComplete,
      slots: this.#slots,
      random: this.#random,
    })
    const optimistic = new Set(decision.optimistic)
    for (const p of peers) p.optimistic = optimistic.has(p)
    for (const p of decision.choke) this.choke(p)
    for (const p of decision.unchoke) this.unchoke(p)
  }
}
