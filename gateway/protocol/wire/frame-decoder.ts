/**
 * A bounded decoder for the length-prefixed message stream that follows the handshake (BEP3:
 * "an alternating stream of length prefixes and messages").
 *
 * Push chunks as they arrive, pull frames (the bytes after each 4-byte prefix). Unlike a decoder
 * that concatenates on every chunk, it keeps a chunk list and copies only the frame being
 * assembled, once (STYLE.md §3, §4, §7.5). Limits are derived from the torrent by
 * {@link frameLimits}: every prefix is checked against the overall maximum as soon as it is read,
 * and against the limit of its message id as soon as the id byte arrives, so an oversized frame is
 * refused before it is buffered. Violations are returned as `WireProtocolError` results; after one
 * the decoder stays failed.
 */
import { type WireErrorCode, WireProtocolError } from './errors.ts'
import { HASH_REQUEST_PAYLOAD_SIZE, HASH_SIZE, MAX_HASHES_PER_MESSAGE } from './hash-messages.ts'
import { FIXED_FRAME_LENGTH, MAX_BLOCK_LENGTH, MESSAGE_ID } from './messages.ts'

/** Per-message-id frame length limits (id byte included) and their maximum. */
export interface FrameLimits {
  readonly maxFrameLength: number
  /** 256 entries: the largest frame accepted for each message id. */
  readonly byId: Readonly<Uint32Array>
}

export interface FrameLimitsInit {
  /** Number of pieces when known; bounds `bitfield` to exactly ceil(pieces / 8) + 1 (BEP3). */
  readonly pieceCount?: number
  /** Bitfield cap while the piece count is unknown (magnet, before BEP9 metadata). @default derived from maxMetadataSize */
  readonly maxMetadataSize?: number
  /** Largest block we request or serve. @default 16384 (BEP3) */
  readonly maxBlockLength?: number
  /**
   * Largest BEP10 extended payload (after the extended id byte). Must fit a BEP9 data message: a
   * 16 KiB metadata piece plus its dictionary. @default 16 KiB + 4 KiB
   */
  readonly maxExtendedPayload?: number
  /** Largest payload of a message id we do not know. @default 1024 */
  readonly maxUnknownPayload?: number
}

/** BEP9 metadata size cap used across the wire code (8 MiB). */
export const DEFAULT_MAX_METADATA_SIZE = 8 * 1024 * 1024
export const DEFAULT_MAX_EXTENDED_PAYLOAD = 16 * 1024 + 4 * 1024
export const DEFAULT_MAX_UNKNOWN_PAYLOAD = 1024

/** Derives the frame limits for one torrent (STYLE.md §7.5: piece = 16 KiB + 9, bitfield = ceil(pieces/8) + 1). */
export function frameLimits(init: FrameLimitsInit = {}): FrameLimits {
  const maxBlock = init.maxBlockLength ?? MAX_BLOCK_LENGTH
  const maxExt = init.maxExtendedPayload ?? DEFAULT_MAX_EXTENDED_PAYLOAD
  const maxUnknown = init.maxUnknownPayload ?? DEFAULT_MAX_UNKNOWN_PAYLOAD
  for (const [name, v] of [
    ['maxBlockLength', maxBlock],
    ['maxExtendedPayload', maxExt],
    ['maxUnknownPayload', maxUnknown],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0 || v > 64 * 1024 * 1024)
      throw new RangeError(`invalid ${name} ${v}`)
  }
  let bitfieldBytes: number
  if (init.pieceCount !== undefined) {
    if (!Number.isSafeInteger(init.pieceCount) || init.pieceCount < 0)
      throw new RangeError('invalid pieceCount')
    bitfieldBytes = Math.ceil(init.pieceCount / 8)
  } else {
    // v1 metadata carries 20 bytes of `pieces` per piece, so metadata of N bytes describes at
    // most N / 20 pieces (v2-only metadata describes even fewer per byte).
    bitfieldBytes = Math.ceil((init.maxMetadataSize ?? DEFAULT_MAX_METADATA_SIZE) / 20 / 8)
  }
  const byId = new Uint32Array(256).fill(1 + maxUnknown)
  for (const [id, len] of FIXED_FRAME_LENGTH) byId[id] = len
  byId[MESSAGE_ID.bitfield] = 1 + bitfieldBytes
  byId[MESSAGE_ID.piece] = 9 + maxBlock
  byId[MESSAGE_ID.extended] = 2 + maxExt
  byId[MESSAGE_ID.hashes] = 1 + HASH_REQUEST_PAYLOAD_SIZE + MAX_HASHES_PER_MESSAGE * HASH_SIZE
  let max = 0
  for (const v of byId) max = Math.max(max, v)
  return { maxFrameLength: max, byId }
}

