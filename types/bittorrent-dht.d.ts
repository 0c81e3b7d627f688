/**
 * Minimal types for `bittorrent-dht` (v11, BEP5 over k-rpc), covering what the gateway and its
 * tests use. Node ids and info hashes are 20-byte buffers; peers are IPv4 only (BEP5).
 */
declare module 'bittorrent-dht' {
  import { EventEmitter } from 'node:events'

  /** A routing-table contact. */
  export interface DhtContact {
    id: Uint8Array
    host: string
    port: number
  }

  export interface DhtBootstrapNode {
    host: string
    port: number
  }

  export interface DhtOptions {
    /** Our node id (20 bytes); random by default. */
    nodeId?: Uint8Array | string
    /**
     * Bootstrap nodes (`host:port` strings or objects). `false` means none. CAUTION: leaving it
     * undefined makes k-rpc use the public routers.
     */
    bootstrap?: false | readonly (string | DhtBootstrapNode)[]
    /** Our public host; when set, `announce` also stores us locally. */
    host?: string | false
    /** Parallel queries. @default 16 */
    concurrency?: number
    /** k-rpc-socket query timeout in ms. @default 2000 */
    timeout?: number
    /** Max tracked peers. @default 10000 */
    maxPeers?: number
    /** Max age of stored peers in ms (0 = no expiry). */
    maxAge?: number
    /** Time after which buckets are considered outdated (ms). @default 15 min */
    timeBucketOutdated?: number
  }

  /** The k-bucket routing table. */
  export interface DhtRoutingTable {
    count(): number
    toArray(): DhtContact[]
  }

  export interface DhtAddress {
    address: string
    family: string
    port: number
  }

  export default class DHT extends EventEmitter {
    constructor(opts?: DhtOptions)
    readonly nodeId: Uint8Array
    readonly nodes: DhtRoutingTable
    listening: boolean
    destroyed: boolean
    ready?: boolean
    /** Binds the UDP socket: `listen(port, host, onlistening)`. */
    listen(port?: number, host?: string, onlistening?: () => void): void
    address(): DhtAddress
    /** With `id` the contact is added directly; without, it is pinged first. */
    addNode(node: { host: string; port: number; id?: Uint8Array | string }): void
    removeNode(id: Uint8Array | string): void
    /** Finds peers for an info hash; peers are emitted as `peer` events. Returns an abort function. */
    lookup(infoHash: Uint8Array | string, cb?: (err: Error | null, nodesVisited?: number) => void): () => void
    /** Announces that we have peers on `port` (0 = implied port). */
    announce(infoHash: Uint8Array | string, port: number, cb?: (err: Error | null) => void): void
    toJSON(): { nodes: { host: string; port: number }[]; values: Record<string, unknown> }
    destroy(cb?: () => void): void

    on(event: 'ready' | 'listening' | 'close', listener: () => void): this
    on(
      event: 'peer',
      listener: (peer: { host: string; port: number }, infoHash: Uint8Array, from: unknown) => void,
    ): this
    on(event: 'node', listener: (node: DhtContact) => void): this
    on(event: 'error' | 'warning', listener: (err: Error) => void): this
    on(
      event: 'announce',
      listener: (peer: { host: string; port: number }, infoHash: Uint8Array) => void,
    ): this
    once(event: 'ready' | 'listening' | 'close', listener: () => void): this
    once(event: 'error', listener: (err: Error) => void): this
    off(event: string, listener: (...args: never[]) => void): this
  }

  export { DHT as Client }
}
