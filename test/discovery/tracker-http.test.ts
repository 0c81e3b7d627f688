/**
 * HTTP tracker client (BEP3/BEP23/BEP48) against the real `bittorrent-tracker` Server and tiny
 * misbehaving node:http servers, all on 127.0.0.1.
 */

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import bencode from 'bencode'
import { Server } from 'bittorrent-tracker'
import { MockAgent } from 'undici'
import {
  TrackerError,
  TrackerProtocolError,
  TrackerResponseTooLargeError,
  TrackerTimeoutError,
} from '../../gateway/engine/discovery/tracker-common.ts'
import {
  buildAnnounceUrl,
  HttpTrackerClient,
  isLocalHost,
  parseAnnounceResponse,
  parseScrapeResponse,
  scrapeUrlFromAnnounce,
} from '../../gateway/engine/discovery/tracker-http.ts'
import { bytesToKey, encodeBencode } from '../../gateway/protocol/bencode.ts'
import { toHex } from '../../gateway/protocol/hex.ts'

const HOST = '127.0.0.1'

async function startTracker(): Promise<{ server: Server; url: string }> {
  const server = new Server({ udp: false, http: true, ws: false, stats: false })
  server.on('warning', () => {})
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
  const port = (server.http!.address() as AddressInfo).port
  return { server, url: `http://${HOST}:${port}/announce` }
}

