/**
 * BEP5 `port` and BEP27 private torrents, on a private loopback DHT (DhtNodes on 127.0.0.1 that
 * bootstrap from nobody):
 *
 * 1. A peer that sets the DHT bit gets our `port` message with our DHT's UDP port; its own `port`
 *    message makes our DHT node ping that address and add it to the routing table.
 * 2. A magnet start whose metadata says `private=1`: the torrent's DHT lookups stop, every peer
 *    gets an extended handshake disabling `ut_pex`, incoming PEX is ignored, no PEX is sent, new
 *    peers never see `ut_pex` in our `m`, and the metadata is still served (BEP27 forbids DHT and
 *    PEX only).
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, describe, test } from 'node:test'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import { type DhtLookupOptions, DhtNode } from '../../gateway/engine/discovery/dht.ts'
import type { PeerAddress } from '../../gateway/engine/discovery/peer-source.ts'
import type { Session } from '../../gateway/engine/session.ts'
import { decodeBencode, encodeBencode, isDict } from '../../gateway/protocol/bencode.ts'
import { EXT_PEER_IDS, ExtPeer, MSG } from '../helpers/ext-peer.ts'
import { HOST, startSession, waitUntil } from '../helpers/interop.ts'

const startDht = async (): Promise<DhtNode> => {
  const node = new DhtNode({ bootstrap: [], host: HOST, port: 0, readyTimeoutMs: 200, queryTimeoutMs: 500 })
  await node.start()
  return node
}

/** A DHT node whose lookups hang until aborted, recording their signals (the source's rounds). */
class SpyDht extends DhtNode {
  readonly lookups: AbortSignal[] = []

  override lookup(_infoHash: Uint8Array, options: DhtLookupOptions = {}): Promise<PeerAddress[]> {
    const signal = options.signal
    if (signal) this.lookups.push(signal)
    return new Promise((_, reject) => {
      if (!signal) return
      if (signal.aborted) return reject(signal.reason)
      signal.addEventListener('abort', () => reject(signal.reason), { once: true })
    })
  }
}

