/**
 * Runs the PieceStore compliance suite against the file-system backend (with a tiny handle
 * limit, to exercise the LRU), plus fs-specific behaviour: on-disk layout, no pad files, empty
 * files, resume after restart, recheck of user-placed data, path safety.
 */

import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { FsPieceStore, RESUME_DIR } from '../../adapters/fs-store.ts'
import { type PieceHashes, StorageError } from '../../gateway/engine/storage.ts'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import { equalBytes, toHex } from '../../gateway/protocol/hex.ts'
import type { FileEntry, TorrentInfo } from '../../gateway/protocol/types.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'
import { allBlocks, buildInfo, expectedSha1, LAYOUTS, linearData } from '../helpers/layouts.ts'
import { runPieceStoreCompliance } from './piece-store.ts'

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'codex-bt-fs-store-'))
}

runPieceStoreCompliance('fs', async () => {
  const directory = await tempDir()
  return {
    store: new FsPieceStore({ directory, maxOpenFiles: 2 }),
    teardown: () => rm(directory, { recursive: true, force: true }),
    reopen: async () => new FsPieceStore({ directory, maxOpenFiles: 2 }),
  }
})

function layout(name: string): TorrentInfo {
  const info = LAYOUTS[name]
  if (info === undefined) throw new Error(`no layout ${name}`)
  return info
}

/** Relative paths of every regular file under `dir` (recursive), sorted. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort()
}

async function writeAll(storage: StorageFacade, info: TorrentInfo, linear: Uint8Array): Promise<void> {
  for (const b of allBlocks(info)) {
    const at = b.piece * info.pieceLength + b.offset
    await storage.writeBlock(b.piece, b.offset, linear.slice(at, at + b.length))
  }
}

/** The expected content of a stored file entry. */
function fileContent(file: FileEntry, linear: Uint8Array): Uint8Array {
  return linear.slice(file.offset, file.offset + file.length)
}

/** A v1/hybrid verifier comparing against the torrent's `pieces`. */
function v1Verifier(info: TorrentInfo): (piece: number, hashes: PieceHashes) => boolean {
  return (piece, hashes) =>
    hashes.sha1 !== undefined &&
    info.pieces !== undefined &&
    equalBytes(hashes.sha1, info.pieces.subarray(piece * 20, piece * 20 + 20))
}

