/**
 * Restart: everything the node knows lives under `dataDir`. A second node on the same directory
 * answers the same listing, space, downloads, existence and identity, and keeps the reference
 * counts (a block shared by two datasets survives deleting one of them after the restart).
 */
import assert from 'node:assert/strict'
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { startLocalCodexNode } from '../../codex-client/local-node/index.ts'
import { makeDataDir, pseudoRandomBytes, SOME_FILE, SOME_FILE_MANIFEST, space, uploadOk } from './helpers.ts'

const BLOCK = 65536

test('state survives a restart', async () => {
  const dir = await makeDataDir('codex-node-restart-')
  try {
    const a = pseudoRandomBytes(3 * BLOCK + 77, 31)
    const b = new Uint8Array(2 * BLOCK)
    b.set(a.subarray(0, BLOCK)) // shares a's first block
    b.set(pseudoRandomBytes(BLOCK, 32), BLOCK)

    const first = await startLocalCodexNode({ dataDir: dir, quotaBytes: 10 * 1024 * 1024 })
    const cidA = await uploadOk(first.apiUrl, a, {
      'content-type': 'application/octet-stream',
      'content-disposition': 'attachment; filename="a.bin"',
    })
    const cidB = await uploadOk(first.apiUrl, b)
    assert.equal(await uploadOk(first.apiUrl, SOME_FILE), SOME_FILE_MANIFEST)
    const list1 = await (await fetch(`${first.apiUrl}/data`)).json()
    const space1 = await space(first.apiUrl)
    const peer1 = await (await fetch(`${first.apiUrl}/peerid`)).json()
    await first.close()
    assert.deepEqual(await readdir(join(dir, 'tmp')), [], 'no temporary files left behind')

    const second = await startLocalCodexNode({ dataDir: dir, quotaBytes: 10 * 1024 * 1024 })
    try {
      assert.notEqual(second.url, first.url)
      assert.deepEqual(await (await fetch(`${second.apiUrl}/data`)).json(), list1)
      assert.deepEqual(await space(second.apiUrl), space1)
      assert.deepEqual(await (await fetch(`${second.apiUrl}/peerid`)).json(), peer1)
      const res = await fetch(`${second.apiUrl}/data/${cidA}`)
      assert.equal(res.headers.get('content-disposition'), 'attachment; filename="a.bin"')
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), a)

      // reference counts were rebuilt: deleting A keeps the block B shares
      assert.equal((await fetch(`${second.apiUrl}/data/${cidA}`, { method: 'DELETE' })).status, 204)
      assert.deepEqual(new Uint8Array(await (await fetch(`${second.apiUrl}/data/${cidB}`)).arrayBuffer()), b)
      const after = await space(second.apiUrl)
      // A had 4 distinct blocks + manifest; one block is shared with B
      assert.equal(after.totalBlocks, space1.totalBlocks - 4)
    } finally {
      await second.close()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
