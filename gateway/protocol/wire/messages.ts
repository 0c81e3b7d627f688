/**
 * The peer wire messages (everything after the handshake) as one discriminated union, with an
 * encoder that avoids copying payloads and a strict decoder for frames produced by
 * `frame-decoder.ts`.
 *
 * Framing (BEP3): <length prefix: u32 big-endian><message id: u8><payload>; length 0 is a
 * keep-alive. A *frame* here is what follows the length prefix (id + payload), so `decodeMessage`
 * receives `length` bytes. Every fixed-size message must have exactly its size (a `have` is 5
 * bytes, a `request` 13, ...), anything else is a `WireProtocolError` result.
 */
import { fail, ok, type WireResult } from './errors.ts'
import {
  decodeHashesPayload,
  decodeHashRequestPayload,
  encodeHashesPayload,
  encodeHashRequestPayload,
  type HashesPayload,
  type HashRequest,
} from './hash-messages.ts'

/** Message ids, grouped by the BEP that defines them. */
export const MESSAGE_ID = {
  // BEP3 (peer protocol)
  choke: 0,
  unchoke: 1,
  interested: 2,
  notInterested: 3,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8,
  // BEP5 (DHT): "It begins with byte 0x09 and has a two byte payload"
  port: 9,
  // BEP6 (Fast extension)
  suggest: 0x0d,
  haveAll: 0x0e,
  haveNone: 0x0f,
  reject: 0x10,
  allowedFast: 0x11,
  // BEP10 (extension protocol)
  extended: 20,
  // BEP52 (v2)
  hashRequest: 21,
  hashes: 22,
  hashReject: 23,
} as const

/** BEP3: "All current implementations use 2^14 (16 kiB)" for requests. */
export const MAX_BLOCK_LENGTH = 16 * 1024

export interface BlockRef {
  /** Piece index. */
  readonly index: number
  /** Byte offset inside the piece. */
  readonly begin: number
  /** Block length in bytes. */
  readonly length: number
}

export type WireMessage =
  /** BEP3: a zero-length message. */
  | { readonly type: 'keep-alive' }
  // BEP3
  | { readonly type: 'choke' }
  | { readonly type: 'unchoke' }
  | { readonly type: 'interested' }
  | { readonly type: 'not-interested' }
  | { readonly type: 'have'; readonly index: number }
  /** Raw BEP3 bitfield bytes; validate against the piece count with `engine/bitfield.ts`. */
  | { readonly type: 'bitfield'; readonly bitfield: Uint8Array }
  | ({ readonly type: 'request' } & BlockRef)
  /** `block` is a view into the frame (which the decoder allocated for this message only). */
  | { readonly type: 'piece'; readonly index: number; readonly begin: number; readonly block: Uint8Array }
  | ({ readonly type: 'cancel' } & BlockRef)
  // BEP5
  | { readonly type: 'port'; readonly port: number }
  // BEP6
  | { readonly type: 'suggest'; readonly index: number }
  | { readonly type: 'have-all' }
  | { readonly type: 'have-none' }
  | ({ readonly type: 'reject' } & BlockRef)
  | { readonly type: 'allowed-fast'; readonly index: number }
  // BEP10: `id` 0 is the extended handshake, others are the ids *we* assigned (received) or the
  // ids the *peer* assigned (sent). `payload` is the rest of the message, undecoded.
  | { readonly type: 'extended'; readonly id: number; readonly payload: Uint8Array }
  // BEP52
  | ({ readonly type: 'hash-request' } & HashRequest)
  | ({ readonly type: 'hashes' } & HashesPayload)
  | ({ readonly type: 'hash-reject' } & HashRequest)
  /** An id this codec does not know. BEP3 leaves them undefined; the caller decides (usually ignore). */
  | { readonly type: 'unknown'; readonly id: number; readonly payload: Uint8Array }

export type WireMessageType = WireMessage['type']

const u32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffffffff

function header(length: number, id: number, extra: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(5 + extra)
  const view = new DataView(bytes.buffer)
  view.setUint32(0, length)
  bytes[4] = id
  return { bytes, view }
}

function simple(id: number): Uint8Array[] {
  return [header(1, id, 0).bytes]
}

function indexOnly(id: number, index: number): Uint8Array[] {
  if (!u32(index)) throw new RangeError(`invalid piece index ${index}`)
  const h = header(5, id, 4)
  h.view.setUint32(5, index)
  return [h.bytes]
}

function blockRef(id: number, r: BlockRef): Uint8Array[] {
  if (!u32(r.index) || !u32(r.begin) || !u32(r.length)) throw new RangeError('invalid block reference')
  const h = header(13, id, 12)
  h.view.setUint32(5, r.index)
  h.view.setUint32(9, r.begin)
  h.view.setUint32(13, r.length)
  return [h.bytes]
}

function withPayload(id: number, extraHeader: Uint8Array, payload: readonly Uint8Array[]): Uint8Array[] {
  let length = 1 + extraHeader.length
  for (const p of payload) length += p.length
  if (length > 0xffffffff) throw new RangeError('message too large')
  const h = header(length, id, extraHeader.length)
  h.bytes.set(extraHeader, 5)
  return [h.bytes, ...payload.filter((p) => p.length > 0)]
}

