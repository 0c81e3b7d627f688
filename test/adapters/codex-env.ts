/**
 * Test environment for the Codex adapters: a local Codex node over real HTTP on 127.0.0.1, a
 * Codex client, a catalog and staging directory in a fresh temp dir, and helpers to build
 * torrents with the project's creator and to read a dataset back.
 */

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { Catalog } from '../../adapters/catalog.ts'
import {
  CodexPieceStore,
  type CodexPieceStoreInit,
  type CodexTorrentStorage,
} from '../../adapters/codex/codex-store.ts'
import { CodexClient } from '../../codex-client/index.ts'
import { type LocalCodexNode, startLocalCodexNode } from '../../codex-client/local-node/index.ts'
import type { PieceGeometry } from '../../gateway/engine/piece-geometry.ts'
import { defaultHashWant, type PieceHashes } from '../../gateway/engine/storage.ts'
import type { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import { createTorrent, type TorrentSourceFile } from '../../gateway/protocol/create-torrent.ts'
import { hashPieceV2 } from '../../gateway/protocol/hashers.ts'
import { equalBytes, toHex } from '../../gateway/protocol/hex.ts'
import { merkleRoot } from '../../gateway/protocol/merkle.ts'
import type { Metainfo, TorrentVersion } from '../../gateway/protocol/types.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'
import { xorshiftBytes } from '../helpers/prng.ts'

/** A started local node plus a client on it. */
export interface CodexNodeEnv {
  readonly node: LocalCodexNode
  readonly client: CodexClient
  readonly dir: string
  close(): Promise<void>
}

/** Starts a local Codex node in a temp dir (quota optional) and a client with small timeouts. */
export async function startCodex(options: { quotaBytes?: number } = {}): Promise<CodexNodeEnv> {
  const dir = await mkdtemp(join(tmpdir(), 'codex-adapter-'))
  const node = await startLocalCodexNode({
    dataDir: join(dir, 'node'),
    port: 0,
    ...(options.quotaBytes !== undefined ? { quotaBytes: options.quotaBytes } : {}),
  })
  const client = new CodexClient({ url: node.url, timeoutMs: 10_000, retry: { attempts: 1 } })
  return {
    node,
    client,
    dir,
    async close() {
      await client.destroy()
      await node.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/**
 * One local Codex node for the whole test file: started in a `before` hook, closed in an `after`
 * hook. The returned env reads through to that node (use it inside tests and hooks only).
 */
export function codexForFile(options: { quotaBytes?: number } = {}): CodexNodeEnv {
  let env: CodexNodeEnv | undefined
  before(async () => {
    env = await startCodex(options)
  })
  after(async () => {
    await env?.close()
  })
  const started = (): CodexNodeEnv => {
    if (env === undefined) throw new Error('the Codex node starts in the before hook')
    return env
  }
  return {
    get node() {
      return started().node
    },
    get client() {
      return started().client
    },
    get dir() {
      return started().dir
    },
    close: () => started().close(),
  }
}

/** The open torrent storage of `torrent` (a metainfo or its id) in a Codex store; asserts it is open. */
export function backendOf(
  store: { get(id: string): CodexTorrentStorage | undefined },
  torrent: Metainfo | string,
): CodexTorrentStorage {
  const id =
    typeof torrent === 'string'
      ? torrent
      : toHex(torrent.info.infoHashV1 ?? (torrent.info.infoHashV2 as Uint8Array))
  const backend = store.get(id)
  assert.ok(backend, 'the torrent is open in the store')
  return backend
}

/** A catalog + staging dir + store on a node; `reopen` gives a new store over the same state. */
export interface StoreEnv {
  readonly catalog: Catalog
  readonly stagingDir: string
  readonly store: CodexPieceStore
  reopen(overrides?: Partial<CodexPieceStoreInit>): CodexPieceStore
  close(): Promise<void>
}

export async function makeStore(
  codex: CodexNodeEnv,
  init: Partial<CodexPieceStoreInit> = {},
): Promise<StoreEnv> {
  const dir = await mkdtemp(join(codex.dir, 'store-'))
  const catalog = Catalog.open(join(dir, 'catalog.sqlite'))
  const stagingDir = join(dir, 'staging')
  const stores: CodexPieceStore[] = []
  const build = (overrides: Partial<CodexPieceStoreInit> = {}): CodexPieceStore => {
    const store = new CodexPieceStore({
      client: codex.client,
      catalog,
      stagingDir,
      segmentBytes: 64 * 1024,
      uploadStartBytes: 16 * 1024,
      retryBaseDelayMs: 10,
      retryMaxDelayMs: 100,
      probeIntervalMs: 50,
      ...init,
      ...overrides,
    })
    stores.push(store)
    return store
  }
  const store = build()
  return {
    catalog,
    stagingDir,
    store,
    reopen: build,
    async close() {
      for (const s of stores) await s.close()
      catalog.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** Deterministic pseudo-random bytes (xorshift), never all zero. */
export function payload(length: number, seed: number): Uint8Array {
  return xorshiftBytes(length, (seed * 2654435761) >>> 0)
}

/** A file of a test torrent with its bytes. */
export interface SourceFile {
  readonly path: readonly string[]
  readonly data: Uint8Array
}

/** Builds a .torrent with the project's creator from in-memory files. */
export async function makeTorrent(
  name: string,
  files: readonly SourceFile[],
  options: {
    version?: TorrentVersion
    pieceLength?: number
    trackers?: string[][]
    webseeds?: string[]
  } = {},
): Promise<{ bytes: Uint8Array; metainfo: Metainfo }> {
  const sources: TorrentSourceFile[] = files.map((f) => ({
    path: f.path,
    length: f.data.byteLength,
    open: () =>
      (async function* () {
        if (f.data.byteLength > 0) yield f.data
      })(),
  }))
  return createTorrent({
    name,
    files: sources,
    ...(options.version !== undefined ? { version: options.version } : {}),
    ...(options.pieceLength !== undefined ? { pieceLength: options.pieceLength } : {}),
    ...(options.trackers !== undefined ? { trackers: options.trackers } : {}),
    ...(options.webseeds !== undefined ? { webseeds: options.webseeds } : {}),
  })
}

/** The linear piece space of a torrent built from `files` (padding as zeros), by path. */
export function linearFromFiles(metainfo: Metainfo, files: readonly SourceFile[]): Uint8Array {
  const info = metainfo.info
  const out = new Uint8Array(info.totalLength)
  const byPath = new Map(files.map((f) => [f.path.join('/'), f.data]))
  for (const entry of info.files) {
    if (entry.padding) continue
    const data = byPath.get(entry.path.join('/'))
    if (data === undefined) throw new Error(`no data for ${entry.path.join('/')}`)
    out.set(data, entry.offset)
  }
  return out
}

/** Downloads a whole dataset through the client. */
export async function downloadAll(client: CodexClient, cid: string): Promise<Uint8Array> {
  const dl = await client.download(cid)
  const parts: Uint8Array[] = []
  for await (const chunk of dl.body as AsyncIterable<Uint8Array>) parts.push(chunk)
  return new Uint8Array(Buffer.concat(parts))
}

/** Polls `predicate` every 10 ms until true; fails after `timeoutMs`. */
export async function waitUntil(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

// ---- ingest helpers ----------------------------------------------------------------------------

/** Seeded PRNG (mulberry32) for shuffles. */
export { mulberry32 as rng } from '../helpers/prng.ts'

export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const tmp = items[i] as T
    items[i] = items[j] as T
    items[j] = tmp
  }
  return items
}

/** True when the piece's hashes match the torrent (v1 SHA-1 and/or BEP52 piece layer / root). */
export function verifyPiece(
  metainfo: Metainfo,
  geometry: PieceGeometry,
  piece: number,
  hashes: PieceHashes,
): boolean {
  const info = metainfo.info
  if (info.pieces !== undefined) {
    const expected = info.pieces.subarray(piece * 20, piece * 20 + 20)
    if (hashes.sha1 === undefined || !equalBytes(hashes.sha1, expected)) return false
  }
  if (info.version === 'v1') return true
  const loc = geometry.v2Location(piece)
  if (loc === undefined) return true
  const leaves = hashes.v2Leaves
  const root = loc.file.piecesRoot
  if (leaves === undefined || root === undefined) return false
  if (loc.file.length <= info.pieceLength) return equalBytes(merkleRoot(leaves), root)
  const layer = metainfo.pieceLayers.get(toHex(root))
  if (layer === undefined) return false
  const expected = layer.subarray(loc.pieceInFile * 32, loc.pieceInFile * 32 + 32)
  return equalBytes(hashPieceV2(leaves, info.pieceLength), expected)
}

/** Writes one piece (blocks in random order, concurrently), hashes, verifies and commits it. */
export async function ingestPiece(
  storage: StorageFacade,
  metainfo: Metainfo,
  piece: number,
  bytesAt: (linearOffset: number, length: number) => Uint8Array,
  random: () => number = Math.random,
): Promise<void> {
  const geometry = storage.geometry
  const size = geometry.pieceSize(piece)
  const offsets: number[] = []
  for (let o = 0; o < size; o += BLOCK_SIZE) offsets.push(o)
  shuffle(offsets, random)
  await Promise.all(
    offsets.map((o) => {
      const length = Math.min(BLOCK_SIZE, size - o)
      return storage.writeBlock(piece, o, bytesAt(piece * geometry.pieceLength + o, length))
    }),
  )
  const hashes = await storage.hashPiece(piece, defaultHashWant(metainfo.info))
  if (!verifyPiece(metainfo, geometry, piece, hashes)) throw new Error(`piece ${piece} failed verification`)
  await storage.commitPiece(piece)
}
