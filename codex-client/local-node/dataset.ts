/**
 * Dataset upload and download on the local node's DiskStore, following nim-codex `node.store`
 * and `streamEntireDataset` (`codex/node.nim`):
 *
 * upload: the body is cut into 65536-byte blocks, the last one zero-padded; each block is stored
 * as it arrives (`Unable to store block <cid>` when that fails; earlier blocks stay stored, as in
 * Codex); its digest goes into the streaming tree builder and a leaf file; then the leaves
 * `(treeCid, i) -> blockCid` are recorded and the manifest block is stored. Memory per upload is
 * one block buffer plus O(log n) tree state.
 *
 * download: the blocks of the tree are read from disk in order into a few reused buffers and
 * written with backpressure; the padding of the last block is not sent.
 */
import { open, rm } from 'node:fs/promises'
import type { Writable } from 'node:stream'
import type { CID } from '../cid.ts'
import { blockCidFromDigest, formatCid, sha256, treeCidFromRoot } from '../cid.ts'
import type { Manifest } from '../manifest.ts'
import { DEFAULT_BLOCK_SIZE, encodeManifestBlock, newManifest } from '../manifest.ts'
import { CodexTreeBuilder, EmptyTreeError } from '../tree.ts'
import type { DiskStore } from './store.ts'

/** A block of the upload could not be stored (Codex: `Unable to store block <cid>`). */
export class StoreBlockError extends Error {
  override readonly name = 'StoreBlockError'
  readonly code = 'CODEX_ERR_STORE_BLOCK'
  readonly cid: CID
  constructor(cid: CID, options?: ErrorOptions) {
    super(`Unable to store block ${formatCid(cid)}`, options)
    this.cid = cid
  }
}

/** A data block of a dataset is missing from the local store while streaming it. */
export class MissingBlockError extends Error {
  override readonly name = 'MissingBlockError'
  readonly code = 'CODEX_ERR_MISSING_BLOCK'
  readonly index: number
  constructor(index: number) {
    super(`Block ${index} of the dataset is not in the local store`)
    this.index = index
  }
}

export interface IngestMetadata {
  readonly filename?: string | undefined
  readonly mimetype?: string | undefined
}

export interface IngestResult {
  readonly cid: CID
  readonly manifest: Manifest
}

const LEAF_FLUSH_DIGESTS = 512

/**
 * Stores a dataset read from `source`. Throws EmptyTreeError (`Empty leaves`) for an empty body,
 * StoreBlockError when a block cannot be stored, QuotaExceededError when the manifest cannot, and
 * rethrows errors of `source` (aborted upload).
 */
export async function ingestDataset(
  store: DiskStore,
  source: AsyncIterable<Uint8Array>,
  meta: IngestMetadata = {},
): Promise<IngestResult> {
  const blockSize = DEFAULT_BLOCK_SIZE
  const builder = new CodexTreeBuilder()
  const leafPath = store.tmpPath('leaves')
  const leafFile = await open(leafPath, 'w')
  let committed = false
  try {
    const block = Buffer.allocUnsafe(blockSize)
    const leafBuffer = Buffer.allocUnsafe(32 * LEAF_FLUSH_DIGESTS)
    let leafFill = 0
    let fill = 0
    let datasetSize = 0

    const flushLeaves = async (): Promise<void> => {
      if (leafFill === 0) return
      await leafFile.write(leafBuffer, 0, leafFill)
      leafFill = 0
    }
    const storeBlock = async (): Promise<void> => {
      const digest = sha256(block)
      const cid = blockCidFromDigest(digest)
      try {
        await store.putBlock(cid, block)
      } catch (err) {
        throw new StoreBlockError(cid, { cause: err })
      }
      builder.addLeaf(digest)
      leafBuffer.set(digest, leafFill)
      leafFill += digest.length
      if (leafFill === leafBuffer.length) await flushLeaves()
    }

    for await (const chunk of source) {
      let offset = 0
      while (offset < chunk.length) {
        const n = Math.min(blockSize - fill, chunk.length - offset)
        block.set(chunk.subarray(offset, offset + n), fill)
        fill += n
        offset += n
        datasetSize += n
        if (fill === blockSize) {
          await storeBlock()
          fill = 0
        }
      }
    }
    if (fill > 0) {
      block.fill(0, fill)
      await storeBlock()
    }
    if (builder.leafCount === 0) throw new EmptyTreeError()
    await flushLeaves()
    await leafFile.close()

    const treeCid = treeCidFromRoot(builder.root())
    await store.commitTree(treeCid, leafPath)
    committed = true

    const manifest = newManifest({
      treeCid,
      datasetSize,
      blockSize,
      filename: meta.filename,
      mimetype: meta.mimetype,
    })
    const { bytes, cid } = encodeManifestBlock(manifest)
    await store.putBlock(cid, bytes)
    return { cid, manifest }
  } finally {
    await leafFile.close().catch(() => undefined)
    if (!committed) await rm(leafPath, { force: true })
  }
}

