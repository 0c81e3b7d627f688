/**
 * `codex-bt serve`: runs the gateway (HTTP API, BitTorrent peer, and — when no Codex URL is
 * configured — the embedded local Codex node). Configuration comes from `CODEX_BT_*` environment
 * variables and an optional JSON file (`--config` or `CODEX_BT_CONFIG`); see README.md.
 */
import { parseArgs } from 'node:util'
import { type GatewayApp, startGateway } from '../../app.ts'
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
  // The handlers are installed before the gateway starts: a SIGTERM that arrives while it starts
  // (its "gateway started" line is logged before startGateway() returns) must not kill the
  // process with the default action, skipping the clean shutdown.
  let app: GatewayApp | undefined
  let firstSignalAt: number | undefined
  let resolveExit: (code: number) => void = () => {}
  const exitCode = new Promise<number>((resolve) => {
    resolveExit = resolve
  })
  const stopApp = (running: GatewayApp): void => {
    running.stop().then(
      () => {
        // Everything is closed; if a stray handle remained, do not hang the process.
        setTimeout(() => process.exit(0), 3000).unref()
        resolveExit(0)
      },
      (e: unknown) => {
        logger.error({ err: e }, 'shutdown failed')
        resolveExit(1)
      },
    )
  }
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
    logger.info({ signal: sig }, app ? 'signal received, stopping' : 'signal received while starting')
    if (app) stopApp(app)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    app = await startGateway(config, logger)
  } catch (e) {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    logger.error({ err: e }, 'the gateway failed to start')
    io.stderr.write(`codex-bt serve: failed to start: ${e instanceof Error ? e.message : String(e)}\n`)
    return 1
  }
  if (firstSignalAt !== undefined) {
    logger.info('stopping: a signal arrived while starting')
    stopApp(app)
  }
  return exitCode
}
