/**
 * Bearer-token authentication for the mutating HTTP routes.
 *
 * When `CODEX_BT_API_TOKEN` is set, every POST/PUT/PATCH/DELETE request must carry
 * `Authorization: Bearer <token>`. The comparison is constant-time (both sides hashed with
 * SHA-256 first, so lengths never leak either). Failures answer 401 `GW_ERR_UNAUTHORIZED` with
 * a `WWW-Authenticate` header (RFC 6750) through the common error handler. Read-only routes
 * (`GET`), health probes and `/metrics` stay open.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { GatewayError } from './errors.ts'

export const MUTATING_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}

/** Constant-time string equality. */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b))
}

/** Extracts the token of an `Authorization: Bearer <token>` header (scheme case-insensitive). */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header)
  return m?.[1]
}

/**
 * An `onRequest` hook enforcing the token on mutating methods; `undefined` token = no auth.
 * Runs before the body is parsed, so unauthenticated uploads are never decoded.
 */
export function createAuthHook(token: string | undefined): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    if (token === undefined || !MUTATING_METHODS.has(request.method)) return
    const given = bearerToken(request.headers.authorization)
    if (given === undefined) {
      throw new GatewayError('GW_ERR_UNAUTHORIZED', 'Missing bearer token (Authorization: Bearer <token>).')
    }
    if (!safeEqual(given, token)) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'Invalid bearer token.')
  }
}
