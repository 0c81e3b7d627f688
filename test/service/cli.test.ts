/**
 * The `codex-bt` binary (`node gateway/cli/bin.ts …`) against running gateway processes on
 * 127.0.0.1: gateway A requires a token (`CODEX_BT_API_TOKEN`); gateway B shares A's Codex node.
 * - `add <file.torrent>`: progress on stderr until archived, exit 0, the record CID on stdout;
 *   a malformed or unreadable .torrent: exit 1 with a clear message;
 * - `ls`, `ls --json`, `show <id>` (files with their Codex CIDs), `export <id>` (bit-exact, to
 *   stdout and with `-o`);
 * - `seed <cid>`: prints a magnet link libtorrent downloads the Codex data with;
 * - `import <recordCid>` on gateway B, which then serves the torrent to libtorrent;
 * - `--token`: missing/wrong → exit 1 GW_ERR_UNAUTHORIZED; from the environment; the flag wins;
 * - an unreachable gateway: exit 1 with a clear message; usage errors exit 2.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { TorrentDetails, TorrentSummary } from '../../gateway/http/service.ts'
import { api, type GatewayProcess, startGatewayProcess } from '../helpers/gateway-process.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { hashTree, sortedEntries, type TempDir, tempDir } from '../helpers/payload.ts'
import {
  codexUpload,
  freePort,
  killCliProcesses,
  leechWithLibtorrent,
  runCli,
  type SeededTorrent,
  seedWithLibtorrent,
  sha256,
} from '../helpers/service-e2e.ts'

const TOKEN = 'cli-test-token'
const KIB = 1024

describe('codex-bt CLI against running gateways', { timeout: 90_000 }, () => {
  let tmp: TempDir
  let lt: LtSession
  let a: GatewayProcess
  let b: GatewayProcess
  let t: SeededTorrent
  let recordCid: string
  /** `--api A --token T` */
  let atA: string[]

  before(async () => {
    tmp = await tempDir('codex-bt-service-cli-')
    lt = await startLibtorrent()
    a = await startGatewayProcess({ dataDir: join(tmp.path, 'a'), env: { CODEX_BT_API_TOKEN: TOKEN } })
    b = await startGatewayProcess({ dataDir: join(tmp.path, 'b'), codexUrl: a.codexUrl })
    t = await seedWithLibtorrent(
      lt,
      join(tmp.path, 't'),
      {
        name: 'cli-set',
        seed: 'service-cli',
        files: [
          { path: ['song.flac'], size: 900 * KIB + 5 },
          { path: ['cover.jpg'], size: 70 * KIB },
        ],
      },
      'hybrid',
    )
    atA = ['--api', a.apiUrl, '--token', TOKEN]
  })

  after(async () => {
    killCliProcesses()
    const codes = [await b?.stop(), await a?.stop()]
    await lt?.close()
    await tmp?.cleanup()
    assert.deepEqual(codes, [0, 0])
  })

  test('add of a malformed or unreadable .torrent: exit 1 with a clear message, nothing added', async () => {
    const bad = join(tmp.path, 'bad.torrent')
    await writeFile(bad, 'this is not a torrent file')
    const r = await runCli(['add', bad, ...atA])
    assert.equal(r.code, 1, r.stderr)
    assert.equal(r.stdout.length, 0)
    assert.match(r.stderr, /^codex-bt: GW_ERR_BAD_TORRENT: .*not a \.torrent file/im)

    const missing = await runCli(['add', join(tmp.path, 'nope.torrent'), ...atA])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /cannot read .*nope\.torrent/)

    const list = await api<{ torrents: TorrentSummary[] }>(a.apiUrl, 'GET', '/torrents')
    assert.deepEqual(list.body.torrents, [])
  })

  test('add <file.torrent>: progress until archived, exit 0, prints the record CID', async () => {
    const r = await runCli(['add', t.torrentPath, '--peer', t.peer, '--timeout', '60', ...atA])
    assert.equal(r.code, 0, r.stderr)
    const out = r.stdout.toString()
    const m = /^archived cli-set\nrecord (z[1-9A-Za-z]+)\n$/.exec(out)
    assert.ok(m, `stdout: ${out}`)
    recordCid = m[1]!
    assert.match(r.stderr, new RegExp(`^added: ${t.id}$`, 'm'))
    assert.match(r.stderr, /\[[#-]{24}\]\s+\d+\.\d%/, 'a progress line')
    const d = await api<TorrentDetails>(a.apiUrl, 'GET', `/torrents/${t.id}`)
    assert.equal(d.body.state, 'seeding')
    assert.equal(d.body.recordCid, recordCid)

    const again = await runCli(['add', t.torrentPath, '--no-wait', ...atA])
    assert.equal(again.code, 0)
    assert.match(again.stderr, new RegExp(`already present: ${t.id}`))
  })

  test('ls and ls --json', async () => {
    const r = await runCli(['ls', ...atA])
    assert.equal(r.code, 0, r.stderr)
    const lines = r.stdout.toString().trimEnd().split('\n')
    assert.equal(lines.length, 2)
    assert.match(lines[0]!, /^ID\s+STATE\s+DONE\s+SIZE\s+DOWN\s+UP\s+PEERS NAME$/)
    assert.match(lines[1]!, new RegExp(`^${t.id}\\s+seeding\\s+100\\.0%\\s+.*cli-set$`))

    const j = await runCli(['ls', '--json', '--api', a.apiUrl])
    assert.equal(j.code, 0, j.stderr)
    const list = JSON.parse(j.stdout.toString()) as TorrentSummary[]
    assert.deepEqual(
      list.map((x) => [x.id, x.name, x.state, x.progress, x.sizeBytes]),
      [[t.id, 'cli-set', 'seeding', 1, t.payload.totalBytes]],
    )
  })

  test('show <id>: files with their Codex CIDs, the record', async () => {
    const d = (await api<TorrentDetails>(a.apiUrl, 'GET', `/torrents/${t.id}`)).body
    const r = await runCli(['show', t.id, '--api', a.apiUrl])
    assert.equal(r.code, 0, r.stderr)
    const out = r.stdout.toString()
    assert.match(out, /^name:\s+cli-set$/m)
    assert.match(out, new RegExp(`^v2 hash:\\s+${t.infoHashV2}$`, 'm'))
    assert.match(out, /^state:\s+seeding \(100\.0%\)$/m)
    assert.match(out, new RegExp(`^record:\\s+${recordCid}$`, 'm'))
    assert.equal(d.files.length, 2)
    for (const f of d.files) {
      assert.ok(f.codexCid)
      assert.match(out, new RegExp(`^  ${f.path.replace('.', '\\.')}  .*  ${f.codexCid}$`, 'm'))
    }
    const j = await runCli(['show', t.id, '--json', '--api', a.apiUrl])
    assert.deepEqual((JSON.parse(j.stdout.toString()) as TorrentDetails).files, d.files)

    const unknown = await runCli(['show', 'ab'.repeat(20), '--api', a.apiUrl])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /GW_ERR_NOT_FOUND/)
  })

  test('export <id> > x.torrent is bit-exact (stdout and -o)', async () => {
    const r = await runCli(['export', t.id, '--api', a.apiUrl])
    assert.equal(r.code, 0, r.stderr)
    assert.ok(r.stdout.equals(Buffer.from(t.bytes)), 'stdout is the original .torrent')
    const out = join(tmp.path, 'exported.torrent')
    const o = await runCli(['export', t.infoHashV2!, '-o', out, '--api', a.apiUrl])
    assert.equal(o.code, 0, o.stderr)
    assert.ok((await readFile(out)).equals(Buffer.from(t.bytes)), '-o file (asked by the v2 hash)')
  })

  test('seed <cid>: prints a magnet link that libtorrent downloads the Codex data with', async () => {
    const payload = randomBytes(600 * KIB + 3)
    const cid = await codexUpload(a.codexUrl, payload, 'talk.ogg')
    const r = await runCli(['seed', cid, '--name', 'talk.ogg', ...atA])
    assert.equal(r.code, 0, r.stderr)
    const magnet = r.stdout.toString().trim()
    assert.match(magnet, /^magnet:\?xt=urn:btih:[0-9a-f]{40}&xt=urn:btmh:1220[0-9a-f]{64}&dn=talk\.ogg/)
    await leechWithLibtorrent({ magnet }, join(tmp.path, 'seeded'), a.peerPort, 30_000)
    assert.equal(sha256(await readFile(join(tmp.path, 'seeded', 'talk.ogg'))), sha256(payload))
  })

  test('import <recordCid> on a second gateway, which then serves the torrent', async () => {
    const r = await runCli(['import', recordCid, '--api', b.apiUrl])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.toString(), `imported: ${t.id} cli-set\n`)
    const d = await api<TorrentDetails>(b.apiUrl, 'GET', `/torrents/${t.id}`)
    assert.equal(d.body.state, 'seeding')
    assert.equal(d.body.recordCid, recordCid)
    const again = await runCli(['import', recordCid, '--json', '--api', b.apiUrl])
    assert.equal(again.code, 0, again.stderr)
    assert.equal((JSON.parse(again.stdout.toString()) as { created: boolean }).created, false)

    await leechWithLibtorrent({ torrent: t.torrentPath }, join(tmp.path, 'from-b'), b.peerPort, 30_000)
    assert.deepEqual(
      sortedEntries(await hashTree(join(tmp.path, 'from-b'), 'cli-set')),
      sortedEntries(t.payload.hashes),
    )

    const bad = await runCli([
      'import',
      'zDvZRwzkxMz3gH9VYG9daMvPCFQGyK5xJFDA1rFyETGbLsArLXBi',
      '--api',
      b.apiUrl,
    ])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /^codex-bt: GW_ERR_NOT_FOUND: record .* is not in Codex$/m)
  })

  test('--token: missing or wrong → exit 1 GW_ERR_UNAUTHORIZED; from the environment; the flag wins', async () => {
    const noToken = await runCli(['add', t.torrentPath, '--no-wait', '--api', a.apiUrl])
    assert.equal(noToken.code, 1)
    assert.match(noToken.stderr, /^codex-bt: GW_ERR_UNAUTHORIZED: Missing bearer token/m)
    const wrong = await runCli(['add', t.torrentPath, '--no-wait', '--api', a.apiUrl, '--token', 'nope'])
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /^codex-bt: GW_ERR_UNAUTHORIZED: Invalid bearer token/m)
    assert.ok(!wrong.stderr.includes(TOKEN))

    const env = await runCli(['add', t.torrentPath, '--no-wait'], {
      env: { CODEX_BT_API_URL: a.apiUrl, CODEX_BT_API_TOKEN: TOKEN },
    })
    assert.equal(env.code, 0, env.stderr)
    assert.match(env.stderr, /already present/)
    const flagWins = await runCli(['add', t.torrentPath, '--no-wait', '--token', TOKEN], {
      env: { CODEX_BT_API_URL: a.apiUrl, CODEX_BT_API_TOKEN: 'stale-token' },
    })
    assert.equal(flagWins.code, 0, flagWins.stderr)
    const envWrong = await runCli(['add', t.torrentPath, '--no-wait'], {
      env: { CODEX_BT_API_URL: a.apiUrl, CODEX_BT_API_TOKEN: 'stale-token' },
    })
    assert.equal(envWrong.code, 1)
    assert.match(envWrong.stderr, /GW_ERR_UNAUTHORIZED/)
    // Reads need no token.
    assert.equal((await runCli(['ls', '--api', a.apiUrl])).code, 0)
  })

  test('an unreachable gateway: exit 1 with a clear message; usage errors exit 2', async () => {
    const port = await freePort() // nothing listens there
    const url = `http://127.0.0.1:${port}`
    for (const args of [
      ['ls', '--api', url],
      ['show', t.id, '--api', url],
      ['add', t.torrentPath, '--api', url],
    ]) {
      const r = await runCli(args)
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`)
      assert.equal(r.stdout.length, 0)
      assert.match(
        r.stderr,
        new RegExp(
          `^codex-bt: GW_ERR_CLI_UNREACHABLE: cannot reach the gateway at ${url}: .*ECONNREFUSED`,
          'm',
        ),
      )
    }
    const viaEnv = await runCli(['ls'], { env: { CODEX_BT_API_URL: url } })
    assert.equal(viaEnv.code, 1)
    assert.match(viaEnv.stderr, /cannot reach the gateway/)

    const usage = await runCli(['show'])
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /^usage: codex-bt show/m)
    const unknown = await runCli(['frobnicate'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown command 'frobnicate'/)
  })
})
