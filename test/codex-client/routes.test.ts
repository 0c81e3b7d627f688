/**
 * Every route of the Codex client against the local Codex node over real HTTP on 127.0.0.1,
 * including the error paths: bad CID (client-side, and 400 from the node), missing (404),
 * bad mimetype / filename (client-side 422, and the node's 422 through a raw request), empty
 * bodies, marketplace 503.
 */

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import {
  CodexBadRequestError,
  CodexClient,
  CodexEmptyUploadError,
  CodexHttpError,
  CodexInvalidCidError,
  CodexMarketplaceUnavailableError,
  CodexNotFoundError,
  type CodexRequestEvent,
  CodexResponseError,
  CodexRouteNotFoundError,
  CodexValidationError,
  formatCid,
  isManifestCid,
  parseCid,
} from '../../codex-client/index.ts'
import { type LocalCodexNode, startLocalCodexNode } from '../../codex-client/local-node/index.ts'

const SOME_FILE = new TextEncoder().encode('some file contents')
/** Upstream vector (NOTES.md §3.6): the tree depends only on the bytes. */
const SOME_FILE_TREE = 'zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL'
/** A manifest CID that is never stored here (the upstream manifest of an upload without headers). */
const ABSENT = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'
/** Raw requests (bypassing the client's checks) get their own bounded timeouts. */
const RAW_LIMITS = { headersTimeout: 10_000, bodyTimeout: 10_000 } as const

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

