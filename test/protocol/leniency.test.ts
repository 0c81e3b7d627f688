/**
 * Leniency, checked against libtorrent 2.0.8 itself: we load what `lt.torrent_info(path)` loads
 * and expose the same name, file paths (sanitized, duplicates renamed), trackers and metadata,
 * and refuse what it refuses — except a short list of deliberate differences, each tested on its
 * own below (they are all on the safe side).
 *
 * Also: the bencode `duplicateKeys: 'first'` option, and the path sanitizer and duplicate renamer
 * (`gateway/protocol/metainfo-paths.ts`) on their own.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { before, describe, test } from 'node:test'
import { type BDict, decodeBencode, dictSpan, encodeBencode } from '../../gateway/protocol/bencode.ts'
import { BencodeError, MetainfoError } from '../../gateway/protocol/errors.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { parseMagnet } from '../../gateway/protocol/magnet.ts'
import { parseTorrent } from '../../gateway/protocol/metainfo.ts'
import {
  isValidUtf8,
  resolveDuplicatePaths,
  sanitizeElement,
  sanitizePath,
} from '../../gateway/protocol/metainfo-paths.ts'
import type { Metainfo } from '../../gateway/protocol/types.ts'
import { SYSTEM_PYTHON } from '../helpers/libtorrent.ts'

const PL = 16 * 1024
const b = (s: string): Buffer => Buffer.from(s, 'utf8')
const raw = (...bytes: number[]): Buffer => Buffer.from(bytes)
type Bytes = Buffer | string

/** A bencoded string (bytes as given). */
function bstr(v: Bytes): Buffer {
  const buf = typeof v === 'string' ? b(v) : v
  return Buffer.concat([b(`${buf.length}:`), buf])
}

/** A dictionary from pairs, in the given order (duplicates and unsorted keys allowed). */
function bdict(pairs: [Bytes, Buffer][]): Buffer {
  return Buffer.concat([b('d'), ...pairs.flatMap(([k, v]) => [bstr(k), v]), b('e')])
}

const bint = (n: number | bigint): Buffer => b(`i${n}e`)
const enc = (v: Parameters<typeof encodeBencode>[0]): Buffer => Buffer.from(encodeBencode(v))
const fakePieces = (total: number): Buffer => Buffer.alloc(20 * Math.ceil(total / PL), 7)

function singleInfo(name: Bytes, extra: [Bytes, Buffer][] = []): Buffer {
  return bdict([
    ['length', bint(40_000)],
    ['name', bstr(name)],
    ['piece length', bint(PL)],
    ['pieces', bstr(fakePieces(40_000))],
    ...extra,
  ])
}

/** A multi-file info dict: each file one `path` list of byte strings (or a raw file dict). */
function multiInfo(name: Bytes, files: (Bytes[] | Buffer)[], extra: [Bytes, Buffer][] = []): Buffer {
  const list = files.map((f, i) =>
    Buffer.isBuffer(f)
      ? f
      : bdict([
          ['length', bint(1000 + i)],
          ['path', Buffer.concat([b('l'), ...f.map(bstr), b('e')])],
        ]),
  )
  const total = files.reduce((n, _f, i) => n + 1000 + i, 0)
  return bdict([
    ['files', Buffer.concat([b('l'), ...list, b('e')])],
    ['name', bstr(name)],
    ['piece length', bint(PL)],
    ['pieces', bstr(fakePieces(total))],
    ...extra,
  ])
}

const torrent = (info: Buffer, top: [Bytes, Buffer][] = []): Buffer => bdict([...top, ['info', info]])

/** What libtorrent 2.0.8 makes of each file in a directory (one python process for all). */
const LT_SCRIPT = `
import json, os, sys
import libtorrent as lt
out = {}
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    try:
        ti = lt.torrent_info(os.path.join(d, f))
        fs = ti.files()
        ih = ti.info_hashes()
        out[f] = {
            'ok': True,
            'name': ti.name(),
            'files': [[fs.file_path(i), bool(fs.file_flags(i) & lt.file_storage.flag_pad_file)] for i in range(fs.num_files())],
            'multi': fs.num_files() > 1 or fs.file_path(0) != ti.name(),
            'trackers': [[t.tier, t.url] for t in ti.trackers()],
            'private': ti.priv(),
            'comment': ti.comment(),
            'creator': ti.creator(),
            'date': ti.creation_date(),
            'webseeds': [w['url'] for w in ti.web_seeds()],
            'v1': str(ih.v1) if ih.has_v1() else None,
        }
    except Exception as e:
        out[f] = {'ok': False, 'error': str(e)}
print(json.dumps(out))
`

