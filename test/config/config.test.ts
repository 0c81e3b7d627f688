/** Configuration: defaults, env/file precedence, and one clear error per bad value. */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, describe, test } from 'node:test'
import {
  CONFIG_TABLE,
  ConfigError,
  configTableMarkdown,
  DEFAULT_DHT_BOOTSTRAP,
  type GatewayConfig,
  loadConfig,
  parseSize,
  redactConfig,
  unknownEnvVars,
} from '../../gateway/config.ts'

function expectIssues(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    assert.equal(err.code, 'GW_ERR_CONFIG')
    return err
  }
  assert.fail('expected a ConfigError')
}

describe('defaults', () => {
  test('an empty environment gives the documented defaults', () => {
    const c = loadConfig({ env: {}, cwd: '/srv/gw' })
    assert.equal(c.apiHost, '127.0.0.1')
    assert.equal(c.apiPort, 8070)
    assert.equal(c.peerHost, '0.0.0.0')
    assert.equal(c.peerPort, 6881)
    assert.equal(c.codexUrl, undefined)
    assert.equal(c.codexAuth, undefined)
    assert.equal(c.localCodexHost, '127.0.0.1')
    assert.equal(c.localCodexPort, 8080)
    assert.equal(c.dataDir, resolve('/srv/gw', '.data'))
    assert.equal(c.stagingMaxBytes, 1024 ** 3)
    assert.equal(c.cacheMaxBytes, 2 * 1024 ** 3)
    assert.equal(c.maxConnections, 200)
    assert.equal(c.maxConnectionsPerTorrent, 50)
    assert.equal(c.uploadSlots, 4)
    assert.equal(c.downloadRateLimit, 0)
    assert.equal(c.uploadRateLimit, 0)
    assert.equal(c.dht, true)
    assert.equal(c.dhtPort, 6881)
    assert.deepEqual(
      c.dhtBootstrap.map((h) => `${h.host}:${h.port}`),
      [...DEFAULT_DHT_BOOTSTRAP],
    )
    assert.deepEqual(c.trackers, [])
    assert.equal(c.apiToken, undefined)
    assert.equal(c.logLevel, 'info')
    assert.equal(c.shutdownTimeoutMs, 15000)
    assert.equal(c.bodyLimitBytes, 16 * 1024 ** 2)
  })

  test('the config is frozen', () => {
    const c = loadConfig({ env: {} })
    assert.ok(Object.isFrozen(c))
    assert.ok(Object.isFrozen(c.dhtBootstrap))
    assert.throws(() => {
      ;(c as { apiPort: number }).apiPort = 1
    })
  })

  test('CONFIG_TABLE documents every key with a CODEX_BT_ env var, and the defaults it shows are the ones used', () => {
    const c = loadConfig({ env: {} })
    const keys = Object.keys(c).sort()
    assert.deepEqual(CONFIG_TABLE.map((r) => r.key).sort(), keys)
    for (const row of CONFIG_TABLE) {
      assert.match(row.env, /^CODEX_BT_[A-Z0-9_]+$/)
      assert.ok(row.description.length > 10, row.key)
      // Feeding the documented default back through the env gives the same value.
      if (row.default !== '' && row.key !== 'dhtPort') {
        const viaEnv = loadConfig({ env: { [row.env]: row.default } })
        assert.deepEqual(viaEnv[row.key], c[row.key], row.key)
      }
    }
    assert.ok(CONFIG_TABLE.find((r) => r.key === 'apiToken')?.secret)
    assert.ok(CONFIG_TABLE.find((r) => r.key === 'codexAuth')?.secret)
  })
})

