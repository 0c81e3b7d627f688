/**
 * A small read-through cache for reading byte ranges of files already stored in Codex.
 *
 * Codex master has no HTTP Range support (NOTES.md §1.4): `CodexClient.downloadRange` streams
 * the dataset from its start and skips to the offset, so reading near the end of a large file
 * costs the whole prefix. To keep block-sized reads (16 KiB) affordable, a read fetches the
 * aligned window around it (`windowBytes`) once and keeps the last `maxWindows` windows in memory
 * (LRU). Memory is bounded by `windowBytes * maxWindows`. Concurrent reads of one window share
 * one download. This is deliberately simple; the seed-side cache replaces it for serving peers.
 */

import type { CodexClient } from '../../codex-client/index.ts'
import { raceAbort } from '../../gateway/engine/abort.ts'

/** Options of `CodexReadCache`. */
export interface CodexReadCacheInit {
  readonly client: CodexClient
  /** @default 1 MiB */
  readonly windowBytes?: number
  /** @default 8 */
  readonly maxWindows?: number
  /** Aborts every download (store close). */
  readonly signal?: AbortSignal
}

/** LRU of downloaded windows of Codex datasets. */
export class CodexReadCache {
  readonly #client: CodexClient
  readonly #windowBytes: number
  readonly #maxWindows: number
  readonly #signal: AbortSignal | undefined
  readonly #windows = new Map<string, Uint8Array>()
  readonly #pending = new Map<string, Promise<Uint8Array>>()

  constructor(init: CodexReadCacheInit) {
    this.#client = init.client
    this.#windowBytes = init.windowBytes ?? 1024 * 1024
    this.#maxWindows = init.maxWindows ?? 8
    this.#signal = init.signal
    if (!Number.isSafeInteger(this.#windowBytes) || this.#windowBytes <= 0)
      throw new RangeError('windowBytes must be > 0')
    if (!Number.isSafeInteger(this.#maxWindows) || this.#maxWindows < 1)
      throw new RangeError('maxWindows must be >= 1')
  }

  /** Reads `length` bytes at `offset` of the dataset `cid` (`datasetBytes` long) into `out`. */
  async read(
    cid: string,
    datasetBytes: number,
    offset: number,
    length: number,
    out: Uint8Array,
    outOffset: number,
    signal?: AbortSignal,
  ): Promise<void> {
    let done = 0
    // Bounded: each round copies the part inside one window.
    while (done < length) {
      signal?.throwIfAborted()
      const at = offset + done
      const w = Math.floor(at / this.#windowBytes)
      const window = await raceAbort(this.#window(cid, datasetBytes, w), signal)
      const inWindow = at - w * this.#windowBytes
      const take = Math.min(length - done, window.byteLength - inWindow)
      if (take <= 0) throw new RangeError(`read past the end of dataset ${cid}`)
      out.set(window.subarray(inWindow, inWindow + take), outOffset + done)
      done += take
    }
  }

  /** Drops the cached windows of one dataset. */
  forget(cid: string): void {
    for (const key of [...this.#windows.keys()]) if (key.startsWith(`${cid}#`)) this.#windows.delete(key)
  }

  clear(): void {
    this.#windows.clear()
  }

  #window(cid: string, datasetBytes: number, w: number): Promise<Uint8Array> {
    const key = `${cid}#${w}`
    const hit = this.#windows.get(key)
    if (hit !== undefined) {
      this.#windows.delete(key)
      this.#windows.set(key, hit)
      return Promise.resolve(hit)
    }
    let pending = this.#pending.get(key)
    if (pending === undefined) {
      const start = w * this.#windowBytes
      const length = Math.min(this.#windowBytes, datasetBytes - start)
      pending = this.#fetch(cid, start, length).then(
        (bytes) => {
          this.#pending.delete(key)
          this.#windows.set(key, bytes)
          while (this.#windows.size > this.#maxWindows) {
            const oldest = this.#windows.keys().next().value
            if (oldest === undefined) break
            this.#windows.delete(oldest)
          }
          return bytes
        },
        (error: unknown) => {
          this.#pending.delete(key)
          throw error
        },
      )
      this.#pending.set(key, pending)
    }
    return pending
  }

  async #fetch(cid: string, start: number, length: number): Promise<Uint8Array> {
    if (length <= 0) throw new RangeError(`window at ${start} is outside dataset ${cid}`)
    const options = this.#signal ? { signal: this.#signal } : {}
    const download = await this.#client.downloadRange(cid, start, length, options)
    const out = new Uint8Array(length)
    let got = 0
    try {
      for await (const chunk of download.body as AsyncIterable<Uint8Array>) {
        if (got + chunk.byteLength > length) throw new RangeError(`dataset ${cid} sent too many bytes`)
        out.set(chunk, got)
        got += chunk.byteLength
      }
    } finally {
      download.body.destroy()
    }
    if (got !== length) throw new RangeError(`dataset ${cid}: got ${got} of ${length} bytes at ${start}`)
    return out
  }
}
