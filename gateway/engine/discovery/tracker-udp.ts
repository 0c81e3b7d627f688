/**
 * UDP tracker client (BEP15): connect, announce, scrape, error packets.
 *
 * One {@link UdpTrackerClient} per `udp://host:port` URL, owning one UDP socket (opened on first
 * use, closed by {@link UdpTrackerClient.close}). Every request carries a random transaction id;
 * packets with an unknown id, a wrong source or a wrong action are ignored or rejected as the BEP
 * says. Lost packets are retransmitted after `retransmitBaseMs * 2^n` (BEP15: 15 s · 2^n, n ≤ 8),
 * the connection id is reused for 60 s (BEP15), and the answer format (6- or 18-byte peers)
 * follows the address family of the socket (BEP15 "IPv6").
 */

import { randomInt } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { toHex } from '../../protocol/hex.ts'
import { decodeCompactPeers, formatIPv6, parseIPv6 } from './compact.ts'
import { type DiscoveryLogger, silentLogger } from './peer-source.ts'
import {
  type AnnounceRequest,
  type AnnounceResponse,
  type ScrapeEntry,
  type ScrapeResult,
  TrackerArgumentError,
  type TrackerClient,
  TrackerError,
  TrackerNetworkError,
  TrackerProtocolError,
  type TrackerRequestOptions,
  TrackerTimeoutError,
  TrackerUrlError,
  validateAnnounceRequest,
} from './tracker-common.ts'

/** BEP15 magic `protocol_id` of the connect request. */
const PROTOCOL_ID = 0x41727101980n
const ACTION_CONNECT = 0
const ACTION_ANNOUNCE = 1
const ACTION_SCRAPE = 2
const ACTION_ERROR = 3
/** BEP15: a connection id may be used for one minute after it was received. */
const CONNECTION_ID_TTL_MS = 60_000
/** BEP15: "Up to about 74 torrents can be scraped at once." */
export const UDP_SCRAPE_MAX_HASHES = 74
/** BEP15: n is increased up to 8. */
const MAX_RETRANSMIT_EXPONENT = 8
const EVENT_CODES = { none: 0, completed: 1, started: 2, stopped: 3 } as const

export interface UdpTrackerInit {
  /** First retransmission delay; doubles each time (BEP15: 15 s). @default 15_000 */
  readonly retransmitBaseMs?: number
  /**
   * Retransmissions before giving up with {@link TrackerTimeoutError}: a request is sent at most
   * `maxRetransmits + 1` times. Clamped to 0–8 (BEP15). @default 3
   */
  readonly maxRetransmits?: number
  /** Local address to bind (e.g. `127.0.0.1`); the wildcard of the tracker's family by default. */
  readonly localAddress?: string
  /** At most this many peers are returned per announce. @default 1000 */
  readonly maxPeers?: number
  /** Socket errors are logged at debug level (they only delay a request until retransmission). */
  readonly logger?: DiscoveryLogger
}

interface Pending {
  readonly resolve: (packet: Buffer) => void
  readonly fail: (err: Error) => void
}

/** `udp://host:port` → host and port. */
export function parseUdpTrackerUrl(url: string): { host: string; port: number } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new TrackerUrlError(url, 'not a valid URL')
  }
  if (parsed.protocol !== 'udp:') throw new TrackerUrlError(url, `unsupported scheme ${parsed.protocol}`)
  const port = Number(parsed.port)
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new TrackerUrlError(url, 'missing or invalid port')
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname
  if (host === '') throw new TrackerUrlError(url, 'missing host')
  return { host, port }
}

/** BEP15 UDP tracker client for one tracker. */
export class UdpTrackerClient implements TrackerClient {
  readonly url: string
  readonly #host: string
  readonly #port: number
  readonly #baseMs: number
  readonly #maxRetransmits: number
  readonly #localAddress: string | undefined
  readonly #maxPeers: number
  readonly #pending = new Map<number, Pending>()
  #socket: Promise<{ socket: Socket; address: string; family: 4 | 6 }> | undefined
  #connection: { id: Buffer; expiresAt: number } | undefined
  #closed = false
  #ignoredPackets = 0
  #socketErrors = 0
  readonly #log: DiscoveryLogger

