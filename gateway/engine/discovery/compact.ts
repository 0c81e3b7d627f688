/**
 * BEP23 "compact" peer lists: each peer is its address in network byte order followed by a
 * 2-byte big-endian port. IPv4 entries are 6 bytes (BEP23, tracker `peers`, BEP5 `values`,
 * BEP11 `added`), IPv6 entries 18 bytes (BEP7 `peers6`, BEP11 `added6`, BEP15 over IPv6).
 *
 * Pure functions, strict validation: a list whose length is not a multiple of the entry size is
 * rejected with {@link CompactPeerError}; entries with port 0 are dropped (not dialable).
 */

import { isIPv4, isIPv6 } from 'node:net'
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
  return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`
}

/**
 * RFC 5952 text of a 16-byte IPv6 address: lowercase, no leading zeros, the longest run (≥ 2) of
 * zero groups compressed to `::`. IPv4-mapped addresses keep the dotted tail (`::ffff:1.2.3.4`).
 */
export function formatIPv6(addr: Uint8Array): string {
  if (addr.byteLength !== 16)
    throw new CompactPeerError(`IPv6 address must be 16 bytes, got ${addr.byteLength}`)
  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push((addr[i]! << 8) | addr[i + 1]!)
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff
  if (mapped) return `::ffff:${formatIPv4(addr.subarray(12, 16))}`
  let bestStart = -1
  let bestLen = 0
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestLen < 2) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}

/** 4 bytes of a dotted-quad IPv4 literal. */
export function parseIPv4(host: string): Uint8Array {
  if (!isIPv4(host)) throw new CompactPeerError(`not an IPv4 address: ${JSON.stringify(host)}`)
  return Uint8Array.from(host.split('.').map((part) => Number(part)))
}

/** 16 bytes of an IPv6 literal (`::` compression and a dotted IPv4 tail allowed, no zone id). */
export function parseIPv6(host: string): Uint8Array {
  if (!isIPv6(host) || host.includes('%')) {
    throw new CompactPeerError(`not an IPv6 address: ${JSON.stringify(host)}`)
  }
  let text = host
  const lastColon = text.lastIndexOf(':')
  const last = text.slice(lastColon + 1)
  if (last.includes('.')) {
    // Dotted IPv4 tail (e.g. `::ffff:1.2.3.4`): rewrite it as two hex groups.
    const v4 = parseIPv4(last)
    const hi = ((v4[0]! << 8) | v4[1]!).toString(16)
    const lo = ((v4[2]! << 8) | v4[3]!).toString(16)
    text = `${text.slice(0, lastColon + 1)}${hi}:${lo}`
  }
  const parseGroups = (s: string): number[] =>
    s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16))
  const halves = text.split('::')
  const head = parseGroups(halves[0] ?? '')
  const rest = parseGroups(halves[1] ?? '')
  const groups =
    halves.length > 1
      ? [...head, ...new Array<number>(Math.max(0, 8 - head.length - rest.length)).fill(0), ...rest]
      : head
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) {
    throw new CompactPeerError(`not an IPv6 address: ${JSON.stringify(host)}`)
  }
  const out = new Uint8Array(16)
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8
    out[i * 2 + 1] = g & 0xff
  })
  return out
}
