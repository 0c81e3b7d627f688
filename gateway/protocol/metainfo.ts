/**
 * `.torrent` (metainfo) and info-dictionary parsing and validation for v1 (BEP3), v2 (BEP52) and
 * hybrid torrents, with BEP12 tracker tiers, BEP19 web seeds, BEP27 `private` and BEP47 pad
 * files / attributes. Produces the immutable {@link Metainfo} / {@link TorrentInfo} of `types.ts`.
 *
 * Everything from the outside is hostile until checked: every rule failure throws a
 * {@link MetainfoError} naming the field. Info hashes are computed over the info dictionary bytes
 * exactly as found (BEP3/BEP52 "infohash"), never over a re-encoding. Pure: no I/O.
 */

import { createHash } from 'node:crypto'
import {
  type BDict,
  type BValue,
  bytesText,
  bytesToKey,
  decodeBencode,
  dictSpan,
  isDict,
  keyText,
} from './bencode.ts'
import { BencodeError, MetainfoError, type MetainfoErrorCode } from './errors.ts'
import { toHex } from './hex.ts'
import { verifyPieceLayer } from './merkle.ts'
import type { FileEntry, Metainfo, SwarmId, TorrentInfo, TorrentVersion } from './types.ts'
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
const HASH_SIZE = 32

function fail(code: MetainfoErrorCode, field: string, message: string, options?: ErrorOptions): never {
  throw new MetainfoError(code, field, message, options)
}

// ---------------------------------------------------------------------------------------------
// Typed field access.

function typeName(v: BValue): string {
  if (v instanceof Uint8Array) return 'string'
  if (typeof v === 'number' || typeof v === 'bigint') return 'integer'
  return Array.isArray(v) ? 'list' : 'dictionary'
}

function wrongType(field: string, want: string, v: BValue): never {
  fail('BT_ERR_METAINFO_WRONG_TYPE', field, `expected ${want}, got ${typeName(v)}`)
}

function optBytes(d: BDict, key: string, field: string): Uint8Array | undefined {
  const v = d.get(key)
  if (v === undefined) return undefined
  return v instanceof Uint8Array ? v : wrongType(field, 'string', v)
}

function reqBytes(d: BDict, key: string, field: string): Uint8Array {
  return optBytes(d, key, field) ?? fail('BT_ERR_METAINFO_MISSING_FIELD', field, 'missing')
}

function optText(d: BDict, key: string, field: string): string | undefined {
  const b = optBytes(d, key, field)
  return b === undefined ? undefined : bytesText(b)
}

function optInt(d: BDict, key: string, field: string): number | bigint | undefined {
  const v = d.get(key)
  if (v === undefined) return undefined
  return typeof v === 'number' || typeof v === 'bigint' ? v : wrongType(field, 'integer', v)
}

function optList(d: BDict, key: string, field: string): BValue[] | undefined {
  const v = d.get(key)
  if (v === undefined) return undefined
  return Array.isArray(v) ? v : wrongType(field, 'list', v)
}

function optDict(d: BDict, key: string, field: string): BDict | undefined {
  const v = d.get(key)
  if (v === undefined) return undefined
  return isDict(v) ? v : wrongType(field, 'dictionary', v)
}

/** A file length: a non-negative safe integer. */
function lengthOf(v: number | bigint | undefined, field: string): number {
  if (v === undefined) fail('BT_ERR_METAINFO_MISSING_FIELD', field, 'missing')
  if (typeof v !== 'number' || v < 0) fail('BT_ERR_METAINFO_BAD_LENGTH', field, `invalid length ${v}`)
  return v
}

// ---------------------------------------------------------------------------------------------
// Paths (BEP3 `path`, BEP47 `symlink path`, BEP52 `file tree` keys).

/**
 * One path component, decoded as UTF-8 (invalid sequences become U+FFFD). Rejected, because they
 * could escape the torrent directory or alias other paths: empty, `.`, `..`, or containing `/`
 * or NUL (BEP52 `file tree`: "'.' and '..' must be sanitized"). Names that are only reserved on
 * other platforms (`CON`, trailing dots, `\`) are kept as they are: storage backends own naming.
 */
function component(raw: Uint8Array | string, field: string): string {
  const s = typeof raw === 'string' ? raw : bytesText(raw)
  if (s === '' || s === '.' || s === '..')
    fail('BT_ERR_METAINFO_BAD_PATH', field, `invalid path component '${s}'`)
  if (s.includes('/') || s.includes('\0'))
    fail('BT_ERR_METAINFO_BAD_PATH', field, 'path component contains / or NUL')
  return s
}

