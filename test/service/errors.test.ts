/**
 * Bad inputs against a real gateway process (`CODEX_BT_BODY_LIMIT_BYTES=4096`): each answers the
 * documented 4xx with its stable `GW_ERR_*` code, and nothing changes.
 *
 * For every case: the status; the code; the code is in the errors catalogue with that very
 * status (gateway/http/errors.ts); the body is exactly `{ error: { code, message[, details] } }`
 * with a non-empty message; the status is documented for that route in `/openapi.json`. After all
 * of them the torrent list, the archived torrent and the Codex datasets are as before.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { ERROR_CATALOGUE, isGatewayErrorCode } from '../../gateway/http/errors.ts'
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
  seedWithLibtorrent,
  startServiceSuite,
  stopServiceSuite,
  waitArchived,
} from '../helpers/service-e2e.ts'

const BODY_LIMIT = 4096
const UNKNOWN_V1 = '0123456789abcdef0123456789abcdef01234567'
const UNKNOWN_V2 = 'fe'.repeat(32)
/** A well-formed Codex manifest CID that the node does not have. */
const ABSENT_CID = 'zDvZRwzkxMz3gH9VYG9daMvPCFQGyK5xJFDA1rFyETGbLsArLXBi'

interface OpenApiDoc {
  readonly paths: Record<string, Record<string, { responses?: Record<string, unknown> }>>
}

interface Case {
  readonly name: string
  readonly method: string
  /** Request path (with query). */
  readonly path: string
  /** The route's OpenAPI path, or `null` for a route that does not exist. */
  readonly route: string | null
  readonly status: number
  readonly code: string
  readonly body?: RequestInit['body']
  readonly contentType?: string
}

