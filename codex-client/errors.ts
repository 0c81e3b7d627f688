/**
 * Typed errors of the Codex REST client.
 *
 * Every error is a `CodexError` with a stable `code` (`CODEX_ERR_*`), the client `operation`
 * that failed (`'upload'`, `'download'`, …), the HTTP `status` when the node answered, the `cid`
 * concerned when there is one, and the original `cause`. Codex answers errors as plain text with
 * `Content-Type: text/html` (NOTES.md §1.1, §1.7.3); that text is kept in `body` and appended to
 * the message.
 *
 * Hierarchy:
 * - `CodexHttpError` (any non-2xx answer): `CodexNotFoundError` (404 with Codex's message: the CID
 *   is not there), `CodexRouteNotFoundError` (404 with an empty body: the route does not exist on
 *   this node, i.e. a wrong API prefix or a build without that route), `CodexBadRequestError`
 *   (400), `CodexMarketplaceUnavailableError` (503 `Persistence is not enabled`, NOTES.md §1.2).
 * - `CodexValidationError` (422 from the node, or client-side validation before sending):
 *   `CodexInvalidCidError`, `CodexEmptyUploadError`.
 * - `CodexUnavailableError` (connection refused/reset, node unreachable): `CodexTimeoutError`.
 * - `CodexShortBodyError` (download body shorter or longer than `Content-Length` or the caller's
 *   `expectedLength`, or cut after the headers).
 * - `CodexAbortError` (the caller's `AbortSignal` fired).
 * - `CodexResponseError` (a 2xx answer whose body does not have the documented shape).
 * - `CodexUploadSourceError` (the caller's upload stream failed or yielded non-bytes).
 */

export type CodexErrorCode =
  | 'CODEX_ERR_HTTP'
  | 'CODEX_ERR_NOT_FOUND'
  | 'CODEX_ERR_ROUTE'
  | 'CODEX_ERR_BAD_REQUEST'
  | 'CODEX_ERR_MARKETPLACE_UNAVAILABLE'
  | 'CODEX_ERR_VALIDATION'
  | 'CODEX_ERR_INVALID_CID'
  | 'CODEX_ERR_EMPTY_UPLOAD'
  | 'CODEX_ERR_UNAVAILABLE'
  | 'CODEX_ERR_TIMEOUT'
  | 'CODEX_ERR_SHORT_BODY'
  | 'CODEX_ERR_ABORTED'
  | 'CODEX_ERR_BAD_RESPONSE'
  | 'CODEX_ERR_UPLOAD_SOURCE'

/** Context shared by every Codex error. */
export interface CodexErrorInit {
  /** Client operation, e.g. `'upload'`, `'download'`, `'exists'`. */
  readonly operation: string
  /** HTTP status when the node answered. */
  readonly status?: number
  /** The CID concerned (z-base58btc text when it parsed, the raw input otherwise). */
  readonly cid?: string
  /** Templated route, e.g. `/data/{cid}`. */
  readonly route?: string
  /** Codex's plain-text error body (truncated), when there was one. */
  readonly body?: string
  readonly cause?: unknown
}

/** Base class of every error thrown by the Codex client. */
export class CodexError extends Error {
  readonly code: CodexErrorCode
  readonly operation: string
  readonly status: number | undefined
  readonly cid: string | undefined
  readonly route: string | undefined
  readonly body: string | undefined

  constructor(code: CodexErrorCode, message: string, init: CodexErrorInit) {
    super(composeMessage(message, init), init.cause === undefined ? undefined : { cause: init.cause })
    this.name = 'CodexError'
    this.code = code
    this.operation = init.operation
    this.status = init.status
    this.cid = init.cid
    this.route = init.route
    this.body = init.body
  }
}

function composeMessage(message: string, init: CodexErrorInit): string {
  let text = `codex ${init.operation}: ${message}`
  if (init.status !== undefined) text += ` (HTTP ${init.status})`
  if (init.body !== undefined && init.body !== '') text += `: ${init.body}`
  if (init.cid !== undefined) text += ` [cid ${init.cid}]`
  return text
}

/** The node answered with a non-2xx status not covered by a more specific class. */
export class CodexHttpError extends CodexError {
  declare readonly status: number
  constructor(
    message: string,
    init: CodexErrorInit & { status: number },
    code: CodexErrorCode = 'CODEX_ERR_HTTP',
  ) {
    super(code, message, init)
    this.name = 'CodexHttpError'
  }
}

/**
 * 404 with Codex's message: the CID is not stored locally, is not a manifest, or the network could
 * not provide it (NOTES.md §1.2). It always means "this CID is not there", never "wrong route".
 */
export class CodexNotFoundError extends CodexHttpError {
  constructor(message: string, init: CodexErrorInit & { status: number }) {
    super(message, init, 'CODEX_ERR_NOT_FOUND')
    this.name = 'CodexNotFoundError'
  }
}

/**
 * 404 with an empty body: the node has no such route (chronos answers unknown routes that way,
 * NOTES.md §1.1). A configuration problem (wrong API prefix in the URL, a build without that
 * route such as the marketplace on Logos Storage, or the debug-peer route), not a missing CID.
 */
