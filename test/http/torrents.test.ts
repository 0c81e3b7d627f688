/** HTTP layer, `/torrents`: every accepted body shape, statuses, content types and error mapping. */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { makeServer, multipartBody, type TestServer } from './helpers.ts'
import { infoHashOf, makeTorrent } from './memory-service.ts'

function errorCode(body: string): string {
  return (JSON.parse(body) as { error: { code: string } }).error.code
}

describe('POST /torrents', () => {
  let s: TestServer
  before(async () => {
    s = makeServer({ bodyLimitBytes: 4096 })
    await s.app.ready()
  })
  after(() => s.app.close())

  test('raw application/x-bittorrent body: 201 with Location, then 200 when already present', async () => {
    const torrent = makeTorrent('raw.bin', 5000)
    const id = infoHashOf(torrent)
    const first = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { 'content-type': 'application/x-bittorrent' },
      payload: Buffer.from(torrent),
    })
    assert.equal(first.statusCode, 201)
    assert.equal(first.headers.location, `/torrents/${id}`)
    const body = first.json() as {
      created: boolean
      torrent: { id: string; name: string; sizeBytes: number }
    }
    assert.equal(body.created, true)
    assert.equal(body.torrent.id, id)
    assert.equal(body.torrent.name, 'raw.bin')
    assert.equal(body.torrent.sizeBytes, 5000)
    assert.deepEqual(s.service.lastCall('addTorrent')?.[0], { torrent: new Uint8Array(torrent) })

    const again = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.from(torrent),
    })
    assert.equal(again.statusCode, 200)
    assert.equal((again.json() as { created: boolean }).created, false)
  })

  test('raw body with trackers and peers in the query string', async () => {
    const torrent = makeTorrent('with-query.bin')
    const res = await s.app.inject({
      method: 'POST',
      url: '/torrents?trackers=udp://127.0.0.1:6969/announce,http://127.0.0.1:8000/announce&peers=127.0.0.1:6881,[::1]:51413',
      headers: { 'content-type': 'application/x-bittorrent' },
      payload: Buffer.from(torrent),
    })
    assert.equal(res.statusCode, 201)
    const input = s.service.lastCall('addTorrent')?.[0] as { trackers: string[]; peers: unknown[] }
    assert.deepEqual(input.trackers, ['udp://127.0.0.1:6969/announce', 'http://127.0.0.1:8000/announce'])
    assert.deepEqual(input.peers, [
      { host: '127.0.0.1', port: 6881 },
      { host: '::1', port: 51413 },
    ])
  })

  test('multipart: file field `torrent` plus trackers/peers fields', async () => {
    const torrent = makeTorrent('form.bin', 777)
    const form = multipartBody([
      { name: 'torrent', value: torrent, filename: 'form.torrent', contentType: 'application/x-bittorrent' },
      { name: 'trackers', value: 'wss://127.0.0.1:8443/announce' },
      { name: 'peers', value: '127.0.0.1:7000\n127.0.0.1:7001' },
    ])
    const res = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { 'content-type': form.contentType },
      payload: form.body,
    })
    assert.equal(res.statusCode, 201, res.body)
    assert.equal((res.json() as { torrent: { id: string } }).torrent.id, infoHashOf(torrent))
    const input = s.service.lastCall('addTorrent')?.[0] as {
      torrent: Uint8Array
      trackers: string[]
      peers: unknown[]
    }
    assert.deepEqual(Buffer.from(input.torrent), Buffer.from(torrent))
    assert.deepEqual(input.trackers, ['wss://127.0.0.1:8443/announce'])
    assert.equal(input.peers.length, 2)
  })

  test('multipart without the torrent file, or with another file field, is rejected', async () => {
    const noFile = multipartBody([{ name: 'trackers', value: 'udp://127.0.0.1:1' }])
    const r1 = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { 'content-type': noFile.contentType },
      payload: noFile.body,
    })
    assert.equal(r1.statusCode, 400)
    assert.equal(errorCode(r1.body), 'GW_ERR_BAD_TORRENT')
    const wrong = multipartBody([{ name: 'file', value: makeTorrent('x'), filename: 'x.torrent' }])
    const r2 = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { 'content-type': wrong.contentType },
      payload: wrong.body,
    })
    assert.equal(r2.statusCode, 400)
    assert.equal(errorCode(r2.body), 'GW_ERR_BAD_REQUEST')
  })

  test('JSON magnet, info hash (v1 and v2, any case) and base64 torrent', async () => {
    const hash = 'ab'.repeat(20)
    const magnet = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      payload: {
        magnet: `magnet:?xt=urn:btih:${hash.toUpperCase()}&dn=x`,
        trackers: ['udp://127.0.0.1:6969'],
      },
    })
    assert.equal(magnet.statusCode, 201)
    assert.equal((magnet.json() as { torrent: { id: string; state: string } }).torrent.id, hash)

    const v2 = 'CD'.repeat(32)
    const byHash = await s.app.inject({ method: 'POST', url: '/torrents', payload: { infoHash: v2 } })
    assert.equal(byHash.statusCode, 201)
    assert.equal((s.service.lastCall('addTorrent')![0] as { infoHash: string }).infoHash, v2.toLowerCase())
    assert.equal((byHash.json() as { torrent: { infoHashV2: string } }).torrent.infoHashV2, v2.toLowerCase())

    const torrent = makeTorrent('b64.bin')
    const b64 = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      payload: { torrent: Buffer.from(torrent).toString('base64') },
    })
    assert.equal(b64.statusCode, 201)
    assert.equal((b64.json() as { torrent: { id: string } }).torrent.id, infoHashOf(torrent))
  })

  test('bad magnet → 400 GW_ERR_BAD_MAGNET; bad torrent bytes → 400 GW_ERR_BAD_TORRENT', async () => {
    for (const magnet of ['http://127.0.0.1/x', 'magnet:?dn=nothing']) {
      const res = await s.app.inject({ method: 'POST', url: '/torrents', payload: { magnet } })
      assert.equal(res.statusCode, 400)
      assert.equal(errorCode(res.body), 'GW_ERR_BAD_MAGNET')
    }
    for (const payload of [Buffer.from('hello'), Buffer.alloc(0), Buffer.from('d4:spam')]) {
      const res = await s.app.inject({
        method: 'POST',
        url: '/torrents',
        headers: { 'content-type': 'application/x-bittorrent' },
        payload,
      })
      assert.equal(res.statusCode, 400, res.body)
      assert.match(res.body, /GW_ERR_BAD_TORRENT|GW_ERR_BAD_REQUEST/)
    }
    const bad64 = await s.app.inject({ method: 'POST', url: '/torrents', payload: { torrent: '***' } })
    assert.equal(errorCode(bad64.body), 'GW_ERR_BAD_TORRENT')
  })

  test('schema violations → 400 GW_ERR_VALIDATION with details', async () => {
    const cases: unknown[] = [
      { magnet: `magnet:?xt=urn:btih:${'a'.repeat(40)}`, infoHash: 'a'.repeat(40) },
      { infoHash: 'xyz' },
      { magnet: `magnet:?xt=urn:btih:${'a'.repeat(40)}`, unexpected: true },
      {},
      { infoHash: 'a'.repeat(40), peers: [{ host: '127.0.0.1' }] },
      { infoHash: 'a'.repeat(40), trackers: `${'x'.repeat(10)}\u0000`, extra: 1 },
    ]
    for (const payload of cases) {
      const res = await s.app.inject({ method: 'POST', url: '/torrents', payload: payload as object })
      assert.equal(res.statusCode, 400, JSON.stringify(payload))
      const body = res.json() as { error: { code: string; details: unknown[] } }
      assert.equal(body.error.code, 'GW_ERR_VALIDATION')
      assert.ok(Array.isArray(body.error.details) && body.error.details.length > 0)
    }
  })

  test('invalid trackers and peers → 400 GW_ERR_BAD_REQUEST naming the bad value', async () => {
    const hash = { infoHash: 'e'.repeat(40) }
    const t = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      payload: { ...hash, trackers: ['ftp://127.0.0.1/'] },
    })
    assert.equal(errorCode(t.body), 'GW_ERR_BAD_REQUEST')
    assert.match(t.body, /ftp/)
    const p = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      payload: { ...hash, peers: ['127.0.0.1:99999'] },
    })
    assert.equal(errorCode(p.body), 'GW_ERR_BAD_REQUEST')
    assert.match(p.body, /99999/)
  })

  test('unsupported media types → 415, malformed JSON → 400, no body → 400', async () => {
    for (const type of ['text/plain', 'application/xml', 'image/png']) {
      const res = await s.app.inject({
        method: 'POST',
        url: '/torrents',
        headers: { 'content-type': type },
        payload: 'x',
      })
      assert.equal(res.statusCode, 415, type)
      assert.equal(errorCode(res.body), 'GW_ERR_UNSUPPORTED_MEDIA_TYPE')
    }
    const bad = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { 'content-type': 'application/json' },
      payload: '{"magnet": ',
    })
    assert.equal(bad.statusCode, 400)
    assert.equal(errorCode(bad.body), 'GW_ERR_BAD_REQUEST')
    const none = await s.app.inject({ method: 'POST', url: '/torrents' })
    assert.equal(none.statusCode, 400)
    assert.equal(errorCode(none.body), 'GW_ERR_BAD_REQUEST')
  })

  test('bodies over the limit → 413 GW_ERR_BODY_TOO_LARGE (raw, JSON and multipart)', async () => {
    const big = makeTorrent('big.bin', 16384 * 400)
    assert.ok(big.length > 4096)
    const raw = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { 'content-type': 'application/x-bittorrent' },
      payload: Buffer.from(big),
    })
    assert.equal(raw.statusCode, 413)
    assert.equal(errorCode(raw.body), 'GW_ERR_BODY_TOO_LARGE')
    const json = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      payload: { torrent: Buffer.from(big).toString('base64') },
    })
    assert.equal(json.statusCode, 413)
    const form = multipartBody([{ name: 'torrent', value: big, filename: 'big.torrent' }])
    const multi = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { 'content-type': form.contentType },
      payload: form.body,
    })
    assert.equal(multi.statusCode, 413, multi.body)
    assert.equal(errorCode(multi.body), 'GW_ERR_BODY_TOO_LARGE')
  })
})

