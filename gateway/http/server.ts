/**
 * `buildServer(deps)`: the fastify HTTP API, assembled but not listening (tests use `inject()`,
 * `gateway/app.ts` calls `listen()`).
 *
 * One encapsulated plugin per resource under `routes/`, each given the `GatewayService` facade
 * through its options (no module globals). Cross-cutting parts live here:
 * - one error handler mapping every error through `errors.ts` to `{ error: { code, message } }`,
 *   and a not-found handler in the same format;
 * - bearer-token auth on mutating routes (`auth.ts`);
 * - graceful shutdown: once `close()` starts, every request answers 503 `GW_ERR_SHUTTING_DOWN`
 *   with `Connection: close` (fastify's `return503OnClosing` is turned off because its reply
 *   bypasses the error handler and would break the error format);
 * - request logging on the injected pino logger (redaction configured in `logger.ts`): one line
 *   per request, at debug for probes and scrapes, and HTTP metrics;
 * - the OpenAPI document, collected from every route's schema by an `onRoute` hook.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
} from 'fastify'
import type { GatewayConfig } from '../config.ts'
import type { Logger } from '../observability/logger.ts'
import type { HttpRequestEvent } from '../observability/metrics.ts'
import { createAuthHook } from './auth.ts'
import { GatewayError, toErrorReply } from './errors.ts'
import { createRouteCollector } from './openapi.ts'
import { docsRoutes } from './routes/docs.ts'
import { healthRoutes } from './routes/health.ts'
import { metricsRoutes } from './routes/metrics.ts'
import { recordRoutes } from './routes/records.ts'
import { seedRoutes } from './routes/seeds.ts'
import { torrentRoutes } from './routes/torrents.ts'
import type { GatewayService } from './service.ts'

/** What the HTTP layer needs from the metrics object returned by `createMetrics()`. */
export interface HttpMetrics {
  metricsText(): Promise<string>
  readonly contentType: string
  observeHttpRequest?(event: HttpRequestEvent): void
}

/** The configuration the HTTP layer reads (a full `GatewayConfig` fits). */
export type HttpServerConfig = Pick<GatewayConfig, 'apiToken' | 'bodyLimitBytes'>

export interface BuildServerDeps {
  readonly service: GatewayService
  readonly metrics: HttpMetrics
  readonly logger: Logger
  readonly config: HttpServerConfig
  /** Shown in the OpenAPI document (default `0.0.0`). */
  readonly version?: string
}

/** Routes whose request lines are logged at debug (probes and scrapes are frequent). */
const QUIET_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics'])

function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? 'unmatched'
}

export function buildServer(deps: BuildServerDeps): FastifyInstance {
  const { service, metrics, config } = deps
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'http' }) as FastifyBaseLogger,
    // One line per request is logged by the onResponse hook below instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'reqId' }),
    bodyLimit: config.bodyLimitBytes,
    return503OnClosing: false,
    exposeHeadRoutes: false,
    requestIdHeader: 'x-request-id',
    // Reject unknown properties instead of silently dropping them.
    ajv: { customOptions: { removeAdditional: false } },
  })

  // Only the media types the routes declare are accepted: text/plain gets 415, not a string body.
  app.removeContentTypeParser('text/plain')

  const collector = createRouteCollector()
  app.addHook('onRoute', collector.onRoute)

  // Graceful shutdown: a flag owned by this instance, set when close() begins.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onRequest', async (_request, reply) => {
    if (closing) {
      reply.header('connection', 'close')
      throw new GatewayError('GW_ERR_SHUTTING_DOWN')
    }
  })
  app.addHook('onRequest', createAuthHook(config.apiToken))

  app.addHook('onResponse', async (request, reply) => {
    const route = routeOf(request)
    const durationSeconds = reply.elapsedTime / 1000
    const line = {
      method: request.method,
      url: request.url,
      route,
      statusCode: reply.statusCode,
      durationMs: reply.elapsedTime,
    }
    if (QUIET_ROUTES.has(route)) request.log.debug(line, 'request completed')
    else request.log.info(line, 'request completed')
    metrics.observeHttpRequest?.({ method: request.method, route, status: reply.statusCode, durationSeconds })
  })

  app.setErrorHandler((err, request, reply) => {
    const mapped = toErrorReply(err)
    if (mapped.body.error.code === 'GW_ERR_INTERNAL') {
      request.log.error({ err }, 'request failed')
    } else if (mapped.serverFault) {
      request.log.warn({ code: mapped.body.error.code, err }, 'request failed: dependency unavailable')
    } else {
      request.log.info({ code: mapped.body.error.code, msg: mapped.body.error.message }, 'request rejected')
    }
    return reply.code(mapped.status).headers(mapped.headers).send(mapped.body)
  })

  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0]
    const mapped = toErrorReply(
      new GatewayError('GW_ERR_NOT_FOUND', `Route ${request.method} ${path} not found.`),
    )
    return reply.code(mapped.status).send(mapped.body)
  })

  void app.register(healthRoutes, { service })
  void app.register(metricsRoutes, { metrics })
  void app.register(torrentRoutes, { service, bodyLimitBytes: config.bodyLimitBytes })
  void app.register(seedRoutes, { service })
  void app.register(recordRoutes, { service })
  void app.register(docsRoutes, {
    routes: collector.routes,
    info: {
      title: 'codex-bittorrent-gateway API',
      version: deps.version ?? '0.0.0',
      description: 'Archive BitTorrent torrents into Codex storage and seed Codex data to BitTorrent peers.',
    },
  })
  return app
}