/** A BEP3 path list: non-empty, each element a valid component. */
function pathList(v: BValue[], field: string): string[] {
  if (v.length === 0) fail('BT_ERR_METAINFO_BAD_PATH', field, 'empty path')
  return v.map((c, i) =>
    c instanceof Uint8Array ? component(c, `${field}[${i}]`) : wrongType(`${field}[${i}]`, 'string', c),
  )
}

function nameOf(info: BDict): string {
  const raw = reqBytes(info, 'name', 'info.name')
  try {
    return component(raw, 'info.name')
  } catch (err) {
    if (err instanceof MetainfoError) fail('BT_ERR_METAINFO_BAD_NAME', 'info.name', 'empty or unsafe name')
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// File lists.

/** A file as described by one half of the info dict, before layout. */
interface RawFile {
  readonly path: readonly string[]
  readonly length: number
  readonly attr: string
  readonly symlinkPath?: readonly string[]
  readonly padding: boolean
  readonly piecesRoot?: Uint8Array
}

/** BEP47 `attr` and `symlink path` of a file dict (v1 list entry, single-file info, or v2 ''). */
function attrsOf(d: BDict, field: string): { attr: string; symlinkPath?: string[] } {
  const attrBytes = optBytes(d, 'attr', `${field}.attr`)
  const attr = attrBytes === undefined ? '' : bytesText(attrBytes)
  if (!attr.includes('l')) return { attr }
  const target = optList(d, 'symlink path', `${field}.symlink path`)
  if (target === undefined)
    fail('BT_ERR_METAINFO_MISSING_FIELD', `${field}.symlink path`, 'symlink without a target')
  return { attr, symlinkPath: pathList(target, `${field}.symlink path`) }
}

/** BEP47: symlinks have length 0 (it may be omitted); anything else must state its length. */
function fileLength(d: BDict, attr: string, field: string): number {
  const raw = optInt(d, 'length', `${field}.length`)
  if (attr.includes('l')) {
    if (raw !== undefined && raw !== 0)
      fail('BT_ERR_METAINFO_BAD_LENGTH', `${field}.length`, 'a symlink has length 0')
    return 0
  }
  return lengthOf(raw, `${field}.length`)
}

/** BEP3 `length` (single file) or `files` (multi-file) with BEP47 pad files and attributes. */
function v1Files(info: BDict, name: string, maxFiles: number): RawFile[] {
  const files = optList(info, 'files', 'info.files')
  if (info.has('length') && files !== undefined) {
    fail(
      'BT_ERR_METAINFO_CONFLICTING_FIELDS',
      'info.files',
      "both 'length' and 'files' (BEP3: one or the other)",
    )
  }
  if (!info.has('length') && files === undefined) {
    fail('BT_ERR_METAINFO_MISSING_FIELD', 'info.length', "neither 'length' nor 'files' (BEP3)")
  }
  if (files === undefined) {
    const a = attrsOf(info, 'info')
    return [{ path: [name], length: fileLength(info, a.attr, 'info'), ...a, padding: a.attr.includes('p') }]
  }
  if (files.length === 0) fail('BT_ERR_METAINFO_EMPTY', 'info.files', 'empty file list')
  if (files.length > maxFiles)
    fail('BT_ERR_METAINFO_TOO_MANY_FILES', 'info.files', `more than ${maxFiles} files`)
  return files.map((f, i): RawFile => {
    const field = `info.files[${i}]`
    if (!isDict(f)) wrongType(field, 'dictionary', f)
    const a = attrsOf(f, field)
    const length = fileLength(f, a.attr, field)
    const padding = a.attr.includes('p')
    const p = optList(f, 'path', `${field}.path`)
    // BEP47: pad files need not carry a path; the recommended one is .pad/<length>.
    if (p === undefined && !padding) fail('BT_ERR_METAINFO_MISSING_FIELD', `${field}.path`, 'missing')
    const path = p === undefined ? ['.pad', String(length)] : pathList(p, `${field}.path`)
    return { path, length, ...a, padding }
  })
}

/**
 * BEP52 `file tree`: nested dictionaries keyed by path component; a key '' holds the properties of
 * the file at that path and must have no siblings; the root itself is not a file. Files come out
 * in tree order (keys sorted as raw bytes), which is the v2 piece-space order.
 */
function v2Files(tree: BDict, maxFiles: number): RawFile[] {
  if (tree.has('')) fail('BT_ERR_METAINFO_BAD_FILE_TREE', 'info.file tree', 'the root must not be a file')
  const out: RawFile[] = []
  // Explicit stack, children pushed in reverse so files pop in sorted order. Depth is bounded by
  // the decoder's nesting limit and the loop by the number of dictionaries in the input.
  const stack: { node: BDict; path: string[] }[] = [{ node: tree, path: [] }]
  while (stack.length > 0) {
    const { node, path } = stack.pop()!
    const field = `info.file tree${path.map((c) => `/${c}`).join('')}`
    const props = node.get('')
    if (path.length > 0 && props !== undefined) {
      if (node.size !== 1)
        fail('BT_ERR_METAINFO_BAD_FILE_TREE', field, "a file ('' key) must have no siblings")
      if (!isDict(props)) wrongType(`${field}/''`, 'dictionary', props)
      out.push(v2File(props, path, `${field}/''`))
      if (out.length > maxFiles)
        fail('BT_ERR_METAINFO_TOO_MANY_FILES', 'info.file tree', `more than ${maxFiles} files`)
      continue
    }
    const keys = [...node.keys()].sort()
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!
      const child = node.get(key)!
      const text = keyText(key)
      const name = component(text, `${field}/${text.slice(0, 64)}`)
      if (!isDict(child)) wrongType(`${field}/${name}`, 'dictionary', child)
      stack.push({ node: child, path: [...path, name] })
    }
  }
  if (out.length === 0) fail('BT_ERR_METAINFO_EMPTY', 'info.file tree', 'no files')
  return out
}

function v2File(props: BDict, path: string[], field: string): RawFile {
  const a = attrsOf(props, field)
  if (a.attr.includes('p'))
    fail('BT_ERR_METAINFO_BAD_FILE_TREE', field, 'pad files do not belong in a file tree')
  const length = fileLength(props, a.attr, field)
  if (length === 0) return { path, length, ...a, padding: false } // BEP52: empty files have no root
  const root = optBytes(props, 'pieces root', `${field}.pieces root`)
  if (root === undefined)
    fail('BT_ERR_METAINFO_BAD_PIECES_ROOT', `${field}.pieces root`, 'missing for a non-empty file')
  if (root.byteLength !== HASH_SIZE) {
    fail(
      'BT_ERR_METAINFO_BAD_PIECES_ROOT',
      `${field}.pieces root`,
      `must be 32 bytes, got ${root.byteLength}`,
    )
  }
  return { path, length, ...a, padding: false, piecesRoot: root.slice() }
}

// ---------------------------------------------------------------------------------------------
// Layout: the linear piece space (see FileEntry in types.ts).

interface Placed {
  readonly raw: RawFile
  readonly virtual: boolean
}

function padRaw(length: number): RawFile {
  return { path: ['.pad', String(length)], length, attr: 'p', padding: true }
}

/**
 * v2-only: every non-empty file starts on a piece boundary (BEP52 `piece length`). Like libtorrent,
 * a virtual pad follows each non-empty file whose length is not a multiple of the piece length
 * (the last one included), so the v2 piece count is ceil(total / piece length).
 */
function v2Layout(files: readonly RawFile[], pieceLength: number): Placed[] {
  const out: Placed[] = []
  for (const f of files) {
    out.push({ raw: f, virtual: false })
    const rem = f.length % pieceLength
    if (rem !== 0) out.push({ raw: padRaw(pieceLength - rem), virtual: true })
  }
  return out
}

function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i])
}

