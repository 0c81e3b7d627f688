/**
 * webtorrent (v3, in Node) as a second real BitTorrent client for the interop tests: TCP peers
 * only. WebRTC is replaced by a stub (see test/stubs/webrtc-polyfill), and DHT, LSD, trackers, uTP,
 * web seeds, UPnP and NAT-PMP are off; peers are added by hand with `torrent.addPeer`.
 *
 * webtorrent has no option for the listen address (its connection pool calls
 * `server.listen(port)`, i.e. every interface), so the client is constructed while
 * `net.Server.prototype.listen` is wrapped to add host 127.0.0.1: the listener binds loopback only.
 */
import { Server } from 'node:net'
import WebTorrent, { type AddOptions, type Torrent, type WebTorrentOptions } from 'webtorrent'

export interface WtClient {
  readonly client: WebTorrent
  /** The TCP port the client listens on. */
  readonly port: number
  /** The address its TCP listener is bound to (checked to be 127.0.0.1). */
  readonly listenAddress: string
  /** Adds a torrent (.torrent bytes); resolves once it is ready (existing data verified). */
  add(torrent: Uint8Array, opts: AddOptions, timeoutMs?: number): Promise<Torrent>
  /** Resolves when `t` has every piece; rejects after `timeoutMs`. */
  whenDone(t: Torrent, timeoutMs: number): Promise<void>
  close(): Promise<void>
}

type ListenFn = (this: Server, ...args: unknown[]) => Server

/** Runs `fn` while every `net.Server#listen(port, cb)` call binds 127.0.0.1. */
function withLoopbackListen<T>(fn: () => T): T {
  const proto = Server.prototype as unknown as { listen: ListenFn }
  const original = proto.listen
  proto.listen = function (this: Server, ...args: unknown[]): Server {
    if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function')) {
      return original.call(this, args[0], '127.0.0.1', ...args.slice(1))
    }
    return original.apply(this, args)
  }
  try {
    return fn()
  } finally {
    proto.listen = original
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`webtorrent: ${what} not within ${ms} ms`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

/** Starts a webtorrent client listening on 127.0.0.1 (ephemeral port unless `torrentPort`). */
export async function startWebTorrent(
  opts: Pick<WebTorrentOptions, 'torrentPort' | 'secure' | 'uploadLimit'> = {},
): Promise<WtClient> {
  const client = withLoopbackListen(
    () =>
      new WebTorrent({
        dht: false,
        lsd: false,
        natUpnp: false,
        natPmp: false,
        utp: false,
        tracker: false,
        webSeeds: false,
        utPex: false,
        ...opts,
      }),
  )
  const errors: unknown[] = []
  client.on('error', (e) => errors.push(e))
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        if (client.listening) return resolve()
        client.once('listening', () => resolve())
        client.once('error', (e) => reject(e instanceof Error ? e : new Error(String(e))))
      }),
      10_000,
      'listening',
    )
  } catch (e) {
    await new Promise<void>((r) => client.destroy(() => r()))
    throw e
  }
  const pool = (client as unknown as { _connPool?: { tcpServer?: Server } })._connPool
  const bound = pool?.tcpServer?.address()
  const listenAddress = typeof bound === 'object' && bound ? bound.address : ''
  if (listenAddress !== '127.0.0.1') {
    await new Promise<void>((r) => client.destroy(() => r()))
    throw new Error(`webtorrent listens on ${listenAddress || 'an unknown address'}, not 127.0.0.1`)
  }
  return {
    client,
    port: client.torrentPort,
    listenAddress,
    add: (torrent, addOpts, timeoutMs = 30_000) =>
      withTimeout(
        new Promise<Torrent>((resolve, reject) => {
          const t = client.add(torrent, addOpts)
          t.once('error', (e) => reject(e instanceof Error ? e : new Error(String(e))))
          if (t.ready) resolve(t)
          else t.once('ready', () => resolve(t))
        }),
        timeoutMs,
        'torrent ready',
      ),
    whenDone: (t, timeoutMs) =>
      withTimeout(
        new Promise<void>((resolve) => {
          if (t.done) resolve()
          else t.once('done', () => resolve())
        }),
        timeoutMs,
        `download of ${t.name}`,
      ),
    close: () =>
      withTimeout(new Promise<void>((resolve) => client.destroy(() => resolve())), 10_000, 'destroy').catch(
        () => {},
      ),
  }
}
