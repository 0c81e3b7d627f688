/**
 * The catalog (`node:sqlite`, WAL): persistence across reopen, lookups by v1 / v2 / truncated v2
 * hash, the pieces-root → CID dedup lookup, CID → torrent, resume data, deletion, and typed errors.
 */

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, test } from 'node:test'
import { Catalog, CatalogError, type CatalogErrorCode } from '../../adapters/catalog.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import type { Metainfo } from '../../gateway/protocol/types.ts'
import { makeTorrent, payload } from './codex-env.ts'

const CID_A = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'
const CID_B = 'zDvZRwzm2zDJjeiTnDHLv6ZWgCwzL2hEMwZM6CiGhQuEy1Z2P2ak'

let dir: string
let hybrid: { bytes: Uint8Array; metainfo: Metainfo }
let v2only: { bytes: Uint8Array; metainfo: Metainfo }

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'catalog-'))
  const files = [
    { path: ['a.bin'], data: payload(40_000, 1) },
    { path: ['b.bin'], data: payload(10_000, 2) },
    { path: ['e.txt'], data: new Uint8Array(0) },
  ]
  hybrid = await makeTorrent('cat', files, { version: 'hybrid', pieceLength: 16 * 1024 })
  v2only = await makeTorrent('cat2', files, { version: 'v2', pieceLength: 16 * 1024 })
})

after(async () => {
  await rm(dir, { recursive: true, force: true })
})

function assertCatalogError(fn: () => unknown, code: CatalogErrorCode): void {
  assert.throws(fn, (e: unknown) => e instanceof CatalogError && e.code === code)
}

