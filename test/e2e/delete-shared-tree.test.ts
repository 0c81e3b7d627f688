/**
 * End to end: `DELETE /torrents/:id?removeData=true` never destroys data another torrent still
 * needs, even when the two torrents reference DIFFERENT Codex manifests of the same bytes.
 *
 * Two v1 torrents (no v2 pieces root, so no dedup) hold the same bytes under different file names:
 * the gateway uploads two datasets whose manifests differ (filename) but whose Codex tree — and so
 * whose blocks — are the same. Codex deletes a dataset by its tree (NOTES §1.5), so deleting the
 * first torrent's dataset would break the second; the gateway must keep it.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { LocalCodexNode } from '../../codex-client/local-node/index.ts'
import { api, type GatewayProcess } from '../helpers/gateway-process.ts'
import type { LtSession } from '../helpers/libtorrent.ts'
import type { TempDir } from '../helpers/payload.ts'
import {
  addTorrent,
  Cleanup,
  CODEX_API,
  codexData,
  HOST,
  startGateway,
  startSuite,
  waitArchived,
} from './kit.ts'

describe('e2e: delete with removeData keeps datasets that share a Codex tree', { timeout: 85_000 }, () => {
  const cleanup = new Cleanup()
  let tmp: TempDir
  let codex: LocalCodexNode
  let seeder: LtSession
  let gw: GatewayProcess

  before(async () => {
    ;({ tmp, codex, seeder } = await startSuite(cleanup, 'codex-bt-e2e-delete-'))
    gw = await startGateway(cleanup, join(tmp.path, 'gw'), codex.url)
  })

  after(() => cleanup.run())

  test('same bytes, two names, two manifests: deleting one torrent keeps the other readable', async () => {
    const bytes = randomBytes(300_000)
    const ids: string[] = []
    for (const name of ['first.bin', 'second.bin']) {
      const dir = join(tmp.path, `src-${name}`)
      await mkdir(dir, { recursive: true })
      await writeFile(join(dir, name), bytes)
      const out = join(tmp.path, `${name}.torrent`)
      await seeder.createTorrent({ path: join(dir, name), out, version: 'v1', pieceLength: 16384 })
      const h = await seeder.add({ torrent: out, savePath: dir })
      await seeder.waitFor(h, (s) => s.is_seeding, { timeoutMs: 20_000 })
      ids.push(await addTorrent(gw, new Uint8Array(await readFile(out)), [`${HOST}:${seeder.port}`]))
    }
    const [a, b] = await Promise.all(ids.map((id) => waitArchived(gw, id)))
    const cidA = a!.files[0]!.codexCid!
    const cidB = b!.files[0]!.codexCid!
    assert.notEqual(cidA, cidB, 'different file names give different manifests')
    const tree = async (cid: string): Promise<string> => {
      const r = await fetch(`${codex.url}${CODEX_API}/data/${cid}/network/manifest`)
      return ((await r.json()) as { manifest: { treeCid: string } }).manifest.treeCid
    }
    assert.equal(await tree(cidA), await tree(cidB), 'same bytes, same Codex tree')

    const del = await api(gw.apiUrl, 'DELETE', `/torrents/${ids[0]}?removeData=true`)
    assert.ok(del.status === 204 || del.status === 200, `DELETE → ${del.status}`)
    // The record of the deleted torrent is gone; the shared blocks are not.
    const rec = await fetch(`${codex.url}${CODEX_API}/data/${a!.recordCid}`)
    assert.equal(rec.status, 404, 'the deleted torrent record is removed from Codex')
    await rec.arrayBuffer()
    assert.deepEqual(await codexData(codex.url, cidB), bytes, 'the other torrent still reads its bytes')
    const other = await api<{ state: string }>(gw.apiUrl, 'GET', `/torrents/${ids[1]}`)
    assert.equal(other.status, 200)
  })
})
