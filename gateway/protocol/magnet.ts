/**
 * Magnet URIs (BEP9 "magnet URI format", BEP53 `so`): parse untrusted links into info hashes,
 * name, trackers, web seeds, peers and the select-only file ranges; build links back.
 *
 * Accepted: `xt=urn:btih:<40 hex | 32 base32>` (v1), `xt=urn:btmh:1220<64 hex>` (v2, a sha2-256
 * multihash), both in one link (hybrid), `dn`, `tr` (repeated), `ws` (BEP19 web seeds, repeated),
 * `x.pe` (peer `host:port`, repeated) and `so` (BEP53). Numbered variants (`xt.1`, `tr.2`) are
 * read like their base names. Unknown parameters and non-BitTorrent `xt`s are ignored. Pure.
 *
 * Leniency (libtorrent's `parse_magnet_uri` skips what it cannot use): only the exact topic is
 * essential. A link without a BitTorrent `xt`, with a malformed `btih`/`btmh`, or with two
 * different hashes of one kind is refused; a bad optional value (`tr`/`ws` that is not a URL or
 * not percent-decodable, `x.pe` that is not `host:port`, `so` that is not a range list, a key that
 * does not decode) is skipped and reported in {@link MagnetLink.warnings}; a `dn` with broken
 * percent-escapes keeps them as literal text (`50%off`).
 */

import { MagnetError, type MagnetErrorCode } from './errors.ts'
import { toHex } from './hex.ts'
import type { Metainfo } from './types.ts'

/** A peer to contact directly (BEP9 `x.pe`). `host` is a name, IPv4, or IPv6 without brackets. */
export interface MagnetPeer {
  readonly host: string
  readonly port: number
}

/** An inclusive range of file indices (BEP53 `so=0,2,4,6-8`). */
export interface FileRange {
  readonly start: number
  readonly end: number
}

export interface MagnetLink {
  readonly infoHashV1?: Uint8Array
  /** The full 32-byte SHA-256 info hash (from `btmh`). */
  readonly infoHashV2?: Uint8Array
  readonly name?: string
  readonly trackers: readonly string[]
  readonly webseeds: readonly string[]
  readonly peers: readonly MagnetPeer[]
  readonly selectOnly?: readonly FileRange[]
  /** Optional values that were skipped or repaired, one line each (at most {@link MAX_WARNINGS}). */
  readonly warnings: readonly string[]
}

/** Longest URI accepted (links in the wild stay far below). */
export const MAX_MAGNET_LENGTH = 64 * 1024
/** Most warnings kept per link (a hostile link could otherwise make one per parameter). */
export const MAX_WARNINGS = 32
/** Most BEP53 ranges accepted, and the largest file index. */
const MAX_RANGES = 10_000
const MAX_FILE_INDEX = 0x7fffffff
const SHA256_MULTIHASH_PREFIX = '1220'

function fail(code: MagnetErrorCode, param: string, message: string, options?: ErrorOptions): never {
  throw new MagnetError(code, param, message, options)
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/** RFC 4648 base32 without padding (BEP9: "32 character base32 encoded info-hash"). */
function base32Decode(s: string): Uint8Array | undefined {
  const out = new Uint8Array(Math.floor((s.length * 5) / 8))
  let bits = 0
  let acc = 0
  let o = 0
  for (const ch of s.toUpperCase()) {
    const v = BASE32.indexOf(ch)
    if (v < 0) return undefined
    acc = ((acc << 5) | v) & 0xffff
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >> bits) & 0xff
    }
  }
  return out
}

const HEX_RE = /^[0-9a-fA-F]+$/

function hexBytes(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'hex'))
}

function btih(value: string): Uint8Array {
  if (value.length === 40 && HEX_RE.test(value)) return hexBytes(value)
  if (value.length === 32) {
    const b = base32Decode(value)
    if (b) return b
  }
  return fail('BT_ERR_MAGNET_BAD_INFO_HASH', 'xt', 'btih must be 40 hex or 32 base32 characters')
}

/** `btmh`: a hex multihash; only sha2-256 (code 0x12, 32 bytes) is defined for BitTorrent (BEP52). */
function btmh(value: string): Uint8Array {
  if (value.length !== 68 || !HEX_RE.test(value) || value.slice(0, 4) !== SHA256_MULTIHASH_PREFIX) {
    return fail('BT_ERR_MAGNET_BAD_INFO_HASH', 'xt', 'btmh must be 1220 followed by 64 hex characters')
  }
  return hexBytes(value.slice(4))
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i])
}

function url(value: string, param: string): string {
  if (!URL.canParse(value)) fail('BT_ERR_MAGNET_BAD_URL', param, `not a URL: ${value.slice(0, 100)}`)
  return value
}

const PORT_RE = /^[0-9]{1,5}$/

