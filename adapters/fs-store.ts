/**
 * Plain file-system storage backend for the engine's storage contract
 * (`gateway/engine/storage.ts`).
 *
 * Layout: a single-file torrent is stored at `<dir>/<name>`, a multi-file torrent under
 * `<dir>/<name>/<path…>`. BEP47 pad files and v2 alignment gaps are never written (they read as
 * zeros); zero-length files are created empty; BEP47 symlink entries are not created. Writes and
 * reads are positioned (`FileHandle.write`/`read` at an offset); at most `maxOpenFiles` handles
 * are open (least recently used are closed first).
 *
 * Resume: the committed bitfield is persisted in `<dir>/.codex-bt/<infohash-hex>.resume` (JSON,
 * written to a temp file, synced, then renamed). On open it is re-validated against file sizes.
 * Without a resume file, `completion()` is `{ known: true }` (empty) when no data file exists, and
 * `{ known: false }` when some do (files placed by the user): call `recheck(verify)` (through
 * `StorageFacade.recheck`) to verify that data instead of downloading it again.
 *
 * Path safety: every path component is re-validated (no `..`, separators, NUL), the resolved path
 * must stay inside `<dir>`, parent directories are checked with `realpath` (no symlinked escape)
 * and files are opened with `O_NOFOLLOW`.
 *
 * Durability: data is not fsynced on commit unless `syncOnCommit` is set; after a power loss a
 * committed piece may need a recheck. Backpressure is left to `StorageFacade` (`needsDrain` is
 * always false here: writes go straight to the OS).
 */

