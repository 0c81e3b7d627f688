/**
 * The catalogue of HTTP API errors: one stable `GW_ERR_*` code per failure kind, with its HTTP
 * status and a default message (the model is fastify's `FST_ERR_*` catalogue, STYLE §5).
 *
 * The gateway service throws `GatewayError(code, message)`; the single error handler of
 * `server.ts` turns any error into `{ error: { code, message } }` through `toErrorReply()`,
 * which also maps fastify's own errors (validation, body too large, bad content type),
 * @fastify/multipart's, the Codex client's and the Codex adapters' (create from Codex, records)
 * by their `code`.
 */

export interface ErrorSpec {
  readonly status: number
  readonly message: string
}

export const ERROR_CATALOGUE = Object.freeze({
  GW_ERR_BAD_TORRENT: { status: 400, message: 'The .torrent file is invalid.' },
  GW_ERR_BAD_MAGNET: { status: 400, message: 'The magnet link is invalid.' },
  GW_ERR_BAD_REQUEST: { status: 400, message: 'The request is invalid.' },
  GW_ERR_VALIDATION: { status: 400, message: 'The request does not match the schema.' },
  GW_ERR_UNAUTHORIZED: { status: 401, message: 'A valid bearer token is required.' },
  GW_ERR_NOT_FOUND: { status: 404, message: 'Not found.' },
  GW_ERR_CONFLICT: { status: 409, message: 'The request conflicts with the current state.' },
  GW_ERR_BODY_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  GW_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported Content-Type.' },
  GW_ERR_INTERNAL: { status: 500, message: 'Internal error.' },
  GW_ERR_CODEX_UNAVAILABLE: { status: 503, message: 'The Codex node is unavailable.' },
  GW_ERR_SHUTTING_DOWN: { status: 503, message: 'The gateway is shutting down.' },
} as const satisfies Record<string, ErrorSpec>)

export type GatewayErrorCode = keyof typeof ERROR_CATALOGUE

export const ERROR_CODES = Object.freeze(Object.keys(ERROR_CATALOGUE) as GatewayErrorCode[])

export function isGatewayErrorCode(code: unknown): code is GatewayErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CATALOGUE, code)
}

/** An error the HTTP layer can show to clients as is. Throw it from `GatewayService`. */
export class GatewayError extends Error {
  readonly code: GatewayErrorCode
  /** The HTTP status of `code` (from the catalogue). */
  readonly statusCode: number
  /** Optional machine-readable details (e.g. validation problems). */
  readonly details: readonly unknown[] | undefined

  constructor(
    code: GatewayErrorCode,
    message: string = ERROR_CATALOGUE[code].message,
    options: { cause?: unknown; details?: readonly unknown[] } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'GatewayError'
    this.code = code
    this.statusCode = ERROR_CATALOGUE[code].status
    this.details = options.details
  }
}

/** The JSON body of every error response. */
export interface ErrorBody {
  readonly error: {
    readonly code: GatewayErrorCode
    readonly message: string
    readonly details?: readonly unknown[]
  }
}

export interface ErrorReply {
  readonly status: number
  readonly body: ErrorBody
  readonly headers: Readonly<Record<string, string>>
  /** Server-side problem (log at error with the stack) vs client mistake (log at debug/info). */
  readonly serverFault: boolean
}