/**
 * Hybrid (BEP52 "Upgrade Path"): the v1 list, pad files aside, must list the v2 files in the same
 * order with the same lengths, and BEP47 pad files must align every non-empty file to a piece
 * boundary, so both halves have the same pieces. A pad after the last file is optional (libtorrent
 * 2.0.4+ writes one, older versions and other creators do not).
 */
function hybridLayout(v1: readonly RawFile[], v2: readonly RawFile[], pieceLength: number): Placed[] {
  const out: Placed[] = []
  let j = 0
  let offset = 0
  for (let i = 0; i < v1.length; i++) {
    const f = v1[i]!
    const field = `info.files[${i}]`
    if (f.padding) {
      out.push({ raw: f, virtual: false })
      offset += f.length
      continue
    }
    const g = v2[j++]
    if (g === undefined) fail('BT_ERR_METAINFO_HYBRID_MISMATCH', field, 'file is not in the v2 file tree')
    if (!samePath(f.path, g.path) || f.length !== g.length) {
      fail(
        'BT_ERR_METAINFO_HYBRID_MISMATCH',
        field,
        `'${f.path.join('/')}' differs from v2 file '${g.path.join('/')}'`,
      )
    }
    if (f.length > 0 && offset % pieceLength !== 0) {
      fail(
        'BT_ERR_METAINFO_HYBRID_MISMATCH',
        field,
        'file is not aligned to a piece boundary (missing pad file)',
      )
    }
    out.push({ raw: { ...f, ...(g.piecesRoot ? { piecesRoot: g.piecesRoot } : {}) }, virtual: false })
    offset += f.length
  }
  if (j !== v2.length) fail('BT_ERR_METAINFO_HYBRID_MISMATCH', 'info.files', 'v2 file tree has more files')
  const v2Pieces = v2.reduce((n, f) => n + Math.ceil(f.length / pieceLength), 0)
  if (Math.ceil(offset / pieceLength) !== v2Pieces) {
    fail('BT_ERR_METAINFO_HYBRID_MISMATCH', 'info.files', 'pad files make the v1 piece count differ from v2')
  }
  return out
}

