/**
 * Torrent creation: v1 (BEP3), v2 (BEP52) and hybrid (default) `.torrent` files from file data
 * supplied as streams, hashed incrementally (SHA-1 per piece across files, a BEP52 Merkle tree
 * per file); never holds a whole file. The output is canonical bencode and is re-parsed with
 * `parseTorrent` before it is returned, so what we write is what we accept.
 *
 * Layout rules: files are sorted the way a BEP52 `file tree` orders them (path components as raw
 * UTF-8 bytes); hybrid torrents get BEP47 pad files (`attr` `p`, path `.pad/<N>`, as libtorrent
 * writes them) between files so every non-empty file starts on a piece boundary, and none after
 * the last file. `createTorrentFromPath` (CLI) walks a file or directory (sorted, symlinks and
 * special files skipped, never followed).
 */

import { createReadStream } from 'node:fs'
import { lstat, readdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { Readable } from 'node:stream'
import { type BEncodable, bytesToKey, encodeBencode, textKey } from './bencode.ts'
import { CreateTorrentError, ProtocolError } from './errors.ts'
import { V1PieceHasher, V2FileHasher } from './hashers.ts'
import { parseTorrent } from './metainfo.ts'
import type { AbortOptions, Metainfo, TorrentVersion } from './types.ts'
import { BLOCK_SIZE } from './types.ts'

/** One file of the torrent; `open()` is called once and must yield exactly `length` bytes. */
export interface TorrentSourceFile {
  /** Path below the torrent name; for a single-file torrent, `[name]`. */
  readonly path: readonly string[]
  readonly length: number
  open(options?: AbortOptions): AsyncIterable<Uint8Array> | Readable
}

export interface CreateTorrentInit {
  readonly name: string
  readonly files: readonly TorrentSourceFile[]
  /** @default 'hybrid' */
  readonly version?: TorrentVersion
  /** A power of two ≥ 16 KiB. @default {@link defaultPieceLength} of the total size */
  readonly pieceLength?: number
  /** BEP12 tiers of tracker URLs. */
  readonly trackers?: readonly (readonly string[])[]
  /** BEP19 web seed URLs. */
  readonly webseeds?: readonly string[]
  /** BEP27. */
  readonly private?: boolean
  readonly comment?: string
  readonly createdBy?: string
  /** Seconds since the epoch. Omitted unless given (reproducible output). */
  readonly creationDate?: number
  /**
   * 'single': one file whose path is `[name]`, described by `length` (BEP3 single-file mode).
   * @default 'single' when there is exactly one file with path `[name]`, else 'multi'
   */
  readonly layout?: 'single' | 'multi'
}

export interface CreatedTorrent {
  /** The `.torrent` file. */
  readonly bytes: Uint8Array
  readonly metainfo: Metainfo
}

const MIN_PIECE_LENGTH = BLOCK_SIZE
const MAX_DEFAULT_PIECE_LENGTH = 16 * 1024 * 1024
const MAX_CREATE_PIECE_LENGTH = 256 * 1024 * 1024
/** Files walked by `createTorrentFromPath`, and directory depth. */
const MAX_WALK_FILES = 100_000
const MAX_WALK_DEPTH = 64

function invalid(message: string): never {
  throw new CreateTorrentError('BT_ERR_CREATE_INVALID', message)
}

/**
 * libtorrent-like automatic piece size: the smallest power of two p ≥ 16 KiB with (p / 10)² ≥ the
 * total size (i.e. p ≈ 10·√size, so the piece list stays near 2·√size bytes), at most 16 MiB.
 */
export function defaultPieceLength(totalBytes: number): number {
  let p = MIN_PIECE_LENGTH
  while (p < MAX_DEFAULT_PIECE_LENGTH && totalBytes > Math.round((p / 10) ** 2)) p *= 2
  return p
}

function checkComponent(c: string, where: string): void {
  if (typeof c !== 'string' || c === '' || c === '.' || c === '..' || c.includes('/') || c.includes('\0')) {
    invalid(`${where}: invalid path component '${String(c)}'`)
  }
}

const UTF8 = new TextEncoder()

/** BEP52 file tree order: component-wise, each compared as raw UTF-8 bytes. */
function comparePaths(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = Buffer.from(UTF8.encode(a[i]!))
    const y = Buffer.from(UTF8.encode(b[i]!))
    const c = Buffer.compare(x, y)
    if (c !== 0) return c
  }
  return a.length - b.length
}

interface Item {
  readonly file?: TorrentSourceFile
  /** Pad length when `file` is absent. */
  readonly length: number
}

/** Files in BEP52 order, with BEP47 pads between them for hybrids (none after the last file). */
function layoutItems(
  files: readonly TorrentSourceFile[],
  version: TorrentVersion,
  pieceLength: number,
): Item[] {
  const items: Item[] = []
  const lastNonEmpty = files.findLastIndex((f) => f.length > 0)
  files.forEach((file, i) => {
    items.push({ file, length: file.length })
    const rem = file.length % pieceLength
    if (version === 'hybrid' && rem !== 0 && i < lastNonEmpty) items.push({ length: pieceLength - rem })
  })
  return items
}

