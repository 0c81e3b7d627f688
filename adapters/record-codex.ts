/**
 * Torrent records in Codex: upload a record (`application/json`, NOTES.md §1.3), fetch one with a
 * bounded buffer, and import one into the catalog after checking that every file dataset it
 * names exists in Codex with the right size, so a gateway can seed what another one archived.
 * The record format itself is in `record-format.ts` / `RECORD.md`.
 */

import {
  type CodexClient,
  CodexError,
  CodexNotFoundError,
  CodexTimeoutError,
  formatCid,
  parseCid,
} from '../codex-client/index.ts'
import { Bitfield } from '../gateway/engine/bitfield.ts'
import type { AbortOptions } from '../gateway/protocol/types.ts'
import type { Catalog, CatalogTorrentState, TorrentRow } from './catalog.ts'
import { codexFilename } from './codex/naming.ts'
import {
  encodeRecord,
  MAX_RECORD_BYTES,
  type ParsedRecord,
  RecordError,
  type TorrentRecord,
} from './record-format.ts'
import { parseRecord } from './record-parse.ts'

const RECORD_SUFFIX = '.codex-bt.json'
const RECORD_MIMETYPE = 'application/json'

/** `<safe name>.codex-bt.json`: a filename Codex accepts (NOTES.md §1.3). */
export function recordFilename(name: string): string {
  return `${codexFilename([name], 'torrent')}${RECORD_SUFFIX}`
}

/** Uploads the canonical encoding of `r`; resolves with the record's CID (z-base58btc). */
export async function uploadRecord(
  client: CodexClient,
  r: TorrentRecord,
  options: AbortOptions = {},
): Promise<string> {
  try {
    const cid = await client.upload(encodeRecord(r), {
      filename: recordFilename(r.name),
      mimetype: RECORD_MIMETYPE,
      ...(options.signal ? { signal: options.signal } : {}),
    })
    return formatCid(cid)
  } catch (cause) {
    options.signal?.throwIfAborted()
    throw codexFailure('uploading the record failed', cause)
  }
}

/** Options of `fetchRecord`. */
export interface FetchRecordOptions extends AbortOptions {
  /** @default MAX_RECORD_BYTES (64 MiB) */
  readonly maxBytes?: number
}

/**
 * Downloads (at most `maxBytes`, into one bounded buffer) and validates a record. The record is
 * read through `…/network/stream`: one made by ANOTHER gateway's Codex node is not local here
 * (a local-mode download would answer 404), and that route serves local data too.
 */
export async function fetchRecord(
  client: CodexClient,
  cid: string,
  options: FetchRecordOptions = {},
): Promise<ParsedRecord> {
  const maxBytes = options.maxBytes ?? MAX_RECORD_BYTES
  const text = checkCid(cid)
  let bytes: Uint8Array
  try {
    const download = await client.download(text, {
      mode: 'network-stream',
      ...(options.signal ? { signal: options.signal } : {}),
    })
    if (download.length > maxBytes) {
      download.body.destroy()
      throw new RecordError(
        'GW_ERR_RECORD_TOO_LARGE',
        `record of ${download.length} bytes exceeds ${maxBytes}`,
      )
    }
    // NaN: the node streamed without Content-Length (older builds); read up to `maxBytes`.
    const known = !Number.isNaN(download.length)
    let buffer = new Uint8Array(known ? download.length : Math.min(maxBytes, 64 * 1024))
    let got = 0
    try {
      for await (const chunk of download.body as AsyncIterable<Uint8Array>) {
        if (got + chunk.byteLength > (known ? buffer.byteLength : maxBytes)) {
          const message = known ? 'record body longer than announced' : `record exceeds ${maxBytes} bytes`
          throw new RecordError('GW_ERR_RECORD_TOO_LARGE', message)
        }
        if (got + chunk.byteLength > buffer.byteLength) {
          const grown = new Uint8Array(
            Math.min(maxBytes, Math.max(2 * buffer.byteLength, got + chunk.byteLength)),
          )
          grown.set(buffer.subarray(0, got))
          buffer = grown
        }
        buffer.set(chunk, got)
        got += chunk.byteLength
      }
    } finally {
      download.body.destroy()
    }
    bytes = buffer.subarray(0, got)
  } catch (cause) {
    if (cause instanceof RecordError) throw cause
    options.signal?.throwIfAborted()
    if (cause instanceof CodexNotFoundError) {
      throw new RecordError('GW_ERR_RECORD_NOT_FOUND', `record ${text} is not in Codex`, { cause })
    }
    throw codexFailure(`fetching record ${text} failed`, cause)
  }
  return parseRecord(bytes)
}

