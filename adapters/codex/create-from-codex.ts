/**
 * `createTorrentFromCodex`: makes a v1 / v2 / hybrid torrent (BEP3, BEP52, BEP47 pads) from files
 * that are already datasets in Codex, identified by their manifest CIDs, and tells which CID
 * backs each `info.files` entry (what `CodexSeedStore` needs to seed it).
 *
 * - Each CID's manifest is fetched first (`GET /data/{cid}/network/manifest`) for the dataset size
 *   and filename; a CID that is not a manifest (raw blocks cannot be downloaded, NOTES.md §1.2,
 *   §1.7.4) or that the node cannot find is refused with a typed error before any hashing.
 * - Each file's bytes are streamed from Codex straight into `createTorrent` (never buffered). A
 *   download cut mid-body resumes at the byte it stopped (`downloadRange`: a real range when the
 *   node has them, else a re-stream that skips, NOTES.md §1.4), a bounded number of times.
 * - The output is exactly what `createTorrent` makes from the same bytes, names and options, so
 *   the info hash equals a torrent created from local copies of the files.
 * - Dedup: a file whose v2 `pieces root` is already known (e.g. the catalog's
 *   `findCidByPiecesRoot`) under another CID whose dataset has the same size maps to that CID, so
 *   one content is referenced once (a v2 root never equals a Codex CID, NOTES.md §2).
 */

import type { Readable } from 'node:stream'
import { formatCid, isManifestCid, parseCid } from '../../codex-client/cid.ts'
import {
  CodexAbortError,
  CodexBadRequestError,
  CodexError,
  CodexNotFoundError,
  CodexValidationError,
} from '../../codex-client/errors.ts'
import { sleep } from '../../gateway/engine/abort.ts'
import {
  type CreateTorrentInit,
  createTorrent,
  type TorrentSourceFile,
} from '../../gateway/protocol/create-torrent.ts'
import { CreateTorrentError } from '../../gateway/protocol/errors.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { magnetFromMetainfo } from '../../gateway/protocol/magnet.ts'
import type { AbortOptions, Metainfo } from '../../gateway/protocol/types.ts'

/** What creation needs of `CodexClient` (which satisfies it). */
export interface CodexSourceClient {
  fetchManifest(
    cid: string,
    options: AbortOptions,
  ): Promise<{
    readonly cid: string
    readonly manifest: { readonly datasetSize: number; readonly filename: string | null }
  }>
  download(cid: string, options: AbortOptions): Promise<{ readonly body: Readable; readonly length: number }>
  downloadRange(
    cid: string,
    offset: number,
    length: number,
    options: AbortOptions,
  ): Promise<{ readonly body: Readable; readonly length: number }>
}

/** A known `pieces root → CID` mapping (the catalog has one). */
export interface PiecesRootIndex {
  findCidByPiecesRoot(rootHex: string): string | undefined
}

export interface CodexSourceFile {
  /** Manifest CID of the dataset; omit for an empty file (Codex cannot store 0 bytes, NOTES.md §1.2). */
  readonly cid?: string
  /**
   * Path below the torrent name. Single-file torrents (one file) use its last component as the
   * default name; an empty path takes the manifest's filename.
   */
  readonly path: readonly string[]
}

/** The options passed through to `createTorrent` as they are. */
type PassedCreateOptions =
  | 'version'
  | 'pieceLength'
  | 'trackers'
  | 'webseeds'
  | 'private'
  | 'comment'
  | 'createdBy'
  | 'creationDate'

export interface CreateFromCodexInit extends Pick<CreateTorrentInit, PassedCreateOptions> {
  readonly client: CodexSourceClient
  /** One file = a single-file torrent. */
  readonly files: readonly CodexSourceFile[]
  /** Torrent name; required for several files. Single file: defaults to its path / filename. */
  readonly name?: string
  readonly dedup?: PiecesRootIndex
  /** Download tries per file (resuming where a cut body stopped). 1..10. @default 3 */
  readonly attempts?: number
}

