/**
 * `createTorrentFromCodex` against the local Codex node (real HTTP on 127.0.0.1, real temp dirs):
 * the torrent made from CIDs equals (same info hashes, same bytes) the one `createTorrent` makes
 * from the same local files, for v1, v2 and hybrid, multi- and single-file; libtorrent verifies
 * the data on disk against our torrents (recheck → seeding); file indices map back to CIDs (pad
 * files → undefined); typed errors for bad, missing and non-manifest CIDs; retries on 5xx; dedup
 * reuses a known CID for the same BEP52 `pieces root`.
 */

import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  type CodexSourceFile,
  CreateFromCodexError,
  createTorrentFromCodex,
} from '../../adapters/codex/create-from-codex.ts'
import { formatCid, manifestCidFromBytes } from '../../codex-client/cid.ts'
import { createTorrentFromPath } from '../../gateway/protocol/create-torrent.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { parseMagnet } from '../../gateway/protocol/magnet.ts'
import { startLibtorrent } from '../helpers/libtorrent.ts'
import { type TempDir, tempDir, type WrittenPayload, writePayload } from '../helpers/payload.ts'
import { bytesOf, type NodeEnv, startNodeEnv } from './seed-fixtures.ts'

const PAYLOAD_FILES = [
  { path: ['a.bin'], size: 333_333 },
  { path: ['sub', 'b.bin'], size: 65_536 },
  { path: ['sub', 'deep', 'c.txt'], size: 7 },
  { path: ['z.bin'], size: 1_200_000 },
]
const VERSIONS = ['v1', 'v2', 'hybrid'] as const

