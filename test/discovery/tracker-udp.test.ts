/**
 * UDP tracker client (BEP15) against the real `bittorrent-tracker` Server (UDP only) and small
 * scripted UDP servers: connect + announce + scrape, retransmission with backoff then timeout,
 * transaction-id checks, error packets, abort. Everything on 127.0.0.1.
 */

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { after, before, describe, test } from 'node:test'
import { Server } from 'bittorrent-tracker'
import { TrackerError, TrackerTimeoutError } from '../../gateway/engine/discovery/tracker-common.ts'
import { UdpTrackerClient } from '../../gateway/engine/discovery/tracker-udp.ts'
import { toHex } from '../../gateway/protocol/hex.ts'

const HOST = '127.0.0.1'
const clientInit = { localAddress: HOST }

async function startScriptedServer(
  onPacket: (msg: Buffer, rinfo: RemoteInfo, socket: Socket) => void,
): Promise<{ socket: Socket; url: string; packets: Buffer[] }> {
  const socket = createSocket('udp4')
  const packets: Buffer[] = []
  socket.on('message', (msg, rinfo) => {
    packets.push(msg)
    onPacket(msg, rinfo, socket)
  })
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve))
  return { socket, url: `udp://${HOST}:${socket.address().port}`, packets }
}

const closeSocket = (s: Socket) => new Promise<void>((resolve) => s.close(() => resolve()))

/** connect response (BEP15): action 0, transaction id, connection id. */
function connectResponse(tid: number, connectionId: bigint): Buffer {
  const b = Buffer.alloc(16)
  b.writeUInt32BE(0, 0)
  b.writeUInt32BE(tid, 4)
  b.writeBigUInt64BE(connectionId, 8)
  return b
}

/** IPv4 announce response (BEP15) with the given peers. */
function announceResponse(tid: number, peers: [number, number, number, number, number][]): Buffer {
  const b = Buffer.alloc(20 + 6 * peers.length)
  b.writeUInt32BE(1, 0)
  b.writeUInt32BE(tid, 4)
  b.writeUInt32BE(1800, 8)
  b.writeUInt32BE(3, 12) // leechers
  b.writeUInt32BE(4, 16) // seeders
  peers.forEach(([a, c, d, e, port], i) => {
    b.set([a, c, d, e], 20 + 6 * i)
    b.writeUInt16BE(port, 24 + 6 * i)
  })
  return b
}

const announceReq = (infoHash: Uint8Array, port: number, left = 100) => ({
  infoHash,
  peerId: randomBytes(20),
  port,
  uploaded: 0,
  downloaded: 0,
  left,
})

describe('UDP tracker against bittorrent-tracker', () => {
  let server: Server
  let url: string
  before(async () => {
    server = new Server({ udp: true, http: false, ws: false, stats: false })
    server.on('warning', () => {})
    // The server always opens an IPv6 socket too: bind it to the IPv4-mapped loopback address.
    await new Promise<void>((resolve) => server.listen(0, { udp: HOST, udp6: '::ffff:127.0.0.1' }, resolve))
    url = `udp://${HOST}:${server.udp4!.address().port}`
  })
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  test('connect + announce: two clients learn each other; scrape reports the swarm', async () => {
    const a = new UdpTrackerClient(url, clientInit)
    const b = new UdpTrackerClient(url, clientInit)
    try {
      const infoHash = randomBytes(20)
      const ra = await a.announce({ ...announceReq(infoHash, 7001), event: 'started' })
      assert.ok(ra.intervalS !== undefined && ra.intervalS > 0)
      const rb = await b.announce({ ...announceReq(infoHash, 7002, 0), event: 'started' })
      assert.ok(
        rb.peers.some((p) => p.host === HOST && p.port === 7001),
        'b learns a',
      )
      const ra2 = await a.announce(announceReq(infoHash, 7001))
      assert.ok(
        ra2.peers.some((p) => p.host === HOST && p.port === 7002),
        'a learns b',
      )
      assert.equal(ra2.complete, 1)
      assert.equal(ra2.incomplete, 1)

      const other = randomBytes(20)
      const scrape = await a.scrape([infoHash, other])
      assert.deepEqual(scrape.get(toHex(infoHash)), { complete: 1, incomplete: 1, downloaded: 1 })
      assert.deepEqual(scrape.get(toHex(other)), { complete: 0, incomplete: 0, downloaded: 0 })

      await b.announce({ ...announceReq(infoHash, 7002, 0), event: 'stopped' })
      assert.equal(server.torrents[toHex(infoHash)]?.complete, 0)
    } finally {
      await a.close()
      await b.close()
    }
  })
})

