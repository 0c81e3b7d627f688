/**
 * Magnet URIs (gateway/protocol/magnet.ts): BEP9 btih (hex and base32), btmh (sha2-256
 * multihash), hybrid links, dn/tr/ws/x.pe, BEP53 `so`, build → parse round trips and malformed
 * links.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { createTorrent } from '../../gateway/protocol/create-torrent.ts'
import { MagnetError } from '../../gateway/protocol/errors.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { buildMagnet, MAX_WARNINGS, magnetFromMetainfo, parseMagnet } from '../../gateway/protocol/magnet.ts'

const V1 = createHash('sha1').update('v1').digest()
const V2 = createHash('sha256').update('v2').digest()
const V1HEX = toHex(V1)
const V2HEX = toHex(V2)

/** RFC 4648 base32 (test-side encoder, independent of the parser's decoder). */
function base32(bytes: Uint8Array): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const b of bytes) bits += b.toString(2).padStart(8, '0')
  let out = ''
  for (let i = 0; i < bits.length; i += 5)
    out += alphabet[Number.parseInt(bits.slice(i, i + 5).padEnd(5, '0'), 2)]
  return out
}

function code(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof MagnetError, `expected MagnetError, got ${String(err)}`)
    return err.code
  }
  assert.fail('expected an error')
}

