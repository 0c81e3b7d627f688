/**
 * A small scripted BitTorrent peer for the extension-protocol tests (test/engine/ext-*.test.ts):
 * it dials the engine on 127.0.0.1, speaks the BEP3 handshake with chosen reserved bits (BEP10
 * extension protocol, BEP6 Fast, BEP5 DHT, BEP52 v2), and then follows a script:
 *
 * - `metadata`: how it answers `ut_metadata` requests (BEP9): `serve` the given info dict,
 *   `reject` everything, send `corrupt` bytes of the right length, or `ignore` requests. It
 *   advertises `metadataSize` (default: the real size, if it has one) in its extended handshake.
 * - `hashRequests`: `reject` (BEP52 `hash reject`) or `ignore` our hash requests.
 * - `have`: `all` (BEP6 have-all) or `none`; it never unchokes us (so it is never asked for blocks).
 *
 * Every message received after the handshake is recorded (bounded) so a test can assert on what
 * the engine sent. Messages are framed by hand; dictionaries use the project's bencode codec
 * (not the wire codecs under test). Everything is bounded: buffered input, records, lifetime.
 */
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import {
  type BDict,
  type BEncodable,
  decodeBencode,
  encodeBencode,
  isDict,
} from '../../gateway/protocol/bencode.ts'

export const MSG = {
  choke: 0,
  unchoke: 1,
  interested: 2,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  port: 9,
  haveAll: 0x0e,
  haveNone: 0x0f,
  reject: 0x10,
  extended: 20,
  hashRequest: 21,
  hashes: 22,
  hashReject: 23,
} as const

/** Our local extension ids (what the engine must use when sending to us). */
export const EXT_PEER_IDS = { ut_metadata: 3, ut_pex: 4 } as const

export interface ExtPeerInit {
  readonly port: number
  /** 20-byte swarm id (v1 hash or truncated v2 hash). */
  readonly infoHash: Uint8Array
  readonly reserved?: { readonly dht?: boolean; readonly v2?: boolean; readonly fast?: boolean }
  /** The info dict to serve (BEP9), if it has one. */
  readonly info?: Uint8Array
  readonly metadata?: 'serve' | 'reject' | 'corrupt' | 'ignore'
  /** `metadata_size` to advertise (default: the real size when `info` is given). */
  readonly metadataSize?: number
  readonly hashRequests?: 'reject' | 'ignore'
  readonly have?: 'all' | 'none'
  /** BEP10 `p` to advertise (so the engine can tell others about us over PEX). */
  readonly listenPort?: number
  /** Send no extended handshake (until the test sends one). */
  readonly noExtendedHandshake?: boolean
  /** @default 60 000 */
  readonly lifetimeMs?: number
}

export interface Received {
  readonly id: number
  readonly payload: Buffer
}

const MAX_BUFFERED = 4 * 1024 * 1024
const MAX_RECORDED = 20_000

export function frame(id: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(5 + payload.length)
  b.writeUInt32BE(1 + payload.length, 0)
  b[4] = id
  b.set(payload, 5)
  return b
}

/** The 48-byte BEP52 hash request / reject payload. */
export function hashRequestPayload(r: {
  piecesRoot: Uint8Array
  baseLayer: number
  index: number
  length: number
  proofLayers: number
}): Buffer {
  const b = Buffer.alloc(48)
  b.set(r.piecesRoot, 0)
  b.writeUInt32BE(r.baseLayer, 32)
  b.writeUInt32BE(r.index, 36)
  b.writeUInt32BE(r.length, 40)
  b.writeUInt32BE(r.proofLayers, 44)
  return b
}

export class ExtPeer {
  readonly peerId = Buffer.concat([Buffer.from('-EX0001-'), randomBytes(12)])
  readonly received: Received[] = []
  /** Extended handshakes the engine sent us, decoded. */
  readonly handshakes: BDict[] = []
  remoteReserved: Buffer | undefined
  closed = false
  metadataRequests = 0
  hashRequests = 0
  readonly #init: ExtPeerInit
  readonly #socket: Socket
  #buf: Buffer = Buffer.alloc(0)
  #shook = false
  readonly #timer: NodeJS.Timeout
  readonly #closedPromise: Promise<void>
  readonly #ready = Promise.withResolvers<void>()

  private constructor(init: ExtPeerInit, socket: Socket) {
    this.#init = init
    this.#socket = socket
    this.#closedPromise = new Promise((resolve) => socket.once('close', () => resolve()))
    socket.on('close', () => {
      this.closed = true
      clearTimeout(this.#timer)
    })
    socket.on('error', () => {})
    socket.on('data', (d: Buffer) => this.#onData(d))
    this.#timer = setTimeout(() => socket.destroy(), init.lifetimeMs ?? 60_000)
  }

  /**
   * Dials the engine, sends our handshake and waits for the engine's (then our extended
   * handshake and have-all/none are sent, in that order, before anything else).
   */
  static async dial(init: ExtPeerInit): Promise<ExtPeer> {
    const socket = connect({ host: '127.0.0.1', port: init.port })
    socket.setNoDelay(true) // no Nagle delay between our small messages
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('error', reject)
    })
    const peer = new ExtPeer(init, socket)
    const hs = Buffer.alloc(68)
    hs[0] = 19
    hs.write('BitTorrent protocol', 1, 'latin1')
    hs[25] = 0x10 // BEP10
    let b7 = 0
    if (init.reserved?.fast ?? true) b7 |= 0x04
    if (init.reserved?.dht) b7 |= 0x01
    if (init.reserved?.v2) b7 |= 0x10
    hs[27] = b7
    hs.set(init.infoHash, 28)
    peer.peerId.copy(hs, 48)
    socket.write(hs)
    await Promise.race([
      peer.#ready.promise,
      peer.whenClosed().then(() => {
        throw new Error('the engine closed the connection during the handshake')
      }),
    ])
    return peer
  }

