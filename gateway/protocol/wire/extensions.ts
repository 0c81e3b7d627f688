/**
 * BEP10 extension protocol: the extended handshake (extended message id 0) and a typed registry
 * of the extensions we speak, with per-peer remote ids.
 *
 * BEP10: "All items in the dictionary are optional. Any unknown names should be ignored by the
 * client." Every field a peer sends is validated and capped here; a known field with a wrong type
 * or an out-of-range value is dropped (treated as absent), as unknown keys are. Only a payload
 * that is not a bencoded dictionary at all (or exceeds the structural limits) is an error.
 */
import {
  type BEncodable,
  dictBytes,
  dictDict,
  dictInt,
  encodeBencode,
  isDict,
  keyText,
  textKey,
} from '../bencode.ts'
import { decodeBencodePayload, fail, ok, type WireResult } from './errors.ts'
import { DEFAULT_MAX_METADATA_SIZE } from './frame-decoder.ts'

/** BEP10: extended message id 0 is the handshake. */
export const EXTENDED_HANDSHAKE_ID = 0

/** The extensions this implementation speaks, with the local ids we assign (BEP10: "IDs are local"). */
export const LOCAL_EXTENSION_IDS = new Map([
  ['ut_metadata', 1], // BEP9
  ['ut_pex', 2], // BEP11
] as const)

export type ExtensionName = typeof LOCAL_EXTENSION_IDS extends Map<infer K, number> ? K : never

export interface ExtendedHandshake {
  /** BEP10 `m`: extension name → the id to use when *sending* that extension to this peer; 0 = disabled. */
  readonly m: ReadonlyMap<string, number>
  /** BEP10 `v`: client name and version (UTF-8, capped). */
  readonly v?: string
  /** BEP10 `p`: the sender's TCP listen port. */
  readonly p?: number
  /** BEP10 `yourip`: our address as the sender sees it (4 or 16 bytes). */
  readonly yourip?: Uint8Array
  /** BEP10 `ipv4` (4 bytes) / `ipv6` (16 bytes): the sender's other interfaces. */
  readonly ipv4?: Uint8Array
  readonly ipv6?: Uint8Array
  /** BEP10 `reqq`: outstanding requests the sender supports (capped at {@link MAX_REQQ}). */
  readonly reqq?: number
  /** BEP9 `metadata_size`: size of the info dictionary in bytes. */
  readonly metadataSize?: number
  /** BEP21 `upload_only` (a partial seed / seed says it will not download). */
  readonly uploadOnly?: boolean
}

/** Most entries we read from `m`; extra entries are ignored. */
export const MAX_M_ENTRIES = 64
/** Longest extension name we accept in `m`. */
export const MAX_EXTENSION_NAME_LENGTH = 64
/** Longest `v` we keep (bytes); longer is truncated at a character boundary. */
export const MAX_CLIENT_NAME_LENGTH = 128
/** `reqq` above this is clamped: we never queue more than that many requests to one peer anyway. */
export const MAX_REQQ = 2000
/** Largest extended handshake payload we decode. */
export const MAX_EXTENDED_HANDSHAKE_SIZE = 16 * 1024

export interface ExtendedHandshakeLimits {
  /** Largest acceptable `metadata_size` (BEP9); larger values are dropped. @default 8 MiB */
  readonly maxMetadataSize?: number
}

/** Encodes the handshake dictionary (the payload after the extended id byte). */
export function encodeExtendedHandshake(h: ExtendedHandshake): Uint8Array {
  // Names become keys of a Map (never object properties), encoded as UTF-8 (BEP10 names are text).
  const m = new Map<string, number>()
  for (const [name, id] of h.m) {
    if (!Number.isInteger(id) || id < 0 || id > 255)
      throw new RangeError(`invalid extension id ${id} for ${name}`)
    m.set(textKey(name), id)
  }
  const dict: Record<string, BEncodable | undefined> = {
    m,
    v: h.v,
    p: h.p,
    yourip: h.yourip,
    ipv4: h.ipv4,
    ipv6: h.ipv6,
    reqq: h.reqq,
    metadata_size: h.metadataSize,
    upload_only: h.uploadOnly === undefined ? undefined : h.uploadOnly ? 1 : 0,
  }
  return encodeBencode(dict)
}

const textDecoder = new TextDecoder('utf-8', { fatal: false })

function decodeClientName(bytes: Uint8Array): string {
  const text = textDecoder.decode(bytes.subarray(0, MAX_CLIENT_NAME_LENGTH * 4))
  // cap by code points so we never cut a surrogate pair
  return Array.from(text).slice(0, MAX_CLIENT_NAME_LENGTH).join('')
}