export interface CreatedFromCodex {
  readonly metainfo: Metainfo
  readonly torrentBytes: Uint8Array
  readonly magnet: string
  /** Per `metainfo.info.files` index: the Codex manifest CID; undefined for padding and empty files. */
  readonly fileCids: readonly (string | undefined)[]
  /** Files mapped to an already known CID by dedup (`fileIndex` into `info.files`). */
  readonly reused: readonly {
    readonly fileIndex: number
    readonly cid: string
    readonly requestedCid: string
  }[]
}

export type CreateFromCodexErrorCode =
  /** Bad input: no files, malformed CID, missing name, bad torrent options. */
  | 'GW_ERR_CODEX_CREATE_INVALID'
  /** The CID is not a Codex manifest CID (e.g. a block or tree CID). */
  | 'GW_ERR_CODEX_CREATE_NOT_MANIFEST'
  /** The node does not have the dataset (404) or refuses the CID (400). */
  | 'GW_ERR_CODEX_CREATE_NOT_FOUND'
  /** The dataset streamed a different number of bytes than its manifest says. */
  | 'GW_ERR_CODEX_CREATE_LENGTH'
  /** Codex failed (after retries); see `cause`. */
  | 'GW_ERR_CODEX_CREATE_IO'

export class CreateFromCodexError extends Error {
  readonly code: CreateFromCodexErrorCode
  readonly cid: string | undefined

