/**
 * Plain per-torrent counters, read by the session's stats and by the metrics module at scrape
 * time (the engine never imports prom-client; STYLE.md §7.7), and the torrent's status snapshot.
 */
import { toHex } from '../../protocol/hex.ts'
import type { Torrent } from './torrent.ts'
import type { TorrentStatusSnapshot } from './torrent-types.ts'

export class TorrentStats {
  downloadedBytes = 0
  uploadedBytes = 0
  wasted = 0
  piecesVerified = 0
  piecesFailed = 0
  peersConnected = 0
  peersBanned = 0
  protocolViolations = 0
  requestTimeouts = 0
  storageErrors = 0
  backpressureEvents = 0
  /** Peer addresses learned through PEX (BEP11). */
  pexPeers = 0

  downloaded(n: number): void {
    this.downloadedBytes += n
  }
  uploaded(n: number): void {
    this.uploadedBytes += n
  }
  wastedBytes(n: number): void {
    this.wasted += n
  }
  pieceVerified(): void {
    this.piecesVerified++
  }
  pieceFailed(): void {
    this.piecesFailed++
  }
  peerConnected(): void {
    this.peersConnected++
  }
  peerDisconnected(): void {
    this.peersConnected--
  }
  peerBanned(): void {
    this.peersBanned++
  }
  protocolViolation(): void {
    this.protocolViolations++
  }
  requestTimeout(): void {
    this.requestTimeouts++
  }
  storageError(): void {
    this.storageErrors++
  }
  backpressure(): void {
    this.backpressureEvents++
  }
}

/** The torrent's status snapshot (rates summed over its peers; progress in verified pieces). */
export function statusOf(t: Torrent): TorrentStatusSnapshot {
  const info = t.info
  let down = 0
  let up = 0
  let seeds = 0
  for (const p of t.peers.values()) {
    down += p.down.rate
    up += p.up.rate
    if (info && p.isSeed(info.pieceCount)) seeds++
  }
  const pieceCount = info?.pieceCount ?? 0
  const have = t.haveBitfield?.count ?? 0
  const error = t.error
  return {
    id: t.id,
    name: t.name,
    state: t.state,
    ...(t.infoHashV1 ? { infoHashV1: toHex(t.infoHashV1) } : {}),
    ...(t.infoHashV2 ? { infoHashV2: toHex(t.infoHashV2) } : {}),
    progress: pieceCount === 0 ? (info ? 1 : 0) : have / pieceCount,
    piecesHave: have,
    pieceCount,
    downloadRate: down,
    uploadRate: up,
    downloaded: t.stats.downloadedBytes,
    uploaded: t.stats.uploadedBytes,
    peers: t.peers.size,
    seeds,
    ...(error ? { error } : {}),
  }
}
