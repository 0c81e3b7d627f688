/**
 * Contract test: every 2xx response of the local Codex node that nim-codex's `openapi.yaml`
 * (copied to /work/shared/codex/openapi.yaml) documents with a schema is validated against that
 * schema with ajv. Operations that cannot answer 2xx on a node without persistence (marketplace)
 * are listed explicitly, as are the known spec-vs-code deviations of NOTES §1.7, which this node
 * reproduces on purpose (it follows the code, not the spec).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { after, before, describe, test } from 'node:test'
import { Ajv } from 'ajv'
import { parse } from 'yaml'
import { SOME_FILE, SOME_FILE_MANIFEST, startTestNode, type TestNode, uploadOk } from './helpers.ts'

// The spec vendored from nim-codex (see test/fixtures/codex/SOURCE.md), pinned by its sha256.
const SPEC_PATH = new URL('../fixtures/codex/openapi.yaml', import.meta.url)
const SPEC_SHA256 = '3a9caa93ad1db9733571e4b91cf4e2c77c8cf3cccf68d11b17c58cf1a123471d'
const SPEC_ID = 'https://codex.invalid/openapi.json'

interface MediaType {
  schema?: object
}
interface ResponseSpec {
  content?: Record<string, MediaType>
}
interface Operation {
  operationId: string
  responses: Record<string, ResponseSpec>
}
interface Spec {
  components: { schemas: Record<string, object> }
  paths: Record<string, Record<string, Operation>>
}

/** Operations whose 2xx answers need the marketplace (`persistence`), which this node has not. */
const NEEDS_PERSISTENCE = new Set([
  'getActiveSlots',
  'getActiveSlotById',
  'getAvailabilities',
  'offerStorage',
  'updateOfferedStorage',
  'getReservations',
  'createStorageRequest',
  'getPurchases',
  'getPurchase',
])

/**
 * Known deviations (NOTES §1.7) the node reproduces because Codex's code does:
 * 1. `GET /data/{cid}/exists`: the spec shows `{"has": bool}`; the code answers `{"<z-cid>": bool}`.
 *    The spec schema does not require `has`, so ajv accepts both; the test asserts the real shape.
 * 2. `POST /storage/request/{cid}` answers the purchase id in hex, not decimal (needs persistence).
 * 3. Error bodies are `text/html` plain strings; the spec shows no error schemas.
 * 4. `GET /data/{cid}` downloads manifests only, not any "file" CID.
 * 5. `/spr` and `/peerid` pick text or JSON by `Accept` (the spec lists both media types).
 * 6. `GET /data` never answers the 400/404/422 the spec lists.
 */
const KNOWN_DEVIATIONS = [
  'exists-shape',
  'purchase-id-hex',
  'text-html-errors',
  'manifest-only-download',
  'accept-negotiation',
  'list-errors',
]

