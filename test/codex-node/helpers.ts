/** Shared set-up for the local Codex node tests: a node on 127.0.0.1 in a fresh temp directory. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type LocalCodexNode,
  type LocalCodexNodeInit,
  startLocalCodexNode,
} from '../../codex-client/local-node/index.ts'
import { xorshiftBytes } from '../helpers/prng.ts'

export const SOME_FILE = new TextEncoder().encode('some file contents')
export const SOME_FILE_MANIFEST = 'zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'
export const SOME_FILE_TREE = 'zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL'

export interface TestNode {
  readonly node: LocalCodexNode
  readonly api: string
  readonly dir: string
  /** Closes the node and removes its directory. */
  stop(): Promise<void>
}

export async function makeDataDir(prefix = 'codex-node-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix))
}

export async function startTestNode(init: Partial<LocalCodexNodeInit> = {}): Promise<TestNode> {
  const dir = init.dataDir ?? (await makeDataDir())
  const node = await startLocalCodexNode({ ...init, dataDir: dir, host: '127.0.0.1', port: 0 })
  return {
    node,
    api: node.apiUrl,
    dir,
    async stop() {
      await node.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** Deterministic pseudo-random bytes (xorshift), so datasets differ without storing fixtures. */
export function pseudoRandomBytes(length: number, seed = 1): Uint8Array {
  return xorshiftBytes(length, seed)
}

export async function upload(
  api: string,
  body: Uint8Array,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${api}/data`, { method: 'POST', body, headers })
}

/** Uploads and returns the manifest CID text, failing on a non-200 answer. */
export async function uploadOk(
  api: string,
  body: Uint8Array,
  headers: Record<string, string> = {},
): Promise<string> {
  const res = await upload(api, body, headers)
  const text = await res.text()
  if (res.status !== 200) throw new Error(`upload answered ${res.status}: ${text}`)
  return text
}

export async function space(api: string): Promise<{
  totalBlocks: number
  quotaMaxBytes: number
  quotaUsedBytes: number
  quotaReservedBytes: number
}> {
  const res = await fetch(`${api}/space`)
  return (await res.json()) as never
}
