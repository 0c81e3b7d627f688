/**
 * PeerConnection and performHandshake over real loopback TCP sockets (127.0.0.1): handshakes in
 * both directions (routing, BEP52 upgrade, failures), message delivery, write backpressure
 * (`send` false → `onDrain`), the write cap and stall timeout against a peer that never reads,
 * oversized and malformed frames, BEP6 enforcement, inactivity and keep-alive timers, close
 * semantics.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { PeerConnection, type PeerConnectionError } from '../../gateway/engine/peer/connection.ts'
import { performHandshake } from '../../gateway/engine/peer/handshake.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { WireProtocolError } from '../../gateway/protocol/wire/errors.ts'
import { frameLimits } from '../../gateway/protocol/wire/frame-decoder.ts'
import { encodeHandshake, makePeerId, makeReserved } from '../../gateway/protocol/wire/handshake.ts'
import { encodeMessageBytes, type WireMessage } from '../../gateway/protocol/wire/messages.ts'

const HOST = '127.0.0.1'

let server: Server
let port = 0
const waiting: ((s: Socket) => void)[] = []
const sockets = new Set<Socket>()

before(async () => {
  server = createServer((s) => {
    sockets.add(s)
    const next = waiting.shift()
    if (next) next(s)
    else s.destroy()
  })
  server.listen(0, HOST)
  await once(server, 'listening')
  const addr = server.address()
  assert.ok(addr && typeof addr === 'object')
  port = addr.port
})

after(async () => {
  for (const s of sockets) s.destroy()
  server.close()
  await once(server, 'close')
})

/** A connected loopback pair: [client side, server side]. */
async function pair(): Promise<[Socket, Socket]> {
  const accepted = new Promise<Socket>((resolve) => waiting.push(resolve))
  const client = connect(port, HOST)
  sockets.add(client)
  await once(client, 'connect')
  return [client, await accepted]
}

const infoHash = Uint8Array.from({ length: 20 }, (_, i) => i + 1)
const v2Truncated = Uint8Array.from({ length: 20 }, (_, i) => 0xf0 - i)
const reserved = makeReserved({ extensionProtocol: true, fast: true, dht: true })

/** Collects the messages and the close reason of a PeerConnection. */
function harness(
  socket: Socket,
  opts: Partial<ConstructorParameters<typeof PeerConnection>[0]> = {},
): { conn: PeerConnection; messages: WireMessage[]; closed: Promise<PeerConnectionError> } {
  const messages: WireMessage[] = []
  let resolveClosed: (e: PeerConnectionError) => void = () => {}
  const closed = new Promise<PeerConnectionError>((r) => {
    resolveClosed = r
  })
  let closes = 0
  const conn = new PeerConnection({
    socket,
    fast: true,
    limits: frameLimits({ pieceCount: 100 }),
    onMessage: (m) => messages.push(m),
    ...opts,
    onClose: (reason) => {
      closes++
      assert.equal(closes, 1, 'onClose runs exactly once')
      resolveClosed(reason)
    },
  })
  return { conn, messages, closed }
}

async function waitUntil(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !pred(); i++) await new Promise((r) => setTimeout(r, 10))
  assert.ok(pred(), `timed out waiting for ${what}`)
}

