/**
 * `codex-bt serve`: runs the gateway (HTTP API, BitTorrent peer, and — when no Codex URL is
 * configured — the embedded local Codex node). Configuration comes from `CODEX_BT_*` environment
 * variables and an optional JSON file (`--config` or `CODEX_BT_CONFIG`); see README.md.
 */
import { parseArgs } from 'node:util'
import { startGateway } from '../../app.ts'
import { CONFIG_TABLE, ConfigError, loadConfig } from '../../config.ts'
import { createLogger } from '../../observability/logger.ts'
import type { CliIO } from '../command.ts'

/** A second signal within this window is the same request delivered twice, not "force exit". */
const DUPLICATE_SIGNAL_WINDOW_MS = 1000

export const summary = 'run the gateway (API, BitTorrent peer, embedded Codex node when no URL is set)'

function help(): string {
  const rows = CONFIG_TABLE.map((r) => `  ${r.env.padEnd(34)} ${r.description}`)
  return ['usage: codex-bt serve [--config file.json]', '', 'environment:', ...rows].join('\n')
}

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  })
  if (values.help) {
    io.stdout.write(`${help()}\n`)
    return 0
  }
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig({ env: io.env, ...(values.config ? { file: values.config } : {}) })
  } catch (e) {
    if (e instanceof ConfigError) {
      io.stderr.write(`codex-bt serve: ${e.message}\n`)
      return 2
    }
    throw e
  }
  const logger = createLogger({ level: config.logLevel })
  let app: Awaited<ReturnType<typeof startGateway>>
  try {
    app = await startGateway(config, logger)
  } catch (e) {
    logger.error({ err: e }, 'the gateway failed to start')
    io.stderr.write(`codex-bt serve: failed to start: ${e instanceof Error ? e.message : String(e)}\n`)
    return 1
  }
  return new Promise<number>((resolve) => {
    let firstSignalAt: number | undefined
    const onSignal = (sig: NodeJS.Signals): void => {
      if (firstSignalAt !== undefined) {
        // One Ctrl-C or `kill` often arrives twice (the terminal signals the whole process group
        // and `npm start` forwards it too): that is not an operator asking to force the exit.
        if (Date.now() - firstSignalAt < DUPLICATE_SIGNAL_WINDOW_MS) {
          logger.debug({ signal: sig }, 'repeated signal ignored: already stopping')
          return
        }
        logger.warn({ signal: sig }, 'second signal: exiting now')
        process.exit(130)
      }
      firstSignalAt = Date.now()
      logger.info({ signal: sig }, 'signal received, stopping')
      app.stop().then(
        () => {
          // Everything is closed; if a stray handle remained, do not hang the process.
          setTimeout(() => process.exit(0), 3000).unref()
          resolve(0)
        },
        (e: unknown) => {
          logger.error({ err: e }, 'shutdown failed')
          resolve(1)
        },
      )
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}
