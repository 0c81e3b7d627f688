/**
 * The file list of an info dictionary (BEP3 `length` / `files`, BEP47 pad files and attributes,
 * BEP52 `file tree`), the torrent name, and their layout in the linear piece space (see
 * `FileEntry` in `types.ts`). Used by `metainfo.ts`; split from it for size. Pure: no I/O.
 *
 * Names and paths are sanitized like libtorrent does (`metainfo-paths.ts`) rather than rejected;
 * duplicate paths are renamed like libtorrent does. Everything else keeps the strict checks.
 */

import { type BDict, type BValue, bytesText, isDict, keyText, keyToBytes } from './bencode.ts'
import { MetainfoError, type MetainfoErrorCode } from './errors.ts'
import { toHex } from './hex.ts'
import {
  isSafeComponent,
  isValidUtf8,
  resolveDuplicatePaths,
  safeComponent,
  sanitizeElement,
  sanitizePath,
} from './metainfo-paths.ts'
import type { FileEntry } from './types.ts'

export const HASH_SIZE = 32

export function fail(code: MetainfoErrorCode, field: string, message: string, options?: ErrorOptions): never {
  throw new MetainfoError(code, field, message, options)
}

// ---------------------------------------------------------------------------------------------
// Typed field access (inside `info`: a wrong type is an error unless noted).

function typeName(v: BValue): string {
  if (v instanceof Uint8Array) return 'string'
  if (typeof v === 'number' || typeof v === 'bigint') return 'integer'
  return Array.isArray(v) ? 'list' : 'dictionary'
}

export function wrongType(field: string, want: string, v: BValue): never {
  fail('BT_ERR_METAINFO_WRONG_TYPE', field, `expected ${want}, got ${typeName(v)}`)
}

export function optBytes(d: BDict, key: string, field: string): Uint8Array | undefined {
  const v = d.get(key)
  if (v === undefined) return undefined
  return v instanceof Uint8Array ? v : wrongType(field, 'string', v)
}

export function reqBytes(d: BDict, key: string, field: string): Uint8Array {
  return optBytes(d, key, field) ?? fail('BT_ERR_METAINFO_MISSING_FIELD', field, 'missing')
}

export function optInt(d: BDict, key: string, field: string): number | bigint | undefined {
  const v = d.get(key)
  if (v === undefined) return undefined
  return typeof v === 'number' || typeof v === 'bigint' ? v : wrongType(field, 'integer', v)
}

export function optList(d: BDict, key: string, field: string): BValue[] | undefined {
  const v = d.get(key)
  if (v === undefined) return undefined
  return Array.isArray(v) ? v : wrongType(field, 'list', v)
}

export function optDict(d: BDict, key: string, field: string): BDict | undefined {
  const v = d.get(key)
  if (v === undefined) return undefined
  return isDict(v) ? v : wrongType(field, 'dictionary', v)
}

// ---------------------------------------------------------------------------------------------
// Names and path lists.

/**
 * An error field name, or a function building it: v2 file-tree names are O(depth), so they are
 * only built when an error needs them.
 */
type Field = string | (() => string)

const fieldText = (f: Field): string => (typeof f === 'string' ? f : f())

/** A list of byte strings (a BEP3 `path`); anything else in it is an error, as in libtorrent. */
function bytesList(v: BValue[], field: Field): Uint8Array[] {
  return v.map((c, i) => (c instanceof Uint8Array ? c : wrongType(`${fieldText(field)}[${i}]`, 'string', c)))
}

/**
 * BEP47 `symlink path`: kept strict. A target component that is empty, `.`, `..` or holds `/` or
 * NUL is refused (a link must not point outside the torrent; libtorrent instead rewrites such
 * links to point at themselves).
 */