function validate(init: CreateTorrentInit): {
  files: TorrentSourceFile[]
  single: boolean
  version: TorrentVersion
} {
  const version = init.version ?? 'hybrid'
  if (version !== 'v1' && version !== 'v2' && version !== 'hybrid')
    invalid(`unknown version '${String(version)}'`)
  checkComponent(init.name, 'name')
  if (init.files.length === 0) invalid('no files')
  let total = 0
  for (const f of init.files) {
    if (!Array.isArray(f.path) || f.path.length === 0) invalid('a file has an empty path')
    for (const c of f.path) checkComponent(c, f.path.join('/'))
    if (!Number.isSafeInteger(f.length) || f.length < 0)
      invalid(`${f.path.join('/')}: bad length ${f.length}`)
    total += f.length
  }
  if (total === 0 || !Number.isSafeInteger(total)) invalid('the files hold no data (or too much)')
  const only = init.files[0]!
  const single =
    init.layout === 'single' ||
    (init.layout === undefined &&
      init.files.length === 1 &&
      only.path.length === 1 &&
      only.path[0] === init.name)
  if (single && (init.files.length !== 1 || only.path.length !== 1 || only.path[0] !== init.name)) {
    invalid("layout 'single' needs exactly one file whose path is [name]")
  }
  const files = [...init.files].sort((a, b) => comparePaths(a.path, b.path))
  for (let i = 1; i < files.length; i++) {
    const a = files[i - 1]!.path
    const b = files[i]!.path
    if (a.length <= b.length && a.every((c, k) => c === b[k]))
      invalid(`duplicate or conflicting path '${a.join('/')}'`)
  }
  return { files, single, version }
}

function checkPieceLength(pl: number): void {
  if (
    !Number.isSafeInteger(pl) ||
    pl < MIN_PIECE_LENGTH ||
    pl > MAX_CREATE_PIECE_LENGTH ||
    (pl & (pl - 1)) !== 0
  ) {
    invalid(
      `piece length must be a power of two in ${MIN_PIECE_LENGTH}..${MAX_CREATE_PIECE_LENGTH}, got ${pl}`,
    )
  }
}

/**
 * Streams one file through the hashers: v1 bytes in order, v2 16 KiB blocks. The stream must
 * produce exactly `file.length` bytes.
 */
async function hashFile(
  file: TorrentSourceFile,
  v1: V1PieceHasher | undefined,
  v2: V2FileHasher | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const where = file.path.join('/')
  const block = new Uint8Array(BLOCK_SIZE)
  let inBlock = 0
  let blockIndex = 0
  let seen = 0
  try {
    const source = file.open(signal ? { signal } : {})
    // Bounded by the declared length: reading stops as soon as the stream overshoots it.
    for await (const chunk of source as AsyncIterable<unknown>) {
      signal?.throwIfAborted()
      if (!(chunk instanceof Uint8Array)) invalid(`${where}: the stream yielded a non-byte chunk`)
      seen += chunk.byteLength
      if (seen > file.length) {
        throw new CreateTorrentError(
          'BT_ERR_CREATE_LENGTH_MISMATCH',
          `${where}: more than ${file.length} bytes`,
        )
      }
      v1?.update(chunk)
      if (v2) {
        let off = 0
        while (off < chunk.byteLength) {
          const take = Math.min(BLOCK_SIZE - inBlock, chunk.byteLength - off)
          block.set(chunk.subarray(off, off + take), inBlock)
          inBlock += take
          off += take
          if (inBlock === BLOCK_SIZE) {
            v2.addBlock(blockIndex++, block)
            inBlock = 0
          }
        }
      }
    }
  } catch (err) {
    if (err instanceof ProtocolError || signal?.aborted) throw err
    throw new CreateTorrentError('BT_ERR_CREATE_IO', `${where}: ${(err as Error).message}`, { cause: err })
  }
  signal?.throwIfAborted()
  if (seen !== file.length) {
    throw new CreateTorrentError('BT_ERR_CREATE_LENGTH_MISMATCH', `${where}: ${seen} of ${file.length} bytes`)
  }
  if (v2 && inBlock > 0) v2.addBlock(blockIndex, block.subarray(0, inBlock))
}

interface V2Result {
  readonly path: readonly string[]
  readonly length: number
  readonly root?: Uint8Array
}

/** BEP52 `file tree` as nested Maps with binary-string keys. */
function fileTree(results: readonly V2Result[]): Map<string, BEncodable> {
  const tree = new Map<string, BEncodable>()
  for (const r of results) {
    let node = tree
    for (const c of r.path) {
      const k = textKey(c)
      let next = node.get(k)
      if (!(next instanceof Map)) {
        next = new Map<string, BEncodable>()
        node.set(k, next)
      }
      node = next as Map<string, BEncodable>
    }
    // BEP52: `pieces root` only for non-empty files.
    node.set('', r.root ? { length: r.length, 'pieces root': r.root } : { length: r.length })
  }
  return tree
}

