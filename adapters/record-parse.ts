/**
 * Strict validation of torrent records (`adapters/RECORD.md`): JSON shape, format and version,
 * base64, the info dict (it must hash to the recorded info hashes, BEP3/BEP52), the file list (it
 * must equal the info dict's), BEP52 piece layers (they must hash to their roots), Codex manifest
 * CIDs, and the original .torrent (it must carry the same info dict). Pure, no I/O.
 */

import { fromHex, toHex } from '../gateway/protocol/hex.ts'
import { verifyPieceLayer } from '../gateway/protocol/merkle.ts'
import { parseInfoDict, parseTorrent } from '../gateway/protocol/metainfo.ts'
import type { Metainfo, TorrentInfo } from '../gateway/protocol/types.ts'
import {
  canonicalCid,
  equalBuffers,
  fromBase64,
  MAX_RECORD_BYTES,
  type ParsedRecord,
  RECORD_FORMAT,
  RECORD_VERSION,
  RecordError,
  type TorrentRecord,
} from './record-format.ts'

const TOP_KEYS = new Set([
  'format',
  'version',
  'name',
  'infoHashV1',
  'infoHashV2',
  'info',
  'torrent',
  'announce',
  'urlList',
  'pieceLayers',
  'files',
  'torrentFields',
  'createdBy',
  'createdAt',
])
const FILE_KEYS = new Set(['path', 'length', 'padding', 'piecesRoot', 'cid'])
const FIELD_KEYS = new Set(['comment', 'createdBy', 'creationDate'])

/**
 * Parses and strictly validates a record: JSON shape, format and version, base64, the info dict
 * (it must hash to the recorded info hashes), the file list (must equal the info dict's), piece
 * layers (must hash to their roots), CIDs (must parse as Codex manifest CIDs), and the original
 * .torrent (must contain the same info dict).
 */
export function parseRecord(bytes: Uint8Array): ParsedRecord {
  if (bytes.byteLength > MAX_RECORD_BYTES) {
    throw new RecordError(
      'GW_ERR_RECORD_TOO_LARGE',
      `record of ${bytes.byteLength} bytes exceeds ${MAX_RECORD_BYTES}`,
    )
  }
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (cause) {
    throw new RecordError('GW_ERR_RECORD_JSON', 'not valid UTF-8 JSON', { cause })
  }
  const o = asObject(value, '')
  if (o.format !== RECORD_FORMAT) {
    throw new RecordError('GW_ERR_RECORD_FORMAT', `expected "${RECORD_FORMAT}"`, { field: 'format' })
  }
  if (o.version !== RECORD_VERSION) {
    throw new RecordError('GW_ERR_RECORD_VERSION', `unsupported version ${JSON.stringify(o.version)}`, {
      field: 'version',
    })
  }
  onlyKeys(o, TOP_KEYS, '')
  const infoBytes = fromBase64(str(o, 'info'), 'info')
  let info: TorrentInfo
  try {
    info = parseInfoDict(infoBytes)
  } catch (cause) {
    throw new RecordError('GW_ERR_RECORD_INFO', `invalid info dict: ${(cause as Error).message}`, {
      field: 'info',
      cause,
    })
  }
  checkHash(o, 'infoHashV1', info.infoHashV1)
  checkHash(o, 'infoHashV2', info.infoHashV2)
  if (str(o, 'name') !== info.name) {
    throw new RecordError('GW_ERR_RECORD_FILES_MISMATCH', 'differs from the info dict name', {
      field: 'name',
    })
  }
  const fileCids = checkFiles(o.files, info)
  const pieceLayers = checkPieceLayers(o.pieceLayers, info)
  let torrentBytes: Uint8Array | undefined
  if (o.torrent !== undefined) {
    torrentBytes = fromBase64(str(o, 'torrent'), 'torrent')
    let original: Metainfo
    try {
      original = parseTorrent(torrentBytes)
    } catch (cause) {
      throw new RecordError('GW_ERR_RECORD_TORRENT_MISMATCH', 'the original .torrent does not parse', {
        field: 'torrent',
        cause,
      })
    }
    if (!equalBuffers(original.info.infoBytes, infoBytes)) {
      throw new RecordError('GW_ERR_RECORD_TORRENT_MISMATCH', 'the original .torrent has another info dict', {
        field: 'torrent',
      })
    }
  }
  checkTiers(o.announce)
  checkStrings(o.urlList, 'urlList')
  if (o.torrentFields !== undefined) checkTorrentFields(o.torrentFields)
  str(o, 'createdBy')
  if (Number.isNaN(Date.parse(str(o, 'createdAt')))) {
    throw new RecordError('GW_ERR_RECORD_FIELD', 'not a date', { field: 'createdAt' })
  }
  return {
    record: o as unknown as TorrentRecord,
    info,
    ...(torrentBytes !== undefined ? { torrentBytes } : {}),
    pieceLayers,
    fileCids,
  }
}

function checkHash(
  o: Record<string, unknown>,
  key: 'infoHashV1' | 'infoHashV2',
  actual: Uint8Array | undefined,
): void {
  const recorded = o[key]
  if (actual === undefined && recorded === undefined) return
  if (actual === undefined || typeof recorded !== 'string' || recorded !== toHex(actual)) {
    throw new RecordError('GW_ERR_RECORD_HASH_MISMATCH', 'does not match the hash of the info dict', {
      field: key,
    })
  }
}