/** Options of `importRecord`. */
export interface ImportRecordOptions extends AbortOptions {
  /** Check that every file dataset exists in Codex with the file's size. @default true */
  readonly verifyFiles?: boolean
  /** Catalog state of a newly imported torrent. @default 'archived' */
  readonly state?: CatalogTorrentState
  /** Deadline for a manifest that is not stored locally (Codex would search the network for long, NOTES.md §1.4). @default 30 s */
  readonly manifestTimeoutMs?: number
}

/**
 * Fetches and validates the record at `cid`, checks its files in Codex, then records the torrent
 * in the catalog (origin `import`, file CIDs, record CID, every piece complete) so a
 * `CodexPieceStore` can seed it.
 */
export async function importRecord(
  client: CodexClient,
  catalog: Catalog,
  cid: string,
  options: ImportRecordOptions = {},
): Promise<{ torrent: TorrentRow; parsed: ParsedRecord }> {
  const recordCid = checkCid(cid)
  const parsed = await fetchRecord(client, recordCid, options)
  // Either way every file's manifest is fetched through the network route, which stores the
  // manifest block in the local node: the seed path can then stream the datasets.
  if (options.verifyFiles !== false) await verifyRecordFiles(client, parsed, options)
  else await fetchFileManifests(client, parsed, options)
  const { info, record } = parsed
  const torrent = catalog.transaction(() => {
    const isNew = catalog.getTorrent(record.infoHashV1 ?? record.infoHashV2 ?? '') === undefined
    const row = catalog.upsertTorrent({
      info,
      ...(parsed.torrentBytes !== undefined ? { torrentBytes: parsed.torrentBytes } : {}),
      trackers: record.announce,
      recordCid,
      ...(isNew ? { origin: 'import' as const, state: options.state ?? 'archived' } : {}),
    })
    for (const [index, fileCid] of parsed.fileCids) catalog.setFileCid(row.id, index, fileCid)
    catalog.saveResume(row.id, Bitfield.full(info.pieceCount).toBytes())
    return catalog.getTorrent(row.id) ?? row
  })
  return { torrent, parsed }
}

/**
 * Checks that Codex has every file dataset of a record, with `datasetSize` equal to the file
 * length (`GW_ERR_RECORD_FILE_MISSING` / `GW_ERR_RECORD_FILE_SIZE`).
 */
export async function verifyRecordFiles(
  client: CodexClient,
  parsed: ParsedRecord,
  options: AbortOptions & { readonly manifestTimeoutMs?: number } = {},
): Promise<void> {
  const signal = options.signal
  for (const [index, fileCid] of parsed.fileCids) {
    signal?.throwIfAborted()
    const file = parsed.info.files[index]
    if (file === undefined) continue
    const where = file.path.join('/')
    let datasetSize: number
    try {
      const local = await client.exists(fileCid, signal ? { signal } : {})
      const item = await client.fetchManifest(fileCid, {
        ...(signal ? { signal } : {}),
        ...(local ? {} : { timeoutMs: options.manifestTimeoutMs ?? 30_000 }),
      })
      datasetSize = item.manifest.datasetSize
    } catch (cause) {
      signal?.throwIfAborted()
      if (cause instanceof CodexNotFoundError || cause instanceof CodexTimeoutError) {
        throw new RecordError(
          'GW_ERR_RECORD_FILE_MISSING',
          `dataset ${fileCid} of ${where} is not in Codex`,
          {
            field: `files.${where}`,
            cause,
          },
        )
      }
      throw codexFailure(`checking dataset ${fileCid} of ${where} failed`, cause)
    }
    if (datasetSize !== file.length) {
      throw new RecordError(
        'GW_ERR_RECORD_FILE_SIZE',
        `dataset ${fileCid} of ${where} holds ${datasetSize} bytes, the file has ${file.length}`,
        { field: `files.${where}` },
      )
    }
  }
}

/** Best effort (import without verification): fetches every file manifest, ignores failures. */
async function fetchFileManifests(
  client: CodexClient,
  parsed: ParsedRecord,
  options: AbortOptions & { readonly manifestTimeoutMs?: number },
): Promise<void> {
  const signal = options.signal
  for (const fileCid of parsed.fileCids.values()) {
    signal?.throwIfAborted()
    try {
      await client.fetchManifest(fileCid, {
        ...(signal ? { signal } : {}),
        timeoutMs: options.manifestTimeoutMs ?? 30_000,
      })
    } catch {
      signal?.throwIfAborted() // a missing or unreachable dataset does not stop an unverified import
    }
  }
}

function checkCid(cid: string): string {
  try {
    return formatCid(parseCid(cid))
  } catch (cause) {
    throw new RecordError('GW_ERR_RECORD_CID', `not a CID: ${JSON.stringify(String(cid).slice(0, 80))}`, {
      cause,
    })
  }
}

function codexFailure(message: string, cause: unknown): Error {
  if (!(cause instanceof CodexError)) return cause instanceof Error ? cause : new Error(String(cause))
  return new RecordError('GW_ERR_RECORD_CODEX', `${message}: ${cause.message}`, { cause })
}
