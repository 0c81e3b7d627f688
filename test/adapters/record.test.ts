/**
 * The torrent record: build → encode → upload → fetch → parse → `torrentFromRecord` gives the
 * original .torrent back bit for bit (our creator's and libtorrent's), tampered records are
 * rejected with the right typed error, and a record imports into a fresh catalog so a new store
 * seeds what another one archived (and fails clearly when a file dataset is missing).
 */

import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { before, describe, test } from 'node:test'
import { Catalog } from '../../adapters/catalog.ts'
import { CodexPieceStore } from '../../adapters/codex/codex-store.ts'
import {
  buildRecord,
  encodeRecord,
  fetchRecord,
  importRecord,
  type ParsedRecord,
  parseRecord,
  RecordError,
  type RecordErrorCode,
  type TorrentRecord,
  torrentFromMetainfo,
  torrentFromRecord,
  uploadRecord,
} from '../../adapters/record.ts'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { parseTorrent } from '../../gateway/protocol/metainfo.ts'
import type { Metainfo } from '../../gateway/protocol/types.ts'
import { startLibtorrent } from '../helpers/libtorrent.ts'
import {
  codexForFile,
  downloadAll,
  ingestPiece,
  linearFromFiles,
  makeStore,
  makeTorrent,
  payload,
  type SourceFile,
} from './codex-env.ts'

const KIB = 1024

const codex = codexForFile()

const FILES: SourceFile[] = [
  { path: ['album', 'cover.png'], data: payload(20_000, 31) },
  { path: ['album', 'empty.txt'], data: new Uint8Array(0) },
  { path: ['album', 'track.mp3'], data: payload(150_000, 32) },
]

/** Ingests a torrent through a fresh CodexPieceStore; resolves with the file CIDs. */
async function ingest(metainfo: Metainfo, files: readonly SourceFile[]): Promise<Map<number, string>> {
  const env = await makeStore(codex)
  try {
    const storage = await StorageFacade.open(env.store, metainfo.info)
    const linear = linearFromFiles(metainfo, files)
    for (let p = 0; p < metainfo.info.pieceCount; p++) {
      await ingestPiece(storage, metainfo, p, (at, n) => linear.slice(at, at + n))
    }
    const backend = env.store.get(toHex(metainfo.info.infoHashV1 ?? (metainfo.info.infoHashV2 as Uint8Array)))
    assert.ok(backend)
    const cids = await backend.whenAllUploaded({ signal: AbortSignal.timeout(30_000) })
    await storage.close()
    return cids
  } finally {
    await env.close()
  }
}

async function assertRecordError(fn: () => unknown, code: RecordErrorCode, label: string): Promise<void> {
  await assert.rejects(
    async () => fn(),
    (error: unknown) => {
      assert.ok(error instanceof RecordError, `${label}: ${String(error)}`)
      assert.equal(error.code, code, `${label}: ${error.message}`)
      return true
    },
  )
}

function mutate(record: TorrentRecord, change: (o: Record<string, unknown>) => void): Uint8Array {
  const o = JSON.parse(new TextDecoder().decode(encodeRecord(record))) as Record<string, unknown>
  change(o)
  return new TextEncoder().encode(JSON.stringify(o))
}