function symlinkTarget(v: BValue[], field: Field): string[] {
  if (v.length === 0) fail('BT_ERR_METAINFO_BAD_PATH', fieldText(field), 'empty path')
  return bytesList(v, field).map((c, i) => {
    const s = bytesText(c)
    if (s === '' || s === '.' || s === '..' || s.includes('/') || s.includes('\0'))
      fail('BT_ERR_METAINFO_BAD_PATH', `${fieldText(field)}[${i}]`, `invalid symlink target component '${s}'`)
    return s
  })
}

/**
 * The `<key>.utf-8` variant of a string field when it is a string of valid UTF-8, else the field
 * itself (libtorrent prefers `name.utf-8` whenever it is a string; we also require it to decode).
 */
function preferUtf8(d: BDict, key: string, field: string): Uint8Array | undefined {
  const alt = d.get(`${key}.utf-8`)
  if (alt instanceof Uint8Array && isValidUtf8(alt)) return alt
  return optBytes(d, key, field)
}

/** Info hashes, for the fallback name of a multi-file torrent whose name sanitizes to nothing. */
export interface NameHashes {
  readonly v1?: Uint8Array
  readonly v2?: Uint8Array
}

/**
 * The torrent name (`name.utf-8` preferred), sanitized like libtorrent. A single-file torrent's
 * name is its file name: empty, or nothing left after sanitizing (`..`), is refused, as libtorrent
 * does. A multi-file (or v2) torrent's name is a directory: nothing left falls back to the hex info
 * hash (v1 if present), an empty name becomes `_` — both as libtorrent does.
 */
export function nameOf(info: BDict, singleFile: boolean, hashes: NameHashes): string {
  const raw = preferUtf8(info, 'name', 'info.name')
  if (raw === undefined) fail('BT_ERR_METAINFO_MISSING_FIELD', 'info.name', 'missing')
  if (singleFile && raw.byteLength === 0) fail('BT_ERR_METAINFO_BAD_NAME', 'info.name', 'empty name')
  const name = sanitizeElement(raw)
  if (name !== undefined) return name
  if (singleFile) fail('BT_ERR_METAINFO_BAD_NAME', 'info.name', 'nothing left of the name after sanitizing')
  const h = hashes.v1 ?? hashes.v2
  if (h === undefined) fail('BT_ERR_METAINFO_BAD_NAME', 'info.name', 'unusable name')
  return toHex(h)
}

// ---------------------------------------------------------------------------------------------
// File lists.

/** A file as described by one half of the info dict, before layout. */
export interface RawFile {
  readonly path: readonly string[]
  readonly length: number
  readonly attr: string
  readonly symlinkPath?: readonly string[]
  readonly padding: boolean
  readonly piecesRoot?: Uint8Array
}

/**
 * BEP47 `attr` and `symlink path` of a file dict (v1 list entry, single-file info, or v2 '').
 * An `attr` that is not a string is ignored, as libtorrent does (`dict_find_string`).
 */
function attrsOf(d: BDict, field: Field): { attr: string; symlinkPath?: string[] } {
  const attrBytes = d.get('attr')
  const attr = attrBytes instanceof Uint8Array ? bytesText(attrBytes) : ''
  if (!attr.includes('l')) return { attr }
  const linkField = (): string => `${fieldText(field)}.symlink path`
  const target = d.get('symlink path')
  if (target === undefined) fail('BT_ERR_METAINFO_MISSING_FIELD', linkField(), 'symlink without a target')
  if (!Array.isArray(target)) wrongType(linkField(), 'list', target)
  return { attr, symlinkPath: symlinkTarget(target, linkField) }
}

/** BEP47: symlinks have length 0 (it may be omitted); anything else must state its length. */
function fileLength(d: BDict, attr: string, field: Field): number {
  const raw = d.get('length')
  const lengthField = (): string => `${fieldText(field)}.length`
  if (raw !== undefined && typeof raw !== 'number' && typeof raw !== 'bigint')
    wrongType(lengthField(), 'integer', raw)
  if (attr.includes('l')) {
    if (raw !== undefined && raw !== 0)
      fail('BT_ERR_METAINFO_BAD_LENGTH', lengthField(), 'a symlink has length 0')
    return 0
  }
  if (raw === undefined) fail('BT_ERR_METAINFO_MISSING_FIELD', lengthField(), 'missing')
  if (typeof raw !== 'number' || raw < 0)
    fail('BT_ERR_METAINFO_BAD_LENGTH', lengthField(), `invalid length ${raw}`)
  return raw
}

