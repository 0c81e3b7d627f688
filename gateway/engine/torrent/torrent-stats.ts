/**
 * Plain per-torrent counters, read by the session's stats and by the metrics module at scrape
 * time (the engine never imports prom-client; STYLE.md §7.7).
 */
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
