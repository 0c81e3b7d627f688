/**
 * Worker side of `HashPool` (`./hash-pool.ts`): computes the v1 SHA-1 and the v2 leaf hashes of
 * piece data posted by the main thread, so hashing never blocks the engine's event loop.
 *
 * Protocol (see `HashPool` for the main side; messages of one job arrive in order):
 * - `hash`: feed `parts` in order. A number is that many zero bytes (v1 padding, BEP47; never
 *   hashed for v2). A `Uint8Array` (SharedArrayBuffer-backed, shared not copied) is file data:
 *   SHA-1 over it, and one SHA-256 leaf per 16 KiB block relative to the part's start (the last
 *   block of a part may be short: a file's last block, BEP52). `staging` lists staging buffers the
 *   main thread may reuse once this message is processed; `end` finishes the job.
 * - `cancel`: forget the job (the main side sends nothing for it afterwards).
 * Replies: `released` (staging ids), `done` (digests, buffers transferred) or `failed`.
 *
 * Pure computation: no I/O, no timers.
 */
import { createHash, type Hash, hash } from 'node:crypto'
import { parentPort } from 'node:worker_threads'
import type { FromWorker, ToWorker } from './hash-pool.ts'

const BLOCK = 16 * 1024
const LEAF = 32
const ZEROS = new Uint8Array(64 * 1024)

interface JobState {
  readonly sha1: Hash | undefined
  /** Leaf digests so far, `LEAF` bytes each, packed. */
  leaves: Uint8Array | undefined
  leafCount: number
}

const jobs = new Map<number, JobState>()
/** Jobs that failed here: their remaining messages only release staging buffers (until `cancel`). */
const failed = new Set<number>()

function stateOf(msg: ToWorker & { kind: 'hash' }): JobState {
  let state = jobs.get(msg.job)
  if (state === undefined) {
    state = {
      sha1: msg.v1 ? createHash('sha1') : undefined,
      leaves: msg.v2 ? new Uint8Array(64 * LEAF) : undefined,
      leafCount: 0,
    }
    jobs.set(msg.job, state)
  }
  return state
}

function addLeaf(state: JobState, data: Uint8Array): void {
  let leaves = state.leaves
  if (leaves === undefined) return
  if ((state.leafCount + 1) * LEAF > leaves.byteLength) {
    const grown = new Uint8Array(leaves.byteLength * 2)
    grown.set(leaves)
    leaves = grown
    state.leaves = grown
  }
  leaves.set(hash('sha256', data, 'buffer'), state.leafCount * LEAF)
  state.leafCount++
}

function feed(state: JobState, parts: readonly (Uint8Array | number)[]): void {
  for (const part of parts) {
    if (typeof part === 'number') {
      const sha1 = state.sha1
      if (sha1 === undefined) continue
      for (let left = part; left > 0; left -= ZEROS.byteLength) {
        sha1.update(left >= ZEROS.byteLength ? ZEROS : ZEROS.subarray(0, left))
      }
      continue
    }
    state.sha1?.update(part)
    if (state.leaves !== undefined) {
      for (let b = 0; b < part.byteLength; b += BLOCK) {
        addLeaf(state, part.subarray(b, Math.min(b + BLOCK, part.byteLength)))
      }
    }
  }
}

function finish(job: number, state: JobState, staging: readonly number[]): void {
  jobs.delete(job)
  const transfer: ArrayBuffer[] = []
  const reply: FromWorker & { kind: 'done' } = { kind: 'done', job, staging }
  if (state.sha1 !== undefined) {
    const d = state.sha1.digest()
    const sha1 = new Uint8Array(d.byteLength)
    sha1.set(d)
    reply.sha1 = sha1
    transfer.push(sha1.buffer)
  }
  if (state.leaves !== undefined) {
    const leaves = state.leaves.slice(0, state.leafCount * LEAF)
    reply.leaves = leaves
    transfer.push(leaves.buffer)
  }
  parentPort?.postMessage(reply, transfer)
}

function onMessage(msg: ToWorker): void {
  if (msg.kind === 'cancel') {
    jobs.delete(msg.job)
    failed.delete(msg.job)
    return
  }
  if (failed.has(msg.job)) {
    if (msg.end) failed.delete(msg.job)
    if (msg.staging.length > 0) parentPort?.postMessage({ kind: 'released', staging: msg.staging })
    return
  }
  // The main side sends nothing for a job after cancelling it, so an unknown id is a new job.
  try {
    const state = stateOf(msg)
    feed(state, msg.parts)
    if (msg.end) finish(msg.job, state, msg.staging)
    else if (msg.staging.length > 0) parentPort?.postMessage({ kind: 'released', staging: msg.staging })
  } catch (error) {
    jobs.delete(msg.job)
    if (!msg.end) failed.add(msg.job)
    const message = error instanceof Error ? error.message : String(error)
    parentPort?.postMessage({ kind: 'failed', job: msg.job, message, staging: msg.staging })
  }
}

parentPort?.on('message', onMessage)
