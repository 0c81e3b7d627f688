/**
 * End to end: a torrent much larger than the staging budget is archived with staging kept near its
 * bound. Codex cannot append, so each file stays staged until its CID is known; the gateway fetches
 * a large torrent's pieces in file order so files complete, upload and leave staging one after the
 * other instead of all being half-staged at once.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { GatewayProcess } from '../helpers/gateway-process.ts'
import { ltSeed, makeLtTorrent } from '../helpers/interop.ts'
import {
  addTorrent,
  Cleanup,
  codexData,
  HOST,
  MIB,
  metric,
  metricsText,
  type SuiteEnv,
  startGateway,
  startSuite,
  waitArchived,
} from './kit.ts'

const FILES = 12
const FILE_BYTES = 2 * MIB
const STAGING = 6 * MIB
const PIECE = 256 * 1024

describe('e2e: staging stays bounded for a torrent larger than the staging budget', {
  timeout: 85_000,
}, () => {
  const cleanup = new Cleanup()
  let env: SuiteEnv
  let gw: GatewayProcess

  before(async () => {
    env = await startSuite(cleanup, 'codex-bt-e2e-staging-')
    gw = await startGateway(cleanup, join(env.tmp.path, 'gw'), env.codex.url, {
      CODEX_BT_STAGING_MAX_BYTES: String(STAGING),
    })
  })

  after(() => cleanup.run())

  test(`${FILES} × 2 MiB files through ${STAGING / MIB} MiB of staging: archived, peak staging near the bound`, async () => {
    const files = Array.from({ length: FILES }, (_, i) => ({
      path: [`f${String(i).padStart(2, '0')}.bin`],
      size: FILE_BYTES,
    }))
    const made = await makeLtTorrent(
      env.seeder,
      join(env.tmp.path, 'src'),
      { name: 'big', files },
      'hybrid',
      PIECE,
    )
    await ltSeed(env.seeder, made)
    const id = await addTorrent(gw, made.bytes, [`${HOST}:${env.seeder.port}`])

    let peak = 0
    let limit = 0
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const text = await metricsText(gw)
        peak = Math.max(peak, metric(text, 'codex_bt_staging_bytes'))
        limit = metric(text, 'codex_bt_staging_limit_bytes')
        await new Promise((r) => setTimeout(r, 25))
      }
    })()
    const details = await waitArchived(gw, id, 80_000)
    sampling = false
    await sampler

    assert.equal(limit, STAGING, 'the configured staging bound is in force')
    // Bound: the budget, plus the file being uploaded, plus blocks already requested when
    // backpressure starts (one peer's request window: up to reqq 250 × 16 KiB ≈ 4 MiB). Rarest-first
    // order instead stages the whole 24 MiB payload.
    const window = 4 * MIB
    assert.ok(
      peak <= STAGING + FILE_BYTES + window,
      `peak staging ${peak} bytes stayed within ${STAGING + FILE_BYTES + window} (budget ${STAGING})`,
    )
    assert.ok(peak < FILES * FILE_BYTES, 'never the whole payload at once')
    assert.ok(peak > 0, 'staging was used')
    const byPath = new Map(details.files.map((f) => [f.path, f.codexCid]))
    for (const f of files) {
      const cid = byPath.get(f.path.join('/'))
      assert.ok(cid, `${f.path.join('/')} has a Codex CID`)
      assert.equal((await codexData(env.codex.url, cid)).byteLength, FILE_BYTES)
    }
  })
})
