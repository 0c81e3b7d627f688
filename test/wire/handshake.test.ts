/**
 * The 68-byte handshake (BEP3), reserved bits (BEP5/6/10/52) and BEP20 peer ids.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  clientFromPeerId,
  commonFlags,
  decodeHandshake,
  decodeHandshakeHeader,
  encodeHandshake,
  HANDSHAKE_LENGTH,
  makePeerId,
  makeReserved,
  readReserved,
} from '../../gateway/protocol/wire/handshake.ts'

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('handshake', () => {
  const infoHash = Uint8Array.from({ length: 20 }, (_, i) => 0xa0 + i)
  const peerId = ascii('-LT2080-abcdefghijkl')

  test('byte layout: 19, "BitTorrent protocol", reserved, info hash, peer id', () => {
    const reserved = makeReserved({ extensionProtocol: true, fast: true, dht: true, v2Upgrade: true })
    const bytes = encodeHandshake({ reserved, infoHash, peerId })
    assert.equal(bytes.length, HANDSHAKE_LENGTH)
    assert.equal(bytes[0], 19)
    assert.equal(new TextDecoder().decode(bytes.subarray(1, 20)), 'BitTorrent protocol')
    assert.deepEqual([...bytes.subarray(20, 28)], [0, 0, 0, 0, 0, 0x10, 0, 0x15])
    assert.deepEqual(bytes.subarray(28, 48), infoHash)
    assert.deepEqual(bytes.subarray(48, 68), peerId)
  })

  test('round trip and header-only decoding', () => {
    const reserved = makeReserved({ fast: true })
    const bytes = encodeHandshake({ reserved, infoHash, peerId })
    const r = decodeHandshake(bytes)
    assert.ok(r.ok)
    assert.deepEqual(r.value, { reserved, infoHash, peerId })
    const h = decodeHandshakeHeader(bytes.subarray(0, 48))
    assert.ok(h.ok)
    assert.deepEqual(h.value.infoHash, infoHash)
  })

  test('reserved bits: BEP10 byte 5 0x10, BEP6 byte 7 0x04, BEP5 byte 7 0x01, BEP52 byte 7 0x10', () => {
    assert.deepEqual([...makeReserved({ extensionProtocol: true })], [0, 0, 0, 0, 0, 0x10, 0, 0])
    assert.deepEqual([...makeReserved({ fast: true })], [0, 0, 0, 0, 0, 0, 0, 0x04])
    assert.deepEqual([...makeReserved({ dht: true })], [0, 0, 0, 0, 0, 0, 0, 0x01])
    assert.deepEqual([...makeReserved({ v2Upgrade: true })], [0, 0, 0, 0, 0, 0, 0, 0x10])
    const flags = readReserved(Uint8Array.of(0xff, 0, 0, 0, 0, 0x10, 0, 0x05))
    assert.deepEqual(flags, { extensionProtocol: true, fast: true, dht: true, v2Upgrade: false })
    assert.deepEqual(commonFlags(flags, readReserved(makeReserved({ fast: true, v2Upgrade: true }))), {
      extensionProtocol: false,
      fast: true,
      dht: false,
      v2Upgrade: false,
    })
  })

  test('malformed handshakes are typed errors', () => {
    const good = encodeHandshake({ reserved: new Uint8Array(8), infoHash, peerId })
    const wrongLen = good.slice()
    wrongLen[0] = 18
    const wrongName = good.slice()
    wrongName[5] = 0x78
    for (const bad of [good.subarray(0, 67), wrongLen, wrongName, new Uint8Array(68)]) {
      const r = decodeHandshake(bad)
      assert.ok(!r.ok && r.error.code === 'GW_ERR_WIRE_BAD_HANDSHAKE')
    }
    assert.equal(decodeHandshakeHeader(good.subarray(0, 47)).ok, false)
  })

  test('encoding wrong-sized fields throws RangeError', () => {
    assert.throws(
      () => encodeHandshake({ reserved: new Uint8Array(8), infoHash: new Uint8Array(32), peerId }),
      RangeError,
    )
  })
})

describe('BEP20 peer ids', () => {
  test('makePeerId: the prefix then random bytes, 20 bytes in all', () => {
    const a = makePeerId()
    const b = makePeerId()
    assert.equal(a.length, 20)
    assert.equal(new TextDecoder().decode(a.subarray(0, 8)), '-CB0001-')
    assert.notDeepEqual(a, b)
    const fixed = makePeerId('-CB0001-', (n) => new Uint8Array(n).fill(0x41))
    assert.equal(new TextDecoder().decode(fixed), '-CB0001-AAAAAAAAAAAA')
    assert.throws(() => makePeerId('x'.repeat(21)), RangeError)
  })

  test('clientFromPeerId: Azureus style', () => {
    assert.deepEqual(clientFromPeerId(ascii('-LT2080-abcdefghijkl')), {
      style: 'azureus',
      code: 'LT',
      name: 'libtorrent',
      version: '2.0.8.0',
    })
    assert.deepEqual(clientFromPeerId(ascii('-AZ2060-............')), {
      style: 'azureus',
      code: 'AZ',
      name: 'Azureus',
      version: '2.0.6.0',
    })
    assert.equal(clientFromPeerId(ascii('-ZZ1234-............'))?.name, undefined)
    assert.equal(clientFromPeerId(makePeerId())?.name, 'codex-bittorrent-gateway')
  })

  test('clientFromPeerId: mainline and Shad0w styles, and unknown ids', () => {
    assert.deepEqual(clientFromPeerId(ascii('M4-20-8-............')), {
      style: 'mainline',
      code: 'M',
      name: 'Mainline',
      version: '4.20.8',
    })
    const shadow = clientFromPeerId(ascii('S58B-----...........'))
    assert.equal(shadow?.style, 'shadow')
    assert.equal(shadow?.version, '5.8.11')
    assert.equal(clientFromPeerId(new Uint8Array(20)), undefined)
    assert.equal(clientFromPeerId(new Uint8Array(19)), undefined)
  })
})
