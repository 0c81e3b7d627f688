/**
 * BEP11 rate limits of our PEX sender (`gateway/engine/torrent/pex.ts`), with the time passed in:
 * at most one message per peer per minute, at most 50 added and 50 dropped contacts per message
 * with IPv4 and IPv6 combined, nothing lost when a list is cut (it goes out a minute later), and
 * nothing at all for a private torrent (BEP27) or before the metadata is known.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { silentLogger } from '../../gateway/engine/logger.ts'
import { Peer, type PeerInfo, type PeerWire } from '../../gateway/engine/torrent/peer.ts'
import { PexExchange, type PexTorrent } from '../../gateway/engine/torrent/pex.ts'
import type { TorrentInfo } from '../../gateway/protocol/types.ts'
import { decodePex, type PexMessage } from '../../gateway/protocol/wire/ut-pex.ts'

const noWire: PeerWire = { send: () => true, onDrain: async () => {}, close: () => {} }

function peer(host: string, port: number, now: number): Peer {
  const info: PeerInfo = {
    host,
    port,
    incoming: false,
    peerId: randomBytes(20),
    fast: true,
    extended: true,
    dht: false,
    swarm: 'v1',
    v2: false,
  }
  return new Peer(info, noWire, now)
}

interface Fake {
  readonly t: PexTorrent
  readonly sent: { to: Peer; msg: PexMessage }[]
  readonly pex: PexExchange
  info: { private?: boolean; pieceCount: number } | undefined
}

function fakeTorrent(peers: Peer[], now: () => number): Fake {
  const map = new Map(peers.map((p) => [p.key, p]))
  const fake = { info: { pieceCount: 10 } } as Fake
  const t = {
    get info() {
      return fake.info as TorrentInfo | undefined
    },
    peers: map,
    host: { now },
    log: silentLogger,
    stats: { pexPeers: 0 },
    addPeers: () => {},
    closePeer: () => {},
  } as unknown as PexTorrent
  const sent: { to: Peer; msg: PexMessage }[] = []
  const pex = new PexExchange(t, (to, payload) => {
    const d = decodePex(payload)
    assert.ok(d.ok, 'our PEX message decodes')
    sent.push({ to, msg: d.value })
  })
  return Object.assign(fake, { t, sent, pex })
}

const count = (m: PexMessage, which: 'added' | 'dropped'): number =>
  which === 'added' ? m.added.length + m.added6.length : m.dropped.length + m.dropped6.length

describe('PEX sender rate limits (BEP11)', () => {
  test('one message a minute, ≤ 50 added / dropped with v4 and v6 combined, nothing lost', () => {
    let now = 1_000_000
    const target = peer('10.0.0.1', 6881, now)
    target.extensions.set('ut_pex', 9)
    const others: Peer[] = []
    for (let i = 0; i < 40; i++) others.push(peer(`10.0.1.${i + 1}`, 7000 + i, now))
    for (let i = 0; i < 40; i++) others.push(peer(`2001:db8::${(i + 1).toString(16)}`, 8000 + i, now))
    const f = fakeTorrent([target, ...others], () => now)
    f.pex.tick(now)
    assert.equal(f.sent.length, 1)
    assert.equal(f.sent[0]!.to, target)
    assert.equal(count(f.sent[0]!.msg, 'added'), 50, '50 contacts, IPv4 and IPv6 together')
    // Not again within the minute.
    now += 30_000
    f.pex.tick(now)
    assert.equal(f.sent.length, 1)
    now += 30_000
    f.pex.tick(now)
    assert.equal(f.sent.length, 2)
    assert.equal(count(f.sent[1]!.msg, 'added'), 30, 'the rest a minute later')
    const all = new Set(
      f.sent.flatMap((s) => [...s.msg.added, ...s.msg.added6].map((a) => `${a.host}:${a.port}`)),
    )
    assert.equal(all.size, 80, 'every contact announced exactly once')
    // 70 of them leave: dropped in two messages, 50 then 20.
    for (const p of others.slice(0, 70)) f.t.peers.delete(p.key)
    now += 60_000
    f.pex.tick(now)
    assert.equal(f.sent.length, 3)
    assert.equal(count(f.sent[2]!.msg, 'dropped'), 50)
    assert.equal(count(f.sent[2]!.msg, 'added'), 0)
    now += 59_999
    f.pex.tick(now)
    assert.equal(f.sent.length, 3, 'still within the minute')
    now += 1
    f.pex.tick(now)
    assert.equal(count(f.sent[3]!.msg, 'dropped'), 20)
    now += 60_000
    f.pex.tick(now)
    assert.equal(f.sent.length, 4, 'nothing new: no message')
  })

  test('never for a private torrent, nor before the metadata is known (BEP27)', () => {
    let now = 5_000_000
    const target = peer('10.0.0.1', 6881, now)
    target.extensions.set('ut_pex', 9)
    const f = fakeTorrent([target, peer('10.0.0.2', 6882, now)], () => now)
    f.info = undefined
    f.pex.tick(now)
    f.info = { pieceCount: 10, private: true }
    now += 60_000
    f.pex.tick(now)
    assert.equal(f.sent.length, 0)
    f.info = { pieceCount: 10, private: false }
    now += 60_000
    f.pex.tick(now)
    assert.equal(f.sent.length, 1, 'the control: a public torrent sends')
  })
})
