/**
 * Our mainline DHT node (BEP5): a small typed wrapper around `bittorrent-dht`.
 *
 * - Binds exactly `host:port` and bootstraps from exactly the `bootstrap` list it is given
 *   (`[]` = no bootstrap at all; the public routers are only a default of the config layer,
 *   {@link PUBLIC_DHT_ROUTERS}). The wrapper never lets the library fall back to public routers.
 * - Persists the routing table (node id + contacts, JSON) to `statePath` on stop and reloads it at
 *   start, so a restart does not need the bootstrap routers.
 * - `lookup` streams peers of one 20-byte info hash (v1, or v2 truncated per BEP52) to a callback;
 *   `announce` tells the closest nodes we serve that swarm on a TCP port (BEP5 `announce_peer`).
 * IPv4 only: `bittorrent-dht` implements BEP5's IPv4 compact formats, not BEP32.
 */

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { isIPv4 } from 'node:net'
import { dirname } from 'node:path'
import DHT from 'bittorrent-dht'
import { fromHex, toHex } from '../../protocol/hex.ts'
import {
  DiscoveryError,
  type DiscoveryLogger,
  InvalidInfoHashError,
  isValidPeerAddress,
  type PeerAddress,
  silentLogger,
} from './peer-source.ts'

/** Production default bootstrap routers (used by the config layer, never implicitly here). */
export const PUBLIC_DHT_ROUTERS: readonly string[] = Object.freeze([
  'router.bittorrent.com:6881',
  'dht.transmissionbt.com:6881',
  'router.utorrent.com:6881',
])

/** BEP5 `port` contacts pinged per minute at most ({@link DhtNode.addNode}). */
export const ADD_NODE_PER_MINUTE = 30
/** An address from a `port` message is pinged at most once in this time. */
const ADD_NODE_MEMORY_MS = 10 * 60_000
const ADD_NODE_MEMORY_ENTRIES = 1024

/** A DHT operation failed (bind, bad option, announce reached nobody, stopped). */
export class DhtError extends DiscoveryError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'DhtError'
  }
}

export interface DhtNodeInit {
  /** `host:port` bootstrap nodes; `[]` = none. Required: there is deliberately no default. */
  readonly bootstrap: readonly string[]
  /** IPv4 address to bind, e.g. `0.0.0.0` in production, `127.0.0.1` in tests. */
  readonly host: string
  /** UDP port; 0 picks a free one. */
  readonly port: number
  /** JSON file holding the routing table between runs. */
  readonly statePath?: string
  /** Node id (20 bytes); else the persisted one; else random. */
  readonly nodeId?: Uint8Array
  /** Timeout of one KRPC query. @default 2000 */
  readonly queryTimeoutMs?: number
  /** `start` waits at most this long for the bootstrap to finish. @default 10_000 */
  readonly readyTimeoutMs?: number
  /** Contacts written to the state file at most. @default 400 */
  readonly maxSavedNodes?: number
  /** Peers collected by one lookup at most. @default 1000 */
  readonly maxLookupPeers?: number
  readonly logger?: DiscoveryLogger
}

export interface DhtLookupOptions {
  readonly signal?: AbortSignal
  /** Receives new (deduplicated) peers as they arrive. Must not throw. */
  readonly onPeers?: (peers: readonly PeerAddress[]) => void
}

interface SavedState {
  readonly version: 1
  readonly nodeId: string
  readonly nodes: readonly { readonly id?: string; readonly host: string; readonly port: number }[]
}

/** Parses `host:port` (IPv4, hostname, or `[IPv6]:port`). */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim())
  const host = m?.[1] ?? m?.[2]
  const port = Number(m?.[3])
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new DhtError('GW_ERR_DHT_CONFIG', `invalid host:port ${JSON.stringify(text)}`)
  }
  return { host, port }
}

function checkInfoHash(infoHash: Uint8Array): Buffer {
  if (infoHash.byteLength !== 20) throw new InvalidInfoHashError(infoHash.byteLength)
  return Buffer.from(infoHash.buffer, infoHash.byteOffset, infoHash.byteLength)
}

