/**
 * `.torrent` (metainfo) and info-dictionary parsing and validation for v1 (BEP3), v2 (BEP52) and
 * hybrid torrents, with BEP12 tracker tiers, BEP19 web seeds, BEP27 `private` and BEP47 pad
 * files / attributes. Produces the immutable {@link Metainfo} / {@link TorrentInfo} of `types.ts`.
 *
 * Everything from the outside is hostile until checked: every rule failure throws a
 * {@link MetainfoError} naming the field. Info hashes are computed over the info dictionary bytes
 * exactly as found (BEP3/BEP52 "infohash"), never over a re-encoding. Pure: no I/O.
 *
 * Leniency: we load what libtorrent 2.0 loads, and refuse only what is unsafe or unusable.
 * - Outside `info`, a value of the wrong type is ignored as if absent (libtorrent reads them with
 *   `dict_find_*`, which skip other types): `announce`, `announce-list` and its tiers, `url-list`,
 *   `comment`, `created by`, `creation date`, `piece layers`.
 * - Bytes after the top-level dictionary are ignored (the info hash is over the `info` span only).
 * - A repeated dictionary key keeps its FIRST value, anywhere (libtorrent's `dict_find` stops at the
 *   first match). Inside `info` this means two clients could read different values for the same
 *   info hash; we read what libtorrent reads, and piece hashes still check every byte.
 * - Names and paths are sanitized, not rejected (`metainfo-paths.ts`): traversal cannot survive.
 * - v2 `piece layers` may be missing (the engine fetches them from peers, BEP52 hash requests);
 *   layers that ARE present must hash to their `pieces root`.
 * Still refused: sizes, depth and token counts beyond the limits, bad hashes and piece counts,
 * hybrid halves that disagree, symlink targets that leave the torrent, unknown meta versions.
 */

import { createHash } from 'node:crypto'
import {
  type BDict,
  type BValue,
  bytesText,
  bytesToKey,
  type DecodeOptions,
  decodeBencode,
  dictSpan,
  isDict,
} from './bencode.ts'
import { BencodeError } from './errors.ts'
import { toHex } from './hex.ts'
import { verifyPieceLayer } from './merkle.ts'
import {
  fail,
  HASH_SIZE,
  hybridLayout,
  nameOf,
  optDict,
  optInt,
  type Placed,
  type RawFile,
  reqBytes,
  toEntries,
  v1Files,
  v2Files,
  v2Layout,
  wrongType,
} from './metainfo-files.ts'
import type { Metainfo, SwarmId, TorrentInfo, TorrentVersion } from './types.ts'
import { BLOCK_SIZE } from './types.ts'

export interface ParseOptions {
  /** Largest accepted input. @default 32 MiB */
  readonly maxBytes?: number
  /** Largest accepted number of files (pad files included). @default 100,000 */
  readonly maxFiles?: number
  /** Largest accepted number of pieces (libtorrent's default load limit). @default 2,097,152 */
  readonly maxPieces?: number
  /** Largest number of bencode values (bounds decoder memory; ~8 per file). @default 1,000,000 */
  readonly maxTokens?: number
}

export const DEFAULT_MAX_TORRENT_BYTES = 32 * 1024 * 1024
export const DEFAULT_MAX_FILES = 100_000
export const DEFAULT_MAX_PIECES = 0x200000
/** Largest `piece length` we accept (hostile values would make the engine buffer huge pieces). */
export const MAX_PIECE_LENGTH = 256 * 1024 * 1024
/** Nesting limit while decoding: a `file tree` adds two levels per directory. */
const MAX_DEPTH = 128
const SHA1_SIZE = 20

// ---------------------------------------------------------------------------------------------
// The info dictionary.

function pieceLengthOf(info: BDict, v2: boolean): number {
  const field = 'info.piece length'
  const pl = optInt(info, 'piece length', field)
  if (pl === undefined) fail('BT_ERR_METAINFO_MISSING_FIELD', field, 'missing')
  // BEP3: a positive byte count; BEP52: "a power of two and at least 16KiB".
  if (typeof pl !== 'number' || pl <= 0 || pl > MAX_PIECE_LENGTH) {
    fail('BT_ERR_METAINFO_BAD_PIECE_LENGTH', field, `must be 1..${MAX_PIECE_LENGTH}, got ${pl}`)
  }
  if (v2 && (pl < BLOCK_SIZE || (pl & (pl - 1)) !== 0)) {
    fail('BT_ERR_METAINFO_BAD_PIECE_LENGTH', field, `v2 needs a power of two >= ${BLOCK_SIZE}, got ${pl}`)
  }
  return pl
}

