/**
 * Torrent creation (gateway/protocol/create-torrent.ts): hashes checked against an independent
 * computation in this file (SHA-1 over the concatenated piece space, BEP52 Merkle roots built
 * here), layout rules (BEP52 order, BEP47 pads between files only), canonical output, streaming
 * inputs of any chunking, errors, and `createTorrentFromPath` on a real directory.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import fc from 'fast-check'
import { isCanonical } from '../../gateway/protocol/bencode.ts'
import {
  createTorrent,
  createTorrentFromPath,
  defaultPieceLength,
  type TorrentSourceFile,
} from '../../gateway/protocol/create-torrent.ts'
import { CreateTorrentError } from '../../gateway/protocol/errors.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { parseTorrent } from '../../gateway/protocol/metainfo.ts'

const PL = 16 * 1024

function data(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed + 17
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    out[i] = x >>> 24
  }
  return out
}

function memFile(path: string[], bytes: Uint8Array, chunk = 3000): TorrentSourceFile {
  return {
    path,
    length: bytes.length,
    async *open() {
      for (let o = 0; o < bytes.length; o += chunk) yield bytes.subarray(o, o + chunk)
    },
  }
}

const sha = (alg: string, ...parts: Uint8Array[]): Buffer => {
  const h = createHash(alg)
  for (const p of parts) h.update(p)
  return h.digest()
}

/** Reference BEP52 root: SHA-256 leaves per 16 KiB block, zero leaves up to a power of two. */
function referenceRoot(bytes: Uint8Array): Buffer {
  let layer: Buffer[] = []
  for (let o = 0; o < bytes.length; o += PL) layer.push(sha('sha256', bytes.subarray(o, o + PL)))
  let width = 1
  while (width < layer.length) width *= 2
  while (layer.length < width) layer.push(Buffer.alloc(32))
  while (layer.length > 1) {
    const next: Buffer[] = []
    for (let i = 0; i < layer.length; i += 2) next.push(sha('sha256', layer[i]!, layer[i + 1]!))
    layer = next
  }
  return layer[0]!
}

/** Reference v1 `pieces`: SHA-1 of each piece of the concatenated piece space. */
function referencePieces(space: Uint8Array, pieceLength: number): string {
  const out: Buffer[] = []
  for (let o = 0; o < space.length; o += pieceLength)
    out.push(sha('sha1', space.subarray(o, o + pieceLength)))
  return Buffer.concat(out).toString('hex')
}

const contents = {
  'b.bin': data(40_000, 1),
  'C.bin': data(PL, 2),
  empty: new Uint8Array(0),
  'sub/z.bin': data(70_000, 3),
  'a/x': data(5, 4),
}
const files = (): TorrentSourceFile[] => Object.entries(contents).map(([p, b]) => memFile(p.split('/'), b))