/** Fastify / @fastify/multipart error codes and what they mean for clients. */
const FOREIGN_CODES: Readonly<Record<string, GatewayErrorCode>> = Object.freeze({
  FST_ERR_VALIDATION: 'GW_ERR_VALIDATION',
  FST_ERR_CTP_BODY_TOO_LARGE: 'GW_ERR_BODY_TOO_LARGE',
  FST_REQ_FILE_TOO_LARGE: 'GW_ERR_BODY_TOO_LARGE',
  FST_PARTS_LIMIT: 'GW_ERR_BODY_TOO_LARGE',
  FST_FILES_LIMIT: 'GW_ERR_BODY_TOO_LARGE',
  FST_FIELDS_LIMIT: 'GW_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'GW_ERR_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'GW_ERR_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'GW_ERR_BAD_REQUEST',
  FST_PROTO_VIOLATION: 'GW_ERR_BAD_REQUEST',
  FST_ERR_NOT_FOUND: 'GW_ERR_NOT_FOUND',
  // The Codex client (codex-client/errors.ts) when the service lets its errors through.
  CODEX_ERR_UNAVAILABLE: 'GW_ERR_CODEX_UNAVAILABLE',
  CODEX_ERR_TIMEOUT: 'GW_ERR_CODEX_UNAVAILABLE',
  CODEX_ERR_INVALID_CID: 'GW_ERR_BAD_REQUEST',
  // `POST /seeds` (adapters/codex/create-from-codex.ts): the client named data Codex lacks, or a
  // CID that is not a dataset.
  GW_ERR_CODEX_CREATE_NOT_FOUND: 'GW_ERR_NOT_FOUND',
  GW_ERR_CODEX_CREATE_INVALID: 'GW_ERR_BAD_REQUEST',
  GW_ERR_CODEX_CREATE_NOT_MANIFEST: 'GW_ERR_BAD_REQUEST',
  GW_ERR_CODEX_CREATE_IO: 'GW_ERR_CODEX_UNAVAILABLE',
  // `POST /records/:cid/import` (adapters/record-*.ts): the CID is not in Codex, or is not a
  // valid gateway record, or the record's files are missing. (GW_ERR_RECORD_INCOMPLETE and
  // GW_ERR_RECORD_INFO stay 500: they are also raised while *building* a record server-side.)
  GW_ERR_RECORD_NOT_FOUND: 'GW_ERR_NOT_FOUND',
  GW_ERR_RECORD_FILE_MISSING: 'GW_ERR_NOT_FOUND',
  GW_ERR_RECORD_CID: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_TOO_LARGE: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_JSON: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_FORMAT: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_VERSION: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_FIELD: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_BASE64: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_HASH_MISMATCH: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_FILES_MISMATCH: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_TORRENT_MISMATCH: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_PIECE_LAYERS: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_FILE_SIZE: 'GW_ERR_BAD_REQUEST',
  GW_ERR_RECORD_CODEX: 'GW_ERR_CODEX_UNAVAILABLE',
})

const BY_STATUS: Readonly<Record<number, GatewayErrorCode>> = Object.freeze({
  400: 'GW_ERR_BAD_REQUEST',
  401: 'GW_ERR_UNAUTHORIZED',
  404: 'GW_ERR_NOT_FOUND',
  409: 'GW_ERR_CONFLICT',
  413: 'GW_ERR_BODY_TOO_LARGE',
  415: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
  503: 'GW_ERR_CODEX_UNAVAILABLE',
})

interface ErrorLike {
  readonly code?: unknown
  readonly statusCode?: unknown
  readonly message?: unknown
  readonly validation?: unknown
  readonly details?: unknown
}

function headersFor(code: GatewayErrorCode): Record<string, string> {
  if (code === 'GW_ERR_UNAUTHORIZED') return { 'www-authenticate': 'Bearer realm="codex-bt"' }
  if (code === 'GW_ERR_CODEX_UNAVAILABLE' || code === 'GW_ERR_SHUTTING_DOWN') return { 'retry-after': '5' }
  return {}
}

function reply(code: GatewayErrorCode, message: string, details?: readonly unknown[]): ErrorReply {
  const status = ERROR_CATALOGUE[code].status
  const error = details === undefined ? { code, message } : { code, message, details }
  return { status, body: { error }, headers: headersFor(code), serverFault: status >= 500 }
}

/** Maps any thrown value to the error response; the one place that decides statuses. */
export function toErrorReply(err: unknown): ErrorReply {
  const e: ErrorLike = typeof err === 'object' && err !== null ? (err as ErrorLike) : {}
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : undefined

  if (isGatewayErrorCode(e.code)) {
    const details = Array.isArray(e.details) ? (e.details as unknown[]) : undefined
    return reply(e.code, message ?? ERROR_CATALOGUE[e.code].message, details)
  }
  if (Array.isArray(e.validation)) {
    const details = (e.validation as { instancePath?: string; message?: string; keyword?: string }[]).map(
      (v) => ({
        path: v.instancePath ?? '',
        keyword: v.keyword,
        message: v.message,
      }),
    )
    return reply('GW_ERR_VALIDATION', message ?? ERROR_CATALOGUE.GW_ERR_VALIDATION.message, details)
  }
  if (typeof e.code === 'string' && Object.hasOwn(FOREIGN_CODES, e.code)) {
    const code = FOREIGN_CODES[e.code]!
    const fault = ERROR_CATALOGUE[code].status >= 500
    // Messages of client errors are safe to show; those of server-side faults use the default.
    return reply(code, fault ? ERROR_CATALOGUE[code].message : (message ?? ERROR_CATALOGUE[code].message))
  }
  if (err instanceof SyntaxError && typeof e.statusCode === 'number' && e.statusCode === 400) {
    return reply('GW_ERR_BAD_REQUEST', message ?? ERROR_CATALOGUE.GW_ERR_BAD_REQUEST.message)
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code = BY_STATUS[e.statusCode] ?? 'GW_ERR_BAD_REQUEST'
    return reply(code, message ?? ERROR_CATALOGUE[code].message)
  }
  return reply('GW_ERR_INTERNAL', ERROR_CATALOGUE.GW_ERR_INTERNAL.message)
}
