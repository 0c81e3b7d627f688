/**
 * Minimal types for `webtorrent` (v3), used by the tests in Node as a second real BitTorrent client
 * over TCP only (WebRTC is stubbed out; DHT, LSD, trackers, uTP and NAT traversal are switched off).
 * Only what the tests use is typed.
 */
declare module 'webtorrent' {
  import { EventEmitter } from 'node:events'

  export interface WebTorrentOptions {
    dht?: boolean
    lsd?: boolean
    natUpnp?: boolean
    natPmp?: boolean
    utp?: boolean
    tracker?: boolean
    webSeeds?: boolean
    utPex?: boolean
    /** TCP port to listen on; 0 picks a free one. */
    torrentPort?: number
    maxConns?: number
    /** Protocol encryption: 0 = off, 1 = PE with plaintext fallback, 2 = PE only. @default 1 */
    secure?: number
    /** bytes/s, -1 = unlimited */
    downloadLimit?: number
    uploadLimit?: number
  }

  export interface AddOptions {
    /** Directory the torrent's files are read from / written to. */
    path?: string
    announce?: string[]
    /** Assume existing data is complete without checking it. */
    skipVerify?: boolean
    /** Store pieces in memory instead of files. */
    store?: unknown
    /** Do not connect to peers until told to. */
    paused?: boolean
  }

  /** One peer connection (bittorrent-protocol `Wire`). */
  export interface Wire extends EventEmitter {
    readonly remoteAddress: string
    readonly remotePort: number
    readonly peerId: string
    readonly type: string
    downloaded: number
    uploaded: number
    destroy(): void
  }

  export interface TorrentFile {
    readonly name: string
    readonly path: string
    readonly length: number
  }

  export interface Torrent extends EventEmitter {
    readonly infoHash: string
    readonly name: string
    readonly ready: boolean
    readonly done: boolean
    readonly progress: number
    readonly downloaded: number
    readonly uploaded: number
    readonly numPeers: number
    readonly length: number
    readonly path: string
    readonly files: TorrentFile[]
    readonly wires: Wire[]
    /** The .torrent file. */
    readonly torrentFile: Uint8Array
    addPeer(addr: string): boolean
    destroy(opts?: { destroyStore?: boolean }, cb?: (err?: Error | null) => void): void
    on(event: 'done' | 'ready' | 'metadata' | 'noPeers', listener: () => void): this
    on(event: 'error' | 'warning', listener: (err: Error | string) => void): this
    on(event: 'wire', listener: (wire: Wire, addr?: string) => void): this
    on(event: 'download' | 'upload', listener: (bytes: number) => void): this
    once(event: 'done' | 'ready' | 'metadata', listener: () => void): this
    once(event: 'error', listener: (err: Error | string) => void): this
  }

  export default class WebTorrent extends EventEmitter {
    constructor(opts?: WebTorrentOptions)
    readonly torrents: Torrent[]
    readonly listening: boolean
    torrentPort: number
    readonly peerId: string
    add(torrentId: Uint8Array | string, opts?: AddOptions, onTorrent?: (t: Torrent) => void): Torrent
    seed(
      input: string | string[],
      opts?: AddOptions & Record<string, unknown>,
      onSeed?: (t: Torrent) => void,
    ): Torrent
    destroy(cb?: (err?: Error | null) => void): void
    on(event: 'error', listener: (err: Error | string) => void): this
    on(event: 'listening', listener: () => void): this
    once(event: 'listening', listener: () => void): this
    once(event: 'error', listener: (err: Error | string) => void): this
  }
}