describe('createTorrentFromCodex', () => {
  let env: NodeEnv
  let work: TempDir
  let payload: WrittenPayload
  let single: WrittenPayload
  const cidOf = new Map<string, string>()

  before(async () => {
    env = await startNodeEnv()
    work = await tempDir('from-codex-')
    payload = await writePayload(join(work.path, 'multi-root'), { name: 'payload', files: PAYLOAD_FILES })
    single = await writePayload(join(work.path, 'single-root'), { name: 'movie.bin', size: 777_777 })
    for (const f of PAYLOAD_FILES) {
      const bytes = await readFile(join(payload.path, ...f.path))
      cidOf.set(f.path.join('/'), await env.upload(bytes, f.path.at(-1)))
    }
    cidOf.set('movie.bin', await env.upload(await readFile(single.path), 'movie.bin'))
  })
  after(async () => {
    await env.close()
    await work.cleanup()
  })

  const multiFiles = (): CodexSourceFile[] =>
    PAYLOAD_FILES.map((f) => ({ cid: cidOf.get(f.path.join('/'))!, path: f.path }))

  for (const version of VERSIONS) {
    test(`${version}: same torrent as createTorrent from the local bytes; files map to CIDs`, async () => {
      const opts = { version, pieceLength: 32 * 1024, trackers: [['http://127.0.0.1:1/announce']] }
      const local = await createTorrentFromPath(payload.path, opts)
      const made = await createTorrentFromCodex({
        client: env.client,
        name: 'payload',
        files: multiFiles(),
        ...opts,
      })
      assert.deepEqual(made.torrentBytes, local.bytes)
      const info = made.metainfo.info
      if (version !== 'v2') assert.equal(toHex(info.infoHashV1!), toHex(local.metainfo.info.infoHashV1!))
      if (version !== 'v1') assert.equal(toHex(info.infoHashV2!), toHex(local.metainfo.info.infoHashV2!))
      assert.equal(made.fileCids.length, info.files.length)
      info.files.forEach((f, i) => {
        if (f.padding) assert.equal(made.fileCids[i], undefined, `pad ${i}`)
        else assert.equal(made.fileCids[i], cidOf.get(f.path.join('/')), f.path.join('/'))
      })
      if (version === 'hybrid')
        assert.ok(
          info.files.some((f) => f.padding),
          'hybrid has pad files',
        )
      const magnet = parseMagnet(made.magnet)
      assert.equal(magnet.name, 'payload')
      assert.deepEqual(made.reused, [])
    })
  }

  test('single file: a single-file torrent named after the path; same as from disk', async () => {
    for (const version of VERSIONS) {
      const local = await createTorrentFromPath(single.path, { version })
      const made = await createTorrentFromCodex({
        client: env.client,
        files: [{ cid: cidOf.get('movie.bin')!, path: ['movie.bin'] }],
        version,
      })
      assert.deepEqual(made.torrentBytes, local.bytes, version)
      // v2-only layouts may end with a virtual alignment gap (no CID).
      made.metainfo.info.files.forEach((f, i) => {
        assert.equal(
          made.fileCids[i],
          f.padding ? undefined : cidOf.get('movie.bin'),
          `${version} entry ${i}`,
        )
      })
      assert.equal(made.fileCids[0], cidOf.get('movie.bin'))
      // An empty path takes the manifest's filename.
      const byName = await createTorrentFromCodex({
        client: env.client,
        files: [{ cid: cidOf.get('movie.bin')!, path: [] }],
        version,
      })
      assert.deepEqual(byName.torrentBytes, local.bytes)
    }
  })

  test('libtorrent verifies the files on disk against the torrents made from CIDs', async () => {
    const lt = await startLibtorrent()
    try {
      for (const version of VERSIONS) {
        const made = await createTorrentFromCodex({
          client: env.client,
          name: 'payload',
          files: multiFiles(),
          version,
          pieceLength: 16 * 1024,
        })
        const file = join(work.path, `payload-${version}.torrent`)
        await writeFile(file, made.torrentBytes)
        const handle = await lt.add({ torrent: file, savePath: payload.root })
        await lt.recheck(handle)
        const status = await lt.waitFor(handle, (s) => s.is_seeding, { timeoutMs: 30_000 })
        assert.equal(status.progress, 1, version)
        assert.equal(status.error, null)
        await lt.remove(handle)
      }
      // Negative control: a torrent whose a.bin comes from other bytes does not verify on disk.
      const other = await env.upload(bytesOf('not-a', 333_333), 'a.bin')
      const wrong = await createTorrentFromCodex({
        client: env.client,
        name: 'payload',
        files: multiFiles().map((f) => (f.path.join('/') === 'a.bin' ? { ...f, cid: other } : f)),
        version: 'hybrid',
        pieceLength: 16 * 1024,
      })
      const file = join(work.path, 'payload-wrong.torrent')
      await writeFile(file, wrong.torrentBytes)
      const handle = await lt.add({ torrent: file, savePath: payload.root })
      await lt.recheck(handle)
      const status = await lt.waitFor(handle, (s) => s.is_seeding || s.state.includes('downloading'), {
        timeoutMs: 30_000,
      })
      assert.equal(status.is_seeding, false)
      assert.ok(status.progress < 1)
      await lt.remove(handle)
    } finally {
      await lt.close()
    }
  })

  test('empty files take no CID', async () => {
    const made = await createTorrentFromCodex({
      client: env.client,
      name: 'with-empty',
      version: 'v2',
      files: [...multiFiles(), { path: ['empty.txt'] }],
    })
    const i = made.metainfo.info.files.findIndex((f) => f.path.join('/') === 'empty.txt')
    assert.ok(i >= 0)
    assert.equal(made.metainfo.info.files[i]!.length, 0)
    assert.equal(made.fileCids[i], undefined)
  })

  test('typed errors: bad, missing and non-manifest CIDs; a multi-file torrent without a name', async () => {
    const client = env.client
    const code = (c: string) => (e: unknown) => e instanceof CreateFromCodexError && e.code === c
    await assert.rejects(
      createTorrentFromCodex({ client, files: [{ cid: 'nonsense', path: ['x'] }] }),
      code('GW_ERR_CODEX_CREATE_INVALID'),
    )
    const absent = formatCid(manifestCidFromBytes(bytesOf('absent-manifest', 56)))
    await assert.rejects(
      createTorrentFromCodex({ client, files: [{ cid: absent, path: ['x'] }] }),
      code('GW_ERR_CODEX_CREATE_NOT_FOUND'),
    )
    const { manifest } = await client.fetchManifest(cidOf.get('a.bin')!)
    await assert.rejects(
      createTorrentFromCodex({ client, files: [{ cid: manifest.treeCid, path: ['x'] }] }),
      code('GW_ERR_CODEX_CREATE_NOT_MANIFEST'),
    )
    await assert.rejects(
      createTorrentFromCodex({ client, files: multiFiles() }),
      code('GW_ERR_CODEX_CREATE_INVALID'),
    )
    await assert.rejects(createTorrentFromCodex({ client, files: [] }), code('GW_ERR_CODEX_CREATE_INVALID'))
    await assert.rejects(
      createTorrentFromCodex({ client, files: multiFiles(), name: 'x' }, { signal: AbortSignal.abort() }),
      { name: 'AbortError' },
    )
  })

  test('a 5xx during the download is retried; persistent failures are typed', async () => {
    const before = env.downloads()
    env.node.faults.failNext(1, { status: 500, route: '/data/:cid', method: 'GET' })
    const made = await createTorrentFromCodex({
      client: env.client,
      files: [{ cid: cidOf.get('movie.bin')!, path: ['movie.bin'] }],
      version: 'v1',
    })
    assert.equal(env.downloads() - before, 2, 'one failed download, one retry')
    const local = await createTorrentFromPath(single.path, { version: 'v1' })
    assert.deepEqual(made.torrentBytes, local.bytes)
    env.node.faults.failNext(10, { status: 500, route: '/data/:cid', method: 'GET' })
    try {
      await assert.rejects(
        createTorrentFromCodex({
          client: env.client,
          files: [{ cid: cidOf.get('movie.bin')!, path: ['m'] }],
        }),
        (e: unknown) => e instanceof CreateFromCodexError && e.code === 'GW_ERR_CODEX_CREATE_IO',
      )
    } finally {
      env.node.faults.clear()
    }
  })

  test('dedup: a file whose pieces root is known under another CID reuses that CID', async () => {
    const aBytes = await readFile(join(payload.path, 'a.bin'))
    // The same bytes under another name: another manifest, hence another CID (NOTES.md §1.3).
    const known = await env.upload(aBytes, 'first-copy.bin')
    assert.notEqual(known, cidOf.get('a.bin'))
    const lookups: string[] = []
    const made = await createTorrentFromCodex({
      client: env.client,
      name: 'payload',
      files: multiFiles(),
      version: 'hybrid',
      dedup: {
        findCidByPiecesRoot: (hex) => {
          lookups.push(hex)
          return lookups.length === 1 ? known : undefined
        },
      },
    })
    const info = made.metainfo.info
    const aIndex = info.files.findIndex((f) => f.path.join('/') === 'a.bin')
    assert.equal(toHex(info.files[aIndex]!.piecesRoot!), lookups[0])
    assert.equal(made.fileCids[aIndex], known)
    assert.deepEqual(made.reused, [{ fileIndex: aIndex, cid: known, requestedCid: cidOf.get('a.bin') }])
    // A stale entry (a dataset of another size) is ignored.
    const stale = await createTorrentFromCodex({
      client: env.client,
      name: 'payload',
      files: multiFiles(),
      version: 'v2',
      dedup: { findCidByPiecesRoot: () => cidOf.get('sub/deep/c.txt') },
    })
    const zIndex = stale.metainfo.info.files.findIndex((f) => f.path.join('/') === 'z.bin')
    assert.equal(stale.fileCids[zIndex], cidOf.get('z.bin'))
  })
})
