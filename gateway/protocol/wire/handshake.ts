/**
 * The 68-byte BitTorrent handshake (BEP3), its reserved bits (BEP5, BEP6, BEP10, BEP52) and the
 * BEP20 peer id conventions. Pure: encoding/decoding only; reading the handshake from a socket
 * lives in `gateway/engine/peer/handshake.ts`.
 *
 * Layout (BEP3): <pstrlen=19><pstr="BitTorrent protocol"><reserved: 8><info_hash: 20><peer_id: 20>
 */
import { randomBytes } from 'node:crypto'
import { fail, ok, type WireResult } from './errors.ts'

/** BEP3: "character nineteen (decimal) followed by the string 'BitTorrent protocol'". */
export const PROTOCOL_STRING = 'BitTorrent protocol'
const PSTR = new TextEncoder().encode(PROTOCOL_STRING)
export const RESERVED_LENGTH = 8
export const INFO_HASH_LENGTH = 20
export const PEER_ID_LENGTH = 20
/** Bytes up to and including the info hash: what an incoming connection is routed on. */
export const HANDSHAKE_HEADER_LENGTH = 1 + PSTR.length + RESERVED_LENGTH + INFO_HASH_LENGTH
export const HANDSHAKE_LENGTH = HANDSHAKE_HEADER_LENGTH + PEER_ID_LENGTH

/** The reserved-bit capabilities we know about. */
export interface ReservedFlags {
  /** BEP10 extension protocol: `reserved[5] & 0x10`. */
  readonly extensionProtocol: boolean
  /** BEP6 Fast extension: "reserved[7] |= 0x04". */
  readonly fast: boolean
  /** BEP5 DHT: "the last bit of the 8-byte reserved flags" (`reserved[7] & 0x01`). */
  readonly dht: boolean
  /** BEP52 upgrade: "the 4th most significant bit in the last byte" (`reserved[7] & 0x10`). */
  readonly v2Upgrade: boolean
}

/** Byte index and mask of each reserved bit, by BEP. */
export const RESERVED_BITS: {
  readonly [K in keyof ReservedFlags]: { readonly byte: number; readonly mask: number }
} = {
  extensionProtocol: { byte: 5, mask: 0x10 }, // BEP10
  fast: { byte: 7, mask: 0x04 }, // BEP6
  dht: { byte: 7, mask: 0x01 }, // BEP5
  v2Upgrade: { byte: 7, mask: 0x10 }, // BEP52
}

const FLAG_NAMES = Object.keys(RESERVED_BITS) as (keyof ReservedFlags)[]

/** Builds the 8 reserved bytes with the given capabilities set. */
export function makeReserved(flags: Partial<ReservedFlags>): Uint8Array {
  const reserved = new Uint8Array(RESERVED_LENGTH)
  for (const name of FLAG_NAMES) {
    if (flags[name]) {
      const { byte, mask } = RESERVED_BITS[name]
      reserved[byte] = (reserved[byte] ?? 0) | mask
    }
  }
  return reserved
}

/** Reads the known capabilities from 8 reserved bytes (unknown bits are ignored, BEP3). */
export function readReserved(reserved: Uint8Array): ReservedFlags {
  const has = (name: keyof ReservedFlags): boolean => {
    const { byte, mask } = RESERVED_BITS[name]
    return ((reserved[byte] ?? 0) & mask) !== 0
  }
  return {
    extensionProtocol: has('extensionProtocol'),
    fast: has('fast'),
    dht: has('dht'),
    v2Upgrade: has('v2Upgrade'),
  }
}

/** The capabilities both sides announced (BEP6: "enabled only if both ends ... set this bit"). */
export function commonFlags(a: ReservedFlags, b: ReservedFlags): ReservedFlags {
  return {
    extensionProtocol: a.extensionProtocol && b.extensionProtocol,
    fast: a.fast && b.fast,
    dht: a.dht && b.dht,
    v2Upgrade: a.v2Upgrade && b.v2Upgrade,
  }
}

export interface Handshake {
  /** 8 bytes. */
  readonly reserved: Uint8Array
  /** 20 bytes: the v1 info hash or the v2 info hash truncated to 20 bytes (BEP52). */
  readonly infoHash: Uint8Array
  /** 20 bytes (BEP20). */
  readonly peerId: Uint8Array
}

