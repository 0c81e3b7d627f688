/**
 * Shared plumbing of the interop tests (test/engine/interop-*.test.ts): bounded polling, a
 * loopback `Session`, torrents made by libtorrent from deterministic payloads, and reading a
 * finished torrent back out of its storage to compare file hashes.
 *
 * Set CODEX_BT_TEST_LOG=1 to print the engine's log records to stderr while debugging.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { EngineLogger } from '../../gateway/engine/logger.ts'
import { silentLogger } from '../../gateway/engine/logger.ts'
import { Session, type SessionInit } from '../../gateway/engine/session.ts'
import type { Torrent } from '../../gateway/engine/torrent/torrent.ts'
import { parseTorrent } from '../../gateway/protocol/metainfo.ts'
import type { Metainfo } from '../../gateway/protocol/types.ts'
import type { LtSession } from './libtorrent.ts'
import { type PayloadSpec, type WrittenPayload, writePayload } from './payload.ts'

export const HOST = '127.0.0.1'

/** Polls `pred` every `intervalMs` until it holds; throws after `timeoutMs`. */
export async function waitUntil(
  pred: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/** A logger printing to stderr when CODEX_BT_TEST_LOG is set, else silent. */
export function testLogger(tag: string): EngineLogger {
  if (!process.env.CODEX_BT_TEST_LOG) return silentLogger
  const make = (bindings: Record<string, unknown>): EngineLogger => {
    const out =
      (level: string) =>
      (obj: object, msg?: string): void => {
        process.stderr.write(`[${tag}] ${level} ${msg ?? ''} ${JSON.stringify({ ...bindings, ...obj })}\n`)
      }
    return {
      trace: () => {},
      debug: out('debug'),
      info: out('info'),
      warn: out('warn'),
      error: out('error'),
      child: (b) => make({ ...bindings, ...b }),
    }
  }
  return make({})
}

/** A started session listening on 127.0.0.1 (ephemeral port unless `init.listen` says otherwise). */
export async function startSession(tag: string, init: SessionInit = {}): Promise<Session> {
  const session = new Session({ listen: { host: HOST, port: 0 }, logger: testLogger(tag), ...init })
  await session.start()
  return session
}

export interface LtMadeTorrent {
  readonly payload: WrittenPayload
  readonly torrentPath: string
  readonly bytes: Uint8Array
  readonly metainfo: Metainfo
}

/**
 * Writes `spec` below `<dir>/src`, has libtorrent create a `version` torrent of it at
 * `<dir>/<name>.torrent` (no trackers unless given).
 */
export async function makeLtTorrent(
  lt: LtSession,
  dir: string,
  spec: PayloadSpec,
  version: 'v1' | 'v2' | 'hybrid',
  pieceLength: number,
  trackers: string[] = [],
): Promise<LtMadeTorrent> {
  const payload = await writePayload(join(dir, 'src'), spec)
  const torrentPath = join(dir, `${spec.name}.${version}.torrent`)
  await lt.createTorrent({ path: payload.path, out: torrentPath, version, pieceLength, trackers })
  const bytes = new Uint8Array(await readFile(torrentPath))
  return { payload, torrentPath, bytes, metainfo: parseTorrent(bytes) }
}

/** Adds a torrent to libtorrent as a seeder of `payload.root` and waits until it seeds. */
export async function ltSeed(
  lt: LtSession,
  made: LtMadeTorrent,
  opts: { uploadLimit?: number; timeoutMs?: number } = {},
): Promise<number> {
  const h = await lt.add({
    torrent: made.torrentPath,
    savePath: made.payload.root,
    seedMode: true,
    ...(opts.uploadLimit ? { uploadLimit: opts.uploadLimit } : {}),
  })
  await lt.waitFor(h, (s) => s.is_seeding, { timeoutMs: opts.timeoutMs ?? 30_000 })
  return h
}

/**
 * SHA-256 of every non-padding file of a finished torrent, read back through its storage facade
 * (16 KiB blocks), keyed like `WrittenPayload.hashes` (`name` for a single file, `name/path…`).
 */
export async function hashFromStorage(t: Torrent): Promise<Map<string, string>> {
  const info = t.info
  const storage = t.storage
  if (!info || !storage) throw new Error('torrent has no metadata or storage')
  const stored = info.files.filter((f) => !f.padding)
  const single = stored.length === 1 && stored[0]!.path.length === 1 && stored[0]!.path[0] === info.name
  const out = new Map<string, string>()
  for (const f of info.files) {
    if (f.padding) continue
    const hash = createHash('sha256')
    for (let at = f.offset; at < f.offset + f.length; ) {
      const piece = Math.floor(at / info.pieceLength)
      const off = at - piece * info.pieceLength
      const len = Math.min(16 * 1024, info.pieceLength - off, f.offset + f.length - at)
      hash.update(await storage.readBlock(piece, off, len))
      at += len
    }
    out.set(single ? info.name : [info.name, ...f.path].join('/'), hash.digest('hex'))
  }
  return out
}

/** Waits for `t` to complete, with a deadline. */
export async function complete(t: Torrent, timeoutMs: number): Promise<void> {
  try {
    await t.whenComplete({ signal: AbortSignal.timeout(timeoutMs) })
  } catch (e) {
    // Say where it stalled: the torrent's state and every peer's view (CI logs are all we get).
    const peers = [...t.peers.values()].map((p) => ({
      peer: p.key,
      peerChoking: p.peerChoking,
      amInterested: p.amInterested,
      have: p.have === 'all' ? 'all' : p.have?.count,
      outstanding: p.outstanding.size,
      fast: p.info.fast,
      v2: p.info.v2,
    }))
    throw new Error(
      `torrent ${t.id} not complete within ${timeoutMs} ms: ${JSON.stringify(t.status())} peers ${JSON.stringify(peers)} known ${JSON.stringify(t.knownPeers())}`,
      { cause: e },
    )
  }
}