describe('performHandshake over loopback TCP', () => {
  test('outgoing and incoming complete; flags and leftover bytes are reported', async () => {
    const [client, srv] = await pair()
    const clientId = makePeerId()
    const serverId = makePeerId()
    const [out, inc] = await Promise.all([
      performHandshake(client, { infoHash, peerId: clientId, reserved, timeoutMs: 5000 }),
      performHandshake(srv, {
        expectInfoHashes: new Set([toHex(infoHash)]),
        peerId: serverId,
        reserved: makeReserved({ extensionProtocol: true }),
        timeoutMs: 5000,
      }),
    ])
    assert.ok(out.ok && inc.ok)
    assert.deepEqual(out.value.remote.peerId, serverId)
    assert.deepEqual(inc.value.remote.peerId, clientId)
    assert.deepEqual(inc.value.infoHash, infoHash)
    assert.equal(out.value.flags.extensionProtocol, true)
    assert.equal(out.value.flags.fast, false, 'BEP6 needs both sides')
    assert.equal(inc.value.remoteFlags.fast, true)
    client.destroy()
    srv.destroy()
  })

  test('bytes sent right after the handshake come back as leftover and reach onMessage', async () => {
    const [client, srv] = await pair()
    client.write(
      Buffer.concat([
        encodeHandshake({ reserved, infoHash, peerId: makePeerId() }),
        encodeMessageBytes({ type: 'have-all' }),
        encodeMessageBytes({ type: 'have', index: 5 }),
      ]),
    )
    const inc = await performHandshake(srv, {
      expectInfoHashes: new Set([toHex(infoHash)]),
      peerId: makePeerId(),
      reserved,
    })
    assert.ok(inc.ok)
    const h = harness(srv, { leftover: inc.value.leftover, fast: inc.value.flags.fast })
    await waitUntil(() => h.messages.length === 2, 'leftover messages')
    assert.deepEqual(h.messages, [{ type: 'have-all' }, { type: 'have', index: 5 }])
    h.conn.close('done')
    client.destroy()
    await h.closed
  })

  test('BEP52 upgrade: a hybrid swarm answers a v1 handshake with the truncated v2 hash', async () => {
    const [client, srv] = await pair()
    const r2 = makeReserved({ extensionProtocol: true, v2Upgrade: true })
    const [out, inc] = await Promise.all([
      performHandshake(client, {
        infoHash,
        upgradeInfoHash: v2Truncated,
        peerId: makePeerId(),
        reserved: r2,
      }),
      performHandshake(srv, {
        expectInfoHashes: new Set([toHex(infoHash)]),
        upgrade: new Map([[toHex(infoHash), v2Truncated]]),
        peerId: makePeerId(),
        reserved: r2,
      }),
    ])
    assert.ok(out.ok && inc.ok)
    assert.equal(out.value.upgraded, true)
    assert.equal(inc.value.upgraded, true)
    assert.deepEqual(out.value.infoHash, v2Truncated)
    assert.equal(out.value.flags.v2Upgrade, true)
    client.destroy()
    srv.destroy()
  })

  test('failures: unknown swarm, mismatching hash, self connection, not BitTorrent, timeout, abort', async () => {
    {
      const [client, srv] = await pair()
      const [out, inc] = await Promise.all([
        performHandshake(client, { infoHash, peerId: makePeerId(), reserved }),
        performHandshake(srv, {
          expectInfoHashes: new Set(['00'.repeat(20)]),
          peerId: makePeerId(),
          reserved,
        }),
      ])
      assert.ok(!inc.ok && inc.error.code === 'GW_ERR_PEER_UNKNOWN_INFO_HASH')
      assert.ok(!out.ok && out.error.code === 'GW_ERR_PEER_REMOTE_CLOSED')
      assert.ok(srv.destroyed)
    }
    {
      const [client, srv] = await pair()
      srv.write(encodeHandshake({ reserved, infoHash: v2Truncated, peerId: makePeerId() }))
      const out = await performHandshake(client, { infoHash, peerId: makePeerId(), reserved })
      assert.ok(!out.ok && out.error.code === 'GW_ERR_PEER_INFO_HASH_MISMATCH')
      srv.destroy()
    }
    {
      const [client, srv] = await pair()
      const same = makePeerId()
      const [out] = await Promise.all([
        performHandshake(client, { infoHash, peerId: same, reserved }),
        performHandshake(srv, { expectInfoHashes: new Set([toHex(infoHash)]), peerId: same, reserved }),
      ])
      assert.ok(!out.ok && out.error.code === 'GW_ERR_PEER_ID_MISMATCH')
    }
    {
      const [client, srv] = await pair()
      client.write(Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\n\r\n${' '.repeat(40)}`))
      const inc = await performHandshake(srv, {
        expectInfoHashes: new Set([toHex(infoHash)]),
        peerId: makePeerId(),
        reserved,
      })
      assert.ok(!inc.ok && inc.error.code === 'GW_ERR_PEER_PROTOCOL')
      assert.ok(inc.error.cause instanceof WireProtocolError)
      client.destroy()
    }
    {
      const [client, srv] = await pair()
      const inc = await performHandshake(srv, {
        expectInfoHashes: new Set([toHex(infoHash)]),
        peerId: makePeerId(),
        reserved,
        timeoutMs: 150,
      })
      assert.ok(!inc.ok && inc.error.code === 'GW_ERR_PEER_HANDSHAKE_TIMEOUT')
      client.destroy()
    }
    {
      const [client, srv] = await pair()
      const ac = new AbortController()
      const p = performHandshake(srv, {
        expectInfoHashes: new Set([toHex(infoHash)]),
        peerId: makePeerId(),
        reserved,
        signal: ac.signal,
      })
      ac.abort()
      const inc = await p
      assert.ok(!inc.ok && inc.error.code === 'GW_ERR_PEER_ABORTED')
      client.destroy()
    }
  })
})

describe('PeerConnection over loopback TCP', () => {
  test('messages flow both ways, in order', async () => {
    const [a, b] = await pair()
    const A = harness(a)
    const B = harness(b)
    const block = Uint8Array.from({ length: 16384 }, (_, i) => (i * 7) & 0xff)
    const sent: WireMessage[] = [
      { type: 'have-none' },
      { type: 'interested' },
      { type: 'request', index: 1, begin: 0, length: 16384 },
      { type: 'extended', id: 0, payload: new TextEncoder().encode('de') },
    ]
    for (const m of sent) A.conn.send(m)
    B.conn.send({ type: 'unchoke' })
    B.conn.send({ type: 'piece', index: 1, begin: 0, block })
    await waitUntil(() => B.messages.length === sent.length && A.messages.length === 2, 'messages')
    assert.deepEqual(B.messages, sent)
    assert.deepEqual(A.messages, [{ type: 'unchoke' }, { type: 'piece', index: 1, begin: 0, block }])
    assert.equal(B.conn.messagesReceived, 4)
    A.conn.close('bye')
    const [ra, rb] = await Promise.all([A.closed, B.closed])
    assert.equal(ra.code, 'GW_ERR_PEER_LOCAL_CLOSE')
    assert.equal(ra.message, 'bye')
    assert.equal(rb.code, 'GW_ERR_PEER_REMOTE_CLOSED')
    assert.equal(A.conn.send({ type: 'choke' }), false, 'send after close is a no-op')
    A.conn.close('again') // idempotent, never throws
  })

  test('backpressure: send returns false when the kernel buffer is full, onDrain resolves once the peer reads', async () => {
    const [a, b] = await pair()
    b.pause() // the peer does not read for now
    const A = harness(a, { maxWriteQueueBytes: 64 * 1024 * 1024 })
    const block = new Uint8Array(16384)
    let sent = 0
    let accepted = true
    // bounded: loopback buffers are a few MiB at most
    while (accepted && sent < 4096) {
      accepted = A.conn.send({ type: 'piece', index: 0, begin: 0, block })
      sent++
    }
    assert.equal(accepted, false, 'send eventually returns false')
    assert.equal(A.conn.needsDrain, true)
    let drained = false
    const drain = A.conn.onDrain().then(() => {
      drained = true
    })
    await new Promise((r) => setTimeout(r, 50))
    assert.equal(drained, false, 'no drain while the peer is not reading')
    // now read (and discard) everything on the other side
    let received = 0
    b.on('data', (d: Buffer) => {
      received += d.length
    })
    b.resume()
    await drain
    assert.equal(drained, true)
    assert.equal(A.conn.closed, false)
    assert.equal(A.conn.send({ type: 'keep-alive' }), true)
    await waitUntil(() => received >= sent * (16384 + 13), 'all bytes delivered')
    A.conn.close()
    b.destroy()
    await A.closed
  })

  test('a peer that never reads is closed when the write cap is reached', async () => {
    const [a, b] = await pair()
    b.pause()
    const A = harness(a, { writeHighWaterMark: 64 * 1024, maxWriteQueueBytes: 1024 * 1024 })
    const block = new Uint8Array(16384)
    // a misbehaving caller that ignores `false`; the connection protects itself
    for (let i = 0; i < 100_000 && !A.conn.closed; i++)
      A.conn.send({ type: 'piece', index: 0, begin: 0, block })
    assert.equal(A.conn.closed, true)
    const reason = await A.closed
    assert.equal(reason.code, 'GW_ERR_PEER_WRITE_QUEUE_FULL')
    b.destroy()
  })

  test('a peer that never reads is closed by the write stall timeout', async () => {
    const [a, b] = await pair()
    b.pause()
    const A = harness(a, { writeStallTimeoutMs: 300, maxWriteQueueBytes: 64 * 1024 * 1024 })
    const block = new Uint8Array(16384)
    for (let i = 0; i < 4096 && A.conn.send({ type: 'piece', index: 0, begin: 0, block }); i++) {
      /* fill until backpressure */
    }
    const drain = A.conn.onDrain()
    const reason = await A.closed
    assert.equal(reason.code, 'GW_ERR_PEER_WRITE_STALLED')
    await assert.rejects(drain, (e: PeerConnectionError) => e.code === 'GW_ERR_PEER_WRITE_STALLED')
    b.destroy()
  })

  test('an oversized frame closes the connection with a reason (and only that connection)', async () => {
    const [a, b] = await pair()
    const [c, d] = await pair()
    const A = harness(a)
    const C = harness(c)
    const prefix = Buffer.alloc(4)
    prefix.writeUInt32BE(10 * 1024 * 1024)
    b.write(prefix)
    const reason = await A.closed
    assert.equal(reason.code, 'GW_ERR_PEER_PROTOCOL')
    assert.ok(reason.cause instanceof WireProtocolError)
    assert.equal(reason.cause.code, 'GW_ERR_WIRE_FRAME_TOO_LARGE')
    // the other connection is unaffected
    d.write(encodeMessageBytes({ type: 'have', index: 1 }))
    await waitUntil(() => C.messages.length === 1, 'message on the other connection')
    assert.equal(C.conn.closed, false)
    C.conn.close()
    b.destroy()
    d.destroy()
    await C.closed
  })

  test('a piece larger than 16 KiB, a malformed have, a Fast message without BEP6: closed with reasons', async () => {
    const cases: [Buffer, boolean, string, string | undefined][] = [
      [
        Buffer.concat([Buffer.from([0, 0, 0x40, 0x0a, 7]), Buffer.alloc(16384 + 9)]),
        true,
        'GW_ERR_PEER_PROTOCOL',
        'GW_ERR_WIRE_FRAME_TOO_LARGE',
      ],
      [Buffer.from([0, 0, 0, 4, 4, 0, 0, 1]), true, 'GW_ERR_PEER_PROTOCOL', 'GW_ERR_WIRE_BAD_LENGTH'],
      [Buffer.from(encodeMessageBytes({ type: 'have-all' })), false, 'GW_ERR_PEER_PROTOCOL', undefined],
      [
        Buffer.from(encodeMessageBytes({ type: 'have', index: 100 })),
        true,
        'GW_ERR_PEER_PROTOCOL',
        'GW_ERR_WIRE_BAD_FIELD',
      ],
    ]
    for (const [bytes, fast, code, wireCode] of cases) {
      const [a, b] = await pair()
      const A = harness(a, { fast, decodeContext: { pieceCount: 100 } })
      b.write(bytes)
      const reason = await A.closed
      assert.equal(reason.code, code)
      if (wireCode) assert.equal((reason.cause as WireProtocolError).code, wireCode)
      assert.equal(A.messages.length, 0)
      b.destroy()
    }
  })

  test('inactivity timeout, and keep-alives sent when idle', async () => {
    const [a, b] = await pair()
    const A = harness(a, { inactivityTimeoutMs: 400, keepAliveIntervalMs: 60_000 })
    const reason = await A.closed
    assert.equal(reason.code, 'GW_ERR_PEER_INACTIVE')
    b.destroy()

    const [c, d] = await pair()
    const C = harness(c, { keepAliveIntervalMs: 50 })
    const D = harness(d)
    await waitUntil(() => D.messages.filter((m) => m.type === 'keep-alive').length >= 2, 'keep-alives')
    C.conn.close()
    await Promise.all([C.closed, D.closed])
  })

  test('close from inside onMessage stops delivery; a throwing onMessage closes with GW_ERR_PEER_CALLBACK', async () => {
    const [a, b] = await pair()
    const seen: WireMessage[] = []
    let conn: PeerConnection | undefined
    const h = harness(a, {
      onMessage: (m) => {
        seen.push(m)
        conn?.close('enough')
      },
    })
    conn = h.conn
    b.write(Buffer.concat([encodeMessageBytes({ type: 'choke' }), encodeMessageBytes({ type: 'unchoke' })]))
    assert.equal((await h.closed).code, 'GW_ERR_PEER_LOCAL_CLOSE')
    assert.deepEqual(seen, [{ type: 'choke' }])
    b.destroy()

    const [c, d] = await pair()
    const t = harness(c, {
      onMessage: () => {
        throw new Error('bug in the coordinator')
      },
    })
    d.write(encodeMessageBytes({ type: 'interested' }))
    const reason = await t.closed
    assert.equal(reason.code, 'GW_ERR_PEER_CALLBACK')
    assert.equal((reason.cause as Error).message, 'bug in the coordinator')
    d.destroy()
  })

  test('a socket that closed before the PeerConnection was built is reported as closed', async () => {
    const [a, b] = await pair()
    b.destroy()
    await once(a, 'close')
    const A = harness(a)
    assert.equal((await A.closed).code, 'GW_ERR_PEER_REMOTE_CLOSED')
  })

  test('abort signal closes; onDrain honours its own signal', async () => {
    const [a, b] = await pair()
    const ac = new AbortController()
    const A = harness(a, { signal: ac.signal })
    b.pause()
    const block = new Uint8Array(16384)
    for (let i = 0; i < 4096 && A.conn.send({ type: 'piece', index: 0, begin: 0, block }); i++) {
      /* fill */
    }
    const own = new AbortController()
    const waiting = A.conn.onDrain({ signal: own.signal })
    own.abort(new Error('caller gave up'))
    await assert.rejects(waiting, /caller gave up/)
    ac.abort()
    assert.equal((await A.closed).code, 'GW_ERR_PEER_ABORTED')
    await assert.rejects(A.conn.onDrain(), (e: PeerConnectionError) => e.code === 'GW_ERR_PEER_ABORTED')
    b.destroy()
  })
})
