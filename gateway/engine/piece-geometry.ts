/**
 * Piece geometry: how the global piece index space maps onto the torrent's files.
 *
 * BEP3: pieces cover the files "as if they were concatenated in the order they appear in the
 * files list"; all pieces have `piece length` bytes except possibly the last one. BEP47: pad files
 * are part of that linear space and read as zeros. BEP52: every non-empty file starts on a piece
 * boundary; for v2-only torrents the parser inserts *virtual* padding entries so one global piece
 * index still works (see `FileEntry` in `gateway/protocol/types.ts`).
 *
 * Pure and immutable after construction; O(files) to build, O(log files + spans) per query.
 * Used by the storage facade, the storage backends and the piece picker.
 */

import type { FileEntry, TorrentInfo } from '../protocol/types.ts'
import { BLOCK_SIZE } from '../protocol/types.ts'

/** The `TorrentInfo` file list is internally inconsistent. */
export class GeometryError extends Error {
  readonly code = 'GW_ERR_GEOMETRY'

  constructor(message: string) {
    super(message)
    this.name = 'GeometryError'
  }
}

/** One contiguous piece of a piece (or of a range within a piece) that lies in one file entry. */
export interface PieceSpan {
  /** Index into `info.files`. */
  readonly fileIndex: number
  readonly file: FileEntry
  /** Byte offset inside the file entry. */
  readonly fileOffset: number
  /** Byte offset inside the piece. */
  readonly pieceOffset: number
  readonly length: number
  /** True for BEP47 pad files and v2 virtual alignment gaps: never stored, read as zeros. */
  readonly padding: boolean
}

/** A contiguous byte range inside a piece (`pieceOffset` relative to the piece start). */
export interface PieceRange {
  readonly pieceOffset: number
  readonly length: number
}

/** For v2 / hybrid torrents: the single file whose data a piece holds (BEP52 alignment). */
export interface V2PieceLocation {
  readonly fileIndex: number
  readonly file: FileEntry
  /** Index of this piece within the file (index into the file's BEP52 piece layer). */
  readonly pieceInFile: number
  /** Bytes of file data in this piece (the rest of the piece, if any, is alignment gap). */
  readonly dataLength: number
}

/** Maps pieces to file spans for one torrent. Construct once per torrent and share. */
export class PieceGeometry {
  readonly info: TorrentInfo
  readonly pieceCount: number
  readonly pieceLength: number
  readonly totalLength: number
  /** Indices (into `info.files`) of the entries with length > 0, in linear order. */
  readonly #nonEmpty: number[]
  /** Start offsets of the `#nonEmpty` entries, for binary search. */
  readonly #starts: Float64Array

