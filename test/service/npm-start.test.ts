/**
 * The README's start command as a newcomer runs it: `npm start` from the repository root, with a
 * fresh temp `CODEX_BT_DATA_DIR`, `CODEX_BT_DHT_BOOTSTRAP=` (no public routers),
 * `CODEX_BT_PEER_HOST=127.0.0.1` and explicit free ports. `/readyz` turns 200 with every check ok
 * and the embedded local Codex node up; the Codex REST API answers at the logged URL (upload and
 * download round-trip); SIGTERM to the process group (what a terminal's Ctrl-C or a supervisor's
 * group kill does) stops the gateway cleanly.
 *
 * Also: SIGTERM to the npm process alone (`npm start` execs node, so the gateway gets the signal; see
 * below), and a signal delivered twice still exits 0 (gateway/cli/commands/serve.ts).
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, test } from 'node:test'
import { startGatewayProcess, waitUntil } from '../helpers/gateway-process.ts'
import { type TempDir, tempDir } from '../helpers/payload.ts'
import {
  codexDownload,
  codexUpload,
  freePort,
  isAlive,
  LOOPBACK,
  REPO_ROOT,
  sha256,
} from '../helpers/service-e2e.ts'

interface LogLine {
  readonly level?: string
  readonly msg?: string
  readonly pid?: number
  readonly [key: string]: unknown
}

interface NpmStart {
  readonly proc: ChildProcess
  readonly apiUrl: string
  readonly ports: { api: number; peer: number; codex: number }
  readonly dataDir: string
  /** JSON log lines of the gateway so far. */
  readonly logs: LogLine[]
  /** Resolves when stdout is closed: npm, its shell and the gateway are gone, every line read. */
  readonly outputDone: Promise<void>
  /** Resolves with [code, signal] when npm exits. */
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>
  /** The gateway's own PID (from its log), once it logged. */
  gatewayPid(): number | undefined
  stderr(): string
}

const started: NpmStart[] = []

/** `p`, or a rejection after `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** `npm start` in its own process group (as a shell job), with only the given settings. */
async function npmStart(dataDir: string): Promise<NpmStart> {
  const ports = { api: await freePort(), peer: await freePort(), codex: await freePort() }
  assert.equal(new Set(Object.values(ports)).size, 3)
  const proc = spawn('npm', ['start'], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      CODEX_BT_DATA_DIR: dataDir,
      CODEX_BT_DHT_BOOTSTRAP: '',
      CODEX_BT_PEER_HOST: LOOPBACK,
      CODEX_BT_API_PORT: String(ports.api),
      CODEX_BT_PEER_PORT: String(ports.peer),
      CODEX_BT_LOCAL_CODEX_PORT: String(ports.codex),
    },
  })
  const logs: LogLine[] = []
  let stderr = ''
  proc.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8000)
  })
  const rl = createInterface({ input: proc.stdout! })
  const outputDone = once(rl, 'close').then(() => undefined)
  rl.on('line', (line) => {
    if (!line.startsWith('{')) return // npm's own "> codex-bittorrent-gateway@… start" banner
    try {
      if (logs.length < 10_000) logs.push(JSON.parse(line) as LogLine)
    } catch {
      // not JSON
    }
  })
  const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const s: NpmStart = {
    proc,
    apiUrl: `http://${LOOPBACK}:${ports.api}`,
    ports,
    dataDir,
    logs,
    outputDone,
    exited,
    gatewayPid: () => logs.find((l) => typeof l.pid === 'number')?.pid,
    stderr: () => stderr,
  }
  started.push(s)
  return s
}

async function waitReady(
  s: NpmStart,
): Promise<{ ready: boolean; reasons: string[]; checks: { name: string; ok: boolean }[] }> {
  return waitUntil(
    async () => {
      if (s.proc.exitCode !== null) throw new Error(`npm start exited ${s.proc.exitCode}: ${s.stderr()}`)
      const res = await fetch(`${s.apiUrl}/readyz`, { signal: AbortSignal.timeout(5000) })
      const body = (await res.json()) as {
        ready: boolean
        reasons: string[]
        checks: { name: string; ok: boolean }[]
      }
      return res.status === 200 ? body : undefined
    },
    { timeoutMs: 45_000, intervalMs: 200, what: 'GET /readyz 200' },
  )
}

/** Stops whatever is left of an `npm start` (npm, then the gateway by its logged PID). */
async function cleanup(s: NpmStart): Promise<void> {
  if (s.proc.exitCode === null && s.proc.signalCode === null) {
    s.proc.kill('SIGKILL')
    await within(s.exited, 10_000, 'npm to exit after SIGKILL')
  }
  const pid = s.gatewayPid()
  if (pid !== undefined && isAlive(pid)) {
    process.kill(pid, 'SIGTERM')
    await waitUntil(async () => (isAlive(pid) ? undefined : true), {
      timeoutMs: 20_000,
      what: 'gateway exit',
    }).catch(() => process.kill(pid, 'SIGKILL'))
  }
}

