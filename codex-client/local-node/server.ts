/**
 * The HTTP side of the local Codex node: every route of nim-codex master's REST API
 * (`codex/rest/api.nim`, NOTES §1.2) with Codex's status codes, bodies and content types:
 *
 * - errors are plain text with `Content-Type: text/html` (nim-presto default);
 * - text successes are `text/plain`, JSON is `application/json` (no charset parameter);
 * - unknown routes and unregistered methods (including HEAD) answer 404 with an empty body;
 * - `OPTIONS` on `/data`, `/data/{cid}` and `/sales/availability/{id}` answers 204 (no CORS
 *   origin is configured, so no CORS headers);
 * - marketplace routes answer 503 `Persistence is not enabled` (a node without persistence).
 *
 * Request bodies are never parsed by fastify: one catch-all content-type parser hands the raw
 * stream to the handler. `POST /data` hides its `Content-Type` from fastify (whose media-type
 * parser would refuse `Content-Type: ` or `foo` before the handler runs) and reads the raw header
 * itself, like Codex: empty or absent → no mimetype, unknown → 422.
 *
 * Path parameters are matched on the raw path, as presto does: a percent-escaped CID is not
 * decoded and answers 400 `Incorrect Cid`.
 */
import type { IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify'
import { base58btc } from 'multiformats/bases/base58'
import type { Logger } from 'pino'
import type { CID } from '../cid.ts'
import { formatCid, isManifestCid, parseCid } from '../cid.ts'
import { isValidCodexFilenameBytes, parseContentDispositionFilename } from '../filename.ts'
import type { Manifest } from '../manifest.ts'
import { dataItemToJson, decodeManifest } from '../manifest.ts'
import { isValidCodexMimetype } from '../mimetypes.ts'
import { EmptyTreeError } from '../tree.ts'
import { contentLength, ingestDataset, writeDataset } from './dataset.ts'
import type { FaultController, RequestInfo } from './faults.ts'
import { API_PREFIX } from './faults.ts'
import type { NodeIdentity } from './identity.ts'
import { prefersText } from './identity.ts'
import type { DiskStore } from './store.ts'
import { BlockInUseError } from './store.ts'

export interface ServerComponents {
  readonly store: DiskStore
  readonly faults: FaultController
  readonly identity: NodeIdentity
  readonly dataDir: string
  readonly networkMissingTimeoutMs: number
  /** Aborted when the node closes (ends waits such as the network-miss delay). */
  readonly signal: AbortSignal
  readonly logger: boolean | Logger
}

/** Body of the 404 a network route gives for a CID no peer has (guess: Codex would retry ~100 min). */
export const NETWORK_MISSING_MESSAGE = 'Block not found'
export const LOCAL_MISSING_MESSAGE =
  'The requested CID could not be retrieved (Block not found in local store).'
export const MARKETPLACE_DISABLED_MESSAGE = 'Persistence is not enabled'
/**
 * nim-codex `fetchManifest` (`codex/node.nim`) when the CID's block does not decode as a manifest.
 * A stored block of another codec gets it too: `isManifest` (`codex/manifest/manifest.nim`)
 * answers `success(false)` for other codecs, so `fetchManifest` fetches the block and fails to
 * decode it (its `CID has invalid content type for manifest` branch needs `isManifest` to FAIL,
 * which a parsed CID never does).
 */
export const UNDECODABLE_MANIFEST_MESSAGE = 'Unable to decode as manifest'
/** presto's error for a `{peerId}` path parameter that does not decode. */
export const BAD_PEER_ID_MESSAGE = 'peerid: incorrect PeerId string'

const CODEX_VERSION = 'v0.0.0-local'
const CODEX_REVISION = 'local'

function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  // latin1 keeps header bytes echoed in a message (the MIME type) byte-for-byte
  return reply.code(status).header('content-type', 'text/html').send(Buffer.from(message, 'latin1'))
}

function sendText(reply: FastifyReply, body: string, status = 200): FastifyReply {
  return reply.code(status).header('content-type', 'text/plain').send(Buffer.from(body, 'utf8'))
}

function sendJson(reply: FastifyReply, value: unknown, status = 200, pretty = false): FastifyReply {
  const body = pretty ? JSON.stringify(value, null, 2) : JSON.stringify(value)
  return reply.code(status).header('content-type', 'application/json').send(Buffer.from(body, 'utf8'))
}

