/**
 * A REAL Prometheus server (`/usr/bin/prometheus`, 127.0.0.1, scrape interval 1 s) scrapes a real
 * gateway process at its API address (`/metrics`). After the gateway archives a libtorrent-seeded
 * hybrid torrent of known size into Codex and serves it to a libtorrent leecher, PromQL queries
 * through Prometheus's HTTP API (`/api/v1/query`) return the expected values: bytes from peers
 * ≥ payload, pieces verified = piece count, no failed piece, bytes to Codex ≥ payload, one
 * torrent seeding, Codex request histograms counted, Codex up, one successful archive job, the
 * add request counted by route and status, bytes to peers ≥ payload, and `up == 1`.
 * (test/deploy/promql.test.ts checks that the dashboard and alert expressions parse; this one
 * checks real values from a real gateway.) Prometheus is stopped by PID.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { api, type GatewayProcess, waitUntil } from '../helpers/gateway-process.ts'
import type { LtSession } from '../helpers/libtorrent.ts'
import type { TempDir } from '../helpers/payload.ts'
import {
  type AddJson,
  leechWithLibtorrent,
  type PrometheusServer,
  type SeededTorrent,
  seedWithLibtorrent,
  startPrometheus,
  startServiceSuite,
  stopServiceSuite,
  waitArchived,
} from '../helpers/service-e2e.ts'

const JOB = 'codex-bt-gateway'
const KIB = 1024

describe('Prometheus scrapes a real gateway: PromQL returns the expected values after a transfer', {
  timeout: 90_000,
}, () => {
  let tmp: TempDir
  let lt: LtSession
  let gw: GatewayProcess
  let prom: PrometheusServer
  let t: SeededTorrent
  let size: number
  let fileCount: number

  before(async () => {
    ;({ tmp, lt, gw } = await startServiceSuite('codex-bt-service-prom-'))
    prom = await startPrometheus({
      dir: join(tmp.path, 'prom'),
      job: JOB,
      targets: [new URL(gw.apiUrl).host],
    })
    t = await seedWithLibtorrent(
      lt,
      join(tmp.path, 't'),
      {
        name: 'metrics-set',
        seed: 'service-prometheus',
        files: [
          { path: ['one.bin'], size: 1000 * KIB + 1 },
          { path: ['two.bin'], size: 512 * KIB },
          { path: ['three.txt'], size: 3333 },
        ],
      },
      'hybrid',
    )
    size = t.payload.totalBytes
    fileCount = 3
  })

  after(async () => {
    const promCode = await prom?.stop()
    await stopServiceSuite({ tmp, lt, gw })
    assert.equal(promCode, 0, 'prometheus exits cleanly on SIGTERM')
  })

  /** The single sample of `expr`, once `pred` holds for it (Prometheus scrapes every second). */
  async function eventually(expr: string, pred: (v: number) => boolean, what: string): Promise<number> {
    let last: string = 'no sample'
    try {
      return await waitUntil(
        async () => {
          const r = await prom.query(expr)
          last = JSON.stringify(r)
          if (r.length !== 1) return undefined
          return pred(r[0]!.value) ? r[0]!.value : undefined
        },
        { timeoutMs: 20_000, intervalMs: 250, what: `${expr} ${what}` },
      )
    } catch (e) {
      throw new Error(`${(e as Error).message}; last result ${last}`)
    }
  }

  test('up == 1 for the gateway target, with the gateway’s metrics', async () => {
    await eventually(`up{job="${JOB}"}`, (v) => v === 1, '== 1')
    await eventually(`count({job="${JOB}", __name__=~"codex_bt_.+"}) > 0`, (v) => v > 50, 'many series')
    const series = await prom.query(`codex_bt_torrents{job="${JOB}"}`)
    assert.deepEqual(
      series.map((s) => s.metric.state).sort(),
      ['archiving', 'checking', 'downloading', 'error', 'metadata', 'paused', 'seeding'],
      'every state is exported',
    )
  })

  test('after an archive and a download by a peer, the metrics hold the expected values', async () => {
    const add = await api<AddJson>(gw.apiUrl, 'POST', `/torrents?peers=${t.peer}`, t.bytes)
    assert.equal(add.status, 201)
    const d = await waitArchived(gw.apiUrl, t.id)
    assert.equal(d.pieceCount, t.pieceCount)

    // A libtorrent leecher downloads the archived torrent from the gateway.
    await leechWithLibtorrent({ torrent: t.torrentPath }, join(tmp.path, 'leech'), gw.peerPort, 30_000)

    const at = `job="${JOB}"`
    const id = `info_hash="${t.id}"`
    await eventually(`codex_bt_downloaded_bytes_total{${at}, source="peers"}`, (v) => v >= size, `>= ${size}`)
    await eventually(`codex_bt_torrent_downloaded_bytes_total{${at}, ${id}}`, (v) => v >= size, `>= ${size}`)
    await eventually(`codex_bt_pieces_verified_total{${at}}`, (v) => v === t.pieceCount, `== ${t.pieceCount}`)
    await eventually(`codex_bt_pieces_failed_total{${at}}`, (v) => v === 0, '== 0')
    await eventually(`codex_bt_uploaded_bytes_total{${at}, source="codex"}`, (v) => v >= size, `>= ${size}`)
    await eventually(`codex_bt_codex_bytes_total{${at}, direction="out"}`, (v) => v >= size, `>= ${size}`)
    await eventually(`codex_bt_torrents{${at}, state="seeding"}`, (v) => v === 1, '== 1')
    await eventually(`sum(codex_bt_torrents{${at}})`, (v) => v === 1, '== 1 in total')
    await eventually(`sum(codex_bt_codex_request_duration_seconds_count{${at}})`, (v) => v > 0, '> 0')
    // One upload per non-empty file, and one for the record.
    await eventually(
      `sum(codex_bt_codex_request_duration_seconds_count{${at}, operation="upload", status="200"})`,
      (v) => v >= fileCount + 1,
      `>= ${fileCount + 1}`,
    )
    await eventually(`codex_bt_codex_up{${at}}`, (v) => v === 1, '== 1')
    await eventually(
      `codex_bt_archive_job_duration_seconds_count{${at}, result="success"}`,
      (v) => v === 1,
      '== 1',
    )
    await eventually(`codex_bt_archive_jobs_active{${at}}`, (v) => v === 0, '== 0')
    await eventually(
      `codex_bt_http_request_duration_seconds_count{${at}, method="POST", route="/torrents", status="201"}`,
      (v) => v === 1,
      '== 1',
    )
    await eventually(`codex_bt_uploaded_bytes_total{${at}, source="peers"}`, (v) => v >= size, `>= ${size}`)
    await eventually(`codex_bt_torrent_uploaded_bytes_total{${at}, ${id}}`, (v) => v >= size, `>= ${size}`)
    await eventually(`up{${at}}`, (v) => v === 1, '== 1')
  })
})
