/**
 * The torrent's extension protocols, driven by the coordinator (`torrent.ts`):
 * - BEP10 extended handshake (our `m`, `v`, `p`, `reqq`, `metadata_size`, `yourip`);
 * - BEP9 ut_metadata: fetch the info dict after a magnet start (`metadata-fetch.ts`), and serve
 *   ours with a per-peer budget ("Clients MAY implement flood protection");
 * - BEP11 ut_pex (`pex.ts`);
 * - BEP52 hash request / hashes / hash reject (`hash-exchange.ts`).
 *
 * BEP27 private torrents: never `ut_pex` (not in our `m`, incoming ignored, none sent). When a
 * magnet start learns from the metadata that the torrent is private, every peer gets a new
 * extended handshake disabling `ut_pex` (BEP10: "Subsequent handshake messages can be used to
 * enable/disable extensions"; an id of 0 disables). Metadata exchange stays allowed among the
 * private swarm (BEP27 forbids DHT and PEX only), so we keep serving `ut_metadata`.
 */
import { isIPv4 } from 'node:net'
import type { TorrentInfo } from '../../protocol/types.ts'
import {
  decodeExtendedHandshake,
  EXTENDED_HANDSHAKE_ID,
  encodeExtendedHandshake,
  LOCAL_EXTENSION_IDS,
} from '../../protocol/wire/extensions.ts'
import type { WireMessage } from '../../protocol/wire/messages.ts'
import {
  decodeUtMetadata,
  encodeUtMetadata,
  MetadataServeBudget,
  MetadataServer,
} from '../../protocol/wire/ut-metadata.ts'
import { HashExchange } from './hash-exchange.ts'
import { MetadataFetcher } from './metadata-fetch.ts'
import type { Peer } from './peer.ts'
import { PexExchange } from './pex.ts'
import type { Torrent } from './torrent.ts'

export const CLIENT_VERSION = 'codex-bt/0.1.0'
const UT_METADATA = 'ut_metadata'
const UT_PEX = 'ut_pex'
/** Our BEP10 `reqq`. */
const REQQ = 500

function ipBytes(host: string): Uint8Array | undefined {
  if (isIPv4(host)) return Uint8Array.from(host.split('.').map(Number))
  return undefined
}

export interface TorrentExtensions {
  sendHandshake(peer: Peer): void
  onExtended(peer: Peer, id: number, payload: Uint8Array): void
  onHashMessage(
    peer: Peer,
    msg: Extract<WireMessage, { type: 'hash-request' | 'hashes' | 'hash-reject' }>,
  ): void
  onPeerClosed(peer: Peer): void
  requestMissingLayers(): void
  tick(now: number): void
}

