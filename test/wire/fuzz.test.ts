/**
 * Property / fuzz tests (fast-check, thousands of cases): random and mutated byte streams through
 * the frame decoder and message decoder, the extended handshake, ut_metadata, ut_pex, hash
 * messages and the bencode payload decoder. Properties: nothing throws or hangs, failures are
 * always a `WireProtocolError` with a known code, the decoder's buffer stays bounded, and every
 * message that decodes re-encodes to exactly the same bytes.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { decodeBencodePayload, WireProtocolError } from '../../gateway/protocol/wire/errors.ts'
import { decodeExtendedHandshake, encodeExtendedHandshake } from '../../gateway/protocol/wire/extensions.ts'
import { FrameDecoder, frameLimits } from '../../gateway/protocol/wire/frame-decoder.ts'
import { decodeHandshake, encodeHandshake } from '../../gateway/protocol/wire/handshake.ts'
import { decodeHashesPayload, decodeHashRequestPayload } from '../../gateway/protocol/wire/hash-messages.ts'
import { decodeMessage, encodeMessageBytes, type WireMessage } from '../../gateway/protocol/wire/messages.ts'
import { decodeUtMetadata, encodeUtMetadata } from '../../gateway/protocol/wire/ut-metadata.ts'
import { decodePex, encodePex } from '../../gateway/protocol/wire/ut-pex.ts'

const RUNS = 5000

const CODES = new Set([
  'GW_ERR_WIRE_FRAME_TOO_LARGE',
  'GW_ERR_WIRE_BUFFER_OVERFLOW',
  'GW_ERR_WIRE_BAD_LENGTH',
  'GW_ERR_WIRE_BAD_HANDSHAKE',
  'GW_ERR_WIRE_BAD_BENCODE',
  'GW_ERR_WIRE_BAD_FIELD',
  'GW_ERR_WIRE_LIMIT_EXCEEDED',
  'GW_ERR_WIRE_METADATA_HASH_MISMATCH',
])

function assertTypedFailure(r: { ok: boolean; error?: unknown }): void {
  if (r.ok) return
  assert.ok(r.error instanceof WireProtocolError, 'failures are WireProtocolError')
  assert.ok(CODES.has(r.error.code), r.error.code)
}

// --- arbitraries -------------------------------------------------------------------------------

const u32 = fc.integer({ min: 0, max: 0xffffffff })
const bytesArb = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max })
const root = fc.uint8Array({ minLength: 32, maxLength: 32 })
const pow2 = fc.integer({ min: 1, max: 9 }).map((e) => 2 ** e)

const messageArb: fc.Arbitrary<WireMessage> = fc.oneof(
  fc.constantFrom<WireMessage>(
    { type: 'keep-alive' },
    { type: 'choke' },
    { type: 'unchoke' },
    { type: 'interested' },
    { type: 'not-interested' },
    { type: 'have-all' },
    { type: 'have-none' },
  ),
  fc.record({
    type: fc.constantFrom('have' as const, 'suggest' as const, 'allowed-fast' as const),
    index: u32,
  }),
  fc.record({ type: fc.constant('bitfield' as const), bitfield: bytesArb(64) }),
  fc.record({
    type: fc.constantFrom('request' as const, 'cancel' as const, 'reject' as const),
    index: u32,
    begin: u32,
    length: fc.integer({ min: 1, max: 16384 }),
  }),
  fc.record({
    type: fc.constant('piece' as const),
    index: u32,
    begin: u32,
    block: fc.uint8Array({ minLength: 1, maxLength: 2048 }),
  }),
  fc.record({ type: fc.constant('port' as const), port: fc.integer({ min: 0, max: 65535 }) }),
  fc.record({
    type: fc.constant('extended' as const),
    id: fc.integer({ min: 0, max: 255 }),
    payload: bytesArb(300),
  }),
  fc
    .tuple(
      root,
      fc.integer({ min: 0, max: 40 }),
      pow2,
      fc.integer({ min: 0, max: 1000 }),
      fc.integer({ min: 0, max: 20 }),
    )
    .chain(([piecesRoot, baseLayer, length, k, proofLayers]) =>
      fc
        .constantFrom('hash-request' as const, 'hash-reject' as const)
        .map(
          (type): WireMessage => ({ type, piecesRoot, baseLayer, index: k * length, length, proofLayers }),
        ),
    ),
  fc
    .tuple(root, pow2, fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 12 }))
    .map(([piecesRoot, length, proofLayers, extra]): WireMessage => {
      const uncles = Math.min(extra, Math.max(0, proofLayers - (Math.log2(length) - 1)))
      return {
        type: 'hashes',
        piecesRoot,
        baseLayer: 0,
        index: 0,
        length,
        proofLayers,
        hashes: new Uint8Array((length + uncles) * 32).fill(length & 0xff),
      }
    }),
  fc.record({
    type: fc.constant('unknown' as const),
    id: fc.integer({ min: 24, max: 255 }),
    payload: bytesArb(200),
  }),
)

/** A byte mutation: flip, overwrite, insert, delete or truncate. */
const mutationArb = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
)
type Mutation = typeof mutationArb extends fc.Arbitrary<infer M> ? M : never

