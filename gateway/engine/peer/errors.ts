/**
 * Why a peer connection (or its handshake) ended. One class with a stable `code` per failure
 * kind (STYLE.md §7.3). A protocol violation carries the `WireProtocolError` as `cause`. These
 * reasons are delivered to `onClose` / returned as results; they are never thrown into the caller.
 */

export type PeerErrorCode =
  /** The remote broke the wire protocol (`cause` is the `WireProtocolError` when a codec found it). */
  | 'GW_ERR_PEER_PROTOCOL'
  /** The handshake did not complete within `timeoutMs`. */
  | 'GW_ERR_PEER_HANDSHAKE_TIMEOUT'
  /** Incoming handshake for a swarm we do not serve. */
  | 'GW_ERR_PEER_UNKNOWN_INFO_HASH'
  /** Outgoing handshake answered with a different info hash (BEP3: "they sever the connection"). */
  | 'GW_ERR_PEER_INFO_HASH_MISMATCH'
  /** The remote peer id is ours (we connected to ourselves) or not the one expected (BEP3). */
  | 'GW_ERR_PEER_ID_MISMATCH'
  /** No message from the peer for `inactivityTimeoutMs`. */
  | 'GW_ERR_PEER_INACTIVE'
  /** Queued writes made no progress for `writeStallTimeoutMs` (the peer does not read). */
  | 'GW_ERR_PEER_WRITE_STALLED'
  /** The write queue would exceed `maxWriteQueueBytes`. */
  | 'GW_ERR_PEER_WRITE_QUEUE_FULL'
  /** The remote closed the connection. */
  | 'GW_ERR_PEER_REMOTE_CLOSED'
  /** A socket error (`cause` is the error). */
  | 'GW_ERR_PEER_SOCKET'
  /** Closed by us with `close(reason)`. */
  | 'GW_ERR_PEER_LOCAL_CLOSE'
  /** The caller's `signal` aborted. */
  | 'GW_ERR_PEER_ABORTED'
  /** Our own `onMessage` callback threw (`cause`); the connection is closed to stay consistent. */
  | 'GW_ERR_PEER_CALLBACK'

export class PeerConnectionError extends Error {
  readonly code: PeerErrorCode

  constructor(code: PeerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'PeerConnectionError'
    this.code = code
  }
}
