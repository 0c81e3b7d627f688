/**
 * The bounded length-prefixed frame decoder: a message stream split at every possible boundary
 * decodes to the same messages; the overall and per-message-id limits refuse oversized frames
 * before they are buffered; the buffer cap; the decoder stays failed after an error.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { FrameDecoder, type FrameStep, frameLimits } from '../../gateway/protocol/wire/frame-decoder.ts'
import { decodeMessage, encodeMessageBytes, type WireMessage } from '../../gateway/protocol/wire/messages.ts'

const MESSAGES: WireMessage[] = [
  { type: 'bitfield', bitfield: Uint8Array.of(0xf0, 0x0f) },
  { type: 'keep-alive' },
  { type: 'have', index: 3 },
  { type: 'unchoke' },
  { type: 'piece', index: 1, begin: 0, block: Uint8Array.from({ length: 700 }, (_, i) => i & 0xff) },
  { type: 'keep-alive' },
  { type: 'extended', id: 1, payload: new TextEncoder().encode('d8:msg_typei0e5:piecei0ee') },
  { type: 'request', index: 1, begin: 16384, length: 16384 },
]

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}

const STREAM = concat(MESSAGES.map(encodeMessageBytes))

/** Pushes `chunks` one by one, pulling every available frame after each push. */
function run(decoder: FrameDecoder, chunks: Uint8Array[]): { frames: Uint8Array[]; error?: FrameStep } {
  const frames: Uint8Array[] = []
  for (const c of chunks) {
    const err = decoder.push(c)
    if (err) return { frames, error: { kind: 'error', error: err } }
    for (;;) {
      const step = decoder.next()
      if (step.kind === 'need-more') break
      if (step.kind === 'error') return { frames, error: step }
      frames.push(step.frame)
    }
  }
  return { frames }
}

function decodeAll(frames: Uint8Array[]): WireMessage[] {
  return frames.map((f) => {
    const r = decodeMessage(f)
    assert.ok(r.ok)
    return r.value
  })
}

