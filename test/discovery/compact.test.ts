/**
 * BEP23 compact peers (IPv4 6-byte, IPv6 18-byte entries) and the bencode limits used on tracker
 * responses (gateway/protocol/bencode.ts with `TRACKER_BENCODE_LIMITS`): round trips, validation,
 * and property tests that random bytes only ever produce typed errors (never crashes or hangs).
 */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import {
  CompactPeerError,
  decodeCompactPeers,
  encodeCompactPeers,
  formatIPv6,
  parseIPv6,
} from '../../gateway/engine/discovery/compact.ts'
import { DiscoveryError } from '../../gateway/engine/discovery/peer-source.ts'
import { TrackerProtocolError } from '../../gateway/engine/discovery/tracker-common.ts'
import { parseAnnounceResponse, TRACKER_BENCODE_LIMITS } from '../../gateway/engine/discovery/tracker-http.ts'
import { type DecodeOptions, decodeBencode } from '../../gateway/protocol/bencode.ts'
import { BencodeError } from '../../gateway/protocol/errors.ts'

/** What the HTTP tracker client runs on a response body (optionally with other limits). */
const decodeTrackerBody = (bytes: Uint8Array, limits: DecodeOptions = TRACKER_BENCODE_LIMITS): unknown =>
  decodeBencode(bytes, limits).value

describe('compact peers (BEP23)', () => {
  test('IPv4 entries round trip and use network byte order', () => {
    const peers = [
      { host: '127.0.0.1', port: 6881 },
      { host: '10.1.2.3', port: 65535 },
    ]
    const bytes = encodeCompactPeers(peers, 'ipv4')
    assert.deepEqual([...bytes.subarray(0, 6)], [127, 0, 0, 1, 0x1a, 0xe1])
    assert.deepEqual(decodeCompactPeers(bytes, 'ipv4'), peers)
  })

  test('IPv6 entries round trip (18 bytes each) with canonical text', () => {
    const peers = [
      { host: '::1', port: 1 },
      { host: '2001:db8::8:800:200c:417a', port: 51413 },
      { host: '::ffff:192.0.2.1', port: 80 },
    ]
    const bytes = encodeCompactPeers(peers, 'ipv6')
    assert.equal(bytes.byteLength, 54)
    assert.deepEqual(decodeCompactPeers(bytes, 'ipv6'), peers)
    assert.equal(formatIPv6(parseIPv6('2001:0db8:0000:0000:0001:0000:0000:0001')), '2001:db8::1:0:0:1')
  })

  test('a length that is not a multiple of the entry size is a typed error', () => {
    assert.throws(() => decodeCompactPeers(new Uint8Array(7), 'ipv4'), CompactPeerError)
    assert.throws(() => decodeCompactPeers(new Uint8Array(12), 'ipv6'), CompactPeerError)
    assert.deepEqual(decodeCompactPeers(new Uint8Array(0), 'ipv4'), [])
  })

  test('port 0 entries are dropped; maxPeers bounds the output', () => {
    const bytes = Uint8Array.from([1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 9, 9, 9, 9, 9, 0, 10])
    assert.deepEqual(decodeCompactPeers(bytes, 'ipv4'), [
      { host: '5.6.7.8', port: 9 },
      { host: '9.9.9.9', port: 10 },
    ])
    assert.equal(decodeCompactPeers(bytes, 'ipv4', 1).length, 1)
  })

  test('encoding rejects wrong families, hostnames and bad ports', () => {
    assert.throws(() => encodeCompactPeers([{ host: '::1', port: 1 }], 'ipv4'), CompactPeerError)
    assert.throws(() => encodeCompactPeers([{ host: '1.2.3.4', port: 1 }], 'ipv6'), CompactPeerError)
    assert.throws(() => encodeCompactPeers([{ host: 'example.org', port: 1 }], 'ipv4'), CompactPeerError)
    assert.throws(() => encodeCompactPeers([{ host: '1.2.3.4', port: 0 }], 'ipv4'), CompactPeerError)
    assert.throws(() => encodeCompactPeers([{ host: '1.2.3.4', port: 70000 }], 'ipv4'), CompactPeerError)
  })

  test('property: random bytes decode to valid peers or a CompactPeerError, never anything else', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.constantFrom('ipv4' as const, 'ipv6' as const),
        (bytes, fam) => {
          try {
            const peers = decodeCompactPeers(bytes, fam)
            for (const p of peers) {
              assert.ok(p.port >= 1 && p.port <= 65535)
              // Whatever we decode re-encodes to the same entry.
              assert.deepEqual(decodeCompactPeers(encodeCompactPeers([p], fam), fam), [p])
            }
          } catch (err) {
            assert.ok(err instanceof CompactPeerError, `unexpected error ${String(err)}`)
          }
        },
      ),
      { numRuns: 2000 },
    )
  })

  test('property: valid peers round trip', () => {
    const v4 = fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([host, port]) => ({ host, port }))
    fc.assert(
      fc.property(fc.array(v4, { maxLength: 20 }), (peers) => {
        assert.deepEqual(decodeCompactPeers(encodeCompactPeers(peers, 'ipv4'), 'ipv4'), peers)
      }),
    )
    const v6 = fc.tuple(fc.ipV6(), fc.integer({ min: 1, max: 65535 })).map(([host, port]) => ({ host, port }))
    fc.assert(
      fc.property(fc.array(v6, { maxLength: 20 }), (peers) => {
        const decoded = decodeCompactPeers(encodeCompactPeers(peers, 'ipv6'), 'ipv6')
        assert.deepEqual(
          decoded.map((p) => [...parseIPv6(p.host)]),
          peers.map((p) => [...parseIPv6(p.host)]),
        )
      }),
    )
  })
})

