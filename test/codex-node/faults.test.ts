/**
 * Fault injection of the local Codex node (`node.faults`), over real HTTP: injected statuses,
 * latency, downloads and uploads cut mid-body, quota exhaustion, clearing, request counters,
 * and the delay of network routes for absent CIDs.
 */
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, test } from 'node:test'
import { request } from 'undici'
import {
  pseudoRandomBytes,
  SOME_FILE,
  SOME_FILE_MANIFEST,
  space,
  startTestNode,
  type TestNode,
  upload,
  uploadOk,
} from './helpers.ts'

const BLOCK = 65536

describe('local Codex node: faults', () => {
  let t: TestNode
  let api: string
  before(async () => {
    t = await startTestNode()
    api = t.api
    await uploadOk(api, SOME_FILE)
  })
  afterEach(() => t.node.faults.clear())
  after(() => t.stop())

  test('failNext: count, default 500, route string, then normal again', async () => {
    t.node.faults.failNext(2, { route: '/space' })
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${api}/space`)
      assert.equal(res.status, 500)
      assert.equal(res.headers.get('content-type'), 'text/html')
      assert.equal(await res.text(), 'Injected fault')
    }
    // other routes are untouched
    assert.equal((await fetch(`${api}/data`)).status, 200)
    assert.equal((await fetch(`${api}/space`)).status, 200)
  })

  test('failNext: status, method and RegExp filters; route patterns match', async () => {
    t.node.faults.failNext(1, { status: 503, method: 'DELETE', route: /\/data\/z/ })
    assert.equal((await fetch(`${api}/data/${SOME_FILE_MANIFEST}`)).status, 200) // GET passes
    const del = await fetch(`${api}/data/zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXx`, {
      method: 'DELETE',
    })
    assert.equal(del.status, 503)
    t.node.faults.failNext(1, { status: 502, route: '/api/codex/v1/data/:cid/exists' })
    assert.equal((await fetch(`${api}/data/${SOME_FILE_MANIFEST}/exists`)).status, 502)
    assert.equal((await fetch(`${api}/data/${SOME_FILE_MANIFEST}/exists`)).status, 200)
  })

  test('failNext on uploads: nothing is stored', async () => {
    const before = await space(api)
    t.node.faults.failNext(1, { route: '/data', method: 'POST' })
    const res = await upload(api, pseudoRandomBytes(2 * BLOCK, 5))
    assert.equal(res.status, 500)
    assert.equal(await res.text(), 'Injected fault')
    assert.deepEqual(await space(api), before)
  })

  test('setLatency delays every request', async () => {
    t.node.faults.setLatency(400)
    const start = performance.now()
    assert.equal((await fetch(`${api}/space`)).status, 200)
    assert.ok(performance.now() - start >= 390, 'delayed')
    t.node.faults.setLatency(0)
    const quick = performance.now()
    await fetch(`${api}/space`)
    assert.ok(performance.now() - quick < 390)
  })

  test('cutBodiesAfter: the download stops early with an error', async () => {
    const data = pseudoRandomBytes(5 * BLOCK, 9)
    const cid = await uploadOk(api, data)
    t.node.faults.cutBodiesAfter(100_000)
    const res = await request(`${api}/data/${cid}`)
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['content-length'], String(data.length))
    let received = 0
    await assert.rejects(async () => {
      for await (const chunk of res.body) received += (chunk as Buffer).length
    })
    assert.ok(received <= 100_000, `received ${received}`)
    t.node.faults.cutBodiesAfter(undefined)
    const full = new Uint8Array(await (await fetch(`${api}/data/${cid}`)).arrayBuffer())
    assert.deepEqual(full, data)
  })

  test('cutUploadsAfter: the upload fails mid-body and no manifest is stored', async () => {
    const listBefore = (await (await fetch(`${api}/data`)).json()) as { content: unknown[] }
    t.node.faults.cutUploadsAfter(100_000)
    await assert.rejects(upload(api, pseudoRandomBytes(4 * BLOCK, 13)))
    t.node.faults.cutUploadsAfter(undefined)
    const listAfter = (await (await fetch(`${api}/data`)).json()) as { content: unknown[] }
    assert.equal(listAfter.content.length, listBefore.content.length)
    // the node still works
    assert.equal(await uploadOk(api, SOME_FILE), SOME_FILE_MANIFEST)
  })

  test('setQuota: uploads fail with 500 Unable to store block, clear() restores the quota', async () => {
    const used = (await space(api)).quotaUsedBytes
    t.node.faults.setQuota(used + 2 * BLOCK)
    assert.equal((await space(api)).quotaMaxBytes, used + 2 * BLOCK)
    const before = await space(api)
    const res = await upload(api, pseudoRandomBytes(4 * BLOCK, 17))
    const text = await res.text()
    assert.equal(res.status, 500)
    assert.equal(res.headers.get('content-type'), 'text/html')
    assert.match(text, /^Unable to store block zDx[1-9A-HJ-NP-Za-km-z]+$/)
    // like Codex, blocks stored before the failure stay (and count against the quota)
    assert.equal((await space(api)).totalBlocks, before.totalBlocks + 2)
    t.node.faults.clear()
    assert.equal((await space(api)).quotaMaxBytes, 21_474_836_480)
    assert.match(await uploadOk(api, pseudoRandomBytes(4 * BLOCK, 17)), /^zDvZ/)
  })

  test('request counters', async () => {
    t.node.faults.resetCounters()
    await fetch(`${api}/space`)
    await fetch(`${api}/space`)
    await fetch(`${api}/data/${SOME_FILE_MANIFEST}/exists`)
    await fetch(`${api}/nowhere`)
    const counts = t.node.faults.requests
    assert.equal(counts.get('GET /api/codex/v1/space'), 2)
    assert.equal(counts.get('GET /api/codex/v1/data/:cid/exists'), 1)
    assert.equal(counts.get('GET <unmatched>'), 1)
    assert.equal(t.node.faults.requestCount({ route: '/space' }), 2)
    assert.equal(t.node.faults.requestCount({ method: 'GET' }), 4)
    assert.equal(t.node.faults.requestCount(), 4)
  })

  test('bad fault arguments are refused', () => {
    assert.throws(() => t.node.faults.failNext(-1), RangeError)
    assert.throws(() => t.node.faults.failNext(1, { status: 99 }), RangeError)
    assert.throws(() => t.node.faults.setLatency(-5), RangeError)
    assert.throws(() => t.node.faults.setQuota(Number.NaN), RangeError)
  })
})

describe('local Codex node: networkMissingTimeoutMs', () => {
  test('network routes wait before the 404; local routes do not', async () => {
    const t = await startTestNode({ networkMissingTimeoutMs: 400 })
    try {
      const absent = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXx'
      let start = performance.now()
      const res = await fetch(`${t.api}/data/${absent}/network/manifest`)
      assert.equal(res.status, 404)
      assert.ok(performance.now() - start >= 390)
      start = performance.now()
      assert.equal((await fetch(`${t.api}/data/${absent}`)).status, 404)
      assert.ok(performance.now() - start < 390)
    } finally {
      await t.stop()
    }
  })

  test('close() ends a pending network wait', async () => {
    const t = await startTestNode({ networkMissingTimeoutMs: 60_000 })
    const pending = fetch(
      `${t.api}/data/zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXx/network/stream`,
    ).then(
      (r) => r.status,
      () => 'closed',
    )
    await new Promise((r) => setTimeout(r, 100))
    const start = performance.now()
    await t.stop()
    assert.ok(performance.now() - start < 5_000)
    assert.ok(['closed', 404].includes(await pending))
  })
})
