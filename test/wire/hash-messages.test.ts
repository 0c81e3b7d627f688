/**
 * BEP52 hash request / hashes / hash reject payload rules.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  checkHashRequest,
  decodeHashesPayload,
  decodeHashRequestPayload,
  encodeHashesPayload,
  encodeHashRequestPayload,
  type HashRequest,
  maxUncleHashes,
} from '../../gateway/protocol/wire/hash-messages.ts'

const piecesRoot = new Uint8Array(32).fill(7)
const req = (over: Partial<HashRequest>): HashRequest => ({
  piecesRoot,
  baseLayer: 0,
  index: 0,
  length: 2,
  proofLayers: 0,
  ...over,
})

describe('BEP52 hash messages', () => {
  test('validity: length a power of two in 2..512, index a multiple of length', () => {
    assert.equal(checkHashRequest(req({})), undefined)
    assert.equal(checkHashRequest(req({ length: 512, index: 1024 })), undefined)
    assert.match(checkHashRequest(req({ length: 1 })) ?? '', /power of two/)
    assert.match(checkHashRequest(req({ length: 6 })) ?? '', /power of two/)
    assert.match(checkHashRequest(req({ length: 1024 })) ?? '', /above 512/)
    assert.match(checkHashRequest(req({ length: 4, index: 2 })) ?? '', /multiple/)
    assert.match(checkHashRequest(req({ piecesRoot: new Uint8Array(20) })) ?? '', /32 bytes/)
    assert.match(checkHashRequest(req({ baseLayer: 64 })) ?? '', /base layer/)
  })

  test('uncle count: the first log2(length) - 1 proof layers are omitted', () => {
    assert.equal(maxUncleHashes(req({ length: 2, proofLayers: 3 })), 3)
    assert.equal(maxUncleHashes(req({ length: 8, proofLayers: 3 })), 1)
    assert.equal(maxUncleHashes(req({ length: 8, proofLayers: 2 })), 0)
    assert.equal(maxUncleHashes(req({ length: 512, proofLayers: 10 })), 2)
  })

  test('request payload round trip (48 bytes)', () => {
    const r = req({ baseLayer: 1, index: 16, length: 16, proofLayers: 6 })
    const enc = encodeHashRequestPayload(r)
    assert.equal(enc.length, 48)
    assert.deepEqual(decodeHashRequestPayload(enc), { ok: true, value: r })
  })

  test('hashes: base hashes then uncles, up to the allowed count', () => {
    const r = req({ length: 4, proofLayers: 3 }) // 3 - (2 - 1) = 2 uncles
    const hashes = new Uint8Array(6 * 32).fill(1)
    const [head, body] = encodeHashesPayload({ ...r, hashes })
    assert.ok(head && body)
    const payload = new Uint8Array(head.length + body.length)
    payload.set(head)
    payload.set(body, head.length)
    const d = decodeHashesPayload(payload)
    assert.ok(d.ok)
    assert.deepEqual(d.value.hashes, hashes)
    // fewer uncles than asked is allowed (the tree may be shorter)
    assert.equal(decodeHashesPayload(payload.subarray(0, 48 + 5 * 32)).ok, true)
    assert.equal(decodeHashesPayload(payload.subarray(0, 48 + 3 * 32)).ok, false)
    assert.throws(() => encodeHashesPayload({ ...r, hashes: new Uint8Array(7 * 32) }), RangeError)
  })
})
