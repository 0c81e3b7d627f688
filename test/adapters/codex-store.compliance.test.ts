/**
 * The PieceStore compliance suite against `CodexPieceStore`, on a local Codex node over real
 * HTTP (one node for the file, a fresh catalog and staging directory per test; `reopen` builds a
 * new store over the same catalog and staging, as after a restart).
 */

import { after, before } from 'node:test'
import { runPieceStoreCompliance } from '../compliance/piece-store.ts'
import { type CodexNodeEnv, makeStore, startCodex } from './codex-env.ts'

let codex: CodexNodeEnv | undefined

before(async () => {
  codex = await startCodex()
})

after(async () => {
  await codex?.close()
})

runPieceStoreCompliance('codex', async () => {
  if (codex === undefined) throw new Error('codex node not started')
  const env = await makeStore(codex)
  return {
    store: env.store,
    reopen: async () => env.reopen(),
    teardown: () => env.close(),
  }
})