describe('CodexClient against the local node: routes', () => {
  let dir: string
  let node: LocalCodexNode
  let client: CodexClient
  const events: CodexRequestEvent[] = []
  const bytes = { in: 0, out: 0 }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'codex-client-routes-'))
    node = await startLocalCodexNode({ dataDir: dir, port: 0 })
    client = new CodexClient({
      url: node.url,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
      observer: {
        onRequest: (e) => events.push(e),
        onBytes: (direction, n) => {
          bytes[direction] += n
        },
      },
    })
  })

  after(async () => {
    await client.close()
    await node.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('upload, manifest, download, exists, list, delete', async () => {
    const cid = await client.upload(SOME_FILE)
    assert.ok(isManifestCid(cid))

    const item = await client.fetchManifest(cid)
    assert.equal(item.cid, formatCid(cid))
    assert.equal(item.manifest.treeCid, SOME_FILE_TREE)
    assert.equal(item.manifest.datasetSize, SOME_FILE.length)
    assert.equal(item.manifest.blockSize, 65536)
    assert.equal(item.manifest.mimetype, 'application/octet-stream', 'Content-Type is always sent')
    assert.equal(item.manifest.filename, null)
    assert.equal(item.manifest.protected, false)
    assert.deepEqual(await client.networkDownload(cid), item)

    const download = await client.download(cid)
    assert.equal(download.length, SOME_FILE.length)
    assert.equal(download.mimetype, 'application/octet-stream')
    assert.equal(download.filename, undefined)
    assert.equal(download.rangeSupported, false)
    assert.deepEqual(await collect(download.body), Buffer.from(SOME_FILE))

    const stream = await client.download(formatCid(cid), { mode: 'network-stream' })
    assert.deepEqual(await collect(stream.body), Buffer.from(SOME_FILE))

    // The node answers {"<z-cid>": bool}; a base32 input must still read the value.
    assert.equal(await client.exists(cid.toString()), true)
    assert.equal(await client.exists(cid), true)
    assert.equal(await client.exists(SOME_FILE_TREE), false, 'tree roots are not stored blocks')
    assert.equal(await client.exists(ABSENT), false)

    const list = await client.list()
    assert.ok(list.content.some((entry) => entry.cid === formatCid(cid) && entry.manifest.datasetSize === 18))

    await client.delete(cid)
    assert.equal(await client.exists(cid), false)
    await client.delete(cid) // 204 again (NOTES.md §1.5)
    await assert.rejects(client.download(cid), CodexNotFoundError)
  })

  test('filename and mimetype round-trip (UTF-8 filename)', async () => {
    const data = Buffer.from('hello codex')
    const cid = await client.upload(data, { filename: 'résumé 1.txt', mimetype: 'text/plain' })
    const item = await client.fetchManifest(cid)
    assert.equal(item.manifest.filename, 'résumé 1.txt')
    assert.equal(item.manifest.mimetype, 'text/plain')
    const download = await client.download(cid)
    assert.equal(download.filename, 'résumé 1.txt')
    assert.equal(download.mimetype, 'text/plain')
    assert.deepEqual(await collect(download.body), data)
    // Same bytes + metadata → same CID (NOTES.md §1.3).
    assert.equal(
      formatCid(await client.upload(data, { filename: 'résumé 1.txt', mimetype: 'text/plain' })),
      formatCid(cid),
    )
  })

  test('space counts padded blocks and manifests', async () => {
    const before = await client.space()
    await client.upload(new TextEncoder().encode(`space test ${Date.now()} ${Math.random()}`))
    const after = await client.space()
    assert.equal(after.totalBlocks, before.totalBlocks + 2)
    assert.ok(after.quotaUsedBytes >= before.quotaUsedBytes + 65536)
    assert.ok(Number.isSafeInteger(after.quotaMaxBytes))
  })

  test('bad CIDs fail client-side without a request; the node answers 400 to a raw one', async () => {
    const seen = node.faults.requestCount()
    for (const bad of ['invalid-cid', '', 'zzzz', 'Qm123']) {
      await assert.rejects(client.exists(bad), CodexInvalidCidError)
      await assert.rejects(client.download(bad), CodexInvalidCidError)
      await assert.rejects(client.delete(bad), CodexInvalidCidError)
    }
    await assert.rejects(client.downloadRange('nope', 0, 1), CodexInvalidCidError)
    assert.equal(node.faults.requestCount(), seen, 'nothing was sent')

    const raw = await request(`${node.apiUrl}/data/invalid-cid/exists`, RAW_LIMITS)
    assert.equal(raw.statusCode, 400)
    assert.equal(await raw.body.text(), 'Incorrect Cid')
  })

  test('400 from the node is a CodexBadRequestError with the node text', async () => {
    await assert.rejects(client.connect('not-a-peer-id'), (err: unknown) => {
      assert.ok(err instanceof CodexBadRequestError)
      assert.equal(err.status, 400)
      assert.equal(err.operation, 'connect')
      assert.match(err.message, /PeerId/)
      return true
    })
    const peerId = await client.peerId()
    await assert.rejects(client.connect(peerId, ['/ip4/127.0.0.1/tcp/1']), /Unable to dial peer/)
    await assert.rejects(client.connect(peerId), /Unable to find Peer!/)
  })

  test('404: missing CID, non-manifest CID', async () => {
    await assert.rejects(client.download(ABSENT), (err: unknown) => {
      assert.ok(err instanceof CodexNotFoundError)
      assert.equal(err.code, 'CODEX_ERR_NOT_FOUND')
      assert.equal(err.cid, ABSENT)
      assert.match(err.message, /could not be retrieved/)
      return true
    })
    await assert.rejects(client.download(ABSENT, { mode: 'network-stream' }), CodexNotFoundError)
    await assert.rejects(client.fetchManifest(ABSENT), CodexNotFoundError)
    await assert.rejects(client.networkDownload(ABSENT), CodexNotFoundError)
    await assert.rejects(client.download(SOME_FILE_TREE), CodexNotFoundError)
  })

  test('mimetype and filename: client-side 422 without a request, node-side 422 on a raw request', async () => {
    const seen = node.faults.requestCount()
    for (const mimetype of ['text/plain; charset=utf-8', 'nope/nope', 'text/plain;charset=UTF-8']) {
      await assert.rejects(client.upload(SOME_FILE, { mimetype }), (err: unknown) => {
        assert.ok(err instanceof CodexValidationError)
        assert.equal(err.status, undefined)
        return true
      })
    }
    for (const filename of ['a*b', 'bad"name', 'CON', 'x.', ' lead', 'line\nbreak', '']) {
      await assert.rejects(client.upload(SOME_FILE, { filename }), CodexValidationError)
    }
    // A stream body is refused too, and released.
    const source = Readable.from([Buffer.from('abc')])
    await assert.rejects(client.upload(source, { mimetype: 'bad' }), CodexValidationError)
    assert.equal(source.destroyed, true)
    assert.equal(node.faults.requestCount(), seen, 'nothing was sent')

    const badType = await request(`${node.apiUrl}/data`, {
      ...RAW_LIMITS,
      method: 'POST',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      body: 'x',
    })
    assert.equal(badType.statusCode, 422)
    assert.equal(await badType.body.text(), "The MIME type 'text/plain; charset=utf-8' is not valid.")
    const badName = await request(`${node.apiUrl}/data`, {
      ...RAW_LIMITS,
      method: 'POST',
      headers: {
        'content-type': 'application/octet-stream',
        'content-disposition': 'attachment; filename="a*b"',
      },
      body: 'x',
    })
    assert.equal(badName.statusCode, 422)
    assert.equal(await badName.body.text(), 'The filename is not valid.')
  })

  test('empty uploads: typed error without a request; the node answers 500 Empty leaves', async () => {
    const seen = node.faults.requestCount()
    await assert.rejects(client.upload(new Uint8Array(0)), CodexEmptyUploadError)
    await assert.rejects(client.upload(Readable.from([])), CodexEmptyUploadError)
    async function* empties(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(0)
      yield new Uint8Array(0)
    }
    await assert.rejects(client.upload(empties()), (err: unknown) => {
      assert.ok(err instanceof CodexEmptyUploadError)
      assert.equal(err.code, 'CODEX_ERR_EMPTY_UPLOAD')
      return true
    })
    assert.equal(node.faults.requestCount(), seen)

    const raw = await request(`${node.apiUrl}/data`, {
      ...RAW_LIMITS,
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: '',
    })
    assert.equal(raw.statusCode, 500)
    assert.equal(await raw.body.text(), 'Empty leaves')
  })

  test('node info: spr and peerid by Accept, debug info, log level', async () => {
    const sprText = await client.spr('text')
    assert.match(sprText, /^spr:/)
    assert.deepEqual(await client.spr('json'), { spr: sprText })
    const id = await client.peerId('text')
    assert.ok(id.length > 10)
    assert.deepEqual(await client.peerId('json'), { id })
    const info = await client.debugInfo()
    assert.equal(info.id, id)
    assert.equal(info.spr, sprText)
    assert.ok(Array.isArray(info.addrs))
    await client.setLogLevel('DEBUG')
    await client.setLogLevel('INFO;TRACE:codex')
    await assert.rejects(client.setLogLevel('BOGUS'), CodexHttpError)
    await assert.rejects(client.setLogLevel(''), CodexValidationError)
    // An absent route answers 404 with an empty body: a route error, not "CID not found".
    await assert.rejects(
      client.debugPeer(id),
      CodexRouteNotFoundError,
      'route absent without codex_enable_api_debug_peers',
    )
  })

  test('marketplace routes: 503 Persistence is not enabled → typed, not retried', async () => {
    const cid = await client.upload(SOME_FILE)
    const availability = { totalSize: 1, duration: 1, minPricePerBytePerSecond: '1', totalCollateral: '1' }
    const calls: [string, () => Promise<unknown>][] = [
      ['salesSlots', () => client.salesSlots()],
      [
        'salesSlot',
        () => client.salesSlot('268a781e0db3f7cf36b18e5f4fdb7f586ec9edd08e5500b17c0e518a769f114a'),
      ],
      ['availabilities', () => client.availabilities()],
      ['createAvailability', () => client.createAvailability(availability)],
      ['updateAvailability', () => client.updateAvailability('0x01', { enabled: false })],
      ['reservations', () => client.reservations('0x01')],
      [
        'createStorageRequest',
        () =>
          client.createStorageRequest(cid, {
            duration: 100,
            pricePerBytePerSecond: '1',
            proofProbability: '1',
            collateralPerByte: '1',
            expiry: 10,
          }),
      ],
      ['purchaseIds', () => client.purchaseIds()],
      ['purchase', () => client.purchase('0x01')],
    ]
    for (const [operation, call] of calls) {
      const before = events.length
      await assert.rejects(call(), (err: unknown) => {
        assert.ok(err instanceof CodexMarketplaceUnavailableError, operation)
        assert.equal(err.code, 'CODEX_ERR_MARKETPLACE_UNAVAILABLE')
        assert.equal(err.status, 503)
        assert.equal(err.operation, operation)
        assert.match(err.message, /Persistence is not enabled/)
        return true
      })
      assert.equal(events.length, before + 1, `${operation}: one request, no retry`)
      assert.equal(events.at(-1)?.status, 503)
    }
  })

  test('observer: one event per request, templated routes, bytes counted', async () => {
    const start = events.length
    const inBefore = bytes.in
    const outBefore = bytes.out
    const cid = await client.upload(Buffer.alloc(100_000, 1))
    const body = await collect((await client.download(cid)).body)
    assert.equal(body.length, 100_000)
    await client.exists(cid)
    const mine = events.slice(start)
    assert.deepEqual(
      mine.map((e) => [e.operation, e.method, e.route, e.status]),
      [
        ['upload', 'POST', '/data', 200],
        ['download', 'GET', '/data/{cid}', 200],
        ['exists', 'GET', '/data/{cid}/exists', 200],
      ],
    )
    for (const e of mine) assert.ok(e.durationSeconds >= 0 && e.durationSeconds < 60)
    assert.ok(bytes.out - outBefore >= 100_000)
    assert.ok(bytes.in - inBefore >= 100_000)
    assert.equal(client.observerErrors, 0)
    assert.equal(formatCid(parseCid(formatCid(cid))), formatCid(cid))
  })

  test('a throwing observer never breaks a call; oversized answers are refused', async () => {
    const noisy = new CodexClient({
      url: node.url,
      maxResponseBytes: 70,
      observer: {
        onRequest: () => {
          throw new Error('observer bug')
        },
        onBytes: () => {
          throw new Error('observer bug')
        },
      },
    })
    try {
      assert.equal(await noisy.exists(ABSENT), false)
      assert.ok(noisy.observerErrors >= 2)
      await assert.rejects(noisy.space(), (err: unknown) => {
        assert.ok(err instanceof CodexResponseError)
        assert.match(err.message, /larger than 70 bytes/)
        return true
      })
    } finally {
      await noisy.close()
    }
  })
})
