/**
 * `codex-bt share`: seed one torrent from a directory of plain files until SIGINT/SIGTERM.
 *
 *   codex-bt share <file.torrent> --from <dir> [--listen host:port] [--peer host:port]…
 *                  [--tracker URL]… [--dht-bootstrap host:port]… [--no-dht]
 *
 * The data is expected where `fetch` (or libtorrent with save path `<dir>`) keeps it:
 * `<dir>/<name>` for a single file, `<dir>/<name>/<path…>` otherwise. It is verified first
 * (`FsPieceStore` recheck, or its resume file); missing pieces are fetched from peers like any
 * download. `--peer` dials those peers (some clients never dial loopback addresses themselves);
 * the torrent's trackers, `--tracker` and the DHT (only with `--dht-bootstrap`, bootstrapping from
 * exactly that list) announce us. Once ready, one line `seeding <info hash> on <host>:<port>` and
 * the magnet link are printed on stdout; status goes to stderr. SIGINT/SIGTERM stop the session
 * cleanly (exit 0).
 */
import { parseArgs } from 'node:util'
import { FsPieceStore } from '../../../adapters/fs-store.ts'
import { magnetFromMetainfo } from '../../protocol/magnet.ts'
import type { CliIO } from '../command.ts'
import { UsageError } from '../command.ts'
import {
  cliLogger,
  guard,
  onTermination,
  progressLine,
  readTorrentFile,
  SWARM_OPTIONS,
  startProgress,
  startSwarm,
  stopSwarm,
  swarmArgs,
} from './fetch.ts'

export const summary = 'seed a torrent from a directory until interrupted'

const USAGE = `usage:
  codex-bt share <file.torrent> --from <dir> [--listen host:port] [--peer host:port]...
                 [--tracker URL]... [--dht-bootstrap host:port]... [--no-dht]`

/** Runs `codex-bt share …`. */
export function run(args: string[], io: CliIO): Promise<number> {
  return guard('share', USAGE, io, async () => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { ...SWARM_OPTIONS, from: { type: 'string' } },
    })
    if (values.help) {
      io.stdout.write(`${USAGE}\n`)
      return 0
    }
    const [target, ...extra] = positionals
    if (target === undefined || extra.length > 0)
      throw new UsageError('share takes exactly one .torrent file')
    if (target.toLowerCase().startsWith('magnet:'))
      throw new UsageError('share needs the .torrent file, not a magnet link')
    if (values.from === undefined) throw new UsageError('share needs --from <dir>')
    const sw = swarmArgs(values)
    const metainfo = await readTorrentFile(target)

    const logger = cliLogger(io.stderr, sw.verbose)
    const swarm = await startSwarm(sw, logger)
    const term = onTermination()
    let progress: { stop(): void } | undefined
    try {
      io.stderr.write(`codex-bt share: checking ${metainfo.info.name} in ${values.from}\n`)
      const t = await swarm.session.addTorrent({
        metainfo,
        store: new FsPieceStore({ directory: values.from }),
        trackers: sw.trackers.map((u) => [u]),
      })
      const ready = await Promise.race([
        t.whenMetadata().then(
          () => 'ready' as const,
          (e: unknown) => e as Error,
        ),
        term.signal,
      ])
      if (ready instanceof Error) {
        io.stderr.write(`codex-bt share: ${ready.message}\n`)
        return 1
      }
      if (ready !== 'ready') return 0
      const s = t.status()
      if (s.progress < 1) {
        io.stderr.write(
          `codex-bt share: only ${(s.progress * 100).toFixed(1)}% of the data is present and verified; ` +
            'sharing that and fetching the rest from peers\n',
        )
      }
      io.stdout.write(
        `seeding ${t.id} on ${sw.listen.host}:${swarm.session.port}\n${magnetFromMetainfo(metainfo)}\n`,
      )
      if (sw.peers.length > 0) t.addPeers(sw.peers)
      progress = startProgress(t, io.stderr)
      const outcome = await Promise.race([
        term.signal,
        // A failing torrent (e.g. storage errors) ends the command.
        new Promise<Error>((resolve) => {
          const check = setInterval(() => {
            if (t.state === 'error' || t.state === 'stopped') {
              clearInterval(check)
              resolve(new Error(t.status().error ?? `torrent ${t.state}`))
            }
          }, 500)
          void term.signal.then(() => clearInterval(check))
        }),
      ])
      progress.stop()
      if (outcome instanceof Error) {
        io.stderr.write(`codex-bt share: ${outcome.message}\n`)
        return 1
      }
      io.stderr.write(`codex-bt share: ${outcome}: stopping (${progressLine(t)})\n`)
      return 0
    } finally {
      progress?.stop()
      await stopSwarm(swarm)
      term.dispose()
    }
  })
}
