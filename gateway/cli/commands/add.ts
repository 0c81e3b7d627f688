/**
 * `codex-bt add <magnet|file.torrent|infohash>`: starts an archive job on a running gateway and
 * shows a live progress bar (rate, peers, ETA) until the torrent is archived in Codex.
 */
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import {
  API_OPTIONS,
  ApiError,
  apiClientFrom,
  formatBytes,
  formatRate,
  runApiCommand,
} from '../api-client.ts'
import type { CliIO } from '../command.ts'

export const summary = 'archive a torrent (magnet, .torrent or info hash) into Codex via a running gateway'

const USAGE = `usage: codex-bt add <magnet|file.torrent|infohash> [--tracker URL]… [--peer host:port]… [--no-wait] [--timeout SECONDS] [--json] [--api URL] [--token T]`

interface Details {
  id: string
  name: string | null
  state: string
  progress: number
  downloadRate: number
  peers: readonly unknown[] | number
  sizeBytes: number | null
  recordCid: string | null
  errors?: readonly { code: string; message: string }[]
}

function bar(progress: number, width = 24): string {
  const full = Math.round(Math.max(0, Math.min(1, progress)) * width)
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`
}

function eta(d: Details): string {
  if (!d.sizeBytes || d.downloadRate <= 0) return '--'
  const left = (1 - d.progress) * d.sizeBytes
  const s = Math.round(left / d.downloadRate)
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${s % 60}s`
      : `${s}s`
}

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...API_OPTIONS,
      tracker: { type: 'string', multiple: true },
      peer: { type: 'string', multiple: true },
      'no-wait': { type: 'boolean', default: false },
      timeout: { type: 'string' },
    },
  })
  if (values.help) {
    io.stdout.write(`${USAGE}\n`)
    return 0
  }
  if (positionals.length !== 1) {
    io.stderr.write(`${USAGE}\n`)
    return 2
  }
  const input = positionals[0]!
  return runApiCommand(io, async () => {
    const api = apiClientFrom(values, io)
    const extra = {
      ...(values.tracker ? { trackers: values.tracker } : {}),
      ...(values.peer ? { peers: values.peer } : {}),
    }
    let result: { created: boolean; torrent: { id: string } }
    if (input.startsWith('magnet:')) {
      result = await api.json('POST', '/torrents', { json: { magnet: input, ...extra } })
    } else if (/^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/.test(input)) {
      result = await api.json('POST', '/torrents', { json: { infoHash: input.toLowerCase(), ...extra } })
    } else {
      let bytes: Uint8Array
      try {
        bytes = await readFile(input)
      } catch (e) {
        throw new ApiError(
          'GW_ERR_CLI_INPUT',
          `cannot read ${input}: ${e instanceof Error ? e.message : String(e)}`,
        )
      }
      const q = new URLSearchParams()
      for (const t of values.tracker ?? []) q.append('trackers', t)
      for (const p of values.peer ?? []) q.append('peers', p)
      const qs = q.size > 0 ? `?${q}` : ''
      result = await api.json('POST', `/torrents${qs}`, { bytes, contentType: 'application/x-bittorrent' })
    }
    const id = result.torrent.id
    if (!values.json) io.stderr.write(`${result.created ? 'added' : 'already present'}: ${id}\n`)
    if (values['no-wait']) {
      if (values.json) io.stdout.write(`${JSON.stringify(result)}\n`)
      return 0
    }
    const timeoutS = values.timeout ? Number(values.timeout) : 0
    if (values.timeout && !(timeoutS > 0))
      throw new ApiError('GW_ERR_CLI_USAGE', '--timeout must be a positive number')
    const deadline = timeoutS > 0 ? Date.now() + timeoutS * 1000 : Number.POSITIVE_INFINITY
    const tty = (io.stderr as NodeJS.WriteStream).isTTY === true
    let lastLine = 0
    for (;;) {
      const d = await api.json<Details>('GET', `/torrents/${id}`)
      const peers = Array.isArray(d.peers) ? d.peers.length : Number(d.peers)
      if (!values.json && (tty || Date.now() - lastLine > 5000)) {
        const line = `${bar(d.progress)} ${(d.progress * 100).toFixed(1).padStart(5)}%  ${formatRate(d.downloadRate).padStart(11)}  peers ${peers}  ETA ${eta(d)}  ${d.state}${d.sizeBytes ? `  (${formatBytes(d.sizeBytes)})` : ''}`
        io.stderr.write(tty ? `\r${line}\u001b[K` : `${line}\n`)
        lastLine = Date.now()
      }
      if (d.state === 'error') {
        if (tty) io.stderr.write('\n')
        const err = d.errors?.at(-1)
        throw new ApiError(err?.code ?? 'GW_ERR_ARCHIVE_FAILED', err?.message ?? 'the archive job failed')
      }
      if (d.recordCid) {
        if (tty && !values.json) io.stderr.write('\n')
        if (values.json) io.stdout.write(`${JSON.stringify(d)}\n`)
        else io.stdout.write(`archived ${d.name ?? id}\nrecord ${d.recordCid}\n`)
        return 0
      }
      if (Date.now() > deadline)
        throw new ApiError('GW_ERR_CLI_TIMEOUT', `not archived within ${timeoutS} s (state ${d.state})`)
      await new Promise((r) => setTimeout(r, 1000))
    }
  })
}