describe('tracker response bencode limits', () => {
  test('accepts well-formed values and rejects malformed ones with offsets', () => {
    decodeTrackerBody(new TextEncoder().encode('d5:peers0:8:intervali1800ee'))
    decodeTrackerBody(new TextEncoder().encode('li-3ei0el0:ee'))
    for (const bad of ['', 'i-0e', 'i03e', 'ie', '3:ab', 'd1:ae', 'di1ei2ee', 'l', '05:abcde', 'i1ex', 'x']) {
      assert.throws(
        () => decodeTrackerBody(new TextEncoder().encode(bad)),
        (err) => err instanceof BencodeError && err.offset >= 0,
        bad,
      )
    }
  })

  test('input that makes the bencode package loop forever is rejected up front', () => {
    // A negative string length moves the package's cursor backwards: `d1:al-3:xe` never terminates there.
    const body = new TextEncoder().encode('d1:al-3:xe')
    assert.throws(() => decodeTrackerBody(body), BencodeError)
    assert.throws(
      () => parseAnnounceResponse('http://127.0.0.1/announce', body),
      (err) => err instanceof TrackerProtocolError && err.cause instanceof BencodeError,
    )
  })

  test('depth and item limits are enforced', () => {
    const deep = new TextEncoder().encode(`${'l'.repeat(100)}${'e'.repeat(100)}`)
    assert.throws(() => decodeTrackerBody(deep), BencodeError)
    decodeTrackerBody(deep, { ...TRACKER_BENCODE_LIMITS, maxDepth: 100 })
    assert.throws(
      () =>
        decodeTrackerBody(new TextEncoder().encode('li1ei2ei3ee'), {
          ...TRACKER_BENCODE_LIMITS,
          maxTokens: 3,
        }),
      BencodeError,
    )
  })

  test('property: random bytes (biased towards bencode tokens) never crash the tracker response parser', () => {
    const token = fc.constantFrom(
      'd',
      'l',
      'i',
      'e',
      ':',
      '-',
      '0',
      '1',
      '3',
      '5',
      '9',
      'a',
      'peers',
      'interval',
    )
    const text = fc.array(token, { maxLength: 40 }).map((t) => new TextEncoder().encode(t.join('')))
    fc.assert(
      fc.property(fc.oneof(text, fc.uint8Array({ maxLength: 100 })), (bytes) => {
        try {
          parseAnnounceResponse('http://127.0.0.1/announce', bytes)
        } catch (err) {
          assert.ok(err instanceof DiscoveryError, `unexpected error ${String(err)}`)
        }
      }),
      { numRuns: 3000 },
    )
  })
})
