/** The contract every `codex-bt` subcommand module (`gateway/cli/commands/<name>.ts`) fulfils. */

export interface CliIO {
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
  readonly env: NodeJS.ProcessEnv
}

export interface CommandModule {
  /** One line shown by `codex-bt --help`. */
  readonly summary: string
  /** Runs the command; resolves to the process exit code (0 success, 1 failure, 2 usage error). */
  run(args: string[], io: CliIO): Promise<number>
}

export const stdio: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env }

/** Thrown for bad command-line usage; the command prints the message and exits with code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}
