/** Bitfield: BEP3 bit order, validation of length and spare bits, counting and iteration. */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { Bitfield, BitfieldError, bitfieldByteLength } from '../../gateway/engine/bitfield.ts'

describe('Bitfield', () => {
  test('BEP3 bit order: piece 0 is the high bit of the first byte', () => {
    const field = new Bitfield(10)
    field.set(0)
    field.set(9)
    assert.deepEqual(field.toBytes(), new Uint8Array([0x80, 0x40]))
    assert.equal(Bitfield.fromBytes(new Uint8Array([0x01, 0x00]), 10).has(7), true)
  })

  test('fromBytes validates the length and the spare bits', () => {
    assert.throws(
      () => Bitfield.fromBytes(new Uint8Array(1), 10),
      (e: unknown) => {
        return e instanceof BitfieldError && e.code === 'GW_ERR_BITFIELD_LENGTH'
      },
    )
    assert.throws(() => Bitfield.fromBytes(new Uint8Array(3), 10), { code: 'GW_ERR_BITFIELD_LENGTH' })
    assert.throws(() => Bitfield.fromBytes(new Uint8Array([0, 0x20]), 10), {
      code: 'GW_ERR_BITFIELD_SPARE_BITS',
    })
    assert.equal(Bitfield.fromBytes(new Uint8Array([0xff, 0xc0]), 10).count, 10)
    assert.equal(Bitfield.fromBytes(new Uint8Array([0xff]), 8).complete, true)
  })

  test('set/clear report changes, keep the count and reject out-of-range indices', () => {
    const field = new Bitfield(20)
    assert.equal(field.set(3), true)
    assert.equal(field.set(3), false)
    assert.equal(field.count, 1)
    assert.equal(field.clear(3), true)
    assert.equal(field.clear(3), false)
    assert.equal(field.empty, true)
    assert.throws(() => field.set(20), { code: 'GW_ERR_BITFIELD_INDEX' })
    assert.throws(() => field.set(-1), { code: 'GW_ERR_BITFIELD_INDEX' })
    assert.throws(() => field.clear(1.5), { code: 'GW_ERR_BITFIELD_INDEX' })
    assert.equal(field.has(25), false)
  })

  test('full/setAll keep spare bits zero; clearAll empties', () => {
    const field = Bitfield.full(13)
    assert.equal(field.count, 13)
    assert.deepEqual(field.toBytes(), new Uint8Array([0xff, 0xf8]))
    field.clearAll()
    assert.equal(field.count, 0)
    assert.deepEqual([...new Bitfield(0).setIndices()], [])
    assert.equal(new Bitfield(0).complete, true)
  })

  test('property: bytes round-trip; set and missing indices partition the range', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 0, max: 300 })
          .chain((size) =>
            fc.tuple(
              fc.constant(size),
              fc.uniqueArray(fc.nat({ max: Math.max(0, size - 1) }), { maxLength: size }),
            ),
          ),
        ([size, indices]) => {
          const field = new Bitfield(size)
          for (const i of indices) if (i < size) field.set(i)
          const expected = [...new Set(indices.filter((i) => i < size))].sort((a, b) => a - b)
          assert.deepEqual([...field.setIndices()], expected)
          assert.equal(field.count, expected.length)
          const missing = [...field.missingIndices()]
          assert.equal(missing.length + expected.length, size)
          assert.ok(missing.every((i) => !field.has(i)))
          const copy = Bitfield.fromBytes(field.toBytes(), size)
          assert.deepEqual([...copy.setIndices()], expected)
          assert.equal(field.toBytes().length, bitfieldByteLength(size))
        },
      ),
      { numRuns: 200 },
    )
  })

  test('clone is independent', () => {
    const a = new Bitfield(8)
    const b = a.clone()
    b.set(1)
    assert.equal(a.has(1), false)
  })
})