export class CodexRouteNotFoundError extends CodexHttpError {
  constructor(message: string, init: CodexErrorInit & { status: number }) {
    super(message, init, 'CODEX_ERR_ROUTE')
    this.name = 'CodexRouteNotFoundError'
  }
}

/** 400: e.g. `Incorrect Cid`, `Missing log level`, `Unable to dial peer` (NOTES.md §1.1, §1.2). */
export class CodexBadRequestError extends CodexHttpError {
  constructor(message: string, init: CodexErrorInit & { status: number }) {
    super(message, init, 'CODEX_ERR_BAD_REQUEST')
    this.name = 'CodexBadRequestError'
  }
}

/** 503 `Persistence is not enabled`: the node runs without the marketplace (NOTES.md §1.2). */
export class CodexMarketplaceUnavailableError extends CodexHttpError {
  constructor(message: string, init: CodexErrorInit & { status: number }) {
    super(message, init, 'CODEX_ERR_MARKETPLACE_UNAVAILABLE')
    this.name = 'CodexMarketplaceUnavailableError'
  }
}

/**
 * Invalid input: a 422 from the node (bad mimetype or filename, marketplace parameters) or the
 * same check done by the client before sending anything (then `status` is undefined).
 */
export class CodexValidationError extends CodexError {
  constructor(message: string, init: CodexErrorInit, code: CodexErrorCode = 'CODEX_ERR_VALIDATION') {
    super(code, message, init)
    this.name = 'CodexValidationError'
  }
}

/** A CID string that does not parse (checked client-side, nothing is sent). */
export class CodexInvalidCidError extends CodexValidationError {
  constructor(message: string, init: CodexErrorInit) {
    super(message, init, 'CODEX_ERR_INVALID_CID')
    this.name = 'CodexInvalidCidError'
  }
}

/**
 * Empty upload. Codex cannot store an empty dataset (500 `Empty leaves`, NOTES.md §1.2): the
 * client refuses empty bodies without a request and maps the node's 500 to this class too.
 */
export class CodexEmptyUploadError extends CodexValidationError {
  constructor(message: string, init: CodexErrorInit) {
    super(message, init, 'CODEX_ERR_EMPTY_UPLOAD')
    this.name = 'CodexEmptyUploadError'
  }
}

/** The node cannot be reached: connection refused or reset, socket errors, client closed. */
export class CodexUnavailableError extends CodexError {
  constructor(message: string, init: CodexErrorInit, code: CodexErrorCode = 'CODEX_ERR_UNAVAILABLE') {
    super(code, message, init)
    this.name = 'CodexUnavailableError'
  }
}

/** A client-side deadline passed (headers, idle body, idle upload, or whole-call timeout). */
export class CodexTimeoutError extends CodexUnavailableError {
  readonly timeoutMs: number
  constructor(message: string, init: CodexErrorInit & { timeoutMs: number }) {
    super(message, init, 'CODEX_ERR_TIMEOUT')
    this.name = 'CodexTimeoutError'
    this.timeoutMs = init.timeoutMs
  }
}

/**
 * A download body ended before, or ran past, its length (`Content-Length`, or the caller's
 * `expectedLength` when the node streams without one), or the connection was cut after the
 * headers (the node failed mid-stream, NOTES.md §1.4). Not retried by the client.
 */
export class CodexShortBodyError extends CodexError {
  readonly expectedBytes: number
  readonly receivedBytes: number
  constructor(message: string, init: CodexErrorInit & { expectedBytes: number; receivedBytes: number }) {
    super('CODEX_ERR_SHORT_BODY', message, init)
    this.name = 'CodexShortBodyError'
    this.expectedBytes = init.expectedBytes
    this.receivedBytes = init.receivedBytes
  }
}

/** The caller's `AbortSignal` fired; the request and its body were destroyed. */
export class CodexAbortError extends CodexError {
  constructor(message: string, init: CodexErrorInit) {
    super('CODEX_ERR_ABORTED', message, init)
    this.name = 'CodexAbortError'
  }
}

/** A 2xx answer whose body does not have the shape the node is known to send. */
export class CodexResponseError extends CodexError {
  constructor(message: string, init: CodexErrorInit) {
    super('CODEX_ERR_BAD_RESPONSE', message, init)
    this.name = 'CodexResponseError'
  }
}

/** The caller's upload source (Readable / async iterable) failed or yielded a non-Uint8Array. */
export class CodexUploadSourceError extends CodexError {
  constructor(message: string, init: CodexErrorInit) {
    super('CODEX_ERR_UPLOAD_SOURCE', message, init)
    this.name = 'CodexUploadSourceError'
  }
}

/** True for errors after which repeating an idempotent call may succeed. */
export function isTransientCodexError(err: unknown): boolean {
  if (err instanceof CodexUnavailableError) return true
  if (err instanceof CodexMarketplaceUnavailableError) return false
  return err instanceof CodexHttpError && (err.status === 502 || err.status === 503 || err.status === 504)
}
