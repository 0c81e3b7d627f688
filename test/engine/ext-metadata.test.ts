/**
 * BEP9 metadata fetch after a magnet start cannot be stalled or poisoned by single peers:
 *
 * 1. A peer advertising a wrong `metadata_size` (size + 100) that then leaves, and a peer that
 *    rejects every request, connected before an honest libtorrent seeder: the metadata arrives
 *    from libtorrent, and neither hostile peer is banned (rejecting is allowed, BEP9).
 * 2. A peer that never answers: its requests time out (BEP9 gives no timeout; ours is 10 s) and
 *    go to another peer.
 * 3. Two scripted peers with the right size, one serving the real metadata and one corrupt bytes:
 *    the first attempt mixes their pieces and fails the info-hash check; the engine then fetches
 *    each piece from a single peer, and bans exactly the peer whose pieces differ from the verified
 *    metadata — never the honest one.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import type { Session } from '../../gateway/engine/session.ts'
import { encodeBencode } from '../../gateway/protocol/bencode.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { ExtPeer } from '../helpers/ext-peer.ts'
import { HOST, ltSeed, makeLtTorrent, startSession, waitUntil } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { type TempDir, tempDir } from '../helpers/payload.ts'

/** A v1 info dict of `pieces` pieces (16 KiB each): 20 bytes of metadata per piece. */
function bigInfo(pieces: number): { bytes: Uint8Array; hash: Uint8Array } {
  const bytes = encodeBencode({
    length: pieces * 16384,
    name: 'ext-metadata.bin',
    'piece length': 16384,
    pieces: randomBytes(pieces * 20),
  })
  return { bytes, hash: new Uint8Array(createHash('sha1').update(bytes).digest()) }
}

describe('BEP9 metadata fetch: hostile peers cannot stall or poison it', { timeout: 85_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-ext-metadata-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  test('wrong-size peer that leaves + peer that rejects everything + honest libtorrent seed', async () => {
    // 16 KiB pieces of 40 MB: ~51 KB of metadata (4 ut_metadata pieces).
    const made = await makeLtTorrent(
      lt,
      join(tmp.path, 'a'),
      { name: 'meta.bin', seed: 'ext-meta', size: 40 * 1024 * 1024 },
      'v1',
      16384,
    )
    await ltSeed(lt, made)
    const infoHash = made.metainfo.info.infoHashV1!
    const size = made.metainfo.info.infoBytes.byteLength
    assert.ok(size > 3 * 16384, 'metadata of several pieces')
    let session: Session | undefined
    const peers: ExtPeer[] = []
    try {
      session = await startSession('ext-metadata')
      const t = await session.addTorrent({ infoHashV1: infoHash, store: new MemoryPieceStore() })
      // Connected first, so they are the first candidates the fetch sees.
      const wrong = await ExtPeer.dial({
        port: session.port,
        infoHash,
        metadata: 'reject',
        metadataSize: size + 100,
      })
      const rejecter = await ExtPeer.dial({
        port: session.port,
        infoHash,
        metadata: 'reject',
        metadataSize: size,
      })
      peers.push(wrong, rejecter)
      await waitUntil(() => wrong.metadataRequests > 0 && rejecter.metadataRequests > 0, 'requests to both')
      wrong.close()
      await waitUntil(() => t.peers.size === 1, 'the wrong-size peer gone')
      t.addPeers([{ host: HOST, port: lt.port }])
      await t.whenMetadata({ signal: AbortSignal.timeout(20_000) })
      assert.equal(toHex(t.info!.infoBytes), toHex(made.metainfo.info.infoBytes))
      assert.equal(t.stats.peersBanned, 0, 'rejecting or leaving is not misbehaviour')
      assert.ok(!rejecter.closed, 'the rejecting peer is still connected')
    } finally {
      for (const p of peers) p.close()
      await session?.stop()
    }
  })

  test('a peer that never answers: its requests time out and go to another peer', async () => {
    const { bytes, hash } = bigInfo(5000) // 7 ut_metadata pieces: some go to each peer
    let session: Session | undefined
    const peers: ExtPeer[] = []
    try {
      session = await startSession('ext-metadata-silent')
      const t = await session.addTorrent({ infoHashV1: hash, store: new MemoryPieceStore() })
      const silent = await ExtPeer.dial({
        port: session.port,
        infoHash: hash,
        info: bytes,
        metadata: 'ignore',
      })
      peers.push(silent)
      await waitUntil(() => silent.metadataRequests > 0, 'requests to the silent peer')
      const honest = await ExtPeer.dial({
        port: session.port,
        infoHash: hash,
        info: bytes,
        metadata: 'serve',
      })
      peers.push(honest)
      await t.whenMetadata({ signal: AbortSignal.timeout(25_000) })
      assert.equal(toHex(t.info!.infoBytes), toHex(bytes))
      assert.equal(t.stats.peersBanned, 0, 'silence is not proof of anything')
    } finally {
      for (const p of peers) p.close()
      await session?.stop()
    }
  })

  test('corrupt pieces mixed with honest ones: only the corrupt peer is banned', async () => {
    const { bytes, hash } = bigInfo(5000) // ~100 KB: 7 ut_metadata pieces
    let session: Session | undefined
    const peers: ExtPeer[] = []
    try {
      session = await startSession('ext-metadata-mixed')
      const t = await session.addTorrent({ infoHashV1: hash, store: new MemoryPieceStore() })
      const honest = await ExtPeer.dial({
        port: session.port,
        infoHash: hash,
        info: bytes,
        metadata: 'serve',
      })
      const corrupt = await ExtPeer.dial({
        port: session.port,
        infoHash: hash,
        info: bytes,
        metadata: 'corrupt',
      })
      peers.push(honest, corrupt)
      await t.whenMetadata({ signal: AbortSignal.timeout(20_000) })
      assert.equal(toHex(t.info!.infoBytes), toHex(bytes))
      await waitUntil(() => corrupt.closed, 'the corrupt peer closed', 5000)
      assert.ok(t.isBanned(HOST, corrupt.port, corrupt.peerId), 'the corrupt peer is banned')
      assert.ok(!t.isBanned(HOST, honest.port, honest.peerId), 'the honest peer is not banned')
      assert.ok(!honest.closed, 'the honest peer stays connected')
      assert.equal(t.stats.peersBanned, 1)
      assert.ok(corrupt.metadataRequests >= 1 && honest.metadataRequests >= 1, 'both were asked')
    } finally {
      for (const p of peers) p.close()
      await session?.stop()
    }
  })
})