function mutate(input: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let b = Array.from(input)
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % (b.length + (m.kind === 'insert' ? 1 : 0))
    if (m.kind === 'flip' && b.length) b[at] = (b[at] ?? 0) ^ (1 << m.bit)
    else if (m.kind === 'set' && b.length) b[at] = m.value
    else if (m.kind === 'insert') b.splice(at, 0, m.value)
    else if (m.kind === 'delete') b.splice(at, 1)
    else if (m.kind === 'truncate') b = b.slice(0, at)
  }
  return Uint8Array.from(b)
}

/** Runs a byte stream through decoder + message decoder with the given chunking. */
function pump(stream: Uint8Array, cuts: readonly number[], pieceCount: number | undefined): void {
  const limits = frameLimits(pieceCount === undefined ? {} : { pieceCount })
  const decoder = new FrameDecoder({ limits })
  const bound = 2 * (limits.maxFrameLength + 4) + 256 * 1024
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
  let prev = 0
  let failed = false
  for (const p of [...points, stream.length]) {
    if (failed) break
    const err = decoder.push(stream.subarray(prev, p))
    prev = p
    if (err) {
      assertTypedFailure({ ok: false, error: err })
      break
    }
    assert.ok(decoder.bufferedBytes <= bound)
    // each frame consumes ≥ 4 bytes, so this loop ends
    for (;;) {
      const step = decoder.next()
      if (step.kind === 'need-more') break
      if (step.kind === 'error') {
        assertTypedFailure({ ok: false, error: step.error })
        failed = true
        break
      }
      assert.ok(step.frame.length <= limits.maxFrameLength)
      const msg = decodeMessage(step.frame, pieceCount === undefined ? {} : { pieceCount })
      assertTypedFailure(msg)
      if (msg.ok) {
        // every accepted message re-encodes to exactly the frame it came from
        assert.deepEqual(encodeMessageBytes(msg.value).subarray(4), step.frame)
      }
    }
  }
}

// --- properties --------------------------------------------------------------------------------

describe('fuzz: frame decoder + message decoder', () => {
  test('valid message streams decode to the same messages at any chunking', () => {
    fc.assert(
      fc.property(
        fc.array(messageArb, { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (msgs, cuts) => {
          const stream = Buffer.concat(msgs.map(encodeMessageBytes))
          const decoder = new FrameDecoder({ limits: frameLimits() })
          const got: WireMessage[] = []
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
          let prev = 0
          for (const p of [...points, stream.length]) {
            assert.equal(decoder.push(stream.subarray(prev, p)), undefined)
            prev = p
            for (let s = decoder.next(); s.kind !== 'need-more'; s = decoder.next()) {
              assert.equal(s.kind, 'frame')
              if (s.kind !== 'frame') return
              const m = decodeMessage(s.frame)
              assert.ok(m.ok, m.ok ? '' : m.error.message)
              got.push(m.value)
            }
          }
          assert.deepEqual(
            got,
            msgs.map((m) => ({ ...m })),
          )
        },
      ),
      { numRuns: RUNS },
    )
  })

  test('random byte streams: no crash, typed errors only, bounded buffer', () => {
    fc.assert(
      fc.property(
        bytesArb(4096),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.option(fc.integer({ min: 0, max: 5000 }), { nil: undefined }),
        (stream, cuts, pieceCount) => pump(stream, cuts, pieceCount),
      ),
      { numRuns: RUNS },
    )
  })

  test('mutated valid streams: no crash, typed errors only', () => {
    fc.assert(
      fc.property(
        fc.array(messageArb, { minLength: 1, maxLength: 8 }),
        fc.array(mutationArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (msgs, mutations, cuts) =>
          pump(mutate(Buffer.concat(msgs.map(encodeMessageBytes)), mutations), cuts, 1000),
      ),
      { numRuns: RUNS },
    )
  })

  test('random single frames through decodeMessage', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 30 }), bytesArb(80), (id, rest) => {
        const frame = Uint8Array.of(id, ...rest)
        const r = decodeMessage(frame)
        assertTypedFailure(r)
        if (r.ok) assert.deepEqual(encodeMessageBytes(r.value).subarray(4), frame)
      }),
      { numRuns: RUNS * 2 },
    )
  })
})

