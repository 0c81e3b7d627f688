/**
 * Runs the real gateway as a child process (`node gateway/cli/bin.ts serve`), as a user would,
 * on 127.0.0.1 with ephemeral ports and the DHT off, and reads its address from its JSON log.
 * Used by the end-to-end tests (restart mid-ingest needs a real process to stop and start).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const BIN = fileURLToPath(new URL('../../gateway/cli/bin.ts', import.meta.url))

export interface GatewayProcess {
  readonly apiUrl: string
  readonly peerPort: number
  readonly codexUrl: string
  readonly pid: number
  /** Every log line seen so far (JSON text). */
  readonly logs: string[]
  /** SIGTERM (graceful) and wait for exit; resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>
  /** SIGKILL (crash) and wait for exit. */
  kill(): Promise<void>
}

export interface StartGatewayOptions {
  readonly dataDir: string
  /** A Codex node URL; unset = the embedded local Codex node. */
  readonly codexUrl?: string
  readonly env?: Record<string, string>
  readonly timeoutMs?: number
}

function waitExit(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode)
  return new Promise((r) => proc.once('exit', (code) => r(code)))
}

export async function startGatewayProcess(opts: StartGatewayOptions): Promise<GatewayProcess> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    CODEX_BT_API_HOST: '127.0.0.1',
    CODEX_BT_API_PORT: '0',
    CODEX_BT_PEER_HOST: '127.0.0.1',
    CODEX_BT_PEER_PORT: '0',
    CODEX_BT_LOCAL_CODEX_PORT: '0',
    CODEX_BT_DHT: 'false',
    CODEX_BT_DHT_BOOTSTRAP: '',
    CODEX_BT_DATA_DIR: opts.dataDir,
    CODEX_BT_LOG_LEVEL: 'info',
    ...(opts.codexUrl ? { CODEX_BT_CODEX_URL: opts.codexUrl } : {}),
    ...opts.env,
  }
  const proc = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: string[] = []
  let stderr = ''
  proc.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
  })
  const rl = createInterface({ input: proc.stdout! })
  const started = new Promise<{ api: string; peerPort: number; codex: string }>((resolve, reject) => {
    rl.on('line', (line) => {
      if (logs.length < 20_000) logs.push(line)
      try {
        const j = JSON.parse(line) as { msg?: string; api?: string; peerPort?: number; codex?: string }
        if (j.msg === 'gateway started' && j.api && j.peerPort && j.codex) {
          resolve({ api: j.api, peerPort: j.peerPort, codex: j.codex })
        }
      } catch {
        // not JSON
      }
    })
    proc.once('exit', (code) => reject(new Error(`gateway exited with ${code} before it started: ${stderr}`)))
  })
  const timeoutMs = opts.timeoutMs ?? 30_000
  let timer: NodeJS.Timeout | undefined
  try {
    const s = await Promise.race([
      started,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`gateway did not start within ${timeoutMs} ms: ${stderr}`)),
          timeoutMs,
        )
      }),
    ])
    return {
      apiUrl: s.api,
      peerPort: s.peerPort,
      codexUrl: s.codex,
      pid: proc.pid!,
      logs,
      async stop(stopTimeoutMs = 20_000) {
        if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
        proc.kill('SIGTERM')
        const t = setTimeout(() => proc.kill('SIGKILL'), stopTimeoutMs)
        const code = await waitExit(proc)
        clearTimeout(t)
        return code
      },
      async kill() {
        if (proc.exitCode !== null || proc.signalCode !== null) return
        proc.kill('SIGKILL')
        await waitExit(proc)
      },
    }
  } catch (e) {
    proc.kill('SIGKILL')
    await waitExit(proc)
    throw e
  } finally {
    if (timer) clearTimeout(timer)
  }
}

/** JSON fetch against the gateway API with a deadline; throws on non-2xx with the error body. */
export async function api<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T }> {
  const init: RequestInit = { method, headers: { ...headers }, signal: AbortSignal.timeout(30_000) }
  if (body instanceof Uint8Array) {
    init.body = body
    ;(init.headers as Record<string, string>)['content-type'] = 'application/x-bittorrent'
  } else if (body !== undefined) {
    init.body = JSON.stringify(body)
    ;(init.headers as Record<string, string>)['content-type'] = 'application/json'
  }
  const res = await fetch(`${base}${path}`, init)
  const text = await res.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {
    // keep text
  }
  return { status: res.status, body: parsed as T }
}

/** Polls `fn` until it returns a value (not undefined) or the deadline passes. */
export async function waitUntil<T>(
  fn: () => Promise<T | undefined>,
  { timeoutMs = 60_000, intervalMs = 250, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (e) {
      last = e
    }
    await new Promise((r) => setTimeout(r, intervalMs))
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`)
}
