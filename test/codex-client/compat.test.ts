/**
 * Node builds other than Codex master, against tiny node:http servers on 127.0.0.1:
 * - API prefix detection for a URL without a path (`/api/codex/v1`, else `/api/storage/v1` as
 *   newer "Logos Storage" builds serve), once and lazily; an explicit path is used as is;
 * - manifest JSON without `protected` and with extra fields (`manifestVersion`);
 * - a 404 with an empty body (chronos' unknown route) is `CodexRouteNotFoundError`, never
 *   `CodexNotFoundError` (which keeps meaning "this CID is not there");
 * - downloads without `Content-Length` (older builds stream chunked), with and without
 *   `expectedLength`, and the `downloadRange` fallback on such a node;
 * - the pool's keep-alive stays below chronos' 10 s header timeout.
 */

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import {
  CodexClient,
  CodexHttpError,
  CodexNotFoundError,
  CodexResponseError,
  CodexRouteNotFoundError,
  CodexShortBodyError,
  CodexUnavailableError,
} from '../../codex-client/index.ts'
import { startLocalCodexNode } from '../../codex-client/local-node/index.ts'
import { KEEP_ALIVE_TIMEOUT_MS } from '../../codex-client/transport.ts'

const MANIFEST_CID = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'
const ABSENT_CID = 'zDvZRwzkvp6mfmsaJ6ZBg4Kbx1ooyJGZ8B1kNLbw2rKA6WMzyFmN'
const TREE_CID = 'zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL'
const SPACE = { totalBlocks: 2, quotaMaxBytes: 21474836480, quotaUsedBytes: 65592, quotaReservedBytes: 0 }
const RETRY = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 }

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void

async function listen(handler: Handler): Promise<{ server: Server; origin: string }> {
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
}

/** chronos answers an unknown route with 404 and an empty body (NOTES.md §1.1). */
function unknownRoute(res: ServerResponse): void {
  res.writeHead(404).end()
}

function json(res: ServerResponse, value: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value))
}

