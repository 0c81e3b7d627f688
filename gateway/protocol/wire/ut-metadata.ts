/**
 * BEP9 `ut_metadata`: the request / data / reject messages, a `MetadataAssembler` that collects
 * the info dictionary from 16 KiB pieces and checks it against the expected info hash, and a
 * `MetadataServer` that answers requests for metadata we have.
 *
 * Each message is a bencoded dictionary; a `data` message is that dictionary FOLLOWED by the raw
 * piece bytes ("it is not a part of the dictionary, but it is a part of the message"). The end of
 * the dictionary comes from the bencode decoder (bytes consumed), never from `indexOf('ee')`
 * (STYLE.md §3). Every remote field is range-checked: msg_type, piece, total_size, data length.
 */
import { createHash } from 'node:crypto'
import { dictInt, encodeBencode, isDict } from '../bencode.ts'
import { decodeBencodePayload, fail, ok, WireProtocolError, type WireResult } from './errors.ts'
import { DEFAULT_MAX_METADATA_SIZE } from './frame-decoder.ts'

/** BEP9: "The metadata is handled in blocks of 16KiB (16384 Bytes)." */
export const METADATA_PIECE_SIZE = 16 * 1024

/** BEP9 `msg_type` values. */
export const UT_METADATA_MSG_TYPE = { request: 0, data: 1, reject: 2 } as const

export type UtMetadataMessage =
  | { readonly type: 'request'; readonly piece: number }
  | { readonly type: 'data'; readonly piece: number; readonly totalSize: number; readonly data: Uint8Array }
  | { readonly type: 'reject'; readonly piece: number }

/** A decoded message, or one with a `msg_type` we do not know (BEP9: "MUST be ignored"). */
export type UtMetadataDecoded = UtMetadataMessage | { readonly type: 'unknown'; readonly msgType: number }

export interface UtMetadataLimits {
  /** Largest metadata we accept (`total_size`) and the piece range that implies. @default 8 MiB */
  readonly maxMetadataSize?: number
}

/** Number of 16 KiB pieces of metadata of `size` bytes. */
export function metadataPieceCount(size: number): number {
  return Math.ceil(size / METADATA_PIECE_SIZE)
}

/** Expected length of piece `piece` of metadata of `size` bytes (BEP9: all 16 KiB but the last). */
export function metadataPieceLength(size: number, piece: number): number {
  return Math.min(METADATA_PIECE_SIZE, size - piece * METADATA_PIECE_SIZE)
}

/** Encodes a message to the extended payload (after the extended id byte). */
export function encodeUtMetadata(msg: UtMetadataMessage): Uint8Array {
  if (!Number.isSafeInteger(msg.piece) || msg.piece < 0) throw new RangeError('invalid metadata piece')
  if (msg.type !== 'data') {
    return encodeBencode({ msg_type: UT_METADATA_MSG_TYPE[msg.type], piece: msg.piece })
  }
  const dict = encodeBencode({
    msg_type: UT_METADATA_MSG_TYPE.data,
    piece: msg.piece,
    total_size: msg.totalSize,
  })
  const out = new Uint8Array(dict.length + msg.data.length)
  out.set(dict, 0)
  out.set(msg.data, dict.length)
  return out
}