  constructor(url: string, init: UdpTrackerInit = {}) {
    const { host, port } = parseUdpTrackerUrl(url)
    this.url = url
    this.#host = host
    this.#port = port
    this.#baseMs = init.retransmitBaseMs ?? 15_000
    if (!Number.isFinite(this.#baseMs) || this.#baseMs <= 0) {
      throw new TrackerArgumentError('retransmitBaseMs must be positive')
    }
    this.#maxRetransmits = Math.min(
      Math.max(0, Math.floor(init.maxRetransmits ?? 3)),
      MAX_RETRANSMIT_EXPONENT,
    )
    this.#localAddress = init.localAddress
    this.#maxPeers = init.maxPeers ?? 1000
    this.#log = init.logger ?? silentLogger
  }

  /** Packets dropped because of an unknown transaction id or a foreign source (for tests/metrics). */
  get ignoredPackets(): number {
    return this.#ignoredPackets
  }

  /** Asynchronous socket errors seen (for metrics). */
  get socketErrors(): number {
    return this.#socketErrors
  }

  async announce(req: AnnounceRequest, options: TrackerRequestOptions = {}): Promise<AnnounceResponse> {
    validateAnnounceRequest(req)
    const { family } = await this.#openSocket()
    const packet = await this.#transact(
      ACTION_ANNOUNCE,
      (connectionId, tid) => encodeAnnounce(connectionId, tid, req),
      20,
      options,
    )
    // BEP15 IPv4 announce response: action, transaction_id, interval, leechers, seeders, peers.
    const intervalS = packet.readUInt32BE(8)
    const incomplete = packet.readUInt32BE(12)
    const complete = packet.readUInt32BE(16)
    const peerBytes = packet.subarray(20)
    const stride = family === 4 ? 6 : 18
    // "Do not expect packets to be exactly of a certain size": ignore a trailing partial entry.
    const whole = peerBytes.subarray(0, peerBytes.byteLength - (peerBytes.byteLength % stride))
    const peers = decodeCompactPeers(whole, family === 4 ? 'ipv4' : 'ipv6', this.#maxPeers)
    return { intervalS, complete, incomplete, peers }
  }

  async scrape(
    infoHashes: readonly Uint8Array[],
    options: TrackerRequestOptions = {},
  ): Promise<ScrapeResult> {
    if (infoHashes.length === 0 || infoHashes.length > UDP_SCRAPE_MAX_HASHES) {
      throw new TrackerArgumentError(`UDP scrape takes 1–${UDP_SCRAPE_MAX_HASHES} info hashes`)
    }
    for (const h of infoHashes) {
      if (h.byteLength !== 20) throw new TrackerArgumentError('scrape info hashes must be 20 bytes')
    }
    const packet = await this.#transact(
      ACTION_SCRAPE,
      (connectionId, tid) => {
        const buf = Buffer.alloc(16 + 20 * infoHashes.length)
        connectionId.copy(buf, 0)
        buf.writeUInt32BE(ACTION_SCRAPE, 8)
        buf.writeUInt32BE(tid, 12)
        infoHashes.forEach((h, i) => {
          buf.set(h, 16 + 20 * i)
        })
        return buf
      },
      8,
      options,
    )
    // BEP15 scrape response: 8 + 12 * n: seeders, completed, leechers per requested hash, in order.
    const result = new Map<string, ScrapeEntry>()
    infoHashes.forEach((h, i) => {
      const off = 8 + 12 * i
      if (off + 12 > packet.byteLength) return
      result.set(toHex(h), {
        complete: packet.readUInt32BE(off),
        downloaded: packet.readUInt32BE(off + 4),
        incomplete: packet.readUInt32BE(off + 8),
      })
    })
    return result
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#connection = undefined
    for (const pending of this.#pending.values())
      pending.fail(new TrackerNetworkError(this.url, 'client closed'))
    this.#pending.clear()
    const socketPromise = this.#socket
    this.#socket = undefined
    if (socketPromise) {
      try {
        const { socket } = await socketPromise
        await new Promise<void>((resolve) => socket.close(() => resolve()))
      } catch {
        // The socket never opened: nothing to close.
      }
    }
  }

