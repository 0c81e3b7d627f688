/**
 * The HTTP API end to end, over real HTTP, against a real gateway process (`codex-bt serve` with
 * its embedded local Codex node) and real libtorrent peers, all on 127.0.0.1:
 * - add a libtorrent-seeded torrent as a raw .torrent body (v1, multi-file), as multipart field
 *   `torrent` (hybrid, same files) and as JSON `{magnet, peers}` (v2); watch each archive through
 *   `GET /torrents` and `GET /torrents/:id` (state, progress, files with CIDs, record CID); the
 *   Codex datasets hold the exact file bytes; `GET /torrents/:id/torrent` is bit-exact;
 * - seed a Codex CID (`POST /seeds`) and download it with libtorrent from the returned magnet;
 * - pause and resume;
 * - DELETE without `removeData` (the Codex data stays: the record imports back) and with
 *   `removeData=true` (the torrent's datasets are gone; datasets shared with another torrent, the
 *   other torrents, and unrelated datasets are untouched, and the others still serve peers).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { TorrentDetails, TorrentSummary } from '../../gateway/http/service.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { parseTorrent } from '../../gateway/protocol/metainfo.ts'
import { api, type GatewayProcess, waitUntil } from '../helpers/gateway-process.ts'
import type { LtSession } from '../helpers/libtorrent.ts'
import { hashTree, type PayloadSpec, sortedEntries, type TempDir } from '../helpers/payload.ts'
import {
  type AddJson,
  codexDatasets,
  codexDownload,
  codexUpload,
  leechWithLibtorrent,
  type SeededTorrent,
  type SeedJson,
  seedWithLibtorrent,
  sha256,
  startServiceSuite,
  stopServiceSuite,
  waitArchived,
} from '../helpers/service-e2e.ts'

const KIB = 1024

const ALBUM: PayloadSpec = {
  name: 'album',
  seed: 'service-api-album',
  files: [
    { path: ['a.bin'], size: 700 * KIB + 123 },
    { path: ['disc 2', 'b.bin'], size: 300 * KIB + 1 },
    { path: ['notes.txt'], size: 999 },
  ],
}

/** Non-padding files of the details, by path. */
function filesByPath(d: TorrentDetails): Map<string, TorrentDetails['files'][number]> {
  return new Map(d.files.map((f) => [f.path, f]))
}

