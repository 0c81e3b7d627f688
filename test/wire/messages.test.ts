/**
 * Peer wire message codec (BEP3, BEP5, BEP6, BEP10, BEP52): round trips for every message type,
 * exact byte layouts computed by hand from the BEPs, and a typed error for each malformed frame.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  decodeMessage,
  encodeMessage,
  encodeMessageBytes,
  MESSAGE_ID,
  type WireMessage,
} from '../../gateway/protocol/wire/messages.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
/** The frame as the frame decoder yields it: the bytes after the 4-byte length prefix. */
const frameOf = (msg: WireMessage): Uint8Array => encodeMessageBytes(msg).subarray(4)

const root = Uint8Array.from({ length: 32 }, (_, i) => i + 1)

const ALL: WireMessage[] = [
  { type: 'keep-alive' },
  { type: 'choke' },
  { type: 'unchoke' },
  { type: 'interested' },
  { type: 'not-interested' },
  { type: 'have', index: 0xdeadbeef },
  { type: 'bitfield', bitfield: Uint8Array.of(0xff, 0x80) },
  { type: 'request', index: 7, begin: 16384, length: 16384 },
  { type: 'piece', index: 3, begin: 32768, block: Uint8Array.from({ length: 16384 }, (_, i) => i & 0xff) },
  { type: 'cancel', index: 1, begin: 0, length: 100 },
  { type: 'port', port: 6881 },
  { type: 'suggest', index: 9 },
  { type: 'have-all' },
  { type: 'have-none' },
  { type: 'reject', index: 2, begin: 16384, length: 5 },
  { type: 'allowed-fast', index: 42 },
  { type: 'extended', id: 0, payload: new TextEncoder().encode('d1:md11:ut_metadatai1eee') },
  { type: 'extended', id: 3, payload: new Uint8Array(0) },
  { type: 'hash-request', piecesRoot: root, baseLayer: 0, index: 4, length: 4, proofLayers: 3 },
  { type: 'hash-reject', piecesRoot: root, baseLayer: 2, index: 0, length: 512, proofLayers: 0 },
  {
    type: 'hashes',
    piecesRoot: root,
    baseLayer: 0,
    index: 0,
    length: 2,
    proofLayers: 2,
    hashes: Uint8Array.from({ length: 4 * 32 }, (_, i) => i),
  },
  { type: 'unknown', id: 99, payload: Uint8Array.of(1, 2, 3) },
]

describe('encodeMessage / decodeMessage round trips', () => {
  for (const msg of ALL) {
    test(msg.type, () => {
      const bytes = encodeMessageBytes(msg)
      const declared = new DataView(bytes.buffer).getUint32(0)
      assert.equal(declared, bytes.length - 4, 'length prefix covers the rest of the message')
      const decoded = decodeMessage(bytes.subarray(4))
      assert.ok(decoded.ok, decoded.ok ? '' : decoded.error.message)
      assert.deepEqual(decoded.value, msg)
    })
  }

  test('piece payloads are not copied by the encoder', () => {
    const block = new Uint8Array(16384)
    const chunks = encodeMessage({ type: 'piece', index: 0, begin: 0, block })
    assert.equal(chunks.length, 2)
    assert.equal(chunks[1], block, 'the block is passed through as its own chunk')
    assert.equal(chunks[0]?.length, 13)
  })

  test('decoded piece block is a view into the frame', () => {
    const frame = frameOf({ type: 'piece', index: 1, begin: 2, block: Uint8Array.of(9, 8, 7) })
    const r = decodeMessage(frame)
    assert.ok(r.ok && r.value.type === 'piece')
    assert.equal(r.value.block.buffer, frame.buffer)
  })
})

