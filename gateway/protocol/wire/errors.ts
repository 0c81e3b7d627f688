/**
 * The one error type of the peer wire codecs, and the result shape they return.
 *
 * Everything that comes from a remote peer is untrusted: the codecs in `gateway/protocol/wire/`
 * never throw on bad remote input, they return `{ ok: false, error: WireProtocolError }`. The
 * engine closes the offending connection with that error as the reason (STYLE.md §7.3). Codecs
 * may throw `RangeError`/`TypeError` only for *our own* bad arguments (programming errors).
 */

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
