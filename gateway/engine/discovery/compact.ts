/**
 * BEP23 "compact" peer lists: each peer is its address in network byte order followed by a
 * 2-byte big-endian port. IPv4 entries are 6 bytes (BEP23, tracker `peers`, BEP5 `values`,
 * BEP11 `added`), IPv6 entries 18 bytes (BEP7 `peers6`, BEP11 `added6`, BEP15 over IPv6).
 *
 * Pure functions, strict validation: a list whose length is not a multiple of the entry size is
 * rejected with {@link CompactPeerError}; entries with port 0 are dropped (not dialable).
 */

import { isIPv4, isIPv6 } from 'node:net'
import { ipv4ToBytes, ipv4ToText, ipv6ToBytes, ipv6ToText, isIPv4Mapped } from '../../protocol/ip-address.ts'
import { DiscoveryError, type PeerAddress } from './peer-source.ts'

/** Address family of a compact list. */
export type CompactFamily = 'ipv4' | 'ipv6'

/** Bytes per entry: 4-byte address + 2-byte port (BEP23), 16-byte address + 2-byte port. */
export const COMPACT_ENTRY_BYTES: Readonly<Record<CompactFamily, number>> = Object.freeze({
  ipv4: 6,
  ipv6: 18,
})

/** Malformed compact data or an address that cannot be encoded. */
export class CompactPeerError extends DiscoveryError {
  constructor(message: string) {
    super('GW_ERR_COMPACT_PEERS', message)
    this.name = 'CompactPeerError'
  }
}

/**
 * Decodes a compact peer list. Throws {@link CompactPeerError} if `bytes.length` is not a
 * multiple of the entry size (6 for IPv4, 18 for IPv6). `maxPeers` bounds the output (extra
 * entries are ignored).
 */
export function decodeCompactPeers(
  bytes: Uint8Array,
  family: CompactFamily,
  maxPeers: number = Number.POSITIVE_INFINITY,
): PeerAddress[] {
  const stride = COMPACT_ENTRY_BYTES[family]
  if (bytes.byteLength % stride !== 0) {
    throw new CompactPeerError(
      `compact ${family} peer list length ${bytes.byteLength} is not a multiple of ${stride}`,
    )
  }
  const peers: PeerAddress[] = []
  for (let off = 0; off < bytes.byteLength && peers.length < maxPeers; off += stride) {
    const addrLen = stride - 2
    const port = (bytes[off + addrLen]! << 8) | bytes[off + addrLen + 1]!
    if (port === 0) continue
    const addr = bytes.subarray(off, off + addrLen)
    peers.push({ host: family === 'ipv4' ? formatIPv4(addr) : formatIPv6(addr), port })
  }
  return peers
}

/**
 * Encodes peers of one family into a compact list. Throws {@link CompactPeerError} for a host of
 * the other family, a non-literal host or a port outside 1–65535.
 */
export function encodeCompactPeers(peers: readonly PeerAddress[], family: CompactFamily): Uint8Array {
  const stride = COMPACT_ENTRY_BYTES[family]
  const out = new Uint8Array(peers.length * stride)
  peers.forEach((peer, i) => {
    if (!Number.isInteger(peer.port) || peer.port < 1 || peer.port > 65535) {
      throw new CompactPeerError(`invalid port ${peer.port}`)
    }
    const addr = family === 'ipv4' ? parseIPv4(peer.host) : parseIPv6(peer.host)
    const off = i * stride
    out.set(addr, off)
    out[off + addr.byteLength] = peer.port >> 8
    out[off + addr.byteLength + 1] = peer.port & 0xff
  })
  return out
}

/** Splits peers by family (IPv4 / IPv6); non-literal hosts are dropped. */
export function partitionByFamily(peers: readonly PeerAddress[]): {
  ipv4: PeerAddress[]
  ipv6: PeerAddress[]
} {
  const ipv4: PeerAddress[] = []
  const ipv6: PeerAddress[] = []
  for (const p of peers) {
    if (isIPv4(p.host)) ipv4.push(p)
    else if (isIPv6(p.host)) ipv6.push(p)
  }
  return { ipv4, ipv6 }
}

/** Dotted-quad text of a 4-byte address. */
export function formatIPv4(addr: Uint8Array): string {
  if (addr.byteLength !== 4)
    throw new CompactPeerError(`IPv4 address must be 4 bytes, got ${addr.byteLength}`)
  return ipv4ToText(addr)
}

/**
 * RFC 5952 text of a 16-byte IPv6 address: lowercase, no leading zeros, the longest run (≥ 2) of
 * zero groups compressed to `::`. IPv4-mapped addresses keep the dotted tail (`::ffff:1.2.3.4`).
 */
export function formatIPv6(addr: Uint8Array): string {
  if (addr.byteLength !== 16)
    throw new CompactPeerError(`IPv6 address must be 16 bytes, got ${addr.byteLength}`)
  if (isIPv4Mapped(addr)) return `::ffff:${ipv4ToText(addr.subarray(12, 16))}`
  return ipv6ToText(addr)
}

/** 4 bytes of a dotted-quad IPv4 literal. */
export function parseIPv4(host: string): Uint8Array {
  const bytes = ipv4ToBytes(host)
  if (bytes === undefined) throw new CompactPeerError(`not an IPv4 address: ${JSON.stringify(host)}`)
  return bytes
}

/** 16 bytes of an IPv6 literal (`::` compression and a dotted IPv4 tail allowed, no zone id). */
export function parseIPv6(host: string): Uint8Array {
  const bytes = ipv6ToBytes(host)
  if (bytes === undefined) throw new CompactPeerError(`not an IPv6 address: ${JSON.stringify(host)}`)
  return bytes
}
