/**
 * `codex-bt torrent create|info` run as child processes (node gateway/cli/bin.ts …) on temp data:
 * the created file parses, `info --json` reports what the parser reads, magnets are handled, and
 * malformed input gives exit 1 with a one-line message (usage errors exit 2).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { toHex } from '../../gateway/protocol/hex.ts'
import { parseMagnet } from '../../gateway/protocol/magnet.ts'
import { parseTorrent } from '../../gateway/protocol/metainfo.ts'

const BIN = fileURLToPath(new URL('../../gateway/cli/bin.ts', import.meta.url))

interface Run {
  code: number
  stdout: string
  stderr: string
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'torrent', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr })
    })
  })
}

let dir: string

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'codex-bt-cli-'))
  await mkdir(join(dir, 'data', 'sub'), { recursive: true })
  await writeFile(join(dir, 'data', 'a.bin'), Buffer.alloc(40_000, 1))
  await writeFile(join(dir, 'data', 'empty'), Buffer.alloc(0))
  await writeFile(join(dir, 'data', 'sub', 'b.bin'), Buffer.alloc(70_000, 2))
})

after(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('codex-bt torrent create', () => {
  test('writes a hybrid torrent and prints its magnet link', async () => {
    const out = join(dir, 'data.torrent')
    const r = await cli(
      'create',
      join(dir, 'data'),
      '-o',
      out,
      '--piece-length',
      '16384',
      '--tracker',
      'http://127.0.0.1:1/announce',
      '--tracker',
      'udp://127.0.0.1:1',
      '--webseed',
      'http://127.0.0.1:1/ws/',
      '--private',
      '--comment',
      'a comment',
    )
    assert.equal(r.code, 0, r.stderr)
    const m = parseTorrent(new Uint8Array(await readFile(out)))
    assert.equal(m.info.version, 'hybrid')
    assert.equal(m.info.pieceLength, 16384)
    assert.equal(m.info.private, true)
    assert.equal(m.comment, 'a comment')
    assert.deepEqual(m.announce, [['http://127.0.0.1:1/announce'], ['udp://127.0.0.1:1']])
    assert.deepEqual(m.urlList, ['http://127.0.0.1:1/ws/'])
    const link = parseMagnet(r.stdout.trim())
    assert.deepEqual(link.infoHashV1, m.info.infoHashV1)
    assert.deepEqual(link.infoHashV2, m.info.infoHashV2)
  })

  test('v1 and v2 of a single file', async () => {
    for (const version of ['v1', 'v2']) {
      const out = join(dir, `single-${version}.torrent`)
      const r = await cli('create', join(dir, 'data', 'a.bin'), '--version', version, '-o', out)
      assert.equal(r.code, 0, r.stderr)
      const m = parseTorrent(new Uint8Array(await readFile(out)))
      assert.equal(m.info.version, version)
      assert.equal(m.info.name, 'a.bin')
      assert.equal(m.createdBy, 'codex-bt')
    }
  })

  test('usage errors exit 2; a missing path exits 1', async () => {
    for (const args of [
      ['create', join(dir, 'data')],
      ['create', '-o', join(dir, 'x.torrent')],
      ['create', join(dir, 'data'), '-o', join(dir, 'x.torrent'), '--version', 'v3'],
      ['create', join(dir, 'data'), '-o', join(dir, 'x.torrent'), '--piece-length', 'big'],
      ['create', join(dir, 'data'), '-o', join(dir, 'x.torrent'), '--bogus'],
      ['frobnicate'],
    ]) {
      const r = await cli(...args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /^codex-bt torrent: /)
    }
    const r = await cli('create', join(dir, 'missing'), '-o', join(dir, 'x.torrent'))
    assert.equal(r.code, 1)
    assert.match(r.stderr, /ENOENT/)
    const bad = await cli('create', join(dir, 'data'), '-o', join(dir, 'x.torrent'), '--piece-length', '1000')
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /BT_ERR_CREATE_INVALID/)
  })
})

describe('codex-bt torrent info', () => {
  test('--json reports what the parser reads', async () => {
    const out = join(dir, 'info.torrent')
    assert.equal(
      (await cli('create', join(dir, 'data'), '-o', out, '--version', 'v2', '--piece-length', '16384')).code,
      0,
    )
    const m = parseTorrent(new Uint8Array(await readFile(out)))
    const r = await cli('info', out, '--json')
    assert.equal(r.code, 0, r.stderr)
    const j = JSON.parse(r.stdout) as Record<string, unknown> & {
      files: { path: string[]; length: number; piecesRoot: string | null; padding: boolean }[]
    }
    assert.equal(j.name, 'data')
    assert.equal(j.version, 'v2')
    assert.equal(j.infoHashV1, null)
    assert.equal(j.infoHashV2, toHex(m.info.infoHashV2!))
    assert.equal(j.pieceLength, 16384)
    assert.equal(j.pieceCount, m.info.pieceCount)
    assert.deepEqual(
      j.files.filter((f) => !f.padding).map((f) => [f.path.join('/'), f.length, f.piecesRoot]),
      m.info.files
        .filter((f) => !f.padding)
        .map((f) => [f.path.join('/'), f.length, f.piecesRoot ? toHex(f.piecesRoot) : null]),
    )
    const text = await cli('info', out)
    assert.equal(text.code, 0)
    assert.match(text.stdout, new RegExp(`info hash v2: +${toHex(m.info.infoHashV2!)}`))
    assert.match(text.stdout, /sub\/b\.bin {2}70000 {2}root [0-9a-f]{64}/)
  })

  test('a magnet link', async () => {
    const v1 = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a'
    const r = await cli(
      'info',
      `magnet:?xt=urn:btih:${v1}&dn=hello&tr=http%3A%2F%2F127.0.0.1%3A1%2Fa`,
      '--json',
    )
    assert.equal(r.code, 0, r.stderr)
    const j = JSON.parse(r.stdout) as Record<string, unknown>
    assert.equal(j.type, 'magnet')
    assert.equal(j.infoHashV1, v1)
    assert.equal(j.name, 'hello')
    assert.deepEqual(j.trackers, ['http://127.0.0.1:1/a'])
  })

  test('malformed torrents and magnets exit 1 with one clear line', async () => {
    const good = await readFile(join(dir, 'info.torrent'))
    const cases: [string, Uint8Array, RegExp][] = [
      ['truncated.torrent', good.subarray(0, good.length - 10), /BT_ERR_METAINFO_BENCODE/],
      ['garbage.torrent', Buffer.from('this is not a torrent'), /BT_ERR_METAINFO_BENCODE/],
      ['list.torrent', Buffer.from('l4:infoe'), /BT_ERR_METAINFO_WRONG_TYPE/],
      [
        'nopieces.torrent',
        Buffer.from('d4:infod6:lengthi5e4:name1:x12:piece lengthi16384eee'),
        /info\.pieces: missing/,
      ],
    ]
    for (const [name, bytes, re] of cases) {
      const path = join(dir, name)
      await writeFile(path, bytes)
      const r = await cli('info', path)
      assert.equal(r.code, 1, name)
      assert.match(r.stderr, re)
      assert.match(r.stderr, /invalid torrent/)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    }
    const m = await cli('info', 'magnet:?xt=urn:btih:nothex')
    assert.equal(m.code, 1)
    assert.match(m.stderr, /BT_ERR_MAGNET_BAD_INFO_HASH/)
    const missing = await cli('info', join(dir, 'nope.torrent'))
    assert.equal(missing.code, 1)
    const usage = await cli('info')
    assert.equal(usage.code, 2)
  })
})
