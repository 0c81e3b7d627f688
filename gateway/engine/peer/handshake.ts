/**
 * `performHandshake`: the BEP3 handshake over a socket, for outgoing and incoming connections.
 *
 * Outgoing: send our handshake at once, then read the peer's 68 bytes; its info hash must be ours
 * (or, when we offered the BEP52 upgrade, the truncated v2 hash it may answer with).
 * Incoming: read the peer's first 48 bytes, look its info hash up in the swarms we serve (BEP3:
 * "wait for incoming connections to give a download hash first, and respond with the same one if
 * it's in their list"), answer, then read its peer id.
 *
 * Bytes the peer sent after its handshake (often its extended handshake and bitfield, in the same
 * segment) are returned as `leftover`; pass them to `PeerConnection`. On success the socket is
 * paused and has no listeners of ours; on failure it is destroyed. Never rejects: every outcome is
 * a result.
 */
import type { Duplex } from 'node:stream'
import { toHex } from '../../protocol/hex.ts'
import type { AbortOptions } from '../../protocol/types.ts'
import {
  commonFlags,
  decodeHandshake,
  decodeHandshakeHeader,
  encodeHandshake,
  HANDSHAKE_HEADER_LENGTH,
  HANDSHAKE_LENGTH,
  type Handshake,
  INFO_HASH_LENGTH,
  PEER_ID_LENGTH,
  type ReservedFlags,
  readReserved,
} from '../../protocol/wire/handshake.ts'
import { PeerConnectionError } from './errors.ts'

/** Default handshake timeout. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 20_000

interface CommonOptions extends AbortOptions {
  readonly peerId: Uint8Array
  /** Our 8 reserved bytes (`makeReserved`). */
  readonly reserved: Uint8Array
  /** @default 20 s */
  readonly timeoutMs?: number
  /** When set, the remote peer id must equal it (BEP3: tracker-supplied peer ids). */
  readonly expectPeerId?: Uint8Array
}

export interface OutgoingHandshakeOptions extends CommonOptions {
  /** The swarm we dial: v1 info hash or truncated v2 info hash (20 bytes). */
  readonly infoHash: Uint8Array
  /**
   * For a hybrid torrent dialled with its v1 hash and the BEP52 upgrade bit: the truncated v2 hash
   * the peer may answer with ("respond with the new infohash to upgrade the connection").
   */
  readonly upgradeInfoHash?: Uint8Array
  readonly expectInfoHashes?: undefined
}

export interface IncomingHandshakeOptions extends CommonOptions {
  /** Hex info hashes (20-byte wire form) of the swarms we serve. */
  readonly expectInfoHashes: ReadonlySet<string>
  /**
   * BEP52 upgrade for hybrid torrents: hex v1 info hash → truncated v2 hash to answer with when
   * the peer set the upgrade bit and so did we.
   */
  readonly upgrade?: ReadonlyMap<string, Uint8Array>
  /**
   * Our reserved bytes for the swarm the peer asked for (hex of the 20-byte hash it sent), used
   * instead of `reserved` when set: e.g. the BEP52 upgrade bit only for torrents with a v2 half
   * (libtorrent drops v1-only connections that carry it).
   */
  readonly reservedFor?: (infoHashHex: string) => Uint8Array
  readonly infoHash?: undefined
}

export type HandshakeOptions = OutgoingHandshakeOptions | IncomingHandshakeOptions

export interface HandshakeOutcome {
  readonly direction: 'outgoing' | 'incoming'
  /** The peer's handshake as received. */
  readonly remote: Handshake
  /** The swarm the connection is on (20 bytes), after any BEP52 upgrade. */
  readonly infoHash: Uint8Array
  readonly infoHashHex: string
  /** True when the connection moved from the v1 hash to the truncated v2 hash (BEP52 upgrade). */
  readonly upgraded: boolean
  /** Bits the peer set. */
  readonly remoteFlags: ReservedFlags
  /** Bits both sides set: what may be used on this connection (BEP6, BEP10, BEP52). */
  readonly flags: ReservedFlags
  /** Bytes received after the handshake; hand them to `PeerConnection`. */
  readonly leftover: Uint8Array
}

export type HandshakeResult =
  | { readonly ok: true; readonly value: HandshakeOutcome }
  | { readonly ok: false; readonly error: PeerConnectionError }

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total)
  let off = 0
  for (const c of chunks) {
    out.set(c, off)
    off += c.length
  }
  return out
}