describe('createTorrent', () => {
  test('hybrid: BEP52 order, pads between files only, both halves hashed correctly', async () => {
    const { bytes, metainfo } = await createTorrent({ name: 'd', files: files(), pieceLength: PL })
    assert.ok(isCanonical(bytes))
    const { info } = metainfo
    assert.equal(info.version, 'hybrid')
    assert.deepEqual(
      info.files.map((f) => `${f.path.join('/')}:${f.length}`),
      [
        'C.bin:16384',
        'a/x:5',
        '.pad/16379:16379',
        'b.bin:40000',
        '.pad/9152:9152',
        'empty:0',
        'sub/z.bin:70000',
      ],
    )
    // v1: SHA-1 over the files with zeros for the pads.
    const space = Buffer.concat(
      info.files.map((f) =>
        f.padding ? Buffer.alloc(f.length) : contents[f.path.join('/') as keyof typeof contents],
      ),
    )
    assert.equal(toHex(info.pieces!), referencePieces(space, PL))
    // v2: each root and each piece layer.
    for (const f of info.files.filter((x) => !x.padding && x.length > 0)) {
      const content = contents[f.path.join('/') as keyof typeof contents]
      assert.equal(toHex(f.piecesRoot!), referenceRoot(content).toString('hex'), f.path.join('/'))
    }
    assert.equal(metainfo.pieceLayers.size, 2)
    assert.deepEqual(parseTorrent(bytes), metainfo)
  })

  test('v1 and v2 only', async () => {
    const v1 = await createTorrent({ name: 'd', files: files(), version: 'v1', pieceLength: PL })
    assert.equal(v1.metainfo.info.version, 'v1')
    assert.ok(v1.metainfo.info.files.every((f) => !f.padding))
    const space = Buffer.concat(
      v1.metainfo.info.files.map((f) => contents[f.path.join('/') as keyof typeof contents]),
    )
    assert.equal(toHex(v1.metainfo.info.pieces!), referencePieces(space, PL))
    const v2 = await createTorrent({ name: 'd', files: files(), version: 'v2', pieceLength: PL })
    assert.equal(v2.metainfo.info.version, 'v2')
    assert.equal(v2.metainfo.info.pieces, undefined)
    assert.ok(isCanonical(v1.bytes) && isCanonical(v2.bytes))
    const hybrid = await createTorrent({ name: 'd', files: files(), pieceLength: PL })
    const roots = (m: typeof v2.metainfo) =>
      m.info.files.flatMap((f) => (f.piecesRoot ? [toHex(f.piecesRoot)] : []))
    assert.deepEqual(roots(v2.metainfo), roots(hybrid.metainfo))
  })

  test('single file: BEP3 single-file mode for all versions', async () => {
    for (const version of ['v1', 'v2', 'hybrid'] as const) {
      const content = data(50_000, 5)
      const { metainfo } = await createTorrent({
        name: 'one.bin',
        files: [memFile(['one.bin'], content)],
        version,
        pieceLength: 2 * PL,
      })
      assert.deepEqual(metainfo.info.files[0]!.path, ['one.bin'])
      if (version !== 'v2') assert.equal(toHex(metainfo.info.pieces!), referencePieces(content, 2 * PL))
      if (version !== 'v1')
        assert.equal(toHex(metainfo.info.files[0]!.piecesRoot!), referenceRoot(content).toString('hex'))
    }
  })

  test('the hash does not depend on how the stream is chunked (Readable or async iterable)', async () => {
    const content = data(100_000, 6)
    const expected = await createTorrent({
      name: 'x',
      files: [memFile(['x'], content, 100_000)],
      pieceLength: PL,
    })
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 40_000 }), { minLength: 1, maxLength: 20 }),
        async (sizes) => {
          const chunks: Uint8Array[] = []
          let o = 0
          for (let i = 0; o < content.length; i++) {
            const n = sizes[i % sizes.length]!
            chunks.push(content.subarray(o, o + n))
            o += n
          }
          const file: TorrentSourceFile = {
            path: ['x'],
            length: content.length,
            open: () => Readable.from(chunks),
          }
          const got = await createTorrent({ name: 'x', files: [file], pieceLength: PL })
          assert.deepEqual(got.bytes, expected.bytes)
        },
      ),
      { numRuns: 30 },
    )
  })

  test('default piece length follows libtorrent thresholds (≈10·√size, 16 KiB..16 MiB)', () => {
    assert.equal(defaultPieceLength(1), 16 * 1024)
    assert.equal(defaultPieceLength(2_684_355), 16 * 1024)
    assert.equal(defaultPieceLength(2_684_356), 32 * 1024)
    assert.equal(defaultPieceLength(10_737_419), 64 * 1024)
    assert.equal(defaultPieceLength(1e9), 512 * 1024)
    assert.equal(defaultPieceLength(1e13), 16 * 1024 * 1024)
  })

  test('metadata fields are written and read back', async () => {
    const { metainfo } = await createTorrent({
      name: 'd',
      files: files(),
      trackers: [['http://127.0.0.1:1/a'], ['http://127.0.0.1:1/b', 'http://127.0.0.1:1/c']],
      webseeds: ['http://127.0.0.1:1/w1', 'http://127.0.0.1:1/w2'],
      private: true,
      comment: 'c',
      createdBy: 'me',
      creationDate: 12345,
    })
    assert.deepEqual(metainfo.announce, [
      ['http://127.0.0.1:1/a'],
      ['http://127.0.0.1:1/b', 'http://127.0.0.1:1/c'],
    ])
    assert.deepEqual(metainfo.urlList, ['http://127.0.0.1:1/w1', 'http://127.0.0.1:1/w2'])
    assert.equal(metainfo.info.private, true)
    assert.equal(metainfo.comment, 'c')
    assert.equal(metainfo.createdBy, 'me')
    assert.equal(metainfo.creationDate, 12345)
  })

  test('errors: bad options, wrong stream lengths, I/O failures, abort', async () => {
    const expectCode = async (p: Promise<unknown>, code: string) => {
      await assert.rejects(p, (e: unknown) => e instanceof CreateTorrentError && e.code === code)
    }
    const one = (bytes: Uint8Array, length = bytes.length): TorrentSourceFile => ({
      ...memFile(['f'], bytes),
      length,
    })
    await expectCode(createTorrent({ name: 'x', files: [] }), 'BT_ERR_CREATE_INVALID')
    await expectCode(createTorrent({ name: '..', files: [one(data(10, 1))] }), 'BT_ERR_CREATE_INVALID')
    await expectCode(
      createTorrent({ name: 'x', files: [{ ...one(data(10, 1)), path: ['a', '..'] }] }),
      'BT_ERR_CREATE_INVALID',
    )
    await expectCode(
      createTorrent({ name: 'x', files: [one(data(10, 1)), one(data(10, 2))] }),
      'BT_ERR_CREATE_INVALID',
    )
    await expectCode(createTorrent({ name: 'x', files: [one(new Uint8Array(0))] }), 'BT_ERR_CREATE_INVALID')
    await expectCode(
      createTorrent({ name: 'x', files: [one(data(10, 1))], pieceLength: 20_000 }),
      'BT_ERR_CREATE_INVALID',
    )
    await expectCode(
      createTorrent({ name: 'x', files: [one(data(10, 1), 11)] }),
      'BT_ERR_CREATE_LENGTH_MISMATCH',
    )
    await expectCode(
      createTorrent({ name: 'x', files: [one(data(10, 1), 9)] }),
      'BT_ERR_CREATE_LENGTH_MISMATCH',
    )
    const broken: TorrentSourceFile = {
      path: ['f'],
      length: 10,
      async *open() {
        yield new Uint8Array(3)
        throw new Error('disk on fire')
      },
    }
    await expectCode(createTorrent({ name: 'x', files: [broken] }), 'BT_ERR_CREATE_IO')
    const ac = new AbortController()
    const slow: TorrentSourceFile = {
      path: ['f'],
      length: 100_000,
      async *open() {
        yield new Uint8Array(1000)
        ac.abort()
        yield new Uint8Array(99_000)
      },
    }
    await assert.rejects(createTorrent({ name: 'x', files: [slow] }, { signal: ac.signal }), {
      name: 'AbortError',
    })
  })
})