/** BEP9 `x.pe`: `hostname:port`, `ipv4:port` or `[ipv6]:port`. */
function peer(value: string): MagnetPeer {
  const colon = value.lastIndexOf(':')
  const portText = value.slice(colon + 1)
  let host = value.slice(0, Math.max(0, colon))
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  else if (host.includes(':') || host.includes('[') || host.includes(']')) host = ''
  const port = Number(portText)
  if (
    colon < 0 ||
    host === '' ||
    !PORT_RE.test(portText) ||
    port < 1 ||
    port > 65535 ||
    /[\s/?#@]/.test(host)
  ) {
    return fail('BT_ERR_MAGNET_BAD_PEER', 'x.pe', `not host:port: ${value.slice(0, 100)}`)
  }
  return { host, port }
}

const INDEX_RE = /^[0-9]{1,10}$/

function fileIndex(s: string): number {
  const n = Number(s)
  if (!INDEX_RE.test(s) || n > MAX_FILE_INDEX) {
    return fail('BT_ERR_MAGNET_BAD_SELECT_ONLY', 'so', `bad file index '${s.slice(0, 20)}'`)
  }
  return n
}

/** BEP53 `so=0,2,4,6-8`: indices and inclusive ranges, kept as ranges (never expanded). */
function selectOnly(value: string): FileRange[] {
  const parts = value.split(',')
  if (parts.length > MAX_RANGES) fail('BT_ERR_MAGNET_BAD_SELECT_ONLY', 'so', `more than ${MAX_RANGES} ranges`)
  return parts.map((p) => {
    const dash = p.indexOf('-')
    const start = fileIndex(dash < 0 ? p : p.slice(0, dash))
    const end = dash < 0 ? start : fileIndex(p.slice(dash + 1))
    if (end < start) fail('BT_ERR_MAGNET_BAD_SELECT_ONLY', 'so', `empty range '${p}'`)
    return { start, end }
  })
}

function decodeComponent(raw: string, param: string): string {
  try {
    return decodeURIComponent(raw)
  } catch (err) {
    return fail('BT_ERR_MAGNET_SYNTAX', param, 'bad percent-encoding', { cause: err })
  }
}

/**
 * Percent-decoding that keeps malformed escapes (`%zz`, a lone `%`) as text: each run of valid
 * `%XX` escapes is decoded as UTF-8 (invalid sequences become U+FFFD). One pass over `raw`.
 */
function decodeLoosely(raw: string): string {
  return raw.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) =>
    Buffer.from(
      run
        .slice(1)
        .split('%')
        .map((h) => Number.parseInt(h, 16)),
    ).toString('utf8'),
  )
}

/** The value of an optional parameter, or the reason it is skipped (a MagnetError's message). */
function optional<T>(read: () => T): T | MagnetError {
  try {
    return read()
  } catch (err) {
    if (err instanceof MagnetError) return err
    throw err
  }
}

/**
 * Parses a magnet URI. Throws {@link MagnetError} when the link itself is unusable (not a magnet
 * link, too long, no or a malformed exact topic); skips bad optional values with a warning.
 */