describe('catalog', () => {
  test('persists torrents, files, CIDs and resume data across reopen', () => {
    const path = join(dir, 'persist.sqlite')
    const info = hybrid.metainfo.info
    const v1 = toHex(info.infoHashV1 as Uint8Array)
    const v2 = toHex(info.infoHashV2 as Uint8Array)
    const a = info.files.findIndex((f) => f.path[0] === 'a.bin')
    const root = toHex(info.files[a]?.piecesRoot as Uint8Array)
    let catalog = Catalog.open(path)
    const row = catalog.upsertTorrent({
      info,
      torrentBytes: hybrid.bytes,
      trackers: [['http://127.0.0.1:1/announce']],
      state: 'downloading',
    })
    assert.equal(row.id, v1)
    assert.equal(row.origin, 'ingest')
    catalog.setFileCid(v1, a, CID_A)
    catalog.saveResume(v1, new Uint8Array([0b1010_0000]))
    catalog.setRecordCid(v1, CID_B)
    catalog.setState(v1, 'error', 'codex down')
    catalog.close()

    catalog = Catalog.open(path)
    try {
      for (const key of [v1, v2, v1.toUpperCase(), v2.slice(0, 40)]) {
        assert.equal(catalog.getTorrent(key)?.id, v1, `lookup by ${key.length} hex`)
      }
      assert.equal(catalog.getTorrent('ab'.repeat(20)), undefined)
      assert.equal(catalog.getTorrent('not a hash'), undefined)
      const got = catalog.getTorrent(v2)
      assert.ok(got)
      assert.deepEqual(got.infoBytes, info.infoBytes)
      assert.deepEqual(got.torrentBytes, hybrid.bytes)
      assert.deepEqual(got.trackers, [['http://127.0.0.1:1/announce']])
      assert.equal(got.state, 'error')
      assert.equal(got.lastError, 'codex down')
      assert.equal(got.recordCid, CID_B)
      assert.equal(got.infoHashV2, v2)
      assert.deepEqual(catalog.loadResume(v2), new Uint8Array([0b1010_0000]))
      const files = catalog.getFiles(v1)
      assert.equal(files.length, info.files.length)
      assert.equal(files[a]?.cid, CID_A)
      assert.equal(files[a]?.state, 'uploaded')
      assert.equal(files[a]?.piecesRoot, root)
      assert.ok(files.some((f) => f.padding && f.state === 'padding'))
      assert.ok(files.some((f) => f.length === 0 && f.state === 'empty'))
      assert.equal(catalog.findCidByPiecesRoot(root), CID_A)
      assert.equal(catalog.findCidByPiecesRoot(root.toUpperCase(), info.files[a]?.length), CID_A)
      assert.equal(catalog.findCidByPiecesRoot(root, 1), undefined, 'length must match')
      assert.equal(catalog.findTorrentByFileCid(CID_A)?.torrent.id, v1)
      assert.equal(catalog.findTorrentByFileCid(CID_A)?.fileIndex, a)
      assert.equal(catalog.findTorrentByFileCid(CID_B), undefined)
      assert.equal(catalog.listTorrents().length, 1)
      // Upserting again keeps the file CIDs and updates what is given.
      catalog.upsertTorrent({ info, state: 'seeding' })
      assert.equal(catalog.getFiles(v1)[a]?.cid, CID_A)
      assert.equal(catalog.getTorrent(v1)?.state, 'seeding')
      // Forgetting the CID also forgets the dedup entry.
      catalog.setFileCid(v1, a, undefined)
      assert.equal(catalog.findCidByPiecesRoot(root), undefined)
    } finally {
      catalog.close()
    }
  })

  test('v2-only torrents: id is the v2 hash, virtual gaps are not files', () => {
    const catalog = Catalog.open(':memory:')
    try {
      const info = v2only.metainfo.info
      const row = catalog.upsertTorrent({ info })
      assert.equal(row.id, toHex(info.infoHashV2 as Uint8Array))
      assert.equal(row.infoHashV1, undefined)
      const real = info.files.filter((f) => !f.virtual).length
      assert.equal(catalog.getFiles(row.id).length, real)
      assert.ok(
        info.files.some((f) => f.virtual),
        'the fixture has alignment gaps',
      )
    } finally {
      catalog.close()
    }
  })

  test('deleteTorrent removes files, resume data and dedup entries', () => {
    const catalog = Catalog.open(':memory:')
    try {
      const info = hybrid.metainfo.info
      const id = catalog.upsertTorrent({ info }).id
      const a = info.files.findIndex((f) => f.path[0] === 'a.bin')
      catalog.setFileCid(id, a, CID_A)
      catalog.saveResume(id, new Uint8Array(1))
      assert.equal(catalog.deleteTorrent(id), true)
      assert.equal(catalog.deleteTorrent(id), false)
      assert.equal(catalog.getTorrent(id), undefined)
      assert.equal(catalog.loadResume(id), undefined)
      assert.equal(catalog.findCidByPiecesRoot(toHex(info.files[a]?.piecesRoot as Uint8Array)), undefined)
      assert.equal(catalog.findTorrentByFileCid(CID_A), undefined)
    } finally {
      catalog.close()
    }
  })

  test('typed errors', () => {
    const path = join(dir, 'errors.sqlite')
    const catalog = Catalog.open(path)
    const info = hybrid.metainfo.info
    const id = catalog.upsertTorrent({ info }).id
    const pad = info.files.findIndex((f) => f.padding)
    assertCatalogError(
      () => catalog.upsertTorrent({ info: { ...info, infoBytes: new Uint8Array([1]) } }),
      'GW_ERR_CATALOG_CONFLICT',
    )
    assertCatalogError(() => catalog.setState(id, 'bogus' as 'error'), 'GW_ERR_CATALOG_INVALID')
    assertCatalogError(() => catalog.setState('cd'.repeat(20), 'error'), 'GW_ERR_CATALOG_NOT_FOUND')
    assertCatalogError(() => catalog.setFileCid(id, 999, CID_A), 'GW_ERR_CATALOG_NOT_FOUND')
    assertCatalogError(() => catalog.setFileCid(id, pad, CID_A), 'GW_ERR_CATALOG_INVALID')
    assertCatalogError(() => catalog.setFileCid(id, 0, 'not a cid'), 'GW_ERR_CATALOG_INVALID')
    assertCatalogError(() => catalog.findCidByPiecesRoot('xyz'), 'GW_ERR_CATALOG_INVALID')
    catalog.close()
    assertCatalogError(() => catalog.listTorrents(), 'GW_ERR_CATALOG_CLOSED')
    // A catalog written by a newer schema is refused.
    const db = new DatabaseSync(path)
    db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run()
    db.close()
    assertCatalogError(() => Catalog.open(path), 'GW_ERR_CATALOG_SCHEMA')
  })

  test('WAL mode', () => {
    const path = join(dir, 'wal.sqlite')
    Catalog.open(path).close()
    const db = new DatabaseSync(path)
    assert.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal')
    db.close()
  })
})
