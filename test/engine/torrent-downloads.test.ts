/**
 * The torrent coordinator's download side, driven in-process by scripted peers (`WirePeer`) with a
 * hand-moved clock (no sockets, no timers): deterministic regressions for the review findings.
 *
 * - slow peers: timeouts are per peer ("no block for N s"), only the newest request is released,
 *   late answers are accepted, the queue depth follows the measured rate (RequestQueue);
 * - endgame: a cancelled request answered anyway is not "unrequested" (BEP6);
 * - download budget: no request is sent without budget from the download limiter;
 * - `have` before the metadata is applied once it is known; `have` floods are idempotent;
 * - bans name the connection (and peer id), never the BEP10 `p` port.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Torrent } from '../../gateway/engine/torrent/torrent.ts'
import { EXTENDED_HANDSHAKE_ID, encodeExtendedHandshake } from '../../gateway/protocol/wire/extensions.ts'
import type { WireMessage } from '../../gateway/protocol/wire/messages.ts'
import { makeTestTorrent, settle, startTestTorrent, WirePeer } from '../helpers/fake-peer.ts'

type Req = Extract<WireMessage, { type: 'request' }>
const KIB = 1024

/** A peer's request queue as the peer sees it (FIFO, cancels removed). */
class PeerQueue {
  readonly pending: Req[] = []
  readonly peer: WirePeer
  constructor(peer: WirePeer) {
    this.peer = peer
  }
  pull(): void {
    this.pending.push(...this.peer.take('request'))
    for (const c of this.peer.take('cancel')) {
      const i = this.pending.findIndex((r) => r.index === c.index && r.begin === c.begin)
      if (i >= 0) this.pending.splice(i, 1)
    }
  }
  /** Answers the `n` oldest requests, in order. */
  serve(n: number, data: Uint8Array, pieceLength: number): Req[] {
    this.pull()
    const out = this.pending.splice(0, n)
    this.peer.answer(out, data, pieceLength)
    return out
  }
}

async function seeder(
  torrent: Torrent,
  init: ConstructorParameters<typeof WirePeer>[0] = {},
): Promise<WirePeer> {
  const p = new WirePeer(init)
  assert.ok(p.attach(torrent))
  p.deliver({ type: 'have-all' }, { type: 'unchoke' })
  await settle()
  return p
}

