/**
 * Codex-fidelity details of the local node found in review, over real HTTP on 127.0.0.1:
 * - `POST /data` reads the raw `Content-Type` itself: empty → no mimetype (200), unknown → 422
 *   (fastify's media-type parser must not answer first);
 * - a dataset whose blocks are gone: headers are sent, then the body is cut (Codex calls
 *   `resp.prepare` before reading the first block, NOTES §1.4);
 * - `/spr` and `/peerid` choose text only when the first entry with the highest q of `Accept` is
 *   exactly `text/plain` (chronos `preferredContentType`, as nim-codex uses it);
 * - `/connect` with a bad peer id: 400 `peerid: incorrect PeerId string` (presto);
 * - a percent-escaped CID in the path is not decoded (presto matches the raw path): 400.
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { API_PREFIX } from '../../codex-client/local-node/faults.ts'
import { pseudoRandomBytes, SOME_FILE_MANIFEST, startTestNode, type TestNode, uploadOk } from './helpers.ts'

/** Sends `head` + `body` on a fresh socket (`Connection: close`), resolves with the raw answer. */
function rawRequest(port: number, head: string, body = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`${head}\r\n\r\n${body}`))
    let out = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      out += chunk
    })
    socket.on('end', () => resolve(out))
    socket.on('error', reject)
    socket.setTimeout(5_000, () => socket.destroy(new Error('raw request timed out')))
  })
}

function parseAnswer(raw: string): { status: number; contentType: string | undefined; body: string } {
  const split = raw.indexOf('\r\n\r\n')
  const head = raw.slice(0, split).split('\r\n')
  const status = Number(head[0]?.split(' ')[1])
  const ct = head.find((l) => l.toLowerCase().startsWith('content-type:'))
  return { status, contentType: ct?.slice(ct.indexOf(':') + 1).trim(), body: raw.slice(split + 4) }
}