  get port(): number {
    return this.#socket.localPort ?? 0
  }

  send(id: number, payload: Uint8Array = new Uint8Array(0)): void {
    if (!this.closed) this.#socket.write(frame(id, payload))
  }

  /** An extended message (BEP10) with a bencoded dict and optional trailing bytes. */
  sendExtended(extId: number, dict: BEncodable, tail: Uint8Array = new Uint8Array(0)): void {
    this.send(MSG.extended, Buffer.concat([Buffer.from([extId]), encodeBencode(dict), tail]))
  }

  /** The engine's id for an extension, from its last extended handshake. */
  remoteId(name: string): number | undefined {
    for (let i = this.handshakes.length - 1; i >= 0; i--) {
      const m = this.handshakes[i]!.get('m')
      if (isDict(m) && m.has(name)) {
        const v = m.get(name)
        return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined
      }
    }
    return undefined
  }

  messages(id: number): Received[] {
    return this.received.filter((m) => m.id === id)
  }

  close(): void {
    this.#socket.destroy()
  }

  whenClosed(): Promise<void> {
    return this.#closedPromise
  }

  #onData(d: Buffer): void {
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d])
    if (this.#buf.length > MAX_BUFFERED) {
      this.close()
      return
    }
    if (!this.#shook) {
      if (this.#buf.length < 68) return
      this.remoteReserved = Buffer.from(this.#buf.subarray(20, 28))
      this.#buf = this.#buf.subarray(68)
      this.#shook = true
      this.#start()
    }
    // bounded: each iteration consumes at least 4 bytes
    while (this.#buf.length >= 4) {
      const n = this.#buf.readUInt32BE(0)
      if (n > 1024 * 1024) {
        this.close()
        return
      }
      if (this.#buf.length < 4 + n) return
      if (n > 0) this.#onMessage(this.#buf[4]!, Buffer.from(this.#buf.subarray(5, 4 + n)))
      this.#buf = this.#buf.subarray(4 + n)
    }
  }

  #start(): void {
    const init = this.#init
    if (!init.noExtendedHandshake) {
      const size = init.metadataSize ?? init.info?.length
      this.sendExtended(0, {
        m: new Map<string, number>([
          ['ut_metadata', EXT_PEER_IDS.ut_metadata],
          ['ut_pex', EXT_PEER_IDS.ut_pex],
        ]),
        v: 'ext-peer',
        ...(init.listenPort !== undefined ? { p: init.listenPort } : {}),
        ...(size !== undefined ? { metadata_size: size } : {}),
      })
    }
    if (init.reserved?.fast ?? true) this.send(init.have === 'all' ? MSG.haveAll : MSG.haveNone)
    this.#ready.resolve()
  }

  #onMessage(id: number, payload: Buffer): void {
    if (this.received.length < MAX_RECORDED) this.received.push({ id, payload })
    if (id === MSG.extended) this.#onExtended(payload)
    else if (id === MSG.hashRequest) {
      this.hashRequests++
      if ((this.#init.hashRequests ?? 'reject') === 'reject') this.send(MSG.hashReject, payload)
    }
  }

  #onExtended(payload: Buffer): void {
    const extId = payload[0]
    const body = new Uint8Array(payload.subarray(1))
    if (extId === 0) {
      const d = decodeBencode(body).value
      if (isDict(d)) this.handshakes.push(d)
      return
    }
    if (extId !== EXT_PEER_IDS.ut_metadata) return
    const d = decodeBencode(body, { allowTrailing: true }).value
    if (!isDict(d)) return
    const type = Number(d.get('msg_type'))
    const piece = Number(d.get('piece'))
    if (type !== 0) return
    this.metadataRequests++
    const theirs = this.remoteId('ut_metadata')
    if (theirs === undefined) return
    const mode = this.#init.metadata ?? 'reject'
    const info = this.#init.info
    if (mode === 'ignore') return
    const total = this.#init.metadataSize ?? info?.length ?? 0
    const len = Math.min(16 * 1024, total - piece * 16 * 1024)
    if (mode === 'reject' || !info || len <= 0) {
      this.sendExtended(theirs, { msg_type: 2, piece })
      return
    }
    const data =
      mode === 'serve' ? info.subarray(piece * 16 * 1024, piece * 16 * 1024 + len) : randomBytes(len)
    this.sendExtended(theirs, { msg_type: 1, piece, total_size: total }, data)
  }
}
