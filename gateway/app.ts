/**
 * The composition root: the ONLY module that wires the engine, the Codex adapters, the Codex
 * client and the HTTP delivery layer together (STYLE.md §7.1).
 *
 * config → logger → Codex (remote URL, or the embedded local Codex node) → metrics → Codex client
 * → catalog → DHT → session → adapters → service → HTTP server.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { Catalog } from '../adapters/catalog.ts'
import { CodexClient } from '../codex-client/client.ts'
import { type LocalCodexNode, startLocalCodexNode } from '../codex-client/local-node/index.ts'
import { createCodexPorts } from './app-ports.ts'
import type { GatewayConfig } from './config.ts'
import { DhtNode } from './engine/discovery/dht.ts'
import type { EngineLogger } from './engine/logger.ts'
import { Session } from './engine/session.ts'
import { buildServer } from './http/server.ts'
import type { Logger } from './observability/logger.ts'
import { createMetrics, type GatewayMetrics } from './observability/metrics.ts'
import type { MetricsSources } from './observability/metrics-sources.ts'
import { Gateway } from './service/gateway-service.ts'

export const VERSION = '0.1.0'

/** How often `codex_bt_codex_up` asks the service to refresh its Codex probe (cached 5 s there). */
const CODEX_PROBE_INTERVAL_MS = 2500

export interface GatewayApp {
  readonly config: GatewayConfig
  /** e.g. http://127.0.0.1:8070 */
  readonly apiUrl: string
  /** The Codex node the gateway uses (remote, or the embedded one). */
  readonly codexUrl: string
  readonly peerPort: number
  readonly server: FastifyInstance
  readonly session: Session
  readonly service: Gateway
  readonly metrics: GatewayMetrics
  /** Graceful shutdown: 503 while closing, persist state, stop transfers within the deadline. */
  stop(): Promise<void>
}

/** Starts the whole gateway. Throws (after releasing what it started) if any part fails to start. */
export async function startGateway(config: GatewayConfig, logger: Logger): Promise<GatewayApp> {
  const log = logger as unknown as EngineLogger
  const cleanups: (() => Promise<void>)[] = []
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.reverse())
      await c().catch((e: unknown) => logger.warn({ err: e }, 'cleanup failed'))
  }
  try {
    await mkdir(config.dataDir, { recursive: true })

    // --- Codex: a remote node, or the embedded local node (the README's start command).
    let localNode: LocalCodexNode | undefined
    let codexUrl = config.codexUrl
    if (!codexUrl) {
      localNode = await startLocalCodexNode({
        dataDir: join(config.dataDir, 'codex'),
        host: config.localCodexHost,
        port: config.localCodexPort,
        logger: logger.child({ component: 'local-codex-node' }, { level: 'warn' }),
      })
      cleanups.push(() => localNode!.close())
      codexUrl = localNode.url
      logger.info(
        { codexApi: localNode.apiUrl, dataDir: localNode.dataDir },
        'no Codex URL configured: started the embedded local Codex node (Codex REST API)',
      )
    }

    // --- Metrics read the live objects at scrape time (they are assigned below).
    const live: {
      service?: Gateway
      session?: Session
      ports?: ReturnType<typeof createCodexPorts>
      dht?: DhtNode
    } = {}
    const sources = metricsSources(live)
    const metrics = createMetrics(sources)

    const auth = config.codexAuth
    const client = new CodexClient({
      url: codexUrl,
      observer: metrics.codexObserver,
      ...(auth
        ? {
            auth:
              auth.kind === 'basic'
                ? { basic: { username: auth.username, password: auth.password } }
                : { bearer: auth.token },
          }
        : {}),
    })
    cleanups.push(() => client.close())

    const catalog = Catalog.open(join(config.dataDir, 'catalog.sqlite'))
    cleanups.push(async () => catalog.close())

    // --- DHT (production default: public routers; tests pass loopback nodes or disable it).
    let dht: DhtNode | undefined
    if (config.dht) {
      dht = new DhtNode({
        bootstrap: config.dhtBootstrap.map((h) => `${h.host}:${h.port}`),
        host: config.peerHost === '::' ? '0.0.0.0' : config.peerHost,
        port: config.dhtPort,
        statePath: join(config.dataDir, 'dht-state.json'),
        logger: logger.child({ component: 'dht' }),
      })
      await dht.start()
      cleanups.push(() => dht!.stop())
      live.dht = dht
    }

    const session = new Session({
      listen: { host: config.peerHost, port: config.peerPort },
      maxConnections: config.maxConnections,
      maxConnectionsPerTorrent: config.maxConnectionsPerTorrent,
      uploadSlots: config.uploadSlots,
      downloadRateLimit: config.downloadRateLimit,
      uploadRateLimit: config.uploadRateLimit,
      defaultTrackers: config.trackers,
      logger: log.child({ component: 'engine' }),
      ...(dht ? { dht } : {}),
    })
    await session.start()
    cleanups.push(() => session.stop())
    live.session = session

    const ports = createCodexPorts({ client, catalog, config, logger })
    cleanups.push(() => ports.close())
    live.ports = ports

    const service = new Gateway({
      session,
      catalog,
      ingest: ports.ingest,
      seed: ports.seed,
      records: ports.records,
      creator: ports.creator,
      codexProbe: async (signal) => {
        await client.space({ signal })
      },
      codexDelete: (cid, signal) => client.delete(cid, { signal }),
      codexTreeOf: async (cid, signal) => {
        const item = await client.fetchManifest(cid, { signal })
        return { tree: item.manifest.treeCid, size: item.manifest.datasetSize }
      },
      dataDir: config.dataDir,
      logger: log.child({ component: 'service' }),
      version: VERSION,
      observeArchiveJob: (s, r) => metrics.observeArchiveJob(s, r),
    })
    live.service = service

    const server = buildServer({ service, metrics, logger, config, version: VERSION })
    await server.listen({ host: config.apiHost, port: config.apiPort })
    const addr = server.server.address()
    const apiPort = typeof addr === 'object' && addr ? addr.port : config.apiPort
    const apiHost = config.apiHost.includes(':') ? `[${config.apiHost}]` : config.apiHost
    const apiUrl = `http://${apiHost}:${apiPort}`
    logger.info({ api: apiUrl, peerPort: session.port, codex: codexUrl }, 'gateway started')

    await service.start()

    // `codex_bt_codex_up` shows the last Codex probe of the service, which only /readyz ran:
    // without a readiness poller the metric stayed 0 (CodexDown fired) on a healthy gateway.
    const probeCodex = (): void => {
      service.ready().catch((e: unknown) => logger.debug({ err: e }, 'Codex probe failed'))
    }
    probeCodex()
    const codexProbeTimer = setInterval(probeCodex, CODEX_PROBE_INTERVAL_MS)
    codexProbeTimer.unref()

    let stopping: Promise<void> | undefined
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        logger.info('shutting down')
        clearInterval(codexProbeTimer)
        service.stop()
        const deadline = new Promise<void>((r) => setTimeout(r, config.shutdownTimeoutMs).unref())
        const closeServer = server.close()
        // Transfers get the configured grace period; session.stop() is idempotent, so the cleanup
        // chain below (which also stops it) only waits for what is left after the deadline.
        await Promise.race([session.stop(), deadline])
        await closeServer.catch(() => {})
        await cleanup()
        logger.info('stopped')
      })()
      return stopping
    }
    return { config, apiUrl, codexUrl, peerPort: session.port, server, session, service, metrics, stop }
  } catch (e) {
    await cleanup()
    throw e
  }
}

