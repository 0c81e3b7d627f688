/**
 * Logging: one pino root logger per process, built here and injected everywhere (STYLE §7.6).
 *
 * - `createLogger()` builds the root with redaction of secrets (authorization headers, tokens,
 *   passwords, the Codex credentials) and pino's standard error/request serializers.
 * - `childLogger()` / `componentLogger()` add structured bindings (`component`, `infoHash`, `peer`)
 *   the way fastify's `request.log` does; log fields, never interpolated strings.
 * - `createSilentLogger()` is a real pino logger at level `silent`, for tests.
 * - `LogSink` is the minimal interface other modules may accept instead of pino's full type.
 */

import type { DestinationStream, Logger, LoggerOptions } from 'pino'
import { pino } from 'pino'

export type { Logger } from 'pino'

export type LogLevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/** What the engine and adapters need from a logger; pino's `Logger` satisfies it. */
export interface LogSink {
  trace(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  child(bindings: Record<string, unknown>): LogSink
}

/** Replacement text for redacted values. */
export const REDACTED = '[REDACTED]'

/**
 * Paths redacted from every log line (pino `redact` syntax; `*` matches one level). Covers
 * HTTP headers as logged by fastify/undici, and token-like fields of any logged object.
 */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
  '*.headers.authorization',
  '*.headers["proxy-authorization"]',
  'authorization',
  'password',
  'token',
  'apiToken',
  'codexAuth',
  'secret',
  '*.authorization',
  '*.password',
  '*.token',
  '*.apiToken',
  '*.codexAuth',
  '*.secret',
])

export interface LoggerInit {
  readonly level?: LogLevelName
  /** Logged as `name` on every line (default `codex-bt`). */
  readonly name?: string
  /** Where lines go (default stdout). Tests pass a stream to capture output. */
  readonly destination?: DestinationStream
  /** Extra bindings on every line (e.g. `{ version }`). */
  readonly base?: Record<string, unknown>
}

/** Builds the process's root logger. */
export function createLogger(init: LoggerInit = {}): Logger {
  const options: LoggerOptions = {
    name: init.name ?? 'codex-bt',
    level: init.level ?? 'info',
    base: { pid: process.pid, ...init.base },
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }
  return init.destination ? pino(options, init.destination) : pino(options)
}

/** A logger that writes nothing; use in tests and as a default. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' })
}

/** Structured bindings commonly attached to child loggers. */
export interface LogBindings {
  readonly component?: string
  readonly infoHash?: string
  readonly peer?: string
  readonly [key: string]: unknown
}

/** A child logger carrying `bindings` on every line. */
export function childLogger(parent: Logger, bindings: LogBindings): Logger {
  return parent.child(bindings)
}

/** A child logger for one component (`component: 'engine'`, `'codex-client'`, `'http'`, …). */
export function componentLogger(
  parent: Logger,
  component: string,
  extra: Record<string, unknown> = {},
): Logger {
  return parent.child({ component, ...extra })
}
