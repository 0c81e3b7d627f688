/**
 * `/torrents` resource: add (raw .torrent, multipart, or JSON magnet/info hash/base64), list,
 * details, delete, pause, resume, and download of the .torrent file.
 *
 * Raw bodies (`application/x-bittorrent`, `application/octet-stream`) and multipart are parsed
 * only inside this plugin (encapsulation), under the server's body limit.
 */
import multipart from '@fastify/multipart'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { GatewayError } from '../errors.ts'
import {
  attachmentDisposition,
  checkMagnet,
  checkTorrentBytes,
  decodeBase64Torrent,
  normalizeId,
  parsePeers,
  parseTrackers,
  splitList,
} from '../inputs.ts'
import type { RouteOpenApiConfig } from '../openapi.ts'
import {
  addTorrentJsonBody,
  addTorrentQuery,
  addTorrentResponse,
  deleteQuery,
  errorResponses,
  idParams,
  torrentDetails,
  torrentList,
  torrentSummary,
} from '../schemas.ts'
import type { AddTorrentInput, AddTorrentResult, GatewayService } from '../service.ts'

export interface TorrentRoutesOptions {
  readonly service: GatewayService
  readonly bodyLimitBytes: number
}

/** Media types accepted as a raw .torrent body. */
export const RAW_TORRENT_TYPES = ['application/x-bittorrent', 'application/octet-stream'] as const

const MULTIPART_FIELDS = ['trackers', 'peers'] as const

interface AddBody {
  magnet?: string
  infoHash?: string
  torrent?: string
  trackers?: string[]
  peers?: string[]
}
interface AddQuery {
  trackers?: string
  peers?: string
}
interface IdParams {
  id: string
}

const binarySchema = { type: 'string', format: 'binary' } as const

const addOpenApi: RouteOpenApiConfig = {
  requestContent: {
    'application/x-bittorrent': { schema: binarySchema, description: 'a .torrent file' },
    'application/octet-stream': { schema: binarySchema, description: 'a .torrent file' },
    'multipart/form-data': {
      schema: {
        type: 'object',
        required: ['torrent'],
        properties: {
          torrent: { ...binarySchema, description: 'the .torrent file' },
          trackers: { type: 'string', description: 'comma- or newline-separated tracker URLs' },
          peers: { type: 'string', description: 'comma- or newline-separated host:port list' },
        },
      },
    },
  },
}

async function readMultipart(
  request: FastifyRequest,
): Promise<{ torrent: Uint8Array; trackers: string[]; peers: string[] }> {
  let torrent: Uint8Array | undefined
  const lists: Record<(typeof MULTIPART_FIELDS)[number], string[]> = { trackers: [], peers: [] }
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      if (part.fieldname !== 'torrent') {
        part.file.resume()
        throw new GatewayError(
          'GW_ERR_BAD_REQUEST',
          `Unexpected file field '${part.fieldname}' (use 'torrent').`,
        )
      }
      torrent = new Uint8Array(await part.toBuffer())
    } else if ((MULTIPART_FIELDS as readonly string[]).includes(part.fieldname)) {
      lists[part.fieldname as (typeof MULTIPART_FIELDS)[number]].push(...splitList(String(part.value)))
    } else {
      throw new GatewayError('GW_ERR_BAD_REQUEST', `Unexpected form field '${part.fieldname}'.`)
    }
  }
  if (torrent === undefined)
    throw new GatewayError('GW_ERR_BAD_TORRENT', "Multipart body has no 'torrent' file.")
  return { torrent, trackers: lists.trackers, peers: lists.peers }
}

/** Turns any accepted request shape into the service input. */
async function addInput(
  request: FastifyRequest<{ Body: unknown; Querystring: AddQuery }>,
): Promise<AddTorrentInput> {
  const trackers = splitList(request.query.trackers)
  const peers = splitList(request.query.peers)
  let base: { torrent?: Uint8Array; magnet?: string; infoHash?: string }
  if (request.isMultipart()) {
    const form = await readMultipart(request)
    trackers.push(...form.trackers)
    peers.push(...form.peers)
    base = { torrent: checkTorrentBytes(form.torrent) }
  } else if (Buffer.isBuffer(request.body)) {
    base = { torrent: checkTorrentBytes(new Uint8Array(request.body)) }
  } else if (typeof request.body === 'object' && request.body !== null) {
    const body = request.body as AddBody
    trackers.push(...(body.trackers ?? []))
    peers.push(...(body.peers ?? []))
    if (body.magnet !== undefined) base = { magnet: checkMagnet(body.magnet) }
    else if (body.infoHash !== undefined) base = { infoHash: normalizeId(body.infoHash) }
    else base = { torrent: decodeBase64Torrent(body.torrent ?? '') }
  } else {
    throw new GatewayError(
      'GW_ERR_BAD_REQUEST',
      'Send a .torrent (application/x-bittorrent, or multipart field `torrent`) or JSON {magnet} / {infoHash}.',
    )
  }
  const input: AddTorrentInput = { ...base }
  const parsedTrackers = parseTrackers(trackers)
  const parsedPeers = parsePeers(peers)
  return {
    ...input,
    ...(parsedTrackers.length > 0 ? { trackers: parsedTrackers } : {}),
    ...(parsedPeers.length > 0 ? { peers: parsedPeers } : {}),
  }
}