/** Decodes and validates a `ut_metadata` payload. */
export function decodeUtMetadata(
  payload: Uint8Array,
  limits: UtMetadataLimits = {},
): WireResult<UtMetadataDecoded> {
  const maxSize = limits.maxMetadataSize ?? DEFAULT_MAX_METADATA_SIZE
  const decoded = decodeBencodePayload(payload, { allowTrailing: true, maxDepth: 4, maxItems: 64 })
  if (!decoded.ok) return decoded
  const { value: d, bytesConsumed: end } = decoded.value
  if (!isDict(d)) return fail('GW_ERR_WIRE_BAD_FIELD', 'ut_metadata message is not a dictionary')
  const msgType = dictInt(d, 'msg_type')
  if (msgType === undefined)
    return fail('GW_ERR_WIRE_BAD_FIELD', 'ut_metadata msg_type missing or not an integer')
  if (msgType !== 0 && msgType !== 1 && msgType !== 2) return ok({ type: 'unknown', msgType })
  const piece = dictInt(d, 'piece')
  if (piece === undefined || piece < 0 || piece >= metadataPieceCount(maxSize)) {
    return fail('GW_ERR_WIRE_BAD_FIELD', 'ut_metadata piece missing or out of range')
  }
  const trailing = payload.length - end
  if (msgType !== UT_METADATA_MSG_TYPE.data) {
    if (trailing !== 0)
      return fail('GW_ERR_WIRE_BAD_LENGTH', `${trailing} bytes after a ut_metadata request/reject`)
    return ok({ type: msgType === UT_METADATA_MSG_TYPE.request ? 'request' : 'reject', piece })
  }
  const totalSize = dictInt(d, 'total_size')
  if (!d.has('total_size') || totalSize === undefined || totalSize <= 0 || totalSize > maxSize) {
    return fail('GW_ERR_WIRE_BAD_FIELD', 'ut_metadata total_size missing or out of range')
  }
  if (piece >= metadataPieceCount(totalSize)) {
    return fail('GW_ERR_WIRE_BAD_FIELD', `ut_metadata piece ${piece} beyond total_size ${totalSize}`)
  }
  // BEP9: "If it is not the last piece of the metadata, it MUST be 16kiB."
  const expected = metadataPieceLength(totalSize, piece)
  if (trailing !== expected) {
    return fail(
      'GW_ERR_WIRE_BAD_LENGTH',
      `ut_metadata piece ${piece} has ${trailing} bytes, expected ${expected}`,
    )
  }
  return ok({ type: 'data', piece, totalSize, data: payload.subarray(end) })
}

// ---------------------------------------------------------------------------------------------

/** The info hash(es) the metadata must match. */
export interface ExpectedInfoHash {
  /** btih: SHA-1 of the info dictionary (20 bytes). */
  readonly v1?: Uint8Array
  /** btmh / v2: SHA-256 of the info dictionary (32 bytes), or its 20-byte truncation (BEP52 wire form). */
  readonly v2?: Uint8Array
}

export interface MetadataAssemblerInit {
  readonly expected: ExpectedInfoHash
  /** @default 8 MiB */
  readonly maxSize?: number
}

export type AssembleResult =
  | { readonly status: 'partial' }
  /** `matched` tells which hash verified the metadata (a hybrid may match either). */
  | { readonly status: 'complete'; readonly info: Uint8Array; readonly matched: 'v1' | 'v2' }
  | { readonly status: 'error'; readonly error: WireProtocolError }

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * Collects metadata pieces for one torrent (one instance per torrent, shared by its peers).
 * Piece buffers are allocated as pieces arrive, so a peer announcing a large `metadata_size`
 * costs nothing until it actually sends data. On a hash mismatch all pieces are dropped.
 */
export class MetadataAssembler {
  readonly size: number
  readonly pieceCount: number
  readonly #expected: ExpectedInfoHash
  readonly #pieces: (Uint8Array | undefined)[]
  #received = 0

  private constructor(size: number, expected: ExpectedInfoHash) {
    this.size = size
    this.pieceCount = metadataPieceCount(size)
    this.#expected = expected
    this.#pieces = new Array<Uint8Array | undefined>(this.pieceCount).fill(undefined)
  }

  /** Validates the (remote) `metadata_size` and our expected hashes. */
  static create(metadataSize: number, init: MetadataAssemblerInit): WireResult<MetadataAssembler> {
    const { v1, v2 } = init.expected
    if (v1 === undefined && v2 === undefined)
      throw new TypeError('an expected v1 or v2 info hash is required')
    if (v1 !== undefined && v1.length !== 20) throw new RangeError('v1 info hash must be 20 bytes')
    if (v2 !== undefined && v2.length !== 32 && v2.length !== 20)
      throw new RangeError('v2 info hash must be 32 or 20 bytes')
    const maxSize = init.maxSize ?? DEFAULT_MAX_METADATA_SIZE
    if (!Number.isSafeInteger(metadataSize) || metadataSize <= 0 || metadataSize > maxSize) {
      return fail('GW_ERR_WIRE_LIMIT_EXCEEDED', `metadata size ${metadataSize} outside 1..${maxSize}`)
    }
    return ok(new MetadataAssembler(metadataSize, init.expected))
  }

  get complete(): boolean {
    return this.#received === this.pieceCount
  }

  has(piece: number): boolean {
    return this.#pieces[piece] !== undefined
  }