describe('torrent record', () => {
  let torrentBytes: Uint8Array
  let metainfo: Metainfo
  let cids: Map<number, string>
  let record: TorrentRecord
  let recordCid: string

  before(async () => {
    const made = await makeTorrent('album', FILES, {
      version: 'hybrid',
      pieceLength: 32 * KIB,
      trackers: [['http://127.0.0.1:6969/announce'], ['udp://127.0.0.1:6969', 'http://127.0.0.1:7000/a']],
      webseeds: ['http://127.0.0.1:8000/files/'],
    })
    torrentBytes = made.bytes
    metainfo = made.metainfo
    cids = await ingest(metainfo, FILES)
    record = buildRecord(metainfo, cids, { originalTorrent: torrentBytes })
    recordCid = await uploadRecord(codex.client, record)
  })

  test('round trip through Codex gives back the original .torrent, bit for bit', async () => {
    const fetched = await fetchRecord(codex.client, recordCid)
    assert.deepEqual(fetched.record, JSON.parse(new TextDecoder().decode(encodeRecord(record))))
    assert.deepEqual(torrentFromRecord(fetched.record), torrentBytes)
    assert.deepEqual([...fetched.fileCids], [...cids])
    const item = await codex.client.fetchManifest(recordCid)
    assert.equal(item.manifest.filename, 'album.codex-bt.json')
    assert.equal(item.manifest.mimetype, 'application/json')
    // Canonical encoding: the same record gives the same bytes and so the same CID.
    assert.equal(await uploadRecord(codex.client, fetched.record), recordCid)
  })

  test('records and file manifests are read through the network routes', async () => {
    const count = (method: string, route: string): number => codex.node.faults.requestCount({ method, route })
    const local = count('GET', '/data/:cid')
    const streams = count('GET', '/data/:cid/network/stream')
    await fetchRecord(codex.client, recordCid)
    assert.equal(count('GET', '/data/:cid/network/stream') - streams, 1, 'fetchRecord: network-stream')
    assert.equal(count('GET', '/data/:cid') - local, 0, 'no local-mode download (404 on a real node)')

    // importRecord fetches every file manifest through …/network/manifest (which stores it in the
    // local node), with or without verification.
    for (const verifyFiles of [true, false]) {
      const catalog = Catalog.open(':memory:')
      try {
        const manifests = count('GET', '/data/:cid/network/manifest')
        const { parsed } = await importRecord(codex.client, catalog, recordCid, { verifyFiles })
        assert.equal(parsed.fileCids.size, cids.size)
        assert.equal(
          count('GET', '/data/:cid/network/manifest') - manifests,
          parsed.fileCids.size,
          `one manifest fetch per file CID (verifyFiles ${verifyFiles})`,
        )
        assert.equal(count('GET', '/data/:cid') - local, 0)
      } finally {
        catalog.close()
      }
    }
  })

  test('without the original bytes, the canonical rebuild of our creator output is exact', () => {
    const bare = buildRecord(metainfo, cids)
    assert.equal(bare.torrent, undefined)
    const parsed = parseRecord(encodeRecord(bare))
    assert.deepEqual(torrentFromRecord(parsed.record), torrentBytes)
    assert.deepEqual(torrentFromMetainfo(metainfo), torrentBytes, 'same canonical form from a metainfo')
  })

  test('the record is human-readable JSON with the documented fields', () => {
    const text = new TextDecoder().decode(encodeRecord(record))
    const o = JSON.parse(text) as Record<string, unknown>
    assert.deepEqual(Object.keys(o), [
      'format',
      'version',
      'name',
      'infoHashV1',
      'infoHashV2',
      'info',
      'torrent',
      'announce',
      'urlList',
      'pieceLayers',
      'files',
      'createdBy',
      'createdAt',
    ])
    assert.equal(o.format, 'codex-bt-record')
    assert.ok(text.includes('\n  "files": ['), 'indented')
    const files = o.files as { path: string[]; padding?: boolean; cid?: string }[]
    assert.ok(
      files.some((f) => f.padding === true && f.cid === undefined),
      'pad files listed without CID',
    )
    assert.ok(
      files.some((f) => f.path.at(-1) === 'empty.txt' && f.cid === undefined),
      'empty file without CID',
    )
  })

  test('a libtorrent-made .torrent round-trips bit for bit', async () => {
    const dir = join(codex.dir, 'lt-src')
    await mkdir(join(dir, 'payload', 'sub'), { recursive: true })
    const ltFiles: SourceFile[] = [
      { path: ['a.dat'], data: payload(90_000, 41) },
      { path: ['sub', 'b.txt'], data: payload(12_345, 42) },
    ]
    for (const f of ltFiles) await writeFile(join(dir, 'payload', ...f.path), f.data)
    const lt = await startLibtorrent()
    let bytes: Uint8Array
    try {
      const out = join(codex.dir, 'lt.torrent')
      await lt.createTorrent({
        path: join(dir, 'payload'),
        out,
        version: 'hybrid',
        pieceLength: 32 * KIB,
        trackers: ['http://127.0.0.1:6969/announce'],
      })
      bytes = new Uint8Array(await readFile(out))
    } finally {
      await lt.close()
    }
    const m = parseTorrent(bytes)
    const ltCids = await ingest(m, ltFiles)
    const r = buildRecord(m, ltCids, { originalTorrent: bytes })
    const cid = await uploadRecord(codex.client, r)
    const fetched = await fetchRecord(codex.client, cid)
    assert.deepEqual(torrentFromRecord(fetched.record), bytes)
    for (const [index, fileCid] of fetched.fileCids) {
      const src = ltFiles.find((f) => f.path.join('/') === m.info.files[index]?.path.join('/'))
      assert.deepEqual(await downloadAll(codex.client, fileCid), src?.data)
    }
  })

  test('tampered records are rejected with typed errors', async () => {
    const other = await makeTorrent('other', [{ path: ['x'], data: payload(1000, 5) }], { version: 'hybrid' })
    const dataIndex = record.files.findIndex((f) => f.cid !== undefined)
    const cases: [string, Uint8Array, RecordErrorCode][] = [
      ['not JSON', new TextEncoder().encode('{"format":'), 'GW_ERR_RECORD_JSON'],
      ['not UTF-8', new Uint8Array([0x7b, 0xff, 0x7d]), 'GW_ERR_RECORD_JSON'],
      ['wrong format', mutate(record, (o) => (o.format = 'something-else')), 'GW_ERR_RECORD_FORMAT'],
      ['wrong version', mutate(record, (o) => (o.version = 2)), 'GW_ERR_RECORD_VERSION'],
      ['info not base64', mutate(record, (o) => (o.info = 'not base64!')), 'GW_ERR_RECORD_BASE64'],
      [
        'info of another torrent',
        mutate(record, (o) => (o.info = Buffer.from(other.metainfo.info.infoBytes).toString('base64'))),
        'GW_ERR_RECORD_HASH_MISMATCH',
      ],
      [
        'wrong v1 hash',
        mutate(record, (o) => (o.infoHashV1 = '00'.repeat(20))),
        'GW_ERR_RECORD_HASH_MISMATCH',
      ],
      ['missing v2 hash', mutate(record, (o) => delete o.infoHashV2), 'GW_ERR_RECORD_HASH_MISMATCH'],
      [
        'file length changed',
        mutate(record, (o) => {
          const files = o.files as { length: number }[]
          ;(files[dataIndex] as { length: number }).length += 1
        }),
        'GW_ERR_RECORD_FILES_MISMATCH',
      ],
      [
        'file renamed',
        mutate(record, (o) =>
          ((o.files as { path: string[] }[])[dataIndex] as { path: string[] }).path.push('x'),
        ),
        'GW_ERR_RECORD_FILES_MISMATCH',
      ],
      ['file dropped', mutate(record, (o) => (o.files as unknown[]).pop()), 'GW_ERR_RECORD_FILES_MISMATCH'],
      [
        'CID that does not parse',
        mutate(
          record,
          (o) => (((o.files as { cid?: string }[])[dataIndex] as { cid?: string }).cid = 'zNotACid'),
        ),
        'GW_ERR_RECORD_CID',
      ],
      [
        'CID that is not a manifest',
        mutate(record, (o) => {
          ;((o.files as { cid?: string }[])[dataIndex] as { cid?: string }).cid =
            'zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL'
        }),
        'GW_ERR_RECORD_CID',
      ],
      [
        'data file without CID',
        mutate(record, (o) => delete ((o.files as { cid?: string }[])[dataIndex] as { cid?: string }).cid),
        'GW_ERR_RECORD_INCOMPLETE',
      ],
      [
        'original .torrent of another torrent',
        mutate(record, (o) => (o.torrent = Buffer.from(other.bytes).toString('base64'))),
        'GW_ERR_RECORD_TORRENT_MISMATCH',
      ],
      [
        'piece layer altered',
        mutate(record, (o) => {
          const layers = o.pieceLayers as Record<string, string>
          const key = Object.keys(layers)[0] as string
          const bytes = Buffer.from(layers[key] as string, 'base64')
          bytes[0] = (bytes[0] ?? 0) ^ 1
          layers[key] = bytes.toString('base64')
        }),
        'GW_ERR_RECORD_PIECE_LAYERS',
      ],
      ['piece layer missing', mutate(record, (o) => (o.pieceLayers = {})), 'GW_ERR_RECORD_PIECE_LAYERS'],
      ['unknown key', mutate(record, (o) => (o.extra = 1)), 'GW_ERR_RECORD_FIELD'],
      ['bad date', mutate(record, (o) => (o.createdAt = 'yesterday')), 'GW_ERR_RECORD_FIELD'],
      ['announce not a list', mutate(record, (o) => (o.announce = 'http://x')), 'GW_ERR_RECORD_FIELD'],
    ]
    assert.ok(Object.keys(record.pieceLayers).length > 0, 'the fixture has a piece layer')
    for (const [label, bytes, code] of cases) await assertRecordError(() => parseRecord(bytes), code, label)
    // Through Codex: a dataset that is not a record, and a CID Codex does not have.
    await assertRecordError(
      () => fetchRecord(codex.client, cids.get(dataIndex) ?? ''),
      'GW_ERR_RECORD_JSON',
      'a file',
    )
    const missing = await uploadRecord(
      codex.client,
      buildRecord(other.metainfo, await ingest(other.metainfo, [{ path: ['x'], data: payload(1000, 5) }])),
    )
    await codex.client.delete(missing)
    await assertRecordError(
      () => fetchRecord(codex.client, missing),
      'GW_ERR_RECORD_NOT_FOUND',
      'deleted record',
    )
  })

  test('import into a fresh catalog: a new store serves the files from Codex', async () => {
    const catalog = Catalog.open(join(codex.dir, 'import.sqlite'))
    const store = new CodexPieceStore({
      client: codex.client,
      catalog,
      stagingDir: join(codex.dir, 'import-staging'),
    })
    try {
      const { torrent, parsed } = await importRecord(codex.client, catalog, recordCid)
      assert.equal(torrent.origin, 'import')
      assert.equal(torrent.recordCid, recordCid)
      assert.equal(catalog.getTorrent(toHex(metainfo.info.infoHashV2 as Uint8Array))?.id, torrent.id)
      assert.deepEqual(torrent.torrentBytes, torrentBytes)
      for (const [index, cid] of cids) {
        assert.equal(catalog.getFiles(torrent.id).find((f) => f.index === index)?.cid, cid)
      }
      codex.node.faults.resetCounters()
      const storage = await StorageFacade.open(store, parsed.info)
      const have = await storage.completionBitfield()
      assert.equal(have?.count, parsed.info.pieceCount, 'every piece is available from Codex')
      const linear = linearFromFiles(metainfo, FILES)
      for (let p = 0; p < parsed.info.pieceCount; p++) {
        const size = storage.geometry.pieceSize(p)
        const start = p * parsed.info.pieceLength
        assert.deepEqual(await storage.readBlock(p, 0, size), linear.subarray(start, start + size))
      }
      assert.equal(
        codex.node.faults.requestCount({ method: 'POST', route: '/data' }),
        0,
        'nothing re-uploaded',
      )
      await storage.close()
    } finally {
      await store.close()
      catalog.close()
    }
  })

  test('import fails clearly when a file dataset is missing in Codex', async () => {
    const files = [
      { path: ['keep.bin'], data: payload(5_000, 61) },
      { path: ['gone.bin'], data: payload(6_000, 62) },
    ]
    const made = await makeTorrent('partial', files, { version: 'v2', pieceLength: 16 * KIB })
    const fileCids = await ingest(made.metainfo, files)
    const cid = await uploadRecord(codex.client, buildRecord(made.metainfo, fileCids))
    const gone = made.metainfo.info.files.findIndex((f) => f.path[0] === 'gone.bin')
    await codex.client.delete(fileCids.get(gone) ?? '')
    const catalog = Catalog.open(':memory:')
    try {
      await assertRecordError(
        () => importRecord(codex.client, catalog, cid),
        'GW_ERR_RECORD_FILE_MISSING',
        'import',
      )
      assert.equal(catalog.listTorrents().length, 0, 'nothing was added')
      const parsed: ParsedRecord = (await importRecord(codex.client, catalog, cid, { verifyFiles: false }))
        .parsed
      assert.equal(parsed.fileCids.size, 2, 'without verification the record still imports')
    } finally {
      catalog.close()
    }
  })
})
