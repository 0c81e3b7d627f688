/**
 * `codex-bt fetch`: download one torrent (a .torrent file or a magnet link) to a directory with
 * the engine and plain files (`FsPieceStore`), then exit.
 *
 *   codex-bt fetch <file.torrent | magnet-uri> --to <dir> [--peer host:port]… [--tracker URL]…
 *                  [--dht-bootstrap host:port]… [--no-dht] [--listen host:port] [--timeout S]
 *
 * Peers come from `--peer`, the torrent's (or magnet's) trackers and `x.pe` peers, `--tracker`,
 * PEX, and the DHT, which runs only when `--dht-bootstrap` is given and bootstraps from exactly
 * that list (never from public routers implicitly). Progress (percent, rates, peers) goes to
 * stderr; when every piece is verified the path of the download is printed on stdout and the exit
 * code is 0. SIGINT/SIGTERM stop the session cleanly (exit 130/143; data verified so far is kept
 * and resumes next time); `--timeout` gives up after S seconds (exit 1); bad usage exits 2.
 *
 * The helpers exported here are shared with `share.ts`.
 */
import { readFile, stat } from 'node:fs/promises'
import { isIPv4 } from 'node:net'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { FsPieceStore } from '../../../adapters/fs-store.ts'
import { DhtNode, parseHostPort } from '../../engine/discovery/dht.ts'
import type { PeerAddress } from '../../engine/discovery/peer-source.ts'
import type { EngineLogger } from '../../engine/logger.ts'
import { Session } from '../../engine/session.ts'
import type { Torrent } from '../../engine/torrent/torrent.ts'
import { ProtocolError } from '../../protocol/errors.ts'
import { parseMagnet } from '../../protocol/magnet.ts'
import { DEFAULT_MAX_TORRENT_BYTES, parseTorrent } from '../../protocol/metainfo.ts'
import type { Metainfo } from '../../protocol/types.ts'
import type { CliIO } from '../command.ts'
import { UsageError } from '../command.ts'

export const summary = 'download a torrent (.torrent or magnet) to a directory, then exit'

const USAGE = `usage:
  codex-bt fetch <file.torrent | magnet-uri> --to <dir> [--peer host:port]... [--tracker URL]...
                 [--dht-bootstrap host:port]... [--no-dht] [--listen host:port] [--timeout SECONDS]`

/** Default peer listener: every interface, a free port. */
export const DEFAULT_LISTEN = '0.0.0.0:0'

/** Options both `fetch` and `share` take. */
export const SWARM_OPTIONS = {
  peer: { type: 'string', multiple: true },
  tracker: { type: 'string', multiple: true },
  'dht-bootstrap': { type: 'string', multiple: true },
  'no-dht': { type: 'boolean', default: false },
  listen: { type: 'string' },
  verbose: { type: 'boolean', short: 'v', default: false },
  help: { type: 'boolean', short: 'h' },
} as const

export interface SwarmArgs {
  readonly peers: PeerAddress[]
  readonly trackers: string[]
  readonly dhtBootstrap: string[]
  readonly noDht: boolean
  readonly listen: { host: string; port: number }
  readonly verbose: boolean
}

/** Parses `host:port` (IPv4, name, or `[IPv6]:port`; port 0 allowed) or throws a usage error. */
export function hostPort(text: string, option: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim())
  const host = m?.[1] ?? m?.[2]
  const port = Number(m?.[3])
  if (host === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`${option} must be host:port, not '${text}'`)
  }
  return { host, port }
}

/** Validates the swarm options shared by `fetch` and `share`. */
export function swarmArgs(values: {
  peer?: string[] | undefined
  tracker?: string[] | undefined
  'dht-bootstrap'?: string[] | undefined
  'no-dht'?: boolean | undefined
  listen?: string | undefined
  verbose?: boolean | undefined
}): SwarmArgs {
  const peers = (values.peer ?? []).map((p) => {
    const a = hostPort(p, '--peer')
    if (a.port === 0) throw new UsageError(`--peer needs a port other than 0: '${p}'`)
    return { host: a.host, port: a.port }
  })
  for (const u of values.tracker ?? []) {
    if (!URL.canParse(u) || !/^(https?|udp):$/.test(new URL(u).protocol)) {
      throw new UsageError(`--tracker must be an http(s):// or udp:// URL, not '${u}'`)
    }
  }
  const dhtBootstrap = values['dht-bootstrap'] ?? []
  for (const b of dhtBootstrap) {
    try {
      parseHostPort(b)
    } catch {
      throw new UsageError(`--dht-bootstrap must be host:port, not '${b}'`)
    }
  }
  const listen = hostPort(values.listen ?? DEFAULT_LISTEN, '--listen')
  return {
    peers,
    trackers: values.tracker ?? [],
    dhtBootstrap,
    noDht: values['no-dht'] ?? false,
    listen: { host: listen.host, port: listen.port },
    verbose: values.verbose ?? false,
  }
}

