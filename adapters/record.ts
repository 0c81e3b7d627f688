/**
 * The torrent record: a self-describing, human-readable JSON document stored in Codex whose CID
 * is a torrent's archive address. It carries the exact info dict (so the info hashes can be
 * re-checked), the original .torrent when there was one, trackers, web seeds, BEP52 piece layers
 * and, per file, the Codex manifest CID of its dataset. The format is specified in
 * `adapters/RECORD.md`.
 *
 * This module builds records and rebuilds the .torrent bit-exactly; it re-exports the format
 * (`record-format.ts`: types, errors, canonical encoding), validation (`record-parse.ts`) and the
 * Codex I/O (`record-codex.ts`: upload, fetch, import), so callers import from here.
 */

import { encodeBencode } from '../gateway/protocol/bencode.ts'
import { fromHex, toHex } from '../gateway/protocol/hex.ts'
import { parseInfoDict } from '../gateway/protocol/metainfo.ts'
import type { Metainfo, TorrentInfo } from '../gateway/protocol/types.ts'
import {
  canonicalCid,
  DEFAULT_RECORD_CREATED_BY,
  equalBuffers,
  fromBase64,
  infoBytesOf,
  RECORD_FORMAT,
  RECORD_VERSION,
  RecordError,
  type RecordFile,
  type RecordTorrentFields,
  type TorrentRecord,
  toBase64,
} from './record-format.ts'

export {
  type FetchRecordOptions,
  fetchRecord,
  type ImportRecordOptions,
  importRecord,
  recordFilename,
  uploadRecord,
  verifyRecordFiles,
} from './record-codex.ts'
export {
  DEFAULT_RECORD_CREATED_BY,
  encodeRecord,
  fromBase64,
  MAX_RECORD_BYTES,
  type ParsedRecord,
  RECORD_FORMAT,
  RECORD_VERSION,
  RecordError,
  type RecordErrorCode,
  type RecordFile,
  type RecordTorrentFields,
  type TorrentRecord,
  toBase64,
} from './record-format.ts'
export { parseRecord } from './record-parse.ts'

/** Options of `buildRecord`. */
export interface BuildRecordOptions {
  /** The .torrent the metainfo was parsed from; embedded when its info dict is `metainfo`'s. */
  readonly originalTorrent?: Uint8Array
  /** @default DEFAULT_RECORD_CREATED_BY */
  readonly createdBy?: string
  /** @default now */
  readonly createdAt?: Date
}

/**
 * Builds the record of an archived torrent. `fileCids` maps indices into `metainfo.info.files`
 * to Codex CIDs; every non-empty data file needs one (`GW_ERR_RECORD_INCOMPLETE`).
 */
export function buildRecord(
  metainfo: Metainfo,
  fileCids: ReadonlyMap<number, string>,
  options: BuildRecordOptions = {},
): TorrentRecord {
  const { info } = metainfo
  const files: RecordFile[] = []
  info.files.forEach((file, index) => {
    if (file.virtual) return
    const cid = fileCids.get(index)
    const isData = !file.padding && file.length > 0
    if (isData && cid === undefined) {
      throw new RecordError('GW_ERR_RECORD_INCOMPLETE', `file ${file.path.join('/')} has no Codex CID`, {
        field: `files[${files.length}].cid`,
      })
    }
    files.push({
      path: [...file.path],
      length: file.length,
      ...(file.padding ? { padding: true as const } : {}),
      ...(file.piecesRoot ? { piecesRoot: toHex(file.piecesRoot) } : {}),
      ...(isData && cid !== undefined ? { cid: canonicalCid(cid, `files[${files.length}].cid`) } : {}),
    })
  })
  let torrent: string | undefined
  if (options.originalTorrent !== undefined) {
    if (!equalBuffers(infoBytesOf(options.originalTorrent, 'torrent'), info.infoBytes)) {
      throw new RecordError('GW_ERR_RECORD_TORRENT_MISMATCH', 'the original .torrent has another info dict', {
        field: 'torrent',
      })
    }
    torrent = toBase64(options.originalTorrent)
  }
  const layers: Record<string, string> = {}
  for (const hex of [...metainfo.pieceLayers.keys()].sort()) {
    const layer = metainfo.pieceLayers.get(hex)
    if (layer !== undefined) layers[hex] = toBase64(layer)
  }
  const fields: RecordTorrentFields = {
    ...(metainfo.comment !== undefined ? { comment: metainfo.comment } : {}),
    ...(metainfo.createdBy !== undefined ? { createdBy: metainfo.createdBy } : {}),
    ...(metainfo.creationDate !== undefined ? { creationDate: metainfo.creationDate } : {}),
  }
  return {
    format: RECORD_FORMAT,
    version: RECORD_VERSION,
    name: info.name,
    ...(info.infoHashV1 ? { infoHashV1: toHex(info.infoHashV1) } : {}),
    ...(info.infoHashV2 ? { infoHashV2: toHex(info.infoHashV2) } : {}),
    info: toBase64(info.infoBytes),
    ...(torrent !== undefined ? { torrent } : {}),
    announce: metainfo.announce.map((tier) => [...tier]),
    urlList: [...metainfo.urlList],
    pieceLayers: layers,
    files,
    ...(Object.keys(fields).length > 0 ? { torrentFields: fields } : {}),
    createdBy: options.createdBy ?? DEFAULT_RECORD_CREATED_BY,
    createdAt: (options.createdAt ?? new Date()).toISOString(),
  }
}