interface LtResult {
  ok: boolean
  error?: string
  name?: string
  files?: [string, boolean][]
  multi?: boolean
  trackers?: [number, string][]
  private?: boolean
  comment?: string
  creator?: string
  date?: number
  webseeds?: string[]
  v1?: string | null
}

function runLibtorrent(files: Record<string, Buffer>): Record<string, LtResult> {
  const dir = mkdtempSync(join(tmpdir(), 'codex-bt-leniency-'))
  try {
    for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, `${name}.torrent`), bytes)
    const r = spawnSync(SYSTEM_PYTHON, ['-c', LT_SCRIPT, dir], { encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout) as Record<string, LtResult>
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k.replace(/\.torrent$/, ''), v]))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const NAMES: Record<string, Bytes> = {
  plain: 'file.bin',
  slash: 'a/b.bin',
  backslash: 'a\\b.bin',
  leadingSlash: '/etc/passwd',
  dots3: '...',
  dotsInside: '..a..',
  dotSlashDot: './.',
  control: 'x\x01y\x1fz\x7f',
  nul: raw(0x61, 0x00, 0x62),
  bidi: 'abc\u202etxt.exe\u200f',
  invalid1: raw(0x61, 0xff, 0xfe, 0x62),
  truncated2: raw(0x61, 0xc3),
  truncated3: raw(0x61, 0xe2, 0x82, 0x62),
  overlong: raw(0x61, 0xc0, 0xaf, 0x62),
  surrogate: raw(0x61, 0xed, 0xa0, 0x80, 0x62),
  fiveByte: raw(0x61, 0xf8, 0x88, 0x80, 0x80, 0x80, 0x62),
  aboveMax: raw(0x61, 0xf4, 0x90, 0x80, 0x80, 0x62),
  badContinuation: raw(0x61, 0xe2, 0x41, 0x42, 0x62),
  emoji: 'ok-✓-😀',
  long: `${'x'.repeat(300)}.txt`,
  longNoExt: 'y'.repeat(300),
  longMultibyte: `${'é'.repeat(200)}.mkv`,
  longLateDot: `${'z'.repeat(250)}.tar.gzipped`,
  space: ' ',
}

function ourView(m: Metainfo): {
  name: string
  files: [string, boolean][]
  trackers: string[][]
} {
  const { info } = m
  // BEP3 single-file mode: no `files` list (libtorrent then reports the bare name as the path)
  const single = !(decodeBencode(info.infoBytes, { duplicateKeys: 'first' }).value as BDict).has('files')
  return {
    name: info.name,
    files: info.files.map((f) => [single ? info.name : [info.name, ...f.path].join('/'), f.padding]),
    trackers: m.announce.map((t) => [...t].sort()),
  }
}

function ltTiers(trackers: [number, string][]): string[][] {
  const tiers = new Map<number, string[]>()
  for (const [tier, url] of trackers) tiers.set(tier, [...(tiers.get(tier) ?? []), url.trim()])
  return [...tiers.keys()].sort((x, y) => x - y).map((k) => tiers.get(k)!.sort())
}