  /**
   * Runs one BEP15 exchange with retransmission: obtain (or reuse) a connection id, send the
   * request, wait `base * 2^n`, retransmit; n grows on every timeout (connect or request) and the
   * connection id is re-requested once it expired, as in BEP15's "Announce times out" example.
   */
  async #transact(
    action: number,
    build: (connectionId: Buffer, tid: number) => Buffer,
    minLength: number,
    options: TrackerRequestOptions,
  ): Promise<Buffer> {
    const signal = options.signal
    for (let n = 0; n <= this.#maxRetransmits; ) {
      signal?.throwIfAborted()
      if (this.#closed) throw new TrackerNetworkError(this.url, 'client closed')
      const connection = this.#connection
      if (connection === undefined || connection.expiresAt <= Date.now()) {
        this.#connection = undefined
        const tid = this.#newTransactionId()
        const req = Buffer.alloc(16)
        req.writeBigUInt64BE(PROTOCOL_ID, 0)
        req.writeUInt32BE(ACTION_CONNECT, 8)
        req.writeUInt32BE(tid, 12)
        const res = await this.#exchange(req, tid, ACTION_CONNECT, 16, this.#waitMs(n), signal)
        if (res === undefined) {
          n++
          continue
        }
        // BEP15: store the connection id; usable for one minute.
        this.#connection = {
          id: Buffer.from(res.subarray(8, 16)),
          expiresAt: Date.now() + CONNECTION_ID_TTL_MS,
        }
        continue
      }
      const tid = this.#newTransactionId()
      const res = await this.#exchange(
        build(connection.id, tid),
        tid,
        action,
        minLength,
        this.#waitMs(n),
        signal,
      )
      if (res !== undefined) return res
      n++
    }
    throw new TrackerTimeoutError(this.url, `no answer after ${this.#maxRetransmits + 1} transmissions`)
  }

  #waitMs(n: number): number {
    return this.#baseMs * 2 ** Math.min(n, MAX_RETRANSMIT_EXPONENT)
  }

  /**
   * Sends one packet and waits up to `waitMs` for the answer with the same transaction id.
   * Resolves undefined on timeout; rejects on an error packet (BEP15 action 3), a wrong action,
   * a short packet, abort or socket failure.
   */
  async #exchange(
    packet: Buffer,
    tid: number,
    expectedAction: number,
    minLength: number,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Buffer | undefined> {
    const { socket, address } = await this.#openSocket()
    signal?.throwIfAborted()
    const { promise, resolve, reject } = Promise.withResolvers<Buffer | undefined>()
    const timer = setTimeout(() => resolve(undefined), waitMs)
    const onAbort = () => reject(signal?.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    this.#pending.set(tid, {
      resolve: (res) => {
        // BEP15: 3. transaction id equal (done by the dispatcher); 4. action as expected; error packets are action 3.
        const act = res.readUInt32BE(0)
        if (act === ACTION_ERROR) reject(new TrackerError(this.url, res.subarray(8).toString('utf8')))
        else if (act !== expectedAction)
          reject(new TrackerProtocolError(this.url, `unexpected action ${act}`))
        else if (res.byteLength < minLength) reject(new TrackerProtocolError(this.url, 'response too short'))
        else resolve(res)
      },
      fail: reject,
    })
    socket.send(packet, this.#port, address, (err) => {
      if (err) reject(new TrackerNetworkError(this.url, err.message, { cause: err }))
    })
    try {
      return await promise
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      this.#pending.delete(tid)
    }
  }

  #newTransactionId(): number {
    for (let i = 0; i < 16; i++) {
      const tid = randomInt(0, 0x1_0000_0000)
      if (!this.#pending.has(tid)) return tid
    }
    throw new TrackerNetworkError(this.url, 'could not allocate a transaction id')
  }

  #onMessage(msg: Buffer, from: { address: string; port: number }, trackerAddress: string): void {
    // Error packets may be 8 bytes (empty message); every other answer is longer.
    if (msg.byteLength < 8 || from.port !== this.#port || !sameAddress(from.address, trackerAddress)) {
      this.#ignoredPackets++
      return
    }
    const pending = this.#pending.get(msg.readUInt32BE(4))
    if (pending === undefined) {
      this.#ignoredPackets++ // BEP15: check the transaction id; a stale or forged answer is dropped.
      return
    }
    pending.resolve(msg)
  }

  #openSocket(): Promise<{ socket: Socket; address: string; family: 4 | 6 }> {
    if (this.#closed) return Promise.reject(new TrackerNetworkError(this.url, 'client closed'))
    this.#socket ??= this.#createSocket()
    return this.#socket
  }

  async #createSocket(): Promise<{ socket: Socket; address: string; family: 4 | 6 }> {
    let address = this.#host
    let family = isIP(address) as 0 | 4 | 6
    if (family === 0) {
      try {
        const res = await lookup(this.#host)
        address = res.address
        family = res.family as 4 | 6
      } catch (err) {
        this.#socket = undefined // allow a retry on the next request
        throw new TrackerNetworkError(this.url, `cannot resolve ${this.#host}`, { cause: err })
      }
    }
    const fam = family === 6 ? 6 : 4
    const socket = createSocket(fam === 6 ? 'udp6' : 'udp4')
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo, address))
    socket.on('error', (err) => {
      // Asynchronous ICMP/send errors: the affected request times out and is retransmitted.
      this.#socketErrors++
      this.#log.debug({ url: this.url, err: err.message }, 'udp tracker socket error')
    })
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(new TrackerNetworkError(this.url, `bind failed: ${err.message}`, { cause: err }))
      socket.once('error', onError)
      socket.bind({ port: 0, ...(this.#localAddress ? { address: this.#localAddress } : {}) }, () => {
        socket.off('error', onError)
        resolve()
      })
    })
    if (this.#closed) {
      socket.close()
      throw new TrackerNetworkError(this.url, 'client closed')
    }
    return { socket, address, family: fam }
  }
}

