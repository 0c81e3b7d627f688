/**
 * DHT (BEP5) on a private network of `bittorrent-dht` nodes on 127.0.0.1, bootstrapped only to
 * each other: our DhtNode announces, another DhtNode finds it (v1 and truncated v2 hashes), the
 * DHT peer source delivers peers, and the routing table survives a restart without bootstrap.
 */

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type DHT from 'bittorrent-dht'
import { DhtError, DhtNode, PUBLIC_DHT_ROUTERS, parseHostPort } from '../../gateway/engine/discovery/dht.ts'
import { DhtPeerSource } from '../../gateway/engine/discovery/dht-source.ts'
import { type PeerAddress, toSwarmInfoHash } from '../../gateway/engine/discovery/peer-source.ts'
import { destroyDht, startPrivateDht } from '../helpers/local-discovery.ts'

const HOST = '127.0.0.1'
const NETWORK_SIZE = 4

async function waitFor(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const start = Date.now()
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Starts `n` plain bittorrent-dht nodes that know only each other, once their routing tables are full. */
async function startPrivateNetwork(n: number): Promise<DHT[]> {
  const nodes = await startPrivateDht(n)
  await waitFor(() => nodes.every((d) => d.nodes.count() >= n - 1), 'private DHT network to form')
  return nodes
}

describe('DHT on a private loopback network', () => {
  let network: DHT[]
  let bootstrap: string[]
  let dir: string
  const ours: DhtNode[] = []

  const startNode = async (extra: { statePath?: string; bootstrap?: string[] } = {}): Promise<DhtNode> => {
    const node = new DhtNode({
      bootstrap: extra.bootstrap ?? bootstrap,
      host: HOST,
      port: 0,
      queryTimeoutMs: 500, // stopped nodes linger in routing tables; do not wait 2 s for each
      ...extra,
    })
    ours.push(node)
    await node.start()
    return node
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dht-test-'))
    network = await startPrivateNetwork(NETWORK_SIZE)
    bootstrap = network.map((d) => `${HOST}:${d.address().port}`)
  })

  after(async () => {
    await Promise.all(ours.map((n) => n.stop()))
    await destroyDht(network)
    await rm(dir, { recursive: true, force: true })
  })

  test('our node announces an info hash; another node finds our address by lookup', async () => {
    const a = await startNode()
    const b = await startNode()
    assert.ok(a.routingTableSize() >= NETWORK_SIZE, 'bootstrapped from the private nodes')
    const infoHash = randomBytes(20)
    await a.announce(infoHash, 51413)
    const streamed: PeerAddress[] = []
    const found = await b.lookup(infoHash, { onPeers: (p) => streamed.push(...p) })
    assert.deepEqual(found, [{ host: HOST, port: 51413 }])
    assert.deepEqual(streamed, found)
  })

  test('a v2 info hash truncated to 20 bytes works the same (BEP52)', async () => {
    const a = await startNode()
    const b = await startNode()
    const v2 = createHash('sha256').update(randomBytes(64)).digest()
    await a.announce(toSwarmInfoHash(v2), 6999)
    const found = await b.lookup(toSwarmInfoHash(v2))
    assert.deepEqual(found, [{ host: HOST, port: 6999 }])
    await assert.rejects(b.lookup(v2), /20 bytes/)
  })

  test('the DHT peer source looks up and announces periodically', async () => {
    const a = await startNode()
    const b = await startNode()
    const infoHash = randomBytes(20)
    const got: PeerAddress[] = []
    const sa = new DhtPeerSource({ dht: a, infoHashes: [infoHash], port: 7100, onPeers: () => {} })
    const sb = new DhtPeerSource({
      dht: b,
      infoHashes: [infoHash],
      port: 7200,
      onPeers: (peers, source) => {
        assert.equal(source, 'dht')
        got.push(...peers)
      },
      intervalMs: 1000,
    })
    try {
      sa.start()
      await waitFor(() => sa.stats().announcesOk === 1, 'a announced')
      sb.start()
      await waitFor(() => got.some((p) => p.port === 7100), 'b found a')
      // Peers are delivered while the round is still running: wait for the round to be counted.
      await waitFor(() => sb.stats().rounds >= 1, 'b completed a round')
    } finally {
      await sa.stop()
      await sb.stop()
    }
  })

  test('an aborted lookup rejects with the abort reason', async () => {
    const a = await startNode()
    const ctl = new AbortController()
    ctl.abort(new Error('not needed any more'))
    await assert.rejects(a.lookup(randomBytes(20), { signal: ctl.signal }), /not needed/)
  })

  test('the routing table is saved to statePath and reloaded at restart without bootstrap', async () => {
    const statePath = join(dir, 'nested', 'dht-state.json')
    const first = await startNode({ statePath })
    await waitFor(() => first.routingTableSize() >= NETWORK_SIZE, 'table filled')
    await first.stop()
    const saved = JSON.parse(await readFile(statePath, 'utf8')) as { nodes: { host: string }[] }
    assert.ok(saved.nodes.length >= NETWORK_SIZE)
    assert.ok(saved.nodes.every((n) => n.host === HOST))

    const restarted = await startNode({ statePath, bootstrap: [] })
    assert.ok(restarted.routingTableSize() > 0, 'table restored from the state file')
    // And it is usable: it can find peers announced by others.
    const infoHash = randomBytes(20)
    const other = await startNode()
    await other.announce(infoHash, 7300)
    assert.deepEqual(await restarted.lookup(infoHash), [{ host: HOST, port: 7300 }])
  })

  test('bootstrap [] means no bootstrap at all (no fallback to public routers)', async () => {
    const lonely = await startNode({ bootstrap: [] })
    assert.equal(lonely.routingTableSize(), 0)
    assert.deepEqual(await lonely.lookup(randomBytes(20)), [])
    await assert.rejects(lonely.announce(randomBytes(20), 1), DhtError)
  })
})

describe('DHT configuration', () => {
  test('public routers are only an exported default', () => {
    assert.deepEqual(PUBLIC_DHT_ROUTERS, [
      'router.bittorrent.com:6881',
      'dht.transmissionbt.com:6881',
      'router.utorrent.com:6881',
    ])
    assert.deepEqual(parseHostPort('[::1]:6881'), { host: '::1', port: 6881 })
    assert.throws(() => parseHostPort('nohost'), DhtError)
    assert.throws(() => new DhtNode({ bootstrap: [], host: 'localhost', port: 0 }), DhtError)
    assert.throws(() => new DhtNode({ bootstrap: ['x:0'], host: HOST, port: 0 }), DhtError)
  })
})
