/**
 * BEP11 `ut_pex` for one torrent: learn peers from peers, and tell each peer about the others.
 *
 * - At most one message per peer per minute ("no more than 1 PEX message per minute"), and at most
 *   50 added and 50 dropped contacts in one message, IPv4 and IPv6 combined ("the combined amount
 *   of added v4/v6 contacts should not exceed 50 entries. The same applies to dropped entries").
 *   What does not fit waits for the next message (nothing is forgotten).
 * - Never for private torrents (BEP27: "the client MUST NOT use ... PEX"), nor before the
 *   metadata tells whether the torrent is private; incoming PEX for a private torrent is ignored.
 * - A peer sending more often than BEP11 allows (half an interval of slack) is ignored.
 */
import { isIPv6 } from 'node:net'
import {
  decodePex,
  encodePex,
  PEX_FLAGS,
  PEX_INTERVAL_MS,
  PEX_MAX_ENTRIES,
  type PexPeer,
} from '../../protocol/wire/ut-pex.ts'
import type { Peer } from './peer.ts'
import type { Torrent } from './torrent.ts'

export type PexTorrent = Pick<Torrent, 'info' | 'peers' | 'host' | 'log' | 'stats' | 'addPeers' | 'closePeer'>

const UT_PEX = 'ut_pex'

interface Contact {
  readonly host: string
  readonly port: number
  readonly flags: number
}

export class PexExchange {
  readonly #t: PexTorrent
  readonly #send: (peer: Peer, payload: Uint8Array) => void

  constructor(t: PexTorrent, send: (peer: Peer, payload: Uint8Array) => void) {
    this.#t = t
    this.#send = send
  }

  onMessage(peer: Peer, payload: Uint8Array): void {
    const t = this.#t
    if (t.info?.private) return // BEP27
    const now = t.host.now()
    if (peer.lastPexReceivedAt !== undefined && now - peer.lastPexReceivedAt < PEX_INTERVAL_MS / 2) {
      return // BEP11: at most one message a minute; ignore floods
    }
    peer.lastPexReceivedAt = now
    const decoded = decodePex(payload)
    if (!decoded.ok) {
      t.closePeer(peer, `ut_pex: ${decoded.error.message}`)
      return
    }
    const added = [...decoded.value.added, ...decoded.value.added6]
      .filter((a) => a.port > 0)
      .map((a) => ({ host: a.host, port: a.port }))
    if (added.length > 0) {
      t.log.debug({ peer: peer.key, added: added.length }, 'peers from PEX')
      t.stats.pexPeers += added.length
      t.addPeers(added)
    }
  }

  /** Sends each `ut_pex` peer whose minute is up the changes since the last message to it. */
  tick(now: number): void {
    const t = this.#t
    const info = t.info
    if (!info || info.private) return // BEP27; unknown privacy (magnet start) counts as private
    const current = new Map<string, Contact>()
    for (const p of t.peers.values()) {
      const a = p.dialAddress()
      if (!a || p.closed) continue
      let flags = 0
      if (!p.info.incoming) flags |= PEX_FLAGS.reachable // BEP11: we connected to it
      if (p.isSeed(info.pieceCount)) flags |= PEX_FLAGS.seed
      current.set(`${a.host}:${a.port}`, { ...a, flags })
    }
    for (const peer of t.peers.values()) {
      if (peer.closed || !peer.extensions.has(UT_PEX) || now - peer.lastPexAt < PEX_INTERVAL_MS) continue
      const self = peer.dialAddress()
      const selfKey = self ? `${self.host}:${self.port}` : peer.key
      const added: PexPeer[] = []
      const added6: PexPeer[] = []
      for (const [k, a] of current) {
        if (added.length + added6.length >= PEX_MAX_ENTRIES) break
        if (k === peer.key || k === selfKey || peer.pexSent.has(k)) continue
        ;(isIPv6(a.host) ? added6 : added).push(a)
        peer.pexSent.add(k)
      }
      const dropped: PexPeer[] = []
      const dropped6: PexPeer[] = []
      for (const k of [...peer.pexSent]) {
        if (dropped.length + dropped6.length >= PEX_MAX_ENTRIES) break
        if (current.has(k)) continue
        const i = k.lastIndexOf(':')
        const a = { host: k.slice(0, i), port: Number(k.slice(i + 1)), flags: 0 }
        peer.pexSent.delete(k)
        if (!Number.isInteger(a.port) || a.port < 1 || a.port > 0xffff) continue
        ;(isIPv6(a.host) ? dropped6 : dropped).push(a)
      }
      if (added.length + added6.length + dropped.length + dropped6.length === 0) continue
      peer.lastPexAt = now
      this.#send(peer, encodePex({ added, added6, dropped, dropped6 }))
    }
  }
}
