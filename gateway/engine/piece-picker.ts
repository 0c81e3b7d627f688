/**
 * The piece picker: which 16 KiB blocks to request next, from which peer. Pure policy: no
 * sockets, no timers, no storage; the torrent coordinator feeds it events and sends the requests.
 *
 * Policies (BEP3 "Piece selection" / libtorrent practice):
 * - **Rarest first**: new pieces are chosen by lowest availability among connected peers,
 *   ties broken randomly (a fresh pseudo-random permutation per `pick` call).
 * - **Random first pieces**: while we have fewer than `randomFirstPieces` pieces, new pieces are
 *   chosen at random, so we get something to trade quickly.
 * - **Strict priority / partial first**: free blocks of pieces already in progress are handed out
 *   before starting new pieces, nearest-to-complete first, so pieces finish (and can be verified
 *   and shared) sooner.
 * - **Priority**: per piece 0..7; 0 = skip, higher first. **Sequential** mode picks lowest index first.
 * - **Endgame**: once every block of every wanted piece that any connected peer has is requested
 *   or received, a peer may re-request blocks already requested from other peers (at most
 *   `endgameMaxRequestsPerBlock` requesters per block); when one copy arrives the others are
 *   returned by `onBlockReceived` so the caller can send BEP3 `cancel` messages.
 * - BEP47: blocks that lie entirely inside padding are never requested.
 *
 * Cost: `pick` is O(pieces in progress · blocks per piece + pieces · log k), i.e. at most one pass
 * over the piece list per call, never per block. Memory: O(pieces) typed arrays plus per-block state
 * only for pieces in progress.
 *
 * `P` is the caller's peer handle (a connection object or id); it is only compared with `===`.
 */

import { BLOCK_SIZE } from '../protocol/types.ts'
import { Bitfield } from './bitfield.ts'
import type { PieceGeometry } from './piece-geometry.ts'

/** What a peer has: its bitfield (BEP3 `bitfield`/`have`), or `'all'` (BEP6 `have all`). */
export type PeerHave = Bitfield | 'all'

/** One block request (BEP3 `request`: index, begin, length). */
export interface BlockRequest {
  readonly piece: number
  readonly offset: number
  readonly length: number
}

/** Per-call overrides for `pick`. */
export interface PickOptions {
  /** Override the picker-wide sequential mode for this call. */
  readonly sequential?: boolean
  /** Allow endgame duplicate requests in this call. @default true */
  readonly endgame?: boolean
}

/** Construction options. */
export interface PiecePickerInit {
  readonly geometry: PieceGeometry
  /** Pieces we already have (e.g. from storage `completion()`); copied. */
  readonly have?: Bitfield
  /** Number of initial pieces picked at random instead of rarest first. @default 4 */
  readonly randomFirstPieces?: number
  /** Endgame cap: how many peers may have the same block requested at once. @default 2 */
  readonly endgameMaxRequestsPerBlock?: number
  /** Pick pieces in index order (streaming). @default false */
  readonly sequential?: boolean
  /** Random source in [0, 1), injectable for tests. @default Math.random */
  readonly random?: () => number
}

/** Outcome of `onBlockReceived`. */
export interface BlockReceived<P> {
  /**
   * `accepted`: new data, write it to storage. `duplicate`: already received (endgame race), drop it.
   * `unwanted`: not a block of a piece we still need (already verified, or bad offset/length).
   */
  readonly status: 'accepted' | 'duplicate' | 'unwanted'
  /** Other peers with an outstanding request for this block: send them BEP3 `cancel`. */
  readonly cancel: readonly P[]
  /** Every (non-padding) block of the piece is now received: hash and verify it. */
  readonly pieceComplete: boolean
}

/** Highest priority value; `setPriority` accepts 0..MAX_PRIORITY. */
export const MAX_PRIORITY = 7
/** Default priority of every piece. */
export const DEFAULT_PRIORITY = 1

const FREE = 0
const REQUESTED = 1
const RECEIVED = 2
const PADDING = 3