describe('UDP tracker: retransmission, transaction ids, errors', () => {
  test('a tracker that never answers: connect is retransmitted with backoff, then a timeout error', async () => {
    const silent = await startScriptedServer(() => {})
    const client = new UdpTrackerClient(silent.url, {
      ...clientInit,
      retransmitBaseMs: 20,
      maxRetransmits: 3,
    })
    try {
      const err = await client.announce(announceReq(randomBytes(20), 1)).catch((e: unknown) => e)
      assert.ok(err instanceof TrackerTimeoutError, String(err))
      assert.equal(err.code, 'GW_ERR_TRACKER_TIMEOUT')
      // 1 transmission + 3 retransmissions, all connect requests with the BEP15 magic.
      assert.equal(silent.packets.length, 4)
      for (const p of silent.packets) {
        assert.equal(p.readBigUInt64BE(0), 0x41727101980n)
        assert.equal(p.readUInt32BE(8), 0)
      }
    } finally {
      await client.close()
      await closeSocket(silent.socket)
    }
  })

  test('answers with a wrong transaction id are ignored; the right one is used', async () => {
    const cid = 0x1122334455667788n
    const server = await startScriptedServer((msg, rinfo, socket) => {
      const action = msg.readUInt32BE(8)
      const tid = msg.readUInt32BE(12)
      const reply = (b: Buffer) => socket.send(b, rinfo.port, rinfo.address)
      if (action === 0) {
        reply(connectResponse((tid + 1) >>> 0, 0xbadn)) // forged: wrong id
        reply(connectResponse(tid, cid))
      } else if (action === 1) {
        assert.equal(msg.readBigUInt64BE(0), cid, 'the connection id from the right answer is used')
        reply(announceResponse((tid ^ 0xffff) >>> 0, [[6, 6, 6, 6, 666]])) // forged peers
        setTimeout(() => reply(announceResponse(tid, [[10, 0, 0, 1, 6881]])), 20)
      }
    })
    const client = new UdpTrackerClient(server.url, { ...clientInit, retransmitBaseMs: 2000 })
    try {
      const res = await client.announce(announceReq(randomBytes(20), 1))
      assert.deepEqual(res.peers, [{ host: '10.0.0.1', port: 6881 }])
      assert.equal(res.complete, 4)
      assert.equal(res.incomplete, 3)
      assert.equal(client.ignoredPackets, 2)
      // The connection id is reused within its 60 s lifetime: the next announce sends no connect.
      const before = server.packets.length
      await client.announce(announceReq(randomBytes(20), 1))
      assert.equal(server.packets.length, before + 1)
      assert.equal(server.packets.at(-1)?.readUInt32BE(8), 1)
    } finally {
      await client.close()
      await closeSocket(server.socket)
    }
  })

  test('a lost announce is retransmitted and still answered', async () => {
    let announces = 0
    const server = await startScriptedServer((msg, rinfo, socket) => {
      const action = msg.readUInt32BE(8)
      const tid = msg.readUInt32BE(12)
      if (action === 0) socket.send(connectResponse(tid, 42n), rinfo.port, rinfo.address)
      else if (action === 1 && ++announces >= 3) {
        socket.send(announceResponse(tid, [[10, 0, 0, 2, 1]]), rinfo.port, rinfo.address)
      }
    })
    const client = new UdpTrackerClient(server.url, {
      ...clientInit,
      retransmitBaseMs: 20,
      maxRetransmits: 4,
    })
    try {
      const res = await client.announce(announceReq(randomBytes(20), 1))
      assert.deepEqual(res.peers, [{ host: '10.0.0.2', port: 1 }])
      assert.equal(announces, 3)
    } finally {
      await client.close()
      await closeSocket(server.socket)
    }
  })

  test('an error packet (action 3) gives a TrackerError with the message', async () => {
    const server = await startScriptedServer((msg, rinfo, socket) => {
      const tid = msg.readUInt32BE(12)
      if (msg.readUInt32BE(8) === 0) {
        socket.send(connectResponse(tid, 1n), rinfo.port, rinfo.address)
        return
      }
      const b = Buffer.concat([Buffer.alloc(8), Buffer.from('unregistered torrent')])
      b.writeUInt32BE(3, 0)
      b.writeUInt32BE(tid, 4)
      socket.send(b, rinfo.port, rinfo.address)
    })
    const client = new UdpTrackerClient(server.url, clientInit)
    try {
      const err = await client.scrape([randomBytes(20)]).catch((e: unknown) => e)
      assert.ok(err instanceof TrackerError)
      assert.equal(err.reason, 'unregistered torrent')
    } finally {
      await client.close()
      await closeSocket(server.socket)
    }
  })

  test('abort stops waiting at once; close rejects pending requests', async () => {
    const silent = await startScriptedServer(() => {})
    const client = new UdpTrackerClient(silent.url, { ...clientInit, retransmitBaseMs: 60_000 })
    try {
      const ctl = new AbortController()
      const p = client.announce(announceReq(randomBytes(20), 1), { signal: ctl.signal })
      setTimeout(() => ctl.abort(new Error('shutdown')), 20)
      await assert.rejects(p, /shutdown/)
      const pending = client.announce(announceReq(randomBytes(20), 1))
      setTimeout(() => void client.close(), 20)
      await assert.rejects(pending, /client closed/)
    } finally {
      await client.close()
      await closeSocket(silent.socket)
    }
  })
})