// ---- rebuild the .torrent ----------------------------------------------------------------------

/**
 * The .torrent of a record, bit-exact: the original bytes when the record has them (and their
 * info dict is the record's); otherwise a canonical .torrent around the exact info bytes (outer
 * dict bencoded by hand so the info dict is embedded unchanged, BEP3 sorted keys), written with
 * the conventions of our creator (`announce` = first URL, `announce-list` when there is more than
 * one URL, `url-list` a string when there is one web seed, `piece layers` for v2 and hybrid).
 */
export function torrentFromRecord(r: TorrentRecord): Uint8Array {
  const infoBytes = fromBase64(r.info, 'info')
  if (r.torrent !== undefined) {
    const original = fromBase64(r.torrent, 'torrent')
    if (equalBuffers(infoBytesOf(original, 'torrent'), infoBytes)) return original
  }
  let version: TorrentInfo['version']
  try {
    version = parseInfoDict(infoBytes).version
  } catch (cause) {
    throw new RecordError('GW_ERR_RECORD_INFO', 'invalid info dict', { field: 'info', cause })
  }
  const layers = new Map<string, Uint8Array>()
  for (const [hex, b64] of Object.entries(r.pieceLayers))
    layers.set(hex, fromBase64(b64, `pieceLayers.${hex}`))
  return canonicalTorrent(infoBytes, version, r.announce, r.urlList, layers, r.torrentFields ?? {})
}

/**
 * A .torrent for a metainfo without its original bytes (e.g. after a magnet start): the same
 * canonical form as `torrentFromRecord`, around the exact info bytes (same info hashes).
 */
export function torrentFromMetainfo(metainfo: Metainfo): Uint8Array {
  return canonicalTorrent(
    metainfo.info.infoBytes,
    metainfo.info.version,
    metainfo.announce,
    metainfo.urlList,
    metainfo.pieceLayers,
    {
      ...(metainfo.comment !== undefined ? { comment: metainfo.comment } : {}),
      ...(metainfo.createdBy !== undefined ? { createdBy: metainfo.createdBy } : {}),
      ...(metainfo.creationDate !== undefined ? { creationDate: metainfo.creationDate } : {}),
    },
  )
}

/** The outer dict bencoded by hand (BEP3 sorted keys) so `infoBytes` is embedded unchanged. */
function canonicalTorrent(
  infoBytes: Uint8Array,
  version: TorrentInfo['version'],
  announce: readonly (readonly string[])[],
  urlList: readonly string[],
  pieceLayers: ReadonlyMap<string, Uint8Array>,
  fields: RecordTorrentFields,
): Uint8Array {
  const urls = announce.flat()
  const entries = new Map<string, Uint8Array>()
  if (urls[0] !== undefined) entries.set('announce', encodeBencode(urls[0]))
  if (urls.length > 1) entries.set('announce-list', encodeBencode(announce.map((t) => [...t])))
  if (fields.comment !== undefined) entries.set('comment', encodeBencode(fields.comment))
  if (fields.createdBy !== undefined) entries.set('created by', encodeBencode(fields.createdBy))
  if (fields.creationDate !== undefined) entries.set('creation date', encodeBencode(fields.creationDate))
  entries.set('info', infoBytes)
  if (version !== 'v1') {
    const layers = new Map<string, Uint8Array>()
    for (const [hex, layer] of pieceLayers)
      layers.set(Buffer.from(fromHex(hex, 32)).toString('latin1'), layer)
    entries.set('piece layers', encodeBencode(layers))
  }
  if (urlList.length === 1) entries.set('url-list', encodeBencode(urlList[0] as string))
  else if (urlList.length > 1) entries.set('url-list', encodeBencode([...urlList]))
  const parts: Uint8Array[] = [Buffer.from('d')]
  for (const key of [...entries.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
    parts.push(encodeBencode(Buffer.from(key)), entries.get(key) as Uint8Array)
  }
  parts.push(Buffer.from('e'))
  return new Uint8Array(Buffer.concat(parts))
}
