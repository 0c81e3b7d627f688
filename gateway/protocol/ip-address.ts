/**
 * IP address literals ⇄ network-order bytes, as carried by compact peer lists (BEP23, BEP7, BEP11,
 * BEP15). Pure functions; callers turn `undefined` / `RangeError` into their own error types.
 */

import { isIPv4, isIPv6 } from 'node:net'

/** 4 bytes of a dotted-quad IPv4 literal, or `undefined` when `host` is not one. */
export function ipv4ToBytes(host: string): Uint8Array | undefined {
  if (!isIPv4(host)) return undefined
  return Uint8Array.from(host.split('.').map((part) => Number(part)))
}

/**
 * 16 bytes of an IPv6 literal (`::` compression and a dotted IPv4 tail allowed), or `undefined`
 * when `host` is not one. A zone id (`%eth0`) is refused: strip it first where it is allowed.
 */
export function ipv6ToBytes(host: string): Uint8Array | undefined {
  if (!isIPv6(host) || host.includes('%')) return undefined
  let text = host
  const lastColon = text.lastIndexOf(':')
  const last = text.slice(lastColon + 1)
  if (last.includes('.')) {
    // Dotted IPv4 tail (e.g. `::ffff:1.2.3.4`): rewrite it as two hex groups.
    const v4 = ipv4ToBytes(last)
    if (v4 === undefined) return undefined
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
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined
  const out = new Uint8Array(16)
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8
    out[i * 2 + 1] = g & 0xff
  })
  return out
}

/** Dotted-quad text of a 4-byte address. Throws `RangeError` for another length. */
export function ipv4ToText(addr: Uint8Array): string {
  if (addr.byteLength !== 4) throw new RangeError(`IPv4 address must be 4 bytes, got ${addr.byteLength}`)
  return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`
}

/**
 * RFC 5952 text of a 16-byte IPv6 address: lowercase, no leading zeros, the longest run (≥ 2) of
 * zero groups compressed to `::`; all groups in hex (no dotted IPv4 tail). Throws `RangeError`
 * for another length.
 */
export function ipv6ToText(addr: Uint8Array): string {
  if (addr.byteLength !== 16) throw new RangeError(`IPv6 address must be 16 bytes, got ${addr.byteLength}`)
  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push((addr[i]! << 8) | addr[i + 1]!)
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

/** True for an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2). */
export function isIPv4Mapped(addr: Uint8Array): boolean {
  return (
    addr.byteLength === 16 &&
    addr.subarray(0, 10).every((b) => b === 0) &&
    addr[10] === 0xff &&
    addr[11] === 0xff
  )
}
