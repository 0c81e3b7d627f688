/** Shared set-up for the HTTP-layer tests: a server over the in-memory service, and multipart bodies. */
import type { FastifyInstance } from 'fastify'
import { buildServer } from '../../gateway/http/server.ts'
import type { Logger } from '../../gateway/observability/logger.ts'
import { createSilentLogger } from '../../gateway/observability/logger.ts'
import { createMetrics, type GatewayMetrics } from '../../gateway/observability/metrics.ts'
import { MemoryService } from './memory-service.ts'

export interface TestServer {
  readonly app: FastifyInstance
  readonly service: MemoryService
  readonly metrics: GatewayMetrics
}

export function makeServer(
  options: { apiToken?: string; bodyLimitBytes?: number; logger?: Logger; service?: MemoryService } = {},
): TestServer {
  const service = options.service ?? new MemoryService()
  const metrics = createMetrics({}, { defaultMetrics: false })
  const app = buildServer({
    service,
    metrics,
    logger: options.logger ?? createSilentLogger(),
    config: { apiToken: options.apiToken, bodyLimitBytes: options.bodyLimitBytes ?? 1024 * 1024 },
    version: '0.1.0-test',
  })
  return { app, service, metrics }
}

export interface FormPart {
  readonly name: string
  readonly value: string | Uint8Array
  readonly filename?: string
  readonly contentType?: string
}

/** Encodes a multipart/form-data body (RFC 7578). */
export function multipartBody(parts: readonly FormPart[]): { body: Buffer; contentType: string } {
  const boundary = `----codexbt${Math.random().toString(16).slice(2)}`
  const chunks: Buffer[] = []
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`
    if (p.filename !== undefined) head += `; filename="${p.filename}"`
    head += '\r\n'
    if (p.contentType !== undefined) head += `Content-Type: ${p.contentType}\r\n`
    chunks.push(Buffer.from(`${head}\r\n`), Buffer.from(p.value), Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` }
}
