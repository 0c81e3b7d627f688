/** `codex-bt show <id>`: details of one torrent (files with their Codex CIDs, record, peers). */
import { parseArgs } from 'node:util'
import { API_OPTIONS, apiClientFrom, formatBytes, runApiCommand } from '../api-client.ts'
import type { CliIO } from '../command.ts'

export const summary = 'show one torrent of a running gateway (files, Codex CIDs, record, peers)'

interface Details {
  id: string
  name: string | null
  state: string
  progress: number
  infoHashV1?: string
  infoHashV2?: string
  sizeBytes: number | null
  recordCid: string | null
  files: { path: string; sizeBytes: number; codexCid: string | null }[]
  trackers: { url: string; status: string }[]
  peers: { address: string; client: string | null }[]
  errors: { code: string; message: string }[]
}

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: API_OPTIONS })
  if (values.help || positionals.length !== 1) {
    ;(values.help ? io.stdout : io.stderr).write(
      'usage: codex-bt show <infohash> [--json] [--api URL] [--token T]\n',
    )
    return values.help ? 0 : 2
  }
  return runApiCommand(io, async () => {
    const api = apiClientFrom(values, io)
    const d = await api.json<Details>('GET', `/torrents/${encodeURIComponent(positionals[0]!)}`)
    if (values.json) {
      io.stdout.write(`${JSON.stringify(d)}\n`)
      return 0
    }
    const lines = [
      `name:      ${d.name ?? '(metadata not known yet)'}`,
      `id:        ${d.id}`,
      ...(d.infoHashV1 ? [`v1 hash:   ${d.infoHashV1}`] : []),
      ...(d.infoHashV2 ? [`v2 hash:   ${d.infoHashV2}`] : []),
      `state:     ${d.state} (${(d.progress * 100).toFixed(1)}%)`,
      `size:      ${d.sizeBytes === null ? '-' : formatBytes(d.sizeBytes)}`,
      `record:    ${d.recordCid ?? '-'}`,
      'files:',
      ...d.files.map((f) => `  ${f.path}  ${formatBytes(f.sizeBytes)}  ${f.codexCid ?? '-'}`),
      'trackers:',
      ...d.trackers.map((t) => `  ${t.url}  ${t.status}`),
      `peers:     ${d.peers.length}`,
      ...d.peers.map((p) => `  ${p.address}  ${p.client ?? ''}`),
      ...(d.errors.length > 0 ? ['errors:', ...d.errors.map((e) => `  ${e.code}: ${e.message}`)] : []),
    ]
    io.stdout.write(`${lines.join('\n')}\n`)
    return 0
  })
}
