/**
 * A scripted hostile BitTorrent peer for the interop tests (libtorrent's `fake_peer` idea,
 * STYLE.md §2), and (at the end of this file) in-process scripted peers driving a `Torrent`
 * directly through `PeerWire`s with a hand-moved clock. It dials the engine under test, speaks the real BEP3 handshake (with the BEP6 Fast
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
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import type { PieceStore } from '../../gateway/engine/storage.ts'
import type { PeerInfo, PeerWire } from '../../gateway/engine/torrent/peer.ts'
import { type PeerHandlers, Torrent, type TorrentHost } from '../../gateway/engine/torrent/torrent.ts'
import { type BEncodable, encodeBencode } from '../../gateway/protocol/bencode.ts'
import { createTorrent } from '../../gateway/protocol/create-torrent.ts'
import type { Metainfo } from '../../gateway/protocol/types.ts'
import type { WireMessage } from '../../gateway/protocol/wire/messages.ts'
import { testLogger } from './interop.ts'

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
  /**
   * Speak BEP10 and claim this listen port (`p`) in the extended handshake — e.g. an honest
   * peer's port, to check that a ban does not follow the unchecked `p`.
   */
  readonly claimListenPort?: number
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

function handshake(infoHash: Uint8Array, peerId: Uint8Array, extended = false): Buffer {
  const b = Buffer.alloc(HANDSHAKE_LENGTH)
  b[0] = PSTR.length
  b.write(PSTR, 1, 'latin1')
  if (extended) b[25] = 0x10 // BEP10 extension protocol (reserved byte 5)
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
      if (init.claimListenPort !== undefined) {
        // BEP10 extended handshake (message 20, extended id 0): no extensions, `p` = the claim.
        const dict = encodeBencode(
          new Map<string, BEncodable>([
            ['m', new Map()],
            ['p', init.claimListenPort],
          ]),
        )
        send(message(20, Buffer.concat([Buffer.from([0]), Buffer.from(dict)])))
      }
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
    socket.on('connect', () => send(handshake(init.infoHash, peerId, init.claimListenPort !== undefined)))
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

// ---------------------------------------------------------------------------------------------
// In-process scripted peers: a `Torrent` with a hand-driven host (clock, dials, download budget)
// and `WirePeer`s standing in for connections (no sockets). Deterministic: time moves only with
// `advance`, and every message the engine sends is recorded.

export interface TestTorrentInit {
  readonly metainfo?: Metainfo
  readonly infoHashV1?: Uint8Array
  readonly infoHashV2?: Uint8Array
  readonly store?: PieceStore
  readonly requestTimeoutMs?: number
  readonly snubTimeoutMs?: number
  readonly minReconnectMs?: number
  readonly maxPeers?: number
  readonly maxKnownPeers?: number
  /** The download limiter; default: unlimited (resolves at once). */
  readonly takeDownload?: (bytes: number, signal: AbortSignal) => Promise<void>
}

export interface TestTorrent {
  readonly torrent: Torrent
  readonly clock: { now: number }
  /** Every address the torrent asked the session to dial, in order. */
  readonly dials: { host: string; port: number }[]
  /** Moves the clock by `ms`, running the torrent's 1 s tick for every second passed. */
  advance(ms: number): void
  /** The host's `onMetadata` calls. */
  readonly metadataEvents: number[]
}

/** A started torrent driven by hand (`manualTicks`). Stop it with `torrent.stop()`. */
export async function startTestTorrent(init: TestTorrentInit): Promise<TestTorrent> {
  const clock = { now: 1_000_000 }
  const dials: { host: string; port: number }[] = []
  const metadataEvents: number[] = []
  const host: TorrentHost = {
    peerId: fakePeerId(),
    listenPort: 6881,
    logger: testLogger('torrent'),
    takeUpload: async () => {},
    takeDownload: init.takeDownload ?? (async () => {}),
    dial: (_t, peers) => {
      dials.push(...peers)
    },
    onMetadata: () => {
      metadataEvents.push(clock.now)
    },
    now: () => clock.now,
  }
  const torrent = new Torrent({
    ...(init.metainfo ? { metainfo: init.metainfo } : {}),
    ...(init.infoHashV1 ? { infoHashV1: init.infoHashV1 } : {}),
    ...(init.infoHashV2 ? { infoHashV2: init.infoHashV2 } : {}),
    store: init.store ?? new MemoryPieceStore(),
    host,
    manualTicks: true,
    random: () => 0.5,
    ...(init.requestTimeoutMs !== undefined ? { requestTimeoutMs: init.requestTimeoutMs } : {}),
    ...(init.snubTimeoutMs !== undefined ? { snubTimeoutMs: init.snubTimeoutMs } : {}),
    ...(init.minReconnectMs !== undefined ? { minReconnectMs: init.minReconnectMs } : {}),
    ...(init.maxPeers !== undefined ? { maxPeers: init.maxPeers } : {}),
    ...(init.maxKnownPeers !== undefined ? { maxKnownPeers: init.maxKnownPeers } : {}),
  })
  await torrent.start()
  let carry = 0
  return {
    torrent,
    clock,
    dials,
    metadataEvents,
    advance(ms: number) {
      carry += ms
      while (carry >= 1000) {
        carry -= 1000
        clock.now += 1000
        torrent.tick()
      }
      clock.now += carry
      carry = 0
    },
  }
}

export interface WirePeerInit {
  readonly host?: string
  readonly port?: number
  readonly incoming?: boolean
  readonly peerId?: Uint8Array
  /** BEP6. @default true */
  readonly fast?: boolean
  /** BEP10. @default false */
  readonly extended?: boolean
  readonly v2?: boolean
}

let nextPort = 20_000

/** One scripted connection: records what the engine sends, delivers what the test scripts. */
export class WirePeer implements PeerWire {
  readonly info: PeerInfo
  readonly sent: WireMessage[] = []
  closedReason: string | undefined
  #handlers: PeerHandlers | undefined

  constructor(init: WirePeerInit = {}) {
    this.info = {
      host: init.host ?? '127.0.0.2',
      port: init.port ?? nextPort++,
      incoming: init.incoming ?? false,
      peerId: init.peerId ?? fakePeerId(),
      fast: init.fast ?? true,
      extended: init.extended ?? false,
      dht: false,
      swarm: 'v1',
      v2: init.v2 ?? false,
    }
  }

  /** Hands the connection to `torrent`; false if refused. */
  attach(torrent: Torrent): boolean {
    this.#handlers = torrent.attachPeer(this.info, this)
    return this.#handlers !== undefined
  }

  get handlers(): PeerHandlers | undefined {
    return this.#handlers
  }

  /** Delivers a message from this peer to the engine. */
  deliver(...msgs: WireMessage[]): void {
    for (const m of msgs) if (this.closedReason === undefined) this.#handlers?.onMessage(m)
  }

  send(msg: WireMessage): boolean {
    if (this.closedReason !== undefined) return false
    if (this.sent.length < 100_000) this.sent.push(msg)
    return true
  }

  onDrain(): Promise<void> {
    return Promise.resolve()
  }

  close(reason: string): void {
    if (this.closedReason !== undefined) return
    this.closedReason = reason
    queueMicrotask(() => this.#handlers?.onClose(reason))
  }

  /** Removes and returns the recorded messages of `type`. */
  take<T extends WireMessage['type']>(type: T): Extract<WireMessage, { type: T }>[] {
    const out: Extract<WireMessage, { type: T }>[] = []
    for (let i = 0; i < this.sent.length; ) {
      const m = this.sent[i]!
      if (m.type === type) {
        out.push(m as Extract<WireMessage, { type: T }>)
        this.sent.splice(i, 1)
      } else i++
    }
    return out
  }

  /** Answers `request`s with blocks of `data` (the torrent's linear space); `corrupt` flips bytes. */
  answer(
    reqs: readonly Extract<WireMessage, { type: 'request' }>[],
    data: Uint8Array,
    pieceLength: number,
    corrupt: (r: Extract<WireMessage, { type: 'request' }>) => boolean = () => false,
  ): void {
    for (const r of reqs) {
      const at = r.index * pieceLength + r.begin
      const block = new Uint8Array(r.length)
      block.set(data.subarray(at, Math.min(data.byteLength, at + r.length)))
      if (corrupt(r)) for (let i = 0; i < block.length; i++) block[i] = block[i]! ^ 0xa5
      this.deliver({ type: 'piece', index: r.index, begin: r.begin, block })
    }
  }
}

/** Lets queued microtasks and storage promises settle (MemoryPieceStore is promise-based). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r))
}

/** A deterministic single-file torrent of `size` bytes built with the project's creator. */
export async function makeTestTorrent(
  size: number,
  version: 'v1' | 'v2' | 'hybrid',
  pieceLength: number,
  seed = 1,
): Promise<{ metainfo: Metainfo; data: Uint8Array }> {
  const data = new Uint8Array(size)
  let x = seed * 2654435761
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    data[i] = x >>> 24
  }
  const created = await createTorrent({
    name: `test-${version}-${size}.bin`,
    version,
    pieceLength,
    files: [
      {
        path: [`test-${version}-${size}.bin`],
        length: size,
        open: async function* () {
          yield data
        },
      },
    ],
  })
  return { metainfo: created.metainfo, data }
}