export function parseMagnet(uri: string): MagnetLink {
  if (typeof uri !== 'string') fail('BT_ERR_MAGNET_SYNTAX', '', 'not a string')
  if (uri.length > MAX_MAGNET_LENGTH)
    fail('BT_ERR_MAGNET_SYNTAX', '', `longer than ${MAX_MAGNET_LENGTH} characters`)
  const trimmed = uri.trim()
  if (trimmed.slice(0, 8).toLowerCase() !== 'magnet:?')
    fail('BT_ERR_MAGNET_SYNTAX', '', "does not start with 'magnet:?'")
  let v1: Uint8Array | undefined
  let v2: Uint8Array | undefined
  let name: string | undefined
  let so: FileRange[] | undefined
  const trackers: string[] = []
  const webseeds: string[] = []
  const peers: MagnetPeer[] = []
  const seenTrackers = new Set<string>()
  const seenWebseeds = new Set<string>()
  const warnings: string[] = []
  const warn = (line: string): void => {
    if (warnings.length < MAX_WARNINGS) warnings.push(line.slice(0, 200))
  }
  const query = trimmed.slice(8).split('#')[0]!
  for (const pair of query.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const rawKey = eq < 0 ? pair : pair.slice(0, eq)
    const decodedKey = optional(() => decodeComponent(rawKey, rawKey.slice(0, 20)))
    if (decodedKey instanceof MagnetError) {
      warn(`${rawKey.slice(0, 20)}: parameter name is not percent-decodable; skipped`)
      continue
    }
    const key = decodedKey.toLowerCase().replace(/\.[0-9]+$/, '')
    const rawValue = eq < 0 ? '' : pair.slice(eq + 1)
    if (key === 'xt') {
      const value = decodeComponent(rawValue, 'xt')
      const lower = value.toLowerCase()
      if (lower.startsWith('urn:btih:')) {
        const h = btih(value.slice(9))
        if (v1 && !sameBytes(v1, h)) fail('BT_ERR_MAGNET_BAD_INFO_HASH', 'xt', 'two different btih values')
        v1 = h
      } else if (lower.startsWith('urn:btmh:')) {
        const h = btmh(value.slice(9))
        if (v2 && !sameBytes(v2, h)) fail('BT_ERR_MAGNET_BAD_INFO_HASH', 'xt', 'two different btmh values')
        v2 = h
      }
    } else if (key === 'dn') {
      // `+` means space in display names written by form encoders; elsewhere it is literal.
      const raw = rawValue.replaceAll('+', ' ')
      const value = optional(() => decodeComponent(raw, 'dn'))
      if (value instanceof MagnetError) warn('dn: bad percent-encoding kept as text')
      name = value instanceof MagnetError ? decodeLoosely(raw) : value
    } else if (key === 'tr' || key === 'ws' || key === 'x.pe' || key === 'so') {
      const r = optional(() => {
        if (eq < 0) fail('BT_ERR_MAGNET_SYNTAX', key, 'missing value')
        const value = decodeComponent(rawValue, key)
        if (key === 'tr' || key === 'ws') {
          const [list, seen] = key === 'tr' ? [trackers, seenTrackers] : [webseeds, seenWebseeds]
          const u = url(value, key)
          if (!seen.has(u)) list.push(u)
          seen.add(u)
        } else if (key === 'x.pe') peers.push(peer(value))
        else so = selectOnly(value)
      })
      if (r instanceof MagnetError) warn(`${r.message}; skipped`)
    }
  }
  if (!v1 && !v2) fail('BT_ERR_MAGNET_NO_INFO_HASH', 'xt', 'no urn:btih or urn:btmh exact topic')
  return {
    ...(v1 ? { infoHashV1: v1 } : {}),
    ...(v2 ? { infoHashV2: v2 } : {}),
    ...(name !== undefined ? { name } : {}),
    trackers,
    webseeds,
    peers,
    ...(so ? { selectOnly: so } : {}),
    warnings,
  }
}

/** What {@link buildMagnet} needs: at least one info hash. */
export interface MagnetInit {
  readonly infoHashV1?: Uint8Array
  readonly infoHashV2?: Uint8Array
  readonly name?: string
  readonly trackers?: readonly string[]
  readonly webseeds?: readonly string[]
  readonly peers?: readonly MagnetPeer[]
  readonly selectOnly?: readonly FileRange[]
}

function peerText(p: MagnetPeer): string {
  return p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`
}

/** Builds a magnet URI (BEP9); values are percent-encoded, hashes in lowercase hex. */
export function buildMagnet(m: MagnetInit): string {
  const params: string[] = []
  if (m.infoHashV1) {
    if (m.infoHashV1.byteLength !== 20)
      fail('BT_ERR_MAGNET_BAD_INFO_HASH', 'xt', 'a v1 info hash is 20 bytes')
    params.push(`xt=urn:btih:${toHex(m.infoHashV1)}`)
  }
  if (m.infoHashV2) {
    if (m.infoHashV2.byteLength !== 32)
      fail('BT_ERR_MAGNET_BAD_INFO_HASH', 'xt', 'a v2 info hash is 32 bytes')
    params.push(`xt=urn:btmh:${SHA256_MULTIHASH_PREFIX}${toHex(m.infoHashV2)}`)
  }
  if (params.length === 0) fail('BT_ERR_MAGNET_NO_INFO_HASH', 'xt', 'no info hash')
  if (m.name !== undefined) params.push(`dn=${encodeURIComponent(m.name)}`)
  for (const t of m.trackers ?? []) params.push(`tr=${encodeURIComponent(url(t, 'tr'))}`)
  for (const w of m.webseeds ?? []) params.push(`ws=${encodeURIComponent(url(w, 'ws'))}`)
  for (const p of m.peers ?? []) params.push(`x.pe=${encodeURIComponent(peerText(peer(peerText(p))))}`)
  if (m.selectOnly && m.selectOnly.length > 0) {
    const so = m.selectOnly.map((r) => (r.start === r.end ? `${r.start}` : `${r.start}-${r.end}`)).join(',')
    selectOnly(so) // validates
    params.push(`so=${so}`)
  }
  return `magnet:?${params.join('&')}`
}

/** The magnet link of a parsed torrent: its info hashes, name, all trackers and web seeds. */
export function magnetFromMetainfo(m: Metainfo): string {
  // A .torrent may carry URLs a magnet cannot (they were never validated as URLs): skip those.
  const trackers = [...new Set(m.announce.flat())].filter((u) => URL.canParse(u))
  return buildMagnet({
    ...(m.info.infoHashV1 ? { infoHashV1: m.info.infoHashV1 } : {}),
    ...(m.info.infoHashV2 ? { infoHashV2: m.info.infoHashV2 } : {}),
    name: m.info.name,
    trackers,
    webseeds: m.urlList.filter((u) => URL.canParse(u)),
  })
}
