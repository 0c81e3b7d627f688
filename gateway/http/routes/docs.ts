/**
 * `GET /openapi.json` (the OpenAPI 3.1 document generated from the registered route schemas)
 * and `GET /docs` (a self-contained HTML page listing the routes). The document is built on
 * first request, after every route is registered, and cached.
 */
import type { FastifyPluginAsync } from 'fastify'
import {
  buildOpenApiDocument,
  type CollectedRoute,
  type OpenApiDocument,
  type OpenApiInfo,
  renderDocsPage,
} from '../openapi.ts'
import { errorResponses } from '../schemas.ts'

export interface DocsRoutesOptions {
  readonly routes: readonly CollectedRoute[]
  readonly info: OpenApiInfo
}

export const docsRoutes: FastifyPluginAsync<DocsRoutesOptions> = async (app, opts) => {
  let doc: OpenApiDocument | undefined
  const document = (): OpenApiDocument => {
    doc ??= buildOpenApiDocument(opts.routes, opts.info)
    return doc
  }

  app.get(
    '/openapi.json',
    {
      schema: {
        summary: 'OpenAPI 3.1 description of this API',
        tags: ['operations'],
        response: {
          200: { type: 'object', additionalProperties: true, required: ['openapi', 'info', 'paths'] },
          ...errorResponses(500),
        },
      },
    },
    async (_request, reply) => reply.type('application/json; charset=utf-8').send(JSON.stringify(document())),
  )

  app.get(
    '/docs',
    {
      schema: {
        summary: 'Human-readable API reference (HTML)',
        tags: ['operations'],
        response: { ...errorResponses(500) },
      },
      config: { openapi: { responseContent: { '200': { 'text/html': { schema: { type: 'string' } } } } } },
    },
    async (_request, reply) => reply.type('text/html; charset=utf-8').send(renderDocsPage(document())),
  )
}
