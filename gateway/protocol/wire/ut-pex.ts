/**
 * BEP11 peer exchange (`ut_pex`): encode/decode of the bencoded `added`, `added.f`, `dropped`,
 * `added6`, `added6.f`, `dropped6` lists (compact 6-byte IPv4 / 18-byte IPv6 contacts), list
 * caps, and a per-peer rate limiter (BEP11: "no more than 1 PEX message per minute").
 *
 * PEX data is untrusted (BEP11 "Security Considerations"): the decoder drops port-0 contacts,
 * duplicates and contacts both added and dropped, and refuses lists above the caps.
 */
import { isIPv6 } from 'node:net'
import { dictBytes, encodeBencode, isDict } from '../bencode.ts'
import { ipv4ToBytes, ipv4ToText, ipv6ToBytes, ipv6ToText } from '../ip-address.ts'
import { decodeBencodePayload, fail, ok, type WireResult } from './errors.ts'

/** BEP11 flag bits of `added.f` / `added6.f`. */
export const PEX_FLAGS = {
  prefersEncryption: 0x01,
  seed: 0x02,
  utp: 0x04,
  holepunch: 0x08,
  reachable: 0x10,
} as const

/** BEP11: "the combined amount of added v4/v6 contacts should not exceed 50 entries. The same applies to dropped entries." */
export const PEX_MAX_ENTRIES = 50
/** The initial message is exempt from the 50-entry rule; we still cap it (combined v4 + v6). */
export const PEX_MAX_INITIAL_ENTRIES = 200
/** BEP11: "no more than 1 PEX message per minute". */
export const PEX_INTERVAL_MS = 60_000

export interface PexPeer {
  /** Dotted IPv4 or (compressed, lowercase) IPv6 text. */
  readonly host: string
  readonly port: number
  /** BEP11 flags (0 for dropped contacts or when the sender gave none). */
  readonly flags: number
}

export interface PexMessage {
  readonly added: readonly PexPeer[]
  readonly added6: readonly PexPeer[]
  readonly dropped: readonly PexPeer[]
  readonly dropped6: readonly PexPeer[]
}

// ---------------------------------------------------------------------------------------------
// compact address helpers

function ipv4Bytes(host: string): Uint8Array {
  const bytes = ipv4ToBytes(host)
  if (bytes === undefined) throw new RangeError(`not an IPv4 address: ${host}`)
  return bytes
}

function ipv6Bytes(host: string): Uint8Array {
  // A zone id (`fe80::1%eth0`) is dropped: it means nothing to the receiver.
  const bytes = isIPv6(host) ? ipv6ToBytes(host.split('%')[0] ?? '') : undefined
  if (bytes === undefined) throw new RangeError(`not an IPv6 address: ${host}`)
  return bytes
}

function encodeCompact(peers: readonly PexPeer[], v6: boolean): Uint8Array {
  const size = v6 ? 18 : 6
  const out = new Uint8Array(peers.length * size)
  peers.forEach((p, i) => {
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 0xffff)
      throw new RangeError(`invalid port ${p.port}`)
    out.set(v6 ? ipv6Bytes(p.host) : ipv4Bytes(p.host), i * size)
    out[i * size + size - 2] = p.port >> 8
    out[i * size + size - 1] = p.port & 0xff
  })
  return out
}

function decodeCompact(bytes: Uint8Array, flags: Uint8Array | undefined, v6: boolean): PexPeer[] {
  const size = v6 ? 18 : 6
  const count = bytes.length / size
  const useFlags = flags !== undefined && flags.length === count
  const out: PexPeer[] = []
  for (let i = 0; i < count; i++) {
    const e = bytes.subarray(i * size, (i + 1) * size)
    const port = ((e[size - 2] ?? 0) << 8) | (e[size - 1] ?? 0)
    if (port === 0) continue
    const addr = e.subarray(0, size - 2)
    const host = v6 ? ipv6ToText(addr) : ipv4ToText(addr)
    out.push({ host, port, flags: useFlags ? (flags[i] ?? 0) : 0 })
  }
  return out
}

const key = (p: PexPeer): string => `${p.host}|${p.port}`

function dedupe(peers: PexPeer[], exclude?: ReadonlySet<string>): PexPeer[] {
  const seen = new Set<string>()
  return peers.filter((p) => {
    const k = key(p)
    if (seen.has(k) || exclude?.has(k)) return false
    seen.add(k)
    return true
  })
}

// ---------------------------------------------------------------------------------------------

export interface PexEncodeOptions {
  /** The first message to a peer may exceed the 50-entry rule (BEP11), up to {@link PEX_MAX_INITIAL_ENTRIES}. */
  readonly initial?: boolean
}

/**
 * Encodes a `ut_pex` payload. Throws `RangeError` on our own mistakes: too many entries, an
 * empty message (BEP11: "Messages must contain at least one of ... added, added6, dropped,
 * dropped6"), a contact both added and dropped, or an invalid address.
 */
