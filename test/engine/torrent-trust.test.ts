/**
 * Blame for pieces that fail their hash check: trust points and smart ban (trust.ts), as a pure
 * module and through the coordinator with scripted peers (v1: SHA-1 of blocks read back from
 * storage; hybrid: BEP52 leaf hashes).
 *
 * Regression (review): every contributor of a failed piece used to be charged, and banned at two
 * failures, so an honest seeder sharing pieces with a poisoner got banned with it.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { PieceTrust, TRUST_MAX } from '../../gateway/engine/torrent/trust.ts'
import type { WireMessage } from '../../gateway/protocol/wire/messages.ts'
import { makeTestTorrent, settle, startTestTorrent, WirePeer } from '../helpers/fake-peer.ts'

type Req = Extract<WireMessage, { type: 'request' }>
const KIB = 1024

describe('PieceTrust (pure)', () => {
  test('trust: +1 per good piece (capped), −2 per failure, −2 more when alone; ban at ≤ −7 only after a sole failure', () => {
    const trust = new PieceTrust<string>()
    for (let i = 0; i < 20; i++) trust.onGoodPiece(['a'])
    assert.equal(trust.trust('a'), TRUST_MAX)
    // Shared failures never ban by themselves, however many.
    for (let i = 0; i < 10; i++) assert.deepEqual(trust.onFailedPiece(['h', 'x', 'h']), [])
    assert.equal(trust.trust('h'), -20)
    // A sole contributor is distrusted faster: −4 per failure, banned at the second.
    assert.deepEqual(trust.onFailedPiece(['s']), [])
    assert.equal(trust.trust('s'), -4)
    assert.deepEqual(trust.onFailedPiece(['s']), ['s'])
    // Shared failures after a sole one count towards the ban.
    assert.deepEqual(trust.onFailedPiece(['m']), [])
    assert.deepEqual(trust.onFailedPiece(['m', 'h2']), [])
    assert.deepEqual(trust.onFailedPiece(['m', 'h2']), ['m'])
  })

  test('smart ban: the peers whose block differs from the verified piece, and only them', () => {
    const trust = new PieceTrust<string>()
    trust.recordFailure(7, [
      { block: 0, peer: 'honest', kind: 'sha1', hash: 'aa' },
      { block: 1, peer: 'bad', kind: 'sha1', hash: 'xx' },
      { block: 2, peer: 'honest2', kind: 'leaf', hash: 'cc' },
    ])
    trust.recordFailure(7, [{ block: 1, peer: 'honest', kind: 'sha1', hash: 'yy' }])
    assert.ok(trust.hasFailures(7))
    assert.deepEqual(
      trust.needed(7).map((n) => `${n.kind}:${n.block}`),
      ['sha1:0', 'sha1:1', 'leaf:2'],
    )
    const good: Record<string, string> = { 'sha1:0': 'aa', 'sha1:1': 'bb', 'leaf:2': 'cc' }
    assert.deepEqual(trust.onPiecePassed(7, (b, k) => good[`${k}:${b}`]).sort(), ['bad', 'honest'])
    assert.ok(!trust.hasFailures(7), 'forgotten after the pass')
    assert.deepEqual(
      trust.onPiecePassed(7, () => 'zz'),
      [],
    )
  })

  test('bounded: old failed pieces and attempts are forgotten', () => {
    const trust = new PieceTrust<string>({ maxPieces: 2, maxAttempts: 1 })
    for (let p = 0; p < 5; p++) trust.recordFailure(p, [{ block: 0, peer: 'x', kind: 'sha1', hash: `${p}` }])
    assert.ok(!trust.hasFailures(0) && !trust.hasFailures(2) && trust.hasFailures(3) && trust.hasFailures(4))
    trust.recordFailure(4, [{ block: 0, peer: 'y', kind: 'sha1', hash: 'n' }])
    assert.deepEqual(
      trust.onPiecePassed(4, () => 'n'),
      [],
      'only the last attempt is kept',
    )
  })
})

/**
 * One piece of four blocks, honest peer A and peer B that corrupts block 2 during the first
 * `poisoned` attempts (then behaves). Returns the torrent's verdicts.
 */