describe('a Logos Storage build: /api/storage/v1, manifest JSON without `protected`', () => {
  const paths: string[] = []
  let server: Server
  let origin: string
  before(async () => {
    ;({ server, origin } = await listen((req, res) => {
      const path = (req.url ?? '').split('?')[0] ?? ''
      paths.push(path)
      const prefix = '/api/storage/v1'
      if (!path.startsWith(`${prefix}/`)) return unknownRoute(res)
      const route = path.slice(prefix.length)
      if (route === '/space') return json(res, SPACE)
      if (route === `/data/${MANIFEST_CID}/network/manifest`) {
        return json(res, {
          cid: MANIFEST_CID,
          manifest: {
            treeCid: TREE_CID,
            datasetSize: 18,
            blockSize: 65536,
            filename: 'a.txt',
            mimetype: null,
            manifestVersion: 1,
          },
        })
      }
      if (route === `/data/${MANIFEST_CID}/exists`) return json(res, { [MANIFEST_CID]: true })
      if (route === `/data/${ABSENT_CID}`) {
        res.writeHead(404, { 'content-type': 'text/html' })
        return res.end('The requested CID could not be retrieved (Block not found in local store).')
      }
      return unknownRoute(res) // marketplace routes are gone on these builds
    }))
  })
  after(() => stop(server))

  test('a URL without a path: the prefix is detected once, lazily, then kept', async () => {
    const client = new CodexClient({ url: origin, retry: RETRY })
    try {
      assert.equal(client.apiPrefix, undefined, 'nothing sent by the constructor')
      assert.equal(paths.length, 0)
      const item = await client.fetchManifest(MANIFEST_CID)
      assert.equal(client.apiPrefix, '/api/storage/v1')
      assert.equal(client.baseUrl, `${origin}/api/storage/v1`)
      assert.deepEqual(paths, [
        '/api/codex/v1/space',
        '/api/storage/v1/space',
        `/api/storage/v1/data/${MANIFEST_CID}/network/manifest`,
      ])
      assert.deepEqual(item.manifest, {
        treeCid: TREE_CID,
        datasetSize: 18,
        blockSize: 65536,
        filename: 'a.txt',
        mimetype: null,
        protected: false,
      })
      assert.equal(await client.exists(MANIFEST_CID), true)
      assert.deepEqual(await client.space(), SPACE)
      assert.equal(paths.filter((p) => p.endsWith('/space')).length, 3, 'two probes, one space() call')
    } finally {
      await client.close()
      paths.length = 0
    }
  })

  test('concurrent first calls share one detection', async () => {
    const client = new CodexClient({ url: `${origin}/`, retry: RETRY })
    try {
      const answers = await Promise.all(Array.from({ length: 5 }, () => client.exists(MANIFEST_CID)))
      assert.deepEqual(answers, [true, true, true, true, true])
      assert.equal(paths.filter((p) => p.endsWith('/space')).length, 2)
      assert.equal(await client.detectApiPrefix(), '/api/storage/v1')
      assert.equal(paths.filter((p) => p.endsWith('/space')).length, 2, 'kept, not detected again')
    } finally {
      await client.close()
      paths.length = 0
    }
  })

  test('an empty-body 404 is a route error; a 404 with Codex text is "CID not there"', async () => {
    const client = new CodexClient({ url: origin, retry: RETRY })
    try {
      await assert.rejects(client.salesSlots(), (err: unknown) => {
        assert.ok(err instanceof CodexRouteNotFoundError)
        assert.ok(err instanceof CodexHttpError)
        assert.ok(!(err instanceof CodexNotFoundError), 'not "CID not found"')
        assert.equal(err.code, 'CODEX_ERR_ROUTE')
        assert.equal(err.status, 404)
        return true
      })
      await assert.rejects(client.download(ABSENT_CID), (err: unknown) => {
        assert.ok(err instanceof CodexNotFoundError)
        assert.equal(err.code, 'CODEX_ERR_NOT_FOUND')
        return true
      })
    } finally {
      await client.close()
      paths.length = 0
    }
  })

  test('an explicit path is used as is: a wrong one is a route error, not a missing CID', async () => {
    const client = new CodexClient({ url: `${origin}/api/codex/v1`, retry: RETRY })
    try {
      assert.equal(client.apiPrefix, '/api/codex/v1')
      await assert.rejects(client.fetchManifest(MANIFEST_CID), CodexRouteNotFoundError)
      await assert.rejects(client.download(MANIFEST_CID), (err: unknown) => {
        assert.ok(err instanceof CodexRouteNotFoundError)
        assert.ok(!(err instanceof CodexNotFoundError))
        return true
      })
      assert.ok(!paths.some((p) => p.endsWith('/space')), 'no detection')
    } finally {
      await client.close()
      paths.length = 0
    }
  })
})

