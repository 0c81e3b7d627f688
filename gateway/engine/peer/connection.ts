/**
 * `PeerConnection`: one BitTorrent peer over a `net.Socket` (or any Duplex), after the handshake
 * (`performHandshake` in `./handshake.ts`). It frames and decodes incoming messages with a
 * bounded decoder, encodes outgoing ones with write backpressure, runs the keep-alive and
 * timeouts, and turns every failure into exactly one close reason.
 *
 * CONTRACT (for the torrent coordinator)
 * - Ownership: the connection owns the socket from construction on. Do not read, write, pause or
 *   destroy it yourself; use `send`, `close`. `close` destroys the socket.
 * - `onMessage(msg)` is called synchronously from socket reads, in wire order, one message at a
 *   time. The message (and its `block` / `payload` views) belongs to the callee. It is never
 *   called after `close()` was called or after `onClose` ran. If it throws, the connection closes
 *   with `GW_ERR_PEER_CALLBACK` (the exception does not propagate).
 * - `onClose(reason)` is called exactly once, asynchronously (a microtask after the close is
 *   decided, never from inside `close()`/`send()`), with a `PeerConnectionError` whose `code`
 *   tells why: a protocol violation (`GW_ERR_PEER_PROTOCOL`, `cause` = the `WireProtocolError`),
 *   a timeout, a full write queue, the remote closing, a socket error, an abort or our own
 *   `close(reason)`. A violation closes only this connection; nothing is ever thrown to the caller.
 * - `send(msg)` returns false when the caller should wait for `onDrain()` before sending more
 *   (like `stream.write`). Messages sent while it returns false are still queued, up to
 *   `maxWriteQueueBytes`; past that the connection closes (`GW_ERR_PEER_WRITE_QUEUE_FULL`).
 *   After close, `send` returns false and does nothing. Writes that make no progress for
 *   `writeStallTimeoutMs` (a peer that never reads) close the connection too.
 * - `onDrain({ signal })` resolves when the queue is below the high-water mark, rejects with the
 *   close reason if the connection closes first, or with the signal's reason on abort.
 * - Timers: a keep-alive is sent when nothing was sent for `keepAliveIntervalMs` (BEP3: "generally
 *   sent once every two minutes"); no complete message for `inactivityTimeoutMs` closes the
 *   connection. Timers are unref'd and cleared on close.
 * - BEP6: when the Fast extension was not negotiated, a Fast message closes the connection
 *   ("the peer MUST close the connection").
 */
import type { Duplex } from 'node:stream'
import type { AbortOptions } from '../../protocol/types.ts'
import type { WireProtocolError } from '../../protocol/wire/errors.ts'
import { FrameDecoder, type FrameLimits, frameLimits } from '../../protocol/wire/frame-decoder.ts'
import {
  chunksLength,
  type DecodeContext,
  decodeMessage,
  encodeMessage,
  MAX_BLOCK_LENGTH,
  MESSAGE_ID,
  type WireMessage,
} from '../../protocol/wire/messages.ts'
import { type EngineLogger, silentLogger } from '../logger.ts'
import { PeerConnectionError } from './errors.ts'

export { PeerConnectionError, type PeerErrorCode } from './errors.ts'

export interface PeerConnectionInit {
  readonly socket: Duplex
  readonly onMessage: (msg: WireMessage) => void
  readonly onClose: (reason: PeerConnectionError) => void
  /** Bytes received after the handshake (`HandshakeOutcome.leftover`). */
  readonly leftover?: Uint8Array
  /** BEP6 negotiated by both sides (`HandshakeOutcome.flags.fast`). @default false */
  readonly fast?: boolean
  /** Frame limits derived from the torrent. @default frameLimits() (piece count unknown) */
  readonly limits?: FrameLimits
  /** Torrent-derived decode checks (piece count). */
  readonly decodeContext?: DecodeContext
  /** `send` returns false once this many bytes are queued. @default 256 KiB */
  readonly writeHighWaterMark?: number
  /** Hard cap on queued bytes; exceeding it closes the connection. @default 4 MiB */
  readonly maxWriteQueueBytes?: number
  /** @default 120 000 (BEP3) */
  readonly keepAliveIntervalMs?: number
  /** @default 240 000 */
  readonly inactivityTimeoutMs?: number
  /** @default 120 000 */
  readonly writeStallTimeoutMs?: number
  readonly signal?: AbortSignal
  readonly logger?: EngineLogger
  /** Clock for the timers (tests). @default Date.now */
  readonly now?: () => number
}

