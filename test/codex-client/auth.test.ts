/**
 * Auth headers, base URL handling and constructor validation, against a tiny node:http server on
 * 127.0.0.1 that records what it receives.
 */

import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { CodexClient, CodexValidationError } from '../../codex-client/index.ts'

interface Received {
  readonly url: string | undefined
  readonly headers: IncomingHttpHeaders
}

describe('auth and base URL', () => {
  const received: Received[] = []
  let server: Server
  let origin: string
  before(async () => {
    server = createServer((req, res) => {
      received.push({ url: req.url, headers: req.headers })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"totalBlocks":0,"quotaMaxBytes":1,"quotaUsedBytes":0,"quotaReservedBytes":0}')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => {
    await new Promise((resolve) => server.close(resolve))
  })

  test('basic auth header', async () => {
    const client = new CodexClient({ url: origin, auth: { basic: { username: 'alice', password: 'pä:ss' } } })
    try {
      await client.space()
      const last = received.at(-1)
      assert.equal(last?.url, '/api/codex/v1/space')
      assert.equal(last?.headers.authorization, `Basic ${Buffer.from('alice:pä:ss').toString('base64')}`)
    } finally {
      await client.close()
    }
  })

  test('bearer auth header', async () => {
    const client = new CodexClient({ url: `${origin}/`, auth: { bearer: 'tok-123' } })
    try {
      await client.space()
      assert.equal(received.at(-1)?.headers.authorization, 'Bearer tok-123')
      assert.equal(received.at(-1)?.url, '/api/codex/v1/space')
    } finally {
      await client.close()
    }
  })

  test('no auth: no authorization header; a URL with a path keeps it', async () => {
    const client = new CodexClient({ url: `${origin}/custom/prefix/` })
    try {
      assert.equal(client.baseUrl, `${origin}/custom/prefix`)
      await client.space()
      assert.equal(received.at(-1)?.headers.authorization, undefined)
      assert.equal(received.at(-1)?.url, '/custom/prefix/space')
    } finally {
      await client.close()
    }
  })

  test('invalid constructor options are typed errors', () => {
    assert.throws(() => new CodexClient({ url: 'ftp://127.0.0.1' }), CodexValidationError)
    assert.throws(() => new CodexClient({ url: 'not a url' }), CodexValidationError)
    assert.throws(() => new CodexClient({ url: 'http://u:p@127.0.0.1' }), CodexValidationError)
    assert.throws(() => new CodexClient({ url: origin, timeoutMs: 0 }), CodexValidationError)
    assert.throws(() => new CodexClient({ url: origin, retry: { attempts: 0 } }), CodexValidationError)
    assert.throws(() => new CodexClient({ url: origin, auth: { bearer: 'a\r\nb' } }), CodexValidationError)
  })
})
