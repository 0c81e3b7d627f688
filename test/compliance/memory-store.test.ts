/**
 * Runs the PieceStore compliance suite against the in-memory reference backend, plus its own
 * staging backpressure (needsDrain above the high water mark of uncommitted bytes).
 */

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import { StorageFacade } from '../../gateway/engine/storage-facade.ts'
import { BLOCK_SIZE } from '../../gateway/protocol/types.ts'
import { LAYOUTS, linearData, pieceSize } from '../helpers/layouts.ts'
import { runPieceStoreCompliance } from './piece-store.ts'

runPieceStoreCompliance('memory', async () => {
  const store = new MemoryPieceStore()
  return { store, teardown: async () => {}, reopen: async () => store }
})

describe('MemoryPieceStore staging backpressure', () => {
  const info = LAYOUTS.v1MultiFile
  if (info === undefined) throw new Error('layout missing')

  test('needsDrain above the high water mark until commits bring it below the low water mark', async () => {
    const pieceLength = info.pieceLength
    const store = new MemoryPieceStore({
      stagingHighWaterBytes: 2 * pieceLength,
      stagingLowWaterBytes: pieceLength,
    })
    const storage = await StorageFacade.open(store, info)
    const linear = linearData(info)
    const write = (piece: number) =>
      storage.writeBlock(piece, 0, linear.slice(piece * pieceLength, piece * pieceLength + BLOCK_SIZE))
    await write(0)
    assert.equal(storage.needsDrain, false)
    await write(1)
    assert.equal(storage.needsDrain, true, 'two staged pieces reach the high water mark')
    let drained = false
    const waiting = storage.onDrain().then(() => {
      drained = true
    })
    await storage.commitPiece(0)
    await Promise.resolve()
    assert.equal(drained, false, 'one staged piece is not below the low water mark')
    await storage.discardPiece(1)
    await waiting
    assert.equal(storage.needsDrain, false)
    assert.ok(pieceSize(info, 0) > 0)
    await storage.close()
  })

  test('an aborted onDrain rejects and close rejects pending waiters', async () => {
    const store = new MemoryPieceStore({ stagingHighWaterBytes: 1 })
    const storage = await StorageFacade.open(store, info)
    await storage.writeBlock(0, 0, new Uint8Array(100).fill(1))
    assert.equal(storage.needsDrain, true)
    const controller = new AbortController()
    const aborted = storage.onDrain({ signal: controller.signal })
    controller.abort()
    await assert.rejects(aborted, { name: 'AbortError' })
    const pending = storage.onDrain()
    const closing = storage.close()
    await assert.rejects(pending, { code: 'GW_ERR_STORAGE_CLOSED' })
    await closing
  })
})
