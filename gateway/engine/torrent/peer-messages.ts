/**
 * Peer messages in: the dispatch of every message a connected peer sends (BEP3 core, BEP6 Fast,
 * BEP10 extended, BEP52 hash messages, BEP5 `port`) to the torrent's download and upload sides
 * and its extensions, with the ordering rules checked here (a bitfield / have all / have none only
 * first, BEP3/BEP6). Before the metadata is known (magnet start) the peer's bitfield and `have`s
 * are kept and applied once it is (`afterMetadata`, range-checked then).
 */
import type { WireMessage } from '../../protocol/wire/messages.ts'
import { Bitfield } from '../bitfield.ts'
import type { Downloads } from './downloads.ts'
import type { Peer } from './peer.ts'
import type { Torrent } from './torrent.ts'
import type { Uploads } from './uploads.ts'

/** `have` indices remembered per peer before the metadata is known (magnet start). */
const MAX_PENDING_HAVES = 100_000
/** Largest bitfield accepted before the metadata is known (32 M pieces). */
const MAX_PENDING_BITFIELD = 4 * 1024 * 1024

export class PeerMessages {
  readonly #t: Torrent
  readonly #d: Downloads
  readonly #u: Uploads

  constructor(t: Torrent, downloads: Downloads, uploads: Uploads) {
    this.#t = t
    this.#d = downloads
    this.#u = uploads
  }

  /** Our piece state, right after the handshakes (BEP3 bitfield, BEP6 have all / have none). */
  sendHaveState(peer: Peer): void {
    const have = this.#t.haveBitfield!
    if (peer.info.fast && have.complete) peer.send({ type: 'have-all' })
    else if (peer.info.fast && have.empty) peer.send({ type: 'have-none' })
    else if (!have.empty) peer.send({ type: 'bitfield', bitfield: have.toBytes() })
  }

  /** The metadata is known: apply what the peer announced before (bitfield, then `have`s). */
  afterMetadata(peer: Peer): undefined {
    const t = this.#t
    const info = t.info!
    if (peer.pendingBitfield) {
      try {
        peer.have = Bitfield.fromBytes(peer.pendingBitfield, info.pieceCount)
      } catch {
        return t.violation(peer, 'bad bitfield')
      }
      peer.pendingBitfield = undefined
    }
    const picker = t.picker!
    if (peer.have === 'all') picker.onPeerHaveAll()
    else if (peer.have) picker.onPeerBitfield(peer.have)
    const haves = peer.pendingHaves ?? []
    peer.pendingHaves = undefined
    for (const i of haves) {
      if (i >= info.pieceCount) return t.violation(peer, `have index ${i} out of range`)
      this.#d.onHave(peer, i)
    }
    // Our own state: a magnet start told the peer have-none; updates come as `have` messages.
    this.#d.updateInterest(peer)
  }

  /** Dispatches one message from `peer` (BEP3, BEP6, BEP10, BEP52, BEP5 `port`). */
  onMessage(peer: Peer, msg: WireMessage): undefined {
    const t = this.#t
    if (peer.closed) return
    const first = !peer.sawFirstMessage
    if (msg.type !== 'keep-alive' && msg.type !== 'extended' && msg.type !== 'port')
      peer.sawFirstMessage = true
    const info = t.info
    const d = this.#d
    switch (msg.type) {
      case 'keep-alive':
      case 'suggest': // BEP6: advisory only
      case 'unknown':
        return
      case 'choke':
        return d.onChoke(peer)
      case 'unchoke':
        peer.peerChoking = false
        return d.fill(peer)
      case 'interested':
        peer.peerInterested = true
        return this.#u.onInterested(peer)
      case 'not-interested':
        peer.peerInterested = false
        return
      case 'have':
        if (info) {
          if (msg.index >= info.pieceCount) return t.violation(peer, `have index ${msg.index} out of range`)
          return d.onHave(peer, msg.index)
        }
        // Magnet start: remember until we know the piece count (applied in #afterMetadataForPeer).
        if (msg.index > 10_000_000) return t.violation(peer, 'have index out of range')
        peer.pendingHaves ??= []
        if (peer.pendingHaves.length < MAX_PENDING_HAVES) peer.pendingHaves.push(msg.index)
        return
      case 'bitfield': {
        if (!first) return t.violation(peer, 'bitfield after other messages (BEP3)')
        if (!info) {
          if (msg.bitfield.byteLength > MAX_PENDING_BITFIELD) return t.violation(peer, 'bitfield too large')
          peer.pendingBitfield = new Uint8Array(msg.bitfield)
          return
        }
        try {
          peer.have = Bitfield.fromBytes(msg.bitfield, info.pieceCount)
        } catch (e) {
          return t.violation(peer, e instanceof Error ? e.message : 'bad bitfield')
        }
        t.picker?.onPeerBitfield(peer.have)
        return d.updateInterest(peer)
      }
      case 'have-all':
      case 'have-none':
        if (!peer.info.fast) return t.violation(peer, `${msg.type} without the Fast extension (BEP6)`)
        if (!first) return t.violation(peer, `${msg.type} after other messages (BEP6)`)
        if (msg.type === 'have-all') {
          peer.have = 'all'
          t.picker?.onPeerHaveAll()
        } else if (info) peer.have = new Bitfield(info.pieceCount)
        if (info) d.updateInterest(peer)
        return
      case 'request':
        return this.#u.onRequest(peer, msg.index, msg.begin, msg.length)
      case 'cancel':
        return this.#u.onCancel(peer, msg.index, msg.begin, msg.length)
      case 'piece':
        return d.onPiece(peer, msg.index, msg.begin, msg.block)
      case 'reject':
        if (!peer.info.fast) return t.violation(peer, 'reject without the Fast extension (BEP6)')
        return d.onReject(peer, { piece: msg.index, offset: msg.begin, length: msg.length })
      case 'allowed-fast':
        if (!peer.info.fast) return t.violation(peer, 'allowed fast without the Fast extension (BEP6)')
        if (peer.allowedFast.size < 64) peer.allowedFast.add(msg.index)
        if (info) d.fill(peer)
        return
      case 'port':
        if (msg.port > 0) t.host.addDhtNode?.(peer.info.host, msg.port)
        return
      case 'extended':
        t.ext.onExtended(peer, msg.id, msg.payload)
        return
      case 'hash-request':
      case 'hashes':
      case 'hash-reject':
        t.ext.onHashMessage(peer, msg)
        return
    }
  }
}
