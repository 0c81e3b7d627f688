/** HTTP layer: bearer-token authentication of mutating routes. */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { bearerToken, safeEqual } from '../../gateway/http/auth.ts'
import { makeServer, type TestServer } from './helpers.ts'

const TOKEN = 'ZmFrZS10b2tlbi1mb3ItdGVzdHM'
const CID = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'

describe('with CODEX_BT_API_TOKEN set', () => {
  let s: TestServer
  let id: string
  before(async () => {
    s = makeServer({ apiToken: TOKEN })
    const res = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: { infoHash: '9'.repeat(40) },
    })
    assert.equal(res.statusCode, 201)
    id = (res.json() as { torrent: { id: string } }).torrent.id
  })
  after(() => s.app.close())

  const mutating = (): { method: 'POST' | 'DELETE'; url: string; payload?: object }[] => [
    { method: 'POST', url: '/torrents', payload: { infoHash: '8'.repeat(40) } },
    { method: 'POST', url: `/torrents/${id}/pause` },
    { method: 'POST', url: `/torrents/${id}/resume` },
    { method: 'DELETE', url: `/torrents/${id}` },
    { method: 'POST', url: '/seeds', payload: { cid: CID } },
    { method: 'POST', url: `/records/${CID}/import` },
  ]

  test('every mutating route answers 401 with WWW-Authenticate without a token, and does nothing', async () => {
    const before = s.service.calls.length
    for (const r of mutating()) {
      const res = await s.app.inject({ ...r })
      assert.equal(res.statusCode, 401, `${r.method} ${r.url}`)
      assert.match(String(res.headers['www-authenticate']), /^Bearer realm=/)
      assert.equal((res.json() as { error: { code: string } }).error.code, 'GW_ERR_UNAUTHORIZED')
    }
    assert.equal(s.service.calls.length, before, 'the service was never reached')
    assert.ok(s.service.torrents.has(id))
  })

  test('wrong tokens, other schemes and malformed headers are rejected', async () => {
    for (const authorization of [
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(1)}`,
      `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`,
      `Bearer`,
      TOKEN,
      `Bearer ${TOKEN} extra`,
    ]) {
      const res = await s.app.inject({
        method: 'POST',
        url: `/torrents/${id}/pause`,
        headers: { authorization },
      })
      assert.equal(res.statusCode, 401, authorization)
    }
  })

  test('the right token (scheme case-insensitive) is accepted', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: `/torrents/${id}/pause`,
      headers: { authorization: `bearer ${TOKEN}` },
    })
    assert.equal(res.statusCode, 200)
  })

  test('read-only routes, probes, metrics and docs need no token', async () => {
    for (const url of [
      '/torrents',
      `/torrents/${id}`,
      '/healthz',
      '/readyz',
      '/metrics',
      '/openapi.json',
      '/docs',
    ]) {
      const res = await s.app.inject({ method: 'GET', url })
      assert.equal(res.statusCode, 200, url)
    }
  })

  test('authentication runs before body parsing: an unauthenticated bad body is 401, not 400/415', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/torrents',
      headers: { 'content-type': 'application/json' },
      payload: '{not json',
    })
    assert.equal(res.statusCode, 401)
  })
})

describe('without a token', () => {
  test('mutating routes are open', async () => {
    const s = makeServer()
    try {
      const res = await s.app.inject({
        method: 'POST',
        url: '/torrents',
        payload: { infoHash: '7'.repeat(40) },
      })
      assert.equal(res.statusCode, 201)
    } finally {
      await s.app.close()
    }
  })
})

describe('helpers', () => {
  test('safeEqual compares whole strings', () => {
    assert.equal(safeEqual('abc', 'abc'), true)
    assert.equal(safeEqual('abc', 'abd'), false)
    assert.equal(safeEqual('abc', 'abcd'), false)
    assert.equal(safeEqual('', ''), true)
  })
  test('bearerToken parses the header', () => {
    assert.equal(bearerToken('Bearer xyz'), 'xyz')
    assert.equal(bearerToken('BEARER  xyz '), 'xyz')
    assert.equal(bearerToken('Basic xyz'), undefined)
    assert.equal(bearerToken(undefined), undefined)
    assert.equal(bearerToken('Bearer a b'), undefined)
  })
})
