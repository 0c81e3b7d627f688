/**
 * BEP52 `hash request` (21), `hashes` (22) and `hash reject` (23) payload codecs, with the BEP's
 * validity rules. The message id byte and length prefix are added by `messages.ts`.
 *
 * Payload layout (BEP52): <pieces root: 32><base layer: u32><index: u32><length: u32>
 * <proof layers: u32>, followed for `hashes` by the hashes: "Hashes starts with the base layer
 * and ends with the uncle hash closest to the root."
 */
import { fail, ok, type WireResult } from './errors.ts'

export const HASH_SIZE = 32
export const PIECES_ROOT_SIZE = 32
/** Size of the request / reject payload and of the `hashes` header. */
export const HASH_REQUEST_PAYLOAD_SIZE = PIECES_ROOT_SIZE + 16
/** BEP52: "Length SHOULD NOT be greater than 512." We enforce it as a hard cap. */
export const MAX_HASH_REQUEST_LENGTH = 512
/**
 * Cap on `base layer` and `proof layers`. A file of at most 2^63 bytes has 2^49 16 KiB leaves,
 * so its tree has no more than 50 layers; 64 leaves room without letting a peer ask for nonsense.
 */
export const MAX_TREE_LAYERS = 64
/** Largest number of hashes a valid `hashes` message can carry: the base hashes plus one uncle per layer. */
export const MAX_HASHES_PER_MESSAGE = MAX_HASH_REQUEST_LENGTH + MAX_TREE_LAYERS

/** The common fields of all three messages. */
export interface HashRequest {
  /** 32 bytes: the `pieces root` of the file (BEP52). */
  readonly piecesRoot: Uint8Array
  /** Layers above the leaf layer (0 = 16 KiB block hashes). */
  readonly baseLayer: number
  /** Offset, in hashes, of the first requested hash in the base layer. */
  readonly index: number
  /** Number of hashes requested from the base layer. */
  readonly length: number
  /** Number of ancestor layers whose uncle hashes are wanted. */
  readonly proofLayers: number
}

export interface HashesPayload extends HashRequest {
  /** The base-layer hashes, then the uncle hashes (a multiple of 32 bytes). */
  readonly hashes: Uint8Array
}

const isU32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffffffff

/** log2 of a power of two. */
function log2(n: number): number {
  return 31 - Math.clz32(n)
}

/**
 * The BEP52 rules for a request: "Index MUST be a multiple of length, this includes zero. Length
 * MUST be equal-to-or-greater-than two and a power of two. Length SHOULD NOT be greater than
 * 512." Plus our caps on the layer numbers. Returns undefined when valid.
 */
export function checkHashRequest(r: HashRequest): string | undefined {
  if (r.piecesRoot.length !== PIECES_ROOT_SIZE) return 'pieces root must be 32 bytes'
  if (!isU32(r.baseLayer) || !isU32(r.index) || !isU32(r.length) || !isU32(r.proofLayers)) {
    return 'fields must be 32-bit unsigned integers'
  }
  if (r.length < 2 || (r.length & (r.length - 1)) !== 0)
    return `length ${r.length} is not a power of two >= 2`
  if (r.length > MAX_HASH_REQUEST_LENGTH) return `length ${r.length} is above ${MAX_HASH_REQUEST_LENGTH}`
  if (r.index % r.length !== 0) return `index ${r.index} is not a multiple of length ${r.length}`
  if (r.index + r.length > 0x100000000) return 'index + length overflows 32 bits'
  if (r.baseLayer >= MAX_TREE_LAYERS) return `base layer ${r.baseLayer} is above ${MAX_TREE_LAYERS - 1}`
  if (r.baseLayer + r.proofLayers > MAX_TREE_LAYERS)
    return `proof layers ${r.proofLayers} reach above the tree`
  return undefined
}

/**
 * Most uncle hashes a `hashes` answer can carry: BEP52 "the first log2(length)-1 proof layers are
 * omitted" (the requested hashes cover them); each remaining proof layer adds one uncle. A peer
 * may send fewer when the tree has fewer layers than requested.
 */