/** The first 48 bytes of a handshake: enough to route an incoming connection to a swarm. */
export interface HandshakeHeader {
  readonly reserved: Uint8Array
  readonly infoHash: Uint8Array
}

function checkLength(name: string, bytes: Uint8Array, length: number): void {
  if (bytes.length !== length) throw new RangeError(`${name} must be ${length} bytes, got ${bytes.length}`)
}

/** The 48-byte handshake header (pstrlen, pstr, reserved, info hash). Throws on bad arguments. */
export function encodeHandshakeHeader(h: HandshakeHeader): Uint8Array {
  checkLength('reserved', h.reserved, RESERVED_LENGTH)
  checkLength('infoHash', h.infoHash, INFO_HASH_LENGTH)
  const out = new Uint8Array(HANDSHAKE_HEADER_LENGTH)
  out[0] = PSTR.length
  out.set(PSTR, 1)
  out.set(h.reserved, 1 + PSTR.length)
  out.set(h.infoHash, 1 + PSTR.length + RESERVED_LENGTH)
  return out
}

/** The full 68-byte handshake. Throws `RangeError` on wrong field lengths (our own bug). */
export function encodeHandshake(h: Handshake): Uint8Array {
  checkLength('peerId', h.peerId, PEER_ID_LENGTH)
  const out = new Uint8Array(HANDSHAKE_LENGTH)
  out.set(encodeHandshakeHeader(h), 0)
  out.set(h.peerId, HANDSHAKE_HEADER_LENGTH)
  return out
}

/**
 * Decodes the first 48 bytes of `bytes` (more may follow). BEP3: anything but
 * `\x13BitTorrent protocol` is a different protocol, and the connection must be dropped.
 */
export function decodeHandshakeHeader(bytes: Uint8Array): WireResult<HandshakeHeader> {
  if (bytes.length < HANDSHAKE_HEADER_LENGTH) {
    return fail('GW_ERR_WIRE_BAD_HANDSHAKE', `handshake header needs ${HANDSHAKE_HEADER_LENGTH} bytes`)
  }
  if (bytes[0] !== PSTR.length)
    return fail('GW_ERR_WIRE_BAD_HANDSHAKE', `bad protocol string length ${bytes[0]}`)
  for (let i = 0; i < PSTR.length; i++) {
    if (bytes[1 + i] !== PSTR[i]) return fail('GW_ERR_WIRE_BAD_HANDSHAKE', 'not the BitTorrent protocol')
  }
  const r = 1 + PSTR.length
  return ok({
    reserved: bytes.slice(r, r + RESERVED_LENGTH),
    infoHash: bytes.slice(r + RESERVED_LENGTH, HANDSHAKE_HEADER_LENGTH),
  })
}

/** Decodes a complete 68-byte handshake (exactly 68 bytes). */
export function decodeHandshake(bytes: Uint8Array): WireResult<Handshake> {
  if (bytes.length !== HANDSHAKE_LENGTH) {
    return fail(
      'GW_ERR_WIRE_BAD_HANDSHAKE',
      `handshake must be ${HANDSHAKE_LENGTH} bytes, got ${bytes.length}`,
    )
  }
  const header = decodeHandshakeHeader(bytes)
  if (!header.ok) return header
  return ok({ ...header.value, peerId: bytes.slice(HANDSHAKE_HEADER_LENGTH, HANDSHAKE_LENGTH) })
}

// ---------------------------------------------------------------------------------------------
// BEP20 peer ids

/** Our BEP20 client code and version: "CB" (Codex BitTorrent gateway), version 0.0.0.1. */
export const DEFAULT_PEER_ID_PREFIX = '-CB0001-'

/**
 * A fresh peer id: `prefix` (ASCII, at most 20 bytes; BEP20 Azureus style `-XXvvvv-`) followed
 * by random bytes ("the remaining bytes in the peer id are random", BEP20).
 */
export function makePeerId(
  prefix: string = DEFAULT_PEER_ID_PREFIX,
  random: (n: number) => Uint8Array = randomBytes,
): Uint8Array {
  if (!/^[\x20-\x7e]*$/.test(prefix) || prefix.length > PEER_ID_LENGTH) {
    throw new RangeError('peer id prefix must be printable ASCII of at most 20 characters')
  }
  const id = new Uint8Array(PEER_ID_LENGTH)
  id.set(new TextEncoder().encode(prefix), 0)
  const rest = PEER_ID_LENGTH - prefix.length
  if (rest > 0) id.set(random(rest).subarray(0, rest), prefix.length)
  return id
}

