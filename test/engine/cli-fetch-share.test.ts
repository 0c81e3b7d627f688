/**
 * `codex-bt fetch` and `codex-bt share` as processes (`node gateway/cli/bin.ts …`), on 127.0.0.1:
 * - share → fetch between two processes, fetch started from a magnet link (v2: the metadata and
 *   the piece layers come from our own engine), then share stops on SIGTERM with exit code 0;
 * - a libtorrent seeder → fetch (.torrent, hybrid);
 * - share dials a libtorrent leecher (`--peer`), which downloads everything (v1);
 * - fetch interrupted by SIGINT stops cleanly (exit 130) and resumes to completion on a re-run;
 * - share and fetch find each other only through an HTTP tracker (`--tracker`), or only through
 *   a private loopback DHT (`--dht-bootstrap`);
 * - bad usage exits 2.
 */
import assert from 'node:assert/strict'
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type DHT from 'bittorrent-dht'
import { DhtNode } from '../../gateway/engine/discovery/dht.ts'
import { HOST, ltSeed, makeLtTorrent, waitUntil } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { closeTracker, destroyDht, startPrivateDht, startTracker } from '../helpers/local-discovery.ts'
import { hashTree, sortedEntries, type TempDir, tempDir, writePayload } from '../helpers/payload.ts'

const MIB = 1024 * 1024
const BIN = fileURLToPath(new URL('../../gateway/cli/bin.ts', import.meta.url))
const LISTEN = ['--listen', `${HOST}:0`]

interface Cli {
  readonly proc: ChildProcessWithoutNullStreams
  stdout(): string
  stderr(): string
  /** Resolves with the exit code (or the signal name); kills the process after `timeoutMs`. */
  exit(timeoutMs: number): Promise<number | string>
}

const running = new Set<ChildProcessWithoutNullStreams>()

function cli(args: string[]): Cli {
  const proc = spawn(process.execPath, [BIN, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env },
  })
  running.add(proc)
  let out = ''
  let err = ''
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  proc.stderr.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-20_000)
  })
  const exited = new Promise<number | string>((resolve) =>
    proc.once('exit', (code, signal) => {
      running.delete(proc)
      resolve(code ?? signal ?? -1)
    }),
  )
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exit: async (timeoutMs) => {
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
      try {
        return await exited
      } finally {
        clearTimeout(timer)
      }
    },
  }
}

/** `codex-bt torrent create` of `path` into `out` (64 KiB pieces); returns the magnet it prints. */
async function createTorrent(path: string, out: string, version: 'v2' | 'hybrid'): Promise<string> {
  const create = cli(['torrent', 'create', path, '-o', out, '--version', version, '--piece-length', '65536'])
  assert.equal(await create.exit(20_000), 0, create.stderr())
  return create.stdout().trim()
}

/** Waits for `share` to print its `seeding <hash> on host:port` line; returns the port. */
async function sharePort(share: Cli): Promise<number> {
  let port = 0
  await waitUntil(
    () => {
      const m = /seeding [0-9a-f]+ on [^\s]+:(\d+)/.exec(share.stdout())
      if (m) port = Number(m[1])
      if (share.proc.exitCode !== null) throw new Error(`share exited early: ${share.stderr()}`)
      return port > 0
    },
    'share to be ready',
    20_000,
  )
  return port
}