export function createExtensions(t: Torrent): TorrentExtensions {
  let server: MetadataServer | undefined
  const budgets = new WeakMap<Peer, MetadataServeBudget>()

  const sendExtended = (peer: Peer, name: string, payload: Uint8Array): void => {
    const id = peer.extensions.get(name)
    if (id === undefined) return
    peer.send({ type: 'extended', id, payload })
  }

  /** Our `m`: no `ut_pex` for a torrent known to be private (BEP27). */
  const ourM = (info: TorrentInfo | undefined, disablePex: boolean): Map<string, number> => {
    const m = new Map<string, number>()
    for (const [name, id] of LOCAL_EXTENSION_IDS) {
      if (name === UT_PEX && info?.private) {
        if (disablePex) m.set(name, 0)
        continue
      }
      m.set(name, id)
    }
    return m
  }

  const handshake = (peer: Peer, disablePex: boolean): void => {
    const info = t.info
    const yourip = ipBytes(peer.info.host)
    const payload = encodeExtendedHandshake({
      m: ourM(info, disablePex),
      v: CLIENT_VERSION,
      p: t.host.listenPort,
      reqq: REQQ,
      ...(info ? { metadataSize: info.infoBytes.byteLength } : {}),
      ...(yourip ? { yourip } : {}),
    })
    peer.send({ type: 'extended', id: EXTENDED_HANDSHAKE_ID, payload })
  }

  /** After a magnet start: the metadata says private (BEP27): stop PEX with every peer. */
  const becamePrivate = (): void => {
    t.log.info({}, 'the torrent is private (BEP27): no PEX')
    for (const p of t.peers.values()) {
      if (p.closed || !p.info.extended) continue
      p.extensions.delete(UT_PEX)
      handshake(p, true)
    }
  }

  const metadata = new MetadataFetcher(
    t,
    (peer, msg) => sendExtended(peer, UT_METADATA, encodeUtMetadata(msg)),
    (info) => {
      void t.track(
        t.onMetadata(info).then(() => {
          if (t.info?.private) becamePrivate()
        }),
      )
    },
  )
  const hashes = new HashExchange(t)
  const pex = new PexExchange(t, (peer, payload) => sendExtended(peer, UT_PEX, payload))

  const onMetadataMessage = (peer: Peer, payload: Uint8Array): void => {
    const decoded = decodeUtMetadata(payload)
    if (!decoded.ok) {
      t.closePeer(peer, `ut_metadata: ${decoded.error.message}`)
      return
    }
    const msg = decoded.value
    if (msg.type === 'request') {
      const info = t.info
      if (info && !server) server = new MetadataServer(info.infoBytes)
      if (!server) {
        // BEP9: "Peers that do not have the entire metadata MUST respond with a reject message".
        sendExtended(peer, UT_METADATA, encodeUtMetadata({ type: 'reject', piece: msg.piece }))
        return
      }
      let budget = budgets.get(peer)
      if (!budget) {
        budget = new MetadataServeBudget(server.metadataSize ?? 0)
        budgets.set(peer, budget)
      }
      sendExtended(peer, UT_METADATA, encodeUtMetadata(server.respond(msg, budget)))
      return
    }
    if (msg.type === 'reject') metadata.onReject(peer, msg.piece)
    else if (msg.type === 'data') metadata.onData(peer, msg)
    // BEP9: unknown msg_type "MUST be ignored"
  }

  return {
    sendHandshake(peer) {
      handshake(peer, false)
    },

    onExtended(peer, id, payload) {
      if (id === EXTENDED_HANDSHAKE_ID) {
        const decoded = decodeExtendedHandshake(payload)
        if (!decoded.ok) {
          t.closePeer(peer, `extended handshake: ${decoded.error.message}`)
          return
        }
        const h = decoded.value
        for (const [name, remoteId] of h.m) {
          if (remoteId === 0) peer.extensions.delete(name)
          else if (name === UT_METADATA) peer.extensions.set(name, remoteId)
          else if (name === UT_PEX && !t.info?.private) peer.extensions.set(name, remoteId)
        }
        if (h.v) peer.client = h.v
        if (h.p) peer.listenPort = h.p
        if (h.reqq) peer.reqq = Math.max(1, Math.min(h.reqq, 2000))
        if (h.metadataSize !== undefined) peer.metadataSize = h.metadataSize
        if (!t.info) metadata.pump(t.host.now())
        return
      }
      const name = [...LOCAL_EXTENSION_IDS].find(([, local]) => local === id)?.[0]
      if (name === UT_METADATA) onMetadataMessage(peer, payload)
      else if (name === UT_PEX) pex.onMessage(peer, payload)
      // unknown extension ids are ignored (BEP10)
    },

    onHashMessage(peer, msg) {
      hashes.onHashMessage(peer, msg)
    },

    onPeerClosed(peer) {
      metadata.onPeerClosed(peer)
      hashes.onPeerClosed(peer)
    },

    requestMissingLayers() {
      hashes.requestMissingLayers()
    },

    tick(now) {
      if (!t.info) metadata.pump(now)
      else {
        pex.tick(now)
        hashes.tick()
      }
    },
  }
}