describe('BEP5 port messages and BEP27 private torrents after a magnet start', { timeout: 60_000 }, () => {
  const nodes: DhtNode[] = []

  after(async () => {
    for (const n of nodes) await n.stop()
  })

  test('port: sent to DHT-capable peers; a received one adds the node to our routing table', async () => {
    const ours = await startDht()
    const theirs = await startDht()
    nodes.push(ours, theirs)
    let session: Session | undefined
    let peer: ExtPeer | undefined
    try {
      session = await startSession('ext-port', { dht: ours })
      const infoHash = randomBytes(20)
      await session.addTorrent({ infoHashV1: infoHash, store: new MemoryPieceStore(), dht: false })
      peer = await ExtPeer.dial({ port: session.port, infoHash, reserved: { dht: true } })
      await waitUntil(() => peer!.messages(MSG.port).length > 0, 'our port message')
      const port = peer.messages(MSG.port)[0]!.payload
      assert.equal(port.length, 2)
      assert.equal(port.readUInt16BE(0), ours.address.port)
      assert.equal(ours.routingTableSize(), 0)
      const p = Buffer.alloc(2)
      p.writeUInt16BE(theirs.address.port)
      peer.send(MSG.port, p)
      await waitUntil(
        () => ours.routingTableSize() >= 1,
        'the node from the port message in our table',
        10_000,
      )
      assert.ok(!peer.closed)
    } finally {
      peer?.close()
      await session?.stop()
    }
  })

  /**
   * A magnet start whose metadata is private (or, as the control, public) with two peers: one
   * serving the metadata, one advertising a listen port (so there is something to PEX).
   */
  const magnetScenario = async (priv: boolean): Promise<void> => {
    const info = encodeBencode({
      length: 7 * 16384,
      name: 'private.bin',
      'piece length': 16384,
      pieces: randomBytes(7 * 20),
      private: priv ? 1 : undefined,
    })
    const infoHash = new Uint8Array(createHash('sha1').update(info).digest())
    const dht = new SpyDht({ bootstrap: [], host: HOST, port: 0, readyTimeoutMs: 200 })
    await dht.start()
    nodes.push(dht)
    let session: Session | undefined
    const peers: ExtPeer[] = []
    try {
      session = await startSession(`ext-private-${priv}`, { dht })
      const t = await session.addTorrent({ infoHashV1: infoHash, store: new MemoryPieceStore() })
      await waitUntil(() => dht.lookups.length > 0, 'the DHT source looking up the magnet')
      const lookup = dht.lookups[0]!
      const other = await ExtPeer.dial({
        port: session.port,
        infoHash,
        listenPort: 40_001,
        noExtendedHandshake: true,
      })
      const first = await ExtPeer.dial({
        port: session.port,
        infoHash,
        info,
        metadata: 'serve',
        listenPort: 40_002,
      })
      peers.push(other, first)
      // Before the metadata the privacy is unknown: ut_pex is offered.
      assert.ok(first.remoteId('ut_pex')! > 0)
      other.sendExtended(0, { m: new Map([['ut_pex', EXT_PEER_IDS.ut_pex]]), p: 40_001 })
      await t.whenMetadata({ signal: AbortSignal.timeout(10_000) })
      assert.equal(t.info?.private, priv)
      // Incoming PEX: 127.0.0.1:6666.
      first.sendExtended(2, { added: Buffer.from([127, 0, 0, 1, 0x1a, 0x0a]) })
      // The first PEX message would go out on the first tick after the metadata.
      await new Promise((r) => setTimeout(r, 2500))
      const pexTo = (p: ExtPeer) =>
        p.messages(MSG.extended).filter((m) => m.payload[0] === EXT_PEER_IDS.ut_pex)
      const learned = t.knownPeers().some((p) => p.port === 6666)
      if (!priv) {
        // The control: a public torrent does PEX both ways and keeps its DHT lookups.
        assert.ok(pexTo(first).length >= 1 && pexTo(other).length >= 1, 'PEX sent for a public torrent')
        assert.ok(learned, 'PEX used for a public torrent')
        assert.equal(lookup.aborted, false)
        return
      }
      assert.equal(lookup.aborted, true, 'the DHT source stopped (BEP27)')
      assert.equal(first.handshakes.length, 2, 'a second extended handshake')
      assert.equal(first.remoteId('ut_pex'), 0, 'ut_pex disabled (BEP10 id 0)')
      assert.equal(other.remoteId('ut_pex'), 0)
      assert.ok(!learned, 'PEX ignored for a private torrent')
      assert.equal(pexTo(first).length + pexTo(other).length, 0, 'no PEX sent for a private torrent')
      // A new peer: no ut_pex in our m; the metadata is served.
      const second = await ExtPeer.dial({ port: session.port, infoHash, metadata: 'reject' })
      peers.push(second)
      await waitUntil(() => second.handshakes.length >= 1, 'our extended handshake')
      const m = second.handshakes[0]!.get('m')
      assert.ok(isDict(m) && !m.has('ut_pex') && m.has('ut_metadata'))
      assert.equal(Number(second.handshakes[0]!.get('metadata_size')), info.length)
      second.sendExtended(second.remoteId('ut_metadata')!, { msg_type: 0, piece: 0 })
      const answered = () =>
        second.messages(MSG.extended).find((x) => x.payload[0] === EXT_PEER_IDS.ut_metadata)
      await waitUntil(() => answered() !== undefined, 'a ut_metadata answer')
      const d = decodeBencode(new Uint8Array(answered()!.payload.subarray(1)), { allowTrailing: true }).value
      assert.ok(isDict(d))
      assert.equal(Number(d.get('msg_type')), 1, 'data, not reject')
      assert.equal(Number(d.get('total_size')), info.length)
      assert.ok(!first.closed && !second.closed && !other.closed)
    } finally {
      for (const p of peers) p.close()
      await session?.stop()
    }
  }

  test('private torrent found by a magnet: DHT stopped, no PEX either way, metadata still served', async () => {
    await magnetScenario(true)
  })

  test('control: the same with a public torrent does PEX and keeps the DHT', async () => {
    await magnetScenario(false)
  })
})