describe('leniency: same result as libtorrent 2.0.8', () => {
  const cases: Record<string, Buffer> = {}
  let lt: Record<string, LtResult> = {}

  // Names of single-file and multi-file torrents, and path elements.
  for (const [k, name] of Object.entries(NAMES)) {
    cases[`single-${k}`] = torrent(singleInfo(name))
    cases[`multi-${k}`] = torrent(multiInfo(name, [['f.bin']]))
    cases[`path-${k}`] = torrent(multiInfo('d', [[name], ['other.bin']]))
  }
  for (const [k, name] of Object.entries({ empty: '', dot: '.', dotdot: '..', slashOnly: '/' })) {
    cases[`single-${k}`] = torrent(singleInfo(name))
    cases[`multi-${k}`] = torrent(multiInfo(name, [['f.bin']]))
    cases[`path-${k}`] = torrent(multiInfo('d', [[name], ['other.bin']]))
  }
  Object.assign(cases, {
    'paths-dotdot-first': torrent(multiInfo('d', [['..', 'x'], ['y']])),
    'paths-dot-first': torrent(multiInfo('d', [['.', 'x'], ['y']])),
    'paths-empty-middle': torrent(multiInfo('d', [['a', '', 'x'], ['y']])),
    'paths-all-dropped': torrent(multiInfo('d', [['..', '.', '..'], ['y']])),
    'paths-empty-list': torrent(multiInfo('d', [[], ['y']])),
    'paths-integer': torrent(
      multiInfo('d', [
        bdict([
          ['length', bint(1000)],
          ['path', b('li5ee')],
        ]),
        ['y'],
      ]),
    ),
    duplicates: torrent(
      multiInfo('d', [
        ['a'],
        ['A'],
        ['a.1'],
        ['a', 'b'],
        ['x.tar.gz'],
        ['x.tar.gz'],
        ['X.TAR.GZ'],
        ['.hidden'],
        ['.hidden'],
        ['noext'],
        ['noext'],
        ['Sub', 'f'],
        ['sub', 'f'],
        ['sub'],
        ['q', 'r'],
        ['q'],
        ['q.1'],
      ]),
    ),
    'bitcomet-pad': torrent(multiInfo('d', [['a.bin'], ['_____padding_file_0_ BitComet'], ['b.bin']])),
    'bitcomet-pad-dir': torrent(multiInfo('d', [['a.bin'], ['_____padding_file_x', 'inner'], ['b.bin']])),
    'name-utf8': torrent(singleInfo(raw(0xff, 0x2e, 0x62), [['name.utf-8', bstr('good.bin')]])),
    'name-utf8-int': torrent(singleInfo('plain.bin', [['name.utf-8', bint(5)]])),
    'path-utf8': torrent(
      multiInfo('d', [
        bdict([
          ['length', bint(1000)],
          ['path', b('l1:\xffe')],
          ['path.utf-8', Buffer.concat([b('l'), bstr('good'), b('e')])],
        ]),
        ['other'],
      ]),
    ),
    'path-utf8-int': torrent(
      multiInfo('d', [
        bdict([
          ['length', bint(1000)],
          ['path', Buffer.concat([b('l'), bstr('plain'), b('e')])],
          ['path.utf-8', bint(3)],
        ]),
        ['other'],
      ]),
    ),
    // outside info
    'annlist-strings': torrent(singleInfo('f'), [
      ['announce', bstr('http://127.0.0.1:1/a')],
      ['announce-list', enc([b('http://127.0.0.1:1/x'), b('http://127.0.0.1:2/x')])],
    ]),
    'annlist-string': torrent(singleInfo('f'), [['announce-list', bstr('http://127.0.0.1:1/a')]]),
    'annlist-mixed': torrent(singleInfo('f'), [
      ['announce', bstr('http://127.0.0.1:9/fallback')],
      [
        'announce-list',
        enc([
          [b('http://127.0.0.1:1/a'), 5, b('http://127.0.0.1:2/a')],
          b('junk'),
          [5],
          [],
          [b('http://127.0.0.1:3/a')],
        ]),
      ],
    ]),
    'annlist-empty-tiers': torrent(singleInfo('f'), [
      ['announce', bstr('http://127.0.0.1:9/fallback')],
      ['announce-list', enc([[], [b('')], [5]])],
    ]),
    'announce-int': torrent(singleInfo('f'), [['announce', bint(5)]]),
    'comment-int': torrent(singleInfo('f'), [
      ['comment', bint(5)],
      ['created by', bint(1)],
    ]),
    'comment-utf8': torrent(singleInfo('f'), [
      ['comment', bstr('plain')],
      ['comment.utf-8', bstr('ütf')],
      ['created by', bstr('maker')],
      ['created by.utf-8', bstr('mäker')],
    ]),
    'date-string': torrent(singleInfo('f'), [['creation date', bstr('2020')]]),
    'date-negative': torrent(singleInfo('f'), [['creation date', bint(-5)]]),
    'date-ok': torrent(singleInfo('f'), [['creation date', bint(1_700_000_000)]]),
    'urllist-dict': torrent(singleInfo('f'), [['url-list', enc({ a: b('b') })]]),
    'urllist-int': torrent(singleInfo('f'), [['url-list', bint(5)]]),
    'urllist-mixed': torrent(singleInfo('f'), [
      [
        'url-list',
        enc([b('http://127.0.0.1:1/w'), 5, b(''), b('http://127.0.0.1:1/w'), b('http://127.0.0.1:2/w')]),
      ],
    ]),
    'urllist-string': torrent(singleInfo('f'), [['url-list', bstr('http://127.0.0.1:1/w')]]),
    'private-string': torrent(singleInfo('f', [['private', bstr('1')]])),
    'private-2': torrent(singleInfo('f', [['private', bint(2)]])),
    'private-0': torrent(singleInfo('f', [['private', bint(0)]])),
    'private-list': torrent(singleInfo('f', [['private', enc([1])]])),
    'attr-int': torrent(
      multiInfo('d', [
        bdict([
          ['attr', bint(5)],
          ['length', bint(1000)],
          ['path', enc([b('a')])],
        ]),
        ['b'],
      ]),
    ),
    // bencode-level
    'dupkey-top': bdict([
      ['comment', bstr('first')],
      ['comment', bstr('second')],
      ['info', singleInfo('f')],
    ]),
    'dupkey-info': bdict([
      [
        'info',
        bdict([
          ['length', bint(40_000)],
          ['name', bstr('first.bin')],
          ['name', bstr('second.bin')],
          ['piece length', bint(PL)],
          ['pieces', bstr(fakePieces(40_000))],
        ]),
      ],
    ]),
    'dupkey-info-twice': bdict([
      ['info', singleInfo('first.bin')],
      ['info', singleInfo('second.bin')],
    ]),
    'unsorted-top': bdict([
      ['info', singleInfo('f')],
      ['announce', bstr('http://127.0.0.1:1/a')],
    ]),
    trailing: Buffer.concat([torrent(singleInfo('f')), b('garbage')]),
    'trailing-second-dict': Buffer.concat([torrent(singleInfo('f')), torrent(singleInfo('g'))]),
  })

  before(() => {
    lt = runLibtorrent(cases)
  })

  test('every case was seen by libtorrent', () => {
    assert.deepEqual(Object.keys(lt).sort(), Object.keys(cases).sort())
  })

  for (const name of Object.keys(cases)) {
    test(name, () => {
      const theirs = lt[name]!
      let ours: Metainfo | MetainfoError
      try {
        ours = parseTorrent(cases[name]!)
      } catch (err) {
        if (!(err instanceof MetainfoError)) throw err
        ours = err
      }
      if (!theirs.ok) {
        assert.ok(ours instanceof MetainfoError, `libtorrent refuses (${theirs.error}), we accepted`)
        return
      }
      assert.ok(!(ours instanceof MetainfoError), `libtorrent accepts, we refused: ${String(ours)}`)
      const view = ourView(ours)
      assert.equal(view.name, theirs.name)
      // Pad files: libtorrent lists BitComet pads too; compare paths and pad flags of all entries.
      assert.deepEqual(view.files, theirs.files)
      assert.deepEqual(view.trackers, ltTiers(theirs.trackers!))
      assert.equal(ours.info.private, theirs.private)
      assert.equal(ours.comment ?? '', theirs.comment)
      assert.equal(ours.createdBy ?? '', theirs.creator)
      assert.equal(ours.creationDate ?? 0, theirs.date)
      assert.deepEqual(ours.urlList, theirs.webseeds)
      assert.equal(toHex(ours.info.infoHashV1!), theirs.v1)
      for (const f of ours.info.files)
        for (const c of f.path) assert.ok(c !== '' && c !== '.' && c !== '..' && !/[/\\\0]/.test(c), c)
    })
  }
})

