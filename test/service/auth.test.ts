/**
 * Bearer-token auth of a real gateway process started with `CODEX_BT_API_TOKEN`:
 * - every mutating route (add as raw/multipart/JSON, DELETE with and without removeData, pause,
 *   resume, POST /seeds, POST /records/:cid/import), without a token, with a wrong one, with
 *   another scheme, answers 401 `GW_ERR_UNAUTHORIZED` with `WWW-Authenticate: Bearer …`, before
 *   the body is even parsed (a malformed body still gets 401, not 400), and nothing changes:
 *   the torrent list, the archived torrent's state and the Codex datasets are the same after;
 * - reads stay open as documented (GET routes, /healthz, /readyz, /metrics, /openapi.json);
 * - the right token (scheme case-insensitive) is accepted.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { TorrentDetails } from '../../gateway/http/service.ts'
import { api, type GatewayProcess } from '../helpers/gateway-process.ts'
import type { LtSession } from '../helpers/libtorrent.ts'
import type { TempDir } from '../helpers/payload.ts'
import {
  type AddJson,
  codexDatasets,
  codexUpload,
  type ErrorJson,
  listSnapshot,
  type SeededTorrent,
  type SeedJson,
  seedWithLibtorrent,
  startServiceSuite,
  stopServiceSuite,
  waitArchived,
} from '../helpers/service-e2e.ts'

const TOKEN = 'correct-horse-battery-staple-42'
const GOOD = { authorization: `Bearer ${TOKEN}` }

interface Attempt {
  readonly name: string
  readonly method: string
  readonly path: string
  readonly body?: RequestInit['body']
  readonly contentType?: string
}

describe('API auth with CODEX_BT_API_TOKEN: a real gateway process', { timeout: 90_000 }, () => {
  let tmp: TempDir
  let lt: LtSession
  let gw: GatewayProcess
  let archived: SeededTorrent
  let fresh: SeededTorrent
  let archivedDetails: TorrentDetails
  let dataCid: string

  before(async () => {
    ;({ tmp, lt, gw } = await startServiceSuite('codex-bt-service-auth-', { CODEX_BT_API_TOKEN: TOKEN }))
    archived = await seedWithLibtorrent(
      lt,
      join(tmp.path, 'a'),
      { name: 'kept.bin', size: 400_000, seed: 'auth-a' },
      'v1',
    )
    fresh = await seedWithLibtorrent(
      lt,
      join(tmp.path, 'b'),
      { name: 'never.bin', size: 300_000, seed: 'auth-b' },
      'v1',
    )
    const add = await api<AddJson>(
      gw.apiUrl,
      'POST',
      `/torrents?peers=${archived.peer}`,
      archived.bytes,
      GOOD,
    )
    assert.equal(add.status, 201, JSON.stringify(add.body))
    archivedDetails = await waitArchived(gw.apiUrl, archived.id)
    dataCid = await codexUpload(gw.codexUrl, randomBytes(40_000), 'data.bin')
  })

  after(() => stopServiceSuite({ tmp, lt, gw }))

  function attempts(): Attempt[] {
    const form = new FormData()
    form.append('torrent', new Blob([fresh.bytes]), 'never.torrent')
    return [
      {
        name: 'add raw .torrent',
        method: 'POST',
        path: `/torrents?peers=${fresh.peer}`,
        body: fresh.bytes,
        contentType: 'application/x-bittorrent',
      },
      { name: 'add multipart', method: 'POST', path: '/torrents', body: form },
      {
        name: 'add magnet',
        method: 'POST',
        path: '/torrents',
        body: JSON.stringify({ magnet: `magnet:?xt=urn:btih:${fresh.infoHashV1}`, peers: [fresh.peer] }),
        contentType: 'application/json',
      },
      {
        name: 'add a malformed .torrent (auth runs before parsing)',
        method: 'POST',
        path: '/torrents',
        body: 'not bencode at all',
        contentType: 'application/x-bittorrent',
      },
      { name: 'pause', method: 'POST', path: `/torrents/${archived.id}/pause` },
      { name: 'resume', method: 'POST', path: `/torrents/${archived.id}/resume` },
      { name: 'delete', method: 'DELETE', path: `/torrents/${archived.id}` },
      { name: 'delete with data', method: 'DELETE', path: `/torrents/${archived.id}?removeData=true` },
      {
        name: 'seed a CID',
        method: 'POST',
        path: '/seeds',
        body: JSON.stringify({ cid: dataCid, name: 'data.bin' }),
        contentType: 'application/json',
      },
      { name: 'import a record', method: 'POST', path: `/records/${archivedDetails.recordCid}/import` },
    ]
  }

  async function send(a: Attempt, headers: Record<string, string>): Promise<Response> {
    return fetch(`${gw.apiUrl}${a.path}`, {
      method: a.method,
      headers: { ...(a.contentType ? { 'content-type': a.contentType } : {}), ...headers },
      ...(a.body !== undefined ? { body: a.body } : {}),
      signal: AbortSignal.timeout(10_000),
    })
  }

  test('every mutating route refuses a missing, wrong or non-bearer token with 401 and changes nothing', async () => {
    const listBefore = await listSnapshot(gw.apiUrl)
    const codexBefore = await codexDatasets(gw.codexUrl)
    assert.deepEqual(listBefore, [{ id: archived.id, state: 'seeding' }])

    const badHeaders: [string, Record<string, string>][] = [
      ['no Authorization header', {}],
      ['a wrong token', { authorization: 'Bearer not-the-token' }],
      ['the token with one character off', { authorization: `Bearer ${TOKEN.slice(0, -1)}3` }],
      ['a token prefix', { authorization: `Bearer ${TOKEN.slice(0, 8)}` }],
      [
        'the right token with the Basic scheme',
        { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` },
      ],
      ['the right token without a scheme', { authorization: TOKEN }],
      ['an empty bearer', { authorization: 'Bearer ' }],
    ]
    let checked = 0
    for (const a of attempts()) {
      for (const [label, headers] of badHeaders) {
        const res = await send(a, headers)
        const body = (await res.json()) as ErrorJson
        assert.equal(res.status, 401, `${a.name}, ${label}: ${JSON.stringify(body)}`)
        assert.equal(body.error.code, 'GW_ERR_UNAUTHORIZED', `${a.name}, ${label}`)
        assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm=/, `${a.name}, ${label}`)
        assert.ok(!JSON.stringify(body).includes(TOKEN), 'the token is never echoed')
        checked++
      }
    }
    assert.equal(checked, 70)

    assert.deepEqual(await listSnapshot(gw.apiUrl), listBefore, 'the torrent list is unchanged')
    const d = await api<TorrentDetails>(gw.apiUrl, 'GET', `/torrents/${archived.id}`)
    assert.equal(d.body.state, 'seeding', 'not paused, not deleted')
    assert.equal(d.body.recordCid, archivedDetails.recordCid)
    assert.equal((await api<unknown>(gw.apiUrl, 'GET', `/torrents/${fresh.id}`)).status, 404, 'nothing added')
    assert.deepEqual(await codexDatasets(gw.codexUrl), codexBefore, 'no Codex dataset added or removed')
  })

  test('reads stay open without a token (GET routes, probes, metrics, API docs)', async () => {
    for (const path of [
      '/torrents',
      `/torrents/${archived.id}`,
      `/torrents/${archived.id}/torrent`,
      '/healthz',
      '/readyz',
      '/metrics',
      '/openapi.json',
      '/docs',
    ]) {
      const res = await fetch(`${gw.apiUrl}${path}`, { signal: AbortSignal.timeout(10_000) })
      await res.arrayBuffer()
      assert.equal(res.status, 200, path)
    }
    // A wrong token on a read is ignored, not an error.
    const res = await api<unknown>(gw.apiUrl, 'GET', '/torrents', undefined, { authorization: 'Bearer nope' })
    assert.equal(res.status, 200)
  })

  test('the right token is accepted (scheme case-insensitive) and the mutations happen', async () => {
    const paused = await api<{ state: string }>(
      gw.apiUrl,
      'POST',
      `/torrents/${archived.id}/pause`,
      undefined,
      {
        authorization: `bearer ${TOKEN}`,
      },
    )
    assert.equal(paused.status, 200)
    assert.equal(paused.body.state, 'paused')
    const resumed = await api<{ state: string }>(
      gw.apiUrl,
      'POST',
      `/torrents/${archived.id}/resume`,
      undefined,
      GOOD,
    )
    assert.equal(resumed.status, 200)
    assert.equal(resumed.body.state, 'seeding')
    const seeded = await api<SeedJson>(gw.apiUrl, 'POST', '/seeds', { cid: dataCid, name: 'data.bin' }, GOOD)
    assert.equal(seeded.status, 201, JSON.stringify(seeded.body))
    const list = await listSnapshot(gw.apiUrl)
    assert.deepEqual(
      list,
      [
        { id: archived.id, state: 'seeding' },
        { id: seeded.body.id, state: 'seeding' },
      ].sort((a, b) => (a.id < b.id ? -1 : 1)),
    )
    const del = await api<unknown>(gw.apiUrl, 'DELETE', `/torrents/${seeded.body.id}`, undefined, GOOD)
    assert.equal(del.status, 204)
  })
})