describe('the README start command: npm start', { timeout: 90_000 }, () => {
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-service-npm-start-')
  })

  after(async () => {
    for (const s of started) await cleanup(s)
    await tmp?.cleanup()
  })

  test('fresh data dir: ready with the embedded Codex node, its API answers, SIGTERM stops it cleanly', async () => {
    const dataDir = join(tmp.path, 'data')
    const s = await npmStart(dataDir)
    const ready = await waitReady(s)
    assert.equal(ready.ready, true)
    assert.deepEqual(ready.reasons, [])
    assert.deepEqual(
      ready.checks.map((c) => [c.name, c.ok]),
      [
        ['codex', true],
        ['peer-listener', true],
        ['accepting', true],
        ['resumed', true],
      ],
    )

    const local = s.logs.find((l) => l.msg?.startsWith('no Codex URL configured'))
    assert.ok(local, 'the embedded local Codex node was started')
    const startedLine = s.logs.find((l) => l.msg === 'gateway started')
    assert.ok(startedLine)
    assert.equal(startedLine.api, s.apiUrl)
    assert.equal(startedLine.peerPort, s.ports.peer)
    // The Codex REST API answers on the URLs the gateway logged (on the configured port).
    const codexApi = String(local.codexApi)
    const codexOrigin = String(startedLine.codex)
    assert.equal(codexApi, `http://${LOOPBACK}:${s.ports.codex}/api/codex/v1`)
    assert.equal(`${codexOrigin}/api/codex/v1`, codexApi)
    const space = await fetch(`${codexApi}/space`, { signal: AbortSignal.timeout(5000) })
    assert.equal(space.status, 200)
    const quota = (await space.json()) as { quotaMaxBytes: number }
    assert.ok(quota.quotaMaxBytes > 0)
    const bytes = randomBytes(100_000)
    const cid = await codexUpload(codexOrigin, bytes, 'hello.bin')
    const back = await codexDownload(codexOrigin, cid)
    assert.ok(back)
    assert.equal(sha256(back), sha256(bytes))

    const health = await fetch(`${s.apiUrl}/healthz`, { signal: AbortSignal.timeout(5000) })
    assert.equal(((await health.json()) as { status: string }).status, 'ok')
    assert.ok(existsSync(join(dataDir, 'codex')), 'the Codex node keeps its state under the data dir')
    assert.ok(existsSync(join(dataDir, 'catalog.sqlite')))
    const metrics = await (await fetch(`${s.apiUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
    assert.match(metrics, /^codex_bt_dht_nodes 0$/m, 'no bootstrap: the DHT knows no node')

    // SIGTERM to the process group, as a terminal (Ctrl-C) or a supervisor's group kill does.
    const gatewayPid = s.gatewayPid()
    assert.ok(gatewayPid && gatewayPid !== s.proc.pid)
    process.kill(-s.proc.pid!, 'SIGTERM')
    await waitUntil(async () => (isAlive(gatewayPid) ? undefined : true), {
      timeoutMs: 20_000,
      what: 'the gateway process to exit',
    })
    const [code, signal] = await within(s.exited, 20_000, 'npm to exit')
    await within(s.outputDone, 10_000, 'the output to end')
    const msgs = s.logs.map((l) => l.msg)
    assert.ok(msgs.includes('signal received, stopping'), JSON.stringify(msgs))
    assert.equal(msgs.at(-1), 'stopped', 'the last log line: stopped')
    assert.deepEqual(
      s.logs.filter(
        (l) => l.level === 'error' || l.level === 'fatal' || l.msg === 'second signal: exiting now',
      ),
      [],
    )
    // npm reports how its `sh -c` child ended: that shell gets the group's SIGTERM too and dies of
    // it before the gateway has finished (npm then re-raises SIGTERM). With `exec` in the start
    // script, npm would report the gateway's own exit code 0.
    assert.ok(code === 0 || signal === 'SIGTERM', `npm ended with ${code} / ${signal}`)
    await assert.rejects(
      fetch(`${s.apiUrl}/healthz`, { signal: AbortSignal.timeout(2000) }),
      'the API port is closed',
    )
  })

  test('SIGTERM to the npm process alone stops the gateway and npm exits 0', {}, async () => {
    const s = await npmStart(join(tmp.path, 'data-2'))
    try {
      await waitReady(s)
      const gatewayPid = s.gatewayPid()
      assert.ok(gatewayPid)
      s.proc.kill('SIGTERM')
      const [code, signal] = await within(s.exited, 20_000, 'npm to exit')
      await waitUntil(async () => (isAlive(gatewayPid) ? undefined : true), {
        timeoutMs: 10_000,
        what: 'the gateway process to exit',
      })
      assert.deepEqual([code, signal], [0, null])
      await within(s.outputDone, 10_000, 'the output to end')
      assert.equal(s.logs.at(-1)?.msg, 'stopped')
    } finally {
      await cleanup(s)
    }
  })

  test('a signal delivered twice (group + forwarded) still stops cleanly with exit code 0', async () => {
    const gw = await startGatewayProcess({ dataDir: join(tmp.path, 'data-3') })
    try {
      process.kill(gw.pid, 'SIGTERM')
      process.kill(gw.pid, 'SIGTERM')
      const code = await gw.stop()
      assert.equal(code, 0)
      const msgs = (): (string | undefined)[] => gw.logs.map((l) => (JSON.parse(l) as LogLine).msg)
      // The last lines may still be in the pipe when the exit is reported.
      await waitUntil(async () => (msgs().includes('stopped') ? true : undefined), {
        timeoutMs: 5000,
        what: 'the "stopped" log line',
      })
      assert.ok(!msgs().includes('second signal: exiting now'))
    } finally {
      await gw.kill()
    }
  })
})