describe('leniency: deliberate differences from libtorrent (all on the safe side)', () => {
  test('an invalid `name.utf-8` falls back to `name` (libtorrent uses it, sanitized)', () => {
    const m = parseTorrent(torrent(singleInfo('plain.bin', [['name.utf-8', bstr(raw(0xff, 0x61))]])))
    assert.equal(m.info.name, 'plain.bin')
  })

  test('a `path.utf-8` with a non-string falls back to `path` (libtorrent refuses the torrent)', () => {
    const f = bdict([
      ['length', bint(1000)],
      ['path', enc([b('plain')])],
      ['path.utf-8', enc([5])],
    ])
    assert.deepEqual(parseTorrent(torrent(multiInfo('d', [f, ['o']]))).info.files[0]!.path, ['plain'])
  })

  test('a v2 file-tree leaf named `..` becomes `_` inside the torrent (libtorrent: the parent path, renamed)', () => {
    // covered with real v2 torrents in metainfo.test.ts ("tree component .. (→ _)")
    assert.deepEqual(sanitizePath([b('..')], 'x'), ['_'])
  })

  test('a `creation date` beyond 64 bits is ignored (libtorrent refuses the torrent)', () => {
    const m = parseTorrent(torrent(singleInfo('f'), [['creation date', bint(2n ** 70n)]]))
    assert.equal(m.creationDate, undefined)
  })

  test('symlink targets that leave the torrent, and tampered piece layers, are still refused', () => {
    // libtorrent rewrites such symlinks to point at themselves and loads tampered layers lazily;
    // both stay errors here (see the hostile table in metainfo.test.ts).
    const link = bdict([
      ['attr', bstr('l')],
      ['path', enc([b('link')])],
      ['symlink path', enc([b('..'), b('etc')])],
    ])
    assert.throws(() => parseTorrent(torrent(multiInfo('d', [link, ['o']]))), {
      code: 'BT_ERR_METAINFO_BAD_PATH',
    })
  })
})