/** A logger printing warnings and errors (all levels with `verbose`) to `out`, one line each. */
export function cliLogger(
  out: NodeJS.WritableStream,
  verbose: boolean,
  bindings: Record<string, unknown> = {},
): EngineLogger {
  const line =
    (level: string, enabled: boolean) =>
    (obj: object, msg?: string): void => {
      if (!enabled) return
      const fields = { ...bindings, ...obj } as Record<string, unknown>
      if (fields.err instanceof Error) fields.err = fields.err.message
      out.write(`codex-bt: ${level}: ${msg ?? ''} ${JSON.stringify(fields)}\n`)
    }
  return {
    trace: () => {},
    debug: line('debug', verbose),
    info: line('info', verbose),
    warn: line('warn', true),
    error: line('error', true),
    child: (b) => cliLogger(out, verbose, { ...bindings, ...b }),
  }
}

/** Starts a session (and a DHT node when bootstrap nodes were given). */
export async function startSwarm(
  args: SwarmArgs,
  logger: EngineLogger,
): Promise<{ session: Session; dht?: DhtNode }> {
  let dht: DhtNode | undefined
  if (!args.noDht && args.dhtBootstrap.length > 0) {
    const host = isIPv4(args.listen.host) ? args.listen.host : '0.0.0.0'
    dht = new DhtNode({
      bootstrap: args.dhtBootstrap,
      host,
      port: 0,
      logger: logger.child({ component: 'dht' }),
    })
    await dht.start()
  }
  const session = new Session({ listen: args.listen, logger, ...(dht ? { dht } : {}) })
  try {
    await session.start()
  } catch (e) {
    await dht?.stop()
    throw e
  }
  return { session, ...(dht ? { dht } : {}) }
}

export async function stopSwarm(swarm: { session: Session; dht?: DhtNode | undefined }): Promise<void> {
  await swarm.session.stop()
  await swarm.dht?.stop()
}

/** Resolves with the signal name on the first SIGINT/SIGTERM; `dispose()` removes the handlers. */
export function onTermination(): { readonly signal: Promise<'SIGINT' | 'SIGTERM'>; dispose(): void } {
  let dispose = (): void => {}
  const signal = new Promise<'SIGINT' | 'SIGTERM'>((resolve) => {
    const onInt = (): void => resolve('SIGINT')
    const onTerm = (): void => resolve('SIGTERM')
    process.once('SIGINT', onInt)
    process.once('SIGTERM', onTerm)
    dispose = () => {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
    }
  })
  return { signal, dispose }
}

