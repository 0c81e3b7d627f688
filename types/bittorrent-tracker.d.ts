/**
 * Minimal types for the `bittorrent-tracker` Server (v11), used by the tests as a real tracker
 * on 127.0.0.1. Only the server side is typed.
 */
declare module 'bittorrent-tracker' {
  import type { Socket } from 'node:dgram'
  import { EventEmitter } from 'node:events'
  import type { Server as HttpServer } from 'node:http'

  export interface TrackerServerOptions {
    /** Announce interval told to clients, in ms. @default 600_000 */
    interval?: number
    trustProxy?: boolean
    http?: boolean
    udp?: boolean
    ws?: boolean
    stats?: boolean
    filter?: (infoHash: string, params: Record<string, unknown>, cb: (err: Error | null) => void) => void
  }

  /** One swarm as the server tracks it. */
  export interface TrackerSwarm {
    readonly infoHash: string
    complete: number
    incomplete: number
  }

  export class Server extends EventEmitter {
    constructor(opts?: TrackerServerOptions)
    readonly http: HttpServer | null
    readonly udp: Socket | null
    readonly udp4: Socket | null
    readonly udp6: Socket | null
    listening: boolean
    destroyed: boolean
    /** Swarms by lowercase hex info hash. */
    readonly torrents: Record<string, TrackerSwarm | undefined>
    /**
     * `port` may be a number or `{ http, udp }`; `hostname` a string or `{ http, udp, udp6 }`.
     */
    listen(
      port?: number | { http?: number; udp?: number },
      hostname?: string | { http?: string; udp?: string; udp6?: string },
      onlistening?: () => void,
    ): void
    close(cb?: (err?: Error | null) => void): void
    getSwarm(infoHash: string, cb: (err: Error | null, swarm?: TrackerSwarm) => void): void

    on(event: 'listening', listener: () => void): this
    on(event: 'error' | 'warning', listener: (err: Error) => void): this
    on(
      event: 'start' | 'complete' | 'update' | 'stop',
      listener: (addr: string, params: Record<string, unknown>) => void,
    ): this
  }

  export default class Client extends EventEmitter {}
}
