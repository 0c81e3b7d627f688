/**
 * The torrent record: a self-describing, human-readable JSON document stored in Codex whose CID
 * is a torrent's archive address. It carries the exact info dict (so the info hashes can be
 * re-checked), the original .torrent when there was one, trackers, web seeds, BEP52 piece layers
 * and, per file, the Codex manifest CID of its dataset. The format is specified in
 * `adapters/RECORD.md`.
 *
 * This module is pure (no I/O): build, encode (canonical JSON), parse with strict validation, and
 * rebuild the .torrent bit-exactly. Codex I/O (upload, fetch, import) is in `record-codex.ts`,
 * re-exported here.
 */

import { formatCid, isManifestCid, parseCid } from '../codex-client/cid.ts'
import { dictSpan, encodeBencode } from '../gateway/protocol/bencode.ts'
import { fromHex, toHex } from '../gateway/protocol/hex.ts'
import { verifyPieceLayer } from '../gateway/protocol/merkle.ts'
import { parseInfoDict, parseTorrent } from '../gateway/protocol/metainfo.ts'
import type { Metainfo, TorrentInfo } from '../gateway/protocol/types.ts'

export const RECORD_FORMAT = 'codex-bt-record'
export const RECORD_VERSION = 1
/** Largest record accepted by `parseRecord` / `fetchRecord`. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024
export const DEFAULT_RECORD_CREATED_BY = 'codex-bittorrent-gateway/0.1.0'

/** One file entry of a record (entries of the info dict in order, BEP47 pad files included). */
export interface RecordFile {
  readonly path: readonly string[]
  readonly length: number
  readonly padding?: true
  /** BEP52 `pieces root`, hex. */
  readonly piecesRoot?: string
  /** Codex manifest CID (z-base58btc) of the file's dataset; every non-empty data file has one. */
  readonly cid?: string
}

/** Fields of the original .torrent outside the info dict (kept to rebuild it without the bytes). */
export interface RecordTorrentFields {
  readonly comment?: string
  readonly createdBy?: string
  /** Seconds since the epoch. */
  readonly creationDate?: number
}

/** The record document (see `adapters/RECORD.md`). */
export interface TorrentRecord {
  readonly format: typeof RECORD_FORMAT
  readonly version: typeof RECORD_VERSION
  readonly name: string
  readonly infoHashV1?: string
  readonly infoHashV2?: string
  /** Base64 of the exact bencoded info dict. */
  readonly info: string
  /** Base64 of the original .torrent, when the source was one. */
  readonly torrent?: string
  /** BEP12 tracker tiers. */
  readonly announce: readonly (readonly string[])[]
  /** BEP19 web seeds. */
  readonly urlList: readonly string[]
  /** BEP52 piece layers: pieces root hex → base64 of the concatenated layer hashes. */
  readonly pieceLayers: Readonly<Record<string, string>>
  readonly files: readonly RecordFile[]
  readonly torrentFields?: RecordTorrentFields
  /** Software that wrote the record. */
  readonly createdBy: string
  /** ISO 8601. */
  readonly createdAt: string
}

/** A validated record with its decoded parts. */
export interface ParsedRecord {
  readonly record: TorrentRecord
  readonly info: TorrentInfo
  /** The original .torrent bytes, when the record has them. */
  readonly torrentBytes?: Uint8Array
  /** pieces root hex → layer bytes. */
  readonly pieceLayers: ReadonlyMap<string, Uint8Array>
  /** Codex CID by index into `info.files` (data files only). */
  readonly fileCids: ReadonlyMap<number, string>
}

export type RecordErrorCode =
  | 'GW_ERR_RECORD_TOO_LARGE'
  | 'GW_ERR_RECORD_JSON'
  | 'GW_ERR_RECORD_FORMAT'
  | 'GW_ERR_RECORD_VERSION'
  | 'GW_ERR_RECORD_FIELD'
  | 'GW_ERR_RECORD_BASE64'
  | 'GW_ERR_RECORD_INFO'
  | 'GW_ERR_RECORD_HASH_MISMATCH'
  | 'GW_ERR_RECORD_FILES_MISMATCH'
  | 'GW_ERR_RECORD_TORRENT_MISMATCH'
  | 'GW_ERR_RECORD_PIECE_LAYERS'
  | 'GW_ERR_RECORD_CID'
  | 'GW_ERR_RECORD_INCOMPLETE'
  | 'GW_ERR_RECORD_NOT_FOUND'
  | 'GW_ERR_RECORD_FILE_MISSING'
  | 'GW_ERR_RECORD_FILE_SIZE'
  | 'GW_ERR_RECORD_CODEX'

/** Every record failure; `field` names the offending field when there is one. */
export class RecordError extends Error {
  readonly code: RecordErrorCode
  readonly field: string | undefined

