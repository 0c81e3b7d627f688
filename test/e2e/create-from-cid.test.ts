/**
 * End to end: create a torrent from data already in Codex (`POST /seeds`), then real libtorrent
 * leechers download it from the gateway process through the returned MAGNET (ut_metadata from the
 * gateway; the only peer given is the gateway), on 127.0.0.1.
 *
 * - single file `{cid, version: 'hybrid'}` and multi-file `{files: [{cid, path}]}`;
 * - dedup: the same request again returns the same torrent and record and stores nothing new;
 *   a copy of a file uploaded under another CID maps to the CID already catalogued for its
 *   BEP52 pieces root; a libtorrent torrent holding that content is archived without uploading
 *   the file again.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { LocalCodexNode } from '../../codex-client/local-node/index.ts'
import { api, type GatewayProcess } from '../helpers/gateway-process.ts'
import { ltSeed, makeLtTorrent } from '../helpers/interop.ts'
import { startLibtorrent } from '../helpers/libtorrent.ts'
import { hashTree, type TempDir, tempDir } from '../helpers/payload.ts'
import {
  addTorrent,
  Cleanup,
  CODEX_API,
  codexUpload,
  details,
  exportTorrent,
  fetchRecord,
  HOST,
  ltComplete,
  MIB,
  startCodex,
  startGateway,
  waitArchived,
} from './kit.ts'

interface SeedView {
  id: string
  name: string
  version: string
  infoHashV1?: string
  infoHashV2?: string
  magnet: string
  torrent: string
  recordCid: string | null
}

function bytesOf(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size)
  let block = createHash('sha256').update(seed).digest()
  for (let at = 0; at < size; at += block.length) {
    block.copy(out, at)
    block = createHash('sha256').update(block).digest()
  }
  return out
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

describe('e2e: create a torrent from Codex CIDs and serve it to libtorrent via its magnet', {
  timeout: 85_000,
}, () => {
  const cleanup = new Cleanup()
  let tmp: TempDir
  let codex: LocalCodexNode
  let gw: GatewayProcess
  const movie = bytesOf('movie', 2 * MIB + 333_333)
  const readme = bytesOf('readme', 1234)
  const blob = bytesOf('blob', MIB + 7)
  let movieCid: string
  let readmeCid: string
  let blobCid: string

  before(async () => {
    tmp = await tempDir('codex-bt-e2e-seed-')
    cleanup.add('temp dir', () => tmp.cleanup())
    codex = await startCodex(cleanup, join(tmp.path, 'codex'))
    gw = await startGateway(cleanup, join(tmp.path, 'gw'), codex.url)
    movieCid = await codexUpload(codex.url, movie, 'movie.bin')
    readmeCid = await codexUpload(codex.url, readme, 'readme.txt')
    blobCid = await codexUpload(codex.url, blob, 'blob.bin')
  })

  after(() => cleanup.run())

  async function seed(body: Record<string, unknown>): Promise<SeedView> {
    const r = await api<SeedView>(gw.apiUrl, 'POST', '/seeds', body)
    assert.equal(r.status, 201, `POST /seeds → ${r.status} ${JSON.stringify(r.body)}`)
    return r.body
  }

  async function leechMagnet(magnet: string, dest: string): Promise<void> {
    const lt = await startLibtorrent()
    try {
      const h = await lt.add({ magnet, savePath: dest, peers: [`${HOST}:${gw.peerPort}`] })
      const st = await ltComplete(lt, h, 45_000)
      assert.equal(st.progress, 1)
    } finally {
      await lt.close()
    }
  }

  test('single file {cid, version: hybrid}: magnet + .torrent; libtorrent downloads it via the magnet', async () => {
    const s = await seed({ cid: movieCid, name: 'movie.bin', version: 'hybrid' })
    assert.equal(s.version, 'hybrid')
    assert.ok(s.infoHashV1 && s.infoHashV2)
    assert.match(s.magnet, new RegExp(`xt=urn:btih:${s.infoHashV1}`, 'i'))
    assert.match(s.magnet, /xt=urn:btmh:1220/i)
    assert.ok(s.recordCid, 'a record is written')
    const torrent = Buffer.from(s.torrent, 'base64')
    assert.ok(
      (await exportTorrent(gw, s.id)).equals(torrent),
      'GET /torrents/:id/torrent = the returned .torrent',
    )
    const record = await fetchRecord(codex.url, s.recordCid)
    assert.ok(Buffer.from(record.torrent ?? '', 'base64').equals(torrent), 'the record keeps the .torrent')
    assert.deepEqual(
      record.files.filter((f) => !f.padding).map((f) => f.cid),
      [movieCid],
    )

    const dest = join(tmp.path, 'leech-single')
    await leechMagnet(s.magnet, dest)
    const got = await hashTree(dest, 'movie.bin')
    assert.equal(got.get('movie.bin'), sha256(movie), 'byte-identical')
  })

  test('multi-file {files: [{cid, path}]}: libtorrent downloads it via the magnet', async () => {
    const s = await seed({
      name: 'bundle',
      version: 'hybrid',
      files: [
        { cid: readmeCid, path: 'docs/readme.txt' },
        { cid: blobCid, path: 'data/blob.bin' },
      ],
    })
    const d = await details(gw, s.id)
    assert.equal(d.state, 'seeding')
    const byPath = new Map(d.files.map((f) => [f.path, f.codexCid]))
    assert.equal(byPath.get('docs/readme.txt'), readmeCid)
    assert.equal(byPath.get('data/blob.bin'), blobCid)

    const dest = join(tmp.path, 'leech-multi')
    await leechMagnet(s.magnet, dest)
    const got = await hashTree(dest, 'bundle')
    assert.equal(got.get('bundle/docs/readme.txt'), sha256(readme))
    assert.equal(got.get('bundle/data/blob.bin'), sha256(blob))
  })

  test('dedup: the same request again is the same torrent and stores nothing new', async () => {
    const posts = () => codex.faults.requestCount({ method: 'POST', route: `${CODEX_API}/data` })
    const before = posts()
    const again = await seed({ cid: movieCid, name: 'movie.bin', version: 'hybrid' })
    const first = await details(gw, again.id)
    assert.equal(again.recordCid, first.recordCid)
    assert.equal(posts(), before, 'no new dataset (file or record) in Codex')
    const list = await api<{ torrents: { id: string }[] }>(gw.apiUrl, 'GET', '/torrents')
    assert.equal(list.body.torrents.filter((t) => t.id === again.id).length, 1)
  })

  test('dedup: a copy under another CID maps to the catalogued CID of its pieces root', async () => {
    const copyCid = await codexUpload(codex.url, movie, 'movie-copy.bin')
    assert.notEqual(copyCid, movieCid, 'Codex gives the copy (other filename) another CID')
    const s = await seed({
      name: 'bundle2',
      version: 'v2',
      files: [
        { cid: copyCid, path: 'copy/movie.bin' },
        { cid: readmeCid, path: 'readme.txt' },
      ],
    })
    const d = await details(gw, s.id)
    const byPath = new Map(d.files.map((f) => [f.path, f.codexCid]))
    assert.equal(byPath.get('copy/movie.bin'), movieCid, 'reuses the CID already catalogued')
    assert.equal(byPath.get('readme.txt'), readmeCid)

    const dest = join(tmp.path, 'leech-dedup')
    await leechMagnet(s.magnet, dest)
    const got = await hashTree(dest, 'bundle2')
    assert.equal(got.get('bundle2/copy/movie.bin'), sha256(movie))
    assert.equal(got.get('bundle2/readme.txt'), sha256(readme))
  })

  test('dedup on ingest: a libtorrent torrent holding catalogued content does not upload it again', async () => {
    const lt = await startLibtorrent()
    try {
      const dir = join(tmp.path, 'ingest')
      const made = await makeLtTorrent(
        lt,
        dir,
        { name: 'mix', files: [{ path: ['other.bin'], size: 600_001 }], seed: 'mix' },
        'hybrid',
        64 * 1024,
      )
      // Put the movie's bytes next to other.bin and recreate the torrent over both.
      const { writeFile } = await import('node:fs/promises')
      await writeFile(join(made.payload.path, 'movie.bin'), movie)
      const torrentPath = join(dir, 'mix2.torrent')
      await lt.createTorrent({
        path: made.payload.path,
        out: torrentPath,
        version: 'hybrid',
        pieceLength: 64 * 1024,
      })
      const { readFile } = await import('node:fs/promises')
      const bytes = new Uint8Array(await readFile(torrentPath))
      await ltSeed(lt, { ...made, torrentPath, bytes })

      const posts = () => codex.faults.requestCount({ method: 'POST', route: `${CODEX_API}/data` })
      const before = posts()
      const id = await addTorrent(gw, bytes, [`${HOST}:${lt.port}`])
      const d = await waitArchived(gw, id, 45_000)
      const byPath = new Map(d.files.map((f) => [f.path, f.codexCid]))
      assert.equal(byPath.get('movie.bin'), movieCid, 'the known file reuses its CID')
      assert.ok(byPath.get('other.bin'))
      assert.equal(posts() - before, 2, 'only other.bin and the record were uploaded')
    } finally {
      await lt.close()
    }
  })
})