function sendAdded(reply: FastifyReply, result: AddTorrentResult): FastifyReply {
  return reply
    .code(result.created ? 201 : 200)
    .header('location', `/torrents/${result.torrent.id}`)
    .send(result)
}

export const torrentRoutes: FastifyPluginAsync<TorrentRoutesOptions> = async (app, opts) => {
  const { service } = opts

  await app.register(multipart, {
    limits: {
      fileSize: opts.bodyLimitBytes,
      files: 1,
      fields: 8,
      fieldSize: 64 * 1024,
      parts: 10,
      fieldNameSize: 100,
    },
  })
  app.addContentTypeParser([...RAW_TORRENT_TYPES], { parseAs: 'buffer' }, (_req, body, done) => {
    done(null, body)
  })

  app.post<{ Body: unknown; Querystring: AddQuery }>(
    '/torrents',
    {
      schema: {
        summary: 'Add a torrent (.torrent upload, magnet link or info hash)',
        tags: ['torrents'],
        querystring: addTorrentQuery,
        body: { content: { 'application/json': { schema: addTorrentJsonBody } } },
        response: {
          200: { ...addTorrentResponse, description: 'Already present' },
          201: { ...addTorrentResponse, description: 'Added' },
          ...errorResponses(400, 401, 409, 413, 415, 500, 503),
        },
      },
      config: { openapi: addOpenApi },
    },
    async (request, reply) => sendAdded(reply, await service.addTorrent(await addInput(request))),
  )

  app.get(
    '/torrents',
    {
      schema: {
        summary: 'List torrents',
        tags: ['torrents'],
        response: { 200: torrentList, ...errorResponses(500, 503) },
      },
    },
    async () => ({ torrents: await service.listTorrents() }),
  )

  app.get<{ Params: IdParams }>(
    '/torrents/:id',
    {
      schema: {
        summary: 'Torrent details: files (with Codex CIDs), trackers, peers, errors',
        tags: ['torrents'],
        params: idParams,
        response: { 200: torrentDetails, ...errorResponses(400, 404, 500, 503) },
      },
    },
    async (request) => service.getTorrent(normalizeId(request.params.id)),
  )

  app.delete<{ Params: IdParams; Querystring: { removeData: boolean } }>(
    '/torrents/:id',
    {
      schema: {
        summary: 'Remove a torrent (and its archived data with removeData=true)',
        tags: ['torrents'],
        params: idParams,
        querystring: deleteQuery,
        response: {
          204: { type: 'null', description: 'Removed' },
          ...errorResponses(400, 401, 404, 500, 503),
        },
      },
    },
    async (request, reply) => {
      await service.deleteTorrent(normalizeId(request.params.id), {
        removeData: request.query.removeData === true,
      })
      return reply.code(204).send()
    },
  )

  for (const action of ['pause', 'resume'] as const) {
    app.post<{ Params: IdParams }>(
      `/torrents/:id/${action}`,
      {
        schema: {
          summary: action === 'pause' ? 'Pause a torrent' : 'Resume a paused torrent',
          tags: ['torrents'],
          params: idParams,
          response: { 200: torrentSummary, ...errorResponses(400, 401, 404, 409, 500, 503) },
        },
      },
      async (request) => {
        const id = normalizeId(request.params.id)
        return action === 'pause' ? service.pauseTorrent(id) : service.resumeTorrent(id)
      },
    )
  }

  app.get<{ Params: IdParams }>(
    '/torrents/:id/torrent',
    {
      schema: {
        summary: 'Download the .torrent file',
        tags: ['torrents'],
        params: idParams,
        response: { ...errorResponses(400, 404, 409, 500, 503) },
      },
      config: {
        openapi: { responseContent: { '200': { 'application/x-bittorrent': { schema: binarySchema } } } },
      },
    },
    async (request, reply) => {
      const file = await service.getTorrentFile(normalizeId(request.params.id))
      return reply
        .type('application/x-bittorrent')
        .header('content-disposition', attachmentDisposition(`${file.name}.torrent`))
        .send(Buffer.from(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength))
    },
  )
}
