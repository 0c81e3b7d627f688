/** Choker: tit-for-tat ranking, seeding ranking, optimistic unchoke rotation and weighting. */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type ChokerPeer, chokeRound, rankForUnchoke } from '../../gateway/engine/choker.ts'

function peer(name: string, over: Partial<ChokerPeer<string>> = {}): ChokerPeer<string> {
  return {
    peer: name,
    interested: true,
    choked: true,
    downloadRate: 0,
    uploadRate: 0,
    snubbed: false,
    connectedAt: 0,
    optimistic: false,
    ...over,
  }
}

const NOW = 1_000_000 // every peer connected long ago unless stated

describe('chokeRound', () => {
  test('leeching: the best downloaders among interested, non-snubbed peers get the regular slots', () => {
    const peers = [
      peer('slow', { downloadRate: 10 }),
      peer('fast', { downloadRate: 900 }),
      peer('mid', { downloadRate: 500, choked: false }),
      peer('snubbed', { downloadRate: 5_000, snubbed: true }),
      peer('bored', { downloadRate: 9_000, interested: false, choked: false }),
      peer('ok', { downloadRate: 300 }),
      peer('meh', { downloadRate: 100 }),
    ]
    const d = chokeRound(peers, { now: NOW, round: 1, seeding: false, slots: 3, optimisticSlots: 0 })
    assert.deepEqual(d.unchoked, ['fast', 'mid', 'ok'])
    assert.deepEqual(d.unchoke, ['fast', 'ok'], 'only peers currently choked need a message')
    assert.deepEqual(d.choke, ['bored'])
  })

  test('seeding: ranks by upload rate to the peer', () => {
    const peers = [peer('a', { uploadRate: 1, downloadRate: 1_000 }), peer('b', { uploadRate: 50 })]
    assert.deepEqual(
      rankForUnchoke(peers, true).map((p) => p.peer),
      ['b', 'a'],
    )
    assert.deepEqual(
      rankForUnchoke(peers, false).map((p) => p.peer),
      ['a', 'b'],
    )
  })

  test('the optimistic unchoke is kept between rotations and rotates every third round', () => {
    const peers = [
      peer('r1', { downloadRate: 100 }),
      peer('x', { optimistic: true, choked: false }),
      peer('y'),
      peer('z'),
    ]
    const keep = chokeRound(peers, { now: NOW, round: 4, seeding: false, slots: 1, random: () => 0 })
    assert.deepEqual(keep.optimistic, ['x'])
    assert.deepEqual(keep.unchoked, ['r1', 'x'])
    const rotated = chokeRound(peers, { now: NOW, round: 6, seeding: false, slots: 1, random: () => 0.99 })
    assert.equal(rotated.optimistic.length, 1)
    assert.notEqual(rotated.optimistic[0], 'x', 'rotation moves to another peer')
    assert.ok(rotated.choke.includes('x'))
  })

  test('the optimistic unchoke is never a peer that already has a regular slot', () => {
    const peers = [peer('a', { downloadRate: 100 }), peer('b', { downloadRate: 50 })]
    const d = chokeRound(peers, { now: NOW, round: 0, seeding: false, slots: 1, random: () => 0 })
    assert.deepEqual(d.unchoked, ['a', 'b'])
    assert.deepEqual(d.optimistic, ['b'])
    const alone = chokeRound([peer('a', { downloadRate: 1 })], {
      now: NOW,
      round: 0,
      seeding: false,
      slots: 1,
    })
    assert.deepEqual(alone.optimistic, [])
  })

  test('newly connected peers are three times as likely to be the optimistic unchoke', () => {
    const peers = [peer('old', { connectedAt: 0 }), peer('new', { connectedAt: NOW - 1_000 })]
    const counts = { old: 0, new: 0 }
    const draws = 400
    for (let i = 0; i < draws; i++) {
      const u = (i + 0.5) / draws // evenly spread random values
      const d = chokeRound(peers, { now: NOW, round: 0, seeding: false, slots: 0, random: () => u })
      const chosen = d.optimistic[0] as 'old' | 'new'
      counts[chosen]++
    }
    assert.equal(counts.new, 3 * counts.old)
  })

  test('validates its options', () => {
    assert.throws(() => chokeRound([], { now: 0, round: 0, seeding: false, slots: -1 }), RangeError)
    assert.throws(
      () => chokeRound([], { now: 0, round: 0, seeding: false, optimisticEveryRounds: 0 }),
      RangeError,
    )
  })
})
