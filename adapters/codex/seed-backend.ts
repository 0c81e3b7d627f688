/**
 * Wiring of the seed read path in one call, for the composition root (`gateway/app.ts`):
 * `SegmentCache` (on disk, bounded) → `CodexFileReader` (ranged or sequential Codex fetches) →
 * `CodexSeedStore` (whole-piece verification, read-only `PieceStore`).
 *
 *   const seed = await openCodexSeedBackend({ client, cacheDir, resolve })
 *   await session.addTorrent({ metainfo, store: seed.store })
 *   …
 *   await seed.close() // after the session stopped its torrents
 *
 * `resolve` maps a torrent to its file CIDs and verification, e.g. from the catalog:
 *   resolve: async (info) => seedResolution(metainfoOf(info), cidsOf(info))
 */

import type { EngineLogger } from '../../gateway/engine/logger.ts'
import type { AbortOptions } from '../../gateway/protocol/types.ts'
import { CodexFileReader, type CodexFileReaderInit, type CodexFileReaderStats } from './codex-file-reader.ts'
import type { CodexReadClient } from './seed-read-stream.ts'
import { CodexSeedStore, type CodexSeedStoreInit, type CodexSeedStoreStats } from './seed-store.ts'
import { SegmentCache } from './segment-cache.ts'

export interface CodexSeedBackendInit {
  /** A `CodexClient` (one per Codex node). */
  readonly client: CodexReadClient
  /** Segment cache directory (our `.seg`/`.tmp` files in it are wiped at open). */
  readonly cacheDir: string
  /** @default 1 GiB */
  readonly cacheMaxBytes?: number
  /** @default 4 MiB */
  readonly segmentBytes?: number
  readonly resolve: CodexSeedStoreInit['resolve']
  /** Verified pieces kept in memory. @default 64 MiB */
  readonly pieceCacheBytes?: number
  readonly verifyAttempts?: number
  readonly onVerifyFailure?: CodexSeedStoreInit['onVerifyFailure']
  /** Reader tuning (read-ahead, deadlines, retries, stream idle time). */
  readonly reader?: Omit<CodexFileReaderInit, 'client' | 'cache' | 'logger'>
  readonly logger?: EngineLogger
}

export interface CodexSeedBackend {
  readonly store: CodexSeedStore
  readonly reader: CodexFileReader
  readonly cache: SegmentCache
  /** Counters for metrics: store (pieces, verification) and reader (Codex traffic, cache). */
  stats(): { readonly store: CodexSeedStoreStats; readonly reader: CodexFileReaderStats }
  /** Closes the reader (aborting fetches, destroying streams), then the cache. Idempotent. */
  close(): Promise<void>
}

/** Opens the cache and builds the reader and the store. */
export async function openCodexSeedBackend(
  init: CodexSeedBackendInit,
  options: AbortOptions = {},
): Promise<CodexSeedBackend> {
  const cache = new SegmentCache({
    dir: init.cacheDir,
    ...(init.cacheMaxBytes !== undefined ? { maxBytes: init.cacheMaxBytes } : {}),
    ...(init.segmentBytes !== undefined ? { segmentBytes: init.segmentBytes } : {}),
  })
  await cache.open(options)
  const reader = new CodexFileReader({
    ...init.reader,
    client: init.client,
    cache,
    ...(init.logger ? { logger: init.logger.child({ component: 'codex-reader' }) } : {}),
  })
  const store = new CodexSeedStore({
    reader,
    resolve: init.resolve,
    ...(init.pieceCacheBytes !== undefined ? { pieceCacheBytes: init.pieceCacheBytes } : {}),
    ...(init.verifyAttempts !== undefined ? { verifyAttempts: init.verifyAttempts } : {}),
    ...(init.onVerifyFailure ? { onVerifyFailure: init.onVerifyFailure } : {}),
    ...(init.logger ? { logger: init.logger } : {}),
  })
  let closing: Promise<void> | undefined
  return {
    store,
    reader,
    cache,
    stats: () => ({ store: store.stats, reader: reader.stats }),
    close: () => {
      closing ??= (async () => {
        await reader.close()
        await cache.close()
      })()
      return closing
    },
  }
}