const FAST_ONLY: ReadonlySet<WireMessage['type']> = new Set([
  'suggest',
  'have-all',
  'have-none',
  'reject',
  'allowed-fast',
])

/** Batch buffer size: about 900 requests. */
const BATCH_BYTES = 16 * 1024

const u32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffffffff

/**
 * Encoded length of `msg` if it is a small fixed-size message `encodeSmallMessage` writes (for a
 * `piece`, the 13-byte header only), else 0. Throws `RangeError` for invalid fields, like
 * `encodeMessage`.
 */
function smallMessageLength(msg: WireMessage): number {
  switch (msg.type) {
    case 'request':
    case 'cancel':
    case 'reject':
      if (!u32(msg.index) || !u32(msg.begin) || !u32(msg.length))
        throw new RangeError('invalid block reference')
      return 17
    case 'piece':
      if (!u32(msg.index) || !u32(msg.begin)) throw new RangeError('invalid piece message')
      if (msg.block.length === 0) return 0
      return 13
    case 'have':
    case 'suggest':
    case 'allowed-fast':
      if (!u32(msg.index)) throw new RangeError(`invalid piece index ${msg.index}`)
      return 9
    case 'keep-alive':
      return 4
    case 'choke':
    case 'unchoke':
    case 'interested':
    case 'not-interested':
    case 'have-all':
    case 'have-none':
      return 5
    default:
      return 0
  }
}

const SIMPLE_ID: Partial<Record<WireMessage['type'], number>> = {
  choke: MESSAGE_ID.choke,
  unchoke: MESSAGE_ID.unchoke,
  interested: MESSAGE_ID.interested,
  'not-interested': MESSAGE_ID.notInterested,
  'have-all': MESSAGE_ID.haveAll,
  'have-none': MESSAGE_ID.haveNone,
  have: MESSAGE_ID.have,
  suggest: MESSAGE_ID.suggest,
  'allowed-fast': MESSAGE_ID.allowedFast,
  request: MESSAGE_ID.request,
  cancel: MESSAGE_ID.cancel,
  reject: MESSAGE_ID.reject,
  piece: MESSAGE_ID.piece,
}

function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24
  out[at + 1] = (value >>> 16) & 0xff
  out[at + 2] = (value >>> 8) & 0xff
  out[at + 3] = value & 0xff
}

/** Writes the small message `msg` (see `smallMessageLength`) at `at`; same bytes as `encodeMessage`. */
function encodeSmallMessage(msg: WireMessage, out: Uint8Array, at: number): void {
  switch (msg.type) {
    case 'keep-alive':
      writeU32(out, at, 0)
      return
    case 'request':
    case 'cancel':
    case 'reject':
      writeU32(out, at, 13)
      out[at + 4] = SIMPLE_ID[msg.type] ?? 0
      writeU32(out, at + 5, msg.index)
      writeU32(out, at + 9, msg.begin)
      writeU32(out, at + 13, msg.length)
      return
    case 'piece':
      writeU32(out, at, 9 + msg.block.length)
      out[at + 4] = MESSAGE_ID.piece
      writeU32(out, at + 5, msg.index)
      writeU32(out, at + 9, msg.begin)
      return
    case 'have':
    case 'suggest':
    case 'allowed-fast':
      writeU32(out, at, 5)
      out[at + 4] = SIMPLE_ID[msg.type] ?? 0
      writeU32(out, at + 5, msg.index)
      return
    default:
      writeU32(out, at, 1)
      out[at + 4] = SIMPLE_ID[msg.type] ?? 0
  }
}

/** Big-endian uint32 at `at` (caller checked the bounds). */
function readU32(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at] ?? 0) * 0x1000000 +
    (((bytes[at + 1] ?? 0) << 16) | ((bytes[at + 2] ?? 0) << 8) | (bytes[at + 3] ?? 0))
  )
}

interface DrainWaiter {
  resolve(): void
  reject(err: unknown): void
}

export class PeerConnection {
  readonly #socket: Duplex
  readonly #decoder: FrameDecoder
  readonly #onMessage: (msg: WireMessage) => void
  readonly #onClose: (reason: PeerConnectionError) => void
  readonly #fast: boolean
  #decodeContext: DecodeContext
  readonly #highWater: number
  readonly #maxQueue: number
  readonly #keepAliveMs: number
  readonly #inactivityMs: number
  readonly #stallMs: number
  readonly #now: () => number
  readonly #log: EngineLogger
  readonly #signal: AbortSignal | undefined
  readonly #timer: ReturnType<typeof setInterval>
  readonly #drainWaiters = new Set<DrainWaiter>()
  #closeReason: PeerConnectionError | undefined
  #lastReceivedAt: number
  #lastSentAt: number
  /** Start of the current period without write progress (reset by every flushed write). */
  #stallSince: number
  /** Batch of small encoded messages: bytes [#batchStart, #batchEnd) are not written yet. */
  #batch: Buffer | undefined
  #batchStart = 0
  #batchEnd = 0
  #flushScheduled = false
  #bytesReceived = 0
  #bytesSent = 0
  #messagesReceived = 0