describe('torrent downloads (scripted peers, manual clock)', () => {
  test('a slow peer serving its queue in order is never timed out per request; a stalled one loses only its newest request, and its late answer counts', async () => {
    const pieceLength = 64 * KIB
    const { metainfo, data } = await makeTestTorrent(4 * 1024 * KIB, 'v1', pieceLength)
    const h = await startTestTorrent({ metainfo, requestTimeoutMs: 30_000 })
    const t = h.torrent
    try {
      const p = await seeder(t)
      const q = new PeerQueue(p)
      q.pull()
      assert.equal(q.pending.length, 2, 'a new peer starts at the minimum depth (2)')
      // Fast phase: 16 blocks a second (256 KiB/s) for 4 s: the depth grows with the rate.
      for (let s = 0; s < 4; s++) {
        for (let i = 0; i < 16; i++) {
          q.serve(1, data, pieceLength)
          await settle(4)
        }
        h.advance(1000)
        await settle()
      }
      q.pull()
      const depth = q.pending.length
      assert.ok(depth >= 16, `the queue follows the rate (rate × 3 s ÷ 16 KiB), got ${depth}`)
      const peer = t.peers.get(`${p.info.host}:${p.info.port}`)!
      assert.ok(depth <= peer.reqq)
      // Slow phase: one block every 10 s, in order, for 150 s: every request waits far longer than
      // the 30 s timeout, but the peer keeps making progress, so nothing times out.
      const before = t.stats.downloadedBytes
      for (let s = 0; s < 15; s++) {
        h.advance(10_000)
        assert.equal(q.serve(1, data, pieceLength).length, 1)
        await settle()
      }
      assert.equal(t.stats.requestTimeouts, 0, 'no timeout while blocks keep coming')
      assert.equal(peer.unrequested, 0)
      assert.equal(p.closedReason, undefined, 'the slow honest peer stays connected')
      assert.equal(t.stats.downloadedBytes - before, 15 * 16 * KIB, 'every slow block counted')
      // Stall: no block for 30 s → only the newest request is released, no new request is sent.
      q.pull()
      const newest = q.pending.at(-1)!
      const queued = q.pending.length
      h.advance(31_000)
      await settle()
      assert.equal(t.stats.requestTimeouts, 1, 'one request timed out')
      assert.equal(peer.outstanding.size, queued - 1, 'only the newest request was released')
      assert.ok(!peer.outstanding.has({ piece: newest.index, offset: newest.begin, length: newest.length }))
      q.pull()
      assert.equal(q.pending.length, queued, 'no new request to a timed-out peer')
      // The peer wakes up and serves its whole queue in order, the timed-out request included.
      const down = t.stats.downloadedBytes
      const served = q.serve(queued, data, pieceLength)
      await settle()
      assert.equal(served.length, queued)
      assert.equal(peer.unrequested, 0, 'the late answer is not "unrequested"')
      assert.equal(t.stats.downloadedBytes - down, queued * 16 * KIB, 'the late block counts')
      assert.equal(p.closedReason, undefined)
      // And the download completes from this one peer.
      for (let i = 0; i < 200 && !t.isComplete; i++) {
        q.serve(64, data, pieceLength)
        await settle()
        h.advance(1000)
      }
      await t.whenComplete({ signal: AbortSignal.timeout(5000) })
      assert.equal(t.stats.piecesFailed, 0)
      assert.equal(t.stats.protocolViolations, 0)
    } finally {
      await t.stop()
    }
  })

  test('endgame: a block answered after our cancel is not counted as unrequested (BEP6)', async () => {
    const pieceLength = 64 * KIB
    const { metainfo, data } = await makeTestTorrent(3 * pieceLength, 'v1', pieceLength)
    const h = await startTestTorrent({ metainfo })
    const t = h.torrent
    try {
      // A and B have piece 0 only (4 blocks): nobody has the rest, so the endgame starts at once.
      const only0 = new Uint8Array([0x80])
      const attach = async (): Promise<WirePeer> => {
        const p = new WirePeer()
        assert.ok(p.attach(t))
        p.deliver({ type: 'bitfield', bitfield: only0 }, { type: 'unchoke' })
        await settle()
        return p
      }
      const a = await attach()
      const b = await attach()
      const qa = new PeerQueue(a)
      const qb = new PeerQueue(b)
      qa.pull()
      qb.pull()
      assert.equal(qa.pending.length + qb.pending.length, 4, 'every block requested once')
      // A answers its blocks; idle in the endgame, it re-requests B's (BEP3 endgame).
      qa.serve(qa.pending.length, data, pieceLength)
      await settle()
      qa.pull()
      assert.ok(qa.pending.length > 0, 'endgame duplicate requests to A')
      const dup = new Set(qa.pending.map((r) => `${r.index}:${r.begin}`))
      const bStill = [...qb.pending]
      qa.serve(qa.pending.length, data, pieceLength)
      await settle()
      assert.ok(b.take('cancel').length > 0, 'B got cancels for the blocks A delivered')
      assert.ok(t.haveBitfield!.has(0), 'piece 0 verified')
      // B's answers were already on the wire: they arrive after the cancel.
      b.answer(
        bStill.filter((r) => dup.has(`${r.index}:${r.begin}`)),
        data,
        pieceLength,
      )
      await settle()
      const peerB = t.peers.get(`${b.info.host}:${b.info.port}`)
      assert.ok(peerB, 'B stays connected')
      assert.equal(peerB.unrequested, 0)
      assert.equal(b.closedReason, undefined)
    } finally {
      await t.stop()
    }
  })

  test('download rate limit: requests are sent only with budget from the limiter', async () => {
    const pieceLength = 64 * KIB
    const { metainfo, data } = await makeTestTorrent(1024 * KIB, 'v1', pieceLength)
    let granted = 0
    const waiting: { bytes: number; resolve(): void }[] = []
    const h = await startTestTorrent({
      metainfo,
      takeDownload: (bytes) =>
        new Promise<void>((resolve) => {
          waiting.push({ bytes, resolve })
        }),
    })
    const grant = async (): Promise<void> => {
      const w = waiting.shift()
      assert.ok(w, 'the torrent asked for budget')
      granted += w.bytes
      w.resolve()
      await settle()
    }
    const t = h.torrent
    try {
      const p = await seeder(t)
      const q = new PeerQueue(p)
      q.pull()
      assert.equal(q.pending.length, 0, 'no budget yet: no request on the wire')
      assert.equal(waiting.length, 1, 'one budget acquisition at a time')
      let requested = 0
      for (let round = 0; round < 20; round++) {
        if (waiting.length > 0) await grant()
        q.pull()
        requested = q.pending.length + t.stats.downloadedBytes / (16 * KIB)
        assert.ok(requested * 16 * KIB <= granted, `requests (${requested}) within budget (${granted} B)`)
        q.serve(q.pending.length, data, pieceLength)
        await settle()
        h.advance(1000)
      }
      assert.ok(t.stats.downloadedBytes > 0)
    } finally {
      await t.stop()
    }
  })

  test('`have` before the metadata is applied when it arrives; `have` floods act once', async () => {
    const pieceLength = 16 * KIB
    const { metainfo, data } = await makeTestTorrent(16 * pieceLength, 'v1', pieceLength)
    const h = await startTestTorrent({ infoHashV1: metainfo.info.infoHashV1! })
    const t = h.torrent
    try {
      const p = new WirePeer()
      assert.ok(p.attach(t))
      // Magnet start: the peer announces pieces 3 and 5 before we know the piece count.
      p.deliver(
        { type: 'have-none' },
        { type: 'have', index: 3 },
        { type: 'have', index: 5 },
        { type: 'unchoke' },
      )
      await t.onMetadata(metainfo.info)
      await settle()
      const peer = t.peers.get(`${p.info.host}:${p.info.port}`)!
      assert.ok(peer.hasPiece(3) && peer.hasPiece(5) && !peer.hasPiece(4), 'pending haves applied')
      assert.equal(t.picker!.availability(3), 1)
      assert.equal(p.take('interested').length, 1, 'interested after the metadata')
      const reqs = p.take('request')
      assert.ok(
        reqs.length > 0 && reqs.every((r) => r.index === 3 || r.index === 5),
        'requests only what it has',
      )
      p.answer(reqs, data, pieceLength)
      await settle()
      // A flood of the same `have`: availability counted once, one `interested` at most.
      for (let i = 0; i < 1000; i++) p.deliver({ type: 'have', index: 7 })
      await settle()
      assert.equal(t.picker!.availability(7), 1, 'a repeated have is counted once')
      assert.ok(p.take('interested').length === 0, 'still interested: no repeated message')
      assert.equal(p.closedReason, undefined)

      // Out-of-range `have` received before the metadata: a protocol violation once it is known.
      const h2 = await startTestTorrent({ infoHashV1: metainfo.info.infoHashV1! })
      const bad = new WirePeer()
      assert.ok(bad.attach(h2.torrent))
      bad.deliver({ type: 'have', index: 999 })
      await h2.torrent.onMetadata(metainfo.info)
      await settle()
      assert.match(bad.closedReason ?? '', /have index 999 out of range/)
      await h2.torrent.stop()
    } finally {
      await t.stop()
    }
  })

  test('BEP6: a cancelled request still queued is answered with `reject`, the others with `piece`', async () => {
    const pieceLength = 64 * KIB
    const { metainfo, data } = await makeTestTorrent(pieceLength, 'v1', pieceLength)
    const h = await startTestTorrent({ metainfo })
    const t = h.torrent
    try {
      const seed = await seeder(t)
      seed.answer(seed.take('request'), data, pieceLength)
      await settle()
      seed.answer(seed.take('request'), data, pieceLength)
      await t.whenComplete({ signal: AbortSignal.timeout(5000) })
      const leecher = new WirePeer()
      assert.ok(leecher.attach(t))
      assert.equal(leecher.take('have-all').length, 1)
      leecher.deliver({ type: 'have-none' }, { type: 'interested' })
      assert.equal(leecher.take('unchoke').length, 1, 'a free slot: unchoked at once')
      const req = (begin: number): WireMessage => ({ type: 'request', index: 0, begin, length: 16 * KIB })
      // Three requests, then a cancel of the last one before it is served (same burst).
      leecher.deliver(req(0), req(16 * KIB), req(32 * KIB), {
        type: 'cancel',
        index: 0,
        begin: 32 * KIB,
        length: 16 * KIB,
      })
      await settle()
      const pieces = leecher.take('piece').map((m) => m.begin)
      const rejects = leecher.take('reject').map((m) => m.begin)
      assert.deepEqual(pieces, [0, 16 * KIB], 'the others are served')
      assert.deepEqual(rejects, [32 * KIB], 'the cancelled one is rejected (BEP6)')
      // Without Fast a cancel is silent (BEP3 has no reject).
      const slow = new WirePeer({ fast: false })
      assert.ok(slow.attach(t))
      slow.deliver({ type: 'interested' })
      slow.deliver(req(0), req(16 * KIB), { type: 'cancel', index: 0, begin: 16 * KIB, length: 16 * KIB })
      await settle()
      assert.deepEqual(
        slow.take('piece').map((m) => m.begin),
        [0],
      )
      assert.equal(slow.take('reject').length, 0)
    } finally {
      await t.stop()
    }
  })

  test('a ban names the connection and the peer id, never the BEP10 `p` port', async () => {
    const { metainfo } = await makeTestTorrent(256 * KIB, 'v1', 64 * KIB)
    const h = await startTestTorrent({ metainfo })
    const t = h.torrent
    try {
      t.addPeers([{ host: '127.0.0.1', port: 6000 }]) // the honest seeder's listen address
      // A hostile incoming peer claims the honest seeder's port as its own listen port (`p`).
      const liar = new WirePeer({ host: '127.0.0.1', port: 51_000, incoming: true, extended: true })
      assert.ok(liar.attach(t))
      liar.deliver({
        type: 'extended',
        id: EXTENDED_HANDSHAKE_ID,
        payload: encodeExtendedHandshake({ m: new Map(), p: 6000 }),
      })
      const peer = t.peers.get('127.0.0.1:51000')!
      assert.equal(peer.listenPort, 6000)
      t.ban(peer, 'test')
      await settle()
      assert.ok(t.isBanned('127.0.0.1', 51_000), 'the connection address is banned')
      assert.ok(t.isBanned('10.0.0.9', 1, liar.info.peerId), 'the peer id is banned')
      assert.ok(!t.isBanned('127.0.0.1', 6000), 'the address named by `p` is not')
      assert.ok(
        t.knownPeers().some((a) => a.port === 6000),
        'and stays known',
      )
      // An outgoing peer is banned by the address we dialled (it leaves the known list).
      const out = new WirePeer({ host: '127.0.0.3', port: 7000 })
      t.addPeers([{ host: '127.0.0.3', port: 7000 }])
      assert.ok(out.attach(t))
      t.ban(t.peers.get('127.0.0.3:7000')!, 'test')
      await settle()
      assert.ok(t.isBanned('127.0.0.3', 7000))
      assert.ok(!t.knownPeers().some((a) => a.port === 7000))
      const dialsBefore = h.dials.length
      t.addPeers([{ host: '127.0.0.3', port: 7000 }])
      assert.equal(h.dials.length, dialsBefore, 'a banned address is not dialled again')
      assert.ok(!new WirePeer({ host: '127.0.0.3', port: 7000 }).attach(t), 'nor accepted')
    } finally {
      await t.stop()
    }
  })
})