  /** Validates that the entries tile the linear space and that `pieceCount` matches. */
  constructor(info: TorrentInfo) {
    const { pieceLength, totalLength, pieceCount } = info
    // BEP3 only asks for a positive piece length; v1 torrents with 8 KiB or 20000-byte pieces exist
    // and libtorrent loads them. Blocks never cross a piece boundary (see `blockLength`).
    if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
      throw new GeometryError(`piece length ${pieceLength} is not a positive integer`)
    }
    // BEP52: "It must be a power of two and at least 16KiB" (Merkle leaves are 16 KiB blocks).
    if (info.version !== 'v1' && (pieceLength < BLOCK_SIZE || (pieceLength & (pieceLength - 1)) !== 0)) {
      throw new GeometryError(`v2 piece length ${pieceLength} is not a power of two >= ${BLOCK_SIZE}`)
    }
    if (!Number.isSafeInteger(totalLength) || totalLength < 0) {
      throw new GeometryError(`invalid total length ${totalLength}`)
    }
    if (pieceCount !== Math.ceil(totalLength / pieceLength)) {
      throw new GeometryError(`piece count ${pieceCount} does not match total length ${totalLength}`)
    }
    this.info = info
    this.pieceCount = pieceCount
    this.pieceLength = pieceLength
    this.totalLength = totalLength
    const nonEmpty: number[] = []
    let offset = 0
    info.files.forEach((file, index) => {
      if (file.offset !== offset || !Number.isSafeInteger(file.length) || file.length < 0) {
        throw new GeometryError(`file entry ${index} does not continue the linear space at ${offset}`)
      }
      if (file.length > 0) nonEmpty.push(index)
      offset += file.length
    })
    if (offset !== totalLength) {
      throw new GeometryError(`file entries cover ${offset} bytes, expected ${totalLength}`)
    }
    this.#nonEmpty = nonEmpty
    this.#starts = Float64Array.from(nonEmpty, (i) => info.files[i]?.offset ?? 0)
  }

  /** True if `piece` is an integer in `[0, pieceCount)`. */
  isValidPiece(piece: number): boolean {
    return Number.isInteger(piece) && piece >= 0 && piece < this.pieceCount
  }

  /** Length in bytes of `piece` in the linear space (only the last piece may be shorter; BEP3). */
  pieceSize(piece: number): number {
    this.#checkPiece(piece)
    if (piece < this.pieceCount - 1) return this.pieceLength
    return this.totalLength - piece * this.pieceLength
  }

  /**
   * Number of blocks in `piece`: blocks start every 16 KiB from the piece start, so the last one
   * may be shorter (a piece shorter than 16 KiB, e.g. 8 KiB pieces, is one block).
   */
  blockCount(piece: number): number {
    return Math.ceil(this.pieceSize(piece) / BLOCK_SIZE)
  }

  /** Blocks in a full-size piece: ceil(piece length / 16 KiB). */
  get blocksPerPiece(): number {
    return Math.ceil(this.pieceLength / BLOCK_SIZE)
  }

  /**
   * Length of block `block` of `piece`: min(16 KiB, bytes left in the piece), so only a piece's last
   * block may be shorter and no block crosses into the next piece (20000-byte pieces: 16384 + 3616).
   */
  blockLength(piece: number, block: number): number {
    const size = this.pieceSize(piece)
    const start = block * BLOCK_SIZE
    if (!Number.isInteger(block) || block < 0 || start >= size) {
      throw new GeometryError(`block ${block} out of range for piece ${piece}`)
    }
    return Math.min(BLOCK_SIZE, size - start)
  }

  /**
   * The file spans covering `[offset, offset + length)` of `piece` (default: the whole piece), in
   * order, padding included, zero-length entries omitted.
   */
  spans(piece: number, offset = 0, length?: number): PieceSpan[] {
    const size = this.pieceSize(piece)
    const len = length ?? size - offset
    if (!Number.isInteger(offset) || !Number.isInteger(len) || offset < 0 || len < 0 || offset + len > size) {
      throw new GeometryError(`range [${offset}, +${len}) outside piece ${piece} of ${size} bytes`)
    }
    const result: PieceSpan[] = []
    if (len === 0) return result
    const pieceStart = piece * this.pieceLength
    let pos = pieceStart + offset
    const end = pos + len
    let k = this.#entryAt(pos)
    // Bounded: each iteration consumes one non-empty entry, and `end` lies within the linear space.
    while (pos < end && k < this.#nonEmpty.length) {
      const fileIndex = this.#nonEmpty[k] as number
      const file = this.info.files[fileIndex] as FileEntry
      const fileEnd = file.offset + file.length
      const take = Math.min(end, fileEnd) - pos
      result.push({
        fileIndex,
        file,
        fileOffset: pos - file.offset,
        pieceOffset: pos - pieceStart,
        length: take,
        padding: file.padding,
      })
      pos += take
      k++
    }
    return result
  }

  /**
   * The non-padding parts of `[offset, offset + length)` of `piece`, with adjacent file spans merged
   * into one range. Storage backends only ever see ranges like these.
   */
  dataRanges(piece: number, offset = 0, length?: number): PieceRange[] {
    const ranges: { pieceOffset: number; length: number }[] = []
    for (const span of this.spans(piece, offset, length)) {
      if (span.padding) continue
      const last = ranges[ranges.length - 1]
      if (last && last.pieceOffset + last.length === span.pieceOffset) last.length += span.length
      else ranges.push({ pieceOffset: span.pieceOffset, length: span.length })
    }
    return ranges
  }

  /** Bytes of real file data (not padding) in `piece`. */
  dataLength(piece: number): number {
    let total = 0
    for (const span of this.spans(piece)) if (!span.padding) total += span.length
    return total
  }

  /**
   * True if block `block` of `piece` lies entirely in padding. BEP47: clients "should also avoid
   * requesting byte-ranges covering their contents", so the picker never requests such blocks.
   */
  isPaddingBlock(piece: number, block: number): boolean {
    const length = this.blockLength(piece, block)
    return this.dataRanges(piece, block * BLOCK_SIZE, length).length === 0
  }

  /**
   * For v2 and hybrid torrents (BEP52: each non-empty file starts on a piece boundary): the file
   * the piece belongs to and the piece's index within that file, or undefined if the piece holds
   * only padding. Throws `GeometryError` if the layout is not piece-aligned at this piece.
   */
  v2Location(piece: number): V2PieceLocation | undefined {
    let found: V2PieceLocation | undefined
    for (const span of this.spans(piece)) {
      if (span.padding) continue
      if (found !== undefined || span.pieceOffset !== 0 || span.fileOffset % this.pieceLength !== 0) {
        throw new GeometryError(`piece ${piece} is not aligned to a single file (BEP52)`)
      }
      found = {
        fileIndex: span.fileIndex,
        file: span.file,
        pieceInFile: span.fileOffset / this.pieceLength,
        dataLength: span.length,
      }
    }
    return found
  }

  /** The pieces touched by file entry `fileIndex`: `[first, first + count)`; count 0 if empty. */
  filePieces(fileIndex: number): { first: number; count: number } {
    const file = this.info.files[fileIndex]
    if (file === undefined) throw new GeometryError(`file index ${fileIndex} out of range`)
    if (file.length === 0) return { first: Math.floor(file.offset / this.pieceLength), count: 0 }
    const first = Math.floor(file.offset / this.pieceLength)
    const last = Math.floor((file.offset + file.length - 1) / this.pieceLength)
    return { first, count: last - first + 1 }
  }

  /** Position in `#nonEmpty` of the entry containing linear offset `pos` (binary search). */
  #entryAt(pos: number): number {
    const starts = this.#starts
    let lo = 0
    let hi = starts.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if ((starts[mid] as number) <= pos) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  #checkPiece(piece: number): void {
    if (!this.isValidPiece(piece)) {
      throw new GeometryError(`piece index ${piece} out of range [0, ${this.pieceCount})`)
    }
  }
}
