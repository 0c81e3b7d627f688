/**
 * Restart of the Codex ingest store: close mid-ingest (an upload in progress is checkpointed),
 * open a new store on the same catalog and staging directory, and check that verified pieces are
 * reported complete (never fetched again), files already in Codex are not uploaded again, the
 * interrupted file is uploaded from its staged data, and pieces whose staged bytes vanished are
 * reported missing.
 */

import assert from 'node:assert/strict'
import { readdir, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import {
  backendOf,
  codexForFile,
  downloadAll,
  ingestPiece,
  linearFromFiles,
  makeStore,
  makeTorrent,
  payload,
  waitUntil,
} from './codex-env.ts'

const KIB = 1024

const codex = codexForFile()

const FILES = [
  { path: ['a.bin'], data: payload(100_000, 71) },
  { path: ['b.bin'], data: payload(100_000, 72) },
  { path: ['c.bin'], data: payload(200_000, 73) },
  { path: ['d.bin'], data: payload(60_000, 74) },
]

describe('restart of the ingest store', () => {
  test('verified pieces stay complete, uploaded files are not uploaded again', async () => {
    const { metainfo } = await makeTorrent('restart', FILES, { version: 'hybrid', pieceLength: 32 * KIB })
    const info = metainfo.info
    const id = toHex(info.infoHashV1 as Uint8Array)
    const linear = linearFromFiles(metainfo, FILES)
    const bytesAt = (at: number, n: number): Uint8Array => linear.slice(at, at + n)
    const fileIndex = (name: string): number => info.files.findIndex((f) => f.path[0] === name)
    const piecesOf = (name: string): number[] => {
      const f = info.files[fileIndex(name)]
      assert.ok(f)
      return Array.from({ length: f.pieceCount }, (_, k) => f.firstPiece + k)
    }
    const env = await makeStore(codex)
    try {
      // First run: a and b complete (uploaded), half of c (its upload waits for more), d's last piece.
      const first = await StorageFacade.open(env.store, info)
      const backend1 = backendOf(env.store, id)
      for (const p of [...piecesOf('a.bin'), ...piecesOf('b.bin')])
        await ingestPiece(first, metainfo, p, bytesAt)
      const cPieces = piecesOf('c.bin')
      const dPieces = piecesOf('d.bin')
      for (const p of cPieces.slice(0, 3)) await ingestPiece(first, metainfo, p, bytesAt)
      const dLast = dPieces.at(-1) as number
      await ingestPiece(first, metainfo, dLast, bytesAt)
      await first.writeBlock(cPieces[4] as number, 0, bytesAt((cPieces[4] as number) * info.pieceLength, 100)) // never committed
      await waitUntil(
        () => ['a.bin', 'b.bin'].every((n) => backend1.fileStates()[fileIndex(n)]?.state === 'uploaded'),
        'a and b in Codex',
      )
      await waitUntil(() => backend1.fileStates()[fileIndex('c.bin')]?.state === 'uploading', 'c uploading')
      const cidsBefore = backend1.fileStates().map((f) => f.cid)
      const committedBefore = [...((await first.completionBitfield())?.setIndices() ?? [])]
      await first.close() // c's upload is in progress: checkpointed, not lost

      codex.node.faults.resetCounters()
      const store2 = env.reopen()
      const second = await StorageFacade.open(store2, info)
      const backend2 = backendOf(store2, id)
      const have = await second.completionBitfield()
      assert.ok(have)
      assert.deepEqual(
        [...have.setIndices()],
        committedBefore,
        'verified pieces are complete after the restart',
      )
      const states = backend2.fileStates()
      for (const name of ['a.bin', 'b.bin']) {
        assert.equal(states[fileIndex(name)]?.state, 'uploaded')
        assert.equal(states[fileIndex(name)]?.cid, cidsBefore[fileIndex(name)])
      }
      // Fetch only what is missing (what an engine would request).
      for (let p = 0; p < info.pieceCount; p++) {
        if (!have.has(p)) await ingestPiece(second, metainfo, p, bytesAt)
      }
      const cids = await backend2.whenAllUploaded({ signal: AbortSignal.timeout(30_000) })
      assert.equal(
        codex.node.faults.requestCount({ method: 'POST', route: '/data' }),
        2,
        'only c (restarted from staging) and d were uploaded after the restart',
      )
      for (const [index, cid] of cids) {
        const src = FILES.find((f) => f.path[0] === info.files[index]?.path[0])
        assert.deepEqual(await downloadAll(codex.client, cid), src?.data)
      }
      await waitUntil(() => backend2.stagedBytes === 0, 'staging released')
      await second.close()
    } finally {
      await env.close()
    }
  })

  test('a committed piece whose staged bytes vanished is reported missing', async () => {
    const { metainfo } = await makeTorrent('lost', FILES.slice(0, 2), {
      version: 'v2',
      pieceLength: 32 * KIB,
    })
    const info = metainfo.info
    const id = toHex(info.infoHashV2 as Uint8Array)
    const linear = linearFromFiles(metainfo, FILES.slice(0, 2))
    const bytesAt = (at: number, n: number): Uint8Array => linear.slice(at, at + n)
    // Uploads never start (whole files only, and the second file stays incomplete).
    const env = await makeStore(codex, { uploadStartBytes: 1024 * KIB })
    try {
      const first = await StorageFacade.open(env.store, info)
      const b = info.files.find((f) => f.path[0] === 'b.bin')
      assert.ok(b)
      await ingestPiece(first, metainfo, b.firstPiece, bytesAt)
      await ingestPiece(first, metainfo, b.firstPiece + 2, bytesAt)
      await first.close()
      // Staging segments are 64 KiB: b's piece at 64 KiB lives in segment 1.
      const dir = join(env.stagingDir, id)
      const bIndex = info.files.indexOf(b)
      assert.ok((await readdir(dir)).includes(`${bIndex}-1.seg`))
      await unlink(join(dir, `${bIndex}-1.seg`))
      const second = await StorageFacade.open(env.reopen(), info)
      const have = await second.completionBitfield()
      assert.deepEqual(
        [...(have?.setIndices() ?? [])],
        [b.firstPiece],
        'the piece without data is not complete',
      )
      await second.close()
    } finally {
      await env.close()
    }
  })
})
