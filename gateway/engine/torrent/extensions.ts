/**
 * The torrent's extension protocols, driven by the coordinator:
 * - BEP10 extended handshake (our `m`, `v`, `p`, `reqq`, `metadata_size`, `yourip`);
 * - BEP9 ut_metadata: fetch the info dict after a magnet start (verified against btih/btmh), and
 *   serve ours (with a per-peer budget);
 * - BEP11 ut_pex: learn peers from peers, and tell peers about ours (at most once a minute,
 *   never for private torrents, BEP27);
 * - BEP52 hash request / hashes / hash reject: fetch piece layers we lack (magnet start of a v2
 *   torrent) and serve the layers we know.
 */
import { isIPv4, isIPv6 } from 'node:net'
import { toHex } from '../../protocol/hex.ts'
import { leafCount, MerkleTree, nextPowerOfTwo, verifyHashes } from '../../protocol/merkle.ts'
import { parseInfoDict } from '../../protocol/metainfo.ts'
import { BLOCK_SIZE } from '../../protocol/types.ts'
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
  MetadataAssembler,
  MetadataServeBudget,
  MetadataServer,
} from '../../protocol/wire/ut-metadata.ts'
import { decodePex, encodePex, PEX_INTERVAL_MS, PEX_MAX_ENTRIES } from '../../protocol/wire/ut-pex.ts'
import type { Peer } from './peer.ts'
import type { Torrent } from './torrent.ts'

export const CLIENT_VERSION = 'codex-bt/0.1.0'
const UT_METADATA = 'ut_metadata'
const UT_PEX = 'ut_pex'
const METADATA_REQUEST_TIMEOUT_MS = 10_000
const HASH_REQUEST_TIMEOUT_MS = 15_000
const MAX_HASH_REQUEST = 512

function ipBytes(host: string): Uint8Array | undefined {
  if (isIPv4(host)) return Uint8Array.from(host.split('.').map(Number))
  return undefined
}

interface LayerFetch {
  readonly fileIndex: number
  readonly pieces: number
  readonly chunk: number
  readonly chunks: Map<number, Uint8Array>
  readonly requested: Map<number, { peer: Peer; at: number }>
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
  let assembler: MetadataAssembler | undefined
  const metadataRequests = new Map<number, { peer: Peer; at: number }>()
  let server: MetadataServer | undefined
  const budgets = new WeakMap<Peer, MetadataServeBudget>()
  const trees = new Map<string, MerkleTree>()
  const layerFetches = new Map<number, LayerFetch>()

  const metadataServer = (): MetadataServer | undefined => {
    const info = t.info
    if (!info) return undefined
    if (!server) server = new MetadataServer(info.infoBytes)
    return server
  }

  const sendExtended = (peer: Peer, name: string, payload: Uint8Array): void => {
    const id = peer.extensions.get(name)
    if (id === undefined) return
    peer.send({ type: 'extended', id, payload })
  }

  // ------------------------------------------------------------ ut_metadata (BEP9)

  const requestMetadata = (now: number): void => {
    if (t.info || !assembler) return
    for (const [piece, r] of metadataRequests) {
      if (r.peer.closed || now - r.at > METADATA_REQUEST_TIMEOUT_MS) metadataRequests.delete(piece)
    }
    const candidates = [...t.peers.values()].filter(
      (p) => p.extensions.has(UT_METADATA) && p.metadataSize === assembler!.size,
    )
    if (candidates.length === 0) return
    let k = 0
    for (const piece of assembler.missing()) {
      if (metadataRequests.has(piece)) continue
      const peer = candidates[k++ % candidates.length]!
      metadataRequests.set(piece, { peer, at: now })
      sendExtended(peer, UT_METADATA, encodeUtMetadata({ type: 'request', piece }))
    }
  }

  const onMetadataMessage = (peer: Peer, payload: Uint8Array): void => {
    const decoded = decodeUtMetadata(payload)
    if (!decoded.ok) {
      t.closePeer(peer, `ut_metadata: ${decoded.error.message}`)
      return
    }
    const msg = decoded.value
    if (msg.type === 'request') {
      const srv = metadataServer()
      if (!srv || t.info?.private) {
        sendExtended(peer, UT_METADATA, encodeUtMetadata({ type: 'reject', piece: msg.piece }))
        return
      }
      let budget = budgets.get(peer)
      if (!budget) {
        budget = new MetadataServeBudget(srv.metadataSize ?? 0)
        budgets.set(peer, budget)
      }
      sendExtended(peer, UT_METADATA, encodeUtMetadata(srv.respond(msg, budget)))
      return
    }
    if (msg.type === 'reject') {
      const r = metadataRequests.get(msg.piece)
      if (r?.peer === peer) metadataRequests.delete(msg.piece)
      peer.metadataRejected++
      return
    }
    if (msg.type === 'data') {
      if (!assembler || t.info) return
      const r = metadataRequests.get(msg.piece)
      if (!r || r.peer !== peer) return // unrequested: ignore
      metadataRequests.delete(msg.piece)
      const res = assembler.add(msg)
      if (res.status === 'error') {
        t.log.info({ peer: peer.key, err: res.error.message }, 'metadata from peer rejected')
        assembler = undefined // start over with the next peer's size
        metadataRequests.clear()
        t.ban(peer, 'sent metadata that does not match the info hash')
        return
      }
      if (res.status === 'complete') {
        let info: ReturnType<typeof parseInfoDict>
        try {
          info = parseInfoDict(res.info)
        } catch (e) {
          t.log.warn({ err: e }, 'metadata matched the info hash but does not parse')
          assembler = undefined
          return
        }
        t.log.info({ name: info.name, size: res.info.byteLength }, 'metadata received')
        void t.track(t.onMetadata(info))
      }
    }
  }

