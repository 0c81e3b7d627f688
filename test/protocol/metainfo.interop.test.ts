/**
 * Interop with real libtorrent (python3-libtorrent through test/helpers/libtorrent.ts):
 * (a) torrents libtorrent creates (v1, v2, hybrid; single and multi-file; pad files, an empty
 *     file, odd sizes, automatic piece size) parse to the same info hashes, piece counts, file
 *     layout (paths, sizes, offsets, pad flags), pieces roots and piece layers as libtorrent's view;
 * (b) torrents we create load in libtorrent with the same info hashes and layout, and libtorrent
 *     verifies the data on disk against our hashes (recheck → seeding), and rejects corrupted data.
 */
import assert from 'node:assert/strict'
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createTorrentFromPath, defaultPieceLength } from '../../gateway/protocol/create-torrent.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { parseTorrent } from '../../gateway/protocol/metainfo.ts'
import type { Metainfo, TorrentVersion } from '../../gateway/protocol/types.ts'
import { type LtSession, type LtTorrentInfo, startLibtorrent } from '../helpers/libtorrent.ts'

const KiB = 1024
const VERSIONS: TorrentVersion[] = ['v1', 'v2', 'hybrid']

function data(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed * 7919 + 3
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 22695477) + 1) >>> 0
    out[i] = x >>> 24
  }
  return out
}

/** Data sets below the temp dir: name → files (relative path → size). */
const DATASETS: Record<string, Record<string, number>> = {
  multi: {
    'b.bin': 40_000,
    'C.bin': 16 * KiB,
    empty: 0,
    'sub/z.bin': 70_000,
    'sub/deep/exact.bin': 32 * KiB,
    'a/x': 5,
    zz: 1,
  },
  'single.bin': { '': 50_000 },
  onefile: { 'f.bin': 20_000 },
  'big.bin': { '': 2_684_356 }, // just above libtorrent's 16 KiB → 32 KiB automatic piece size step
}

let dir: string
let src: string
let lt: LtSession

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'codex-bt-interop-'))
  src = join(dir, 'src')
  let seed = 1
  for (const [name, files] of Object.entries(DATASETS)) {
    for (const [rel, size] of Object.entries(files)) {
      const path = rel === '' ? join(src, name) : join(src, name, rel)
      await mkdir(join(path, '..'), { recursive: true })
      await writeFile(path, data(size, seed++))
    }
  }
  lt = await startLibtorrent()
})

after(async () => {
  await lt?.close()
  await rm(dir, { recursive: true, force: true })
})

/** libtorrent paths include the torrent name for multi-file torrents; pads compare as `.pad/N`. */
function ltPath(p: string, name: string, pad: boolean): string {
  if (pad) return p.split('/').slice(-2).join('/')
  return p.startsWith(`${name}/`) ? p.slice(name.length + 1) : p
}

function assertSameAsLibtorrent(m: Metainfo, l: LtTorrentInfo, what: string): void {
  const { info } = m
  // libtorrent names a v2-only single-file torrent after its file (the file tree key).
  const real = info.files.filter((f) => !f.padding)
  const v2Single = info.version === 'v2' && real.length === 1 && real[0]!.path.length === 1
  assert.equal(v2Single ? real[0]!.path[0] : info.name, l.name, `${what}: name`)
  assert.equal(info.infoHashV1 ? toHex(info.infoHashV1) : null, l.info_hash_v1, `${what}: v1 info hash`)
  assert.equal(info.infoHashV2 ? toHex(info.infoHashV2) : null, l.info_hash_v2, `${what}: v2 info hash`)
  assert.equal(info.pieceLength, l.piece_length, `${what}: piece length`)
  assert.equal(info.pieceCount, l.num_pieces, `${what}: piece count`)
  assert.equal(info.totalLength, l.total_size, `${what}: total size`)
  assert.deepEqual(
    info.files.map((f) => ({
      path: f.padding ? f.path.slice(-2).join('/') : f.path.join('/'),
      size: f.length,
      offset: f.offset,
      pad: f.padding,
      root: f.piecesRoot ? toHex(f.piecesRoot) : null,
    })),
    l.files.map((f) => ({ ...f, path: ltPath(f.path, l.name, f.pad) })),
    `${what}: files`,
  )
}

function assertSameLayers(m: Metainfo, l: LtTorrentInfo, what: string): void {
  const ours = Object.fromEntries([...m.pieceLayers.entries()].map(([k, v]) => [k, toHex(v)]))
  assert.deepEqual(ours, l.piece_layers, `${what}: piece layers`)
}

