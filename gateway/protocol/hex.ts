/**
 * Tiny byte helpers shared by the protocol layer: lowercase hex encoding, strict hex decoding and
 * constant-shape byte comparison. Hashes stay raw `Uint8Array`s internally; hex is only used at the
 * edges (logs, HTTP, `piece layers` map keys).
 */

/** Thrown by {@link fromHex} for malformed input. */
export class HexError extends Error {
  readonly code = 'GW_ERR_INVALID_HEX' as const

  constructor(message: string) {
    super(message)
    this.name = 'HexError'
  }
}

/** Lowercase hex of `bytes` (no prefix). */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

const HEX_RE = /^[0-9a-fA-F]*$/

/**
 * Decodes a hex string (either case, no prefix, even length). When `expectedLength` is given the
 * result must have exactly that many bytes (e.g. 20 for a v1 info hash, 32 for a pieces root).
 */
export function fromHex(hex: string, expectedLength?: number): Uint8Array {
  if (typeof hex !== 'string') throw new HexError('hex input must be a string')
  if (hex.length % 2 !== 0) throw new HexError(`hex string has odd length ${hex.length}`)
  if (!HEX_RE.test(hex)) throw new HexError('hex string contains a non-hex character')
  if (expectedLength !== undefined && hex.length !== expectedLength * 2) {
    throw new HexError(`expected ${expectedLength} bytes of hex, got ${hex.length / 2}`)
  }
  // Copy out of Buffer's shared pool so callers own an ordinary, unshared Uint8Array.
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

/** True when `a` and `b` have the same length and bytes. Not meant to be constant-time. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) {
    if (a[i] !== b[i]) return false
  }
  return true
}