const LT_MAGNET_SCRIPT = `
import json, sys
import libtorrent as lt
out = []
for uri in json.loads(sys.stdin.read()):
    try:
        p = lt.parse_magnet_uri(uri)
        ih = p.info_hashes
        out.append({'ok': True, 'v1': str(ih.v1) if ih.has_v1() else None, 'trackers': list(p.trackers), 'peers': ['%s:%d' % (a, b) for a, b in p.peers]})
    except Exception as e:
        out.append({'ok': False, 'error': str(e)})
print(json.dumps(out))
`

describe('leniency: magnet links libtorrent 2.0.8 accepts', () => {
  const H = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a'
  const uris = [
    `magnet:?xt=urn:btih:${H}&tr=not%20a%20url&tr=http://127.0.0.1:1/announce`,
    `magnet:?xt=urn:btih:${H}&dn=50%off`,
    `magnet:?xt=urn:btih:${H}&x.pe=garbage&x.pe=127.0.0.1:6881`,
    `magnet:?xt=urn:btih:${H}&tr=http://a/%zz`,
    `magnet:?xt=urn:btih:${H}&so=a-b`,
    `magnet:?xt=urn:btih:${H}&ws=&x.pe`,
    `magnet:?xt=urn:btih:${H}&so=5-2&tr=udp://127.0.0.1:2`,
  ]

  test('each is accepted by both, with the same info hash; our trackers and peers are a subset', () => {
    const r = spawnSync(SYSTEM_PYTHON, ['-c', LT_MAGNET_SCRIPT], {
      input: JSON.stringify(uris),
      encoding: 'utf8',
      timeout: 30_000,
    })
    assert.equal(r.status, 0, r.stderr)
    const theirs = JSON.parse(r.stdout) as {
      ok: boolean
      v1?: string
      trackers?: string[]
      peers?: string[]
    }[]
    uris.forEach((uri, i) => {
      const lt = theirs[i]!
      assert.ok(lt.ok, `libtorrent refuses ${uri}`)
      const m = parseMagnet(uri)
      assert.equal(toHex(m.infoHashV1!), lt.v1, uri)
      for (const t of m.trackers) assert.ok(lt.trackers!.includes(t), `${uri}: ${t}`)
      for (const p of m.peers) assert.ok(lt.peers!.includes(`${p.host}:${p.port}`), `${uri}: ${p.host}`)
    })
  })
})

