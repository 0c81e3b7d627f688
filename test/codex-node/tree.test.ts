/**
 * The Codex Merkle tree (NOTES §3.5): the streaming builder against the layer-by-layer reference
 * and against an independent naive implementation written here, for 1..200 leaves and some large
 * counts; plus hand-expanded roots that pin the four keys.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, test } from 'node:test'
import { CodexTreeBuilder, codexTreeRoot, EmptyTreeError } from '../../codex-client/tree.ts'

const ZERO = Buffer.alloc(32)

function h(...parts: Uint8Array[]): Buffer {
  const hash = createHash('sha256')
  for (const p of parts) hash.update(p)
  return hash.digest()
}

/** compress(x, y, key) = sha256(x || y || key). */
function c(x: Uint8Array, y: Uint8Array, key: number): Buffer {
  return h(x, y, Buffer.from([key]))
}

function leaf(i: number): Buffer {
  return h(Buffer.from(`leaf ${i}`))
}

/** Independent naive version: recursion over layers, odd node padded with ZERO. */
function naiveRoot(nodes: Buffer[], bottom = true): Buffer {
  if (!bottom && nodes.length === 1) return nodes[0]!
  const next: Buffer[] = []
  for (let i = 0; i < nodes.length; i += 2) {
    const right = nodes[i + 1]
    next.push(right ? c(nodes[i]!, right, bottom ? 1 : 0) : c(nodes[i]!, ZERO, bottom ? 3 : 2))
  }
  return naiveRoot(next, false)
}

function streamed(leaves: Uint8Array[]): Buffer {
  const builder = new CodexTreeBuilder()
  for (const l of leaves) builder.addLeaf(l)
  assert.equal(builder.leafCount, leaves.length)
  return Buffer.from(builder.root())
}

describe('Codex tree keys (hand-expanded)', () => {
  const [a, b, cc, d, e] = [leaf(0), leaf(1), leaf(2), leaf(3), leaf(4)]

  test('1 leaf: ODD_BOTTOM with ZERO, never a bare leaf', () => {
    const expected = c(a, ZERO, 3)
    assert.deepEqual(streamed([a]), expected)
    assert.deepEqual(Buffer.from(codexTreeRoot([a])), expected)
    assert.notDeepEqual(expected, a)
  })

  test('2 leaves: one BOTTOM pair', () => {
    assert.deepEqual(streamed([a, b]), c(a, b, 1))
  })

  test('3 leaves: BOTTOM pair + ODD_BOTTOM, then NONE', () => {
    assert.deepEqual(streamed([a, b, cc]), c(c(a, b, 1), c(cc, ZERO, 3), 0))
  })

  test('4 leaves: two BOTTOM pairs, then NONE', () => {
    assert.deepEqual(streamed([a, b, cc, d]), c(c(a, b, 1), c(cc, d, 1), 0))
  })

  test('5 leaves: ODD (key 2) on the middle layer', () => {
    const l1 = [c(a, b, 1), c(cc, d, 1), c(e, ZERO, 3)]
    const l2 = [c(l1[0]!, l1[1]!, 0), c(l1[2]!, ZERO, 2)]
    assert.deepEqual(streamed([a, b, cc, d, e]), c(l2[0]!, l2[1]!, 0))
  })
})

describe('streaming builder = reference = naive', () => {
  test('1..200 leaves', () => {
    const leaves = Array.from({ length: 200 }, (_, i) => leaf(i))
    for (let n = 1; n <= 200; n++) {
      const slice = leaves.slice(0, n)
      const expected = naiveRoot(slice)
      assert.deepEqual(Buffer.from(codexTreeRoot(slice)), expected, `reference, n=${n}`)
      assert.deepEqual(streamed(slice), expected, `streaming, n=${n}`)
    }
  })

  for (const n of [255, 256, 257, 1023, 1025, 4097, 65_537]) {
    test(`${n} leaves`, () => {
      const leaves = Array.from({ length: n }, (_, i) => leaf(i))
      const expected = naiveRoot(leaves)
      assert.deepEqual(Buffer.from(codexTreeRoot(leaves)), expected)
      assert.deepEqual(streamed(leaves), expected)
    })
  }

  test('identical leaves still combine positionally', () => {
    const same = Array.from({ length: 7 }, () => leaf(9))
    assert.deepEqual(streamed(same), naiveRoot(same))
  })
})

describe('errors', () => {
  test('no leaves: Empty leaves', () => {
    assert.throws(
      () => codexTreeRoot([]),
      (e: unknown) => e instanceof EmptyTreeError && e.message === 'Empty leaves',
    )
    assert.throws(() => new CodexTreeBuilder().root(), EmptyTreeError)
  })

  test('leaves must be 32 bytes; no leaves after root()', () => {
    const builder = new CodexTreeBuilder()
    assert.throws(() => builder.addLeaf(new Uint8Array(31)), RangeError)
    builder.addLeaf(leaf(0))
    const root = builder.root()
    assert.deepEqual(builder.root(), root)
    assert.throws(() => builder.addLeaf(leaf(1)))
  })
})
