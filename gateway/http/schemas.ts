/**
 * JSON schemas of the HTTP API: request parts and response DTOs (`service.ts` types).
 *
 * Fastify validates requests and serialises responses with them, and `openapi.ts` publishes
 * them in `/openapi.json`, so they are the single description of the wire format. They use
 * only keywords valid in both JSON Schema draft-07 (fastify's Ajv) and 2020-12 (OpenAPI 3.1),
 * e.g. `type: ['string', 'null']` instead of OpenAPI 3.0's `nullable`.
 */
import { ERROR_CODES } from './errors.ts'
import { TORRENT_STATES } from './service.ts'

export type JsonSchema = Readonly<Record<string, unknown>>

export const HEX40_OR_64 = '^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$'
/** Loose CID shape (multibase text); the service parses it for real. */
export const CID_PATTERN = '^[A-Za-z0-9_-]{8,256}$'

const hex40 = { type: 'string', pattern: '^[0-9a-f]{40}$' } as const
const hex64 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const
const isoTime = { type: 'string', format: 'date-time' } as const
const nullableIsoTime = { type: ['string', 'null'], format: 'date-time' } as const
const bytes = { type: 'integer', minimum: 0 } as const
const rate = { type: 'number', minimum: 0 } as const
const fraction = { type: 'number', minimum: 0, maximum: 1 } as const
const version = { type: 'string', enum: ['v1', 'v2', 'hybrid'] } as const

export const idParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: HEX40_OR_64, description: 'v1 (40 hex) or v2 (64 hex) info hash' },
  },
} as const

export const cidParams = {
  type: 'object',
  required: ['cid'],
  additionalProperties: false,
  properties: { cid: { type: 'string', pattern: CID_PATTERN, description: 'Codex CID of a gateway record' } },
} as const

export const errorBody = {
  type: 'object',
  required: ['error'],
  additionalProperties: false,
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      additionalProperties: false,
      properties: {
        code: { type: 'string', enum: [...ERROR_CODES] },
        message: { type: 'string' },
        details: { type: 'array', items: {} },
      },
    },
  },
} as const

const summaryProperties = {
  id: { type: 'string', pattern: '^(?:[0-9a-f]{40}|[0-9a-f]{64})$' },
  name: { type: ['string', 'null'] },
  infoHashV1: hex40,
  infoHashV2: hex64,
  version: { type: ['string', 'null'], enum: ['v1', 'v2', 'hybrid', null] },
  state: { type: 'string', enum: [...TORRENT_STATES] },
  progress: fraction,
  sizeBytes: { type: ['integer', 'null'], minimum: 0 },
  downloadedBytes: bytes,
  uploadedBytes: bytes,
  downloadRate: rate,
  uploadRate: rate,
  addedAt: isoTime,
} as const

const summaryRequired = [
  'id',
  'name',
  'version',
  'state',
  'progress',
  'sizeBytes',
  'downloadedBytes',
  'uploadedBytes',
  'downloadRate',
  'uploadRate',
  'peers',
  'addedAt',
] as const

export const torrentSummary = {
  type: 'object',
  required: summaryRequired,
  additionalProperties: false,
  properties: {
    ...summaryProperties,
    peers: { type: 'integer', minimum: 0, description: 'connected peers' },
  },
} as const

export const torrentList = {
  type: 'object',
  required: ['torrents'],
  additionalProperties: false,
  properties: { torrents: { type: 'array', items: torrentSummary } },
} as const

export const addTorrentResponse = {
  type: 'object',
  required: ['created', 'torrent'],
  additionalProperties: false,
  properties: { created: { type: 'boolean' }, torrent: torrentSummary },
} as const

const fileInfo = {
  type: 'object',
  required: ['path', 'sizeBytes', 'progress', 'codexCid'],
  additionalProperties: false,
  properties: {
    path: { type: 'string' },
    sizeBytes: bytes,
    progress: fraction,
    codexCid: { type: ['string', 'null'] },
  },
} as const

const trackerInfo = {
  type: 'object',
  required: ['url', 'status', 'lastAnnounceAt', 'seeders', 'leechers', 'lastError'],
  additionalProperties: false,
  properties: {
    url: { type: 'string' },
    status: { type: 'string', enum: ['idle', 'announcing', 'working', 'error'] },
    lastAnnounceAt: nullableIsoTime,
    seeders: { type: ['integer', 'null'], minimum: 0 },
    leechers: { type: ['integer', 'null'], minimum: 0 },
    lastError: { type: ['string', 'null'] },
  },
} as const

