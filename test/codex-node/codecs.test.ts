/**
 * Codex CIDs and manifests against the upstream vectors of NOTES §3.4/§3.6 and nim-libp2p's
 * parsing rules.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { base32 } from 'multiformats/bases/base32'
import { base58btc } from 'multiformats/bases/base58'
import { base64, base64url } from 'multiformats/bases/base64'
import {
  BLOCK_CODEC,
  blockCidFromDigest,
  CODEX_CODECS,
  formatCid,
  InvalidCidError,
  isManifestCid,
  MANIFEST_CODEC,
  manifestCidFromBytes,
  parseCid,
  sha256,
  treeCidFromRoot,
  tryParseCid,
} from '../../codex-client/cid.ts'
import {
  type DataItemJson,
  dataItemToJson,
  decodeManifest,
  encodeManifest,
  encodeManifestBlock,
  type Manifest,
  ManifestDecodeError,
  manifestToJson,
  newManifest,
} from '../../codex-client/manifest.ts'
import { codexTreeRoot } from '../../codex-client/tree.ts'

const SOME_FILE = Buffer.from('some file contents')
const TREE_CID = 'zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL'
const MANIFEST_CID = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'
/** NOTES §3.4: the 56 manifest bytes of the 18-byte upload without metadata. */
const MANIFEST_HEX =
  '0a36' +
  '0a26' +
  '01839a031220050b50fa8145c235e1b817326d34f733420298a9aa511f13622dd81264e8d4df' +
  '10808004' +
  '1812' +
  '20829a03' +
  '2812' +
  '3002'

function paddedBlock(bytes: Uint8Array): Uint8Array {
  const block = new Uint8Array(65536)
  block.set(bytes)
  return block
}

describe('upstream vectors (NOTES §3.6)', () => {
  test('18-byte upload: padded block -> tree CID', () => {
    const leaf = sha256(paddedBlock(SOME_FILE))
    assert.equal(formatCid(treeCidFromRoot(codexTreeRoot([leaf]))), TREE_CID)
  })

  test('without padding the tree CID differs (padding is part of the format)', () => {
    const leaf = sha256(SOME_FILE)
    assert.notEqual(formatCid(treeCidFromRoot(codexTreeRoot([leaf]))), TREE_CID)
  })

  test('manifest bytes and manifest CID', () => {
    const manifest = newManifest({ treeCid: parseCid(TREE_CID), datasetSize: 18 })
    const { bytes, cid } = encodeManifestBlock(manifest)
    assert.equal(Buffer.from(bytes).toString('hex'), MANIFEST_HEX)
    assert.equal(bytes.length, 56)
    assert.equal(formatCid(cid), MANIFEST_CID)
    assert.equal(formatCid(manifestCidFromBytes(bytes)), MANIFEST_CID)
  })

  test('manifest JSON of the upstream test (plus filename/mimetype null)', () => {
    const manifest = decodeManifest(Buffer.from(MANIFEST_HEX, 'hex'))
    const item: DataItemJson = dataItemToJson(parseCid(MANIFEST_CID), manifest)
    assert.equal(
      JSON.stringify(item),
      `{"cid":"${MANIFEST_CID}","manifest":{"treeCid":"${TREE_CID}","datasetSize":18,"blockSize":65536,"filename":null,"mimetype":null,"protected":false}}`,
    )
  })
})