/** The metrics module's view of the running gateway (read at scrape time). */
function metricsSources(live: {
  service?: Gateway
  session?: Session
  ports?: ReturnType<typeof createCodexPorts>
  dht?: DhtNode
}): MetricsSources {
  const torrents = () => live.session?.torrents() ?? []
  return {
    transfer: () => {
      let down = 0
      let up = 0
      for (const t of torrents()) {
        down += t.stats.downloadedBytes
        up += t.stats.uploadedBytes
      }
      return {
        downloadedBytes: { peers: down, codex: live.ports?.seed.bytesFromCodex() ?? 0 },
        uploadedBytes: { peers: up, codex: live.ports?.ingest.uploadedBytes() ?? 0 },
      }
    },
    torrents: () =>
      torrents().map((t) => {
        const s = t.status()
        return {
          infoHash: t.id,
          state: live.service?.stateOf(t.id) ?? s.state,
          downloadedBytes: s.downloaded,
          uploadedBytes: s.uploaded,
          peers: s.peers,
        }
      }),
    pieces: () => {
      let verified = 0
      let failed = 0
      for (const t of torrents()) {
        verified += t.stats.piecesVerified
        failed += t.stats.piecesFailed
      }
      return { verified, failed }
    },
    peersByClient: () => {
      const m: Record<string, number> = {}
      for (const t of torrents()) {
        for (const p of t.peers.values()) {
          const name = (p.client || 'unknown').replace(/[^\w.\- ]/g, '').slice(0, 40) || 'unknown'
          m[name] = (m[name] ?? 0) + 1
        }
      }
      return m
    },
    trackerAnnounces: () => {
      const m: Record<string, number> = { success: 0, failure: 0, error: 0 }
      for (const t of torrents()) {
        const a = live.session?.trackerStats(t.id)?.announces
        if (!a) continue
        for (const [k, v] of Object.entries(a)) m[k] = (m[k] ?? 0) + v
      }
      return m
    },
    dht: () => ({ nodes: live.dht?.routingTableSize() ?? 0 }),
    codex: () => ({ reachable: live.service?.codexReachable() ?? false }),
    cache: () => live.ports?.seed.cache() ?? { hits: 0, misses: 0, bytes: 0, limitBytes: 0 },
    staging: () => live.ports?.ingest.staging() ?? { usedBytes: 0, limitBytes: 0 },
    archiveJobs: () => live.service?.archiveJobs() ?? { active: 0, queued: 0, oldestActiveAgeSeconds: 0 },
    seedVerifyFailures: () => live.ports?.seed.verifyFailures() ?? 0,
  }
}
