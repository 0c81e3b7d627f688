/** HTTP layer: seeds, records, probes, metrics, not-found/internal mapping, shutdown, request logs. */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect } from 'node:net'
import { Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { createLogger } from '../../gateway/observability/logger.ts'
import { makeServer, type TestServer } from './helpers.ts'
import { infoHashOf, MemoryService, makeTorrent } from './memory-service.ts'

const CID = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'

function errorOf(body: string): { code: string; message: string } {
  return (JSON.parse(body) as { error: { code: string; message: string } }).error
}

describe('seeds, records, probes, metrics', () => {
  let s: TestServer
  before(async () => {
    s = makeServer()
    await s.app.ready()
  })
  after(() => s.app.close())

  test('POST /seeds → 201 with magnet and a base64 .torrent whose info hash is the id', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/seeds',
      payload: {
        cid: CID,
        name: 'dataset',
        trackers: ['udp://127.0.0.1:6969'],
        webseeds: ['http://127.0.0.1:8080/x'],
      },
    })
    assert.equal(res.statusCode, 201, res.body)
    const body = res.json() as { id: string; magnet: string; torrent: string; version: string }
    const bytes = Buffer.from(body.torrent, 'base64')
    assert.equal(infoHashOf(new Uint8Array(bytes)), body.id)
    assert.ok(body.magnet.includes(body.id))
    assert.equal(res.headers.location, `/torrents/${body.id}`)
    const input = s.service.lastCall('createSeed')?.[0] as { version: string; webseeds: string[] }
    assert.equal(input.version, 'hybrid', 'the default version is hybrid')
    assert.deepEqual(input.webseeds, ['http://127.0.0.1:8080/x'])
  })

  test('POST /seeds validation: needs exactly one of cid/files; web seeds must be http(s)', async () => {
    for (const payload of [
      {},
      { cid: CID, files: [{ cid: CID, path: 'a' }] },
      { files: [] },
      { cid: 'bad cid!' },
    ]) {
      const res = await s.app.inject({ method: 'POST', url: '/seeds', payload })
      assert.equal(res.statusCode, 400, JSON.stringify(payload))
      assert.equal(errorOf(res.body).code, 'GW_ERR_VALIDATION')
    }
    const ws = await s.app.inject({
      method: 'POST',
      url: '/seeds',
      payload: { cid: CID, webseeds: ['udp://127.0.0.1/'] },
    })
    assert.equal(errorOf(ws.body).code, 'GW_ERR_BAD_REQUEST')
  })

  test('Codex unavailable → 503 GW_ERR_CODEX_UNAVAILABLE with Retry-After', async () => {
    s.service.codexDown = true
    try {
      const res = await s.app.inject({
        method: 'POST',
        url: '/seeds',
        payload: { files: [{ cid: CID, path: 'a/b' }] },
      })
      assert.equal(res.statusCode, 503)
      assert.equal(errorOf(res.body).code, 'GW_ERR_CODEX_UNAVAILABLE')
      assert.ok(Number(res.headers['retry-after']) > 0)
    } finally {
      s.service.codexDown = false
    }
  })

  test('POST /records/:cid/import → 201, then 200; unknown record → 404', async () => {
    const torrent = makeTorrent('from-record.bin')
    s.service.records.set(CID, torrent)
    const first = await s.app.inject({ method: 'POST', url: `/records/${CID}/import` })
    assert.equal(first.statusCode, 201)
    assert.equal((first.json() as { torrent: { id: string } }).torrent.id, infoHashOf(torrent))
    const second = await s.app.inject({ method: 'POST', url: `/records/${CID}/import` })
    assert.equal(second.statusCode, 200)
    const unknown = await s.app.inject({ method: 'POST', url: `/records/${CID.slice(0, -1)}Z/import` })
    assert.equal(unknown.statusCode, 404)
    const bad = await s.app.inject({ method: 'POST', url: '/records/a%2Fb/import' })
    assert.equal(bad.statusCode, 400)
  })

  test('GET /healthz → 200; GET /readyz → 200 when ready, 503 with reasons otherwise', async () => {
    const h = await s.app.inject({ method: 'GET', url: '/healthz' })
    assert.equal(h.statusCode, 200)
    assert.equal((h.json() as { status: string }).status, 'ok')
    const ready = await s.app.inject({ method: 'GET', url: '/readyz' })
    assert.equal(ready.statusCode, 200)
    s.service.readyState = {
      ready: false,
      reasons: ['codex unreachable'],
      checks: [{ name: 'codex', ok: false }],
    }
    const notReady = await s.app.inject({ method: 'GET', url: '/readyz' })
    assert.equal(notReady.statusCode, 503)
    assert.deepEqual((notReady.json() as { reasons: string[] }).reasons, ['codex unreachable'])
    s.service.readyState = { ready: true, reasons: [], checks: [] }
  })

  test('GET /metrics → Prometheus text including the HTTP request histogram', async () => {
    await s.app.inject({ method: 'GET', url: '/torrents' })
    const res = await s.app.inject({ method: 'GET', url: '/metrics' })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
    assert.match(
      res.body,
      /codex_bt_http_request_duration_seconds_count\{method="GET",route="\/torrents",status="200"\} [1-9]/,
    )
    assert.match(res.body, /# TYPE codex_bt_torrents gauge/)
  })

  test('unknown routes → 404 GW_ERR_NOT_FOUND in the common format', async () => {
    for (const [method, url] of [
      ['GET', '/nope'],
      ['PUT', '/torrents'],
      ['GET', '/torrents/abc/extra/deep'],
    ] as const) {
      const res = await s.app.inject({ method, url })
      assert.equal(res.statusCode, 404, `${method} ${url}`)
      assert.equal(errorOf(res.body).code, 'GW_ERR_NOT_FOUND')
    }
  })

  test('unexpected service errors → 500 GW_ERR_INTERNAL without leaking the message', async () => {
    s.service.failList = new Error('secret database path /var/lib/x')
    try {
      const res = await s.app.inject({ method: 'GET', url: '/torrents' })
      assert.equal(res.statusCode, 500)
      const e = errorOf(res.body)
      assert.equal(e.code, 'GW_ERR_INTERNAL')
      assert.ok(!e.message.includes('secret'))
    } finally {
      s.service.failList = undefined
    }
  })
})