/**
 * Encodes a message to wire chunks, length prefix included. Large payloads (piece blocks,
 * bitfields, extended payloads, hashes) are returned as their own chunk, not copied. Throws
 * `RangeError` on invalid fields (our bug, not the peer's).
 */
export function encodeMessage(msg: WireMessage): Uint8Array[] {
  switch (msg.type) {
    case 'keep-alive':
      return [new Uint8Array(4)]
    case 'choke':
      return simple(MESSAGE_ID.choke)
    case 'unchoke':
      return simple(MESSAGE_ID.unchoke)
    case 'interested':
      return simple(MESSAGE_ID.interested)
    case 'not-interested':
      return simple(MESSAGE_ID.notInterested)
    case 'have':
      return indexOnly(MESSAGE_ID.have, msg.index)
    case 'bitfield':
      return withPayload(MESSAGE_ID.bitfield, new Uint8Array(0), [msg.bitfield])
    case 'request':
      return blockRef(MESSAGE_ID.request, msg)
    case 'piece': {
      if (!u32(msg.index) || !u32(msg.begin)) throw new RangeError('invalid piece message')
      const extra = new Uint8Array(8)
      const v = new DataView(extra.buffer)
      v.setUint32(0, msg.index)
      v.setUint32(4, msg.begin)
      return withPayload(MESSAGE_ID.piece, extra, [msg.block])
    }
    case 'cancel':
      return blockRef(MESSAGE_ID.cancel, msg)
    case 'port': {
      if (!Number.isInteger(msg.port) || msg.port < 0 || msg.port > 0xffff)
        throw new RangeError('invalid port')
      const h = header(3, MESSAGE_ID.port, 2)
      h.view.setUint16(5, msg.port)
      return [h.bytes]
    }
    case 'suggest':
      return indexOnly(MESSAGE_ID.suggest, msg.index)
    case 'have-all':
      return simple(MESSAGE_ID.haveAll)
    case 'have-none':
      return simple(MESSAGE_ID.haveNone)
    case 'reject':
      return blockRef(MESSAGE_ID.reject, msg)
    case 'allowed-fast':
      return indexOnly(MESSAGE_ID.allowedFast, msg.index)
    case 'extended':
      if (!Number.isInteger(msg.id) || msg.id < 0 || msg.id > 255) throw new RangeError('invalid extended id')
      return withPayload(MESSAGE_ID.extended, Uint8Array.of(msg.id), [msg.payload])
    case 'hash-request':
      return withPayload(MESSAGE_ID.hashRequest, encodeHashRequestPayload(msg), [])
    case 'hash-reject':
      return withPayload(MESSAGE_ID.hashReject, encodeHashRequestPayload(msg), [])
    case 'hashes': {
      const [head, hashes] = encodeHashesPayload(msg)
      return withPayload(MESSAGE_ID.hashes, head ?? new Uint8Array(0), hashes ? [hashes] : [])
    }
    case 'unknown':
      if (!Number.isInteger(msg.id) || msg.id < 0 || msg.id > 255) throw new RangeError('invalid message id')
      return withPayload(msg.id, new Uint8Array(0), [msg.payload])
  }
}

/** Total byte length of encoded chunks. */
export function chunksLength(chunks: readonly Uint8Array[]): number {
  let n = 0
  for (const c of chunks) n += c.length
  return n
}

/** Encodes a message into one contiguous buffer (a convenience; copies the payload). */
export function encodeMessageBytes(msg: WireMessage): Uint8Array {
  const chunks = encodeMessage(msg)
  const out = new Uint8Array(chunksLength(chunks))
  let off = 0
  for (const c of chunks) {
    out.set(c, off)
    off += c.length
  }
  return out
}

/**
 * Exact frame length (id byte included) of every fixed-size message, by id. Used by the decoder
 * and by `frame-decoder.ts` to refuse oversized frames before buffering them.
 */
export const FIXED_FRAME_LENGTH: ReadonlyMap<number, number> = new Map([
  [MESSAGE_ID.choke, 1],
  [MESSAGE_ID.unchoke, 1],
  [MESSAGE_ID.interested, 1],
  [MESSAGE_ID.notInterested, 1],
  [MESSAGE_ID.have, 5],
  [MESSAGE_ID.request, 13],
  [MESSAGE_ID.cancel, 13],
  [MESSAGE_ID.port, 3],
  [MESSAGE_ID.suggest, 5],
  [MESSAGE_ID.haveAll, 1],
  [MESSAGE_ID.haveNone, 1],
  [MESSAGE_ID.reject, 13],
  [MESSAGE_ID.allowedFast, 5],
  [MESSAGE_ID.hashRequest, 49],
  [MESSAGE_ID.hashReject, 49],
])

const NAME_BY_ID: ReadonlyMap<number, string> = new Map(Object.entries(MESSAGE_ID).map(([k, v]) => [v, k]))

