/**
 * Keeps README.md true: the configuration table matches the code, and the test command the README
 * names is exactly the one `.ci/run` runs.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { CONFIG_TABLE, configTableMarkdown } from '../../gateway/config.ts'

const root = new URL('../../', import.meta.url)
const readme = readFileSync(new URL('README.md', root), 'utf8')
const ciRun = readFileSync(new URL('.ci/run', root), 'utf8')

test('README configuration table is the one generated from CONFIG_TABLE', () => {
  assert.ok(readme.includes(configTableMarkdown().trim()), 'regenerate the table with configTableMarkdown()')
  for (const row of CONFIG_TABLE) assert.ok(readme.includes(`\`${row.env}\``), `${row.env} documented`)
})

test('README test command is the command .ci/run runs', () => {
  const m = /\| run the tests[^|]*\| `([^`]+)` \|/.exec(readme)
  assert.ok(m, 'README names a test command in its command table')
  const ci = /^TEST_CMD="([^"]+)"$/m.exec(ciRun)
  assert.ok(ci, '.ci/run defines TEST_CMD')
  assert.equal(ci[1], m[1])
})

test('README start command is npm start, which runs the gateway', () => {
  const m = /\| run the gateway[^|]*\| `([^`]+)` \|/.exec(readme)
  assert.equal(m?.[1], 'npm start')
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
    scripts: Record<string, string>
  }
  assert.match(pkg.scripts.start ?? '', /gateway\/cli\/bin\.ts serve/)
})