/** One DHT node. Lifecycle: `start` → operations → `stop` (saves state). */
export class DhtNode {
  readonly #init: DhtNodeInit
  readonly #bootstrap: readonly { host: string; port: number }[]
  readonly #log: DiscoveryLogger
  #dht: DHT | undefined
  #state: 'idle' | 'starting' | 'running' | 'stopped' = 'idle'

  constructor(init: DhtNodeInit) {
    if (!Array.isArray(init.bootstrap)) throw new DhtError('GW_ERR_DHT_CONFIG', 'bootstrap must be an array')
    if (!isIPv4(init.host)) throw new DhtError('GW_ERR_DHT_CONFIG', 'host must be an IPv4 address (BEP5)')
    if (!Number.isInteger(init.port) || init.port < 0 || init.port > 65535) {
      throw new DhtError('GW_ERR_DHT_CONFIG', `invalid port ${init.port}`)
    }
    if (init.nodeId !== undefined && init.nodeId.byteLength !== 20) {
      throw new DhtError('GW_ERR_DHT_CONFIG', 'nodeId must be 20 bytes')
    }
    this.#init = init
    this.#bootstrap = Object.freeze(init.bootstrap.map(parseHostPort))
    this.#log = init.logger ?? silentLogger
  }

  /** Binds the socket, loads the saved table, bootstraps (bounded wait). */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state !== 'idle')
      throw new DhtError('GW_ERR_DHT_STATE', `cannot start a ${this.#state} DHT node`)
    this.#state = 'starting'
    const saved = await this.#loadState()
    if (this.#state !== 'starting') throw new DhtError('GW_ERR_DHT_STATE', 'DHT node stopped during start')
    const nodeId = this.#init.nodeId ?? (saved ? fromHex(saved.nodeId, 20) : undefined)
    const dht = new DHT({
      // Always an explicit list: an undefined `bootstrap` would make k-rpc use public routers.
      bootstrap: this.#bootstrap.map((b) => ({ host: b.host, port: b.port })),
      host: false,
      timeout: this.#init.queryTimeoutMs ?? 2000,
      ...(nodeId ? { nodeId: Buffer.from(nodeId) } : {}),
    })
    this.#dht = dht
    dht.on('warning', (err) => this.#log.debug({ err: err.message }, 'dht warning'))
    const ready = new Promise<void>((resolve) => dht.once('ready', resolve))
    const listening = new Promise<void>((resolve, reject) => {
      dht.once('listening', resolve)
      dht.once('error', reject)
      dht.once('close', () => reject(new DhtError('GW_ERR_DHT_STATE', 'DHT node stopped during start')))
    })
    // Bind now, before the library's first (next-tick) query could bind the wildcard address.
    dht.listen(this.#init.port, this.#init.host)
    for (const node of saved?.nodes ?? []) {
      dht.addNode(
        node.id ? { id: Buffer.from(fromHex(node.id, 20)), host: node.host, port: node.port } : node,
      )
    }
    try {
      await listening
    } catch (err) {
      this.#state = 'stopped'
      await new Promise<void>((resolve) => dht.destroy(() => resolve()))
      if (err instanceof DhtError) throw err
      throw new DhtError('GW_ERR_DHT_BIND', `cannot bind ${this.#init.host}:${this.#init.port}`, {
        cause: err,
      })
    }
    dht.on('error', (err) => this.#log.warn({ err: err.message }, 'dht socket error'))
    // stop() may have run while we were binding; it destroyed the node already.
    if (this.#state !== 'starting') throw new DhtError('GW_ERR_DHT_STATE', 'DHT node stopped during start')
    this.#state = 'running'
    await waitBounded(ready, this.#init.readyTimeoutMs ?? 10_000, options.signal)
  }

  /** The bound UDP address (after start). */
  get address(): PeerAddress {
    const dht = this.#running()
    const a = dht.address()
    return { host: a.address, port: a.port }
  }

  /** Contacts in the routing table. */
  routingTableSize(): number {
    return this.#dht?.nodes.count() ?? 0
  }

  /**
   * A DHT node a peer told us about with a BEP5 `port` message ("the node should be inserted into
   * the local routing table"): pinged, and added to the table if it answers. Peer input, so
   * bounded: IPv4 only, each address at most once per {@link ADD_NODE_MEMORY_MS}, at most
   * {@link ADD_NODE_PER_MINUTE} pings a minute. Returns whether a ping was sent.
   */
  addNode(host: string, port: number): boolean {
    const dht = this.#dht
    if (this.#state !== 'running' || dht === undefined) return false
    if (!isIPv4(host) || !Number.isInteger(port) || port < 1 || port > 65535) return false
    const now = Date.now()
    if (now - this.#addWindow.start >= 60_000) this.#addWindow = { start: now, count: 0 }
    if (this.#addWindow.count >= ADD_NODE_PER_MINUTE) return false
    const key = `${host}:${port}`
    const seen = this.#added.get(key)
    if (seen !== undefined && now - seen < ADD_NODE_MEMORY_MS) return false
    const own = dht.address()
    if (port === own.port && (host === own.address || host === '127.0.0.1')) return false
    this.#added.delete(key)
    this.#added.set(key, now)
    for (const [k, at] of this.#added) {
      if (this.#added.size <= ADD_NODE_MEMORY_ENTRIES && now - at < ADD_NODE_MEMORY_MS) break
      this.#added.delete(k)
    }
    this.#addWindow.count++
    dht.addNode({ host, port })
    return true
  }

  #addWindow = { start: 0, count: 0 }
  readonly #added = new Map<string, number>()

  /**
   * BEP5 `get_peers` walk towards `infoHash` (20 bytes). New peers go to `onPeers` as they arrive;
   * resolves with all (deduplicated, at most `maxLookupPeers`) when the walk ends. Rejects with the
   * signal's reason on abort.
   */
  async lookup(infoHash: Uint8Array, options: DhtLookupOptions = {}): Promise<PeerAddress[]> {
    const dht = this.#running()
    const target = checkInfoHash(infoHash)
    options.signal?.throwIfAborted()
    const max = this.#init.maxLookupPeers ?? 1000
    const seen = new Set<string>()
    const found: PeerAddress[] = []
    const onPeer = (peer: { host: string; port: number }, hash: Uint8Array) => {
      if (found.length >= max || !target.equals(hash)) return
      const p = { host: peer.host, port: peer.port }
      const key = `${p.host}:${p.port}`
      if (!isValidPeerAddress(p) || seen.has(key)) return
      seen.add(key)
      found.push(p)
      try {
        options.onPeers?.([p])
      } catch (err) {
        this.#log.warn({ err: (err as Error)?.message }, 'dht onPeers callback threw')
      }
    }
    const { promise, resolve, reject } = Promise.withResolvers<PeerAddress[]>()
    dht.on('peer', onPeer)
    const cancel = dht.lookup(target, (err) => {
      if (err) reject(new DhtError('GW_ERR_DHT_LOOKUP', err.message, { cause: err }))
      else resolve(found)
    })
    const onAbort = () => {
      cancel()
      reject(options.signal?.reason)
    }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      return await promise
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
      dht.off('peer', onPeer)
    }
  }

  /**
   * BEP5 `announce_peer` for `infoHash` on TCP `port` (0 = implied: the DHT socket's port) to the
   * closest nodes (a lookup first if needed). Rejects if no node accepted it.
   */
  async announce(infoHash: Uint8Array, port: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    const dht = this.#running()
    const target = checkInfoHash(infoHash)
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new DhtError('GW_ERR_DHT_ARGUMENT', `invalid port ${port}`)
    }
    options.signal?.throwIfAborted()
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    dht.announce(target, port, (err) => {
      if (err) reject(new DhtError('GW_ERR_DHT_ANNOUNCE', `announce failed: ${err.message}`, { cause: err }))
      else resolve()
    })
    // The library cannot cancel an announce; on abort we stop waiting for it.
    const onAbort = () => reject(options.signal?.reason)
    options.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      await promise
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Writes the routing table to `statePath` (atomically); no-op without a path. */
  async saveState(): Promise<void> {
    const path = this.#init.statePath
    const dht = this.#dht
    if (path === undefined || dht === undefined) return
    const max = this.#init.maxSavedNodes ?? 400
    const state: SavedState = {
      version: 1,
      nodeId: toHex(dht.nodeId),
      nodes: dht.nodes
        .toArray()
        .slice(0, max)
        .map((c) => ({ id: toHex(c.id), host: c.host, port: c.port })),
    }
    await mkdir(dirname(path), { recursive: true })
    const tmp = `${path}.${process.pid}.tmp`
    await writeFile(tmp, `${JSON.stringify(state)}\n`, { mode: 0o600 })
    await rename(tmp, path)
  }

  /** Saves state (errors logged) and closes the socket. Idempotent; also cancels a running start. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return
    // Only a node that finished starting has a table worth keeping (do not clobber the file).
    const save = this.#state === 'running'
    this.#state = 'stopped'
    const dht = this.#dht
    if (dht === undefined) return
    if (save) {
      try {
        await this.saveState()
      } catch (err) {
        this.#log.warn({ err: (err as Error).message, path: this.#init.statePath }, 'dht state not saved')
      }
    }
    await new Promise<void>((resolve) => dht.destroy(() => resolve()))
  }

  #running(): DHT {
    if (this.#state !== 'running' || this.#dht === undefined) {
      throw new DhtError('GW_ERR_DHT_STATE', 'DHT node is not running')
    }
    return this.#dht
  }

  /** Reads and validates the state file; a missing or bad file means "no state". */
  async #loadState(): Promise<SavedState | undefined> {
    const path = this.#init.statePath
    if (path === undefined) return undefined
    let raw: string
    try {
      raw = await readFile(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#log.warn({ err: (err as Error).message, path }, 'dht state unreadable')
      }
      return undefined
    }
    try {
      return validateState(JSON.parse(raw), this.#init.maxSavedNodes ?? 400)
    } catch (err) {
      this.#log.warn({ err: (err as Error).message, path }, 'dht state ignored')
      return undefined
    }
  }
}

/** Validates a parsed state file; drops invalid contacts. */
function validateState(value: unknown, maxNodes: number): SavedState {
  const v = value as Partial<SavedState> | null
  if (v === null || typeof v !== 'object' || v.version !== 1 || typeof v.nodeId !== 'string') {
    throw new DhtError('GW_ERR_DHT_STATE_FILE', 'unrecognised state file')
  }
  fromHex(v.nodeId, 20)
  const nodes: { id?: string; host: string; port: number }[] = []
  for (const n of Array.isArray(v.nodes) ? v.nodes : []) {
    if (nodes.length >= maxNodes) break
    if (typeof n !== 'object' || n === null || typeof n.host !== 'string' || !isIPv4(n.host)) continue
    if (!Number.isInteger(n.port) || n.port < 1 || n.port > 65535) continue
    const idOk = typeof n.id === 'string' && /^[0-9a-f]{40}$/i.test(n.id)
    nodes.push({ ...(idOk ? { id: n.id } : {}), host: n.host, port: n.port })
  }
  return { version: 1, nodeId: v.nodeId, nodes }
}

/** Waits for `p` at most `ms` (resolves either way); rejects on abort. */
async function waitBounded(p: Promise<void>, ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    await Promise.race([
      p,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms)
      }),
      new Promise<void>((_, reject) => {
        onAbort = () => reject(signal?.reason)
        signal?.addEventListener('abort', onAbort, { once: true })
      }),
    ])
  } finally {
    clearTimeout(timer)
    if (onAbort) signal?.removeEventListener('abort', onAbort)
  }
}