describe('codecs', () => {
  test('Codex multicodec table', () => {
    assert.equal(CODEX_CODECS['codex-manifest'], 0xcd01)
    assert.equal(CODEX_CODECS['codex-block'], 0xcd02)
    assert.equal(CODEX_CODECS['codex-root'], 0xcd03)
    assert.equal(CODEX_CODECS['codex-slot-root'], 0xcd04)
    assert.equal(CODEX_CODECS['codex-proving-root'], 0xcd05)
    assert.equal(CODEX_CODECS['codex-slot-cell'], 0xcd06)
    assert.equal(CODEX_CODECS['torrent-info'], 0x7b)
    assert.equal(CODEX_CODECS['torrent-file'], 0x7c)
  })

  test('binary layout of block, tree and manifest CIDs (NOTES §3.2-3.4)', () => {
    const digest = sha256(Buffer.from('x'))
    const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
    assert.equal(hex(blockCidFromDigest(digest).bytes), `01829a031220${hex(digest)}`)
    assert.equal(hex(treeCidFromRoot(digest).bytes), `01839a031220${hex(digest)}`)
    assert.equal(hex(manifestCidFromBytes(Buffer.from('x')).bytes), `01819a031220${hex(digest)}`)
    assert.ok(formatCid(blockCidFromDigest(digest)).startsWith('zDx'))
    assert.ok(formatCid(treeCidFromRoot(digest)).startsWith('zDz'))
    assert.ok(isManifestCid(parseCid(MANIFEST_CID)))
    assert.ok(!isManifestCid(parseCid(TREE_CID)))
    assert.equal(parseCid(MANIFEST_CID).code, MANIFEST_CODEC)
    assert.equal(blockCidFromDigest(digest).code, BLOCK_CODEC)
  })
})

describe('parseCid: nim-libp2p acceptance rules', () => {
  const manifest = parseCid(MANIFEST_CID)
  const bytes = manifest.bytes

  test('accepted multibases all print as z-base58btc', () => {
    const spellings = [
      MANIFEST_CID,
      base32.encode(bytes),
      `B${base32.baseEncode(bytes).toUpperCase()}`,
      base64.encode(bytes),
      base64url.encode(bytes),
      `\u0000${Buffer.from(bytes).toString('latin1')}`,
    ]
    for (const text of spellings) assert.equal(formatCid(parseCid(text)), MANIFEST_CID, JSON.stringify(text))
  })

  test('CIDv0 Qm… parses and prints as Qm…', () => {
    const v0 = 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'
    const cid = parseCid(v0)
    assert.equal(cid.version, 0)
    assert.equal(cid.code, 0x70)
    assert.equal(formatCid(cid), v0)
  })

  test('torrent-info CIDs (codec 0x7B, sha1) parse (NOTES §2)', () => {
    const cid = parseCid('z8q71z28S52VyhNSmcAC9HWy5KrEsYnDr')
    assert.equal(cid.code, 0x7b)
    assert.equal(
      Buffer.from(cid.multihash.digest).toString('hex'),
      '1902d602db8c350f4f6d809ed01eff32f030da95',
    )
  })

  const rejected: [string, string][] = [
    ['integration-test string', 'invalid-cid'],
    ['empty', ''],
    ['one character', 'z'],
    ['base16 (nim-libp2p decoder is a stub)', `f${Buffer.from(bytes).toString('hex')}`],
    ['base16 upper', `F${Buffer.from(bytes).toString('hex').toUpperCase()}`],
    ['base36 (not decoded by nim-libp2p)', 'k2jmtxw8rjh1z69c6not3wnbxoyzlb8m2sfg0vt4ptcwm7pqh5ej7xbq'],
    ['unknown multibase prefix', `Q${MANIFEST_CID.slice(1)}`],
    ['bad base58 character', `${MANIFEST_CID.slice(0, -1)}0`],
    [
      'binary CIDv0 inside a multibase',
      base58btc.encode(parseCid('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N').bytes),
    ],
    ['CID version 2', base58btc.encode(Uint8Array.from([0x02, ...bytes.subarray(1)]))],
    ['unknown content codec', base58btc.encode(Uint8Array.from([0x01, 0x99, 0x01, ...bytes.subarray(4)]))],
    [
      'unknown hash code',
      base58btc.encode(Uint8Array.from([...bytes.subarray(0, 4), 0x99, 0x01, 0x20, ...bytes.subarray(6)])),
    ],
    [
      'wrong digest size for sha2-256',
      base58btc.encode(Uint8Array.from([...bytes.subarray(0, 5), 0x1f, ...bytes.subarray(6, 37)])),
    ],
    ['truncated digest', base58btc.encode(bytes.subarray(0, bytes.length - 1))],
    ['overlong version varint', base58btc.encode(Uint8Array.from([0x81, 0x00, ...bytes.subarray(1)]))],
  ]
  for (const [name, text] of rejected) {
    test(`rejects ${name}`, () => {
      assert.throws(
        () => parseCid(text),
        (err: unknown) =>
          err instanceof InvalidCidError &&
          err.code === 'CODEX_ERR_INVALID_CID' &&
          err.message === 'Incorrect Cid',
      )
      assert.equal(tryParseCid(text), undefined)
    })
  }

  test('trailing bytes after the multihash are kept, as nim-libp2p does', () => {
    const withTail = Uint8Array.from([...bytes, 0xaa, 0xbb])
    const cid = parseCid(base58btc.encode(withTail))
    assert.equal(formatCid(cid), base58btc.encode(withTail))
    assert.notEqual(formatCid(cid), MANIFEST_CID)
  })
})

