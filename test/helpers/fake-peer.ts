/**
 * A scripted hostile BitTorrent peer for the interop tests (libtorrent's `fake_peer` idea,
 * STYLE.md §2). It dials the engine under test, speaks the real BEP3 handshake (with the BEP6 Fast
 * bit), claims to have every piece (`have all`) and unchokes, then misbehaves according to a
 * script. Each phase of the script is one fresh connection with the same peer id:
 *
 * - `flood`: sends `floodCount` valid requests at once (for a piece the engine does not have yet).
 * - `oversized`: waits for the engine's first request, then sends a `piece` frame whose length
 *   prefix is far past any limit (64 MiB) followed by some bytes.
 * - `corrupt`: answers every request with a block of the right length but wrong bytes.
 * - `probe`: only handshakes and waits (to see whether a banned peer is refused).
 *
 * A phase ends when the engine closes the connection (`closedByRemote`) or after
 * `phaseTimeoutMs` (then the fake peer closes it). Messages are hand-encoded here, independent of
 * the codecs under test. Everything is bounded: buffered input, blocks answered, phase time.
 */
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'

export type FakePhase = 'flood' | 'oversized' | 'corrupt' | 'probe'

export interface FakePeerInit {
  /** Where the engine listens (127.0.0.1). */
  readonly host: string
  readonly port: number
  /** The 20-byte swarm id to join (v1 info hash or truncated v2 hash). */
  readonly infoHash: Uint8Array
  /** @default random `-FK0001-…` */
  readonly peerId?: Uint8Array
  /** Requests sent by the `flood` phase. @default 2000 */
  readonly floodCount?: number
  /** @default 15 000 */
  readonly phaseTimeoutMs?: number
  /** Most corrupt blocks sent in one phase. @default 4096 */
  readonly maxCorruptBlocks?: number
}

export interface PhaseReport {
  readonly phase: FakePhase
  /** The engine answered our handshake. */
  readonly handshake: boolean
  /** The engine closed the connection (as opposed to our timeout). */
  readonly closedByRemote: boolean
  readonly requestsReceived: number
  readonly blocksSent: number
  /** Message ids received after the handshake (count per id; -1 = keep-alive). */
  readonly received: ReadonlyMap<number, number>
  readonly durationMs: number
}

const PSTR = 'BitTorrent protocol'
const HANDSHAKE_LENGTH = 68
const MAX_BUFFERED = 1024 * 1024
const ID = { unchoke: 1, interested: 2, request: 6, piece: 7, haveAll: 0x0e, reject: 0x10 } as const

function handshake(infoHash: Uint8Array, peerId: Uint8Array): Buffer {
  const b = Buffer.alloc(HANDSHAKE_LENGTH)
  b[0] = PSTR.length
  b.write(PSTR, 1, 'latin1')
  b[27] = 0x04 // BEP6 Fast (reserved byte 7)
  b.set(infoHash, 28)
  b.set(peerId, 48)
  return b
}

function message(id: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(5 + payload.length)
  b.writeUInt32BE(1 + payload.length, 0)
  b[4] = id
  b.set(payload, 5)
  return b
}

function request(index: number, begin: number, length: number): Buffer {
  const p = Buffer.alloc(12)
  p.writeUInt32BE(index, 0)
  p.writeUInt32BE(begin, 4)
  p.writeUInt32BE(length, 8)
  return message(ID.request, p)
}

export function fakePeerId(): Uint8Array {
  const id = randomBytes(20)
  id.write('-FK0001-', 0, 'latin1')
  return id
}

/** Runs one phase on a fresh connection. Never rejects; connection failures give a report. */
export function runPhase(init: FakePeerInit, phase: FakePhase, peerId: Uint8Array): Promise<PhaseReport> {
  const started = Date.now()
  const timeoutMs = init.phaseTimeoutMs ?? 15_000
  const maxCorrupt = init.maxCorruptBlocks ?? 4096
  return new Promise<PhaseReport>((resolve) => {
    const socket: Socket = connect({ host: init.host, port: init.port })
    let buf: Buffer = Buffer.alloc(0)
    let shook = false
    let requests = 0
    let blocks = 0
    let closedByUs = false
    let done = false
    const received = new Map<number, number>()
    const finish = (): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({
        phase,
        handshake: shook,
        closedByRemote: !closedByUs,
        requestsReceived: requests,
        blocksSent: blocks,
        received,
        durationMs: Date.now() - started,
      })
    }
    const timer = setTimeout(() => {
      closedByUs = true
      finish()
    }, timeoutMs)
    const send = (b: Buffer): void => {
      if (!socket.destroyed) socket.write(b)
    }
    const onMessage = (id: number, payload: Buffer): void => {
      received.set(id, (received.get(id) ?? 0) + 1)
      if (id !== ID.request || payload.length !== 12) return
      requests++
      const index = payload.readUInt32BE(0)
      const begin = payload.readUInt32BE(4)
      const length = payload.readUInt32BE(8)
      if (phase === 'oversized' && requests === 1) {
        // A piece frame claiming 64 MiB: far beyond 16 KiB + 9. Send the header and some bytes.
        const h = Buffer.alloc(13 + 4096)
        h.writeUInt32BE(64 * 1024 * 1024, 0)
        h[4] = ID.piece
        h.writeUInt32BE(index, 5)
        h.writeUInt32BE(begin, 9)
        send(h)
      } else if (phase === 'corrupt' && blocks < maxCorrupt && length <= 16 * 1024) {
        const p = Buffer.alloc(8 + length)
        p.writeUInt32BE(index, 0)
        p.writeUInt32BE(begin, 4)
        randomBytes(length).copy(p, 8)
        send(message(ID.piece, p))
        blocks++
      }
    }
    const onStart = (): void => {
      send(message(ID.haveAll))
      send(message(ID.unchoke))
      if (phase === 'flood') {
        const n = init.floodCount ?? 2000
        // Valid requests (piece 0, first block): only their number is hostile.
        const all = Buffer.concat(Array.from({ length: n }, () => request(0, 0, 16384)))
        send(message(ID.interested))
        send(all)
      }
    }
    socket.on('connect', () => send(handshake(init.infoHash, peerId)))
    socket.on('data', (chunk: Buffer) => {
      if (done) return
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      if (buf.length > MAX_BUFFERED) {
        closedByUs = true
        return finish()
      }
      if (!shook) {
        if (buf.length < HANDSHAKE_LENGTH) return
        if (buf[0] !== PSTR.length || !buf.subarray(28, 48).equals(Buffer.from(init.infoHash))) {
          closedByUs = true
          return finish()
        }
        shook = true
        buf = buf.subarray(HANDSHAKE_LENGTH)
        onStart()
      }
      // bounded: each iteration consumes at least 4 bytes
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0)
        if (len > 64 * 1024) {
          closedByUs = true
          return finish()
        }
        if (buf.length < 4 + len) return
        if (len === 0) received.set(-1, (received.get(-1) ?? 0) + 1)
        else onMessage(buf[4]!, buf.subarray(5, 4 + len))
        buf = buf.subarray(4 + len)
      }
    })
    socket.on('error', () => finish())
    socket.on('close', () => finish())
  })
}

/** Runs the phases one after another (each a new connection, same peer id). */
export async function runFakePeer(init: FakePeerInit, phases: readonly FakePhase[]): Promise<PhaseReport[]> {
  const peerId = init.peerId ?? fakePeerId()
  const reports: PhaseReport[] = []
  for (const phase of phases) reports.push(await runPhase(init, phase, peerId))
  return reports
}
