/** `codex-bt export <id> > x.torrent`: writes the torrent's .torrent file (bit-exact) to stdout or `-o`. */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { API_OPTIONS, apiClientFrom, runApiCommand } from '../api-client.ts'
import type { CliIO } from '../command.ts'

export const summary = 'write the .torrent of a gateway torrent to stdout (or -o file)'

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...API_OPTIONS, output: { type: 'string', short: 'o' } },
  })
  if (values.help || positionals.length !== 1) {
    ;(values.help ? io.stdout : io.stderr).write(
      'usage: codex-bt export <infohash> [-o out.torrent] [--api URL] [--token T]\n',
    )
    return values.help ? 0 : 2
  }
  return runApiCommand(io, async () => {
    const api = apiClientFrom(values, io)
    const res = await api.request('GET', `/torrents/${encodeURIComponent(positionals[0]!)}/torrent`)
    const bytes = new Uint8Array(await res.arrayBuffer())
    if (values.output) await writeFile(values.output, bytes)
    else
      await new Promise<void>((resolve, reject) => io.stdout.write(bytes, (e) => (e ? reject(e) : resolve())))
    return 0
  })
}