function toEntries(placed: readonly Placed[], pieceLength: number): FileEntry[] {
  let offset = 0
  return placed.map(({ raw, virtual }) => {
    const firstPiece = Math.floor(offset / pieceLength)
    const end = offset + raw.length
    const e: FileEntry = {
      path: raw.path,
      length: raw.length,
      offset,
      padding: raw.padding,
      virtual,
      attr: raw.attr,
      ...(raw.symlinkPath ? { symlinkPath: raw.symlinkPath } : {}),
      ...(raw.piecesRoot && !raw.padding ? { piecesRoot: raw.piecesRoot } : {}),
      firstPiece,
      pieceCount: raw.length === 0 ? 0 : Math.ceil(end / pieceLength) - firstPiece,
    }
    offset = end
    if (!Number.isSafeInteger(offset)) fail('BT_ERR_METAINFO_BAD_LENGTH', 'info', 'total length too large')
    return e
  })
}

/** Two real files with the same path, or a file that is also another file's directory. */
function checkDuplicates(entries: readonly FileEntry[]): void {
  const files = new Set<string>()
  const dirs = new Set<string>()
  for (const e of entries) {
    if (e.padding) continue
    const p = e.path.join('/')
    if (files.has(p) || dirs.has(p)) fail('BT_ERR_METAINFO_DUPLICATE_PATH', 'info', `duplicate path '${p}'`)
    files.add(p)
    for (let k = 1; k < e.path.length; k++) {
      const d = e.path.slice(0, k).join('/')
      if (files.has(d))
        fail('BT_ERR_METAINFO_DUPLICATE_PATH', 'info', `'${d}' is both a file and a directory`)
      dirs.add(d)
    }
  }
}

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
  const name = nameOf(info)
  const pieceLength = pieceLengthOf(info, hasV2)
  const privRaw = optInt(info, 'private', 'info.private')

  const v1 = hasV1 ? v1Files(info, name, maxFiles) : undefined
  let v2: RawFile[] | undefined
  if (hasV2) {
    const tree = optDict(info, 'file tree', 'info.file tree')
    if (tree === undefined)
      fail('BT_ERR_METAINFO_MISSING_FIELD', 'info.file tree', 'missing (meta version 2)')
    v2 = v2Files(tree, maxFiles)
  }
  const placed =
    v1 && v2
      ? hybridLayout(v1, v2, pieceLength)
      : v2
        ? v2Layout(v2, pieceLength)
        : v1!.map((raw) => ({ raw, virtual: false }))
  const files = toEntries(placed, pieceLength)
  checkDuplicates(files)

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
  const bytes = infoBytes.slice()
  return {
    version,
    name,
    pieceLength,
    totalLength,
    payloadLength,
    pieceCount,
    files,
    ...(pieces ? { pieces } : {}),
    private: privRaw !== undefined && privRaw !== 0, // BEP27 private=1
    ...(hasV2 ? { metaVersion: 2 } : {}),
    infoBytes: bytes,
    ...(hasV1 ? { infoHashV1: digest('sha1', bytes) } : {}),
    ...(hasV2 ? { infoHashV2: digest('sha256', bytes) } : {}),
  }
}

function digest(alg: 'sha1' | 'sha256', data: Uint8Array): Uint8Array {
  const d = createHash(alg).update(data).digest()
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
}

function tokens(opts: ParseOptions): { maxTokens?: number } {
  return opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}
}

