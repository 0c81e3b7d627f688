/** RequestQueue: adaptive depth, timeouts and the snub rule, with time passed in. */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { DEFAULT_REQQ, RequestQueue } from '../../gateway/engine/request-queue.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'

const block = (piece: number, offset = 0) => ({ piece, offset, length: BLOCK_SIZE })

describe('RequestQueue', () => {
  test('depth = rate × latency / block size, clamped to [2, reqq]', () => {
    const q = new RequestQueue()
    assert.equal(q.targetDepth(0, 0), 2)
    assert.equal(q.targetDepth(1024 * 1024, 0), (1024 * 1024 * 3) / BLOCK_SIZE)
    assert.equal(q.targetDepth(1e9, 0), DEFAULT_REQQ)
    q.setMaxDepth(500)
    assert.equal(q.targetDepth(1e9, 0), 500)
    q.setMaxDepth(10)
    assert.equal(q.targetDepth(1e9, 0), 10)
    q.setMaxDepth(-3) // ignored: not a valid reqq
    assert.equal(q.maxDepth, 10)
    assert.equal(new RequestQueue({ targetLatencyMs: 1_000 }).targetDepth(BLOCK_SIZE * 20, 0), 20)
  })

  test('tracks outstanding requests; wanted() fills up to the target', () => {
    const q = new RequestQueue()
    assert.equal(q.wanted(0, 0), 2)
    assert.equal(q.add(block(1), 0), true)
    assert.equal(q.add(block(1), 0), false, 'duplicate')
    q.add(block(2), 0)
    assert.equal(q.wanted(0, 0), 0)
    assert.equal(q.onBlock(block(1), 10), true)
    assert.equal(q.onBlock(block(9), 10), false, 'unrequested block')
    assert.equal(q.remove(block(2)), true)
    assert.equal(q.size, 0)
  })

  test('requests expire oldest first after the timeout', () => {
    const q = new RequestQueue({ requestTimeoutMs: 1_000, snubTimeoutMs: 60_000 })
    q.add(block(1), 0)
    q.add(block(2), 500)
    q.add(block(3), 900)
    assert.deepEqual(q.expire(999), [])
    assert.deepEqual(q.expire(1_500), [block(1), block(2)])
    assert.deepEqual(q.requests(), [block(3)])
    assert.deepEqual(q.clear(), [block(3)])
  })

  test('snubbed after 60 s without a block; depth 1 while snubbed; cleared by the next block', () => {
    const q = new RequestQueue()
    q.add(block(1), 0)
    assert.equal(q.isSnubbed(59_999), false)
    assert.equal(q.isSnubbed(60_000), true)
    assert.equal(q.targetDepth(1e9, 60_000), 1)
    q.expire(60_000) // the request timed out too: the peer stays snubbed
    assert.equal(q.isSnubbed(70_000), true)
    q.add(block(2), 70_000)
    assert.equal(q.onBlock(block(2), 71_000), true)
    assert.equal(q.isSnubbed(71_000), false)
  })

  test('progress resets the snub clock, an idle queue never snubs', () => {
    const q = new RequestQueue()
    assert.equal(q.isSnubbed(1e9), false)
    q.add(block(1), 0)
    q.add(block(2), 0)
    q.onBlock(block(1), 50_000)
    assert.equal(q.isSnubbed(100_000), false)
    assert.equal(q.isSnubbed(110_000), true)
  })
})
