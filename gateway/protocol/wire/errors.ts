/**
 * The one error type of the peer wire codecs, and the result shape they return.
 *
 * Everything that comes from a remote peer is untrusted: the codecs in `gateway/protocol/wire/`
 * never throw on bad remote input, they return `{ ok: false, error: WireProtocolError }`. The
 * engine closes the offending connection with that error as the reason (STYLE.md §7.3). Codecs
 * may throw `RangeError`/`TypeError` only for *our own* bad arguments (programming errors).
 *
 * Also here: {@link decodeBencodePayload}, the bencoded extension payloads (BEP10, BEP9, BEP11)
 * decoded with the gateway's one bencode decoder (`../bencode.ts`), its `BencodeError`s turned
 * into a {@link WireResult}.
 */
import { BencodeError, type BValue, type Decoded, decodeBencode } from '../bencode.ts'

/** Stable codes of wire protocol violations (one per failure kind). */
export type WireErrorCode =
  /** A length prefix above the limit the caller derived from the torrent (STYLE.md §7.5). */
  | 'GW_ERR_WIRE_FRAME_TOO_LARGE'
  /** More unread bytes than the decoder may buffer. */
  | 'GW_ERR_WIRE_BUFFER_OVERFLOW'
  /** A message whose payload length does not match its type (e.g. a `have` that is not 5 bytes). */
  | 'GW_ERR_WIRE_BAD_LENGTH'
  /** The 68-byte handshake (BEP3) is malformed. */
  | 'GW_ERR_WIRE_BAD_HANDSHAKE'
  /** Invalid or over-limit bencoding inside an extended message (BEP10). */
  | 'GW_ERR_WIRE_BAD_BENCODE'
  /** A field has a wrong type or an out-of-range value. */
  | 'GW_ERR_WIRE_BAD_FIELD'
  /** A remote-controlled list or size is above our cap. */
  | 'GW_ERR_WIRE_LIMIT_EXCEEDED'
  /** BEP9: the assembled metadata does not hash to the expected info hash. */
  | 'GW_ERR_WIRE_METADATA_HASH_MISMATCH'

/** A violation of the peer wire protocol by the remote side (or a corrupt stream). */
export class WireProtocolError extends Error {
  readonly code: WireErrorCode

  constructor(code: WireErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'WireProtocolError'
    this.code = code
  }
}

/** The result of decoding untrusted bytes. */
export type WireResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: WireProtocolError }

/** Shorthand for a successful {@link WireResult}. */
export function ok<T>(value: T): WireResult<T> {
  return { ok: true, value }
}

/** Shorthand for a failed {@link WireResult}. */
export function fail<T = never>(code: WireErrorCode, message: string): WireResult<T> {
  return { ok: false, error: new WireProtocolError(code, message) }
}

/** Structural limits of {@link decodeBencodePayload}. */
export interface BencodePayloadLimits {
  /** Maximum nesting of lists/dictionaries. @default 16 */
  readonly maxDepth?: number
  /** Maximum number of values (integers, strings, lists, dictionaries; keys not counted). @default 4096 */
  readonly maxItems?: number
  /** Allow bytes after the value (BEP9 `data` messages: the dictionary, then the piece). @default false */
  readonly allowTrailing?: boolean
}

const DEFAULT_PAYLOAD_MAX_DEPTH = 16
const DEFAULT_PAYLOAD_MAX_ITEMS = 4096
/** Payload dictionaries are looked up by key; this key is refused outright (defence in depth). */
const PROTO_KEY = '__proto__'

/**
 * Decodes the bencoded value at the start of an untrusted extension payload. Numbers must be
 * canonical (no leading zeros, no `i-0e`); dictionary keys may come in any order; duplicate keys,
 * truncation, trailing bytes (unless allowed) and a `__proto__` key are errors. `bytesConsumed`
 * is where the value ends: BEP9 `data` messages carry the raw piece after it.
 */
export function decodeBencodePayload(
  payload: Uint8Array,
  limits: BencodePayloadLimits = {},
): WireResult<Decoded> {
  let decoded: Decoded
  try {
    decoded = decodeBencode(payload, {
      maxDepth: limits.maxDepth ?? DEFAULT_PAYLOAD_MAX_DEPTH,
      maxTokens: limits.maxItems ?? DEFAULT_PAYLOAD_MAX_ITEMS,
      countKeys: false,
      canonicalNumbers: true,
      allowTrailing: limits.allowTrailing ?? false,
    })
  } catch (cause) {
    if (!(cause instanceof BencodeError)) throw cause
    const code: WireErrorCode =
      cause.code === 'BT_ERR_BENCODE_TOO_DEEP' || cause.code === 'BT_ERR_BENCODE_TOO_LARGE'
        ? 'GW_ERR_WIRE_LIMIT_EXCEEDED'
        : 'GW_ERR_WIRE_BAD_BENCODE'
    return { ok: false, error: new WireProtocolError(code, `bencode: ${cause.message}`, { cause }) }
  }
  if (hasKey(decoded.value, PROTO_KEY)) return fail('GW_ERR_WIRE_BAD_BENCODE', `forbidden key ${PROTO_KEY}`)
  return ok(decoded)
}

/** True when some dictionary in `root` has key `key`. Visits each decoded value once (bounded by the item cap). */
function hasKey(root: BValue, key: string): boolean {
  const pending: BValue[] = [root]
  for (let v = pending.pop(); v !== undefined; v = pending.pop()) {
    if (Array.isArray(v)) {
      for (const item of v) pending.push(item)
    } else if (v instanceof Map) {
      if (v.has(key)) return true
      for (const item of v.values()) pending.push(item)
    }
  }
  return false
}