describe('(a) torrents created by libtorrent', () => {
  const cases: { dataset: string; version: TorrentVersion; pieceLength: number }[] = []
  for (const dataset of ['multi', 'single.bin', 'onefile']) {
    for (const version of VERSIONS) cases.push({ dataset, version, pieceLength: 16 * KiB })
  }
  cases.push({ dataset: 'multi', version: 'hybrid', pieceLength: 32 * KiB })
  cases.push({ dataset: 'multi', version: 'v2', pieceLength: 64 * KiB })
  for (const version of VERSIONS) cases.push({ dataset: 'big.bin', version, pieceLength: 0 })

  for (const { dataset, version, pieceLength } of cases) {
    test(`${dataset} ${version} piece length ${pieceLength || 'auto'}`, async () => {
      const out = join(dir, `lt-${dataset}-${version}-${pieceLength}.torrent`)
      await lt.createTorrent({ path: join(src, dataset), out, version, pieceLength })
      const view = await lt.info(out)
      const m = parseTorrent(new Uint8Array(await readFile(out)))
      assert.equal(m.info.version, version)
      assertSameAsLibtorrent(m, view, out)
      assertSameLayers(m, view, out)
      if (version !== 'v1') {
        assert.ok(
          m.info.files.some((f) => f.padding) || m.info.files.length === 1,
          'pads present where needed',
        )
      }
      if (pieceLength === 0) {
        const payload = Object.values(DATASETS[dataset]!).reduce((a, b) => a + b, 0)
        assert.equal(
          defaultPieceLength(payload),
          view.piece_length,
          'automatic piece size matches libtorrent',
        )
      }
    })
  }
})

describe('(b) torrents we create, loaded and verified by libtorrent', () => {
  const cases: { dataset: string; version: TorrentVersion; pieceLength?: number }[] = []
  for (const dataset of ['multi', 'single.bin', 'onefile']) {
    for (const version of VERSIONS) cases.push({ dataset, version, pieceLength: 16 * KiB })
  }
  cases.push({ dataset: 'multi', version: 'hybrid' }) // automatic piece length
  cases.push({ dataset: 'big.bin', version: 'hybrid', pieceLength: 64 * KiB })

  for (const { dataset, version, pieceLength } of cases) {
    test(`${dataset} ${version} piece length ${pieceLength ?? 'auto'}`, async () => {
      const { bytes, metainfo } = await createTorrentFromPath(join(src, dataset), {
        version,
        ...(pieceLength ? { pieceLength } : {}),
        trackers: [['http://127.0.0.1:1/announce']],
      })
      const out = join(dir, `ours-${dataset}-${version}-${pieceLength ?? 0}.torrent`)
      await writeFile(out, bytes)
      const view = await lt.info(out)
      assertSameAsLibtorrentForOurs(metainfo, view, out)
      // A v2 file tree with a single file at its root is a single-file torrent (BEP52): libtorrent
      // (like our parser) then places the file directly in the save path, without the name.
      const v2Single = version === 'v2' && dataset === 'onefile'
      const handle = await lt.add({ torrent: out, savePath: v2Single ? join(src, dataset) : src })
      await lt.waitFor(handle, (s) => !s.state.includes('checking'), { timeoutMs: 30_000 })
      await lt.recheck(handle)
      const st = await lt.waitFor(handle, (s) => s.is_seeding && s.progress === 1, { timeoutMs: 30_000 })
      assert.equal(st.num_pieces, metainfo.info.pieceCount)
      assert.equal(st.error, null)
      await lt.remove(handle)
    })
  }

  test('libtorrent rejects a corrupted piece of our hybrid torrent (it really checks our hashes)', async () => {
    const corrupt = join(dir, 'corrupt')
    await cp(join(src, 'multi'), join(corrupt, 'multi'), { recursive: true })
    const target = join(corrupt, 'multi', 'sub', 'z.bin')
    const content = await readFile(target)
    content[20_000]! ^= 0xff
    await writeFile(target, content)
    const { bytes, metainfo } = await createTorrentFromPath(join(src, 'multi'), { pieceLength: 16 * KiB })
    const out = join(dir, 'ours-corrupt.torrent')
    await writeFile(out, bytes)
    const handle = await lt.add({ torrent: out, savePath: corrupt })
    const st = await lt.waitFor(handle, (s) => !s.state.includes('checking') && s.has_metadata, {
      timeoutMs: 30_000,
    })
    assert.equal(st.is_seeding, false)
    assert.equal(st.num_pieces, metainfo.info.pieceCount - 1)
    await lt.remove(handle)
  })
})

/**
 * Our layout vs libtorrent's view of our torrent. Same as for libtorrent's own torrents, except
 * that our hybrids carry no pad after the last file (libtorrent 2.0.8 adds one when it creates a
 * torrent, and accepts torrents without).
 */
function assertSameAsLibtorrentForOurs(m: Metainfo, l: LtTorrentInfo, what: string): void {
  assertSameAsLibtorrent(m, l, what)
  assertSameLayers(m, l, what)
}
