/**
 * BEP9 ut_metadata: messages (the BEP's examples), remote-field validation, the assembler (16 KiB
 * pieces, size/piece checks, SHA-1 / SHA-256 / truncated-SHA-256 verification, reset on
 * mismatch) and the metadata server.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import {
  decodeUtMetadata,
  encodeUtMetadata,
  METADATA_PIECE_SIZE,
  MetadataAssembler,
  MetadataServeBudget,
  MetadataServer,
} from '../../gateway/protocol/wire/ut-metadata.ts'

const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1')
const bytes = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'))

describe('ut_metadata messages', () => {
  test('BEP9 request example: d8:msg_typei0e5:piecei0ee', () => {
    assert.equal(text(encodeUtMetadata({ type: 'request', piece: 0 })), 'd8:msg_typei0e5:piecei0ee')
    const r = decodeUtMetadata(bytes('d8:msg_typei0e5:piecei0ee'))
    assert.deepEqual(r, { ok: true, value: { type: 'request', piece: 0 } })
  })

  test('BEP9 data example: the dictionary followed by the raw piece', () => {
    const data = randomBytes(METADATA_PIECE_SIZE)
    const enc = encodeUtMetadata({ type: 'data', piece: 0, totalSize: 34256, data })
    const head = 'd8:msg_typei1e5:piecei0e10:total_sizei34256ee'
    assert.equal(text(enc.subarray(0, head.length)), head)
    assert.deepEqual(enc.subarray(head.length), new Uint8Array(data))
    const r = decodeUtMetadata(enc)
    assert.ok(r.ok && r.value.type === 'data')
    assert.deepEqual(r.value.data, new Uint8Array(data))
    assert.equal(r.value.totalSize, 34256)
  })

  test('raw data that itself contains "ee" does not confuse the split', () => {
    const data = bytes(`ee${'e'.repeat(100)}d1:xee`)
    const enc = encodeUtMetadata({ type: 'data', piece: 0, totalSize: data.length, data })
    const r = decodeUtMetadata(enc)
    assert.ok(r.ok && r.value.type === 'data')
    assert.equal(text(r.value.data), text(data))
  })

  test('reject round trip, unknown msg_type is ignored (BEP9 "MUST be ignored")', () => {
    assert.deepEqual(decodeUtMetadata(encodeUtMetadata({ type: 'reject', piece: 3 })), {
      ok: true,
      value: { type: 'reject', piece: 3 },
    })
    assert.deepEqual(decodeUtMetadata(bytes('d8:msg_typei7e5:piecei0ee')), {
      ok: true,
      value: { type: 'unknown', msgType: 7 },
    })
  })

  test('invalid remote fields are typed errors', () => {
    const cases: [string, string][] = [
      ['d5:piecei0ee', 'no msg_type'],
      ['d8:msg_type1:x5:piecei0ee', 'msg_type not an integer'],
      ['d8:msg_typei0ee', 'no piece'],
      ['d8:msg_typei0e5:piecei-1ee', 'negative piece'],
      ['d8:msg_typei0e5:piecei999999ee', 'piece beyond 8 MiB'],
      ['d8:msg_typei0e5:piecei0eeXX', 'trailing bytes after a request'],
      ['d8:msg_typei1e5:piecei0eeABC', 'data without total_size'],
      ['d8:msg_typei1e5:piecei0e10:total_sizei0eeABC', 'total_size 0'],
      ['d8:msg_typei1e5:piecei0e10:total_sizei99999999eeABC', 'total_size above 8 MiB'],
      ['d8:msg_typei1e5:piecei1e10:total_sizei3eeABC', 'piece beyond total_size'],
      ['d8:msg_typei1e5:piecei0e10:total_sizei4eeABC', 'last piece too short'],
      ['d8:msg_typei1e5:piecei0e10:total_sizei2eeABC', 'last piece too long'],
      ['li1ee', 'not a dictionary'],
      ['d8:msg_typei0e5:piecei0e', 'truncated'],
    ]
    for (const [payload, why] of cases) {
      const r = decodeUtMetadata(bytes(payload))
      assert.equal(r.ok, false, why)
    }
    // a non-last piece must be exactly 16 KiB
    const short = encodeUtMetadata({ type: 'data', piece: 0, totalSize: 40000, data: new Uint8Array(100) })
    assert.equal(decodeUtMetadata(short).ok, false)
  })
})

describe('MetadataAssembler', () => {
  const info = randomBytes(40_000) // 3 pieces: 16384, 16384, 7232
  const sha1 = createHash('sha1').update(info).digest()
  const sha256 = createHash('sha256').update(info).digest()
  const piece = (i: number) => ({
    piece: i,
    totalSize: info.length,
    data: new Uint8Array(
      info.subarray(i * METADATA_PIECE_SIZE, Math.min(info.length, (i + 1) * METADATA_PIECE_SIZE)),
    ),
  })

  for (const [name, expected] of [
    ['v1 (SHA-1)', { v1: sha1 }],
    ['v2 (SHA-256)', { v2: sha256 }],
    ['v2 truncated to 20 bytes', { v2: sha256.subarray(0, 20) }],
    ['hybrid checked with either hash', { v1: new Uint8Array(20), v2: sha256 }],
  ] as const) {
    test(`assembles out of order and verifies ${name}`, () => {
      const created = MetadataAssembler.create(info.length, { expected })
      assert.ok(created.ok)
      const a = created.value
      assert.equal(a.pieceCount, 3)
      assert.deepEqual(a.missing(), [0, 1, 2])
      assert.deepEqual(a.add(piece(2)), { status: 'partial' })
      assert.deepEqual(a.add(piece(0)), { status: 'partial' })
      assert.deepEqual(a.add(piece(0)), { status: 'partial' }, 'duplicates are harmless')
      assert.deepEqual(a.missing(), [1])
      const done = a.add(piece(1))
      assert.equal(done.status, 'complete')
      if (done.status === 'complete') {
        assert.deepEqual(done.info, new Uint8Array(info))
        assert.equal(done.matched, 'v1' in expected && name.startsWith('v1') ? 'v1' : 'v2')
      }
    })
  }

  test('a wrong info hash is reported and every piece is dropped', () => {
    const created = MetadataAssembler.create(info.length, { expected: { v1: new Uint8Array(20) } })
    assert.ok(created.ok)
    const a = created.value
    a.add(piece(0))
    a.add(piece(1))
    const r = a.add(piece(2))
    assert.ok(r.status === 'error' && r.error.code === 'GW_ERR_WIRE_METADATA_HASH_MISMATCH')
    assert.deepEqual(a.missing(), [0, 1, 2])
  })

  test('remote fields are validated: total_size, piece range, piece length', () => {
    const created = MetadataAssembler.create(info.length, { expected: { v1: sha1 } })
    assert.ok(created.ok)
    const a = created.value
    assert.equal(a.add({ ...piece(0), totalSize: info.length + 1 }).status, 'error')
    assert.equal(a.add({ piece: 3, totalSize: info.length, data: new Uint8Array(1) }).status, 'error')
    assert.equal(a.add({ piece: 2, totalSize: info.length, data: new Uint8Array(10) }).status, 'error')
    assert.deepEqual(a.missing(), [0, 1, 2])
  })

  test('metadata size limits (default 8 MiB)', () => {
    assert.equal(MetadataAssembler.create(0, { expected: { v1: sha1 } }).ok, false)
    assert.equal(MetadataAssembler.create(8 * 1024 * 1024 + 1, { expected: { v1: sha1 } }).ok, false)
    assert.equal(MetadataAssembler.create(2000, { expected: { v1: sha1 }, maxSize: 1000 }).ok, false)
    assert.equal(MetadataAssembler.create(8 * 1024 * 1024, { expected: { v1: sha1 } }).ok, true)
  })
})

describe('MetadataServer', () => {
  test('rejects while it has no metadata, then serves 16 KiB pieces', () => {
    const server = new MetadataServer()
    assert.deepEqual(server.respond({ piece: 0 }), { type: 'reject', piece: 0 })
    const info = randomBytes(20_000)
    server.setMetadata(info)
    const r0 = server.respond({ piece: 0 })
    assert.ok(r0.type === 'data' && r0.data.length === 16384 && r0.totalSize === 20_000)
    const r1 = server.respond({ piece: 1 })
    assert.ok(r1.type === 'data' && r1.data.length === 20_000 - 16384)
    assert.deepEqual(server.respond({ piece: 2 }), { type: 'reject', piece: 2 })
    // the served pieces reassemble into the info dict
    const a = MetadataAssembler.create(20_000, { expected: { v1: createHash('sha1').update(info).digest() } })
    assert.ok(a.ok)
    a.value.add(r0)
    assert.equal(a.value.add(r1).status, 'complete')
  })

  test('a per-peer serve budget (BEP9 flood protection)', () => {
    const server = new MetadataServer(new Uint8Array(100))
    const budget = new MetadataServeBudget(100, 2)
    assert.equal(server.respond({ piece: 0 }, budget).type, 'data')
    assert.equal(server.respond({ piece: 0 }, budget).type, 'data')
    assert.equal(server.respond({ piece: 0 }, budget).type, 'reject')
  })
})