import { constants as fsConstants } from 'node:fs'
import { type FileHandle, mkdir, open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import { Bitfield } from '../gateway/engine/bitfield.ts'
import { PieceGeometry } from '../gateway/engine/piece-geometry.ts'
import {
  type CompletionState,
  defaultHashWant,
  type HashWant,
  hashPieceData,
  type PieceHashes,
  type PieceStore,
  type RecheckableStorage,
  type RecheckOptions,
  StorageError,
  type StorageOperation,
  type VerifyPiece,
} from '../gateway/engine/storage.ts'
import { toHex } from '../gateway/protocol/hex.ts'
import type { AbortOptions, FileEntry, TorrentInfo } from '../gateway/protocol/types.ts'

/** Options of `FsPieceStore`. */
export interface FsPieceStoreInit {
  /** Directory that holds the torrents' files and the `.codex-bt/` resume folder. */
  readonly directory: string
  /** Upper bound of open file handles per torrent (LRU). @default 64 */
  readonly maxOpenFiles?: number
  /** fdatasync the files of a piece before recording it as committed. @default false */
  readonly syncOnCommit?: boolean
}

/** Name of the folder (inside the store directory) holding resume files. */
export const RESUME_DIR = '.codex-bt'
const RESUME_FORMAT = 'codex-bt-resume/1'

/** A `PieceStore` writing torrents as ordinary files under one directory. */
export class FsPieceStore implements PieceStore {
  readonly directory: string
  readonly #maxOpenFiles: number
  readonly #syncOnCommit: boolean

  constructor(init: FsPieceStoreInit) {
    this.directory = resolve(init.directory)
    this.#maxOpenFiles = init.maxOpenFiles ?? 64
    if (!Number.isInteger(this.#maxOpenFiles) || this.#maxOpenFiles < 1)
      throw new RangeError('maxOpenFiles must be >= 1')
    this.#syncOnCommit = init.syncOnCommit ?? false
  }

  /** Opens a torrent: validates paths, creates zero-length files, loads and validates resume data. */
  async openTorrent(info: TorrentInfo, options: AbortOptions = {}): Promise<FsTorrentStorage> {
    options.signal?.throwIfAborted()
    const geometry = new PieceGeometry(info)
    const hash = info.infoHashV1 ?? info.infoHashV2
    if (hash === undefined)
      throw new StorageError('GW_ERR_STORAGE_UNSUPPORTED', 'open', 'torrent has no info hash')
    await mkdir(this.directory, { recursive: true })
    const root = await realpath(this.directory)
    const paths = info.files.map((file) => (isStored(file) ? filePath(root, info, file) : undefined))
    const storage = new FsTorrentStorage({
      geometry,
      root,
      paths,
      resumePath: join(root, RESUME_DIR, `${toHex(hash)}.resume`),
      maxOpenFiles: this.#maxOpenFiles,
      syncOnCommit: this.#syncOnCommit,
    })
    await storage.init(options)
    return storage
  }
}

interface FsTorrentStorageInit {
  readonly geometry: PieceGeometry
  readonly root: string
  /** Absolute path per file entry; undefined for padding and symlinks. */
  readonly paths: readonly (string | undefined)[]
  readonly resumePath: string
  readonly maxOpenFiles: number
  readonly syncOnCommit: boolean
}

interface HandleEntry {
  readonly handle: Promise<FileHandle | undefined>
  readonly writable: boolean
  users: number
  /** No longer in the cache: close when `users` drops to 0. */
  retired: boolean
}

/** One open torrent of an `FsPieceStore`. Implements the `recheck` capability. */
export class FsTorrentStorage implements RecheckableStorage {
  readonly needsDrain = false
  readonly #geometry: PieceGeometry
  readonly #root: string
  readonly #paths: readonly (string | undefined)[]
  readonly #resumePath: string
  readonly #maxOpenFiles: number
  readonly #syncOnCommit: boolean
  readonly #handles = new Map<number, HandleEntry>()
  readonly #safeDirs = new Set<string>()
  #committed: Bitfield
  #known = true
  #dirty = false
  #saving: Promise<void> | undefined
  #closed = false

  constructor(init: FsTorrentStorageInit) {
    this.#geometry = init.geometry
    this.#root = init.root
    this.#paths = init.paths
    this.#resumePath = init.resumePath
    this.#maxOpenFiles = init.maxOpenFiles
    this.#syncOnCommit = init.syncOnCommit
    this.#committed = new Bitfield(init.geometry.pieceCount)
  }

  /** Called once by `FsPieceStore.openTorrent`. */
  async init(options: AbortOptions): Promise<void> {
    const files = this.#geometry.info.files
    for (let i = 0; i < files.length; i++) {
      options.signal?.throwIfAborted()
      if (files[i]?.length === 0 && this.#paths[i] !== undefined) {
        await this.#withHandle(i, true, async () => {}) // creates the empty file
      }
    }
    const resume = await this.#loadResume()
    if (resume !== undefined) {
      this.#committed = resume
      await this.#dropPiecesOfShortFiles(await this.#fileSizes())
      return
    }
    const sizes = await this.#fileSizes()
    this.#known = !sizes.some((size, i) => size > 0 && (files[i]?.length ?? 0) > 0)
  }

  /** Positioned writes into the files the range covers (padding spans are skipped). */
  async writeBlock(
    piece: number,
    offset: number,
    data: Uint8Array,
    options: AbortOptions = {},
  ): Promise<void> {
    this.#check('write', piece, options)
    for (const span of this.#geometry.spans(piece, offset, data.byteLength)) {
      if (span.padding || this.#paths[span.fileIndex] === undefined) continue
      const part = data.subarray(span.pieceOffset - offset, span.pieceOffset - offset + span.length)
      await this.#withHandle(span.fileIndex, true, async (fh) => {
        let done = 0
        // Bounded: every iteration writes at least one byte or throws.
        while (done < part.byteLength) {
          const { bytesWritten } = await fh.write(part, done, part.byteLength - done, span.fileOffset + done)
          if (bytesWritten <= 0) throw new Error('write made no progress')
          done += bytesWritten
        }
      })
    }
  }

  /** Positioned reads; padding, missing files and bytes past the end of a file read as zeros. */
  async readBlock(
    piece: number,
    offset: number,
    length: number,
    options: AbortOptions = {},
  ): Promise<Uint8Array> {
    this.#check('read', piece, options)
    const out = new Uint8Array(length)
    for (const span of this.#geometry.spans(piece, offset, length)) {
      if (span.padding || this.#paths[span.fileIndex] === undefined) continue
      await this.#withHandle(span.fileIndex, false, async (fh) => {
        let done = 0
        while (done < span.length) {
          const at = span.pieceOffset - offset + done
          const { bytesRead } = await fh.read(out, at, span.length - done, span.fileOffset + done)
          if (bytesRead <= 0) break // end of file: the rest stays zero
          done += bytesRead
        }
      })
    }
    return out
  }

  /** Reads the piece back from disk and hashes it (256 KiB at a time). */
  async hashPiece(piece: number, want: HashWant, options: AbortOptions = {}): Promise<PieceHashes> {
    this.#check('hash', piece, options)
    return hashPieceData(
      this.#geometry,
      piece,
      want,
      (at, length) => this.readBlock(piece, at, length, options),
      options,
    )
  }

  /** Records the piece as committed and persists the resume file. */
  async commitPiece(piece: number, options: AbortOptions = {}): Promise<void> {
    this.#check('commit', piece, options)
    if (this.#syncOnCommit) {
      for (const span of this.#geometry.spans(piece)) {
        if (span.padding || this.#paths[span.fileIndex] === undefined) continue
        await this.#withHandle(span.fileIndex, true, (fh) => fh.datasync())
      }
    }
    if (this.#committed.set(piece)) await this.#save()
  }

  /** Forgets the piece's committed mark (the bytes on disk are simply overwritten later). */
  async discardPiece(piece: number, options: AbortOptions = {}): Promise<void> {
    this.#check('discard', piece, options)
    if (this.#committed.clear(piece)) await this.#save()
  }

  /** The committed bitfield, or unknown when data exists without resume information. */
  async completion(options: AbortOptions = {}): Promise<CompletionState> {
    this.#check('completion', undefined, options)
    return this.#known ? { known: true, have: this.#committed.toBytes() } : { known: false }
  }

  /** Always resolves at once: this backend never asks for drain. */
  async onDrain(options: AbortOptions = {}): Promise<void> {
    this.#check('drain', undefined, options)
  }

  /**
   * Hashes every piece whose files hold enough data and asks `verify`; verified pieces become
   * committed, all others not. Pieces of missing or too-short files are not read.
   */
  async recheck(
    verify: VerifyPiece,
    options: RecheckOptions = {},
  ): Promise<CompletionState & { known: true }> {
    this.#check('recheck', undefined, options)
    const want = options.want ?? defaultHashWant(this.#geometry.info)
    const sizes = await this.#fileSizes()
    const have = new Bitfield(this.#geometry.pieceCount)
    const total = this.#geometry.pieceCount
    for (let piece = 0; piece < total; piece++) {
      this.#check('recheck', piece, options)
      if (this.#bytesPresent(piece, sizes) && verify(piece, await this.hashPiece(piece, want, options)))
        have.set(piece)
      options.onProgress?.(piece + 1, total)
    }
    this.#committed = have
    this.#known = true
    await this.#save()
    return { known: true, have: have.toBytes() }
  }

  /** Writes pending resume state and closes every file handle. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#saving?.catch(() => {}) // its error was reported to the commit that started it
    const entries = [...this.#handles.values()]
    this.#handles.clear()
    const results = await Promise.allSettled(
      entries.map(async (e) => (await e.handle.catch(() => undefined))?.close()),
    )
    const failed = results.find((r) => r.status === 'rejected')
    if (failed)
      throw new StorageError('GW_ERR_STORAGE_IO', 'close', 'closing a file failed', { cause: failed.reason })
  }

  // ---- files and handles ---------------------------------------------------------------------

  /** Runs `fn` with an open handle for file `index` (skipped, returning undefined, if a read finds no file). */
  async #withHandle<T>(
    index: number,
    write: boolean,
    fn: (fh: FileHandle) => Promise<T>,
  ): Promise<T | undefined> {
    let entry = this.#handles.get(index)
    if (entry !== undefined && write && !entry.writable) {
      this.#handles.delete(index)
      this.#retire(entry) // a read-only handle cannot serve writes; closed once idle
      entry = undefined
    }
    if (entry === undefined) {
      entry = { handle: this.#openFile(index, write), writable: write, users: 0, retired: false }
      this.#handles.set(index, entry)
    } else {
      this.#handles.delete(index) // move to the most recently used end
      this.#handles.set(index, entry)
    }
    entry.users++
    try {
      let fh: FileHandle | undefined
      try {
        fh = await entry.handle
      } catch (error) {
        if (this.#handles.get(index) === entry) this.#handles.delete(index) // failed open: nothing to close
        entry.retired = true
        throw error
      }
      if (fh === undefined) {
        if (this.#handles.get(index) === entry) this.#handles.delete(index) // missing file: do not cache
        return undefined
      }
      return await fn(fh)
    } finally {
      entry.users--
      if (entry.retired) this.#retire(entry)
      this.#evict()
    }
  }

  /** Marks `entry` as out of the cache and closes its handle once nobody uses it. */
  #retire(entry: HandleEntry): void {
    entry.retired = true
    if (entry.users > 0) return
    // Nothing is pending on an idle handle, and a failed close of a file we only used has no remedy.
    void entry.handle.then((h) => h?.close()).catch(() => {})
  }

  /** Retires least recently used idle handles beyond `maxOpenFiles`. */
  #evict(): void {
    if (this.#handles.size <= this.#maxOpenFiles) return
    for (const [index, entry] of this.#handles) {
      if (this.#handles.size <= this.#maxOpenFiles) break
      if (entry.users > 0) continue
      this.#handles.delete(index)
      this.#retire(entry)
    }
  }

  async #openFile(index: number, write: boolean): Promise<FileHandle | undefined> {
    const path = this.#paths[index]
    if (path === undefined) return undefined
    const nofollow = fsConstants.O_NOFOLLOW ?? 0
    if (write) {
      await this.#ensureSafeDir(dirname(path))
      return open(path, fsConstants.O_RDWR | fsConstants.O_CREAT | nofollow, 0o644)
    }
    try {
      await this.#ensureSafeDir(dirname(path), false)
      return await open(path, fsConstants.O_RDONLY | nofollow)
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined
      throw error
    }
  }

  /** Creates `dir` (if `create`) and checks that its real path is inside the root. */
  async #ensureSafeDir(dir: string, create = true): Promise<void> {
    if (this.#safeDirs.has(dir)) return
    if (create) await mkdir(dir, { recursive: true })
    const real = await realpath(dir)
    if (real !== this.#root && !real.startsWith(this.#root + sep)) {
      throw new StorageError('GW_ERR_STORAGE_PATH', 'write', `directory ${dir} resolves outside the store`, {
        path: dir,
      })
    }
    this.#safeDirs.add(dir)
  }

  /** Current size of every stored file (0 when missing; padding and symlinks 0). */
  async #fileSizes(): Promise<number[]> {
    return Promise.all(
      this.#paths.map(async (path) => {
        if (path === undefined) return 0
        try {
          const st = await stat(path)
          return st.isFile() ? st.size : 0
        } catch (error) {
          if (errnoCode(error) === 'ENOENT') return 0
          throw error
        }
      }),
    )
  }

  /** True when every file byte of the piece lies within its file's current size (`sizes`). */
  #bytesPresent(piece: number, sizes: readonly number[]): boolean {
    return this.#geometry
      .spans(piece)
      .every(
        (s) =>
          s.padding ||
          this.#paths[s.fileIndex] === undefined ||
          (sizes[s.fileIndex] ?? 0) >= s.fileOffset + s.length,
      )
  }

  /** Un-commits pieces whose bytes lie past the current end of their file (deleted/truncated files). */
  async #dropPiecesOfShortFiles(sizes: number[]): Promise<void> {
    let changed = false
    for (const piece of [...this.#committed.setIndices()]) {
      if (!this.#bytesPresent(piece, sizes)) changed = this.#committed.clear(piece) || changed
    }
    if (changed) await this.#save()
  }

  // ---- resume file ---------------------------------------------------------------------------

  async #loadResume(): Promise<Bitfield | undefined> {
    let text: string
    try {
      text = await readFile(this.#resumePath, 'utf8')
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined
      throw error
    }
    try {
      const parsed: unknown = JSON.parse(text)
      if (typeof parsed !== 'object' || parsed === null) return undefined
      const r = parsed as Record<string, unknown>
      const g = this.#geometry
      if (r.format !== RESUME_FORMAT || r.pieceCount !== g.pieceCount || r.pieceLength !== g.pieceLength)
        return undefined
      if (typeof r.have !== 'string') return undefined
      return Bitfield.fromBytes(new Uint8Array(Buffer.from(r.have, 'base64')), g.pieceCount)
    } catch {
      return undefined // a malformed resume file means "unknown": the data gets rechecked
    }
  }

  /** Persists the committed bitfield; concurrent calls coalesce into at most one more write. */
  #save(): Promise<void> {
    this.#dirty = true
    if (this.#saving === undefined) {
      this.#saving = this.#saveLoop().finally(() => {
        this.#saving = undefined
      })
    }
    return this.#saving
  }

  async #saveLoop(): Promise<void> {
    // Bounded: each round clears `#dirty`; a round only repeats for commits made during the write.
    for (let round = 0; this.#dirty && round < 1_000; round++) {
      this.#dirty = false
      const body = JSON.stringify({
        format: RESUME_FORMAT,
        pieceCount: this.#geometry.pieceCount,
        pieceLength: this.#geometry.pieceLength,
        have: Buffer.from(this.#committed.toBytes()).toString('base64'),
      })
      await mkdir(dirname(this.#resumePath), { recursive: true })
      const temp = `${this.#resumePath}.${process.pid}.tmp`
      const fh = await open(temp, 'w', 0o644)
      try {
        await fh.writeFile(body)
        await fh.sync()
      } finally {
        await fh.close()
      }
      try {
        await rename(temp, this.#resumePath)
      } catch (error) {
        await unlink(temp).catch(() => {}) // best effort; the rename error is what matters
        throw error
      }
    }
  }

  #check(operation: StorageOperation, piece: number | undefined, options: AbortOptions): void {
    options.signal?.throwIfAborted()
    if (this.#closed)
      throw new StorageError('GW_ERR_STORAGE_CLOSED', operation, 'storage is closed', { piece })
  }
}

// ---- paths ---------------------------------------------------------------------------------------

/** Entries that become files on disk: not padding, not BEP47 symlinks. */
function isStored(file: FileEntry): boolean {
  return !file.padding && !file.attr.includes('l')
}

/**
 * Single-file torrents (one stored entry whose path is `[name]`, as the parser represents them)
 * go to `<root>/<name>`; multi-file torrents to `<root>/<name>/<path…>`.
 */
function filePath(root: string, info: TorrentInfo, file: FileEntry): string {
  const stored = info.files.filter(isStored)
  const single =
    stored.length === 1 &&
    // v2 alignment gaps are virtual (not in the info dict): they do not make a torrent multi-file.
    info.files.every((f) => !f.padding || f.virtual) &&
    file.path.length === 1 &&
    file.path[0] === info.name
  const parts = single ? [info.name] : [info.name, ...file.path]
  for (const part of parts) checkComponent(part)
  if (parts[0] === RESUME_DIR) {
    throw new StorageError('GW_ERR_STORAGE_PATH', 'open', `torrent name ${RESUME_DIR} is reserved`)
  }
  const full = resolve(root, ...parts)
  if (!full.startsWith(root + sep)) {
    throw new StorageError('GW_ERR_STORAGE_PATH', 'open', `path ${parts.join('/')} leaves the store`, {
      path: full,
    })
  }
  return full
}

function checkComponent(part: string): void {
  if (part === '' || part === '.' || part === '..' || /[/\\\0]/.test(part)) {
    throw new StorageError('GW_ERR_STORAGE_PATH', 'open', `unsafe path component ${JSON.stringify(part)}`)
  }
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined
}
