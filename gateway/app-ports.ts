/**
 * Part of the composition root: builds the Codex adapters (ingest store, seed store with its
 * segment cache, the torrent record, create-from-Codex) and exposes them to the service through
 * the narrow ports of `gateway/service/ports.ts`.
 */
import { join } from 'node:path'
import type { Catalog } from '../adapters/catalog.ts'
import { CodexFileReader } from '../adapters/codex/codex-file-reader.ts'
import { CodexPieceStore } from '../adapters/codex/codex-store.ts'
import { createTorrentFromCodex } from '../adapters/codex/create-from-codex.ts'
import { CodexSeedStore, type SeedResolution } from '../adapters/codex/seed-store.ts'
import { SegmentCache } from '../adapters/codex/segment-cache.ts'
import {
  buildRecord,
  importRecord,
  torrentFromMetainfo,
  torrentFromRecord,
  uploadRecord,
} from '../adapters/record.ts'
import type { CodexClient } from '../codex-client/client.ts'
import type { GatewayConfig } from './config.ts'
import type { EngineLogger } from './engine/logger.ts'
import type { Logger } from './observability/logger.ts'
import { toHex } from './protocol/hex.ts'
import type { Metainfo, TorrentInfo } from './protocol/types.ts'
import type {
  CreateFromCodexPort,
  IngestStore,
  RecordPort,
  SeedSource,
  SeedStore,
  UploadStateChange,
} from './service/ports.ts'

export interface CodexPortsInit {
  readonly client: CodexClient
  readonly catalog: Catalog
  readonly config: Pick<GatewayConfig, 'dataDir' | 'stagingMaxBytes' | 'cacheMaxBytes'>
  readonly logger: Logger
}

export interface CodexPorts {
  readonly ingest: IngestStore
  readonly seed: SeedStore
  readonly records: RecordPort
  readonly creator: CreateFromCodexPort
  close(): Promise<void>
}

function infoId(info: TorrentInfo): string {
  return toHex(info.infoHashV1 ?? info.infoHashV2!)
}

export function createCodexPorts(init: CodexPortsInit): CodexPorts {
  const { client, catalog, config } = init
  const log = init.logger.child({ component: 'codex-adapters' }) as unknown as EngineLogger
  const stagingDir = join(config.dataDir, 'staging')
  const uploadStateListeners = new Set<(event: UploadStateChange) => void>()

  // ---- ingest: swarm → staging → Codex (one dataset per file)
  const ingestStore = new CodexPieceStore({
    client,
    catalog,
    stagingDir,
    stagingMaxBytes: config.stagingMaxBytes,
    onUploadStateChange: (e) => {
      log.info({ ...e }, 'Codex upload state changed')
      for (const listener of uploadStateListeners) listener(e)
    },
    onFileUploaded: (e) =>
      log.info({ torrent: e.torrentId, file: e.fileIndex, cid: e.cid }, 'file stored in Codex'),
  })
  const ingest: IngestStore = {
    store: ingestStore,
    progress: (id) => ingestStore.get(id),
    removeStaged: (id) => ingestStore.removeStaged(id),
    staging: () => {
      const s = ingestStore.stats()
      return { usedBytes: s.stagingUsedBytes, limitBytes: s.stagingLimitBytes }
    },
    uploadedBytes: () => ingestStore.stats().bytesUploaded,
    onUploadState: (listener) => {
      uploadStateListeners.add(listener)
      return () => uploadStateListeners.delete(listener)
    },
  }

  // ---- seed: Codex → segment cache → verified pieces → peers
  const cache = new SegmentCache({ dir: join(config.dataDir, 'cache'), maxBytes: config.cacheMaxBytes })
  const reader = new CodexFileReader({ client, cache, logger: log })
  const sources = new Map<string, (info: TorrentInfo) => SeedSource>()
  const seedStore = new CodexSeedStore({
    reader,
    resolve: async (info): Promise<SeedResolution> => {
      const source = sources.get(infoId(info))
      if (!source) throw new Error(`no Codex files registered for torrent ${infoId(info)}`)
      return source(info)
    },
    onVerifyFailure: (e) => log.warn({ ...e }, 'data read from Codex failed verification; refetching'),
    logger: log,
  })
  let cacheOpened: Promise<void> | undefined
  const seed: SeedStore = {
    store: {
      openTorrent: async (info, options) => {
        cacheOpened ??= cache.open(options)
        await cacheOpened
        return seedStore.openTorrent(info, options)
      },
    },
    register: (id, source) => sources.set(id.toLowerCase(), source),
    unregister: (id) => sources.delete(id.toLowerCase()),
    cache: () => {
      const s = reader.stats.cache
      return {
        hits: s.hits,
        misses: s.misses,
        bytes: s.bytesStored,
        limitBytes: config.cacheMaxBytes,
      }
    },
    bytesFromCodex: () => reader.stats.bytesFromCodex,
    verifyFailures: () => seedStore.stats.verifyFailures,
  }

  // ---- the torrent record (the archive address)
  const records: RecordPort = {
    upload: (metainfo, fileCids, original, options) =>
      uploadRecord(
        client,
        buildRecord(metainfo, fileCids, original ? { originalTorrent: original } : {}),
        options?.signal ? { signal: options.signal } : {},
      ),
    fetch: async (cid, options) => {
      const { parsed } = await importRecord(client, catalog, cid, {
        verifyFiles: options?.verifyFiles ?? true,
        ...(options?.signal ? { signal: options.signal } : {}),
      })
      return { torrent: torrentFromRecord(parsed.record), fileCids: parsed.fileCids }
    },
    torrentBytes: (metainfo: Metainfo) => torrentFromMetainfo(metainfo),
  }

  // ---- create a torrent from data already in Codex
  const creator: CreateFromCodexPort = {
    create: async (input, options) => {
      const created = await createTorrentFromCodex(
        {
          client: {
            fetchManifest: (cid, o) => client.fetchManifest(cid, o),
            download: (cid, o) => client.download(cid, o),
            downloadRange: (cid, offset, length, o) => client.downloadRange(cid, offset, length, o),
          },
          files: input.files,
          ...(input.name ? { name: input.name } : {}),
          version: input.version,
          trackers: input.trackers.map((t) => [t]),
          webseeds: input.webseeds,
          dedup: catalog,
        },
        options?.signal ? { signal: options.signal } : {},
      )
      const fileCids = new Map<number, string>()
      created.fileCids.forEach((cid, i) => {
        if (cid) fileCids.set(i, cid)
      })
      return { metainfo: created.metainfo, torrent: created.torrentBytes, fileCids }
    },
  }

  return {
    ingest,
    seed,
    records,
    creator,
    async close() {
      await ingestStore.close().catch((e: unknown) => log.warn({ err: e }, 'closing the ingest store failed'))
      await reader.close?.()
    },
  }
}