describe('parsing', () => {
  test('sizes accept plain bytes and binary/decimal units', () => {
    assert.equal(parseSize('1GiB'), 1024 ** 3)
    assert.equal(parseSize('512MiB'), 512 * 1024 ** 2)
    assert.equal(parseSize('512 mib'), 512 * 1024 ** 2)
    assert.equal(parseSize('1.5GiB'), 1.5 * 1024 ** 3)
    assert.equal(parseSize('10MB'), 10_000_000)
    assert.equal(parseSize('64KiB'), 65536)
    assert.equal(parseSize('4096'), 4096)
    assert.equal(parseSize(4096), 4096)
    for (const bad of ['', 'lots', '1.5', '1XB', '-1', '1e9', '0.3B'])
      assert.throws(() => parseSize(bad), bad)
  })

  test('env values of every type are parsed', () => {
    const c = loadConfig({
      env: {
        CODEX_BT_API_HOST: '::1',
        CODEX_BT_API_PORT: '0',
        CODEX_BT_PEER_HOST: 'gateway.example.internal',
        CODEX_BT_PEER_PORT: '51413',
        CODEX_BT_CODEX_URL: 'http://codex:8080/',
        CODEX_BT_CODEX_AUTH: 'basic:alice:pa:ss',
        CODEX_BT_DATA_DIR: '/data',
        CODEX_BT_STAGING_MAX_BYTES: '256MiB',
        CODEX_BT_DOWNLOAD_RATE_LIMIT: '1MiB',
        CODEX_BT_DHT: 'off',
        CODEX_BT_DHT_BOOTSTRAP: '127.0.0.1:7000, [::1]:7001',
        CODEX_BT_TRACKERS: 'udp://127.0.0.1:6969/announce,https://tracker.example/announce',
        CODEX_BT_API_TOKEN: 'abc123',
        CODEX_BT_LOG_LEVEL: 'DEBUG',
      },
    })
    assert.equal(c.apiHost, '::1')
    assert.equal(c.apiPort, 0)
    assert.equal(c.peerHost, 'gateway.example.internal')
    assert.equal(c.dhtPort, 51413, 'DHT port follows the peer port')
    assert.equal(c.codexUrl, 'http://codex:8080')
    assert.deepEqual(c.codexAuth, { kind: 'basic', username: 'alice', password: 'pa:ss' })
    assert.equal(c.dataDir, '/data')
    assert.equal(c.stagingMaxBytes, 256 * 1024 ** 2)
    assert.equal(c.downloadRateLimit, 1024 ** 2)
    assert.equal(c.dht, false)
    assert.deepEqual(c.dhtBootstrap, [
      { host: '127.0.0.1', port: 7000 },
      { host: '::1', port: 7001 },
    ])
    assert.deepEqual(c.trackers, ['udp://127.0.0.1:6969/announce', 'https://tracker.example/announce'])
    assert.equal(c.apiToken, 'abc123')
    assert.equal(c.logLevel, 'debug')
    assert.deepEqual(loadConfig({ env: { CODEX_BT_CODEX_AUTH: 'bearer:t0k' } }).codexAuth, {
      kind: 'bearer',
      token: 't0k',
    })
  })

  test('empty DHT_BOOTSTRAP means no bootstrap nodes; other empty values mean unset', () => {
    const c = loadConfig({
      env: { CODEX_BT_DHT_BOOTSTRAP: '', CODEX_BT_API_TOKEN: '', CODEX_BT_API_PORT: '' },
    })
    assert.deepEqual(c.dhtBootstrap, [])
    assert.equal(c.apiToken, undefined)
    assert.equal(c.apiPort, 8070)
  })
})