describe('parseMagnet', () => {
  test('btih as 40 hex characters (either case)', () => {
    assert.deepEqual(parseMagnet(`magnet:?xt=urn:btih:${V1HEX}`).infoHashV1, new Uint8Array(V1))
    assert.deepEqual(parseMagnet(`MAGNET:?xt=urn:BTIH:${V1HEX.toUpperCase()}`).infoHashV1, new Uint8Array(V1))
  })

  test('btih as 32 base32 characters', () => {
    const b32 = base32(V1)
    assert.equal(b32.length, 32)
    assert.deepEqual(parseMagnet(`magnet:?xt=urn:btih:${b32}`).infoHashV1, new Uint8Array(V1))
    assert.deepEqual(parseMagnet(`magnet:?xt=urn:btih:${b32.toLowerCase()}`).infoHashV1, new Uint8Array(V1))
  })

  test('btmh sha2-256 multihash, and both in one hybrid link', () => {
    const v2 = parseMagnet(`magnet:?xt=urn:btmh:1220${V2HEX}`)
    assert.deepEqual(v2.infoHashV2, new Uint8Array(V2))
    assert.equal(v2.infoHashV1, undefined)
    const both = parseMagnet(`magnet:?xt=urn:btih:${V1HEX}&xt=urn:btmh:1220${V2HEX}&dn=x`)
    assert.deepEqual(both.infoHashV1, new Uint8Array(V1))
    assert.deepEqual(both.infoHashV2, new Uint8Array(V2))
  })

  test('dn, repeated tr and ws, x.pe peers, so ranges, numbered keys, unknown keys ignored', () => {
    const m = parseMagnet(
      `magnet:?xt.1=urn:btih:${V1HEX}&dn=My+File%20%E2%9C%93&tr=http%3A%2F%2F127.0.0.1%3A1%2Fannounce` +
        '&tr.2=udp://127.0.0.1:2&tr=udp://127.0.0.1:2&ws=http://127.0.0.1:3/files/' +
        '&x.pe=127.0.0.1:6881&x.pe=%5B::1%5D:6882&x.pe=peer.example:1&so=0,2,4,6-8&xl=123&kt=a+b',
    )
    assert.equal(m.name, 'My File ✓')
    assert.deepEqual(m.trackers, ['http://127.0.0.1:1/announce', 'udp://127.0.0.1:2'])
    assert.deepEqual(m.webseeds, ['http://127.0.0.1:3/files/'])
    assert.deepEqual(m.peers, [
      { host: '127.0.0.1', port: 6881 },
      { host: '::1', port: 6882 },
      { host: 'peer.example', port: 1 },
    ])
    assert.deepEqual(m.selectOnly, [
      { start: 0, end: 0 },
      { start: 2, end: 2 },
      { start: 4, end: 4 },
      { start: 6, end: 8 },
    ])
  })

  test('huge so ranges stay ranges (never expanded)', () => {
    const m = parseMagnet(`magnet:?xt=urn:btih:${V1HEX}&so=0-2147483647`)
    assert.deepEqual(m.selectOnly, [{ start: 0, end: 2147483647 }])
  })

  test('malformed links → typed MagnetError', () => {
    const cases: [string, string][] = [
      [`http://example.com/?xt=urn:btih:${V1HEX}`, 'BT_ERR_MAGNET_SYNTAX'],
      ['magnet:', 'BT_ERR_MAGNET_SYNTAX'],
      [`magnet:?xt=urn:btih:${V1HEX}&tr=${'a'.repeat(70_000)}`, 'BT_ERR_MAGNET_SYNTAX'],
      ['magnet:?dn=nothing', 'BT_ERR_MAGNET_NO_INFO_HASH'],
      ['magnet:?xt=urn:sha1:ABCDEF', 'BT_ERR_MAGNET_NO_INFO_HASH'],
      ['magnet:?xt=urn:btih:1234', 'BT_ERR_MAGNET_BAD_INFO_HASH'],
      [`magnet:?xt=urn:btih:${V1HEX.slice(0, 39)}g`, 'BT_ERR_MAGNET_BAD_INFO_HASH'],
      [`magnet:?xt=urn:btih:${base32(V1).slice(0, 31)}1`, 'BT_ERR_MAGNET_BAD_INFO_HASH'],
      [`magnet:?xt=urn:btih:${V1HEX}&xt=urn:btih:${'0'.repeat(40)}`, 'BT_ERR_MAGNET_BAD_INFO_HASH'],
      [`magnet:?xt=urn:btmh:1114${V2HEX}`, 'BT_ERR_MAGNET_BAD_INFO_HASH'],
      [`magnet:?xt=urn:btmh:1220${V2HEX.slice(2)}`, 'BT_ERR_MAGNET_BAD_INFO_HASH'],
      [`magnet:?xt=urn:btmh:${V2HEX}`, 'BT_ERR_MAGNET_BAD_INFO_HASH'],
      [`magnet:?xt=urn:btih:${V1HEX.slice(0, 38)}%zz`, 'BT_ERR_MAGNET_SYNTAX'],
    ]
    for (const [uri, expected] of cases)
      assert.equal(
        code(() => parseMagnet(uri)),
        expected,
        uri.slice(0, 120),
      )
  })

  // These used to reject the whole link. libtorrent's parse_magnet_uri (2.0.8) accepts all of
  // them, skipping what it cannot use; we skip the bad value too and say so in `warnings`.
  test('a bad optional value is skipped with a warning, the link still parses', () => {
    const cases: [string, string, Partial<Record<'trackers' | 'webseeds' | 'peers', unknown[]>>][] = [
      ['tr=not a url', 'not a URL', { trackers: [] }],
      [
        'tr=not%20a%20url&tr=http://127.0.0.1:1/announce',
        'tr',
        { trackers: ['http://127.0.0.1:1/announce'] },
      ],
      ['tr=http://a/%zz', 'percent', { trackers: [] }],
      ['ws=', 'ws', { webseeds: [] }],
      ['x.pe=garbage', 'x.pe', { peers: [] }],
      ['x.pe=127.0.0.1', 'x.pe', { peers: [] }],
      ['x.pe=127.0.0.1:0', 'x.pe', { peers: [] }],
      ['x.pe=127.0.0.1:65536', 'x.pe', { peers: [] }],
      ['x.pe=::1:80', 'x.pe', { peers: [] }],
      ['x.pe=:80', 'x.pe', { peers: [] }],
      ['x.pe&x.pe=127.0.0.1:1', 'x.pe', { peers: [{ host: '127.0.0.1', port: 1 }] }],
      ['so=a-b', 'so', {}],
      ['so=1-', 'so', {}],
      ['so=5-2', 'so', {}],
      ['so=a', 'so', {}],
      ['so=-1', 'so', {}],
      ['so=99999999999', 'so', {}],
      [`so=${'1,'.repeat(10_001)}1`, 'so', {}],
      ['%zz=1', '%zz', {}],
    ]
    for (const [params, warning, expected] of cases) {
      const m = parseMagnet(`magnet:?xt=urn:btih:${V1HEX}&${params}`)
      assert.deepEqual(m.infoHashV1, new Uint8Array(V1), params)
      assert.equal(m.warnings.length, 1, `${params}: ${m.warnings.join(' | ')}`)
      assert.ok(
        m.warnings[0]!.includes(warning) || m.warnings[0]!.toLowerCase().includes(warning),
        `${params}: ${m.warnings[0]}`,
      )
      assert.equal(m.selectOnly, undefined)
      for (const [k, v] of Object.entries(expected))
        assert.deepEqual(m[k as keyof typeof expected], v, params)
    }
  })

  test('dn with broken percent-escapes keeps them as text (libtorrent keeps the link too)', () => {
    const m = parseMagnet(`magnet:?xt=urn:btih:${V1HEX}&dn=50%off%20today%E2%9C%93%E0%A4%A`)
    assert.equal(m.name, '50%off today✓\uFFFD%A')
    assert.equal(m.warnings.length, 1)
    assert.deepEqual(parseMagnet(`magnet:?xt=urn:btih:${V1HEX}&dn=ok%20name`).warnings, [])
  })

  test('warnings are bounded', () => {
    const m = parseMagnet(`magnet:?xt=urn:btih:${V1HEX}${'&x.pe=bad'.repeat(1000)}`)
    assert.equal(m.warnings.length, MAX_WARNINGS)
    assert.deepEqual(m.peers, [])
  })

  test('xt problems stay fatal even among good optional values', () => {
    assert.equal(
      code(() => parseMagnet('magnet:?tr=http://127.0.0.1:1/a&dn=x')),
      'BT_ERR_MAGNET_NO_INFO_HASH',
    )
    assert.equal(
      code(() => parseMagnet(`magnet:?xt=urn:btih:zz&tr=http://127.0.0.1:1/a`)),
      'BT_ERR_MAGNET_BAD_INFO_HASH',
    )
  })
})