describe('FsPieceStore specifics', () => {
  test('multi-file layout: files at <dir>/<name>/<path>, no pad files, empty files created', async () => {
    const dir = await tempDir()
    try {
      const info = layout('hybrid')
      const storage = await StorageFacade.open(new FsPieceStore({ directory: dir }), info)
      const linear = linearData(info)
      await writeAll(storage, info, linear)
      await storage.close()
      const files = await listFiles(dir)
      const expected = info.files.filter((f) => !f.padding).map((f) => join('hybrid', ...f.path))
      assert.deepEqual(files, expected.sort())
      assert.ok(!files.some((f) => f.includes('.pad')), 'pad files are never written')
      for (const f of info.files.filter((f) => !f.padding)) {
        const content = await readFile(join(dir, 'hybrid', ...f.path))
        assert.ok(equalBytes(content, fileContent(f, linear)), `content of ${f.path.join('/')}`)
      }
      assert.equal((await stat(join(dir, 'hybrid', 'empty'))).size, 0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('v2-only layout: virtual padding is not stored either', async () => {
    const dir = await tempDir()
    try {
      const info = layout('v2Only')
      const storage = await StorageFacade.open(new FsPieceStore({ directory: dir }), info)
      const linear = linearData(info)
      await writeAll(storage, info, linear)
      await storage.close()
      assert.deepEqual(await listFiles(dir), ['v2only/a', 'v2only/b', 'v2only/c/d', 'v2only/empty'])
      assert.equal((await stat(join(dir, 'v2only', 'b'))).size, 5_000)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('single-file layout: stored at <dir>/<name>', async () => {
    const dir = await tempDir()
    try {
      const info = layout('singleFile')
      const storage = await StorageFacade.open(new FsPieceStore({ directory: dir }), info)
      const linear = linearData(info)
      await writeAll(storage, info, linear)
      await storage.close()
      assert.deepEqual(await listFiles(dir), ['single.bin'])
      assert.ok(equalBytes(await readFile(join(dir, 'single.bin')), linear))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('resume after restart: the resume file holds the committed bitfield', async () => {
    const dir = await tempDir()
    try {
      const info = layout('v1MultiFile')
      const first = await StorageFacade.open(new FsPieceStore({ directory: dir }), info)
      assert.equal((await first.completionBitfield())?.count, 0, 'no data, no resume file: known and empty')
      await writeAll(first, info, linearData(info))
      await first.commitPiece(1)
      await first.commitPiece(3)
      await first.close()
      const resumeFile = join(dir, RESUME_DIR, `${toHex(info.infoHashV1 ?? new Uint8Array())}.resume`)
      assert.ok((await stat(resumeFile)).isFile())
      const second = await StorageFacade.open(new FsPieceStore({ directory: dir }), info)
      assert.deepEqual([...((await second.completionBitfield())?.setIndices() ?? [])], [1, 3])
      await second.close()
      // A truncated file invalidates the committed pieces stored past its new end.
      await truncate(join(dir, 'multi', 'd.dat'), 10)
      const third = await StorageFacade.open(new FsPieceStore({ directory: dir }), info)
      const have = await third.completionBitfield()
      assert.ok(have)
      assert.equal(have.has(1), true)
      assert.equal(have.has(3), false, 'piece 3 covers d.dat, which was truncated')
      await third.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('recheck finds data placed by the user (and rejects corrupt pieces)', async () => {
    const dir = await tempDir()
    try {
      const info = layout('hybrid')
      const linear = linearData(info)
      for (const f of info.files.filter((f) => !f.padding)) {
        const path = join(dir, 'hybrid', ...f.path)
        await mkdir(join(path, '..'), { recursive: true })
        const content = fileContent(f, linear)
        const flip = BLOCK_SIZE * 2 + 5 // one byte in c/d's second piece
        if (f.path.join('/') === 'c/d') content[flip] = (content[flip] ?? 0) ^ 0xff
        await writeFile(path, content)
      }
      const storage = await StorageFacade.open(new FsPieceStore({ directory: dir }), info)
      assert.deepEqual(await storage.completion(), { known: false }, 'data without resume file is unknown')
      assert.equal(storage.canRecheck, true)
      const progress: number[] = []
      const have = await storage.recheck(v1Verifier(info), { onProgress: (n) => progress.push(n) })
      const cFirst = (info.files.find((f) => f.path.join('/') === 'c/d') as FileEntry).firstPiece
      const corrupted = cFirst + Math.floor((BLOCK_SIZE * 2 + 5) / info.pieceLength)
      const expected = [...Array(info.pieceCount).keys()].filter((p) => p !== corrupted)
      assert.deepEqual([...have.setIndices()], expected)
      assert.equal(progress.at(-1), info.pieceCount)
      assert.deepEqual([...((await storage.completionBitfield())?.setIndices() ?? [])], expected)
      // The corrupted piece is repaired by writing it again.
      const at = corrupted * info.pieceLength
      for (let off = 0; off < info.pieceLength && at + off < info.totalLength; off += BLOCK_SIZE) {
        const len = Math.min(BLOCK_SIZE, info.totalLength - at - off)
        await storage.writeBlock(corrupted, off, linear.slice(at + off, at + off + len))
      }
      assert.deepEqual(
        (await storage.hashPiece(corrupted, { v1: true, v2: false })).sha1,
        expectedSha1(info, corrupted, linear),
      )
      await storage.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('recheck skips pieces of missing files without reading them', async () => {
    const dir = await tempDir()
    try {
      const info = layout('v1MultiFile')
      const linear = linearData(info)
      const a = info.files[0] as FileEntry
      await mkdir(join(dir, 'multi'), { recursive: true })
      await writeFile(join(dir, 'multi', 'a.txt'), fileContent(a, linear))
      const storage = await StorageFacade.open(new FsPieceStore({ directory: dir }), info)
      let verified = 0
      const have = await storage.recheck((piece, hashes) => {
        verified++
        return v1Verifier(info)(piece, hashes)
      })
      // a.txt (40 000 bytes) alone completes piece 0 only; piece 1 also needs dir/b.bin.
      assert.deepEqual([...have.setIndices()], [0])
      assert.equal(verified, 1, 'pieces whose files are missing are not hashed')
      await storage.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('path safety: unsafe components and symlinked escapes are refused', async () => {
    const dir = await tempDir()
    const outside = await tempDir()
    try {
      const evil = buildInfo({
        name: 'evil',
        version: 'v1',
        pieceLength: 16 * 1024,
        files: [{ path: ['..', '..', 'escape'], length: 10 }],
      })
      await assert.rejects(StorageFacade.open(new FsPieceStore({ directory: dir }), evil), (e: unknown) => {
        return e instanceof StorageError && e.code === 'GW_ERR_STORAGE_PATH'
      })
      const info = buildInfo({
        name: 'linked',
        version: 'v1',
        pieceLength: 16 * 1024,
        files: [{ path: ['sub', 'file'], length: 10 }],
      })
      await mkdir(join(dir, 'linked'), { recursive: true })
      await symlink(outside, join(dir, 'linked', 'sub'))
      const storage = await StorageFacade.open(new FsPieceStore({ directory: dir }), info)
      await assert.rejects(storage.writeBlock(0, 0, new Uint8Array(10).fill(1)), (e: unknown) => {
        return e instanceof StorageError && e.code === 'GW_ERR_STORAGE_PATH'
      })
      await storage.close()
      assert.deepEqual(await readdir(outside), [], 'nothing was written outside the store')
    } finally {
      await rm(dir, { recursive: true, force: true })
      await rm(outside, { recursive: true, force: true })
    }
  })
})
