/**
 * `codex-bt codex-node`: runs the local Codex node (the project's byte-exact stand-in for a Codex
 * node, `codex-client/local-node/`) until SIGINT or SIGTERM, storing its data under `--data-dir`.
 * Prints the API URL (`http://HOST:PORT/api/codex/v1`) on stdout once it listens.
 */
import { parseArgs } from 'node:util'
import { startLocalCodexNode } from '../../../codex-client/local-node/index.ts'
import type { CliIO } from '../command.ts'
import { UsageError } from '../command.ts'

export const summary = 'run the local Codex node (Codex REST API on disk) until interrupted'

const USAGE = `usage: codex-bt codex-node [--port 8080] [--host 127.0.0.1] [--data-dir ./codex-data] [--quota BYTES]

  --port N          TCP port (default 8080, Codex's default; 0 = any free port)
  --host ADDR       listen address (default 127.0.0.1)
  --data-dir DIR    where blocks, manifests and leaf metadata are kept (default ./codex-data)
  --quota BYTES     storage quota; a plain number or with a KiB/MiB/GiB/TiB suffix
                    (default 20GiB, Codex's default)
  --verbose         log every request (JSON lines on stdout)
  -h, --help        show this help`

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
}

/** Parses `--quota`: an integer number of bytes, optionally with a binary unit suffix. */
export function parseQuota(text: string): number {
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(text)
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined)
    throw new UsageError(`--quota: expected bytes like 1073741824 or 1GiB, got ${JSON.stringify(text)}`)
  const bytes = Number(m[1]) * unit
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`--quota: ${text} is too large`)
  return bytes
}

function parsePort(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 65535)
    throw new UsageError(`--port: expected 0-65535, got ${JSON.stringify(text)}`)
  return Number(text)
}

/** Resolves on the first SIGINT or SIGTERM (and stops listening for them). */
function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      resolve(signal)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}

export async function run(args: string[], io: CliIO): Promise<number> {
  let options: { port: number; host: string; dataDir: string; quota: number | undefined; verbose: boolean }
  try {
    const { values } = parseArgs({
      args,
      allowPositionals: false,
      options: {
        port: { type: 'string', default: '8080' },
        host: { type: 'string', default: '127.0.0.1' },
        'data-dir': { type: 'string', default: './codex-data' },
        quota: { type: 'string' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
    if (values.help) {
      io.stdout.write(`${USAGE}\n`)
      return 0
    }
    options = {
      port: parsePort(values.port),
      host: values.host,
      dataDir: values['data-dir'],
      quota: values.quota === undefined ? undefined : parseQuota(values.quota),
      verbose: values.verbose,
    }
  } catch (err) {
    io.stderr.write(`codex-bt codex-node: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}\n`)
    return 2
  }

  let node: Awaited<ReturnType<typeof startLocalCodexNode>>
  try {
    node = await startLocalCodexNode({
      dataDir: options.dataDir,
      host: options.host,
      port: options.port,
      logger: options.verbose,
      ...(options.quota === undefined ? {} : { quotaBytes: options.quota }),
    })
  } catch (err) {
    io.stderr.write(
      `codex-bt codex-node: cannot start: ${err instanceof Error ? err.message : String(err)}\n`,
    )
    return 1
  }
  const stopped = waitForSignal()
  io.stdout.write(`${node.apiUrl}\n`)
  const signal = await stopped
  io.stderr.write(`codex-bt codex-node: ${signal}, shutting down\n`)
  await node.close()
  return 0
}
