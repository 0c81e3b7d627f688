/**
 * INTEROP with a real libtorrent (python3-libtorrent through `test/helpers/libtorrent.ts`, on
 * 127.0.0.1 only): libtorrent seeds random data as a v1, a v2 and a hybrid torrent; our codecs
 * and `PeerConnection`, over a raw TCP connection, do the handshake (libtorrent's reserved bits
 * checked), the BEP10 extension handshake, download the info dict with BEP9 ut_metadata and
 * verify it (SHA-1 for v1; SHA-256 for v2 with the truncated hash on the wire; the BEP52 upgrade
 * for the hybrid), then interested → unchoke → 16 KiB block requests verified against the SHA-1
 * piece hashes (v1) and, for v2, BEP52 hash requests for the piece layer and for leaf hashes with
 * proofs, verified against the file's `pieces root` with a small local Merkle implementation, and
 * the blocks verified against those leaves.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import bencode from 'bencode'
import { PeerConnection, type PeerConnectionError } from '../../gateway/engine/peer/connection.ts'
import { performHandshake } from '../../gateway/engine/peer/handshake.ts'
import {
  decodeExtendedHandshake,
  ExtensionRegistry,
  encodeExtendedHandshake,
} from '../../gateway/protocol/wire/extensions.ts'
import { frameLimits } from '../../gateway/protocol/wire/frame-decoder.ts'
import { clientFromPeerId, makePeerId, makeReserved } from '../../gateway/protocol/wire/handshake.ts'
import type { WireMessage } from '../../gateway/protocol/wire/messages.ts'
import {
  decodeUtMetadata,
  encodeUtMetadata,
  MetadataAssembler,
} from '../../gateway/protocol/wire/ut-metadata.ts'
import { type LtSession, type LtTorrentInfo, startLibtorrent } from '../helpers/libtorrent.ts'

const BLOCK = 16384
const PIECE_LENGTH = 32768
const FILE_SIZE = 200 * 1024 // 7 pieces: 6 full + one of 8 KiB; 13 leaves (the last one short)

interface Seeded {
  info: LtTorrentInfo
  data: Uint8Array
  /** The decoded .torrent (parsed directly with `bencode`). */
  torrent: { info: Record<string, unknown>; 'piece layers'?: Record<string, Uint8Array> }
  infoBytes: Uint8Array
}

let lt: LtSession
let dir: string
const seeded = new Map<'v1' | 'v2' | 'hybrid', Seeded>()

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wire-interop-'))
  lt = await startLibtorrent()
  for (const version of ['v1', 'v2', 'hybrid'] as const) {
    const d = join(dir, version)
    mkdirSync(d)
    const data = new Uint8Array(randomBytes(FILE_SIZE))
    writeFileSync(join(d, 'payload.bin'), data)
    const out = join(dir, `${version}.torrent`)
    const info = await lt.createTorrent({
      path: join(d, 'payload.bin'),
      out,
      version,
      pieceLength: PIECE_LENGTH,
    })
    const raw = new Uint8Array(readFileSync(out))
    const torrent = bencode.decode(raw) as Seeded['torrent']
    const infoBytes = bencode.encode(torrent.info as Record<string, never>)
    const handle = await lt.add({ torrent: out, savePath: d })
    await lt.waitFor(handle, (s) => s.is_seeding, { timeoutMs: 30_000 })
    seeded.set(version, { info, data, torrent, infoBytes })
  }
})