/** BEP27 `private`: libtorrent reads `dict_find_int_value("private", 0) != 0`, so only a non-zero
 * integer makes a torrent private; `"1"` (a string) does not. */
function privateOf(info: BDict): boolean {
  const v = info.get('private')
  return (typeof v === 'number' && v !== 0) || (typeof v === 'bigint' && v !== 0n)
}

function parseInfoValue(infoValue: BValue, infoBytes: Uint8Array, opts: ParseOptions): TorrentInfo {
  if (!isDict(infoValue)) wrongType('info', 'dictionary', infoValue)
  const info = infoValue
  const maxFiles = opts.maxFiles ?? DEFAULT_MAX_FILES
  // BEP52: check `meta version` before anything else.
  const mv = optInt(info, 'meta version', 'info.meta version')
  if (mv !== undefined && mv !== 2) {
    fail('BT_ERR_METAINFO_UNSUPPORTED_VERSION', 'info.meta version', `unsupported meta version ${mv}`)
  }
  const hasV2 = mv === 2
  const hasV1 = !hasV2 || info.has('pieces') || info.has('files') || info.has('length')
  const version: TorrentVersion = hasV2 ? (hasV1 ? 'hybrid' : 'v2') : 'v1'
  const bytes = infoBytes.slice()
  const infoHashV1 = hasV1 ? digest('sha1', bytes) : undefined
  const infoHashV2 = hasV2 ? digest('sha256', bytes) : undefined
  // BEP3 single-file mode: `length` instead of `files` (the name is then the file's name).
  const singleFile = hasV1 && !info.has('files') && info.has('length')
  const name = nameOf(info, singleFile, {
    ...(infoHashV1 ? { v1: infoHashV1 } : {}),
    ...(infoHashV2 ? { v2: infoHashV2 } : {}),
  })
  const pieceLength = pieceLengthOf(info, hasV2)

  const v1 = hasV1 ? v1Files(info, name, maxFiles) : undefined
  let v2: RawFile[] | undefined
  if (hasV2) {
    const tree = optDict(info, 'file tree', 'info.file tree')
    if (tree === undefined)
      fail('BT_ERR_METAINFO_MISSING_FIELD', 'info.file tree', 'missing (meta version 2)')
    v2 = v2Files(tree, maxFiles)
  }
  const placed: Placed[] =
    v1 && v2
      ? hybridLayout(v1, v2, pieceLength)
      : v2
        ? v2Layout(v2, pieceLength)
        : v1!.map((raw) => ({ raw, virtual: false }))
  const files = toEntries(placed, pieceLength)

  const last = files[files.length - 1]
  const totalLength = last === undefined ? 0 : last.offset + last.length
  const payloadLength = files.reduce((n, f) => (f.padding ? n : n + f.length), 0)
  if (payloadLength === 0) fail('BT_ERR_METAINFO_EMPTY', 'info', 'the torrent has no data')
  const pieceCount = Math.ceil(totalLength / pieceLength)
  const maxPieces = opts.maxPieces ?? DEFAULT_MAX_PIECES
  if (pieceCount > maxPieces) fail('BT_ERR_METAINFO_TOO_MANY_PIECES', 'info', `more than ${maxPieces} pieces`)

  let pieces: Uint8Array | undefined
  if (hasV1) {
    const p = reqBytes(info, 'pieces', 'info.pieces')
    // BEP3: one 20-byte SHA-1 per piece.
    if (p.byteLength !== pieceCount * SHA1_SIZE) {
      fail('BT_ERR_METAINFO_BAD_PIECES', 'info.pieces', `${p.byteLength} bytes for ${pieceCount} pieces`)
    }
    pieces = p.slice()
  }
  return {
    version,
    name,
    pieceLength,
    totalLength,
    payloadLength,
    pieceCount,
    files,
    ...(pieces ? { pieces } : {}),
    private: privateOf(info),
    ...(hasV2 ? { metaVersion: 2 } : {}),
    infoBytes: bytes,
    ...(infoHashV1 ? { infoHashV1 } : {}),
    ...(infoHashV2 ? { infoHashV2 } : {}),
  }
}