/** Hashes the files and writes the `.torrent`; `signal` aborts between chunks. */
export async function createTorrent(
  init: CreateTorrentInit,
  options: AbortOptions = {},
): Promise<CreatedTorrent> {
  const { signal } = options
  signal?.throwIfAborted()
  const { files, single, version } = validate(init)
  const total = files.reduce((n, f) => n + f.length, 0)
  const pieceLength = init.pieceLength ?? defaultPieceLength(total)
  checkPieceLength(pieceLength)
  const hasV1 = version !== 'v2'
  const hasV2 = version !== 'v1'
  const items = layoutItems(files, version, pieceLength)
  const v1 = hasV1 ? new V1PieceHasher(pieceLength) : undefined
  const v1Files: BEncodable[] = []
  const v2Results: V2Result[] = []
  const layers = new Map<string, BEncodable>()
  for (const item of items) {
    if (!item.file) {
      v1!.updateZeros(item.length) // BEP47: pad files hash as zeros
      v1Files.push({ attr: 'p', length: item.length, path: ['.pad', String(item.length)] })
      continue
    }
    const f = item.file
    const v2 = hasV2 ? new V2FileHasher(f.length) : undefined
    await hashFile(f, v1, v2, signal)
    v1Files.push({ length: f.length, path: [...f.path] })
    if (v2 && f.length > 0) {
      const root = v2.piecesRoot()
      v2Results.push({ path: f.path, length: f.length, root })
      if (f.length > pieceLength) layers.set(bytesToKey(root), v2.pieceLayer(pieceLength))
    } else if (v2) {
      v2Results.push({ path: f.path, length: 0 })
    }
  }
  const only = files[0]!
  const info: Record<string, BEncodable | undefined> = {
    name: init.name,
    'piece length': pieceLength,
    private: init.private ? 1 : undefined,
  }
  if (hasV1) {
    info.pieces = v1!.digest()
    if (single) info.length = only.length
    else info.files = v1Files
  }
  if (hasV2) {
    info['meta version'] = 2
    info['file tree'] = fileTree(v2Results)
  }
  const tiers = (init.trackers ?? []).map((t) => t.filter((u) => u !== '')).filter((t) => t.length > 0)
  const urls = tiers.flat()
  const webseeds = (init.webseeds ?? []).filter((u) => u !== '')
  const torrent: Record<string, BEncodable | undefined> = {
    announce: urls[0],
    'announce-list': urls.length > 1 ? tiers : undefined,
    comment: init.comment,
    'created by': init.createdBy,
    'creation date': init.creationDate,
    info,
    'piece layers': hasV2 ? layers : undefined,
    'url-list': webseeds.length === 0 ? undefined : webseeds.length === 1 ? webseeds[0] : webseeds,
  }
  const bytes = encodeBencode(torrent)
  return { bytes, metainfo: parseTorrent(bytes) }
}

// ---------------------------------------------------------------------------------------------
// From the file system (CLI).

export type CreateFromPathOptions = Omit<CreateTorrentInit, 'name' | 'files' | 'layout'> & {
  /** @default the base name of `path` */
  readonly name?: string
}

function fileSource(abs: string, path: string[], length: number): TorrentSourceFile {
  return {
    path,
    length,
    open: ({ signal } = {}) =>
      length === 0
        ? (async function* () {})()
        : createReadStream(abs, { start: 0, end: length - 1, ...(signal ? { signal } : {}) }),
  }
}

/** Regular files below `dir`, sorted, symlinks and special files skipped (never followed). */
async function walk(dir: string, signal: AbortSignal | undefined): Promise<TorrentSourceFile[]> {
  const out: TorrentSourceFile[] = []
  const stack: { abs: string; rel: string[] }[] = [{ abs: dir, rel: [] }]
  while (stack.length > 0) {
    signal?.throwIfAborted()
    const { abs, rel } = stack.pop()!
    if (rel.length > MAX_WALK_DEPTH) invalid(`${abs}: directories nested deeper than ${MAX_WALK_DEPTH}`)
    const entries = await readdir(abs, { withFileTypes: true })
    for (const e of entries) {
      const p = join(abs, e.name)
      if (e.isDirectory()) stack.push({ abs: p, rel: [...rel, e.name] })
      else if (e.isFile()) {
        out.push(fileSource(p, [...rel, e.name], (await lstat(p)).size))
        if (out.length > MAX_WALK_FILES) invalid(`${dir}: more than ${MAX_WALK_FILES} files`)
      }
    }
  }
  return out // createTorrent sorts them in BEP52 order
}

/** Creates a torrent from a file or a directory on disk (CLI `torrent create`). */
export async function createTorrentFromPath(
  path: string,
  opts: CreateFromPathOptions = {},
  options: AbortOptions = {},
): Promise<CreatedTorrent> {
  const st = await lstat(path)
  const name = opts.name ?? basename(path)
  if (st.isFile()) {
    return createTorrent(
      { ...opts, name, files: [fileSource(path, [name], st.size)], layout: 'single' },
      options,
    )
  }
  if (!st.isDirectory()) invalid(`${path}: not a regular file or directory`)
  const files = await walk(path, options.signal)
  return createTorrent({ ...opts, name, files, layout: 'multi' }, options)
}