async function startHttp(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{
  server: HttpServer
  url: string
}> {
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
  return { server, url: `http://${HOST}:${(server.address() as AddressInfo).port}/announce` }
}

function closeHttp(server: HttpServer): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

const peerId = () => randomBytes(20)
/** A minimal valid announce (random info hash and peer id). */
const req = () => ({
  infoHash: randomBytes(20),
  peerId: peerId(),
  port: 1,
  uploaded: 0,
  downloaded: 0,
  left: 0,
})

describe('HTTP tracker against bittorrent-tracker', () => {
  let tracker: { server: Server; url: string }
  before(async () => {
    tracker = await startTracker()
  })
  after(async () => {
    await new Promise<void>((resolve) => tracker.server.close(() => resolve()))
  })

  test('two clients announce the same info hash and each learns the other', async () => {
    const infoHash = randomBytes(20)
    const a = new HttpTrackerClient(tracker.url)
    const b = new HttpTrackerClient(tracker.url)
    const base = { infoHash, uploaded: 0, downloaded: 0, left: 1000, numwant: 50 }
    const ra = await a.announce({ ...base, peerId: peerId(), port: 6001, event: 'started' })
    assert.ok(ra.intervalS !== undefined && ra.intervalS > 0)
    const rb = await b.announce({ ...base, peerId: peerId(), port: 6002, event: 'started' })
    assert.ok(
      rb.peers.some((p) => p.host === HOST && p.port === 6001),
      'b learns a',
    )
    const ra2 = await a.announce({ ...base, peerId: peerId(), port: 6001 })
    assert.ok(
      ra2.peers.some((p) => p.host === HOST && p.port === 6002),
      'a learns b',
    )
    assert.equal(ra2.incomplete, 2)
  })

  test('completed and stopped change the server counts; scrape reports them', async () => {
    const infoHash = randomBytes(20)
    const hex = toHex(infoHash)
    const client = new HttpTrackerClient(tracker.url)
    const id1 = peerId()
    const id2 = peerId()
    await client.announce({
      infoHash,
      peerId: id1,
      port: 6011,
      uploaded: 0,
      downloaded: 0,
      left: 10,
      event: 'started',
    })
    await client.announce({
      infoHash,
      peerId: id2,
      port: 6012,
      uploaded: 0,
      downloaded: 0,
      left: 10,
      event: 'started',
    })
    let scrape = await client.scrape([infoHash])
    assert.deepEqual(scrape.get(hex), { complete: 0, incomplete: 2, downloaded: 0 })

    await client.announce({
      infoHash,
      peerId: id1,
      port: 6011,
      uploaded: 0,
      downloaded: 10,
      left: 0,
      event: 'completed',
    })
    assert.equal(tracker.server.torrents[hex]?.complete, 1)
    assert.equal(tracker.server.torrents[hex]?.incomplete, 1)
    scrape = await client.scrape([infoHash])
    assert.equal(scrape.get(hex)?.complete, 1)
    assert.equal(scrape.get(hex)?.incomplete, 1)

    await client.announce({
      infoHash,
      peerId: id2,
      port: 6012,
      uploaded: 0,
      downloaded: 0,
      left: 10,
      event: 'stopped',
    })
    assert.equal(tracker.server.torrents[hex]?.incomplete, 0)
    scrape = await client.scrape([infoHash])
    assert.deepEqual(scrape.get(hex), { complete: 1, incomplete: 0, downloaded: 1 })
  })

  test('scrape of several hashes, including binary keys that are valid UTF-8', async () => {
    const client = new HttpTrackerClient(tracker.url)
    const ascii = new TextEncoder().encode('abcdefghijklmnopqrst') // a key the decoder keeps as text
    const random = randomBytes(20)
    for (const h of [ascii, random]) {
      await client.announce({
        infoHash: h,
        peerId: peerId(),
        port: 6021,
        uploaded: 0,
        downloaded: 0,
        left: 0,
      })
    }
    const res = await client.scrape([ascii, random])
    assert.equal(res.get(toHex(ascii))?.complete, 1)
    assert.equal(res.get(toHex(random))?.complete, 1)
  })

  test('a caller abort rejects with the abort reason', async () => {
    const client = new HttpTrackerClient(tracker.url)
    const ctl = new AbortController()
    ctl.abort(new Error('caller gave up'))
    await assert.rejects(
      client.announce(
        { infoHash: randomBytes(20), peerId: peerId(), port: 1, uploaded: 0, downloaded: 0, left: 0 },
        { signal: ctl.signal },
      ),
      /caller gave up/,
    )
  })
})

describe('HTTP tracker: request encoding and response forms', () => {
  test('info_hash and peer_id are sent as URL-escaped raw bytes; an existing query is kept', async () => {
    const infoHash = Uint8Array.from({ length: 20 }, (_, i) => i * 13)
    const id = Uint8Array.from({ length: 20 }, (_, i) => 255 - i)
    let raw = ''
    const { server, url } = await startHttp((req, res) => {
      raw = req.url ?? ''
      res.end(bencode.encode({ interval: 60, peers: new Uint8Array(0) }))
    })
    try {
      const client = new HttpTrackerClient(`${url}?passkey=abc`)
      await client.announce({
        infoHash,
        peerId: id,
        port: 6881,
        uploaded: 1,
        downloaded: 2,
        left: 3,
        event: 'started',
        key: 0xdeadbeef,
        trackerId: new TextEncoder().encode('t1'),
      })
      const params = new URLSearchParams(raw.slice(raw.indexOf('?') + 1))
      assert.equal(params.get('passkey'), 'abc')
      const bytesOf = (name: string) => {
        const m = new RegExp(`[?&]${name}=([^&]*)`).exec(raw)
        return Buffer.from(unescape(m?.[1] ?? ''), 'latin1')
      }
      assert.deepEqual([...bytesOf('info_hash')], [...infoHash])
      assert.deepEqual([...bytesOf('peer_id')], [...id])
      assert.equal(params.get('compact'), '1')
      assert.equal(params.get('event'), 'started')
      assert.equal(params.get('key'), 'deadbeef')
      assert.equal(params.get('trackerid'), 't1')
      assert.equal(params.get('left'), '3')
    } finally {
      await closeHttp(server)
    }
  })

  test('dictionary-model peers, peers6, min interval, tracker id and warning are parsed', () => {
    const body = bencode.encode({
      interval: 900,
      'min interval': 300,
      complete: 4,
      incomplete: 5,
      'tracker id': 'xyz',
      'warning message': 'be nice',
      peers: [
        { 'peer id': 'a'.repeat(20), ip: '10.0.0.1', port: 6881 },
        { ip: 'fe80::1', port: 6882 },
        { ip: 'not-an-ip.example', port: 6883 },
      ],
      peers6: Uint8Array.from([...new Uint8Array(15), 1, 0x1a, 0xe1]),
    })
    const res = parseAnnounceResponse('http://t/announce', body)
    assert.equal(res.intervalS, 900)
    assert.equal(res.minIntervalS, 300)
    assert.equal(res.complete, 4)
    assert.equal(res.incomplete, 5)
    assert.equal(new TextDecoder().decode(res.trackerId), 'xyz')
    assert.equal(res.warning, 'be nice')
    assert.deepEqual(res.peers, [
      { host: '10.0.0.1', port: 6881 },
      { host: 'fe80::1', port: 6882 },
      { host: '::1', port: 6881 },
    ])
  })

  test('compact peers are raw bytes: any byte value (e, :, digits, 0xff) survives decoding', () => {
    const peers = Uint8Array.from([0x65, 0x3a, 0x31, 0xff, 0x1a, 0xe1, 10, 0, 0, 0x64, 0x00, 0x01])
    const res = parseAnnounceResponse('http://t/announce', bencode.encode({ interval: 60, peers }))
    assert.deepEqual(res.peers, [
      { host: '101.58.49.255', port: 6881 },
      { host: '10.0.0.100', port: 1 },
    ])
  })

  test('scrape `files` keys are the raw 20 bytes (not UTF-8), also as hex text or Latin-1→UTF-8', () => {
    const binary = Uint8Array.from({ length: 20 }, (_, i) => 0xff - i) // not valid UTF-8
    const asHex = Uint8Array.from({ length: 20 }, (_, i) => 0x80 + i)
    const mangled = Uint8Array.from({ length: 20 }, (_, i) => 0xc0 + i)
    const entry = (n: number) => new Map([['complete', n]])
    const files = new Map([
      [bytesToKey(binary), entry(1)],
      [toHex(asHex), entry(2)],
      [bytesToKey(Buffer.from(Buffer.from(mangled).toString('latin1'), 'utf8')), entry(3)],
    ])
    const body = encodeBencode(new Map([['files', files]]))
    const res = parseScrapeResponse('http://t/announce', body, [binary, asHex, mangled])
    assert.equal(res.get(toHex(binary))?.complete, 1)
    assert.equal(res.get(toHex(asHex))?.complete, 2)
    assert.equal(res.get(toHex(mangled))?.complete, 3)
  })

  test('a `__proto__` key is only a key; duplicate keys are refused (ambiguous)', () => {
    const proto = parseAnnounceResponse(
      'http://t/announce',
      new TextEncoder().encode('d9:__proto__d5:peers6:abcdefe8:intervali60ee'),
    )
    assert.deepEqual(proto.peers, [])
    assert.equal(proto.intervalS, 60)
    assert.throws(
      () =>
        parseAnnounceResponse('http://t/announce', new TextEncoder().encode('d8:intervali1e8:intervali2ee')),
      TrackerProtocolError,
    )
  })

  test('BEP48 scrape URL rule', () => {
    assert.equal(scrapeUrlFromAnnounce('http://example.com/announce'), 'http://example.com/scrape')
    assert.equal(
      scrapeUrlFromAnnounce('http://example.com/x/announce?x2=0'),
      'http://example.com/x/scrape?x2=0',
    )
    assert.equal(scrapeUrlFromAnnounce('http://example.com/announce.php'), 'http://example.com/scrape.php')
    assert.equal(scrapeUrlFromAnnounce('http://example.com/a'), undefined)
    assert.equal(scrapeUrlFromAnnounce('http://example.com/announce/x'), undefined)
    assert.equal(scrapeUrlFromAnnounce('http://example.com/x%064announce'), undefined)
  })

  test('buildAnnounceUrl rejects bad arguments', () => {
    const ok = {
      infoHash: new Uint8Array(20),
      peerId: new Uint8Array(20),
      port: 1,
      uploaded: 0,
      downloaded: 0,
      left: 0,
    }
    assert.throws(() => buildAnnounceUrl('http://t/announce', { ...ok, infoHash: new Uint8Array(32) }))
    assert.throws(() => buildAnnounceUrl('http://t/announce', { ...ok, left: -1 }))
    assert.throws(() => buildAnnounceUrl('ftp://t/announce', ok))
  })
})

describe('HTTP tracker: failures are typed', () => {
  test('`failure reason` gives a TrackerError carrying the reason', async () => {
    const { server, url } = await startHttp((_req, res) => {
      res.end(bencode.encode({ 'failure reason': 'torrent not registered' }))
    })
    try {
      const err = await new HttpTrackerClient(url).announce(req()).catch((e: unknown) => e)
      assert.ok(err instanceof TrackerError)
      assert.equal(err.reason, 'torrent not registered')
      assert.equal(err.code, 'GW_ERR_TRACKER_FAILURE')
    } finally {
      await closeHttp(server)
    }
  })

  test('a non-bencode body gives a TrackerProtocolError', async () => {
    const { server, url } = await startHttp((_req, res) => {
      res.end('<html>hello</html>')
    })
    try {
      await assert.rejects(new HttpTrackerClient(url).announce(req()), TrackerProtocolError)
    } finally {
      await closeHttp(server)
    }
  })

  test('an HTTP error status without failure reason gives a TrackerProtocolError', async () => {
    const { server, url } = await startHttp((_req, res) => {
      res.statusCode = 503
      res.end('busy')
    })
    try {
      await assert.rejects(new HttpTrackerClient(url).announce(req()), /HTTP status 503/)
    } finally {
      await closeHttp(server)
    }
  })

  test('an oversized body is rejected (declared length and streamed body)', async () => {
    const big = bencode.encode({ interval: 60, peers: new Uint8Array(6 * 2000) })
    const { server, url } = await startHttp((req, res) => {
      if (req.url?.includes('chunked')) {
        // No content-length: the limit must be enforced while streaming.
        res.write(big.subarray(0, 5000))
        res.end(big.subarray(5000))
      } else {
        res.setHeader('content-length', big.byteLength)
        res.end(big)
      }
    })
    try {
      const client = new HttpTrackerClient(url, { maxResponseBytes: 4096 })
      await assert.rejects(client.announce(req()), TrackerResponseTooLargeError)
      const chunked = new HttpTrackerClient(`${url}?chunked=1`, { maxResponseBytes: 4096 })
      await assert.rejects(chunked.announce(req()), TrackerResponseTooLargeError)
    } finally {
      await closeHttp(server)
    }
  })

  test('a slow tracker gives a TrackerTimeoutError within the timeout', async () => {
    const { server, url } = await startHttp((req, res) => {
      if (req.url?.includes('trickle')) {
        res.write('d8:intervali') // headers and a partial body, then silence
        return
      }
      // Never answers.
    })
    try {
      await assert.rejects(
        new HttpTrackerClient(url, { timeoutMs: 300 }).announce(req()),
        TrackerTimeoutError,
      )
      await assert.rejects(
        new HttpTrackerClient(`${url}?trickle=1`, { timeoutMs: 300 }).announce(req()),
        TrackerTimeoutError,
      )
    } finally {
      await closeHttp(server)
    }
  })
})

/**
 * Redirects (libtorrent follows them for HTTP trackers): up to 5 hops, http(s) only, never from a
 * global host to a local address (libtorrent's `ssrf_mitigation`). Real servers on 127.0.0.1; the
 * one "global" origin is an undici MockAgent with real connections disabled (no network at all).
 */
describe('HTTP tracker: redirects', () => {
  const answer = bencode.encode({ interval: 60, peers: Buffer.from([127, 0, 0, 1, 0x1a, 0xe1]) })

  test('301/302/303/307/308 chains of up to 5 hops are followed, relative Locations too; query kept', async () => {
    const seen: string[] = []
    const { server, url } = await startHttp((r, res) => {
      seen.push(r.url ?? '')
      const m = /^\/hop(\d)(\?.*)?$/.exec(r.url ?? '')
      const codes = [301, 302, 303, 307, 308]
      if (r.url?.startsWith('/announce')) {
        res.writeHead(302, { location: `/hop0${r.url.slice('/announce'.length)}` })
        return res.end('moved')
      }
      if (m && Number(m[1]) < 4) {
        const n = Number(m[1])
        res.writeHead(codes[n + 1]!, {
          location: `http://${HOST}:${(server.address() as AddressInfo).port}/hop${n + 1}${m[2] ?? ''}`,
        })
        return res.end()
      }
      res.end(answer)
    })
    try {
      const r = await new HttpTrackerClient(url).announce(req())
      assert.deepEqual(r.peers, [{ host: HOST, port: 6881 }])
      assert.equal(seen.length, 6, seen.join(' '))
      assert.ok(
        seen.every((u) => u.includes('info_hash=')),
        'the announce query survives each hop',
      )
    } finally {
      await closeHttp(server)
    }
  })

  test('a sixth redirect is refused', async () => {
    let hits = 0
    const { server, url } = await startHttp((_r, res) => {
      hits++
      res.writeHead(302, { location: `/loop${hits}` })
      res.end()
    })
    try {
      await assert.rejects(new HttpTrackerClient(url).announce(req()), (e: unknown) => {
        assert.ok(e instanceof TrackerProtocolError)
        assert.match(e.message, /more than 5 redirects/)
        return true
      })
      assert.equal(hits, 6, 'the original request and 5 redirects')
    } finally {
      await closeHttp(server)
    }
  })

  test('redirects to other schemes are refused without any request', async () => {
    for (const location of [
      'ftp://127.0.0.1/announce',
      'file:///etc/passwd',
      'udp://127.0.0.1:1/announce',
      'data:,x',
    ]) {
      let hits = 0
      const { server, url } = await startHttp((_r, res) => {
        hits++
        res.writeHead(301, { location })
        res.end()
      })
      try {
        await assert.rejects(new HttpTrackerClient(url).announce(req()), /unsupported scheme/)
        assert.equal(hits, 1)
      } finally {
        await closeHttp(server)
      }
    }
  })

  test('a 3xx without Location is an HTTP status error', async () => {
    const { server, url } = await startHttp((_r, res) => {
      res.statusCode = 302
      res.end()
    })
    try {
      await assert.rejects(new HttpTrackerClient(url).announce(req()), /HTTP status 302/)
    } finally {
      await closeHttp(server)
    }
  })

  test('a global host may not redirect to a local address (SSRF); nothing is fetched', async () => {
    const agent = new MockAgent()
    agent.disableNetConnect()
    try {
      const origin = agent.get('http://tracker.example')
      for (const target of [
        'http://127.0.0.1:9/x',
        'http://[::1]:9/x',
        'http://192.168.1.1/x',
        'http://localhost/x',
        'http://[::ffff:10.0.0.1]/x',
      ]) {
        origin.intercept({ path: /^\/announce/ }).reply(302, '', { headers: { location: target } })
        const client = new HttpTrackerClient('http://tracker.example/announce', { dispatcher: agent })
        await assert.rejects(client.announce(req()), /global host to a local address/, target)
      }
      // global → global is followed
      origin
        .intercept({ path: /^\/announce/ })
        .reply(302, '', { headers: { location: 'http://other.example/a' } })
      agent.get('http://other.example').intercept({ path: '/a' }).reply(200, Buffer.from(answer))
      const r = await new HttpTrackerClient('http://tracker.example/announce', {
        dispatcher: agent,
      }).announce(req())
      assert.equal(r.peers.length, 1)
    } finally {
      await agent.close()
    }
  })

  test('isLocalHost', () => {
    for (const h of [
      '127.0.0.1',
      '127.9.9.9',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.0.1',
      '169.254.169.254',
      '0.0.0.0',
      '::1',
      '[::1]',
      '::',
      'fd00::1',
      'fe80::1',
      '::ffff:7f00:1',
      '::ffff:127.0.0.1',
      'localhost',
      'a.localhost',
    ])
      assert.equal(isLocalHost(h), true, h)
    for (const h of [
      '8.8.8.8',
      '172.32.0.1',
      '172.15.0.1',
      '192.169.0.1',
      'tracker.example',
      '2001:db8::1',
      '::ffff:808:808',
    ])
      assert.equal(isLocalHost(h), false, h)
  })
})