describe('contract: responses match openapi.yaml', () => {
  let t: TestNode
  let spec: Spec
  let ajv: Ajv
  const covered = new Set<string>()

  before(async () => {
    t = await startTestNode()
    const text = await readFile(SPEC_PATH, 'utf8')
    assert.equal(
      createHash('sha256').update(text).digest('hex'),
      SPEC_SHA256,
      'vendored openapi.yaml is the pinned spec',
    )
    spec = parse(text) as Spec
    ajv = new Ajv({ strict: false, allErrors: true })
    ajv.addFormat('int64', true)
    ajv.addFormat('binary', true)
    ajv.addSchema({ $id: SPEC_ID, components: spec.components })
    await uploadOk(t.api, SOME_FILE)
    await uploadOk(t.api, new Uint8Array(70_000).fill(1), {
      'content-type': 'image/png',
      'content-disposition': 'attachment; filename="codex.png"',
    })
  })
  after(() => t.stop())

  function operation(path: string, method: string): Operation {
    const op = spec.paths[path]?.[method]
    assert.ok(op, `spec has ${method.toUpperCase()} ${path}`)
    return op
  }

  /** Validates `body` against the spec's schema for (path, method, status, mediaType). */
  function check(path: string, method: string, status: number, mediaType: string, body: unknown): void {
    const op = operation(path, method)
    covered.add(op.operationId)
    const schema = op.responses[String(status)]?.content?.[mediaType]?.schema
    assert.ok(schema, `spec documents ${status} ${mediaType} for ${op.operationId}`)
    const validate = ajv.compile(rewriteRefs(schema))
    assert.ok(
      validate(body),
      `${op.operationId}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body)}`,
    )
  }

  async function getJson(url: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
    const res = await fetch(url, init)
    assert.equal(res.headers.get('content-type'), 'application/json')
    return { status: res.status, body: await res.json() }
  }

  test('GET /data (DataList)', async () => {
    const { status, body } = await getJson(`${t.api}/data`)
    check('/data', 'get', status, 'application/json', body)
    assert.equal((body as { content: unknown[] }).content.length, 2)
  })

  test('POST /data (text/plain CID)', async () => {
    const res = await fetch(`${t.api}/data`, { method: 'POST', body: SOME_FILE })
    check('/data', 'post', res.status, 'text/plain', await res.text())
  })

  test('POST /data/{cid}/network and GET …/network/manifest (DataItem)', async () => {
    const a = await getJson(`${t.api}/data/${SOME_FILE_MANIFEST}/network`, { method: 'POST' })
    check('/data/{cid}/network', 'post', a.status, 'application/json', a.body)
    const b = await getJson(`${t.api}/data/${SOME_FILE_MANIFEST}/network/manifest`)
    check('/data/{cid}/network/manifest', 'get', b.status, 'application/json', b.body)
  })

  test('GET /data/{cid} and …/network/stream (binary)', async () => {
    for (const [path, url] of [
      ['/data/{cid}', `${t.api}/data/${SOME_FILE_MANIFEST}`],
      ['/data/{cid}/network/stream', `${t.api}/data/${SOME_FILE_MANIFEST}/network/stream`],
    ] as const) {
      const res = await fetch(url)
      assert.equal(res.status, 200)
      check(
        path,
        'get',
        200,
        'application/octet-stream',
        Buffer.from(await res.arrayBuffer()).toString('latin1'),
      )
    }
  })

  test('GET /data/{cid}/exists (deviation 1: {"<cid>": bool})', async () => {
    const { status, body } = await getJson(`${t.api}/data/${SOME_FILE_MANIFEST}/exists`)
    check('/data/{cid}/exists', 'get', status, 'application/json', body)
    assert.deepEqual(body, { [SOME_FILE_MANIFEST]: true })
    assert.equal((body as { has?: boolean }).has, undefined)
  })

  test('GET /space (Space)', async () => {
    const { status, body } = await getJson(`${t.api}/space`)
    check('/space', 'get', status, 'application/json', body)
  })

  test('the checker is not vacuous: broken bodies fail', () => {
    assert.throws(() => check('/space', 'get', 200, 'application/json', { totalBlocks: '2' }))
    assert.throws(() =>
      check('/data', 'get', 200, 'application/json', { content: [{ cid: 'x', manifest: { treeCid: 'y' } }] }),
    )
  })

  test('GET /spr and /peerid, both media types (deviation 5: by Accept)', async () => {
    for (const path of ['/spr', '/peerid'] as const) {
      const json = await getJson(`${t.api}${path}`)
      check(path, 'get', json.status, 'application/json', json.body)
      const text = await fetch(`${t.api}${path}`, { headers: { accept: 'text/plain' } })
      assert.equal(text.headers.get('content-type'), 'text/plain')
      check(path, 'get', text.status, 'text/plain', await text.text())
    }
  })

  test('GET /debug/info (DebugInfo)', async () => {
    const { status, body } = await getJson(`${t.api}/debug/info`)
    check('/debug/info', 'get', status, 'application/json', body)
  })

  test('DELETE /data/{cid}, POST /debug/chronicles/loglevel, GET /connect: no 2xx schema', async () => {
    assert.equal((await fetch(`${t.api}/data/${SOME_FILE_MANIFEST}`, { method: 'DELETE' })).status, 204)
    covered.add(operation('/data/{cid}', 'delete').operationId)
    assert.equal(
      (await fetch(`${t.api}/debug/chronicles/loglevel?level=INFO`, { method: 'POST' })).status,
      200,
    )
    covered.add(operation('/debug/chronicles/loglevel', 'post').operationId)
    // connecting needs a libp2p peer; the node has none (400), so the 200 is not reachable here
    covered.add(operation('/connect/{peerId}', 'get').operationId)
  })

  test('marketplace operations answer 503 here (no persistence), never 2xx', async () => {
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        if (!NEEDS_PERSISTENCE.has(op.operationId)) continue
        const url = `${t.api}${path.replace(/\{[^}]+\}/g, SOME_FILE_MANIFEST)}`
        const res = await fetch(url, {
          method: method.toUpperCase(),
          ...(method === 'get' ? {} : { body: '{}', headers: { 'content-type': 'application/json' } }),
        })
        assert.equal(res.status, 503, `${op.operationId}`)
        assert.equal(await res.text(), 'Persistence is not enabled')
        covered.add(op.operationId)
      }
    }
  })

  test('every operation of the spec is covered above', () => {
    const all = Object.values(spec.paths).flatMap((methods) =>
      Object.values(methods).map((op) => op.operationId),
    )
    const missing = all.filter((id) => !covered.has(id))
    assert.deepEqual(missing, [], `operations without a contract check: ${missing.join(', ')}`)
    assert.equal(KNOWN_DEVIATIONS.length, 6)
  })
})

/** `#/components/...` refs in the spec become refs into the `codex` schema added to ajv. */
function rewriteRefs(schema: unknown): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify(schema).replaceAll('"#/components/', `"${SPEC_ID}#/components/`),
  ) as Record<string, unknown>
}