describe('manifest codec', () => {
  const treeCid = parseCid(TREE_CID)

  test('filename and mimetype round-trip and change the CID', () => {
    const manifest = newManifest({ treeCid, datasetSize: 18, filename: 'a.txt', mimetype: 'text/plain' })
    const bytes = encodeManifest(manifest)
    // header fields 8 and 9 come after the version field (3002)
    assert.ok(
      Buffer.from(bytes)
        .toString('hex')
        .endsWith(`3002420561${'2e747874'}4a0a${Buffer.from('text/plain').toString('hex')}`),
    )
    const back = decodeManifest(bytes)
    assert.equal(back.filename, 'a.txt')
    assert.equal(back.mimetype, 'text/plain')
    assert.notEqual(formatCid(encodeManifestBlock(manifest).cid), MANIFEST_CID)
    assert.deepEqual(Object.keys(manifestToJson(back)), [
      'treeCid',
      'datasetSize',
      'blockSize',
      'filename',
      'mimetype',
      'protected',
    ])
  })

  test('an empty filename or mimetype field decodes as absent', () => {
    const hex = `${MANIFEST_HEX.replace(/^0a36/, '0a3a')}42004a00`
    const back = decodeManifest(Buffer.from(hex, 'hex'))
    assert.equal(back.filename, undefined)
    assert.equal(back.mimetype, undefined)
  })

  test('protected manifests: erasure info round-trips, JSON has verifiable', () => {
    const manifest: Manifest = {
      ...newManifest({ treeCid, datasetSize: 3 * 65536 }),
      erasure: {
        ecK: 2,
        ecM: 1,
        originalTreeCid: treeCid,
        originalDatasetSize: 100_000,
        protectedStrategy: 1,
        verification: {
          verifyRoot: treeCid,
          slotRoots: [treeCid, treeCid],
          cellSize: 2048,
          verifiableStrategy: 0,
        },
      },
    }
    const back = decodeManifest(encodeManifest(manifest))
    assert.equal(back.erasure?.ecK, 2)
    assert.equal(back.erasure?.originalDatasetSize, 100_000)
    assert.equal(back.erasure?.verification?.slotRoots.length, 2)
    assert.equal(back.erasure?.verification?.cellSize, 2048)
    const json = manifestToJson(back)
    assert.equal(json.protected, true)
    assert.equal(json.verifiable, true)
    assert.deepEqual(Object.keys(json).slice(-2), ['protected', 'verifiable'])
    const { verification: _, ...withoutVerification } = manifest.erasure!
    const json2 = manifestToJson(
      decodeManifest(encodeManifest({ ...manifest, erasure: withoutVerification })),
    )
    assert.equal(json2.verifiable, false)
  })

  const malformed: [string, string][] = [
    ['truncated outer length', '0a36'],
    ['truncated varint', '0a0210'],
    ['wire type 3', '0b'],
    ['field number 0', '0200'],
    ['bad treeCid bytes', '0a040a020102'],
    ['missing treeCid', '0a021012'],
    ['varint where bytes expected', '0812'],
  ]
  for (const [name, hex] of malformed) {
    test(`decode rejects ${name} with ManifestDecodeError`, () => {
      assert.throws(
        () => decodeManifest(Buffer.from(hex, 'hex')),
        (err: unknown) => err instanceof ManifestDecodeError && err.code === 'CODEX_ERR_MANIFEST_DECODE',
      )
    })
  }
})
