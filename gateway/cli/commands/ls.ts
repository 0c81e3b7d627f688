/** `codex-bt ls`: lists the gateway's torrents. */
import { parseArgs } from 'node:util'
import { API_OPTIONS, apiClientFrom, formatBytes, formatRate, runApiCommand } from '../api-client.ts'
import type { CliIO } from '../command.ts'

export const summary = 'list the torrents of a running gateway'

interface Summary {
  id: string
  name: string | null
  state: string
  progress: number
  sizeBytes: number | null
  downloadRate: number
  uploadRate: number
  peers: number
}

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({ args, options: API_OPTIONS })
  if (values.help) {
    io.stdout.write('usage: codex-bt ls [--json] [--api URL] [--token T]\n')
    return 0
  }
  return runApiCommand(io, async () => {
    const api = apiClientFrom(values, io)
    const body = await api.json<{ torrents: Summary[] } | Summary[]>('GET', '/torrents')
    const list = Array.isArray(body) ? body : body.torrents
    if (values.json) {
      io.stdout.write(`${JSON.stringify(list)}\n`)
      return 0
    }
    if (list.length === 0) {
      io.stdout.write('no torrents\n')
      return 0
    }
    io.stdout.write(
      `${'ID'.padEnd(42)} ${'STATE'.padEnd(11)} ${'DONE'.padStart(6)} ${'SIZE'.padStart(10)} ${'DOWN'.padStart(11)} ${'UP'.padStart(11)} PEERS NAME\n`,
    )
    for (const t of list) {
      io.stdout.write(
        `${t.id.slice(0, 40).padEnd(42)} ${t.state.padEnd(11)} ${`${(t.progress * 100).toFixed(1)}%`.padStart(6)} ${(t.sizeBytes === null ? '-' : formatBytes(t.sizeBytes)).padStart(10)} ${formatRate(t.downloadRate).padStart(11)} ${formatRate(t.uploadRate).padStart(11)} ${String(t.peers).padStart(5)} ${t.name ?? ''}\n`,
      )
    }
    return 0
  })
}