function decodeTop(bytes: Uint8Array, opts: ParseOptions): BValue {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_TORRENT_BYTES
  if (!(bytes instanceof Uint8Array)) fail('BT_ERR_METAINFO_BENCODE', '', 'input is not bytes')
  if (bytes.byteLength > maxBytes)
    fail('BT_ERR_METAINFO_TOO_LARGE', '', `${bytes.byteLength} bytes exceeds ${maxBytes}`)
  try {
    return decodeBencode(bytes, { maxBytes, maxDepth: MAX_DEPTH, ...tokens(opts) }).value
  } catch (err) {
    if (err instanceof BencodeError) fail('BT_ERR_METAINFO_BENCODE', '', err.message, { cause: err })
    throw err
  }
}

/**
 * Parses a bencoded info dictionary on its own (BEP9: after `ut_metadata`, once its SHA-1 or
 * SHA-256 matched). `piece layers` live outside it, so they are not checked here.
 */
export function parseInfoDict(infoBytes: Uint8Array, opts: ParseOptions = {}): TorrentInfo {
  return parseInfoValue(decodeTop(infoBytes, opts), infoBytes, opts)
}

// ---------------------------------------------------------------------------------------------
// The whole .torrent.

function urlText(v: BValue, field: string): string {
  return v instanceof Uint8Array ? bytesText(v).trim() : wrongType(field, 'string', v)
}

/** BEP12 `announce-list` tiers (empty tiers and duplicate URLs dropped), else BEP3 `announce`. */
function trackersOf(top: BDict): string[][] {
  const seen = new Set<string>()
  const tiers: string[][] = []
  const list = optList(top, 'announce-list', 'announce-list')
  list?.forEach((tier, t) => {
    if (!Array.isArray(tier)) wrongType(`announce-list[${t}]`, 'list', tier)
    const urls = tier
      .map((u, i) => urlText(u, `announce-list[${t}][${i}]`))
      .filter((u) => u !== '' && !seen.has(u) && seen.add(u))
    if (urls.length > 0) tiers.push(urls)
  })
  if (tiers.length > 0) return tiers
  const announce = optText(top, 'announce', 'announce')?.trim()
  return announce ? [[announce]] : []
}

/** BEP19 `url-list`: one URL string or a list of them. */
function webSeedsOf(top: BDict): string[] {
  const v = top.get('url-list')
  if (v === undefined) return []
  const raw =
    v instanceof Uint8Array ? [v] : Array.isArray(v) ? v : wrongType('url-list', 'string or list', v)
  const urls = raw.map((u, i) => urlText(u, `url-list[${i}]`)).filter((u) => u !== '')
  return [...new Set(urls)]
}

/** BEP52 `piece layers`: one verified entry per file larger than a piece. */
function pieceLayersOf(top: BDict, info: TorrentInfo): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>()
  if (info.version === 'v1') return out
  const layers = optDict(top, 'piece layers', 'piece layers')
  for (const f of info.files) {
    if (f.piecesRoot === undefined || f.length <= info.pieceLength) continue
    const hex = toHex(f.piecesRoot)
    if (out.has(hex)) continue // identical files share a root and a layer
    const field = `piece layers[${hex}]`
    const layer = layers?.get(bytesToKey(f.piecesRoot))
    if (layer === undefined)
      fail('BT_ERR_METAINFO_MISSING_PIECE_LAYER', field, `missing for '${f.path.join('/')}'`)
    if (!(layer instanceof Uint8Array)) wrongType(field, 'string', layer)
    if (verifyPieceLayer(f.piecesRoot, layer, f.length, info.pieceLength) !== 'ok') {
      fail('BT_ERR_METAINFO_BAD_PIECE_LAYER', field, 'hashes do not match the pieces root')
    }
    out.set(hex, layer.slice())
  }
  return out
}

/** Parses and validates a whole `.torrent` file. */
export function parseTorrent(bytes: Uint8Array, opts: ParseOptions = {}): Metainfo {
  const top = decodeTop(bytes, opts)
  if (!isDict(top)) wrongType('', 'dictionary', top)
  const infoValue = top.get('info')
  if (infoValue === undefined) fail('BT_ERR_METAINFO_MISSING_FIELD', 'info', 'missing')
  // The decoder accepted the input, so the span exists; the hash is over these exact bytes.
  const span = dictSpan(bytes, 'info', { maxBytes: bytes.byteLength, maxDepth: MAX_DEPTH, ...tokens(opts) })!
  const info = parseInfoValue(infoValue, bytes.subarray(span.start, span.end), opts)
  const creationDate = optInt(top, 'creation date', 'creation date')
  if (creationDate !== undefined && typeof creationDate !== 'number') {
    fail('BT_ERR_METAINFO_WRONG_TYPE', 'creation date', 'out of range')
  }
  const comment = optText(top, 'comment', 'comment')
  const createdBy = optText(top, 'created by', 'created by')
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
