/**
 * Announcer (BEP12 tiers, BEP3 events and intervals) with real trackers on 127.0.0.1: the
 * `bittorrent-tracker` Server (HTTP and UDP) and small node:http trackers that record requests.
 * Time is driven by a manual clock, so intervals are checked without sleeping.
 */

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import bencode from 'bencode'
import { Server } from 'bittorrent-tracker'
import { Announcer, type AnnouncerInit } from '../../gateway/engine/discovery/announcer.ts'
import type { DiscoveryClock, PeerAddress, TimerHandle } from '../../gateway/engine/discovery/peer-source.ts'
import { TrackerPeerSource } from '../../gateway/engine/discovery/tracker-source.ts'
import { toHex } from '../../gateway/protocol/hex.ts'

const HOST = '127.0.0.1'

/** A clock whose timers only fire when the test advances time. */
class ManualClock implements DiscoveryClock {
  #t = 1_700_000_000_000
  #timers: { at: number; fn: () => void; live: boolean }[] = []
  fired = 0

  now(): number {
    return this.#t
  }

  schedule(fn: () => void, delayMs: number): TimerHandle {
    const entry = { at: this.#t + delayMs, fn, live: true }
    this.#timers.push(entry)
    return {
      cancel: () => {
        entry.live = false
      },
    }
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.#t + ms
    for (let guard = 0; guard < 1000; guard++) {
      const due = this.#timers.filter((t) => t.live && t.at <= target).sort((a, b) => a.at - b.at)[0]
      if (due === undefined) break
      due.live = false
      this.#t = Math.max(this.#t, due.at)
      this.fired++
      due.fn()
    }
    this.#t = target
    this.#timers = this.#timers.filter((t) => t.live)
  }

  pending(): number {
    return this.#timers.filter((t) => t.live).length
  }
}

/** Polls `predicate` (bounded) while real I/O completes. */
async function waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now()
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

interface Recorded {
  event: string | null
  infoHash: string
  left: string | null
}

/** A node:http tracker that records announces and answers with `response`. */
async function recordingTracker(response: Record<string, unknown>): Promise<{
  server: HttpServer
  url: string
  requests: Recorded[]
}> {
  const requests: Recorded[] = []
  const server = createServer((req, res) => {
    const raw = req.url ?? ''
    const query = raw.slice(raw.indexOf('?') + 1)
    const params = new URLSearchParams(query)
    const ih = /(?:^|&)info_hash=([^&]*)/.exec(query)?.[1] ?? ''
    requests.push({
      event: params.get('event'),
      infoHash: Buffer.from(unescape(ih), 'latin1').toString('hex'),
      left: params.get('left'),
    })
    res.end(bencode.encode(response as Parameters<typeof bencode.encode>[0]))
  })
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
  return { server, url: `http://${HOST}:${(server.address() as AddressInfo).port}/announce`, requests }
}

function closeHttp(server: HttpServer): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

/** A URL on which nothing listens (connection refused). */
async function deadUrl(): Promise<string> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, HOST, resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return `http://${HOST}:${port}/announce`
}

/** Fisher–Yates with this random keeps every tier in its original order. */
const identityShuffle = () => 0.999999

function baseInit(clock: ManualClock, tiers: string[][], received: PeerAddress[][]): AnnouncerInit {
  return {
    tiers,
    infoHashes: [randomBytes(20)],
    peerId: randomBytes(20),
    port: 6881,
    getTransferTotals: () => ({ uploaded: 0, downloaded: 0, left: 1000 }),
    onPeers: (peers) => received.push([...peers]),
    clock,
    random: identityShuffle,
    requestTimeoutMs: 5000,
    http: { timeoutMs: 5000 },
  }
}