describe('fuzz: handshake and extension payloads', () => {
  test('handshake: mutated handshakes decode or fail typed', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        fc.uint8Array({ minLength: 20, maxLength: 20 }),
        fc.uint8Array({ minLength: 20, maxLength: 20 }),
        fc.array(mutationArb, { maxLength: 3 }),
        (reserved, infoHash, peerId, mutations) => {
          const r = decodeHandshake(mutate(encodeHandshake({ reserved, infoHash, peerId }), mutations))
          assertTypedFailure(r)
          if (mutations.length === 0) assert.ok(r.ok)
        },
      ),
      { numRuns: RUNS },
    )
  })

  // bencode-like noise hits the bencode decoder's branches far more often than uniform bytes
  const bencodeNoise = fc
    .array(
      fc.constantFrom(
        'd',
        'l',
        'i',
        'e',
        '0',
        '1',
        '2',
        '5',
        '9',
        ':',
        '-',
        'x',
        'm',
        '__proto__',
        '1:m',
        '4:reqq',
      ),
      {
        maxLength: 60,
      },
    )
    .map((parts) => new TextEncoder().encode(parts.join('')))

  test('bencode payload decoder and message decoders on bencode-like noise', () => {
    fc.assert(
      fc.property(bencodeNoise, (b) => {
        assertTypedFailure(decodeBencodePayload(b))
        assertTypedFailure(decodeBencodePayload(b, { allowTrailing: true }))
        assertTypedFailure(decodeExtendedHandshake(b))
        assertTypedFailure(decodeUtMetadata(b))
        assertTypedFailure(decodePex(b))
      }),
      { numRuns: RUNS * 2 },
    )
  })

  test('random bytes through every extension decoder', () => {
    fc.assert(
      fc.property(bytesArb(600), (b) => {
        assertTypedFailure(decodeExtendedHandshake(b))
        assertTypedFailure(decodeUtMetadata(b))
        assertTypedFailure(decodePex(b))
        assertTypedFailure(decodeHashRequestPayload(b))
        assertTypedFailure(decodeHashesPayload(b))
      }),
      { numRuns: RUNS },
    )
  })

  test('mutated valid extended handshakes, ut_metadata and ut_pex messages', () => {
    const handshake = fc
      .record({
        m: fc.dictionary(fc.string({ maxLength: 12 }), fc.integer({ min: 0, max: 255 }), { maxKeys: 5 }),
        v: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
        p: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        metadataSize: fc.option(fc.integer({ min: 1, max: 100000 }), { nil: undefined }),
        reqq: fc.option(fc.integer({ min: 1, max: 5000 }), { nil: undefined }),
        yourip: fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: undefined }),
      })
      .map((h) => encodeExtendedHandshake({ ...h, m: new Map(Object.entries(h.m)) }))
    const utm = fc
      .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 40000 }))
      .map(([piece, size]) => {
        const p = Math.min(piece, Math.ceil(size / 16384) - 1)
        const len = Math.min(16384, size - p * 16384)
        return encodeUtMetadata({
          type: 'data',
          piece: p,
          totalSize: size,
          data: new Uint8Array(len).fill(0x65),
        })
      })
    const ip = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'))
    const pex = fc
      .array(fc.record({ host: ip, port: fc.integer({ min: 1, max: 65535 }), flags: fc.nat(31) }), {
        minLength: 1,
        maxLength: 20,
      })
      .map((added) => encodePex({ added, added6: [], dropped: [], dropped6: [] }))
    fc.assert(
      fc.property(
        fc.oneof(handshake, utm, pex),
        fc.array(mutationArb, { maxLength: 4 }),
        (valid, mutations) => {
          const b = mutate(valid, mutations)
          assertTypedFailure(decodeExtendedHandshake(b))
          assertTypedFailure(decodeUtMetadata(b))
          assertTypedFailure(decodePex(b))
        },
      ),
      { numRuns: RUNS },
    )
  })
})
