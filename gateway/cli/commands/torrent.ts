/**
 * `codex-bt torrent`: inspect and create torrents.
 *
 *   codex-bt torrent info <file.torrent | magnet:?…> [--json]
 *   codex-bt torrent create <path> -o <out.torrent> [--version v1|v2|hybrid] [--piece-length N]
 *                           [--tracker URL]… [--webseed URL]… [--private] [--comment C]
 *
 * Malformed input → one line on stderr and exit code 1; bad usage → exit code 2.
 */

import { readFile, stat, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { createTorrentFromPath } from '../../protocol/create-torrent.ts'
import { ProtocolError } from '../../protocol/errors.ts'
import { toHex } from '../../protocol/hex.ts'
import { type MagnetLink, magnetFromMetainfo, parseMagnet } from '../../protocol/magnet.ts'
import { DEFAULT_MAX_TORRENT_BYTES, parseTorrent } from '../../protocol/metainfo.ts'
import type { Metainfo, TorrentVersion } from '../../protocol/types.ts'
import type { CliIO } from '../command.ts'
import { UsageError } from '../command.ts'

export const summary = 'inspect (info) or create (create) v1/v2/hybrid .torrent files and magnet links'

const USAGE = `usage:
  codex-bt torrent info <file.torrent | magnet-uri> [--json]
  codex-bt torrent create <path> -o <out.torrent> [--version v1|v2|hybrid] [--piece-length N]
                          [--tracker URL]... [--webseed URL]... [--private] [--comment TEXT]`

function hex(b: Uint8Array | undefined): string | null {
  return b === undefined ? null : toHex(b)
}

/** The JSON shape of `torrent info --json` for a .torrent file. */
function torrentJson(m: Metainfo): Record<string, unknown> {
  const { info } = m
  return {
    type: 'torrent',
    name: info.name,
    version: info.version,
    infoHashV1: hex(info.infoHashV1),
    infoHashV2: hex(info.infoHashV2),
    pieceLength: info.pieceLength,
    pieceCount: info.pieceCount,
    totalLength: info.totalLength,
    payloadLength: info.payloadLength,
    private: info.private,
    files: info.files.map((f) => ({
      path: f.path,
      length: f.length,
      offset: f.offset,
      padding: f.padding,
      virtual: f.virtual,
      attr: f.attr,
      piecesRoot: hex(f.piecesRoot),
      firstPiece: f.firstPiece,
      pieceCount: f.pieceCount,
    })),
    trackers: m.announce,
    webseeds: m.urlList,
    comment: m.comment ?? null,
    createdBy: m.createdBy ?? null,
    creationDate: m.creationDate ?? null,
    magnet: magnetFromMetainfo(m),
  }
}

function magnetJson(l: MagnetLink): Record<string, unknown> {
  return {
    type: 'magnet',
    name: l.name ?? null,
    infoHashV1: hex(l.infoHashV1),
    infoHashV2: hex(l.infoHashV2),
    trackers: l.trackers,
    webseeds: l.webseeds,
    peers: l.peers.map((p) => `${p.host.includes(':') ? `[${p.host}]` : p.host}:${p.port}`),
    selectOnly: l.selectOnly ?? null,
  }
}

function torrentText(m: Metainfo): string {
  const { info } = m
  const lines = [
    `name:          ${info.name}`,
    `version:       ${info.version}`,
    `info hash v1:  ${hex(info.infoHashV1) ?? '-'}`,
    `info hash v2:  ${hex(info.infoHashV2) ?? '-'}`,
    `piece length:  ${info.pieceLength}`,
    `pieces:        ${info.pieceCount}`,
    `total size:    ${info.payloadLength} bytes${info.private ? ' (private)' : ''}`,
  ]
  if (m.comment) lines.push(`comment:       ${m.comment}`)
  if (m.createdBy) lines.push(`created by:    ${m.createdBy}`)
  lines.push('files:')
  for (const f of info.files) {
    if (f.padding) continue
    const root = f.piecesRoot ? `  root ${toHex(f.piecesRoot)}` : ''
    lines.push(`  ${f.path.join('/')}  ${f.length}${root}`)
  }
  lines.push('trackers:')
  m.announce.forEach((tier, i) => {
    for (const u of tier) lines.push(`  [tier ${i}] ${u}`)
  })
  for (const w of m.urlList) lines.push(`web seed:      ${w}`)
  lines.push(`magnet:        ${magnetFromMetainfo(m)}`)
  return lines.join('\n')
}

function magnetText(l: MagnetLink): string {
  const j = magnetJson(l)
  return [
    `magnet name:   ${l.name ?? '-'}`,
    `info hash v1:  ${j.infoHashV1 ?? '-'}`,
    `info hash v2:  ${j.infoHashV2 ?? '-'}`,
    ...l.trackers.map((t) => `tracker:       ${t}`),
    ...l.webseeds.map((w) => `web seed:      ${w}`),
    ...(j.peers as string[]).map((p) => `peer:          ${p}`),
  ].join('\n')
}

async function info(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
  })
  if (values.help) {
    io.stdout.write(`${USAGE}\n`)
    return 0
  }
  const [target, ...extra] = positionals
  if (target === undefined || extra.length > 0)
    throw new UsageError('torrent info takes exactly one file or magnet URI')
  if (target.toLowerCase().startsWith('magnet:')) {
    const link = parseMagnet(target)
    io.stdout.write(`${values.json ? JSON.stringify(magnetJson(link), null, 2) : magnetText(link)}\n`)
    return 0
  }
  if ((await stat(target)).size > DEFAULT_MAX_TORRENT_BYTES) {
    throw new Error(`${target}: larger than ${DEFAULT_MAX_TORRENT_BYTES} bytes, not a torrent`)
  }
  const bytes = await readFile(target)
  let m: Metainfo
  try {
    m = parseTorrent(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  } catch (err) {
    if (err instanceof ProtocolError) {
      io.stderr.write(`codex-bt torrent: ${target}: invalid torrent: ${oneLine(err.message)} (${err.code})\n`)
      return 1
    }
    throw err
  }
  io.stdout.write(`${values.json ? JSON.stringify(torrentJson(m), null, 2) : torrentText(m)}\n`)
  return 0
}

