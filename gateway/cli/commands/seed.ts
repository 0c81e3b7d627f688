/**
 * `codex-bt seed <cid…>`: makes a torrent from Codex data (one CID = a single-file torrent; several
 * as `cid=path/in/torrent` = a multi-file torrent), starts seeding it and prints the magnet link.
 */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { API_OPTIONS, ApiError, apiClientFrom, runApiCommand } from '../api-client.ts'
import type { CliIO } from '../command.ts'

export const summary = 'create a torrent from Codex CIDs, seed it, and print the magnet link'

const USAGE =
  'usage: codex-bt seed <cid> | <cid=path>… [--name N] [--version v1|v2|hybrid] [--tracker URL]… [--webseed URL]… [-o out.torrent] [--json] [--api URL] [--token T]'

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...API_OPTIONS,
      name: { type: 'string' },
      version: { type: 'string' },
      tracker: { type: 'string', multiple: true },
      webseed: { type: 'string', multiple: true },
      output: { type: 'string', short: 'o' },
    },
  })
  if (values.help || positionals.length === 0) {
    ;(values.help ? io.stdout : io.stderr).write(`${USAGE}\n`)
    return values.help ? 0 : 2
  }
  return runApiCommand(io, async () => {
    if (values.version && !['v1', 'v2', 'hybrid'].includes(values.version)) {
      throw new ApiError('GW_ERR_CLI_USAGE', '--version must be v1, v2 or hybrid')
    }
    const api = apiClientFrom(values, io)
    const body: Record<string, unknown> = {
      ...(values.name ? { name: values.name } : {}),
      ...(values.version ? { version: values.version } : {}),
      ...(values.tracker ? { trackers: values.tracker } : {}),
      ...(values.webseed ? { webseeds: values.webseed } : {}),
    }
    if (positionals.length === 1 && !positionals[0]!.includes('=')) body.cid = positionals[0]
    else {
      body.files = positionals.map((p) => {
        const i = p.indexOf('=')
        if (i <= 0 || i === p.length - 1)
          throw new ApiError('GW_ERR_CLI_USAGE', `expected cid=path, got ${JSON.stringify(p)}`)
        return { cid: p.slice(0, i), path: p.slice(i + 1) }
      })
    }
    const r = await api.json<{
      id: string
      name: string
      magnet: string
      torrent: string
      recordCid: string | null
    }>('POST', '/seeds', { json: body })
    if (values.output) await writeFile(values.output, Buffer.from(r.torrent, 'base64'))
    if (values.json) io.stdout.write(`${JSON.stringify(r)}\n`)
    else io.stdout.write(`${r.magnet}\n`)
    return 0
  })
}