/** One step of {@link FrameDecoder.next}. */
export type FrameStep =
  | { readonly kind: 'frame'; readonly frame: Uint8Array }
  | { readonly kind: 'need-more' }
  | { readonly kind: 'error'; readonly error: WireProtocolError }

export interface FrameDecoderInit {
  readonly limits: FrameLimits
  /**
   * Most unread bytes the decoder holds. Frames are pulled after every push, so this is only
   * reached by a caller that pushes without pulling. @default 2 × (maxFrameLength + 4) + 256 KiB
   */
  readonly maxBufferedBytes?: number
}

/** Chunks shorter than this are copied into a small accumulator instead of being kept as objects. */
const SMALL_CHUNK = 512
const ACCUMULATOR_SIZE = 4096
const NEED_MORE: FrameStep = { kind: 'need-more' }
/**
 * Frames at least this long that lie inside one chunk are returned as views. Smaller ones are
 * copied: the copy is cheap (on the JS heap) and a retained small message (a bitfield) then does
 * not pin a whole received chunk.
 */
const MIN_VIEW_FRAME = 1024
const EMPTY = new Uint8Array(0)

export class FrameDecoder {
  #limits: FrameLimits
  readonly #maxBuffered: number
  /** Unread chunks from `#head` on; `#headOffset` bytes of the head chunk are already consumed. */
  #chunks: Uint8Array[] = []
  #head = 0
  #headOffset = 0
  #buffered = 0
  /** Backing store of the accumulator; it is the last chunk while it has room. */
  #acc: Uint8Array | undefined
  #accUsed = 0
  /** Length of the frame being assembled, or -1 while waiting for a prefix. */
  #frameLength = -1
  #idChecked = false
  #error: WireProtocolError | undefined
  readonly #prefix = new Uint8Array(4)
  readonly #prefixView = new DataView(this.#prefix.buffer)

