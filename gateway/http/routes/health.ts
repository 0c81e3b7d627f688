/**
 * Probes: `GET /healthz` (liveness: the process serves HTTP) and `GET /readyz` (readiness:
 * 200 when the service can do its work, 503 with reasons otherwise). Both are unauthenticated.
 */
import type { FastifyPluginAsync } from 'fastify'
import { errorResponses, healthResponse, readinessResponse } from '../schemas.ts'
import type { GatewayService } from '../service.ts'

export interface HealthRoutesOptions {
  readonly service: GatewayService
}

export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (app, opts) => {
  app.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness probe',
        tags: ['operations'],
        response: { 200: healthResponse, ...errorResponses(500, 503) },
      },
    },
    async () => opts.service.health(),
  )

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness probe (503 with reasons when not ready)',
        tags: ['operations'],
        response: {
          200: { ...readinessResponse, description: 'Ready' },
          503: { ...readinessResponse, description: 'Not ready' },
          500: errorResponses(500)['500'],
        },
      },
    },
    async (_request, reply) => {
      const report = await opts.service.ready()
      return reply.code(report.ready ? 200 : 503).send(report)
    },
  )
}