  constructor(code: RecordErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(
      options.field ? `${options.field}: ${message}` : message,
      options.cause === undefined ? undefined : { cause: options.cause },
    )
    this.name = 'RecordError'
    this.code = code
    this.field = options.field
  }
}

// ---- build and encode --------------------------------------------------------------------------

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

/**
 * Canonical encoding: keys in the documented order, optional keys omitted when absent, piece
 * layers sorted by root, two-space indentation, trailing newline. Equal records give equal bytes
 * (and so the same Codex CID, NOTES.md §1.3).
 */
export function encodeRecord(r: TorrentRecord): Uint8Array {
  const layers: Record<string, string> = {}
  for (const key of Object.keys(r.pieceLayers).sort()) layers[key] = r.pieceLayers[key] as string
  const ordered = {
    format: r.format,
    version: r.version,
    name: r.name,
    infoHashV1: r.infoHashV1,
    infoHashV2: r.infoHashV2,
    info: r.info,
    torrent: r.torrent,
    announce: r.announce,
    urlList: r.urlList,
    pieceLayers: layers,
    files: r.files.map((f) => ({
      path: f.path,
      length: f.length,
      padding: f.padding,
      piecesRoot: f.piecesRoot,
      cid: f.cid,
    })),
    torrentFields:
      r.torrentFields === undefined
        ? undefined
        : {
            comment: r.torrentFields.comment,
            createdBy: r.torrentFields.createdBy,
            creationDate: r.torrentFields.creationDate,
          },
    createdBy: r.createdBy,
    createdAt: r.createdAt,
  }
  return new TextEncoder().encode(`${JSON.stringify(ordered, null, 2)}\n`)
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
  const version = parseInfoDict(infoBytes).version
  const urls = r.announce.flat()
  const entries = new Map<string, Uint8Array>()
  if (urls[0] !== undefined) entries.set('announce', encodeBencode(urls[0]))
  if (urls.length > 1) entries.set('announce-list', encodeBencode(r.announce.map((t) => [...t])))
  const fields = r.torrentFields
  if (fields?.comment !== undefined) entries.set('comment', encodeBencode(fields.comment))
  if (fields?.createdBy !== undefined) entries.set('created by', encodeBencode(fields.createdBy))
  if (fields?.creationDate !== undefined) entries.set('creation date', encodeBencode(fields.creationDate))
  entries.set('info', infoBytes)
  if (version !== 'v1') {
    const layers = new Map<string, Uint8Array>()
    for (const [hex, b64] of Object.entries(r.pieceLayers)) {
      layers.set(Buffer.from(fromHex(hex, 32)).toString('latin1'), fromBase64(b64, `pieceLayers.${hex}`))
    }
    entries.set('piece layers', encodeBencode(layers))
  }
  if (r.urlList.length === 1) entries.set('url-list', encodeBencode(r.urlList[0] as string))
  else if (r.urlList.length > 1) entries.set('url-list', encodeBencode([...r.urlList]))
  const parts: Uint8Array[] = [Buffer.from('d')]
  for (const key of [...entries.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
    parts.push(encodeBencode(Buffer.from(key)), entries.get(key) as Uint8Array)
  }
  parts.push(Buffer.from('e'))
  return new Uint8Array(Buffer.concat(parts))
}

// ---- parse and validate ------------------------------------------------------------------------

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

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Strict standard base64 (RFC 4648 §4, padded). */
export function fromBase64(text: string, field: string): Uint8Array {
  if (typeof text !== 'string' || !BASE64.test(text)) {
    throw new RecordError('GW_ERR_RECORD_BASE64', 'not padded standard base64', { field })
  }
  return new Uint8Array(Buffer.from(text, 'base64'))
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

/** Parses a CID (any multibase Codex accepts) and returns its z-base58btc form; manifest CIDs only. */
function canonicalCid(text: string, field: string): string {
  try {
    const cid = parseCid(text)
    if (!isManifestCid(cid)) throw new Error('not a Codex manifest CID')
    return formatCid(cid)
  } catch (cause) {
    throw new RecordError(
      'GW_ERR_RECORD_CID',
      `not a Codex manifest CID: ${JSON.stringify(text.slice(0, 80))}`,
      {
        field,
        cause,
      },
    )
  }
}

/** The exact info-dict bytes inside a .torrent. */
function infoBytesOf(torrent: Uint8Array, field: string): Uint8Array {
  try {
    const span = dictSpan(torrent, 'info')
    if (span !== undefined) return torrent.subarray(span.start, span.end)
  } catch (cause) {
    throw new RecordError('GW_ERR_RECORD_TORRENT_MISMATCH', 'not a bencoded .torrent', { field, cause })
  }
  throw new RecordError('GW_ERR_RECORD_TORRENT_MISMATCH', 'the .torrent has no info dict', { field })
}

function equalBuffers(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  )
}

export {
  fetchRecord,
  type ImportRecordOptions,
  importRecord,
  recordFilename,
  uploadRecord,
} from './record-codex.ts'