  /** Up to `limit` pieces not received yet, in order. */
  missing(limit = this.pieceCount): number[] {
    const out: number[] = []
    for (let i = 0; i < this.pieceCount && out.length < limit; i++)
      if (this.#pieces[i] === undefined) out.push(i)
    return out
  }

  /** Adds a `data` message. Validates it against this metadata's size; checks the hash when the last piece arrives. */
  add(msg: {
    readonly piece: number
    readonly totalSize: number
    readonly data: Uint8Array
  }): AssembleResult {
    if (msg.totalSize !== this.size) {
      return this.#error(
        'GW_ERR_WIRE_BAD_FIELD',
        `total_size ${msg.totalSize} differs from metadata_size ${this.size}`,
      )
    }
    if (!Number.isSafeInteger(msg.piece) || msg.piece < 0 || msg.piece >= this.pieceCount) {
      return this.#error('GW_ERR_WIRE_BAD_FIELD', `metadata piece ${msg.piece} out of range`)
    }
    const expected = metadataPieceLength(this.size, msg.piece)
    if (msg.data.length !== expected) {
      return this.#error(
        'GW_ERR_WIRE_BAD_LENGTH',
        `metadata piece ${msg.piece}: ${msg.data.length} bytes, expected ${expected}`,
      )
    }
    if (this.#pieces[msg.piece] === undefined) {
      this.#pieces[msg.piece] = msg.data.slice()
      this.#received++
    }
    if (!this.complete) return { status: 'partial' }
    const info = new Uint8Array(this.size)
    this.#pieces.forEach((p, i) => {
      if (p) info.set(p, i * METADATA_PIECE_SIZE)
    })
    const matched = this.#verify(info)
    if (matched) return { status: 'complete', info, matched }
    this.#pieces.fill(undefined)
    this.#received = 0
    return this.#error('GW_ERR_WIRE_METADATA_HASH_MISMATCH', 'metadata does not match the info hash')
  }

  #verify(info: Uint8Array): 'v1' | 'v2' | undefined {
    const { v1, v2 } = this.#expected
    if (v1 && equal(createHash('sha1').update(info).digest(), v1)) return 'v1'
    if (v2) {
      const digest = createHash('sha256').update(info).digest()
      if (equal(digest.subarray(0, v2.length), v2)) return 'v2'
    }
    return undefined
  }

  #error(code: WireProtocolError['code'], message: string): AssembleResult {
    return { status: 'error', error: new WireProtocolError(code, message) }
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Answers `ut_metadata` requests for one torrent. BEP9: "Peers that do not have the entire
 * metadata MUST respond with a reject message to any metadata request."
 */
export class MetadataServer {
  #info: Uint8Array | undefined

  constructor(info?: Uint8Array) {
    this.#info = info
  }

  /** Sets the verified info dictionary (e.g. once a magnet download has it). */
  setMetadata(info: Uint8Array): void {
    if (info.length === 0) throw new RangeError('empty metadata')
    this.#info = info
  }

  get metadataSize(): number | undefined {
    return this.#info?.length
  }

  /** The answer to a request: `data` for a piece we have, `reject` otherwise. */
  respond(request: { readonly piece: number }, budget?: MetadataServeBudget): UtMetadataMessage {
    const info = this.#info
    const piece = request.piece
    if (!info || !Number.isSafeInteger(piece) || piece < 0 || piece >= metadataPieceCount(info.length)) {
      return { type: 'reject', piece }
    }
    if (budget && !budget.take()) return { type: 'reject', piece }
    const start = piece * METADATA_PIECE_SIZE
    return {
      type: 'data',
      piece,
      totalSize: info.length,
      data: info.subarray(start, start + metadataPieceLength(info.length, piece)),
    }
  }
}

/**
 * Per-peer flood protection for {@link MetadataServer} (BEP9: "Clients MAY implement flood
 * protection by rejecting request messages after a certain number of them have been served.
 * Typically the number of pieces of metadata times a factor").
 */
export class MetadataServeBudget {
  #left: number

  constructor(metadataSize: number, factor = 3) {
    this.#left = Math.max(1, metadataPieceCount(metadataSize)) * factor
  }

  /** Consumes one serve; false when the budget is exhausted. */
  take(): boolean {
    if (this.#left <= 0) return false
    this.#left--
    return true
  }
}
