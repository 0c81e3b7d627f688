/**
 * Pure parts of the Codex client: the backoff policy, the JSON shape checks (including the real
 * `/exists` shape, NOTES.md §1.7.1) and the status → error mapping.
 */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import {
  CodexBadRequestError,
  CodexEmptyUploadError,
  CodexHttpError,
  CodexMarketplaceUnavailableError,
  CodexNotFoundError,
  CodexRouteNotFoundError,
  CodexValidationError,
  isTransientCodexError,
} from '../../codex-client/errors.ts'
import {
  backoffDelayMs,
  DEFAULT_RETRY_POLICY,
  normalizeRetryPolicy,
  sleep,
} from '../../codex-client/retry.ts'
import { type CallSpec, httpError } from '../../codex-client/transport.ts'
import { parseDataList, parseExists, parseManifest, parseSpace } from '../../codex-client/types.ts'

describe('retry policy', () => {
  test('delays are within [0, min(max, base * 2^(n-1))]', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.integer({ min: 0, max: 55000 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (retry, base, extra, random) => {
          const policy = normalizeRetryPolicy({ attempts: 3, baseDelayMs: base, maxDelayMs: base + extra })
          const delay = backoffDelayMs(retry, policy, () => random)
          const cap = Math.min(policy.maxDelayMs, base * 2 ** Math.min(retry - 1, 30))
          assert.ok(delay >= 0 && delay <= cap, `${delay} not in [0, ${cap}]`)
        },
      ),
    )
  })

  test('the cap grows exponentially until maxDelayMs', () => {
    const policy = normalizeRetryPolicy({ attempts: 5, baseDelayMs: 100, maxDelayMs: 1000 })
    const top = (n: number): number => backoffDelayMs(n, policy, () => 0.9999999)
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(top), [99, 199, 399, 799, 999, 999])
  })

  test('bad policies are refused', () => {
    assert.throws(() => normalizeRetryPolicy({ attempts: 0 }), RangeError)
    assert.throws(() => normalizeRetryPolicy({ attempts: 1000 }), RangeError)
    assert.throws(() => normalizeRetryPolicy({ baseDelayMs: -1 }), RangeError)
    assert.throws(() => normalizeRetryPolicy({ baseDelayMs: 500, maxDelayMs: 100 }), RangeError)
    assert.deepEqual(normalizeRetryPolicy(undefined), DEFAULT_RETRY_POLICY)
  })

  test('sleep rejects with the abort reason', async () => {
    const controller = new AbortController()
    const pending = sleep(10_000, controller.signal)
    controller.abort(new Error('stop'))
    await assert.rejects(pending, /stop/)
  })
})

describe('JSON shapes', () => {
  test('exists reads the single value whatever the key', () => {
    assert.equal(parseExists({ zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy: true }), true)
    assert.equal(parseExists({ has: false }), false)
    assert.throws(() => parseExists({}), TypeError)
    assert.throws(() => parseExists({ a: true, b: false }), TypeError)
    assert.throws(() => parseExists({ a: 'yes' }), TypeError)
  })

  test('manifest: upstream example (NOTES.md §1.6)', () => {
    const manifest = parseManifest({
      treeCid: 'zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL',
      datasetSize: 18,
      blockSize: 65536,
      protected: false,
    })
    assert.deepEqual(manifest, {
      treeCid: 'zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL',
      datasetSize: 18,
      blockSize: 65536,
      filename: null,
      mimetype: null,
      protected: false,
    })
    assert.throws(
      () => parseManifest({ treeCid: 'x', datasetSize: -1, blockSize: 1, protected: false }),
      TypeError,
    )
    assert.throws(() => parseDataList({ content: [{ cid: 'x' }] }), TypeError)
  })

  test('manifest: newer builds (no `protected`, extra fields) parse; relied-on fields are checked', () => {
    const base = {
      treeCid: 'zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL',
      datasetSize: 18,
      blockSize: 65536,
    }
    assert.deepEqual(parseManifest({ ...base, filename: 'a.txt', manifestVersion: 2, codec: 'x' }), {
      ...base,
      filename: 'a.txt',
      mimetype: null,
      protected: false,
    })
    assert.equal(parseManifest({ ...base, protected: true, verifiable: false }).verifiable, false)
    assert.throws(() => parseManifest({ ...base, protected: 'no' }), TypeError)
    assert.throws(() => parseManifest({ ...base, treeCid: 'not-a-cid' }), /treeCid is not a CID/)
    assert.throws(() => parseManifest({ ...base, datasetSize: undefined }), /datasetSize/)
    assert.throws(() => parseManifest({ ...base, blockSize: 0 }), /blockSize/)
    assert.throws(() => parseManifest({ ...base, blockSize: '65536' }), /blockSize/)
  })

  test('space: integers only', () => {
    const space = {
      totalBlocks: 2,
      quotaMaxBytes: 21474836480,
      quotaUsedBytes: 65592,
      quotaReservedBytes: 12,
    }
    assert.deepEqual(parseSpace(space), space)
    assert.throws(() => parseSpace({ ...space, quotaUsedBytes: '1' }), TypeError)
  })
})

describe('HTTP status mapping', () => {
  const spec = (operation: string, marketplace = false): CallSpec => ({
    operation,
    route: '/x',
    method: 'GET',
    path: '/x',
    retry: true,
    timeoutMs: 1000,
    timeoutMode: 'total',
    marketplace,
  })

  test('statuses map to typed errors carrying the body', () => {
    const notFound = httpError(spec('download'), 404, 'Block not found in local store')
    assert.ok(notFound instanceof CodexNotFoundError)
    assert.equal(notFound.code, 'CODEX_ERR_NOT_FOUND')
    assert.match(notFound.message, /Block not found in local store/)
    // chronos answers an unknown route with an empty 404: a configuration error, not a missing CID
    const noRoute = httpError(spec('download'), 404, '')
    assert.ok(noRoute instanceof CodexRouteNotFoundError)
    assert.ok(!(noRoute instanceof CodexNotFoundError))
    assert.equal(noRoute.code, 'CODEX_ERR_ROUTE')
    assert.equal(isTransientCodexError(noRoute), false)
    assert.ok(httpError(spec('exists'), 400, 'Incorrect Cid') instanceof CodexBadRequestError)
    assert.ok(
      httpError(spec('upload'), 422, "The MIME type 'x' is not valid.") instanceof CodexValidationError,
    )
    assert.ok(httpError(spec('upload'), 500, 'Empty leaves') instanceof CodexEmptyUploadError)
    assert.ok(!(httpError(spec('space'), 500, 'Empty leaves') instanceof CodexEmptyUploadError))
    const market = httpError(spec('salesSlots', true), 503, 'Persistence is not enabled')
    assert.ok(market instanceof CodexMarketplaceUnavailableError)
    assert.equal(isTransientCodexError(market), false)
    const overloaded = httpError(spec('space'), 503, '')
    assert.ok(overloaded instanceof CodexHttpError)
    assert.equal(isTransientCodexError(overloaded), true)
  })
})