/** Encodes a BEP15 announce request (98 bytes; same layout over IPv6, IP field 0). */
function encodeAnnounce(connectionId: Buffer, tid: number, req: AnnounceRequest): Buffer {
  const buf = Buffer.alloc(98)
  connectionId.copy(buf, 0)
  buf.writeUInt32BE(ACTION_ANNOUNCE, 8)
  buf.writeUInt32BE(tid, 12)
  buf.set(req.infoHash, 16)
  buf.set(req.peerId, 36)
  buf.writeBigUInt64BE(BigInt(req.downloaded), 56)
  buf.writeBigUInt64BE(BigInt(req.left), 64)
  buf.writeBigUInt64BE(BigInt(req.uploaded), 72)
  buf.writeUInt32BE(EVENT_CODES[req.event ?? 'none'], 80)
  buf.writeUInt32BE(0, 84) // IP address: default (BEP15)
  buf.writeUInt32BE(req.key ?? 0, 88)
  buf.writeInt32BE(req.numwant === undefined ? -1 : Math.min(req.numwant, 0x7fffffff), 92)
  buf.writeUInt16BE(req.port, 96)
  return buf
}

/** Same IP address, whatever the textual form of an IPv6 address. */
function sameAddress(a: string, b: string): boolean {
  if (a === b) return true
  if (isIP(a) !== 6 || isIP(b) !== 6) return false
  try {
    return formatIPv6(parseIPv6(a)) === formatIPv6(parseIPv6(b))
  } catch {
    return false
  }
}