/** Optional torrent-derived checks applied while decoding. */
export interface DecodeContext {
  /** When known: `have`/`suggest`/`allowed-fast`/`request`/`piece`/`cancel`/`reject` indices must be below it. */
  readonly pieceCount?: number
}

/**
 * Decodes one frame (the bytes after the length prefix; empty = keep-alive). The frame is owned
 * by the returned message: `piece.block`, `bitfield.bitfield` and `extended.payload` are views
 * into it.
 */
export function decodeMessage(frame: Uint8Array, context: DecodeContext = {}): WireResult<WireMessage> {
  if (frame.length === 0) return ok({ type: 'keep-alive' })
  const id = frame[0] ?? 0
  const fixed = FIXED_FRAME_LENGTH.get(id)
  if (fixed !== undefined && frame.length !== fixed) {
    return fail(
      'GW_ERR_WIRE_BAD_LENGTH',
      `${NAME_BY_ID.get(id)} message must be ${fixed} bytes, got ${frame.length}`,
    )
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  const pieceCount = context.pieceCount
  const checkIndex = (index: number): WireResult<number> =>
    pieceCount !== undefined && index >= pieceCount
      ? fail('GW_ERR_WIRE_BAD_FIELD', `piece index ${index} out of range (${pieceCount} pieces)`)
      : ok(index)
  const index1 = (type: 'have' | 'suggest' | 'allowed-fast'): WireResult<WireMessage> => {
    const idx = checkIndex(view.getUint32(1))
    return idx.ok ? ok({ type, index: idx.value }) : idx
  }
  const ref = (type: 'request' | 'cancel' | 'reject'): WireResult<WireMessage> => {
    const idx = checkIndex(view.getUint32(1))
    if (!idx.ok) return idx
    const begin = view.getUint32(5)
    const length = view.getUint32(9)
    // BEP3: requests are "generally" 16 KiB; a larger one is a violation ("close connections
    // which request an amount greater than that"), and a zero-length one is meaningless.
    if (length === 0 || length > MAX_BLOCK_LENGTH) {
      return fail('GW_ERR_WIRE_BAD_FIELD', `${type} length ${length} outside 1..${MAX_BLOCK_LENGTH}`)
    }
    return ok({ type, index: idx.value, begin, length })
  }
  switch (id) {
    case MESSAGE_ID.choke:
      return ok({ type: 'choke' })
    case MESSAGE_ID.unchoke:
      return ok({ type: 'unchoke' })
    case MESSAGE_ID.interested:
      return ok({ type: 'interested' })
    case MESSAGE_ID.notInterested:
      return ok({ type: 'not-interested' })
    case MESSAGE_ID.have:
      return index1('have')
    case MESSAGE_ID.bitfield:
      if (pieceCount !== undefined && frame.length - 1 !== Math.ceil(pieceCount / 8)) {
        return fail(
          'GW_ERR_WIRE_BAD_LENGTH',
          `bitfield of ${frame.length - 1} bytes for ${pieceCount} pieces`,
        )
      }
      return ok({ type: 'bitfield', bitfield: frame.subarray(1) })
    case MESSAGE_ID.request:
      return ref('request')
    case MESSAGE_ID.piece: {
      if (frame.length < 9) return fail('GW_ERR_WIRE_BAD_LENGTH', `piece message of ${frame.length} bytes`)
      const idx = checkIndex(view.getUint32(1))
      if (!idx.ok) return idx
      const block = frame.subarray(9)
      if (block.length === 0 || block.length > MAX_BLOCK_LENGTH) {
        return fail('GW_ERR_WIRE_BAD_LENGTH', `piece block of ${block.length} bytes`)
      }
      return ok({ type: 'piece', index: idx.value, begin: view.getUint32(5), block })
    }
    case MESSAGE_ID.cancel:
      return ref('cancel')
    case MESSAGE_ID.port:
      return ok({ type: 'port', port: view.getUint16(1) })
    case MESSAGE_ID.suggest:
      return index1('suggest')
    case MESSAGE_ID.haveAll:
      return ok({ type: 'have-all' })
    case MESSAGE_ID.haveNone:
      return ok({ type: 'have-none' })
    case MESSAGE_ID.reject:
      return ref('reject')
    case MESSAGE_ID.allowedFast:
      return index1('allowed-fast')
    case MESSAGE_ID.extended:
      if (frame.length < 2) return fail('GW_ERR_WIRE_BAD_LENGTH', 'extended message without an extended id')
      return ok({ type: 'extended', id: frame[1] ?? 0, payload: frame.subarray(2) })
    case MESSAGE_ID.hashRequest:
    case MESSAGE_ID.hashReject: {
      const r = decodeHashRequestPayload(frame.subarray(1))
      if (!r.ok) return r
      return ok({ type: id === MESSAGE_ID.hashRequest ? 'hash-request' : 'hash-reject', ...r.value })
    }
    case MESSAGE_ID.hashes: {
      const r = decodeHashesPayload(frame.subarray(1))
      return r.ok ? ok({ type: 'hashes', ...r.value }) : r
    }
    default:
      return ok({ type: 'unknown', id, payload: frame.subarray(1) })
  }
}
