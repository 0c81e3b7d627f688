/**
 * `/seeds` resource: create a torrent (v1, v2 or hybrid) from data already stored in Codex and
 * start seeding it. The response carries the magnet link and the .torrent file (base64).
 */
import type { FastifyPluginAsync } from 'fastify'
import { parseTrackers, parseWebSeeds } from '../inputs.ts'
import { createSeedBody, errorResponses, seedResponse } from '../schemas.ts'
import type { CreateSeedInput, GatewayService, SeedResult, TorrentVersion } from '../service.ts'

export interface SeedRoutesOptions {
  readonly service: GatewayService
}

interface SeedBody {
  cid?: string
  files?: { cid: string; path: string }[]
  name?: string
  trackers?: string[]
  webseeds?: string[]
  version?: TorrentVersion
}

/** The JSON shape of a `SeedResult` (bytes as base64). */
export function seedResultToJson(result: SeedResult): Record<string, unknown> {
  return { ...result, torrent: Buffer.from(result.torrent).toString('base64') }
}

export const seedRoutes: FastifyPluginAsync<SeedRoutesOptions> = async (app, opts) => {
  app.post<{ Body: SeedBody }>(
    '/seeds',
    {
      schema: {
        summary: 'Create a torrent from Codex data and seed it',
        tags: ['seeds'],
        body: createSeedBody,
        response: { 201: seedResponse, ...errorResponses(400, 401, 404, 409, 413, 415, 500, 503) },
      },
    },
    async (request, reply) => {
      const b = request.body
      const input: CreateSeedInput = {
        ...(b.cid !== undefined ? { cid: b.cid } : {}),
        ...(b.files !== undefined ? { files: b.files.map((f) => ({ cid: f.cid, path: f.path })) } : {}),
        ...(b.name !== undefined ? { name: b.name } : {}),
        ...(b.trackers !== undefined ? { trackers: parseTrackers(b.trackers) } : {}),
        ...(b.webseeds !== undefined ? { webseeds: parseWebSeeds(b.webseeds) } : {}),
        version: b.version ?? 'hybrid',
      }
      const result = await opts.service.createSeed(input)
      return reply.code(201).header('location', `/torrents/${result.id}`).send(seedResultToJson(result))
    },
  )
}