async function sharedPoison(
  version: 'v1' | 'hybrid',
  poisoned: number,
): Promise<{ failed: number; aBanned: boolean; bBanned: boolean; complete: boolean }> {
  const pieceLength = 64 * KIB
  const { metainfo, data } = await makeTestTorrent(pieceLength, version, pieceLength, 3)
  const h = await startTestTorrent({ metainfo })
  const t = h.torrent
  try {
    const a = new WirePeer()
    const b = new WirePeer()
    for (const p of [a, b]) {
      assert.ok(p.attach(t))
      p.deliver({ type: 'have-all' }, { type: 'unchoke' })
      await settle()
    }
    const pending = new Map<WirePeer, Req[]>([
      [a, []],
      [b, []],
    ])
    const pull = (p: WirePeer): Req[] => {
      const q = pending.get(p)!
      q.push(...p.take('request'))
      for (const c of p.take('cancel')) {
        const i = q.findIndex((r) => r.index === c.index && r.begin === c.begin)
        if (i >= 0) q.splice(i, 1)
      }
      return q
    }
    for (let round = 0; round < 40 && !t.isComplete; round++) {
      const bad = t.stats.piecesFailed < poisoned
      for (const p of [a, b]) {
        const q = pull(p)
        const reqs = q.splice(0)
        p.answer(reqs, data, pieceLength, (r) => p === b && bad && r.begin === 32 * KIB)
        await settle()
      }
    }
    await settle()
    return {
      failed: t.stats.piecesFailed,
      aBanned: t.isBanned(a.info.host, a.info.port, a.info.peerId),
      bBanned: t.isBanned(b.info.host, b.info.port, b.info.peerId),
      complete: t.isComplete,
    }
  } finally {
    await t.stop()
  }
}

describe('blame through the coordinator (scripted peers)', () => {
  for (const version of ['v1', 'hybrid'] as const) {
    test(`${version}: shared failures ban nobody; after the piece passes, smart ban names the poisoner only`, async () => {
      const r = await sharedPoison(version, 5)
      assert.equal(r.failed, 5, 'five shared failures')
      assert.ok(r.complete, 'the piece passed in the end')
      assert.equal(r.aBanned, false, 'the honest co-contributor is never banned')
      assert.equal(r.bBanned, true, 'the peer whose block differed is banned (smart ban)')
    })
  }

  test('v1: one shared failure is enough for smart ban (trust alone would not ban)', async () => {
    const r = await sharedPoison('v1', 1)
    assert.equal(r.failed, 1)
    assert.deepEqual([r.aBanned, r.bBanned, r.complete], [false, true, true])
  })

  test('a peer that alone supplies bad pieces is distrusted faster (banned at the second)', async () => {
    const pieceLength = 16 * KIB
    const { metainfo, data } = await makeTestTorrent(4 * pieceLength, 'v1', pieceLength, 5)
    const h = await startTestTorrent({ metainfo })
    const t = h.torrent
    try {
      const c = new WirePeer()
      assert.ok(c.attach(t))
      c.deliver({ type: 'have-all' }, { type: 'unchoke' })
      await settle()
      c.answer(c.take('request').slice(0, 1), data, pieceLength, () => true)
      await settle()
      assert.equal(t.stats.piecesFailed, 1)
      assert.ok(!t.isBanned(c.info.host, c.info.port), 'not banned after one failure')
      c.answer(c.take('request').slice(0, 1), data, pieceLength, () => true)
      await settle()
      assert.equal(t.stats.piecesFailed, 2)
      assert.ok(t.isBanned(c.info.host, c.info.port, c.info.peerId), 'banned after the second')
      assert.match(c.closedReason ?? '', /banned/)
    } finally {
      await t.stop()
    }
  })
})