describe('request logging', () => {
  test('one line per request; authorization headers and tokens never reach the log', async () => {
    const lines: string[] = []
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean))
        cb()
      },
    })
    const token = 'tok-3f1c2a9b7e'
    const s = makeServer({ apiToken: token, logger: createLogger({ level: 'debug', destination: sink }) })
    try {
      await s.app.inject({
        method: 'POST',
        url: '/torrents',
        headers: { authorization: `Bearer ${token}` },
        payload: { infoHash: 'f'.repeat(40) },
      })
      await s.app.inject({
        method: 'POST',
        url: '/torrents',
        headers: { authorization: 'Bearer wrong-secret' },
        payload: {},
      })
      s.app.log.info({ req: { headers: { authorization: `Bearer ${token}` } }, token }, 'explicit')
    } finally {
      await s.app.close()
    }
    const all = lines.join('\n')
    assert.ok(!all.includes(token), 'the token is redacted')
    assert.ok(!all.includes('wrong-secret'))
    assert.match(all, /\[REDACTED\]/)
    const completed = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'request completed')
    assert.equal(completed.length, 2)
    assert.deepEqual(
      completed.map((l) => [l.route, l.statusCode, l.component]),
      [
        ['/torrents', 201, 'http'],
        ['/torrents', 401, 'http'],
      ],
    )
  })
})

describe('graceful shutdown', () => {
  test('requests arriving while closing get 503 GW_ERR_SHUTTING_DOWN and Connection: close', async () => {
    const service = new MemoryService()
    let release: () => void = () => {}
    const entered = new Promise<void>((resolve) => {
      service.listTorrents = async () => {
        resolve()
        await new Promise<void>((r) => {
          release = r
        })
        return []
      }
    })
    const s = makeServer({ service })
    await s.app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = s.app.server.address() as { port: number }
    const socket = connect({ host: '127.0.0.1', port })
    await once(socket, 'connect')
    let received = ''
    socket.on('data', (d: Buffer) => {
      received += d.toString('utf8')
    })
    // If an assertion fails the socket must not keep the server (and the test run) alive.
    after(() => {
      socket.destroy()
      release()
    })
    // Request 1 blocks inside the service, keeping the connection active while close() runs.
    socket.write('GET /torrents HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    await entered
    const closed = s.app.close()
    // close() stops the listener only after the preClose hooks ran (bounded wait).
    for (let i = 0; i < 10_000 && s.app.server.listening; i++) await new Promise((r) => setImmediate(r))
    assert.equal(s.app.server.listening, false)
    // Request 2 arrives on the active connection after shutdown began.
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    await new Promise((r) => setImmediate(r))
    release()
    await once(socket, 'close')
    await closed
    const responses = received.split(/(?=HTTP\/1\.1 )/)
    assert.equal(responses.length, 2, received)
    assert.match(responses[0]!, /^HTTP\/1\.1 200/)
    assert.match(responses[1]!, /^HTTP\/1\.1 503/)
    assert.match(responses[1]!, /connection: close/i)
    assert.match(responses[1]!, /"code":"GW_ERR_SHUTTING_DOWN"/)
  })
})