  constructor(
    code: CreateFromCodexErrorCode,
    message: string,
    details: { cid?: string; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'CreateFromCodexError'
    this.code = code
    this.cid = details.cid
  }
}

const MANIFEST_CONCURRENCY = 4
const RETRY_DELAY_MS = 200

interface Resolved {
  readonly cid: string | undefined
  readonly path: string[]
  readonly length: number
}

/** Creates the torrent; see the module comment. */
export async function createTorrentFromCodex(
  init: CreateFromCodexInit,
  options: AbortOptions = {},
): Promise<CreatedFromCodex> {
  const { signal } = options
  signal?.throwIfAborted()
  const attempts = init.attempts ?? 3
  if (!Number.isSafeInteger(attempts) || attempts < 1 || attempts > 10) invalid('attempts must be in 1..10')
  if (!Array.isArray(init.files) || init.files.length === 0) invalid('no files')
  const single = init.files.length === 1
  const sizes = await mapBounded(init.files, MANIFEST_CONCURRENCY, (f) =>
    manifestOf(init.client, f.cid, signal),
  )
  let name = init.name
  const resolved: Resolved[] = init.files.map((file, i) => {
    const meta = sizes[i]!
    const path = file.path.length > 0 ? [...file.path] : meta.filename ? [meta.filename] : []
    if (single) {
      name ??= path.at(-1)
      if (name === undefined) invalid('no name: give `name`, a path, or upload the file with a filename')
      return { cid: meta.cid, path: [name], length: meta.length }
    }
    if (path.length === 0) invalid(`file ${i} has no path and its dataset no filename`)
    return { cid: meta.cid, path, length: meta.length }
  })
  if (name === undefined) invalid('`name` is required for a multi-file torrent')
  const byPath = new Map<string, string | undefined>()
  for (const r of resolved) byPath.set(pathKey(r.path), r.cid)
  const sources: TorrentSourceFile[] = resolved.map((r) => ({
    path: r.path,
    length: r.length,
    open: (o: AbortOptions = {}) =>
      r.cid === undefined || r.length === 0
        ? emptyStream()
        : codexFileStream(init.client, r.cid, r.length, o.signal ?? signal, attempts),
  }))
  const createInit: CreateTorrentInit = {
    name,
    files: sources,
    layout: single ? 'single' : 'multi',
    ...(init.version !== undefined ? { version: init.version } : {}),
    ...(init.pieceLength !== undefined ? { pieceLength: init.pieceLength } : {}),
    ...(init.trackers !== undefined ? { trackers: init.trackers } : {}),
    ...(init.webseeds !== undefined ? { webseeds: init.webseeds } : {}),
    ...(init.private !== undefined ? { private: init.private } : {}),
    ...(init.comment !== undefined ? { comment: init.comment } : {}),
    ...(init.createdBy !== undefined ? { createdBy: init.createdBy } : {}),
    ...(init.creationDate !== undefined ? { creationDate: init.creationDate } : {}),
  }
  let created: Awaited<ReturnType<typeof createTorrent>>
  try {
    created = await createTorrent(createInit, { ...(signal ? { signal } : {}) })
  } catch (error) {
    throw fromCreateError(error, signal)
  }
  const { metainfo } = created
  const fileCids = metainfo.info.files.map((f) =>
    f.padding || f.length === 0 ? undefined : byPath.get(pathKey(f.path)),
  )
  const reused = await applyDedup(init, metainfo, fileCids, signal)
  return {
    metainfo,
    torrentBytes: created.bytes,
    magnet: magnetFromMetainfo(metainfo),
    fileCids,
    reused,
  }
}

/** Replaces CIDs by known ones for the same `pieces root`, when that dataset has the same size. */
async function applyDedup(
  init: CreateFromCodexInit,
  metainfo: Metainfo,
  fileCids: (string | undefined)[],
  signal: AbortSignal | undefined,
): Promise<CreatedFromCodex['reused']> {
  const reused: { fileIndex: number; cid: string; requestedCid: string }[] = []
  const index = init.dedup
  if (index === undefined) return reused
  const files = metainfo.info.files
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!
    const ours = fileCids[i]
    if (file.piecesRoot === undefined || ours === undefined) continue
    const known = index.findCidByPiecesRoot(toHex(file.piecesRoot))
    if (known === undefined) continue
    let knownText: string
    try {
      knownText = formatCid(parseCid(known))
    } catch {
      continue // a malformed index entry is not ours to fix
    }
    if (knownText === ours) continue
    try {
      const item = await init.client.fetchManifest(knownText, { ...(signal ? { signal } : {}) })
      if (item.manifest.datasetSize !== file.length) continue
    } catch (error) {
      if (signal?.aborted) throw signal.reason
      if (error instanceof CodexError) continue // stale entry: keep the CID we were given
      throw error
    }
    fileCids[i] = knownText
    reused.push({ fileIndex: i, cid: knownText, requestedCid: ours })
  }
  return reused
}

/** Size, filename and normalized CID of one input file. */
async function manifestOf(
  client: CodexSourceClient,
  cid: string | undefined,
  signal: AbortSignal | undefined,
): Promise<{ cid: string | undefined; length: number; filename: string | undefined }> {
  if (cid === undefined) return { cid: undefined, length: 0, filename: undefined }
  let text: string
  let manifestCodec: boolean
  try {
    const parsed = parseCid(cid)
    text = formatCid(parsed)
    manifestCodec = isManifestCid(parsed)
  } catch (cause) {
    throw new CreateFromCodexError('GW_ERR_CODEX_CREATE_INVALID', `invalid CID ${JSON.stringify(cid)}`, {
      cid,
      cause,
    })
  }
  if (!manifestCodec) {
    throw new CreateFromCodexError(
      'GW_ERR_CODEX_CREATE_NOT_MANIFEST',
      `${text} is not a Codex manifest CID`,
      {
        cid: text,
      },
    )
  }
  try {
    const item = await client.fetchManifest(text, { ...(signal ? { signal } : {}) })
    const size = item.manifest.datasetSize
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new CreateFromCodexError('GW_ERR_CODEX_CREATE_LENGTH', `manifest of ${text} has size ${size}`, {
        cid: text,
      })
    }
    return { cid: text, length: size, filename: item.manifest.filename ?? undefined }
  } catch (error) {
    throw codexFailure(error, text, signal)
  }
}

