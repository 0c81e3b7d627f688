/**
 * OpenAPI 3.1 document and a small HTML reference page, generated from the registered routes.
 *
 * `createRouteCollector()` returns an `onRoute` hook that records each route's method, URL and
 * schema as fastify registers it; `buildOpenApiDocument()` turns the records into a document
 * (no @fastify/swagger: this is the whole generator). Non-JSON bodies and responses (raw
 * .torrent uploads, multipart, the metrics text) are declared in the route's
 * `config.openapi` because fastify cannot validate them with a JSON schema.
 * `renderDocsPage()` renders the document as self-contained HTML (no scripts, no network).
 */
import type { RouteOptions } from 'fastify'
import type { JsonSchema } from './schemas.ts'

declare module 'fastify' {
  interface FastifySchema {
    /** One-line description shown in `/docs` and the OpenAPI document. */
    summary?: string
    description?: string
    tags?: string[]
    /** Leave the route out of the OpenAPI document. */
    hide?: boolean
  }
  interface FastifyContextConfig {
    openapi?: RouteOpenApiConfig
  }
}

/** Extra OpenAPI information a route can carry in `config.openapi`. */
export interface RouteOpenApiConfig {
  /** Request media types fastify does not validate (schema documents the payload). */
  readonly requestContent?: Readonly<
    Record<string, { readonly schema: JsonSchema; readonly description?: string }>
  >
  /** Response media types per status, for non-JSON responses. */
  readonly responseContent?: Readonly<
    Record<string, Readonly<Record<string, { readonly schema: JsonSchema }>>>
  >
  /** Whether a bearer token is needed when the server has one (default: mutating methods). */
  readonly auth?: boolean
}

export interface CollectedRoute {
  readonly method: string
  readonly url: string
  readonly schema: Readonly<Record<string, unknown>>
  readonly openapi: RouteOpenApiConfig
}

export type OpenApiDocument = Readonly<Record<string, unknown>> & {
  readonly openapi: string
  readonly paths: Readonly<Record<string, Readonly<Record<string, OpenApiOperation>>>>
}

export interface OpenApiOperation {
  readonly operationId: string
  readonly summary?: string
  readonly description?: string
  readonly tags?: readonly string[]
  readonly parameters?: readonly Readonly<Record<string, unknown>>[]
  readonly requestBody?: Readonly<Record<string, unknown>>
  readonly responses: Readonly<
    Record<string, { description: string; content?: Record<string, { schema: JsonSchema }> }>
  >
  readonly security?: readonly Readonly<Record<string, readonly string[]>>[]
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

const STATUS_TEXT: Readonly<Record<string, string>> = {
  '200': 'OK',
  '201': 'Created',
  '204': 'No Content',
  '400': 'Bad request',
  '401': 'Missing or invalid bearer token',
  '404': 'Not found',
  '409': 'Conflict',
  '413': 'Body too large',
  '415': 'Unsupported media type',
  '500': 'Internal error',
  '503': 'Unavailable',
}

/** Returns the `onRoute` hook and the live list it fills. HEAD routes and `schema.hide` are skipped. */
export function createRouteCollector(): { onRoute: (route: RouteOptions) => void; routes: CollectedRoute[] } {
  const routes: CollectedRoute[] = []
  return {
    routes,
    onRoute(route: RouteOptions): void {
      const methods = Array.isArray(route.method) ? route.method : [route.method]
      const schema = (route.schema ?? {}) as Record<string, unknown>
      if (schema.hide === true) return
      const config = (route.config ?? {}) as { openapi?: RouteOpenApiConfig }
      for (const method of methods) {
        if (method === 'HEAD' || method === 'OPTIONS') continue
        routes.push({ method, url: route.url, schema, openapi: config.openapi ?? {} })
      }
    },
  }
}

/** `/torrents/:id/pause` → `/torrents/{id}/pause` */
export function toOpenApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
}

function operationId(method: string, url: string): string {
  const words = url
    .split('/')
    .filter((s) => s !== '')
    .map((s) => (s.startsWith(':') ? `by-${s.slice(1)}` : s))
    .join('-')
    .replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))
  return method.toLowerCase() + words.charAt(0).toUpperCase() + words.slice(1)
}

function parametersFrom(schema: unknown, where: 'path' | 'query'): Record<string, unknown>[] {
  if (schema === null || typeof schema !== 'object') return []
  const s = schema as { properties?: Record<string, JsonSchema>; required?: string[] }
  const required = new Set(s.required ?? [])
  return Object.entries(s.properties ?? {}).map(([name, prop]) => {
    const { description, ...rest } = prop as { description?: string }
    const p: Record<string, unknown> = {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      schema: rest,
    }
    if (typeof description === 'string') p.description = description
    return p
  })
}