/** Reads and parses a .torrent file (size-capped). */
export async function readTorrentFile(path: string): Promise<Metainfo> {
  if ((await stat(path)).size > DEFAULT_MAX_TORRENT_BYTES) {
    throw new Error(`${path}: larger than ${DEFAULT_MAX_TORRENT_BYTES} bytes, not a torrent`)
  }
  const bytes = await readFile(path)
  return parseTorrent(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
}

function mb(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`
}

/** One status line: percent, pieces, rates, peers. */
export function progressLine(t: Torrent): string {
  const s = t.status()
  if (s.state === 'metadata') return `${s.name}: fetching metadata, ${s.peers} peers`
  return (
    `${s.name}: ${s.state} ${(s.progress * 100).toFixed(1)}% (${s.piecesHave}/${s.pieceCount} pieces), ` +
    `down ${mb(s.downloadRate)}, up ${mb(s.uploadRate)}, ${s.peers} peers (${s.seeds} seeds), ` +
    `${(s.downloaded / 1e6).toFixed(1)} MB in, ${(s.uploaded / 1e6).toFixed(1)} MB out`
  )
}

/** Writes `progressLine` to `out` every second: in place on a terminal, else one line each. */
export function startProgress(t: Torrent, out: NodeJS.WritableStream): { stop(): void } {
  const tty = (out as { isTTY?: boolean }).isTTY === true
  const timer = setInterval(() => {
    out.write(tty ? `\r\x1b[K${progressLine(t)}` : `${progressLine(t)}\n`)
  }, 1000)
  timer.unref()
  return {
    stop: () => {
      clearInterval(timer)
      if (tty) out.write('\r\x1b[K')
    },
  }
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim()
}

/** Runs a command body, mapping usage and other errors to exit codes 2 and 1. */
export async function guard(
  name: string,
  usage: string,
  io: CliIO,
  body: () => Promise<number>,
): Promise<number> {
  try {
    return await body()
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`codex-bt ${name}: ${(err as Error).message}\n${usage}\n`)
      return 2
    }
    const msg = err instanceof ProtocolError ? `${err.message} (${err.code})` : (err as Error).message
    io.stderr.write(`codex-bt ${name}: ${oneLine(msg)}\n`)
    return 1
  }
}

/** Runs `codex-bt fetch …`. */
export function run(args: string[], io: CliIO): Promise<number> {
  return guard('fetch', USAGE, io, async () => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { ...SWARM_OPTIONS, to: { type: 'string' }, timeout: { type: 'string' } },
    })
    if (values.help) {
      io.stdout.write(`${USAGE}\n`)
      return 0
    }
    const [target, ...extra] = positionals
    if (target === undefined || extra.length > 0)
      throw new UsageError('fetch takes exactly one .torrent file or magnet URI')
    if (values.to === undefined) throw new UsageError('fetch needs --to <dir>')
    const timeoutS = values.timeout === undefined ? undefined : Number(values.timeout)
    if (timeoutS !== undefined && !(Number.isFinite(timeoutS) && timeoutS > 0)) {
      throw new UsageError(`--timeout must be a positive number of seconds, not '${values.timeout}'`)
    }
    const sw = swarmArgs(values)

    let metainfo: Metainfo | undefined
    let magnet: ReturnType<typeof parseMagnet> | undefined
    if (target.toLowerCase().startsWith('magnet:')) magnet = parseMagnet(target)
    else metainfo = await readTorrentFile(target)
    const peers = [...sw.peers, ...(magnet?.peers ?? [])]
    const trackers = [...(magnet?.trackers ?? []), ...sw.trackers].map((u) => [u])

    const logger = cliLogger(io.stderr, sw.verbose)
    const swarm = await startSwarm(sw, logger)
    const term = onTermination()
    let progress: { stop(): void } | undefined
    let timer: NodeJS.Timeout | undefined
    try {
      const t = await swarm.session.addTorrent({
        ...(metainfo ? { metainfo } : {}),
        ...(magnet?.infoHashV1 ? { infoHashV1: magnet.infoHashV1 } : {}),
        ...(magnet?.infoHashV2 ? { infoHashV2: magnet.infoHashV2 } : {}),
        ...(magnet?.name !== undefined ? { name: magnet.name } : {}),
        store: new FsPieceStore({ directory: values.to }),
        peers,
        trackers,
      })
      io.stderr.write(
        `codex-bt fetch: ${t.name} (${t.id}), listening on ${sw.listen.host}:${swarm.session.port}\n`,
      )
      progress = startProgress(t, io.stderr)
      const timedOut = new Promise<'timeout'>((resolve) => {
        if (timeoutS !== undefined) timer = setTimeout(() => resolve('timeout'), timeoutS * 1000)
      })
      const outcome = await Promise.race([
        t.whenComplete().then(
          () => 'complete' as const,
          (e: unknown) => e as Error,
        ),
        term.signal,
        timedOut,
      ])
      progress.stop()
      if (outcome === 'complete') {
        io.stderr.write(`${progressLine(t)}\ncodex-bt fetch: complete, every piece verified\n`)
        io.stdout.write(`${join(values.to, t.name)}\n`)
        return 0
      }
      if (outcome === 'SIGINT' || outcome === 'SIGTERM') {
        io.stderr.write(`\ncodex-bt fetch: ${outcome}: stopping (${progressLine(t)})\n`)
        return outcome === 'SIGINT' ? 130 : 143
      }
      if (outcome === 'timeout') {
        io.stderr.write(`codex-bt fetch: not complete after ${timeoutS} s (${progressLine(t)})\n`)
        return 1
      }
      io.stderr.write(`codex-bt fetch: ${oneLine(outcome.message)}\n`)
      return 1
    } finally {
      progress?.stop()
      if (timer) clearTimeout(timer)
      await stopSwarm(swarm)
      term.dispose()
    }
  })
}