/** Decodes and validates an extended handshake payload. */
export function decodeExtendedHandshake(
  payload: Uint8Array,
  limits: ExtendedHandshakeLimits = {},
): WireResult<ExtendedHandshake> {
  if (payload.length > MAX_EXTENDED_HANDSHAKE_SIZE) {
    return fail('GW_ERR_WIRE_LIMIT_EXCEEDED', `extended handshake of ${payload.length} bytes`)
  }
  const decoded = decodeBencodePayload(payload, { maxDepth: 8, maxItems: 1024 })
  if (!decoded.ok) return decoded
  const d = decoded.value.value
  if (!isDict(d)) return fail('GW_ERR_WIRE_BAD_FIELD', 'extended handshake is not a dictionary')
  const maxMetadata = limits.maxMetadataSize ?? DEFAULT_MAX_METADATA_SIZE

  const m = new Map<string, number>()
  const rawM = dictDict(d, 'm')
  if (rawM) {
    let seen = 0
    for (const key of rawM.keys()) {
      if (++seen > MAX_M_ENTRIES) break
      const id = dictInt(rawM, key)
      // BEP10: ids are single bytes; 0 disables the extension
      if (id === undefined || id < 0 || id > 255) continue
      const name = keyText(key)
      if (name.length === 0 || name.length > MAX_EXTENSION_NAME_LENGTH) continue
      m.set(name, id)
    }
  }
  const out: {
    -readonly [K in keyof ExtendedHandshake]: ExtendedHandshake[K]
  } = { m }
  const v = dictBytes(d, 'v')
  if (v) out.v = decodeClientName(v)
  const p = dictInt(d, 'p')
  if (p !== undefined && p > 0 && p <= 0xffff) out.p = p
  const yourip = dictBytes(d, 'yourip')
  if (yourip && (yourip.length === 4 || yourip.length === 16)) out.yourip = yourip
  const ipv4 = dictBytes(d, 'ipv4')
  if (ipv4 && ipv4.length === 4) out.ipv4 = ipv4
  const ipv6 = dictBytes(d, 'ipv6')
  if (ipv6 && ipv6.length === 16) out.ipv6 = ipv6
  const reqq = dictInt(d, 'reqq')
  if (reqq !== undefined && reqq > 0) out.reqq = Math.min(reqq, MAX_REQQ)
  const size = dictInt(d, 'metadata_size')
  if (size !== undefined && size > 0 && size <= maxMetadata) out.metadataSize = size
  const uploadOnly = dictInt(d, 'upload_only')
  if (uploadOnly !== undefined) out.uploadOnly = uploadOnly !== 0
  return ok(out)
}

/**
 * The extensions we offer, with their local ids: what goes into our handshake's `m` and how an
 * incoming extended message id maps back to a name.
 */
export class ExtensionRegistry<Name extends string = ExtensionName> {
  readonly #byName: ReadonlyMap<Name, number>
  readonly #byId: ReadonlyMap<number, Name>

  constructor(ids: ReadonlyMap<Name, number>) {
    const byId = new Map<number, Name>()
    for (const [name, id] of ids) {
      if (!Number.isInteger(id) || id < 1 || id > 255)
        throw new RangeError(`local id of ${name} must be 1..255`)
      if (byId.has(id)) throw new RangeError(`local id ${id} used twice`)
      byId.set(id, name)
    }
    this.#byName = new Map(ids)
    this.#byId = byId
  }

  /** The registry of the extensions this gateway implements (ut_metadata, ut_pex). */
  static default(): ExtensionRegistry<ExtensionName> {
    return new ExtensionRegistry<ExtensionName>(LOCAL_EXTENSION_IDS)
  }

  /** Our id for `name`. */
  localId(name: Name): number | undefined {
    return this.#byName.get(name)
  }

  /** The extension an incoming extended message (id > 0) is for, if it is one of ours. */
  nameOf(localId: number): Name | undefined {
    return this.#byId.get(localId)
  }

  /** The `m` dictionary for our handshake. */
  handshakeM(): ReadonlyMap<string, number> {
    return this.#byName
  }
}

/**
 * One peer's extension ids, from its handshake(s). BEP10: "the `m` dictionary is additive"; an
 * id of 0 disables the extension. Only names we know are kept, so the map stays small.
 */
export class PeerExtensions<Name extends string = ExtensionName> {
  readonly #known: ReadonlySet<string>
  readonly #remote = new Map<Name, number>()

  constructor(known: Iterable<Name>) {
    this.#known = new Set<string>(known)
  }

  /** Applies the `m` of a (possibly repeated) extended handshake from the peer. */
  update(m: ReadonlyMap<string, number>): void {
    for (const [name, id] of m) {
      if (!this.#known.has(name)) continue
      if (id === 0) this.#remote.delete(name as Name)
      else this.#remote.set(name as Name, id)
    }
  }

  /** The id to use when sending `name` to this peer, or undefined when the peer does not support it. */
  remoteId(name: Name): number | undefined {
    return this.#remote.get(name)
  }

  supports(name: Name): boolean {
    return this.#remote.has(name)
  }
}
