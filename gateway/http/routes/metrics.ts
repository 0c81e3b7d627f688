/** `GET /metrics`: the Prometheus text exposition of the gateway's registry (unauthenticated). */
import type { FastifyPluginAsync } from 'fastify'
import { errorResponses } from '../schemas.ts'

export interface MetricsRoutesOptions {
  readonly metrics: { metricsText(): Promise<string>; readonly contentType: string }
}

export const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (app, opts) => {
  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        tags: ['operations'],
        response: { ...errorResponses(500) },
      },
      config: {
        openapi: {
          responseContent: { '200': { 'text/plain': { schema: { type: 'string' } } } },
        },
      },
    },
    async (_request, reply) => reply.type(opts.metrics.contentType).send(await opts.metrics.metricsText()),
  )
}