describe('createTorrentFromPath', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'codex-bt-create-'))
    await mkdir(join(dir, 'data', 'sub', 'deeper'), { recursive: true })
    await writeFile(join(dir, 'data', 'b.bin'), contents['b.bin'])
    await writeFile(join(dir, 'data', 'empty'), contents.empty)
    await writeFile(join(dir, 'data', 'sub', 'deeper', 'z.bin'), contents['sub/z.bin'])
    await symlink(join(dir, 'data', 'b.bin'), join(dir, 'data', 'link-to-b'))
    await symlink(join(dir, 'data', 'sub'), join(dir, 'data', 'link-to-dir'))
    await writeFile(join(dir, 'single.bin'), contents['sub/z.bin'])
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  test('a directory: walked in sorted order, symlinks skipped', async () => {
    const { metainfo } = await createTorrentFromPath(join(dir, 'data'), { version: 'v2', pieceLength: PL })
    assert.equal(metainfo.info.name, 'data')
    assert.deepEqual(
      metainfo.info.files.filter((f) => !f.padding).map((f) => f.path.join('/')),
      ['b.bin', 'empty', 'sub/deeper/z.bin'],
    )
    const z = metainfo.info.files.find((f) => f.path.at(-1) === 'z.bin')!
    assert.equal(toHex(z.piecesRoot!), referenceRoot(contents['sub/z.bin']).toString('hex'))
  })

  test('a single file', async () => {
    const { metainfo } = await createTorrentFromPath(join(dir, 'single.bin'), {
      version: 'v1',
      pieceLength: PL,
    })
    assert.equal(metainfo.info.name, 'single.bin')
    assert.equal(metainfo.info.files.length, 1)
    assert.equal(toHex(metainfo.info.pieces!), referencePieces(contents['sub/z.bin'], PL))
  })

  test('a missing path fails', async () => {
    await assert.rejects(createTorrentFromPath(join(dir, 'nope')), { code: 'ENOENT' })
  })
})
