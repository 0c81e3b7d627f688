#!/usr/bin/env node
/**
 * `codex-bt`: the project's command line. Each subcommand lives in `./commands/<name>.ts` and
 * exports `summary` (one line for help) and `run(args, io)` returning the process exit code.
 */
import { readdir } from 'node:fs/promises'
import type { CommandModule } from './command.ts'
import { stdio } from './command.ts'

const commandsDir = new URL('./commands/', import.meta.url)
const NAME_RE = /^[a-z][a-z0-9-]*$/

async function listCommands(): Promise<string[]> {
  const entries = await readdir(commandsDir)
  return entries
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => f.slice(0, -3))
    .filter((n) => NAME_RE.test(n))
    .sort()
}

async function loadCommand(name: string): Promise<CommandModule | undefined> {
  if (!NAME_RE.test(name)) return undefined
  const names = await listCommands()
  if (!names.includes(name)) return undefined
  return (await import(new URL(`${name}.ts`, commandsDir).href)) as CommandModule
}

async function usage(): Promise<string> {
  const lines = ['usage: codex-bt <command> [options]', '', 'commands:']
  for (const name of await listCommands()) {
    const mod = await loadCommand(name)
    lines.push(`  ${name.padEnd(12)} ${mod?.summary ?? ''}`)
  }
  lines.push('', 'Run `codex-bt <command> --help` for the options of a command.')
  return lines.join('\n')
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${await usage()}\n`)
    return name === undefined ? 2 : 0
  }
  const mod = await loadCommand(name)
  if (!mod) {
    process.stderr.write(`codex-bt: unknown command '${name}'\n\n${await usage()}\n`)
    return 2
  }
  return mod.run(rest, stdio)
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`codex-bt: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
