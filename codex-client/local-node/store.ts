/**
 * On-disk block store of the local Codex node, modelled on nim-codex's RepoStore
 * (`codex/stores/repostore/{store,operations}.nim`):
 *
 * - a block is stored once per CID; storing it again is "AlreadyInStore" and costs no quota;
 * - quota: `quotaUsedBytes` counts the bytes of every stored block (padded data blocks and
 *   manifest blocks); a store that would make `used + reserved > max` fails;
 * - leaf metadata `(treeCid, index) -> blockCid` gives each data block a reference count; a
 *   block with references cannot be deleted directly ("Directly deleting a block that is part of a
 *   dataset is not allowed."), deleting a leaf drops a reference and deletes the block at zero.
 *   (Codex also lets expired blocks go; this store has no TTL, so blocks never expire.)
 *
 * Layout under `dataDir` (every write goes to `tmp/` first and is renamed into place):
 *   blocks/<last 2 hex of cid>/<cid hex>   data blocks (any non-manifest codec)
 *   manifests/<cid hex>                    manifest blocks
 *   trees/<tree cid hex>                   leaf metadata: the 32-byte sha2-256 digests of the
 *                                          block CIDs (codex-block) of leaves 0..n-1
 *   node-key                               the node's secp256k1 key (synthetic identity)
 * Counters and reference counts are derived from these files at start-up, so a crash can never
 * leave them inconsistent with what is on disk.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { CID } from '../cid.ts'
import { BLOCK_CODEC, blockCidFromDigest, decodeCid, MANIFEST_CODEC } from '../cid.ts'

export const DEFAULT_QUOTA_BYTES = 21_474_836_480 // 20 GiB, nim-codex DefaultQuotaBytes
const DIGEST_BYTES = 32

export interface StoreStats {
  readonly totalBlocks: number
  readonly quotaMaxBytes: number
  readonly quotaUsedBytes: number
  readonly quotaReservedBytes: number
}

/** nim-codex `QuotaNotEnoughError`. */
export class QuotaExceededError extends Error {
  override readonly name = 'QuotaExceededError'
  readonly code = 'CODEX_ERR_QUOTA'
}

/** `delBlock(cid)` on a block that leaves still reference. */
export class BlockInUseError extends Error {
  override readonly name = 'BlockInUseError'
  readonly code = 'CODEX_ERR_BLOCK_IN_USE'
  constructor() {
    super('Directly deleting a block that is part of a dataset is not allowed.')
  }
}