describe('local Codex node: fidelity details', () => {
  let t: TestNode
  let port: number
  before(async () => {
    t = await startTestNode()
    port = Number(new URL(t.node.url).port)
  })
  after(() => t.stop())

  const postData = (contentType: string, body: string): Promise<string> =>
    rawRequest(
      port,
      [
        `POST ${API_PREFIX}/data HTTP/1.1`,
        'Host: 127.0.0.1',
        `Content-Type: ${contentType}`,
        `Content-Length: ${Buffer.byteLength(body)}`,
        'Connection: close',
      ].join('\r\n'),
      body,
    )

  test('Content-Type: (empty) means no mimetype: 200, the CID of an upload without headers', async () => {
    const answer = parseAnswer(await postData('', 'some file contents'))
    assert.equal(answer.status, 200)
    assert.equal(answer.contentType, 'text/plain')
    assert.equal(answer.body, SOME_FILE_MANIFEST)
  })

  test('Content-Type: foo → 422 The MIME type is not valid (not fastify 500/415)', async () => {
    const answer = parseAnswer(await postData('foo', 'x'))
    assert.equal(answer.status, 422)
    assert.equal(answer.contentType, 'text/html')
    assert.equal(answer.body, "The MIME type 'foo' is not valid.")
  })

  test('a valid Content-Type is still stored verbatim', async () => {
    const answer = parseAnswer(await postData('Text/Plain', 'typed'))
    assert.equal(answer.status, 200)
    const res = await fetch(`${t.api}/data/${answer.body}`)
    assert.equal(res.headers.get('content-type'), 'Text/Plain')
    assert.equal(await res.text(), 'typed')
  })

  test('a dataset whose blocks are gone: 200 and headers, then the body is cut', async () => {
    const data = pseudoRandomBytes(200_000, 21)
    const a = await uploadOk(t.api, data, { 'content-disposition': 'attachment; filename="a.bin"' })
    const b = await uploadOk(t.api, data, { 'content-disposition': 'attachment; filename="b.bin"' })
    assert.notEqual(a, b, 'two manifests over one tree')
    assert.equal((await fetch(`${t.api}/data/${a}`, { method: 'DELETE' })).status, 204)
    const res = await request(`${t.api}/data/${b}`, { headersTimeout: 5_000, bodyTimeout: 5_000 })
    assert.equal(res.statusCode, 200, 'the headers were sent')
    assert.equal(res.headers['content-length'], String(data.length))
    await assert.rejects(res.body.arrayBuffer(), 'the body is cut short')
  })

  describe('Accept negotiation of /spr and /peerid (chronos preferredContentType)', () => {
    const cases: [string | undefined, 'text' | 'json'][] = [
      [undefined, 'json'],
      ['text/plain', 'text'],
      ['text/plain, application/json', 'text'],
      ['application/json, text/plain', 'json'],
      ['text/*', 'json'],
      ['text/html, text/plain', 'json'],
      ['application/json;q=0.5, text/plain', 'text'],
      ['text/plain;q=0.5', 'text'],
      ['*/*', 'json'],
    ]
    for (const [accept, expected] of cases) {
      test(`Accept: ${String(accept)} → ${expected}`, async () => {
        const headers = accept === undefined ? undefined : { accept }
        for (const path of ['/spr', '/peerid']) {
          const res = await fetch(`${t.api}${path}`, headers ? { headers } : {})
          assert.equal(res.status, 200)
          const type = expected === 'text' ? 'text/plain' : 'application/json'
          assert.equal(res.headers.get('content-type'), type, `${path} with ${String(accept)}`)
          await res.arrayBuffer()
        }
      })
    }
  })

  test('/connect with a bad peer id: 400 peerid: incorrect PeerId string', async () => {
    const res = await fetch(`${t.api}/connect/not-a-peer-id`)
    assert.equal(res.status, 400)
    assert.equal(res.headers.get('content-type'), 'text/html')
    assert.equal(await res.text(), 'peerid: incorrect PeerId string')
  })

  test('a percent-escaped CID is not decoded: 400 Incorrect Cid', async () => {
    const escaped = `%7A${SOME_FILE_MANIFEST.slice(1)}` // "z" escaped
    for (const path of [`/data/${escaped}`, `/data/${escaped}/exists`, `/data/${escaped}/network/manifest`]) {
      const res = await fetch(`${t.api}${path}`)
      assert.equal(res.status, 400, path)
      assert.equal(await res.text(), 'Incorrect Cid')
    }
    const plain = await fetch(`${t.api}/data/${SOME_FILE_MANIFEST}/exists`)
    assert.equal(plain.status, 200, 'the same CID unescaped parses')
    await plain.arrayBuffer()
  })
})

describe('upload failures before the body is read do not wedge kept-alive connections', () => {
  test('a quota failure mid-upload, then another upload on the same client, both answer', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const { Agent, request } = await import('undici')
    const { startLocalCodexNode } = await import('../../codex-client/local-node/index.ts')
    const dir = await mkdtemp(join(tmpdir(), 'codex-node-wedge-'))
    const node = await startLocalCodexNode({ dataDir: dir, port: 0 })
    node.faults.setQuota(200_000)
    const agent = new Agent({ connections: 1, keepAliveTimeout: 30_000 })
    try {
      const big = new Uint8Array(2 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24) // distinct blocks
      const first = await request(`${node.apiUrl}/data`, {
        method: 'POST',
        body: big,
        headers: { 'content-type': 'application/octet-stream' },
        dispatcher: agent,
        headersTimeout: 10_000,
      })
      assert.equal(first.statusCode, 500)
      await first.body.text()
      node.faults.setQuota(1024 * 1024 * 1024) // room again; the blocks already stored still count
      const second = await request(`${node.apiUrl}/data`, {
        method: 'POST',
        body: new Uint8Array(1000),
        headers: { 'content-type': 'application/octet-stream' },
        dispatcher: agent,
        headersTimeout: 10_000,
      })
      assert.equal(second.statusCode, 200, 'the next upload is answered')
      await second.body.text()
    } finally {
      await agent.close()
      await node.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