describe('HTTP API end to end: a real gateway process, libtorrent peers, the local Codex node', {
  timeout: 90_000,
}, () => {
  let tmp: TempDir
  let seeder: LtSession
  let gw: GatewayProcess
  let t1: SeededTorrent // v1, raw body
  let t2: SeededTorrent // hybrid of the same files, multipart
  let t3: SeededTorrent // v2 single file, magnet
  let d1: TorrentDetails
  let d2: TorrentDetails
  let d3: TorrentDetails
  let seeded: SeedJson
  let seededCid: string
  let unrelatedCid: string

  before(async () => {
    ;({ tmp, lt: seeder, gw } = await startServiceSuite('codex-bt-service-api-'))
    // Rate-limited (≈ 2.5 s for the payload) so the test can watch the archive progress.
    t1 = await seedWithLibtorrent(seeder, join(tmp.path, 't1'), ALBUM, 'v1', { uploadLimit: 400 * KIB })
    t2 = await seedWithLibtorrent(seeder, join(tmp.path, 't2'), ALBUM, 'hybrid')
    t3 = await seedWithLibtorrent(
      seeder,
      join(tmp.path, 't3'),
      { name: 'film.mkv', size: 1200 * KIB + 7, seed: 'service-api-film' },
      'v2',
    )
    unrelatedCid = await codexUpload(gw.codexUrl, randomBytes(50_000), 'unrelated.bin')
  })

  after(() => stopServiceSuite({ tmp, lt: seeder, gw }))

  async function assertCodexHoldsFiles(t: SeededTorrent, d: TorrentDetails): Promise<void> {
    const single = d.files.length === 1 && d.files[0]!.path === d.name
    for (const f of d.files) {
      const key = single ? f.path : `${d.name}/${f.path}`
      const expected = t.payload.hashes.get(key)
      assert.ok(expected, `payload has ${key}`)
      assert.ok(f.codexCid, `${f.path} has a Codex CID`)
      const bytes = await codexDownload(gw.codexUrl, f.codexCid)
      assert.ok(bytes, `Codex has ${f.codexCid}`)
      assert.equal(sha256(bytes), expected, `${f.path}: the Codex dataset holds the exact bytes`)
    }
  }

  async function exported(id: string): Promise<{ status: number; type: string | null; bytes: Buffer }> {
    const res = await fetch(`${gw.apiUrl}/torrents/${id}/torrent`, { signal: AbortSignal.timeout(10_000) })
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      bytes: Buffer.from(await res.arrayBuffer()),
    }
  }

  test('raw .torrent body (v1, multi-file): archived into Codex, files with CIDs, bit-exact .torrent', async () => {
    const add = await fetch(`${gw.apiUrl}/torrents?peers=${t1.peer}`, {
      method: 'POST',
      body: t1.bytes,
      headers: { 'content-type': 'application/x-bittorrent' },
      signal: AbortSignal.timeout(10_000),
    })
    assert.equal(add.status, 201)
    assert.equal(add.headers.get('location'), `/torrents/${t1.id}`)
    const added = (await add.json()) as AddJson
    assert.equal(added.created, true)
    assert.equal(added.torrent.id, t1.id)
    assert.equal(added.torrent.name, 'album')
    assert.equal(added.torrent.version, 'v1')
    assert.equal(added.torrent.sizeBytes, t1.payload.totalBytes)

    // The same torrent again: 200, not a second entry.
    const again = await api<AddJson>(gw.apiUrl, 'POST', '/torrents', t1.bytes)
    assert.equal(again.status, 200)
    assert.equal(again.body.created, false)

    // Watch it archive: progress never goes back, states only move forward, a file gets its
    // Codex CID once it is complete (each file is uploaded as soon as its pieces are verified) and
    // keeps it, the record comes last; the list shows the transfer in progress too.
    const order = ['metadata', 'checking', 'downloading', 'archiving', 'seeding']
    const seen: { state: string; progress: number; recordCid: string | null; cids: number }[] = []
    const cidOf = new Map<string, string>()
    let listedInProgress = false
    await waitUntil(
      async () => {
        const d = await api<TorrentDetails>(gw.apiUrl, 'GET', `/torrents/${t1.id}`)
        assert.equal(d.status, 200)
        for (const f of d.body.files) {
          if (f.codexCid === null) {
            assert.equal(cidOf.has(f.path), false, `${f.path} keeps its CID`)
            continue
          }
          assert.equal(f.progress, 1, `${f.path} has a CID only once complete`)
          assert.equal(cidOf.get(f.path) ?? f.codexCid, f.codexCid, `${f.path}: the CID does not change`)
          cidOf.set(f.path, f.codexCid)
        }
        const cids = d.body.files.filter((f) => f.codexCid !== null).length
        seen.push({ state: d.body.state, progress: d.body.progress, recordCid: d.body.recordCid, cids })
        if (!listedInProgress && d.body.state === 'downloading') {
          const l = await api<{ torrents: TorrentSummary[] }>(gw.apiUrl, 'GET', '/torrents')
          const row = l.body.torrents.find((t) => t.id === t1.id)
          listedInProgress = row !== undefined && row.state === 'downloading' && row.progress < 1
        }
        return d.body.recordCid && d.body.state === 'seeding' ? true : undefined
      },
      { timeoutMs: 45_000, intervalMs: 100, what: 'the v1 torrent archived' },
    )
    const trace = JSON.stringify(seen.map((s) => `${s.state}:${s.progress.toFixed(3)}:${s.cids}`))
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i]!.progress >= seen[i - 1]!.progress, `progress never decreases: ${trace}`)
      assert.ok(
        order.indexOf(seen[i]!.state) >= order.indexOf(seen[i - 1]!.state),
        `states move forward: ${trace}`,
      )
    }
    assert.ok(
      seen.every((s) => order.includes(s.state)),
      trace,
    )
    assert.ok(
      seen.some((s) => s.state === 'downloading' && s.progress > 0 && s.progress < 1),
      `the download was seen in progress: ${trace}`,
    )
    assert.ok(listedInProgress, 'GET /torrents showed it in progress too')
    assert.ok(
      seen.every((s) => s.state === 'seeding' || s.recordCid === null),
      `no record before it is archived: ${trace}`,
    )
    d1 = await waitArchived(gw.apiUrl, t1.id)
    assert.equal(d1.state, 'seeding')
    assert.equal(d1.progress, 1)
    assert.equal(d1.pieceCount, t1.pieceCount)
    assert.equal(d1.pieceLength, 64 * KIB)
    assert.equal(d1.sizeBytes, t1.payload.totalBytes)
    assert.equal(d1.downloadedBytes >= t1.payload.totalBytes, true, 'downloaded the whole payload')
    assert.match(d1.recordCid ?? '', /^z[1-9A-Za-z]{40,}$/)
    assert.deepEqual(d1.files.map((f) => [f.path, f.sizeBytes, f.progress]).sort(), [
      ['a.bin', 700 * KIB + 123, 1],
      ['disc 2/b.bin', 300 * KIB + 1, 1],
      ['notes.txt', 999, 1],
    ])
    await assertCodexHoldsFiles(t1, d1)

    const list = await api<{ torrents: TorrentSummary[] }>(gw.apiUrl, 'GET', '/torrents')
    assert.equal(list.status, 200)
    assert.deepEqual(
      list.body.torrents.map((t) => [t.id, t.state, t.progress]),
      [[t1.id, 'seeding', 1]],
    )

    const file = await exported(t1.id)
    assert.equal(file.status, 200)
    assert.equal(file.type, 'application/x-bittorrent')
    assert.ok(file.bytes.equals(t1.bytes), 'GET /torrents/:id/torrent is bit-exact')
  })

  test('multipart field `torrent` (hybrid, same files): archived, found by its v2 hash, shares file CIDs', async () => {
    const form = new FormData()
    form.append('torrent', new Blob([t2.bytes], { type: 'application/x-bittorrent' }), 'album.torrent')
    form.append('peers', t2.peer)
    const add = await fetch(`${gw.apiUrl}/torrents`, {
      method: 'POST',
      body: form,
      signal: AbortSignal.timeout(10_000),
    })
    assert.equal(add.status, 201)
    const added = (await add.json()) as AddJson
    assert.equal(added.torrent.id, t2.infoHashV1)
    assert.equal(added.torrent.infoHashV2, t2.infoHashV2)
    assert.equal(added.torrent.version, 'hybrid')

    d2 = await waitArchived(gw.apiUrl, t2.id)
    assert.equal(d2.pieceCount, t2.pieceCount)
    assert.deepEqual(
      d2.files.map((f) => f.path).sort(),
      ['a.bin', 'disc 2/b.bin', 'notes.txt'],
      'padding files are not listed',
    )
    await assertCodexHoldsFiles(t2, d2)
    assert.notEqual(d2.recordCid, d1.recordCid, 'each torrent has its own record')
    // Same bytes, same file name: Codex content addressing gives the same datasets.
    const f1 = filesByPath(d1)
    for (const f of d2.files)
      assert.equal(f.codexCid, f1.get(f.path)?.codexCid, `${f.path} shared with the v1 torrent`)

    const byV2 = await api<TorrentDetails>(gw.apiUrl, 'GET', `/torrents/${t2.infoHashV2}`)
    assert.equal(byV2.status, 200)
    assert.equal(byV2.body.id, t2.id, 'a hybrid torrent answers to its v2 hash too')

    const file = await exported(t2.id)
    assert.equal(file.status, 200)
    assert.ok(file.bytes.equals(t2.bytes), 'bit-exact hybrid .torrent')
  })

  test('JSON {magnet, peers} (v2): metadata and data from libtorrent, archived with CIDs', async () => {
    const magnet = `magnet:?xt=urn:btmh:1220${t3.infoHashV2}&dn=film.mkv`
    const add = await api<AddJson>(gw.apiUrl, 'POST', '/torrents', { magnet, peers: [t3.peer] })
    assert.equal(add.status, 201, JSON.stringify(add.body))
    assert.equal(add.body.created, true)
    assert.equal(add.body.torrent.id, t3.infoHashV2)

    d3 = await waitArchived(gw.apiUrl, t3.id)
    assert.equal(d3.name, 'film.mkv')
    assert.equal(d3.version, 'v2')
    assert.equal(d3.pieceCount, t3.pieceCount)
    assert.equal(d3.sizeBytes, 1200 * KIB + 7)
    assert.equal(d3.files.length, 1)
    await assertCodexHoldsFiles(t3, d3)
    const list = await api<{ torrents: TorrentSummary[] }>(gw.apiUrl, 'GET', '/torrents')
    assert.deepEqual(list.body.torrents.map((t) => t.id).sort(), [t1.id, t2.id, t3.id].sort())
    assert.ok(list.body.torrents.every((t) => t.state === 'seeding'))
  })

  test('GET /torrents/:id/torrent of a magnet-added torrent: the same info dict and piece layers', {}, async () => {
    // A magnet carries no `creation date`/`created by`: the info dict (the info hash) and the v2
    // piece layers are what can, and must, be identical.
    const file = await exported(t3.id)
    assert.equal(file.status, 200, file.bytes.toString())
    const got = parseTorrent(new Uint8Array(file.bytes))
    assert.equal(toHex(got.info.infoBytes), toHex(t3.metainfo.info.infoBytes), 'the exact info dict')
    assert.deepEqual(
      [...got.pieceLayers].map(([root, layer]) => [root, toHex(layer)]).sort(),
      [...t3.metainfo.pieceLayers].map(([root, layer]) => [root, toHex(layer)]).sort(),
      'the piece layers',
    )
  })

  test('a hybrid torrent added by its v2-only magnet answers to its v1 hash once the metadata is known', {}, async () => {
    const t4 = await seedWithLibtorrent(
      seeder,
      join(tmp.path, 't4'),
      { name: 'hybrid-by-btmh.bin', size: 300 * KIB, seed: 'service-api-t4' },
      'hybrid',
    )
    const add = await api<AddJson>(gw.apiUrl, 'POST', '/torrents', {
      magnet: `magnet:?xt=urn:btmh:1220${t4.infoHashV2}`,
      peers: [t4.peer],
    })
    assert.equal(add.status, 201)
    try {
      const d = await waitArchived(gw.apiUrl, t4.infoHashV2!)
      assert.equal(d.infoHashV1, t4.infoHashV1)
      assert.equal((await api<TorrentDetails>(gw.apiUrl, 'GET', `/torrents/${t4.infoHashV1}`)).status, 200)
    } finally {
      await api<unknown>(gw.apiUrl, 'DELETE', `/torrents/${t4.infoHashV2}?removeData=true`)
    }
  })

  test('POST /seeds {cid}: a torrent of Codex data that libtorrent downloads from the magnet', async () => {
    const payload = randomBytes(900 * KIB + 17)
    seededCid = await codexUpload(gw.codexUrl, payload, 'clip.bin')
    const res = await fetch(`${gw.apiUrl}/seeds`, {
      method: 'POST',
      body: JSON.stringify({ cid: seededCid, name: 'clip.bin' }),
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(30_000),
    })
    assert.equal(res.status, 201)
    seeded = (await res.json()) as SeedJson
    assert.equal(res.headers.get('location'), `/torrents/${seeded.id}`)
    assert.equal(seeded.name, 'clip.bin')
    assert.equal(seeded.version, 'hybrid')
    assert.match(
      seeded.magnet,
      new RegExp(`^magnet:\\?xt=urn:btih:${seeded.infoHashV1}&xt=urn:btmh:1220${seeded.infoHashV2}`),
    )
    assert.ok(seeded.recordCid)
    assert.equal(
      Buffer.from(seeded.torrent, 'base64')[0],
      0x64,
      'the .torrent (base64) is a bencoded dictionary',
    )

    const d = await api<TorrentDetails>(gw.apiUrl, 'GET', `/torrents/${seeded.id}`)
    assert.equal(d.body.state, 'seeding')
    assert.equal(d.body.recordCid, seeded.recordCid)
    assert.deepEqual(
      d.body.files.map((f) => [f.path, f.sizeBytes, f.codexCid]),
      [['clip.bin', payload.length, seededCid]],
    )

    const st = await leechWithLibtorrent(
      { magnet: seeded.magnet },
      join(tmp.path, 'leech-seed'),
      gw.peerPort,
      40_000,
    )
    assert.equal(st.errc, null)
    const got = await readFile(join(tmp.path, 'leech-seed', 'clip.bin'))
    assert.equal(sha256(got), sha256(payload), 'libtorrent got the Codex bytes')
  })

  test('pause and resume', async () => {
    const pause = await api<TorrentSummary>(gw.apiUrl, 'POST', `/torrents/${t1.id}/pause`)
    assert.equal(pause.status, 200)
    assert.equal(pause.body.state, 'paused')
    assert.equal((await api<TorrentDetails>(gw.apiUrl, 'GET', `/torrents/${t1.id}`)).body.state, 'paused')
    const list = await api<{ torrents: TorrentSummary[] }>(gw.apiUrl, 'GET', '/torrents')
    assert.equal(list.body.torrents.find((t) => t.id === t1.id)?.state, 'paused')
    assert.equal(list.body.torrents.filter((t) => t.state === 'paused').length, 1, 'only that torrent')

    const resume = await api<TorrentSummary>(gw.apiUrl, 'POST', `/torrents/${t1.id}/resume`)
    assert.equal(resume.status, 200)
    assert.equal(resume.body.state, 'seeding')
    const d = await api<TorrentDetails>(gw.apiUrl, 'GET', `/torrents/${t1.id}`)
    assert.equal(d.body.state, 'seeding')
    assert.equal(d.body.recordCid, d1.recordCid, 'the record is kept across pause/resume')
  })

  test('DELETE without removeData: the torrent goes, its Codex data stays (the record imports back)', async () => {
    const before = await codexDatasets(gw.codexUrl)
    const del = await api<unknown>(gw.apiUrl, 'DELETE', `/torrents/${seeded.id}`)
    assert.equal(del.status, 204)
    assert.equal((await api<unknown>(gw.apiUrl, 'GET', `/torrents/${seeded.id}`)).status, 404)
    const list = await api<{ torrents: TorrentSummary[] }>(gw.apiUrl, 'GET', '/torrents')
    assert.deepEqual(list.body.torrents.map((t) => t.id).sort(), [t1.id, t2.id, t3.id].sort())
    assert.deepEqual(await codexDatasets(gw.codexUrl), before, 'no Codex dataset removed')

    const imported = await api<AddJson>(gw.apiUrl, 'POST', `/records/${seeded.recordCid}/import`)
    assert.equal(imported.status, 201, JSON.stringify(imported.body))
    assert.equal(imported.body.torrent.id, seeded.id)
    assert.equal(imported.body.torrent.state, 'seeding')
    const again = await api<AddJson>(gw.apiUrl, 'POST', `/records/${seeded.recordCid}/import`)
    assert.equal(again.status, 200, 'importing it twice: already present')
  })

  test('DELETE ?removeData=true: its datasets are gone from Codex; shared ones, other torrents and other data stay', async () => {
    const before = await codexDatasets(gw.codexUrl)
    const fileCids = new Set(d1.files.map((f) => f.codexCid!))
    for (const cid of [...fileCids, d1.recordCid!, d2.recordCid!, d3.recordCid!, seededCid, unrelatedCid])
      assert.ok(before.has(cid), `${cid} is in Codex before`)
    const othersBefore = await Promise.all(
      [t2.id, t3.id, seeded.id].map(
        async (id) => (await api<TorrentDetails>(gw.apiUrl, 'GET', `/torrents/${id}`)).body,
      ),
    )

    const del = await api<unknown>(gw.apiUrl, 'DELETE', `/torrents/${t1.id}?removeData=true`)
    assert.equal(del.status, 204)
    assert.equal((await api<unknown>(gw.apiUrl, 'GET', `/torrents/${t1.id}`)).status, 404)

    const afterDelete = await codexDatasets(gw.codexUrl)
    assert.equal(afterDelete.has(d1.recordCid!), false, 'the record of the deleted torrent is gone')
    assert.equal(await codexDownload(gw.codexUrl, d1.recordCid!), undefined)
    assert.deepEqual(
      [...before].filter((c) => !afterDelete.has(c)),
      [d1.recordCid],
      'nothing else was removed: the files are shared with the hybrid torrent',
    )
    for (const cid of fileCids) assert.ok(await codexDownload(gw.codexUrl, cid), `shared dataset ${cid} kept`)

    const othersAfter = await Promise.all(
      [t2.id, t3.id, seeded.id].map(
        async (id) => (await api<TorrentDetails>(gw.apiUrl, 'GET', `/torrents/${id}`)).body,
      ),
    )
    assert.deepEqual(
      othersAfter.map((d) => [d.id, d.state, d.recordCid, d.files.map((f) => f.codexCid)]),
      othersBefore.map((d) => [d.id, d.state, d.recordCid, d.files.map((f) => f.codexCid)]),
      'the other torrents are unchanged',
    )

    // The hybrid torrent (same files) is still served to peers.
    await leechWithLibtorrent({ torrent: t2.torrentPath }, join(tmp.path, 'leech-t2'), gw.peerPort, 40_000)
    assert.deepEqual(
      sortedEntries(await hashTree(join(tmp.path, 'leech-t2'), 'album')),
      sortedEntries(t2.payload.hashes),
    )

    // Removing the last torrent that uses the files removes them too.
    const del2 = await api<unknown>(gw.apiUrl, 'DELETE', `/torrents/${t2.id}?removeData=true`)
    assert.equal(del2.status, 204)
    const afterSecond = await codexDatasets(gw.codexUrl)
    assert.deepEqual(
      [...afterDelete].filter((c) => !afterSecond.has(c)).sort(),
      [...fileCids, d2.recordCid!].sort(),
      'exactly the hybrid torrent’s record and the now unused files are gone',
    )
    for (const cid of [d3.recordCid!, seededCid, seeded.recordCid!, unrelatedCid])
      assert.ok(afterSecond.has(cid), `${cid} untouched`)
    const left = await api<{ torrents: TorrentSummary[] }>(gw.apiUrl, 'GET', '/torrents')
    assert.deepEqual(
      left.body.torrents.map((t) => [t.id, t.state]).sort(),
      [
        [t3.id, 'seeding'],
        [seeded.id, 'seeding'],
      ].sort(),
    )
  })

  test('the record of a torrent archived from a v2 magnet imports back', {}, async () => {
    assert.equal((await api<unknown>(gw.apiUrl, 'DELETE', `/torrents/${t3.id}`)).status, 204)
    const imported = await api<AddJson>(gw.apiUrl, 'POST', `/records/${d3.recordCid}/import`)
    assert.equal(imported.status, 201, JSON.stringify(imported.body))
    assert.equal(imported.body.torrent.id, t3.id)
  })
})
