/**
 * StorageFacade ordering and error rules, checked against a scripted backend whose operations
 * complete only when the test says so (no timers).
 */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  type CompletionState,
  type HashWant,
  type PieceHashes,
  type RecheckableStorage,
  StorageError,
  type TorrentStorage,
} from '../../gateway/engine/storage.ts'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import type { TorrentInfo } from '../../gateway/protocol/types.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'
import { LAYOUTS } from '../helpers/layouts.ts'

interface Call {
  readonly op: string
  readonly piece: number
  readonly offset: number
  readonly length: number
  readonly done: PromiseWithResolvers<unknown>
}

/** A backend that records calls and completes each one when the test resolves it. */
class ScriptedBackend implements TorrentStorage {
  readonly calls: Call[] = []
  needsDrain = false
  closed = 0
  hashResult: (piece: number, want: HashWant) => PieceHashes = () => ({ sha1: new Uint8Array(20) })

  #record(op: string, piece: number, offset: number, length: number): PromiseWithResolvers<unknown> {
    const done = Promise.withResolvers<unknown>()
    this.calls.push({ op, piece, offset, length, done })
    return done
  }

  async writeBlock(piece: number, offset: number, data: Uint8Array): Promise<void> {
    await this.#record('write', piece, offset, data.byteLength).promise
  }

  async readBlock(piece: number, offset: number, length: number): Promise<Uint8Array> {
    const value = await this.#record('read', piece, offset, length).promise
    return value instanceof Uint8Array ? value : new Uint8Array(length).fill(7)
  }

  async hashPiece(piece: number, want: HashWant): Promise<PieceHashes> {
    await this.#record('hash', piece, 0, 0).promise
    return this.hashResult(piece, want)
  }

  async commitPiece(piece: number): Promise<void> {
    await this.#record('commit', piece, 0, 0).promise
  }

  async discardPiece(piece: number): Promise<void> {
    await this.#record('discard', piece, 0, 0).promise
  }

  async completion(): Promise<CompletionState> {
    const value = await this.#record('completion', -1, 0, 0).promise
    return (value as CompletionState | undefined) ?? { known: false }
  }

  async onDrain(): Promise<void> {}

  async close(): Promise<void> {
    this.closed++
  }

  /** Started calls named `op` that are not yet finished. */
  started(op: string): Call[] {
    return this.calls.filter((c) => c.op === op)
  }
}