  constructor(init: FrameDecoderInit) {
    this.#limits = init.limits
    this.#maxBuffered = init.maxBufferedBytes ?? 2 * (init.limits.maxFrameLength + 4) + 256 * 1024
    if (!Number.isSafeInteger(this.#maxBuffered) || this.#maxBuffered < 4)
      throw new RangeError('invalid maxBufferedBytes')
  }

  /** Unread bytes held. */
  get bufferedBytes(): number {
    return this.#buffered
  }

  /** The error the decoder failed with, if any. */
  get error(): WireProtocolError | undefined {
    return this.#error
  }

  /** Replaces the limits (e.g. once BEP9 metadata gives the piece count); applies to the next frame. */
  setLimits(limits: FrameLimits): void {
    this.#limits = limits
  }

  /** Adds received bytes. Returns an error (and fails the decoder) when the buffer cap is exceeded. */
  push(chunk: Uint8Array): WireProtocolError | undefined {
    if (this.#error) return this.#error
    if (chunk.length === 0) return undefined
    if (this.#buffered + chunk.length > this.#maxBuffered) {
      return this.#fail('GW_ERR_WIRE_BUFFER_OVERFLOW', `more than ${this.#maxBuffered} unread bytes`)
    }
    this.#buffered += chunk.length
    if (chunk.length >= SMALL_CHUNK) {
      this.#acc = undefined
      this.#chunks.push(chunk)
      return undefined
    }
    if (!this.#acc || this.#accUsed + chunk.length > this.#acc.length) {
      this.#acc = new Uint8Array(ACCUMULATOR_SIZE)
      this.#accUsed = 0
      this.#chunks.push(EMPTY)
    }
    this.#acc.set(chunk, this.#accUsed)
    this.#accUsed += chunk.length
    // the accumulator is always the last chunk; extend its view (offsets into it stay valid)
    this.#chunks[this.#chunks.length - 1] = this.#acc.subarray(0, this.#accUsed)
    return undefined
  }

  /**
   * The next complete frame, `need-more`, or the (sticky) error. A frame that lies inside one
   * received chunk is returned as a view of that chunk (no copy, no allocation): the caller owns
   * its bytes, but must not detach (transfer) the underlying buffer, which other frames may share.
   * Frames split across chunks, and small ones, are copied into a fresh buffer.
   */
  next(): FrameStep {
    if (this.#error) return { kind: 'error', error: this.#error }
    if (this.#frameLength < 0) {
      if (this.#buffered < 4) return NEED_MORE
      const frameLength = this.#readPrefix()
      if (frameLength > this.#limits.maxFrameLength) {
        return this.#failStep(
          'GW_ERR_WIRE_FRAME_TOO_LARGE',
          `frame of ${frameLength} bytes exceeds ${this.#limits.maxFrameLength}`,
        )
      }
      if (frameLength === 0) return { kind: 'frame', frame: EMPTY } // BEP3 keep-alive
      this.#frameLength = frameLength
      this.#idChecked = false
    }
    if (!this.#idChecked) {
      if (this.#buffered < 1) return NEED_MORE
      const id = this.#peekByte()
      const limit = this.#limits.byId[id] ?? 0
      if (this.#frameLength > limit) {
        return this.#failStep(
          'GW_ERR_WIRE_FRAME_TOO_LARGE',
          `message id ${id}: frame of ${this.#frameLength} bytes exceeds ${limit}`,
        )
      }
      this.#idChecked = true
    }
    const n = this.#frameLength
    if (this.#buffered < n) return NEED_MORE
    this.#frameLength = -1
    const head = this.#chunks[this.#head]
    const at = this.#headOffset
    if (n >= MIN_VIEW_FRAME && head !== undefined && head.length - at >= n) {
      // The whole frame is in the head chunk: hand out a view (the common case for blocks).
      // A plain Uint8Array view (not `subarray`, which would make a Buffer view of a Buffer chunk).
      const frame = new Uint8Array(head.buffer, head.byteOffset + at, n)
      this.#consumed(head, at + n, n)
      return { kind: 'frame', frame }
    }
    const frame = new Uint8Array(n)
    this.#read(frame, n)
    return { kind: 'frame', frame }
  }

  /** Reads the 4-byte big-endian length prefix (≤ buffered), straight from the head chunk when it holds all of it. */
  #readPrefix(): number {
    const head = this.#chunks[this.#head]
    const at = this.#headOffset
    if (head !== undefined && head.length - at >= 4) {
      const value =
        (head[at] ?? 0) * 0x1000000 +
        (((head[at + 1] ?? 0) << 16) | ((head[at + 2] ?? 0) << 8) | (head[at + 3] ?? 0))
      this.#consumed(head, at + 4, 4)
      return value
    }
    this.#read(this.#prefix, 4)
    return this.#prefixView.getUint32(0)
  }

  /** Bookkeeping after `n` bytes of the head chunk were consumed, up to `end`. */
  #consumed(head: Uint8Array, end: number, n: number): void {
    this.#headOffset = end
    if (end === head.length && !(this.#acc && this.#head === this.#chunks.length - 1)) {
      this.#chunks[this.#head] = EMPTY
      this.#head++
      this.#headOffset = 0
    }
    this.#afterConsume(n)
  }

  #peekByte(): number {
    const c = this.#chunks[this.#head]
    return c?.[this.#headOffset] ?? 0
  }

  /** Copies `n` (≤ buffered) bytes into `target` and consumes them. */
  #read(target: Uint8Array, n: number): void {
    let copied = 0
    // each iteration consumes a whole chunk or finishes, so it is bounded by the chunk count
    while (copied < n) {
      const c = this.#chunks[this.#head]
      if (!c) throw new Error('FrameDecoder invariant: buffered count out of sync')
      const take = Math.min(n - copied, c.length - this.#headOffset)
      if (take === 0 && this.#head === this.#chunks.length - 1) {
        throw new Error('FrameDecoder invariant: buffered count out of sync')
      }
      target.set(c.subarray(this.#headOffset, this.#headOffset + take), copied)
      copied += take
      this.#headOffset += take
      if (this.#headOffset === c.length && !(this.#acc && this.#head === this.#chunks.length - 1)) {
        this.#chunks[this.#head] = EMPTY
        this.#head++
        this.#headOffset = 0
      }
    }
    this.#afterConsume(n)
  }

  #afterConsume(n: number): void {
    this.#buffered -= n
    if (this.#buffered === 0) {
      // everything consumed: start over (drops references to the chunks)
      this.#chunks.length = 0
      this.#head = 0
      this.#headOffset = 0
      this.#acc = undefined
    } else if (this.#head > 32 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head)
      this.#head = 0
    }
  }

  #fail(code: WireErrorCode, message: string): WireProtocolError {
    this.#error = new WireProtocolError(code, message)
    this.#chunks = []
    this.#head = 0
    this.#headOffset = 0
    this.#buffered = 0
    this.#acc = undefined
    return this.#error
  }

  #failStep(code: WireErrorCode, message: string): FrameStep {
    return { kind: 'error', error: this.#fail(code, message) }
  }
}
