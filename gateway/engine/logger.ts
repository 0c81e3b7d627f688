/**
 * The minimal logger the engine accepts: pino-compatible (structured object first, then message),
 * so the service passes a pino child and tests pass `silentLogger`.
 */
export interface EngineLogger {
  trace(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  child(bindings: Record<string, unknown>): EngineLogger
}

const noop = (): void => {}

/** A logger that drops everything. */
export const silentLogger: EngineLogger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
}