describe('FrameDecoder', () => {
  test('the whole stream in one chunk', () => {
    const { frames, error } = run(new FrameDecoder({ limits: frameLimits({ pieceCount: 16 }) }), [STREAM])
    assert.equal(error, undefined)
    assert.deepEqual(decodeAll(frames), MESSAGES)
  })

  test('split into two chunks at every possible boundary', () => {
    for (let cut = 0; cut <= STREAM.length; cut++) {
      const d = new FrameDecoder({ limits: frameLimits({ pieceCount: 16 }) })
      const { frames, error } = run(d, [STREAM.subarray(0, cut), STREAM.subarray(cut)])
      assert.equal(error, undefined, `cut at ${cut}`)
      assert.deepEqual(decodeAll(frames), MESSAGES, `cut at ${cut}`)
      assert.equal(d.bufferedBytes, 0)
    }
  })

  test('split into three chunks at every pair of boundaries around each prefix', () => {
    // every pair of cuts within the first 3 messages (prefix, id and payload boundaries)
    const limit = Math.min(STREAM.length, 40)
    for (let a = 0; a <= limit; a++) {
      for (let b = a; b <= limit; b++) {
        const d = new FrameDecoder({ limits: frameLimits({ pieceCount: 16 }) })
        const { frames, error } = run(d, [STREAM.subarray(0, a), STREAM.subarray(a, b), STREAM.subarray(b)])
        assert.equal(error, undefined)
        assert.deepEqual(decodeAll(frames), MESSAGES, `cuts ${a},${b}`)
      }
    }
  })

  test('one byte at a time (small chunks go through the accumulator)', () => {
    const chunks = Array.from(STREAM, (b) => Uint8Array.of(b))
    const { frames, error } = run(new FrameDecoder({ limits: frameLimits({ pieceCount: 16 }) }), chunks)
    assert.equal(error, undefined)
    assert.deepEqual(decodeAll(frames), MESSAGES)
  })

  test('frames are copies, independent of the pushed chunks', () => {
    const input = encodeMessageBytes({ type: 'have', index: 1 })
    const d = new FrameDecoder({ limits: frameLimits() })
    d.push(input)
    const step = d.next()
    assert.equal(step.kind, 'frame')
    input.fill(0)
    if (step.kind === 'frame') assert.deepEqual([...step.frame], [4, 0, 0, 0, 1])
  })

  test('a length prefix above the overall maximum fails as soon as the prefix is read', () => {
    const limits = frameLimits({ pieceCount: 8 })
    const d = new FrameDecoder({ limits })
    const prefix = new Uint8Array(4)
    new DataView(prefix.buffer).setUint32(0, limits.maxFrameLength + 1)
    d.push(prefix)
    const step = d.next()
    assert.ok(step.kind === 'error' && step.error.code === 'GW_ERR_WIRE_FRAME_TOO_LARGE')
    assert.equal(d.bufferedBytes, 0)
  })

  test('a piece frame above 16 KiB + 9 is refused when its id byte arrives', () => {
    const d = new FrameDecoder({ limits: frameLimits({ pieceCount: 8 }) })
    const head = new Uint8Array(5)
    new DataView(head.buffer).setUint32(0, 16384 + 10)
    head[4] = 7
    d.push(head)
    const step = d.next()
    assert.ok(
      step.kind === 'error' && step.error.code === 'GW_ERR_WIRE_FRAME_TOO_LARGE',
      JSON.stringify(step),
    )
  })

  test('an exactly 16 KiB block is accepted', () => {
    const msg: WireMessage = { type: 'piece', index: 0, begin: 0, block: new Uint8Array(16384) }
    const { frames, error } = run(new FrameDecoder({ limits: frameLimits({ pieceCount: 8 }) }), [
      encodeMessageBytes(msg),
    ])
    assert.equal(error, undefined)
    assert.equal(frames.length, 1)
  })

  test('the bitfield limit is ceil(pieces / 8) + 1', () => {
    const limits = frameLimits({ pieceCount: 17 })
    assert.equal(limits.byId[5], 4)
    const ok = run(new FrameDecoder({ limits }), [
      encodeMessageBytes({ type: 'bitfield', bitfield: new Uint8Array(3) }),
    ])
    assert.equal(ok.error, undefined)
    const bad = run(new FrameDecoder({ limits }), [
      encodeMessageBytes({ type: 'bitfield', bitfield: new Uint8Array(4) }),
    ])
    assert.ok(bad.error?.kind === 'error' && bad.error.error.code === 'GW_ERR_WIRE_FRAME_TOO_LARGE')
  })

  test('fixed-size messages are limited to their size (a 6-byte have is refused before buffering)', () => {
    const d = new FrameDecoder({ limits: frameLimits() })
    d.push(Uint8Array.of(0, 0, 0, 6, 4))
    const step = d.next()
    assert.ok(step.kind === 'error' && step.error.code === 'GW_ERR_WIRE_FRAME_TOO_LARGE')
  })

  test('extended and unknown messages are capped', () => {
    const limits = frameLimits({ maxExtendedPayload: 100, maxUnknownPayload: 10 })
    const ext = run(new FrameDecoder({ limits }), [
      encodeMessageBytes({ type: 'extended', id: 1, payload: new Uint8Array(101) }),
    ])
    assert.ok(ext.error?.kind === 'error')
    const unk = run(new FrameDecoder({ limits }), [
      encodeMessageBytes({ type: 'unknown', id: 200, payload: new Uint8Array(11) }),
    ])
    assert.ok(unk.error?.kind === 'error')
    const fine = run(new FrameDecoder({ limits }), [
      encodeMessageBytes({ type: 'unknown', id: 200, payload: new Uint8Array(10) }),
    ])
    assert.equal(fine.error, undefined)
  })

  test('the buffer cap applies to a caller that pushes without pulling', () => {
    const d = new FrameDecoder({ limits: frameLimits(), maxBufferedBytes: 1000 })
    assert.equal(d.push(new Uint8Array(600)), undefined)
    const err = d.push(new Uint8Array(600))
    assert.equal(err?.code, 'GW_ERR_WIRE_BUFFER_OVERFLOW')
  })

  test('after an error the decoder stays failed and holds nothing', () => {
    const d = new FrameDecoder({ limits: frameLimits() })
    d.push(Uint8Array.of(0xff, 0xff, 0xff, 0xff))
    assert.equal(d.next().kind, 'error')
    assert.ok(d.push(encodeMessageBytes({ type: 'choke' })))
    assert.equal(d.next().kind, 'error')
    assert.equal(d.bufferedBytes, 0)
  })

  test('setLimits tightens the bitfield limit once the piece count is known', () => {
    const d = new FrameDecoder({ limits: frameLimits() })
    d.setLimits(frameLimits({ pieceCount: 8 }))
    d.push(encodeMessageBytes({ type: 'bitfield', bitfield: new Uint8Array(2) }))
    assert.equal(d.next().kind, 'error')
  })

  test('a stream of many frames across many chunks keeps the buffer bounded', () => {
    const d = new FrameDecoder({ limits: frameLimits({ pieceCount: 100 }) })
    const msg = encodeMessageBytes({ type: 'piece', index: 1, begin: 0, block: new Uint8Array(16384) })
    let frames = 0
    let maxBuffered = 0
    for (let i = 0; i < 200; i++) {
      // odd chunk sizes so frames straddle chunks
      for (let off = 0; off < msg.length; off += 5000) {
        assert.equal(d.push(msg.subarray(off, off + 5000)), undefined)
        maxBuffered = Math.max(maxBuffered, d.bufferedBytes)
        for (let s = d.next(); s.kind === 'frame'; s = d.next()) frames++
      }
    }
    assert.equal(frames, 200)
    assert.ok(maxBuffered <= msg.length + 5000)
  })
})