function responsesFrom(route: CollectedRoute): OpenApiOperation['responses'] {
  const out: Record<string, { description: string; content?: Record<string, { schema: JsonSchema }> }> = {}
  const response = (route.schema.response ?? {}) as Record<string, Record<string, unknown>>
  for (const [status, schema] of Object.entries(response)) {
    const description =
      typeof schema.description === 'string' ? schema.description : (STATUS_TEXT[status] ?? `HTTP ${status}`)
    if (status === '204') {
      out[status] = { description }
    } else if (schema.content !== undefined) {
      out[status] = { description, content: schema.content as Record<string, { schema: JsonSchema }> }
    } else {
      out[status] = { description, content: { 'application/json': { schema } } }
    }
  }
  for (const [status, content] of Object.entries(route.openapi.responseContent ?? {})) {
    out[status] = {
      description: out[status]?.description ?? STATUS_TEXT[status] ?? `HTTP ${status}`,
      content: { ...out[status]?.content, ...content },
    }
  }
  return out
}

function requestBodyFrom(route: CollectedRoute): Record<string, unknown> | undefined {
  const content: Record<string, unknown> = {}
  const body = route.schema.body as Record<string, unknown> | undefined
  if (body !== undefined) {
    if (body.content !== undefined) Object.assign(content, body.content)
    else content['application/json'] = { schema: body }
  }
  Object.assign(content, route.openapi.requestContent ?? {})
  if (Object.keys(content).length === 0) return undefined
  return { required: true, content }
}

export interface OpenApiInfo {
  readonly title: string
  readonly version: string
  readonly description?: string
}

/** Builds the OpenAPI 3.1 document of `routes`. */
export function buildOpenApiDocument(routes: readonly CollectedRoute[], info: OpenApiInfo): OpenApiDocument {
  const paths: Record<string, Record<string, OpenApiOperation>> = {}
  const sorted = [...routes].sort((a, b) => a.url.localeCompare(b.url) || a.method.localeCompare(b.method))
  for (const route of sorted) {
    const path = toOpenApiPath(route.url)
    const s = route.schema
    const parameters = [...parametersFrom(s.params, 'path'), ...parametersFrom(s.querystring, 'query')]
    const requestBody = requestBodyFrom(route)
    const needsAuth = route.openapi.auth ?? MUTATING.has(route.method)
    const op: OpenApiOperation = {
      operationId: operationId(route.method, route.url),
      ...(typeof s.summary === 'string' ? { summary: s.summary } : {}),
      ...(typeof s.description === 'string' ? { description: s.description } : {}),
      ...(Array.isArray(s.tags) ? { tags: s.tags as string[] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(requestBody ? { requestBody } : {}),
      responses: responsesFrom(route),
      ...(needsAuth ? { security: [{ bearerAuth: [] }] } : {}),
    }
    paths[path] ??= {}
    paths[path][route.method.toLowerCase()] = op
  }
  return {
    openapi: '3.1.0',
    info: { ...info },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'Required on mutating routes when the gateway runs with CODEX_BT_API_TOKEN.',
        },
      },
    },
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** A self-contained HTML page listing the document's operations. */
export function renderDocsPage(doc: OpenApiDocument): string {
  const info = doc.info as OpenApiInfo
  const rows: string[] = []
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const bodyTypes = Object.keys(((op.requestBody?.content ?? {}) as Record<string, unknown>) || {})
      const statuses = Object.keys(op.responses).join(', ')
      rows.push(
        `<tr><td class="m ${escapeHtml(method)}">${escapeHtml(method.toUpperCase())}</td>` +
          `<td><code>${escapeHtml(path)}</code></td>` +
          `<td>${escapeHtml(op.summary ?? '')}</td>` +
          `<td>${escapeHtml(bodyTypes.join(', '))}</td>` +
          `<td>${escapeHtml(statuses)}</td>` +
          `<td>${op.security ? 'bearer' : ''}</td></tr>`,
      )
    }
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(info.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}.m{font-weight:bold;font-family:monospace}.get{color:#0a6}.post{color:#06c}.delete{color:#c33}
code{font-size:.95em}
</style></head><body>
<h1>${escapeHtml(info.title)} <small>${escapeHtml(info.version)}</small></h1>
<p>${escapeHtml(info.description ?? '')} Machine-readable description: <a href="/openapi.json">/openapi.json</a> (OpenAPI ${escapeHtml(doc.openapi)}).
Errors are JSON <code>{"error":{"code":"GW_ERR_…","message":"…"}}</code>.</p>
<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th><th>Request body</th><th>Responses</th><th>Auth</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table></body></html>
`
}