export function encodePex(msg: PexMessage, options: PexEncodeOptions = {}): Uint8Array {
  const cap = options.initial ? PEX_MAX_INITIAL_ENTRIES : PEX_MAX_ENTRIES
  if (msg.added.length + msg.added6.length > cap) throw new RangeError(`more than ${cap} added contacts`)
  if (msg.dropped.length + msg.dropped6.length > cap)
    throw new RangeError(`more than ${cap} dropped contacts`)
  const total = msg.added.length + msg.added6.length + msg.dropped.length + msg.dropped6.length
  if (total === 0) throw new RangeError('a PEX message needs at least one contact')
  const dropped = new Set([...msg.dropped, ...msg.dropped6].map(key))
  if ([...msg.added, ...msg.added6].some((p) => dropped.has(key(p)))) {
    throw new RangeError('a contact must not be added and dropped in the same message')
  }
  const flags = (peers: readonly PexPeer[]): Uint8Array => Uint8Array.from(peers, (p) => p.flags & 0xff)
  return encodeBencode({
    added: encodeCompact(msg.added, false),
    'added.f': flags(msg.added),
    added6: encodeCompact(msg.added6, true),
    'added6.f': flags(msg.added6),
    dropped: encodeCompact(msg.dropped, false),
    dropped6: encodeCompact(msg.dropped6, true),
  })
}

export interface PexDecodeLimits {
  /** Most added (v4 + v6) and most dropped (v4 + v6) contacts accepted. @default 200 */
  readonly maxEntries?: number
}

/** Largest `ut_pex` payload we decode (200 + 200 IPv6 contacts with flags and keys fit easily). */
export const MAX_PEX_PAYLOAD = 16 * 1024

/** Decodes and validates a `ut_pex` payload. */
export function decodePex(payload: Uint8Array, limits: PexDecodeLimits = {}): WireResult<PexMessage> {
  const cap = limits.maxEntries ?? PEX_MAX_INITIAL_ENTRIES
  if (payload.length > MAX_PEX_PAYLOAD)
    return fail('GW_ERR_WIRE_LIMIT_EXCEEDED', `ut_pex payload of ${payload.length} bytes`)
  const decoded = decodeBencodePayload(payload, { maxDepth: 4, maxItems: 256 })
  if (!decoded.ok) return decoded
  const d = decoded.value.value
  if (!isDict(d)) return fail('GW_ERR_WIRE_BAD_FIELD', 'ut_pex message is not a dictionary')
  if (!['added', 'added6', 'dropped', 'dropped6'].some((k) => d.has(k))) {
    return fail('GW_ERR_WIRE_BAD_FIELD', 'ut_pex message without added/added6/dropped/dropped6')
  }
  const list = (name: string, v6: boolean): WireResult<Uint8Array> => {
    if (!d.has(name)) return ok(new Uint8Array(0))
    const bytes = dictBytes(d, name)
    if (!bytes) return fail('GW_ERR_WIRE_BAD_FIELD', `ut_pex ${name} is not a string`)
    if (bytes.length % (v6 ? 18 : 6) !== 0)
      return fail('GW_ERR_WIRE_BAD_LENGTH', `ut_pex ${name} has a partial contact`)
    return ok(bytes)
  }
  const a4 = list('added', false)
  const a6 = list('added6', true)
  const d4 = list('dropped', false)
  const d6 = list('dropped6', true)
  if (!a4.ok) return a4
  if (!a6.ok) return a6
  if (!d4.ok) return d4
  if (!d6.ok) return d6
  if (a4.value.length / 6 + a6.value.length / 18 > cap)
    return fail('GW_ERR_WIRE_LIMIT_EXCEEDED', `more than ${cap} added contacts`)
  if (d4.value.length / 6 + d6.value.length / 18 > cap)
    return fail('GW_ERR_WIRE_LIMIT_EXCEEDED', `more than ${cap} dropped contacts`)
  const dropped = dedupe(decodeCompact(d4.value, undefined, false))
  const dropped6 = dedupe(decodeCompact(d6.value, undefined, true))
  // BEP11: "An added contact must not be dropped in the same message." Such contacts are ignored.
  const droppedKeys = new Set([...dropped, ...dropped6].map(key))
  const added = dedupe(decodeCompact(a4.value, dictBytes(d, 'added.f'), false), droppedKeys)
  const added6 = dedupe(decodeCompact(a6.value, dictBytes(d, 'added6.f'), true), droppedKeys)
  return ok({ added, added6, dropped, dropped6 })
}

// ---------------------------------------------------------------------------------------------

/**
 * BEP11 rate limiting for one peer, with the time passed in. `trySend` enforces our own "one
 * message per minute"; `acceptReceived` tells whether the peer respects it (with half an interval
 * of slack for timer jitter), so the caller can ignore or punish a flooding peer.
 */
export class PexRateLimiter {
  readonly #intervalMs: number
  #lastSent = Number.NEGATIVE_INFINITY
  #lastReceived = Number.NEGATIVE_INFINITY

  constructor(init: { readonly intervalMs?: number } = {}) {
    this.#intervalMs = init.intervalMs ?? PEX_INTERVAL_MS
    if (!(this.#intervalMs > 0)) throw new RangeError('intervalMs must be positive')
  }

  /** True (and records the send) when a message may be sent to the peer at `nowMs`. */
  trySend(nowMs: number): boolean {
    if (nowMs - this.#lastSent < this.#intervalMs) return false
    this.#lastSent = nowMs
    return true
  }

  /** Milliseconds until `trySend` will succeed (0 = now). */
  delayUntilNextSend(nowMs: number): number {
    return Math.max(0, this.#lastSent + this.#intervalMs - nowMs)
  }

  /** Records a message received at `nowMs`; false when it came too soon after the previous one. */
  acceptReceived(nowMs: number): boolean {
    const tooSoon = nowMs - this.#lastReceived < this.#intervalMs / 2
    this.#lastReceived = nowMs
    return !tooSoon
  }
}