/** Bytes of a dataset to send for a manifest: `originalDatasetSize` for protected ones. */
export function contentLength(manifest: Manifest): number {
  return manifest.erasure?.originalDatasetSize ?? manifest.datasetSize
}

export interface WriteDatasetOptions {
  /** Stop after this many body bytes and destroy `out` (fault injection). */
  readonly cutAfterBytes?: number | undefined
}

/** Number of block buffers in flight per download (memory per download: this x blockSize). */
const DOWNLOAD_BUFFERS = 4

/**
 * Writes the dataset of `manifest` to `out` block by block from disk (the padding cut off),
 * waiting for `drain` when `out` is full. Each block is read into one of a few reused buffers,
 * taken back once `out` has flushed it, so a download allocates nothing per block.
 * Throws MissingBlockError when a block or the leaf metadata is not stored; resolves early
 * (without error) when `out` is closed by the other side.
 */
export async function writeDataset(
  store: DiskStore,
  manifest: Manifest,
  out: Writable,
  options: WriteDatasetOptions = {},
): Promise<void> {
  let remaining = contentLength(manifest)
  const limit = options.cutAfterBytes
  let sent = 0
  let index = 0
  const free: Buffer[] = Array.from({ length: DOWNLOAD_BUFFERS }, () =>
    Buffer.allocUnsafeSlow(manifest.blockSize),
  )
  let wake: (() => void) | undefined
  const give = (buf: Buffer): void => {
    free.push(buf)
    wake?.()
  }
  /** Waits until `event` fires on `out` or `out` closes; listeners are removed either way. */
  const until = (event: 'drain' | 'freed'): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = (): void => {
        wake = undefined
        out.off('drain', done)
        out.off('close', done)
        resolve()
      }
      if (event === 'drain') out.on('drain', done)
      else wake = done
      out.on('close', done)
    })
  const take = async (): Promise<Buffer | undefined> => {
    while (free.length === 0) {
      if (out.destroyed) return undefined
      await until('freed')
    }
    return free.pop()
  }

  if (remaining > 0) {
    for await (const digest of store.treeDigests(manifest.treeCid)) {
      if (out.destroyed) return
      const cid = blockCidFromDigest(Uint8Array.from(digest))
      const buf = await take()
      if (buf === undefined) return
      const bytesRead = await store.readBlockInto(cid, buf)
      if (bytesRead === undefined) {
        give(buf)
        throw new MissingBlockError(index)
      }
      let n = Math.min(remaining, bytesRead)
      let cut = false
      if (limit !== undefined && sent + n >= limit) {
        n = limit - sent
        cut = true
      }
      remaining -= n
      sent += n
      index++
      if (n > 0) out.write(buf.subarray(0, n), () => give(buf))
      else give(buf)
      if (cut) {
        await new Promise((resolve) => setTimeout(resolve, 10))
        out.destroy()
        return
      }
      if (remaining === 0) break
      if (out.writableNeedDrain) await until('drain')
    }
  }
  if (remaining > 0) throw new MissingBlockError(index)
  await new Promise<void>((resolve) => out.end(resolve))
}
