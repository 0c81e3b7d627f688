/**
 * Shared fixtures of the seed-path tests (`seed-*.test.ts`, `create-from-codex.test.ts`): a local
 * Codex node with a client, deterministic bytes, a tiny HTTP server that serves one dataset with
 * `Range`/206 (emulating the unmerged Codex range PR #1218, NOTES.md §1.4), and a proxy in front of
 * the local node that can corrupt download bodies. Everything binds 127.0.0.1 only.
 */

import { createCipheriv, createHash } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { formatCid, manifestCidFromBytes } from '../../codex-client/cid.ts'
import { CodexClient } from '../../codex-client/client.ts'
import { type LocalCodexNode, startLocalCodexNode } from '../../codex-client/local-node/index.ts'
import { type TempDir, tempDir } from '../helpers/payload.ts'

/** Deterministic pseudo-random bytes (AES-CTR keystream of `seed`). */
export function bytesOf(seed: string, length: number): Uint8Array {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  const cipher = createCipheriv('aes-128-ctr', key, new Uint8Array(16))
  return new Uint8Array(cipher.update(new Uint8Array(length)))
}

export interface NodeEnv {
  readonly node: LocalCodexNode
  readonly client: CodexClient
  readonly dir: TempDir
  /** Uploads bytes and returns the manifest CID in Codex's text form. */
  upload(data: Uint8Array, filename?: string): Promise<string>
  /** GET requests of dataset downloads seen by the node. */
  downloads(): number
  close(): Promise<void>
}

/** A local Codex node on 127.0.0.1 (ephemeral port) plus a client with quick retries. */
export async function startNodeEnv(
  clientInit: { timeoutMs?: number; idleTimeoutMs?: number } = {},
): Promise<NodeEnv> {
  const dir = await tempDir('seed-node-')
  const node = await startLocalCodexNode({ dataDir: join(dir.path, 'node'), port: 0 })
  const client = new CodexClient({
    url: node.url,
    retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
    ...clientInit,
  })
  return {
    node,
    client,
    dir,
    async upload(data, filename) {
      return formatCid(await client.upload(data, filename === undefined ? {} : { filename }))
    },
    downloads: () => node.faults.requestCount({ method: 'GET', route: '/data/:cid' }),
    async close() {
      await client.destroy()
      await node.close()
      await dir.cleanup()
    },
  }
}

/** Total bytes of the regular files in `dir` (not recursive). */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) {
    try {
      const s = await stat(join(dir, name))
      if (s.isFile()) total += s.size
    } catch {
      // removed meanwhile
    }
  }
  return total
}

export interface RangeServer {
  readonly url: string
  readonly cid: string
  /** Requests with and without a `Range` header. */
  readonly counts: { ranged: number; full: number }
  close(): Promise<void>
}

/**
 * Serves ONE dataset under `GET /api/codex/v1/data/<cid>` like a Codex node with the range PR:
 * `Accept-Ranges: bytes`, single `bytes=a-b` ranges answered 206 with `Content-Range`.
 */
export async function startRangeServer(data: Uint8Array): Promise<RangeServer> {
  const cid = formatCid(manifestCidFromBytes(bytesOf(`manifest-${data.byteLength}`, 64)))
  const counts = { ranged: 0, full: 0 }
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (req.method !== 'GET' || path !== `/api/codex/v1/data/${cid}`) {
      res.writeHead(404, { 'content-type': 'text/html' }).end('not found')
      return
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '')
    const headers = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' }
    if (range === null) {
      counts.full++
      res.writeHead(200, { ...headers, 'content-length': String(data.byteLength) })
      res.end(data)
      return
    }
    counts.ranged++
    const start = Number(range[1])
    const end = Math.min(range[2] === '' ? data.byteLength - 1 : Number(range[2]), data.byteLength - 1)
    if (start >= data.byteLength) {
      res.writeHead(416, { 'content-range': `bytes */${data.byteLength}` }).end()
      return
    }
    res.writeHead(206, {
      ...headers,
      'content-length': String(end - start + 1),
      'content-range': `bytes ${start}-${end}/${data.byteLength}`,
    })
    res.end(data.subarray(start, end + 1))
  })
  const url = await listen(server)
  return { url, cid, counts, close: () => closeServer(server) }
}

export interface CorruptingProxy {
  readonly url: string
  /** The next `n` dataset downloads get bytes flipped (one every 64 KiB). */
  corruptNext(n: number): void
  /** Every dataset download of `cid` is corrupted until cleared (undefined). */
  corruptAlways(cid: string | undefined): void
  readonly corrupted: { count: number }
  close(): Promise<void>
}

/** A byte-flipping HTTP proxy in front of `target` (origin URL of a Codex node). */
export async function startCorruptingProxy(target: string): Promise<CorruptingProxy> {
  const origin = new URL(target)
  let next = 0
  let always: string | undefined
  const corrupted = { count: 0 }
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? ''
    const isDownload = req.method === 'GET' && /^\/api\/codex\/v1\/data\/[^/]+$/.test(path)
    const flip = isDownload && (next > 0 || (always !== undefined && path.endsWith(`/${always}`)))
    if (flip) {
      if (next > 0) next--
      corrupted.count++
    }
    const upstream = httpRequest(
      {
        host: origin.hostname,
        port: origin.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: origin.host },
      },
      (up: IncomingMessage) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        let seen = 0
        up.on('data', (chunk: Buffer) => {
          if (flip) {
            const copy = Buffer.from(chunk)
            for (let i = 0; i < copy.length; i++)
              if ((seen + i) % 65_536 === 100) copy[i] = (copy[i] ?? 0) ^ 0xff
            seen += chunk.length
            if (!res.write(copy)) up.pause()
          } else if (!res.write(chunk)) up.pause()
        })
        res.on('drain', () => up.resume())
        up.on('end', () => res.end())
        up.on('error', () => res.destroy())
      },
    )
    upstream.on('error', () => res.destroy())
    res.on('close', () => upstream.destroy())
    req.pipe(upstream)
  })
  const url = await listen(server)
  return {
    url,
    corrupted,
    corruptNext: (n) => {
      next = n
    },
    corruptAlways: (cid) => {
      always = cid
    },
    close: () => closeServer(server),
  }
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return `http://127.0.0.1:${port}`
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

/** A small deterministic PRNG (mulberry32) for reproducible random offsets. */
export { mulberry32 as prng } from '../helpers/prng.ts'