export function maxUncleHashes(r: HashRequest): number {
  return Math.max(0, r.proofLayers - (log2(r.length) - 1))
}

/** Encodes the 48-byte request / reject payload (throws `RangeError` on invalid fields: our bug). */
export function encodeHashRequestPayload(r: HashRequest): Uint8Array {
  const problem = checkHashRequest(r)
  if (problem !== undefined) throw new RangeError(`invalid hash request: ${problem}`)
  const out = new Uint8Array(HASH_REQUEST_PAYLOAD_SIZE)
  out.set(r.piecesRoot, 0)
  const view = new DataView(out.buffer)
  view.setUint32(32, r.baseLayer)
  view.setUint32(36, r.index)
  view.setUint32(40, r.length)
  view.setUint32(44, r.proofLayers)
  return out
}

function readRequest(payload: Uint8Array): WireResult<HashRequest> {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  const r: HashRequest = {
    piecesRoot: payload.slice(0, PIECES_ROOT_SIZE),
    baseLayer: view.getUint32(32),
    index: view.getUint32(36),
    length: view.getUint32(40),
    proofLayers: view.getUint32(44),
  }
  const problem = checkHashRequest(r)
  return problem === undefined ? ok(r) : fail('GW_ERR_WIRE_BAD_FIELD', `BEP52 hash request: ${problem}`)
}

/** Decodes a `hash request` or `hash reject` payload (exactly 48 bytes). */
export function decodeHashRequestPayload(payload: Uint8Array): WireResult<HashRequest> {
  if (payload.length !== HASH_REQUEST_PAYLOAD_SIZE) {
    return fail('GW_ERR_WIRE_BAD_LENGTH', `hash request payload must be 48 bytes, got ${payload.length}`)
  }
  return readRequest(payload)
}

/**
 * Encodes a `hashes` payload as [48-byte header, hashes] (the hashes are not copied). Throws
 * `RangeError` if the hashes do not fit the request (our bug).
 */
export function encodeHashesPayload(h: HashesPayload): Uint8Array[] {
  const count = h.hashes.length / HASH_SIZE
  if (!Number.isInteger(count) || count < h.length || count > h.length + maxUncleHashes(h)) {
    throw new RangeError(`hashes must hold ${h.length}..${h.length + maxUncleHashes(h)} hashes`)
  }
  return [encodeHashRequestPayload(h), h.hashes]
}

/**
 * Decodes a `hashes` payload. The hash list must be whole 32-byte hashes, at least `length` of
 * them, plus at most {@link maxUncleHashes} uncles. Whether they verify against the pieces root is
 * for the Merkle code to decide.
 */
export function decodeHashesPayload(payload: Uint8Array): WireResult<HashesPayload> {
  if (payload.length < HASH_REQUEST_PAYLOAD_SIZE) {
    return fail('GW_ERR_WIRE_BAD_LENGTH', `hashes payload shorter than ${HASH_REQUEST_PAYLOAD_SIZE} bytes`)
  }
  const req = readRequest(payload.subarray(0, HASH_REQUEST_PAYLOAD_SIZE))
  if (!req.ok) return req
  const body = payload.subarray(HASH_REQUEST_PAYLOAD_SIZE)
  if (body.length % HASH_SIZE !== 0)
    return fail('GW_ERR_WIRE_BAD_LENGTH', 'hashes are not a multiple of 32 bytes')
  const count = body.length / HASH_SIZE
  const r = req.value
  if (count < r.length)
    return fail('GW_ERR_WIRE_BAD_LENGTH', `${count} hashes, fewer than the ${r.length} requested`)
  if (count > r.length + maxUncleHashes(r)) {
    return fail(
      'GW_ERR_WIRE_BAD_LENGTH',
      `${count} hashes, more than ${r.length} plus ${maxUncleHashes(r)} uncles`,
    )
  }
  return ok({ ...r, hashes: body })
}