const peerInfo = {
  type: 'object',
  required: ['address', 'client', 'downloadRate', 'uploadRate', 'progress', 'source'],
  additionalProperties: false,
  properties: {
    address: { type: 'string' },
    client: { type: ['string', 'null'] },
    downloadRate: rate,
    uploadRate: rate,
    progress: fraction,
    source: { type: 'string', enum: ['tracker', 'dht', 'pex', 'manual', 'incoming'] },
  },
} as const

const torrentErrorInfo = {
  type: 'object',
  required: ['at', 'code', 'message'],
  additionalProperties: false,
  properties: { at: isoTime, code: { type: 'string' }, message: { type: 'string' } },
} as const

export const torrentDetails = {
  type: 'object',
  required: [...summaryRequired, 'pieceLength', 'pieceCount', 'files', 'recordCid', 'trackers', 'errors'],
  additionalProperties: false,
  properties: {
    ...summaryProperties,
    pieceLength: { type: ['integer', 'null'], minimum: 1 },
    pieceCount: { type: ['integer', 'null'], minimum: 0 },
    files: { type: 'array', items: fileInfo },
    recordCid: { type: ['string', 'null'] },
    trackers: { type: 'array', items: trackerInfo },
    peers: { type: 'array', items: peerInfo },
    errors: { type: 'array', items: torrentErrorInfo },
  },
} as const

const trackerList = {
  type: 'array',
  maxItems: 100,
  items: { type: 'string', minLength: 1, maxLength: 2048 },
  description: 'tracker URLs (http, https, udp, ws, wss)',
} as const
const peerList = {
  type: 'array',
  maxItems: 200,
  items: { type: 'string', minLength: 3, maxLength: 300 },
  description: 'peers to dial, host:port (IPv6 as [addr]:port)',
} as const

/** JSON body of `POST /torrents`: exactly one of `magnet`, `infoHash`, `torrent` (base64). */
export const addTorrentJsonBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    magnet: { type: 'string', minLength: 1, maxLength: 65536 },
    infoHash: { type: 'string', pattern: HEX40_OR_64 },
    torrent: { type: 'string', minLength: 1, description: 'base64 of a .torrent file' },
    trackers: trackerList,
    peers: peerList,
  },
  oneOf: [{ required: ['magnet'] }, { required: ['infoHash'] }, { required: ['torrent'] }],
} as const

/** Query of `POST /torrents` (useful with raw .torrent bodies): comma-separated lists. */
export const addTorrentQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    trackers: { type: 'string', maxLength: 65536, description: 'comma-separated tracker URLs' },
    peers: { type: 'string', maxLength: 65536, description: 'comma-separated host:port list' },
  },
} as const

export const deleteQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { removeData: { type: 'boolean', default: false } },
} as const

export const createSeedBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    cid: { type: 'string', pattern: CID_PATTERN },
    files: {
      type: 'array',
      minItems: 1,
      maxItems: 10000,
      items: {
        type: 'object',
        required: ['cid', 'path'],
        additionalProperties: false,
        properties: {
          cid: { type: 'string', pattern: CID_PATTERN },
          path: { type: 'string', minLength: 1, maxLength: 4096 },
        },
      },
    },
    name: { type: 'string', minLength: 1, maxLength: 255 },
    trackers: trackerList,
    webseeds: { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 2048 } },
    version,
  },
  oneOf: [{ required: ['cid'] }, { required: ['files'] }],
} as const

export const seedResponse = {
  type: 'object',
  required: ['id', 'name', 'version', 'magnet', 'torrent', 'recordCid'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: '^(?:[0-9a-f]{40}|[0-9a-f]{64})$' },
    name: { type: 'string' },
    version,
    infoHashV1: hex40,
    infoHashV2: hex64,
    magnet: { type: 'string' },
    torrent: { type: 'string', contentEncoding: 'base64', description: 'the .torrent file, base64' },
    recordCid: { type: ['string', 'null'] },
  },
} as const

export const healthResponse = {
  type: 'object',
  required: ['status', 'uptimeSeconds', 'version'],
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: ['ok'] },
    uptimeSeconds: { type: 'number', minimum: 0 },
    version: { type: 'string' },
  },
} as const

export const readinessResponse = {
  type: 'object',
  required: ['ready', 'reasons', 'checks'],
  additionalProperties: false,
  properties: {
    ready: { type: 'boolean' },
    reasons: { type: 'array', items: { type: 'string' } },
    checks: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'ok'],
        additionalProperties: false,
        properties: { name: { type: 'string' }, ok: { type: 'boolean' }, detail: { type: 'string' } },
      },
    },
  },
} as const

/** Standard error responses, merged into each route's `response`. */
export function errorResponses(...statuses: number[]): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = {}
  for (const s of statuses) out[String(s)] = errorBody
  return out
}