/** nim-codex prints NBytes as `<n>'NByte`. */
function nbytes(n: number): string {
  return `${n}'NByte`
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** The reference-count key of a codex-block CID: its raw 32-byte digest as a latin1 string. */
function digestKey(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('latin1')
}

export class DiskStore {
  readonly dataDir: string
  quotaMaxBytes: number
  #used = 0
  #totalBlocks = 0
  /** References from leaf metadata to codex-block blocks, by digest. Absent = 0. */
  readonly #refs = new Map<string, number>()
  /** Serialises concurrent writes/deletes of the same block key. */
  readonly #locks = new Map<string, Promise<unknown>>()

  private constructor(dataDir: string, quotaMaxBytes: number) {
    this.dataDir = dataDir
    this.quotaMaxBytes = quotaMaxBytes
  }

  static async open(dataDir: string, quotaMaxBytes: number): Promise<DiskStore> {
    const store = new DiskStore(dataDir, quotaMaxBytes)
    await store.#init()
    return store
  }

  get stats(): StoreStats {
    return {
      totalBlocks: this.#totalBlocks,
      quotaMaxBytes: this.quotaMaxBytes,
      quotaUsedBytes: this.#used,
      quotaReservedBytes: 0,
    }
  }

  get tmpDir(): string {
    return join(this.dataDir, 'tmp')
  }

  async #init(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true })
    for (const dir of ['blocks', 'manifests', 'trees', 'tmp']) {
      await mkdir(join(this.dataDir, dir), { recursive: true })
    }
    for (let i = 0; i < 256; i++) {
      await mkdir(join(this.dataDir, 'blocks', i.toString(16).padStart(2, '0')), { recursive: true })
    }
    for (const sub of await readdir(join(this.dataDir, 'blocks'))) {
      const dir = join(this.dataDir, 'blocks', sub)
      for (const name of await readdir(dir)) await this.#account(join(dir, name))
    }
    for (const name of await readdir(join(this.dataDir, 'manifests'))) {
      await this.#account(join(this.dataDir, 'manifests', name))
    }
    for (const name of await readdir(join(this.dataDir, 'trees'))) {
      for await (const digest of this.#readDigests(join(this.dataDir, 'trees', name))) {
        const key = digestKey(digest)
        this.#refs.set(key, (this.#refs.get(key) ?? 0) + 1)
      }
    }
  }

  async #account(path: string): Promise<void> {
    const st = await stat(path)
    if (!st.isFile()) return
    this.#used += st.size
    this.#totalBlocks++
  }

  blockPath(cid: CID): string {
    const h = hex(cid.bytes)
    if (cid.code === MANIFEST_CODEC) return join(this.dataDir, 'manifests', h)
    return join(this.dataDir, 'blocks', h.slice(-2), h)
  }

  treePath(treeCid: CID): string {
    return join(this.dataDir, 'trees', hex(treeCid.bytes))
  }

  /** A fresh path in `tmp/` (same file system as the final locations, so rename is atomic). */
  tmpPath(prefix: string): string {
    return join(this.tmpDir, `${prefix}-${randomBytes(8).toString('hex')}`)
  }

  async #withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(key) ?? Promise.resolve()
    const run = previous.then(fn, fn)
    const settled = run.then(
      () => undefined,
      () => undefined,
    )
    this.#locks.set(key, settled)
    try {
      return await run
    } finally {
      if (this.#locks.get(key) === settled) this.#locks.delete(key)
    }
  }

  async hasBlock(cid: CID): Promise<boolean> {
    try {
      return (await stat(this.blockPath(cid))).isFile()
    } catch {
      return false
    }
  }

  /** Reads a whole block (manifests, or a data block). Undefined when absent. */
  async readBlock(cid: CID): Promise<Buffer | undefined> {
    try {
      return await readFile(this.blockPath(cid))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  /** Reads a block into `target` (up to its length); the bytes read, or undefined when absent. */
  async readBlockInto(cid: CID, target: Buffer): Promise<number | undefined> {
    let fh: Awaited<ReturnType<typeof open>>
    try {
      fh = await open(this.blockPath(cid), 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    try {
      let total = 0
      while (total < target.length) {
        const { bytesRead } = await fh.read(target, total, target.length - total, total)
        if (bytesRead === 0) break
        total += bytesRead
      }
      return total
    } finally {
      await fh.close()
    }
  }

  /**
   * Stores a block (nim-codex `putBlock`). Resolves 'exists' when it was already stored (no quota
   * charged). Throws QuotaExceededError when the quota would be exceeded.
   */
  async putBlock(cid: CID, data: Uint8Array): Promise<'stored' | 'exists'> {
    const path = this.blockPath(cid)
    return this.#withLock(path, async () => {
      if (await this.hasBlock(cid)) return 'exists'
      if (this.#used + data.length > this.quotaMaxBytes) {
        throw new QuotaExceededError(
          `Quota usage would exceed the limit. Used: ${nbytes(this.#used + data.length)}, reserved: ${nbytes(0)}, limit: ${nbytes(this.quotaMaxBytes)}`,
        )
      }
      this.#used += data.length
      this.#totalBlocks++
      try {
        const tmp = this.tmpPath('block')
        const fh = await open(tmp, 'w')
        try {
          await fh.write(data, 0, data.length, 0)
        } finally {
          await fh.close()
        }
        await rename(tmp, path)
      } catch (err) {
        this.#used -= data.length
        this.#totalBlocks--
        throw err
      }
      return 'stored'
    })
  }

  /** Removes a block file and its accounting; resolves false when it was not there. */
  async #removeBlock(cid: CID): Promise<boolean> {
    const path = this.blockPath(cid)
    return this.#withLock(path, async () => {
      let size: number
      try {
        size = (await stat(path)).size
        await unlink(path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
        throw err
      }
      this.#used -= size
      this.#totalBlocks--
      return true
    })
  }

  refCount(cid: CID): number {
    if (cid.code !== BLOCK_CODEC || cid.multihash.code !== 0x12) return 0
    return this.#refs.get(digestKey(cid.multihash.digest)) ?? 0
  }

  /**
   * nim-codex `delBlock(cid)`: deletes a block without references; throws BlockInUseError for a
   * referenced block; a missing block is fine.
   */
  async deleteBlock(cid: CID): Promise<void> {
    if (this.refCount(cid) > 0) throw new BlockInUseError()
    await this.#removeBlock(cid)
  }

  async hasTree(treeCid: CID): Promise<boolean> {
    try {
      return (await stat(this.treePath(treeCid))).isFile()
    } catch {
      return false
    }
  }

  /**
   * Records the leaves of a tree from a file of concatenated digests (nim-codex
   * `putCidAndProof` for every index). Leaves already recorded for that tree are kept as they are
   * (AlreadyInStore) and add no reference. The file is moved, or deleted when not needed.
   */
  async commitTree(treeCid: CID, leafFile: string): Promise<void> {
    const path = this.treePath(treeCid)
    await this.#withLock(path, async () => {
      if (await this.hasTree(treeCid)) {
        await rm(leafFile, { force: true })
        return
      }
      await rename(leafFile, path)
      for await (const digest of this.#readDigests(path)) {
        const key = digestKey(digest)
        this.#refs.set(key, (this.#refs.get(key) ?? 0) + 1)
      }
    })
  }

  /**
   * Deletes every leaf of a tree (nim-codex `delBlock(treeCid, i)` for each index of the
   * manifest), dropping a reference per leaf and deleting blocks whose count reaches zero.
   */
  async deleteTree(treeCid: CID): Promise<void> {
    const path = this.treePath(treeCid)
    await this.#withLock(path, async () => {
      const released: Uint8Array[] = []
      for await (const digest of this.#readDigests(path)) {
        const key = digestKey(digest)
        const refs = (this.#refs.get(key) ?? 0) - 1
        if (refs > 0) this.#refs.set(key, refs)
        else {
          this.#refs.delete(key)
          released.push(Uint8Array.from(digest))
        }
      }
      await rm(path, { force: true })
      for (const digest of released) await this.#removeBlock(blockCidFromDigest(digest))
    })
  }

  /** Streams the leaf digests of a tree, or nothing when the tree is unknown. */
  async *treeDigests(treeCid: CID): AsyncGenerator<Uint8Array> {
    yield* this.#readDigests(this.treePath(treeCid))
  }

  async *#readDigests(path: string): AsyncGenerator<Uint8Array> {
    let fh: Awaited<ReturnType<typeof open>>
    try {
      fh = await open(path, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    try {
      const buf = Buffer.allocUnsafe(DIGEST_BYTES * 1024)
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null)
        if (bytesRead < DIGEST_BYTES) return
        for (let off = 0; off + DIGEST_BYTES <= bytesRead; off += DIGEST_BYTES) {
          yield buf.subarray(off, off + DIGEST_BYTES)
        }
      }
    } finally {
      await fh.close()
    }
  }

  /** Every manifest block CID stored, sorted by their binary form. */
  async listManifests(): Promise<CID[]> {
    const names = (await readdir(join(this.dataDir, 'manifests'))).sort()
    const out: CID[] = []
    for (const name of names) {
      try {
        out.push(decodeCid(Buffer.from(name, 'hex')))
      } catch {
        // not a block file
      }
    }
    return out
  }
}
