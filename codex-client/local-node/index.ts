/**
 * The local Codex node: an in-process HTTP server with the same REST API and behaviour as a
 * Codex (nim-codex master) node without marketplace, storing blocks on disk under `dataDir`.
 * It is the Codex of the test suite and the gateway's embedded default.
 *
 *   const node = await startLocalCodexNode({ dataDir })
 *   // node.apiUrl === 'http://127.0.0.1:<port>/api/codex/v1'
 *   await node.close()
 *
 * All state lives under `dataDir` and survives a restart. Uploads and downloads stream with
 * backpressure; memory does not grow with the size of a dataset. `node.faults` injects failures
 * for tests of other components (see `faults.ts`).
 */
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { API_PREFIX, FaultController } from './faults.ts'
import { loadIdentity } from './identity.ts'
import { buildServer } from './server.ts'
import { DEFAULT_QUOTA_BYTES, DiskStore } from './store.ts'

export type { FailOptions } from './faults.ts'
export { FaultController } from './faults.ts'
export { DEFAULT_QUOTA_BYTES } from './store.ts'

export interface LocalCodexNodeInit {
  /** Directory for all node state (created when missing). */
  dataDir: string
  /** Listen address (default 127.0.0.1). */
  host?: string
  /** Listen port (default 0: an ephemeral port). */
  port?: number
  /** Storage quota in bytes (default 20 GiB, Codex's default). */
  quotaBytes?: number
  /** fastify logging: false (default), true, or a pino logger to use. */
  logger?: boolean | Logger
  /**
   * How long network routes wait before answering 404 for a CID that is not stored (a real node
   * keeps asking peers for ~100 minutes). Default 0.
   */
  networkMissingTimeoutMs?: number
}

export interface LocalCodexNode {
  /** Origin, e.g. `http://127.0.0.1:PORT`. */
  readonly url: string
  /** `url` + `/api/codex/v1`. */
  readonly apiUrl: string
  readonly faults: FaultController
  readonly dataDir: string
  close(): Promise<void>
}

export async function startLocalCodexNode(init: LocalCodexNodeInit): Promise<LocalCodexNode> {
  if (typeof init.dataDir !== 'string' || init.dataDir === '')
    throw new TypeError('startLocalCodexNode: dataDir is required')
  const quota = init.quotaBytes ?? DEFAULT_QUOTA_BYTES
  if (!Number.isSafeInteger(quota) || quota < 0)
    throw new RangeError(`startLocalCodexNode: bad quotaBytes ${quota}`)
  const networkMissingTimeoutMs = init.networkMissingTimeoutMs ?? 0
  if (!(networkMissingTimeoutMs >= 0)) {
    throw new RangeError(`startLocalCodexNode: bad networkMissingTimeoutMs ${networkMissingTimeoutMs}`)
  }
  const host = init.host ?? '127.0.0.1'
  const port = init.port ?? 0

  const store = await DiskStore.open(init.dataDir, quota)
  const identity = await loadIdentity(init.dataDir)
  const faults = new FaultController(quota, (bytes) => {
    store.quotaMaxBytes = bytes
  })
  const lifetime = new AbortController()
  const app = buildServer({
    store,
    faults,
    identity,
    dataDir: init.dataDir,
    networkMissingTimeoutMs,
    signal: lifetime.signal,
    logger: init.logger ?? false,
  })
  await app.listen({ host, port })
  const address = app.server.address() as AddressInfo
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${hostPart}:${address.port}`

  let closing: Promise<void> | undefined
  return {
    url,
    apiUrl: `${url}${API_PREFIX}`,
    faults,
    dataDir: init.dataDir,
    close(): Promise<void> {
      closing ??= (async () => {
        lifetime.abort()
        await app.close()
      })()
      return closing
    },
  }
}
