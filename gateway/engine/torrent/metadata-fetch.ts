/**
 * BEP9 `ut_metadata` fetch after a magnet start: collects the info dictionary from peers and
 * verifies it against the btih / btmh we were given.
 *
 * Rules (each one fixes a way a single peer could stall or poison the fetch):
 * - Peers may advertise different `metadata_size`s (BEP9: "metadata_size ... the size of the
 *   metadata"); only one is right. One assembler per advertised size, at most
 *   {@link MAX_METADATA_SIZES} at once, each fed only by the peers advertising that size. A size no
 *   connected peer advertises any more is dropped (with its partial data), so a peer that announced
 *   a bogus size and left blocks nothing.
 * - Requests rotate over the candidates (the first piece does not always go to the same peer), at
 *   most {@link MAX_IN_FLIGHT_PER_PEER} per peer. A peer that rejects (BEP9 `reject`: "the peer
 *   doesn't have the piece of metadata that was requested") or lets a request time out is backed off
 *   (doubling, capped) and the piece is asked of another peer at once.
 * - When the assembled metadata does not match the info hash: if every piece came from one peer,
 *   that peer is banned (it supplied the whole bad metadata). Otherwise nobody is proven guilty yet:
 *   the next attempt takes every piece from one single peer (rotating); once some attempt verifies,
 *   the pieces of the failed mixed attempt are compared with the verified metadata and exactly the
 *   peers that sent differing pieces are banned. Peers that sent pieces under a `total_size` other
 *   than the verified size are banned too (the size of an info dictionary is a fact).
 * - Everything is re-driven from the coordinator's tick, so no state can wait forever.
 */
import { createHash } from 'node:crypto'
import { parseInfoDict } from '../../protocol/metainfo.ts'
import type { TorrentInfo } from '../../protocol/types.ts'
import {
  METADATA_PIECE_SIZE,
  MetadataAssembler,
  type UtMetadataMessage,
} from '../../protocol/wire/ut-metadata.ts'
import type { Peer } from './peer.ts'
import { PeerBackoff, Rotation } from './peer-backoff.ts'
import type { Torrent } from './torrent.ts'

/** What the fetcher uses of the coordinator. */
export type MetadataTorrent = Pick<
  Torrent,
  | 'info'
  | 'peers'
  | 'infoHashV1'
  | 'infoHashV2'
  | 'log'
  | 'ban'
  | 'closePeer'
  | 'isBanned'
  | 'host'
  | 'running'
>

/** Different advertised sizes fetched at once (BEP9 gives no bound; a peer may lie). */
export const MAX_METADATA_SIZES = 4
/** Outstanding `ut_metadata` requests per peer (libtorrent keeps 2). */
export const MAX_IN_FLIGHT_PER_PEER = 3
/** Outstanding requests per size. */
const MAX_IN_FLIGHT_PER_SIZE = 32
export const METADATA_REQUEST_TIMEOUT_MS = 10_000
/** `data` messages for pieces we did not ask that peer for, before we close it. */
const MAX_UNREQUESTED = 64

const UT_METADATA = 'ut_metadata'

interface Source {
  readonly peer: Peer
  /** SHA-1 (hex) of the piece bytes it sent. */
  readonly digest: string
}

interface SizeState {
  readonly size: number
  assembler: MetadataAssembler
  /** Who sent each piece of the current attempt. */
  readonly sources: Map<number, Source>
  readonly requests: Map<number, { readonly peer: Peer; readonly at: number }>
  /** After a mismatch of pieces from several peers: take every piece from one peer. */
  isolating: boolean
  isolate: Peer | undefined
  /** The pieces of the last failed attempt with several senders (compared once one verifies). */
  suspects: Map<number, Source>
}

const digest = (data: Uint8Array): string => createHash('sha1').update(data).digest('hex')

export class MetadataFetcher {
  readonly #t: MetadataTorrent
  readonly #send: (peer: Peer, msg: UtMetadataMessage) => void
  readonly #onVerified: (info: TorrentInfo) => void
  readonly #sizes = new Map<number, SizeState>()
  readonly #backoff = new PeerBackoff<Peer>()
  readonly #rotation = new Rotation()
  readonly #unrequested = new WeakMap<Peer, number>()
  #done = false

  constructor(
    t: MetadataTorrent,
    send: (peer: Peer, msg: UtMetadataMessage) => void,
    onVerified: (info: TorrentInfo) => void,
  ) {
    this.#t = t
    this.#send = send
    this.#onVerified = onVerified
  }