describe('bencode: duplicateKeys', () => {
  const dup = b('d1:ai1e1:bd1:xi1e1:xi2ee1:ai3ee')

  test("'reject' (default) and strict mode refuse repeated keys", () => {
    assert.throws(() => decodeBencode(dup), { code: 'BT_ERR_BENCODE_DUPLICATE_KEY' })
    assert.throws(() => decodeBencode(dup, { strict: true, duplicateKeys: 'first' }), BencodeError)
    assert.throws(() => dictSpan(dup, 'a'), { code: 'BT_ERR_BENCODE_DUPLICATE_KEY' })
  })

  test("'first' keeps the first value at every level, like libtorrent's dict_find", () => {
    const v = decodeBencode(dup, { duplicateKeys: 'first' }).value as BDict
    assert.equal(v.get('a'), 1)
    assert.equal((v.get('b') as BDict).get('x'), 1)
    assert.deepEqual([...v.keys()], ['a', 'b'])
    const span = dictSpan(dup, 'a', { duplicateKeys: 'first' })!
    assert.equal(dup.subarray(span.start, span.end).toString(), 'i1e')
  })

  test('skipped values still count against the limits', () => {
    const many = b(`d${'1:ai1e'.repeat(100)}e`)
    assert.throws(() => decodeBencode(many, { duplicateKeys: 'first', maxTokens: 50 }), {
      code: 'BT_ERR_BENCODE_TOO_LARGE',
    })
    const deep = b(`d1:ai1e1:a${'l'.repeat(40)}${'e'.repeat(40)}e`)
    assert.throws(() => decodeBencode(deep, { duplicateKeys: 'first', maxDepth: 10 }), {
      code: 'BT_ERR_BENCODE_TOO_DEEP',
    })
  })
})

describe('path sanitizer and duplicate renamer', () => {
  test('results never hold separators, NUL, or are empty, . or ..', () => {
    const samples = [
      ...Object.values(NAMES).map((n) => (typeof n === 'string' ? b(n) : n)),
      b(''),
      b('.'),
      b('..'),
      b('/'),
      b('\\..'),
      b('.\u202e.'),
      raw(0x2e, 0x00, 0x2e),
    ]
    for (let i = 0; i < 2000; i++) {
      // deterministic pseudo-random bytes biased towards '.', '/', '\\' and NUL
      const len = (i * 7) % 9
      samples.push(
        Buffer.from(
          Array.from({ length: len }, (_, k) => [0x2e, 0x2f, 0x5c, 0x00, 0xff, 0x61][(i * 31 + k * 17) % 6]!),
        ),
      )
    }
    for (const s of samples) {
      const c = sanitizeElement(s)
      if (c === undefined) continue
      assert.ok(c !== '' && c !== '.' && c !== '..' && !/[/\\\0]/.test(c), JSON.stringify(c))
      assert.ok(isValidUtf8(b(c)))
      assert.ok(b(c).length <= 250, 'bounded length')
    }
  })

  test('a megabyte of invalid bytes is cut like a long name (not a megabyte of _)', () => {
    const junk = Buffer.concat([Buffer.alloc(1 << 20, 0xff), b('.mkv')])
    const c = sanitizeElement(junk)!
    assert.equal(c, `${'_'.repeat(240)}.mkv`)
    assert.equal(sanitizeElement(Buffer.alloc(1 << 20, 0x01)), '_'.repeat(240))
  })

  test('renaming is linear even for many identical paths', () => {
    const entries = Array.from({ length: 50_000 }, () => ({ path: ['same.bin'], padding: false }))
    const started = performance.now()
    const out = resolveDuplicatePaths(entries)
    assert.ok(performance.now() - started < 10_000, 'linear, not quadratic (which takes minutes)')
    assert.equal(new Set(out.map((p) => p.join('/'))).size, 50_000)
    assert.deepEqual(out.slice(0, 3), [['same.bin'], ['same.1.bin'], ['same.2.bin']])
  })

  test('deep paths cost their length, not its square', () => {
    const deep = Array.from({ length: 200_000 }, (_, i) => `d${i % 7}`)
    const started = performance.now()
    const out = resolveDuplicatePaths([
      { path: deep, padding: false },
      { path: deep.slice(0, -1), padding: false }, // a file where the first one has a directory
      { path: deep, padding: false },
    ])
    assert.ok(performance.now() - started < 10_000, 'linear, not quadratic (which takes minutes)')
    assert.equal(out[0], deep)
    assert.deepEqual(out[1]!.at(-1), `${deep.at(-2)}.1`)
    assert.deepEqual(out[2]!.at(-1), `${deep.at(-1)}.1`)
  })

  test('padding entries are left alone', () => {
    const out = resolveDuplicatePaths([
      { path: ['.pad', '5'], padding: true },
      { path: ['.pad', '5'], padding: true },
      { path: ['a'], padding: false },
    ])
    assert.deepEqual(out, [['.pad', '5'], ['.pad', '5'], ['a']])
  })
})
