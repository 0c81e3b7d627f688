/**
 * Runs Biome (lint + format) from its platform package. The project depends on
 * `@biomejs/cli-linux-x64` directly rather than on the `@biomejs/biome` wrapper, because the npm
 * registry reachable from the project's machines serves only the linux-x64 binary, and the wrapper's
 * other optional platform packages could then not be recorded in package-lock.json (`npm ci` fails).
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const binary = fileURLToPath(new URL('../../node_modules/@biomejs/cli-linux-x64/biome', import.meta.url))
if (process.platform !== 'linux' || process.arch !== 'x64' || !existsSync(binary)) {
  process.stderr.write(
    `biome: no Biome binary for ${process.platform}-${process.arch}; install @biomejs/biome for your platform to lint\n`,
  )
  process.exit(1)
}
const r = spawnSync(binary, process.argv.slice(2), { stdio: 'inherit' })
process.exit(r.status ?? 1)