describe('announcer with the bittorrent-tracker server', () => {
  let tracker: Server
  let httpUrl: string
  let udpUrl: string
  before(async () => {
    tracker = new Server({ udp: true, http: true, ws: false, stats: false })
    tracker.on('warning', () => {})
    await new Promise<void>((resolve) =>
      tracker.listen(0, { http: HOST, udp: HOST, udp6: '::ffff:127.0.0.1' }, resolve),
    )
    httpUrl = `http://${HOST}:${(tracker.http!.address() as AddressInfo).port}/announce`
    udpUrl = `udp://${HOST}:${tracker.udp4!.address().port}`
  })
  after(async () => {
    await new Promise<void>((resolve) => tracker.close(() => resolve()))
  })

  test('BEP12: a dead tracker first in the tier, then a live one: the live one is used and moved to the front', async () => {
    const clock = new ManualClock()
    const dead = await deadUrl()
    const backup = await recordingTracker({ interval: 1800, peers: new Uint8Array(0) })
    const received: PeerAddress[][] = []
    const init = baseInit(clock, [[dead, httpUrl], [backup.url]], received)
    const announcer = new Announcer(init)
    try {
      announcer.start()
      clock.advance(0)
      await waitFor(() => announcer.stats().announces.success === 1, 'first successful announce')
      const stats = announcer.stats()
      assert.deepEqual(stats.announces, { success: 1, failure: 0, error: 1 })
      const trackers = stats.swarms[0]!.trackers
      const live = trackers.find((t) => t.url === httpUrl)!
      const gone = trackers.find((t) => t.url === dead)!
      assert.equal(live.position, 0, 'working tracker moved to the front of its tier')
      assert.equal(live.lastResult, 'success')
      assert.equal(gone.position, 1)
      assert.equal(gone.lastResult, 'error')
      assert.equal(backup.requests.length, 0, 'the next tier is not tried when one in this tier works')
      assert.equal(tracker.torrents[toHex(init.infoHashes[0]!)]?.incomplete, 1, 'server saw `started`')
      assert.ok(
        received.flat().some((p) => p.port === 6881),
        'peers from the tracker were delivered',
      )

      // Next regular round (interval from the server): the live tracker is tried first now.
      const next = stats.swarms[0]!.nextAnnounceAt!
      clock.advance(next - clock.now())
      await waitFor(() => announcer.stats().announces.success === 2, 'second announce')
      assert.equal(announcer.stats().announces.error, 1, 'the dead tracker was not retried first')
    } finally {
      await announcer.stop()
      await closeHttp(backup.server)
    }
    assert.equal(tracker.torrents[toHex(init.infoHashes[0]!)]?.incomplete, 0, 'stop sent `stopped`')
    assert.equal(clock.pending(), 0, 'no timer left after stop')
  })

  test('a whole tier failing falls through to the next tier; a hybrid announces both hashes over UDP', async () => {
    const clock = new ManualClock()
    const dead = await deadUrl()
    const received: PeerAddress[][] = []
    const v1 = randomBytes(20)
    const v2 = randomBytes(32) // a v2 SHA-256 info hash: announced truncated to 20 bytes (BEP52)
    const source = new TrackerPeerSource({
      ...baseInit(clock, [[dead], [udpUrl]], received),
      infoHashes: [v1, v2],
      udp: { localAddress: HOST, retransmitBaseMs: 200 },
    })
    try {
      source.start()
      clock.advance(0)
      await waitFor(() => source.stats().announces.success === 2, 'both swarms announced')
      assert.equal(tracker.torrents[toHex(v1)]?.incomplete, 1)
      assert.equal(tracker.torrents[toHex(v2.subarray(0, 20))]?.incomplete, 1)
      assert.deepEqual(
        source.stats().swarms.map((s) => s.infoHash),
        [toHex(v1), toHex(v2.subarray(0, 20))],
      )
    } finally {
      await source.stop()
    }
    assert.equal(tracker.torrents[toHex(v1)]?.incomplete, 0, 'stopped sent over UDP')
  })
})