/** The file list must be the info dict's entries (virtual v2 gaps excluded), in order. */
function checkFiles(value: unknown, info: TorrentInfo): Map<number, string> {
  if (!Array.isArray(value)) throw new RecordError('GW_ERR_RECORD_FIELD', 'not a list', { field: 'files' })
  const entries = info.files.map((file, index) => ({ file, index })).filter((e) => !e.file.virtual)
  if (value.length !== entries.length) {
    throw new RecordError(
      'GW_ERR_RECORD_FILES_MISMATCH',
      `${value.length} files, the info dict has ${entries.length}`,
      {
        field: 'files',
      },
    )
  }
  const cids = new Map<number, string>()
  entries.forEach(({ file, index }, i) => {
    const field = `files[${i}]`
    const f = asObject(value[i], field)
    onlyKeys(f, FILE_KEYS, field)
    const path = f.path
    const same =
      Array.isArray(path) &&
      path.length === file.path.length &&
      path.every((c, k) => c === file.path[k]) &&
      f.length === file.length &&
      (f.padding === true) === file.padding &&
      (f.padding === undefined || f.padding === true) &&
      f.piecesRoot === (file.piecesRoot ? toHex(file.piecesRoot) : undefined)
    if (!same) {
      throw new RecordError('GW_ERR_RECORD_FILES_MISMATCH', 'differs from the info dict entry', { field })
    }
    const isData = !file.padding && file.length > 0
    if (f.cid === undefined) {
      if (isData)
        throw new RecordError('GW_ERR_RECORD_INCOMPLETE', 'a data file needs a CID', {
          field: `${field}.cid`,
        })
      return
    }
    if (!isData)
      throw new RecordError('GW_ERR_RECORD_CID', 'only data files have a CID', { field: `${field}.cid` })
    if (typeof f.cid !== 'string')
      throw new RecordError('GW_ERR_RECORD_CID', 'not a string', { field: `${field}.cid` })
    cids.set(index, canonicalCid(f.cid, `${field}.cid`))
  })
  return cids
}

/** BEP52: one layer per file larger than a piece, each hashing up to its root. */
function checkPieceLayers(value: unknown, info: TorrentInfo): Map<string, Uint8Array> {
  const o = asObject(value, 'pieceLayers')
  const needed = new Map<string, number>()
  for (const f of info.files) {
    if (f.piecesRoot !== undefined && f.length > info.pieceLength) needed.set(toHex(f.piecesRoot), f.length)
  }
  const layers = new Map<string, Uint8Array>()
  for (const [hex, b64] of Object.entries(o)) {
    const field = `pieceLayers.${hex}`
    const length = needed.get(hex)
    if (length === undefined) {
      throw new RecordError('GW_ERR_RECORD_PIECE_LAYERS', 'no file larger than a piece has this root', {
        field,
      })
    }
    if (typeof b64 !== 'string') throw new RecordError('GW_ERR_RECORD_FIELD', 'not a string', { field })
    const layer = fromBase64(b64, field)
    if (verifyPieceLayer(fromHex(hex, 32), layer, length, info.pieceLength) !== 'ok') {
      throw new RecordError('GW_ERR_RECORD_PIECE_LAYERS', 'does not hash to its pieces root', { field })
    }
    layers.set(hex, layer)
  }
  for (const hex of needed.keys()) {
    if (!layers.has(hex)) {
      throw new RecordError('GW_ERR_RECORD_PIECE_LAYERS', 'missing', { field: `pieceLayers.${hex}` })
    }
  }
  return layers
}

function checkTiers(value: unknown): void {
  if (!Array.isArray(value)) throw new RecordError('GW_ERR_RECORD_FIELD', 'not a list', { field: 'announce' })
  for (const [t, tier] of value.entries()) checkStrings(tier, `announce[${t}]`)
}

function checkStrings(value: unknown, field: string): void {
  if (!Array.isArray(value) || !value.every((u) => typeof u === 'string' && u !== '')) {
    throw new RecordError('GW_ERR_RECORD_FIELD', 'not a list of non-empty strings', { field })
  }
}

function checkTorrentFields(value: unknown): void {
  const o = asObject(value, 'torrentFields')
  onlyKeys(o, FIELD_KEYS, 'torrentFields')
  for (const key of ['comment', 'createdBy'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'string') {
      throw new RecordError('GW_ERR_RECORD_FIELD', 'not a string', { field: `torrentFields.${key}` })
    }
  }
  if (o.creationDate !== undefined && !Number.isSafeInteger(o.creationDate)) {
    throw new RecordError('GW_ERR_RECORD_FIELD', 'not an integer', { field: 'torrentFields.creationDate' })
  }
}

// ---- small helpers -----------------------------------------------------------------------------

function asObject(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RecordError('GW_ERR_RECORD_FIELD', 'not an object', { field: field || '(record)' })
  }
  return value as Record<string, unknown>
}

function onlyKeys(o: Record<string, unknown>, allowed: ReadonlySet<string>, field: string): void {
  for (const key of Object.keys(o)) {
    if (!allowed.has(key)) {
      throw new RecordError('GW_ERR_RECORD_FIELD', 'unknown key', { field: field ? `${field}.${key}` : key })
    }
  }
}

function str(o: Record<string, unknown>, key: string): string {
  const v = o[key]
  if (typeof v !== 'string')
    throw new RecordError('GW_ERR_RECORD_FIELD', 'missing or not a string', { field: key })
  return v
}
