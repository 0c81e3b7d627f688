/** `codex-bt import <recordCid>`: adds a torrent archived by any gateway, from its record in Codex. */
import { parseArgs } from 'node:util'
import { API_OPTIONS, apiClientFrom, runApiCommand } from '../api-client.ts'
import type { CliIO } from '../command.ts'

export const summary = 'import a torrent record from Codex into a running gateway (then it seeds it)'

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: API_OPTIONS })
  if (values.help || positionals.length !== 1) {
    ;(values.help ? io.stdout : io.stderr).write(
      'usage: codex-bt import <recordCid> [--json] [--api URL] [--token T]\n',
    )
    return values.help ? 0 : 2
  }
  return runApiCommand(io, async () => {
    const api = apiClientFrom(values, io)
    const r = await api.json<{ created: boolean; torrent: { id: string; name: string | null } }>(
      'POST',
      `/records/${encodeURIComponent(positionals[0]!)}/import`,
    )
    if (values.json) io.stdout.write(`${JSON.stringify(r)}\n`)
    else
      io.stdout.write(
        `${r.created ? 'imported' : 'already present'}: ${r.torrent.id} ${r.torrent.name ?? ''}\n`,
      )
    return 0
  })
}