describe('torrent resource routes', () => {
  let s: TestServer
  let id: string
  const torrent = makeTorrent('Ünïcode "name";.bin', 2048)
  before(async () => {
    s = makeServer()
    const res = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { 'content-type': 'application/x-bittorrent' },
      payload: Buffer.from(torrent),
    })
    id = (res.json() as { torrent: { id: string } }).torrent.id
  })
  after(() => s.app.close())

  test('GET /torrents lists summaries', async () => {
    const res = await s.app.inject({ method: 'GET', url: '/torrents' })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^application\/json/)
    const list = (res.json() as { torrents: { id: string; peers: number }[] }).torrents
    assert.deepEqual(
      list.map((t) => t.id),
      [id],
    )
    assert.equal(typeof list[0]!.peers, 'number')
  })

  test('GET /torrents/:id returns details; ids are case-insensitive; unknown → 404; malformed → 400', async () => {
    const res = await s.app.inject({ method: 'GET', url: `/torrents/${id.toUpperCase()}` })
    assert.equal(res.statusCode, 200)
    const d = res.json() as { id: string; files: { codexCid: null }[]; peers: unknown[]; trackers: unknown[] }
    assert.equal(d.id, id)
    assert.equal(d.files.length, 1)
    assert.ok(Array.isArray(d.peers))
    const missing = await s.app.inject({ method: 'GET', url: `/torrents/${'0'.repeat(64)}` })
    assert.equal(missing.statusCode, 404)
    assert.equal(errorCode(missing.body), 'GW_ERR_NOT_FOUND')
    for (const bad of ['xyz', 'a'.repeat(39), 'g'.repeat(40), 'a'.repeat(41)]) {
      const r = await s.app.inject({ method: 'GET', url: `/torrents/${bad}` })
      assert.equal(r.statusCode, 400, bad)
      assert.equal(errorCode(r.body), 'GW_ERR_VALIDATION')
    }
  })

  test('GET /torrents/:id/torrent downloads the exact bytes with a safe filename', async () => {
    const res = await s.app.inject({ method: 'GET', url: `/torrents/${id}/torrent` })
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['content-type'], 'application/x-bittorrent')
    assert.deepEqual(res.rawPayload, Buffer.from(torrent))
    const cd = String(res.headers['content-disposition'])
    assert.match(cd, /^attachment; filename="[\x20-\x7e]+\.torrent"; filename\*=UTF-8''/)
    assert.ok(!/filename="[^"]*"[^;]*"/.test(cd), 'quotes in the name are escaped')
    assert.equal(decodeURIComponent(cd.split("UTF-8''")[1]!), 'Ünïcode "name";.bin.torrent')
  })

  test('.torrent of a magnet without metadata → 409 GW_ERR_CONFLICT', async () => {
    const hash = '12'.repeat(20)
    await s.app.inject({ method: 'POST', url: '/torrents', payload: { infoHash: hash } })
    const res = await s.app.inject({ method: 'GET', url: `/torrents/${hash}/torrent` })
    assert.equal(res.statusCode, 409)
    assert.equal(errorCode(res.body), 'GW_ERR_CONFLICT')
    assert.match(String(res.headers['content-type']), /^application\/json/)
  })

  test('pause and resume change the state; pausing twice → 409', async () => {
    const p = await s.app.inject({ method: 'POST', url: `/torrents/${id}/pause` })
    assert.equal(p.statusCode, 200)
    assert.equal((p.json() as { state: string }).state, 'paused')
    const p2 = await s.app.inject({ method: 'POST', url: `/torrents/${id}/pause` })
    assert.equal(p2.statusCode, 409)
    const r = await s.app.inject({ method: 'POST', url: `/torrents/${id}/resume` })
    assert.equal((r.json() as { state: string }).state, 'downloading')
  })

  test('DELETE honours removeData, answers 204, then the torrent is gone', async () => {
    const bad = await s.app.inject({ method: 'DELETE', url: `/torrents/${id}?removeData=maybe` })
    assert.equal(bad.statusCode, 400)
    assert.equal(errorCode(bad.body), 'GW_ERR_VALIDATION')
    const res = await s.app.inject({ method: 'DELETE', url: `/torrents/${id}?removeData=true` })
    assert.equal(res.statusCode, 204)
    assert.equal(res.body, '')
    assert.deepEqual(s.service.lastCall('deleteTorrent'), [id, { removeData: true }])
    const gone = await s.app.inject({ method: 'GET', url: `/torrents/${id}` })
    assert.equal(gone.statusCode, 404)
    const again = await s.app.inject({ method: 'DELETE', url: `/torrents/${id}` })
    assert.equal(again.statusCode, 404)
    assert.deepEqual(s.service.lastCall('deleteTorrent'), [id, { removeData: false }])
  })
})
