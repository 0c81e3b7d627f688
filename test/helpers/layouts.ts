/**
 * Hand-built `TorrentInfo` layouts for storage and engine tests, plus deterministic payload bytes
 * and independently computed expected hashes (node:crypto directly, not the code under test).
 *
 * Layouts cover: a single-file torrent, a v1 multi-file torrent with a zero-length file and files
 * crossing piece boundaries, v1 with BEP47 pad files in the middle of a piece, a hybrid torrent
 * (real pad files, BEP47/BEP52 upgrade path) and a v2-only torrent with *virtual* padding entries.
 * Info hashes are derived from the layout name; `infoBytes` is a placeholder (not a real bencoded
 * dict) and `piecesRoot` is left out: the storage layer does not use them.
 */

import { createHash } from 'node:crypto'
import type { FileEntry, TorrentInfo, TorrentVersion } from '../../gateway/protocol/types.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'

/** One file of a layout description; `pad` marks an explicit BEP47 pad file (v1 layouts). */
export interface FileSpec {
  readonly path: readonly string[]
  readonly length: number
  readonly pad?: boolean
}

/** Options of `buildInfo`. */
export interface LayoutSpec {
  readonly name: string
  readonly version: TorrentVersion
  readonly pieceLength: number
  readonly files: readonly FileSpec[]
  /** Single-file torrent: one file whose path is `[name]`. */
  readonly single?: boolean
}

/**
 * Builds a `TorrentInfo`: for `hybrid`, BEP47 pad files (`.pad/N`, `attr: 'p'`) are inserted after
 * every non-empty file but the last so each file starts on a piece boundary; for `v2`, the same gaps
 * become virtual padding entries. `v1` layouts are used as given.
 */
export function buildInfo(spec: LayoutSpec): TorrentInfo {
  const files: FileEntry[] = []
  let offset = 0
  const push = (path: readonly string[], length: number, padding: boolean, virtual: boolean): void => {
    const firstPiece = Math.floor(offset / spec.pieceLength)
    const pieceCount =
      length === 0 ? 0 : Math.floor((offset + length - 1) / spec.pieceLength) - firstPiece + 1
    files.push({
      path,
      length,
      offset,
      padding,
      virtual,
      attr: padding && !virtual ? 'p' : '',
      firstPiece,
      pieceCount,
    })
    offset += length
  }
  const lastNonEmpty = spec.files.reduce((last, f, i) => (f.length > 0 ? i : last), -1)
  spec.files.forEach((f, i) => {
    push(f.path, f.length, f.pad === true, false)
    const gap = (spec.pieceLength - (offset % spec.pieceLength)) % spec.pieceLength
    if (spec.version !== 'v1' && f.length > 0 && i < lastNonEmpty && gap > 0) {
      if (spec.version === 'hybrid') push(['.pad', String(gap)], gap, true, false)
      else push(['.pad', String(gap)], gap, true, true)
    }
  })
  const totalLength = offset
  const pieceCount = Math.ceil(totalLength / spec.pieceLength)
  const payloadLength = files.filter((f) => !f.padding).reduce((sum, f) => sum + f.length, 0)
  const seed = `${spec.version}:${spec.name}`
  const base = {
    version: spec.version,
    name: spec.name,
    pieceLength: spec.pieceLength,
    totalLength,
    payloadLength,
    pieceCount,
    files,
    private: false,
    infoBytes: new TextEncoder().encode(seed),
  }
  const info: TorrentInfo = {
    ...base,
    ...(spec.version !== 'v2' ? { infoHashV1: createHash('sha1').update(seed).digest() } : {}),
    ...(spec.version !== 'v1'
      ? { infoHashV2: createHash('sha256').update(seed).digest(), metaVersion: 2 }
      : {}),
  }
  if (spec.version === 'v2') return info
  const pieces = new Uint8Array(pieceCount * 20)
  for (let p = 0; p < pieceCount; p++) pieces.set(expectedSha1(info, p), p * 20)
  return { ...info, pieces }
}

const KIB = 1024