describe('errors', () => {
  const BAD: Record<string, string> = {
    CODEX_BT_API_HOST: 'not a host!',
    CODEX_BT_API_PORT: '70000',
    CODEX_BT_PEER_HOST: '-bad-.example',
    CODEX_BT_PEER_PORT: 'http',
    CODEX_BT_CODEX_URL: 'ftp://codex:8080',
    CODEX_BT_CODEX_AUTH: 'digest:foo',
    CODEX_BT_LOCAL_CODEX_HOST: '999.1.1.1',
    CODEX_BT_LOCAL_CODEX_PORT: '-1',
    CODEX_BT_STAGING_MAX_BYTES: '0',
    CODEX_BT_CACHE_MAX_BYTES: 'two gigs',
    CODEX_BT_MAX_CONNECTIONS: '0',
    CODEX_BT_MAX_CONNECTIONS_PER_TORRENT: '1.5',
    CODEX_BT_UPLOAD_SLOTS: 'four',
    CODEX_BT_DOWNLOAD_RATE_LIMIT: '-5',
    CODEX_BT_UPLOAD_RATE_LIMIT: '1 potato',
    CODEX_BT_DHT: 'maybe',
    CODEX_BT_DHT_PORT: '65536',
    CODEX_BT_DHT_BOOTSTRAP: 'router.example:6881,nohost,:6881',
    CODEX_BT_TRACKERS: 'udp://127.0.0.1:6969,gopher://x',
    CODEX_BT_API_TOKEN: 'has space',
    CODEX_BT_LOG_LEVEL: 'verbose',
    CODEX_BT_SHUTDOWN_TIMEOUT_MS: 'soon',
    CODEX_BT_BODY_LIMIT_BYTES: '10',
  }

  test('every bad value produces its own issue naming the variable; all are reported at once', () => {
    const err = expectIssues(() => loadConfig({ env: BAD }))
    assert.deepEqual(err.issues.map((i) => i.setting).sort(), Object.keys(BAD).sort())
    for (const issue of err.issues) {
      assert.equal(issue.source, 'env')
      assert.ok(issue.message.length > 5)
      assert.ok(err.message.includes(`${issue.setting}: ${issue.message}`), issue.setting)
    }
    assert.match(err.message, new RegExp(`^invalid configuration \\(${Object.keys(BAD).length} problems\\)`))
  })

  test('each bad value alone fails with exactly one issue that quotes it (secrets excepted)', () => {
    for (const [name, value] of Object.entries(BAD)) {
      const err = expectIssues(() => loadConfig({ env: { [name]: value } }))
      assert.equal(err.issues.length, 1, name)
      assert.equal(err.issues[0]!.setting, name)
      const secret = CONFIG_TABLE.find((r) => r.env === name)?.secret
      if (secret) assert.ok(!err.message.includes(value), `${name} value is not echoed`)
    }
    // The bad bootstrap list reports each bad entry in its one issue.
    const err = expectIssues(() =>
      loadConfig({ env: { CODEX_BT_DHT_BOOTSTRAP: BAD.CODEX_BT_DHT_BOOTSTRAP! } }),
    )
    assert.match(err.issues[0]!.message, /nohost/)
    assert.match(err.issues[0]!.message, /:6881/)
    assert.doesNotMatch(err.issues[0]!.message, /router\.example/)
  })

  test('cross-field check: per-torrent connections cannot exceed the total', () => {
    const err = expectIssues(() =>
      loadConfig({ env: { CODEX_BT_MAX_CONNECTIONS: '10', CODEX_BT_MAX_CONNECTIONS_PER_TORRENT: '20' } }),
    )
    assert.equal(err.issues.length, 1)
    assert.equal(err.issues[0]!.key, 'maxConnectionsPerTorrent')
  })

  test('credentials inside CODEX_URL are refused (use CODEX_AUTH)', () => {
    const err = expectIssues(() => loadConfig({ env: { CODEX_BT_CODEX_URL: 'http://u:p@codex:8080' } }))
    assert.match(err.message, /CODEX_BT_CODEX_AUTH/)
    assert.ok(!err.message.includes('u:p@'))
  })
})

