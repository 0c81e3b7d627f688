/**
 * HTTP layer: the generated OpenAPI document lists every route with its schemas, and real
 * responses of the server (success and error) validate against the document with Ajv (2020-12).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import type { OpenApiDocument, OpenApiOperation } from '../../gateway/http/openapi.ts'
import { makeServer, multipartBody, type TestServer } from './helpers.ts'
import { makeTorrent } from './memory-service.ts'

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020

const EXPECTED_ROUTES = [
  'POST /torrents',
  'GET /torrents',
  'GET /torrents/{id}',
  'DELETE /torrents/{id}',
  'POST /torrents/{id}/pause',
  'POST /torrents/{id}/resume',
  'GET /torrents/{id}/torrent',
  'POST /seeds',
  'POST /records/{cid}/import',
  'GET /healthz',
  'GET /readyz',
  'GET /metrics',
  'GET /openapi.json',
  'GET /docs',
]

const CID = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'

interface Sample {
  method: string
  url: string
  status: number
  contentType: string
  body: string
}

function findOperation(doc: OpenApiDocument, method: string, url: string): OpenApiOperation | undefined {
  const path = url.split('?')[0]!
  for (const [template, ops] of Object.entries(doc.paths)) {
    const re = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`)
    if (re.test(path)) return ops[method.toLowerCase()]
  }
  return undefined
}

describe('OpenAPI document', () => {
  let s: TestServer
  let secured: TestServer
  let doc: OpenApiDocument
  const samples: Sample[] = []

  async function call(
    server: TestServer,
    req: {
      method: 'GET' | 'POST' | 'DELETE'
      url: string
      payload?: object | Buffer
      headers?: Record<string, string>
    },
  ): Promise<string> {
    const res = await server.app.inject(req)
    samples.push({
      method: req.method,
      url: req.url,
      status: res.statusCode,
      contentType: String(res.headers['content-type'] ?? ''),
      body: res.body,
    })
    return res.body
  }

  before(async () => {
    s = makeServer({ bodyLimitBytes: 8192 })
    secured = makeServer({ apiToken: 'doc-test-token' })
    doc = JSON.parse(await call(s, { method: 'GET', url: '/openapi.json' })) as OpenApiDocument

    // Exercise every route, successes and errors, to collect real responses.
    const torrent = makeTorrent('doc.bin', 3000)
    const added = JSON.parse(
      await call(s, {
        method: 'POST',
        url: '/torrents',
        payload: Buffer.from(torrent),
        headers: { 'content-type': 'application/x-bittorrent' },
      }),
    ) as { torrent: { id: string } }
    const id = added.torrent.id
    await call(s, {
      method: 'POST',
      url: '/torrents',
      payload: Buffer.from(torrent),
      headers: { 'content-type': 'application/octet-stream' },
    })
    const form = multipartBody([{ name: 'torrent', value: makeTorrent('form.bin'), filename: 'f.torrent' }])
    await call(s, {
      method: 'POST',
      url: '/torrents',
      payload: form.body,
      headers: { 'content-type': form.contentType },
    })
    await call(s, {
      method: 'POST',
      url: '/torrents',
      payload: { magnet: `magnet:?xt=urn:btih:${'c'.repeat(40)}` },
    })
    await call(s, { method: 'POST', url: '/torrents', payload: { magnet: 'nope' } })
    await call(s, { method: 'POST', url: '/torrents', payload: { infoHash: 'zz' } })
    await call(s, {
      method: 'POST',
      url: '/torrents',
      payload: Buffer.alloc(9000, 0x64),
      headers: { 'content-type': 'application/x-bittorrent' },
    })
    await call(s, {
      method: 'POST',
      url: '/torrents',
      payload: Buffer.from('x'),
      headers: { 'content-type': 'text/plain' },
    })
    await call(s, { method: 'GET', url: '/torrents' })
    await call(s, { method: 'GET', url: `/torrents/${id}` })
    await call(s, { method: 'GET', url: `/torrents/${'c'.repeat(40)}` })
    await call(s, { method: 'GET', url: `/torrents/${'d'.repeat(64)}` })
    await call(s, { method: 'GET', url: '/torrents/bad' })
    await call(s, { method: 'GET', url: `/torrents/${id}/torrent` })
    await call(s, { method: 'GET', url: `/torrents/${'c'.repeat(40)}/torrent` })
    await call(s, { method: 'POST', url: `/torrents/${id}/pause` })
    await call(s, { method: 'POST', url: `/torrents/${id}/pause` })
    await call(s, { method: 'POST', url: `/torrents/${id}/resume` })
    await call(s, { method: 'POST', url: '/seeds', payload: { cid: CID, version: 'v2' } })
    await call(s, { method: 'POST', url: '/seeds', payload: {} })
    s.service.codexDown = true
    await call(s, { method: 'POST', url: '/seeds', payload: { cid: CID } })
    s.service.codexDown = false
    s.service.records.set(CID, makeTorrent('rec.bin'))
    await call(s, { method: 'POST', url: `/records/${CID}/import` })
    await call(s, { method: 'POST', url: `/records/${CID}/import` })
    await call(s, { method: 'POST', url: `/records/${CID}x/import` })
    await call(s, { method: 'DELETE', url: `/torrents/${id}?removeData=true` })
    await call(s, { method: 'DELETE', url: `/torrents/${id}` })
    await call(s, { method: 'GET', url: '/healthz' })
    await call(s, { method: 'GET', url: '/readyz' })
    s.service.readyState = {
      ready: false,
      reasons: ['engine not started'],
      checks: [{ name: 'engine', ok: false, detail: 'starting' }],
    }
    await call(s, { method: 'GET', url: '/readyz' })
    await call(s, { method: 'GET', url: '/metrics' })
    await call(s, { method: 'GET', url: '/docs' })
    s.service.failList = new Error('boom')
    await call(s, { method: 'GET', url: '/torrents' })
    await call(secured, { method: 'POST', url: '/seeds', payload: { cid: CID } })
    await call(secured, { method: 'DELETE', url: `/torrents/${'a'.repeat(40)}` })
  })
  after(async () => {
    await s.app.close()
    await secured.app.close()
  })

  test('is OpenAPI 3.1 and lists exactly the routes of the API', () => {
    assert.equal(doc.openapi, '3.1.0')
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    )
    assert.deepEqual([...listed].sort(), [...EXPECTED_ROUTES].sort())
  })

  test('every operation has a summary, a 2xx response, error schemas and declared path parameters', () => {
    const ids = new Set<string>()
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method} ${path}`
        assert.ok(op.summary, `${where} has a summary`)
        assert.ok(!ids.has(op.operationId), `${where} operationId unique`)
        ids.add(op.operationId)
        assert.ok(
          Object.keys(op.responses).some((st) => st.startsWith('2')),
          `${where} documents success`,
        )
        assert.ok(op.responses['500']?.content?.['application/json'], `${where} documents the error body`)
        const pathParams = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1])
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name)
        assert.deepEqual(declared.sort(), pathParams.sort(), `${where} path parameters`)
      }
    }
  })

  test('request bodies: JSON schemas, plus raw .torrent and multipart on POST /torrents', () => {
    const add = doc.paths['/torrents']!.post!
    const content = (add.requestBody as { content: Record<string, unknown> }).content
    assert.deepEqual(Object.keys(content).sort(), [
      'application/json',
      'application/octet-stream',
      'application/x-bittorrent',
      'multipart/form-data',
    ])
    const seeds = doc.paths['/seeds']!.post!
    assert.ok((seeds.requestBody as { content: Record<string, unknown> }).content['application/json'])
    const del = doc.paths['/torrents/{id}']!.delete!
    assert.deepEqual(
      del.parameters?.filter((p) => p.in === 'query').map((p) => p.name),
      ['removeData'],
    )
  })

  test('mutating operations declare bearer security; read-only ones do not', () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const mutating = method !== 'get'
        assert.equal(Boolean(op.security), mutating, `${method} ${path}`)
        if (mutating) assert.ok(op.responses['401'], `${method} ${path} documents 401`)
      }
    }
    assert.ok((doc.components as { securitySchemes: Record<string, unknown> }).securitySchemes.bearerAuth)
  })

  test('real responses validate against the document (status, media type and JSON schema)', () => {
    const ajv = new Ajv2020({ allErrors: true })
    addFormats(ajv)
    ajv.addFormat('binary', true)
    const statuses = new Set<number>()
    for (const sample of samples) {
      const where = `${sample.method} ${sample.url} → ${sample.status}`
      const op = findOperation(doc, sample.method, sample.url)
      assert.ok(op, `${where}: operation documented`)
      const response = op.responses[String(sample.status)]
      assert.ok(response, `${where}: status documented`)
      statuses.add(sample.status)
      if (sample.status === 204) {
        assert.equal(sample.body, '')
        continue
      }
      const mediaType = sample.contentType.split(';')[0]!.trim()
      const media = response.content?.[mediaType]
      assert.ok(media, `${where}: media type ${mediaType} documented`)
      if (mediaType === 'application/json') {
        const validate = ajv.compile(media.schema)
        const ok = validate(JSON.parse(sample.body))
        assert.ok(ok, `${where}: ${ajv.errorsText(validate.errors)}\n${sample.body}`)
      }
    }
    // The samples really cover successes and each error class.
    for (const st of [200, 201, 204, 400, 401, 404, 409, 413, 415, 500, 503])
      assert.ok(statuses.has(st), `sampled ${st}`)
  })

  test('/docs is a self-contained HTML page listing every route', () => {
    const page = samples.find((x) => x.url === '/docs')!
    assert.match(page.contentType, /^text\/html/)
    for (const route of EXPECTED_ROUTES) {
      const [method, path] = route.split(' ')
      assert.ok(page.body.includes(`>${method}<`), `${method} shown`)
      assert.ok(page.body.includes(`<code>${path}</code>`), `${path} shown`)
    }
    assert.ok(!/<script|<link|src=|https?:\/\//i.test(page.body), 'no scripts, stylesheets or external URLs')
  })
})