  // ------------------------------------------------------------ ut_pex (BEP11)

  const onPexMessage = (peer: Peer, payload: Uint8Array): void => {
    if (t.info?.private) return
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

  const sendPex = (now: number): void => {
    if (t.info?.private) return
    const current = new Map<string, { host: string; port: number }>()
    for (const p of t.peers.values()) {
      const a = p.dialAddress()
      if (a) current.set(`${a.host}:${a.port}`, a)
    }
    for (const peer of t.peers.values()) {
      if (!peer.extensions.has(UT_PEX) || now - peer.lastPexAt < PEX_INTERVAL_MS) continue
      const added: { host: string; port: number; flags: number }[] = []
      const added6: typeof added = []
      for (const [k, a] of current) {
        if (k === peer.key || peer.pexSent.has(k)) continue
        const list = isIPv6(a.host) ? added6 : added
        if (list.length >= PEX_MAX_ENTRIES) continue
        list.push({ ...a, flags: 0x10 }) // BEP11: reachable (we connected or it told us its port)
        peer.pexSent.add(k)
      }
      const dropped: { host: string; port: number; flags: number }[] = []
      const dropped6: typeof dropped = []
      for (const k of [...peer.pexSent]) {
        if (current.has(k)) continue
        peer.pexSent.delete(k)
        const i = k.lastIndexOf(':')
        const a = { host: k.slice(0, i), port: Number(k.slice(i + 1)), flags: 0 }
        const list = isIPv6(a.host) ? dropped6 : dropped
        if (list.length < PEX_MAX_ENTRIES) list.push(a)
      }
      if (added.length + added6.length + dropped.length + dropped6.length === 0) continue
      peer.lastPexAt = now
      sendExtended(peer, UT_PEX, encodePex({ added, added6, dropped, dropped6 }))
    }
  }

  // ------------------------------------------------------------ BEP52 hashes

  const treeFor = (root: Uint8Array): MerkleTree | undefined => {
    const info = t.info
    const v = t.verifier
    if (!info || !v) return undefined
    const hex = toHex(root)
    const cached = trees.get(hex)
    if (cached) return cached
    const file = info.files.find((f) => f.piecesRoot && toHex(f.piecesRoot) === hex)
    if (!file) return undefined
    const layer = v.layer(hex)
    if (!layer) return undefined
    const tree = MerkleTree.fromPieceLayer(layer, file.length, info.pieceLength)
    if (trees.size > 64) trees.clear()
    trees.set(hex, tree)
    return tree
  }

  const requestMissingLayers = (): void => {
    const info = t.info
    const v = t.verifier
    if (!info || !v) return
    const now = t.host.now()
    const v2Peers = [...t.peers.values()].filter((p) => p.info.v2 && !p.closed && p.isSeed(info.pieceCount))
    const fallback = [...t.peers.values()].filter((p) => p.info.v2 && !p.closed)
    const peers = v2Peers.length > 0 ? v2Peers : fallback
    if (peers.length === 0) return
    let k = 0
    for (const fileIndex of v.missingLayers()) {
      const f = info.files[fileIndex]!
      let fetch = layerFetches.get(fileIndex)
      if (!fetch) {
        const pieces = Math.ceil(f.length / info.pieceLength)
        const chunk = Math.min(MAX_HASH_REQUEST, nextPowerOfTwo(Math.max(2, pieces)))
        fetch = { fileIndex, pieces, chunk, chunks: new Map(), requested: new Map() }
        layerFetches.set(fileIndex, fetch)
      }
      const numLeavesPow2 = nextPowerOfTwo(leafCount(f.length))
      const baseLayer = Math.log2(info.pieceLength / BLOCK_SIZE)
      const proofLayers = Math.log2(numLeavesPow2) - baseLayer - 1
      for (let index = 0; index < fetch.pieces; index += fetch.chunk) {
        if (fetch.chunks.has(index)) continue
        const r = fetch.requested.get(index)
        if (r && !r.peer.closed && now - r.at < HASH_REQUEST_TIMEOUT_MS) continue
        const peer = peers[k++ % peers.length]!
        fetch.requested.set(index, { peer, at: now })
        peer.send({
          type: 'hash-request',
          piecesRoot: f.piecesRoot!,
          baseLayer,
          index,
          length: fetch.chunk,
          proofLayers: Math.max(0, proofLayers),
        })
      }
    }
  }

  const onHashes = (peer: Peer, msg: Extract<WireMessage, { type: 'hashes' }>): void => {
    const info = t.info
    const v = t.verifier
    if (!info || !v) return
    const hex = toHex(msg.piecesRoot)
    const fileIndex = info.files.findIndex((f) => f.piecesRoot && toHex(f.piecesRoot) === hex)
    const fetch = layerFetches.get(fileIndex)
    if (!fetch) return
    const r = fetch.requested.get(msg.index)
    if (!r || r.peer !== peer) return
    fetch.requested.delete(msg.index)
    const f = info.files[fileIndex]!
    const numLeavesPow2 = nextPowerOfTwo(leafCount(f.length))
    const ok = verifyHashes(
      f.piecesRoot!,
      msg.baseLayer,
      msg.index,
      msg.length,
      msg.proofLayers,
      msg.hashes,
      numLeavesPow2,
    )
    if (ok !== 'ok') {
      t.ban(peer, 'sent piece-layer hashes that do not verify against the pieces root')
      return
    }
    fetch.chunks.set(msg.index, msg.hashes.subarray(0, msg.length * 32))
    let complete = true
    for (let index = 0; index < fetch.pieces; index += fetch.chunk)
      if (!fetch.chunks.has(index)) complete = false
    if (!complete) return
    const layer = new Uint8Array(fetch.pieces * 32)
    for (const [index, hashes] of fetch.chunks) {
      const n = Math.min(fetch.chunk, fetch.pieces - index)
      layer.set(hashes.subarray(0, n * 32), index * 32)
    }
    layerFetches.delete(fileIndex)
    if (v.addLayer(fileIndex, layer)) {
      t.log.info({ file: fileIndex }, 'piece layer received from peers')
      t.recheckAwaitingLayer()
    }
  }

  const onHashRequest = (peer: Peer, msg: Extract<WireMessage, { type: 'hash-request' }>): undefined => {
    const tree = treeFor(msg.piecesRoot)
    const reject = (): undefined => {
      peer.send({ ...msg, type: 'hash-reject' })
    }
    if (!tree || !peer.info.v2) return reject()
    const res = tree.hashes(msg, MAX_HASH_REQUEST)
    if (!res.ok) return reject()
    peer.send({
      type: 'hashes',
      piecesRoot: msg.piecesRoot,
      baseLayer: msg.baseLayer,
      index: msg.index,
      length: msg.length,
      proofLayers: msg.proofLayers,
      hashes: res.hashes,
    })
  }

  return {
    sendHandshake(peer) {
      const info = t.info
      const yourip = ipBytes(peer.info.host)
      const payload = encodeExtendedHandshake({
        m: LOCAL_EXTENSION_IDS,
        v: CLIENT_VERSION,
        p: t.host.listenPort,
        reqq: 500,
        ...(info && !info.private ? { metadataSize: info.infoBytes.byteLength } : {}),
        ...(yourip ? { yourip } : {}),
      })
      peer.send({ type: 'extended', id: EXTENDED_HANDSHAKE_ID, payload })
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
          else if (name === UT_METADATA || name === UT_PEX) peer.extensions.set(name, remoteId)
        }
        if (h.v) peer.client = h.v
        if (h.p) peer.listenPort = h.p
        if (h.reqq) peer.reqq = Math.max(1, Math.min(h.reqq, 2000))
        if (h.metadataSize !== undefined) peer.metadataSize = h.metadataSize
        if (!t.info && peer.metadataSize && peer.extensions.has(UT_METADATA) && !assembler) {
          const created = MetadataAssembler.create(peer.metadataSize, {
            expected: {
              ...(t.infoHashV1 ? { v1: t.infoHashV1 } : {}),
              ...(t.infoHashV2 ? { v2: t.infoHashV2 } : {}),
            },
          })
          if (created.ok) assembler = created.value
        }
        if (!t.info) requestMetadata(t.host.now())
        return
      }
      const name = [...LOCAL_EXTENSION_IDS].find(([, local]) => local === id)?.[0]
      if (name === UT_METADATA) onMetadataMessage(peer, payload)
      else if (name === UT_PEX) onPexMessage(peer, payload)
      // unknown extension ids are ignored (BEP10)
    },

    onHashMessage(peer, msg) {
      if (!peer.info.v2) {
        t.closePeer(peer, 'BEP52 hash message on a v1 connection')
        return
      }
      if (msg.type === 'hash-request') onHashRequest(peer, msg)
      else if (msg.type === 'hashes') onHashes(peer, msg)
      else {
        for (const fetch of layerFetches.values()) {
          const r = fetch.requested.get(msg.index)
          if (r?.peer === peer) fetch.requested.delete(msg.index)
        }
      }
    },

    onPeerClosed(peer) {
      for (const [piece, r] of metadataRequests) if (r.peer === peer) metadataRequests.delete(piece)
    },

    requestMissingLayers,

    tick(now) {
      if (!t.info) requestMetadata(now)
      else {
        sendPex(now)
        if (t.verifier && t.verifier.missingLayers().length > 0) requestMissingLayers()
      }
    },
  }
}
