/**
 * Metainfo parsing (gateway/protocol/metainfo.ts): v1 / v2 / hybrid layouts, BEP12/19/27/47
 * fields, info hashes over the exact info bytes, and a table of malformed torrents, each
 * rejected with the expected error code and field.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, test } from 'node:test'
import {
  type BDict,
  type BValue,
  bytesToKey,
  decodeBencode,
  encodeBencode,
  textKey,
} from '../../gateway/protocol/bencode.ts'
import { createTorrent, type TorrentSourceFile } from '../../gateway/protocol/create-torrent.ts'
import { MetainfoError } from '../../gateway/protocol/errors.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { parseInfoDict, parseTorrent, swarmIds, truncatedV2 } from '../../gateway/protocol/metainfo.ts'
import type { Metainfo, TorrentVersion } from '../../gateway/protocol/types.ts'

const KiB = 1024
const PL = 16 * KiB

/** Deterministic pseudo-random bytes. */
function data(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed * 2654435761 + 1
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

function memFile(path: string[], bytes: Uint8Array): TorrentSourceFile {
  return {
    path,
    length: bytes.length,
    async *open() {
      for (let o = 0; o < bytes.length; o += 5000) yield bytes.subarray(o, o + 5000)
    },
  }
}

/** Multi-file sample: odd sizes, an empty file, a file larger than a piece, one of exactly one piece. */
function sampleFiles(): TorrentSourceFile[] {
  return [
    memFile(['b.bin'], data(40_000, 1)),
    memFile(['C.bin'], data(PL, 2)),
    memFile(['empty'], new Uint8Array(0)),
    memFile(['sub', 'z.bin'], data(70_000, 3)),
    memFile(['a', 'x'], data(5, 4)),
  ]
}

async function sample(version: TorrentVersion, extra: Record<string, unknown> = {}): Promise<Uint8Array> {
  const { bytes } = await createTorrent({
    name: 'd',
    files: sampleFiles(),
    version,
    pieceLength: PL,
    ...extra,
  })
  return bytes
}

async function single(version: TorrentVersion): Promise<Uint8Array> {
  const files = [memFile(['single.bin'], data(50_000, 9))]
  return (await createTorrent({ name: 'single.bin', files, version, pieceLength: 2 * PL })).bytes
}

/** Decodes, lets `fn` edit the top-level and info dictionaries, re-encodes. */
function mutate(bytes: Uint8Array, fn: (top: BDict, info: BDict) => void): Uint8Array {
  const top = decodeBencode(bytes).value as BDict
  fn(top, top.get('info') as BDict)
  return encodeBencode(top)
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
const files = (info: BDict): BDict[] => info.get('files') as BDict[]
const tree = (info: BDict): BDict => info.get('file tree') as BDict
const sub = (d: BDict, ...keys: string[]): BDict => keys.reduce((n, k) => n.get(textKey(k)) as BDict, d)

function expectError(bytes: Uint8Array, code: string, field?: string, opts = {}): void {
  assert.throws(
    () => parseTorrent(bytes, opts),
    (err: unknown) => {
      assert.ok(err instanceof MetainfoError, `expected MetainfoError, got ${String(err)}`)
      assert.equal(err.code, code, err.message)
      if (field !== undefined) assert.equal(err.field, field, err.message)
      return true
    },
  )
}

function sha(alg: string, b: Uint8Array): string {
  return createHash(alg).update(b).digest('hex')
}

describe('parseTorrent: valid torrents', () => {
  test('v1 multi-file: linear layout, BEP3 hashes over the exact info bytes', async () => {
    const bytes = await sample('v1')
    const m = parseTorrent(bytes)
    const { info } = m
    assert.equal(info.version, 'v1')
    assert.deepEqual(
      info.files.map((f) => [f.path.join('/'), f.length, f.offset, f.padding]),
      [
        ['C.bin', PL, 0, false],
        ['a/x', 5, PL, false],
        ['b.bin', 40_000, PL + 5, false],
        ['empty', 0, PL + 40_005, false],
        ['sub/z.bin', 70_000, PL + 40_005, false],
      ],
    )
    assert.equal(info.totalLength, PL + 110_005)
    assert.equal(info.payloadLength, info.totalLength)
    assert.equal(info.pieceCount, Math.ceil(info.totalLength / PL))
    assert.equal(info.pieces?.byteLength, 20 * info.pieceCount)
    const infoBytes = encodeBencode((decodeBencode(bytes).value as BDict).get('info')!)
    assert.equal(toHex(info.infoHashV1!), sha('sha1', infoBytes))
    assert.equal(info.infoHashV2, undefined)
    assert.deepEqual(info.infoBytes, infoBytes)
    assert.equal(m.pieceLayers.size, 0)
    const z = info.files[4]!
    assert.equal(z.firstPiece, Math.floor((PL + 40_005) / PL))
    assert.equal(z.pieceCount, Math.ceil((PL + 110_005) / PL) - z.firstPiece)
    assert.deepEqual(swarmIds(info), [{ protocol: 'v1', infoHash: info.infoHashV1 }])
  })

  test('v2: virtual pads align each file (libtorrent layout), piece layers verified', async () => {
    const m = parseTorrent(await sample('v2'))
    const { info } = m
    assert.equal(info.version, 'v2')
    assert.equal(info.metaVersion, 2)
    assert.deepEqual(
      info.files.map((f) => [
        f.path.join('/'),
        f.length,
        f.offset,
        f.padding,
        f.virtual,
        f.firstPiece,
        f.pieceCount,
      ]),
      [
        ['C.bin', PL, 0, false, false, 0, 1],
        ['a/x', 5, PL, false, false, 1, 1],
        ['.pad/16379', PL - 5, PL + 5, true, true, 1, 1],
        ['b.bin', 40_000, 2 * PL, false, false, 2, 3],
        ['.pad/9152', 9152, 2 * PL + 40_000, true, true, 4, 1],
        ['empty', 0, 5 * PL, false, false, 5, 0],
        ['sub/z.bin', 70_000, 5 * PL, false, false, 5, 5],
        ['.pad/11920', 11920, 5 * PL + 70_000, true, true, 9, 1],
      ],
    )
    assert.equal(info.pieceCount, 10)
    assert.equal(info.totalLength, 10 * PL)
    assert.equal(info.payloadLength, 110_005 + PL)
    assert.equal(info.pieces, undefined)
    assert.equal(info.infoHashV1, undefined)
    assert.equal(toHex(info.infoHashV2!), sha('sha256', info.infoBytes))
    for (const f of info.files)
      assert.equal(f.piecesRoot !== undefined, !f.padding && f.length > 0, f.path.join('/'))
    // Files larger than one piece (b.bin, sub/z.bin) have a piece layer, one hash per piece.
    assert.deepEqual(
      [...m.pieceLayers.entries()].map(([k, v]) => [k, v.byteLength]).sort(),
      [
        [toHex(info.files[3]!.piecesRoot!), 3 * 32],
        [toHex(info.files[6]!.piecesRoot!), 5 * 32],
      ].sort(),
    )
    assert.deepEqual(swarmIds(info), [{ protocol: 'v2', infoHash: info.infoHashV2!.subarray(0, 20) }])
    assert.deepEqual(truncatedV2(info.infoHashV2!), info.infoHashV2!.subarray(0, 20))
  })

  test('hybrid: real BEP47 pad files, both hashes, v2 roots on the v1 entries', async () => {
    const m = parseTorrent(await sample('hybrid'))
    const { info } = m
    assert.equal(info.version, 'hybrid')
    assert.deepEqual(
      info.files.map((f) => [f.path.join('/'), f.offset, f.padding, f.virtual, f.attr]),
      [
        ['C.bin', 0, false, false, ''],
        ['a/x', PL, false, false, ''],
        ['.pad/16379', PL + 5, true, false, 'p'],
        ['b.bin', 2 * PL, false, false, ''],
        ['.pad/9152', 2 * PL + 40_000, true, false, 'p'],
        ['empty', 5 * PL, false, false, ''],
        ['sub/z.bin', 5 * PL, false, false, ''],
      ],
    )
    assert.equal(info.pieceCount, 10)
    assert.equal(info.totalLength, 5 * PL + 70_000) // no pad after the last file
    assert.equal(info.pieces?.byteLength, 200)
    assert.equal(toHex(info.infoHashV1!), sha('sha1', info.infoBytes))
    assert.equal(toHex(info.infoHashV2!), sha('sha256', info.infoBytes))
    assert.equal(swarmIds(info).length, 2)
    const v2 = parseTorrent(await sample('v2')).info
    const roots = (i: typeof info) => i.files.filter((f) => f.piecesRoot).map((f) => toHex(f.piecesRoot!))
    assert.deepEqual(roots(info), roots(v2))
  })

  test('hybrid with a pad after the last file (libtorrent 2.0.4+) is accepted', async () => {
    const bytes = mutate(await sample('hybrid'), (_top, info) => {
      files(info).push(
        new Map<string, BValue>([
          ['attr', enc('p')],
          ['length', 11920],
          ['path', [enc('.pad'), enc('11920')]],
        ]),
      )
    })
    const { info } = parseTorrent(bytes)
    assert.equal(info.totalLength, 10 * PL)
    assert.equal(info.files.at(-1)!.padding, true)
  })

  test('single-file torrents, v1 / v2 / hybrid', async () => {
    for (const v of ['v1', 'v2', 'hybrid'] as const) {
      const { info } = parseTorrent(await single(v))
      assert.equal(info.name, 'single.bin')
      assert.deepEqual(info.files[0]!.path, ['single.bin'])
      assert.equal(info.files[0]!.length, 50_000)
      assert.equal(info.pieceCount, 2)
      assert.equal(info.files.length, v === 'v2' ? 2 : 1, v) // v2: a virtual tail pad
    }
  })

  test('v2 single file whose tree key differs from the name', async () => {
    const bytes = mutate(await single('v2'), (top, info) => {
      const t = tree(info)
      t.set('other.bin', t.get('single.bin')!)
      t.delete('single.bin')
      top.delete('piece layers')
      top.set('piece layers', new Map())
    })
    // single.bin (50,000 B) is larger than one 32 KiB piece: its layer is missing, which libtorrent
    // 2.0.8 accepts (the engine fetches it from peers), so the torrent loads without it.
    const noLayer = parseTorrent(bytes)
    assert.equal(noLayer.pieceLayers.size, 0)
    assert.deepEqual(noLayer.info.files[0]!.path, ['other.bin'])
    const ok = mutate(await single('v2'), (_top, info) => {
      const t = tree(info)
      t.set('other.bin', t.get('single.bin')!)
      t.delete('single.bin')
    })
    assert.deepEqual(parseTorrent(ok).info.files[0]!.path, ['other.bin'])
  })

  test('info hashes are over the bytes as found, even when not canonical (BEP3, BEP52)', async () => {
    const canonical = await single('hybrid')
    const top = decodeBencode(canonical).value as BDict
    const infoCanon = encodeBencode(top.get('info')!)
    // Move `pieces` before `name`: valid bencode, but keys out of order.
    const s = Buffer.from(infoCanon).toString('latin1')
    const piecesAt = s.indexOf('6:pieces')
    const piecesEnd = piecesAt + '6:pieces'.length + `40:`.length + 40
    const reordered = `d${s.slice(piecesAt, piecesEnd)}${s.slice(1, piecesAt)}${s.slice(piecesEnd)}`
    const url = 'http://127.0.0.1:1/announce'
    const layers = Buffer.from(encodeBencode(top.get('piece layers')!)).toString('latin1')
    const raw = Buffer.from(
      `d4:info${reordered}8:announce${url.length}:${url}12:piece layers${layers}e`,
      'latin1',
    )
    const { info, announce } = parseTorrent(raw)
    assert.deepEqual(announce, [[url]])
    assert.equal(toHex(info.infoHashV1!), sha('sha1', Buffer.from(reordered, 'latin1')))
    assert.notEqual(toHex(info.infoHashV1!), sha('sha1', infoCanon))
    assert.equal(toHex(info.infoHashV2!), sha('sha256', Buffer.from(reordered, 'latin1')))
  })

  test('parseInfoDict gives the same info as parseTorrent', async () => {
    for (const v of ['v1', 'v2', 'hybrid'] as const) {
      const m = parseTorrent(await sample(v))
      assert.deepEqual(parseInfoDict(m.info.infoBytes), m.info)
    }
  })

  test('BEP12 tiers, BEP19 web seeds, BEP27 private, comment, created by, creation date', async () => {
    const bytes = await sample('hybrid', {
      trackers: [['http://127.0.0.1:1/a', 'http://127.0.0.1:1/b'], [], ['udp://127.0.0.1:1']],
      webseeds: ['http://127.0.0.1:1/ws/'],
      private: true,
      comment: 'hello ✓',
      createdBy: 'codex-bt test',
      creationDate: 1_700_000_000,
    })
    const m = parseTorrent(bytes)
    assert.deepEqual(m.announce, [['http://127.0.0.1:1/a', 'http://127.0.0.1:1/b'], ['udp://127.0.0.1:1']])
    assert.deepEqual(m.urlList, ['http://127.0.0.1:1/ws/'])
    assert.equal(m.info.private, true)
    assert.equal(m.comment, 'hello ✓')
    assert.equal(m.createdBy, 'codex-bt test')
    assert.equal(m.creationDate, 1_700_000_000)
    // announce alone is one tier; an announce-list overrides it (BEP12); url-list as a list.
    const alone = mutate(bytes, (top) => {
      top.delete('announce-list')
      top.set('url-list', [enc('http://127.0.0.1:1/1'), enc(''), enc('http://127.0.0.1:1/2')])
    })
    assert.deepEqual(parseTorrent(alone).announce, [['http://127.0.0.1:1/a']])
    assert.deepEqual(parseTorrent(alone).urlList, ['http://127.0.0.1:1/1', 'http://127.0.0.1:1/2'])
    const emptyTiers = mutate(bytes, (top) => top.set('announce-list', [[], []]))
    assert.deepEqual(parseTorrent(emptyTiers).announce, [['http://127.0.0.1:1/a']])
  })

  test('BEP47 attributes and symlinks are preserved; pad files may omit their path', async () => {
    const bytes = mutate(await sample('v1'), (_top, info) => {
      const list = files(info)
      list[0]!.set('attr', enc('xh'))
      list.push(
        new Map<string, BValue>([
          ['attr', enc('l')],
          ['path', [enc('link')]],
          ['symlink path', [enc('sub'), enc('z.bin')]],
        ]),
      )
      list.push(
        new Map<string, BValue>([
          ['attr', enc('p')],
          ['length', 0],
        ]),
      )
    })
    const { info } = parseTorrent(bytes)
    assert.equal(info.files[0]!.attr, 'xh')
    const link = info.files.find((f) => f.path[0] === 'link')!
    assert.equal(link.length, 0)
    assert.deepEqual(link.symlinkPath, ['sub', 'z.bin'])
    assert.deepEqual(info.files.at(-1)!.path, ['.pad', '0'])
    assert.equal(info.files.at(-1)!.padding, true)
  })

  test('an empty v2 file with a zero pieces root (old libtorrent) is accepted without a root', async () => {
    const bytes = mutate(await sample('v2'), (_top, info) => {
      sub(tree(info), 'empty', '').set('pieces root', new Uint8Array(32))
    })
    const f = parseTorrent(bytes).info.files.find((x) => x.path[0] === 'empty')!
    assert.equal(f.piecesRoot, undefined)
  })
})

describe('parseTorrent: malformed and hostile torrents', () => {
  const L = (n: number | bigint): BValue => n
  const cases: [string, TorrentVersion, (top: BDict, info: BDict) => void, string, string?][] = [
    ['top level not a dict', 'v1', () => {}, 'BT_ERR_METAINFO_WRONG_TYPE', ''],
    ['info missing', 'v1', (top) => top.delete('info'), 'BT_ERR_METAINFO_MISSING_FIELD', 'info'],
    ['info not a dict', 'v1', (top) => top.set('info', [1]), 'BT_ERR_METAINFO_WRONG_TYPE', 'info'],
    ['name missing', 'v1', (_t, i) => i.delete('name'), 'BT_ERR_METAINFO_MISSING_FIELD', 'info.name'],
    ['name an integer', 'v1', (_t, i) => i.set('name', 1), 'BT_ERR_METAINFO_WRONG_TYPE', 'info.name'],
    [
      'piece length missing',
      'v1',
      (_t, i) => i.delete('piece length'),
      'BT_ERR_METAINFO_MISSING_FIELD',
      'info.piece length',
    ],
    [
      'piece length 0',
      'v1',
      (_t, i) => i.set('piece length', 0),
      'BT_ERR_METAINFO_BAD_PIECE_LENGTH',
      'info.piece length',
    ],
    [
      'piece length negative',
      'v1',
      (_t, i) => i.set('piece length', -16384),
      'BT_ERR_METAINFO_BAD_PIECE_LENGTH',
    ],
    [
      'piece length huge',
      'v1',
      (_t, i) => i.set('piece length', 2 ** 40),
      'BT_ERR_METAINFO_BAD_PIECE_LENGTH',
    ],
    [
      'piece length bigint',
      'v1',
      (_t, i) => i.set('piece length', L(2n ** 70n)),
      'BT_ERR_METAINFO_BAD_PIECE_LENGTH',
    ],
    [
      'piece length a string',
      'v1',
      (_t, i) => i.set('piece length', enc('16384')),
      'BT_ERR_METAINFO_WRONG_TYPE',
    ],
    [
      'v2 piece length not a power of two',
      'v2',
      (_t, i) => i.set('piece length', 3 * PL),
      'BT_ERR_METAINFO_BAD_PIECE_LENGTH',
    ],
    [
      'v2 piece length below 16 KiB',
      'v2',
      (_t, i) => i.set('piece length', 8192),
      'BT_ERR_METAINFO_BAD_PIECE_LENGTH',
    ],
    ['pieces missing', 'v1', (_t, i) => i.delete('pieces'), 'BT_ERR_METAINFO_MISSING_FIELD', 'info.pieces'],
    [
      'pieces one byte short',
      'v1',
      (_t, i) => i.set('pieces', (i.get('pieces') as Uint8Array).subarray(1)),
      'BT_ERR_METAINFO_BAD_PIECES',
      'info.pieces',
    ],
    [
      'pieces one hash too many',
      'hybrid',
      (_t, i) => i.set('pieces', new Uint8Array(220)),
      'BT_ERR_METAINFO_BAD_PIECES',
    ],
    ['both length and files', 'v1', (_t, i) => i.set('length', 5), 'BT_ERR_METAINFO_CONFLICTING_FIELDS'],
    ['neither length nor files', 'v1', (_t, i) => i.delete('files'), 'BT_ERR_METAINFO_MISSING_FIELD'],
    ['empty file list', 'v1', (_t, i) => i.set('files', []), 'BT_ERR_METAINFO_EMPTY'],
    [
      'files not a list',
      'v1',
      (_t, i) => i.set('files', new Map()),
      'BT_ERR_METAINFO_WRONG_TYPE',
      'info.files',
    ],
    [
      'file entry not a dict',
      'v1',
      (_t, i) => files(i).push(enc('x') as never),
      'BT_ERR_METAINFO_WRONG_TYPE',
      'info.files[5]',
    ],
    [
      'negative length',
      'v1',
      (_t, i) => files(i)[1]!.set('length', -1),
      'BT_ERR_METAINFO_BAD_LENGTH',
      'info.files[1].length',
    ],
    [
      'length beyond 2^53',
      'v1',
      (_t, i) => files(i)[1]!.set('length', L(2n ** 64n)),
      'BT_ERR_METAINFO_BAD_LENGTH',
      'info.files[1].length',
    ],
    [
      'length a string',
      'v1',
      (_t, i) => files(i)[1]!.set('length', enc('5')),
      'BT_ERR_METAINFO_WRONG_TYPE',
      'info.files[1].length',
    ],
    [
      'length missing',
      'v1',
      (_t, i) => files(i)[1]!.delete('length'),
      'BT_ERR_METAINFO_MISSING_FIELD',
      'info.files[1].length',
    ],
    [
      'total length overflows',
      'v1',
      (_t, i) => {
        files(i)[0]!.set('length', Number.MAX_SAFE_INTEGER)
        files(i)[1]!.set('length', Number.MAX_SAFE_INTEGER)
      },
      'BT_ERR_METAINFO_BAD_LENGTH',
    ],
    [
      'path missing',
      'v1',
      (_t, i) => files(i)[0]!.delete('path'),
      'BT_ERR_METAINFO_MISSING_FIELD',
      'info.files[0].path',
    ],
    [
      'path empty',
      'v1',
      (_t, i) => files(i)[0]!.set('path', []),
      'BT_ERR_METAINFO_BAD_PATH',
      'info.files[0].path',
    ],
    [
      'path element an integer',
      'v1',
      (_t, i) => files(i)[0]!.set('path', [1]),
      'BT_ERR_METAINFO_WRONG_TYPE',
      'info.files[0].path[0]',
    ],
    [
      'symlink without target',
      'v1',
      (_t, i) => files(i)[2]!.set('attr', enc('l')),
      'BT_ERR_METAINFO_MISSING_FIELD',
      'info.files[2].symlink path',
    ],
    [
      'symlink escaping the torrent',
      'v1',
      (_t, i) => {
        files(i)[3]!.set('attr', enc('l'))
        files(i)[3]!.set('symlink path', [enc('..'), enc('x')])
      },
      'BT_ERR_METAINFO_BAD_PATH',
    ],
    [
      'symlink with a length',
      'v1',
      (_t, i) => {
        files(i)[0]!.set('attr', enc('l'))
        files(i)[0]!.set('symlink path', [enc('b.bin')])
      },
      'BT_ERR_METAINFO_BAD_LENGTH',
    ],
    [
      'no data at all',
      'v1',
      (_t, i) => {
        for (const f of files(i)) f.set('length', 0)
        i.set('pieces', new Uint8Array(0))
      },
      'BT_ERR_METAINFO_EMPTY',
    ],
    [
      'meta version 3',
      'v2',
      (_t, i) => i.set('meta version', 3),
      'BT_ERR_METAINFO_UNSUPPORTED_VERSION',
      'info.meta version',
    ],
    [
      'meta version checked before the rest',
      'v2',
      (_t, i) => {
        i.set('meta version', 3)
        i.delete('name')
      },
      'BT_ERR_METAINFO_UNSUPPORTED_VERSION',
    ],
    ['meta version a string', 'v2', (_t, i) => i.set('meta version', enc('2')), 'BT_ERR_METAINFO_WRONG_TYPE'],
    [
      'file tree missing',
      'v2',
      (_t, i) => i.delete('file tree'),
      'BT_ERR_METAINFO_MISSING_FIELD',
      'info.file tree',
    ],
    ['file tree empty', 'v2', (_t, i) => i.set('file tree', new Map()), 'BT_ERR_METAINFO_EMPTY'],
    [
      'file tree root is a file',
      'v2',
      (_t, i) => tree(i).set('', new Map([['length', 1]])),
      'BT_ERR_METAINFO_BAD_FILE_TREE',
    ],
    [
      'file with siblings',
      'v2',
      (_t, i) => sub(tree(i), 'b.bin').set('x', new Map()),
      'BT_ERR_METAINFO_BAD_FILE_TREE',
    ],
    ['tree node not a dict', 'v2', (_t, i) => tree(i).set('zz', 5), 'BT_ERR_METAINFO_WRONG_TYPE'],
    [
      'pieces root missing',
      'v2',
      (_t, i) => sub(tree(i), 'a', 'x', '').delete('pieces root'),
      'BT_ERR_METAINFO_BAD_PIECES_ROOT',
    ],
    [
      'pieces root 31 bytes',
      'v2',
      (_t, i) => sub(tree(i), 'a', 'x', '').set('pieces root', new Uint8Array(31)),
      'BT_ERR_METAINFO_BAD_PIECES_ROOT',
    ],
    [
      'v2 length negative',
      'v2',
      (_t, i) => sub(tree(i), 'a', 'x', '').set('length', -5),
      'BT_ERR_METAINFO_BAD_LENGTH',
      "info.file tree/a/x/''.length",
    ],
    [
      'pad file inside a file tree',
      'v2',
      (_t, i) => sub(tree(i), 'a', 'x', '').set('attr', enc('p')),
      'BT_ERR_METAINFO_BAD_FILE_TREE',
    ],
    [
      'piece layer tampered',
      'v2',
      (top) => {
        const layers = top.get('piece layers') as BDict
        const [k, v] = [...layers.entries()][0]! as [string, Uint8Array]
        const bad = v.slice()
        bad[0]! ^= 1
        layers.set(k, bad)
      },
      'BT_ERR_METAINFO_BAD_PIECE_LAYER',
    ],
    [
      'piece layer truncated',
      'v2',
      (top) => {
        const layers = top.get('piece layers') as BDict
        const [k, v] = [...layers.entries()][0]! as [string, Uint8Array]
        layers.set(k, v.subarray(32))
      },
      'BT_ERR_METAINFO_BAD_PIECE_LAYER',
    ],
    [
      'piece layer not a string',
      'v2',
      (top) => {
        const layers = top.get('piece layers') as BDict
        layers.set([...layers.keys()][0]!, 7)
      },
      'BT_ERR_METAINFO_WRONG_TYPE',
    ],
    [
      'hybrid: v1 files reordered',
      'hybrid',
      (_t, i) => {
        const l = files(i)
        ;[l[0], l[1]] = [l[1]!, l[0]!]
      },
      'BT_ERR_METAINFO_HYBRID_MISMATCH',
      'info.files[0]',
    ],
    [
      'hybrid: v1 length differs',
      'hybrid',
      (_t, i) => files(i)[1]!.set('length', 6),
      'BT_ERR_METAINFO_HYBRID_MISMATCH',
      'info.files[1]',
    ],
    ['hybrid: pad missing', 'hybrid', (_t, i) => files(i).splice(2, 1), 'BT_ERR_METAINFO_HYBRID_MISMATCH'],
    [
      'hybrid: pad one piece too long',
      'hybrid',
      (_t, i) => {
        files(i)[2]!.set('length', PL - 5 + PL)
        i.set('pieces', new Uint8Array(220))
      },
      'BT_ERR_METAINFO_HYBRID_MISMATCH',
      'info.files',
    ],
    [
      'hybrid: extra v1 file',
      'hybrid',
      (_t, i) =>
        files(i).push(
          new Map<string, BValue>([
            ['length', 1],
            ['path', [enc('extra')]],
          ]),
        ),
      'BT_ERR_METAINFO_HYBRID_MISMATCH',
      'info.files[7]',
    ],
    ['hybrid: v1 file missing', 'hybrid', (_t, i) => files(i).pop(), 'BT_ERR_METAINFO_HYBRID_MISMATCH'],
    [
      'hybrid: v1 path differs',
      'hybrid',
      (_t, i) => files(i)[0]!.set('path', [enc('D.bin')]),
      'BT_ERR_METAINFO_HYBRID_MISMATCH',
    ],
  ]

  for (const [title, version, fn, code, field] of cases) {
    test(`${title} → ${code}`, async () => {
      const base = await sample(version)
      const bytes = title === 'top level not a dict' ? encodeBencode([enc('info')]) : mutate(base, fn)
      expectError(bytes, code, field)
    })
  }

  test('limits: input size, file count, piece count', async () => {
    const bytes = await sample('hybrid')
    expectError(bytes, 'BT_ERR_METAINFO_TOO_LARGE', '', { maxBytes: bytes.byteLength - 1 })
    expectError(bytes, 'BT_ERR_METAINFO_TOO_MANY_FILES', undefined, { maxFiles: 4 })
    expectError(bytes, 'BT_ERR_METAINFO_TOO_MANY_PIECES', 'info', { maxPieces: 9 })
    expectError(bytes, 'BT_ERR_METAINFO_BENCODE', '', { maxTokens: 20 })
    assert.ok(parseTorrent(bytes, { maxFiles: 7, maxPieces: 10 }))
    // A v2 info dict claiming a petabyte file needs no piece data to describe it: capped.
    const huge = mutate(await sample('v2'), (_t, i) => sub(tree(i), 'a', 'x', '').set('length', 2 ** 50))
    assert.throws(() => parseInfoDict(encodeBencode((decodeBencode(huge).value as BDict).get('info')!)), {
      code: 'BT_ERR_METAINFO_TOO_MANY_PIECES',
    })
  })

  test('not bencode, truncated, depth bombs → BT_ERR_METAINFO_BENCODE', async () => {
    const bytes = await sample('v1')
    for (const bad of [
      bytes.subarray(0, bytes.length - 1),
      Buffer.from('hello'),
      Buffer.from(`d4:info${'d1:a'.repeat(1000)}`),
      new Uint8Array(0),
    ]) {
      expectError(bad, 'BT_ERR_METAINFO_BENCODE', '')
    }
    assert.throws(
      () => parseTorrent(bytes.subarray(0, 10)),
      (e: unknown) => e instanceof MetainfoError && e.cause !== undefined,
    )
  })

  test('identical files share one piece layer entry', async () => {
    const same = data(50_000, 7)
    const { metainfo } = await createTorrent({
      name: 'twins',
      files: [memFile(['a'], same), memFile(['b'], same)],
      version: 'v2',
      pieceLength: PL,
    })
    assert.equal(metainfo.pieceLayers.size, 1)
    assert.deepEqual(metainfo.info.files[0]!.piecesRoot, metainfo.info.files[2]!.piecesRoot)
    assert.equal(bytesToKey(metainfo.info.files[0]!.piecesRoot!).length, 32)
  })
})

/**
 * Inputs this parser used to reject and libtorrent 2.0.8 loads (checked with
 * `lt.torrent_info(path)`; see test/protocol/leniency.test.ts for the live comparison). Each row:
 * the mutation and what we expose instead of an error. The info hash never changes meaning: it
 * is over the info bytes as found.
 */
describe('parseTorrent: inputs libtorrent accepts (formerly rejected)', () => {
  const paths = (m: Metainfo): string[] => m.info.files.filter((f) => !f.padding).map((f) => f.path.join('/'))
  const SAMPLE = ['C.bin', 'a/x', 'b.bin', 'empty', 'sub/z.bin']
  const cases: [string, TorrentVersion, (top: BDict, info: BDict) => void, (m: Metainfo) => void][] = [
    [
      // libtorrent: a directory name with nothing left after sanitizing is the hex info hash
      'multi-file name is ..',
      'v1',
      (_t, i) => i.set('name', enc('..')),
      (m) => assert.equal(m.info.name, toHex(m.info.infoHashV1!)),
    ],
    [
      'name has / (dropped)',
      'v1',
      (_t, i) => i.set('name', enc('a/b')),
      (m) => assert.equal(m.info.name, 'ab'),
    ],
    [
      'multi-file name empty (→ _)',
      'v1',
      (_t, i) => i.set('name', enc('')),
      (m) => assert.equal(m.info.name, '_'),
    ],
    [
      'path with .. (dropped)',
      'v1',
      (_t, i) => files(i)[0]!.set('path', [enc('..'), enc('etc')]),
      (m) => assert.deepEqual(paths(m), ['etc', ...SAMPLE.slice(1)]),
    ],
    [
      'path with . (dropped)',
      'v1',
      (_t, i) => files(i)[0]!.set('path', [enc('.'), enc('x')]),
      (m) => assert.deepEqual(paths(m)[0], 'x'),
    ],
    [
      'path component empty (→ _)',
      'v1',
      (_t, i) => files(i)[0]!.set('path', [enc('a'), enc('')]),
      (m) => assert.deepEqual(paths(m)[0], 'a/_'),
    ],
    [
      'absolute path component (slashes dropped)',
      'v1',
      (_t, i) => files(i)[0]!.set('path', [enc('/etc/passwd')]),
      (m) => assert.deepEqual(paths(m)[0], 'etcpasswd'),
    ],
    [
      'component with NUL (dropped)',
      'v1',
      (_t, i) => files(i)[0]!.set('path', [enc('a\0b')]),
      (m) => assert.deepEqual(paths(m)[0], 'ab'),
    ],
    [
      'duplicate paths (second renamed)',
      'v1',
      (_t, i) => files(i)[1]!.set('path', [enc('C.bin')]),
      (m) => assert.deepEqual(paths(m).slice(0, 2), ['C.bin', 'C.1.bin']),
    ],
    [
      'file is also a directory (the file is renamed)',
      'v1',
      (_t, i) => files(i)[0]!.set('path', [enc('sub')]),
      (m) => assert.deepEqual(paths(m), ['sub.1', 'a/x', 'b.bin', 'empty', 'sub/z.bin']),
    ],
    [
      // libtorrent names this file after its parent directory and renames it outside the torrent
      // directory (`d.1`); we keep it inside, as `_`
      'tree component .. (→ _)',
      'v2',
      (_t, i) => tree(i).set('..', tree(i).get('b.bin')!),
      (m) => assert.deepEqual(paths(m)[0], '_'),
    ],
    [
      'tree component with NUL (→ a, clashes with directory a → a.1)',
      'v2',
      (_t, i) => tree(i).set('a\0', tree(i).get('b.bin')!),
      (m) => assert.deepEqual(paths(m).slice(0, 3), ['C.bin', 'a/x', 'a.1']),
    ],
    [
      'piece layer missing',
      'v2',
      (top) => {
        const layers = top.get('piece layers') as BDict
        layers.delete([...layers.keys()][0]!)
      },
      (m) => assert.equal(m.pieceLayers.size, 1),
    ],
    [
      'piece layers absent',
      'v2',
      (top) => top.delete('piece layers'),
      (m) => assert.equal(m.pieceLayers.size, 0),
    ],
    [
      'piece layers not a dict (ignored)',
      'v2',
      (top) => top.set('piece layers', []),
      (m) => assert.equal(m.pieceLayers.size, 0),
    ],
    [
      'announce-list not a list (ignored, announce used)',
      'v1',
      (top) => {
        top.set('announce-list', enc('http://x'))
        top.set('announce', enc('http://127.0.0.1:1/a'))
      },
      (m) => assert.deepEqual(m.announce, [['http://127.0.0.1:1/a']]),
    ],
    [
      'announce-list tiers not lists (skipped)',
      'v1',
      (top) => top.set('announce-list', [enc('http://x'), [enc('http://127.0.0.1:1/b'), 5], 7]),
      (m) => assert.deepEqual(m.announce, [['http://127.0.0.1:1/b']]),
    ],
    [
      'url-list an integer (ignored)',
      'v1',
      (top) => top.set('url-list', 5),
      (m) => assert.deepEqual(m.urlList, []),
    ],
    [
      'creation date a string (ignored)',
      'v1',
      (top) => top.set('creation date', enc('today')),
      (m) => assert.equal(m.creationDate, undefined),
    ],
    [
      // libtorrent: dict_find_int_value("private", 0) != 0 — a string is not private
      'private a string (not private)',
      'v1',
      (_t, i) => i.set('private', enc('1')),
      (m) => assert.equal(m.info.private, false),
    ],
  ]

  for (const [title, version, fn, check] of cases) {
    test(title, async () => {
      const bytes = mutate(await sample(version), fn)
      const m = parseTorrent(bytes)
      const info = (decodeBencode(bytes).value as BDict).get('info')!
      // Only the exposed paths change: the hash is over the exact info bytes.
      assert.equal(sha('sha1', m.info.infoBytes), sha('sha1', encodeBencode(info)))
      check(m)
      for (const f of m.info.files)
        for (const c of f.path) assert.ok(c !== '' && c !== '.' && c !== '..' && !/[/\\\0]/.test(c), c)
    })
  }

  test('bytes after the top-level dictionary are ignored', async () => {
    const bytes = await sample('v1')
    const m = parseTorrent(Buffer.concat([bytes, Buffer.from('garbage')]))
    assert.deepEqual(m.info.infoHashV1, parseTorrent(bytes).info.infoHashV1)
  })

  test('single-file names with nothing usable are still refused, as libtorrent does', async () => {
    for (const name of ['', '..', '.', '/']) {
      const bytes = mutate(await single('v1'), (_t, i) => i.set('name', enc(name)))
      expectError(bytes, 'BT_ERR_METAINFO_BAD_NAME', 'info.name')
    }
  })
})