/** The layouts every storage test runs over. */
export const LAYOUTS: Readonly<Record<string, TorrentInfo>> = {
  singleFile: buildInfo({
    name: 'single.bin',
    version: 'v1',
    pieceLength: 32 * KIB,
    files: [{ path: ['single.bin'], length: 100_000 }],
    single: true,
  }),
  v1MultiFile: buildInfo({
    name: 'multi',
    version: 'v1',
    pieceLength: 32 * KIB,
    files: [
      { path: ['a.txt'], length: 40_000 },
      { path: ['empty.txt'], length: 0 },
      { path: ['dir', 'b.bin'], length: 50_000 },
      { path: ['dir', 'sub', 'c'], length: 7 },
      { path: ['d.dat'], length: 20_000 },
    ],
  }),
  v1PadFiles: buildInfo({
    name: 'padded',
    version: 'v1',
    pieceLength: 64 * KIB,
    files: [
      { path: ['a'], length: 10_000 },
      { path: ['.pad', '6384'], length: 6_384, pad: true },
      { path: ['b'], length: 30_000 },
      { path: ['.pad', '19152'], length: 19_152, pad: true },
      { path: ['c'], length: 70_000 },
    ],
  }),
  hybrid: buildInfo({
    name: 'hybrid',
    version: 'hybrid',
    pieceLength: 32 * KIB,
    files: [
      { path: ['a'], length: 40_000 },
      { path: ['empty'], length: 0 },
      { path: ['b'], length: 16_384 },
      { path: ['c', 'd'], length: 70_000 },
    ],
  }),
  v2Only: buildInfo({
    name: 'v2only',
    version: 'v2',
    pieceLength: 32 * KIB,
    files: [
      { path: ['a'], length: 40_000 },
      { path: ['empty'], length: 0 },
      { path: ['b'], length: 5_000 },
      { path: ['c', 'd'], length: 70_000 },
    ],
  }),
}

/** Deterministic content of byte `i` of file entry `fileIndex` (never all zeros). */
export function fileByte(fileIndex: number, i: number): number {
  return (i * 31 + fileIndex * 7 + (i >> 8) * 13 + 1) & 0xff
}

/** The whole linear piece space with payload bytes, padding as zeros. */
export function linearData(info: TorrentInfo): Uint8Array {
  const out = new Uint8Array(info.totalLength)
  info.files.forEach((f, fileIndex) => {
    if (f.padding) return
    for (let i = 0; i < f.length; i++) out[f.offset + i] = fileByte(fileIndex, i)
  })
  return out
}

/** Bytes of piece `piece` (padding zero). */
export function pieceData(info: TorrentInfo, piece: number, linear = linearData(info)): Uint8Array {
  const start = piece * info.pieceLength
  return linear.slice(start, Math.min(start + info.pieceLength, info.totalLength))
}

/** Length of piece `piece` in the linear space. */
export function pieceSize(info: TorrentInfo, piece: number): number {
  return Math.min(info.pieceLength, info.totalLength - piece * info.pieceLength)
}

/** Expected v1 piece hash: SHA-1 of the piece bytes with padding as zeros (BEP3, BEP47). */
export function expectedSha1(info: TorrentInfo, piece: number, linear = linearData(info)): Uint8Array {
  return new Uint8Array(
    createHash('sha1')
      .update(pieceData(info, piece, linear))
      .digest(),
  )
}

/**
 * Expected v2 leaves: SHA-256 of each 16 KiB block of file data in the piece, the last block of a
 * file over its real bytes only (BEP52); nothing for padding.
 */
export function expectedV2Leaves(info: TorrentInfo, piece: number, linear = linearData(info)): Uint8Array[] {
  const start = piece * info.pieceLength
  const end = start + pieceSize(info, piece)
  const leaves: Uint8Array[] = []
  for (const f of info.files) {
    if (f.padding || f.length === 0) continue
    const from = Math.max(start, f.offset)
    const to = Math.min(end, f.offset + f.length)
    for (let at = from; at < to; at += BLOCK_SIZE) {
      leaves.push(
        new Uint8Array(
          createHash('sha256')
            .update(linear.subarray(at, Math.min(at + BLOCK_SIZE, to)))
            .digest(),
        ),
      )
    }
  }
  return leaves
}

/** Every 16 KiB block (piece, offset, length) of the torrent, in order, padding-only blocks included. */
export function allBlocks(info: TorrentInfo): { piece: number; offset: number; length: number }[] {
  const blocks: { piece: number; offset: number; length: number }[] = []
  for (let piece = 0; piece < info.pieceCount; piece++) {
    const size = pieceSize(info, piece)
    for (let offset = 0; offset < size; offset += BLOCK_SIZE) {
      blocks.push({ piece, offset, length: Math.min(BLOCK_SIZE, size - offset) })
    }
  }
  return blocks
}

/** The padding byte ranges of the linear space as (piece, offset, length) pieces. */
export function paddingRanges(info: TorrentInfo): { piece: number; offset: number; length: number }[] {
  const out: { piece: number; offset: number; length: number }[] = []
  for (const f of info.files) {
    if (!f.padding) continue
    let at = f.offset
    const end = f.offset + f.length
    while (at < end) {
      const piece = Math.floor(at / info.pieceLength)
      const offset = at - piece * info.pieceLength
      const length = Math.min(end - at, info.pieceLength - offset)
      out.push({ piece, offset, length })
      at += length
    }
  }
  return out
}