describe('announcer intervals and events', () => {
  test('`min interval` is honoured for early announces; `interval` schedules regular ones', async () => {
    const clock = new ManualClock()
    const t = await recordingTracker({ interval: 1800, 'min interval': 600, peers: new Uint8Array(0) })
    const announcer = new Announcer({ ...baseInit(clock, [[t.url]], []), minIntervalFloorS: 1 })
    try {
      announcer.start()
      const t0 = clock.now()
      clock.advance(0)
      await waitFor(() => t.requests.length === 1, 'started announce')
      await waitFor(() => announcer.stats().swarms[0]!.nextAnnounceAt === t0 + 1_800_000, 'schedule')
      assert.equal(t.requests[0]!.event, 'started')

      announcer.announceNow()
      const swarm = announcer.stats().swarms[0]!
      assert.equal(swarm.earliestAnnounceAt, t0 + 600_000)
      assert.equal(swarm.nextAnnounceAt, t0 + 600_000, 'early announce pushed to min interval')
      const firedBefore = clock.fired
      clock.advance(599_999)
      assert.equal(clock.fired, firedBefore, 'nothing fires before min interval')
      clock.advance(1)
      await waitFor(() => t.requests.length === 2, 'announce at min interval')
      assert.equal(t.requests[1]!.event, null, 'regular announce carries no event')
    } finally {
      await announcer.stop()
      await closeHttp(t.server)
    }
    assert.equal(t.requests.at(-1)?.event, 'stopped')
  })

  test('`completed` is sent once, after min interval, with left=0', async () => {
    const clock = new ManualClock()
    let left = 1000
    const t = await recordingTracker({ interval: 1800, 'min interval': 60, peers: new Uint8Array(0) })
    const announcer = new Announcer({
      ...baseInit(clock, [[t.url]], []),
      getTransferTotals: () => ({ uploaded: 0, downloaded: 1000 - left, left }),
    })
    try {
      announcer.start()
      clock.advance(0)
      await waitFor(() => announcer.stats().announces.success === 1, 'started')
      left = 0
      announcer.markCompleted()
      announcer.markCompleted()
      clock.advance(60_000)
      await waitFor(() => announcer.stats().announces.success === 2, 'completed')
      assert.equal(t.requests[1]!.event, 'completed')
      assert.equal(t.requests[1]!.left, '0')
      clock.advance(1_800_000)
      await waitFor(() => announcer.stats().announces.success === 3, 'regular')
      assert.equal(t.requests[2]!.event, null)
      assert.equal(t.requests.filter((r) => r.event === 'completed').length, 1)
    } finally {
      await announcer.stop()
      await closeHttp(t.server)
    }
  })

  test('failures back off exponentially and `failure reason` counts as failure', async () => {
    const clock = new ManualClock()
    const refusing = await recordingTracker({ 'failure reason': 'go away' })
    const announcer = new Announcer({
      ...baseInit(clock, [[refusing.url]], []),
      random: () => 0.5, // no jitter
      backoffInitialMs: 10_000,
      backoffMaxMs: 25_000,
    })
    try {
      announcer.start()
      const delays: number[] = []
      for (let i = 1; i <= 3; i++) {
        clock.advance(i === 1 ? 0 : delays[i - 2]!)
        await waitFor(() => announcer.stats().swarms[0]!.failedRounds === i, `round ${i}`)
        delays.push(announcer.stats().swarms[0]!.nextAnnounceAt! - clock.now())
      }
      assert.deepEqual(delays, [10_000, 20_000, 25_000])
      const stats = announcer.stats()
      assert.deepEqual(stats.announces, { success: 0, failure: 3, error: 0 })
      assert.equal(stats.swarms[0]!.trackers[0]!.lastResult, 'failure')
      assert.match(stats.swarms[0]!.trackers[0]!.lastError ?? '', /go away/)
    } finally {
      await announcer.stop()
      await closeHttp(refusing.server)
    }
    assert.equal(
      refusing.requests.filter((r) => r.event === 'stopped').length,
      0,
      'never started: no stopped',
    )
  })
})