/** BEP20 client codes we name (a subset of the BEP's list plus our own). */
const CLIENT_NAMES: ReadonlyMap<string, string> = new Map([
  ['AZ', 'Azureus'],
  ['BC', 'BitComet'],
  ['CB', 'codex-bittorrent-gateway'],
  ['DE', 'Deluge'],
  ['KT', 'KTorrent'],
  ['LT', 'libtorrent'],
  ['lt', 'libTorrent'],
  ['MO', 'MonoTorrent'],
  ['qB', 'qBittorrent'],
  ['TR', 'Transmission'],
  ['UT', 'µTorrent'],
  ['UW', 'µTorrent Web'],
  ['WW', 'WebTorrent'],
  ['BI', 'BiglyBT'],
])

const SHADOW_NAMES: ReadonlyMap<string, string> = new Map([
  ['A', 'ABC'],
  ['O', 'Osprey Permaseed'],
  ['Q', 'BTQueue'],
  ['R', 'Tribler'],
  ['S', "Shad0w's client"],
  ['T', 'BitTornado'],
  ['U', 'UPnP NAT Bit Torrent'],
])

export interface PeerClient {
  /** BEP20 encoding style the id follows. */
  readonly style: 'azureus' | 'shadow' | 'mainline'
  /** The client code as found in the id (`LT`, `M`, `T`, ...). */
  readonly code: string
  /** Human-readable client name when the code is known. */
  readonly name?: string
  /** Dotted version, digits decoded as BEP20 describes for the style. */
  readonly version: string
}

const isAlnum = (c: number | undefined): boolean =>
  c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a))

/** One version character: 0-9, then A-Z/a-z as 10-35 (libtorrent and Shad0w style). */
function versionDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x5a) return c - 0x41 + 10
  return c - 0x61 + 10
}

/**
 * Identifies the client from a peer id following BEP20 conventions (Azureus `-XX1234-`,
 * Shad0w `S58B-----`, mainline `M4-3-6--`). Returns undefined for anything else. Informational
 * only: peer ids are remote-controlled and prove nothing.
 */
export function clientFromPeerId(peerId: Uint8Array): PeerClient | undefined {
  if (peerId.length !== PEER_ID_LENGTH) return undefined
  const ascii = (from: number, to: number): string => String.fromCharCode(...peerId.subarray(from, to))
  // Azureus style: '-', two characters, four version characters, '-'
  if (peerId[0] === 0x2d && peerId[7] === 0x2d && isAlnum(peerId[1]) && isAlnum(peerId[2])) {
    const v = peerId.subarray(3, 7)
    if (v.every((c) => isAlnum(c))) {
      const code = ascii(1, 3)
      const name = CLIENT_NAMES.get(code)
      const version = Array.from(v, versionDigit).join('.')
      return name === undefined
        ? { style: 'azureus', code, version }
        : { style: 'azureus', code, name, version }
    }
  }
  // mainline: 'M' then major-minor-tiny separated by dashes, e.g. M4-3-6-- or M4-20-8-
  if (peerId[0] === 0x4d) {
    const m = /^M(\d{1,3})-(\d{1,3})-(\d{1,3})-/.exec(ascii(0, 8))
    if (m) return { style: 'mainline', code: 'M', name: 'Mainline', version: `${m[1]}.${m[2]}.${m[3]}` }
  }
  // Shad0w style: one character, up to five version characters, then dashes ("S58B-----")
  const first = ascii(0, 1)
  const shadowName = SHADOW_NAMES.get(first)
  if (shadowName !== undefined) {
    const m = /^[0-9A-Za-z.]{1,5}-+/.exec(ascii(1, 9))
    if (m) {
      const digits = m[0].replace(/-+$/, '')
      const version = Array.from(digits, (ch) => (ch === '.' ? '' : String(versionDigit(ch.charCodeAt(0)))))
        .filter((d) => d !== '')
        .join('.')
      return { style: 'shadow', code: first, name: shadowName, version }
    }
  }
  return undefined
}