/**
 * The bytes of one dataset, streamed; resumes at the current position after a transient failure
 * (`attempts` tries in all). The body is destroyed when the consumer stops early.
 */
async function* codexFileStream(
  client: CodexSourceClient,
  cid: string,
  length: number,
  signal: AbortSignal | undefined,
  attempts: number,
): AsyncGenerator<Uint8Array, void, undefined> {
  let position = 0
  const opts = signal ? { signal } : {}
  // Bounded: `attempts` ≤ 10 tries; each try either finishes the file or fails.
  for (let attempt = 1; ; attempt++) {
    let body: Readable | undefined
    try {
      if (position === 0) {
        const answer = await client.download(cid, opts)
        body = answer.body
        if (answer.length !== length) {
          throw new CreateFromCodexError(
            'GW_ERR_CODEX_CREATE_LENGTH',
            `dataset ${cid} streams ${answer.length} bytes, its manifest says ${length}`,
            { cid },
          )
        }
      } else {
        const answer = await client.downloadRange(cid, position, length - position, opts)
        body = answer.body
        if (answer.length !== length - position) {
          throw new CreateFromCodexError(
            'GW_ERR_CODEX_CREATE_LENGTH',
            `dataset ${cid} is shorter than ${length}`,
            {
              cid,
            },
          )
        }
      }
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        position += chunk.byteLength
        yield chunk
      }
      return
    } catch (error) {
      const typed = codexFailure(error, cid, signal)
      if (typed.code !== 'GW_ERR_CODEX_CREATE_IO' || !isRetryable(error) || attempt >= attempts) throw typed
      await sleep(RETRY_DELAY_MS * attempt, signal)
    } finally {
      body?.destroy()
    }
  }
}

async function* emptyStream(): AsyncGenerator<Uint8Array, void, undefined> {}

function isRetryable(error: unknown): boolean {
  if (error instanceof CodexNotFoundError || error instanceof CodexBadRequestError) return false
  if (error instanceof CodexValidationError || error instanceof CodexAbortError) return false
  return error instanceof CodexError
}

/** Any failure while talking to Codex → `CreateFromCodexError` (aborts pass through). */
function codexFailure(error: unknown, cid: string, signal: AbortSignal | undefined): CreateFromCodexError {
  if (signal?.aborted) throw signal.reason
  if (error instanceof CreateFromCodexError) return error
  if (error instanceof CodexNotFoundError || error instanceof CodexBadRequestError) {
    return new CreateFromCodexError('GW_ERR_CODEX_CREATE_NOT_FOUND', `Codex does not have ${cid}`, {
      cid,
      cause: error,
    })
  }
  const message = error instanceof Error ? error.message : String(error)
  return new CreateFromCodexError('GW_ERR_CODEX_CREATE_IO', `Codex failed for ${cid}: ${message}`, {
    cid,
    cause: error,
  })
}

/** Errors of `createTorrent`: our own (wrapped as its source I/O errors) come back out unwrapped. */
function fromCreateError(error: unknown, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted) return signal.reason
  if (error instanceof CreateFromCodexError) return error
  if (error instanceof CreateTorrentError) {
    if (error.cause instanceof CreateFromCodexError) return error.cause
    const code =
      error.code === 'BT_ERR_CREATE_INVALID'
        ? 'GW_ERR_CODEX_CREATE_INVALID'
        : error.code === 'BT_ERR_CREATE_LENGTH_MISMATCH'
          ? 'GW_ERR_CODEX_CREATE_LENGTH'
          : 'GW_ERR_CODEX_CREATE_IO'
    return new CreateFromCodexError(code, error.message, { cause: error })
  }
  return error
}

function pathKey(path: readonly string[]): string {
  return JSON.stringify(path)
}

function invalid(message: string): never {
  throw new CreateFromCodexError('GW_ERR_CODEX_CREATE_INVALID', message)
}

async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    // Bounded: each iteration takes the next item.
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}
