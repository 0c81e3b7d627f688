/**
 * A small client for the gateway's own HTTP API, used by the `codex-bt` commands that talk to a
 * running gateway (`add`, `seed`, `ls`, `show`, `export`, `import`). URL and token come from flags
 * (`--api`, `--token`) or the environment (`CODEX_BT_API_URL`, `CODEX_BT_API_TOKEN`).
 */
import type { CliIO } from './command.ts'

export const DEFAULT_API_URL = 'http://127.0.0.1:8070'

/** An error answered by the gateway API (`{ error: { code, message } }`) or a transport failure. */
export class ApiError extends Error {
  readonly code: string
  readonly status: number | undefined
  constructor(code: string, message: string, status?: number) {
    super(message)
    this.name = 'ApiError'
    this.code = code
    this.status = status
  }
}

export interface ApiClientInit {
  readonly url: string
  readonly token?: string
  readonly timeoutMs?: number
}

export class ApiClient {
  readonly #base: string
  readonly #token: string | undefined
  readonly #timeoutMs: number

  constructor(init: ApiClientInit) {
    let url: URL
    try {
      url = new URL(init.url)
    } catch {
      throw new ApiError('GW_ERR_CLI_USAGE', `invalid API URL ${JSON.stringify(init.url)}`)
    }
    this.#base = url.href.replace(/\/+$/, '')
    this.#token = init.token
    this.#timeoutMs = init.timeoutMs ?? 30_000
  }

  async request(
    method: string,
    path: string,
    body?: { json?: unknown; bytes?: Uint8Array; contentType?: string },
    options: { signal?: AbortSignal } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.#token) headers.authorization = `Bearer ${this.#token}`
    let payload: string | Uint8Array | undefined
    if (body?.json !== undefined) {
      headers['content-type'] = 'application/json'
      payload = JSON.stringify(body.json)
    } else if (body?.bytes) {
      headers['content-type'] = body.contentType ?? 'application/octet-stream'
      payload = body.bytes
    }
    const signal = options.signal
      ? AbortSignal.any([options.signal, AbortSignal.timeout(this.#timeoutMs)])
      : AbortSignal.timeout(this.#timeoutMs)
    let res: Response
    try {
      res = await fetch(`${this.#base}${path}`, { method, headers, body: payload ?? null, signal })
    } catch (e) {
      const cause = e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)
      throw new ApiError('GW_ERR_CLI_UNREACHABLE', `cannot reach the gateway at ${this.#base}: ${cause}`)
    }
    if (!res.ok) {
      let code = `HTTP_${res.status}`
      let message = res.statusText
      try {
        const j = (await res.json()) as { error?: { code?: string; message?: string } }
        if (j.error?.code) code = j.error.code
        if (j.error?.message) message = j.error.message
      } catch {
        // not JSON
      }
      throw new ApiError(code, message, res.status)
    }
    return res
  }

  async json<T>(
    method: string,
    path: string,
    body?: { json?: unknown; bytes?: Uint8Array; contentType?: string },
  ): Promise<T> {
    const res = await this.request(method, path, body)
    return (await res.json()) as T
  }
}

/** Builds an ApiClient from `--api`/`--token` values or the environment. */
export function apiClientFrom(
  values: { api?: string | undefined; token?: string | undefined },
  io: CliIO,
): ApiClient {
  const token = values.token ?? io.env.CODEX_BT_API_TOKEN
  return new ApiClient({
    url: values.api ?? io.env.CODEX_BT_API_URL ?? DEFAULT_API_URL,
    ...(token ? { token } : {}),
  })
}

/** Shared option definitions for commands that talk to the API (for `node:util` parseArgs). */
export const API_OPTIONS = {
  api: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const

/** Runs a command body, mapping ApiError and usage errors to exit codes and one-line messages. */
export async function runApiCommand(io: CliIO, body: () => Promise<number>): Promise<number> {
  try {
    return await body()
  } catch (e) {
    if (e instanceof ApiError) {
      io.stderr.write(`codex-bt: ${e.code}: ${e.message}\n`)
      return e.code === 'GW_ERR_CLI_USAGE' ? 2 : 1
    }
    if (e instanceof TypeError && /argument|option/i.test(e.message)) {
      io.stderr.write(`codex-bt: ${e.message}\n`)
      return 2
    }
    throw e
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`
}
