/**
 * BEP11 ut_pex: compact 6/18-byte contacts with flags, hand-computed bytes, the list caps,
 * untrusted-input filtering, and the one-message-per-minute rate limiter.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  decodePex,
  encodePex,
  PEX_FLAGS,
  type PexMessage,
  PexRateLimiter,
} from '../../gateway/protocol/wire/ut-pex.ts'

const latin1 = (b: Uint8Array): string => Buffer.from(b).toString('latin1')
const bytes = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'))
const empty: PexMessage = { added: [], added6: [], dropped: [], dropped6: [] }

describe('ut_pex codec', () => {
  test('hand-computed compact bytes for one IPv4 contact with flags', () => {
    const enc = encodePex({
      ...empty,
      added: [{ host: '10.0.0.1', port: 6881, flags: PEX_FLAGS.seed | PEX_FLAGS.reachable }],
    })
    // 10.0.0.1:6881 = 0a 00 00 01 1a e1; flags 0x12
    assert.equal(
      latin1(enc),
      `d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f1:\x126:added60:8:added6.f0:7:dropped0:8:dropped60:e`,
    )
  })

  test('round trip of IPv4 and IPv6 contacts', () => {
    const msg: PexMessage = {
      added: [
        { host: '127.0.0.1', port: 1, flags: 0 },
        { host: '192.168.1.200', port: 65535, flags: PEX_FLAGS.utp },
      ],
      added6: [
        { host: '2001:db8::1', port: 443, flags: PEX_FLAGS.prefersEncryption },
        { host: '::ffff:1.2.3.4', port: 80, flags: 0 },
      ],
      dropped: [{ host: '8.8.8.8', port: 53, flags: 0 }],
      dropped6: [{ host: 'fe80::1:2:3:4', port: 9, flags: 0 }],
    }
    const r = decodePex(encodePex(msg))
    assert.ok(r.ok, r.ok ? '' : r.error.message)
    assert.deepEqual(r.value, {
      ...msg,
      added6: [msg.added6[0], { host: '::ffff:102:304', port: 80, flags: 0 }],
    })
  })

  test('decoding drops port-0 contacts, duplicates and contacts both added and dropped', () => {
    const c = (ip: number[], port: number) => String.fromCharCode(...ip, port >> 8, port & 0xff)
    const added = c([1, 1, 1, 1], 1) + c([1, 1, 1, 1], 1) + c([2, 2, 2, 2], 0) + c([3, 3, 3, 3], 3)
    const dropped = c([3, 3, 3, 3], 3)
    const r = decodePex(bytes(`d5:added${added.length}:${added}7:dropped6:${dropped}e`))
    assert.ok(r.ok)
    assert.deepEqual(r.value.added, [{ host: '1.1.1.1', port: 1, flags: 0 }])
    assert.deepEqual(r.value.dropped, [{ host: '3.3.3.3', port: 3, flags: 0 }])
  })

  test('flags of the wrong length are ignored', () => {
    const r = decodePex(bytes('d5:added6:\x01\x02\x03\x04\x00\x057:added.f2:\x02\x02e'))
    assert.ok(r.ok)
    assert.deepEqual(r.value.added, [{ host: '1.2.3.4', port: 5, flags: 0 }])
  })

  test('malformed messages are typed errors', () => {
    for (const bad of [
      'de', // none of added/added6/dropped/dropped6 (BEP11 "must contain at least one")
      'd5:added5:abcdee', // partial IPv4 contact
      'd6:added617:aaaaaaaaaaaaaaaaae', // partial IPv6 contact
      'd5:addedi1ee', // not a string
      'l5:addede',
      'd5:added',
    ]) {
      assert.equal(decodePex(bytes(bad)).ok, false, bad)
    }
  })

  test('list caps: BEP11 50 per message when encoding, configurable when decoding', () => {
    const peers = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ host: `10.0.${i >> 8}.${i & 0xff}`, port: 1000 + i, flags: 0 }))
    assert.throws(() => encodePex({ ...empty, added: peers(51) }), RangeError)
    assert.throws(() => encodePex({ ...empty, added: peers(30), added6: [], dropped: peers(51) }), RangeError)
    assert.throws(() => encodePex(empty), RangeError)
    const initial = encodePex({ ...empty, added: peers(120) }, { initial: true })
    assert.equal(decodePex(initial).ok, true)
    const capped = decodePex(initial, { maxEntries: 50 })
    assert.ok(!capped.ok && capped.error.code === 'GW_ERR_WIRE_LIMIT_EXCEEDED')
    assert.throws(
      () =>
        encodePex({
          ...empty,
          added: [{ host: '1.1.1.1', port: 1, flags: 0 }],
          dropped: [{ host: '1.1.1.1', port: 1, flags: 0 }],
        }),
      RangeError,
    )
  })
})

describe('PEX rate limiter', () => {
  test('at most one message per minute, time passed in', () => {
    const rl = new PexRateLimiter()
    assert.equal(rl.trySend(1_000), true)
    assert.equal(rl.trySend(30_000), false)
    assert.equal(rl.delayUntilNextSend(30_000), 31_000)
    assert.equal(rl.trySend(61_000), true)
  })

  test('flags a peer sending more often than BEP11 allows', () => {
    const rl = new PexRateLimiter({ intervalMs: 60_000 })
    assert.equal(rl.acceptReceived(0), true)
    assert.equal(rl.acceptReceived(10_000), false)
    assert.equal(rl.acceptReceived(75_000), true)
  })
})