function versionOf(v: string | undefined): TorrentVersion {
  if (v === undefined) return 'hybrid'
  if (v === 'v1' || v === 'v2' || v === 'hybrid') return v
  throw new UsageError(`--version must be v1, v2 or hybrid, not '${v}'`)
}

async function create(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' },
      version: { type: 'string' },
      'piece-length': { type: 'string' },
      tracker: { type: 'string', multiple: true },
      webseed: { type: 'string', multiple: true },
      private: { type: 'boolean', default: false },
      comment: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    io.stdout.write(`${USAGE}\n`)
    return 0
  }
  const [path, ...extra] = positionals
  if (path === undefined || extra.length > 0) throw new UsageError('torrent create takes exactly one path')
  if (values.output === undefined) throw new UsageError('torrent create needs -o <out.torrent>')
  const plText = values['piece-length']
  const pieceLength = plText === undefined ? undefined : Number(plText)
  if (pieceLength !== undefined && (!/^[0-9]+$/.test(plText!) || !Number.isSafeInteger(pieceLength))) {
    throw new UsageError(`--piece-length must be a number of bytes, not '${plText}'`)
  }
  const { bytes, metainfo } = await createTorrentFromPath(path, {
    version: versionOf(values.version),
    ...(pieceLength !== undefined ? { pieceLength } : {}),
    // BEP12: each --tracker is its own tier, tried in the order given.
    trackers: (values.tracker ?? []).map((u) => [u]),
    webseeds: values.webseed ?? [],
    private: values.private,
    ...(values.comment !== undefined ? { comment: values.comment } : {}),
    createdBy: 'codex-bt',
    creationDate: Math.floor(Date.now() / 1000),
  })
  await writeFile(values.output, bytes)
  const magnet = magnetFromMetainfo(metainfo)
  io.stdout.write(
    values.json ? `${JSON.stringify({ ...torrentJson(metainfo), output: values.output })}\n` : `${magnet}\n`,
  )
  return 0
}

/** Runs `codex-bt torrent <info|create> …`. */
export async function run(args: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = args
  try {
    if (sub === 'info') return await info(rest, io)
    if (sub === 'create') return await create(rest, io)
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
      io.stdout.write(`${USAGE}\n`)
      return sub === undefined ? 2 : 0
    }
    throw new UsageError(`unknown subcommand '${sub}'`)
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`codex-bt torrent: ${(err as Error).message}\n${USAGE}\n`)
      return 2
    }
    const msg = err instanceof ProtocolError ? `${err.message} (${err.code})` : (err as Error).message
    io.stderr.write(`codex-bt torrent: ${oneLine(msg)}\n`)
    return 1
  }
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim()
}
