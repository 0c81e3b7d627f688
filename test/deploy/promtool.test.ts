/** deploy/prometheus: `promtool check config`, `promtool check rules` and the rule unit tests. */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { describe, test } from 'node:test'
import { promisify } from 'node:util'
import { DEPLOY, findBinary, metricNamesIn } from './helpers.ts'

const run = promisify(execFile)

async function promtool(...args: string[]): Promise<string> {
  const bin = findBinary('promtool', 'PROMTOOL')
  try {
    const { stdout, stderr } = await run(bin, args, { cwd: `${DEPLOY}prometheus`, timeout: 60_000 })
    return stdout + stderr
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string }
    assert.fail(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`)
  }
}

describe('promtool', () => {
  test('check config deploy/prometheus/prometheus.yml (and the rule file it loads)', async () => {
    const out = await promtool('check', 'config', 'prometheus.yml')
    assert.match(out, /SUCCESS: prometheus\.yml is valid/)
    assert.match(out, /SUCCESS: \d+ rules found/)
  })

  test('check rules deploy/prometheus/alerts.yml', async () => {
    const out = await promtool('check', 'rules', 'alerts.yml')
    assert.match(out, /SUCCESS: ([1-9]\d*) rules found/)
  })

  test('rule unit tests deploy/prometheus/alerts.test.yml pass', async () => {
    const out = await promtool('test', 'rules', 'alerts.test.yml')
    assert.match(out, /SUCCESS/)
  })
})

describe('metricNamesIn (the PromQL name extractor the deploy tests rely on)', () => {
  test('finds selected metrics and ignores functions, labels, keywords, numbers and durations', () => {
    assert.deepEqual(
      metricNamesIn(
        'histogram_quantile(0.95, sum by (le, route) (rate(codex_bt_x_bucket{status=~"5..|error"}[5m]))) / clamp_min(sum(rate(codex_bt_y_total[1m])), 1e-9) > 3 * 3600 or up{job="a"} == 0 and on(instance) codex_bt_z',
      ).sort(),
      ['codex_bt_x_bucket', 'codex_bt_y_total', 'codex_bt_z', 'up'],
    )
    assert.deepEqual(metricNamesIn('count(codex_bt_a{state="seeding"} == 0) or vector(0)'), ['codex_bt_a'])
  })
})
