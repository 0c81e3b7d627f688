/**
 * The torrent record format (`adapters/RECORD.md`): constants, types, the typed error, the
 * canonical JSON encoding, and small shared helpers (strict base64, Codex manifest CIDs, the
 * exact info-dict bytes of a .torrent). Pure, no I/O.
 */

import { formatCid, isManifestCid, parseCid } from '../codex-client/cid.ts'
import { dictSpan } from '../gateway/protocol/bencode.ts'
import type { TorrentInfo } from '../gateway/protocol/types.ts'

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

// ---- shared helpers ----------------------------------------------------------------------------

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
export function canonicalCid(text: string, field: string): string {
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
export function infoBytesOf(torrent: Uint8Array, field: string): Uint8Array {
  try {
    const span = dictSpan(torrent, 'info')
    if (span !== undefined) return torrent.subarray(span.start, span.end)
  } catch (cause) {
    throw new RecordError('GW_ERR_RECORD_TORRENT_MISMATCH', 'not a bencoded .torrent', { field, cause })
  }
  throw new RecordError('GW_ERR_RECORD_TORRENT_MISMATCH', 'the .torrent has no info dict', { field })
}

export function equalBuffers(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  )
}