describe('buildMagnet', () => {
  test('build → parse round trip', () => {
    const init = {
      infoHashV1: new Uint8Array(V1),
      infoHashV2: new Uint8Array(V2),
      name: 'a name & more = ✓',
      trackers: ['http://127.0.0.1:1/announce?x=1&y=2', 'udp://127.0.0.1:2'],
      webseeds: ['http://127.0.0.1:3/ws/'],
      peers: [
        { host: '127.0.0.1', port: 1 },
        { host: '::1', port: 2 },
      ],
      selectOnly: [
        { start: 0, end: 0 },
        { start: 3, end: 9 },
      ],
    }
    const uri = buildMagnet(init)
    assert.ok(uri.startsWith(`magnet:?xt=urn:btih:${V1HEX}&xt=urn:btmh:1220${V2HEX}&`))
    assert.deepEqual(parseMagnet(uri), { ...init, warnings: [] })
  })

  test('refuses links without or with malformed hashes', () => {
    assert.equal(
      code(() => buildMagnet({})),
      'BT_ERR_MAGNET_NO_INFO_HASH',
    )
    assert.equal(
      code(() => buildMagnet({ infoHashV1: new Uint8Array(19) })),
      'BT_ERR_MAGNET_BAD_INFO_HASH',
    )
    assert.equal(
      code(() => buildMagnet({ infoHashV2: new Uint8Array(20) })),
      'BT_ERR_MAGNET_BAD_INFO_HASH',
    )
    assert.equal(
      code(() => buildMagnet({ infoHashV1: V1, trackers: ['::'] })),
      'BT_ERR_MAGNET_BAD_URL',
    )
  })

  test('property: any built link parses back to the same fields', () => {
    const url = fc.webUrl({ withQueryParameters: true }).filter((u) => URL.canParse(u))
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 20, maxLength: 20 }),
        fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: undefined }),
        fc.option(fc.string(), { nil: undefined }),
        fc.uniqueArray(url, { maxLength: 3 }),
        (v1, v2, name, trackers) => {
          const init = {
            infoHashV1: v1,
            ...(v2 ? { infoHashV2: v2 } : {}),
            ...(name !== undefined ? { name } : {}),
            trackers,
          }
          const back = parseMagnet(buildMagnet(init))
          assert.deepEqual(back, { ...init, webseeds: [], peers: [], warnings: [] })
        },
      ),
      { numRuns: 300 },
    )
  })

  test('magnetFromMetainfo carries both hashes, the name, trackers and web seeds', async () => {
    const bytes = new Uint8Array(40_000).fill(7)
    const { metainfo } = await createTorrent({
      name: 'file.bin',
      files: [
        {
          path: ['file.bin'],
          length: bytes.length,
          open: async function* () {
            yield bytes
          },
        },
      ],
      trackers: [['http://127.0.0.1:1/a'], ['http://127.0.0.1:1/b']],
      webseeds: ['http://127.0.0.1:1/ws/'],
    })
    const m = parseMagnet(magnetFromMetainfo(metainfo))
    assert.deepEqual(m.infoHashV1, metainfo.info.infoHashV1)
    assert.deepEqual(m.infoHashV2, metainfo.info.infoHashV2)
    assert.equal(m.name, 'file.bin')
    assert.deepEqual(m.trackers, ['http://127.0.0.1:1/a', 'http://127.0.0.1:1/b'])
    assert.deepEqual(m.webseeds, ['http://127.0.0.1:1/ws/'])
  })
})