/** BitComet's pad files (libtorrent: any path containing this is a pad file). */
const BITCOMET_PAD = '_____padding_file_'

/**
 * A v1 file's path: `path.utf-8` when it is a non-empty list of valid UTF-8 strings (libtorrent
 * prefers it), else `path`; sanitized. An empty `path` is refused (libtorrent: missing name).
 */
function v1Path(f: BDict, field: string): string[] | undefined {
  const alt = f.get('path.utf-8')
  if (Array.isArray(alt) && alt.length > 0 && alt.every((c) => c instanceof Uint8Array && isValidUtf8(c)))
    return sanitizePath(alt as Uint8Array[], `${field}.path.utf-8`)
  const p = optList(f, 'path', `${field}.path`)
  if (p === undefined) return undefined
  if (p.length === 0) fail('BT_ERR_METAINFO_BAD_PATH', `${field}.path`, 'empty path')
  return sanitizePath(bytesList(p, `${field}.path`), `${field}.path`)
}

/** BEP3 `length` (single file) or `files` (multi-file) with BEP47 pad files and attributes. */
export function v1Files(info: BDict, name: string, maxFiles: number): RawFile[] {
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
    const p = v1Path(f, field)
    const bep47Pad = a.attr.includes('p')
    // BEP47: pad files need not carry a path; the recommended one is .pad/<length>.
    if (p === undefined && !bep47Pad) fail('BT_ERR_METAINFO_MISSING_FIELD', `${field}.path`, 'missing')
    const path = p ?? ['.pad', String(length)]
    const padding = bep47Pad || path.some((c) => c.includes(BITCOMET_PAD))
    return { path, length, ...a, padding }
  })
}

/**
 * BEP52 `file tree`: nested dictionaries keyed by path component; a key '' holds the properties of
 * the file at that path and must have no siblings; the root itself is not a file. Files come out
 * in tree order (keys sorted as raw bytes), which is the v2 piece-space order. Keys are sanitized
 * like v1 path elements (BEP52: "'.' and '..' must be sanitized"): a key with nothing left is
 * skipped as a directory level, and a file with no component left is named `_`.
 */
export function v2Files(tree: BDict, maxFiles: number): RawFile[] {
  if (tree.has('')) fail('BT_ERR_METAINFO_BAD_FILE_TREE', 'info.file tree', 'the root must not be a file')
  const out: RawFile[] = []
  // Explicit stack, children pushed in reverse so files pop in sorted order. Depth is bounded by
  // the decoder's nesting limit and the loop by the number of dictionaries in the input. Each
  // entry links to its parent, so neither its path nor its error field name (both O(depth)) is
  // built unless needed: paths for files only, field names for errors only.
  const stack: TreeEntry[] = [{ node: tree }]
  while (stack.length > 0) {
    const entry = stack.pop()!
    const { node } = entry
    const props = node.get('')
    if (entry.parent !== undefined && props !== undefined) {
      if (node.size !== 1)
        fail('BT_ERR_METAINFO_BAD_FILE_TREE', fieldOf(entry), "a file ('' key) must have no siblings")
      if (!isDict(props)) wrongType(`${fieldOf(entry)}/''`, 'dictionary', props)
      const path = pathOf(entry)
      out.push(v2File(props, path.length > 0 ? path : ['_'], () => `${fieldOf(entry)}/''`))
      if (out.length > maxFiles)
        fail('BT_ERR_METAINFO_TOO_MANY_FILES', 'info.file tree', `more than ${maxFiles} files`)
      continue
    }
    const keys = [...node.keys()].sort()
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!
      const child = node.get(key)!
      const name = sanitizeElement(keyToBytes(key))
      const childEntry: TreeEntry = { node: child as BDict, parent: entry, key, ...(name ? { name } : {}) }
      if (!isDict(child)) wrongType(fieldOf(childEntry), 'dictionary', child)
      if (name !== undefined && !isSafeComponent(name)) safeComponent(name, fieldOf(childEntry))
      stack.push(childEntry)
    }
  }
  if (out.length === 0) fail('BT_ERR_METAINFO_EMPTY', 'info.file tree', 'no files')
  return out
}

