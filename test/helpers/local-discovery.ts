/**
 * Peer discovery services for tests, on 127.0.0.1 only: a `bittorrent-tracker` server (HTTP or
 * UDP) and a private DHT of `bittorrent-dht` nodes that know only each other.
 */
import DHT from 'bittorrent-dht'
import { Server as TrackerServer } from 'bittorrent-tracker'

const HOST = '127.0.0.1'

/** A tracker on 127.0.0.1 (announce interval 2 s) and the announce URL to put in a .torrent. */
export async function startTracker(kind: 'http' | 'udp'): Promise<{ server: TrackerServer; url: string }> {
  const server = new TrackerServer({
    http: kind === 'http',
    udp: kind === 'udp',
    ws: false,
    stats: false,
    interval: 2000,
  })
  server.on('warning', () => {})
  server.on('error', () => {})
  await new Promise<void>((resolve) =>
    kind === 'http'
      ? server.listen(0, HOST, resolve)
      : // udp6 bound to the IPv4-mapped loopback address: nothing leaves 127.0.0.1
        server.listen(0, { udp: HOST, udp6: '::ffff:127.0.0.1' }, resolve),
  )
  if (kind === 'http') {
    const a = server.http!.address()
    const port = typeof a === 'object' && a ? a.port : 0
    return { server, url: `http://${HOST}:${port}/announce` }
  }
  return { server, url: `udp://${HOST}:${server.udp4!.address().port}` }
}

export function closeTracker(server: TrackerServer): Promise<void> {
  return new Promise((r) => server.close(() => r()))
}

/**
 * Starts `n` plain bittorrent-dht nodes on 127.0.0.1, each told about all the others (no
 * bootstrap anywhere else). Their routing tables fill as they talk; wait for that if it matters.
 */
export async function startPrivateDht(n: number): Promise<DHT[]> {
  const nodes: DHT[] = []
  try {
    for (let i = 0; i < n; i++) {
      const dht = new DHT({ bootstrap: false, host: false })
      dht.on('warning', () => {})
      dht.on('error', () => {})
      dht.listen(0, HOST) // bind loopback before the library's first query
      nodes.push(dht)
    }
    await Promise.all(
      nodes.map((d) => (d.listening ? undefined : new Promise<void>((r) => d.once('listening', () => r())))),
    )
    for (const a of nodes) {
      for (const b of nodes) if (a !== b) a.addNode({ host: HOST, port: b.address().port })
    }
    return nodes
  } catch (e) {
    await destroyDht(nodes)
    throw e
  }
}

/** Destroys the nodes of a private DHT. */
export async function destroyDht(nodes: readonly DHT[]): Promise<void> {
  await Promise.all(nodes.map((d) => new Promise<void>((r) => d.destroy(() => r()))))
}
