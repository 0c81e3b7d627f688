/**
 * BEP10 extended handshake (encode/decode, validation and caps, the BEP's example), the typed
 * extension registry and per-peer ids, and the bounded bencode payload decoding under them
 * (`decodeBencodePayload`: gateway/protocol/bencode.ts with the wire limits).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { decodeBencodePayload } from '../../gateway/protocol/wire/errors.ts'
import {
  decodeExtendedHandshake,
  ExtensionRegistry,
  encodeExtendedHandshake,
  MAX_REQQ,
  PeerExtensions,
} from '../../gateway/protocol/wire/extensions.ts'

const bytes = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'))
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('BEP10 extended handshake', () => {
  test('decodes the BEP10 example (with the byte counts corrected for UTF-8)', () => {
    // BEP10: d1:md11:LT_metadatai1e6:µT_PEXi2ee1:pi6881e1:v13:\xc2\xb5Torrent 1.2e
    const payload = utf8('d1:md11:LT_metadatai1e7:µT_PEXi2ee1:pi6881e1:v13:µTorrent 1.2e')
    const r = decodeExtendedHandshake(payload)
    assert.ok(r.ok, r.ok ? '' : r.error.message)
    assert.deepEqual(
      [...r.value.m],
      [
        ['LT_metadata', 1],
        ['µT_PEX', 2],
      ],
    )
    assert.equal(r.value.p, 6881)
    assert.equal(r.value.v, 'µTorrent 1.2')
  })

  test('round trip of every field', () => {
    const h = {
      m: new Map([
        ['ut_metadata', 3],
        ['ut_pex', 1],
      ]),
      v: 'codex-bt 0.1',
      p: 51413,
      yourip: Uint8Array.of(127, 0, 0, 1),
      ipv6: new Uint8Array(16).fill(1),
      ipv4: Uint8Array.of(10, 0, 0, 1),
      reqq: 500,
      metadataSize: 31235,
      uploadOnly: true,
    }
    const enc = encodeExtendedHandshake(h)
    // bencode dictionaries are sorted by key
    assert.ok(new TextDecoder().decode(enc).startsWith('d4:ipv44:'))
    const r = decodeExtendedHandshake(enc)
    assert.ok(r.ok)
    assert.deepEqual(r.value, h)
  })

  test('unknown keys are ignored; invalid known fields are dropped', () => {
    const payload = bytes(
      'd1:ei1e1:md6:ut_pexi300e11:ut_metadatai2e3:badli1eee1:pi70000e4:reqqi-5e13:metadata_sizei99999999999e6:youripl' +
        'e1:v3:abc7:unknown5:helloe',
    )
    const r = decodeExtendedHandshake(payload)
    assert.ok(r.ok, r.ok ? '' : r.error.message)
    assert.deepEqual([...r.value.m], [['ut_metadata', 2]])
    assert.equal(r.value.p, undefined)
    assert.equal(r.value.reqq, undefined)
    assert.equal(r.value.metadataSize, undefined)
    assert.equal(r.value.yourip, undefined)
    assert.equal(r.value.v, 'abc')
  })

  test('caps: reqq clamped, metadata_size above the limit dropped, yourip must be 4 or 16 bytes', () => {
    const r = decodeExtendedHandshake(bytes('d13:metadata_sizei2000e4:reqqi999999e6:yourip5:abcdee'), {
      maxMetadataSize: 1000,
    })
    assert.ok(r.ok)
    assert.equal(r.value.reqq, MAX_REQQ)
    assert.equal(r.value.metadataSize, undefined)
    assert.equal(r.value.yourip, undefined)
  })

  test('not a dictionary, truncated or nested too deep: typed errors', () => {
    for (const bad of ['li1ee', 'd1:mde', 'd1:m', `d1:x${'l'.repeat(100)}${'e'.repeat(101)}`, 'i5e', '']) {
      const r = decodeExtendedHandshake(bytes(bad))
      assert.equal(r.ok, false, bad)
      if (!r.ok) assert.equal(r.error.name, 'WireProtocolError')
    }
  })

  test('the extended payload may not be larger than 16 KiB', () => {
    const r = decodeExtendedHandshake(new Uint8Array(16 * 1024 + 1))
    assert.ok(!r.ok && r.error.code === 'GW_ERR_WIRE_LIMIT_EXCEEDED')
  })
})

describe('extension registry', () => {
  test('our local ids and the reverse mapping', () => {
    const reg = ExtensionRegistry.default()
    assert.equal(reg.localId('ut_metadata'), 1)
    assert.equal(reg.localId('ut_pex'), 2)
    assert.equal(reg.nameOf(1), 'ut_metadata')
    assert.equal(reg.nameOf(9), undefined)
    assert.deepEqual(
      [...reg.handshakeM()],
      [
        ['ut_metadata', 1],
        ['ut_pex', 2],
      ],
    )
    assert.throws(() => new ExtensionRegistry(new Map([['a', 0]])), RangeError)
    assert.throws(
      () =>
        new ExtensionRegistry(
          new Map([
            ['a', 1],
            ['b', 1],
          ]),
        ),
      RangeError,
    )
  })

  test('per-peer ids are additive and 0 disables (BEP10)', () => {
    const peer = new PeerExtensions(['ut_metadata', 'ut_pex'] as const)
    peer.update(
      new Map([
        ['ut_metadata', 3],
        ['ut_pex', 1],
        ['lt_donthave', 7],
      ]),
    )
    assert.equal(peer.remoteId('ut_metadata'), 3)
    peer.update(new Map([['ut_pex', 0]]))
    assert.equal(peer.supports('ut_pex'), false)
    assert.equal(peer.remoteId('ut_metadata'), 3)
  })
})

describe('bounded bencode payload decoding', () => {
  test('reports the bytes consumed', () => {
    const b = bytes('d8:msg_typei1e5:piecei0eeRAWDATA')
    const r = decodeBencodePayload(b, { allowTrailing: true })
    assert.ok(r.ok)
    assert.equal(r.value.bytesConsumed, b.length - 'RAWDATA'.length)
  })

  test('rejects the inputs that make the bencode package misbehave', () => {
    const cases = [
      'd1:x-6:', // negative length: loops forever in the package
      '5:abc', // truncated string: silently accepted by the package
      'i1.5e', // float
      'i01e', // leading zero
      'i-0e', // negative zero
      '03:abc', // leading zero in a length
      'd9:__proto__d1:ai1eee', // prototype replacement
      `${'l'.repeat(20)}${'e'.repeat(20)}`, // nesting
      'di1ei2ee', // integer key
      'l',
      'e',
    ]
    for (const c of cases) assert.equal(decodeBencodePayload(bytes(c)).ok, false, c)
  })

  test('trailing bytes are rejected unless allowed', () => {
    assert.equal(decodeBencodePayload(bytes('i1eX')).ok, false)
    const r = decodeBencodePayload(bytes('i1eX'), { allowTrailing: true })
    assert.ok(r.ok)
    assert.equal(r.value.bytesConsumed, 3)
  })

  test('the item cap', () => {
    const many = `l${'i1e'.repeat(5000)}e`
    const r = decodeBencodePayload(bytes(many))
    assert.ok(!r.ok && r.error.code === 'GW_ERR_WIRE_LIMIT_EXCEEDED')
  })

  test('caps at their exact bounds: values count, dictionary keys do not; depth counts containers', () => {
    const d = bytes('d1:ai1e1:bl0:ee') // dict, int, list, string = 4 values
    assert.ok(decodeBencodePayload(d, { maxItems: 4 }).ok)
    const over = decodeBencodePayload(d, { maxItems: 3 })
    assert.ok(!over.ok && over.error.code === 'GW_ERR_WIRE_LIMIT_EXCEEDED')
    assert.ok(decodeBencodePayload(bytes('llee'), { maxDepth: 2 }).ok)
    const deep = decodeBencodePayload(bytes('llleee'), { maxDepth: 2 })
    assert.ok(!deep.ok && deep.error.code === 'GW_ERR_WIRE_LIMIT_EXCEEDED')
  })

  test('keys in any order and binary keys are fine; a duplicate key is an error (ambiguous)', () => {
    const r = decodeBencodePayload(bytes('d1:bi1e2:\xff\x00i2e1:ai3ee'))
    assert.ok(r.ok)
    assert.ok(r.value.value instanceof Map)
    assert.deepEqual([...r.value.value.keys()], ['b', '\xff\x00', 'a'])
    const dup = decodeBencodePayload(bytes('d1:ai1e1:ai2ee'))
    assert.ok(!dup.ok && dup.error.code === 'GW_ERR_WIRE_BAD_BENCODE')
  })
})