  constructor(init: PeerConnectionInit) {
    this.#socket = init.socket
    this.#onMessage = init.onMessage
    this.#onClose = init.onClose
    this.#fast = init.fast ?? false
    this.#decodeContext = init.decodeContext ?? {}
    this.#decoder = new FrameDecoder({ limits: init.limits ?? frameLimits() })
    this.#highWater = init.writeHighWaterMark ?? 256 * 1024
    this.#maxQueue = init.maxWriteQueueBytes ?? 4 * 1024 * 1024
    this.#keepAliveMs = init.keepAliveIntervalMs ?? 120_000
    this.#inactivityMs = init.inactivityTimeoutMs ?? 240_000
    this.#stallMs = init.writeStallTimeoutMs ?? 120_000
    for (const [k, v] of Object.entries({
      writeHighWaterMark: this.#highWater,
      maxWriteQueueBytes: this.#maxQueue,
      keepAliveIntervalMs: this.#keepAliveMs,
      inactivityTimeoutMs: this.#inactivityMs,
      writeStallTimeoutMs: this.#stallMs,
    })) {
      if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`${k} must be a positive number`)
    }
    if (this.#maxQueue < this.#highWater)
      throw new RangeError('maxWriteQueueBytes must be >= writeHighWaterMark')
    this.#now = init.now ?? Date.now
    this.#log = init.logger ?? silentLogger
    this.#signal = init.signal
    const now = this.#now()
    this.#lastReceivedAt = now
    this.#lastSentAt = now
    this.#stallSince = now

    const tickMs = Math.min(
      5000,
      Math.max(10, Math.min(this.#keepAliveMs, this.#inactivityMs, this.#stallMs) / 4),
    )
    this.#timer = setInterval(() => this.#tick(), tickMs)
    this.#timer.unref?.()

    this.#socket.on('data', this.#handleData)
    this.#socket.on('error', this.#handleError)
    this.#socket.on('end', this.#handleEnd)
    this.#socket.on('close', this.#handleEnd)
    this.#socket.on('drain', this.#handleDrain)
    if (this.#signal) {
      if (this.#signal.aborted) this.#abort()
      else this.#signal.addEventListener('abort', this.#abort, { once: true })
    }
    if (init.leftover && init.leftover.length > 0 && !this.closed) this.#handleData(init.leftover)
    // the socket may have ended between the handshake and now: its events are gone already
    if (!this.closed && (this.#socket.destroyed || this.#socket.readableEnded)) {
      this.close(new PeerConnectionError('GW_ERR_PEER_REMOTE_CLOSED', 'the connection was already closed'))
    }
    if (!this.closed) this.#socket.resume()
  }

  /** True once the connection is closing or closed (`send` is then a no-op). */
  get closed(): boolean {
    return this.#closeReason !== undefined
  }

  /** The reason, once closed. */
  get closeReason(): PeerConnectionError | undefined {
    return this.#closeReason
  }

  /** True while `send` would return false. */
  get needsDrain(): boolean {
    return this.closed || this.queuedBytes >= this.#highWater
  }

  /** Bytes queued (batched or in the socket) and not yet handed to the kernel. */
  get queuedBytes(): number {
    return this.#socket.writableLength + this.#batchEnd - this.#batchStart
  }

  get bytesReceived(): number {
    return this.#bytesReceived
  }

  get bytesSent(): number {
    return this.#bytesSent
  }

  get messagesReceived(): number {
    return this.#messagesReceived
  }

  /** Replaces the frame limits and decode checks (e.g. once BEP9 metadata gives the piece count). */
  setLimits(limits: FrameLimits, decodeContext: DecodeContext = this.#decodeContext): void {
    this.#decoder.setLimits(limits)
    this.#decodeContext = decodeContext
  }

  /**
   * Queues `msg`. Returns false when the caller should wait for `onDrain()` (the message is still
   * queued), or when the connection is closed. Throws only for an invalid message built by the
   * caller (`RangeError` from the encoder).
   *
   * Small fixed-size messages (request, cancel, reject, have, the header of a piece, ...) are
   * encoded straight into a per-connection batch buffer that is written once per tick (or before
   * any other write), so a burst of requests costs one socket write, not one per 17 bytes.
   */
  send(msg: WireMessage): boolean {
    if (this.closed) return false
    const small = smallMessageLength(msg)
    const chunks = small > 0 ? undefined : encodeMessage(msg)
    const size =
      chunks === undefined ? small + (msg.type === 'piece' ? msg.block.length : 0) : chunksLength(chunks)
    const queued = this.queuedBytes
    if (queued > 0 && queued + size > this.#maxQueue) {
      this.close(
        new PeerConnectionError(
          'GW_ERR_PEER_WRITE_QUEUE_FULL',
          `write queue would reach ${queued + size} bytes (cap ${this.#maxQueue})`,
        ),
      )
      return false
    }
    if (queued === 0) this.#stallSince = this.#now()
    const socket = this.#socket
    if (chunks === undefined) {
      encodeSmallMessage(msg, this.#reserve(small), this.#batchEnd)
      this.#batchEnd += small
      if (msg.type === 'piece') {
        // header batched, then the block as its own chunk (never copied)
        socket.cork()
        this.#flushBatch()
        socket.write(msg.block, this.#handleDrain)
        socket.uncork()
      } else if (!this.#flushScheduled) {
        this.#flushScheduled = true
        process.nextTick(this.#onTick)
      }
    } else {
      const last = chunks.length - 1
      socket.cork()
      this.#flushBatch()
      for (let i = 0; i <= last; i++) {
        const chunk = chunks[i] as Uint8Array
        if (i === last) socket.write(chunk, this.#handleDrain)
        else socket.write(chunk)
      }
      socket.uncork()
    }
    this.#bytesSent += size
    this.#lastSentAt = this.#now()
    return !this.needsDrain
  }

  /** A batch buffer with room for `n` more bytes at `#batchEnd`. */
  #reserve(n: number): Buffer {
    const batch = this.#batch
    if (batch !== undefined && this.#batchEnd + n <= batch.length) return batch
    this.#flushBatch()
    const fresh = Buffer.allocUnsafeSlow(BATCH_BYTES)
    this.#batch = fresh
    this.#batchStart = 0
    this.#batchEnd = 0
    return fresh
  }

  /** Writes the batched bytes (if any) to the socket; the written region is never touched again. */
  #flushBatch(): void {
    const batch = this.#batch
    if (batch === undefined || this.#batchEnd === this.#batchStart) return
    const out = batch.subarray(this.#batchStart, this.#batchEnd)
    this.#batchStart = this.#batchEnd
    const socket = this.#socket
    if (!this.closed && !socket.destroyed && socket.writable) socket.write(out, this.#handleDrain)
  }

  /** The once-per-tick flush of batched messages. */
  readonly #onTick = (): void => {
    this.#flushScheduled = false
    this.#flushBatch()
  }

  /** Resolves once `send` would return true again; see the module contract. */
  onDrain(options: AbortOptions = {}): Promise<void> {
    if (this.#closeReason) return Promise.reject(this.#closeReason)
    const signal = options.signal
    if (signal?.aborted) return Promise.reject(signal.reason)
    if (!this.needsDrain) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#drainWaiters.delete(waiter)
        reject(signal?.reason)
      }
      const waiter: DrainWaiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort)
          reject(err)
        },
      }
      this.#drainWaiters.add(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * Closes the connection (idempotent, never throws). `reason` is a description of why we close
   * (becomes `GW_ERR_PEER_LOCAL_CLOSE`) or a ready `PeerConnectionError`.
   */
  close(reason: string | PeerConnectionError = 'closed locally'): void {
    if (this.#closeReason) return
    const err =
      typeof reason === 'string' ? new PeerConnectionError('GW_ERR_PEER_LOCAL_CLOSE', reason) : reason
    // Messages sent before the close leave like unbatched writes would have (if the socket can
    // still take them before it is destroyed).
    this.#flushBatch()
    this.#batch = undefined
    this.#batchStart = 0
    this.#batchEnd = 0
    this.#closeReason = err
    clearInterval(this.#timer)
    this.#signal?.removeEventListener('abort', this.#abort)
    const socket = this.#socket
    socket.off('data', this.#handleData)
    socket.off('end', this.#handleEnd)
    socket.off('close', this.#handleEnd)
    socket.off('drain', this.#handleDrain)
    socket.off('error', this.#handleError)
    // a destroyed socket may still report an error; never let it become uncaught
    socket.on('error', () => {})
    try {
      socket.destroy()
    } catch (cause) {
      this.#log.debug({ err: cause }, 'socket.destroy threw')
    }
    for (const w of this.#drainWaiters) w.reject(err)
    this.#drainWaiters.clear()
    queueMicrotask(() => {
      try {
        this.#onClose(err)
      } catch (cause) {
        this.#log.error({ err: cause }, 'PeerConnection onClose callback threw')
      }
    })
  }

  #protocolError(error: WireProtocolError): undefined {
    return this.#closeWith(new PeerConnectionError('GW_ERR_PEER_PROTOCOL', error.message, { cause: error }))
  }

  /** `close` as an expression, for early returns. */
  #closeWith(err: PeerConnectionError): undefined {
    this.close(err)
    return undefined
  }

  readonly #handleData = (chunk: Uint8Array): undefined => {
    if (this.closed) return
    this.#bytesReceived += chunk.length
    const pushError = this.#decoder.push(chunk)
    if (pushError) return this.#protocolError(pushError)
    const received = this.#messagesReceived
    // bounded: every frame consumes at least 4 buffered bytes
    while (!this.closed) {
      const step = this.#decoder.next()
      if (step.kind === 'need-more') break
      if (step.kind === 'error') return this.#protocolError(step.error)
      const msg = this.#decode(step.frame)
      if (msg === undefined) return
      this.#messagesReceived++
      try {
        this.#onMessage(msg)
      } catch (cause) {
        return this.#closeWith(new PeerConnectionError('GW_ERR_PEER_CALLBACK', 'onMessage threw', { cause }))
      }
    }
    // One clock read per received chunk, not per message.
    if (this.#messagesReceived !== received) this.#lastReceivedAt = this.#now()
  }

  /**
   * Decodes one frame; closes the connection and returns undefined on a violation. `piece`
   * messages (the bulk of a download) take a direct path with the same checks as `decodeMessage`
   * (index below the piece count, a block of 1..16 KiB; BEP3), without its per-call closures.
   */
  #decode(frame: Uint8Array): WireMessage | undefined {
    const n = frame.length
    if (n > 9 && n <= 9 + MAX_BLOCK_LENGTH && frame[0] === MESSAGE_ID.piece) {
      const index = readU32(frame, 1)
      const pieceCount = this.#decodeContext.pieceCount
      if (pieceCount === undefined || index < pieceCount) {
        return { type: 'piece', index, begin: readU32(frame, 5), block: frame.subarray(9) }
      }
    }
    const decoded = decodeMessage(frame, this.#decodeContext)
    if (!decoded.ok) return this.#protocolError(decoded.error)
    const msg = decoded.value
    if (!this.#fast && FAST_ONLY.has(msg.type)) {
      // BEP6: "When the fast extension is disabled, if a peer receives ... then the peer MUST close the connection."
      return this.#closeWith(
        new PeerConnectionError('GW_ERR_PEER_PROTOCOL', `${msg.type} without the Fast extension`),
      )
    }
    return msg
  }

  readonly #handleError = (err: Error): void => {
    this.close(new PeerConnectionError('GW_ERR_PEER_SOCKET', `socket error: ${err.message}`, { cause: err }))
  }

  readonly #handleEnd = (): void => {
    this.close(new PeerConnectionError('GW_ERR_PEER_REMOTE_CLOSED', 'the peer closed the connection'))
  }

  /** On 'drain' and on every flushed write: progress was made; wake `onDrain` waiters if below the mark. */
  readonly #handleDrain = (): void => {
    this.#stallSince = this.#now()
    if (this.needsDrain || this.#drainWaiters.size === 0) return
    const waiters = [...this.#drainWaiters]
    this.#drainWaiters.clear()
    for (const w of waiters) w.resolve()
  }

  readonly #abort = (): void => {
    this.close(new PeerConnectionError('GW_ERR_PEER_ABORTED', 'aborted', { cause: this.#signal?.reason }))
  }

  #tick(): undefined {
    if (this.closed) return
    const now = this.#now()
    if (now - this.#lastReceivedAt >= this.#inactivityMs) {
      return this.#closeWith(
        new PeerConnectionError('GW_ERR_PEER_INACTIVE', `no message for ${this.#inactivityMs} ms`),
      )
    }
    if (this.#socket.writableLength > 0 && now - this.#stallSince >= this.#stallMs) {
      return this.#closeWith(
        new PeerConnectionError(
          'GW_ERR_PEER_WRITE_STALLED',
          `queued writes made no progress for ${this.#stallMs} ms`,
        ),
      )
    }
    if (now - this.#lastSentAt >= this.#keepAliveMs) this.send({ type: 'keep-alive' })
  }
}