describe('exact byte layouts (hand-computed from the BEPs)', () => {
  const cases: [string, WireMessage, string][] = [
    ['BEP3 keep-alive: zero length', { type: 'keep-alive' }, '00000000'],
    ['BEP3 choke', { type: 'choke' }, '00000001 00'],
    ['BEP3 unchoke', { type: 'unchoke' }, '00000001 01'],
    ['BEP3 interested', { type: 'interested' }, '00000001 02'],
    ['BEP3 not interested', { type: 'not-interested' }, '00000001 03'],
    ['BEP3 have', { type: 'have', index: 0x0102 }, '00000005 04 00000102'],
    ['BEP3 bitfield', { type: 'bitfield', bitfield: Uint8Array.of(0xa0) }, '00000002 05 a0'],
    [
      'BEP3 request',
      { type: 'request', index: 1, begin: 0x4000, length: 0x4000 },
      '0000000d 06 00000001 00004000 00004000',
    ],
    [
      'BEP3 piece',
      { type: 'piece', index: 1, begin: 0, block: hex('616263') },
      '0000000c 07 00000001 00000000 616263',
    ],
    [
      'BEP3 cancel',
      { type: 'cancel', index: 2, begin: 3, length: 4 },
      '0000000d 08 00000002 00000003 00000004',
    ],
    ['BEP5 port (0x09, two bytes)', { type: 'port', port: 6881 }, '00000003 09 1ae1'],
    ['BEP6 suggest <len=0x0005><op=0x0D>', { type: 'suggest', index: 5 }, '00000005 0d 00000005'],
    ['BEP6 have all <len=0x0001><op=0x0E>', { type: 'have-all' }, '00000001 0e'],
    ['BEP6 have none <len=0x0001><op=0x0F>', { type: 'have-none' }, '00000001 0f'],
    [
      'BEP6 reject <len=0x000D><op=0x10>',
      { type: 'reject', index: 1, begin: 2, length: 3 },
      '0000000d 10 00000001 00000002 00000003',
    ],
    ['BEP6 allowed fast <len=0x0005><op=0x11>', { type: 'allowed-fast', index: 6 }, '00000005 11 00000006'],
    [
      'BEP10 extended (id 20, ext id byte)',
      { type: 'extended', id: 2, payload: hex('6465') },
      '00000004 14 02 6465',
    ],
  ]
  for (const [name, msg, expected] of cases) {
    test(name, () => {
      assert.equal(toHex(encodeMessageBytes(msg)), expected.replace(/\s+/g, ''))
    })
  }

  test('BEP52 hash request: 21, pieces root, base layer, index, length, proof layers', () => {
    const bytes = encodeMessageBytes({
      type: 'hash-request',
      piecesRoot: root,
      baseLayer: 1,
      index: 8,
      length: 8,
      proofLayers: 5,
    })
    assert.equal(
      toHex(bytes),
      `00000031 15 ${toHex(root)} 00000001 00000008 00000008 00000005`.replace(/\s+/g, ''),
    )
  })

  test('BEP52 hashes: the request fields, then the hashes', () => {
    const hashes = new Uint8Array(64).fill(0xab)
    const bytes = encodeMessageBytes({
      type: 'hashes',
      piecesRoot: root,
      baseLayer: 0,
      index: 2,
      length: 2,
      proofLayers: 0,
      hashes,
    })
    assert.equal(bytes.length, 4 + 1 + 48 + 64)
    assert.equal(toHex(bytes.subarray(0, 5)), `${(1 + 48 + 64).toString(16).padStart(8, '0')}16`)
    assert.equal(toHex(bytes.subarray(5, 37)), toHex(root))
    assert.equal(toHex(bytes.subarray(37, 53)), '00000000000000020000000200000000')
    assert.equal(toHex(bytes.subarray(53)), toHex(hashes))
  })

  test('message ids are the ones in the BEPs', () => {
    assert.deepEqual(
      [
        MESSAGE_ID.port,
        MESSAGE_ID.suggest,
        MESSAGE_ID.haveAll,
        MESSAGE_ID.haveNone,
        MESSAGE_ID.reject,
        MESSAGE_ID.allowedFast,
      ],
      [9, 13, 14, 15, 16, 17],
    )
    assert.deepEqual(
      [MESSAGE_ID.extended, MESSAGE_ID.hashRequest, MESSAGE_ID.hashes, MESSAGE_ID.hashReject],
      [20, 21, 22, 23],
    )
  })
})

