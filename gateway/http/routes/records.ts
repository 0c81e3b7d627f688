/**
 * `/records` resource: import a torrent from a gateway record stored in Codex (the record maps
 * a torrent's files and pieces to Codex CIDs, so the gateway can seed without downloading).
 */
import type { FastifyPluginAsync } from 'fastify'
import { addTorrentResponse, cidParams, errorResponses } from '../schemas.ts'
import type { GatewayService } from '../service.ts'

export interface RecordRoutesOptions {
  readonly service: GatewayService
}

export const recordRoutes: FastifyPluginAsync<RecordRoutesOptions> = async (app, opts) => {
  app.post<{ Params: { cid: string } }>(
    '/records/:cid/import',
    {
      schema: {
        summary: 'Import a torrent from its gateway record in Codex',
        tags: ['records'],
        params: cidParams,
        response: {
          200: { ...addTorrentResponse, description: 'Already present' },
          201: { ...addTorrentResponse, description: 'Imported' },
          ...errorResponses(400, 401, 404, 409, 500, 503),
        },
      },
    },
    async (request, reply) => {
      const result = await opts.service.importRecord(request.params.cid)
      return reply
        .code(result.created ? 201 : 200)
        .header('location', `/torrents/${result.torrent.id}`)
        .send(result)
    },
  )
}