function sendEmpty(reply: FastifyReply, status: number): FastifyReply {
  return reply.code(status).send()
}

/** A latin1 header value (Node's decoding) to the raw bytes the client sent. */
function headerBytes(value: string): Buffer {
  return Buffer.from(value, 'latin1')
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

type CidParams = { cid: string }

/** The `Content-Type` of a request exactly as sent (first occurrence), from the raw header list. */
function rawContentType(req: FastifyRequest): string | undefined {
  const raw = req.raw.rawHeaders
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === 'content-type') return raw[i + 1]
  }
  return undefined
}

/** The raw (undecoded) path segment at `index` (0 = the first segment after the leading `/`). */
function rawPathSegment(req: FastifyRequest, index: number): string | undefined {
  const url = req.raw.url ?? '/'
  const q = url.indexOf('?')
  const path = q < 0 ? url : url.slice(0, q)
  return path.split('/')[index + 1]
}

/** Segments of `API_PREFIX` plus `data`: the `{cid}` of `/data/{cid}…` comes right after them. */
const CID_SEGMENT = API_PREFIX.split('/').filter((p) => p !== '').length + 1

/** Characters Node refuses in a header value. */
const INVALID_HEADER_CHAR = /[^\t\x20-\x7e\x80-\xff]/

export function buildServer(c: ServerComponents): FastifyInstance {
  const { store, faults } = c
  const options = {
    exposeHeadRoutes: false,
    bodyLimit: Number.MAX_SAFE_INTEGER,
    return503OnClosing: false,
    forceCloseConnections: true,
  }
  const app: FastifyInstance =
    typeof c.logger === 'boolean'
      ? Fastify({ ...options, logger: c.logger })
      : Fastify({ ...options, loggerInstance: c.logger as FastifyBaseLogger })

  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req: FastifyRequest, payload: IncomingMessage, done) => done(null, payload))

  const requestInfo = (req: FastifyRequest): RequestInfo => {
    const url = req.raw.url ?? '/'
    const q = url.indexOf('?')
    return { method: req.method, path: q < 0 ? url : url.slice(0, q), route: req.routeOptions.url }
  }

  app.addHook('onRequest', async (req, reply) => {
    const info = requestInfo(req)
    faults.record(info)
    if (faults.latencyMs > 0)
      await sleep(faults.latencyMs, undefined, { signal: c.signal }).catch(() => undefined)
    const status = faults.takeFailure(info)
    if (status !== undefined) return sendError(reply, status, 'Injected fault')
    return undefined
  })

  app.setNotFoundHandler((_req, reply) => sendEmpty(reply, 404))
  app.setErrorHandler((err, req, reply) => {
    req.log.error({ err }, 'local codex node: handler error')
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy()
      return
    }
    return sendError(reply, 500, err instanceof Error ? err.message : String(err))
  })

  const api = (path: string): string => `${API_PREFIX}${path}`

  /**
   * Parses the `{cid}` path parameter; answers 400 `Incorrect Cid` when it does not parse. presto
   * matches the raw path: a percent-escaped CID is not decoded, so it never parses.
   */
  const cidParam = (req: FastifyRequest, reply: FastifyReply): CID | undefined => {
    try {
      if (rawPathSegment(req, CID_SEGMENT)?.includes('%')) throw new Error('percent-escaped CID')
      return parseCid((req.params as CidParams).cid)
    } catch {
      sendError(reply, 400, 'Incorrect Cid')
      return undefined
    }
  }

  const networkMiss = async (reply: FastifyReply): Promise<FastifyReply> => {
    if (c.networkMissingTimeoutMs > 0) {
      await sleep(c.networkMissingTimeoutMs, undefined, { signal: c.signal }).catch(() => undefined)
    }
    return sendError(reply, 404, NETWORK_MISSING_MESSAGE)
  }

  type ManifestLookup =
    | { ok: true; manifest: Manifest }
    | { ok: false; status: 404; message: string; missing: boolean }

  /**
   * nim-codex `fetchManifest` against the local store: the CID's block is fetched whatever its
   * codec (an absent one takes the miss path), then decoded; a block that is not a manifest
   * (another codec, or bytes that do not decode) → 404 `Unable to decode as manifest`.
   */
  const fetchManifest = async (cid: CID): Promise<ManifestLookup> => {
    const bytes = await store.readBlock(cid)
    if (bytes === undefined)
      return { ok: false, status: 404, message: NETWORK_MISSING_MESSAGE, missing: true }
    if (!isManifestCid(cid))
      return { ok: false, status: 404, message: UNDECODABLE_MANIFEST_MESSAGE, missing: false }
    try {
      return { ok: true, manifest: decodeManifest(bytes) }
    } catch {
      return { ok: false, status: 404, message: UNDECODABLE_MANIFEST_MESSAGE, missing: false }
    }
  }

  /** nim-codex `retrieveCid`: streams a dataset, or answers 404. */
  const retrieve = async (
    req: FastifyRequest,
    reply: FastifyReply,
    local: boolean,
  ): Promise<FastifyReply> => {
    const cid = cidParam(req, reply)
    if (cid === undefined) return reply
    // Codex sets this before retrieving, so the 404 answers of …/network/stream carry it too
    if (!local) reply.header('Access-Control-Expose-Headers', 'Content-Disposition')
    const present = await store.hasBlock(cid)
    if (!present) {
      if (local) return sendError(reply, 404, LOCAL_MISSING_MESSAGE)
      return networkMiss(reply)
    }
    const lookup = await fetchManifest(cid)
    if (!lookup.ok) return sendError(reply, lookup.status, lookup.message)
    const manifest = lookup.manifest
    const length = contentLength(manifest)
    reply.header('content-type', manifest.mimetype ?? 'application/octet-stream')
    // raw filename bytes, as Codex sends them; Node cannot send control characters, so such a
    // (valid per Nim) filename degrades to a bare `attachment`
    const disposition =
      manifest.filename === undefined
        ? 'attachment'
        : Buffer.from(`attachment; filename="${manifest.filename}"`, 'utf8').toString('latin1')
    reply.header('content-disposition', INVALID_HEADER_CHAR.test(disposition) ? 'attachment' : disposition)
    reply.header('content-length', String(length))
    // The body is written by writeDataset with its own backpressure and buffer reuse.
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, reply.getHeaders() as Record<string, string>)
    // Codex sends the headers (`resp.prepare`) before reading the first block: a dataset that
    // fails mid-stream is a body cut short after the headers, never a missing answer.
    // (An empty Buffer, not flushHeaders(): that one would send the header bytes as UTF-8.)
    res.write(Buffer.alloc(0))
    try {
      await writeDataset(store, manifest, res, { cutAfterBytes: faults.bodyCutBytes })
    } catch (err) {
      req.log.warn({ err, cid: formatCid(cid) }, 'local codex node: download cut short')
      res.destroy()
    }
    return reply
  }

  // ------------------------------------------------------------------------------------------
  // data

  app.options(api('/data'), async (_req, reply) => sendEmpty(reply, 204))
  app.options(api('/data/:cid'), async (_req, reply) => sendEmpty(reply, 204))

  // Runs before fastify's body handling: without `Content-Type` it hands the raw stream on as is.
  const hideContentType = async (req: FastifyRequest): Promise<void> => {
    delete req.raw.headers['content-type']
  }

  app.post(api('/data'), { onRequest: hideContentType }, async (req, reply) => {
    const contentType = rawContentType(req)
    let mimetype: string | undefined
    if (contentType !== undefined && contentType !== '') {
      if (!isValidCodexMimetype(contentType)) {
        if (!req.raw.complete) reply.header('connection', 'close') // body left unread
        return sendError(reply, 422, `The MIME type '${contentType}' is not valid.`)
      }
      mimetype = headerBytes(contentType).toString('utf8')
    }
    let filename: string | undefined
    const disposition = firstHeader(req.headers['content-disposition'])
    const rawFilename = disposition === undefined ? undefined : parseContentDispositionFilename(disposition)
    if (rawFilename !== undefined) {
      const bytes = headerBytes(rawFilename)
      if (!isValidCodexFilenameBytes(bytes)) {
        if (!req.raw.complete) reply.header('connection', 'close') // body left unread
        return sendError(reply, 422, 'The filename is not valid.')
      }
      filename = bytes.toString('utf8')
    }
    const raw = req.raw
    const source = raw.iterator({ destroyOnReturn: false })
    const cutAfter = faults.uploadCutBytes
    const body = cutAfter === undefined ? source : cutUpload(source, cutAfter, raw)
    try {
      const { cid } = await ingestDataset(store, body, { filename, mimetype })
      return sendText(reply, formatCid(cid))
    } catch (err) {
      if (raw.readableAborted || raw.socket?.destroyed) {
        req.log.warn({ err }, 'local codex node: upload aborted')
        return reply
      }
      // A failure before the whole body was read (e.g. quota) must not leave the rest of the body
      // on a kept-alive connection: the next request on it would never be answered.
      if (!raw.complete) reply.header('connection', 'close')
      if (err instanceof EmptyTreeError) return sendError(reply, 500, 'Empty leaves')
      req.log.warn({ err }, 'local codex node: upload failed')
      return sendError(reply, 500, err instanceof Error ? err.message : String(err))
    }
  })

  app.get(api('/data'), async (_req, reply) => {
    const content = []
    for (const cid of await store.listManifests()) {
      const bytes = await store.readBlock(cid)
      if (bytes === undefined) continue
      try {
        content.push(dataItemToJson(cid, decodeManifest(bytes)))
      } catch {
        break // Codex stops listing at the first manifest that does not decode
      }
    }
    return sendJson(reply, { content })
  })

  app.get(api('/data/:cid'), async (req, reply) => retrieve(req, reply, true))

  app.delete(api('/data/:cid'), async (req, reply) => {
    const cid = cidParam(req, reply)
    if (cid === undefined) return reply
    try {
      if (isManifestCid(cid)) {
        const bytes = await store.readBlock(cid)
        if (bytes !== undefined) {
          const manifest = decodeManifest(bytes)
          await store.deleteTree(manifest.treeCid)
          await store.deleteBlock(cid)
        }
      } else {
        await store.deleteBlock(cid)
      }
    } catch (err) {
      if (err instanceof BlockInUseError) return sendError(reply, 500, err.message)
      throw err
    }
    return sendEmpty(reply, 204)
  })

  const networkManifest = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const cid = cidParam(req, reply)
    if (cid === undefined) return reply
    const lookup = await fetchManifest(cid)
    if (lookup.ok) return sendJson(reply, dataItemToJson(cid, lookup.manifest))
    if (lookup.missing) return networkMiss(reply)
    return sendError(reply, lookup.status, lookup.message)
  }

  app.post(api('/data/:cid/network'), networkManifest)
  app.get(api('/data/:cid/network/manifest'), networkManifest)
  app.get(api('/data/:cid/network/stream'), async (req, reply) => retrieve(req, reply, false))

  app.get(api('/data/:cid/exists'), async (req, reply) => {
    const cid = cidParam(req, reply)
    if (cid === undefined) return reply
    return sendJson(reply, { [formatCid(cid)]: await store.hasBlock(cid) })
  })

  app.get(api('/space'), async (_req, reply) => {
    const s = store.stats
    return sendJson(reply, {
      totalBlocks: s.totalBlocks,
      quotaMaxBytes: s.quotaMaxBytes,
      quotaUsedBytes: s.quotaUsedBytes,
      quotaReservedBytes: s.quotaReservedBytes,
    })
  })

  // ------------------------------------------------------------------------------------------
  // node

  app.get(api('/spr'), async (req, reply) => {
    if (prefersText(firstHeader(req.headers.accept))) return sendText(reply, c.identity.spr)
    return sendJson(reply, { spr: c.identity.spr })
  })

  app.get(api('/peerid'), async (req, reply) => {
    if (prefersText(firstHeader(req.headers.accept))) return sendText(reply, c.identity.peerId)
    return sendJson(reply, { id: c.identity.peerId })
  })

  app.get(api('/connect/:peerId'), async (req, reply) => {
    const { peerId } = req.params as { peerId: string }
    if (!isPeerId(peerId)) return sendError(reply, 400, BAD_PEER_ID_MESSAGE)
    const query = req.query as Record<string, string | string[] | undefined>
    const addrs = query.addrs === undefined ? [] : ([] as string[]).concat(query.addrs)
    // The node has no libp2p switch: dialling always fails, discovery never finds anyone.
    if (addrs.length > 0) return sendError(reply, 400, 'Unable to dial peer')
    return sendError(reply, 400, 'Unable to find Peer!')
  })

  app.get(api('/debug/info'), async (_req, reply) => {
    const id = c.identity
    const localNode = {
      nodeId: id.nodeId,
      peerId: id.peerId,
      record: id.spr,
      address: '127.0.0.1:8090',
      seen: false,
    }
    return sendJson(
      reply,
      {
        id: id.peerId,
        addrs: id.addrs,
        repo: c.dataDir,
        spr: id.spr,
        announceAddresses: id.addrs,
        table: { localNode, nodes: [] },
        codex: { version: CODEX_VERSION, revision: CODEX_REVISION },
      },
      200,
      true,
    )
  })

  app.post(api('/debug/chronicles/loglevel'), async (req, reply) => {
    const level = (req.query as Record<string, string | string[] | undefined>).level
    const value = Array.isArray(level) ? level[0] : level
    if (value === undefined || value === '') return sendError(reply, 400, 'Missing log level')
    const problem = checkLogLevel(value)
    if (problem !== undefined) return sendError(reply, 500, problem)
    return sendText(reply, '')
  })

  // ------------------------------------------------------------------------------------------
  // marketplace (node without persistence)

  const disabled = async (_req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> =>
    sendError(reply, 503, MARKETPLACE_DISABLED_MESSAGE)
  app.get(api('/sales/slots'), disabled)
  app.get(api('/sales/slots/:slotId'), disabled)
  app.get(api('/sales/availability'), disabled)
  app.post(api('/sales/availability'), disabled)
  app.options(api('/sales/availability/:id'), async (_req, reply) => sendEmpty(reply, 204))
  app.patch(api('/sales/availability/:id'), disabled)
  app.get(api('/sales/availability/:id/reservations'), disabled)
  app.post(api('/storage/request/:cid'), disabled)
  app.get(api('/storage/purchases'), disabled)
  app.get(api('/storage/purchases/:id'), disabled)

  return app
}