function digest(alg: 'sha1' | 'sha256', data: Uint8Array): Uint8Array {
  const d = createHash(alg).update(data).digest()
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
}

/**
 * Decoder options: our size, depth and token limits always; repeated keys keep the first value
 * (libtorrent loads such files); bytes after the value only for a whole `.torrent` file.
 */
function decodeOptions(maxBytes: number, opts: ParseOptions, allowTrailing: boolean): DecodeOptions {
  return {
    maxBytes,
    maxDepth: MAX_DEPTH,
    ...(opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}),
    duplicateKeys: 'first',
    allowTrailing,
  }
}

function decodeTop(bytes: Uint8Array, opts: ParseOptions, allowTrailing: boolean): BValue {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_TORRENT_BYTES
  if (!(bytes instanceof Uint8Array)) fail('BT_ERR_METAINFO_BENCODE', '', 'input is not bytes')
  if (bytes.byteLength > maxBytes)
    fail('BT_ERR_METAINFO_TOO_LARGE', '', `${bytes.byteLength} bytes exceeds ${maxBytes}`)
  try {
    return decodeBencode(bytes, decodeOptions(maxBytes, opts, allowTrailing)).value
  } catch (err) {
    if (err instanceof BencodeError) fail('BT_ERR_METAINFO_BENCODE', '', err.message, { cause: err })
    throw err
  }
}

/**
 * Parses a bencoded info dictionary on its own (BEP9: after `ut_metadata`, once its SHA-1 or
 * SHA-256 matched). `piece layers` live outside it, so they are not checked here. The bytes must
 * be exactly one dictionary (the info hash covers all of them).
 */
export function parseInfoDict(infoBytes: Uint8Array, opts: ParseOptions = {}): TorrentInfo {
  return parseInfoValue(decodeTop(infoBytes, opts, false), infoBytes, opts)
}

// ---------------------------------------------------------------------------------------------
// The whole .torrent. Outside `info`, values of the wrong type are ignored as if absent, as
// libtorrent does (`dict_find_string_value`, `dict_find_list`, `dict_find_int_value`).

/** A string outside `info`, or undefined when absent or not a string. */
function looseText(d: BDict, key: string): string | undefined {
  const v = d.get(key)
  return v instanceof Uint8Array ? bytesText(v) : undefined
}

/** `comment` / `created by`: the `.utf-8` variant when it is a non-empty string (libtorrent). */
function looseTextUtf8(d: BDict, key: string): string | undefined {
  const alt = looseText(d, `${key}.utf-8`)
  return alt !== undefined && alt !== '' ? alt : looseText(d, key)
}

/**
 * BEP12 `announce-list` tiers, else BEP3 `announce`. Tiers that are not lists and URLs that are
 * not strings are skipped; empty tiers and duplicate URLs are dropped; with no tier left (or no
 * usable list) the `announce` string is used — libtorrent's `parse_torrent_file` rules.
 */
function trackersOf(top: BDict): string[][] {
  const seen = new Set<string>()
  const tiers: string[][] = []
  const list = top.get('announce-list')
  if (Array.isArray(list)) {
    for (const tier of list) {
      if (!Array.isArray(tier)) continue
      const urls: string[] = []
      for (const u of tier) {
        const url = u instanceof Uint8Array ? bytesText(u).trim() : ''
        if (url === '' || seen.has(url)) continue
        seen.add(url)
        urls.push(url)
      }
      if (urls.length > 0) tiers.push(urls)
    }
  }
  if (tiers.length > 0) return tiers
  const announce = looseText(top, 'announce')?.trim()
  return announce ? [[announce]] : []
}

