/**
 * Deterministic test payloads written to temp directories, streamed (never a whole file in memory).
 *
 * Bytes come from an AES-128-CTR keystream keyed by `seed` and the file's path, so they look random
 * (nothing compresses or dedups by accident), are identical across runs, and generate at several
 * GB/s. `hashTree` streams SHA-256 over written files to compare a download with its source.
 */
import { createCipheriv, createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative, sep } from 'node:path'
import { finished } from 'node:stream/promises'

/** One file of a payload: path below the payload root (or `[name]` for a single file) and size. */
export interface PayloadFile {
  readonly path: readonly string[]
  readonly size: number
}

export interface PayloadSpec {
  /** The torrent name: a file name (single) or a directory name (multi). */
  readonly name: string
  /** Single-file payload when set. */
  readonly size?: number
  /** Multi-file payload (paths below `name/`). */
  readonly files?: readonly PayloadFile[]
  /** Changes every byte. @default 'codex-bt' */
  readonly seed?: string
}

export interface WrittenPayload {
  /** `<root>/<name>`: the file (single) or directory (multi) to create a torrent from. */
  readonly path: string
  /** The directory holding `name` (the "save path" of a seeder). */
  readonly root: string
  readonly totalBytes: number
  /** Relative path (from `root`, '/' separated) → hex SHA-256. */
  readonly hashes: ReadonlyMap<string, string>
}

const CHUNK = 1024 * 1024
const ZEROS = new Uint8Array(CHUNK)

function keystream(seed: string, rel: string): ReturnType<typeof createCipheriv> {
  const key = createHash('sha256').update(`${seed}\0${rel}`).digest().subarray(0, 16)
  return createCipheriv('aes-128-ctr', key, new Uint8Array(16))
}

/** Writes one deterministic file; resolves to its hex SHA-256. */
async function writeFile(abs: string, rel: string, size: number, seed: string): Promise<string> {
  await mkdir(dirname(abs), { recursive: true })
  const cipher = keystream(seed, rel)
  const hash = createHash('sha256')
  const out = createWriteStream(abs)
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(CHUNK, size - done)
      const chunk = cipher.update(ZEROS.subarray(0, n))
      hash.update(chunk)
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()))
      done += n
    }
    out.end()
    await finished(out)
  } finally {
    out.destroy()
  }
  return hash.digest('hex')
}

/** Writes the payload described by `spec` below `root`. */
export async function writePayload(root: string, spec: PayloadSpec): Promise<WrittenPayload> {
  const seed = spec.seed ?? 'codex-bt'
  const hashes = new Map<string, string>()
  let total = 0
  if (spec.size !== undefined) {
    hashes.set(spec.name, await writeFile(join(root, spec.name), spec.name, spec.size, seed))
    total = spec.size
  } else {
    for (const f of spec.files ?? []) {
      const rel = [spec.name, ...f.path].join('/')
      hashes.set(rel, await writeFile(join(root, spec.name, ...f.path), rel, f.size, seed))
      total += f.size
    }
  }
  return { path: join(root, spec.name), root, totalBytes: total, hashes }
}

/** Hex SHA-256 of a file, streamed. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256')
  const stream = createReadStream(path, { highWaterMark: CHUNK })
  for await (const chunk of stream) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/**
 * SHA-256 of every regular file below `root/name` (or of `root/name` itself when it is a file),
 * keyed like `WrittenPayload.hashes`. Hidden bookkeeping folders (`.codex-bt`, `.pad`) are skipped.
 */
export async function hashTree(root: string, name: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const top = join(root, name)
  const st = await stat(top)
  if (st.isFile()) {
    out.set(name, await hashFile(top))
    return out
  }
  const stack = [top]
  for (let guard = 0; stack.length > 0 && guard < 100_000; guard++) {
    const dir = stack.pop()!
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.name === '.codex-bt' || e.name === '.pad') continue
      const p = join(dir, e.name)
      if (e.isDirectory()) stack.push(p)
      else if (e.isFile()) out.set(relative(root, p).split(sep).join('/'), await hashFile(p))
    }
  }
  return out
}

/** Entries sorted by path, for stable deep-equality assertions. */
export function sortedEntries(m: ReadonlyMap<string, string>): [string, string][] {
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

/** A temp directory removed by `cleanup()`. */
export interface TempDir {
  readonly path: string
  cleanup(): Promise<void>
}

export async function tempDir(prefix = 'codex-bt-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, cleanup: () => rm(path, { recursive: true, force: true, maxRetries: 3 }) }
}