  /** Sizes being fetched now (for diagnostics and tests). */
  get sizes(): number[] {
    return [...this.#sizes.keys()]
  }

  /** Creates/drops per-size state, expires requests, and sends requests. Cheap; call often. */
  pump(now: number): void {
    const t = this.#t
    if (this.#done || t.info || !t.running) return
    const groups = new Map<number, Peer[]>()
    for (const p of t.peers.values()) {
      const size = p.metadataSize
      if (size === undefined || p.closed || !p.extensions.has(UT_METADATA)) continue
      if (t.isBanned(p.info.host, p.info.port, p.info.peerId)) continue
      const list = groups.get(size)
      if (list) list.push(p)
      else groups.set(size, [p])
    }
    for (const [size, s] of this.#sizes) {
      if (groups.has(size)) continue
      this.#sizes.delete(size)
      t.log.debug({ size, pieces: s.sources.size }, 'no peer advertises this metadata size any more')
    }
    const bySupport = [...groups].sort((a, b) => b[1].length - a[1].length)
    for (const [size] of bySupport) {
      if (this.#sizes.size >= MAX_METADATA_SIZES) break
      if (this.#sizes.has(size)) continue
      const created = MetadataAssembler.create(size, {
        expected: {
          ...(t.infoHashV1 ? { v1: t.infoHashV1 } : {}),
          ...(t.infoHashV2 ? { v2: t.infoHashV2 } : {}),
        },
      })
      if (!created.ok) continue
      this.#sizes.set(size, {
        size,
        assembler: created.value,
        sources: new Map(),
        requests: new Map(),
        isolating: false,
        isolate: undefined,
        suspects: new Map(),
      })
    }
    const inFlight = new Map<Peer, number>()
    for (const s of this.#sizes.values()) {
      for (const [piece, r] of s.requests) {
        if (r.peer.closed || r.peer.metadataSize !== s.size) s.requests.delete(piece)
        else if (now - r.at > METADATA_REQUEST_TIMEOUT_MS) {
          s.requests.delete(piece)
          this.#backoff.penalize(r.peer, now)
          t.log.debug({ peer: r.peer.key, piece }, 'metadata request timed out')
        } else inFlight.set(r.peer, (inFlight.get(r.peer) ?? 0) + 1)
      }
    }
    for (const s of this.#sizes.values()) this.#assign(s, groups.get(s.size) ?? [], inFlight, now)
  }

  #assign(s: SizeState, peers: readonly Peer[], inFlight: Map<Peer, number>, now: number): void {
    let usable = peers.filter((p) => !this.#backoff.blocked(p, now))
    if (s.isolating) {
      const current = s.isolate
      if (!current || current.closed || !peers.includes(current) || this.#backoff.blocked(current, now)) {
        // The single source went away or refused: start the single-peer attempt over with another.
        if (current && s.sources.size > 0) this.#resetAttempt(s)
        s.isolate = this.#rotation.order(usable, (p) => p.key)[0]
        s.requests.clear()
      }
      usable = s.isolate ? [s.isolate] : []
    }
    if (usable.length === 0) return
    const order = this.#rotation.order(usable, (p) => p.key)
    let k = 0
    for (const piece of s.assembler.missing()) {
      if (s.requests.size >= MAX_IN_FLIGHT_PER_SIZE) return
      if (s.requests.has(piece)) continue
      let chosen: Peer | undefined
      for (let i = 0; i < order.length; i++) {
        const p = order[(k + i) % order.length]!
        if ((inFlight.get(p) ?? 0) < MAX_IN_FLIGHT_PER_PEER) {
          chosen = p
          k += i + 1
          break
        }
      }
      if (!chosen) return
      s.requests.set(piece, { peer: chosen, at: now })
      inFlight.set(chosen, (inFlight.get(chosen) ?? 0) + 1)
      this.#send(chosen, { type: 'request', piece })
    }
  }

  #resetAttempt(s: SizeState): void {
    const created = MetadataAssembler.create(s.size, {
      expected: {
        ...(this.#t.infoHashV1 ? { v1: this.#t.infoHashV1 } : {}),
        ...(this.#t.infoHashV2 ? { v2: this.#t.infoHashV2 } : {}),
      },
    })
    if (created.ok) s.assembler = created.value
    s.sources.clear()
    s.requests.clear()
  }

  /** BEP9 `data`: only accepted from the peer we asked for that piece. */
  onData(peer: Peer, msg: Extract<UtMetadataMessage, { type: 'data' }>): void {
    const t = this.#t
    if (this.#done || t.info) return
    const now = t.host.now()
    let state: SizeState | undefined
    for (const s of this.#sizes.values()) {
      if (s.requests.get(msg.piece)?.peer === peer) state = s
    }
    if (!state) {
      const n = (this.#unrequested.get(peer) ?? 0) + 1
      this.#unrequested.set(peer, n)
      if (n > MAX_UNREQUESTED) t.closePeer(peer, 'ut_metadata: too many unrequested pieces')
      return
    }
    state.requests.delete(msg.piece)
    if (msg.totalSize !== state.size) {
      t.closePeer(
        peer,
        `ut_metadata: total_size ${msg.totalSize} differs from its metadata_size ${state.size}`,
      )
      return
    }
    this.#backoff.reset(peer)
    const fresh = !state.assembler.has(msg.piece)
    if (fresh) state.sources.set(msg.piece, { peer, digest: digest(msg.data) })
    const res = state.assembler.add(msg)
    if (res.status === 'error') {
      if (res.error.code === 'GW_ERR_WIRE_METADATA_HASH_MISMATCH') this.#onMismatch(state, now)
      else {
        if (fresh) state.sources.delete(msg.piece)
        t.closePeer(peer, `ut_metadata: ${res.error.message}`)
      }
      return
    }
    if (res.status === 'complete') {
      this.#onComplete(state, res.info)
      return
    }
    this.pump(now)
  }

  /** BEP9 `reject`: back the peer off and ask someone else now. */
  onReject(peer: Peer, piece: number): void {
    peer.metadataRejected++
    for (const s of this.#sizes.values()) {
      if (s.requests.get(piece)?.peer === peer) s.requests.delete(piece)
    }
    const now = this.#t.host.now()
    this.#backoff.penalize(peer, now)
    this.pump(now)
  }

  onPeerClosed(peer: Peer): void {
    let had = false
    for (const s of this.#sizes.values()) {
      for (const [piece, r] of s.requests) {
        if (r.peer !== peer) continue
        s.requests.delete(piece)
        had = true
      }
    }
    if (had) this.pump(this.#t.host.now())
  }

  #onMismatch(s: SizeState, now: number): void {
    const t = this.#t
    const senders = new Set([...s.sources.values()].map((x) => x.peer))
    if (senders.size === 1) {
      const [culprit] = senders
      t.log.info(
        { peer: culprit!.key, size: s.size },
        'metadata from a single peer does not match the info hash',
      )
      t.ban(culprit!, 'supplied metadata that does not match the info hash (BEP9)')
      s.isolate = undefined
    } else {
      // Nobody is proven guilty: keep what each sent, refetch everything from one peer at a time.
      t.log.info(
        { size: s.size, peers: [...senders].map((p) => p.key) },
        'metadata does not match the info hash; refetching each piece from a single peer',
      )
      s.suspects = new Map(s.sources)
      s.isolating = true
      s.isolate = undefined
    }
    this.#resetAttempt(s)
    this.pump(now)
  }

  #onComplete(s: SizeState, infoBytes: Uint8Array): void {
    const t = this.#t
    this.#done = true
    for (const [piece, src] of s.suspects) {
      const start = piece * METADATA_PIECE_SIZE
      const real = digest(infoBytes.subarray(start, start + METADATA_PIECE_SIZE))
      if (real !== src.digest)
        t.ban(src.peer, `sent metadata piece ${piece} that differs from the verified metadata (BEP9)`)
    }
    for (const other of this.#sizes.values()) {
      if (other === s) continue
      for (const src of [...other.sources.values(), ...other.suspects.values()])
        t.ban(src.peer, `sent metadata of ${other.size} bytes; the verified metadata has ${s.size} (BEP9)`)
    }
    this.#sizes.clear()
    let info: TorrentInfo
    try {
      info = parseInfoDict(infoBytes)
    } catch (e) {
      // It hashes to the info hash, so no peer can give us a better one.
      t.log.error({ err: e }, 'metadata matched the info hash but does not parse')
      return
    }
    t.log.info({ name: info.name, size: infoBytes.byteLength }, 'metadata received')
    this.#onVerified(info)
  }
}
