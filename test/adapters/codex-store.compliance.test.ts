/**
 * The PieceStore compliance suite against `CodexPieceStore`, on a local Codex node over real
 * HTTP (one node for the file, a fresh catalog and staging directory per test; `reopen` builds a
 * new store over the same catalog and staging, as after a restart).
 */

import { runPieceStoreCompliance } from '../compliance/piece-store.ts'
import { codexForFile, makeStore } from './codex-env.ts'

const codex = codexForFile()

runPieceStoreCompliance('codex', async () => {
  const env = await makeStore(codex)
  return {
    store: env.store,
    reopen: async () => env.reopen(),
    teardown: () => env.close(),
  }
})
