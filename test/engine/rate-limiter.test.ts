/** RateLimiter: token bucket with a fake clock and fake timers (no real waiting). */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { RateLimiter, RateLimiterError, takeAll } from '../../gateway/engine/rate-limiter.ts'

/** A manual clock with timers that fire only when `advance` passes their due time. */
class FakeTime {
  now = 0
  #next = 1
  readonly timers = new Map<number, { at: number; callback: () => void }>()

  readonly api = {
    setTimeout: (callback: () => void, ms: number): unknown => {
      const id = this.#next++
      this.timers.set(id, { at: this.now + ms, callback })
      return id
    },
    clearTimeout: (handle: unknown): void => {
      this.timers.delete(handle as number)
    },
  }

  /** Moves time forward, firing due timers in order. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms
    for (let guard = 0; guard < 10_000; guard++) {
      const due = [...this.timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0]
      if (due === undefined) break
      this.timers.delete(due[0])
      this.now = Math.max(this.now, due[1].at)
      due[1].callback()
      await Promise.resolve()
    }
    this.now = end
    for (let i = 0; i < 5; i++) await Promise.resolve()
  }
}

function limiter(rate: number, burst?: number): { time: FakeTime; rl: RateLimiter } {
  const time = new FakeTime()
  const rl = new RateLimiter({
    rateBytesPerSecond: rate,
    ...(burst === undefined ? {} : { burstBytes: burst }),
    now: () => time.now,
    timers: time.api,
  })
  return { time, rl }
}

/** Tracks which promises have resolved. */
function track(promise: Promise<void>, log: string[], name: string): Promise<void> {
  return promise.then(() => {
    log.push(name)
  })
}

describe('RateLimiter', () => {
  test('rate 0 is unlimited', async () => {
    const { time, rl } = limiter(0)
    await rl.take(1e12)
    await rl.take(1e12)
    assert.equal(time.timers.size, 0)
  })

  test('a full bucket passes at once; then bytes flow at the configured rate', async () => {
    const { time, rl } = limiter(1_000, 1_000)
    await rl.take(1_000)
    const log: string[] = []
    const p = track(rl.take(500), log, 'half')
    await time.advance(499)
    assert.deepEqual(log, [])
    await time.advance(1)
    await p
    assert.deepEqual(log, ['half'])
  })

  test('waiters are served first in, first out', async () => {
    const { time, rl } = limiter(1_000, 1_000)
    await rl.take(1_000)
    const log: string[] = []
    const big = track(rl.take(800), log, 'big')
    const small = track(rl.take(10), log, 'small')
    assert.equal(rl.tryTake(1), false, 'tryTake never jumps the queue')
    await time.advance(100)
    assert.deepEqual(log, [], 'the small request waits behind the big one')
    await time.advance(710)
    await Promise.all([big, small])
    assert.deepEqual(log, ['big', 'small'])
  })

  test('a request larger than the bucket passes when it is full and leaves a debt', async () => {
    const { time, rl } = limiter(1_000, 1_000)
    await rl.take(3_000) // bucket full: passes, balance −2000
    const log: string[] = []
    const next = track(rl.take(1_000), log, 'next')
    await time.advance(2_999)
    assert.deepEqual(log, [])
    await time.advance(1)
    await next
  })

  test('abort removes a waiter and the next one moves up', async () => {
    const { time, rl } = limiter(1_000, 1_000)
    await rl.take(1_000)
    const controller = new AbortController()
    const aborted = rl.take(900, { signal: controller.signal })
    const log: string[] = []
    const next = track(rl.take(100), log, 'next')
    controller.abort()
    await assert.rejects(aborted, { name: 'AbortError' })
    assert.equal(rl.waiting, 1)
    await time.advance(100)
    await next
    await assert.rejects(rl.take(1, { signal: AbortSignal.abort() }), { name: 'AbortError' })
  })

  test('the rate can change at runtime; 0 releases every waiter', async () => {
    const { time, rl } = limiter(100, 100)
    await rl.take(100)
    const slow = rl.take(100)
    rl.setRate(10_000)
    await time.advance(10)
    await slow
    const waiting = [rl.take(50_000), rl.take(50_000)]
    rl.setRate(0)
    await Promise.all(waiting)
    assert.equal(rl.rate, 0)
    assert.throws(() => rl.setRate(-1), RangeError)
  })

  test('close clears the timer and rejects waiters and later calls', async () => {
    const { time, rl } = limiter(1_000, 1_000)
    await rl.take(1_000)
    const waiting = rl.take(500)
    assert.equal(time.timers.size, 1)
    rl.close()
    assert.equal(time.timers.size, 0)
    await assert.rejects(
      waiting,
      (e: unknown) => e instanceof RateLimiterError && e.code === 'GW_ERR_RATE_LIMITER_CLOSED',
    )
    await assert.rejects(rl.take(1), RateLimiterError)
    rl.close()
  })

  test('takeAll chains a global and a per-torrent limiter', async () => {
    const global = limiter(1_000, 1_000)
    const perTorrent = limiter(0)
    await takeAll([global.rl, perTorrent.rl], 1_000)
    const log: string[] = []
    const p = track(takeAll([global.rl, perTorrent.rl], 1_000), log, 'second')
    await global.time.advance(999)
    assert.deepEqual(log, [])
    await global.time.advance(1)
    await p
  })

  test('works with real timers too (and leaves none behind)', async () => {
    const rl = new RateLimiter({ rateBytesPerSecond: 1_000_000, burstBytes: 1_000 })
    await rl.take(1_000)
    await rl.take(1_000) // ~1 ms
    rl.close()
  })
})