describe('codex-bt fetch / share (processes)', { timeout: 85_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-cli-')
    lt = await startLibtorrent()
  })

  after(async () => {
    for (const p of running) p.kill('SIGKILL')
    await lt?.close()
    await tmp?.cleanup()
  })

  test('share → fetch from a magnet link (v2 multi-file), then share stops on SIGTERM', async () => {
    const dir = join(tmp.path, 'pair')
    const payload = await writePayload(join(dir, 'src'), {
      name: 'pair',
      seed: 'pair',
      files: [
        { path: ['a.bin'], size: 3 * MIB + 1 },
        { path: ['b', 'c.bin'], size: 2 * MIB - 1 },
      ],
    })
    const torrent = join(dir, 'pair.torrent')
    const magnet = await createTorrent(payload.path, torrent, 'v2')
    assert.match(magnet, /^magnet:\?xt=urn:btmh:1220/)
    assert.doesNotMatch(magnet, /btih/, 'v2 only')

    const share = cli(['share', torrent, '--from', payload.root, ...LISTEN])
    const port = await sharePort(share)
    const dest = join(dir, 'dest')
    const fetch = cli([
      'fetch',
      magnet,
      '--to',
      dest,
      ...LISTEN,
      '--peer',
      `${HOST}:${port}`,
      '--timeout',
      '40',
    ])
    assert.equal(await fetch.exit(45_000), 0, fetch.stderr())
    assert.equal(fetch.stdout().trim(), join(dest, 'pair'))
    assert.match(fetch.stderr(), /complete, every piece verified/)
    assert.deepEqual(sortedEntries(await hashTree(dest, 'pair')), sortedEntries(payload.hashes))

    share.proc.kill('SIGTERM')
    assert.equal(await share.exit(10_000), 0, share.stderr())
    assert.match(share.stderr(), /SIGTERM: stopping/)
  })

  test('libtorrent seeds → codex-bt fetch (hybrid .torrent)', async () => {
    const dir = join(tmp.path, 'lt-seed')
    const made = await makeLtTorrent(
      lt,
      dir,
      {
        name: 'from-lt',
        seed: 'cli-lt',
        files: [
          { path: ['x.bin'], size: 6 * MIB + 7 },
          { path: ['y.txt'], size: 3 },
        ],
      },
      'hybrid',
      128 * 1024,
    )
    await ltSeed(lt, made)
    const dest = join(dir, 'dest')
    const fetch = cli([
      'fetch',
      made.torrentPath,
      '--to',
      dest,
      ...LISTEN,
      '--peer',
      `${HOST}:${lt.port}`,
      '--timeout',
      '40',
    ])
    assert.equal(await fetch.exit(45_000), 0, fetch.stderr())
    assert.deepEqual(sortedEntries(await hashTree(dest, 'from-lt')), sortedEntries(made.payload.hashes))
  })

  test('codex-bt share --peer dials a libtorrent leecher, which downloads everything (v1)', async () => {
    const dir = join(tmp.path, 'lt-leech')
    const made = await makeLtTorrent(
      lt,
      dir,
      { name: 'to-lt.bin', seed: 'cli-share', size: 5 * MIB + 5 },
      'v1',
      64 * 1024,
    )
    const save = join(dir, 'dest')
    await mkdir(save, { recursive: true })
    const h = await lt.add({ torrent: made.torrentPath, savePath: save })
    const share = cli([
      'share',
      made.torrentPath,
      '--from',
      made.payload.root,
      ...LISTEN,
      '--peer',
      `${HOST}:${lt.port}`,
    ])
    try {
      await sharePort(share)
      await lt.waitFor(h, (s) => s.is_seeding, { timeoutMs: 40_000, intervalMs: 200 })
      assert.deepEqual(sortedEntries(await hashTree(save, 'to-lt.bin')), sortedEntries(made.payload.hashes))
    } finally {
      share.proc.kill('SIGINT')
      assert.equal(await share.exit(10_000), 0, share.stderr())
      await lt.remove(h)
    }
  })

  test('fetch stops cleanly on SIGINT (exit 130) and a re-run resumes to completion', async () => {
    const dir = join(tmp.path, 'interrupt')
    const made = await makeLtTorrent(
      lt,
      dir,
      { name: 'slow.bin', seed: 'cli-int', size: 4 * MIB },
      'v1',
      64 * 1024,
    )
    const h = await ltSeed(lt, made, { uploadLimit: 500_000 })
    const dest = join(dir, 'dest')
    const args = ['fetch', made.torrentPath, '--to', dest, ...LISTEN, '--peer', `${HOST}:${lt.port}`]
    const first = cli(args)
    await waitUntil(() => /downloading [1-9][0-9.]*%/.test(first.stderr()), 'some progress', 20_000)
    first.proc.kill('SIGINT')
    assert.equal(await first.exit(10_000), 130, first.stderr())
    assert.match(first.stderr(), /SIGINT: stopping/)
    await lt.setUploadLimit(h, 0)
    const second = cli([...args, '--timeout', '30'])
    assert.equal(await second.exit(35_000), 0, second.stderr())
    const fetched = [...second.stderr().matchAll(/([\d.]+) MB in/g)].map((m) => Number(m[1]))
    assert.ok(
      fetched.length > 0 && fetched.at(-1)! < made.payload.totalBytes / 1e6,
      `the re-run resumed (${fetched.at(-1)} MB fetched)`,
    )
    assert.deepEqual(sortedEntries(await hashTree(dest, 'slow.bin')), sortedEntries(made.payload.hashes))
  })

  test('share and fetch find each other only through a tracker (--tracker) or a private DHT (--dht-bootstrap)', async () => {
    const dir = join(tmp.path, 'discovery')
    const payload = await writePayload(join(dir, 'src'), {
      name: 'found.bin',
      seed: 'found',
      size: 3 * MIB + 3,
    })
    const torrent = join(dir, 'found.torrent')
    const magnet = await createTorrent(payload.path, torrent, 'hybrid')

    const { server: tracker, url } = await startTracker('http')
    const network: DHT[] = []
    let probe: DhtNode | undefined
    const shares: Cli[] = []
    try {
      network.push(...(await startPrivateDht(4)))
      const bootstrap = network.flatMap((d) => ['--dht-bootstrap', `${HOST}:${d.address().port}`])

      // Tracker only.
      const share = cli(['share', torrent, '--from', payload.root, ...LISTEN, '--tracker', url])
      shares.push(share)
      const sharePortT = await sharePort(share)
      const v1 = /btih:([0-9a-f]{40})/.exec(magnet)![1]!
      await waitUntil(
        () => new Promise<boolean>((r) => tracker.getSwarm(v1, (_e, sw) => r((sw?.complete ?? 0) >= 1))),
        'share to announce',
        20_000,
      )
      const byTracker = cli([
        'fetch',
        magnet,
        '--to',
        join(dir, 'by-tracker'),
        ...LISTEN,
        '--tracker',
        url,
        '--timeout',
        '30',
      ])
      assert.equal(await byTracker.exit(35_000), 0, byTracker.stderr())
      assert.deepEqual(
        sortedEntries(await hashTree(join(dir, 'by-tracker'), 'found.bin')),
        sortedEntries(payload.hashes),
      )
      share.proc.kill('SIGTERM')
      assert.equal(await share.exit(10_000), 0)

      // DHT only.
      const dhtShare = cli(['share', torrent, '--from', payload.root, ...LISTEN, ...bootstrap])
      shares.push(dhtShare)
      const port = await sharePort(dhtShare)
      assert.notEqual(port, sharePortT)
      const probeNode = new DhtNode({
        bootstrap: network.map((d) => `${HOST}:${d.address().port}`),
        host: HOST,
        port: 0,
        queryTimeoutMs: 500,
      })
      probe = probeNode
      await probeNode.start()
      const swarm = Buffer.from(v1, 'hex')
      await waitUntil(
        async () => (await probeNode.lookup(swarm)).some((p) => p.port === port),
        'share to be announced in the DHT',
        20_000,
        200,
      )
      const byDht = cli([
        'fetch',
        magnet,
        '--to',
        join(dir, 'by-dht'),
        ...LISTEN,
        ...bootstrap,
        '--timeout',
        '30',
      ])
      assert.equal(await byDht.exit(35_000), 0, byDht.stderr())
      assert.deepEqual(
        sortedEntries(await hashTree(join(dir, 'by-dht'), 'found.bin')),
        sortedEntries(payload.hashes),
      )
      dhtShare.proc.kill('SIGTERM')
      assert.equal(await dhtShare.exit(10_000), 0)
    } finally {
      for (const s of shares) s.proc.kill('SIGKILL')
      await probe?.stop().catch(() => {})
      await destroyDht(network)
      await closeTracker(tracker)
    }
  })

  test('bad usage exits 2', async () => {
    const noTo = cli(['fetch', 'x.torrent'])
    assert.equal(await noTo.exit(10_000), 2)
    assert.match(noTo.stderr(), /--to/)
    const badPeer = cli(['share', 'x.torrent', '--from', tmp.path, '--peer', 'nope'])
    assert.equal(await badPeer.exit(10_000), 2)
  })
})