/** A `file tree` node being walked: its dictionary, parent, raw key and sanitized name. */
interface TreeEntry {
  readonly node: BDict
  readonly parent?: TreeEntry
  /** The raw key (binary string) under the parent. */
  readonly key?: string
  /** The sanitized component; absent when the key sanitizes to nothing (`.`, `..`). */
  readonly name?: string
}

/** The sanitized path of a tree entry (dropped keys skipped). */
function pathOf(entry: TreeEntry): string[] {
  const out: string[] = []
  for (let e: TreeEntry | undefined = entry; e?.parent !== undefined; e = e.parent)
    if (e.name !== undefined) out.push(e.name)
  return out.reverse()
}

/** The error field name of a tree entry: `info.file tree/<key>/...`, keys cut to 64 characters. */
function fieldOf(entry: TreeEntry): string {
  const keys: string[] = []
  for (let e: TreeEntry | undefined = entry; e?.key !== undefined; e = e.parent)
    keys.push(keyText(e.key).slice(0, 64))
  return ['info.file tree', ...keys.reverse()].join('/')
}

function v2File(props: BDict, path: string[], field: () => string): RawFile {
  const a = attrsOf(props, field)
  if (a.attr.includes('p'))
    fail('BT_ERR_METAINFO_BAD_FILE_TREE', field(), 'pad files do not belong in a file tree')
  const length = fileLength(props, a.attr, field)
  if (length === 0) return { path, length, ...a, padding: false } // BEP52: empty files have no root
  const root = props.get('pieces root')
  if (root === undefined)
    fail('BT_ERR_METAINFO_BAD_PIECES_ROOT', `${field()}.pieces root`, 'missing for a non-empty file')
  if (!(root instanceof Uint8Array)) wrongType(`${field()}.pieces root`, 'string', root)
  if (root.byteLength !== HASH_SIZE) {
    fail(
      'BT_ERR_METAINFO_BAD_PIECES_ROOT',
      `${field()}.pieces root`,
      `must be 32 bytes, got ${root.byteLength}`,
    )
  }
  return { path, length, ...a, padding: false, piecesRoot: root.slice() }
}

// ---------------------------------------------------------------------------------------------
// Layout: the linear piece space (see FileEntry in types.ts).

export interface Placed {
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
export function v2Layout(files: readonly RawFile[], pieceLength: number): Placed[] {
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
 * order with the same (sanitized) paths and lengths, and BEP47 pad files must align every
 * non-empty file to a piece boundary, so both halves have the same pieces. A pad after the last
 * file is optional (libtorrent 2.0.4+ writes one, older versions and other creators do not).
 */
export function hybridLayout(v1: readonly RawFile[], v2: readonly RawFile[], pieceLength: number): Placed[] {
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

/**
 * The entries of the linear piece space, with duplicate paths renamed like libtorrent does
 * (`a.bin`, `a.1.bin`, ...; a file that clashes with a directory is the one renamed).
 */
export function toEntries(placed: readonly Placed[], pieceLength: number): FileEntry[] {
  const paths = resolveDuplicatePaths(placed.map((p) => p.raw))
  let offset = 0
  return placed.map(({ raw, virtual }, i) => {
    const firstPiece = Math.floor(offset / pieceLength)
    const end = offset + raw.length
    const e: FileEntry = {
      path: paths[i]!,
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
