/**
 * `codex-bt codex-node`: started as a real process, it prints the API URL, serves the Codex API,
 * and exits 0 on SIGTERM; bad usage exits 2.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { rm } from 'node:fs/promises'
import { test } from 'node:test'
import { parseQuota } from '../../gateway/cli/commands/codex-node.ts'
import { makeDataDir, SOME_FILE, SOME_FILE_MANIFEST, uploadOk } from './helpers.ts'

const BIN = new URL('../../gateway/cli/bin.ts', import.meta.url).pathname

test('codex-bt codex-node serves until SIGTERM', async () => {
  const dir = await makeDataDir('codex-node-cli-')
  const child = spawn(
    process.execPath,
    [BIN, 'codex-node', '--port', '0', '--data-dir', dir, '--quota', '64MiB'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  try {
    let out = ''
    child.stdout.setEncoding('utf8')
    const apiUrl = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: string) => {
        out += chunk
        const line = out.split('\n')[0]
        if (out.includes('\n') && line) resolve(line)
      })
      child.once('exit', (code) => reject(new Error(`exited early with ${code}`)))
    })
    assert.match(apiUrl, /^http:\/\/127\.0\.0\.1:\d+\/api\/codex\/v1$/)
    assert.equal(await uploadOk(apiUrl, SOME_FILE), SOME_FILE_MANIFEST)
    const space = (await (await fetch(`${apiUrl}/space`)).json()) as { quotaMaxBytes: number }
    assert.equal(space.quotaMaxBytes, 64 * 1024 * 1024)
    child.kill('SIGTERM')
    const [code] = await once(child, 'exit')
    assert.equal(code, 0)
    await assert.rejects(fetch(`${apiUrl}/space`))
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
})

test('codex-bt codex-node: usage errors exit 2, --help exits 0', async () => {
  for (const [args, expected] of [
    [['--port', 'nope'], 2],
    [['--quota', '12 parsecs'], 2],
    [['--bogus'], 2],
    [['--help'], 0],
  ] as const) {
    const child = spawn(process.execPath, [BIN, 'codex-node', ...args], { stdio: 'ignore' })
    const [code] = await once(child, 'exit')
    assert.equal(code, expected, args.join(' '))
  }
})

test('--quota parsing', () => {
  assert.equal(parseQuota('1024'), 1024)
  assert.equal(parseQuota('1GiB'), 1024 ** 3)
  assert.equal(parseQuota('20gb'), 20 * 1024 ** 3)
  assert.equal(parseQuota('3 MiB'), 3 * 1024 ** 2)
  assert.throws(() => parseQuota('-1'))
  assert.throws(() => parseQuota('1.5GiB'))
})