/** BEP19 `url-list`: one URL string or a list of them (other types and items ignored). */
function webSeedsOf(top: BDict): string[] {
  const v = top.get('url-list')
  const raw = v instanceof Uint8Array ? [v] : Array.isArray(v) ? v : []
  const urls: string[] = []
  for (const u of raw) {
    const url = u instanceof Uint8Array ? bytesText(u).trim() : ''
    if (url !== '' && !urls.includes(url)) urls.push(url)
  }
  return urls
}

/** `creation date`: a non-negative safe integer, else ignored (libtorrent ignores `cd < 0`). */
function creationDateOf(top: BDict): number | undefined {
  const v = top.get('creation date')
  return typeof v === 'number' && v >= 0 ? v : undefined
}

/**
 * BEP52 `piece layers`: the verified entries for files larger than a piece. A missing dictionary
 * or a missing entry is accepted (libtorrent 2.0.8 loads such files; the engine then asks peers
 * with BEP52 hash requests, as after a magnet link). An entry that IS present must be a string
 * that hashes up to the file's `pieces root`, else the torrent is refused.
 */
function pieceLayersOf(top: BDict, info: TorrentInfo): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>()
  if (info.version === 'v1') return out
  const layers = top.get('piece layers')
  if (!isDict(layers)) return out
  for (const f of info.files) {
    if (f.piecesRoot === undefined || f.length <= info.pieceLength) continue
    const hex = toHex(f.piecesRoot)
    if (out.has(hex)) continue // identical files share a root and a layer
    const field = `piece layers[${hex}]`
    const layer = layers.get(bytesToKey(f.piecesRoot))
    if (layer === undefined) continue
    if (!(layer instanceof Uint8Array)) wrongType(field, 'string', layer)
    if (verifyPieceLayer(f.piecesRoot, layer, f.length, info.pieceLength) !== 'ok') {
      fail('BT_ERR_METAINFO_BAD_PIECE_LAYER', field, 'hashes do not match the pieces root')
    }
    out.set(hex, layer.slice())
  }
  return out
}

/**
 * Parses and validates a whole `.torrent` file. Bytes after the top-level dictionary are ignored
 * (libtorrent loads such files); the info hash is over the exact bytes of the (first) `info`.
 */
export function parseTorrent(bytes: Uint8Array, opts: ParseOptions = {}): Metainfo {
  const top = decodeTop(bytes, opts, true)
  if (!isDict(top)) wrongType('', 'dictionary', top)
  const infoValue = top.get('info')
  if (infoValue === undefined) fail('BT_ERR_METAINFO_MISSING_FIELD', 'info', 'missing')
  // The decoder accepted the input, so the span exists; the hash is over these exact bytes.
  const span = dictSpan(bytes, 'info', decodeOptions(bytes.byteLength, opts, true))!
  const info = parseInfoValue(infoValue, bytes.subarray(span.start, span.end), opts)
  const comment = looseTextUtf8(top, 'comment')
  const createdBy = looseTextUtf8(top, 'created by')
  const creationDate = creationDateOf(top)
  return {
    info,
    announce: trackersOf(top),
    urlList: webSeedsOf(top),
    pieceLayers: pieceLayersOf(top, info),
    ...(comment !== undefined ? { comment } : {}),
    ...(createdBy !== undefined ? { createdBy } : {}),
    ...(creationDate !== undefined ? { creationDate } : {}),
  }
}

// ---------------------------------------------------------------------------------------------
// Swarm identifiers.

/** BEP52: the v2 info hash truncated to 20 bytes, as used on the wire, in trackers and the DHT. */
export function truncatedV2(infoHashV2: Uint8Array): Uint8Array {
  if (infoHashV2.byteLength !== HASH_SIZE) throw new RangeError('a v2 info hash is 32 bytes')
  return infoHashV2.slice(0, SHA1_SIZE)
}

/** The swarms a torrent takes part in: v1, v2 (truncated hash), or both for hybrids. */
export function swarmIds(info: TorrentInfo): SwarmId[] {
  const ids: SwarmId[] = []
  if (info.infoHashV1) ids.push({ protocol: 'v1', infoHash: info.infoHashV1 })
  if (info.infoHashV2) ids.push({ protocol: 'v2', infoHash: truncatedV2(info.infoHashV2) })
  return ids
}