describe('bad inputs: documented 4xx with stable codes, nothing changes (real gateway process)', {
  timeout: 90_000,
}, () => {
  let tmp: TempDir
  let lt: LtSession
  let gw: GatewayProcess
  let good: SeededTorrent
  let archived: TorrentDetails
  let dataCid: string
  let openapi: OpenApiDoc

  before(async () => {
    ;({ tmp, lt, gw } = await startServiceSuite('codex-bt-service-errors-', {
      CODEX_BT_BODY_LIMIT_BYTES: String(BODY_LIMIT),
    }))
    good = await seedWithLibtorrent(
      lt,
      join(tmp.path, 'good'),
      { name: 'good.bin', size: 500_000, seed: 'errors' },
      'v1',
    )
    assert.ok(good.bytes.length < BODY_LIMIT, 'the valid .torrent fits the body limit')
    const add = await api<AddJson>(gw.apiUrl, 'POST', `/torrents?peers=${good.peer}`, good.bytes)
    assert.equal(add.status, 201)
    archived = await waitArchived(gw.apiUrl, good.id)
    dataCid = await codexUpload(gw.codexUrl, randomBytes(2000), 'not-a-record.bin')
    openapi = (await api<OpenApiDoc>(gw.apiUrl, 'GET', '/openapi.json')).body
  })

  after(() => stopServiceSuite({ tmp, lt, gw }))

  function cases(): Case[] {
    const json = (v: unknown): { body: string; contentType: string } => ({
      body: JSON.stringify(v),
      contentType: 'application/json',
    })
    const raw = (b: Uint8Array | string): { body: RequestInit['body']; contentType: string } => ({
      body: b,
      contentType: 'application/x-bittorrent',
    })
    const multipart = (bytes: Uint8Array | undefined, extra: Record<string, string> = {}): FormData => {
      const f = new FormData()
      if (bytes) f.append('torrent', new Blob([bytes]), 'x.torrent')
      for (const [k, v] of Object.entries(extra)) f.append(k, v)
      return f
    }
    const add = { method: 'POST', path: '/torrents', route: '/torrents' }
    const truncated = good.bytes.subarray(0, good.bytes.length - 7)
    // A valid bencoded dictionary whose `info` is broken (pieces not a multiple of 20).
    const badPieces = new TextEncoder().encode(
      'd4:infod6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces3:abcee',
    )
    const oversized = new Uint8Array(BODY_LIMIT + 1000).fill(0x64)
    return [
      // malformed .torrent
      {
        name: 'raw body: not bencode',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_TORRENT',
        ...raw('hello, not a torrent'),
      },
      {
        name: 'raw body: a dictionary without info',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_TORRENT',
        ...raw('d4:spam4:eggse'),
      },
      {
        name: 'raw body: truncated .torrent',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_TORRENT',
        ...raw(truncated),
      },
      {
        name: 'raw body: broken info dict',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_TORRENT',
        ...raw(badPieces),
      },
      { name: 'raw body: empty', ...add, status: 400, code: 'GW_ERR_BAD_TORRENT', ...raw('') },
      {
        name: 'octet-stream body: truncated .torrent',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_TORRENT',
        body: truncated,
        contentType: 'application/octet-stream',
      },
      {
        name: 'multipart: malformed torrent',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_TORRENT',
        body: multipart(truncated),
      },
      {
        name: 'multipart: no torrent field',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_TORRENT',
        body: multipart(undefined, { peers: good.peer }),
      },
      {
        name: 'JSON: torrent not base64',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_TORRENT',
        ...json({ torrent: '***' }),
      },
      // bad magnet / info hash
      {
        name: 'magnet: not a magnet URI',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_MAGNET',
        ...json({ magnet: 'http://example.org/x' }),
      },
      {
        name: 'magnet: no xt',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_MAGNET',
        ...json({ magnet: 'magnet:?dn=x' }),
      },
      {
        name: 'magnet: btih not hex/base32',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_MAGNET',
        ...json({ magnet: 'magnet:?xt=urn:btih:zzzz' }),
      },
      {
        name: 'magnet: btmh of a wrong length',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_MAGNET',
        ...json({ magnet: `magnet:?xt=urn:btmh:1220${'ab'.repeat(20)}` }),
      },
      {
        name: 'info hash: not hex',
        ...add,
        status: 400,
        code: 'GW_ERR_VALIDATION',
        ...json({ infoHash: 'g'.repeat(40) }),
      },
      {
        name: 'info hash: 39 characters',
        ...add,
        status: 400,
        code: 'GW_ERR_VALIDATION',
        ...json({ infoHash: 'a'.repeat(39) }),
      },
      {
        name: 'magnet and info hash together',
        ...add,
        status: 400,
        code: 'GW_ERR_VALIDATION',
        ...json({ magnet: `magnet:?xt=urn:btih:${UNKNOWN_V1}`, infoHash: UNKNOWN_V1 }),
      },
      {
        name: 'peer that is not host:port',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_REQUEST',
        ...json({ magnet: `magnet:?xt=urn:btih:${UNKNOWN_V1}`, peers: ['nohost'] }),
      },
      {
        name: 'JSON that does not parse',
        ...add,
        status: 400,
        code: 'GW_ERR_BAD_REQUEST',
        body: '{"magnet":',
        contentType: 'application/json',
      },
      {
        name: 'GET a malformed id',
        method: 'GET',
        path: '/torrents/not-a-hash',
        route: '/torrents/{id}',
        status: 400,
        code: 'GW_ERR_VALIDATION',
      },
      // unknown torrent ids
      {
        name: 'GET unknown v1 id',
        method: 'GET',
        path: `/torrents/${UNKNOWN_V1}`,
        route: '/torrents/{id}',
        status: 404,
        code: 'GW_ERR_NOT_FOUND',
      },
      {
        name: 'GET unknown v2 id',
        method: 'GET',
        path: `/torrents/${UNKNOWN_V2}`,
        route: '/torrents/{id}',
        status: 404,
        code: 'GW_ERR_NOT_FOUND',
      },
      {
        name: 'GET .torrent of unknown id',
        method: 'GET',
        path: `/torrents/${UNKNOWN_V1}/torrent`,
        route: '/torrents/{id}/torrent',
        status: 404,
        code: 'GW_ERR_NOT_FOUND',
      },
      {
        name: 'DELETE unknown id',
        method: 'DELETE',
        path: `/torrents/${UNKNOWN_V1}?removeData=true`,
        route: '/torrents/{id}',
        status: 404,
        code: 'GW_ERR_NOT_FOUND',
      },
      {
        name: 'pause unknown id',
        method: 'POST',
        path: `/torrents/${UNKNOWN_V1}/pause`,
        route: '/torrents/{id}/pause',
        status: 404,
        code: 'GW_ERR_NOT_FOUND',
      },
      {
        name: 'resume unknown id',
        method: 'POST',
        path: `/torrents/${UNKNOWN_V2}/resume`,
        route: '/torrents/{id}/resume',
        status: 404,
        code: 'GW_ERR_NOT_FOUND',
      },
      {
        name: 'DELETE with removeData not a boolean',
        method: 'DELETE',
        path: `/torrents/${good.id}?removeData=maybe`,
        route: '/torrents/{id}',
        status: 400,
        code: 'GW_ERR_VALIDATION',
      },
      // unknown / invalid CIDs
      {
        name: 'seed an absent CID',
        method: 'POST',
        path: '/seeds',
        route: '/seeds',
        status: 404,
        code: 'GW_ERR_NOT_FOUND',
        ...json({ cid: ABSENT_CID }),
      },
      {
        name: 'seed files with an absent CID',
        method: 'POST',
        path: '/seeds',
        route: '/seeds',
        status: 404,
        code: 'GW_ERR_NOT_FOUND',
        ...json({ name: 'set', files: [{ cid: ABSENT_CID, path: 'a.bin' }] }),
      },
      {
        name: 'seed a string that is not a CID',
        method: 'POST',
        path: '/seeds',
        route: '/seeds',
        status: 400,
        code: 'GW_ERR_BAD_REQUEST',
        ...json({ cid: 'abcdefghijkl' }),
      },
      {
        name: 'seed a CID with bad characters',
        method: 'POST',
        path: '/seeds',
        route: '/seeds',
        status: 400,
        code: 'GW_ERR_VALIDATION',
        ...json({ cid: 'not/a/cid!' }),
      },
      {
        name: 'seed without cid or files',
        method: 'POST',
        path: '/seeds',
        route: '/seeds',
        status: 400,
        code: 'GW_ERR_VALIDATION',
        ...json({}),
      },
      {
        name: 'import an absent record',
        method: 'POST',
        path: `/records/${ABSENT_CID}/import`,
        route: '/records/{cid}/import',
        status: 404,
        code: 'GW_ERR_NOT_FOUND',
      },
      {
        name: 'import a dataset that is not a record',
        method: 'POST',
        path: `/records/${dataCid}/import`,
        route: '/records/{cid}/import',
        status: 400,
        code: 'GW_ERR_BAD_REQUEST',
      },
      {
        name: 'import a string that is not a CID',
        method: 'POST',
        path: '/records/abcdefghijkl/import',
        route: '/records/{cid}/import',
        status: 400,
        code: 'GW_ERR_BAD_REQUEST',
      },
      // body limit
      {
        name: 'raw body over the limit',
        ...add,
        status: 413,
        code: 'GW_ERR_BODY_TOO_LARGE',
        ...raw(oversized),
      },
      {
        name: 'JSON body over the limit',
        ...add,
        status: 413,
        code: 'GW_ERR_BODY_TOO_LARGE',
        ...json({ magnet: `magnet:?xt=urn:btih:${UNKNOWN_V1}&dn=${'x'.repeat(BODY_LIMIT)}` }),
      },
      {
        name: 'multipart file over the limit',
        ...add,
        status: 413,
        code: 'GW_ERR_BODY_TOO_LARGE',
        body: multipart(oversized),
      },
      {
        name: 'seeds body over the limit',
        method: 'POST',
        path: '/seeds',
        route: '/seeds',
        status: 413,
        code: 'GW_ERR_BODY_TOO_LARGE',
        ...json({
          name: 'big',
          files: Array.from({ length: 200 }, (_, i) => ({ cid: ABSENT_CID, path: `f${i}` })),
        }),
      },
      // content types
      {
        name: 'text/plain body',
        ...add,
        status: 415,
        code: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
        body: 'magnet:?xt=urn:btih:x',
        contentType: 'text/plain',
      },
      {
        name: 'XML body',
        ...add,
        status: 415,
        code: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
        body: '<torrent/>',
        contentType: 'application/xml',
      },
      {
        name: '.torrent body to /seeds',
        method: 'POST',
        path: '/seeds',
        route: '/seeds',
        status: 415,
        code: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
        ...raw(good.bytes),
      },
      // unknown route
      {
        name: 'unknown route',
        method: 'GET',
        path: '/torrentz',
        route: null,
        status: 404,
        code: 'GW_ERR_NOT_FOUND',
      },
    ]
  }

  test('each bad request answers its documented status and stable code; nothing changes', async () => {
    const listBefore = await listSnapshot(gw.apiUrl)
    const codexBefore = await codexDatasets(gw.codexUrl)
    const all = cases()
    for (const c of all) {
      const res = await fetch(`${gw.apiUrl}${c.path}`, {
        method: c.method,
        ...(c.contentType ? { headers: { 'content-type': c.contentType } } : {}),
        ...(c.body !== undefined ? { body: c.body } : {}),
        signal: AbortSignal.timeout(15_000),
      })
      const text = await res.text()
      const where = `${c.name}: ${res.status} ${text.slice(0, 300)}`
      assert.equal(res.status, c.status, where)
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/, where)
      const body = JSON.parse(text) as ErrorJson
      assert.deepEqual(Object.keys(body), ['error'], where)
      assert.equal(body.error.code, c.code, where)
      assert.ok(isGatewayErrorCode(body.error.code), `${where}: in the catalogue`)
      assert.equal(
        ERROR_CATALOGUE[body.error.code as keyof typeof ERROR_CATALOGUE].status,
        c.status,
        `${where}: catalogue status`,
      )
      assert.equal(typeof body.error.message, 'string', where)
      assert.ok(body.error.message.length > 0, where)
      assert.ok(
        Object.keys(body.error).every((k) => k === 'code' || k === 'message' || k === 'details'),
        `${where}: only code, message, details`,
      )
      if (c.route !== null) {
        const op = openapi.paths[c.route]?.[c.method.toLowerCase()]
        assert.ok(op, `${c.name}: ${c.method} ${c.route} is in /openapi.json`)
        assert.ok(
          op.responses?.[String(c.status)],
          `${c.name}: ${c.status} is documented for ${c.method} ${c.route}`,
        )
      }
    }
    assert.equal(all.length, 42)

    assert.deepEqual(await listSnapshot(gw.apiUrl), listBefore, 'the torrent list is unchanged')
    const d = await api<TorrentDetails>(gw.apiUrl, 'GET', `/torrents/${good.id}`)
    assert.equal(d.status, 200)
    assert.deepEqual(
      [d.body.state, d.body.recordCid, d.body.files.map((f) => f.codexCid)],
      [archived.state, archived.recordCid, archived.files.map((f) => f.codexCid)],
    )
    assert.deepEqual(await codexDatasets(gw.codexUrl), codexBefore, 'no Codex dataset added or removed')
  })

  test('the gateway still works after the bad requests (a valid add is accepted)', async () => {
    const again = await api<AddJson>(gw.apiUrl, 'POST', '/torrents', good.bytes)
    assert.equal(again.status, 200)
    assert.equal(again.body.created, false)
    const ready = await api<{ ready: boolean }>(gw.apiUrl, 'GET', '/readyz')
    assert.equal(ready.status, 200)
    assert.equal(ready.body.ready, true)
  })
})