/** Passes the upload through until `limit` bytes, then destroys the connection. */
async function* cutUpload(
  source: AsyncIterable<Uint8Array>,
  limit: number,
  raw: IncomingMessage,
): AsyncGenerator<Uint8Array> {
  let seen = 0
  for await (const chunk of source) {
    if (seen + chunk.length > limit) {
      const keep = limit - seen
      if (keep > 0) yield chunk.subarray(0, keep)
      const err = new Error(`local codex node: upload cut after ${limit} bytes (injected fault)`)
      raw.socket.destroy()
      raw.destroy(err)
      throw err
    }
    seen += chunk.length
    yield chunk
  }
}

const PEER_ID_RE = /^[1-9A-HJ-NP-Za-km-z]+$/

/** A base58btc peer id: identity multihash (<= 42 bytes) or sha2-256 multihash. */
function isPeerId(text: string): boolean {
  if (!PEER_ID_RE.test(text)) return false
  let bytes: Uint8Array
  try {
    bytes = base58btc.baseDecode(text)
  } catch {
    return false
  }
  if (bytes.length < 2) return false
  if (bytes[0] === 0x00) return bytes[1] === bytes.length - 2 && bytes.length - 2 <= 42
  if (bytes[0] === 0x12) return bytes[1] === 0x20 && bytes.length === 34
  return false
}

const LOG_LEVELS = new Set(['TRACE', 'DEBUG', 'INFO', 'NOTICE', 'WARN', 'ERROR', 'FATAL', 'NONE'])

/**
 * Validates a chronicles log-level spec (`LEVEL` or `LEVEL;TRACE:topic,topic2`); returns an error
 * message (guessed wording) or undefined.
 */
function checkLogLevel(spec: string): string | undefined {
  for (const part of spec.split(';')) {
    if (part === '') continue
    const colon = part.indexOf(':')
    const level = (colon < 0 ? part : part.slice(0, colon)).trim().toUpperCase()
    if (!LOG_LEVELS.has(level))
      return `Please specify one of: trace, debug, info, notice, warn, error or fatal`
  }
  return undefined
}