describe('malformed frames give typed errors', () => {
  const bad: [string, string, string][] = [
    ['choke with a payload', '00 00', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['unchoke with a payload', '01 ff', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['have of 4 bytes', '04 000001', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['have of 6 bytes', '04 0000000102', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['request of 12 bytes', '06 00000001 00000000 000040', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['request above 16 KiB', '06 00000001 00000000 00004001', 'GW_ERR_WIRE_BAD_FIELD'],
    ['request of zero bytes', '06 00000001 00000000 00000000', 'GW_ERR_WIRE_BAD_FIELD'],
    ['cancel of 14 bytes', '08 00000001 00000000 00004000 00', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['piece without begin', '07 00000001 0000', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['piece with an empty block', '07 00000001 00000000', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['port of 1 byte', '09 1a', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['have-all with a payload', '0e 00', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['suggest of 3 bytes', '0d 0000', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['reject of 5 bytes', '10 00000001', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['allowed-fast of 1 byte', '11', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['extended without an extended id', '14', 'GW_ERR_WIRE_BAD_LENGTH'],
    ['hash request of 48 bytes', `15 ${'00'.repeat(47)}`, 'GW_ERR_WIRE_BAD_LENGTH'],
    [
      'hash request with length 3',
      `15 ${'00'.repeat(32)} 00000000 00000000 00000003 00000000`,
      'GW_ERR_WIRE_BAD_FIELD',
    ],
    [
      'hash request with length 1',
      `15 ${'00'.repeat(32)} 00000000 00000000 00000001 00000000`,
      'GW_ERR_WIRE_BAD_FIELD',
    ],
    [
      'hash request with length 1024',
      `15 ${'00'.repeat(32)} 00000000 00000000 00000400 00000000`,
      'GW_ERR_WIRE_BAD_FIELD',
    ],
    [
      'hash request index not a multiple of length',
      `15 ${'00'.repeat(32)} 00000000 00000002 00000004 00000000`,
      'GW_ERR_WIRE_BAD_FIELD',
    ],
    [
      'hash reject with a huge base layer',
      `17 ${'00'.repeat(32)} 00000040 00000000 00000002 00000000`,
      'GW_ERR_WIRE_BAD_FIELD',
    ],
    [
      'hashes with a partial hash',
      `16 ${'00'.repeat(32)} 00000000 00000000 00000002 00000000 ${'11'.repeat(65)}`,
      'GW_ERR_WIRE_BAD_LENGTH',
    ],
    [
      'hashes with fewer hashes than requested',
      `16 ${'00'.repeat(32)} 00000000 00000000 00000004 00000000 ${'11'.repeat(96)}`,
      'GW_ERR_WIRE_BAD_LENGTH',
    ],
    [
      'hashes with too many uncles',
      `16 ${'00'.repeat(32)} 00000000 00000000 00000002 00000001 ${'11'.repeat(128)}`,
      'GW_ERR_WIRE_BAD_LENGTH',
    ],
  ]
  for (const [name, frameHex, code] of bad) {
    test(name, () => {
      const r = decodeMessage(hex(frameHex))
      assert.equal(r.ok, false)
      if (!r.ok) {
        assert.equal(r.error.name, 'WireProtocolError')
        assert.equal(r.error.code, code)
      }
    })
  }

  test('piece indices are checked against the piece count when known', () => {
    for (const msg of [
      { type: 'have', index: 10 },
      { type: 'request', index: 10, begin: 0, length: 1 },
      { type: 'piece', index: 10, begin: 0, block: Uint8Array.of(1) },
      { type: 'allowed-fast', index: 11 },
    ] as WireMessage[]) {
      const r = decodeMessage(frameOf(msg), { pieceCount: 10 })
      assert.equal(r.ok, false, msg.type)
      assert.equal(decodeMessage(frameOf(msg)).ok, true, `${msg.type} without a piece count`)
    }
  })

  test('bitfield length must match the piece count when known', () => {
    assert.equal(
      decodeMessage(frameOf({ type: 'bitfield', bitfield: new Uint8Array(2) }), { pieceCount: 16 }).ok,
      true,
    )
    const r = decodeMessage(frameOf({ type: 'bitfield', bitfield: new Uint8Array(3) }), { pieceCount: 16 })
    assert.ok(!r.ok && r.error.code === 'GW_ERR_WIRE_BAD_LENGTH')
  })

  test('encoding invalid fields is our bug and throws RangeError', () => {
    assert.throws(() => encodeMessage({ type: 'have', index: -1 }), RangeError)
    assert.throws(() => encodeMessage({ type: 'port', port: 70000 }), RangeError)
    assert.throws(() => encodeMessage({ type: 'extended', id: 256, payload: new Uint8Array(0) }), RangeError)
    assert.throws(
      () =>
        encodeMessage({
          type: 'hash-request',
          piecesRoot: root,
          baseLayer: 0,
          index: 1,
          length: 2,
          proofLayers: 0,
        }),
      RangeError,
    )
  })
})