/** Lets queued promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

const info = LAYOUTS.v1MultiFile as TorrentInfo

function setup(): { backend: ScriptedBackend; storage: StorageFacade } {
  const backend = new ScriptedBackend()
  return { backend, storage: new StorageFacade(backend, info) }
}

describe('StorageFacade ordering', () => {
  test('writes run concurrently; a hash waits for all earlier writes; later writes wait for the hash', async () => {
    const { backend, storage } = setup()
    const w1 = storage.writeBlock(0, 0, new Uint8Array(BLOCK_SIZE))
    const w2 = storage.writeBlock(0, BLOCK_SIZE, new Uint8Array(BLOCK_SIZE))
    const hash = storage.hashPiece(0, { v1: true, v2: false })
    const w3 = storage.writeBlock(0, 0, new Uint8Array(10))
    await settle()
    assert.equal(backend.started('write').length, 2, 'both earlier writes run at once')
    assert.equal(backend.started('hash').length, 0, 'hash waits')
    backend.started('write')[0]?.done.resolve(undefined)
    await settle()
    assert.equal(backend.started('hash').length, 0, 'hash still waits for the second write')
    backend.started('write')[1]?.done.resolve(undefined)
    await settle()
    assert.equal(backend.started('hash').length, 1)
    assert.equal(backend.started('write').length, 2, 'the later write waits for the hash')
    backend.started('hash')[0]?.done.resolve(undefined)
    await settle()
    assert.equal(backend.started('write').length, 3)
    backend.started('write')[2]?.done.resolve(undefined)
    await Promise.all([w1, w2, hash, w3])
  })

  test('other pieces are not blocked by a piece’s exclusive operation', async () => {
    const { backend, storage } = setup()
    const hash = storage.hashPiece(0, { v1: true, v2: false })
    const write = storage.writeBlock(1, 0, new Uint8Array(10))
    await settle()
    assert.equal(backend.started('hash').length, 1)
    assert.equal(backend.started('write').length, 1)
    for (const c of backend.calls) c.done.resolve(undefined)
    await Promise.all([hash, write])
  })

  test('discard is a fence for in-flight reads and writes of the piece', async () => {
    const { backend, storage } = setup()
    const read = storage.readBlock(2, 0, 100)
    const write = storage.writeBlock(2, 0, new Uint8Array(100))
    const discard = storage.discardPiece(2)
    const commit = storage.commitPiece(2)
    await settle()
    assert.equal(backend.started('discard').length, 0)
    for (const c of backend.calls) c.done.resolve(undefined)
    await settle()
    assert.equal(backend.started('discard').length, 1)
    assert.equal(backend.started('commit').length, 0, 'commit after discard waits for it')
    backend.started('discard')[0]?.done.resolve(undefined)
    await settle()
    backend.started('commit')[0]?.done.resolve(undefined)
    await Promise.all([read, write, discard, commit])
  })

  test('close waits for in-flight work, closes the backend once, then rejects calls', async () => {
    const { backend, storage } = setup()
    const write = storage.writeBlock(0, 0, new Uint8Array(10))
    const closing = storage.close()
    await settle()
    assert.equal(backend.closed, 0, 'backend close waits for the write')
    await assert.rejects(storage.readBlock(0, 0, 1), { code: 'GW_ERR_STORAGE_CLOSED' })
    backend.started('write')[0]?.done.resolve(undefined)
    await Promise.all([write, closing, storage.close()])
    assert.equal(backend.closed, 1)
    assert.equal(storage.closed, true)
  })

  test('an abort while queued rejects at once and the backend never sees the call', async () => {
    const { backend, storage } = setup()
    const write = storage.writeBlock(0, 0, new Uint8Array(10))
    const controller = new AbortController()
    const hash = storage.hashPiece(0, { v1: true, v2: false }, { signal: controller.signal })
    controller.abort()
    await assert.rejects(hash, { name: 'AbortError' })
    backend.started('write')[0]?.done.resolve(undefined)
    await write
    await settle()
    assert.equal(backend.started('hash').length, 0)
  })
})

describe('StorageFacade padding', () => {
  const padded = LAYOUTS.v1PadFiles as TorrentInfo

  test('reads of pure padding return zeros without calling the backend', async () => {
    const backend = new ScriptedBackend()
    const storage = new StorageFacade(backend, padded)
    // v1PadFiles piece 0: a [0,10000) pad [10000,16384) b [16384,46384) pad [46384,65536)
    assert.deepEqual(await storage.readBlock(0, 10_000, 6_384), new Uint8Array(6_384))
    assert.deepEqual(await storage.readBlock(0, 49_152, BLOCK_SIZE), new Uint8Array(BLOCK_SIZE))
    assert.equal(backend.calls.length, 0)
  })

  test('mixed ranges are split around padding and zero-filled', async () => {
    const backend = new ScriptedBackend()
    const storage = new StorageFacade(backend, padded)
    const read = storage.readBlock(0, 9_000, 8_384) // 1000 bytes of a, pad, 1000 bytes of b
    await settle()
    assert.deepEqual(
      backend.calls.map((c) => [c.op, c.offset, c.length]),
      [['read', 9_000, 1_000]],
    )
    backend.calls[0]?.done.resolve(undefined)
    await settle()
    assert.deepEqual(
      backend.calls.map((c) => [c.op, c.offset, c.length]),
      [
        ['read', 9_000, 1_000],
        ['read', 16_384, 1_000],
      ],
    )
    backend.calls[1]?.done.resolve(undefined)
    const data = await read
    assert.deepEqual(data.subarray(0, 1_000), new Uint8Array(1_000).fill(7))
    assert.deepEqual(data.subarray(1_000, 7_384), new Uint8Array(6_384))
    assert.deepEqual(data.subarray(7_384), new Uint8Array(1_000).fill(7))
  })

  test('writes drop padding bytes; pad-only writes never reach the backend', async () => {
    const backend = new ScriptedBackend()
    const storage = new StorageFacade(backend, padded)
    await storage.writeBlock(0, 49_152, new Uint8Array(BLOCK_SIZE).fill(1))
    assert.equal(backend.calls.length, 0)
    const write = storage.writeBlock(0, 0, new Uint8Array(BLOCK_SIZE).fill(1))
    await settle()
    assert.deepEqual(
      backend.calls.map((c) => [c.op, c.offset, c.length]),
      [['write', 0, 10_000]],
    )
    backend.calls[0]?.done.resolve(undefined)
    await write
  })
})

describe('StorageFacade errors and contract checks', () => {
  test('backend failures become StorageError IO with operation, piece and cause', async () => {
    const { backend, storage } = setup()
    const write = storage.writeBlock(1, 0, new Uint8Array(10))
    await settle()
    const cause = new Error('EIO')
    backend.calls[0]?.done.reject(cause)
    await assert.rejects(write, (e: unknown) => {
      assert.ok(e instanceof StorageError)
      assert.equal(e.code, 'GW_ERR_STORAGE_IO')
      assert.equal(e.operation, 'write')
      assert.equal(e.piece, 1)
      assert.equal(e.cause, cause)
      return true
    })
  })

  test('short reads, malformed hashes and bad completion bitfields are reported, not passed on', async () => {
    const { backend, storage } = setup()
    const read = storage.readBlock(0, 0, 100)
    await settle()
    backend.calls[0]?.done.resolve(new Uint8Array(99))
    await assert.rejects(read, { code: 'GW_ERR_STORAGE_IO', operation: 'read' })

    backend.hashResult = () => ({ sha1: new Uint8Array(19) })
    const hash = storage.hashPiece(0, { v1: true, v2: false })
    await settle()
    backend.started('hash')[0]?.done.resolve(undefined)
    await assert.rejects(hash, { code: 'GW_ERR_STORAGE_IO', operation: 'hash' })

    const hybrid = new ScriptedBackend()
    const hybridStorage = new StorageFacade(hybrid, LAYOUTS.hybrid as TorrentInfo)
    hybrid.hashResult = () => ({ v2Leaves: [new Uint8Array(32)] }) // piece 0 has two 16 KiB blocks of file a
    const leaves = hybridStorage.hashPiece(0, { v1: false, v2: true })
    await settle()
    hybrid.started('hash')[0]?.done.resolve(undefined)
    await assert.rejects(leaves, { code: 'GW_ERR_STORAGE_IO' })

    const completion = storage.completion()
    await settle()
    backend.started('completion')[0]?.done.resolve({ known: true, have: new Uint8Array([0xff]) })
    await assert.rejects(completion, { code: 'GW_ERR_STORAGE_IO' })
  })

  test('recheck: unsupported without the capability; busy for other calls while running', async () => {
    const { storage } = setup()
    assert.equal(storage.canRecheck, false)
    await assert.rejects(
      storage.recheck(() => true),
      { code: 'GW_ERR_STORAGE_UNSUPPORTED' },
    )

    const gate = Promise.withResolvers<void>()
    const backend = Object.assign(new ScriptedBackend(), {
      async recheck(): Promise<{ known: true; have: Uint8Array }> {
        await gate.promise
        return { known: true, have: new Uint8Array([0b1010_0000]) }
      },
    }) satisfies RecheckableStorage
    const facade = new StorageFacade(backend, info)
    assert.equal(facade.canRecheck, true)
    const running = facade.recheck(() => true)
    await assert.rejects(facade.readBlock(0, 0, 1), { code: 'GW_ERR_STORAGE_BUSY' })
    gate.resolve()
    assert.deepEqual([...(await running).setIndices()], [0, 2])
  })
})