describe('prefix detection: failures', () => {
  test('no Codex API at either prefix → CodexRouteNotFoundError', async () => {
    const { server, origin } = await listen((_req, res) => unknownRoute(res))
    const client = new CodexClient({ url: origin, retry: RETRY })
    try {
      await assert.rejects(client.space(), (err: unknown) => {
        assert.ok(err instanceof CodexRouteNotFoundError)
        assert.match(err.message, /\/api\/codex\/v1\/space, \/api\/storage\/v1\/space/)
        return true
      })
      assert.equal(client.apiPrefix, undefined)
    } finally {
      await client.close()
      await stop(server)
    }
  })

  test('a node that is down is not remembered: the next call detects again', async () => {
    const probe = await listen(() => {})
    const port = (probe.server.address() as AddressInfo).port
    await stop(probe.server)
    const client = new CodexClient({ url: `http://127.0.0.1:${port}`, retry: { attempts: 1 } })
    const dir = await mkdtemp(join(tmpdir(), 'codex-client-compat-'))
    let node: Awaited<ReturnType<typeof startLocalCodexNode>> | undefined
    try {
      await assert.rejects(client.space(), CodexUnavailableError)
      assert.equal(client.apiPrefix, undefined)
      node = await startLocalCodexNode({ dataDir: dir, port })
      await client.space()
      assert.equal(client.apiPrefix, '/api/codex/v1', 'Codex master: the first candidate')
    } finally {
      await client.destroy()
      await node?.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('downloads without Content-Length (chunked, older builds)', () => {
  const DATA = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251))
  let server: Server
  let origin: string
  before(async () => {
    ;({ server, origin } = await listen((req, res) => {
      if (req.url === '/api/codex/v1/space') return json(res, SPACE)
      if (req.url !== `/api/codex/v1/data/${MANIFEST_CID}`) return unknownRoute(res)
      // No Content-Length: node:http sends Transfer-Encoding: chunked; Range is ignored.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': 'attachment' })
      let at = 0
      const next = (): void => {
        if (at >= DATA.length) {
          res.end()
          return
        }
        res.write(DATA.subarray(at, at + 50_000))
        at += 50_000
        setImmediate(next)
      }
      next()
    }))
  })
  after(() => stop(server))

  test('accepted: the body runs to EOF; length is NaN without expectedLength', async () => {
    const client = new CodexClient({ url: origin, retry: RETRY })
    try {
      const download = await client.download(MANIFEST_CID)
      assert.ok(Number.isNaN(download.length))
      assert.deepEqual(await collect(download.body), DATA)
    } finally {
      await client.close()
    }
  })

  test('with expectedLength: checked to the byte, shorter or longer → CodexShortBodyError', async () => {
    const client = new CodexClient({ url: origin, retry: RETRY })
    try {
      const exact = await client.download(MANIFEST_CID, { expectedLength: DATA.length })
      assert.equal(exact.length, DATA.length)
      assert.deepEqual(await collect(exact.body), DATA)

      const longer = await client.download(MANIFEST_CID, { expectedLength: DATA.length + 1 })
      await assert.rejects(collect(longer.body), (err: unknown) => {
        assert.ok(err instanceof CodexShortBodyError)
        assert.equal(err.expectedBytes, DATA.length + 1)
        assert.equal(err.receivedBytes, DATA.length)
        return true
      })
      const shorter = await client.download(MANIFEST_CID, { expectedLength: DATA.length - 1 })
      await assert.rejects(collect(shorter.body), (err: unknown) => {
        assert.ok(err instanceof CodexShortBodyError)
        assert.match(err.message, /longer than expectedLength/)
        return true
      })
    } finally {
      await client.close()
    }
  })

  test('downloadRange falls back to slicing with an expected total; without one it is refused', async () => {
    const client = new CodexClient({ url: origin, retry: RETRY })
    try {
      for (const [offset, length] of [
        [0, 10],
        [123_456, 100_000],
        [DATA.length - 5, 100],
        [DATA.length + 10, 5],
      ] as const) {
        const r = await client.downloadRange(MANIFEST_CID, offset, length, { expectedLength: DATA.length })
        assert.equal(r.ranged, false)
        const expected = DATA.subarray(Math.min(offset, DATA.length), Math.min(DATA.length, offset + length))
        assert.equal(r.length, expected.length)
        assert.deepEqual(await collect(r.body), expected)
      }
      assert.equal(client.rangeSupport, 'no')
      await assert.rejects(client.downloadRange(MANIFEST_CID, 0, 10), CodexResponseError)
    } finally {
      await client.close()
    }
  })
})

describe('keep-alive', () => {
  test(`idle pooled connections close after ${KEEP_ALIVE_TIMEOUT_MS} ms (< chronos' 10 s)`, async () => {
    assert.ok(KEEP_ALIVE_TIMEOUT_MS <= 4_000)
    const sockets: Socket[] = []
    const { server, origin } = await listen((_req, res) => json(res, SPACE))
    server.keepAliveTimeout = 60_000 // the server would keep it: only the client may close it
    server.on('connection', (socket: Socket) => sockets.push(socket))
    const client = new CodexClient({ url: `${origin}/api/codex/v1` })
    try {
      await client.space()
      const socket = sockets[0]
      assert.ok(socket)
      const started = Date.now()
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the client kept the idle socket open')), 7_000)
        socket.once('close', () => {
          clearTimeout(timer)
          resolve()
        })
      })
      const idle = Date.now() - started
      assert.ok(idle < 6_000, `closed after ${idle} ms`)
      await client.space()
      assert.equal(sockets.length, 2, 'the next call opened a fresh connection')
    } finally {
      await client.close()
      await stop(server)
    }
  })
})