/** Block states of one piece that has been started. */
interface PieceState<P> {
  readonly blocks: Uint8Array
  /** Peers with an outstanding request, per block (only while REQUESTED). */
  readonly requesters: (P[] | undefined)[]
  /** The peer each received block came from (for banning after a hash failure). */
  readonly from: (P | undefined)[]
  free: number
  requested: number
  /** RECEIVED + PADDING blocks. */
  done: number
  /** PADDING blocks (fixed at creation). */
  padding: number
}

/** Thrown for invalid arguments (programming errors in the caller). */
export class PiecePickerError extends Error {
  readonly code = 'GW_ERR_PIECE_PICKER'

  constructor(message: string) {
    super(message)
    this.name = 'PiecePickerError'
  }
}

/** Block selection state for one torrent. See the module comment for the policies. */
export class PiecePicker<P> {
  readonly #geometry: PieceGeometry
  readonly #have: Bitfield
  readonly #availability: Uint32Array
  readonly #priority: Uint8Array
  readonly #inProgress = new Map<number, PieceState<P>>()
  readonly #randomFirst: number
  readonly #endgameCap: number
  readonly #random: () => number
  #sequential: boolean
  /** Peers that sent BEP6 `have all`; counted once here instead of in every piece. */
  #seeds = 0

  constructor(init: PiecePickerInit) {
    const geometry = init.geometry
    this.#geometry = geometry
    this.#have = init.have ? init.have.clone() : new Bitfield(geometry.pieceCount)
    if (this.#have.size !== geometry.pieceCount) throw new PiecePickerError('have bitfield size mismatch')
    this.#availability = new Uint32Array(geometry.pieceCount)
    this.#priority = new Uint8Array(geometry.pieceCount).fill(DEFAULT_PRIORITY)
    this.#randomFirst = nonNegativeInt(init.randomFirstPieces ?? 4, 'randomFirstPieces')
    this.#endgameCap = nonNegativeInt(init.endgameMaxRequestsPerBlock ?? 2, 'endgameMaxRequestsPerBlock')
    this.#random = init.random ?? Math.random
    this.#sequential = init.sequential ?? false
  }

  // ---- our own state -------------------------------------------------------------------------

  /** Number of pieces in the torrent. */
  get pieceCount(): number {
    return this.#geometry.pieceCount
  }

  /** Number of verified pieces. */
  get haveCount(): number {
    return this.#have.count
  }

  /** Whether `piece` is verified. */
  hasPiece(piece: number): boolean {
    return this.#have.has(piece)
  }

  /** A copy of our verified pieces (for the BEP3 `bitfield` message). */
  haveBitfield(): Bitfield {
    return this.#have.clone()
  }

  /** True when every piece with priority > 0 is verified. O(pieces). */
  isFinished(): boolean {
    for (const piece of this.#have.missingIndices()) if (this.#priority[piece] !== 0) return false
    return true
  }

  /** Sequential (in-order) mode for all later `pick` calls. */
  setSequential(sequential: boolean): void {
    this.#sequential = sequential
  }

  /** Sets the priority of one piece: 0 = do not download, 1..7, higher first. */
  setPriority(piece: number, priority: number): void {
    this.#checkPiece(piece)
    if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
      throw new PiecePickerError(`priority ${priority} not in 0..${MAX_PRIORITY}`)
    }
    this.#priority[piece] = priority
  }

  /** Priority of `piece`. */
  priority(piece: number): number {
    this.#checkPiece(piece)
    return this.#priority[piece] as number
  }

  /** Number of connected peers that have `piece`. */
  availability(piece: number): number {
    this.#checkPiece(piece)
    return (this.#availability[piece] as number) + this.#seeds
  }

  /** Number of pieces with at least one block requested or received but not yet verified. */
  get inProgressCount(): number {
    return this.#inProgress.size
  }

  /** State of one block, mostly for tests and diagnostics. */
  blockState(piece: number, offset: number): 'free' | 'requested' | 'received' | 'padding' | 'have' {
    this.#checkPiece(piece)
    if (this.#have.has(piece)) return 'have'
    const block = offset / BLOCK_SIZE
    const st = this.#inProgress.get(piece)
    if (st === undefined) return this.#geometry.isPaddingBlock(piece, block) ? 'padding' : 'free'
    return (['free', 'requested', 'received', 'padding'] as const)[st.blocks[block] ?? FREE] ?? 'free'
  }

  // ---- peer availability (BEP3 bitfield/have, BEP6 have all/have none) --------------------------

  /** A peer announced one piece (BEP3 `have`). Call only when the bit was not already set. */
  onPeerHave(piece: number): void {
    this.#checkPiece(piece)
    this.#availability[piece] = (this.#availability[piece] as number) + 1
  }

  /** A peer sent its bitfield (BEP3 `bitfield`). O(set bits). */
  onPeerBitfield(have: Bitfield): void {
    this.#checkSize(have)
    for (const piece of have.setIndices())
      this.#availability[piece] = (this.#availability[piece] as number) + 1
  }

  /** A peer sent BEP6 `have all`. O(1). */
  onPeerHaveAll(): void {
    this.#seeds++
  }

  /** A peer left (or its availability must be withdrawn): pass its final `PeerHave`. */
  onPeerLeft(have: PeerHave): void {
    if (have === 'all') {
      if (this.#seeds > 0) this.#seeds--
      return
    }
    this.#checkSize(have)
    for (const piece of have.setIndices()) {
      const n = this.#availability[piece] as number
      if (n > 0) this.#availability[piece] = n - 1
    }
  }

  // ---- picking ---------------------------------------------------------------------------------

  /**
   * Up to `count` new block requests for `peer`, which has `have`. The returned blocks are marked
   * requested by `peer`; the caller must later report each one through `onBlockReceived`,
   * `onRequestTimedOut`, `onRequestRejected` or `onPeerDisconnected`.
   */
  pick(peer: P, have: PeerHave, count: number, options: PickOptions = {}): BlockRequest[] {
    const out: BlockRequest[] = []
    if (!Number.isInteger(count) || count <= 0) return out
    if (have !== 'all') this.#checkSize(have)
    const peerHas = (piece: number): boolean => have === 'all' || have.has(piece)
    const sequential = options.sequential ?? this.#sequential

    // 1. Free blocks of pieces already in progress.
    const partial: number[] = []
    for (const [piece, st] of this.#inProgress) {
      if (st.free > 0 && this.#priority[piece] !== 0 && peerHas(piece)) partial.push(piece)
    }
    partial.sort((a, b) => this.#comparePartial(a, b, sequential))
    for (const piece of partial) {
      if (out.length >= count) return out
      this.#takeFree(peer, piece, this.#inProgress.get(piece) as PieceState<P>, count, out)
    }
    if (out.length >= count) return out

    // 2. New pieces: the best k by (priority, rarity | index | random).
    const blocksPerPiece = this.#geometry.blocksPerPiece
    const k = Math.min(count - out.length, Math.ceil((count - out.length) / blocksPerPiece) + 1)
    const mode = sequential ? 'sequential' : this.#have.count < this.#randomFirst ? 'random' : 'rarest'
    for (const piece of this.#bestNewPieces(peerHas, k, mode)) {
      if (out.length >= count) break
      const st = this.#start(piece)
      this.#takeFree(peer, piece, st, count, out)
      if (st.done === st.padding && st.requested === 0) this.#inProgress.delete(piece)
    }
    if (out.length >= count || options.endgame === false || !this.#endgameActive()) return out

    // 3. Endgame: duplicate requests for busy blocks, capped per block.
    for (const [piece, st] of this.#inProgress) {
      if (out.length >= count) break
      if (st.requested === 0 || this.#priority[piece] === 0 || !peerHas(piece)) continue
      for (let b = 0; b < st.blocks.length && out.length < count; b++) {
        const requesters = st.requesters[b]
        if (st.blocks[b] !== REQUESTED || requesters === undefined) continue
        if (requesters.length >= this.#endgameCap || requesters.includes(peer)) continue
        requesters.push(peer)
        out.push({ piece, offset: b * BLOCK_SIZE, length: this.#geometry.blockLength(piece, b) })
      }
    }
    return out
  }

  /**
   * True when no wanted block that a connected peer could send is free: every remaining block is
   * requested (or received). O(pieces).
   */
  inEndgame(): boolean {
    return this.#endgameActive()
  }

  // ---- block and piece events ----------------------------------------------------------------

  /** A block arrived from `peer`. See `BlockReceived` for what to do with the result. */
  onBlockReceived(peer: P, block: BlockRequest): BlockReceived<P> {
    const unwanted: BlockReceived<P> = { status: 'unwanted', cancel: [], pieceComplete: false }
    const { piece, offset, length } = block
    if (!this.#geometry.isValidPiece(piece) || this.#have.has(piece)) return unwanted
    const b = offset / BLOCK_SIZE
    if (!Number.isInteger(b) || b < 0 || b >= this.#geometry.blockCount(piece)) return unwanted
    if (length !== this.#geometry.blockLength(piece, b)) return unwanted
    const st = this.#inProgress.get(piece) ?? this.#start(piece)
    const state = st.blocks[b]
    if (state === RECEIVED || state === PADDING) {
      return { status: 'duplicate', cancel: [], pieceComplete: false }
    }
    const cancel = (st.requesters[b] ?? []).filter((p) => p !== peer)
    if (state === REQUESTED) st.requested--
    else st.free--
    st.blocks[b] = RECEIVED
    st.requesters[b] = undefined
    st.from[b] = peer
    st.done++
    return { status: 'accepted', cancel, pieceComplete: st.done === st.blocks.length }
  }

  /** A request to `peer` timed out: the block goes back to free unless others requested it too. */
  onRequestTimedOut(peer: P, block: BlockRequest): void {
    this.#release(peer, block)
  }

  /** `peer` rejected a request (BEP6 `reject request`, or choked us without fast extension). */
  onRequestRejected(peer: P, block: BlockRequest): void {
    this.#release(peer, block)
  }

  /** `peer` disconnected: release its outstanding requests and withdraw its availability. */
  onPeerDisconnected(peer: P, have: PeerHave | undefined, requests: Iterable<BlockRequest>): void {
    for (const request of requests) this.#release(peer, request)
    if (have !== undefined) this.onPeerLeft(have)
  }

  /**
   * The piece failed its hash check: every block goes back to free. Returns the distinct peers that
   * sent blocks of it (candidates for banning; anacrolix `pieceHashed`).
   */
  onPieceFailed(piece: number): P[] {
    this.#checkPiece(piece)
    const st = this.#inProgress.get(piece)
    this.#inProgress.delete(piece)
    if (st === undefined) return []
    return [...new Set(st.from.filter((p): p is P => p !== undefined))]
  }

  /** The piece passed verification and was committed to storage. */
  onPieceVerified(piece: number): void {
    this.#checkPiece(piece)
    this.#inProgress.delete(piece)
    this.#have.set(piece)
  }

  /** A verified piece was lost (e.g. storage discarded it): it becomes missing again. */
  onPieceLost(piece: number): void {
    this.#checkPiece(piece)
    this.#have.clear(piece)
    this.#inProgress.delete(piece)
  }

  // ---- internals -----------------------------------------------------------------------------

  #comparePartial(a: number, b: number, sequential: boolean): number {
    const pa = this.#priority[a] as number
    const pb = this.#priority[b] as number
    if (pa !== pb) return pb - pa
    if (sequential) return a - b
    const sa = this.#inProgress.get(a) as PieceState<P>
    const sb = this.#inProgress.get(b) as PieceState<P>
    const fa = sa.free / sa.blocks.length
    const fb = sb.free / sb.blocks.length
    if (fa !== fb) return fa - fb // nearest to complete first
    return (this.#availability[a] as number) - (this.#availability[b] as number) || a - b
  }

  #takeFree(peer: P, piece: number, st: PieceState<P>, count: number, out: BlockRequest[]): void {
    for (let b = 0; b < st.blocks.length && out.length < count && st.free > 0; b++) {
      if (st.blocks[b] !== FREE) continue
      st.blocks[b] = REQUESTED
      st.requesters[b] = [peer]
      st.free--
      st.requested++
      out.push({ piece, offset: b * BLOCK_SIZE, length: this.#geometry.blockLength(piece, b) })
    }
  }

  /** Creates the block state of a piece not yet in progress (padding blocks pre-marked). */
  #start(piece: number): PieceState<P> {
    const n = this.#geometry.blockCount(piece)
    const st: PieceState<P> = {
      blocks: new Uint8Array(n),
      requesters: new Array<P[] | undefined>(n).fill(undefined),
      from: new Array<P | undefined>(n).fill(undefined),
      free: n,
      requested: 0,
      done: 0,
      padding: 0,
    }
    const ranges = this.#geometry.dataRanges(piece)
    for (let b = 0; b < n; b++) {
      const start = b * BLOCK_SIZE
      const end = start + this.#geometry.blockLength(piece, b)
      if (!ranges.some((r) => r.pieceOffset < end && r.pieceOffset + r.length > start)) {
        st.blocks[b] = PADDING
        st.free--
        st.done++
        st.padding++
      }
    }
    this.#inProgress.set(piece, st)
    return st
  }

  /** Best `k` untouched wanted pieces `peerHas`, best first. One pass over all pieces. */
  #bestNewPieces(
    peerHas: (piece: number) => boolean,
    k: number,
    mode: 'sequential' | 'random' | 'rarest',
  ): number[] {
    const seed = Math.floor(this.#random() * 0x1_0000_0000) >>> 0
    const keys: number[] = []
    const pieces: number[] = []
    const n = this.#geometry.pieceCount
    for (let piece = 0; piece < n; piece++) {
      const prio = this.#priority[piece] as number
      if (prio === 0 || this.#have.has(piece) || this.#inProgress.has(piece) || !peerHas(piece)) continue
      const avail =
        mode === 'rarest' ? Math.min((this.#availability[piece] as number) + this.#seeds, 0xfffff) : 0
      const tie = mode === 'sequential' ? Math.min(piece, 0xffffff) : mix32(piece ^ seed) >>> 8
      const key = ((MAX_PRIORITY - prio) * 0x100000 + avail) * 0x1000000 + tie
      if (keys.length === k && key >= (keys[k - 1] as number)) continue
      // Insert into the sorted top-k list (k is small: at most `count` + 1).
      let i = keys.length === k ? k - 1 : keys.length
      while (i > 0 && (keys[i - 1] as number) > key) {
        keys[i] = keys[i - 1] as number
        pieces[i] = pieces[i - 1] as number
        i--
      }
      keys[i] = key
      pieces[i] = piece
      if (keys.length > k) {
        keys.length = k
        pieces.length = k
      }
    }
    return pieces
  }

  #endgameActive(): boolean {
    let anyRequested = false
    for (const [piece, st] of this.#inProgress) {
      if (this.#priority[piece] === 0) continue
      if (st.free > 0 && this.availability(piece) > 0) return false
      if (st.requested > 0) anyRequested = true
    }
    if (!anyRequested) return false
    const n = this.#geometry.pieceCount
    for (let piece = 0; piece < n; piece++) {
      if (this.#priority[piece] === 0 || this.#have.has(piece) || this.#inProgress.has(piece)) continue
      if ((this.#availability[piece] as number) + this.#seeds > 0) return false
    }
    return true
  }

  #release(peer: P, block: BlockRequest): void {
    if (!this.#geometry.isValidPiece(block.piece)) return
    const st = this.#inProgress.get(block.piece)
    const b = block.offset / BLOCK_SIZE
    if (st === undefined || st.blocks[b] !== REQUESTED) return
    const requesters = st.requesters[b] ?? []
    const index = requesters.indexOf(peer)
    if (index < 0) return
    requesters.splice(index, 1)
    if (requesters.length > 0) return
    st.blocks[b] = FREE
    st.requesters[b] = undefined
    st.requested--
    st.free++
    if (st.done === st.padding && st.requested === 0) this.#inProgress.delete(block.piece)
  }

  #checkPiece(piece: number): void {
    if (!this.#geometry.isValidPiece(piece)) throw new PiecePickerError(`piece index ${piece} out of range`)
  }

  #checkSize(have: Bitfield): void {
    if (have.size !== this.#geometry.pieceCount) throw new PiecePickerError('peer bitfield size mismatch')
  }
}

function nonNegativeInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0)
    throw new PiecePickerError(`${name} must be a non-negative integer`)
  return value
}

/** 32-bit integer mixer (murmur3 finaliser): a cheap per-call pseudo-random permutation key. */
function mix32(x: number): number {
  let h = x | 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