/** Runs the handshake on `socket` (see the module comment for the ownership rules). */
export function performHandshake(socket: Duplex, options: HandshakeOptions): Promise<HandshakeResult> {
  const incoming = options.expectInfoHashes !== undefined
  if (options.peerId.length !== PEER_ID_LENGTH) throw new RangeError('peerId must be 20 bytes')
  if (options.reserved.length !== 8) throw new RangeError('reserved must be 8 bytes')
  if (!incoming && options.infoHash?.length !== INFO_HASH_LENGTH)
    throw new RangeError('infoHash must be 20 bytes')
  let reserved = options.reserved
  let localFlags = readReserved(reserved)
  const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS

  return new Promise<HandshakeResult>((resolve) => {
    const chunks: Uint8Array[] = []
    let received = 0
    let header: { reserved: Uint8Array; infoHash: Uint8Array } | undefined
    let agreed: Uint8Array | undefined = incoming ? undefined : options.infoHash
    let upgraded = false
    let done = false

    const cleanup = (): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('error', onError)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      options.signal?.removeEventListener('abort', onAbort)
    }
    const finish = (result: HandshakeResult): void => {
      if (done) return
      done = true
      cleanup()
      if (result.ok) {
        socket.pause()
      } else {
        // keep a listener so a late socket error cannot become an uncaught exception
        socket.on('error', () => {})
        socket.destroy()
      }
      resolve(result)
    }
    const failWith = (code: PeerConnectionError['code'], message: string, cause?: unknown): undefined => {
      finish({
        ok: false,
        error: new PeerConnectionError(code, message, cause === undefined ? undefined : { cause }),
      })
      return undefined
    }

    const sendOurs = (infoHash: Uint8Array): void => {
      socket.write(encodeHandshake({ reserved, infoHash, peerId: options.peerId }))
    }

    const onData = (chunk: Uint8Array): undefined => {
      if (done) return
      chunks.push(chunk)
      received += chunk.length
      if (!header && received >= HANDSHAKE_HEADER_LENGTH) {
        const parsed = decodeHandshakeHeader(concat(chunks, received).subarray(0, HANDSHAKE_HEADER_LENGTH))
        if (!parsed.ok) return failWith('GW_ERR_PEER_PROTOCOL', parsed.error.message, parsed.error)
        header = parsed.value
        const hex = toHex(header.infoHash)
        if (options.expectInfoHashes !== undefined) {
          if (!options.expectInfoHashes.has(hex)) {
            return failWith('GW_ERR_PEER_UNKNOWN_INFO_HASH', `no swarm for info hash ${hex}`)
          }
          if (options.reservedFor) {
            reserved = options.reservedFor(hex)
            if (reserved.length !== 8)
              return failWith('GW_ERR_PEER_PROTOCOL', 'reservedFor must return 8 bytes')
            localFlags = readReserved(reserved)
          }
          const up = options.upgrade?.get(hex)
          if (up && localFlags.v2Upgrade && readReserved(header.reserved).v2Upgrade) {
            agreed = up
            upgraded = true
          } else {
            agreed = header.infoHash
          }
          sendOurs(agreed)
        } else if (!equal(header.infoHash, agreed ?? new Uint8Array(0))) {
          const up = options.upgradeInfoHash
          if (up && localFlags.v2Upgrade && equal(header.infoHash, up)) {
            agreed = up
            upgraded = true
          } else {
            return failWith('GW_ERR_PEER_INFO_HASH_MISMATCH', `peer answered with info hash ${hex}`)
          }
        }
      }
      if (!header || received < HANDSHAKE_LENGTH) return
      const all = concat(chunks, received)
      const hs = decodeHandshake(all.subarray(0, HANDSHAKE_LENGTH))
      if (!hs.ok) return failWith('GW_ERR_PEER_PROTOCOL', hs.error.message, hs.error)
      const remote = hs.value
      if (equal(remote.peerId, options.peerId))
        return failWith('GW_ERR_PEER_ID_MISMATCH', 'connected to ourselves')
      if (options.expectPeerId && !equal(remote.peerId, options.expectPeerId)) {
        return failWith('GW_ERR_PEER_ID_MISMATCH', 'peer id differs from the expected one')
      }
      const infoHash = agreed ?? remote.infoHash
      const remoteFlags = readReserved(remote.reserved)
      finish({
        ok: true,
        value: {
          direction: incoming ? 'incoming' : 'outgoing',
          remote,
          infoHash,
          infoHashHex: toHex(infoHash),
          upgraded,
          remoteFlags,
          flags: commonFlags(localFlags, remoteFlags),
          leftover: all.slice(HANDSHAKE_LENGTH),
        },
      })
    }
    const onError = (err: Error): void =>
      failWith('GW_ERR_PEER_SOCKET', `socket error during handshake: ${err.message}`, err)
    const onEnd = (): void =>
      failWith('GW_ERR_PEER_REMOTE_CLOSED', 'peer closed the connection during the handshake')
    const onAbort = (): void => failWith('GW_ERR_PEER_ABORTED', 'handshake aborted', options.signal?.reason)
    const timer = setTimeout(
      () => failWith('GW_ERR_PEER_HANDSHAKE_TIMEOUT', `no handshake within ${timeoutMs} ms`),
      timeoutMs,
    )

    if (options.signal?.aborted) return onAbort()
    options.signal?.addEventListener('abort', onAbort, { once: true })
    socket.on('error', onError)
    socket.on('end', onEnd)
    socket.on('close', onEnd)
    socket.on('data', onData)
    if (!incoming && agreed) sendOurs(agreed)
    socket.resume()
  })
}