after(async () => {
  await lt?.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** A raw peer driven by the test: a PeerConnection plus an inbox to await messages from. */
class TestPeer {
  readonly conn: PeerConnection
  readonly inbox: WireMessage[] = []
  #wake: (() => void) | undefined
  closed: PeerConnectionError | undefined

  constructor(conn: (peer: TestPeer) => PeerConnection) {
    this.conn = conn(this)
  }

  push(m: WireMessage): void {
    this.inbox.push(m)
    this.#wake?.()
  }

  onClose(r: PeerConnectionError): void {
    this.closed = r
    this.#wake?.()
  }

  /** Removes and returns the first inbox message matching `pred`, waiting up to `timeoutMs`. */
  async take<T extends WireMessage>(
    pred: (m: WireMessage) => m is T,
    what: string,
    timeoutMs = 10_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const i = this.inbox.findIndex(pred)
      if (i >= 0) return this.inbox.splice(i, 1)[0] as T
      if (this.closed)
        throw new Error(`connection closed (${this.closed.code}: ${this.closed.message}) waiting for ${what}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.#wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
  }
}

const is =
  <K extends WireMessage['type']>(type: K) =>
  (m: WireMessage): m is Extract<WireMessage, { type: K }> =>
    m.type === type

async function dial(
  s: Seeded,
  wire: { infoHash: Uint8Array; upgradeInfoHash?: Uint8Array; v2: boolean },
): Promise<{ peer: TestPeer; upgraded: boolean; remoteReserved: Uint8Array; remotePeerId: Uint8Array }> {
  const socket = connect(lt.port, '127.0.0.1')
  await once(socket, 'connect')
  const hs = await performHandshake(socket, {
    infoHash: wire.infoHash,
    ...(wire.upgradeInfoHash ? { upgradeInfoHash: wire.upgradeInfoHash } : {}),
    peerId: makePeerId(),
    reserved: makeReserved({ extensionProtocol: true, fast: true, v2Upgrade: wire.v2 }),
    timeoutMs: 10_000,
  })
  assert.ok(hs.ok, hs.ok ? '' : `${hs.error.code}: ${hs.error.message}`)
  const peer = new TestPeer(
    (p) =>
      new PeerConnection({
        socket,
        leftover: hs.value.leftover,
        fast: hs.value.flags.fast,
        limits: frameLimits({ pieceCount: s.info.num_pieces }),
        decodeContext: { pieceCount: s.info.num_pieces },
        onMessage: (m) => p.push(m),
        onClose: (r) => p.onClose(r),
      }),
  )
  return {
    peer,
    upgraded: hs.value.upgraded,
    remoteReserved: hs.value.remote.reserved,
    remotePeerId: hs.value.remote.peerId,
  }
}

/** BEP10 handshake both ways, then BEP9: fetch every metadata piece and assemble/verify it. */
async function fetchMetadata(peer: TestPeer, expected: { v1?: Uint8Array; v2?: Uint8Array }) {
  const registry = ExtensionRegistry.default()
  peer.conn.send({
    type: 'extended',
    id: 0,
    payload: encodeExtendedHandshake({ m: registry.handshakeM(), v: 'codex-bt test' }),
  })
  const ext = await peer.take(
    (m): m is Extract<WireMessage, { type: 'extended' }> => m.type === 'extended' && m.id === 0,
    'extended handshake',
  )
  const hs = decodeExtendedHandshake(ext.payload)
  assert.ok(hs.ok)
  const remoteId = hs.value.m.get('ut_metadata')
  assert.ok(remoteId !== undefined && remoteId > 0, 'libtorrent offers ut_metadata')
  assert.ok(hs.value.metadataSize !== undefined)
  assert.match(hs.value.v ?? '', /libtorrent/)
  const created = MetadataAssembler.create(hs.value.metadataSize, { expected })
  assert.ok(created.ok)
  const assembler = created.value
  for (const piece of assembler.missing()) {
    peer.conn.send({ type: 'extended', id: remoteId, payload: encodeUtMetadata({ type: 'request', piece }) })
  }
  const ourId = registry.localId('ut_metadata')
  for (let i = 0; i < assembler.pieceCount; i++) {
    const msg = await peer.take(
      (m): m is Extract<WireMessage, { type: 'extended' }> => m.type === 'extended' && m.id === ourId,
      'ut_metadata data',
    )
    const decoded = decodeUtMetadata(msg.payload)
    assert.ok(decoded.ok && decoded.value.type === 'data', 'libtorrent answers with data')
    const r = assembler.add(decoded.value)
    if (r.status === 'complete') return { info: r.info, matched: r.matched, handshake: hs.value }
    assert.equal(r.status, 'partial')
  }
  throw new Error('metadata incomplete')
}

/** interested → unchoke (libtorrent seeds unchoke interested peers). */
async function startDownload(peer: TestPeer): Promise<void> {
  peer.conn.send({ type: 'interested' })
  await peer.take(is('unchoke'), 'unchoke')
}

/** Requests the blocks of `piece` and returns the piece bytes (blocks checked against the request). */
async function downloadPiece(peer: TestPeer, s: Seeded, piece: number): Promise<Uint8Array> {
  const start = piece * PIECE_LENGTH
  const length = Math.min(PIECE_LENGTH, s.info.total_size - start, FILE_SIZE - start)
  const blocks = Math.ceil(length / BLOCK)
  for (let b = 0; b < blocks; b++) {
    peer.conn.send({
      type: 'request',
      index: piece,
      begin: b * BLOCK,
      length: Math.min(BLOCK, length - b * BLOCK),
    })
  }
  const out = new Uint8Array(length)
  for (let b = 0; b < blocks; b++) {
    const m = await peer.take(
      (x): x is Extract<WireMessage, { type: 'piece' }> =>
        x.type === 'piece' && x.index === piece && x.begin === b * BLOCK,
      `block ${piece}/${b}`,
    )
    assert.equal(m.block.length, Math.min(BLOCK, length - b * BLOCK))
    out.set(m.block, m.begin)
  }
  return out
}

// --- a small local BEP52 Merkle implementation ---------------------------------------------------

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest())
const pair = (a: Uint8Array, b: Uint8Array): Uint8Array => sha256(Buffer.concat([a, b]))
const ZERO = new Uint8Array(32)
/** Root of `hashes` (a power-of-two count). */
function rootOf(hashes: Uint8Array[]): Uint8Array {
  let layer = hashes
  while (layer.length > 1) {
    const next: Uint8Array[] = []
    for (let i = 0; i < layer.length; i += 2) next.push(pair(layer[i] ?? ZERO, layer[i + 1] ?? ZERO))
    layer = next
  }
  return layer[0] ?? ZERO
}
/** Hash of an all-padding subtree `layer` levels above the leaves (leaf pad = 32 zero bytes, BEP52). */
function padHash(layer: number): Uint8Array {
  let h: Uint8Array = ZERO
  for (let i = 0; i < layer; i++) h = pair(h, h)
  return h
}
const split = (b: Uint8Array): Uint8Array[] =>
  Array.from({ length: b.length / 32 }, (_, i) => b.subarray(i * 32, i * 32 + 32))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

const LEAVES = Math.ceil(FILE_SIZE / BLOCK) // 13
const LEAVES_POW2 = 16
const HEIGHT = Math.log2(LEAVES_POW2) // 4
const PIECE_LAYER = Math.log2(PIECE_LENGTH / BLOCK) // 1

/** BEP52 checks against libtorrent: piece layer, leaf hashes with proofs, blocks against leaves. */
async function checkV2Hashes(peer: TestPeer, s: Seeded): Promise<void> {
  const file = s.info.files.find((f) => !f.pad && f.root)
  assert.ok(file?.root)
  const piecesRoot = new Uint8Array(Buffer.from(file.root, 'hex'))
  const pieces = Math.ceil(FILE_SIZE / PIECE_LENGTH) // 7
  const width = LEAVES_POW2 >> PIECE_LAYER // 8

  // 1. the whole piece layer (no proof needed: it spans the tree)
  peer.conn.send({
    type: 'hash-request',
    piecesRoot,
    baseLayer: PIECE_LAYER,
    index: 0,
    length: width,
    proofLayers: 0,
  })
  const layerMsg = await peer.take(is('hashes'), 'piece layer hashes')
  assert.equal(layerMsg.baseLayer, PIECE_LAYER)
  const layer = split(layerMsg.hashes)
  assert.equal(layer.length, width)
  assert.equal(hex(rootOf(layer)), hex(piecesRoot), 'piece layer hashes up to the pieces root')
  // the piece layer stored in the .torrent (parsed with bencode) says the same
  // the bencode package decodes binary keys as hex (or as text when they happen to be UTF-8)
  const layers = s.torrent['piece layers'] ?? {}
  const stored = layers[hex(piecesRoot)] ?? layers[new TextDecoder().decode(piecesRoot)]
  assert.ok(stored, 'the .torrent has piece layers for this file')
  assert.equal(hex(stored), hex(layerMsg.hashes.subarray(0, pieces * 32)))
  for (let i = pieces; i < width; i++)
    assert.equal(hex(layer[i] ?? ZERO), hex(padHash(PIECE_LAYER)), 'pad hashes beyond the file')

  // 2. leaf hashes of two pieces, with uncle hashes up to the root, and their blocks
  for (const piece of [1, pieces - 1]) {
    const perPiece = PIECE_LENGTH / BLOCK // 2 leaves per piece
    const req = {
      piecesRoot,
      baseLayer: 0,
      index: piece * perPiece,
      length: perPiece,
      proofLayers: HEIGHT - 1,
    }
    peer.conn.send({ type: 'hash-request', ...req })
    const msg = await peer.take(
      (m): m is Extract<WireMessage, { type: 'hashes' }> =>
        m.type === 'hashes' && m.baseLayer === 0 && m.index === req.index,
      `leaf hashes of piece ${piece}`,
    )
    const hashes = split(msg.hashes)
    assert.equal(hashes.length, perPiece + (HEIGHT - 1), 'base hashes + one uncle per proof layer (BEP52)')
    // fold: the leaves give the piece node, then climb with the uncles
    let node = rootOf(hashes.slice(0, perPiece))
    assert.equal(hex(node), hex(layer[piece] ?? ZERO), 'leaves hash to the piece-layer hash')
    let pos = piece
    for (const uncle of hashes.slice(perPiece)) {
      node = pos % 2 === 0 ? pair(node, uncle) : pair(uncle, node)
      pos >>= 1
    }
    assert.equal(hex(node), hex(piecesRoot), 'the proof reaches the pieces root')
    // the blocks themselves: SHA-256 of each block is its leaf (the short last block as is)
    const bytes = await downloadPiece(peer, s, piece)
    for (let b = 0; b < perPiece; b++) {
      const leafIndex = piece * perPiece + b
      const block = bytes.subarray(b * BLOCK, (b + 1) * BLOCK)
      if (leafIndex < LEAVES) assert.equal(hex(sha256(block)), hex(hashes[b] ?? ZERO), `block ${leafIndex}`)
      else assert.equal(hex(hashes[b] ?? new Uint8Array(1)), hex(ZERO), 'leaves past the file are zero')
    }
    assert.deepEqual(bytes, s.data.subarray(piece * PIECE_LENGTH, piece * PIECE_LENGTH + bytes.length))
  }

  // 3. an invalid request (proof reaching past the root) is answered with hash reject (BEP52 MUST answer)
  peer.conn.send({
    type: 'hash-request',
    piecesRoot,
    baseLayer: PIECE_LAYER,
    index: 0,
    length: width,
    proofLayers: 3,
  })
  const rej = await peer.take(is('hash-reject'), 'hash reject')
  assert.equal(rej.proofLayers, 3)
}

describe('interop with libtorrent', () => {
  test('v1: handshake bits, BEP10, BEP9 metadata (SHA-1), blocks verified against SHA-1 piece hashes', async () => {
    const s = seeded.get('v1')
    assert.ok(s?.info.info_hash_v1)
    const v1 = new Uint8Array(Buffer.from(s.info.info_hash_v1, 'hex'))
    const { peer, upgraded, remoteReserved, remotePeerId } = await dial(s, { infoHash: v1, v2: false })
    try {
      assert.equal(upgraded, false)
      // libtorrent sets BEP10 (reserved[5] & 0x10) and BEP6 (reserved[7] & 0x04)
      assert.equal((remoteReserved[5] ?? 0) & 0x10, 0x10)
      assert.equal((remoteReserved[7] ?? 0) & 0x04, 0x04)
      assert.equal(clientFromPeerId(remotePeerId)?.name, 'libtorrent')
      // a seed with BEP6 says have-all
      await peer.take(is('have-all'), 'have-all')
      const meta = await fetchMetadata(peer, { v1 })
      assert.equal(meta.matched, 'v1')
      assert.deepEqual(meta.info, s.infoBytes, 'the assembled info dict is the one in the .torrent')
      assert.equal(hex(createHash('sha1').update(meta.info).digest()), s.info.info_hash_v1)
      const pieceHashes = (s.torrent.info as { pieces: Uint8Array }).pieces
      await startDownload(peer)
      for (const piece of [0, 3, s.info.num_pieces - 1]) {
        const bytes = await downloadPiece(peer, s, piece)
        const want = pieceHashes.subarray(piece * 20, piece * 20 + 20)
        assert.equal(hex(createHash('sha1').update(bytes).digest()), hex(want), `SHA-1 of piece ${piece}`)
      }
      assert.equal(peer.closed, undefined)
    } finally {
      peer.conn.close('test done')
    }
  })

  test('v2: truncated SHA-256 on the wire, BEP9 metadata checked with SHA-256, BEP52 hashes and blocks', async () => {
    const s = seeded.get('v2')
    assert.ok(s?.info.info_hash_v2)
    const full = new Uint8Array(Buffer.from(s.info.info_hash_v2, 'hex'))
    const { peer, remoteReserved } = await dial(s, { infoHash: full.subarray(0, 20), v2: true })
    try {
      assert.equal((remoteReserved[5] ?? 0) & 0x10, 0x10)
      const meta = await fetchMetadata(peer, { v2: full })
      assert.equal(meta.matched, 'v2')
      assert.deepEqual(meta.info, s.infoBytes)
      assert.equal(hex(sha256(meta.info)), s.info.info_hash_v2)
      assert.equal(s.info.info_hash_v1, null)
      await startDownload(peer)
      await checkV2Hashes(peer, s)
      assert.equal(peer.closed, undefined)
    } finally {
      peer.conn.close('test done')
    }
  })

  test('hybrid: v1 handshake + BEP52 upgrade bit → libtorrent answers with the v2 hash; both hashes verify', async () => {
    const s = seeded.get('hybrid')
    assert.ok(s?.info.info_hash_v1 && s.info.info_hash_v2)
    const v1 = new Uint8Array(Buffer.from(s.info.info_hash_v1, 'hex'))
    const v2 = new Uint8Array(Buffer.from(s.info.info_hash_v2, 'hex'))
    const { peer, upgraded } = await dial(s, { infoHash: v1, upgradeInfoHash: v2.subarray(0, 20), v2: true })
    try {
      assert.equal(upgraded, true, 'libtorrent upgraded the connection to the v2 swarm (BEP52 upgrade path)')
      const meta = await fetchMetadata(peer, { v1, v2 })
      assert.deepEqual(meta.info, s.infoBytes)
      assert.equal(hex(createHash('sha1').update(meta.info).digest()), s.info.info_hash_v1)
      assert.equal(hex(sha256(meta.info)), s.info.info_hash_v2)
      await startDownload(peer)
      // v1 view: SHA-1 piece hashes
      const pieceHashes = (s.torrent.info as { pieces: Uint8Array }).pieces
      const bytes = await downloadPiece(peer, s, 2)
      assert.equal(hex(createHash('sha1').update(bytes).digest()), hex(pieceHashes.subarray(40, 60)))
      // v2 view: Merkle hashes
      await checkV2Hashes(peer, s)
    } finally {
      peer.conn.close('test done')
    }
  })

  test('a v1 handshake without the upgrade bit stays on the v1 swarm of a hybrid torrent', async () => {
    const s = seeded.get('hybrid')
    assert.ok(s?.info.info_hash_v1)
    const v1 = new Uint8Array(Buffer.from(s.info.info_hash_v1, 'hex'))
    const { peer, upgraded } = await dial(s, { infoHash: v1, v2: false })
    try {
      assert.equal(upgraded, false)
      await peer.take(is('have-all'), 'have-all')
    } finally {
      peer.conn.close('test done')
    }
  })
})