describe('JSON file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'codex-bt-config-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  test('file values override defaults, env overrides the file; CODEX_BT_CONFIG names the file', () => {
    const file = join(dir, 'config.json')
    writeFileSync(
      file,
      JSON.stringify({
        apiPort: 9000,
        peerPort: 7000,
        dht: false,
        trackers: ['udp://127.0.0.1:6969'],
        dhtBootstrap: ['127.0.0.1:6881'],
        stagingMaxBytes: '2GiB',
        logLevel: 'warn',
      }),
    )
    const fromFile = loadConfig({ env: { CODEX_BT_CONFIG: file } })
    assert.equal(fromFile.apiPort, 9000)
    assert.equal(fromFile.peerPort, 7000)
    assert.equal(fromFile.dhtPort, 7000)
    assert.equal(fromFile.dht, false)
    assert.deepEqual(fromFile.trackers, ['udp://127.0.0.1:6969'])
    assert.deepEqual(fromFile.dhtBootstrap, [{ host: '127.0.0.1', port: 6881 }])
    assert.equal(fromFile.stagingMaxBytes, 2 * 1024 ** 3)
    assert.equal(fromFile.logLevel, 'warn')
    assert.equal(fromFile.apiHost, '127.0.0.1', 'unset in both: default')

    const both = loadConfig({
      env: { CODEX_BT_CONFIG: file, CODEX_BT_API_PORT: '9100', CODEX_BT_DHT: 'true' },
    })
    assert.equal(both.apiPort, 9100)
    assert.equal(both.dht, true)
    assert.equal(both.peerPort, 7000)

    const relative = loadConfig({ env: { CODEX_BT_CONFIG: 'config.json' }, cwd: dir })
    assert.equal(relative.apiPort, 9000, 'a relative CODEX_BT_CONFIG is resolved against cwd')

    const explicit = loadConfig({
      env: { CODEX_BT_CONFIG: join(dir, 'missing.json') },
      file: { apiPort: 9200 },
    })
    assert.equal(explicit.apiPort, 9200, 'the `file` argument wins over CODEX_BT_CONFIG')
  })

  test('bad file values, unknown keys, unreadable and invalid files are reported', () => {
    const err = expectIssues(() => loadConfig({ env: {}, file: { apiPort: 'x', dht: 3, apiPortt: 1 } }))
    assert.deepEqual(err.issues.map((i) => i.setting).sort(), ['file:apiPort', 'file:apiPortt', 'file:dht'])
    assert.ok(err.issues.every((i) => i.source === 'file'))

    const missing = expectIssues(() => loadConfig({ env: { CODEX_BT_CONFIG: join(dir, 'nope.json') } }))
    assert.match(missing.message, /CODEX_BT_CONFIG: cannot read .*nope\.json.*ENOENT/)

    const broken = join(dir, 'broken.json')
    writeFileSync(broken, '{"apiPort": ')
    assert.match(expectIssues(() => loadConfig({ env: {}, file: broken })).message, /not valid JSON/)
    const arr = join(dir, 'array.json')
    writeFileSync(arr, '[1,2]')
    assert.match(expectIssues(() => loadConfig({ env: {}, file: arr })).message, /JSON object/)
  })
})

describe('helpers', () => {
  test('unknownEnvVars spots likely typos', () => {
    assert.deepEqual(
      unknownEnvVars({
        CODEX_BT_API_PORTT: '1',
        CODEX_BT_API_PORT: '1',
        CODEX_BT_CONFIG: 'x',
        HOME: '/root',
      }),
      ['CODEX_BT_API_PORTT'],
    )
  })

  test('configTableMarkdown documents every variable once', () => {
    const md = configTableMarkdown()
    for (const r of CONFIG_TABLE) assert.equal(md.split(`\`${r.env}\``).length - 1, 1, r.env)
    assert.match(md, /CODEX_BT_CONFIG/)
  })

  test('redactConfig hides secrets', () => {
    const c: GatewayConfig = loadConfig({
      env: { CODEX_BT_API_TOKEN: 'tok', CODEX_BT_CODEX_AUTH: 'bearer:xyz' },
    })
    const r = redactConfig(c)
    assert.equal(r.apiToken, '***')
    assert.equal(r.codexAuth, '***')
    assert.equal(r.apiPort, 8070)
    assert.ok(!JSON.stringify(r).includes('xyz'))
  })
})
